//! `WaitUntilReady` through the real binary: the answer is held until `ReadyAfter` (shortened
//! by the test-only setting) and a final verification, handed on between invocations through a
//! Lambda Invoke stand-in that queues each hand-over into the function's own Runtime API, and
//! sent once, also when a hand-over is delivered twice; a stack that is deleted during the wait
//! ends it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::scenario::{Stack, World, WorldOptions};
use crate::support::events::RequestType;
use crate::support::fixtures;
use crate::support::lambda_service::LambdaService;
use crate::support::moto::Moto;
use crate::support::runtime::{InvocationResult, REGION};
use crate::support::sink::RecordingSink;

pub(crate) const VERIFIER: &str = "arn:aws:lambda:us-east-1:123456789012:function:verifier";
/// What a hop's invocation may last: it holds for this less 13 s (3 s guard, 10 s hand-over),
/// and verifies only with 10 s left before the hand-over.
pub(crate) const HOP_TIMEOUT: Duration = Duration::from_secs(25);
const FIRST_TIMEOUT: Duration = Duration::from_secs(25);

fn passing_report() -> String {
    json!({"passed": true, "elapsedMs": 40, "deadlineReached": false, "names": [],
           "endpointAddresses": []})
    .to_string()
}

/// A world whose function reaches the Lambda Invoke stand-in (a verifier answering "passed", and
/// itself for hand-overs), with `propagation_secs` standing in for the 20 minutes after a switch.
pub(crate) async fn holding_world(propagation_secs: u64) -> (World, LambdaService) {
    holding_world_with(propagation_secs, &[]).await
}

async fn holding_world_with(propagation_secs: u64, env: &[(&str, &str)]) -> (World, LambdaService) {
    let service = LambdaService::start(HOP_TIMEOUT);
    let mut lambda_env = vec![
        ("AWS_ENDPOINT_URL_LAMBDA".into(), service.url()),
        (
            "TEST_ONLY_PROPAGATION_SECONDS".into(),
            propagation_secs.to_string(),
        ),
    ];
    lambda_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let world = World::with(WorldOptions {
        lambda_env,
        ..Default::default()
    })
    .await;
    service.deliver_to(world.lambda.runtime.queue());
    service.answer(200, passing_report());
    (world, service)
}

/// A workspace whose clusters run in the fixture's real subnets and cluster security group, and
/// the properties that switch it with the answer held.
fn held_props(world: &World) -> (i64, Value) {
    let ws = world.seed_workspace_in_fixture(0, "held");
    let mut props = world.props(0);
    props["WorkspaceIds"] = json!(ws.to_string());
    props["WaitUntilReady"] = json!("true");
    props["VerifyFunctionArn"] = json!(VERIFIER);
    (ws, props)
}

/// A resource of a moto stack that waits for its Create, so that each hop can ask CloudFormation.
pub(crate) async fn waiting_stack() -> Stack {
    Stack {
        stack_id: fixtures::stack(Moto::shared(), REGION, "PrivateLink").await,
        logical_id: "PrivateLink".into(),
        physical_id: None,
    }
}

/// Sends the Create to the function, whose invocation ends without answering CloudFormation.
pub(crate) async fn send_held_create(
    world: &World,
    stack: &Stack,
    props: Value,
    sink: &RecordingSink,
) {
    let event = world.event(RequestType::Create, stack, props, None, sink);
    let first = world.lambda.invoke(event, FIRST_TIMEOUT).await;
    assert_eq!(
        first,
        InvocationResult::Response(json!({"HandedOver": true})),
        "{}",
        world.lambda.logs()
    );
    assert!(sink.requests().is_empty(), "nothing is answered yet");
}

