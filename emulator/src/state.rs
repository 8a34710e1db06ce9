//! The emulator's whole mutable state behind one lock, and [`StateHandle`], the cloneable handle
//! tests use to seed, inspect and inject without going through HTTP. Knows nothing of HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::EmulatorConfig;
use crate::account::{Account, AccountSnapshot, EndpointView, NewIds, SeedIds, WorkspaceSeed};
use crate::aws::{AwsEndpoint, AwsEndpoints, AwsSubnet};
use crate::error::ApiError;
use crate::faults::{FaultKind, FaultRegistry, FaultSpec};
use crate::model::{
    CreateNetwork, CreateVpcEndpoint, Network, PrivateAccessSettings, PrivateAccessSettingsBody,
    VpcEndpoint, Workspace, WorkspaceStatus,
};

/// Tokens are valid for one hour (`docs/account-api.md#hosts-and-authentication`).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// One request the emulator answered (or deliberately did not). No bodies or headers are kept,
/// so nothing secret can leak through the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// `0` when a `Drop` or `Hang` fault left the request without a response.
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

impl RequestRecord {
    /// `"GET /api/2.0/accounts/{account_id}/vpc-endpoints/{id}"`: the request with its ids
    /// replaced, for counting calls per endpoint.
    pub fn pattern(&self) -> String {
        format!("{} {}", self.method, path_pattern(&self.path))
    }
}

/// Replaces account and object ids in account API and OIDC paths with placeholders.
pub fn path_pattern(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut pattern: Vec<&str> = segments.clone();
    match segments.as_slice() {
        ["", "api", "2.0", "accounts", _, rest @ ..] => {
            pattern[4] = "{account_id}";
            if rest.len() >= 2 {
                pattern[6] = "{id}";
            }
        }
        ["", "oidc", "accounts", _, ..] => pattern[3] = "{account_id}",
        _ => {}
    }
    pattern.join("/")
}

/// Why the token endpoint refused to issue a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("Client authentication failed")]
    InvalidClient,
}

#[derive(Debug, Clone)]
struct IssuedToken {
    account_id: String,
    expires_at: Instant,
}

/// Refills `rate` tokens per second up to a burst of `rate`.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    available: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            available: rate,
            refilled_at: Instant::now(),
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.available = (self.available + elapsed * self.rate).min(self.rate);
        self.refilled_at = now;
        if self.available >= 1.0 {
            self.available -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Inner {
    accept_after_reads: u32,
    clients: Vec<(String, String)>,
    latency_all: Option<Duration>,
    rate_limiter: Option<TokenBucket>,
    accounts: BTreeMap<String, Account>,
    aws: AwsEndpoints,
    tokens: HashMap<String, IssuedToken>,
    faults: FaultRegistry,
    requests: Vec<RequestRecord>,
}

impl Inner {
    fn with_account<R>(
        &mut self,
        account_id: &str,
        work: impl FnOnce(&mut Account, EndpointView<'_>) -> R,
    ) -> R {
        let view = EndpointView {
            aws: &self.aws,
            accept_after_reads: self.accept_after_reads,
        };
        let account = self
            .accounts
            .entry(account_id.to_owned())
            .or_insert_with(|| Account::new(account_id));
        work(account, view)
    }

    fn account_of_workspace(&mut self, workspace_id: i64) -> Result<&mut Account, ApiError> {
        self.accounts
            .values_mut()
            .find(|a| a.has_workspace(workspace_id))
            .ok_or_else(|| ApiError::not_found(format!("Workspace {workspace_id} does not exist")))
    }
}

struct Shared {
    inner: Mutex<Inner>,
    started: Instant,
}

/// Cloneable access to the running emulator's state.
#[derive(Clone)]
pub struct StateHandle {
    shared: Arc<Shared>,
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn random_u64() -> u64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first)
}

/// 16-digit ids like real workspaces have.
fn random_workspace_id() -> i64 {
    let id = 1_000_000_000_000_000 + random_u64() % 8_000_000_000_000_000;
    i64::try_from(id).unwrap_or(1_000_000_000_000_000)
}

/// `dbc-xxxxxxxx-xxxx`, the default pattern (`docs/account-api.md#workspaces`).
fn random_deployment_name() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("dbc-{}-{}", &hex[..8], &hex[8..12])
}

