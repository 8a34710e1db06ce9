//! Wire behaviour of `AccountClient` against scripted loopback servers.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::databricks::model::{NetworkVpcEndpoints, RegistrationState};
use crate::test_http::{Reply, TEST_TOKEN, TestServer, token_reply, token_reply_with};

const ACCOUNT: &str = "0d26daa6-5e44-4c97-a497-ef015f91254a";
const CLIENT_ID: &str = "test-client";
const SECRET: &str = "test-secret-value";
/// base64("test-client:test-secret-value")
const BASIC: &str = "Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQtdmFsdWU=";

fn fast_settings() -> HttpSettings {
    HttpSettings {
        allow_insecure: true,
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_attempts: 5,
        },
    }
}

fn http() -> DatabricksHttp {
    DatabricksHttp::new(fast_settings()).unwrap()
}

fn credentials() -> ClientCredentials {
    ClientCredentials::new(CLIENT_ID, SECRET)
}

fn client_with(http: &DatabricksHttp, server: &TestServer, deadline: Duration) -> AccountClient {
    AccountClient::new(
        http,
        &server.url(),
        ACCOUNT,
        credentials(),
        Instant::now() + deadline,
    )
    .unwrap()
}

fn client(server: &TestServer) -> AccountClient {
    client_with(&http(), server, Duration::from_secs(10))
}

fn api_path(suffix: &str) -> String {
    format!("/api/2.0/accounts/{ACCOUNT}/{suffix}")
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains(TEST_TOKEN), "token leaked: {text}");
    assert!(
        !text.contains("dGVzdC1jbGllbnQ6"),
        "basic credentials leaked: {text}"
    );
}

const ENDPOINT_JSON: &str = r#"{"vpc_endpoint_id":"11111111-2222-3333-4444-555555555555","account_id":"a","vpc_endpoint_name":"rest","aws_vpc_endpoint_id":"vpce-0abc","region":"us-east-1","state":"pendingAcceptance","use_case":"GENERAL_ACCESS","creation_time":1700000000000}"#;

// --- hosts and ids ---

#[test]
fn only_official_hosts_are_allowed() {
    for host in [
        "https://accounts.cloud.databricks.com",
        "https://accounts.cloud.databricks.com/",
        "https://accounts.cloud.databricks.us",
        "https://accounts-dod.cloud.databricks.mil/",
        "HTTPS://Accounts.Cloud.Databricks.com",
        "https://accounts.cloud.databricks.com:443",
        "https://accounts.cloud.databricks.us:443/",
    ] {
        assert!(is_allowed_account_host(host), "{host}");
    }
    assert_eq!(
        official_host("https://Accounts.cloud.databricks.com:443/"),
        Some("https://accounts.cloud.databricks.com")
    );
    for host in [
        "http://accounts.cloud.databricks.com",
        "https://accounts.cloud.databricks.com.evil.example",
        "https://accounts.cloud.databricks.com/api/2.0",
        "https://accounts.cloud.databricks.com//",
        "https://accounts.cloud.databricks.com:8443",
        "https://accounts.cloud.databricks.com:443:443",
        "https://accounts.cloud.databricks.com:0443",
        "http://accounts.cloud.databricks.com:443",
        "https://user@accounts.cloud.databricks.com",
        "https://dbc-1234.cloud.databricks.com",
        "accounts.cloud.databricks.com",
        "",
    ] {
        assert!(!is_allowed_account_host(host), "{host}");
    }
}

