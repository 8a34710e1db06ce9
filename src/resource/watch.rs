//! Whether CloudFormation still waits for a Create's answer. When a stack rolls back while a
//! Create is still running, CloudFormation stops waiting for it and sends a Delete at once
//! (`docs/cloudformation.md#rollback-delete-after-a-failed-create`), which another invocation
//! carries out. If that Delete finishes before the
//! Create has written anything, the Create would build every object after the Delete looked,
//! owned by a stack resource that no longer exists. So a Create asks CloudFormation for its
//! resource's status: before it writes (then it writes nothing) and before it answers (then it
//! removes what it made). A late duplicate of a Create that was answered long ago changes
//! nothing.
//!
//! A request whose answer is held (`WaitUntilReady`, a Create or an Update) asks the same
//! question at every hand-over, and also learns when CloudFormation started the request
//! ([`held_answer_awaited`]).
//!
//! The question guards against a rare race, so it never stands in the way of the answer: when
//! CloudFormation cannot say (hand-written events, `sam local invoke`, a role without the
//! permission, a slow or throttled API) the request goes on as if it were waited for.

use std::time::Duration;

use tokio::time::Instant;

use crate::aws::{ResourceStatus, Stacks};
use crate::cfn::{CfnRequest, RequestType};

/// Longest the question may take.
const BUDGET: Duration = Duration::from_secs(5);

/// What CloudFormation's status of the resource means for a Create, or for a held request (a
/// Create or an Update: then `Yes` is any request in progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// CloudFormation waits for this Create (`CREATE_IN_PROGRESS`, or `UPDATE_IN_PROGRESS` when
    /// an update replaces the resource by creating a new one).
    Yes,
    /// CloudFormation failed or cancelled the Create, or is deleting the resource: nobody reads
    /// the answer. `remove` is false when it keeps the resource (`DELETE_SKIPPED`, a `Retain`
    /// deletion policy), so what was made must stay too.
    Abandoned { status: String, remove: bool },
    /// Another delivery of this Create was answered long ago and the resource has moved on
    /// (`CREATE_COMPLETE`, `UPDATE_COMPLETE`, ...): this is a late duplicate, which must change
    /// nothing, since converging on the Create's properties could undo a later Update.
    Answered { status: String },
    /// CloudFormation could not be asked or does not know the stack.
    Unknown,
}

/// Asks CloudFormation about the stack resource of `req`, a Create sent through a ResponseURL.
/// Any other request, and every invocation when `stacks` is `None`, is `Unknown` without asking.
pub async fn still_waited_for(
    stacks: Option<&Stacks>,
    req: &CfnRequest,
    deadline: Instant,
) -> Waiting {
    if req.request_type != RequestType::Create {
        return Waiting::Unknown;
    }
    match ask(stacks, req, deadline).await {
        Some(status) => classify(status.status),
        None => Waiting::Unknown,
    }
}

/// How far CloudFormation's clock and this function's may disagree when telling this request
/// from a later one on the same resource.
const CLOCK_SKEW_MS: i64 = 30_000;

/// Asks CloudFormation about the stack resource of a request whose answer is held (a Create or
/// an Update) and that this function received at `received_ms`: `Yes` while it is in progress,
/// `Answered` once another delivery answered, or when what is in progress is a later request on
/// the same resource (a late copy of a hand-over). Also returns when CloudFormation started the
/// request in progress, to count `ServiceTimeout` from.
pub async fn held_answer_awaited(
    stacks: Option<&Stacks>,
    req: &CfnRequest,
    received_ms: i64,
    deadline: Instant,
) -> (Waiting, Option<i64>) {
    let Some(status) = ask(stacks, req, deadline).await else {
        return (Waiting::Unknown, None);
    };
    let started = status.last_updated_ms;
    let waiting = classify(status.status);
    match (waiting, started) {
        (Waiting::Yes, Some(started)) if started > received_ms + CLOCK_SKEW_MS => (
            Waiting::Answered {
                status: "in progress for a later request".to_owned(),
            },
            None,
        ),
        (waiting, started) => (waiting, started),
    }
}

async fn ask(
    stacks: Option<&Stacks>,
    req: &CfnRequest,
    deadline: Instant,
) -> Option<ResourceStatus> {
    let stacks = stacks?;
    // A direct invocation's caller reads the Lambda result itself: it always waits.
    req.response_url.as_ref()?;
    let budget = deadline.min(Instant::now() + BUDGET);
    match stacks
        .resource_status(&req.stack_id, &req.logical_resource_id, budget)
        .await
    {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(error = %e, "could not ask CloudFormation whether it still waits for this request; going on as if it does");
            None
        }
    }
}

