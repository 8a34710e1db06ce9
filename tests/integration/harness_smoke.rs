//! Checks that the harness itself behaves like the services it stands in for: moto
//! fixtures as the AWS SDK sees them, the presigned response URL, the Runtime API
//! protocol, the Lambda process environment, and the event shape.
//! It must not test the Lambda's behaviour beyond the one end-to-end check that the real
//! binary starts and answers through the stand-in.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::events::{RequestType, cfn_event, stack_id};
use crate::support::fixtures::{self, Network, NetworkOptions};
use crate::support::lambda::{Lambda, LambdaProcess};
use crate::support::moto::{self, Moto};
use crate::support::runtime::{InvocationResult, RuntimeApi};
use crate::support::sink::RecordingSink;
use crate::support::unique_name;

const REGION: &str = "us-east-1";
/// moto answers in milliseconds; a stuck call should fail the test, not hang it.
const CALL_LIMIT: Duration = Duration::from_secs(30);

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(CALL_LIMIT)
        .build()
}

fn ec2(moto: &Moto) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .timeout_config(timeouts())
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

fn secrets(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .timeout_config(timeouts())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

#[tokio::test]
async fn moto_fixtures_are_what_the_aws_sdk_sees_and_the_response_url_takes_a_bare_put() {
    let moto = Moto::shared();
    let secret_name = unique_name("databricks-sp");
    let (network, secret_arn, (url, sink)) = tokio::join!(
        Network::create(moto, REGION),
        fixtures::secret(
            moto,
            REGION,
            &secret_name,
            r#"{"client_id":"id","client_secret":"s3cr3t"}"#
        ),
        fixtures::response_url(moto),
    );

    let ec2 = ec2(moto);
    let endpoints = ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(&network.rest_vpce_id)
        .vpc_endpoint_ids(&network.relay_vpce_id)
        .send()
        .await
        .unwrap();
    let endpoints = endpoints.vpc_endpoints();
    assert_eq!(endpoints.len(), 2);
    for endpoint in endpoints {
        let id = endpoint.vpc_endpoint_id().unwrap();
        let service = if id == network.rest_vpce_id {
            "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04"
        } else {
            "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf"
        };
        assert_eq!(endpoint.service_name(), Some(service), "{id}");
        assert_eq!(endpoint.vpc_id(), Some(network.vpc_id.as_str()));
        assert_eq!(
            endpoint.vpc_endpoint_type(),
            Some(&aws_sdk_ec2::types::VpcEndpointType::Interface)
        );
        assert_eq!(endpoint.private_dns_enabled(), Some(true));
        assert_eq!(endpoint.subnet_ids(), network.subnet_ids.as_slice());
    }

    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(network.subnet_ids.clone()))
        .send()
        .await
        .unwrap();
    let zones: Vec<_> = subnets
        .subnets()
        .iter()
        .map(|subnet| subnet.availability_zone().unwrap().to_owned())
        .collect();
    assert_eq!(zones.len(), 2);
    assert_ne!(zones[0], zones[1], "subnets must be in different zones");

    let groups = ec2
        .describe_security_groups()
        .group_ids(&network.endpoint_sg_id)
        .send()
        .await
        .unwrap();
    let mut ports: Vec<(i32, i32)> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter(|rule| {
            rule.user_id_group_pairs()
                .iter()
                .any(|pair| pair.group_id() == Some(network.cluster_sg_id.as_str()))
        })
        .map(|rule| (rule.from_port().unwrap(), rule.to_port().unwrap()))
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [(443, 443), (2443, 2443), (6666, 6666), (8443, 8451)]
    );

    let stored = secrets(moto)
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.secret_string(),
        Some(r#"{"client_id":"id","client_secret":"s3cr3t"}"#)
    );

    assert_eq!(sink.fetch().await, None, "nothing was PUT yet");
    // What cfn-response and crhelper send (`docs/cloudformation.md#the-response-put`): an empty
    // content type.
    let body = json!({"Status": "SUCCESS", "PhysicalResourceId": "harness"}).to_string();
    let put = reqwest::Client::new()
        .put(&url)
        .timeout(CALL_LIMIT)
        .header(reqwest::header::CONTENT_TYPE, "")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT answered {}", put.status());
    assert_eq!(
        sink.wait(Duration::from_secs(5)).await,
        Some(json!({"Status": "SUCCESS", "PhysicalResourceId": "harness"}))
    );
}

