//! The deadline guard: answer FAILED before Lambda kills the function, because an unanswered
//! request leaves the stack waiting for `ServiceTimeout` (default one hour) and then the same
//! again on rollback (`docs/cloudformation.md#servicetimeout-and-the-deadline-guard`). [`Progress`]
//! lets the FAILED reason say
//! what the handler was doing.
//!
//! Knows nothing of what the steps are; the handler names them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long before the Lambda deadline the guard gives up on the handler. It has to leave time
/// for the response PUT (a few hundred milliseconds to S3, plus a retry or two); crhelper's
/// 0.5 s leaves none for retries (`docs/cloudformation.md#servicetimeout-and-the-deadline-guard`).
pub const GUARD_MARGIN: Duration = Duration::from_secs(3);

/// What the handler is doing right now, shared between the handler task and the guard.
#[derive(Clone, Debug)]
pub struct Progress {
    current: Arc<Mutex<String>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            current: Arc::new(Mutex::new("starting".to_owned())),
        }
    }

    /// Records the step about to start. The name completes "timed out while …" and
    /// "internal error while …", so phrase it as an activity ("registering the relay endpoint").
    pub fn step(&self, name: impl Into<String>) {
        let name = name.into();
        tracing::info!(step = %name, "step");
        // A poisoned lock only means another thread panicked mid-assignment of a String; the
        // value is still a valid String, and the guard must keep working after a panic.
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = name;
    }

    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// When the guard fires for an invocation that must end by `deadline`: [`GUARD_MARGIN`] earlier,
/// or right away if less than that is left.
pub fn guard_instant(deadline: Instant) -> Instant {
    deadline
        .checked_sub(GUARD_MARGIN)
        .map_or_else(Instant::now, |at| at.max(Instant::now()))
}

/// The FAILED reason when the guard fires. `budget` is the time the invocation had when it
/// started, so the reader knows whether to raise the function's Timeout.
pub fn timeout_reason(step: &str, budget: Duration) -> String {
    format!(
        "timed out while {step}; the function had {} s left when the request arrived and stops {} s \
         before its deadline to answer CloudFormation. Raise the function's Timeout, or retry if a \
         dependency was slow (see CloudWatch logs)",
        budget.as_secs(),
        GUARD_MARGIN.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_shared_between_clones() {
        let progress = Progress::new();
        assert_eq!(progress.current(), "starting");
        let seen_by_guard = progress.clone();
        progress.step("registering the relay endpoint");
        assert_eq!(seen_by_guard.current(), "registering the relay endpoint");
    }

    #[test]
    fn progress_survives_a_poisoned_lock() {
        let progress = Progress::new();
        let in_thread = progress.clone();
        let _ = std::thread::spawn(move || {
            let _held = in_thread.current.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        progress.step("after the panic");
        assert_eq!(progress.current(), "after the panic");
    }

    #[tokio::test]
    async fn guard_fires_margin_before_the_deadline_or_now() {
        let now = Instant::now();
        let at = guard_instant(now + Duration::from_secs(10));
        assert_eq!(at, now + Duration::from_secs(10) - GUARD_MARGIN);
        let at = guard_instant(now + Duration::from_secs(1));
        assert!(at >= now && at <= Instant::now());
    }

    #[test]
    fn timeout_reason_names_the_step_and_budget() {
        let reason = timeout_reason("waiting for the workspace", Duration::from_millis(59_900));
        assert!(
            reason.starts_with(
                "timed out while waiting for the workspace; the function had 59 s left"
            )
        );
        assert!(reason.contains("Raise the function's Timeout"));
    }
}