/// The answer to a Create that would write although nobody waits for it or it is a late
/// duplicate; `None` when it may go on.
pub fn before_writing(waiting: &Waiting) -> Option<String> {
    match waiting {
        Waiting::Abandoned { status, .. } => Some(format!(
            "CloudFormation no longer waits for this Create (its resource is {status}: the Create was cancelled, for example because the stack rolled back); nothing was made"
        )),
        Waiting::Answered { status } => Some(format!(
            "CloudFormation already has an answer for this Create (its resource is {status}): this late duplicate delivery changed nothing"
        )),
        Waiting::Yes | Waiting::Unknown => None,
    }
}

/// Why a Create that has converged must not stand, if it must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    pub why: String,
    /// Remove what the resource owns (false: CloudFormation retains the resource).
    pub remove: bool,
}

/// A converged Create's fate, from CloudFormation's answer and from `vanished` (an object the
/// Create reports that is gone: a Delete removed it meanwhile). `Answered` here means another
/// delivery of the same Create answered first, with the same objects: this one stands too.
pub fn after_converging(waiting: Waiting, vanished: Option<String>) -> Option<Abandoned> {
    match (waiting, vanished) {
        (Waiting::Abandoned { status, remove }, _) => Some(Abandoned {
            why: format!(
                "CloudFormation no longer waits for this Create (its resource is {status}: the Create was cancelled, for example because the stack rolled back)"
            ),
            remove,
        }),
        (_, Some(gone)) => Some(Abandoned {
            why: format!(
                "the resource was deleted while this Create was still running ({gone} disappeared): CloudFormation cancelled the Create, for example because the stack rolled back, and does not wait for it any more"
            ),
            remove: true,
        }),
        _ => None,
    }
}

/// What a resource status means for a Create of that resource.
fn classify(status: String) -> Waiting {
    match status.as_str() {
        "CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS" => Waiting::Yes,
        "DELETE_SKIPPED" => Waiting::Abandoned {
            status,
            remove: false,
        },
        "CREATE_FAILED" => Waiting::Abandoned {
            status,
            remove: true,
        },
        s if s.starts_with("DELETE_") => Waiting::Abandoned {
            status,
            remove: true,
        },
        _ => Waiting::Answered { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_who_waits_and_what_may_be_removed() {
        let of = |status: &str| classify(status.to_owned());
        for status in ["CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"] {
            assert_eq!(of(status), Waiting::Yes, "{status}");
        }
        for status in [
            "CREATE_FAILED",
            "DELETE_IN_PROGRESS",
            "DELETE_COMPLETE",
            "DELETE_FAILED",
        ] {
            assert!(
                matches!(of(status), Waiting::Abandoned { remove: true, .. }),
                "{status}"
            );
        }
        assert!(matches!(
            of("DELETE_SKIPPED"),
            Waiting::Abandoned { remove: false, .. }
        ));
        for status in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_FAILED",
            "UPDATE_ROLLBACK_COMPLETE",
            "IMPORT_COMPLETE",
        ] {
            assert!(matches!(of(status), Waiting::Answered { .. }), "{status}");
        }
    }

    #[test]
    fn only_waited_for_or_unknown_creates_may_write() {
        assert_eq!(before_writing(&Waiting::Yes), None);
        assert_eq!(before_writing(&Waiting::Unknown), None);
        let abandoned = Waiting::Abandoned {
            status: "DELETE_COMPLETE".into(),
            remove: true,
        };
        assert!(before_writing(&abandoned).is_some_and(|r| r.contains("nothing was made")));
        let answered = Waiting::Answered {
            status: "UPDATE_COMPLETE".into(),
        };
        assert!(before_writing(&answered).is_some_and(|r| r.contains("changed nothing")));
    }

    #[test]
    fn a_converged_create_stands_unless_abandoned_or_deleted_meanwhile() {
        let gone = || Some("registration of vpce-1".to_owned());
        assert_eq!(after_converging(Waiting::Yes, None), None);
        assert_eq!(after_converging(Waiting::Unknown, None), None);
        // Another delivery answered first, with the same objects: this one stands too.
        let answered = || Waiting::Answered {
            status: "CREATE_COMPLETE".into(),
        };
        assert_eq!(after_converging(answered(), None), None);
        let retained = Waiting::Abandoned {
            status: "DELETE_SKIPPED".into(),
            remove: false,
        };
        assert!(matches!(
            after_converging(retained, gone()),
            Some(Abandoned { remove: false, .. })
        ));
        let vanished = after_converging(Waiting::Unknown, gone()).unwrap();
        assert!(
            vanished.remove && vanished.why.contains("vpce-1"),
            "{vanished:?}"
        );
        let deleted = after_converging(answered(), gone()).unwrap();
        assert!(deleted.remove, "{deleted:?}");
    }
}
