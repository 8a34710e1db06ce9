//! The one error type of the Databricks account API client, and the parser that turns the
//! account API's several error body shapes into a short code + message.
//!
//! Knows nothing about CloudFormation: the resource layer decides what an error means for the
//! stack. Messages never carry a token, a client secret or a whole response body.

use crate::text::shorten_words;
use thiserror::Error;

use crate::redact::Redactor;

/// Longest text quoted from a Databricks response in an error message.
pub(crate) const MAX_QUOTED_CHARS: usize = 300;

/// Everything that can go wrong talking to the Databricks account API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DatabricksError {
    /// The account host is not one of the official account consoles. Checked before any request
    /// because the client secret is sent to this host.
    #[error(
        "Databricks account host {host:?} is not allowed: use https://accounts.cloud.databricks.com, \
         https://accounts.cloud.databricks.us or https://accounts-dod.cloud.databricks.mil \
         (the service principal secret is sent to this host)"
    )]
    HostNotAllowed { host: String },

    #[error(
        "Databricks account id {account_id:?} is not valid: expected a UUID such as \
         01234567-89ab-cdef-0123-456789abcdef (shown in the account console)"
    )]
    InvalidAccountId { account_id: String },

    /// An id that would be placed into a request path is empty or could change the path.
    #[error(
        "{what} {id:?} is not a valid Databricks id: use the id exactly as Databricks returned it"
    )]
    InvalidId { what: &'static str, id: String },

    /// The OAuth token endpoint refused the service principal (permanent: retrying cannot help).
    #[error(
        "Databricks rejected the service principal credentials ({}): {}. {}",
        status_and_code(*status, code.as_deref()),
        message.trim_end_matches('.'),
        credentials_hint(*status)
    )]
    CredentialsRejected {
        status: u16,
        code: Option<String>,
        message: String,
    },

    /// The account API answered with a non-success status.
    #[error(
        "Databricks account API {operation} failed ({}): {message}{}",
        status_and_code(*status, code.as_deref()),
        api_hint(*status)
    )]
    Api {
        operation: &'static str,
        status: u16,
        code: Option<String>,
        message: String,
    },

    /// No HTTP answer at all (connection refused or dropped, TLS failure, timeout).
    #[error("could not reach the Databricks account API ({operation}): {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },

    /// A request that is not safe to repeat went out, and its answer was lost: Databricks may
    /// or may not have carried it out. Callers look before they try again.
    #[error(
        "the answer of the Databricks account API to {operation} was lost, so whether it was carried out is unknown: {message}"
    )]
    AnswerLost {
        operation: &'static str,
        message: String,
    },

    /// Retrying stopped because the next attempt could not finish before the invocation deadline.
    #[error(
        "Databricks account API {operation} did not succeed before the invocation deadline; \
         last error: {last_error}"
    )]
    DeadlineExceeded {
        operation: &'static str,
        last_error: String,
    },

    /// A success status whose body is not what the API documents (for example a login page).
    #[error("Databricks account API {operation} returned an unexpected response: {message}")]
    InvalidResponse {
        operation: &'static str,
        message: String,
    },

    /// A request body could not be encoded; a bug in this program, not in the input.
    #[error("could not encode the request to {operation}: {message}")]
    InvalidRequest {
        operation: &'static str,
        message: String,
    },

    /// The shared HTTP client could not be built (for example no usable TLS configuration).
    #[error("could not set up the HTTPS client for the Databricks account API: {message}")]
    ClientSetup { message: String },
}

impl DatabricksError {
    /// HTTP status of an answer from Databricks, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::CredentialsRejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The object does not exist. Keyed on HTTP 404, not on text
    /// (`docs/account-api.md#missing-objects-and-error-codes`: SDKs and the
    /// Terraform provider detect "missing" the same way). Token endpoint answers never count.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }

    /// The object is still used by something else (`docs/account-api.md#network-configurations`:
    /// deleting an attached network
    /// gives 400 INVALID_STATE; a 409 with an empty body has also been seen). Meant for
    /// answers to a delete: a create's 409 (already exists) matches too.
    pub fn is_in_use(&self) -> bool {
        match self {
            Self::Api { status: 409, .. } => true,
            Self::Api {
                status: 400,
                code: Some(code),
                ..
            } => code.eq_ignore_ascii_case("INVALID_STATE"),
            _ => false,
        }
    }

