//! The account API's own rules through the real binary: what the function refuses before it
//! writes, what it follows through, and what it says about objects Databricks will not change.

use std::time::{Duration, Instant};

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
