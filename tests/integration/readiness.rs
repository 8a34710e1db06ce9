//! The VPC checked from the AWS APIs before a workspace is switched, through the real binary and
//! moto: a VPC with DNS resolution off, or an endpoint security group that does not admit the
//! cluster security group on the relay port, switches nothing and names what to change; the same
//! VPC put right switches.

use serde_json::{Value, json};

use crate::scenario::World;
use crate::support::fixtures::batch;

fn with_workspace(mut props: Value, id: i64) -> Value {
    props["WorkspaceIds"] = json!([id.to_string()]);
    props
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpc_that_cannot_carry_the_traffic_switches_nothing_and_one_put_right_switches() {
    let world = World::new().await;
    let net = world.networks[0].clone();
    // A workspace whose clusters run in the fixture's real subnets and cluster security group.
    let ws = world.seed_workspace_with(emulator::WorkspaceSeed {
        name: "ready".into(),
        network: Some(emulator::NetworkSeed {
            vpc_id: net.vpc_id.clone(),
            subnet_ids: net.subnet_ids.clone(),
            security_group_ids: vec![net.cluster_sg_id.clone()],
        }),
        ..emulator::WorkspaceSeed::default()
    });
    let props = with_workspace(world.props(0), ws);
    let set_dns_support = |on: bool| json!({"op": "vpc_attribute", "vpc_id": net.vpc_id, "name": "EnableDnsSupport", "value": on});

    batch(world.moto, &net.region, vec![set_dns_support(false)]).await;
    let mut stack = world.stack("dns-off");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(&format!(
        "VPC {} has DNS resolution (enableDnsSupport) turned off",
        net.vpc_id
    ));
    assert!(
        failed.reason().contains("No workspace was switched"),
        "{}",
        failed.reason()
    );
    assert_eq!(
        world.writes(),
        0,
        "nothing is written when the VPC is refused"
    );
    assert!(world.workspace(ws)["private_access_settings_id"].is_null());

    batch(
        world.moto,
        &net.region,
        vec![
            set_dns_support(true),
            json!({"op": "revoke_ingress", "group_id": net.endpoint_sg_id,
                   "source_group_id": net.cluster_sg_id, "ports": [[6666, 6666], [2443, 2443]]}),
        ],
    )
    .await;
    let mut stack = world.stack("relay-closed");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(&format!(
        "the SCC relay endpoint {}'s security groups ({}) do not admit workspace {ws}'s cluster security groups ({})",
        net.relay_vpce_id, net.endpoint_sg_id, net.cluster_sg_id
    ));
    assert!(
        failed.reason().contains(&format!(
            "add an inbound rule for TCP 6666 from {} to {}",
            net.cluster_sg_id, net.endpoint_sg_id
        )),
        "{}",
        failed.reason()
    );
    assert!(
        !failed.reason().contains("REST API endpoint"),
        "443 is still open: {}",
        failed.reason()
    );
    assert_eq!(world.writes(), 0);
    assert!(world.workspace(ws)["private_access_settings_id"].is_null());

    batch(
        world.moto,
        &net.region,
        vec![
            json!({"op": "endpoint_ingress", "group_id": net.endpoint_sg_id,
                    "source_group_id": net.cluster_sg_id, "ports": [[6666, 6666]]}),
        ],
    )
    .await;
    let mut stack = world.stack("ready");
    let created = world.create(&mut stack, props).await;
    created.assert_success();
    assert_eq!(created.data("AttachedWorkspaceIds"), ws.to_string());
    assert_eq!(
        world.workspace(ws)["private_access_settings_id"].as_str(),
        Some(created.data("PrivateAccessSettingsId"))
    );
    assert!(
        !world.lambda.logs().contains("may not let clusters reach"),
        "a VPC that is all right gives no warning"
    );
}