impl StateHandle {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        let inner = Inner {
            accept_after_reads: config.accept_after_reads,
            clients: config.clients.clone(),
            latency_all: config.latency_all,
            rate_limiter: config.rate_limit_per_sec.map(TokenBucket::new),
            accounts: BTreeMap::new(),
            aws: AwsEndpoints::default(),
            tokens: HashMap::new(),
            faults: FaultRegistry::default(),
            requests: Vec::new(),
        };
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(inner),
                started: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a bug in a test closure; the data is
        // still consistent enough to keep answering.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// When the emulator started; [`RequestRecord::at`] values are comparable to it.
    pub fn started(&self) -> Instant {
        self.shared.started
    }

    pub(crate) fn with_account<R>(
        &self,
        account_id: &str,
        work: impl FnOnce(&mut Account, EndpointView<'_>) -> R,
    ) -> R {
        self.lock().with_account(account_id, work)
    }

    // ---- authentication ----

    pub(crate) fn issue_token(
        &self,
        account_id: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<String, TokenRefusal> {
        let mut inner = self.lock();
        let known = inner
            .clients
            .iter()
            .any(|(id, secret)| id == client_id && secret == client_secret);
        if !known {
            return Err(TokenRefusal::InvalidClient);
        }
        let token = format!(
            "emu{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        inner.tokens.insert(
            token.clone(),
            IssuedToken {
                account_id: account_id.to_owned(),
                expires_at: Instant::now() + TOKEN_LIFETIME,
            },
        );
        Ok(token)
    }

    pub(crate) fn check_token(&self, account_id: &str, token: &str) -> Result<(), ApiError> {
        let inner = self.lock();
        match inner.tokens.get(token) {
            Some(issued) if issued.expires_at <= Instant::now() => Err(ApiError::Unauthenticated(
                "Token expired: request a new access token from the OIDC token endpoint".into(),
            )),
            Some(issued) if issued.account_id != account_id => {
                Err(ApiError::Unauthenticated(format!(
                    "The access token was issued for another account, not for account {account_id}: request a token from /oidc/accounts/{account_id}/v1/token"
                )))
            }
            Some(_) => Ok(()),
            None => Err(ApiError::Unauthenticated("Invalid access token.".into())),
        }
    }

    /// Invalidates every issued token, as if they had all expired; clients must fetch new ones.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    // ---- request pipeline ----

    pub(crate) fn latency_all(&self) -> Option<Duration> {
        self.lock().latency_all
    }

    /// Fixed latency added to every request except control calls (for benchmarks).
    pub fn set_latency_all(&self, latency: Option<Duration>) {
        self.lock().latency_all = latency;
    }

    /// Whether the request may proceed under the configured rate limit.
    pub(crate) fn admit(&self) -> bool {
        let mut inner = self.lock();
        match inner.rate_limiter.as_mut() {
            Some(bucket) => bucket.try_take(Instant::now()),
            None => true,
        }
    }

    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        self.lock().rate_limiter = per_second.map(TokenBucket::new);
    }

    pub fn set_accept_after_reads(&self, reads: u32) {
        self.lock().accept_after_reads = reads;
    }

    pub(crate) fn take_fault(&self, method: &str, path: &str) -> Option<FaultKind> {
        self.lock().faults.take(method, path)
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        self.lock().requests.push(record);
    }

    // ---- faults ----

    pub fn inject_fault(&self, fault: FaultSpec) {
        self.lock().faults.arm(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Faults still armed, with their remaining counts.
    pub fn armed_faults(&self) -> Vec<FaultSpec> {
        self.lock().faults.armed()
    }

    // ---- request log ----

    /// Requests to the account API, OIDC and discovery endpoints, oldest first. Control calls
    /// under `/_emulator/` are not logged.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Number of requests per [`RequestRecord::pattern`].
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for record in self.lock().requests.iter() {
            *counts.entry(record.pattern()).or_insert(0) += 1;
        }
        counts
    }

    /// Number of logged requests with this method whose path contains `path_contains`.
    pub fn count_requests(&self, method: &str, path_contains: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_contains))
            .count()
    }

