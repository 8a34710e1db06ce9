//! Whether CloudFormation still waits for a Create's answer. When a stack rolls back while a
//! Create is still running, CloudFormation stops waiting for it and sends a Delete at once
//! (reference §1.3), which another invocation carries out. If that Delete finishes before the
//! Create has written anything, the Create would build every object after the Delete looked,
//! owned by a stack resource that no longer exists. So a Create asks CloudFormation for its
//! resource's status: before it writes (then it writes nothing) and before it answers (then it
//! removes what it made).
//!
//! The question guards against a rare race, so it never stands in the way of the answer: when
//! CloudFormation cannot say (hand-written events, `sam local invoke`, a role without the
//! permission, a slow or throttled API) the Create goes on as if it were waited for.

use std::time::Duration;

use tokio::time::Instant;

use crate::aws::Stacks;
use crate::cfn::{CfnRequest, RequestType};

/// Longest the question may take.
const BUDGET: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    Yes,
    /// CloudFormation reports the resource in this status and reads no answer to the Create.
    No {
        status: String,
    },
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
    let Some(stacks) = stacks else {
        return Waiting::Unknown;
    };
    // A direct invocation's caller reads the Lambda result itself: it always waits.
    if req.request_type != RequestType::Create || req.response_url.is_none() {
        return Waiting::Unknown;
    }
    let budget = deadline.min(Instant::now() + BUDGET);
    match stacks
        .resource_status(&req.stack_id, &req.logical_resource_id, budget)
        .await
    {
        Ok(Some(status)) if abandons_create(&status) => Waiting::No { status },
        Ok(Some(_)) => Waiting::Yes,
        Ok(None) => Waiting::Unknown,
        Err(e) => {
            tracing::warn!(error = %e, "could not ask CloudFormation whether it still waits for this Create; going on as if it does");
            Waiting::Unknown
        }
    }
}

/// The resource statuses in which CloudFormation reads no answer to a Create: it failed or
/// cancelled the Create, or is deleting (or has deleted) the resource. `CREATE_COMPLETE` is not
/// one: another delivery of the same Create answered, and what it reported is the resource now.
fn abandons_create(status: &str) -> bool {
    status == "CREATE_FAILED" || status.starts_with("DELETE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_and_deleted_resources_are_abandoned() {
        for status in [
            "CREATE_FAILED",
            "DELETE_IN_PROGRESS",
            "DELETE_COMPLETE",
            "DELETE_FAILED",
            "DELETE_SKIPPED",
        ] {
            assert!(abandons_create(status), "{status}");
        }
        for status in [
            "CREATE_IN_PROGRESS",
            "CREATE_COMPLETE",
            "UPDATE_IN_PROGRESS",
            "UPDATE_COMPLETE",
            "IMPORT_COMPLETE",
        ] {
            assert!(!abandons_create(status), "{status}");
        }
    }
}
