//! The account API's own rules through the real binary: what the function refuses before it
//! writes, what it follows through, and what it says about objects Databricks will not change.

use std::time::{Duration, Instant};

use emulator::WorkspaceStatus;
use serde_json::{Value, json};

use crate::scenario::World;
use crate::support::events::RequestType::Delete;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_in_a_state_that_will_not_change_fails_at_once_naming_it() {
    let world = World::new().await;
    let net = &world.networks[0];
    for (state, advice) in [
        ("expired", "delete and recreate the VPC endpoint"),
        (
            "blocked",
            "none of the states Databricks documents for a registration waiting to be accepted",
        ),
    ] {
        world
            .emulator
            .state()
            .set_endpoint_state(&net.relay_vpce_id, Some(state));
        let mut stack = world.stack(&format!("registration-{state}"));
        let started = Instant::now();
        let failed = world.create(&mut stack, world.props(0)).await;
        failed.assert_failed_with(&format!(
            "registration of {} as {state}, which waiting will not change",
            net.relay_vpce_id
        ));
        assert!(failed.reason().contains(advice), "{}", failed.reason());
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a settled state fails at once, not at the deadline: {:?}",
            started.elapsed()
        );
        world
            .emulator
            .state()
            .set_endpoint_state(&net.relay_vpce_id, None);
        world
            .send(Delete, &stack, world.props(0), None)
            .await
            .assert_success();
        assert!(world.registrations().is_empty(), "{:#}", world.account());
    }
}

fn with_workspaces(mut props: Value, ids: &[i64]) -> Value {
    props["WorkspaceIds"] = json!(ids.iter().map(i64::to_string).collect::<Vec<_>>());
    props
}

