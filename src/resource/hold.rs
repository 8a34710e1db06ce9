//! Holding the answer until clusters can boot (`WaitUntilReady`): CloudFormation is answered only
//! once `ReadyAfter` has passed and, with `VerifyFunctionArn`, a verification from inside the VPC
//! passes after it, so a stack is complete when a cluster can start.
//!
//! A Lambda invocation lasts at most 15 minutes and the switch needs 20 to take effect, so the
//! waiting is handed on: shortly before its deadline an invocation queues a fresh asynchronous
//! invocation of this function carrying the original event plus the held answer
//! ([`HandOver`]), and answers nothing itself. Every hop asks CloudFormation whether the
//! request is still in progress (at its start and every minute while it sleeps): a stack that
//! rolls back or is deleted ends the waiting, and a duplicate hop whose twin answered first stays
//! silent. The answer goes out once, from the hop that finds the workspaces ready.
//!
//! What the waiting costs is Lambda time: the function sleeps, billed by the millisecond at its
//! memory size (README "Holding the answer until ready").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::aws::{Ec2, Functions, Stacks};
use crate::cfn::request::{HandOver, MAX_HOPS};
use crate::cfn::{CfnRequest, Outcome, Progress};

use super::names::epoch_ms;
use super::properties::Properties;
use super::ready::{iso8601, propagation};
use super::verification;
use super::watch::{Waiting, held_answer_awaited};

/// The held answer goes out this long before CloudFormation's `ServiceTimeout` would end the wait.
const ANSWER_BEFORE_TIMEOUT: Duration = Duration::from_secs(60);
/// An invocation hands over this long before its guard deadline. Queuing takes milliseconds,
/// but the Invoke call may be retried under throttling; whatever happens, it ends
/// [`HAND_OVER_ENDS_BEFORE_GUARD`] before the guard, which leaves time to answer instead.
const HAND_OVER_MARGIN: Duration = Duration::from_secs(10);
const HAND_OVER_ENDS_BEFORE_GUARD: Duration = Duration::from_secs(2);
/// The oldest an event reaches the function: the template's `MaximumEventAgeInSeconds`.
const MAX_EVENT_AGE: Duration = Duration::from_secs(900);
/// How often a sleeping hop asks CloudFormation whether the request is still in progress.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// A final verification is only started with this much time left before the hand-over;
/// otherwise the next hop, which starts with its whole budget, runs it.
const MIN_VERIFY_TIME: Duration = Duration::from_secs(10);
/// Before answering, a hop waits up to this long, at random, and asks CloudFormation again: two
/// copies of one hand-over (Lambda delivers an asynchronous invocation at least once) wake at
/// the same moment, and this spreads them so that the second sees the first one's answer.
const JITTER: Duration = Duration::from_secs(5);
/// How long after a failing final verification it is run again, while `ServiceTimeout` allows.
const VERIFY_AGAIN_AFTER: Duration = Duration::from_secs(30);
/// A hand-over Lambda delivers this much later than it was queued answers at once instead of
/// holding on: Lambda's queue held it back (throttling, an outage), and the next hand-over could
/// wait there past the template's `MaximumEventAgeInSeconds` and be dropped without a trace,
/// leaving CloudFormation waiting until `ServiceTimeout`. Asynchronous invocations are normally
/// delivered within seconds.
const LATE_HAND_OVER: Duration = Duration::from_secs(60);

/// Kept for the last hop's final verification and the pause before it answers, besides the
/// propagation, when judging whether the hops can hold the answer long enough.
const LAST_HOP_ALLOWANCE: Duration = Duration::from_secs(15);

