//! A loopback stand-in for the response bucket that records every request made to it.
//! Where `fixtures::ResponseSink` shows the last object stored, this shows how many PUTs
//! arrived, with which headers, and can refuse the first ones to exercise retries.
//! It must not know what a response should contain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch;

use super::server::{BackgroundServer, ServerError};

/// Larger than any response CloudFormation accepts (4096 bytes), so oversize bodies are
/// recorded whole.
const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("the recording response sink could not start: {0}")]
    Server(#[from] ServerError),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as sent, to check the URL was not re-encoded.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The status the sink answered with.
    pub status: u16,
    /// When it arrived.
    pub received_at: std::time::SystemTime,
}

impl RecordedRequest {
    /// The body as JSON; panics if it is not JSON, since CloudFormation would reject it.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the response body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    recorded: watch::Sender<usize>,
    failures_left: AtomicUsize,
    failure_status: Mutex<StatusCode>,
}

pub struct RecordingSink {
    shared: Arc<Shared>,
    server: BackgroundServer,
    path_and_query: String,
}

impl RecordingSink {
    pub async fn start() -> RecordingSink {
        Self::try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn try_start() -> Result<RecordingSink, SinkError> {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            recorded: watch::Sender::new(0),
            failures_left: AtomicUsize::new(0),
            failure_status: Mutex::new(StatusCode::SERVICE_UNAVAILABLE),
        });
        let router = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let server = BackgroundServer::start("recording-response-sink", router)?;
        // The shape of a real ResponseURL: bucket, percent-encoded "<StackId>|<Logical>|<RequestId>"
        // key, SigV4 query string.
        let stack = super::events::stack_id("harness").replace(':', "%3A");
        let path_and_query = format!(
            "/cloudformation-custom-resource-response-useast1/{stack}%7CResource%7C{}\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20250101T000000Z\
             &X-Amz-SignedHeaders=host&X-Amz-Expires=7200\
             &X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Signature={}",
            super::uuid(),
            super::random_hex(64)
        );
        Ok(RecordingSink {
            shared,
            server,
            path_and_query,
        })
    }

    /// The URL to put into the event as `ResponseURL`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.server.address(), self.path_and_query)
    }

    /// The path and query of [`Self::url`], to compare with what arrived.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// Answers the next `count` requests with `status` instead of 200.
    pub fn fail_next(&self, count: usize, status: u16) {
        *self.shared.failure_status.lock().unwrap() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        self.shared.failures_left.store(count, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived; returns all recorded so far.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut recorded = self.shared.recorded.subscribe();
        let _ = tokio::time::timeout(timeout, recorded.wait_for(|seen| *seen >= count)).await;
        self.requests()
    }
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default()
        .to_vec();
    let failing = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    let status = if failing {
        *shared.failure_status.lock().unwrap()
    } else {
        StatusCode::OK
    };
    shared.requests.lock().unwrap().push(RecordedRequest {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        status: status.as_u16(),
        received_at: std::time::SystemTime::now(),
    });
    shared.recorded.send_modify(|seen| *seen += 1);
    (status, Body::empty()).into_response()
}