fn patches(world: &World) -> usize {
    world
        .emulator
        .state()
        .count_requests("PATCH", "/workspaces/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_databricks_calls_broken_is_never_attached() {
    let world = World::new().await;
    let net = &world.networks[0];
    let ws = world.seed_workspace(0, "broken-network");
    // Databricks sees the first subnet in another VPC.
    let elsewhere = "vpc-0fffffffffffffff0";
    world
        .emulator
        .state()
        .describe_aws_subnet(&net.subnet_ids[0], elsewhere, "us-east-1a");
    let mut props = with_workspaces(world.props(0), &[ws]);
    props["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    let mut stack = world.stack("broken-network");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(&format!(
        "(for workspace {ws}) as BROKEN: subnet: Subnet {} is in VPC {elsewhere}",
        net.subnet_ids[0]
    ));
    failed.assert_reason_mentions("No workspace was switched");
    assert_eq!(patches(&world), 0, "no PATCH is sent");
    let after = world.workspace(ws);
    assert_eq!(after.workspace_status, WorkspaceStatus::Running);
    assert!(after.private_access_settings_id.is_none(), "{after:#?}");
    world
        .send(Delete, &stack, props, None)
        .await
        .assert_success();
    assert_eq!(world.networks().len(), 1, "{:#}", world.account());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_about_a_network_are_logged_and_given_when_the_switch_fails() {
    let world = World::new().await;
    let net = &world.networks[0];
    let ws = world.seed_workspace(0, "warned-network");
    let own = world
        .network(&world.workspace(ws).network_id.unwrap_or_default())
        .expect("the workspace's own network");
    let subnets = own.subnet_ids;
    for subnet in &subnets {
        world
            .emulator
            .state()
            .describe_aws_subnet(subnet, &net.vpc_id, "us-east-1a");
    }
    world
        .emulator
        .state()
        .fail_next_patch(ws, "Workspace update failed: cluster subnets unreachable")
        .expect("workspace exists");
    let mut stack = world.stack("warned-network");
    let failed = world
        .create(&mut stack, with_workspaces(world.props(0), &[ws]))
        .await;
    failed.assert_failed_with("cluster subnets unreachable");
    failed.assert_reason_mentions("Databricks warned about its network: subnet: Subnets");
    failed.assert_reason_mentions("are all in availability zone us-east-1a");
    assert!(
        world
            .lambda
            .wait_for_log(
                "Databricks warns about the network configuration the workspaces are switched to",
                Duration::from_secs(5),
            )
            .await,
        "the warning is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_workspace_is_switched_and_followed_to_running_or_its_failure() {
    let world = World::new().await;
    let recovers = world.seed_workspace(0, "failed-recovers");
    let fails_again = world.seed_workspace(0, "failed-again");
    for ws in [recovers, fails_again] {
        world
            .emulator
            .state()
            .force_workspace_status(
                ws,
                emulator::WorkspaceStatus::Failed,
                "Workspace provisioning failed: the cluster subnets have no route to the relay",
            )
            .expect("workspace exists");
    }

    let mut stack = world.stack("failed-recovers");
    let created = world
        .create(&mut stack, with_workspaces(world.props(0), &[recovers]))
        .await;
    created.assert_success();
    let after = world.workspace(recovers);
    assert_eq!(
        after.workspace_status,
        WorkspaceStatus::Running,
        "{after:#?}"
    );
    assert_eq!(
        after.private_access_settings_id.as_deref(),
        Some(created.data("PrivateAccessSettingsId"))
    );
    assert!(
        world
            .lambda
            .wait_for_log("Databricks provisions it again", Duration::from_secs(5))
            .await
    );

    world
        .emulator
        .state()
        .fail_next_patch(
            fails_again,
            "Workspace provisioning failed again: NAT gateway missing",
        )
        .expect("workspace exists");
    let mut stack = world.stack("failed-again");
    let failed = world
        .create(&mut stack, with_workspaces(world.props(0), &[fails_again]))
        .await;
    failed.assert_failed_with(&format!(
        "{fails_again}: the workspace went FAILED: Workspace provisioning failed again: NAT gateway missing"
    ));
    failed.assert_reason_mentions("cannot be removed from a workspace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_whose_answers_are_lost_leave_exactly_one_object_each() {
    use emulator::{FaultKind, FaultSpec, LostAnswer};
    let world = World::new().await;
    let net = &world.networks[0];
    let ws = world.seed_workspace(0, "lost-answers");
    let state = world.emulator.state();
    // Every write of the Create is carried out once with its answer lost.
    for (method, path, after, times) in [
        ("POST", "/vpc-endpoints", LostAnswer::Drop, 2),
        (
            "POST",
            "/private-access-settings",
            LostAnswer::GatewayTimeout,
            1,
        ),
        ("POST", "/networks", LostAnswer::Drop, 1),
        ("PATCH", "/workspaces/", LostAnswer::GatewayTimeout, 1),
    ] {
        state.inject_fault(
            FaultSpec::new(FaultKind::LoseAnswer(after))
                .method(method)
                .path_contains(path)
                .times(times),
        );
    }
    let props = with_workspaces(world.props(0), &[ws]);
    let mut stack = world.stack("lost-answers");
    let created = world.create(&mut stack, props.clone()).await;
    created.assert_success();
    assert!(state.armed_faults().is_empty(), "every fault was met");
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &created);
    let networks = world.networks();
    assert_eq!(
        networks.len(),
        2,
        "the workspace's own network and one copy: {:#}",
        world.account()
    );
    let after = world.workspace(ws);
    assert_eq!(
        after.private_access_settings_id.as_deref(),
        Some(created.data("PrivateAccessSettingsId"))
    );

    // The same Create delivered again finds everything and writes nothing.
    let writes = world.writes();
    let again = world
        .send(
            crate::support::events::RequestType::Create,
            &stack,
            props,
            None,
        )
        .await;
    again.assert_success();
    assert_eq!(world.writes(), writes, "no write on the second delivery");
    assert_eq!(
        again.data("PrivateAccessSettingsId"),
        created.data("PrivateAccessSettingsId")
    );
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &again);
    assert_eq!(world.networks().len(), 2, "{:#}", world.account());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_dropped_from_the_list_is_named_as_staying_switched() {
    let world = World::new().await;
    let (a, b) = (world.seed_workspace(0, "a"), world.seed_workspace(0, "b"));
    let mut stack = world.stack("dropped-workspace");
    let created = world
        .create(&mut stack, with_workspaces(world.props(0), &[a, b]))
        .await;
    created.assert_success();
    let updated = world
        .send(
            crate::support::events::RequestType::Update,
            &stack,
            with_workspaces(world.props(0), &[b]),
            Some(with_workspaces(world.props(0), &[a, b])),
        )
        .await;
    updated.assert_success();
    assert!(
        world
            .lambda
            .wait_for_log(
                &format!("workspace {a} is no longer in WorkspaceIds but stays switched to back-end PrivateLink"),
                Duration::from_secs(5),
            )
            .await,
        "the warning names the workspace"
    );
    let logs = world.lambda.logs();
    assert!(
        logs.contains("PrivateLink cannot be removed from a workspace"),
        "the warning says why"
    );
    assert!(
        !logs.contains(&format!("workspace {b} is no longer in WorkspaceIds")),
        "only the dropped workspace is named"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains(&format!("workspace {a} is no longer")) && l.contains("WARN")),
        "at warning level"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_subnets_and_groups_are_checked_in_ec2_before_any_write() {
    let world = World::with(crate::scenario::WorldOptions {
        networks: 2,
        ..Default::default()
    })
    .await;
    let (net, other_vpc) = (&world.networks[0], &world.networks[1]);
    let ws = world.seed_workspace(0, "network-checked");
    let mut stack = world.stack("network-in-ec2");

    // Subnets and a security group of another VPC, and a subnet that does not exist.
    let mut props = with_workspaces(world.props(0), &[ws]);
    props["Network"] = json!({
        "SubnetIds": [net.subnet_ids[0], other_vpc.subnet_ids[1]],
        "SecurityGroupIds": [other_vpc.cluster_sg_id],
    });
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with(&format!(
        "Network.SubnetIds: subnet {} is in VPC {}, not in the endpoints' VPC {}",
        other_vpc.subnet_ids[1], other_vpc.vpc_id, net.vpc_id
    ));
    failed.assert_reason_mentions(&format!(
        "Network.SecurityGroupIds: security group {} is in VPC {}",
        other_vpc.cluster_sg_id, other_vpc.vpc_id
    ));
    let mut props = with_workspaces(world.props(0), &[ws]);
    props["Network"] = json!({
        "SubnetIds": [net.subnet_ids[0], "subnet-0000000000000dead"],
        "SecurityGroupIds": [net.cluster_sg_id],
    });
    let mut stack = world.stack("network-missing-subnet");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with("subnet subnet-0000000000000dead does not exist");

    // Subnets another workspace's network uses.
    let user = world.seed_workspace_with(emulator::WorkspaceSeed {
        name: "uses-the-subnets".into(),
        network: Some(emulator::NetworkSeed {
            vpc_id: net.vpc_id.clone(),
            subnet_ids: net.subnet_ids.clone(),
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
        }),
        ..Default::default()
    });
    let mut props = with_workspaces(world.props(0), &[ws]);
    props["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    let mut stack = world.stack("network-in-use");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with(&format!("of workspace {user}: Databricks does not let subnets or security groups be shared between workspaces"));
    assert_eq!(
        world.writes(),
        0,
        "nothing is written: {:#}",
        world.account()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_wait_for_networks_to_go_and_ask_again_after_a_bare_conflict() {
    use emulator::{FaultBody, FaultKind, FaultSpec};
    let world = World::new().await;
    let net = &world.networks[0];
    let mut props = world.props(0);
    props["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    let mut stack = world.stack("deletes-wait");
    let created = world.create(&mut stack, props.clone()).await;
    created.assert_success();
    let network_id = created.data("NetworkId").to_string();

    // The network goes away asynchronously and uses its registrations until it is gone; the
    // private access settings' first DELETE gets a 409 that says nothing.
    world.emulator.state().inject_fault(
        FaultSpec::new(FaultKind::Status {
            status: 409,
            retry_after: None,
            body: FaultBody::Empty,
        })
        .method("DELETE")
        .path_contains("/private-access-settings/"),
    );
    let deleted = world.send(Delete, &stack, props, None).await;
    deleted.assert_success();
    let account = world.account();
    assert!(world.registrations().is_empty(), "{account:#}");
    assert!(world.access_settings().is_empty(), "{account:#}");
    assert!(world.network(&network_id).is_none(), "{account:#}");
    assert!(account.deleting_networks.is_empty(), "{account:#}");
    let logs = world.lambda.logs();
    assert!(
        !logs.contains("kept: still in use"),
        "nothing is kept: {logs}"
    );
    assert!(
        world
            .emulator
            .state()
            .count_requests("GET", &format!("/networks/{network_id}"))
            >= 1,
        "the deleted network is read until it is gone"
    );
}
