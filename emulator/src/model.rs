//! Wire shapes of the account API objects and request bodies (`docs/account-api.md`), field names as
//! the official SDKs spell them. Knows nothing of HTTP routing or of the rules between objects.

use serde::{Deserialize, Serialize};

/// AWS state of a VPC endpoint as Databricks reports it, taken from AWS
/// (`docs/account-api.md#vpc-endpoint-registrations`).
pub const STATE_PENDING_ACCEPTANCE: &str = "pendingAcceptance";
pub const STATE_AVAILABLE: &str = "available";

/// What a registered VPC endpoint connects to (`use_case`,
/// `docs/account-api.md#vpc-endpoint-registrations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndpointUseCase {
    /// Older accounts report the REST/workspace service this way.
    WorkspaceAccess,
    DataplaneRelayAccess,
    GeneralAccess,
}

impl EndpointUseCase {
    /// Whether a network may list the registration under `vpc_endpoints.rest_api`.
    pub fn serves_rest_api(self) -> bool {
        matches!(self, Self::GeneralAccess | Self::WorkspaceAccess)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceAccess => "WORKSPACE_ACCESS",
            Self::DataplaneRelayAccess => "DATAPLANE_RELAY_ACCESS",
            Self::GeneralAccess => "GENERAL_ACCESS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcEndpoint {
    pub vpc_endpoint_id: String,
    pub account_id: String,
    pub vpc_endpoint_name: String,
    pub aws_vpc_endpoint_id: String,
    /// Unknown when the test never told the emulator which service the vpce points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint_service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
    pub use_case: EndpointUseCase,
    pub region: String,
    pub state: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrivateAccessLevel {
    Account,
    Endpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAccessSettings {
    pub private_access_settings_id: String,
    pub account_id: String,
    pub private_access_settings_name: String,
    pub region: String,
    pub public_access_enabled: bool,
    pub private_access_level: PrivateAccessLevel,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_vpc_endpoint_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkVpcEndpoints {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest_api: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataplane_relay: Vec<String>,
}

impl NetworkVpcEndpoints {
    pub fn is_empty(&self) -> bool {
        self.rest_api.is_empty() && self.dataplane_relay.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.rest_api.iter().chain(&self.dataplane_relay)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VpcStatus {
    Unattached,
    Valid,
    Broken,
    Warned,
}

/// One entry of a network's `error_messages` (`error_type`, `error_message`) or
/// `warning_messages` (`warning_type`, `warning_message`), as the SDKs' `NetworkHealth` and
/// `NetworkWarning` types name the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetworkMessage {
    Error {
        error_type: String,
        error_message: String,
    },
    Warning {
        warning_type: String,
        warning_message: String,
    },
}

impl NetworkMessage {
    pub fn error(kind: &str, message: String) -> Self {
        Self::Error {
            error_type: kind.to_owned(),
            error_message: message,
        }
    }

    pub fn warning(kind: &str, message: String) -> Self {
        Self::Warning {
            warning_type: kind.to_owned(),
            warning_message: message,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Self::Error { error_message, .. } => error_message,
            Self::Warning {
                warning_message, ..
            } => warning_message,
        }
    }
}

/// What Databricks found wrong with a network's subnets and security groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkHealth {
    pub errors: Vec<NetworkMessage>,
    pub warnings: Vec<NetworkMessage>,
}

impl NetworkHealth {
    /// `BROKEN` with errors, `WARNED` with warnings only, else what attachment says.
    pub fn status(&self, attached: bool) -> VpcStatus {
        if !self.errors.is_empty() {
            VpcStatus::Broken
        } else if !self.warnings.is_empty() {
            VpcStatus::Warned
        } else if attached {
            VpcStatus::Valid
        } else {
            VpcStatus::Unattached
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub network_id: String,
    pub account_id: String,
    pub network_name: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoints: Option<NetworkVpcEndpoints>,
    pub vpc_status: VpcStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<NetworkMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warning_messages: Vec<NetworkMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    pub creation_time: i64,
}

impl Network {
    /// Back-end PrivateLink as the workspace update rules see it
    /// (`docs/account-api.md#privatelink-cannot-be-removed`).
    pub fn has_backend_privatelink(&self) -> bool {
        self.vpc_endpoints.as_ref().is_some_and(|e| !e.is_empty())
    }

    /// Recomputes `vpc_status` after (de)attachment; `BROKEN` and `WARNED` stay.
    pub fn refresh_status(&mut self) {
        let health = NetworkHealth {
            errors: self.error_messages.clone(),
            warnings: self.warning_messages.clone(),
        };
        self.vpc_status = health.status(self.workspace_id.is_some());
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComputeMode {
    #[default]
    Hybrid,
    Serverless,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkspaceStatus {
    NotProvisioned,
    Provisioning,
    #[default]
    Running,
    Failed,
    Banned,
    Cancelling,
}

impl WorkspaceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotProvisioned => "NOT_PROVISIONED",
            Self::Provisioning => "PROVISIONING",
            Self::Running => "RUNNING",
            Self::Failed => "FAILED",
            Self::Banned => "BANNED",
            Self::Cancelling => "CANCELLING",
        }
    }

    /// The message a freshly seeded workspace in this status shows.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::NotProvisioned => "Workspace has not been provisioned yet.",
            Self::Provisioning => "Workspace is being provisioned.",
            Self::Running => "Workspace is running.",
            Self::Failed => "Workspace provisioning failed.",
            Self::Banned => "Workspace is banned.",
            Self::Cancelling => "Workspace is being cancelled.",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub workspace_id: i64,
    pub workspace_name: String,
    pub account_id: String,
    pub aws_region: String,
    pub deployment_name: String,
    pub cloud: String,
    pub pricing_tier: String,
    pub compute_mode: ComputeMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    pub workspace_status: WorkspaceStatus,
    pub workspace_status_message: String,
    pub creation_time: i64,
}

/// `POST /vpc-endpoints` body. Fields are optional here so that a missing one becomes a 400
/// naming it rather than an unparseable body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVpcEndpoint {
    #[serde(default)]
    pub vpc_endpoint_name: Option<String>,
    #[serde(default)]
    pub aws_vpc_endpoint_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_vpc_endpoint_info: Option<serde_json::Value>,
}

/// Body of both `POST` and `PUT` on private access settings (PUT is a full replace,
/// `docs/account-api.md#private-access-settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAccessSettingsBody {
    #[serde(default)]
    pub private_access_settings_name: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub public_access_enabled: Option<bool>,
    /// Kept as text so an unknown level is a 400 naming the allowed values.
    #[serde(default)]
    pub private_access_level: Option<String>,
    #[serde(default)]
    pub allowed_vpc_endpoint_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNetwork {
    #[serde(default)]
    pub network_name: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_ids: Option<Vec<String>>,
    #[serde(default)]
    pub security_group_ids: Option<Vec<String>>,
    #[serde(default)]
    pub vpc_endpoints: Option<NetworkVpcEndpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_network_info: Option<serde_json::Value>,
}

/// `PATCH /workspaces/{id}` body: a flat partial `Workspace` (`docs/account-api.md#workspaces`).
/// Only the two fields this
/// emulator models are read; the rest of the object is accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateWorkspace {
    #[serde(default)]
    pub network_id: Option<String>,
    #[serde(default)]
    pub private_access_settings_id: Option<String>,
}
