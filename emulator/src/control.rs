//! The `/_emulator/` control API: the HTTP mirror of [`StateHandle`]'s direct methods, for tests
//! that run the emulator as a separate process. Not part of the emulated Databricks API, so it
//! needs no token and is never rate limited, faulted or logged.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::account::WorkspaceSeed;
use crate::error::{ApiError, json_error};
use crate::faults::{FaultError, FaultSpec, FaultSpecWire};
use crate::model::WorkspaceStatus;
use crate::state::StateHandle;

/// Why a control call was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read the control request body: {0}")]
    BadBody(String),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("workspace id must be a number, got '{0}'")]
    BadWorkspaceId(String),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(error) => error.into_response(),
            other => json_error(
                StatusCode::BAD_REQUEST,
                "INVALID_CONTROL_REQUEST",
                &other.to_string(),
            ),
        }
    }
}

type ControlResult = Result<Response, ControlError>;

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|e| ControlError::BadBody(e.to_string()))
}

fn workspace_id(raw: &str) -> Result<i64, ControlError> {
    raw.parse()
        .map_err(|_| ControlError::BadWorkspaceId(raw.to_owned()))
}

fn done() -> Response {
    Json(json!({})).into_response()
}

pub fn router(state: StateHandle) -> Router {
    Router::new()
        .route("/_emulator/workspaces", post(seed_workspace))
        .route(
            "/_emulator/workspaces/{workspace_id}/clusters",
            post(set_clusters),
        )
        .route(
            "/_emulator/workspaces/{workspace_id}/status",
            post(set_status),
        )
        .route(
            "/_emulator/workspaces/{workspace_id}/silent-revert",
            post(set_silent_revert),
        )
        .route("/_emulator/state", get(dump))
        .route(
            "/_emulator/faults",
            get(list_faults).post(inject_fault).delete(clear_faults),
        )
        .route("/_emulator/requests", get(requests).delete(clear_requests))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/aws-endpoints", post(register_aws_endpoint))
        .route(
            "/_emulator/aws-endpoints/{vpce}/state",
            post(set_endpoint_state),
        )
        .route("/_emulator/aws-subnets", post(describe_aws_subnet))
        .route(
            "/_emulator/aws-security-groups",
            post(describe_aws_security_group),
        )
        .route("/_emulator/latency", post(set_latency))
        .route("/_emulator/tokens/revoke", post(revoke_tokens))
        .with_state(state)
}

#[derive(Deserialize)]
struct SeedRequest {
    account_id: String,
    #[serde(flatten)]
    seed: WorkspaceSeed,
}

/// `POST /_emulator/workspaces` `{"account_id", "name", "region", "network": {"vpc_id",
/// "subnet_ids", "security_group_ids"}, "compute_mode", "running_clusters", "status",
/// "workspace_id", "private_access_settings_id"}` → the workspace as the API shows it.
async fn seed_workspace(State(state): State<StateHandle>, body: Bytes) -> ControlResult {
    let request: SeedRequest = parse(&body)?;
    let workspace = state.seed_workspace(&request.account_id, request.seed)?;
    Ok(Json(workspace).into_response())
}

#[derive(Deserialize)]
struct ClustersRequest {
    running: bool,
}

async fn set_clusters(
    State(state): State<StateHandle>,
    Path(raw): Path<String>,
    body: Bytes,
) -> ControlResult {
    let request: ClustersRequest = parse(&body)?;
    state.set_workspace_clusters_running(workspace_id(&raw)?, request.running)?;
    Ok(done())
}

#[derive(Deserialize)]
struct StatusRequest {
    status: WorkspaceStatus,
    #[serde(default)]
    message: Option<String>,
}

async fn set_status(
    State(state): State<StateHandle>,
    Path(raw): Path<String>,
    body: Bytes,
) -> ControlResult {
    let request: StatusRequest = parse(&body)?;
    let message = request
        .message
        .unwrap_or_else(|| request.status.default_message().to_owned());
    state.force_workspace_status(workspace_id(&raw)?, request.status, &message)?;
    Ok(done())
}

/// `{"enabled": true}` arms one silent revert; `{"times": n}` arms `n`.
#[derive(Deserialize)]
struct SilentRevertRequest {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    times: Option<u32>,
}

async fn set_silent_revert(
    State(state): State<StateHandle>,
    Path(raw): Path<String>,
    body: Bytes,
) -> ControlResult {
    let request: SilentRevertRequest = parse(&body)?;
    let count = request
        .times
        .unwrap_or_else(|| u32::from(request.enabled.unwrap_or(true)));
    state.set_silent_reverts(workspace_id(&raw)?, count)?;
    Ok(done())
}