#[tokio::test]
async fn loopback_host_is_refused_without_allow_insecure_and_nothing_is_sent() {
    let server = TestServer::scripted(vec![]).await;
    let strict = DatabricksHttp::new(HttpSettings::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let error =
        AccountClient::new(&strict, &server.url(), ACCOUNT, credentials(), deadline).unwrap_err();
    assert_eq!(
        error,
        DatabricksError::HostNotAllowed { host: server.url() }
    );
    assert!(
        error
            .to_string()
            .contains("https://accounts.cloud.databricks.com")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 0);
}

#[test]
fn allow_insecure_accepts_plain_origins_only() {
    let insecure = http();
    let deadline = Instant::now() + Duration::from_secs(5);
    let new = |host: &str| AccountClient::new(&insecure, host, ACCOUNT, credentials(), deadline);
    assert_eq!(
        new("http://127.0.0.1:8080/").unwrap().host(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        new("https://accounts.cloud.databricks.us/").unwrap().host(),
        "https://accounts.cloud.databricks.us"
    );
    for host in [
        "ftp://127.0.0.1",
        "http://127.0.0.1:8080/api",
        "http://127.0.0.1:8080/?x=1",
        "127.0.0.1:8080",
        // URL parsing would drop the tab or newline and accept what is left.
        "http://127.0.0.\t1:8080",
        "http://127.0.0.1:8080\n",
        "https://accounts.cloud.databricks.com\t",
    ] {
        assert!(
            matches!(new(host), Err(DatabricksError::HostNotAllowed { .. })),
            "{host}"
        );
    }
}

#[test]
fn credentials_in_a_refused_host_are_not_echoed() {
    let strict = DatabricksHttp::new(HttpSettings::default()).unwrap();
    let error = AccountClient::new(
        &strict,
        "https://admin:hunter2@evil.example",
        ACCOUNT,
        credentials(),
        Instant::now(),
    )
    .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn account_id_must_be_a_uuid() {
    let insecure = http();
    let deadline = Instant::now() + Duration::from_secs(5);
    for bad in [
        "",
        "1234",
        "0d26daa6-5e44-4c97-a497-ef015f91254",
        "0d26daa6-5e44-4c97-a497-ef015f91254az",
        "0d26daa6x5e44-4c97-a497-ef015f91254a",
        "../../../../oidc/x-4c97-a497-ef015f912",
    ] {
        let error = AccountClient::new(
            &insecure,
            "http://127.0.0.1:1",
            bad,
            credentials(),
            deadline,
        )
        .unwrap_err();
        assert!(
            matches!(error, DatabricksError::InvalidAccountId { .. }),
            "{bad}"
        );
    }
    assert!(
        AccountClient::new(
            &insecure,
            "http://127.0.0.1:1",
            "0D26DAA6-5E44-4C97-A497-EF015F91254A",
            credentials(),
            deadline
        )
        .is_ok()
    );
}

#[tokio::test]
async fn ids_that_could_change_the_path_are_refused_without_a_request() {
    let server = TestServer::scripted(vec![]).await;
    let account = client(&server);
    for bad in ["", "a/b", "a?b", "a#b", "..", "a..b", "a%2Fb", "a b"] {
        let error = account.get_vpc_endpoint(bad).await.unwrap_err();
        assert!(
            matches!(
                error,
                DatabricksError::InvalidId {
                    what: "VPC endpoint id",
                    ..
                }
            ),
            "{bad}"
        );
        assert!(matches!(
            account.delete_network(bad).await,
            Err(DatabricksError::InvalidId { .. })
        ));
        assert!(matches!(
            account.get_private_access_settings(bad).await,
            Err(DatabricksError::InvalidId { .. })
        ));
    }
    assert!(matches!(
        account.get_workspace(0).await,
        Err(DatabricksError::InvalidId {
            what: "workspace id",
            ..
        })
    ));
    assert!(matches!(
        account.get_workspace(-5).await,
        Err(DatabricksError::InvalidId { .. })
    ));
    assert_eq!(server.connections(), 0);
}

#[test]
fn allow_insecure_comes_from_the_environment_value() {
    assert!(HttpSettings::from_env_value(Some("true"), None).allow_insecure);
    assert!(HttpSettings::from_env_value(Some("TRUE"), None).allow_insecure);
    assert!(!HttpSettings::from_env_value(Some("false"), None).allow_insecure);
    assert!(!HttpSettings::from_env_value(Some("1"), None).allow_insecure);
    assert!(!HttpSettings::from_env_value(None, None).allow_insecure);
    assert_eq!(
        HttpSettings::from_env_value(None, None).request_timeout,
        Duration::from_secs(30)
    );
}

#[test]
fn the_per_attempt_timeout_comes_from_the_environment_value_or_stays_30_s() {
    let timeout = |raw: Option<&str>| HttpSettings::from_env_value(None, raw).request_timeout;
    assert_eq!(timeout(Some("2")), Duration::from_secs(2));
    assert_eq!(timeout(Some(" 45 ")), Duration::from_secs(45));
    for unusable in [
        None,
        Some(""),
        Some("0"),
        Some("-3"),
        Some("1.5"),
        Some("fast"),
    ] {
        assert_eq!(timeout(unusable), Duration::from_secs(30), "{unusable:?}");
    }
    // The other settings keep their defaults.
    let settings = HttpSettings::from_env_value(Some("true"), Some("2"));
    assert!(settings.allow_insecure);
    assert_eq!(settings.retry, HttpSettings::default().retry);
}

// --- tokens ---

#[tokio::test]
async fn token_request_and_api_request_have_the_documented_shape() {
    let server = TestServer::scripted(vec![Reply::json(200, "[]")]).await;
    let account = client(&server);
    account.list_networks().await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let token = &requests[0];
    assert_eq!(token.method, "POST");
    assert_eq!(token.target, format!("/oidc/accounts/{ACCOUNT}/v1/token"));
    assert_eq!(token.header("authorization"), Some(BASIC));
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        token.body_text(),
        "grant_type=client_credentials&scope=all-apis"
    );

    let api = &requests[1];
    assert_eq!(api.method, "GET");
    assert_eq!(api.target, api_path("networks"));
    assert_eq!(
        api.header("authorization"),
        Some(format!("Bearer {TEST_TOKEN}").as_str())
    );
    assert_eq!(api.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn token_is_cached_across_calls_and_clients_of_one_http() {
    let server = TestServer::scripted(vec![
        Reply::json(200, "[]"),
        Reply::json(200, "[]"),
        Reply::json(200, "[]"),
    ])
    .await;
    let shared = http();
    let first = client_with(&shared, &server, Duration::from_secs(10));
    first.list_networks().await.unwrap();
    first.list_workspaces().await.unwrap();
    let second = client_with(&shared, &server, Duration::from_secs(10));
    second.ensure_token().await.unwrap();
    second.list_vpc_endpoints().await.unwrap();
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.api_requests().len(), 3);
}

#[tokio::test]
async fn another_secret_gets_its_own_token() {
    let server = TestServer::scripted(vec![]).await;
    let shared = http();
    client_with(&shared, &server, Duration::from_secs(5))
        .ensure_token()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let other = ClientCredentials::new(CLIENT_ID, "another-secret");
    AccountClient::new(&shared, &server.url(), ACCOUNT, other, deadline)
        .unwrap()
        .ensure_token()
        .await
        .unwrap();
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_fetch() {
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            token_reply().after(Duration::from_millis(300))
        } else {
            Reply::json(200, "[]")
        }
    })
    .await;
    let shared = http();
    let clients: Vec<_> = (0..8)
        .map(|_| client_with(&shared, &server, Duration::from_secs(10)))
        .collect();
    let results = join_all(clients.iter().map(AccountClient::list_networks)).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.api_requests().len(), 8);
}