    pub fn clear_request_log(&self) {
        self.lock().requests.clear();
    }

    // ---- AWS side ----

    /// Tells the emulator which endpoint service `vpce` connects to, so registrations get the
    /// right `use_case` and `aws_endpoint_service_id`.
    pub fn register_aws_endpoint(&self, vpce: &str, service_name: &str) {
        self.register_aws_endpoint_owned_by(vpce, service_name, None);
    }

    pub fn register_aws_endpoint_owned_by(
        &self,
        vpce: &str,
        service_name: &str,
        aws_account_id: Option<&str>,
    ) {
        self.lock().aws.register(
            vpce,
            AwsEndpoint {
                service_name: service_name.to_owned(),
                aws_account_id: aws_account_id.map(str::to_owned),
            },
        );
    }

    /// Forces the `state` every registration of `vpce` reports (e.g. `"rejected"`); `None`
    /// returns to the pendingAcceptance → available simulation.
    pub fn set_endpoint_state(&self, vpce: &str, state: Option<&str>) {
        self.lock().aws.set_state(vpce, state.map(str::to_owned));
    }

    /// Tells the emulator which VPC and availability zone `subnet_id` is in, so networks naming
    /// it are judged (`vpc_status`, `error_messages`, `warning_messages`).
    pub fn describe_aws_subnet(&self, subnet_id: &str, vpc_id: &str, availability_zone: &str) {
        self.lock().aws.describe_subnet(
            subnet_id,
            AwsSubnet {
                vpc_id: vpc_id.to_owned(),
                availability_zone: availability_zone.to_owned(),
            },
        );
    }

    /// Tells the emulator which VPC `group_id` is in.
    pub fn describe_aws_security_group(&self, group_id: &str, vpc_id: &str) {
        self.lock().aws.describe_security_group(group_id, vpc_id);
    }

    // ---- seeding ----

    /// Creates a workspace (and its network, if any) as if it had existed before the test.
    pub fn seed_workspace(
        &self,
        account_id: &str,
        seed: WorkspaceSeed,
    ) -> Result<Workspace, ApiError> {
        let mut inner = self.lock();
        let workspace_id = match seed.workspace_id {
            Some(id) => {
                if inner.accounts.values().any(|a| a.has_workspace(id)) {
                    return Err(ApiError::ResourceAlreadyExists(format!(
                        "Workspace {id} already exists; pick another workspace_id or leave it unset"
                    )));
                }
                id
            }
            None => loop {
                let id = random_workspace_id();
                if !inner.accounts.values().any(|a| a.has_workspace(id)) {
                    break id;
                }
            },
        };
        let ids = SeedIds {
            network_id: new_id(),
            deployment_name: random_deployment_name(),
            credentials_id: new_id(),
            storage_configuration_id: new_id(),
            now_ms: now_ms(),
        };
        inner.with_account(account_id, |account, view| {
            account.seed_workspace(workspace_id, seed, view, ids)
        })
    }

    /// Registers a VPC endpoint without HTTP, with the same rules as `POST /vpc-endpoints`.
    pub fn seed_vpc_endpoint(
        &self,
        account_id: &str,
        request: CreateVpcEndpoint,
    ) -> Result<VpcEndpoint, ApiError> {
        self.with_account(account_id, |account, view| {
            account.create_vpc_endpoint(request, view, fresh_ids())
        })
    }

    pub fn seed_private_access_settings(
        &self,
        account_id: &str,
        body: PrivateAccessSettingsBody,
    ) -> Result<PrivateAccessSettings, ApiError> {
        self.with_account(account_id, |account, _| {
            account.create_private_access_settings(body, fresh_ids())
        })
    }

    pub fn seed_network(
        &self,
        account_id: &str,
        request: CreateNetwork,
    ) -> Result<Network, ApiError> {
        self.with_account(account_id, |account, view| {
            account.create_network(request, view, fresh_ids())
        })
    }

    // ---- workspace controls ----

