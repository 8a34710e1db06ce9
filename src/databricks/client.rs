//! The account API client: the shared HTTP client and token cache (`DatabricksHttp`), and one
//! account's calls for one invocation (`AccountClient`), each bounded by that invocation's
//! deadline.
//!
//! Owns host and id validation, request shapes and answer parsing (`docs/account-api.md`). Knows
//! nothing about CloudFormation or about what the objects are used for.

use crate::text::shorten_words;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::{Method, Url, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::auth::{self, AccessToken, ClientCredentials, TokenCache, TokenKey};
use super::error::{DatabricksError, MAX_QUOTED_CHARS, describe_non_json, parse_error_body};
use super::model::{
    CreateNetwork, CreateVpcEndpoint, Network, PrivateAccessSettings, PrivateAccessSettingsRequest,
    VpcEndpoint, Workspace, WorkspaceUpdate,
};
use super::retry::{Exchange, RawResponse, RetryPolicy};
use crate::redact::Redactor;

/// The account consoles (`docs/account-api.md#hosts-and-authentication`). The DoD host is the
/// `.mil` one Terraform and the
/// security reference architecture use today.
const OFFICIAL_ACCOUNT_HOSTS: [&str; 3] = [
    "https://accounts.cloud.databricks.com",
    "https://accounts.cloud.databricks.us",
    "https://accounts-dod.cloud.databricks.mil",
];

/// Environment variable that lets the client talk to a non-official host (an emulator).
const ALLOW_INSECURE_ENV: &str = "ALLOW_INSECURE_ENDPOINTS";

/// Environment variable overriding the per-attempt timeout, in whole seconds. Tests use a short
/// one so a hanging API costs seconds, not the default 30 s per attempt.
const REQUEST_TIMEOUT_ENV: &str = "DATABRICKS_HTTP_TIMEOUT_SECS";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Shorter than the idle timeouts of load balancers in front of the API, so a pooled
/// connection is rarely found closed when a warm container is reused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// True for the three official account hosts: an exact `https://` origin, optionally with a
/// trailing slash (letters compared case-insensitively, as DNS does).
pub fn is_allowed_account_host(host: &str) -> bool {
    official_host(host).is_some()
}

/// The official account host `host` names, written as the SDKs write it: an exact origin, or
/// the same origin with the default port (`:443`) written out.
pub fn official_host(host: &str) -> Option<&'static str> {
    let host = host.strip_suffix('/').unwrap_or(host);
    let exact = |candidate: &str| {
        OFFICIAL_ACCOUNT_HOSTS
            .iter()
            .find(|official| official.eq_ignore_ascii_case(candidate))
            .copied()
    };
    exact(host).or_else(|| {
        // `Url` drops a port that is the scheme's default, so `:443` on https normalises away;
        // anything else (a path, user info, another port) still fails the exact comparison.
        let with_port = host.to_ascii_lowercase();
        let without = with_port.strip_suffix(":443")?;
        exact(without)
    })
}

/// How the client talks HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Allow any http(s) origin as account host. Only for tests against an emulator: the client
    /// secret is sent to whatever host is configured.
    pub allow_insecure: bool,
    /// Longest single HTTP attempt (shortened further near the deadline).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            allow_insecure: false,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpSettings {
    /// Defaults, with `allow_insecure` from `ALLOW_INSECURE_ENDPOINTS=true` and the per-attempt
    /// timeout from `DATABRICKS_HTTP_TIMEOUT_SECS` (a positive number of seconds; anything else
    /// keeps the default, with a warning).
    pub fn from_env() -> Self {
        Self::from_env_value(
            std::env::var(ALLOW_INSECURE_ENV).ok().as_deref(),
            std::env::var(REQUEST_TIMEOUT_ENV).ok().as_deref(),
        )
    }

    fn from_env_value(allow_insecure: Option<&str>, request_timeout_secs: Option<&str>) -> Self {
        let default = Self::default();
        let request_timeout = match request_timeout_secs.map(str::trim) {
            None | Some("") => default.request_timeout,
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => {
                    tracing::warn!(
                        value = %shorten_words(raw, 40),
                        default_secs = default.request_timeout.as_secs(),
                        "{REQUEST_TIMEOUT_ENV} is not a positive whole number of seconds; using the default"
                    );
                    default.request_timeout
                }
            },
        };
        Self {
            allow_insecure: allow_insecure.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            request_timeout,
            ..default
        }
    }
}

