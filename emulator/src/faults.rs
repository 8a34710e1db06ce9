//! Injected faults: which requests they hit, how often, and what the client experiences
//! (`docs/account-api.md#error-bodies`, `#retries-and-rate-limits`: the error shapes and
//! transient failures clients must survive). Knows nothing
//! of the account objects.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fault armed for the next `times` requests matching `method` and `path_contains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// Upper-case HTTP method; `None` matches any.
    pub method: Option<String>,
    /// Substring of the request path (without query), e.g. `"/vpc-endpoints"` or `"/oidc/"`.
    pub path_contains: Option<String>,
    /// How many matching requests get the fault before it disarms.
    pub times: u32,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Delay, then answer normally.
    Latency(Duration),
    /// Answer with this status instead of running the request.
    Status {
        status: u16,
        retry_after: Option<u32>,
        body: FaultBody,
    },
    /// Close the connection without a response.
    Drop,
    /// Never answer (bounded by [`HANG_LIMIT`]), as a stuck load balancer would.
    Hang,
    /// Carry the request out, then lose the answer: the client cannot tell whether the write
    /// happened (no idempotency token exists on these POSTs).
    LoseAnswer(LostAnswer),
}

/// How the answer to a request that was carried out gets lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostAnswer {
    /// The connection closes without a response.
    Drop,
    /// A gateway in front of the API answers `504` with an HTML page.
    GatewayTimeout,
}

/// The page a gateway sends when the API behind it took too long.
pub const GATEWAY_TIMEOUT_HTML: &str = "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>";

/// How long a `Hang` fault holds a connection before closing it without a response.
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// The body shapes the account API is known to produce on errors (`docs/account-api.md#error-bodies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultBody {
    Json {
        error_code: String,
        message: String,
    },
    /// Sent as is; by convention `"CODE: message"`.
    PlainText(String),
    Html(String),
    Empty,
}

impl FaultSpec {
    /// A fault on every request, once; narrow it with the builder methods.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            method: None,
            path_contains: None,
            times: 1,
            kind,
        }
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn path_contains(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|fragment| path.contains(fragment))
    }
}