#[tokio::test]
async fn moto_applies_private_dns_changes_to_endpoints() {
    let moto = Moto::shared();
    let network = Network::create_with(moto, REGION, NetworkOptions { private_dns: false }).await;
    let ec2 = ec2(moto);
    let private_dns = |id: String| {
        let ec2 = ec2.clone();
        async move {
            ec2.describe_vpc_endpoints()
                .vpc_endpoint_ids(id)
                .send()
                .await
                .unwrap()
                .vpc_endpoints()[0]
                .private_dns_enabled()
        }
    };
    assert_eq!(private_dns(network.rest_vpce_id.clone()).await, Some(false));

    ec2.modify_vpc_endpoint()
        .vpc_endpoint_id(&network.rest_vpce_id)
        .private_dns_enabled(true)
        .send()
        .await
        .unwrap();

    assert_eq!(private_dns(network.rest_vpce_id.clone()).await, Some(true));
    assert_eq!(
        private_dns(network.relay_vpce_id.clone()).await,
        Some(false)
    );
}

/// Speaks to the stand-in exactly as the `lambda_runtime` crate does.
#[tokio::test]
async fn runtime_api_follows_the_lambda_runtime_protocol() {
    let runtime = RuntimeApi::start().await;
    let base = format!("http://{}/2018-06-01/runtime", runtime.address());
    let client = reqwest::Client::builder()
        .timeout(CALL_LIMIT)
        .build()
        .unwrap();
    assert_eq!(runtime.first_poll_at(), None);

    let event = json!({"RequestType": "Create"});
    let invocation = runtime.enqueue(event.clone(), Duration::from_secs(3));
    let next = client
        .get(format!("{base}/invocation/next"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    assert!(runtime.first_poll_at().is_some());
    let header = |name: &str| next.headers()[name].to_str().unwrap().to_owned();
    let request_id = header("lambda-runtime-aws-request-id");
    assert_eq!(request_id, invocation.request_id());
    let deadline_ms: u128 = header("lambda-runtime-deadline-ms").parse().unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        (now_ms + 2_000..=now_ms + 3_000).contains(&deadline_ms),
        "deadline {deadline_ms} is not about 3 s after {now_ms}"
    );
    assert_eq!(
        header("lambda-runtime-invoked-function-arn"),
        "arn:aws:lambda:us-east-1:123456789012:function:databricks-backend-privatelink-test"
    );
    assert!(header("lambda-runtime-trace-id").starts_with("Root=1-"));
    assert_eq!(next.json::<Value>().await.unwrap(), event);

    let posted = client
        .post(format!("{base}/invocation/{request_id}/response"))
        .body(r#"{"answer":42}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    assert_eq!(
        invocation.outcome().await,
        InvocationResult::Response(json!({"answer": 42}))
    );

    let mut failing = runtime.enqueue(json!({}), Duration::from_secs(3));
    let next = client
        .get(format!("{base}/invocation/next"))
        .send()
        .await
        .unwrap();
    let failing_id = next.headers()["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    client
        .post(format!("{base}/invocation/{failing_id}/error"))
        .header("lambda-runtime-function-error-type", "unhandled")
        .body(r#"{"errorType":"BadEvent","errorMessage":"not a CloudFormation event"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        failing.outcome_within(Duration::from_secs(3)).await,
        Some(InvocationResult::Error {
            error_type: "BadEvent".into(),
            error_message: "not a CloudFormation event".into(),
        })
    );

    // A second answer to an invocation is refused and kept for the test to see.
    let again = client
        .post(format!("{base}/invocation/{request_id}/response"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(runtime.stray_answers().len(), 1);
    assert_eq!(runtime.stray_answers()[0].request_id, request_id);

    client
        .post(format!("{base}/init/error"))
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .body(r#"{"errorType":"Config","errorMessage":"missing region"}"#)
        .send()
        .await
        .unwrap();
    let init_error = runtime
        .wait_for_init_error(Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(init_error.error_message, "missing region");

    // With nothing queued, a poll waits instead of answering; a poll whose client went
    // away (as when a process is killed) must not take the next event with it.
    let mut abandoned = tokio::net::TcpStream::connect(runtime.address())
        .await
        .unwrap();
    abandoned
        .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: runtime\r\n\r\n")
        .await
        .unwrap();
    let answer =
        tokio::time::timeout(Duration::from_millis(300), abandoned.read(&mut [0; 64])).await;
    assert!(answer.is_err(), "an empty queue must not answer a poll");
    drop(abandoned);
    let mut later = runtime.enqueue(json!({"later": true}), Duration::from_secs(3));
    let next = client
        .get(format!("{base}/invocation/next"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.json::<Value>().await.unwrap(), json!({"later": true}));
    assert_eq!(runtime.polls(), 4);
    // Unanswered invocations stay unanswered.
    assert_eq!(later.outcome_within(Duration::from_millis(200)).await, None);
}

/// A stand-in Lambda in Python checks the process plumbing while the real binary cannot
/// answer yet.
#[tokio::test]
async fn lambda_process_gets_a_clean_lambda_environment_and_its_output_is_captured() {
    const FAKE_LAMBDA: &str = r#"
import json, os, sys, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
print("env " + json.dumps(dict(os.environ), sort_keys=True), flush=True)
print("stderr works", file=sys.stderr, flush=True)
while True:
    with urllib.request.urlopen(api + "next") as next:
        request_id = next.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.load(next)
    print("event " + json.dumps(event), flush=True)
    diagnostic = {"errorType": "NotCloudFormation", "errorMessage": "not a CloudFormation event"}
    urllib.request.urlopen(urllib.request.Request(
        api + request_id + "/error", data=json.dumps(diagnostic).encode(), method="POST"))
"#;
    let moto = Moto::shared();
    let runtime = RuntimeApi::start().await;
    let process = LambdaProcess::builder(&runtime)
        .command(moto::python(), ["-c", FAKE_LAMBDA])
        .env("EXTRA_SETTING", "on")
        .env_remove("AWS_DEFAULT_REGION")
        .spawn();
    let lambda = Lambda { process, runtime };

    let answer = lambda
        .invoke(json!({"hello": "world"}), Duration::from_secs(10))
        .await;
    assert_eq!(
        answer,
        InvocationResult::Error {
            error_type: "NotCloudFormation".into(),
            error_message: "not a CloudFormation event".into(),
        }
    );
    assert!(
        lambda
            .wait_for_log(r#"event {"hello": "world"}"#, Duration::from_secs(5))
            .await
    );
    // stdout and stderr are read by separate tasks: the stderr line may land a moment later.
    assert!(
        lambda
            .wait_for_log("stderr works", Duration::from_secs(5))
            .await
    );
    assert!(
        !lambda
            .wait_for_log("never written", Duration::from_millis(100))
            .await
    );

    let env_line = lambda
        .logs()
        .lines()
        .find_map(|line| line.strip_prefix("env ").map(str::to_owned))
        .unwrap();
    let env: Value = serde_json::from_str(&env_line).unwrap();
    assert_eq!(
        env["AWS_LAMBDA_RUNTIME_API"],
        json!(lambda.runtime.address())
    );
    assert_eq!(env["AWS_ENDPOINT_URL"], json!(moto.endpoint()));
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], json!("256"));
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], json!("$LATEST"));
    assert_eq!(env["AWS_REGION"], json!("us-east-1"));
    assert_eq!(env["EXTRA_SETTING"], json!("on"));
    assert_eq!(env.get("AWS_DEFAULT_REGION"), None, "env_remove");
    assert_eq!(
        env.get("PATH"),
        None,
        "the test environment must not leak in"
    );

    // A dead Lambda is reported at once instead of after the deadline.
    lambda.process.kill();
    assert!(lambda.process.exit_status().is_some());
    let started = Instant::now();
    let answer = lambda.invoke(json!({}), Duration::from_secs(30)).await;
    assert_eq!(answer, InvocationResult::NoAnswer);
    assert!(started.elapsed() < Duration::from_secs(3));

    // A successor polling the same Runtime API gets the next event, not the dead
    // process's stale poll nor the event that was never answered.
    let Lambda { runtime, process } = lambda;
    drop(process);
    let successor = LambdaProcess::builder(&runtime)
        .command(moto::python(), ["-c", FAKE_LAMBDA])
        .spawn();
    let lambda = Lambda {
        process: successor,
        runtime,
    };
    let answer = lambda
        .invoke(json!({"second": "life"}), Duration::from_secs(10))
        .await;
    assert!(
        matches!(answer, InvocationResult::Error { .. }),
        "{answer:?}"
    );
    // Output is captured by other threads: wait for it rather than read it at once.
    assert!(
        lambda
            .wait_for_log(r#"event {"second": "life"}"#, Duration::from_secs(5))
            .await
    );
    assert!(!lambda.logs().contains("event {}"), "{}", lambda.logs());
}

#[tokio::test]
async fn recording_sink_sees_every_put_as_sent() {
    let sink = RecordingSink::start().await;
    sink.fail_next(1, 503);
    let client = reqwest::Client::builder()
        .timeout(CALL_LIMIT)
        .build()
        .unwrap();
    for _ in 0..2 {
        client
            .put(sink.url())
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(r#"{"Status":"FAILED"}"#)
            .send()
            .await
            .unwrap();
    }
    let requests = sink.wait_for(2, Duration::from_secs(3)).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, 503);
    assert_eq!(requests[1].status, 200);
    assert_eq!(requests[1].method, "PUT");
    assert_eq!(requests[1].path_and_query, sink.path_and_query());
    assert!(sink.path_and_query().contains("%3Astack/harness/"));
    assert_eq!(requests[1].header("content-type"), Some(""));
    assert_eq!(requests[1].json(), json!({"Status": "FAILED"}));
}

#[test]
fn cfn_events_deserialize_as_cloudformation_requests_with_stringified_properties() {
    let stack = stack_id("smoke");
    let update = cfn_event(
        RequestType::Update,
        &stack,
        "BackendPrivateLink",
        Some("physical-1"),
        json!({"WorkspaceIds": [1234, 5678], "EnableNetwork": true}),
        Some(json!({"WorkspaceIds": [1234]})),
        Some("https://example.invalid/response"),
    );
    assert_eq!(
        update["ResourceProperties"]["WorkspaceIds"],
        json!(["1234", "5678"])
    );
    assert_eq!(update["ResourceProperties"]["EnableNetwork"], json!("true"));
    let parsed: CloudFormationCustomResourceRequest = serde_json::from_value(update).unwrap();
    let CloudFormationCustomResourceRequest::Update(update) = parsed else {
        panic!("not an Update: {parsed:?}");
    };
    assert_eq!(update.physical_resource_id, "physical-1");
    assert_eq!(update.resource_type, "Custom::DatabricksBackendPrivateLink");
    assert_eq!(update.stack_id, stack);
    assert_eq!(
        update.old_resource_properties["ServiceToken"],
        json!(update.service_token.unwrap())
    );
    assert_ne!(stack_id("smoke"), stack, "stack IDs are unique per call");
}

/// The harness end to end with the real binary: a function error, not a hang, for an event
/// that cannot be answered through CloudFormation.
#[tokio::test]
async fn real_binary_refuses_an_event_that_is_not_from_cloudformation() {
    let lambda = Lambda::start(&[]).await;
    let answer = lambda
        .invoke(json!({"hello": "world"}), Duration::from_secs(10))
        .await;
    let InvocationResult::Error { error_message, .. } = &answer else {
        panic!("expected a function error, got {answer:?}");
    };
    assert!(
        error_message.contains("CloudFormation"),
        "the error should say the event is not a CloudFormation request: {error_message}"
    );
}