/// `GET /_emulator/state?account_id=…` → one account's dump; without it, all accounts.
async fn dump(
    State(state): State<StateHandle>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match query.get("account_id") {
        Some(account_id) => Json(state.dump(account_id)).into_response(),
        None => Json(state.dump_all()).into_response(),
    }
}

async fn list_faults(State(state): State<StateHandle>) -> Response {
    let armed: Vec<FaultSpecWire> = state
        .armed_faults()
        .into_iter()
        .map(FaultSpecWire::from)
        .collect();
    Json(armed).into_response()
}

/// Accepts one fault or an array of faults, in the [`FaultSpecWire`] shape.
async fn inject_fault(State(state): State<StateHandle>, body: Bytes) -> ControlResult {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<FaultSpecWire>),
        One(FaultSpecWire),
    }
    let faults = match parse::<OneOrMany>(&body)? {
        OneOrMany::Many(faults) => faults,
        OneOrMany::One(fault) => vec![fault],
    };
    let specs = faults
        .into_iter()
        .map(FaultSpec::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    for spec in specs {
        state.inject_fault(spec);
    }
    Ok(done())
}

async fn clear_faults(State(state): State<StateHandle>) -> Response {
    state.clear_faults();
    done()
}

/// `{"requests": [{"method", "path", "status", "at_ms"}], "counts": {"GET /api/...": n}}`;
/// `at_ms` counts from the emulator's start.
async fn requests(State(state): State<StateHandle>) -> Response {
    let started = state.started();
    let log: Vec<serde_json::Value> = state
        .request_log()
        .into_iter()
        .map(|r| {
            json!({
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "at_ms": r.at.saturating_duration_since(started).as_millis(),
            })
        })
        .collect();
    Json(json!({ "requests": log, "counts": state.request_counts() })).into_response()
}

async fn clear_requests(State(state): State<StateHandle>) -> Response {
    state.clear_request_log();
    done()
}

async fn reset(State(state): State<StateHandle>) -> Response {
    state.reset();
    done()
}

#[derive(Deserialize)]
struct AwsEndpointRequest {
    vpc_endpoint_id: String,
    service_name: String,
    #[serde(default)]
    aws_account_id: Option<String>,
}

/// `POST /_emulator/aws-endpoints` `{"vpc_endpoint_id": "vpce-…", "service_name":
/// "com.amazonaws.vpce.<region>.vpce-svc-…", "aws_account_id"?}`.
async fn register_aws_endpoint(State(state): State<StateHandle>, body: Bytes) -> ControlResult {
    let request: AwsEndpointRequest = parse(&body)?;
    state.register_aws_endpoint_owned_by(
        &request.vpc_endpoint_id,
        &request.service_name,
        request.aws_account_id.as_deref(),
    );
    Ok(done())
}

#[derive(Deserialize)]
struct AwsSubnetRequest {
    subnet_id: String,
    vpc_id: String,
    availability_zone: String,
}

/// `POST /_emulator/aws-subnets` `{"subnet_id", "vpc_id", "availability_zone"}`: networks naming
/// the subnet are judged against it.
async fn describe_aws_subnet(State(state): State<StateHandle>, body: Bytes) -> ControlResult {
    let request: AwsSubnetRequest = parse(&body)?;
    state.describe_aws_subnet(
        &request.subnet_id,
        &request.vpc_id,
        &request.availability_zone,
    );
    Ok(done())
}

#[derive(Deserialize)]
struct AwsSecurityGroupRequest {
    group_id: String,
    vpc_id: String,
}

/// `POST /_emulator/aws-security-groups` `{"group_id", "vpc_id"}`.
async fn describe_aws_security_group(
    State(state): State<StateHandle>,
    body: Bytes,
) -> ControlResult {
    let request: AwsSecurityGroupRequest = parse(&body)?;
    state.describe_aws_security_group(&request.group_id, &request.vpc_id);
    Ok(done())
}

#[derive(Deserialize)]
struct EndpointStateRequest {
    state: Option<String>,
}

/// `{"state": "rejected"}` forces a state; `{"state": null}` lifts the override.
async fn set_endpoint_state(
    State(state): State<StateHandle>,
    Path(vpce): Path<String>,
    body: Bytes,
) -> ControlResult {
    let request: EndpointStateRequest = parse(&body)?;
    state.set_endpoint_state(&vpce, request.state.as_deref());
    Ok(done())
}

#[derive(Deserialize)]
struct LatencyRequest {
    millis: Option<u64>,
}

/// `{"millis": 50}` adds fixed latency to every API request; `{"millis": null}` removes it.
async fn set_latency(State(state): State<StateHandle>, body: Bytes) -> ControlResult {
    let request: LatencyRequest = parse(&body)?;
    state.set_latency_all(request.millis.map(Duration::from_millis));
    Ok(done())
}

async fn revoke_tokens(State(state): State<StateHandle>) -> Response {
    state.revoke_tokens();
    done()
}
