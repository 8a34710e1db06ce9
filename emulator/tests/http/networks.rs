//! Network configurations: validation, endpoint use cases, immutability, deletion while attached.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Harness, RELAY_SERVICE, REST_SERVICE, id};

fn network(subnets: Value, groups: Value, endpoints: Value) -> Value {
    json!({
        "network_name": "network-under-test",
        "vpc_id": "vpc-0bbbbbbbbbbbbbbbb",
        "subnet_ids": subnets,
        "security_group_ids": groups,
        "vpc_endpoints": endpoints,
    })
}

#[tokio::test]
async fn a_new_network_with_privatelink_is_unattached() {
    let h = Harness::start().await;
    let (rest, relay, created) = h
        .privatelink_network("1", &["subnet-a1", "subnet-b1"])
        .await;
    assert_eq!(created["vpc_status"], "UNATTACHED");
    assert!(created.get("workspace_id").is_none());
    assert!(created["creation_time"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        created["vpc_endpoints"],
        json!({"rest_api": [id(&rest, "vpc_endpoint_id")], "dataplane_relay": [id(&relay, "vpc_endpoint_id")]})
    );
    let network_id = id(&created, "network_id");
    assert_eq!(
        h.get(&format!("/networks/{network_id}")).await.json(),
        created
    );
    assert_eq!(h.get("/networks").await.json(), json!([created]));
}

#[tokio::test]
async fn subnets_security_groups_and_endpoint_ids_are_checked() {
    let h = Harness::start().await;
    let rest = id(
        &h.register("vpce-00000021", REST_SERVICE).await,
        "vpc_endpoint_id",
    );
    let relay = id(
        &h.register("vpce-00000022", RELAY_SERVICE).await,
        "vpc_endpoint_id",
    );
    let two = json!(["subnet-a", "subnet-b"]);
    let one_sg = json!(["sg-1"]);
    let cases = [
        (
            network(json!(["subnet-a"]), one_sg.clone(), json!({})),
            "subnet_ids",
        ),
        (
            network(two.clone(), json!([]), json!({})),
            "security_group_ids",
        ),
        (
            network(
                two.clone(),
                json!(["sg-1", "sg-2", "sg-3", "sg-4", "sg-5", "sg-6"]),
                json!({}),
            ),
            "security_group_ids",
        ),
        (
            network(
                two.clone(),
                one_sg.clone(),
                json!({"rest_api": [relay.clone()]}),
            ),
            "DATAPLANE_RELAY_ACCESS",
        ),
        (
            network(
                two.clone(),
                one_sg.clone(),
                json!({"dataplane_relay": [rest.clone()]}),
            ),
            "GENERAL_ACCESS",
        ),
        (
            network(
                two.clone(),
                one_sg.clone(),
                json!({"rest_api": ["vpce-00000021"]}),
            ),
            "vpce-00000021",
        ),
    ];
    for (body, expected) in cases {
        let message = h
            .post("/networks", body.clone())
            .await
            .expect_error(400, "INVALID_PARAMETER_VALUE");
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(h.get("/networks").await.json(), json!([]));
}

#[tokio::test]
async fn networks_cannot_be_updated() {
    let h = Harness::start().await;
    let (_, _, created) = h
        .privatelink_network("2", &["subnet-a2", "subnet-b2"])
        .await;
    let path = format!("/networks/{}", id(&created, "network_id"));
    for method in [Method::PUT, Method::PATCH] {
        h.api(method, &path, Some(json!({"network_name": "renamed"})))
            .await
            .expect_error(404, "ENDPOINT_NOT_FOUND");
    }
    assert_eq!(h.get(&path).await.json()["network_name"], "pl-network-2");
}

#[tokio::test]
async fn an_attached_network_cannot_be_deleted_but_a_detached_one_can() {
    let h = Harness::start().await;
    let workspace = h
        .emulator
        .state()
        .seed_workspace(
            &h.account,
            emulator::WorkspaceSeed {
                name: "ws-delete".into(),
                network: Some(emulator::NetworkSeed {
                    vpc_id: "vpc-0ccccccccccccccccc".into(),
                    subnet_ids: vec!["subnet-c1".into(), "subnet-c2".into()],
                    security_group_ids: vec!["sg-c".into()],
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let network_id = workspace.network_id.clone().unwrap();
    let attached = h.get(&format!("/networks/{network_id}")).await.json();
    assert_eq!(attached["vpc_status"], "VALID");
    assert_eq!(attached["workspace_id"], workspace.workspace_id);
    let message = h
        .delete(&format!("/networks/{network_id}"))
        .await
        .expect_error(400, "INVALID_STATE");
    assert_eq!(
        message,
        format!(
            "Unable to delete, Network is being used by active workspace {}",
            workspace.workspace_id
        )
    );

    let (_, _, spare) = h
        .privatelink_network("3", &["subnet-a3", "subnet-b3"])
        .await;
    let spare_path = format!("/networks/{}", id(&spare, "network_id"));
    let deleted = h.delete(&spare_path).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["network_name"], "pl-network-3");
    // Deletion takes a little while: still there for two reads (and still using its
    // registrations meanwhile), then gone.
    let rest_id = spare["vpc_endpoints"]["rest_api"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let message = h
        .delete(&format!("/vpc-endpoints/{rest_id}"))
        .await
        .expect_error(400, "INVALID_STATE");
    assert!(message.contains("which is being deleted"), "{message}");
    h.delete(&spare_path)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(h.get(&spare_path).await.status, 200);
    let listed = h.get("/networks").await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["network_id"] == spare["network_id"]),
        "{listed:#}"
    );
    h.get(&spare_path)
        .await
        .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(
        h.delete(&format!("/vpc-endpoints/{rest_id}")).await.status,
        200,
        "once the network is gone its registrations can go"
    );
}

#[tokio::test]
async fn networks_report_vpc_status_with_error_and_warning_messages() {
    let h = Harness::start().await;
    let state = h.emulator.state();
    state.describe_aws_subnet("subnet-a", "vpc-0bbbbbbbbbbbbbbbb", "us-east-1a");
    state.describe_aws_subnet("subnet-b", "vpc-0bbbbbbbbbbbbbbbb", "us-east-1a");
    state.describe_aws_subnet("subnet-c", "vpc-0bbbbbbbbbbbbbbbb", "us-east-1b");
    state.describe_aws_subnet("subnet-x", "vpc-0ccccccccccccccc0", "us-east-1b");
    state.describe_aws_security_group("sg-x", "vpc-0ccccccccccccccc0");

    let fine = h
        .post(
            "/networks",
            network(json!(["subnet-a", "subnet-c"]), json!(["sg-1"]), json!({})),
        )
        .await
        .json();
    assert_eq!(fine["vpc_status"], "UNATTACHED");
    assert!(fine.get("error_messages").is_none() && fine.get("warning_messages").is_none());

    let warned = h
        .post(
            "/networks",
            network(json!(["subnet-a", "subnet-b"]), json!(["sg-1"]), json!({})),
        )
        .await
        .json();
    assert_eq!(warned["vpc_status"], "WARNED");
    assert_eq!(warned["warning_messages"][0]["warning_type"], "subnet");
    assert!(
        warned["warning_messages"][0]["warning_message"]
            .as_str()
            .unwrap()
            .contains("us-east-1a"),
        "{warned:#}"
    );

    // Errors are data: the create succeeds and the network is BROKEN.
    let broken = h
        .post(
            "/networks",
            network(json!(["subnet-a", "subnet-x"]), json!(["sg-x"]), json!({})),
        )
        .await;
    assert_eq!(broken.status, 200, "{}", broken.text);
    let broken = broken.json();
    assert_eq!(broken["vpc_status"], "BROKEN");
    assert_eq!(
        broken["error_messages"],
        json!([
            {"error_type": "subnet", "error_message": "Subnet subnet-x is in VPC vpc-0ccccccccccccccc0, not in the network's VPC vpc-0bbbbbbbbbbbbbbbb"},
            {"error_type": "securityGroup", "error_message": "Security group sg-x is in VPC vpc-0ccccccccccccccc0, not in the network's VPC vpc-0bbbbbbbbbbbbbbbb"},
        ])
    );
    assert_eq!(
        h.get(&format!("/networks/{}", id(&broken, "network_id")))
            .await
            .json(),
        broken
    );
}
