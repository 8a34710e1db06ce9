//! Lambda's and CloudFormation's own rules as AWS runs them, through the real binary: the
//! attributes the template's outputs read on every path, a `Network` for the workspace a later
//! Update switches, a verifier that is not ready yet, the held answer's bounds, and event text
//! that URL parsing would change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::hold::{HOP_TIMEOUT, VERIFIER, holding_world, waiting_stack};
use crate::scenario::{TIMEOUT, World};
use crate::support::events::{RequestType, cfn_event};
use crate::support::runtime::InvocationResult;
use crate::support::sink::RecordingSink;

/// The README's first deploy with `DeployVerifier=true` and `NetworkFromClusterParameters=true`:
/// `WorkspaceIds` empty, and `Network` naming the cluster subnets and security group of the
/// workspace a later Update switches. The Create succeeds with every attribute the template's
/// outputs read (the verifier's "not run" among them) and only warns about the workspace; the
/// Update that lists the workspace verifies and switches it; a `Network` for another workspace
/// is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_first_with_network_and_verifier_succeeds_and_the_update_switches() {
    let (world, service) = holding_world(60).await;
    let net = world.networks[0].clone();
    let ws = world.seed_workspace_in_fixture(0, "switched-later");
    let mut props = world.props(0);
    props["VerifyFunctionArn"] = json!(VERIFIER);
    props["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    props["WorkspaceIds"] = json!("");

    let mut stack = world.stack("register-first");
    let created = world.create(&mut stack, props.clone()).await;
    created.assert_success();
    let data = &created.response["Data"];
    for attribute in backend_privatelink::resource::testing::ALWAYS_RETURNED
        .iter()
        .chain(&backend_privatelink::resource::testing::RETURNED_WITH_NETWORK)
    {
        assert!(data.get(*attribute).is_some(), "{attribute}: {data:#}");
    }
    assert_eq!(
        created.data("VerificationReport"),
        "not run: no workspace to switch"
    );
    assert!(created.data("NetworkId").len() > 3, "{data:#}");
    assert!(world.workspace(ws).private_access_settings_id.is_none());
    assert!(
        service.synchronous_payloads().is_empty(),
        "nothing to verify before anything is switched"
    );
    let logs = world.lambda.logs();
    assert!(
        logs.contains(&format!("switch only workspace {ws} to this network")),
        "the warning names the workspace: {logs}"
    );

    let mut switching = props.clone();
    switching["WorkspaceIds"] = json!(ws.to_string());
    let updated = world
        .send(RequestType::Update, &stack, switching, Some(props))
        .await;
    updated.assert_success();
    assert_eq!(updated.data("AttachedWorkspaceIds"), ws.to_string());
    assert_eq!(updated.data("NetworkId"), created.data("NetworkId"));
    assert!(
        updated.data("VerificationReport").starts_with("passed: "),
        "{:#}",
        updated.response
    );
    let switched = world.workspace(ws);
    assert_eq!(
        switched.network_id.as_deref(),
        Some(created.data("NetworkId"))
    );
    assert_eq!(
        switched.private_access_settings_id.as_deref(),
        Some(updated.data("PrivateAccessSettingsId"))
    );

    // Naming another workspace with the same subnets stays refused, before any write.
    let other = world.seed_workspace(0, "another");
    let mut elsewhere = world.props(0);
    elsewhere["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    elsewhere["WorkspaceIds"] = json!(other.to_string());
    let writes = world.writes();
    let mut second = world.stack("network-of-another-workspace");
    let refused = world.create(&mut second, elsewhere).await;
    refused.assert_failed_with(&format!("of workspace {ws}"));
    refused.assert_reason_mentions("already used by network configuration");
    assert_eq!(world.writes(), writes, "nothing written");
}

/// A VPC function idle for weeks: Lambda fails its first invocation (`Inactive`), then refuses
/// it while `Pending`. The function waits for the verifier within the same invocation, and the
/// switch goes ahead once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_not_ready_twice_then_passing_lets_the_switch_go_ahead() {
    let (world, service) = holding_world(60).await;
    service.not_ready_for(2);
    let ws = world.seed_workspace_in_fixture(0, "idle-verifier");
    let mut props = world.props(0);
    props["WorkspaceIds"] = json!(ws.to_string());
    props["VerifyFunctionArn"] = json!(VERIFIER);
    let mut stack = world.stack("idle-verifier");
    let created = world.create(&mut stack, props).await;
    world.assert_verified_and_switched(&created, ws);
    assert_eq!(
        service.synchronous_payloads().len(),
        3,
        "refused twice, answered the third time"
    );
    let logs = world.lambda.logs();
    assert!(
        logs.contains("the verifier function is not ready yet") && logs.contains("Pending"),
        "{logs}"
    );
}

