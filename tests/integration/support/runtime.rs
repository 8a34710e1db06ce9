//! Stand-in for the AWS Lambda Runtime API, the HTTP interface the Lambda polls for events.
//! It owns queuing invocations and recording answers; it must not know what an event means.
//!
//! Paths and headers are those the `lambda_runtime` 1.5 crate uses (`requests.rs`,
//! `constants.rs`): `GET /2018-06-01/runtime/invocation/next` answered with the event and
//! the `Lambda-Runtime-*` headers, `POST .../invocation/{id}/response` and `.../{id}/error`
//! (body `{"errorType","errorMessage"}`), and `POST .../runtime/init/error`.
//! Unlike Lambda it does not freeze or kill the process at the deadline: tests see what the
//! Lambda does by itself before its deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

use super::server::{BackgroundServer, ConnectionProbe, ServerError};

/// The function name the stand-in reports, in the invoked ARN and the process environment.
pub const FUNCTION_NAME: &str = "databricks-backend-privatelink-test";
/// The account moto uses for the `testing` credentials, so ARNs match moto's resources.
pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// How long `invoke` waits beyond the invocation's deadline before reporting `NoAnswer`.
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("the Lambda Runtime API stand-in could not start: {0}")]
    Server(#[from] ServerError),
}

/// What the Lambda answered for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationResult {
    /// `POST /invocation/{id}/response`; a body that is not JSON arrives as a JSON string.
    Response(Value),
    /// `POST /invocation/{id}/error`, the function error that makes Lambda retry async events.
    Error {
        error_type: String,
        error_message: String,
    },
    /// Nothing arrived in time (or the process died first).
    NoAnswer,
}

/// An init failure the runtime reported through `POST /runtime/init/error`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    pub error_type: String,
    pub error_message: String,
}

/// An answer for a request ID that was not waiting for one: unknown, or answered before.
#[derive(Debug, Clone, PartialEq)]
pub struct StrayAnswer {
    pub request_id: String,
    pub result: InvocationResult,
}

struct QueuedInvocation {
    request_id: String,
    deadline_ms: u128,
    /// The body of the next-invocation answer, exactly as the Lambda reads it.
    event: String,
}

struct Shared {
    queue: Mutex<VecDeque<QueuedInvocation>>,
    arrivals: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<InvocationResult>>>,
    first_poll: OnceLock<Instant>,
    polls: AtomicUsize,
    init_error: watch::Sender<Option<InitError>>,
    stray: Mutex<Vec<StrayAnswer>>,
}

/// A running Runtime API stand-in; dropping it stops the server.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    server: BackgroundServer,
}

