//! The verifier binary through the Lambda Runtime API stand-in, against a DNS server
//! and TCP listeners on loopback: the report it answers, its log line, a refused request, and
//! an answer before the invocation's deadline when a connection hangs; and the function invoking
//! the real verifier through the Lambda Invoke stand-in, in the DNS world of its VPC.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use backend_privatelink::verify::{ConnectResult, DNS_SERVER_VAR, PrivateDns, VerifyReport};

use crate::hold::{HOP_TIMEOUT, VERIFIER, send_held_create, waiting_stack};
use crate::scenario::{Aws, World, WorldOptions};
use crate::support::dns_world::DnsWorld;
use crate::support::fixtures::batch;
use crate::support::lambda::{Lambda, LambdaProcess, VERIFIER_BINARY};
use crate::support::lambda_service::LambdaService;
use crate::support::network::{Accepting, Answer, BlackHole, TestDns, refused_port};
use crate::support::runtime::{InvocationResult, REGION, RuntimeApi};
use crate::support::sink::RecordingSink;

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

/// The function, the real verifier behind the Invoke stand-in, and the DNS world of the
/// fixture's VPC that the verifier asks: every answer follows from moto's VPC and the emulator's
/// account (`docs/verification.md#the-dns-world`), and every address is a loopback stand-in.
struct VerifiedWorld {
    // Dropped in this order: the function, then the verifier, then the world they talk to.
    world: World,
    verifier: Lambda,
    service: LambdaService,
    dns: DnsWorld,
}

async fn verified_world(region: &str, lambda_env: Vec<(String, String)>) -> VerifiedWorld {
    let service = LambdaService::start(HOP_TIMEOUT);
    let mut env = vec![("AWS_ENDPOINT_URL_LAMBDA".to_owned(), service.url())];
    env.extend(lambda_env);
    let aws = Aws::create_in(region, 1, true).await;
    let world = World::on(
        aws,
        WorldOptions {
            lambda_env: env,
            ..Default::default()
        },
    )
    .await;
    let dns = DnsWorld::start(
        world.moto,
        &world.emulator.base_url(),
        region,
        &world.networks[0].vpc_id,
    );
    let verifier = verifier_at(dns.address()).await;
    service.verify_with(verifier.runtime.queue());
    VerifiedWorld {
        world,
        verifier,
        service,
        dns,
    }
}

async fn verifier_at(dns: std::net::SocketAddr) -> Lambda {
    let runtime = RuntimeApi::start().await;
    let process = LambdaProcess::builder(&runtime)
        .binary(VERIFIER_BINARY)
        .env(DNS_SERVER_VAR, dns.to_string())
        .env_remove("AWS_ENDPOINT_URL")
        .spawn();
    Lambda { process, runtime }
}

impl VerifiedWorld {
    /// A workspace in the fixture's subnets, and the properties that switch it with the verifier.
    fn switching_props(&mut self, name: &str) -> (i64, Value) {
        let ws = self.world.seed_workspace_in_fixture(0, name);
        self.dns.settle();
        let mut props = self.world.props(0);
        props["WorkspaceIds"] = json!(ws.to_string());
        props["VerifyFunctionArn"] = json!(VERIFIER);
        (ws, props)
    }

    fn host_of(&self, ws: i64) -> String {
        let deployment = self.world.workspace(ws).deployment_name;
        format!("{deployment}.cloud.databricks.com")
    }
}