    pub fn set_workspace_clusters_running(
        &self,
        workspace_id: i64,
        running: bool,
    ) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner
            .account_of_workspace(workspace_id)?
            .set_clusters_running(workspace_id, running);
        Ok(())
    }

    pub fn force_workspace_status(
        &self,
        workspace_id: i64,
        status: WorkspaceStatus,
        message: &str,
    ) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner
            .account_of_workspace(workspace_id)?
            .force_status(workspace_id, status, message);
        Ok(())
    }

    /// `true`: the next PATCH of this workspace answers success without applying anything;
    /// `false` disarms it.
    pub fn set_silent_revert(&self, workspace_id: i64, enabled: bool) -> Result<(), ApiError> {
        self.set_silent_reverts(workspace_id, u32::from(enabled))
    }

    /// The next `count` PATCHes of this workspace answer success without applying anything.
    pub fn set_silent_reverts(&self, workspace_id: i64, count: u32) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner
            .account_of_workspace(workspace_id)?
            .set_silent_reverts(workspace_id, count);
        Ok(())
    }

    /// The next PATCH of this workspace is applied, then the workspace goes `FAILED` with
    /// `message` as its status message.
    pub fn fail_next_patch(&self, workspace_id: i64, message: &str) -> Result<(), ApiError> {
        let mut inner = self.lock();
        inner
            .account_of_workspace(workspace_id)?
            .set_fail_next_patch(workspace_id, Some(message.to_owned()));
        Ok(())
    }

    // ---- inspection ----

    /// All objects of one account as the API shows them, without counting registration reads:
    /// `{"account_id", "vpc_endpoints", "private_access_settings", "networks", "workspaces",
    /// "workspace_controls"}`.
    pub fn dump(&self, account_id: &str) -> serde_json::Value {
        json!(self.snapshot(account_id))
    }

    /// [`StateHandle::dump`], typed: what tests inspect.
    pub fn snapshot(&self, account_id: &str) -> AccountSnapshot {
        let inner = self.lock();
        let view = EndpointView {
            aws: &inner.aws,
            accept_after_reads: inner.accept_after_reads,
        };
        match inner.accounts.get(account_id) {
            Some(account) => account.snapshot(view),
            None => Account::new(account_id).snapshot(view),
        }
    }

    /// `{"<account_id>": <dump>, ...}` for every account touched so far.
    pub fn dump_all(&self) -> serde_json::Value {
        let inner = self.lock();
        let view = EndpointView {
            aws: &inner.aws,
            accept_after_reads: inner.accept_after_reads,
        };
        let all: serde_json::Map<String, serde_json::Value> = inner
            .accounts
            .values()
            .map(|a| (a.account_id().to_owned(), a.dump(view)))
            .collect();
        json!(all)
    }

    /// Forgets all accounts, AWS endpoint facts, faults and logged requests. Issued tokens and
    /// the configuration (clients, rate limit, latency, acceptance reads) stay.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.accounts.clear();
        inner.aws.clear();
        inner.faults.clear();
        inner.requests.clear();
    }
}

/// A new UUID and the current time for an object created now.
pub(crate) fn fresh_ids() -> NewIds {
    NewIds {
        id: new_id(),
        now_ms: now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_hide_account_and_object_ids() {
        assert_eq!(
            path_pattern("/api/2.0/accounts/abc/vpc-endpoints/123"),
            "/api/2.0/accounts/{account_id}/vpc-endpoints/{id}"
        );
        assert_eq!(
            path_pattern("/api/2.0/accounts/abc/networks"),
            "/api/2.0/accounts/{account_id}/networks"
        );
        assert_eq!(
            path_pattern("/oidc/accounts/abc/v1/token"),
            "/oidc/accounts/{account_id}/v1/token"
        );
        assert_eq!(
            path_pattern("/.well-known/databricks-config"),
            "/.well-known/databricks-config"
        );
    }

    #[test]
    fn token_bucket_allows_a_burst_of_rate_then_refills() {
        let mut bucket = TokenBucket::new(2);
        let start = Instant::now();
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.try_take(start + Duration::from_millis(600)));
    }
}
