//! OAuth M2M token endpoint, discovery documents and the Bearer check.

use reqwest::Method;
use serde_json::Value;

use crate::support::{ACCOUNT, Harness, OTHER_ACCOUNT};

#[tokio::test]
async fn client_credentials_yield_a_bearer_token_for_the_account() {
    let h = Harness::start().await;
    let reply = h
        .http
        .post(h.url(&format!("/oidc/accounts/{ACCOUNT}/v1/token")))
        .basic_auth("emulator-client", Some("emulator-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "all-apis");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() > 20);
    let listed = h
        .send(
            Method::GET,
            &h.url(&format!("/api/2.0/accounts/{ACCOUNT}/vpc-endpoints")),
            Some(token),
            None,
        )
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), serde_json::json!([]));
}

#[tokio::test]
async fn wrong_secret_is_refused_with_the_oauth_error_shape() {
    let h = Harness::start().await;
    let reply = h
        .http
        .post(h.url(&format!("/oidc/accounts/{ACCOUNT}/v1/token")))
        .basic_auth("emulator-client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_description"], "Client authentication failed");
}

#[tokio::test]
async fn form_field_credentials_and_configured_clients_are_accepted() {
    let config = emulator::EmulatorConfig {
        clients: vec![("sp-1".into(), "s3cret".into())],
        ..Default::default()
    };
    let emulator = emulator::Emulator::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/oidc/accounts/{ACCOUNT}/v1/token", emulator.base_url());
    let ok = http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sp-1"),
            ("client_secret", "s3cret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let default_client = http
        .post(&url)
        .basic_auth("emulator-client", Some("emulator-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(default_client.status(), 401);
    let wrong_grant = http
        .post(&url)
        .basic_auth("sp-1", Some("s3cret"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), 400);
    let body: Value = wrong_grant.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn api_calls_need_a_token_issued_for_that_account() {
    let h = Harness::start().await;
    let path = format!("/api/2.0/accounts/{ACCOUNT}/networks");
    let missing = h.send(Method::GET, &h.url(&path), None, None).await;
    missing.expect_error(401, "UNAUTHENTICATED");
    let bogus = h.send(Method::GET, &h.url(&path), Some("nope"), None).await;
    bogus.expect_error(401, "UNAUTHENTICATED");

    let other_token = h.fetch_token(OTHER_ACCOUNT).await;
    let cross = h
        .send(Method::GET, &h.url(&path), Some(&other_token), None)
        .await;
    let message = cross.expect_error(401, "UNAUTHENTICATED");
    assert!(message.contains(ACCOUNT), "{message}");

    h.emulator.state().revoke_tokens();
    let revoked = h.get("/networks").await;
    revoked.expect_error(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn discovery_documents_lead_to_the_token_endpoint() {
    let h = Harness::start().await;
    let meta: Value = h
        .http
        .get(h.url("/.well-known/databricks-config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oidc = meta["oidc_endpoint"].as_str().unwrap();
    assert_eq!(
        oidc,
        format!("{}/oidc/accounts/{{account_id}}", h.emulator.base_url())
    );
    let discovery = format!(
        "{}/.well-known/oauth-authorization-server",
        oidc.replace("{account_id}", ACCOUNT)
    );
    let endpoints: Value = h
        .http
        .get(discovery)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_endpoint = endpoints["token_endpoint"].as_str().unwrap();
    assert_eq!(
        token_endpoint,
        h.url(&format!("/oidc/accounts/{ACCOUNT}/v1/token"))
    );
    let token = h
        .http
        .post(token_endpoint)
        .basic_auth("emulator-client", Some("emulator-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
}