/// Whether a function whose invocations last `timeout` can hold an answer from the switch until
/// `ReadyAfter` within [`MAX_HOPS`] hand-overs: each invocation holds its timeout less the
/// guard's and the hand-over's margins. The reason names the numbers when it cannot.
pub fn fits_in_hops(timeout: Duration) -> Result<(), String> {
    let margins = crate::cfn::GUARD_MARGIN + HAND_OVER_MARGIN;
    let per_hop = timeout.saturating_sub(margins);
    let held = per_hop * MAX_HOPS;
    let needed = propagation() + LAST_HOP_ALLOWANCE;
    if held >= needed {
        return Ok(());
    }
    let least = needed.as_secs().div_ceil(u64::from(MAX_HOPS)) + margins.as_secs();
    Err(format!(
        "WaitUntilReady holds the answer for {} s after the switch (ReadyAfter, and {} s for the final verification), handed on across at most {MAX_HOPS} invocations that each hold their timeout less {} s; this function's timeout of {} s holds {} s at most: give the function a timeout of at least {least} s (the template gives 600), or leave WaitUntilReady off",
        propagation().as_secs(),
        LAST_HOP_ALLOWANCE.as_secs(),
        margins.as_secs(),
        timeout.as_secs(),
        held.as_secs(),
    ))
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
    /// Epoch milliseconds: when the request started (CloudFormation's time once it said, else
    /// when the function received it); `ServiceTimeout` counts from here ([`answer_by`]).
    pub requested_ms: i64,
    /// The workspaces' own hosts, for the final verification.
    pub hosts: Vec<String>,
    /// Final verifications run so far, when the last one ran (epoch ms) and its problems.
    pub verify_attempts: u32,
    pub last_verified_ms: Option<i64>,
    pub last_problems: Option<String>,
    /// Epoch milliseconds: when the last hand-over was queued, to tell a late delivery.
    #[serde(default)]
    pub handed_over_ms: Option<i64>,
}

impl Held {
    /// The held answer for a request that arrived at `received_ms` and converged on `data`.
    pub fn new(
        physical_resource_id: String,
        data: BTreeMap<String, String>,
        ready_after_ms: i64,
        received_ms: i64,
        hosts: Vec<String>,
    ) -> Self {
        Self {
            physical_resource_id,
            data,
            ready_after_ms,
            requested_ms: received_ms,
            hosts,
            verify_attempts: 0,
            last_verified_ms: None,
            last_problems: None,
            handed_over_ms: None,
        }
    }

    /// How much later than [`LATE_HAND_OVER`] after it was queued this hand-over arrived at
    /// `now_ms`, if it did.
    fn late_by(&self, now_ms: i64) -> Option<Duration> {
        let waited = now_ms.saturating_sub(self.handed_over_ms?);
        (waited > LATE_HAND_OVER.as_millis() as i64).then(|| Duration::from_millis(waited as u64))
    }
}

/// The latest a held answer to a request that started at `requested_ms` may go out.
fn answer_by(requested_ms: i64, props: &Properties) -> i64 {
    let room = props.service_timeout.saturating_sub(ANSWER_BEFORE_TIMEOUT);
    requested_ms.saturating_add(room.as_millis() as i64)
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
    /// `ServiceTimeout` ends before `ReadyAfter`: waiting cannot reach it.
    Unreachable,
    /// Sleep until this epoch millisecond, then look again.
    SleepUntil(i64),
}

