//! The verifier Lambda: runs in the cluster subnets with the cluster security group, looks up the
//! names it is given and connects to the endpoints, and answers with the report
//! (`backend_privatelink::verify`). Needs no AWS API and no internet. Init only: logging and the
//! resolver configuration, then the Lambda runtime loop.

// Outside tests nothing may unwrap: every value from outside the process is handled as an error.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tokio::time::Instant;

use backend_privatelink::logging::BoundedStdout;
use backend_privatelink::text::shorten;
use backend_privatelink::verify::{DnsSettings, VerifyReport, VerifyRequest, verify};

/// Time kept back from the Lambda deadline to hand the report to the runtime.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// The problems logged in one line are cut to this many characters (the report has them all).
const MAX_LOGGED_PROBLEMS_CHARS: usize = 8 * 1024;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_writer(BoundedStdout)
        .init();

    // Read once: the resolver configuration of a Lambda's execution environment does not change.
    let dns = Arc::new(DnsSettings::from_env()?);
    tracing::info!(resolvers = dns.describe(), "verifier ready");

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let dns = Arc::clone(&dns);
        async move { handle(&dns, event).await }
    }))
    .await
}

async fn handle(
    dns: &DnsSettings,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<VerifyReport, Diagnostic> {
    let request = VerifyRequest::parse(event.payload.get()).map_err(|error| {
        let message = error.to_string();
        tracing::error!(error = %message, "verification request refused");
        Diagnostic {
            error_type: "InvalidVerifyRequest".to_owned(),
            error_message: message,
        }
    })?;
    let deadline = deadline_instant(event.context.deadline);
    let deadline = deadline
        .checked_sub(ANSWER_MARGIN)
        .map_or(deadline, |early| early.max(Instant::now()));
    let report = verify(&request, dns, deadline).await;
    let problems = report.summary();
    if report.passed {
        tracing::info!(
            names = report.names.len(),
            elapsed_ms = report.elapsed_ms,
            "verification passed"
        );
    } else {
        tracing::warn!(
            names = report.names.len(),
            elapsed_ms = report.elapsed_ms,
            deadline_reached = report.deadline_reached,
            problems = %shorten(&problems.join(" | "), MAX_LOGGED_PROBLEMS_CHARS),
            "verification failed"
        );
    }
    Ok(report)
}

/// The runtime gives the deadline as epoch milliseconds; the checks work on a monotonic clock.
/// No invocation lasts longer than Lambda's 15 minutes, whatever the header says.
fn deadline_instant(deadline_epoch_ms: u64) -> Instant {
    const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let left = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
    Instant::now() + left.min(LONGEST_INVOCATION)
}
