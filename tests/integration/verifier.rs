//! The verifier binary through the Lambda Runtime API stand-in, against a DNS server
//! and TCP listeners on loopback: the report it answers, its log line, a refused request, and
//! an answer before the invocation's deadline when a connection hangs; and the function invoking
//! the real verifier through the Lambda Invoke stand-in.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use backend_privatelink::verify::{ConnectResult, DNS_SERVER_VAR, PrivateDns, VerifyReport};

use crate::scenario::{World, WorldOptions};
use crate::support::lambda::{Lambda, LambdaProcess, VERIFIER_BINARY};
use crate::support::lambda_service::LambdaService;
use crate::support::network::{Accepting, Answer, BlackHole, TestDns, refused_port};
use crate::support::runtime::{InvocationResult, RuntimeApi};

const REST_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const TUNNEL: &str = "tunnel.us-east-1.cloud.databricks.com";
const WORKSPACE: &str = "dbc-1234abcd-5678.cloud.databricks.com";

async fn verifier(dns: &TestDns) -> Lambda {
    let runtime = RuntimeApi::start().await;
    let process = LambdaProcess::builder(&runtime)
        .binary(VERIFIER_BINARY)
        .env(DNS_SERVER_VAR, dns.address().to_string())
        // The verifier uses no AWS API: no moto, and no endpoint to reach.
        .env_remove("AWS_ENDPOINT_URL")
        .spawn();
    Lambda { process, runtime }
}

fn request(rest_port: u16, relay_port: u16, connect_timeout_ms: u64) -> Value {
    json!({
        "names": [
            {"host": TUNNEL, "endpoint": "relay", "ports": [relay_port]},
            {"host": WORKSPACE, "endpoint": "restApi", "ports": [rest_port]}
        ],
        "endpointAddresses": {"restApi": [REST_IP.to_string()], "relay": [RELAY_IP.to_string()]},
        "connectTimeoutMs": connect_timeout_ms
    })
}

fn report_of(result: InvocationResult) -> VerifyReport {
    let InvocationResult::Response(body) = result else {
        panic!("the verifier did not answer with a report: {result:?}");
    };
    serde_json::from_value(body.clone()).unwrap_or_else(|error| panic!("{error}: {body}"))
}

#[tokio::test]
async fn verifier_binary_reports_public_dns_and_a_refused_relay_port_and_refuses_bad_requests() {
    // The relay name resolves privately but its port refuses; the workspace host resolves to a
    // public address.
    let dns = TestDns::start(
        "cloud.databricks.com.",
        &[
            (TUNNEL, Answer::A(RELAY_IP)),
            (WORKSPACE, Answer::A(Ipv4Addr::new(52, 1, 2, 4))),
        ],
    )
    .await;
    let rest = Accepting::start(REST_IP).await;
    let relay_port = refused_port(RELAY_IP).await;
    let lambda = verifier(&dns).await;

    let report = report_of(
        lambda
            .invoke(
                request(rest.port, relay_port, 2_000),
                Duration::from_secs(10),
            )
            .await,
    );
    assert!(!report.passed);
    assert_eq!(report.names[0].private_dns, PrivateDns::InEffect);
    assert_eq!(
        report.names[0].connections[0].result,
        ConnectResult::Refused
    );
    assert_eq!(report.names[1].private_dns, PrivateDns::NotInEffect);
    assert_eq!(
        report.endpoint_addresses[0].connections[0].result,
        ConnectResult::Connected
    );
    let lines = report.summary();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("refused"), "{}", lines[0]);
    assert!(
        lines[1].contains("private DNS is not in effect"),
        "{}",
        lines[1]
    );
    assert!(
        lambda
            .wait_for_log("verification failed", Duration::from_secs(5))
            .await
    );
    assert!(lambda.logs().contains(&format!(
        "{WORKSPACE} resolves to public 52.1.2.4, not an endpoint address"
    )));

    // A request the caller built wrong fails the invocation and names the problem; the
    // verifier keeps serving.
    let mut bad = request(rest.port, relay_port, 2_000);
    bad["names"][0]["ports"] = json!([]);
    match lambda.invoke(bad, Duration::from_secs(10)).await {
        InvocationResult::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "InvalidVerifyRequest");
            assert!(error_message.contains("0 ports"), "{error_message}");
        }
        other => panic!("a bad request was not refused: {other:?}"),
    }
    let again = report_of(
        lambda
            .invoke(
                request(rest.port, relay_port, 2_000),
                Duration::from_secs(10),
            )
            .await,
    );
    assert_eq!(again.names.len(), 2);
}

#[tokio::test]
async fn verifier_binary_answers_before_its_deadline_when_a_connection_hangs() {
    let dns = TestDns::start(
        "cloud.databricks.com.",
        &[
            (TUNNEL, Answer::A(RELAY_IP)),
            (WORKSPACE, Answer::A(REST_IP)),
        ],
    )
    .await;
    let rest = Accepting::start(REST_IP).await;
    let relay = BlackHole::start(RELAY_IP).await;
    let lambda = verifier(&dns).await;

    // A connection timeout far beyond the invocation's 3 s: only the deadline can end it.
    let timeout = Duration::from_secs(3);
    let mut invocation = lambda
        .runtime
        .enqueue(request(rest.port, relay.port, 20_000), timeout);
    let queued = Instant::now();
    let result = invocation
        .outcome_within(timeout + Duration::from_secs(2))
        .await
        .unwrap_or(InvocationResult::NoAnswer);
    let answered = queued.elapsed();

    let report = report_of(result);
    assert!(answered < timeout, "answered after {answered:?}");
    assert!(report.deadline_reached);
    assert!(!report.passed);
    assert_eq!(
        report.names[0].connections[0].result,
        ConnectResult::DeadlineReached
    );
    assert!(report.names[1].passed(), "{:#?}", report.names[1]);
    assert!(report.summary()[0].contains("had no answer when the verifier's deadline came"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_switches_nothing_when_the_real_verifier_sees_public_dns() {
    let dns = TestDns::start(
        "cloud.databricks.com.",
        &[(TUNNEL, Answer::A(Ipv4Addr::new(52, 1, 2, 3)))],
    )
    .await;
    let verifier = verifier(&dns).await;
    let service = LambdaService::start(Duration::from_secs(10));
    service.verify_with(verifier.runtime.queue());
    let world = World::with(WorldOptions {
        lambda_env: vec![("AWS_ENDPOINT_URL_LAMBDA".into(), service.url())],
        ..Default::default()
    })
    .await;
    let ws = world.seed_workspace_in_fixture(0, "verified-for-real");
    let mut props = world.props(0);
    props["WorkspaceIds"] = json!(ws.to_string());
    props["VerifyFunctionArn"] = json!("arn:aws:lambda:us-east-1:123456789012:function:verifier");

    let mut stack = world.stack("real-verifier");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with(
        "the verification from inside the VPC failed, so no workspace was switched",
    );
    failed.assert_reason_mentions(&format!("{TUNNEL} resolves to public 52.1.2.3"));
    assert!(world.workspace(ws).private_access_settings_id.is_none());
    assert!(
        world.registrations().is_empty(),
        "what the Create made is removed"
    );
    let sent: Value = serde_json::from_str(&service.synchronous_payloads()[0]).unwrap();
    let ports: Vec<&Value> = sent["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["host"] == TUNNEL)
        .map(|n| &n["ports"])
        .collect();
    assert_eq!(ports, [&json!([6666])], "{sent:#}");
}
