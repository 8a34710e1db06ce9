//! Holding the answer until clusters can boot (`WaitUntilReady`): CloudFormation is answered only
//! once `ReadyAfter` has passed and, with `VerifyFunctionArn`, a verification from inside the VPC
//! passes after it, so a stack is complete when a cluster can start.
//!
//! A Lambda invocation lasts at most 15 minutes and the switch needs 20 to take effect, so the
//! waiting is handed on: shortly before its deadline an invocation queues a fresh asynchronous
//! invocation of this function carrying the original event plus the held answer
//! ([`Continuation`]), and answers nothing itself. Every hop asks CloudFormation whether the
//! request is still in progress (at its start and every minute while it sleeps): a stack that
//! rolls back or is deleted ends the waiting, and a duplicate hop whose twin answered first stays
//! silent. The answer goes out once, from the hop that finds the workspaces ready.
//!
//! What the waiting costs is Lambda time: the function sleeps, billed by the millisecond at its
//! memory size (README "Holding the answer until ready").

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::aws::{Ec2, Functions, Stacks};
use crate::cfn::request::{Continuation, MAX_HOPS};
use crate::cfn::{CfnRequest, Outcome, Progress};

use super::names::epoch_ms;
use super::properties::Properties;
use super::verification;
use super::watch::{Waiting, held_answer_awaited};

/// Databricks: "you cannot use or create clusters for another 20 minutes" after the switch
/// (`docs/account-api.md#propagation-and-the-20-minute-rule`).
pub const PROPAGATION: Duration = Duration::from_secs(20 * 60);
/// How much longer than the propagation `ServiceTimeout` must be for `WaitUntilReady`: the
/// Create's own work, the final verification and its retries.
pub const SLACK: Duration = Duration::from_secs(5 * 60);
/// The held answer goes out this long before CloudFormation's `ServiceTimeout` would end the wait.
const ANSWER_BEFORE_TIMEOUT: Duration = Duration::from_secs(60);
/// An invocation hands over this long before its guard deadline; queuing takes milliseconds.
/// A final verification ends as long before it (`verification::run`).
const HAND_OVER_MARGIN: Duration = Duration::from_secs(5);
/// How often a sleeping hop asks CloudFormation whether the request is still in progress.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// A final verification is only started with this much time left before the hand-over.
const MIN_VERIFY_TIME: Duration = Duration::from_secs(2);
/// How long after a failing final verification it is run again, while `ServiceTimeout` allows.
const VERIFY_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// Test-only: the propagation in seconds, so that tests can hold an answer across hand-overs in
/// seconds instead of 20 minutes. Never set it in a deployment.
pub const TEST_PROPAGATION_VAR: &str = "TEST_ONLY_PROPAGATION_SECONDS";

/// The wait after a switch before clusters can start: [`PROPAGATION`], unless the test-only
/// [`TEST_PROPAGATION_VAR`] says otherwise.
pub fn propagation() -> Duration {
    static CHOSEN: OnceLock<Duration> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        match std::env::var(TEST_PROPAGATION_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(secs) => {
                tracing::warn!(
                    secs,
                    "{TEST_PROPAGATION_VAR} is set: ReadyAfter comes {secs} s after a switch instead of 20 min; this setting is for tests only"
                );
                Duration::from_secs(secs)
            }
            None => PROPAGATION,
        }
    })
}

/// What one hop hands to the next: the answer as it will go out, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub physical_resource_id: String,
    /// The answer's `Data`, as the request converged.
    pub data: BTreeMap<String, String>,
    /// Epoch milliseconds: `ReadyAfter`.
    pub ready_after_ms: i64,
    /// Epoch milliseconds: the latest the answer may go out (`ServiceTimeout` after the request
    /// arrived, less a minute).
    pub answer_by_ms: i64,
    /// The workspaces' own hosts, for the final verification.
    pub hosts: Vec<String>,
    /// Final verifications run so far, when the last one ran (epoch ms) and its problems.
    pub verify_attempts: u32,
    pub last_verified_ms: Option<i64>,
    pub last_problems: Option<String>,
}

impl Held {
    /// The held answer for a request that arrived at `received_ms` and converged on `data`.
    pub fn new(
        physical_resource_id: String,
        data: BTreeMap<String, String>,
        ready_after_ms: i64,
        props: &Properties,
        received_ms: i64,
        hosts: Vec<String>,
    ) -> Self {
        let answer_by = props.service_timeout.saturating_sub(ANSWER_BEFORE_TIMEOUT);
        Self {
            physical_resource_id,
            data,
            ready_after_ms,
            answer_by_ms: received_ms.saturating_add(answer_by.as_millis() as i64),
            hosts,
            verify_attempts: 0,
            last_verified_ms: None,
            last_problems: None,
        }
    }
}

