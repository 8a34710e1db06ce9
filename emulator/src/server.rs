//! The listening socket and the per-request pipeline in front of the routes: fixed latency, rate
//! limit, injected faults and the request log. Runs hyper directly (not `axum::serve`) because a
//! `Drop` fault must close the connection without any response, which only a service error
//! achieves. Knows nothing of the account objects.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::faults::{FaultBody, FaultKind, GATEWAY_TIMEOUT_HTML, HANG_LIMIT, LostAnswer};
use crate::state::{RequestRecord, StateHandle};

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection deliberately closed without a response by an injected fault")]
pub struct ConnectionAborted;

const CONTROL_PREFIX: &str = "/_emulator/";

/// Requests the rate limit applies to: the account API and the token endpoint (discovery and
/// control calls are free).
fn rate_limited(path: &str) -> bool {
    path.starts_with("/api/") || (path.starts_with("/oidc/") && path.ends_with("/v1/token"))
}

/// Accepts connections until `shutdown` fires (or its sender is dropped), then aborts every open
/// connection, hanging ones included.
pub async fn run(
    listener: TcpListener,
    state: StateHandle,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Accept errors (e.g. too many open files) are transient; keep serving.
                    tokio::task::yield_now().await;
                    continue;
                };
                let state = state.clone();
                let router = router.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        handle(state.clone(), router.clone(), request)
                    });
                    // Errors here are clients going away or our own deliberate aborts.
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn handle(
    state: StateHandle,
    router: Router,
    request: Request<Incoming>,
) -> Result<Response<Body>, ConnectionAborted> {
    let path = request.uri().path().to_owned();
    if path.starts_with(CONTROL_PREFIX) {
        return Ok(call(router, request).await);
    }
    let arrived = Instant::now();
    let method = request.method().as_str().to_owned();
    let record = |status: u16| RequestRecord {
        method: method.clone(),
        path: path.clone(),
        status,
        at: arrived,
    };

    if let Some(latency) = state.latency_all() {
        tokio::time::sleep(latency).await;
    }
    if rate_limited(&path) && !state.admit() {
        let response = ApiError::RequestLimitExceeded.into_response();
        state.record(record(response.status().as_u16()));
        return Ok(response);
    }
    match state.take_fault(&method, &path) {
        Some(FaultKind::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(FaultKind::Status {
            status,
            retry_after,
            body,
        }) => {
            let response = fault_response(status, retry_after, body);
            state.record(record(response.status().as_u16()));
            return Ok(response);
        }
        Some(FaultKind::Drop) => {
            state.record(record(0));
            return Err(ConnectionAborted);
        }
        Some(FaultKind::Hang) => {
            state.record(record(0));
            tokio::time::sleep(HANG_LIMIT).await;
            return Err(ConnectionAborted);
        }
        Some(FaultKind::LoseAnswer(after)) => {
            // The account carries the request out; only its answer never reaches the client.
            let carried_out = call(router, request).await;
            return match after {
                LostAnswer::Drop => {
                    state.record(record(0));
                    Err(ConnectionAborted)
                }
                LostAnswer::GatewayTimeout => {
                    let _ = carried_out;
                    let response =
                        fault_response(504, None, FaultBody::Html(GATEWAY_TIMEOUT_HTML.into()));
                    state.record(record(504));
                    Ok(response)
                }
            };
        }
        None => {}
    }
    let response = call(router, request).await;
    state.record(record(response.status().as_u16()));
    Ok(response)
}

async fn call(router: Router, request: Request<Incoming>) -> Response<Body> {
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn fault_response(status: u16, retry_after: Option<u32>, body: FaultBody) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = match body {
        FaultBody::Json {
            error_code,
            message,
        } => (
            Some("application/json"),
            serde_json::json!({ "error_code": error_code, "message": message }).to_string(),
        ),
        FaultBody::PlainText(text) => (Some("text/plain; charset=utf-8"), text),
        FaultBody::Html(html) => (Some("text/html; charset=utf-8"), html),
        FaultBody::Empty => (None, String::new()),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
