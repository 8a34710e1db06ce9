//! Network configuration and workspace attachment through the real binary: after each sequence
//! the account holds exactly what the stack's current state needs, and nothing a workspace uses
//! was deleted.

use emulator::{Network, NetworkVpcEndpoints, WorkspaceStatus};
use serde_json::{Value, json};

use crate::scenario::World;
use crate::support::events::RequestType::{Delete, Update};

fn with_workspaces(mut props: Value, ids: &[i64]) -> Value {
    props["WorkspaceIds"] = json!(ids.iter().map(i64::to_string).collect::<Vec<_>>());
    props
}

fn ids(values: &[String]) -> Vec<String> {
    let mut v = values.to_vec();
    v.sort();
    v
}

fn endpoints(network: &Network) -> NetworkVpcEndpoints {
    network.vpc_endpoints.clone().unwrap_or_default()
}

fn minutes_from_now(iso: &str) -> i64 {
    let secs = std::process::Command::new("date")
        .args(["-u", "-d", iso, "+%s"])
        .output()
        .expect("date runs");
    let then: i64 = String::from_utf8_lossy(&secs.stdout)
        .trim()
        .parse()
        .expect("ReadyAfter parses as a date");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (then - now) / 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_a_workspace_copies_its_network_with_the_endpoints_added() {
    let world = World::new().await;
    let ws = world.seed_workspace(0, "analytics");
    let before = world.workspace(ws);
    let original = world
        .network(before.network_id.as_deref().unwrap())
        .unwrap();

    let mut stack = world.stack("attach-one");
    let created = world
        .create(&mut stack, with_workspaces(world.props(0), &[ws]))
        .await;
    created.assert_success();
    assert_eq!(created.data("AttachedWorkspaceIds"), ws.to_string());
    let wait = minutes_from_now(created.data("ReadyAfter"));
    assert!(
        (19..=20).contains(&wait),
        "ReadyAfter {} is {wait} min away",
        created.data("ReadyAfter")
    );

    let after = world.workspace(ws);
    assert_eq!(
        after.private_access_settings_id.as_deref(),
        Some(created.data("PrivateAccessSettingsId"))
    );
    assert_eq!(after.workspace_status, WorkspaceStatus::Running);
    let copy = world.network(after.network_id.as_deref().unwrap()).unwrap();
    assert_ne!(
        copy.network_id, original.network_id,
        "a new network carries the endpoints"
    );
    assert_eq!(
        ids(&copy.subnet_ids),
        ids(&original.subnet_ids),
        "the cluster subnets stay as they were"
    );
    assert_eq!(
        ids(&copy.security_group_ids),
        ids(&original.security_group_ids)
    );
    assert_eq!(copy.vpc_id, original.vpc_id);
    assert_eq!(
        endpoints(&copy).rest_api,
        vec![created.data("RestApiVpcEndpointRegistrationId")]
    );
    assert_eq!(
        endpoints(&copy).dataplane_relay,
        vec![created.data("RelayVpcEndpointRegistrationId")]
    );

    // Delete: the workspace keeps using the network, settings and registrations, so they stay;
    // the workspace's original network is never touched; the stack still deletes.
    let deleted = world
        .send(Delete, &stack, with_workspaces(world.props(0), &[ws]), None)
        .await;
    deleted.assert_success();
    // Nothing is going away, so a refusal as in use is final: no asking again for 20 s.
    assert!(
        deleted.elapsed < std::time::Duration::from_secs(5),
        "the Delete took {:?}",
        deleted.elapsed
    );
    assert_eq!(world.registrations().len(), 2, "{:#}", world.account());
    assert_eq!(world.access_settings().len(), 1);
    assert!(world.network(&copy.network_id).is_some());
    assert!(world.network(&original.network_id).is_some());
    assert_eq!(
        world.workspace(ws).network_id.as_deref(),
        Some(copy.network_id.as_str())
    );
    assert!(
        world.lambda.logs().contains("kept: still in use"),
        "the kept objects are logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workspaces_are_switched_and_updates_add_and_remove_them() {
    let world = World::new().await;
    let (a, b, c) = (
        world.seed_workspace(0, "a"),
        world.seed_workspace(0, "b"),
        world.seed_workspace(0, "c"),
    );
    let mut stack = world.stack("attach-many");
    let created = world
        .create(&mut stack, with_workspaces(world.props(0), &[a, b]))
        .await;
    created.assert_success();
    assert_eq!(created.data("AttachedWorkspaceIds"), format!("{a},{b}"));
    let pas = created.data("PrivateAccessSettingsId").to_string();
    for ws in [a, b] {
        assert_eq!(
            world.workspace(ws).private_access_settings_id.as_deref(),
            Some(pas.as_str())
        );
    }
    assert!(
        world.workspace(c).private_access_settings_id.is_none(),
        "c is not in WorkspaceIds"
    );

    // Add c, remove a: a cannot be switched back, so what it uses stays.
    let a_network = world.workspace(a).network_id.unwrap();
    let updated = world
        .send(
            Update,
            &stack,
            with_workspaces(world.props(0), &[b, c]),
            Some(with_workspaces(world.props(0), &[a, b])),
        )
        .await;
    updated.assert_success();
    assert_eq!(updated.physical_id(), created.physical_id());
    assert_eq!(updated.data("AttachedWorkspaceIds"), format!("{b},{c}"));
    assert_eq!(
        world.workspace(c).private_access_settings_id.as_deref(),
        Some(pas.as_str())
    );
    assert_eq!(
        world.workspace(a).private_access_settings_id.as_deref(),
        Some(pas.as_str()),
        "never downgraded"
    );
    assert!(
        world.network(&a_network).is_some(),
        "the network a still uses is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_property_builds_one_network_for_the_workspace() {
    let world = World::new().await;
    let net = &world.networks[0];
    let ws = world.seed_workspace(0, "shared");
    let mut props = with_workspaces(world.props(0), &[ws]);
    props["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    let mut stack = world.stack("network-prop");
    let created = world.create(&mut stack, props.clone()).await;
    created.assert_success();
    let network_id = created.data("NetworkId");
    assert!(!network_id.is_empty(), "{:#}", created.response);
    let network = world.network(network_id).unwrap();
    assert_eq!(ids(&network.subnet_ids), {
        let mut s = net.subnet_ids.clone();
        s.sort();
        s
    });
    assert_eq!(
        network.vpc_id, net.vpc_id,
        "VpcId defaults to the endpoints' VPC"
    );
    assert_eq!(world.workspace(ws).network_id.as_deref(), Some(network_id));

    // The same Update again converges to the same objects.
    let again = world.send(Update, &stack, props.clone(), Some(props)).await;
    again.assert_success();
    assert_eq!(again.data("NetworkId"), network_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_that_cannot_be_switched_are_refused_before_any_write() {
    let world = World::new().await;
    let unmanaged = world.seed_workspace_with(emulator::WorkspaceSeed {
        name: "managed-vpc".into(),
        ..Default::default()
    });
    let serverless = world.seed_workspace_with(emulator::WorkspaceSeed {
        name: "serverless".into(),
        compute_mode: emulator::ComputeMode::Serverless,
        ..Default::default()
    });
    let mut stack = world.stack("refused");
    let failed = world
        .create(
            &mut stack,
            with_workspaces(world.props(0), &[unmanaged, serverless, 777]),
        )
        .await;
    failed.assert_failed_with(&format!(
        "workspace {unmanaged} does not run in a customer-managed VPC"
    ));
    failed.assert_reason_mentions(&format!("workspace {serverless} is serverless"));
    failed.assert_reason_mentions("workspace 777 is not in Databricks account");
    assert_eq!(
        world.writes(),
        0,
        "nothing is written before the workspaces are checked"
    );
    world
        .send(
            Delete,
            &stack,
            with_workspaces(world.props(0), &[unmanaged]),
            None,
        )
        .await
        .assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_clusters_and_silent_reverts_fail_clearly_and_leave_nothing_behind() {
    let world = World::new().await;
    let busy = world.seed_workspace(0, "busy");
    world
        .emulator
        .state()
        .set_workspace_clusters_running(busy, true)
        .expect("workspace exists");
    let mut stack = world.stack("busy");
    let failed = world
        .create(&mut stack, with_workspaces(world.props(0), &[busy]))
        .await;
    failed.assert_failed_with(&format!("{busy}:"));
    failed.assert_reason_mentions("terminate all running compute");
    failed.assert_reason_mentions("no workspace was switched");
    let deleted = world
        .send(
            Delete,
            &stack,
            with_workspaces(world.props(0), &[busy]),
            None,
        )
        .await;
    deleted.assert_success();
    assert!(
        world.registrations().is_empty() && world.access_settings().is_empty(),
        "{:#}",
        world.account()
    );
    assert_eq!(
        world.networks().len(),
        1,
        "only the workspace's own network is left: {:#}",
        world.account()
    );

    let reverting = world.seed_workspace(0, "reverting");
    world
        .emulator
        .state()
        .set_silent_revert(reverting, true)
        .expect("workspace exists");
    let mut stack = world.stack("revert");
    let failed = world
        .create(&mut stack, with_workspaces(world.props(0), &[reverting]))
        .await;
    failed.assert_failed_with("reverted silently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_change_repoints_attached_workspaces_and_removes_what_it_supersedes() {
    let world = World::new().await;
    let ws = world.seed_workspace(0, "repoint");
    let mut stack = world.stack("repoint");
    let created = world
        .create(&mut stack, with_workspaces(world.props(0), &[ws]))
        .await;
    created.assert_success();
    let old_network = world.workspace(ws).network_id.unwrap();

    let net = &world.networks[0];
    let new_relay = world.new_relay_endpoint(0).await;
    let mut props = with_workspaces(world.props(0), &[ws]);
    props["RelayVpcEndpointId"] = json!(new_relay);
    let updated = world
        .send(
            Update,
            &stack,
            props,
            Some(with_workspaces(world.props(0), &[ws])),
        )
        .await;
    updated.assert_success();

    let new_network = world.workspace(ws).network_id.unwrap();
    assert_ne!(new_network, old_network, "re-pointed to a new network");
    assert!(
        world.network(&old_network).is_none(),
        "the superseded network is removed: {:#}",
        world.account()
    );
    assert_eq!(
        endpoints(&world.network(&new_network).unwrap()).dataplane_relay,
        vec![updated.data("RelayVpcEndpointRegistrationId")]
    );
    world.assert_exactly(&[&net.rest_vpce_id, &new_relay], &updated);
}

/// A workspace dropped from `WorkspaceIds` keeps its network, which still lists the superseded
/// relay registration: that registration stays, at once, without waiting for a network that is
/// not going away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_a_kept_network_still_lists_is_kept_without_waiting() {
    let world = World::new().await;
    let (kept, moved) = (
        world.seed_workspace(0, "kept"),
        world.seed_workspace(0, "moved"),
    );
    let mut stack = world.stack("kept-network");
    let created = world
        .create(&mut stack, with_workspaces(world.props(0), &[kept, moved]))
        .await;
    created.assert_success();
    let old_relay = created.data("RelayVpcEndpointRegistrationId").to_string();
    let kept_network = world.workspace(kept).network_id.unwrap();

    let new_relay = world.new_relay_endpoint(0).await;
    let mut props = with_workspaces(world.props(0), &[moved]);
    props["RelayVpcEndpointId"] = json!(new_relay);
    let updated = world
        .send(
            Update,
            &stack,
            props,
            Some(with_workspaces(world.props(0), &[kept, moved])),
        )
        .await;
    updated.assert_success();
    assert!(
        // Asking again would wait out its 20 s of patience.
        updated.elapsed < std::time::Duration::from_secs(15),
        "the Update waited {:?} for a network that stays",
        updated.elapsed
    );
    assert_eq!(
        world.workspace(kept).network_id.as_deref(),
        Some(kept_network.as_str())
    );
    assert!(
        world
            .registrations()
            .iter()
            .any(|r| r.vpc_endpoint_id == old_relay),
        "the registration the kept network lists stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_that_goes_failed_after_the_switch_is_named_with_its_status_message() {
    let world = World::new().await;
    let ws = world.seed_workspace(0, "fails");
    world
        .emulator
        .state()
        .fail_next_patch(
            ws,
            "Network validation failed: subnet has no route to the relay",
        )
        .expect("workspace exists");
    let mut stack = world.stack("goes-failed");
    let failed = world
        .create(&mut stack, with_workspaces(world.props(0), &[ws]))
        .await;
    failed.assert_failed_with(&format!("{ws}: the workspace went FAILED"));
    failed.assert_reason_mentions("subnet has no route to the relay");
    failed.assert_reason_mentions("cannot be removed from a workspace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_for_several_workspaces_is_refused_before_any_write() {
    let world = World::new().await;
    let net = &world.networks[0];
    let (a, b) = (world.seed_workspace(0, "a"), world.seed_workspace(0, "b"));
    let mut props = with_workspaces(world.props(0), &[a, b]);
    props["Network"] =
        json!({"SubnetIds": net.subnet_ids, "SecurityGroupIds": [net.cluster_sg_id]});
    let mut stack = world.stack("one-network-two-workspaces");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with(&format!(
        "Network can serve one workspace only, but WorkspaceIds lists 2 ({a}, {b})"
    ));
    assert!(
        failed.reason().contains("Leave Network unset")
            && failed.reason().contains("one resource per workspace"),
        "the reason says what to do instead: {}",
        failed.reason()
    );
    assert_eq!(
        world.writes(),
        0,
        "nothing is written: {:#}",
        world.account()
    );
    for ws in [a, b] {
        assert!(
            world.workspace(ws).private_access_settings_id.is_none(),
            "workspace {ws} is not switched"
        );
    }
    world
        .send(Delete, &stack, props, None)
        .await
        .assert_success();
}