/// Twelve hand-overs at most, each holding the function's timeout less 13 s: a function whose
/// timeout cannot carry the answer to ReadyAfter is refused before anything is written, with
/// the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_ready_with_a_timeout_too_short_for_the_hops_is_refused_before_any_write() {
    let (world, service) = holding_world(600).await;
    let ws = world.seed_workspace_in_fixture(0, "short-timeout");
    let mut props = world.props(0);
    props["WorkspaceIds"] = json!(ws.to_string());
    props["WaitUntilReady"] = json!("true");
    props["ServiceTimeout"] = json!("3600");
    let stack = waiting_stack().await;
    let refused = world
        .deliver(
            &world.lambda,
            RequestType::Create,
            &stack,
            props,
            None,
            HOP_TIMEOUT,
        )
        .await;
    refused.assert_failed_with("WaitUntilReady holds the answer for 600 s after the switch");
    refused.assert_reason_mentions("this function's timeout of 25 s holds 144 s at most");
    refused.assert_reason_mentions("a timeout of at least 65 s");
    assert_eq!(world.writes(), 0);
    assert!(world.workspace(ws).private_access_settings_id.is_none());
    assert!(service.queued_payloads().is_empty());
}

/// The rollback of a failed held Update switches nothing (its workspaces are switched already):
/// it is answered at once instead of being held again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_with_wait_until_ready_that_switches_nothing_is_answered_at_once() {
    let (world, service) = holding_world(100).await;
    let ws = world.seed_workspace_in_fixture(0, "already-switched");
    let mut props = world.props(0);
    props["WorkspaceIds"] = json!(ws.to_string());
    let mut stack = world.stack("rollback-update");
    let created = world.create(&mut stack, props.clone()).await;
    created.assert_success();

    let mut held = props.clone();
    held["WaitUntilReady"] = json!("true");
    held["ServiceTimeout"] = json!("3600");
    let started = Instant::now();
    let updated = world
        .deliver(
            &world.lambda,
            RequestType::Update,
            &stack,
            held,
            Some(props),
            HOP_TIMEOUT,
        )
        .await;
    updated.assert_success();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "held for {:?}",
        started.elapsed()
    );
    assert_eq!(updated.data("AttachedWorkspaceIds"), ws.to_string());
    assert!(service.queued_payloads().is_empty(), "nothing handed on");
    assert!(
        world
            .lambda
            .logs()
            .contains("this request switched no workspace, so its answer is not held"),
        "{}",
        world.lambda.logs()
    );
}

