//! One HTTP exchange with the account API, retried the way the Databricks SDKs retry
//! (`docs/account-api.md#retries-and-rate-limits`), and never past the invocation deadline.
//!
//! Owns which answers are worth another attempt and how long to wait between attempts. It does
//! not know what the request means: callers build it, say whether sending it twice is harmless,
//! and turn a final error answer into their own error (the token endpoint and the API differ
//! there). A request that is not harmless to repeat is never sent again once it may have
//! reached the API; the caller gets `AnswerLost` and decides.

use crate::text::shorten_words;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode, header};
use tokio::time::Instant;

use super::error::{DatabricksError, MAX_QUOTED_CHARS};

/// Larger answers are not account API objects; reading them would only waste the deadline.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How often and how patiently to retry. Every wait is additionally bounded by the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Backoff before the second attempt; doubles with every further attempt.
    pub base_delay: Duration,
    /// Longest backoff between two attempts (a `Retry-After` may ask for longer).
    pub max_delay: Duration,
    /// Attempts in total, the first included. A 429 does not count towards it: only the
    /// deadline ends retries of a throttled request.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// Capped exponential backoff with jitter: a random point in the upper half of the step,
    /// so concurrent invocations throttled together do not come back together.
    pub(crate) fn backoff(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(20);
        let step = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let half = step / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }
}

/// 429 and 503 are the platform's "come back later"; 502 and 504 come from gateways in front
/// of the API. 500 is not retried, as neither SDK does (`docs/account-api.md#retries-and-rate-limits`).
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// A gateway in front of the API gave up on it: the API itself may have carried the request
/// out. (429 and 503 come from the API refusing to start, so they are safe to repeat.)
pub(crate) fn is_gateway_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502 | 504)
}

/// Longest `Retry-After` taken as given. No invocation lasts longer (Lambda's limit is 15
/// minutes), so a longer wait only has to be known to be too long, and a bounded value keeps
/// every deadline computation clear of overflow.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// `Retry-After` in whole seconds, at most [`MAX_RETRY_AFTER`]; the HTTP-date form is not used
/// by Databricks.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but beyond u64 is still "very long", not "no Retry-After".
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
    } else {
        None
    }
}

/// What the caller needs from one answer.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn reason(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("")
    }
}

/// What one exchange needs from the client it belongs to.
pub(crate) struct Exchange<'a> {
    pub policy: &'a RetryPolicy,
    pub request_timeout: Duration,
    pub deadline: Instant,
    /// Incremented for every retry, so callers can observe how hard the API pushed back.
    pub retries: &'a AtomicU64,
    pub operation: &'static str,
    /// For logs only: method and path, never the query string or headers.
    pub method: &'a str,
    pub path: &'a str,
    /// Whether sending the request twice does no harm. A create is not: the account API's POSTs
    /// carry no idempotency token, so when its answer is lost after the request went out (the
    /// connection dropped, no answer in time, or a gateway's 502/504) it may have been carried
    /// out, and a blind retry makes a second object. Such an attempt ends in `AnswerLost` for
    /// the caller to look before trying again.
    pub idempotent: bool,
}