#[tokio::test]
async fn short_lived_token_is_refreshed_after_it_expires() {
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            Reply::json(
                200,
                r#"{"access_token":"short","token_type":"Bearer","expires_in":1}"#,
            )
        } else {
            Reply::json(200, "[]")
        }
    })
    .await;
    let account = client(&server);
    account.list_networks().await.unwrap();
    account.list_networks().await.unwrap();
    assert_eq!(server.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    account.list_networks().await.unwrap();
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn a_401_fetches_a_new_token_and_retries_once() {
    let tokens = std::sync::atomic::AtomicUsize::new(0);
    let api_calls = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |request| {
        if request.is_token_request() {
            let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
            return token_reply_with(&format!("token-{n}"));
        }
        match api_calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::json(
                401,
                r#"{"error_code":"UNAUTHENTICATED","message":"Token expired"}"#,
            ),
            _ => Reply::json(200, ENDPOINT_JSON),
        }
    })
    .await;
    let endpoint = client(&server)
        .get_vpc_endpoint("11111111-2222-3333-4444-555555555555")
        .await
        .unwrap();
    assert_eq!(endpoint.aws_vpc_endpoint_id.as_deref(), Some("vpce-0abc"));
    let used: Vec<_> = server
        .api_requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(used, ["Bearer token-1", "Bearer token-2"]);
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn a_second_401_is_reported_not_looped() {
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            token_reply()
        } else {
            Reply::json(
                401,
                r#"{"error_code":401,"message":"Invalid access token."}"#,
            )
        }
    })
    .await;
    let error = client(&server).list_networks().await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.error_code(), Some("401"));
    assert!(
        error.to_string().contains("belongs to this account"),
        "{error}"
    );
    assert_eq!(server.api_requests().len(), 2);
    assert_eq!(server.token_requests(), 2);
    assert_no_secret(&error.to_string());
}

#[tokio::test]
async fn rejected_credentials_are_permanent_and_do_not_leak_the_secret() {
    let server = TestServer::start(|_| {
        Reply::json(
            401,
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
        )
    })
    .await;
    let account = client(&server);
    let error = account.list_networks().await.unwrap_err();
    assert!(error.is_permanent_credentials());
    assert_eq!(
        error.to_string(),
        "Databricks rejected the service principal credentials (401 invalid_client): \
         Client authentication failed. Check client_id/client_secret in the credentials secret."
    );
    assert_no_secret(&error.to_string());
    assert_no_secret(&format!("{error:?}"));
    assert_no_secret(&format!("{account:?}"));
    assert_eq!(
        server.requests().len(),
        1,
        "a refused secret is not retried"
    );
}

#[tokio::test]
async fn token_endpoint_404_is_credentials_not_a_missing_object() {
    let server = TestServer::start(|_| Reply::empty(404)).await;
    let error = client(&server).ensure_token().await.unwrap_err();
    assert!(error.is_permanent_credentials());
    assert!(!error.is_not_found());
    assert!(error.to_string().contains("account id"), "{error}");
}

#[tokio::test]
async fn token_endpoint_unavailability_is_retried() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |_| match calls.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::empty(503),
        1 => Reply::Drop,
        _ => token_reply(),
    })
    .await;
    let account = client(&server);
    account.ensure_token().await.unwrap();
    assert_eq!(server.token_requests(), 3);
    assert_eq!(account.retries_spent(), 2);
}