    /// A `409` without an error code or message of its own (seen on network deletes,
    /// databricks-sdk-go#777): it does not say what conflicts, so it proves no use.
    pub fn is_bare_conflict(&self) -> bool {
        match self {
            Self::Api {
                status: 409,
                code,
                message,
                ..
            } => {
                code.is_none()
                    && (message.trim().is_empty()
                        || message.trim().eq_ignore_ascii_case("Conflict"))
            }
            _ => false,
        }
    }

    /// A create went out and its answer was lost: it may have been carried out.
    pub fn is_answer_lost(&self) -> bool {
        matches!(self, Self::AnswerLost { .. })
    }

    /// The credentials themselves were refused; asking again with the same secret cannot help.
    pub fn is_permanent_credentials(&self) -> bool {
        matches!(self, Self::CredentialsRejected { .. })
    }

    /// The same error with every text that came from a server passed through `redactor`
    /// (messages, codes, earlier errors quoted in a deadline error).
    pub(crate) fn redacted(self, redactor: &Redactor) -> Self {
        let clean = |text: String| redactor.text(&text);
        match self {
            Self::CredentialsRejected {
                status,
                code,
                message,
            } => Self::CredentialsRejected {
                status,
                code: code.map(clean),
                message: clean(message),
            },
            Self::Api {
                operation,
                status,
                code,
                message,
            } => Self::Api {
                operation,
                status,
                code: code.map(clean),
                message: clean(message),
            },
            Self::Transport { operation, message } => Self::Transport {
                operation,
                message: clean(message),
            },
            Self::AnswerLost { operation, message } => Self::AnswerLost {
                operation,
                message: clean(message),
            },
            Self::DeadlineExceeded {
                operation,
                last_error,
            } => Self::DeadlineExceeded {
                operation,
                last_error: clean(last_error),
            },
            Self::InvalidResponse { operation, message } => Self::InvalidResponse {
                operation,
                message: clean(message),
            },
            other @ (Self::HostNotAllowed { .. }
            | Self::InvalidAccountId { .. }
            | Self::InvalidId { .. }
            | Self::InvalidRequest { .. }
            | Self::ClientSetup { .. }) => other,
        }
    }

    /// Databricks `error_code` (or OAuth `error`) of the answer, if it had one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } | Self::CredentialsRejected { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn status_and_code(status: u16, code: Option<&str>) -> String {
    match code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}

fn credentials_hint(status: u16) -> &'static str {
    match status {
        404 => {
            "Check the account id and account host: the token endpoint does not know this account."
        }
        _ => "Check client_id/client_secret in the credentials secret.",
    }
}

fn api_hint(status: u16) -> &'static str {
    match status {
        401 => {
            ". The access token was refused even after fetching a new one; check that the service principal belongs to this account."
        }
        403 => ". The service principal must be an account admin.",
        _ => "",
    }
}

/// Error code and message extracted from an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub message: String,
}

/// Reads the error shapes listed in `docs/account-api.md#error-bodies`: JSON
/// `{"error_code","message"}` (code string
/// or number), legacy `{"error": ...}`, OAuth `{"error","error_description"}`, plain text
/// `CODE: message`, HTML (text inside `<pre>`), and empty bodies (HTTP reason phrase).
pub(crate) fn parse_error_body(status: u16, reason: &str, body: &[u8]) -> ErrorBody {
    let reason = if reason.is_empty() {
        format!("HTTP {status}")
    } else {
        reason.to_string()
    };
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return ErrorBody {
            code: None,
            message: reason,
        };
    }
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(trimmed) {
        return parse_json_error(&object, reason);
    }
    if looks_like_html(trimmed) {
        let message = pre_text(trimmed)
            .map(|pre| shorten_words(&pre, MAX_QUOTED_CHARS))
            .filter(|pre| !pre.is_empty())
            .unwrap_or(reason);
        return ErrorBody {
            code: None,
            message,
        };
    }
    if let Some((code, message)) = split_code_prefix(trimmed) {
        return ErrorBody {
            code: Some(code.to_string()),
            message: shorten_words(message, MAX_QUOTED_CHARS),
        };
    }
    ErrorBody {
        code: None,
        message: shorten_words(trimmed, MAX_QUOTED_CHARS),
    }
}

