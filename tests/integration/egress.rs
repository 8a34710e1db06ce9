//! What a VPC without internet egress needs besides the two Databricks endpoints, through the real
//! binary and moto: the VPC checks before a switch warn, naming what is missing, when the cluster
//! subnets' route table reaches neither an S3 gateway endpoint nor a NAT or internet gateway, and
//! when the VPC has neither STS nor Kinesis interface endpoints nor a route out. They never
//! refuse: every Create and Update here switches.

use serde_json::{Value, json};

use crate::scenario::World;
use crate::support::events::RequestType;
use crate::support::fixtures::batch;

const S3_WARNING: &str = "reaches neither an S3 gateway endpoint nor a NAT or internet gateway";
const STS_WARNING: &str = "has no STS interface endpoint (com.amazonaws.us-east-1.sts)";
const KINESIS_WARNING: &str =
    "has no Kinesis interface endpoint (com.amazonaws.us-east-1.kinesis-streams)";

fn with_workspace(mut props: Value, id: i64) -> Value {
    props["WorkspaceIds"] = json!([id.to_string()]);
    props
}

/// How many log lines since `from` (a length of the log) carry `text`.
fn logged_since(logs: &str, from: usize, text: &str) -> usize {
    logs.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpc_without_a_way_to_s3_sts_or_kinesis_is_warned_about_and_still_switched() {
    let world = World::new().await;
    let net = world.networks[0].clone();
    let ws = world.seed_workspace_in_fixture(0, "egress");
    let props = with_workspace(world.props(0), ws);
    let main = batch(
        world.moto,
        &net.region,
        vec![json!({"op": "main_route_table", "vpc_id": net.vpc_id})],
    )
    .await[0]["route_table_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(main.starts_with("rtb-"), "{main}");

    // The fixture's VPC routes only inside itself and has only the Databricks endpoints.
    let mut stack = world.stack("egress");
    let created = world.create(&mut stack, props.clone()).await;
    created.assert_success();
    assert_eq!(
        world.workspace(ws).private_access_settings_id.as_deref(),
        Some(created.data("PrivateAccessSettingsId")),
        "a warning never stops the switch"
    );
    let logs = world.lambda.logs();
    // Named in sorted order, whatever order the network lists them in.
    let mut sorted = net.subnet_ids.clone();
    sorted.sort();
    let subnets = sorted.join(", ");
    assert!(
        logs.contains(&format!(
            "route table {main} of the cluster subnets {subnets} (workspace {ws}) {S3_WARNING}"
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "Add an S3 gateway endpoint (com.amazonaws.us-east-1.s3) to {main}"
        )),
        "{logs}"
    );
    for warning in [STS_WARNING, KINESIS_WARNING] {
        assert!(
            logs.contains(&format!("VPC {} {warning}", net.vpc_id)),
            "{warning}\n{logs}"
        );
    }

    // An S3 gateway endpoint on the subnets' route table: S3 is reached, STS and Kinesis not.
    batch(
        world.moto,
        &net.region,
        vec![json!({"op": "endpoint", "vpc_id": net.vpc_id,
                    "service_name": "com.amazonaws.us-east-1.s3", "endpoint_type": "Gateway",
                    "route_table_ids": [main]})],
    )
    .await;
    let from = world.lambda.logs().len();
    let updated = world
        .send(
            RequestType::Update,
            &stack,
            props.clone(),
            Some(props.clone()),
        )
        .await;
    updated.assert_success();
    let logs = world.lambda.logs();
    assert_eq!(logged_since(&logs, from, S3_WARNING), 0, "{logs}");
    assert!(logged_since(&logs, from, STS_WARNING) > 0, "{logs}");
    assert!(logged_since(&logs, from, KINESIS_WARNING) > 0, "{logs}");

    // STS and Kinesis interface endpoints in the cluster subnets: nothing is missing.
    let interface = |service: &str| {
        json!({"op": "endpoint", "vpc_id": net.vpc_id,
               "service_name": format!("com.amazonaws.us-east-1.{service}"),
               "endpoint_type": "Interface", "private_dns": true,
               "subnet_ids": net.subnet_ids, "security_group_ids": [net.endpoint_sg_id]})
    };
    batch(
        world.moto,
        &net.region,
        vec![interface("sts"), interface("kinesis-streams")],
    )
    .await;
    let from = world.lambda.logs().len();
    let updated = world
        .send(RequestType::Update, &stack, props.clone(), Some(props))
        .await;
    updated.assert_success();
    let logs = world.lambda.logs();
    assert_eq!(
        logged_since(&logs, from, "may leave clusters without S3, STS or Kinesis"),
        0,
        "{logs}"
    );
}