#[tokio::test]
async fn html_token_answer_is_an_invalid_response() {
    let server =
        TestServer::start(|_| Reply::html(200, "<!DOCTYPE html><html><body>Sign in</body></html>"))
            .await;
    let error = client(&server).ensure_token().await.unwrap_err();
    assert!(
        matches!(&error, DatabricksError::InvalidResponse { message, .. } if message.contains("HTML")),
        "{error}"
    );
}

// --- answers ---

#[tokio::test]
async fn lists_are_bare_arrays_and_unknown_fields_are_ignored() {
    let server = TestServer::scripted(vec![
        Reply::json(
            200,
            &format!("[{ENDPOINT_JSON}, {{\"vpc_endpoint_id\":\"x\",\"state\":\"AVAILABLE\"}}]"),
        ),
        Reply::json(200, "{}"),
        Reply::empty(200),
    ])
    .await;
    let account = client(&server);
    let endpoints = account.list_vpc_endpoints().await.unwrap();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(
        endpoints[0].registration_state(),
        RegistrationState::Pending
    );
    assert_eq!(
        endpoints[1].registration_state(),
        RegistrationState::Available
    );
    assert!(account.list_networks().await.unwrap().is_empty());
    assert!(account.list_workspaces().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_list_that_is_an_object_is_an_invalid_response() {
    let server = TestServer::scripted(vec![Reply::json(200, r#"{"networks":[]}"#)]).await;
    let error = client(&server).list_networks().await.unwrap_err();
    assert!(matches!(
        error,
        DatabricksError::InvalidResponse {
            operation: "list networks",
            ..
        }
    ));
}

#[tokio::test]
async fn html_success_page_is_an_invalid_response() {
    let page = "<html><head><title>Databricks - Sign In</title></head><body>login</body></html>";
    let server = TestServer::scripted(vec![Reply::html(200, page), Reply::html(200, page)]).await;
    let account = client(&server);
    let error = account.get_network("n-1").await.unwrap_err();
    assert!(
        matches!(&error, DatabricksError::InvalidResponse { operation: "get network", message } if message.contains("HTML")),
        "{error}"
    );
    assert!(
        !error.to_string().contains("Sign In"),
        "never quote the page: {error}"
    );
    assert!(matches!(
        account.list_private_access_settings().await,
        Err(DatabricksError::InvalidResponse { .. })
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::scripted(vec![
        Reply::empty(302).with_header("Location", "/login?next=%2Fapi"),
    ])
    .await;
    let error = client(&server).list_workspaces().await.unwrap_err();
    assert!(
        matches!(error, DatabricksError::InvalidResponse { .. }),
        "{error}"
    );
    assert_eq!(server.api_requests().len(), 1);
}

#[tokio::test]
async fn delete_accepts_object_empty_object_and_empty_body() {
    let server = TestServer::scripted(vec![
        Reply::json(200, ENDPOINT_JSON),
        Reply::json(200, "{}"),
        Reply::empty(200),
        Reply::html(200, "<html><body>login</body></html>"),
    ])
    .await;
    let account = client(&server);
    account.delete_vpc_endpoint("v-1").await.unwrap();
    account.delete_private_access_settings("p-1").await.unwrap();
    account.delete_network("n-1").await.unwrap();
    assert!(matches!(
        account.delete_network("n-2").await,
        Err(DatabricksError::InvalidResponse { .. })
    ));
    let requests = server.api_requests();
    assert!(requests.iter().all(|r| r.method == "DELETE"));
    assert_eq!(requests[0].path(), api_path("vpc-endpoints/v-1"));
    assert_eq!(requests[1].path(), api_path("private-access-settings/p-1"));
    assert_eq!(requests[2].path(), api_path("networks/n-1"));
}

#[tokio::test]
async fn create_requests_send_the_documented_json() {
    let server = TestServer::scripted(vec![
        Reply::json(200, ENDPOINT_JSON),
        Reply::json(
            200,
            r#"{"private_access_settings_id":"p-1","public_access_enabled":true,"private_access_level":"ACCOUNT"}"#,
        ),
        Reply::json(
            200,
            r#"{"network_id":"n-1","vpc_status":"UNATTACHED","vpc_endpoints":{"rest_api":["r"],"dataplane_relay":["d"]}}"#,
        ),
    ])
    .await;
    let account = client(&server);
    let endpoint = account
        .create_vpc_endpoint(&CreateVpcEndpoint {
            vpc_endpoint_name: "rest".into(),
            aws_vpc_endpoint_id: "vpce-0abc".into(),
            region: "us-east-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        endpoint.vpc_endpoint_id,
        "11111111-2222-3333-4444-555555555555"
    );
    let pas = account
        .create_private_access_settings(&PrivateAccessSettingsRequest {
            private_access_settings_name: "pas".into(),
            region: "us-east-1".into(),
            public_access_enabled: true,
            private_access_level: "ACCOUNT".into(),
            allowed_vpc_endpoint_ids: vec![],
        })
        .await
        .unwrap();
    assert_eq!(pas.public_access_enabled, Some(true));
    let network = account
        .create_network(&CreateNetwork {
            network_name: "net".into(),
            vpc_id: "vpc-1".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            security_group_ids: vec!["sg-1".into()],
            vpc_endpoints: NetworkVpcEndpoints {
                rest_api: vec!["r".into()],
                dataplane_relay: vec!["d".into()],
            },
        })
        .await
        .unwrap();
    assert_eq!(network.vpc_status.as_deref(), Some("UNATTACHED"));

    let requests = server.api_requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.header("content-type") == Some("application/json"))
    );
    assert_eq!(requests[0].path(), api_path("vpc-endpoints"));
    assert_eq!(
        requests[0].body_json(),
        json!({"vpc_endpoint_name": "rest", "aws_vpc_endpoint_id": "vpce-0abc", "region": "us-east-1"})
    );
    assert_eq!(requests[1].path(), api_path("private-access-settings"));
    assert_eq!(
        requests[1].body_json(),
        json!({"private_access_settings_name": "pas", "region": "us-east-1",
               "public_access_enabled": true, "private_access_level": "ACCOUNT"})
    );
    assert_eq!(requests[2].path(), api_path("networks"));
    assert_eq!(
        requests[2].body_json(),
        json!({"network_name": "net", "vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"],
               "security_group_ids": ["sg-1"],
               "vpc_endpoints": {"rest_api": ["r"], "dataplane_relay": ["d"]}})
    );
}

#[tokio::test]
async fn replace_private_access_settings_puts_the_full_object() {
    let server = TestServer::scripted(vec![
        Reply::json(200, r#"{"private_access_settings_id":"p-1"}"#),
        Reply::json(200, "{}"),
        Reply::empty(200),
    ])
    .await;
    let account = client(&server);
    let request = PrivateAccessSettingsRequest {
        private_access_settings_name: "pas".into(),
        region: "eu-west-1".into(),
        public_access_enabled: false,
        private_access_level: "ENDPOINT".into(),
        allowed_vpc_endpoint_ids: vec!["v-1".into()],
    };
    for _ in 0..3 {
        account
            .replace_private_access_settings("p-1", &request)
            .await
            .unwrap();
    }
    let put = &server.api_requests()[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path(), api_path("private-access-settings/p-1"));
    assert_eq!(
        put.body_json(),
        json!({"private_access_settings_name": "pas", "region": "eu-west-1",
               "public_access_enabled": false, "private_access_level": "ENDPOINT",
               "allowed_vpc_endpoint_ids": ["v-1"]})
    );
}

#[tokio::test]
async fn update_workspace_patches_with_a_sorted_update_mask() {
    let server = TestServer::scripted(vec![
        Reply::json(
            200,
            r#"{"workspace_id":1234567890123456,"workspace_status":"RUNNING"}"#,
        ),
        Reply::json(200, "{}"),
    ])
    .await;
    let account = client(&server);
    let update = WorkspaceUpdate {
        network_id: Some("n-1".into()),
        private_access_settings_id: Some("p-1".into()),
    };
    account
        .update_workspace(1234567890123456, &update)
        .await
        .unwrap();
    let pas_only = WorkspaceUpdate {
        private_access_settings_id: Some("p-2".into()),
        ..Default::default()
    };
    account.update_workspace(42, &pas_only).await.unwrap();
    account
        .update_workspace(42, &WorkspaceUpdate::default())
        .await
        .unwrap();

    let requests = server.api_requests();
    assert_eq!(requests.len(), 2, "an empty update sends nothing");
    assert_eq!(requests[0].method, "PATCH");
    assert_eq!(requests[0].path(), api_path("workspaces/1234567890123456"));
    assert_eq!(
        requests[0].query(),
        Some("update_mask=network_id%2Cprivate_access_settings_id")
    );
    assert_eq!(
        requests[0].body_json(),
        json!({"network_id": "n-1", "private_access_settings_id": "p-1"})
    );
    assert_eq!(
        requests[1].query(),
        Some("update_mask=private_access_settings_id")
    );
    assert_eq!(
        requests[1].body_json(),
        json!({"private_access_settings_id": "p-2"})
    );
}

#[tokio::test]
async fn workspace_is_read_with_its_status() {
    let server = TestServer::scripted(vec![Reply::json(
        200,
        r#"{"workspace_id":42,"workspace_name":"w","network_id":"n-1","workspace_status":"running","pricing_tier":"ENTERPRISE"}"#,
    )])
    .await;
    let workspace = client(&server).get_workspace(42).await.unwrap();
    assert_eq!(
        workspace.status(),
        crate::databricks::WorkspaceStatus::Running
    );
    assert_eq!(workspace.network_id.as_deref(), Some("n-1"));
    assert_eq!(server.api_requests()[0].path(), api_path("workspaces/42"));
}

// --- errors ---

#[tokio::test]
async fn error_bodies_of_every_shape_become_api_errors() {
    let server = TestServer::scripted(vec![
        Reply::json(
            409,
            r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"VPC endpoint already registered","details":[]}"#,
        ),
        Reply::json(
            400,
            r#"{"error_code":"INVALID_STATE","message":"Unable to delete, Network is being used by active workspace 123"}"#,
        ),
        Reply::text(400, "MALFORMED_REQUEST: Cannot parse request body"),
        Reply::json(404, r#"{"error":"The account does not exist or the user does not belong to this account"}"#),
        Reply::empty(409),
        Reply::html(403, "<html><body><pre>Forbidden by policy</pre></body></html>"),
    ])
    .await;
    let account = client(&server);
    let create = CreateVpcEndpoint {
        vpc_endpoint_name: "rest".into(),
        aws_vpc_endpoint_id: "vpce-1".into(),
        region: "us-east-1".into(),
    };

    let exists = account.create_vpc_endpoint(&create).await.unwrap_err();
    assert_eq!(
        exists.to_string(),
        "Databricks account API create VPC endpoint registration failed \
         (409 RESOURCE_ALREADY_EXISTS): VPC endpoint already registered"
    );

    let in_use = account.delete_network("n-1").await.unwrap_err();
    assert!(in_use.is_in_use());
    assert_eq!(in_use.error_code(), Some("INVALID_STATE"));

    let malformed = account
        .create_network(&CreateNetwork {
            network_name: "n".into(),
            vpc_id: "v".into(),
            subnet_ids: vec![],
            security_group_ids: vec![],
            vpc_endpoints: NetworkVpcEndpoints::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.error_code(), Some("MALFORMED_REQUEST"));
    assert!(malformed.to_string().ends_with("Cannot parse request body"));

    let missing = account.get_network("n-2").await.unwrap_err();
    assert!(missing.is_not_found());
    assert!(missing.to_string().contains("The account does not exist"));

    let conflict = account.delete_vpc_endpoint("v-1").await.unwrap_err();
    assert!(conflict.is_in_use());
    assert!(
        conflict.to_string().ends_with("(409): Conflict"),
        "{conflict}"
    );

    let forbidden = account.list_networks().await.unwrap_err();
    assert_eq!(forbidden.status(), Some(403));
    assert!(forbidden.to_string().contains("Forbidden by policy"));
    assert!(forbidden.to_string().contains("account admin"));

    for error in [
        &exists, &in_use, &malformed, &missing, &conflict, &forbidden,
    ] {
        assert_no_secret(&error.to_string());
        assert_no_secret(&format!("{error:?}"));
    }
    assert_eq!(account.retries_spent(), 0);
}

#[tokio::test]
async fn quoted_messages_are_shortened() {
    let long = "x".repeat(5000);
    let server = TestServer::scripted(vec![Reply::json(
        400,
        &format!(r#"{{"error_code":"INVALID_PARAMETER_VALUE","message":"{long}"}}"#),
    )])
    .await;
    let error = client(&server).list_networks().await.unwrap_err();
    assert!(error.to_string().len() < 500, "{}", error.to_string().len());
}

/// An accounts host that sends the credentials back (misbehaving, or a TLS-intercepting proxy
/// in front of it): whatever it echoes, no error quotes the secret, the token or the Basic
/// header.
#[tokio::test]
async fn credentials_echoed_by_the_host_are_redacted() {
    // The Authorization header and the secret, echoed in error bodies of the API.
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            return token_reply();
        }
        let header = request.header("authorization").unwrap_or_default().to_owned();
        Reply::json(
            400,
            &format!(
                r#"{{"error_code":"INVALID_PARAMETER_VALUE","message":"got {header} and token {TEST_TOKEN} for secret {SECRET}"}}"#
            ),
        )
    })
    .await;
    let error = client(&server).list_networks().await.unwrap_err();
    assert_no_secret(&error.to_string());
    assert!(error.to_string().contains("[REDACTED]"), "{error}");
    assert!(
        error.to_string().contains("INVALID_PARAMETER_VALUE"),
        "{error}"
    );

    // The token endpoint echoes the Basic header in its refusal, and the secret as token_type.
    for reply in [
        Reply::json(
            401,
            &format!(
                r#"{{"error":"invalid_client","error_description":"bad {BASIC} / {SECRET}"}}"#
            ),
        ),
        Reply::json(
            200,
            &format!(r#"{{"access_token":"{TEST_TOKEN}","token_type":"{SECRET}"}}"#),
        ),
        Reply::json(
            200,
            &format!(r#"{{"access_token":"{TEST_TOKEN}","token_type":"{TEST_TOKEN}"}}"#),
        ),
    ] {
        let reply = std::sync::Mutex::new(Some(reply));
        let server = TestServer::start(move |_| {
            reply
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| Reply::text(500, "once"))
        })
        .await;
        let error = client(&server).ensure_token().await.unwrap_err();
        assert_no_secret(&error.to_string());
        assert_no_secret(&format!("{error:?}"));
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_ends_at_once_without_panicking() {
    for retry_after in [
        "18446744073709551615",
        "99999999999999999999999",
        "86401",
        "30",
    ] {
        let server = TestServer::scripted(vec![
            Reply::json(
                429,
                r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow"}"#,
            )
            .with_header("Retry-After", retry_after),
        ])
        .await;
        let account = client_with(&http(), &server, Duration::from_secs(5));
        let started = Instant::now();
        let error = account.list_networks().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{retry_after}");
        let text = error.to_string();
        assert!(
            matches!(error, DatabricksError::DeadlineExceeded { .. }),
            "{text}"
        );
        assert!(
            text.contains("Databricks asked to wait")
                && text.contains("(Retry-After), longer than the"),
            "{retry_after}: {text}"
        );
        assert_eq!(server.api_requests().len(), 1);
    }
}

#[tokio::test]
async fn a_token_lifetime_beyond_a_day_counts_as_a_day() {
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            return Reply::json(
                200,
                &format!(
                    r#"{{"access_token":"{TEST_TOKEN}","token_type":"Bearer","expires_in":18446744073709551615}}"#
                ),
            );
        }
        Reply::json(200, "[]")
    })
    .await;
    let account = client(&server);
    account.list_networks().await.unwrap();
    account.list_networks().await.unwrap();
    assert_eq!(
        server.token_requests(),
        1,
        "the token is cached, not refused"
    );
}

// --- retries and deadline ---

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let server = TestServer::scripted(vec![
        Reply::json(
            429,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
        )
        .with_header("Retry-After", "1"),
        Reply::json(200, "[]"),
    ])
    .await;
    let account = client(&server);
    account.ensure_token().await.unwrap();
    let started = Instant::now();
    account.list_networks().await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After ignored: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(account.retries_spent(), 1);
    assert_eq!(server.api_requests().len(), 2);
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off_briefly() {
    let server = TestServer::scripted(vec![
        Reply::empty(429),
        Reply::empty(429),
        Reply::json(200, "[]"),
    ])
    .await;
    let account = client(&server);
    account.ensure_token().await.unwrap();
    let started = Instant::now();
    account.list_workspaces().await.unwrap();
    let elapsed = started.elapsed();
    // Backoff of 10 ms then 20 ms, each at least half: 15 ms at the least.
    assert!(elapsed >= Duration::from_millis(15), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(account.retries_spent(), 2);
    assert_eq!(server.api_requests().len(), 3);
}

#[tokio::test]
async fn throttling_is_retried_past_max_attempts_until_the_deadline() {
    let throttled = || {
        Reply::json(
            429,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
        )
    };
    // Twice max_attempts throttled answers, then success.
    let mut script: Vec<Reply> = (0..10).map(|_| throttled()).collect();
    script.push(Reply::json(200, "[]"));
    let server = TestServer::scripted(script).await;
    let account = client(&server);
    account.list_networks().await.unwrap();
    assert_eq!(server.api_requests().len(), 11);
    assert_eq!(account.retries_spent(), 10);

    // Throttled for good: the deadline ends it, with the last answer as the reason.
    let server = TestServer::start(move |request| {
        if request.is_token_request() {
            token_reply()
        } else {
            throttled()
        }
    })
    .await;
    let started = Instant::now();
    let account = client_with(&http(), &server, Duration::from_millis(800));
    let error = account.list_networks().await.unwrap_err();
    // Retries end by the deadline; the last attempt may finish a moment after it.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert!(
        server.api_requests().len() > 5,
        "{}",
        server.api_requests().len()
    );
    match error {
        DatabricksError::DeadlineExceeded { last_error, .. } => {
            assert!(last_error.contains("429"), "{last_error}");
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn unavailable_and_gateway_errors_are_retried_until_success() {
    let server = TestServer::scripted(vec![
        Reply::empty(503),
        Reply::html(502, "<html><body>Bad gateway</body></html>"),
        Reply::empty(504),
        Reply::json(200, ENDPOINT_JSON),
    ])
    .await;
    let account = client(&server);
    let clone = account.clone();
    clone.get_vpc_endpoint("v-1").await.unwrap();
    assert_eq!(server.api_requests().len(), 4);
    assert_eq!(account.retries_spent(), 3, "clones share the counter");
}

#[tokio::test]
async fn a_create_whose_answer_a_gateway_lost_is_not_sent_again() {
    let request = CreateVpcEndpoint {
        vpc_endpoint_name: "rest".into(),
        aws_vpc_endpoint_id: "vpce-0abc".into(),
        region: "us-east-1".into(),
    };
    for lost in [
        Reply::html(504, "<html><h1>504 Gateway Time-out</h1></html>"),
        Reply::empty(502),
    ] {
        let server = TestServer::scripted(vec![lost, Reply::json(200, ENDPOINT_JSON)]).await;
        let error = client(&server)
            .create_vpc_endpoint(&request)
            .await
            .unwrap_err();
        assert!(error.is_answer_lost(), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("whether it was carried out is unknown"),
            "{error}"
        );
        assert_eq!(server.api_requests().len(), 1, "sent once");
    }
    // 503 and 429 say the API did not start on it: those are repeated.
    let server =
        TestServer::scripted(vec![Reply::empty(503), Reply::json(200, ENDPOINT_JSON)]).await;
    client(&server).create_vpc_endpoint(&request).await.unwrap();
    assert_eq!(server.api_requests().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = TestServer::scripted(vec![Reply::json(
        400,
        r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"bad region"}"#,
    )])
    .await;
    let account = client(&server);
    let error = account.list_networks().await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(server.api_requests().len(), 1);
    assert_eq!(account.retries_spent(), 0);
}

#[tokio::test]
async fn internal_server_errors_are_not_retried() {
    let server = TestServer::scripted(vec![Reply::json(
        500,
        r#"{"error_code":"INTERNAL_ERROR","message":"boom"}"#,
    )])
    .await;
    let account = client(&server);
    let error = account.list_networks().await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(error.error_code(), Some("INTERNAL_ERROR"));
    assert_eq!(
        error.to_string(),
        "Databricks account API list networks failed (500 INTERNAL_ERROR): boom"
    );
    assert_eq!(server.api_requests().len(), 1);
    assert_eq!(account.retries_spent(), 0);
}

#[tokio::test]
async fn retries_stop_after_max_attempts_with_the_last_error() {
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            token_reply()
        } else {
            Reply::empty(503)
        }
    })
    .await;
    let account = client(&server);
    let error = account.list_networks().await.unwrap_err();
    assert_eq!(error.status(), Some(503));
    assert_eq!(server.api_requests().len(), 5);
    assert_eq!(account.retries_spent(), 4);
}

#[tokio::test]
async fn the_deadline_bounds_the_retry_loop() {
    let server = TestServer::start(|request| {
        if request.is_token_request() {
            token_reply()
        } else {
            Reply::json(
                503,
                r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"try later"}"#,
            )
            .with_header("Retry-After", "1")
        }
    })
    .await;
    let settings = HttpSettings {
        retry: RetryPolicy {
            max_attempts: 100,
            ..fast_settings().retry
        },
        ..fast_settings()
    };
    let shared = DatabricksHttp::new(settings).unwrap();
    let started = Instant::now();
    let account = client_with(&shared, &server, Duration::from_millis(2500));
    let error = account.list_networks().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
    assert!(
        elapsed >= Duration::from_secs(2),
        "Retry-After was not honoured: {elapsed:?}"
    );
    match &error {
        DatabricksError::DeadlineExceeded {
            operation,
            last_error,
        } => {
            assert_eq!(*operation, "list networks");
            assert!(
                last_error.contains("503") && last_error.contains("try later"),
                "{last_error}"
            );
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert_eq!(server.api_requests().len(), 3);
}

#[tokio::test]
async fn a_hanging_server_is_cut_off_per_attempt_and_retried() {
    let server = TestServer::scripted(vec![Reply::Hang, Reply::json(200, "[]")]).await;
    let settings = HttpSettings {
        request_timeout: Duration::from_millis(300),
        ..fast_settings()
    };
    let account = client_with(
        &DatabricksHttp::new(settings).unwrap(),
        &server,
        Duration::from_secs(5),
    );
    account.ensure_token().await.unwrap();
    let started = Instant::now();
    account.list_networks().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(account.retries_spent(), 1);
}

#[tokio::test]
async fn a_server_that_never_answers_ends_at_the_deadline() {
    let server = TestServer::start(|_| Reply::Hang).await;
    let started = Instant::now();
    let account = client_with(&http(), &server, Duration::from_millis(800));
    let error = account.ensure_token().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    match error {
        DatabricksError::DeadlineExceeded { last_error, .. } => {
            assert!(last_error.contains("no answer"), "{last_error}")
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let server = TestServer::scripted(vec![Reply::Drop, Reply::json(200, "[]")]).await;
    let account = client(&server);
    account.list_workspaces().await.unwrap();
    assert_eq!(server.api_requests().len(), 2);
    assert_eq!(account.retries_spent(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_after_retries() {
    // Bind and drop to get a port nothing listens on.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let account = AccountClient::new(
        &http(),
        &format!("http://127.0.0.1:{port}"),
        ACCOUNT,
        credentials(),
        deadline,
    )
    .unwrap();
    let error = account.ensure_token().await.unwrap_err();
    assert!(
        matches!(&error, DatabricksError::Transport { operation, .. } if *operation == "OAuth token request"),
        "{error:?}"
    );
    assert!(error.to_string().contains("could not connect"), "{error}");
    assert_no_secret(&format!("{error:?}"));
    assert_eq!(account.retries_spent(), 4);
}
