//! OAuth machine-to-machine authentication for the account API
//! (`docs/account-api.md#hosts-and-authentication`): service
//! principal credentials, the token request, and the in-process token cache shared by all
//! invocations of a warm Lambda container.
//!
//! Owns the only copies of the client secret and the access tokens; neither ever reaches a log,
//! a Debug print or an error message. Knows nothing about the API calls the token is used for.

use crate::text::shorten_words;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::error::{DatabricksError, MAX_QUOTED_CHARS, describe_non_json, parse_error_body};
use super::retry::{Exchange, RawResponse};
use crate::redact::Redactor;

/// Operation name used in errors and logs for the token request.
pub(crate) const TOKEN_OPERATION: &str = "OAuth token request";

/// Tokens live one hour (`docs/account-api.md#hosts-and-authentication`); used when the answer
/// does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A longer `expires_in` counts as this: a warm container lives hours, not days, and a bounded
/// value keeps the refresh time clear of overflow.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A token is replaced once less than this is left, so no call starts with a token that may
/// expire while the call and its retries are still running.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A service principal's OAuth client id and secret.
#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    client_secret: String,
}

impl ClientCredentials {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A redactor that removes this secret from server text.
    pub(crate) fn redactor(&self) -> Redactor {
        Redactor::for_client(&self.client_id, &self.client_secret)
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Which cache entry a token belongs to. The secret is part of the key (as a SHA-256
/// fingerprint) so that a changed or wrong secret is checked against Databricks instead of
/// being answered from a token obtained with an earlier secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    host: String,
    account_id: String,
    client_id: String,
    secret_fingerprint: [u8; 32],
}

impl TokenKey {
    pub(crate) fn new(host: &str, account_id: &str, credentials: &ClientCredentials) -> Self {
        Self {
            host: host.to_string(),
            account_id: account_id.to_ascii_lowercase(),
            client_id: credentials.client_id.clone(),
            secret_fingerprint: Sha256::digest(credentials.client_secret.as_bytes()).into(),
        }
    }
}

/// A bearer token handed to one API call.
#[derive(Clone)]
pub(crate) struct AccessToken {
    value: Arc<str>,
    /// Identifies this token in the cache, so a 401 only evicts the token that was refused and
    /// not a newer one another call has already fetched.
    generation: u64,
}

impl AccessToken {
    pub(crate) fn secret(&self) -> &str {
        &self.value
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("generation", &self.generation)
            .finish()
    }
}

/// A token as the token endpoint returned it.
pub(crate) struct FetchedToken {
    value: String,
    lifetime: Duration,
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Tokens per (host, account, service principal), shared by every `AccountClient` built from
/// one `DatabricksHttp`. Each key has its own async mutex, so concurrent callers wait for the
/// one fetch in progress instead of each asking for a token.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Slot>>,
    generations: AtomicU64,
}

impl TokenCache {
    fn slot(&self, key: &TokenKey) -> Slot {
        // The map holds no invariant a panicking holder could break, so poisoning is ignored.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(key.clone()).or_default().clone()
    }

    /// Returns the cached token for `key` while it is fresh, otherwise runs `fetch` (once, even
    /// with many concurrent callers) and caches its result. Waiting is bounded by `deadline`.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        key: &TokenKey,
        deadline: Instant,
        fetch: F,
    ) -> Result<AccessToken, DatabricksError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, DatabricksError>>,
    {
        let slot = self.slot(key);
        let Ok(mut cached) = tokio::time::timeout_at(deadline, slot.lock()).await else {
            return Err(DatabricksError::DeadlineExceeded {
                operation: TOKEN_OPERATION,
                last_error:
                    "another call for the same service principal was still fetching a token"
                        .to_string(),
            });
        };
        if let Some(entry) = cached.as_ref()
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        let requested_at = Instant::now();
        let fetched = fetch().await?;
        let token = AccessToken {
            value: fetched.value.into(),
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at: requested_at + reuse_period(fetched.lifetime),
        });
        Ok(token)
    }

    /// Forgets the token of `generation` after the API refused it (a 401).
    pub(crate) async fn invalidate(&self, key: &TokenKey, generation: u64, deadline: Instant) {
        let slot = self.slot(key);
        if let Ok(mut cached) = tokio::time::timeout_at(deadline, slot.lock()).await
            && cached
                .as_ref()
                .is_some_and(|entry| entry.token.generation == generation)
        {
            *cached = None;
        }
    }
}