/// The process-wide part: one pooled HTTP client and the token cache. Build once in `main`;
/// clones share both.
#[derive(Clone)]
pub struct DatabricksHttp {
    inner: Arc<HttpInner>,
}

struct HttpInner {
    client: reqwest::Client,
    settings: HttpSettings,
    tokens: TokenCache,
}

impl fmt::Debug for DatabricksHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabricksHttp")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl DatabricksHttp {
    /// The pooled HTTP client, for other HTTPS calls of the process (the CloudFormation response):
    /// building a second one would load the system certificate store again at every cold start.
    /// It follows no redirects and, unless insecure endpoints are allowed, speaks only https.
    pub fn client(&self) -> reqwest::Client {
        self.inner.client.clone()
    }

    /// Trusts the platform's certificate store, loaded by the TLS stack itself.
    pub fn new(settings: HttpSettings) -> Result<Self, DatabricksError> {
        Self::build(settings, None)
    }

    /// Trusts exactly `roots` (the process's trust store, read once at init).
    pub fn with_roots(
        settings: HttpSettings,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Self, DatabricksError> {
        Self::build(settings, Some(roots))
    }

    fn build(
        settings: HttpSettings,
        roots: Option<Vec<reqwest::Certificate>>,
    ) -> Result<Self, DatabricksError> {
        let mut builder = reqwest::Client::builder();
        if let Some(roots) = roots {
            builder = builder.tls_certs_only(roots);
        }
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT.min(settings.request_timeout))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // The account API does not redirect; a redirect leads to a login page, and following
            // it would only turn a clear error into a confusing one (`docs/account-api.md#error-bodies`).
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!settings.allow_insecure)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| DatabricksError::ClientSetup {
                message: shorten_words(&error.to_string(), MAX_QUOTED_CHARS),
            })?;
        Ok(Self {
            inner: Arc::new(HttpInner {
                client,
                settings,
                tokens: TokenCache::default(),
            }),
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }
}

/// One account on one host, for one invocation: every call, its retries and its token fetch
/// end by `deadline`. Clones share the retry counter.
#[derive(Clone)]
pub struct AccountClient {
    inner: Arc<AccountInner>,
}

struct AccountInner {
    http: DatabricksHttp,
    host: String,
    account_id: String,
    credentials: ClientCredentials,
    token_key: TokenKey,
    deadline: Instant,
    retries: AtomicU64,
    /// The client secret and every access token this client was handed: no error it returns
    /// may quote them, whatever the server sent back.
    redactor: Mutex<Redactor>,
}

impl fmt::Debug for AccountClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountClient")
            .field("host", &self.inner.host)
            .field("account_id", &self.inner.account_id)
            .field("client_id", &self.inner.credentials.client_id())
            .finish_non_exhaustive()
    }
}

impl AccountClient {
    /// Checks host and account id before anything is sent: the client secret goes to `host`.
    pub fn new(
        http: &DatabricksHttp,
        host: &str,
        account_id: &str,
        credentials: ClientCredentials,
        deadline: Instant,
    ) -> Result<Self, DatabricksError> {
        let host = account_host(host, http.inner.settings.allow_insecure)?;
        if !is_uuid(account_id) {
            return Err(DatabricksError::InvalidAccountId {
                account_id: shorten_words(account_id, 64),
            });
        }
        let token_key = TokenKey::new(&host, account_id, &credentials);
        let redactor = Mutex::new(credentials.redactor());
        Ok(Self {
            inner: Arc::new(AccountInner {
                http: http.clone(),
                host,
                account_id: account_id.to_string(),
                credentials,
                token_key,
                deadline,
                retries: AtomicU64::new(0),
                redactor,
            }),
        })
    }

