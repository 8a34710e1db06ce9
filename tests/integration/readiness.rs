//! The VPC checked from the AWS APIs before a workspace is switched, through the real binary and
//! moto: a VPC with DNS resolution off, or an endpoint security group that does not admit the
//! cluster security group on the relay port, switches nothing and names what to change; the same
//! VPC put right switches.

use std::time::Duration;

use serde_json::{Value, json};

use crate::scenario::World;
use crate::support::events::RequestType;
use crate::support::fixtures::batch;

fn with_workspace(mut props: Value, id: i64) -> Value {
    props["WorkspaceIds"] = json!([id.to_string()]);
    props
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpc_that_cannot_carry_the_traffic_switches_nothing_and_one_put_right_switches() {
    let world = World::new().await;
    let net = world.networks[0].clone();
    // A workspace whose clusters run in the fixture's real subnets and cluster security group.
    let ws = world.seed_workspace_in_fixture(0, "ready");
    let props = with_workspace(world.props(0), ws);
    let set_dns_support = |on: bool| json!({"op": "vpc_attribute", "vpc_id": net.vpc_id, "name": "EnableDnsSupport", "value": on});

    batch(world.moto, &net.region, vec![set_dns_support(false)]).await;
    let mut stack = world.stack("dns-off");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(&format!(
        "VPC {} has DNS resolution (enableDnsSupport) turned off",
        net.vpc_id
    ));
    assert!(
        failed.reason().contains("No workspace was switched"),
        "{}",
        failed.reason()
    );
    assert_eq!(
        world.writes(),
        0,
        "nothing is written when the VPC is refused"
    );
    assert!(world.workspace(ws).private_access_settings_id.is_none());

    batch(
        world.moto,
        &net.region,
        vec![
            set_dns_support(true),
            json!({"op": "revoke_ingress", "group_id": net.endpoint_sg_id,
                   "source_group_id": net.cluster_sg_id, "ports": [[6666, 6666], [2443, 2443]]}),
        ],
    )
    .await;
    let mut stack = world.stack("relay-closed");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(&format!(
        "the SCC relay endpoint {}'s security groups ({}) do not admit workspace {ws}'s cluster security groups ({})",
        net.relay_vpce_id, net.endpoint_sg_id, net.cluster_sg_id
    ));
    assert!(
        failed.reason().contains(&format!(
            "add an inbound rule for TCP 6666 from {} to {}",
            net.cluster_sg_id, net.endpoint_sg_id
        )),
        "{}",
        failed.reason()
    );
    assert!(
        !failed.reason().contains("REST API endpoint"),
        "443 is still open: {}",
        failed.reason()
    );
    assert_eq!(world.writes(), 0);
    assert!(world.workspace(ws).private_access_settings_id.is_none());

    batch(
        world.moto,
        &net.region,
        vec![
            json!({"op": "endpoint_ingress", "group_id": net.endpoint_sg_id,
                    "source_group_id": net.cluster_sg_id, "ports": [[6666, 6666]]}),
        ],
    )
    .await;
    let mut stack = world.stack("ready");
    let created = world.create(&mut stack, props).await;
    created.assert_success();
    assert_eq!(created.data("AttachedWorkspaceIds"), ws.to_string());
    assert_eq!(
        world.workspace(ws).private_access_settings_id.as_deref(),
        Some(created.data("PrivateAccessSettingsId"))
    );
    assert!(
        !world.lambda.logs().contains("may not let clusters reach"),
        "a VPC that is all right gives no warning"
    );
}

/// A Lambda Invoke stand-in on loopback: answers every invocation with the status and body set
/// last, after the delay set last, and keeps the request bodies. It serves on a task of the
/// test's runtime, so it stops when the test ends.
#[derive(Clone, Default)]
struct InvokeStandIn {
    answer: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    delay: std::sync::Arc<std::sync::Mutex<Duration>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl InvokeStandIn {
    async fn start(&self) -> String {
        let this = self.clone();
        let app = axum::Router::new().route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(move |body: String| {
                let this = this.clone();
                async move {
                    this.requests.lock().unwrap().push(body);
                    let delay = *this.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    let (status, text) = this.answer.lock().unwrap().clone();
                    let kind = if status == 404 {
                        "ResourceNotFoundException"
                    } else {
                        ""
                    };
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("x-amzn-errortype", kind)],
                        text,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    fn answer(&self, status: u16, body: Value) {
        *self.answer.lock().unwrap() = (status, body.to_string());
    }

    fn answer_after(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
}

fn report(passed: bool) -> Value {
    let result = if passed { "connected" } else { "refused" };
    let connection = json!({"address": "10.0.0.10", "port": 6666, "result": result, "ms": 3});
    json!({
        "passed": passed, "elapsedMs": 40, "deadlineReached": false, "names": [],
        "endpointAddresses": [{"endpoint": "relay", "address": "10.0.0.10", "connections": [connection]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_decides_the_switch_and_a_missing_one_switches_nothing() {
    let stand_in = InvokeStandIn::default();
    let url = stand_in.start().await;
    let world = World::with(crate::scenario::WorldOptions {
        lambda_env: vec![("AWS_ENDPOINT_URL_LAMBDA".into(), url)],
        ..Default::default()
    })
    .await;
    let ws = world.seed_workspace_in_fixture(0, "verified");
    let mut props = with_workspace(world.props(0), ws);
    props["VerifyFunctionArn"] = json!("arn:aws:lambda:us-east-1:123456789012:function:verifier");

    stand_in.answer(
        404,
        json!({"Type": "User", "Message": "Function not found"}),
    );
    let mut stack = world.stack("verifier-missing");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with("the verifier function arn:aws:lambda:us-east-1:123456789012:function:verifier does not exist");
    assert!(world.workspace(ws).private_access_settings_id.is_none());

    stand_in.answer(200, report(false));
    let mut stack = world.stack("verifier-fails");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(
        "the verification from inside the VPC failed, so no workspace was switched",
    );
    assert!(failed.reason().contains("10.0.0.10"), "{}", failed.reason());
    assert!(world.workspace(ws).private_access_settings_id.is_none());
    let sent = stand_in.requests.lock().unwrap().last().cloned().unwrap();
    assert!(
        sent.contains("tunnel.us-east-1.cloud.databricks.com"),
        "{sent}"
    );

    stand_in.answer(200, report(true));
    let mut stack = world.stack("verifier-passes");
    let created = world.create(&mut stack, props).await;
    world.assert_verified_and_switched(&created, ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_that_does_not_answer_in_time_switches_nothing() {
    // Long enough for the checks, registrations and networks before the switch against moto and
    // the emulator (the verification ends 5 s and the handler 3 s before the deadline); short
    // enough to keep the test quick.
    const TIMEOUT: Duration = Duration::from_secs(20);
    let stand_in = InvokeStandIn::default();
    stand_in.answer(200, report(true));
    stand_in.answer_after(TIMEOUT * 4);
    let url = stand_in.start().await;
    let world = World::with(crate::scenario::WorldOptions {
        lambda_env: vec![("AWS_ENDPOINT_URL_LAMBDA".into(), url)],
        ..Default::default()
    })
    .await;
    let ws = world.seed_workspace_in_fixture(0, "slow-verifier");
    let mut props = with_workspace(world.props(0), ws);
    props["VerifyFunctionArn"] = json!("arn:aws:lambda:us-east-1:123456789012:function:verifier");

    let stack = world.stack("verifier-slow");
    let failed = world
        .deliver(
            &world.lambda,
            RequestType::Create,
            &stack,
            props,
            None,
            TIMEOUT,
        )
        .await;
    failed.assert_failed_with(
        "did not answer before this invocation's deadline, so no workspace was switched",
    );
    if let Err(problem) = failed.check_answered_in_time() {
        panic!("{problem}");
    }
    assert_eq!(
        stand_in.requests.lock().unwrap().len(),
        1,
        "the verifier was asked once"
    );
    assert!(world.workspace(ws).private_access_settings_id.is_none());
    // The time kept back from the verifier lets the Create remove what it made.
    assert_eq!(world.registered_vpces(), Vec::<String>::new());
    assert!(world.access_settings().is_empty(), "{:?}", world.account());
    let own = world.workspace(ws).network_id;
    let made: Vec<_> = world
        .networks()
        .into_iter()
        .filter(|n| Some(&n.network_id) != own.as_ref())
        .collect();
    assert!(made.is_empty(), "{made:?}");
}