/// How long a token of `lifetime` is handed out before a new one is fetched. Tokens living less
/// than twice the margin are reused for half their life, as they would otherwise never be.
fn reuse_period(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2))
}

/// Path of the account-level token endpoint (`docs/account-api.md#hosts-and-authentication`;
/// fixed, as the Go SDK uses it,
/// so no discovery request is needed).
pub(crate) fn token_path(account_id: &str) -> String {
    format!("/oidc/accounts/{account_id}/v1/token")
}

/// `POST {host}/oidc/accounts/{account_id}/v1/token` with HTTP Basic client authentication and
/// `grant_type=client_credentials&scope=all-apis`, retried like any API call.
pub(crate) async fn fetch_token(
    client: &reqwest::Client,
    exchange: &Exchange<'_>,
    url: &str,
    credentials: &ClientCredentials,
) -> Result<FetchedToken, DatabricksError> {
    let response = exchange
        .run(
            || {
                client
                    .post(url)
                    .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
                    .header(header::ACCEPT, "application/json")
                    .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
            },
            token_error,
        )
        .await?;
    parse_token_response(&response.body)
}

/// The token endpoint refuses these credentials for good when it says so: 401 or 403, 404 (it
/// does not know the account), or 400 with an OAuth error about the client or the grant. Any
/// other answer (a 400 without such a code, say from a proxy, 429, 5xx) is an ordinary API
/// failure: a Delete must not give up on the account because of it.
fn token_error(response: &RawResponse) -> DatabricksError {
    let status = response.status.as_u16();
    let parsed = parse_error_body(status, response.reason(), &response.body);
    if refuses_credentials(status, parsed.code.as_deref()) {
        DatabricksError::CredentialsRejected {
            status,
            code: parsed.code,
            message: parsed.message,
        }
    } else {
        DatabricksError::Api {
            operation: TOKEN_OPERATION,
            status,
            code: parsed.code,
            message: parsed.message,
        }
    }
}

/// RFC 6749 §5.2 errors that are about the client's credentials or its right to this grant.
/// (`invalid_scope` is not one: the scope is fixed by this code, so it says nothing about the
/// secret.)
const CREDENTIAL_ERRORS: [&str; 3] = ["invalid_client", "unauthorized_client", "invalid_grant"];

fn refuses_credentials(status: u16, code: Option<&str>) -> bool {
    match status {
        401 | 403 | 404 => true,
        400 => code.is_some_and(|code| {
            CREDENTIAL_ERRORS
                .iter()
                .any(|known| code.eq_ignore_ascii_case(known))
        }),
        _ => false,
    }
}

