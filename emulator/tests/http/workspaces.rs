//! Workspace GET/list and the PATCH rules for attaching a PrivateLink network and private access
//! settings.

use emulator::{NetworkSeed, Workspace, WorkspaceSeed, WorkspaceStatus};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, REGION, Reply, id};

fn customer_vpc(name: &str, subnets: [&str; 2]) -> WorkspaceSeed {
    WorkspaceSeed {
        name: name.into(),
        region: REGION.into(),
        network: Some(NetworkSeed {
            vpc_id: "vpc-0aaaaaaaaaaaaaaaa".into(),
            subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
            // Security groups cannot be shared between workspaces either.
            security_group_ids: vec![format!("sg-{name}")],
        }),
        ..Default::default()
    }
}

struct Scenario {
    h: Harness,
    workspace: Workspace,
    network_id: String,
    pas_id: String,
}

/// A running customer-managed-VPC workspace plus an available PrivateLink network on the same
/// subnets and private access settings of the same region.
async fn scenario() -> Scenario {
    let h = Harness::start().await;
    let workspace = h
        .emulator
        .state()
        .seed_workspace(
            &h.account,
            customer_vpc("ws-main", ["subnet-1", "subnet-2"]),
        )
        .unwrap();
    let (_, _, network) = h.privatelink_network("1", &["subnet-1", "subnet-2"]).await;
    let pas = h.pas("pas-main", REGION).await;
    Scenario {
        workspace,
        network_id: id(&network, "network_id"),
        pas_id: id(&pas, "private_access_settings_id"),
        h,
    }
}

impl Scenario {
    fn path(&self) -> String {
        format!("/workspaces/{}", self.workspace.workspace_id)
    }

    async fn patch(&self, body: Value) -> Reply {
        self.h
            .api(
                Method::PATCH,
                &format!(
                    "{}?update_mask=network_id,private_access_settings_id",
                    self.path()
                ),
                Some(body),
            )
            .await
    }

    async fn attach(&self) -> Reply {
        self.patch(
            json!({"network_id": self.network_id, "private_access_settings_id": self.pas_id}),
        )
        .await
    }

    async fn current(&self) -> Value {
        self.h.get(&self.path()).await.json()
    }
}

