//! HTTP routes of the emulated account API (`/api/2.0/accounts/{account_id}/...`,
//! `docs/account-api.md`)
//! plus the OIDC routes, turning requests into calls on [`crate::account::Account`]. Knows
//! nothing of faults, rate limits or the request log (the server layer owns those).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::de::DeserializeOwned;

use crate::auth;
use crate::error::ApiError;
use crate::model::{
    CreateNetwork, CreateVpcEndpoint, Network, PrivateAccessSettings, PrivateAccessSettingsBody,
    UpdateWorkspace, VpcEndpoint, Workspace,
};
use crate::state::{StateHandle, fresh_ids};

const ACCOUNT: &str = "/api/2.0/accounts/{account_id}";

/// Routes of the emulated Databricks API (not the `/_emulator/` control routes).
pub fn router(state: StateHandle) -> Router {
    let account = Router::new()
        .route(
            &format!("{ACCOUNT}/vpc-endpoints"),
            get(list_vpc_endpoints).post(create_vpc_endpoint),
        )
        .route(
            &format!("{ACCOUNT}/vpc-endpoints/{{id}}"),
            get(get_vpc_endpoint).delete(delete_vpc_endpoint),
        )
        .route(
            &format!("{ACCOUNT}/private-access-settings"),
            get(list_private_access_settings).post(create_private_access_settings),
        )
        .route(
            &format!("{ACCOUNT}/private-access-settings/{{id}}"),
            get(get_private_access_settings)
                .put(replace_private_access_settings)
                .delete(delete_private_access_settings),
        )
        .route(
            &format!("{ACCOUNT}/networks"),
            get(list_networks).post(create_network),
        )
        .route(
            &format!("{ACCOUNT}/networks/{{id}}"),
            get(get_network).delete(delete_network),
        )
        .route(&format!("{ACCOUNT}/workspaces"), get(list_workspaces))
        .route(
            &format!("{ACCOUNT}/workspaces/{{id}}"),
            get(get_workspace).patch(update_workspace),
        )
        .fallback(no_such_api)
        .method_not_allowed_fallback(no_such_api)
        // A layer (not route_layer) so that authentication is checked before routing, as the
        // real front door does.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    Router::new()
        .route("/oidc/accounts/{account_id}/v1/token", post(auth::token))
        .route(
            "/oidc/accounts/{account_id}/.well-known/oauth-authorization-server",
            get(auth::authorization_server),
        )
        .route("/.well-known/databricks-config", get(auth::host_metadata))
        .merge(account)
        .with_state(state)
}

/// Real answer for unknown routes and methods, e.g. a `PUT` on a network (networks are
/// immutable, `docs/account-api.md#network-configurations`): `404 ENDPOINT_NOT_FOUND`, path
/// shown without `/api/2.0`.
async fn no_such_api(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let shown = path.strip_prefix("/api/2.0").unwrap_or(path);
    ApiError::EndpointNotFound {
        method: method.to_string(),
        path: shown.to_owned(),
    }
    .into_response()
}

/// Bodies are parsed here rather than by axum's `Json` so that a bad body gets the account API's
/// plain-text `MALFORMED_REQUEST` (`docs/account-api.md#error-bodies`) instead of axum's 415/422.
fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|_| ApiError::MalformedRequest)
}

fn parse_workspace_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::invalid(format!(
            "workspace_id must be the numeric workspace ID, got '{raw}'"
        ))
    })
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn create_vpc_endpoint(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> ApiResult<VpcEndpoint> {
    let request: CreateVpcEndpoint = parse_body(&body)?;
    state
        .with_account(&account_id, |account, view| {
            account.create_vpc_endpoint(request, view, fresh_ids())
        })
        .map(Json)
}

async fn get_vpc_endpoint(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<VpcEndpoint> {
    state
        .with_account(&account_id, |account, view| {
            account.get_vpc_endpoint(&id, view)
        })
        .map(Json)
}

async fn list_vpc_endpoints(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
) -> Json<Vec<VpcEndpoint>> {
    Json(state.with_account(&account_id, |account, view| {
        account.list_vpc_endpoints(view)
    }))
}

async fn delete_vpc_endpoint(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<VpcEndpoint> {
    state
        .with_account(&account_id, |account, view| {
            account.delete_vpc_endpoint(&id, view)
        })
        .map(Json)
}

async fn create_private_access_settings(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> ApiResult<PrivateAccessSettings> {
    let request: PrivateAccessSettingsBody = parse_body(&body)?;
    state
        .with_account(&account_id, |account, _| {
            account.create_private_access_settings(request, fresh_ids())
        })
        .map(Json)
}

async fn get_private_access_settings(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<PrivateAccessSettings> {
    state
        .with_account(&account_id, |account, _| {
            account.get_private_access_settings(&id)
        })
        .map(Json)
}

async fn list_private_access_settings(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
) -> Json<Vec<PrivateAccessSettings>> {
    Json(state.with_account(&account_id, |account, _| {
        account.list_private_access_settings()
    }))
}

async fn replace_private_access_settings(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<PrivateAccessSettings> {
    let request: PrivateAccessSettingsBody = parse_body(&body)?;
    state
        .with_account(&account_id, |account, _| {
            account.replace_private_access_settings(&id, request)
        })
        .map(Json)
}

async fn delete_private_access_settings(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<PrivateAccessSettings> {
    state
        .with_account(&account_id, |account, _| {
            account.delete_private_access_settings(&id)
        })
        .map(Json)
}

async fn create_network(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> ApiResult<Network> {
    let request: CreateNetwork = parse_body(&body)?;
    state
        .with_account(&account_id, |account, view| {
            account.create_network(request, view, fresh_ids())
        })
        .map(Json)
}

async fn get_network(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<Network> {
    state
        .with_account(&account_id, |account, _| account.get_network(&id))
        .map(Json)
}

async fn list_networks(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
) -> Json<Vec<Network>> {
    Json(state.with_account(&account_id, |account, _| account.list_networks()))
}

async fn delete_network(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<Network> {
    state
        .with_account(&account_id, |account, _| account.delete_network(&id))
        .map(Json)
}

async fn list_workspaces(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
) -> Json<Vec<Workspace>> {
    Json(state.with_account(&account_id, |account, _| account.read_workspaces()))
}

async fn get_workspace(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult<Workspace> {
    let workspace_id = parse_workspace_id(&id)?;
    state
        .with_account(&account_id, |account, _| {
            account.get_workspace(workspace_id)
        })
        .map(Json)
}

async fn update_workspace(
    State(state): State<StateHandle>,
    Path((account_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Workspace> {
    let workspace_id = parse_workspace_id(&id)?;
    let request: UpdateWorkspace = parse_body(&body)?;
    state
        .with_account(&account_id, |account, view| {
            account.update_workspace(workspace_id, request, view)
        })
        .map(Json)
}