fn parse_token_response(body: &[u8]) -> Result<FetchedToken, DatabricksError> {
    let invalid = |message: String| DatabricksError::InvalidResponse {
        operation: TOKEN_OPERATION,
        message,
    };
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(body) else {
        return Err(invalid(describe_non_json(body)));
    };
    let value = match answer.get("access_token") {
        Some(serde_json::Value::String(token)) if !token.trim().is_empty() => token.clone(),
        _ => return Err(invalid("the token answer has no access_token".to_string())),
    };
    if let Some(serde_json::Value::String(token_type)) = answer.get("token_type")
        && !token_type.eq_ignore_ascii_case("bearer")
    {
        // The answer's own token is known only here: the client's redactor never received it.
        let mut redactor = Redactor::default();
        redactor.add(&value);
        return Err(invalid(format!(
            "expected token_type \"Bearer\", got {:?}",
            shorten_words(&redactor.text(token_type), MAX_QUOTED_CHARS)
        )));
    }
    let lifetime = match answer.get("expires_in") {
        Some(serde_json::Value::Number(seconds)) => seconds.as_u64().map(Duration::from_secs),
        Some(serde_json::Value::String(seconds)) => {
            seconds.trim().parse().ok().map(Duration::from_secs)
        }
        _ => None,
    }
    .unwrap_or(DEFAULT_TOKEN_LIFETIME)
    .min(MAX_TOKEN_LIFETIME);
    Ok(FetchedToken { value, lifetime })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_secret() {
        let credentials = ClientCredentials::new("sp-client-id", "dose-very-secret");
        let printed = format!("{credentials:?}");
        assert!(printed.contains("sp-client-id"));
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("dose-very-secret"));
        assert_eq!(credentials.client_id(), "sp-client-id");
    }

    #[test]
    fn only_answers_about_the_credentials_refuse_them() {
        for (status, code) in [
            (401, Some("invalid_client")),
            (401, None),
            (403, None),
            (404, None),
            (400, Some("invalid_client")),
            (400, Some("INVALID_GRANT")),
            (400, Some("unauthorized_client")),
        ] {
            assert!(refuses_credentials(status, code), "{status} {code:?}");
        }
        for (status, code) in [
            (400, None),
            (400, Some("MALFORMED_REQUEST")),
            (400, Some("invalid_request")),
            (400, Some("invalid_scope")),
            (429, None),
            (500, Some("invalid_client")),
            (502, None),
        ] {
            assert!(!refuses_credentials(status, code), "{status} {code:?}");
        }
    }

    #[test]
    fn access_token_debug_hides_the_token() {
        let token = AccessToken {
            value: "eyJ-token-value".into(),
            generation: 7,
        };
        assert!(!format!("{token:?}").contains("eyJ-token-value"));
    }

    #[test]
    fn token_response_parsing() {
        let parsed = parse_token_response(
            br#"{"access_token":"abc","token_type":"Bearer","expires_in":120}"#,
        )
        .unwrap();
        assert_eq!(parsed.value, "abc");
        assert_eq!(parsed.lifetime, Duration::from_secs(120));
        let default_lifetime = parse_token_response(br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(default_lifetime.lifetime, DEFAULT_TOKEN_LIFETIME);
        let string_lifetime =
            parse_token_response(br#"{"access_token":"abc","expires_in":"60"}"#).unwrap();
        assert_eq!(string_lifetime.lifetime, Duration::from_secs(60));
        for huge in [
            r#"{"access_token":"abc","expires_in":18446744073709551615}"#,
            r#"{"access_token":"abc","expires_in":"18446744073709551615"}"#,
        ] {
            let clamped = parse_token_response(huge.as_bytes()).unwrap();
            assert_eq!(clamped.lifetime, MAX_TOKEN_LIFETIME, "{huge}");
        }
        assert!(matches!(
            parse_token_response(br#"{"token_type":"Bearer"}"#),
            Err(DatabricksError::InvalidResponse { .. })
        ));
        assert!(matches!(
            parse_token_response(b"<html><body>Sign in</body></html>"),
            Err(DatabricksError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn cache_key_separates_secrets_and_ignores_account_id_case() {
        let a = TokenKey::new("h", "ABC", &ClientCredentials::new("id", "one"));
        let b = TokenKey::new("h", "abc", &ClientCredentials::new("id", "one"));
        let c = TokenKey::new("h", "abc", &ClientCredentials::new("id", "two"));
        assert!(a == b);
        assert!(b != c);
    }

    #[test]
    fn tokens_are_replaced_five_minutes_before_they_expire() {
        assert_eq!(
            reuse_period(Duration::from_secs(3600)),
            Duration::from_secs(3300)
        );
        assert_eq!(
            reuse_period(Duration::from_secs(600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            reuse_period(Duration::from_secs(240)),
            Duration::from_secs(120)
        );
        assert_eq!(reuse_period(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn short_lived_tokens_are_still_reused_for_half_their_life() {
        let cache = TokenCache::default();
        let key = TokenKey::new("h", "a", &ClientCredentials::new("id", "s"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let fetches = AtomicU64::new(0);
        for _ in 0..3 {
            cache
                .get_or_fetch(&key, deadline, || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(FetchedToken {
                        value: "t".into(),
                        lifetime: Duration::from_secs(60),
                    })
                })
                .await
                .unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidate_only_evicts_the_refused_generation() {
        let cache = TokenCache::default();
        let key = TokenKey::new("h", "a", &ClientCredentials::new("id", "s"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let fetch = || async {
            Ok(FetchedToken {
                value: "t".into(),
                lifetime: DEFAULT_TOKEN_LIFETIME,
            })
        };
        let first = cache.get_or_fetch(&key, deadline, fetch).await.unwrap();
        cache
            .invalidate(&key, first.generation() + 100, deadline)
            .await;
        let same = cache.get_or_fetch(&key, deadline, fetch).await.unwrap();
        assert_eq!(same.generation(), first.generation());
        cache.invalidate(&key, first.generation(), deadline).await;
        let fresh = cache.get_or_fetch(&key, deadline, fetch).await.unwrap();
        assert_ne!(fresh.generation(), first.generation());
    }
}
