//! The control API over HTTP and the `databricks-account-emulator` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{ACCOUNT, Harness, REGION, REST_SERVICE};

async fn control(h: &Harness, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let reply = h.send(method, &h.url(path), None, body).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json()
}

#[tokio::test]
async fn the_control_api_mirrors_the_direct_methods() {
    use reqwest::Method;
    let h = Harness::start().await;
    let seeded = control(
        &h,
        Method::POST,
        "/_emulator/workspaces",
        Some(json!({
            "account_id": ACCOUNT, "workspace_name": "ctl-ws", "aws_region": REGION,
            "workspace_id": 1234567890123456_i64, "running_clusters": true,
            "network": {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1", "subnet-2"], "security_group_ids": ["sg-1"]}
        })),
    )
    .await;
    assert_eq!(seeded["workspace_id"], 1234567890123456_i64);
    assert_eq!(seeded["workspace_name"], "ctl-ws");

    control(
        &h,
        Method::POST,
        "/_emulator/aws-endpoints",
        Some(json!({"vpc_endpoint_id": "vpce-00000031", "service_name": REST_SERVICE})),
    )
    .await;
    let registered = h
        .post(
            "/vpc-endpoints",
            json!({"vpc_endpoint_name": "ctl-reg", "aws_vpc_endpoint_id": "vpce-00000031", "region": REGION}),
        )
        .await
        .json();
    assert_eq!(registered["aws_endpoint_service_id"], REST_SERVICE);
    control(
        &h,
        Method::POST,
        "/_emulator/aws-endpoints/vpce-00000031/state",
        Some(json!({"state": "rejected"})),
    )
    .await;

    control(
        &h,
        Method::POST,
        "/_emulator/workspaces/1234567890123456/status",
        Some(json!({"status": "FAILED", "message": "boom"})),
    )
    .await;
    control(
        &h,
        Method::POST,
        "/_emulator/workspaces/1234567890123456/clusters",
        Some(json!({"running": false})),
    )
    .await;
    control(
        &h,
        Method::POST,
        "/_emulator/workspaces/1234567890123456/silent-revert",
        Some(json!({"times": 2})),
    )
    .await;

    let dump = control(
        &h,
        Method::GET,
        &format!("/_emulator/state?account_id={ACCOUNT}"),
        None,
    )
    .await;
    assert_eq!(dump["vpc_endpoints"][0]["state"], "rejected");
    assert_eq!(dump["workspaces"][0]["workspace_status"], "FAILED");
    assert_eq!(dump["workspaces"][0]["workspace_status_message"], "boom");
    assert_eq!(dump["networks"][0]["vpc_status"], "VALID");
    assert_eq!(dump["workspace_controls"][0]["clusters_running"], false);
    assert_eq!(dump["workspace_controls"][0]["silent_reverts"], 2);

    control(
        &h,
        Method::POST,
        "/_emulator/faults",
        Some(json!({
            "method": "GET", "path_contains": "/networks", "kind": "status", "status": 502,
            "body": {"type": "html", "html": "<pre>bad gateway</pre>"}
        })),
    )
    .await;
    assert_eq!(
        control(&h, Method::GET, "/_emulator/faults", None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.get("/networks").await.status, 502);
    control(
        &h,
        Method::POST,
        "/_emulator/faults",
        Some(json!([{"kind": "drop"}, {"kind": "hang"}])),
    )
    .await;
    control(&h, Method::DELETE, "/_emulator/faults", None).await;
    assert_eq!(h.get("/networks").await.status, 200);

    let requests = control(&h, Method::GET, "/_emulator/requests", None).await;
    assert_eq!(
        requests["counts"]["GET /api/2.0/accounts/{account_id}/networks"],
        2
    );
    assert!(
        requests["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["path"].as_str().unwrap().starts_with("/_emulator"))
    );

    let bad = h
        .send(
            Method::POST,
            &h.url("/_emulator/faults"),
            None,
            Some(json!({"kind": "explode"})),
        )
        .await;
    assert_eq!(bad.status, 400);

    control(&h, Method::POST, "/_emulator/reset", None).await;
    let empty = control(
        &h,
        Method::GET,
        &format!("/_emulator/state?account_id={ACCOUNT}"),
        None,
    )
    .await;
    assert_eq!(empty["workspaces"], json!([]));
    assert_eq!(
        control(&h, Method::GET, "/_emulator/requests", None).await["requests"],
        json!([])
    );
}

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_announces_its_port_and_honours_its_flags() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_databricks-account-emulator"))
            .args([
                "--port",
                "0",
                "--client",
                "ci:pw",
                "--accept-after-reads",
                "0",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/oidc/accounts/{ACCOUNT}/v1/token"))
        .basic_auth("ci", Some("pw"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created: Value = http
        .post(format!("{base}/api/2.0/accounts/{ACCOUNT}/vpc-endpoints"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"vpc_endpoint_name": "bin-reg", "aws_vpc_endpoint_id": "vpce-00000041", "region": REGION}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["state"], "available");

    let bad = Command::new(env!("CARGO_BIN_EXE_databricks-account-emulator"))
        .args(["--rate-limit", "lots"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rate-limit"));
}
