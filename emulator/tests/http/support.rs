//! Shared set-up for the HTTP tests: a started emulator, a token for one account, and a tiny
//! client that returns status, headers and body without judging them.

use emulator::{Emulator, EmulatorConfig};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const ACCOUNT: &str = "0d6f7c4e-1111-4a2b-9c3d-000000000001";
pub const OTHER_ACCOUNT: &str = "0d6f7c4e-2222-4a2b-9c3d-000000000002";
pub const REGION: &str = "us-east-1";
pub const REST_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04";
pub const RELAY_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf";

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a JSON account API error and returns its message.
    pub fn expect_error(&self, status: u16, error_code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        let body = self.json();
        assert_eq!(body["error_code"], error_code, "body: {}", self.text);
        body["message"].as_str().expect("message").to_owned()
    }
}

pub struct Harness {
    pub emulator: Emulator,
    pub http: reqwest::Client,
    pub token: String,
    pub account: String,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> Self {
        let emulator = Emulator::start(config).await.unwrap();
        let http = reqwest::Client::new();
        let mut harness = Self {
            emulator,
            http,
            token: String::new(),
            account: ACCOUNT.to_owned(),
        };
        harness.token = harness.fetch_token(ACCOUNT).await;
        harness
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.base_url())
    }

    pub async fn fetch_token(&self, account: &str) -> String {
        let reply = self
            .http
            .post(self.url(&format!("/oidc/accounts/{account}/v1/token")))
            .basic_auth("emulator-client", Some("emulator-secret"))
            .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let body: Value = reply.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Calls the account API of `self.account` (path relative to `/api/2.0/accounts/{id}`).
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let url = self.url(&format!("/api/2.0/accounts/{}{path}", self.account));
        self.send(method, &url, Some(&self.token), body).await
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.api(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.api(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.api(Method::DELETE, path, None).await
    }

    /// Registers `vpce` (told to connect to `service`) and returns the Databricks-side object.
    pub async fn register(&self, vpce: &str, service: &str) -> Value {
        self.emulator.state().register_aws_endpoint(vpce, service);
        let reply = self
            .post(
                "/vpc-endpoints",
                json!({"vpc_endpoint_name": format!("reg-{vpce}"), "aws_vpc_endpoint_id": vpce, "region": REGION}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()
    }

    /// Reads a registration until it reports `available`.
    pub async fn wait_available(&self, id: &str) {
        for _ in 0..5 {
            let reply = self.get(&format!("/vpc-endpoints/{id}")).await;
            if reply.json()["state"] == "available" {
                return;
            }
        }
        panic!("registration {id} never became available");
    }

    /// A REST + relay pair, both available, and a network using them.
    pub async fn privatelink_network(
        &self,
        suffix: &str,
        subnets: &[&str],
    ) -> (Value, Value, Value) {
        let rest = self
            .register(&format!("vpce-0000000{suffix}"), REST_SERVICE)
            .await;
        let relay = self
            .register(&format!("vpce-1000000{suffix}"), RELAY_SERVICE)
            .await;
        let rest_id = rest["vpc_endpoint_id"].as_str().unwrap().to_owned();
        let relay_id = relay["vpc_endpoint_id"].as_str().unwrap().to_owned();
        self.wait_available(&rest_id).await;
        self.wait_available(&relay_id).await;
        let network = self
            .post(
                "/networks",
                json!({
                    "network_name": format!("pl-network-{suffix}"),
                    "vpc_id": "vpc-0aaaaaaaaaaaaaaaa",
                    "subnet_ids": subnets,
                    "security_group_ids": ["sg-0aaaaaaaaaaaaaaaa"],
                    "vpc_endpoints": {"rest_api": [rest_id], "dataplane_relay": [relay_id]},
                }),
            )
            .await;
        assert_eq!(network.status, 200, "{}", network.text);
        (rest, relay, network.json())
    }

    pub async fn pas(&self, name: &str, region: &str) -> Value {
        let reply = self
            .post(
                "/private-access-settings",
                json!({"private_access_settings_name": name, "region": region, "public_access_enabled": true}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()
    }
}

pub fn id(object: &Value, field: &str) -> String {
    object[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {object}"))
        .to_owned()
}
