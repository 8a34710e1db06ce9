//! OAuth M2M as the account API does it (`docs/account-api.md#hosts-and-authentication`): the
//! client-credentials token endpoint,
//! the discovery documents the Python SDK fetches, and the Bearer check in front of the account
//! API. Knows nothing of the account objects.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use crate::error::ApiError;
use crate::state::{StateHandle, TOKEN_LIFETIME, TokenRefusal};

/// Token endpoint errors, in the standard OAuth shape the SDKs parse
/// (`docs/account-api.md#hosts-and-authentication`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("Client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Only the client_credentials grant is supported here, got '{0}'")]
    UnsupportedGrantType(String),
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::UnsupportedGrantType(_) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        };
        let body = json!({ "error": code, "error_description": self.to_string() });
        (status, Json(body)).into_response()
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `POST /oidc/accounts/{account_id}/v1/token`: HTTP Basic client authentication (what both SDKs
/// send), or `client_id`/`client_secret` form fields.
pub async fn token(
    State(state): State<StateHandle>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(form) = form.map_err(|_| {
        OAuthError::InvalidRequest(
            "Send an application/x-www-form-urlencoded body with grant_type=client_credentials"
                .into(),
        )
    })?;
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => return Err(OAuthError::UnsupportedGrantType(other.to_owned())),
        None => {
            return Err(OAuthError::InvalidRequest(
                "grant_type is required (client_credentials)".into(),
            ));
        }
    }
    let (client_id, client_secret) = basic_credentials(&headers)
        .or_else(|| {
            Some((
                form.get("client_id")?.clone(),
                form.get("client_secret")?.clone(),
            ))
        })
        .ok_or(OAuthError::InvalidClient)?;
    let access_token = state
        .issue_token(&account_id, &client_id, &client_secret)
        .map_err(|TokenRefusal::InvalidClient| OAuthError::InvalidClient)?;
    let scope = form
        .get("scope")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "all-apis".to_owned());
    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "scope": scope,
    }))
    .into_response())
}

/// The scheme and authority clients used to reach us, so discovery documents point back here.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `GET /.well-known/databricks-config`: databricks-sdk (Python, 0.16x) asks this first and
/// builds the OIDC discovery URL from `oidc_endpoint`, substituting `{account_id}`
/// (`docs/account-api.md#hosts-and-authentication`). An account host has no workspace, hence no `workspace_id`.
pub async fn host_metadata(headers: HeaderMap) -> Response {
    Json(json!({
        "oidc_endpoint": format!("{}/oidc/accounts/{{account_id}}", base_url(&headers)),
        "cloud": "aws",
    }))
    .into_response()
}

/// `GET /oidc/accounts/{account_id}/.well-known/oauth-authorization-server`.
pub async fn authorization_server(headers: HeaderMap, Path(account_id): Path<String>) -> Response {
    let issuer = format!("{}/oidc/accounts/{account_id}", base_url(&headers));
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["all-apis", "offline_access"],
    }))
    .into_response()
}

/// The account id an account API path is about, if it is one.
fn account_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api/2.0/accounts/")?;
    let account_id = rest.split('/').next()?;
    (!account_id.is_empty()).then_some(account_id)
}

/// Every account API call needs a Bearer token issued for that same account.
pub async fn require_bearer(
    State(state): State<StateHandle>,
    request: Request,
    next: Next,
) -> Response {
    let Some(account_id) = account_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let verdict = match token {
        Some(token) => state.check_token(account_id, &token),
        None => Err(ApiError::Unauthenticated(format!(
            "No access token: send Authorization: Bearer <token> with a token from /oidc/accounts/{account_id}/v1/token"
        ))),
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("client:s3cr:et");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("client".into(), "s3cr:et".into()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn only_account_api_paths_need_a_token() {
        assert_eq!(account_of("/api/2.0/accounts/a1/networks"), Some("a1"));
        assert_eq!(account_of("/api/2.0/accounts/"), None);
        assert_eq!(account_of("/api/2.0/clusters/list"), None);
    }
}