const RELAY_PRIVATELINK: &str = "tunnel.privatelink.us-east-1.cloud.databricks.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_switch_passes_the_real_verifier_while_the_workspace_host_is_still_public() {
    let mut v = verified_world(REGION, Vec::new()).await;
    let (ws, props) = v.switching_props("first-switch");
    let host = v.host_of(ws);

    let mut stack = v.world.stack("first-switch");
    let created = v.world.create(&mut stack, props).await;
    created.assert_success();
    assert!(
        v.world.workspace(ws).private_access_settings_id.is_some(),
        "the workspace is switched"
    );
    let report = created.data("VerificationReport");
    assert!(report.starts_with("passed: "), "{report}");
    // Before the switch the workspace's host is on Databricks' public chain, as documented:
    // reported, not refused.
    assert!(
        report.contains(&format!("{host} resolves to public 203.0.113.10")),
        "{report}"
    );
    assert!(
        report.contains("stays public until the switch attaches private access settings"),
        "{report}"
    );
    assert!(
        report.contains("tunnel.us-east-1.cloud.databricks.com resolves to public"),
        "{report}"
    );
    let sent: Value = serde_json::from_str(&v.service.synchronous_payloads()[0]).unwrap();
    let names = sent["names"].as_array().unwrap();
    let relay = names
        .iter()
        .find(|n| n["host"] == RELAY_PRIVATELINK)
        .unwrap();
    assert!(relay.get("expect").is_none(), "required: {relay}");
    assert_eq!(relay["ports"], json!([6666]));
    // Every endpoint address went to the verifier as its loopback stand-in.
    for role in ["restApi", "relay"] {
        for address in sent["endpointAddresses"][role].as_array().unwrap() {
            let ip: std::net::IpAddr = address.as_str().unwrap().parse().unwrap();
            assert!(ip.is_loopback(), "{ip}");
        }
    }
    assert!(v.dns.problems().is_empty(), "{}", v.dns.problems());
    drop(v.verifier);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_dns_servers_keep_the_relays_private_name_public_and_nothing_is_switched() {
    let mut v = verified_world(REGION, Vec::new()).await;
    let (ws, props) = v.switching_props("custom-dns");
    let net = &v.world.networks[0];
    batch(
        v.world.moto,
        REGION,
        vec![json!({"op": "dhcp_dns_servers", "vpc_id": net.vpc_id, "servers": ["10.0.0.53"]})],
    )
    .await;
    v.dns.settle();

    let mut stack = v.world.stack("custom-dns");
    let failed = v.world.create(&mut stack, props).await;
    failed.assert_failed_with(
        "the verification from inside the VPC failed, so no workspace was switched",
    );
    failed.assert_reason_mentions(&format!(
        "{RELAY_PRIVATELINK} resolves to public 203.0.113.10, not an endpoint address"
    ));
    assert!(v.world.workspace(ws).private_access_settings_id.is_none());
    assert!(
        v.world.registrations().is_empty(),
        "what the Create made is removed"
    );
    drop(v.verifier);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_first_switch_finds_the_workspace_host_private_after_ready_after() {
    let mut v = verified_world(
        REGION,
        vec![("TEST_ONLY_PROPAGATION_SECONDS".into(), "5".into())],
    )
    .await;
    v.service.deliver_to(v.world.lambda.runtime.queue());
    let (ws, mut props) = v.switching_props("held-first-switch");
    props["WaitUntilReady"] = json!("true");
    let host = v.host_of(ws);
    let stack = waiting_stack().await;
    let sink = RecordingSink::start().await;
    send_held_create(&v.world, &stack, props, &sink).await;
    assert!(v.world.workspace(ws).private_access_settings_id.is_some());

    let puts = sink.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(puts.len(), 1, "{}", v.world.lambda.logs());
    let doc = puts[0].json();
    assert_eq!(doc["Status"], "SUCCESS", "{doc:#}");
    let report = doc["Data"]["VerificationReport"]
        .as_str()
        .unwrap_or_default();
    assert!(report.starts_with("passed after ReadyAfter"), "{report}");
    assert!(
        report.contains(&format!(
            "workspace hosts resolve to the REST API endpoint: {host}"
        )),
        "{report}"
    );
    // Before the switch the same host was public, as the first verification reported.
    assert!(
        v.world
            .lambda
            .logs()
            .contains(&format!("{host} resolves to public 203.0.113.10")),
        "{}",
        v.world.lambda.logs()
    );
    // The final verification required the host.
    let last: Value =
        serde_json::from_str(v.service.synchronous_payloads().last().unwrap()).unwrap();
    let required = last["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["host"] == host.as_str())
        .unwrap();
    assert!(required.get("expect").is_none(), "{required}");
    drop(v.verifier);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_us_west_2_stack_names_its_relay_without_a_region_label() {
    let v = verified_world("us-west-2", Vec::new()).await;
    let mut props = v.world.props(0);
    props["Region"] = json!("us-west-2");
    let mut stack = v.world.stack("oregon");
    let created = v.world.create(&mut stack, props).await;
    created.assert_success();
    assert_eq!(created.data("RelayHostname"), "tunnel.cloud.databricks.com");
    assert_eq!(
        created.data("RelayPrivateLinkHostname"),
        "tunnel.privatelink.cloud.databricks.com"
    );
    drop(v.verifier);
}