/// What to do at `now_ms`, when the answer must go out by `answer_by_ms`.
fn next_step(held: &Held, answer_by_ms: i64, now_ms: i64) -> Step {
    if held.ready_after_ms > answer_by_ms {
        return Step::Unreachable;
    }
    if now_ms >= answer_by_ms {
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
            .min(answer_by_ms)
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
    let hand_over_at = deadline
        .checked_sub(HAND_OVER_MARGIN)
        .unwrap_or_else(Instant::now);
    let mut first_look = true;
    loop {
        if Instant::now() >= hand_over_at {
            // A hop that starts with no time to hold would hand over at once, hop after hop
            // (a first invocation whose timeout is too short is refused before any write).
            if first_look && hop > 0 {
                return answer_now(
                    &held,
                    "this hand-over started with no time left to hold the answer; see fits_in_hops for the timeout a hold needs",
                );
            }
            return hand_over(parts, req, held, hop, deadline).await;
        }
        let arriving = first_look && hop > 0;
        first_look = false;
        progress.step("holding the answer until the workspaces are ready");
        if let Some(outcome) = still_awaited(parts, req, &mut held, hand_over_at).await {
            return outcome;
        }
        let now = epoch_ms() as i64;
        if arriving && let Some(waited) = held.late_by(now) {
            let why = format!(
                "this hand-over arrived {} s after it was queued: Lambda's queue is holding events back, and the next hand-over could be dropped after the function's MaximumEventAgeInSeconds",
                waited.as_secs()
            );
            let outcome = answer_now(&held, &why);
            return answer_once(parts, req, &mut held, outcome, hand_over_at).await;
        }
        let until = match next_step(&held, answer_by(held.requested_ms, parts.props), now) {
            Step::Unreachable => {
                return answer_now(
                    &held,
                    "ServiceTimeout ends before ReadyAfter, so the answer cannot be held until then",
                );
            }
            Step::OutOfTime => return out_of_time(held),
            // Too little time before the hand-over for a verification: the next hop starts with
            // its whole budget.
            Step::Ready
                if hand_over_at.saturating_duration_since(Instant::now()) < MIN_VERIFY_TIME =>
            {
                return hand_over(parts, req, held, hop, deadline).await;
            }
            // A verification ends by the hand-over (`verification::run` keeps its own margin
            // back from the instant it is given): one cut short counts as one that failed, and
            // the guard never answers FAILED for a request that is only waiting.
            Step::Ready => {
                let verify_until = hand_over_at + verification::KEPT_AFTER_VERIFYING;
                match verify(parts, &mut held, verify_until).await {
                    Some(outcome) => {
                        return answer_once(parts, req, &mut held, outcome, hand_over_at).await;
                    }
                    None => continue,
                }
            }
            Step::SleepUntil(until) => until,
        };
        let wake = Instant::now() + Duration::from_millis(until.saturating_sub(now).max(0) as u64);
        tokio::time::sleep_until(wake.min(hand_over_at)).await;
    }
}

/// Asks CloudFormation whether the request is still in progress; `Some` answer (or silence) when
/// it is not. Counts `ServiceTimeout` from when CloudFormation says the request started, which
/// can be earlier than this function received it (an event that waited in Lambda's queue).
async fn still_awaited(
    parts: &HoldParts<'_>,
    req: &CfnRequest,
    held: &mut Held,
    until: Instant,
) -> Option<Outcome> {
    let physical_id = held.physical_resource_id.clone();
    let (waiting, started) = held_answer_awaited(parts.stacks, req, held.requested_ms, until).await;
    // Only a start shortly before this function received the request is believable: an event
    // older than the template's MaximumEventAgeInSeconds is never delivered (and moto reports a
    // fixed time in 2010).
    let plausible = held.requested_ms - MAX_EVENT_AGE.as_millis() as i64..held.requested_ms;
    if let Some(started) = started.filter(|s| plausible.contains(s)) {
        held.requested_ms = started;
    }
    match waiting {
        Waiting::Yes | Waiting::Unknown => None,
        Waiting::Answered { status } => Some(Outcome::handed_over(
            physical_id,
            format!(
                "another delivery of this request was answered (its resource is {status}); this one stays silent"
            ),
        )),
        Waiting::Abandoned { status, .. } => {
            tracing::warn!(%status, "CloudFormation no longer waits for this request; the held answer is dropped");
            Some(Outcome::failed(
                physical_id,
                format!(
                    "CloudFormation no longer waits for this request (its resource is {status}: the stack rolled back or is being deleted), so the held answer was dropped; the switched workspaces keep what they use, and the Delete removes the rest"
                ),
            ))
        }
    }
}

/// Sends `outcome` unless a copy of this hop answered first: waits a random moment (up to
/// [`JITTER`], and never past the hand-over) and asks CloudFormation once more.
async fn answer_once(
    parts: &HoldParts<'_>,
    req: &CfnRequest,
    held: &mut Held,
    outcome: Outcome,
    hand_over_at: Instant,
) -> Outcome {
    let pause = jitter().min(hand_over_at.saturating_duration_since(Instant::now()));
    tokio::time::sleep(pause).await;
    // The question may take the hand-over's time: no hand-over follows an answer.
    let ask_until = hand_over_at + (HAND_OVER_MARGIN - HAND_OVER_ENDS_BEFORE_GUARD);
    still_awaited(parts, req, held, ask_until)
        .await
        .unwrap_or(outcome)
}

/// A random pause up to [`JITTER`]: the standard library's per-process random hash keys are
/// enough to tell two copies apart.
fn jitter() -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(random % (JITTER.as_millis() as u64 + 1))
}

