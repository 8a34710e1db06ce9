//! Hostile input and hostile servers, through the real binary: event text that `serde_json`
//! cannot hold as a value, events of a megabyte, and an accounts host that echoes the
//! credentials back or asks for absurd waits. Every event that names a ResponseURL is answered
//! there exactly once; nothing secret is quoted; nothing panics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::abuse::{Secured, audit_logs, through_sink};
use crate::scenario::TIMEOUT;
use crate::support::events::{RequestType, cfn_event, stack_id};
use crate::support::lambda::Lambda;
use crate::support::runtime::InvocationResult;
use crate::support::server::BackgroundServer;
use crate::support::sink::RecordingSink;

/// CloudFormation refuses larger response bodies.
const MAX_RESPONSE_BYTES: usize = 4096;
/// The function's bound on one log line.
const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// An asynchronous invocation's payload limit.
const MEGABYTE: usize = 1024 * 1024;

fn event_text(request_type: &str, response_url: &str, properties: &str) -> String {
    let ids = json!({
        "RequestType": request_type,
        "ResponseURL": response_url,
        "StackId": stack_id("hostile"),
        "RequestId": crate::support::uuid(),
        "LogicalResourceId": "PrivateLink",
        "PhysicalResourceId": "hostile-PrivateLink",
        "ResourceType": "Custom::DatabricksBackendPrivateLink",
    })
    .to_string();
    // The properties go in as text: some of them are not something a `Value` can hold.
    format!(
        "{{\"ResourceProperties\":{properties},{}",
        ids.strip_prefix('{').unwrap_or_default()
    )
}