    /// The account host, normalised (no trailing slash).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    pub fn deadline(&self) -> Instant {
        self.inner.deadline
    }

    /// Retries spent so far by this client and its clones (token requests included).
    pub fn retries_spent(&self) -> u64 {
        self.inner.retries.load(Ordering::Relaxed)
    }

    /// Gets a token (from the cache if still fresh), so wrong credentials fail early.
    pub async fn ensure_token(&self) -> Result<(), DatabricksError> {
        self.token().await.map(|_| ())
    }

    // --- VPC endpoint registrations (`docs/account-api.md#vpc-endpoint-registrations`) ---

    pub async fn list_vpc_endpoints(&self) -> Result<Vec<VpcEndpoint>, DatabricksError> {
        const OP: &str = "list VPC endpoint registrations";
        let response = self
            .call(OP, Method::GET, "vpc-endpoints", None, None)
            .await?;
        json_list(OP, &response)
    }

    pub async fn get_vpc_endpoint(&self, id: &str) -> Result<VpcEndpoint, DatabricksError> {
        const OP: &str = "get VPC endpoint registration";
        let path = format!("vpc-endpoints/{}", checked_id("VPC endpoint id", id)?);
        let response = self.call(OP, Method::GET, &path, None, None).await?;
        json_object(OP, &response)
    }

    pub async fn create_vpc_endpoint(
        &self,
        request: &CreateVpcEndpoint,
    ) -> Result<VpcEndpoint, DatabricksError> {
        const OP: &str = "create VPC endpoint registration";
        let body = json_body(OP, request)?;
        let response = self
            .call(OP, Method::POST, "vpc-endpoints", None, Some(body))
            .await?;
        json_object(OP, &response)
    }

    pub async fn delete_vpc_endpoint(&self, id: &str) -> Result<(), DatabricksError> {
        const OP: &str = "delete VPC endpoint registration";
        let path = format!("vpc-endpoints/{}", checked_id("VPC endpoint id", id)?);
        let response = self.call(OP, Method::DELETE, &path, None, None).await?;
        object_or_empty(OP, &response)
    }

    // --- Private access settings (`docs/account-api.md#private-access-settings`) ---

    pub async fn list_private_access_settings(
        &self,
    ) -> Result<Vec<PrivateAccessSettings>, DatabricksError> {
        const OP: &str = "list private access settings";
        let response = self
            .call(OP, Method::GET, "private-access-settings", None, None)
            .await?;
        json_list(OP, &response)
    }

    pub async fn get_private_access_settings(
        &self,
        id: &str,
    ) -> Result<PrivateAccessSettings, DatabricksError> {
        const OP: &str = "get private access settings";
        let path = format!(
            "private-access-settings/{}",
            checked_id("private access settings id", id)?
        );
        let response = self.call(OP, Method::GET, &path, None, None).await?;
        json_object(OP, &response)
    }

    pub async fn create_private_access_settings(
        &self,
        request: &PrivateAccessSettingsRequest,
    ) -> Result<PrivateAccessSettings, DatabricksError> {
        const OP: &str = "create private access settings";
        let body = json_body(OP, request)?;
        let response = self
            .call(
                OP,
                Method::POST,
                "private-access-settings",
                None,
                Some(body),
            )
            .await?;
        json_object(OP, &response)
    }

    /// `PUT` overwrites the whole object (`docs/account-api.md#private-access-settings`), so
    /// `request` must be complete. Older
    /// API versions answer `{}` or nothing, newer ones the object: all are success.
    pub async fn replace_private_access_settings(
        &self,
        id: &str,
        request: &PrivateAccessSettingsRequest,
    ) -> Result<(), DatabricksError> {
        const OP: &str = "replace private access settings";
        let path = format!(
            "private-access-settings/{}",
            checked_id("private access settings id", id)?
        );
        let body = json_body(OP, request)?;
        let response = self.call(OP, Method::PUT, &path, None, Some(body)).await?;
        object_or_empty(OP, &response)
    }

    pub async fn delete_private_access_settings(&self, id: &str) -> Result<(), DatabricksError> {
        const OP: &str = "delete private access settings";
        let path = format!(
            "private-access-settings/{}",
            checked_id("private access settings id", id)?
        );
        let response = self.call(OP, Method::DELETE, &path, None, None).await?;
        object_or_empty(OP, &response)
    }

    // --- Network configurations (`docs/account-api.md#network-configurations`) ---

    pub async fn list_networks(&self) -> Result<Vec<Network>, DatabricksError> {
        const OP: &str = "list networks";
        let response = self.call(OP, Method::GET, "networks", None, None).await?;
        json_list(OP, &response)
    }

    pub async fn get_network(&self, id: &str) -> Result<Network, DatabricksError> {
        const OP: &str = "get network";
        let path = format!("networks/{}", checked_id("network id", id)?);
        let response = self.call(OP, Method::GET, &path, None, None).await?;
        json_object(OP, &response)
    }

    pub async fn create_network(
        &self,
        request: &CreateNetwork,
    ) -> Result<Network, DatabricksError> {
        const OP: &str = "create network";
        let body = json_body(OP, request)?;
        let response = self
            .call(OP, Method::POST, "networks", None, Some(body))
            .await?;
        json_object(OP, &response)
    }

    pub async fn delete_network(&self, id: &str) -> Result<(), DatabricksError> {
        const OP: &str = "delete network";
        let path = format!("networks/{}", checked_id("network id", id)?);
        let response = self.call(OP, Method::DELETE, &path, None, None).await?;
        object_or_empty(OP, &response)
    }

    // --- Workspaces (`docs/account-api.md#workspaces`) ---

    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, DatabricksError> {
        const OP: &str = "list workspaces";
        let response = self.call(OP, Method::GET, "workspaces", None, None).await?;
        json_list(OP, &response)
    }

    pub async fn get_workspace(&self, workspace_id: i64) -> Result<Workspace, DatabricksError> {
        const OP: &str = "get workspace";
        let path = format!("workspaces/{}", checked_workspace_id(workspace_id)?);
        let response = self.call(OP, Method::GET, &path, None, None).await?;
        json_object(OP, &response)
    }

    /// `PATCH ?update_mask=<set fields>` with a flat body (`docs/account-api.md#workspaces`). An
    /// update without
    /// fields changes nothing and sends nothing. Success may come as the workspace, `{}` or an
    /// empty body depending on the API version.
    pub async fn update_workspace(
        &self,
        workspace_id: i64,
        update: &WorkspaceUpdate,
    ) -> Result<(), DatabricksError> {
        const OP: &str = "update workspace";
        let path = format!("workspaces/{}", checked_workspace_id(workspace_id)?);
        let mask = update.update_mask();
        if mask.is_empty() {
            tracing::debug!(
                workspace_id,
                "workspace update without fields: nothing to send"
            );
            return Ok(());
        }
        let body = json_body(OP, update)?;
        let response = self
            .call(
                OP,
                Method::PATCH,
                &path,
                Some(("update_mask", mask)),
                Some(body),
            )
            .await?;
        object_or_empty(OP, &response)
    }

    // --- plumbing ---

    async fn token(&self) -> Result<AccessToken, DatabricksError> {
        let token = self.fetch_or_reuse_token().await;
        let mut redactor = self.redactor();
        match token {
            Ok(token) => {
                redactor.add(token.secret());
                Ok(token)
            }
            Err(error) => Err(error.redacted(&redactor)),
        }
    }

    /// The redactor of this client; the lock holds no invariant a panic could break.
    fn redactor(&self) -> std::sync::MutexGuard<'_, Redactor> {
        self.inner
            .redactor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch_or_reuse_token(&self) -> Result<AccessToken, DatabricksError> {
        let inner = &self.inner;
        let path = auth::token_path(&inner.account_id);
        let url = format!("{}{}", inner.host, path);
        let exchange = self.exchange(auth::TOKEN_OPERATION, "POST", &path);
        inner
            .http
            .inner
            .tokens
            .get_or_fetch(&inner.token_key, inner.deadline, || {
                auth::fetch_token(
                    &inner.http.inner.client,
                    &exchange,
                    &url,
                    &inner.credentials,
                )
            })
            .await
    }

    fn exchange<'a>(
        &'a self,
        operation: &'static str,
        method: &'a str,
        path: &'a str,
    ) -> Exchange<'a> {
        // Only the account API's POSTs create something; asking for a token twice is harmless.
        let idempotent = method != "POST" || operation == auth::TOKEN_OPERATION;
        let settings = &self.inner.http.inner.settings;
        Exchange {
            policy: &settings.retry,
            request_timeout: settings.request_timeout,
            deadline: self.inner.deadline,
            retries: &self.inner.retries,
            operation,
            method,
            path,
            idempotent,
        }
    }

    /// One API call with the cached token; if the API refuses the token (401), that token is
    /// dropped from the cache and the call is made once more with a fresh one. Errors leave
    /// redacted.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        relative_path: &str,
        query: Option<(&'static str, String)>,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, DatabricksError> {
        let result = async {
            let path = format!(
                "/api/2.0/accounts/{}/{relative_path}",
                self.inner.account_id
            );
            let mut url = Url::parse(&format!("{}{path}", self.inner.host)).map_err(|error| {
                DatabricksError::InvalidRequest {
                    operation,
                    message: error.to_string(),
                }
            })?;
            if let Some((name, value)) = &query {
                url.query_pairs_mut().append_pair(name, value);
            }
            let request = ApiRequest {
                operation,
                method,
                path: &path,
                url: &url,
                body: body.as_deref(),
            };
            let token = self.token().await?;
            match self.send(&request, &token).await {
                Err(error) if error.status() == Some(401) => {
                    tracing::debug!(operation, "access token refused (401); fetching a new one");
                    self.inner
                        .http
                        .inner
                        .tokens
                        .invalidate(
                            &self.inner.token_key,
                            token.generation(),
                            self.inner.deadline,
                        )
                        .await;
                    let token = self.token().await?;
                    self.send(&request, &token).await
                }
                other => other,
            }
        }
        .await;
        result.map_err(|error| error.redacted(&self.redactor()))
    }

    async fn send(
        &self,
        request: &ApiRequest<'_>,
        token: &AccessToken,
    ) -> Result<RawResponse, DatabricksError> {
        let client = &self.inner.http.inner.client;
        self.exchange(request.operation, request.method.as_str(), request.path)
            .run(
                || {
                    let builder = client
                        .request(request.method.clone(), request.url.clone())
                        .bearer_auth(token.secret())
                        .header(header::ACCEPT, "application/json");
                    match request.body {
                        Some(body) => builder
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(body.to_vec()),
                        None => builder,
                    }
                },
                |response| api_error(request.operation, response),
            )
            .await
    }
}