/// SUCCESS with the held answer now, before it is ready, and why at error level: a stack whose
/// workspaces are switched is better answered early than rolled back or never answered.
fn answer_now(held: &Held, why: &str) -> Outcome {
    tracing::error!(%why, "answering before the workspaces are ready");
    Outcome::success(held.physical_resource_id.clone(), held.data.clone())
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
        &verification::hosts_after_ready(&held.hosts),
        deadline,
    )
    .await;
    let problems = match result {
        Ok(report) if report.passed => {
            // Without times or attempt counts: two copies of one hop must answer the same.
            let mut text = format!(
                "passed after ReadyAfter: {} names and {} endpoint addresses checked from inside the VPC",
                report.names.len(),
                report.endpoint_addresses.len()
            );
            if !held.hosts.is_empty() {
                text.push_str("; the workspace hosts resolve to the REST API endpoint: ");
                text.push_str(&held.hosts.join(", "));
            }
            verification::append_notes(&mut text, &report);
            tracing::info!(
                report = %text,
                attempt = held.verify_attempts,
                elapsed_ms = report.elapsed_ms,
                "the final verification passed; answering"
            );
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

/// `ServiceTimeout` is about to end CloudFormation's wait: the answer goes out now. FAILED when
/// the verification kept failing; otherwise the held answer, early.
fn out_of_time(held: Held) -> Outcome {
    match &held.last_problems {
        Some(problems) => Outcome::failed(
            held.physical_resource_id,
            format!(
                "the workspaces are switched, but the verification from inside the VPC still failed after ReadyAfter ({} attempts), and ServiceTimeout ends the wait: {problems}",
                held.verify_attempts
            ),
        ),
        None => answer_now(&held, "ServiceTimeout ends the wait before ReadyAfter"),
    }
}

/// Queues the next hop and answers nothing; when that fails, answers now rather than not at all.
async fn hand_over(
    parts: &HoldParts<'_>,
    req: &CfnRequest,
    mut held: Held,
    hop: u32,
    deadline: Instant,
) -> Outcome {
    if hop >= MAX_HOPS {
        return answer_now(&held, &format!("the answer was handed on {MAX_HOPS} times"));
    }
    held.handed_over_ms = Some(epoch_ms() as i64);
    let hand_over = HandOver {
        hop: hop + 1,
        state: match serde_json::to_value(&held) {
            Ok(state) => state,
            Err(e) => {
                return answer_now(&held, &format!("the held answer could not be written: {e}"));
            }
        },
    };
    let event = req.hand_over_event(&hand_over);
    let payload = match serde_json::to_vec(&event) {
        Ok(payload) => payload,
        Err(e) => return answer_now(&held, &format!("the held answer could not be written: {e}")),
    };
    let invoke_until = deadline
        .checked_sub(HAND_OVER_ENDS_BEFORE_GUARD)
        .unwrap_or_else(Instant::now);
    match parts
        .functions
        .invoke_async(parts.self_function, payload, invoke_until)
        .await
    {
        Ok(()) => {
            tracing::info!(
                next_hop = hop + 1,
                ready_after = %iso8601(held.ready_after_ms),
                "the held answer was handed on to a fresh invocation"
            );
            Outcome::handed_over(held.physical_resource_id, "the held answer was handed on")
        }
        Err(e) => answer_now(
            &held,
            &format!("the held answer could not be handed on: {e}"),
        ),
    }
}

/// The held answer a hand_over carries; `None` when it is not one of ours.
pub fn held_of(hand_over: &HandOver) -> Option<Held> {
    serde_json::from_value(hand_over.state.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ready_after_ms: i64) -> Held {
        Held {
            physical_resource_id: "id".into(),
            data: BTreeMap::new(),
            ready_after_ms,
            requested_ms: 0,
            hosts: Vec::new(),
            verify_attempts: 0,
            last_verified_ms: None,
            last_problems: None,
            handed_over_ms: None,
        }
    }

    #[test]
    fn a_hand_over_delivered_over_a_minute_late_is_late() {
        let mut h = held(0);
        assert_eq!(
            h.late_by(1_000_000),
            None,
            "the first invocation is no hand-over"
        );
        h.handed_over_ms = Some(1_000_000);
        assert_eq!(h.late_by(1_060_000), None);
        assert_eq!(h.late_by(1_090_000), Some(Duration::from_secs(90)));
    }

    #[test]
    fn the_hops_must_hold_the_propagation_and_the_reason_names_the_numbers() {
        // 12 hops of 600 s less 13 s each hold 20 minutes many times over.
        assert_eq!(fits_in_hops(Duration::from_secs(600)), Ok(()));
        // (1200 s + 15 s) over 12 hops is 102 s each, plus the 13 s of margins.
        assert_eq!(fits_in_hops(Duration::from_secs(115)), Ok(()));
        let reason = fits_in_hops(Duration::from_secs(60)).unwrap_err();
        assert!(
            reason.contains("this function's timeout of 60 s holds 564 s at most")
                && reason.contains("at least 115 s"),
            "{reason}"
        );
    }

    #[test]
    fn a_hold_sleeps_until_ready_after_a_minute_at_a_time_and_stops_at_service_timeout() {
        let (h, by) = (held(1_000_000), 5_000_000);
        assert_eq!(next_step(&h, by, 990_000), Step::SleepUntil(1_000_000));
        assert_eq!(next_step(&h, by, 0), Step::SleepUntil(60_000));
        assert_eq!(next_step(&h, by, 1_000_000), Step::Ready);
        assert_eq!(next_step(&h, by, 5_000_000), Step::OutOfTime);
        let late = held(9_000_000);
        assert_eq!(next_step(&late, by, 0), Step::Unreachable);
    }

    #[test]
    fn a_failed_verification_is_run_again_later_and_named_when_time_runs_out() {
        let mut h = held(1_000);
        h.verify_attempts = 2;
        h.last_verified_ms = Some(100_000);
        h.last_problems =
            Some("tunnel.us-east-1.cloud.databricks.com resolves to a public address".into());
        assert_eq!(next_step(&h, 500_000, 100_000), Step::SleepUntil(130_000));
        let reason = out_of_time(h).reason.unwrap();
        assert!(
            reason.contains("2 attempts") && reason.contains("public address"),
            "{reason}"
        );
        // Not verified yet: the held answer goes out early rather than FAILED.
        let early = out_of_time(held(1_000_000));
        assert_eq!(early.status, crate::cfn::Status::Success);
    }

    #[test]
    fn the_held_answer_travels_as_json_and_anything_else_is_not_ours() {
        let mut h = held(1);
        h.data
            .insert("ReadyAfter".into(), "2026-12-03T10:00:00Z".into());
        h.hosts.push("dbc-1.cloud.databricks.com".into());
        let hand_over = HandOver {
            hop: 3,
            state: serde_json::to_value(&h).unwrap(),
        };
        assert_eq!(held_of(&hand_over), Some(h));
        let foreign = HandOver {
            hop: 1,
            state: serde_json::json!({"something": "else"}),
        };
        assert_eq!(held_of(&foreign), None);
    }
}
