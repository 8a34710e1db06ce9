//! CloudFormation's request sequences through the real binary: after each, the account holds
//! exactly the objects of the stack's current state.

use emulator::PrivateAccessLevel;
use serde_json::json;

use crate::scenario::{TIMEOUT, World, WorldOptions};
use crate::support::events::RequestType::{Create, Delete, Update};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_registers_both_endpoints_and_public_access_settings() {
    let world = World::new().await;
    let mut stack = world.stack("create");
    let net = &world.networks[0];
    let answer = world.create(&mut stack, world.props(0)).await;
    answer.assert_success();
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &answer);

    assert!(
        answer
            .physical_id()
            .starts_with("databricks-backend-privatelink-"),
        "{}",
        answer.physical_id()
    );
    assert_eq!(
        answer.data("RelayHostname"),
        "tunnel.us-east-1.cloud.databricks.com"
    );
    let pas = &world.access_settings()[0];
    assert!(pas.public_access_enabled, "{pas:#?}");
    assert_eq!(
        pas.private_access_level,
        PrivateAccessLevel::Account,
        "{pas:#?}"
    );
    assert_eq!(pas.region, "us-east-1");
    for r in world.registrations() {
        assert_eq!(r.state.to_ascii_lowercase(), "available", "{r:#?}");
        assert!(r.vpc_endpoint_name.starts_with("create-"), "{r:#?}");
    }
    // The secret never leaves for anything but the accounts host, and never reaches the logs.
    assert!(!world.lambda.logs().contains(crate::scenario::CLIENT_SECRET));

    let deleted = world.send(Delete, &stack, world.props(0), None).await;
    deleted.assert_success();
    assert_eq!(deleted.physical_id(), answer.physical_id());
    assert!(world.registrations().is_empty(), "{:#}", world.account());
    assert!(world.access_settings().is_empty(), "{:#}", world.account());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_of_access_settings_replaces_them_in_place() {
    let world = World::new().await;
    let mut stack = world.stack("pas-update");
    let created = world.create(&mut stack, world.props(0)).await;
    created.assert_success();
    let pas_id = created.data("PrivateAccessSettingsId").to_string();

    let mut props = world.props(0);
    props["PrivateAccessLevel"] = json!("ENDPOINT");
    let updated = world
        .send(Update, &stack, props, Some(world.props(0)))
        .await;
    updated.assert_success();
    assert_eq!(updated.physical_id(), created.physical_id());
    assert_eq!(
        updated.data("PrivateAccessSettingsId"),
        pas_id,
        "replaced in place, not recreated"
    );
    let pas = &world.access_settings()[0];
    assert_eq!(pas.private_access_level, PrivateAccessLevel::Endpoint);
    assert!(
        pas.public_access_enabled,
        "PUT must send public_access_enabled explicitly"
    );
    let mut allowed: Vec<&str> = pas
        .allowed_vpc_endpoint_ids
        .iter()
        .map(String::as_str)
        .collect();
    allowed.sort();
    let mut own = vec![
        created.data("RestApiVpcEndpointRegistrationId"),
        created.data("RelayVpcEndpointRegistrationId"),
    ];
    own.sort();
    assert_eq!(
        allowed, own,
        "the resource's own endpoints are always allowed"
    );
    let net = &world.networks[0];
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_to_a_new_relay_endpoint_replaces_only_that_registration() {
    let world = World::with(WorldOptions {
        networks: 2,
        ..WorldOptions::default()
    })
    .await;
    let mut stack = world.stack("relay-swap");
    let created = world.create(&mut stack, world.props(0)).await;
    created.assert_success();

    // A new relay endpoint in the same VPC.
    let net = &world.networks[0];
    let new_relay = world.new_relay_endpoint(0).await;
    let mut props = world.props(0);
    props["RelayVpcEndpointId"] = json!(new_relay);
    let updated = world
        .send(Update, &stack, props, Some(world.props(0)))
        .await;
    updated.assert_success();
    assert_eq!(updated.physical_id(), created.physical_id());
    assert_eq!(
        updated.data("RestApiVpcEndpointRegistrationId"),
        created.data("RestApiVpcEndpointRegistrationId"),
        "the REST registration stays"
    );
    assert_ne!(
        updated.data("RelayVpcEndpointRegistrationId"),
        created.data("RelayVpcEndpointRegistrationId")
    );
    world.assert_exactly(&[&net.rest_vpce_id, &new_relay], &updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_update_then_rollback_restores_the_old_state() {
    let world = World::new().await;
    let mut stack = world.stack("rollback");
    let created = world.create(&mut stack, world.props(0)).await;
    created.assert_success();

    let net = &world.networks[0];
    let new_relay = world.new_relay_endpoint(0).await;
    world
        .emulator
        .state()
        .set_endpoint_state(&new_relay, Some("rejected"));
    let mut props = world.props(0);
    props["RelayVpcEndpointId"] = json!(new_relay);
    let failed = world
        .send(Update, &stack, props.clone(), Some(world.props(0)))
        .await;
    failed.assert_failed_with("rejected");
    assert_eq!(
        failed.physical_id(),
        created.physical_id(),
        "a failed Update keeps the id it was sent"
    );

    // CloudFormation rolls back with the properties swapped.
    let rolled_back = world
        .send(Update, &stack, world.props(0), Some(props))
        .await;
    rolled_back.assert_success();
    assert_eq!(
        rolled_back.data("RelayVpcEndpointRegistrationId"),
        created.data("RelayVpcEndpointRegistrationId")
    );
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &rolled_back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_create_cleans_up_and_its_rollback_delete_succeeds() {
    let world = World::new().await;
    let mut stack = world.stack("failed-create");
    let net = &world.networks[0];
    world
        .emulator
        .state()
        .set_endpoint_state(&net.relay_vpce_id, Some("rejected"));
    let failed = world.create(&mut stack, world.props(0)).await;
    failed.assert_failed_with("rejected");
    assert!(
        failed
            .physical_id()
            .starts_with("databricks-backend-privatelink-")
    );
    assert!(world.access_settings().is_empty(), "{:#}", world.account());
    assert!(
        world.registrations().is_empty(),
        "what the failed Create made is removed: {:#}",
        world.account()
    );

    let deleted = world.send(Delete, &stack, world.props(0), None).await;
    deleted.assert_success();
    assert_eq!(deleted.physical_id(), failed.physical_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_create_writes_nothing_and_its_rollback_delete_succeeds() {
    let world = World::new().await;
    let mut stack = world.stack("bad-input");
    let mut props = world.props(0);
    props["PublicAccessEnabled"] = json!(false);
    props["Colour"] = json!("blue");
    let failed = world.create(&mut stack, props.clone()).await;
    failed.assert_failed_with("lock users out");
    assert!(failed.reason().contains("Colour"), "{}", failed.reason());
    assert_eq!(
        world.writes(),
        0,
        "nothing is written to Databricks before validation"
    );

    let deleted = world.send(Delete, &stack, props, None).await;
    deleted.assert_success();
    assert_eq!(world.writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_create_delivered_twice_at_once_converges_on_one_set() {
    let world = World::new().await;
    let second = world.start_lambda().await;
    let stack = world.stack("duplicate");
    let (a, b) = tokio::join!(
        world.send(Create, &stack, world.props(0), None),
        world.deliver(&second, Create, &stack, world.props(0), None, TIMEOUT),
    );
    a.assert_success();
    b.assert_success();
    assert_eq!(a.physical_id(), b.physical_id());
    for attribute in [
        "RestApiVpcEndpointRegistrationId",
        "RelayVpcEndpointRegistrationId",
        "PrivateAccessSettingsId",
    ] {
        assert_eq!(a.data(attribute), b.data(attribute), "{attribute}");
    }
    let net = &world.networks[0];
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &a);

    // And again, in a row: nothing new.
    let again = world.send(Create, &stack, world.props(0), None).await;
    again.assert_success();
    assert_eq!(
        again.data("PrivateAccessSettingsId"),
        a.data("PrivateAccessSettingsId")
    );
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_objects_already_gone_and_with_a_generated_id_succeeds() {
    let world = World::new().await;
    let mut stack = world.stack("generated-id");
    world
        .create(&mut stack, world.props(0))
        .await
        .assert_success();

    // A Delete after a cancelled Create carries an id CloudFormation made up.
    let mut generated = stack.clone();
    generated.physical_id = Some("generated-id-PrivateLink-1X2Y3Z4W5V6U".into());
    let deleted = world.send(Delete, &generated, world.props(0), None).await;
    deleted.assert_success();
    assert_eq!(
        deleted.physical_id(),
        "generated-id-PrivateLink-1X2Y3Z4W5V6U"
    );
    assert!(
        world.registrations().is_empty() && world.access_settings().is_empty(),
        "{:#}",
        world.account()
    );

    let again = world.send(Delete, &stack, world.props(0), None).await;
    again.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_in_one_account_never_touch_each_other() {
    let world = World::with(WorldOptions {
        networks: 2,
        ..WorldOptions::default()
    })
    .await;
    let mut a = world.stack("stack-a");
    let mut b = world.stack("stack-b");
    world.create(&mut a, world.props(0)).await.assert_success();
    let created_b = world.create(&mut b, world.props(1)).await;
    created_b.assert_success();
    assert_eq!(world.registrations().len(), 4);
    assert_eq!(world.access_settings().len(), 2);

    world
        .send(Delete, &a, world.props(0), None)
        .await
        .assert_success();
    let net_b = &world.networks[1];
    world.assert_exactly(&[&net_b.rest_vpce_id, &net_b.relay_vpce_id], &created_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_foreign_registration_is_used_but_never_deleted() {
    let world = World::new().await;
    let net = &world.networks[0];
    let foreign = world
        .emulator
        .state()
        .seed_vpc_endpoint(
            &world.account_id,
            emulator::CreateVpcEndpoint {
                vpc_endpoint_name: Some("registered-by-terraform".into()),
                aws_vpc_endpoint_id: Some(net.rest_vpce_id.clone()),
                region: Some(crate::scenario::REGION.into()),
                gcp_vpc_endpoint_info: None,
            },
        )
        .expect("seeding a registration");
    let mut stack = world.stack("foreign");
    let created = world.create(&mut stack, world.props(0)).await;
    created.assert_success();
    assert_eq!(
        created.data("RestApiVpcEndpointRegistrationId"),
        foreign.vpc_endpoint_id
    );

    world
        .send(Delete, &stack, world.props(0), None)
        .await
        .assert_success();
    assert_eq!(
        world.registered_vpces(),
        vec![net.rest_vpce_id.clone()],
        "{:#}",
        world.account()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_dns_off_fails_clearly_or_is_enabled_on_request() {
    let world = World::with(WorldOptions {
        private_dns: false,
        ..WorldOptions::default()
    })
    .await;
    let mut stack = world.stack("private-dns");
    let failed = world.create(&mut stack, world.props(0)).await;
    failed.assert_failed_with("BOOTSTRAP_TIMEOUT");
    failed.assert_reason_mentions("EnablePrivateDns");
    assert_eq!(world.writes(), 0, "refused before any Databricks write");

    let mut props = world.props(0);
    props["EnablePrivateDns"] = json!(true);
    let created = world.create(&mut stack, props).await;
    created.assert_success();
    // Logged only once EC2 reports private DNS on for the endpoint (read back after the change).
    assert!(
        world
            .lambda
            .wait_for_log("private DNS enabled", std::time::Duration::from_secs(2))
            .await,
        "{}",
        world.lambda.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_another_account_cleans_up_the_old_one() {
    let world = World::new().await;
    let mut stack = world.stack("move");
    world
        .create(&mut stack, world.props(0))
        .await
        .assert_success();
    let old_account = world.account_id.clone();

    let new_account = crate::support::uuid();
    let mut props = world.props(0);
    props["AccountId"] = json!(new_account);
    let moved = world
        .send(Update, &stack, props, Some(world.props(0)))
        .await;
    moved.assert_success();
    let old = world.emulator.state().snapshot(&old_account);
    assert!(old.vpc_endpoints.is_empty(), "{old}");
    assert!(old.private_access_settings.is_empty(), "{old}");
    let new = world.emulator.state().snapshot(&new_account);
    assert_eq!(new.vpc_endpoints.len(), 2, "{new}");
    assert_eq!(new.private_access_settings.len(), 1, "{new}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_unusable_credentials_succeeds_and_says_what_may_remain() {
    let world = World::new().await;
    let mut stack = world.stack("no-secret");
    world
        .create(&mut stack, world.props(0))
        .await
        .assert_success();
    let mut props = world.props(0);
    props["CredentialsSecretArn"] =
        json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf");
    let deleted = world.send(Delete, &stack, props, None).await;
    deleted.assert_success();
    assert!(
        world
            .lambda
            .wait_for_log(
                "objects owned by this resource may remain",
                std::time::Duration::from_secs(2)
            )
            .await,
        "{}",
        world.lambda.logs()
    );
    assert!(world.lambda.logs().contains("\"level\":\"ERROR\""));
    assert_eq!(
        world.registrations().len(),
        2,
        "nothing could be checked, so nothing was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_endpoint_and_a_missing_secret_are_named_together() {
    let world = World::new().await;
    let mut props = world.props(0);
    props["RelayVpcEndpointId"] = json!("vpce-0123456789abcdef0");
    props["CredentialsSecretArn"] =
        json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf");
    let mut stack = world.stack("two-problems");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with("vpce-0123456789abcdef0");
    failed.assert_reason_mentions("gone-AbCdEf");
    assert_eq!(world.writes(), 0);
}

/// The credentials are tried (a token, no write) while EC2 describes the endpoints, so a Create
/// with swapped endpoints and a wrong client secret names both at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_endpoints_and_rejected_credentials_are_named_together() {
    let world = World::new().await;
    let wrong = json!({"client_id": crate::scenario::CLIENT_ID, "client_secret": "not-the-secret"});
    let secret_arn = crate::support::fixtures::secret(
        world.moto,
        crate::scenario::REGION,
        &crate::support::unique_name("wrong-sp"),
        &wrong.to_string(),
    )
    .await;
    let mut props = world.props(0);
    let rest = props["RestApiVpcEndpointId"].clone();
    props["RestApiVpcEndpointId"] = props["RelayVpcEndpointId"].clone();
    props["RelayVpcEndpointId"] = rest;
    props["CredentialsSecretArn"] = json!(secret_arn);
    let mut stack = world.stack("swapped-and-wrong");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with("swapped");
    failed
        .assert_reason_mentions("rejected the service principal credentials (401 invalid_client)");
    assert!(!failed.reason().contains("not-the-secret"));
    assert_eq!(world.writes(), 0);
}