fn put_documents(sink: &RecordingSink) -> Vec<Value> {
    sink.requests().iter().map(|r| r.json()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_held_answer_arrives_once_after_ready_after_across_hand_overs() {
    // At TRACE too, nothing logs the presigned ResponseURL the hand-overs carry, also when
    // RUST_LOG names the SDK's orchestrator itself.
    let (world, service) = holding_world_with(
        14,
        &[(
            "RUST_LOG",
            "trace,aws_smithy_runtime::client::orchestrator=trace",
        )],
    )
    .await;
    let (ws, props) = held_props(&world);
    let stack = waiting_stack().await;
    let sink = RecordingSink::start().await;
    let started = Instant::now();
    send_held_create(&world, &stack, props, &sink).await;
    assert!(
        world.workspace(ws).private_access_settings_id.is_some(),
        "the workspace is switched before the wait"
    );

    let puts = sink.wait_for(1, Duration::from_secs(60)).await;
    let waited = started.elapsed();
    assert_eq!(puts.len(), 1, "{}", world.lambda.logs());
    let doc = puts[0].json();
    assert_eq!(doc["Status"], "SUCCESS", "{doc:#}");
    assert!(
        waited >= Duration::from_secs(14),
        "answered {waited:?} after the Create arrived, before ReadyAfter"
    );
    let arrived = puts[0]
        .received_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ready_after = doc["Data"]["ReadyAfter"].as_str().unwrap_or_default();
    assert!(
        backend_privatelink::resource::testing::iso8601(arrived).as_str() >= ready_after,
        "answered at {} (epoch ms {arrived}), before ReadyAfter {ready_after}",
        backend_privatelink::resource::testing::iso8601(arrived)
    );
    let report = doc["Data"]["VerificationReport"]
        .as_str()
        .unwrap_or_default();
    assert!(report.starts_with("passed after ReadyAfter"), "{doc:#}");
    assert_eq!(
        world.workspace(ws).private_access_settings_id.as_deref(),
        doc["Data"]["PrivateAccessSettingsId"].as_str()
    );

    let hops = service.queued_payloads();
    assert!(!hops.is_empty(), "the wait was handed on at least once");
    for hop in &hops {
        let hop: Value = serde_json::from_str(hop).unwrap();
        assert_eq!(hop["RequestId"], doc["RequestId"], "{hop:#}");
        assert!(hop["HandOver"]["Hop"].as_u64().is_some(), "{hop:#}");
    }
    // Every hop ended, and none but the last answered CloudFormation.
    let results = service.queued_results(HOP_TIMEOUT).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, InvocationResult::Response(_))),
        "{results:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(put_documents(&sink).len(), 1, "exactly one answer");
    assert_eq!(
        service.synchronous_payloads().len(),
        2,
        "verified before the switch and once after ReadyAfter"
    );

    // CloudFormation takes the answer; Lambda then delivers the last hand-over again, as an
    // asynchronous invocation may be: that copy stays silent.
    let status =
        fixtures::answer_stack(Moto::shared(), REGION, &stack.stack_id, "PrivateLink", &doc).await;
    assert_eq!(status, "CREATE_COMPLETE");
    let again: Value = serde_json::from_str(hops.last().unwrap()).unwrap();
    let duplicate = world.lambda.invoke(again, HOP_TIMEOUT).await;
    assert_eq!(
        duplicate,
        InvocationResult::Response(json!({"HandedOver": true})),
        "{}",
        world.lambda.logs()
    );
    assert_eq!(put_documents(&sink).len(), 1, "still exactly one answer");
    let signature = sink
        .path_and_query()
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap();
    assert!(
        !world.lambda.logs().contains(signature),
        "the ResponseURL's signature is in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_the_wait_is_answered_and_ends_the_wait() {
    // ReadyAfter is beyond the test: only the stack's deletion can end the wait. (Longer would
    // be refused: the hops of 25 s invocations hold 144 s at most.)
    let (world, service) = holding_world(100).await;
    let (ws, props) = held_props(&world);
    let mut stack = waiting_stack().await;
    let sink = RecordingSink::start().await;
    send_held_create(&world, &stack, props.clone(), &sink).await;

    // The stack rolls back: CloudFormation gives up on the Create and sends the Delete, which
    // another instance of the function carries out.
    let status =
        fixtures::delete_stack(Moto::shared(), REGION, &stack.stack_id, "PrivateLink").await;
    assert!(status.starts_with("DELETE_"), "{status}");
    stack.physical_id = Some(
        backend_privatelink::resource::testing::OwnershipKey::new(&stack.stack_id, "PrivateLink")
            .physical_resource_id(),
    );
    let other = world.start_lambda().await;
    let deleted = world
        .deliver(
            &other,
            RequestType::Delete,
            &stack,
            props,
            None,
            crate::scenario::TIMEOUT,
        )
        .await;
    deleted.assert_success();
    // The workspace keeps what it uses: PrivateLink cannot be removed from a workspace.
    let pas = world.workspace(ws).private_access_settings_id;
    assert!(pas.is_some());
    assert!(
        world
            .access_settings()
            .iter()
            .any(|p| Some(&p.private_access_settings_id) == pas.as_ref())
    );

    let puts = sink.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(puts.len(), 1, "{}", world.lambda.logs());
    let doc = puts[0].json();
    assert_eq!(doc["Status"], "FAILED", "{doc:#}");
    assert!(
        doc["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("CloudFormation no longer waits for this request"),
        "{doc:#}"
    );
    // The chain of hops has ended: nothing more is queued or answered.
    let hops = service.queued_payloads().len();
    tokio::time::sleep(HOP_TIMEOUT).await;
    assert_eq!(
        service.queued_payloads().len(),
        hops,
        "no hop after the answer"
    );
    assert_eq!(put_documents(&sink).len(), 1, "exactly one answer");
}

/// A pipeline that invokes the function directly reads the invocation's result: nothing can be
/// held for it, so it gets its answer at once, with `ReadyAfter` to wait on itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invocation_gets_its_answer_at_once_with_ready_after() {
    let (world, service) = holding_world(600).await;
    let (ws, props) = held_props(&world);
    let event = crate::support::events::cfn_event(
        RequestType::Create,
        &crate::support::events::stack_id("direct-held"),
        "PrivateLink",
        None,
        props,
        None,
        None,
    );
    let started = Instant::now();
    let result = world.lambda.invoke(event, FIRST_TIMEOUT).await;
    let InvocationResult::Response(doc) = result else {
        panic!("{result:?}\n{}", world.lambda.logs());
    };
    assert_eq!(doc["Status"], "SUCCESS", "{doc:#}");
    // Held, the invocation would have handed over and answered nothing.
    assert!(started.elapsed() < FIRST_TIMEOUT);
    assert!(
        crate::scenario::seconds_apart(
            doc["Data"]["ReadyAfter"].as_str().unwrap_or_default(),
            &backend_privatelink::resource::testing::iso8601(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64
                    + 600_000
            )
        ) <= 10,
        "ReadyAfter is the propagation after the switch: {doc:#}"
    );
    assert!(world.workspace(ws).private_access_settings_id.is_some());
    assert!(service.queued_payloads().is_empty(), "nothing handed on");
    assert!(
        world
            .lambda
            .logs()
            .contains("WaitUntilReady is set, but the answer is not held"),
        "the log says why"
    );
}

/// A role that may not invoke the function: the first hand-over fails, and the held answer goes
/// out at once rather than never, with the reason in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_that_is_refused_answers_at_once() {
    let (world, service) = holding_world(100).await;
    service.refuse_hand_overs();
    let (ws, props) = held_props(&world);
    let stack = waiting_stack().await;
    let sink = RecordingSink::start().await;
    let event = world.event(RequestType::Create, &stack, props, None, &sink);
    let result = world.lambda.invoke(event, FIRST_TIMEOUT).await;
    assert!(
        matches!(&result, InvocationResult::Response(doc) if doc["Status"] == "SUCCESS"),
        "{result:?}\n{}",
        world.lambda.logs()
    );
    assert_eq!(put_documents(&sink).len(), 1);
    assert!(world.workspace(ws).private_access_settings_id.is_some());
    assert!(
        world
            .lambda
            .logs()
            .contains("allow lambda:InvokeFunction on itself"),
        "{}",
        world.lambda.logs()
    );
}