#[tokio::test]
async fn seeded_workspaces_are_listed_with_real_field_types() {
    let s = scenario().await;
    let fetched = s.current().await;
    assert_eq!(fetched["workspace_id"], s.workspace.workspace_id);
    assert!(fetched["workspace_id"].is_i64());
    assert_eq!(fetched["workspace_name"], "ws-main");
    assert_eq!(fetched["aws_region"], REGION);
    assert_eq!(fetched["workspace_status"], "RUNNING");
    assert_eq!(fetched["compute_mode"], "HYBRID");
    assert!(
        fetched["deployment_name"]
            .as_str()
            .unwrap()
            .starts_with("dbc-")
    );
    assert!(fetched["creation_time"].is_i64());
    assert!(fetched.get("private_access_settings_id").is_none());
    assert_eq!(s.h.get("/workspaces").await.json(), json!([fetched]));
    s.h.get("/workspaces/42")
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn attaching_network_and_settings_takes_effect_immediately() {
    let s = scenario().await;
    let old_network = s.workspace.network_id.clone().unwrap();
    let reply = s.attach().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let answered = reply.json();
    assert_eq!(answered["workspace_id"], s.workspace.workspace_id);
    assert_eq!(answered["network_id"], s.network_id.as_str());
    assert_eq!(answered["private_access_settings_id"], s.pas_id.as_str());
    assert_eq!(answered["workspace_status"], "RUNNING");
    assert_eq!(s.current().await, answered);

    let new_network = s.h.get(&format!("/networks/{}", s.network_id)).await.json();
    assert_eq!(new_network["vpc_status"], "VALID");
    assert_eq!(new_network["workspace_id"], s.workspace.workspace_id);
    let old = s.h.get(&format!("/networks/{old_network}")).await.json();
    assert_eq!(old["vpc_status"], "UNATTACHED");
    assert!(old.get("workspace_id").is_none());
    // The old network is free again, so it can now be deleted.
    assert_eq!(
        s.h.delete(&format!("/networks/{old_network}")).await.status,
        200
    );
}

#[tokio::test]
async fn running_clusters_block_the_update() {
    let s = scenario().await;
    let state = s.h.emulator.state();
    state
        .set_workspace_clusters_running(s.workspace.workspace_id, true)
        .unwrap();
    let message = s.attach().await.expect_error(400, "INVALID_STATE");
    assert!(
        message.contains("terminate all running compute"),
        "{message}"
    );
    assert_eq!(
        s.current().await["network_id"],
        s.workspace.network_id.clone().unwrap().as_str()
    );
    state
        .set_workspace_clusters_running(s.workspace.workspace_id, false)
        .unwrap();
    assert_eq!(s.attach().await.status, 200);
}

#[tokio::test]
async fn privatelink_cannot_be_removed_or_downgraded() {
    let s = scenario().await;
    assert_eq!(s.attach().await.status, 200);
    let message = s
        .patch(json!({"private_access_settings_id": ""}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("private access settings"), "{message}");

    let plain =
        s.h.post(
            "/networks",
            json!({"network_name": "no-privatelink", "vpc_id": "vpc-0aaaaaaaaaaaaaaaa",
                   "subnet_ids": ["subnet-1", "subnet-2"], "security_group_ids": ["sg-1"]}),
        )
        .await
        .json();
    let message = s
        .patch(json!({"network_id": id(&plain, "network_id")}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("downgrade"), "{message}");
    let current = s.current().await;
    assert_eq!(current["network_id"], s.network_id.as_str());
    assert_eq!(current["private_access_settings_id"], s.pas_id.as_str());
}

#[tokio::test]
async fn settings_of_another_region_and_unknown_objects_are_refused() {
    let s = scenario().await;
    let elsewhere = s.h.pas("pas-eu", "eu-west-1").await;
    let message = s
        .patch(json!({"network_id": s.network_id, "private_access_settings_id": id(&elsewhere, "private_access_settings_id")}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("eu-west-1"), "{message}");
    let message = s
        .patch(json!({"network_id": "00000000-0000-0000-0000-000000000000", "private_access_settings_id": s.pas_id}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        message.contains("00000000-0000-0000-0000-000000000000"),
        "{message}"
    );
    s.h.api(
        Method::PATCH,
        "/workspaces/42",
        Some(json!({"network_id": s.network_id})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn a_privatelink_network_needs_private_access_settings_in_the_same_request() {
    let s = scenario().await;
    let message = s
        .patch(json!({"network_id": s.network_id}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("private_access_settings_id"), "{message}");
}

#[tokio::test]
async fn only_running_workspaces_can_be_updated() {
    let s = scenario().await;
    s.h.emulator
        .state()
        .force_workspace_status(
            s.workspace.workspace_id,
            WorkspaceStatus::Provisioning,
            "busy",
        )
        .unwrap();
    let message = s.attach().await.expect_error(400, "INVALID_STATE");
    assert!(message.contains("PROVISIONING"), "{message}");
    let current = s.current().await;
    assert_eq!(current["workspace_status"], "PROVISIONING");
    assert_eq!(current["workspace_status_message"], "busy");
}

#[tokio::test]
async fn a_failed_workspace_can_be_updated_and_is_provisioned_again() {
    let s = scenario().await;
    let state = s.h.emulator.state();
    state
        .force_workspace_status(s.workspace.workspace_id, WorkspaceStatus::Failed, "no NAT")
        .unwrap();
    let answered = s.attach().await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json()["workspace_status"], "PROVISIONING");
    let statuses: Vec<Value> = read_statuses(&s, 4).await;
    assert_eq!(
        statuses,
        vec![
            json!("PROVISIONING"),
            json!("PROVISIONING"),
            json!("RUNNING"),
            json!("RUNNING")
        ]
    );
    let current = s.current().await;
    assert_eq!(current["network_id"], s.network_id.as_str());
    assert_eq!(current["private_access_settings_id"], s.pas_id.as_str());

    // An update that fails again ends FAILED with its message, after PROVISIONING.
    let t = scenario().await;
    let state = t.h.emulator.state();
    state
        .force_workspace_status(t.workspace.workspace_id, WorkspaceStatus::Failed, "no NAT")
        .unwrap();
    state
        .fail_next_patch(t.workspace.workspace_id, "still no NAT")
        .unwrap();
    assert_eq!(t.attach().await.status, 200);
    let statuses = read_statuses(&t, 3).await;
    assert_eq!(
        statuses,
        vec![
            json!("PROVISIONING"),
            json!("PROVISIONING"),
            json!("FAILED")
        ]
    );
    assert_eq!(
        t.current().await["workspace_status_message"],
        "still no NAT"
    );
}

async fn read_statuses(s: &Scenario, reads: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    for _ in 0..reads {
        seen.push(s.current().await["workspace_status"].clone());
    }
    seen
}

#[tokio::test]
async fn endpoints_still_pending_block_the_attachment() {
    let s = scenario().await;
    let state = s.h.emulator.state();
    let network = s.h.get(&format!("/networks/{}", s.network_id)).await.json();
    let relay = network["vpc_endpoints"]["dataplane_relay"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let relay_vpce =
        s.h.get(&format!("/vpc-endpoints/{relay}")).await.json()["aws_vpc_endpoint_id"]
            .as_str()
            .unwrap()
            .to_owned();
    state.set_endpoint_state(&relay_vpce, Some("pendingAcceptance"));
    let message = s.attach().await.expect_error(400, "INVALID_STATE");
    assert!(message.contains(&relay), "{message}");
}

#[tokio::test]
async fn subnets_in_use_by_another_workspace_are_refused_at_attachment() {
    let s = scenario().await;
    let other = s.h.emulator.state().seed_workspace(
        &s.h.account,
        customer_vpc("ws-other", ["subnet-9", "subnet-2"]),
    );
    // The seed itself shares subnet-2 with ws-main's attached network.
    let error = other.unwrap_err();
    assert!(error.to_string().contains("subnet-2"), "{error}");

    let other =
        s.h.emulator
            .state()
            .seed_workspace(
                &s.h.account,
                customer_vpc("ws-other", ["subnet-8", "subnet-9"]),
            )
            .unwrap();
    let (_, _, clashing) =
        s.h.privatelink_network("2", &["subnet-9", "subnet-7"])
            .await;
    let message = s
        .patch(json!({"network_id": id(&clashing, "network_id"), "private_access_settings_id": s.pas_id}))
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("subnet-9"), "{message}");
    assert!(
        message.contains(&other.workspace_id.to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn security_groups_in_use_by_another_workspace_are_refused_at_attachment() {
    let s = scenario().await;
    let state = s.h.emulator.state();
    let mut sharing = customer_vpc("ws-other", ["subnet-8", "subnet-9"]);
    if let Some(network) = sharing.network.as_mut() {
        network.security_group_ids = vec!["sg-ws-main".into()];
    }
    let error = state.seed_workspace(&s.h.account, sharing).unwrap_err();
    assert!(error.to_string().contains("sg-ws-main"), "{error}");

    // ws-main now uses the PrivateLink network and its security group; a network of other
    // subnets with that group cannot be attached to another workspace.
    assert_eq!(s.attach().await.status, 200);
    let other = state
        .seed_workspace(
            &s.h.account,
            customer_vpc("ws-other", ["subnet-8", "subnet-9"]),
        )
        .unwrap();
    let (_, _, clashing) =
        s.h.privatelink_network("3", &["subnet-5", "subnet-6"])
            .await;
    let message = s
        .h
        .api(
            Method::PATCH,
            &format!(
                "/workspaces/{}?update_mask=network_id,private_access_settings_id",
                other.workspace_id
            ),
            Some(json!({"network_id": id(&clashing, "network_id"), "private_access_settings_id": s.pas_id})),
        )
        .await
        .expect_error(400, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("sg-0aaaaaaaaaaaaaaaa"), "{message}");
    assert!(
        message.contains(&s.workspace.workspace_id.to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn a_silent_revert_answers_success_without_applying() {
    let s = scenario().await;
    s.h.emulator
        .state()
        .set_silent_revert(s.workspace.workspace_id, true)
        .unwrap();
    let answered = s.attach().await;
    assert_eq!(answered.status, 200);
    assert_eq!(answered.json()["network_id"], s.network_id.as_str());
    let current = s.current().await;
    assert_eq!(
        current["network_id"],
        s.workspace.network_id.clone().unwrap().as_str()
    );
    assert!(current.get("private_access_settings_id").is_none());
    // One-shot: the retry applies.
    assert_eq!(s.attach().await.status, 200);
    assert_eq!(s.current().await["network_id"], s.network_id.as_str());
}

#[tokio::test]
async fn registrations_used_by_an_attached_network_cannot_be_deleted() {
    let s = scenario().await;
    let network = s.h.get(&format!("/networks/{}", s.network_id)).await.json();
    let rest = network["vpc_endpoints"]["rest_api"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // Unattached network: deletion allowed. Re-register to keep the scenario usable.
    let spare =
        s.h.register("vpce-0000000f", crate::support::REST_SERVICE)
            .await;
    let spare_id = id(&spare, "vpc_endpoint_id");
    s.h.post(
        "/networks",
        json!({"network_name": "spare-net", "vpc_id": "vpc-1", "subnet_ids": ["subnet-x", "subnet-y"],
               "security_group_ids": ["sg-1"], "vpc_endpoints": {"rest_api": [spare_id]}}),
    )
    .await;
    assert_eq!(
        s.h.delete(&format!("/vpc-endpoints/{spare_id}"))
            .await
            .status,
        200
    );

    assert_eq!(s.attach().await.status, 200);
    let message =
        s.h.delete(&format!("/vpc-endpoints/{rest}"))
            .await
            .expect_error(400, "INVALID_STATE");
    assert!(
        message.contains(&s.workspace.workspace_id.to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn serverless_workspaces_have_no_network_to_change() {
    let h = Harness::start().await;
    let workspace = h
        .emulator
        .state()
        .seed_workspace(
            &h.account,
            WorkspaceSeed {
                name: "serverless".into(),
                compute_mode: emulator::ComputeMode::Serverless,
                ..Default::default()
            },
        )
        .unwrap();
    let pas = h.pas("pas-sls", REGION).await;
    h.api(
        Method::PATCH,
        &format!("/workspaces/{}", workspace.workspace_id),
        Some(json!({"private_access_settings_id": id(&pas, "private_access_settings_id")})),
    )
    .await
    .expect_error(400, "INVALID_PARAMETER_VALUE");
}