struct ApiRequest<'a> {
    operation: &'static str,
    method: Method,
    /// For logs: the path without the query.
    path: &'a str,
    url: &'a Url,
    body: Option<&'a [u8]>,
}

fn api_error(operation: &'static str, response: &RawResponse) -> DatabricksError {
    let status = response.status.as_u16();
    let parsed = parse_error_body(status, response.reason(), &response.body);
    DatabricksError::Api {
        operation,
        status,
        code: parsed.code,
        message: parsed.message,
    }
}

/// Only the official hosts, unless `allow_insecure` (then any plain http(s) origin).
fn account_host(host: &str, allow_insecure: bool) -> Result<String, DatabricksError> {
    // Refused before parsing: the URL standard drops tabs and newlines anywhere, so the parsed
    // host would not be the one the text shows.
    if host.chars().any(char::is_control) {
        return Err(DatabricksError::HostNotAllowed {
            host: shorten_words(host, 200),
        });
    }
    if let Some(official) = official_host(host) {
        return Ok(official.to_string());
    }
    let parsed = Url::parse(host).ok();
    if allow_insecure && let Some(origin) = parsed.as_ref().and_then(plain_origin) {
        return Ok(origin);
    }
    // Never echo credentials someone put into the URL.
    let shown = match parsed {
        Some(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => host.to_string(),
    };
    Err(DatabricksError::HostNotAllowed {
        host: shorten_words(&shown, 200),
    })
}

fn plain_origin(url: &Url) -> Option<String> {
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/";
    plain.then(|| url.origin().ascii_serialization())
}

/// A UUID as Databricks writes account ids: 8-4-4-4-12 hex digits.
pub fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Ids are put into request paths; anything that could change the path (`/`, `?`, `#`, `..`,
/// percent escapes) is refused before a request is made. Databricks ids are UUIDs.
fn checked_id<'a>(what: &'static str, id: &'a str) -> Result<&'a str, DatabricksError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(id)
    } else {
        Err(DatabricksError::InvalidId {
            what,
            id: shorten_words(id, 64),
        })
    }
}