impl FaultKind {
    /// A JSON error body, e.g. `status_json(503, "TEMPORARILY_UNAVAILABLE", "try again")`.
    pub fn status_json(status: u16, error_code: &str, message: &str) -> Self {
        Self::Status {
            status,
            retry_after: None,
            body: FaultBody::Json {
                error_code: error_code.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}

/// Armed faults in the order they were injected; the first match wins.
#[derive(Debug, Default)]
pub struct FaultRegistry {
    armed: Vec<FaultSpec>,
}

impl FaultRegistry {
    pub fn arm(&mut self, spec: FaultSpec) {
        if spec.times > 0 {
            self.armed.push(spec);
        }
    }

    pub fn clear(&mut self) {
        self.armed.clear();
    }

    pub fn armed(&self) -> Vec<FaultSpec> {
        self.armed.clone()
    }

    /// Consumes one use of the first fault matching the request.
    pub fn take(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let index = self.armed.iter().position(|f| f.matches(method, path))?;
        let fault = &mut self.armed[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.armed.remove(index);
        }
        Some(kind)
    }
}

/// JSON form of a [`FaultSpec`] for the `/_emulator/faults` control endpoint, e.g.
/// `{"method":"POST","path_contains":"/vpc-endpoints","times":2,"kind":"status","status":503,
/// "retry_after":1,"body":{"type":"json","error_code":"TEMPORARILY_UNAVAILABLE","message":"x"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpecWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(flatten)]
    pub kind: FaultKindWire,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKindWire {
    Latency {
        millis: u64,
    },
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u32>,
        #[serde(default = "empty_body")]
        body: FaultBodyWire,
    },
    Drop,
    Hang,
    /// `{"kind": "lose_answer", "after": "drop" | "gateway_timeout"}`.
    LoseAnswer {
        after: LostAnswer,
    },
}

fn empty_body() -> FaultBodyWire {
    FaultBodyWire::Empty
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultBodyWire {
    Json { error_code: String, message: String },
    PlainText { text: String },
    Html { html: String },
    Empty,
}

/// Why a fault description from the control API was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("fault status must be an HTTP status between 100 and 599, got {0}")]
    InvalidStatus(u16),
}

impl TryFrom<FaultSpecWire> for FaultSpec {
    type Error = FaultError;

    fn try_from(wire: FaultSpecWire) -> Result<Self, FaultError> {
        let kind = match wire.kind {
            FaultKindWire::Latency { millis } => FaultKind::Latency(Duration::from_millis(millis)),
            FaultKindWire::Status {
                status,
                retry_after,
                body,
            } => {
                if !(100..=599).contains(&status) {
                    return Err(FaultError::InvalidStatus(status));
                }
                let body = match body {
                    FaultBodyWire::Json {
                        error_code,
                        message,
                    } => FaultBody::Json {
                        error_code,
                        message,
                    },
                    FaultBodyWire::PlainText { text } => FaultBody::PlainText(text),
                    FaultBodyWire::Html { html } => FaultBody::Html(html),
                    FaultBodyWire::Empty => FaultBody::Empty,
                };
                FaultKind::Status {
                    status,
                    retry_after,
                    body,
                }
            }
            FaultKindWire::Drop => FaultKind::Drop,
            FaultKindWire::Hang => FaultKind::Hang,
            FaultKindWire::LoseAnswer { after } => FaultKind::LoseAnswer(after),
        };
        Ok(FaultSpec {
            method: wire.method.map(|m| m.to_ascii_uppercase()),
            path_contains: wire.path_contains,
            times: wire.times,
            kind,
        })
    }
}

impl From<FaultSpec> for FaultSpecWire {
    fn from(spec: FaultSpec) -> Self {
        let kind = match spec.kind {
            FaultKind::Latency(delay) => FaultKindWire::Latency {
                millis: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            },
            FaultKind::Status {
                status,
                retry_after,
                body,
            } => FaultKindWire::Status {
                status,
                retry_after,
                body: match body {
                    FaultBody::Json {
                        error_code,
                        message,
                    } => FaultBodyWire::Json {
                        error_code,
                        message,
                    },
                    FaultBody::PlainText(text) => FaultBodyWire::PlainText { text },
                    FaultBody::Html(html) => FaultBodyWire::Html { html },
                    FaultBody::Empty => FaultBodyWire::Empty,
                },
            },
            FaultKind::Drop => FaultKindWire::Drop,
            FaultKind::Hang => FaultKindWire::Hang,
            FaultKind::LoseAnswer(after) => FaultKindWire::LoseAnswer { after },
        };
        Self {
            method: spec.method,
            path_contains: spec.path_contains,
            times: spec.times,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_hits_only_matching_requests_and_disarms_after_its_count() {
        let mut registry = FaultRegistry::default();
        registry.arm(
            FaultSpec::new(FaultKind::Drop)
                .method("post")
                .path_contains("/vpc-endpoints")
                .times(2),
        );
        assert_eq!(
            registry.take("GET", "/api/2.0/accounts/a/vpc-endpoints"),
            None
        );
        assert_eq!(registry.take("POST", "/api/2.0/accounts/a/networks"), None);
        assert_eq!(
            registry.take("POST", "/api/2.0/accounts/a/vpc-endpoints"),
            Some(FaultKind::Drop)
        );
        assert_eq!(
            registry.take("POST", "/api/2.0/accounts/a/vpc-endpoints"),
            Some(FaultKind::Drop)
        );
        assert_eq!(
            registry.take("POST", "/api/2.0/accounts/a/vpc-endpoints"),
            None
        );
        assert!(registry.armed().is_empty());
    }

    #[test]
    fn wire_form_round_trips_and_defaults_to_one_time() {
        let wire: FaultSpecWire = serde_json::from_str(
            r#"{"path_contains":"/oidc/","kind":"status","status":429,"retry_after":3,
                "body":{"type":"plain_text","text":"REQUEST_LIMIT_EXCEEDED: slow down"}}"#,
        )
        .unwrap();
        let spec = FaultSpec::try_from(wire.clone()).unwrap();
        assert_eq!(spec.times, 1);
        assert_eq!(
            spec.kind,
            FaultKind::Status {
                status: 429,
                retry_after: Some(3),
                body: FaultBody::PlainText("REQUEST_LIMIT_EXCEEDED: slow down".into())
            }
        );
        assert_eq!(FaultSpecWire::from(spec), wire);
        let lost: FaultSpecWire = serde_json::from_str(
            r#"{"method":"POST","kind":"lose_answer","after":"gateway_timeout"}"#,
        )
        .unwrap();
        let spec = FaultSpec::try_from(lost.clone()).unwrap();
        assert_eq!(spec.kind, FaultKind::LoseAnswer(LostAnswer::GatewayTimeout));
        assert_eq!(FaultSpecWire::from(spec), lost);
        let bad: FaultSpecWire = serde_json::from_str(r#"{"kind":"status","status":700}"#).unwrap();
        assert_eq!(
            FaultSpec::try_from(bad),
            Err(FaultError::InvalidStatus(700))
        );
    }
}