fn parse_json_error(
    object: &serde_json::Map<String, serde_json::Value>,
    reason: String,
) -> ErrorBody {
    let text_field = |names: &[&str]| {
        names.iter().find_map(|name| match object.get(*name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            // Some account endpoints send a numeric error_code (`docs/account-api.md#error-bodies`;
            // databricks-sdk-go#929).
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let code = text_field(&["error_code", "errorCode"]);
    let message = text_field(&["message", "error_description", "errorSummary"]);
    // `error` is the legacy message in `{"error": "..."}` but the OAuth code in
    // `{"error": "invalid_client", "error_description": "..."}`.
    let legacy = text_field(&["error"]);
    let (code, message) = match (code, message, legacy) {
        (code, Some(message), legacy) => (code.or(legacy), message),
        (code @ Some(_), None, Some(legacy)) => (code, legacy),
        (None, None, Some(legacy)) if is_code_like(&legacy) => (Some(legacy), reason),
        (None, None, Some(legacy)) => (None, legacy),
        (code, None, None) => (code, reason),
    };
    ErrorBody {
        code: code.map(|c| shorten_words(&c, 64)),
        message: shorten_words(&message, MAX_QUOTED_CHARS),
    }
}

fn is_code_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `^([A-Z_]+): (.*)$` on the whole body, as the Go SDK's string error parser does (no
/// multi-line match: `.` stops at a newline).
fn split_code_prefix(text: &str) -> Option<(&str, &str)> {
    let (code, message) = text.split_once(": ")?;
    let code_ok = !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    (code_ok && !message.contains('\n')).then_some((code, message))
}

/// Why a success answer could not be read as JSON, without quoting it: a 2xx HTML page is
/// usually the login page a wrong host or account id is redirected to
/// (`docs/account-api.md#error-bodies`).
pub(crate) fn describe_non_json(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "an empty body where JSON was expected".to_string()
    } else if looks_like_html(&text) {
        "an HTML page instead of JSON (usually a login page: check the account host and account id)"
            .to_string()
    } else {
        "a body that is not JSON".to_string()
    }
}

fn looks_like_html(text: &str) -> bool {
    let start = text
        .trim_start()
        .chars()
        .take(15)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<pre",
        "<title",
    ]
    .iter()
    .any(|tag| start.starts_with(tag))
}

fn pre_text(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<pre")?;
    let content_start = open + lower[open..].find('>')? + 1;
    let content_end = content_start + lower[content_start..].find("</pre")?;
    Some(strip_tags(&html[content_start..content_end]))
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, reason: &str, body: &str) -> ErrorBody {
        parse_error_body(status, reason, body.as_bytes())
    }

    #[test]
    fn a_conflict_that_says_nothing_is_bare() {
        let api = |status: u16, body: &str| {
            let parsed = parse(status, "Conflict", body);
            DatabricksError::Api {
                operation: "delete network",
                status,
                code: parsed.code,
                message: parsed.message,
            }
        };
        let bare = api(409, "");
        assert!(bare.is_bare_conflict() && bare.is_in_use());
        let said = api(
            409,
            r#"{"error_code":"RESOURCE_CONFLICT","message":"in use by workspace 1"}"#,
        );
        assert!(!said.is_bare_conflict() && said.is_in_use());
        assert!(
            !api(
                400,
                r#"{"error_code":"INVALID_STATE","message":"being used"}"#
            )
            .is_bare_conflict()
        );
    }

    #[test]
    fn standard_json_error_gives_code_and_message() {
        let parsed = parse(
            400,
            "Bad Request",
            r#"{"error_code":"INVALID_STATE","message":"Unable to delete, Network is being used by active workspace 123","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"x"}]}"#,
        );
        assert_eq!(parsed.code.as_deref(), Some("INVALID_STATE"));
        assert_eq!(
            parsed.message,
            "Unable to delete, Network is being used by active workspace 123"
        );
    }

    #[test]
    fn numeric_error_code_is_kept_as_text() {
        let parsed = parse(
            403,
            "Forbidden",
            r#"{"error_code": 403, "message": "Invalid access token."}"#,
        );
        assert_eq!(parsed.code.as_deref(), Some("403"));
        assert_eq!(parsed.message, "Invalid access token.");
    }

    #[test]
    fn legacy_error_field_is_the_message() {
        let parsed = parse(
            400,
            "Bad Request",
            r#"{"error": "Workspace is not in a valid state"}"#,
        );
        assert_eq!(parsed.code, None);
        assert_eq!(parsed.message, "Workspace is not in a valid state");
    }

    #[test]
    fn oauth_error_gives_code_and_description() {
        let parsed = parse(
            401,
            "Unauthorized",
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
        );
        assert_eq!(parsed.code.as_deref(), Some("invalid_client"));
        assert_eq!(parsed.message, "Client authentication failed");
        let bare = parse(400, "Bad Request", r#"{"error":"invalid_scope"}"#);
        assert_eq!(bare.code.as_deref(), Some("invalid_scope"));
        assert_eq!(bare.message, "Bad Request");
    }

    #[test]
    fn plain_text_code_prefix_is_split() {
        let parsed = parse(
            400,
            "Bad Request",
            "MALFORMED_REQUEST: Cannot parse request body\n",
        );
        assert_eq!(parsed.code.as_deref(), Some("MALFORMED_REQUEST"));
        assert_eq!(parsed.message, "Cannot parse request body");
        let lower = parse(400, "Bad Request", "oops: not a code");
        assert_eq!(lower.code, None);
        assert_eq!(lower.message, "oops: not a code");
        let multi = parse(400, "Bad Request", "CODE: first\nsecond");
        assert_eq!(multi.code, None);
    }

    #[test]
    fn html_uses_pre_text_or_reason() {
        let with_pre = parse(
            502,
            "Bad Gateway",
            "<html><head><title>Error 502</title></head><body><pre>upstream &quot;x&quot; <b>down</b></pre></body></html>",
        );
        assert_eq!(with_pre.code, None);
        assert_eq!(with_pre.message, "upstream \"x\" down");
        let without_pre = parse(
            503,
            "Service Unavailable",
            "<!DOCTYPE html><html><body><h1>Sorry</h1><p>secret-looking page text</p></body></html>",
        );
        assert_eq!(without_pre.message, "Service Unavailable");
    }

    #[test]
    fn empty_body_uses_reason_phrase() {
        assert_eq!(parse(409, "Conflict", "").message, "Conflict");
        assert_eq!(parse(409, "", "  \r\n").message, "HTTP 409");
    }

    #[test]
    fn long_messages_are_shortened_on_char_boundaries() {
        let long = "é".repeat(1000);
        let parsed = parse(
            400,
            "Bad Request",
            &format!(r#"{{"error_code":"X","message":"{long}"}}"#),
        );
        assert_eq!(parsed.message.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(parsed.message.ends_with('…'));
        assert_eq!(shorten_words("a  b\n\tc", 10), "a b c");
        assert_eq!(shorten_words("abcdef", 3), "abc…");
        assert_eq!(shorten_words("abc def", 3), "abc…");
    }

    #[test]
    fn classification_helpers() {
        let api = |status, code: Option<&str>| DatabricksError::Api {
            operation: "delete network",
            status,
            code: code.map(str::to_string),
            message: "m".into(),
        };
        assert!(api(404, None).is_not_found());
        assert!(!api(400, None).is_not_found());
        assert!(api(400, Some("INVALID_STATE")).is_in_use());
        assert!(api(409, None).is_in_use());
        assert!(!api(400, Some("INVALID_PARAMETER_VALUE")).is_in_use());
        assert_eq!(api(400, Some("X")).error_code(), Some("X"));
        assert_eq!(api(503, None).status(), Some(503));
        let rejected = DatabricksError::CredentialsRejected {
            status: 404,
            code: None,
            message: "Not Found".into(),
        };
        assert!(rejected.is_permanent_credentials());
        assert!(
            !rejected.is_not_found(),
            "a token 404 must never look like a missing object"
        );
    }

    #[test]
    fn display_messages_read_well() {
        let rejected = DatabricksError::CredentialsRejected {
            status: 401,
            code: Some("invalid_client".into()),
            message: "Client authentication failed.".into(),
        };
        assert_eq!(
            rejected.to_string(),
            "Databricks rejected the service principal credentials (401 invalid_client): \
             Client authentication failed. Check client_id/client_secret in the credentials secret."
        );
        let api = DatabricksError::Api {
            operation: "create VPC endpoint registration",
            status: 409,
            code: Some("RESOURCE_ALREADY_EXISTS".into()),
            message: "already registered".into(),
        };
        assert_eq!(
            api.to_string(),
            "Databricks account API create VPC endpoint registration failed \
             (409 RESOURCE_ALREADY_EXISTS): already registered"
        );
    }
}
