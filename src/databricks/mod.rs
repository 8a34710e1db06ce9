//! Client for the Databricks account API on AWS: OAuth M2M tokens, VPC endpoint registrations,
//! private access settings, network configurations and workspace updates.
//!
//! Knows nothing about CloudFormation; the `resource` module decides what to call and when.

mod auth;
mod client;
mod error;
mod model;
mod retry;

pub use auth::ClientCredentials;
pub use client::{
    AccountClient, DatabricksHttp, HttpSettings, is_allowed_account_host, is_uuid, official_host,
};
pub use error::DatabricksError;
pub use model::{
    CreateNetwork, CreateVpcEndpoint, EndpointRole, Network, NetworkStatus, NetworkVpcEndpoints,
    PrivateAccessSettings, PrivateAccessSettingsRequest, RegistrationState, VpcEndpoint, Workspace,
    WorkspaceStatus, WorkspaceUpdate,
};
pub use retry::RetryPolicy;