fn checked_workspace_id(workspace_id: i64) -> Result<i64, DatabricksError> {
    if workspace_id > 0 {
        Ok(workspace_id)
    } else {
        Err(DatabricksError::InvalidId {
            what: "workspace id",
            id: workspace_id.to_string(),
        })
    }
}

fn json_body(operation: &'static str, body: &impl Serialize) -> Result<Vec<u8>, DatabricksError> {
    serde_json::to_vec(body).map_err(|error| DatabricksError::InvalidRequest {
        operation,
        message: error.to_string(),
    })
}

fn invalid(operation: &'static str, message: String) -> DatabricksError {
    DatabricksError::InvalidResponse { operation, message }
}

fn parse_value(operation: &'static str, body: &[u8]) -> Result<serde_json::Value, DatabricksError> {
    serde_json::from_slice(body).map_err(|_| invalid(operation, describe_non_json(body)))
}

fn decode<T: DeserializeOwned>(
    operation: &'static str,
    value: serde_json::Value,
) -> Result<T, DatabricksError> {
    serde_json::from_value(value).map_err(|error| {
        invalid(
            operation,
            format!(
                "the JSON does not have the documented shape: {}",
                shorten_words(&error.to_string(), MAX_QUOTED_CHARS)
            ),
        )
    })
}

