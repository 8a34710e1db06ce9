//! Client for the Databricks account API on AWS: OAuth M2M tokens, VPC endpoint registrations,
//! private access settings, network configurations and workspace updates.
//!
//! Knows nothing about CloudFormation; the `resource` module decides what to call and when.

mod auth;
mod client;
mod error;
mod model;
mod retry;

#[cfg(test)]
mod testserver;

pub use auth::ClientCredentials;
pub use client::{
    AccountClient, DatabricksHttp, HttpSettings, is_allowed_account_host, official_host,
};
pub use error::DatabricksError;
pub use model::{
    CreateNetwork, CreateVpcEndpoint, EndpointRole, Network, NetworkStatus, NetworkVpcEndpoints,
    PrivateAccessSettings, PrivateAccessSettingsRequest, RegistrationState, VpcEndpoint, Workspace,
    WorkspaceStatus, WorkspaceUpdate,
};
pub use retry::RetryPolicy;
