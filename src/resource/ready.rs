//! When the workspaces are ready after a switch: Databricks' propagation wait (`ReadyAfter`),
//! its test-only shortening, and how a time is written in an attribute. A leaf of `resource`:
//! the properties' checks, the switch and the held answer all read it, and it reads none of them.

use std::sync::OnceLock;
use std::time::Duration;

/// Databricks: "you cannot use or create clusters for another 20 minutes" after the switch
/// (`docs/account-api.md#propagation-and-the-20-minute-rule`).
pub const PROPAGATION: Duration = Duration::from_secs(20 * 60);
/// How much longer than the propagation `ServiceTimeout` must be for `WaitUntilReady`: the
/// Create's own work, the final verification and its retries.
pub const SLACK: Duration = Duration::from_secs(10 * 60);
/// Test-only: the propagation in seconds, so that tests can hold an answer across hand-overs in
/// seconds instead of 20 minutes. Honoured only by builds with debug assertions (the tests' and
/// `make demo`'s); a release build, the one deployed, ignores it.
pub const TEST_PROPAGATION_VAR: &str = "TEST_ONLY_PROPAGATION_SECONDS";

/// The wait after a switch before clusters can start: [`PROPAGATION`], unless the test-only
/// [`TEST_PROPAGATION_VAR`] says otherwise in a debug build.
pub fn propagation() -> Duration {
    static CHOSEN: OnceLock<Duration> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let secs = std::env::var(TEST_PROPAGATION_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        match secs {
            Some(secs) if cfg!(debug_assertions) => {
                tracing::warn!(
                    secs,
                    "{TEST_PROPAGATION_VAR} is set: ReadyAfter comes {secs} s after a switch instead of 20 min; this setting is for tests only"
                );
                Duration::from_secs(secs)
            }
            Some(_) => {
                tracing::warn!("{TEST_PROPAGATION_VAR} is set but ignored: it is for tests only");
                PROPAGATION
            }
            None => PROPAGATION,
        }
    })
}

/// ISO 8601 UTC to the second, as `Fn::GetAtt` users read it.
pub fn iso8601(epoch_ms: i64) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_secs(epoch_ms.div_euclid(1000))
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_is_iso8601_utc_to_the_second() {
        assert_eq!(iso8601(1_795_696_496_789), "2026-11-26T12:34:56Z");
    }
}