impl Exchange<'_> {
    /// Sends `build()` until it succeeds, fails for good, or the deadline would be passed.
    /// A 2xx answer is returned; any other final answer becomes `error_of(answer)`.
    pub(crate) async fn run(
        &self,
        build: impl Fn() -> RequestBuilder,
        error_of: impl Fn(&RawResponse) -> DatabricksError,
    ) -> Result<RawResponse, DatabricksError> {
        let mut last_error: Option<DatabricksError> = None;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let time_left = self.deadline.saturating_duration_since(Instant::now());
            if time_left.is_zero() {
                return Err(self.deadline_exceeded(last_error.as_ref()));
            }
            let attempt_timeout = self.request_timeout.min(time_left);
            let sent_at = Instant::now();
            let outcome = send_once(build().timeout(attempt_timeout)).await;
            let retry = match outcome {
                Ok(response) => match self.judge_answer(&response, attempt, &error_of)? {
                    AnswerVerdict::Success => return Ok(response),
                    AnswerVerdict::Retry(retry) => retry,
                },
                Err(SendError::TooLarge) => {
                    return Err(DatabricksError::InvalidResponse {
                        operation: self.operation,
                        message: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                    });
                }
                Err(SendError::Transport(error)) => self.judge_transport_error(
                    &error,
                    attempt,
                    attempt_timeout,
                    sent_at,
                    last_error.as_ref(),
                )?,
            };
            // A 429 says the request is fine, only early: the SDKs give it a budget of time, not
            // attempts (`docs/account-api.md#retries-and-rate-limits`). Counting it would fail one of
            // many stacks throttled
            // together while most of its time is left.
            if attempt >= self.policy.max_attempts && !retry.throttled {
                return Err(retry.error);
            }
            let delay = self.delay_within_deadline(attempt, &retry)?;
            tracing::debug!(
                operation = self.operation,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying Databricks account API request"
            );
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            last_error = Some(retry.error);
        }
    }

    /// What an HTTP answer means: a success to return, an error worth another attempt, or (as
    /// `Err`) the end of the exchange.
    fn judge_answer(
        &self,
        response: &RawResponse,
        attempt: u32,
        error_of: &impl Fn(&RawResponse) -> DatabricksError,
    ) -> Result<AnswerVerdict, DatabricksError> {
        tracing::debug!(
            operation = self.operation,
            method = self.method,
            path = self.path,
            status = response.status.as_u16(),
            attempt,
            "Databricks account API answered"
        );
        if response.status.is_success() {
            return Ok(AnswerVerdict::Success);
        }
        if response.status.is_redirection() {
            // Redirects are not followed: the account API never redirects, and a
            // redirect to a login page means a wrong host or account
            // (`docs/account-api.md#error-bodies`).
            return Err(DatabricksError::InvalidResponse {
                operation: self.operation,
                message: format!(
                    "redirected ({} {}); check the account host and account id",
                    response.status.as_u16(),
                    response.reason()
                ),
            });
        }
        let error = error_of(response);
        if !is_retryable_status(response.status) {
            return Err(error);
        }
        if !self.idempotent && is_gateway_status(response.status) {
            return Err(self.answer_lost(&error));
        }
        Ok(AnswerVerdict::Retry(Retry {
            error,
            retry_after: response.retry_after,
            throttled: response.status == StatusCode::TOO_MANY_REQUESTS,
        }))
    }

    /// What a failed send means: worth another attempt, or (as `Err`) the end of the exchange,
    /// when the deadline cut it short or the request may have been carried out.
    fn judge_transport_error(
        &self,
        error: &reqwest::Error,
        attempt: u32,
        attempt_timeout: Duration,
        sent_at: Instant,
        last_error: Option<&DatabricksError>,
    ) -> Result<Retry, DatabricksError> {
        let message = describe_transport(error, attempt_timeout);
        // An attempt the deadline cut short ended for lack of time, not because of
        // the API: what went wrong before it is the reason worth reporting.
        if error.is_timeout()
            && attempt_timeout < self.request_timeout
            && sent_at.elapsed() >= attempt_timeout
        {
            let cut_short = DatabricksError::Transport {
                operation: self.operation,
                message,
            };
            return Err(self.deadline_exceeded(Some(last_error.unwrap_or(&cut_short))));
        }
        tracing::debug!(
            operation = self.operation,
            method = self.method,
            path = self.path,
            attempt,
            error = %message,
            "Databricks account API request failed"
        );
        let never_connected = error.is_connect();
        let error = DatabricksError::Transport {
            operation: self.operation,
            message,
        };
        // A connection that was never made carried nothing out.
        if !self.idempotent && !never_connected {
            return Err(self.answer_lost(&error));
        }
        Ok(Retry {
            error,
            retry_after: None,
            throttled: false,
        })
    }

    /// The wait before the next attempt, or (as `Err`) the end of the exchange when it would
    /// pass the deadline.
    fn delay_within_deadline(
        &self,
        attempt: u32,
        retry: &Retry,
    ) -> Result<Duration, DatabricksError> {
        // Retry-After is a lower bound, never shortened by the backoff schedule.
        let delay = self
            .policy
            .backoff(attempt)
            .max(retry.retry_after.unwrap_or_default());
        let time_left = self.deadline.saturating_duration_since(Instant::now());
        if delay < time_left {
            return Ok(delay);
        }
        if let Some(asked) = retry.retry_after.filter(|asked| *asked >= time_left) {
            return Err(DatabricksError::DeadlineExceeded {
                operation: self.operation,
                last_error: format!(
                    "{}; Databricks asked to wait {} s before trying again \
                     (Retry-After), longer than the {} s this invocation had left",
                    retry.error,
                    asked.as_secs(),
                    time_left.as_secs()
                ),
            });
        }
        Err(self.deadline_exceeded(Some(&retry.error)))
    }

    fn answer_lost(&self, error: &DatabricksError) -> DatabricksError {
        // The error's text may quote the server; it reaches logs only through the caller, after
        // the client has redacted it.
        tracing::warn!(
            operation = self.operation,
            method = self.method,
            path = self.path,
            "the answer to a request that may have been carried out was lost; not sending it again blindly"
        );
        DatabricksError::AnswerLost {
            operation: self.operation,
            message: error.to_string(),
        }
    }

    fn deadline_exceeded(&self, last_error: Option<&DatabricksError>) -> DatabricksError {
        DatabricksError::DeadlineExceeded {
            operation: self.operation,
            last_error: last_error.map_or_else(
                || "no attempt could be made: the deadline had already passed".to_string(),
                ToString::to_string,
            ),
        }
    }
}

/// An attempt that failed in a way worth trying again.
struct Retry {
    error: DatabricksError,
    /// What the answer's `Retry-After` asked for, if anything.
    retry_after: Option<Duration>,
    /// A 429: does not count towards `max_attempts`.
    throttled: bool,
}

/// What an HTTP answer that does not end the exchange means.
enum AnswerVerdict {
    Success,
    Retry(Retry),
}

enum SendError {
    Transport(reqwest::Error),
    TooLarge,
}

async fn send_once(request: RequestBuilder) -> Result<RawResponse, SendError> {
    let mut response = request.send().await.map_err(SendError::Transport)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(SendError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(SendError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(RawResponse {
        status,
        retry_after,
        body,
    })
}

/// reqwest's own Display names the URL; the innermost cause ("Connection refused", "connection
/// closed before message completed") is what a person can act on.
fn describe_transport(error: &reqwest::Error, attempt_timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {:.1} s", attempt_timeout.as_secs_f64());
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let what = if error.is_connect() {
        "could not connect"
    } else {
        "the connection failed"
    };
    format!(
        "{what}: {}",
        shorten_words(&cause.to_string(), MAX_QUOTED_CHARS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_the_step() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_attempts: 8,
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retryable_statuses() {
        for status in [429, 502, 503, 504] {
            assert!(
                is_retryable_status(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 500, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after(""), None);
    }
}