impl RuntimeApi {
    /// Starts the stand-in on a free loopback port.
    pub async fn start() -> RuntimeApi {
        Self::try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn try_start() -> Result<RuntimeApi, RuntimeApiError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            arrivals: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            polls: AtomicUsize::new(0),
            init_error: watch::Sender::new(None),
            stray: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let server = BackgroundServer::start("lambda-runtime-api", router)?;
        Ok(RuntimeApi { shared, server })
    }

    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API` (no scheme, as in Lambda).
    pub fn address(&self) -> String {
        self.server.address().to_string()
    }

    /// Queues `event` with a deadline `timeout` from now and waits for the answer until
    /// the deadline plus [`ANSWER_GRACE`].
    pub async fn invoke(&self, event: Value, timeout: Duration) -> InvocationResult {
        self.enqueue(event, timeout).outcome().await
    }

    /// Queues `event` without waiting, for tests that deliver the same event twice or
    /// overlap invocations.
    pub fn enqueue(&self, event: Value, timeout: Duration) -> Invocation {
        self.enqueue_text(event.to_string(), timeout)
    }

    /// Like [`enqueue`](Self::enqueue), with the event's JSON text given as is: for events a
    /// `Value` cannot hold (nested too deep, a number beyond `f64`, a lone surrogate escape).
    pub fn enqueue_text(&self, event: String, timeout: Duration) -> Invocation {
        self.queue().enqueue_text(event, timeout)
    }

    /// A handle that queues invocations from elsewhere (the Lambda service stand-in's
    /// asynchronous invocations), for as long as this stand-in runs.
    pub fn queue(&self) -> RuntimeQueue {
        RuntimeQueue {
            shared: Arc::clone(&self.shared),
        }
    }

    /// When the Lambda first asked for an event: the end of its cold start.
    pub fn first_poll_at(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }

    /// Waits until the Lambda asks for its first event; `None` if it did not in `timeout`.
    pub async fn wait_for_first_poll(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.first_poll_at() {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// How many times the Lambda asked for an event.
    pub fn polls(&self) -> usize {
        self.shared.polls.load(Ordering::SeqCst)
    }

    pub fn init_error(&self) -> Option<InitError> {
        self.shared.init_error.borrow().clone()
    }

    pub async fn wait_for_init_error(&self, timeout: Duration) -> Option<InitError> {
        let mut changes = self.shared.init_error.subscribe();
        let reported = tokio::time::timeout(timeout, changes.wait_for(Option::is_some)).await;
        match reported {
            Ok(Ok(error)) => error.clone(),
            _ => None,
        }
    }

    /// Answers for request IDs that were not waiting (refused with 400): a second answer
    /// to one invocation, or an answer after the test stopped waiting for it.
    pub fn stray_answers(&self) -> Vec<StrayAnswer> {
        self.shared.stray.lock().unwrap().clone()
    }
}

/// Queues invocations into a [`RuntimeApi`]; see [`RuntimeApi::queue`].
#[derive(Clone)]
pub struct RuntimeQueue {
    shared: Arc<Shared>,
}

impl RuntimeQueue {
    /// Queues `event` (JSON text) with a deadline `timeout` from now.
    pub fn enqueue_text(&self, event: String, timeout: Duration) -> Invocation {
        let request_id = super::uuid();
        let deadline = SystemTime::now() + timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let (answer_tx, answer) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .unwrap()
            .insert(request_id.clone(), answer_tx);
        self.shared
            .queue
            .lock()
            .unwrap()
            .push_back(QueuedInvocation {
                request_id: request_id.clone(),
                deadline_ms,
                event,
            });
        // Every waiting poll checks its connection before taking the event; see
        // `next_invocation`.
        self.shared.arrivals.notify_waiters();
        Invocation {
            shared: Arc::clone(&self.shared),
            request_id,
            deadline,
            timeout,
            answer: Some(answer),
        }
    }
}

/// One queued invocation, waiting for its answer. Dropping it withdraws the event if the
/// Lambda has not taken it yet, as Lambda drops an event whose invocation timed out.
#[must_use = "dropping an Invocation withdraws its event"]
pub struct Invocation {
    shared: Arc<Shared>,
    request_id: String,
    deadline: SystemTime,
    timeout: Duration,
    answer: Option<oneshot::Receiver<InvocationResult>>,
}

impl Invocation {
    /// The `Lambda-Runtime-Aws-Request-Id` the Lambda sees.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The `Lambda-Runtime-Deadline-Ms` the Lambda sees.
    pub fn deadline(&self) -> SystemTime {
        self.deadline
    }

    /// Waits until the deadline plus [`ANSWER_GRACE`].
    pub async fn outcome(mut self) -> InvocationResult {
        let wait = self.timeout + ANSWER_GRACE;
        self.outcome_within(wait)
            .await
            .unwrap_or(InvocationResult::NoAnswer)
    }

    /// The answer if it arrives within `wait`; `None` otherwise, and the invocation can
    /// be waited on again.
    pub async fn outcome_within(&mut self, wait: Duration) -> Option<InvocationResult> {
        let answer = self.answer.as_mut()?;
        match tokio::time::timeout(wait, answer).await {
            Ok(result) => {
                self.answer = None;
                Some(result.unwrap_or(InvocationResult::NoAnswer))
            }
            Err(_elapsed) => None,
        }
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|queued| queued.request_id != self.request_id);
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.request_id);
    }
}

async fn next_invocation(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(client): ConnectInfo<ConnectionProbe>,
) -> Response {
    shared.first_poll.get_or_init(Instant::now);
    shared.polls.fetch_add(1, Ordering::SeqCst);
    let queued = loop {
        let arrival = shared.arrivals.notified();
        tokio::pin!(arrival);
        // Registered before looking at the queue, so an event queued in between still
        // wakes this poll.
        arrival.as_mut().enable();
        // The poll of a killed process can still be waiting here; it must leave the
        // event to the process that replaced it.
        if !client.is_open() {
            return StatusCode::GONE.into_response();
        }
        if let Some(queued) = shared.queue.lock().unwrap().pop_front() {
            break queued;
        }
        arrival.await;
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("lambda-runtime-aws-request-id", queued.request_id);
    set("lambda-runtime-deadline-ms", queued.deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"),
    );
    set(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{}-{};Parent={};Sampled=0",
            super::random_hex(8),
            super::random_hex(24),
            super::random_hex(16)
        ),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, queued.event).into_response()
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    record(&shared, request_id, InvocationResult::Response(value))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = diagnostic(&headers, &body);
    record(
        &shared,
        request_id,
        InvocationResult::Error {
            error_type,
            error_message,
        },
    )
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = diagnostic(&headers, &body);
    shared.init_error.send_replace(Some(InitError {
        error_type,
        error_message,
    }));
    accepted()
}

fn record(shared: &Shared, request_id: String, result: InvocationResult) -> Response {
    let waiting = shared.waiting.lock().unwrap().remove(&request_id);
    match waiting {
        Some(answer) => {
            // The test may have stopped waiting; the answer is then simply not needed.
            let _ = answer.send(result);
            accepted()
        }
        None => {
            shared
                .stray
                .lock()
                .unwrap()
                .push(StrayAnswer { request_id, result });
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "errorType": "InvalidRequestID",
                    "errorMessage": "no invocation with this request ID is waiting for an answer",
                })),
            )
                .into_response()
        }
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

/// The `Diagnostic` body (`errorType`, `errorMessage`); the error-type header stands in
/// when the body is not that JSON.
fn diagnostic(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let error_type = field("errorType").unwrap_or_else(|| {
        headers
            .get("lambda-runtime-function-error-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    });
    let error_message =
        field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}