fn json_object<T: DeserializeOwned>(
    operation: &'static str,
    response: &RawResponse,
) -> Result<T, DatabricksError> {
    match parse_value(operation, &response.body)? {
        value @ serde_json::Value::Object(_) => decode(operation, value),
        _ => Err(invalid(operation, "expected a JSON object".to_string())),
    }
}

/// Lists are bare JSON arrays (`docs/account-api.md#wire-conventions`); an empty body or `{}` is
/// read as no items.
fn json_list<T: DeserializeOwned>(
    operation: &'static str,
    response: &RawResponse,
) -> Result<Vec<T>, DatabricksError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    match parse_value(operation, &response.body)? {
        value @ serde_json::Value::Array(_) => decode(operation, value),
        serde_json::Value::Object(object) if object.is_empty() => Ok(Vec::new()),
        _ => Err(invalid(operation, "expected a JSON array".to_string())),
    }
}

/// DELETE, PUT and PATCH answer with the object in the current API and with `{}` or nothing in
/// older versions (`docs/account-api.md#wire-conventions`); the content is not needed, but a
/// non-JSON page is an error.
fn object_or_empty(operation: &'static str, response: &RawResponse) -> Result<(), DatabricksError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match parse_value(operation, &response.body)? {
        serde_json::Value::Object(_) => Ok(()),
        _ => Err(invalid(operation, "expected a JSON object".to_string())),
    }
}

#[cfg(test)]
mod tests;
