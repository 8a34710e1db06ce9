//! Errors the emulated account API answers with, and their wire shapes
//! (`docs/account-api.md#error-bodies`, `#missing-objects-and-error-codes`).
//! Knows nothing of which rule produced them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An account API error. The `Display` text is the `message` a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    ResourceDoesNotExist(String),
    #[error("{0}")]
    ResourceAlreadyExists(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The account API answers unparseable bodies in plain text (`docs/account-api.md#error-bodies`).
    #[error("Cannot parse request body")]
    MalformedRequest,
    #[error("No API found for '{method} {path}'")]
    EndpointNotFound { method: String, path: String },
    #[error("Too many requests: the account API rate limit was exceeded, retry after 1 second")]
    RequestLimitExceeded,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidParameterValue(_) | Self::InvalidState(_) | Self::MalformedRequest => {
                StatusCode::BAD_REQUEST
            }
            Self::ResourceDoesNotExist(_) | Self::EndpointNotFound { .. } => StatusCode::NOT_FOUND,
            Self::ResourceAlreadyExists(_) => StatusCode::CONFLICT,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::RequestLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidParameterValue(_) => "INVALID_PARAMETER_VALUE",
            Self::InvalidState(_) => "INVALID_STATE",
            Self::ResourceDoesNotExist(_) => "RESOURCE_DOES_NOT_EXIST",
            Self::ResourceAlreadyExists(_) => "RESOURCE_ALREADY_EXISTS",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::EndpointNotFound { .. } => "ENDPOINT_NOT_FOUND",
            Self::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidParameterValue(message.into())
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::InvalidState(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::ResourceDoesNotExist(message.into())
    }
}

/// `{"error_code": ..., "message": ...}` with the given status.
pub fn json_error(status: StatusCode, error_code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error_code": error_code, "message": message });
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            Self::MalformedRequest => (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{}: {}", self.error_code(), self),
            )
                .into_response(),
            _ => json_error(status, self.error_code(), &self.to_string()),
        };
        if matches!(self, Self::RequestLimitExceeded) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
