//! Injected faults, global latency, rate limiting, the request log and shutdown.

use std::time::{Duration, Instant};

use emulator::{EmulatorConfig, FaultBody, FaultKind, FaultSpec, LostAnswer};
use serde_json::json;

use crate::support::Harness;

#[tokio::test]
async fn status_faults_use_the_requested_body_shape_then_disarm() {
    let h = Harness::start().await;
    let state = h.emulator.state();
    state.inject_fault(
        FaultSpec::new(FaultKind::Status {
            status: 503,
            retry_after: Some(7),
            body: FaultBody::Json {
                error_code: "TEMPORARILY_UNAVAILABLE".into(),
                message: "try later".into(),
            },
        })
        .method("GET")
        .path_contains("/networks")
        .times(2),
    );
    // A different path is not affected.
    assert_eq!(h.get("/vpc-endpoints").await.status, 200);
    for _ in 0..2 {
        let reply = h.get("/networks").await;
        assert_eq!(
            reply.expect_error(503, "TEMPORARILY_UNAVAILABLE"),
            "try later"
        );
        assert_eq!(reply.headers["retry-after"], "7");
    }
    assert_eq!(h.get("/networks").await.status, 200);

    let shapes = [
        (
            FaultBody::PlainText("MALFORMED_REQUEST: nope".into()),
            "text/plain",
            "MALFORMED_REQUEST: nope",
        ),
        (
            FaultBody::Html("<html><pre>gateway</pre></html>".into()),
            "text/html",
            "<html><pre>gateway</pre></html>",
        ),
        (FaultBody::Empty, "", ""),
    ];
    for (body, content_type, text) in shapes {
        state.inject_fault(FaultSpec::new(FaultKind::Status {
            status: 409,
            retry_after: None,
            body,
        }));
        let reply = h.delete("/networks/anything").await;
        assert_eq!(reply.status, 409);
        assert!(
            reply.content_type().starts_with(content_type),
            "{}",
            reply.content_type()
        );
        assert_eq!(reply.text, text);
    }
}

#[tokio::test]
async fn token_requests_can_be_faulted_too() {
    let h = Harness::start().await;
    h.emulator.state().inject_fault(
        FaultSpec::new(FaultKind::status_json(
            429,
            "REQUEST_LIMIT_EXCEEDED",
            "slow down",
        ))
        .path_contains("/oidc/"),
    );
    let reply = h
        .http
        .post(h.url(&format!("/oidc/accounts/{}/v1/token", h.account)))
        .basic_auth("emulator-client", Some("emulator-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 429);
    assert!(!h.fetch_token(&h.account).await.is_empty());
}

#[tokio::test]
async fn drop_closes_the_connection_without_a_response() {
    let h = Harness::start().await;
    h.emulator
        .state()
        .inject_fault(FaultSpec::new(FaultKind::Drop).method("POST"));
    let error = h
        .http
        .post(h.url(&format!("/api/2.0/accounts/{}/networks", h.account)))
        .bearer_auth(&h.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout() && !error.is_status(), "{error:?}");
    assert_eq!(h.get("/networks").await.status, 200);
    let log = h.emulator.state().request_log();
    let dropped = log
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/networks"))
        .unwrap();
    assert_eq!(dropped.status, 0);
}

#[tokio::test]
async fn a_lost_answer_still_carries_the_request_out() {
    let h = Harness::start().await;
    let state = h.emulator.state();
    let pas = |name: &str| json!({"private_access_settings_name": name, "region": "us-east-1"});
    state.inject_fault(
        FaultSpec::new(FaultKind::LoseAnswer(LostAnswer::Drop))
            .method("POST")
            .path_contains("/private-access-settings"),
    );
    let error = h
        .http
        .post(h.url(&format!(
            "/api/2.0/accounts/{}/private-access-settings",
            h.account
        )))
        .bearer_auth(&h.token)
        .json(&pas("dropped-answer"))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_status(), "{error:?}");

    state.inject_fault(
        FaultSpec::new(FaultKind::LoseAnswer(LostAnswer::GatewayTimeout))
            .method("POST")
            .path_contains("/private-access-settings"),
    );
    let reply = h
        .post("/private-access-settings", pas("gateway-timeout"))
        .await;
    assert_eq!(reply.status, 504);
    assert!(
        reply.text.contains("504 Gateway Time-out"),
        "{}",
        reply.text
    );

    let names: Vec<String> = h
        .get("/private-access-settings")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["private_access_settings_name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        ["dropped-answer", "gateway-timeout"],
        "both were carried out"
    );
    let statuses: Vec<u16> = state
        .request_log()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/private-access-settings"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [0, 504]);
}

#[tokio::test]
async fn hang_outlasts_the_client_timeout_and_shutdown_still_completes() {
    let h = Harness::start().await;
    h.emulator
        .state()
        .inject_fault(FaultSpec::new(FaultKind::Hang).path_contains("/workspaces"));
    let started = Instant::now();
    let error = h
        .http
        .get(h.url(&format!("/api/2.0/accounts/{}/workspaces", h.account)))
        .bearer_auth(&h.token)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let address = h.emulator.address();
    tokio::time::timeout(Duration::from_secs(5), h.emulator.shutdown())
        .await
        .expect("shutdown must not wait for the hanging request");
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn latency_delays_then_answers_normally() {
    let h = Harness::start().await;
    h.emulator.state().inject_fault(
        FaultSpec::new(FaultKind::Latency(Duration::from_millis(250))).path_contains("/networks"),
    );
    let started = Instant::now();
    assert_eq!(h.get("/networks").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));

    h.emulator
        .state()
        .set_latency_all(Some(Duration::from_millis(150)));
    let started = Instant::now();
    assert_eq!(h.get("/vpc-endpoints").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let h = Harness::start_with(EmulatorConfig {
        rate_limit_per_sec: Some(3),
        ..Default::default()
    })
    .await;
    // The token request used one of the three.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(h.get("/networks").await);
    }
    assert_eq!(statuses[0].status, 200);
    assert_eq!(statuses[1].status, 200);
    let limited = &statuses[2];
    limited.expect_error(429, "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(limited.headers["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.get("/networks").await.status, 200);
}

#[tokio::test]
async fn the_request_log_counts_calls_per_endpoint() {
    let h = Harness::start().await;
    h.get("/networks").await;
    h.get("/networks/abc").await;
    h.get("/networks/def").await;
    let state = h.emulator.state();
    let counts = state.request_counts();
    assert_eq!(counts["POST /oidc/accounts/{account_id}/v1/token"], 1);
    assert_eq!(counts["GET /api/2.0/accounts/{account_id}/networks"], 1);
    assert_eq!(
        counts["GET /api/2.0/accounts/{account_id}/networks/{id}"],
        2
    );
    assert_eq!(state.count_requests("GET", "/networks/"), 2);
    let log = state.request_log();
    assert_eq!(log.last().unwrap().status, 404);
    assert!(log.windows(2).all(|pair| pair[0].at <= pair[1].at));
}
