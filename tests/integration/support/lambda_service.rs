//! Stand-in for the AWS Lambda service's Invoke API (`POST /2015-03-31/functions/{name}/invocations`),
//! reached through the SDK's service-specific endpoint variable `AWS_ENDPOINT_URL_LAMBDA`.
//! It owns routing invocations; it must not know what a payload means.
//!
//! - `X-Amz-Invocation-Type: Event` for the function under test (its name or an ARN ending in
//!   it): queued into the function's own Runtime API stand-in as a fresh invocation, as Lambda
//!   runs an asynchronous invocation, and answered 202.
//! - Any other invocation (`RequestResponse`, the verifier): refused as Lambda refuses a function
//!   that is not ready while [`LambdaService::not_ready_for`] says so, else run through the real
//!   verifier binary's Runtime API when [`LambdaService::verify_with`] named it, else answered
//!   with the status and body set last, like a function that returned them.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::runtime::{FUNCTION_NAME, Invocation, InvocationResult, RuntimeQueue};
use super::server::BackgroundServer;

/// The verifier's timeout in the template.
const VERIFIER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Shared {
    /// Where asynchronous invocations of the function under test go, once it runs.
    runtime: OnceLock<RuntimeQueue>,
    /// Where synchronous invocations go, when a real verifier runs behind the stand-in.
    verifier: OnceLock<RuntimeQueue>,
    /// Asynchronous invocations of the function are refused as the role's missing permission.
    refuse_async: std::sync::atomic::AtomicBool,
    /// The deadline each queued asynchronous invocation gets.
    async_timeout: Mutex<Duration>,
    /// Queued asynchronous invocations, kept so that they stay queued and can be inspected.
    queued: Mutex<Vec<(String, Invocation)>>,
    /// The answer to synchronous invocations: status and body.
    answer: Mutex<(u16, String)>,
    /// Synchronous invocations still to be refused as Lambda refuses a function that is not
    /// ready: the first as `Inactive`, the rest as `Pending`.
    not_ready: Mutex<(usize, usize)>,
    synchronous: Mutex<Vec<String>>,
}

/// A running stand-in; dropping it stops the server.
pub struct LambdaService {
    shared: Arc<Shared>,
    server: BackgroundServer,
}

impl LambdaService {
    /// Starts the stand-in; asynchronous invocations queue with `async_timeout` once
    /// [`deliver_to`](Self::deliver_to) names the function's Runtime API.
    pub fn start(async_timeout: Duration) -> LambdaService {
        let shared = Arc::new(Shared::default());
        *shared.async_timeout.lock().unwrap() = async_timeout;
        *shared.answer.lock().unwrap() = (
            404,
            r#"{"Type":"User","Message":"Function not found"}"#.to_owned(),
        );
        let router = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(Arc::clone(&shared));
        let server = BackgroundServer::start("lambda-service", router)
            .unwrap_or_else(|error| panic!("{error}"));
        LambdaService { shared, server }
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.address())
    }

    /// Asynchronous invocations of the function under test go to `queue` from now on.
    pub fn deliver_to(&self, queue: RuntimeQueue) {
        let _ = self.shared.runtime.set(queue);
    }

    /// From now on, asynchronous invocations of the function are refused with 403, as Lambda
    /// refuses a role without `lambda:InvokeFunction` on it.
    pub fn refuse_hand_overs(&self) {
        self.shared
            .refuse_async
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Synchronous invocations run through `queue`, the Runtime API of a verifier process.
    pub fn verify_with(&self, queue: RuntimeQueue) {
        let _ = self.shared.verifier.set(queue);
    }

    /// The answer to synchronous invocations from now on.
    pub fn answer(&self, status: u16, body: String) {
        *self.shared.answer.lock().unwrap() = (status, body);
    }

    /// The next `times` synchronous invocations are refused as Lambda refuses a VPC function
    /// idle for weeks: `ResourceNotReadyException` (502) for the first, as for an `Inactive`
    /// function, then `ResourceConflictException` (409) naming the `Pending` state while its
    /// network interfaces are rebuilt.
    pub fn not_ready_for(&self, times: usize) {
        *self.shared.not_ready.lock().unwrap() = (times, 0);
    }

    /// The payloads of the asynchronous invocations queued so far.
    pub fn queued_payloads(&self) -> Vec<String> {
        let queued = self.shared.queued.lock().unwrap();
        queued.iter().map(|(payload, _)| payload.clone()).collect()
    }

    /// The payloads of the synchronous invocations so far.
    pub fn synchronous_payloads(&self) -> Vec<String> {
        self.shared.synchronous.lock().unwrap().clone()
    }

    /// What each queued asynchronous invocation answered, waiting up to `wait` for each.
    pub async fn queued_results(&self, wait: Duration) -> Vec<InvocationResult> {
        let mut taken: Vec<(String, Invocation)> =
            std::mem::take(&mut *self.shared.queued.lock().unwrap());
        let mut results = Vec::new();
        for (_, invocation) in &mut taken {
            results.push(
                invocation
                    .outcome_within(wait)
                    .await
                    .unwrap_or(InvocationResult::NoAnswer),
            );
        }
        self.shared.queued.lock().unwrap().splice(0..0, taken);
        results
    }
}