/// What a hold needs besides the request.
pub struct HoldParts<'a> {
    pub ec2: &'a Ec2,
    pub functions: &'a Functions,
    pub stacks: Option<&'a Stacks>,
    /// This function's name, to hand the waiting on to.
    pub self_function: &'a str,
    pub props: &'a Properties,
}

/// What the next step of a hold is, at `now_ms`.
#[derive(Debug, PartialEq)]
enum Step {
    /// Time to verify (or to answer, without a verifier).
    Ready,
    /// `ServiceTimeout` is about to end the wait.
    OutOfTime,
    /// Sleep until this epoch millisecond, then look again.
    SleepUntil(i64),
}

fn next_step(held: &Held, now_ms: i64) -> Step {
    if now_ms >= held.answer_by_ms {
        return Step::OutOfTime;
    }
    // A failed verification is run again a little later.
    let verify_again_at = match held.last_verified_ms {
        Some(last) => last.saturating_add(VERIFY_AGAIN_AFTER.as_millis() as i64),
        None => held.ready_after_ms,
    };
    if now_ms >= verify_again_at {
        return Step::Ready;
    }
    Step::SleepUntil(
        verify_again_at
            .min(held.answer_by_ms)
            .min(now_ms + CHECK_EVERY.as_millis() as i64),
    )
}

/// Holds `held` in this invocation (hop `hop` of the request) until it can be answered, or hands
/// it on before `deadline`.
pub async fn hold(
    parts: &HoldParts<'_>,
    req: &CfnRequest,
    mut held: Held,
    hop: u32,
    progress: &Progress,
    deadline: Instant,
) -> Outcome {
    let physical_id = held.physical_resource_id.clone();
    let hand_over_at = deadline
        .checked_sub(HAND_OVER_MARGIN)
        .unwrap_or_else(Instant::now);
    loop {
        progress.step("holding the answer until the workspaces are ready");
        match held_answer_awaited(parts.stacks, req, hand_over_at).await {
            Waiting::Yes | Waiting::Unknown => {}
            Waiting::Answered { status } => {
                return Outcome::deferred(
                    physical_id,
                    format!(
                        "another delivery of this request was answered (its resource is {status}); this one stays silent"
                    ),
                );
            }
            Waiting::Abandoned { status, .. } => {
                tracing::warn!(%status, "CloudFormation no longer waits for this request; the held answer is dropped");
                return Outcome::failed(
                    physical_id,
                    format!(
                        "CloudFormation no longer waits for this request (its resource is {status}: the stack rolled back or is being deleted), so the held answer was dropped; the switched workspaces keep what they use, and the Delete removes the rest"
                    ),
                );
            }
        }
        let now = epoch_ms() as i64;
        let until = match next_step(&held, now) {
            Step::OutOfTime => return out_of_time(held),
            // A verification ends a few seconds before `deadline` (`verification::run`), by the
            // hand-over: then it counts as one that failed, and the guard never answers FAILED
            // for a request that is only waiting.
            Step::Ready
                if hand_over_at.saturating_duration_since(Instant::now()) < MIN_VERIFY_TIME =>
            {
                return hand_over(parts, req, held, hop, deadline).await;
            }
            Step::Ready => match verify(parts, &mut held, deadline).await {
                Some(outcome) => return outcome,
                None => continue,
            },
            Step::SleepUntil(until) => until,
        };
        let wake = Instant::now() + Duration::from_millis(until.saturating_sub(now).max(0) as u64);
        if wake > hand_over_at {
            tokio::time::sleep_until(hand_over_at).await;
            return hand_over(parts, req, held, hop, deadline).await;
        }
        tokio::time::sleep_until(wake).await;
    }
}

/// Runs the final verification; `Some` answer once it passes (or without a verifier), `None`
/// when it failed and is to be run again.
async fn verify(parts: &HoldParts<'_>, held: &mut Held, deadline: Instant) -> Option<Outcome> {
    let Some(arn) = parts.props.verify_function_arn.as_deref() else {
        tracing::info!("ReadyAfter has passed; answering");
        return Some(Outcome::success(
            held.physical_resource_id.clone(),
            held.data.clone(),
        ));
    };
    held.verify_attempts += 1;
    held.last_verified_ms = Some(epoch_ms() as i64);
    let result = verification::run(
        parts.ec2,
        parts.functions,
        arn,
        parts.props,
        &held.hosts,
        deadline,
    )
    .await;
    let problems = match result {
        Ok(report) if report.passed => {
            let text = format!(
                "{} (after ReadyAfter, attempt {})",
                verification::passed_text(&report),
                held.verify_attempts
            );
            tracing::info!(report = %text, "the final verification passed; answering");
            let mut data = held.data.clone();
            data.insert("VerificationReport".into(), text);
            return Some(Outcome::success(held.physical_resource_id.clone(), data));
        }
        Ok(report) => verification::problems_text(&report),
        Err(e) => e.detail(),
    };
    tracing::warn!(attempt = held.verify_attempts, %problems, "the final verification failed; it runs again shortly");
    held.last_problems = Some(problems);
    None
}