/// Sends `text` from "CloudFormation" and returns the one document PUT to its ResponseURL.
async fn answered_once(lambda: &Lambda, request_type: &str, properties: &str) -> Value {
    let sink = RecordingSink::start().await;
    let text = event_text(request_type, &sink.url(), properties);
    let result = lambda.invoke_text(text, TIMEOUT).await;
    assert!(
        matches!(result, InvocationResult::Response(_)),
        "answered at the ResponseURL, the invocation succeeds (no Lambda retry): {result:?}\n{}",
        lambda.logs()
    );
    let puts = sink.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.requests().len(), 1, "exactly one PUT");
    assert!(puts[0].body.len() <= MAX_RESPONSE_BYTES);
    puts[0].json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_a_value_cannot_hold_is_answered_once_at_its_response_url() {
    let lambda = Lambda::start(&[]).await;
    let deep = format!("{}1{}", "[".repeat(130), "]".repeat(130));
    for (name, poison, needle) in [
        ("nested 130 deep", deep.as_str(), "recursion limit exceeded"),
        ("lone surrogate", r#""\ud800""#, "hex escape"),
        ("lone surrogate mid-string", r#""a\udc00b""#, "surrogate"),
        ("number beyond f64", "1e400", "number out of range"),
    ] {
        let properties = format!(r#"{{"AccountId":"x","Poison":{poison}}}"#);
        let created = answered_once(&lambda, "Create", &properties).await;
        assert_eq!(created["Status"], "FAILED", "{name}: {created:#}");
        let reason = created["Reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(needle) && reason.contains("nested at most 127 levels"),
            "{name}: {reason}"
        );
        assert_eq!(created["PhysicalResourceId"], "hostile-PrivateLink");

        // The rollback Delete carries the same text: nothing was created, so it succeeds.
        let deleted = answered_once(&lambda, "Delete", &properties).await;
        assert_eq!(deleted["Status"], "SUCCESS", "{name}: {deleted:#}");
        assert!(
            deleted["Reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("nothing to delete"),
            "{deleted:#}"
        );
    }
    // Without a ResponseURL (a pipeline step) the invocation itself fails, once.
    let text = event_text("Create", "", r#"{"Poison":1e400}"#);
    match lambda.invoke_text(text, TIMEOUT).await {
        InvocationResult::Error { error_type, .. } => assert_eq!(error_type, "InvalidEvent"),
        other => panic!("a direct invocation that cannot be read must fail: {other:?}"),
    }
    assert_eq!(
        lambda.process.exit_status(),
        None,
        "the process keeps serving"
    );
}

/// Peak resident memory of a live process, in bytes.
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    kib * 1024
}

/// Events of a megabyte in every shape that used to cost one problem (and one allocation) per
/// entry. The limits are judged on the raw JSON, so each is refused at once, in bounded memory,
/// with a reason that names the limit and log lines that stay short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_events_are_refused_at_once_in_bounded_memory() {
    let lambda = Lambda::start(&[]).await;
    let comma_flood = "x,".repeat(MEGABYTE / 2 - 1024);
    let ids: Vec<String> = vec!["1".to_owned(); MEGABYTE / 5];
    let unknown: serde_json::Map<String, Value> = (0..MEGABYTE / 24)
        .map(|i| (format!("Unknown{i:08}"), json!("x")))
        .collect();
    let subnets: Vec<String> = (0..MEGABYTE / 20)
        .map(|i| format!("subnet-{i:08x}"))
        .collect();
    let shapes = [
        (
            "comma-separated WorkspaceIds",
            json!({"WorkspaceIds": comma_flood}),
            "WorkspaceIds lists",
        ),
        (
            "WorkspaceIds list",
            json!({"WorkspaceIds": ids}),
            "of them in property WorkspaceIds; a request may hold at most 2000",
        ),
        (
            "unknown property names",
            Value::Object(unknown),
            "a request may hold at most 2000",
        ),
        (
            "one long AccountId",
            json!({"AccountId": "a".repeat(MEGABYTE - 1024)}),
            "values may be at most 4096 bytes",
        ),
        (
            "Network subnets",
            json!({"Network": {"SubnetIds": subnets, "SecurityGroupIds": ["sg-0a1b2c3d"]}}),
            "of them in property Network",
        ),
    ];
    let baseline = peak_rss(lambda.process.pid());
    let mut slowest = Duration::ZERO;
    for (name, properties, needle) in shapes {
        let properties = properties.to_string();
        assert!(
            (MEGABYTE * 3 / 4..=MEGABYTE).contains(&(properties.len() + 400)),
            "{name}: {} bytes",
            properties.len()
        );
        let started = Instant::now();
        let doc = answered_once(&lambda, "Create", &properties).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(doc["Status"], "FAILED", "{name}");
        let reason = doc["Reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{name}: {reason}");
    }
    let peak = peak_rss(lambda.process.pid());
    // A debug build; the release figure is in the README's benchmark table.
    assert!(
        slowest < Duration::from_secs(3),
        "slowest answer {slowest:?}"
    );
    assert!(
        peak < 48 * MEGABYTE,
        "peak RSS {} MB (baseline {} MB)",
        peak / MEGABYTE,
        baseline / MEGABYTE
    );
    let logs = lambda.logs();
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest < MAX_LOG_LINE_BYTES,
        "a log line of {longest} bytes"
    );
    eprintln!(
        "hostile: 1 MB events answered in at most {slowest:?}; peak RSS {} MB from {} MB; \
         longest log line {longest} bytes",
        peak / MEGABYTE,
        baseline / MEGABYTE
    );
}

/// How the hostile accounts host answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hostility {
    /// The token endpoint refuses, quoting the request's Authorization header and the secret.
    EchoCredentials,
    /// A token whose `token_type` is the client secret.
    SecretAsTokenType,
    /// A token, then every API call refused with its bearer token quoted.
    EchoBearer,
    /// A token, then 429 with a `Retry-After` of u64::MAX seconds.
    EndlessRetryAfter,
    /// A token that lives u64::MAX seconds, then every API call refused.
    EndlessToken,
}

#[derive(Clone)]
struct Hostile {
    mode: Arc<Mutex<Hostility>>,
    secret: String,
}

/// An access token as Databricks issues them: a JSON Web Token.
const HOSTILE_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJob3N0aWxlIn0.c2lnbmF0dXJlLWhvc3RpbGU";

async fn hostile_host(State(host): State<Hostile>, uri: Uri, headers: HeaderMap) -> Response {
    let mode = *host.mode.lock().unwrap();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let token = |extra: Value| {
        let mut answer = json!({"access_token": HOSTILE_TOKEN, "token_type": "Bearer"});
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            answer[key] = value;
        }
        (StatusCode::OK, axum::Json(answer)).into_response()
    };
    let is_token = uri.path().starts_with("/oidc/");
    match (mode, is_token) {
        (Hostility::EchoCredentials, true) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_request",
                "error_description": format!("cannot use {authorization} (secret {})", host.secret),
            })),
        )
            .into_response(),
        (Hostility::SecretAsTokenType, true) => token(json!({"token_type": host.secret})),
        (Hostility::EndlessToken, true) => token(json!({"expires_in": u64::MAX})),
        (_, true) => token(json!({})),
        (Hostility::EndlessRetryAfter, false) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", u64::MAX.to_string())],
            axum::Json(json!({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "later"})),
        )
            .into_response(),
        (_, false) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error_code": "INVALID_PARAMETER_VALUE",
                "message": format!("refused {authorization}; token {HOSTILE_TOKEN}"),
            })),
        )
            .into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_accounts_host_gets_no_secret_quoted_and_no_panic() {
    let world = Secured::new().await;
    let mode = Arc::new(Mutex::new(Hostility::EchoCredentials));
    let router = Router::new().fallback(hostile_host).with_state(Hostile {
        mode: Arc::clone(&mode),
        secret: world.client_secret.clone(),
    });
    let server = BackgroundServer::start("hostile-accounts-host", router).unwrap();
    let host = format!("http://{}", server.address());
    let lambda = Lambda::start(&[("DATABRICKS_HOST", host.as_str()), ("RUST_LOG", "trace")]).await;

    let mut signatures = Vec::new();
    let mut documents = Vec::new();
    for (hostility, needle) in [
        (Hostility::EchoCredentials, "invalid_request"),
        (
            Hostility::SecretAsTokenType,
            "expected token_type \"Bearer\"",
        ),
        (Hostility::EchoBearer, "INVALID_PARAMETER_VALUE"),
        (
            Hostility::EndlessRetryAfter,
            "(Retry-After), longer than the",
        ),
        (Hostility::EndlessToken, "INVALID_PARAMETER_VALUE"),
    ] {
        *mode.lock().unwrap() = hostility;
        let stack = stack_id(&format!("hostile-{hostility:?}").to_lowercase());
        let doc = through_sink(
            &lambda,
            RequestType::Create,
            (&stack, None),
            world.props(),
            &mut signatures,
        )
        .await;
        assert_eq!(doc["Status"], "FAILED", "{hostility:?}: {doc:#}");
        let reason = doc["Reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{hostility:?}: {reason}");
        assert!(
            !reason.contains("internal error"),
            "{hostility:?}: {reason}"
        );
        documents.push(doc);

        // A pipeline step reads the same reason as the invocation's error.
        let direct = cfn_event(
            RequestType::Create,
            &stack,
            "PrivateLink",
            None,
            world.props(),
            None,
            None,
        );
        match lambda.invoke(direct, TIMEOUT).await {
            InvocationResult::Error { error_message, .. } => {
                documents.push(json!({"direct": error_message}));
            }
            other => panic!("{hostility:?}: a direct Create must fail: {other:?}"),
        }
    }
    assert_eq!(
        lambda.process.exit_status(),
        None,
        "the process keeps serving"
    );

    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        crate::abuse::CLIENT_ID,
        world.client_secret
    ));
    let mut secrets = vec![world.client_secret.clone(), HOSTILE_TOKEN.to_owned(), basic];
    secrets.extend(signatures);
    for doc in &documents {
        let text = doc.to_string();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "quoted a secret: {doc:#}");
        }
    }
    let logs = lambda.logs();
    // No line carries a secret, a bearer token or a presigned query string.
    audit_logs("hostile-host Lambda", &logs, &secrets);
    drop(server);
}
