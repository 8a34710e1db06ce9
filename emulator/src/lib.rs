//! Stateful in-memory emulator of the Databricks account API on AWS (VPC endpoint registrations,
//! private access settings, networks, workspace updates, OAuth M2M), faithful to the wire format
//! in `docs/account-api.md`, with fault injection and a control API for tests.
//! Knows nothing of CloudFormation or of the Lambda that uses it.

mod account;
mod api;
mod auth;
mod aws;
mod control;
mod error;
mod faults;
mod model;
mod server;
pub mod services;
mod state;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use account::{AccountSnapshot, NetworkSeed, WorkspaceControls, WorkspaceSeed};
pub use auth::OAuthError;
pub use control::ControlError;
pub use error::ApiError;
pub use faults::{
    FaultBody, FaultBodyWire, FaultError, FaultKind, FaultKindWire, FaultSpec, FaultSpecWire,
    GATEWAY_TIMEOUT_HTML, HANG_LIMIT, LostAnswer,
};
pub use model::{
    ComputeMode, CreateNetwork, CreateVpcEndpoint, EndpointUseCase, Network, NetworkMessage,
    NetworkVpcEndpoints, PrivateAccessLevel, PrivateAccessSettings, PrivateAccessSettingsBody,
    UpdateWorkspace, VpcEndpoint, VpcStatus, Workspace, WorkspaceStatus,
};
pub use server::ConnectionAborted;
pub use state::{RequestRecord, StateHandle, TOKEN_LIFETIME, TokenRefusal, path_pattern};

/// Client id the emulator accepts unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "emulator-client";
/// Secret of [`DEFAULT_CLIENT_ID`].
pub const DEFAULT_CLIENT_SECRET: &str = "emulator-secret";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// Reads (GET or list) a registration answers with `pendingAcceptance` before it reports
    /// `available`; 0 makes registrations available at once.
    pub accept_after_reads: u32,
    /// Accepted service principals as `(client_id, secret)`, valid for every account.
    pub clients: Vec<(String, String)>,
    /// Token-bucket limit over account API and token requests; excess requests get
    /// `429 REQUEST_LIMIT_EXCEEDED` with `Retry-After: 1`.
    pub rate_limit_per_sec: Option<u32>,
    /// Fixed latency added to every request except control calls (for benchmarks).
    pub latency_all: Option<Duration>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            accept_after_reads: 1,
            clients: vec![(
                DEFAULT_CLIENT_ID.to_owned(),
                DEFAULT_CLIENT_SECRET.to_owned(),
            )],
            rate_limit_per_sec: None,
            latency_all: None,
        }
    }
}

/// A running emulator. Stops on [`Emulator::shutdown`] or when dropped.
pub struct Emulator {
    address: SocketAddr,
    state: StateHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Serves on a free loopback port.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(
        address: SocketAddr,
        config: EmulatorConfig,
    ) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let state = StateHandle::new(&config);
        let router = api::router(state.clone()).merge(control::router(state.clone()));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::run(listener, state.clone(), router, stopped));
        Ok(Emulator {
            address,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, the account host to give clients.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> StateHandle {
        self.state.clone()
    }

    /// Stops accepting, closes every open connection and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