/// `ServiceTimeout` is about to end CloudFormation's wait: the answer goes out now, FAILED.
fn out_of_time(held: Held) -> Outcome {
    let reason = match &held.last_problems {
        Some(problems) => format!(
            "the workspaces are switched, but the verification from inside the VPC still failed after ReadyAfter ({} attempts), and ServiceTimeout ends the wait: {problems}",
            held.verify_attempts
        ),
        None => "ServiceTimeout ends the wait before ReadyAfter: raise ServiceTimeout (up to 3600) so that WaitUntilReady can hold the answer".to_owned(),
    };
    Outcome::failed(held.physical_resource_id, reason)
}

/// Queues the next hop and answers nothing; when that fails, answers now rather than not at all.
async fn hand_over(
    parts: &HoldParts<'_>,
    req: &CfnRequest,
    held: Held,
    hop: u32,
    deadline: Instant,
) -> Outcome {
    let physical_id = held.physical_resource_id.clone();
    let answer_now = |why: String| {
        tracing::error!(%why, "answering before the workspaces are ready");
        Outcome::success(physical_id.clone(), held.data.clone())
    };
    if hop >= MAX_HOPS {
        return answer_now(format!("the answer was handed on {MAX_HOPS} times"));
    }
    let continuation = Continuation {
        hop: hop + 1,
        state: match serde_json::to_value(&held) {
            Ok(state) => state,
            Err(e) => return answer_now(format!("the held answer could not be written: {e}")),
        },
    };
    let event = req.continuation_event(&continuation);
    let payload = match serde_json::to_vec(&event) {
        Ok(payload) => payload,
        Err(e) => return answer_now(format!("the held answer could not be written: {e}")),
    };
    match parts
        .functions
        .invoke_async(parts.self_function, payload, deadline)
        .await
    {
        Ok(()) => {
            tracing::info!(
                next_hop = hop + 1,
                ready_after = %super::workspaces::iso8601(held.ready_after_ms),
                "the held answer was handed on to a fresh invocation"
            );
            Outcome::deferred(physical_id, "the held answer was handed on")
        }
        Err(e) => answer_now(format!("the held answer could not be handed on: {e}")),
    }
}

/// The held answer a continuation carries; `None` when it is not one of ours.
pub fn held_of(continuation: &Continuation) -> Option<Held> {
    serde_json::from_value(continuation.state.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ready_after_ms: i64, answer_by_ms: i64) -> Held {
        Held {
            physical_resource_id: "id".into(),
            data: BTreeMap::new(),
            ready_after_ms,
            answer_by_ms,
            hosts: Vec::new(),
            verify_attempts: 0,
            last_verified_ms: None,
            last_problems: None,
        }
    }

    #[test]
    fn a_hold_sleeps_until_ready_after_a_minute_at_a_time_and_stops_at_service_timeout() {
        let h = held(1_000_000, 5_000_000);
        assert_eq!(next_step(&h, 990_000), Step::SleepUntil(1_000_000));
        assert_eq!(next_step(&h, 0), Step::SleepUntil(60_000));
        assert_eq!(next_step(&h, 1_000_000), Step::Ready);
        assert_eq!(next_step(&h, 5_000_000), Step::OutOfTime);
        let late = held(9_000_000, 5_000_000);
        assert_eq!(next_step(&late, 4_990_000), Step::SleepUntil(5_000_000));
    }

    #[test]
    fn a_failed_verification_is_run_again_later_and_named_when_time_runs_out() {
        let mut h = held(1_000, 500_000);
        h.verify_attempts = 2;
        h.last_verified_ms = Some(100_000);
        h.last_problems =
            Some("tunnel.us-east-1.cloud.databricks.com resolves to a public address".into());
        assert_eq!(next_step(&h, 100_000), Step::SleepUntil(130_000));
        let reason = out_of_time(h).reason.unwrap();
        assert!(
            reason.contains("2 attempts") && reason.contains("public address"),
            "{reason}"
        );
        let reason = out_of_time(held(1_000_000, 500_000)).reason.unwrap();
        assert!(
            reason.starts_with("ServiceTimeout ends the wait before ReadyAfter"),
            "{reason}"
        );
    }

    #[test]
    fn the_held_answer_travels_as_json_and_anything_else_is_not_ours() {
        let mut h = held(1, 2);
        h.data
            .insert("ReadyAfter".into(), "2026-12-03T10:00:00Z".into());
        h.hosts.push("dbc-1.cloud.databricks.com".into());
        let continuation = Continuation {
            hop: 3,
            state: serde_json::to_value(&h).unwrap(),
        };
        assert_eq!(held_of(&continuation), Some(h));
        let foreign = Continuation {
            hop: 1,
            state: serde_json::json!({"something": "else"}),
        };
        assert_eq!(held_of(&foreign), None);
    }
}