fn is_function_under_test(name: &str) -> bool {
    name == FUNCTION_NAME || name.ends_with(&format!(":function:{FUNCTION_NAME}"))
}

async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let payload = String::from_utf8_lossy(&body).into_owned();
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    if kind == "Event"
        && is_function_under_test(&name)
        && shared
            .refuse_async
            .load(std::sync::atomic::Ordering::SeqCst)
    {
        return (
            StatusCode::FORBIDDEN,
            [("x-amzn-errortype", "AccessDeniedException")],
            r#"{"Message":"not authorized to perform: lambda:InvokeFunction"}"#,
        )
            .into_response();
    }
    if kind == "Event" && is_function_under_test(&name) {
        let Some(queue) = shared.runtime.get() else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the function does not run yet",
            )
                .into_response();
        };
        let timeout = *shared.async_timeout.lock().unwrap();
        let invocation = queue.enqueue_text(payload.clone(), timeout);
        shared.queued.lock().unwrap().push((payload, invocation));
        return StatusCode::ACCEPTED.into_response();
    }
    shared.synchronous.lock().unwrap().push(payload.clone());
    let refused_before = {
        let mut not_ready = shared.not_ready.lock().unwrap();
        let (left, refused) = &mut *not_ready;
        if *left > 0 {
            *left -= 1;
            *refused += 1;
            Some(*refused - 1)
        } else {
            None
        }
    };
    match refused_before {
        Some(0) => {
            return (
                StatusCode::BAD_GATEWAY,
                [("x-amzn-errortype", "ResourceNotReadyException")],
                r#"{"Type":"Service","Message":"The function is inactive and its VPC connection is no longer available. Wait for the VPC connection to reestablish and try again."}"#,
            )
                .into_response();
        }
        Some(_) => {
            return (
                StatusCode::CONFLICT,
                [("x-amzn-errortype", "ResourceConflictException")],
                r#"{"Type":"User","message":"The operation cannot be performed at this time. The function is currently in the following state: Pending"}"#,
            )
                .into_response();
        }
        None => {}
    }
    if let Some(verifier) = shared.verifier.get() {
        return match verifier
            .enqueue_text(payload, VERIFIER_TIMEOUT)
            .outcome()
            .await
        {
            InvocationResult::Response(report) => {
                (StatusCode::OK, report.to_string()).into_response()
            }
            InvocationResult::Error {
                error_type,
                error_message,
            } => (
                StatusCode::OK,
                [("x-amz-function-error", "Unhandled")],
                serde_json::json!({"errorType": error_type, "errorMessage": error_message})
                    .to_string(),
            )
                .into_response(),
            InvocationResult::NoAnswer => (
                StatusCode::OK,
                [("x-amz-function-error", "Unhandled")],
                r#"{"errorMessage":"Task timed out"}"#,
            )
                .into_response(),
        };
    }
    let (status, text) = shared.answer.lock().unwrap().clone();
    let kind = if status == 404 {
        "ResourceNotFoundException"
    } else {
        ""
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("x-amzn-errortype", kind)],
        text,
    )
        .into_response()
}
