//! Init only: logging, AWS configuration, the clients (built once and shared by every
//! invocation of a warm container), then the Lambda runtime loop.

// Outside tests nothing may unwrap: every value from outside the process is handled as an error.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use backend_privatelink::aws::{Ec2, Functions, Secrets, Stacks};
use backend_privatelink::cfn::{Responder, handle_raw_invocation};
use backend_privatelink::databricks::{DatabricksHttp, HttpSettings};
use backend_privatelink::logging::BoundedStdout;
use backend_privatelink::resource::{Defaults, Handler};
use backend_privatelink::trust::TrustRoots;

/// Modules that log whole requests and bodies at TRACE: the runtime logs each raw event (with
/// the ResponseURL's presigned query string), and the AWS SDK's orchestrator each request it
/// transmits and each response (a hand-over's payload carries the ResponseURL; Secrets Manager's
/// answer carries the secret). Their TRACE events are dropped whatever RUST_LOG asks for (a
/// longer target or a span directive included); everything else RUST_LOG enables passes.
const TRACE_NEVER_LOGGED: [&str; 3] = [
    "lambda_runtime::layers::api_response",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
];

#[tokio::main]
async fn main() -> Result<(), Error> {
    let requested = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // RUST_LOG=trace for troubleshooting must not leak the presigned URL or the secret.
    let never_at_trace = filter_fn(|meta| {
        *meta.level() != tracing::Level::TRACE
            || !TRACE_NEVER_LOGGED
                .iter()
                .any(|target| meta.target().starts_with(target))
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_target(false)
                .without_time()
                .with_writer(BoundedStdout)
                .with_filter(requested.and(never_at_trace)),
        )
        .init();

    // One read of the CA bundle for both HTTP stacks (see `trust`), or each loads the platform's.
    let roots = TrustRoots::from_system();
    let mut sdk = aws_config::defaults(BehaviorVersion::latest());
    if let Some(roots) = &roots {
        sdk = sdk.http_client(roots.aws_http_client());
    }
    let sdk = sdk.load().await;
    let http = match &roots {
        Some(roots) => {
            DatabricksHttp::with_roots(HttpSettings::from_env(), roots.reqwest_certificates()?)?
        }
        None => DatabricksHttp::new(HttpSettings::from_env())?,
    };
    // One HTTP client (and one load of the certificate store) for Databricks and the response.
    let responder = Arc::new(Responder::from_env(http.client()));
    let handler = Arc::new(Handler {
        ec2: Ec2::new(&sdk),
        secrets: Secrets::new(&sdk),
        // Under `sam local invoke` no stack waits, and its StackId is made up.
        stacks: (!responder.sam_local()).then(|| Stacks::new(&sdk)),
        http: http.clone(),
        defaults: Defaults::from_env(),
        functions: Functions::new(&sdk),
        self_function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|name| !name.is_empty()),
    });

    // The runtime is handed the event as JSON text, not as a `Value`: text that `serde_json`
    // cannot hold as a value would otherwise fail inside the runtime, before this function could
    // answer CloudFormation, and Lambda would retry it until the stack's ServiceTimeout.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let handler = Arc::clone(&handler);
        let responder = Arc::clone(&responder);
        async move {
            let deadline = deadline_instant(event.context.deadline);
            handle_raw_invocation(handler, &responder, event.payload.get(), deadline).await
        }
    }))
    .await
}

/// The runtime gives the deadline as epoch milliseconds; the guard works on a monotonic clock.
fn deadline_instant(deadline_epoch_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}