/// A hand-over Lambda delivered two minutes after it was queued: the queue is holding events
/// back, and the next hand-over might be dropped, so this one answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_that_arrives_late_answers_instead_of_holding_on() {
    let (world, service) = holding_world(600).await;
    let stack = waiting_stack().await;
    let sink = RecordingSink::start().await;
    let mut props = world.props(0);
    props["WaitUntilReady"] = json!("true");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let physical_id =
        backend_privatelink::resource::testing::OwnershipKey::new(&stack.stack_id, "PrivateLink")
            .physical_resource_id();
    let mut event = world.event(RequestType::Create, &stack, props, None, &sink);
    event["HandOver"] = json!({"Hop": 2, "State": {
        "physicalResourceId": physical_id,
        "data": {"ReadyAfter": "2099-01-01T00:00:00Z", "AttachedWorkspaceIds": "1"},
        "readyAfterMs": now_ms + 600_000,
        "requestedMs": now_ms - 300_000,
        "hosts": [],
        "verifyAttempts": 0,
        "lastVerifiedMs": null,
        "lastProblems": null,
        "handedOverMs": now_ms - 120_000,
    }});
    let started = Instant::now();
    let result = world.lambda.invoke(event, HOP_TIMEOUT).await;
    assert!(
        matches!(&result, InvocationResult::Response(doc) if doc["Status"] == "SUCCESS"),
        "{result:?}\n{}",
        world.lambda.logs()
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let puts: Vec<Value> = sink.requests().iter().map(|r| r.json()).collect();
    assert_eq!(puts.len(), 1, "{}", world.lambda.logs());
    assert_eq!(puts[0]["Status"], "SUCCESS");
    assert_eq!(puts[0]["Data"]["AttachedWorkspaceIds"], "1");
    assert!(service.queued_payloads().is_empty(), "nothing handed on");
    assert!(
        world
            .lambda
            .logs()
            .contains("this hand-over arrived 120 s after it was queued"),
        "{}",
        world.lambda.logs()
    );
}

/// `ServiceTimeout` at the event's top level is read, and preferred to the one among the
/// properties: here it is too short for `WaitUntilReady`, which the properties' alone is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_timeout_at_the_top_level_of_the_event_is_read_and_preferred() {
    let (world, _service) = holding_world(600).await;
    let mut props = world.props(0);
    props["WaitUntilReady"] = json!("true");
    props["ServiceTimeout"] = json!("3600");
    let stack = world.stack("top-level-service-timeout");
    let sink = RecordingSink::start().await;
    let mut event = world.event(RequestType::Create, &stack, props, None, &sink);
    event["ServiceTimeout"] = json!("900");
    let answer = crate::scenario::deliver_event(&world.lambda, &sink, event, TIMEOUT).await;
    answer.assert_failed_with("but ServiceTimeout is 900 s");
    assert_eq!(world.writes(), 0);
    let logs = world.lambda.logs();
    assert!(
        logs.contains(
            "the event's top level and ResourceProperties name different ServiceTimeouts"
        ),
        "{logs}"
    );
}

/// The URL standard drops every tab and newline from a URL before parsing it, so a ResponseURL
/// or an AccountHost holding one would reach the host the rest spells: both are refused from
/// their text, and nothing reaches either host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_or_newline_in_the_response_url_or_account_host_is_refused_before_parsing() {
    let world = World::new().await;
    let sink = RecordingSink::start().await;
    // Parsed, this is the sink's own URL.
    let url = sink.url().replacen("127.0.0.1", "127.0.\t0.1", 1);
    let stack = world.stack("tab-in-response-url");
    let event = cfn_event(
        RequestType::Create,
        &stack.stack_id,
        &stack.logical_id,
        None,
        world.props(0),
        None,
        Some(&url),
    );
    match world.lambda.invoke(event, TIMEOUT).await {
        InvocationResult::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "UnusableResponseURL", "{error_message}");
            assert!(
                error_message.contains("control character U+0009"),
                "{error_message}"
            );
            assert!(
                !error_message.contains("X-Amz-Signature"),
                "{error_message}"
            );
        }
        other => panic!("the ResponseURL must be refused: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());
    assert_eq!(world.writes(), 0);

    // Parsed, this is the emulator's own URL, which tests allow as an accounts host.
    let host = world
        .emulator
        .base_url()
        .replacen("127.0.0.1", "127.0.0\n.1", 1);
    let mut props = world.props(0);
    props["AccountHost"] = json!(host);
    let mut stack = world.stack("newline-in-account-host");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with("AccountHost holds a control character");
    assert!(
        world.emulator.state().request_log().is_empty(),
        "the accounts host got requests: {:?}",
        world.emulator.state().request_log()
    );
}
