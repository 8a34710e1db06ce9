//! Wire types of the account API objects this program touches: VPC endpoint registrations,
//! private access settings, network configurations and workspaces (`docs/account-api.md`).
//!
//! Responses ignore unknown fields and treat everything but the id as optional, because the
//! account API adds fields and omits empty ones. Nothing here knows about CloudFormation.

use serde::{Deserialize, Deserializer, Serialize};

/// A VPC endpoint registration (`/vpc-endpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcEndpoint {
    pub vpc_endpoint_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_vpc_endpoint_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint_service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_case: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Where a registration stands, from its AWS-derived `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    Available,
    /// `pending`, `pendingAcceptance`, or no state yet.
    Pending,
    /// A documented state that will not become available by waiting (`rejected`, `failed`,
    /// `expired`, `deleted`, `deleting`, `partial`); carries the state as Databricks wrote it.
    Failed(String),
    /// A state outside the documented ones; carries the text as written. Terraform's
    /// `mws_vpc_endpoint` waits only on `pending` and `pendingacceptance` and fails on anything
    /// else, so this will not become available by waiting either.
    Unknown(String),
}

/// Which Databricks endpoint service a registration connects to.
pub use crate::endpoint::EndpointRole;

impl VpcEndpoint {
    /// The casing of `state` varies (`Available`, `PENDING`, `pendingAcceptance`;
    /// `docs/account-api.md#vpc-endpoint-registrations`),
    /// so it is compared case-insensitively.
    pub fn registration_state(&self) -> RegistrationState {
        // No state yet is read as not accepted yet: the state is derived from AWS after the
        // registration is made (a choice; no public source says a state is always present).
        let Some(state) = self.state.as_deref().filter(|s| !s.trim().is_empty()) else {
            return RegistrationState::Pending;
        };
        match state.trim().to_ascii_lowercase().as_str() {
            "available" => RegistrationState::Available,
            "pendingacceptance" | "pending" => RegistrationState::Pending,
            "rejected" | "failed" | "expired" | "deleted" | "deleting" | "partial" => {
                RegistrationState::Failed(state.to_string())
            }
            _ => RegistrationState::Unknown(state.to_string()),
        }
    }

    /// `GENERAL_ACCESS` is the current name of the REST service; older accounts report
    /// `WORKSPACE_ACCESS` (`docs/account-api.md#vpc-endpoint-registrations`), so both mean the REST
    /// API endpoint.
    pub fn use_case_role(&self) -> Option<EndpointRole> {
        let use_case = self.use_case.as_deref()?.trim();
        if use_case.eq_ignore_ascii_case("GENERAL_ACCESS")
            || use_case.eq_ignore_ascii_case("WORKSPACE_ACCESS")
        {
            Some(EndpointRole::RestApi)
        } else if use_case.eq_ignore_ascii_case("DATAPLANE_RELAY_ACCESS") {
            Some(EndpointRole::Relay)
        } else {
            None
        }
    }
}

/// Body of `POST /vpc-endpoints` on AWS (no GCP fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVpcEndpoint {
    pub vpc_endpoint_name: String,
    pub aws_vpc_endpoint_id: String,
    pub region: String,
}

/// A private access settings object (`/private-access-settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAccessSettings {
    pub private_access_settings_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_vpc_endpoint_ids: Option<Vec<String>>,
}

/// Body of `POST` (create) and `PUT` (full replace) of private access settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAccessSettingsRequest {
    pub private_access_settings_name: String,
    pub region: String,
    /// Always sent: the server default on AWS is `false`, which would cut off public access to
    /// a back-end-only workspace (`docs/account-api.md#private-access-settings`).
    pub public_access_enabled: bool,
    pub private_access_level: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_vpc_endpoint_ids: Vec<String>,
}

/// A network configuration (`/networks`). Immutable on the server
/// (`docs/account-api.md#network-configurations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub network_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub subnet_ids: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoints: Option<NetworkVpcEndpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    /// `[{error_type, error_message}]`: why Databricks calls the network `BROKEN`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub error_messages: Vec<serde_json::Value>,
    /// `[{warning_type, warning_message}]`: why Databricks calls the network `WARNED`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub warning_messages: Vec<serde_json::Value>,
    /// Epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// `vpc_status` of a network configuration: "the status of this network configuration object
/// in terms of its use in a workspace" (SDK `VpcStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkStatus {
    Valid,
    Unattached,
    /// Databricks found errors (`error_messages`): a workspace on it will not work.
    Broken,
    /// Databricks found something to warn about (`warning_messages`).
    Warned,
    /// None, or a value this program does not know; text as written.
    Other(String),
}

impl Network {
    pub fn status(&self) -> NetworkStatus {
        let status = self.vpc_status.as_deref().unwrap_or_default();
        match status.trim().to_ascii_uppercase().as_str() {
            "VALID" => NetworkStatus::Valid,
            "UNATTACHED" => NetworkStatus::Unattached,
            "BROKEN" => NetworkStatus::Broken,
            "WARNED" => NetworkStatus::Warned,
            _ => NetworkStatus::Other(status.to_string()),
        }
    }

    /// `error_messages` as `type: message` lines.
    pub fn errors(&self) -> Vec<String> {
        message_lines(&self.error_messages, "error_type", "error_message")
    }

    /// `warning_messages` as `type: message` lines.
    pub fn warnings(&self) -> Vec<String> {
        message_lines(&self.warning_messages, "warning_type", "warning_message")
    }
}

/// Entries that are not objects are kept as their JSON text, so nothing Databricks says is lost.
fn message_lines(entries: &[serde_json::Value], kind: &str, message: &str) -> Vec<String> {
    entries
        .iter()
        .map(|entry| {
            let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).unwrap_or_default();
            match (text(kind), text(message)) {
                ("", "") => entry.to_string(),
                ("", m) => m.to_string(),
                (k, m) => format!("{k}: {m}"),
            }
        })
        .collect()
}

/// Databricks `vpc_endpoint_id`s (not `vpce-…`) a network uses for back-end PrivateLink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkVpcEndpoints {
    #[serde(default, deserialize_with = "null_as_default")]
    pub rest_api: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub dataplane_relay: Vec<String>,
}

/// Body of `POST /networks` on AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNetwork {
    pub network_name: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub vpc_endpoints: NetworkVpcEndpoints,
}

/// The workspace fields this program reads (`/workspaces`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub workspace_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_configuration_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status_message: Option<String>,
}

/// `workspace_status` (`docs/account-api.md#workspaces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceStatus {
    Running,
    Provisioning,
    NotProvisioned,
    Failed,
    Banned,
    Cancelling,
    /// Anything else (including none, and the `CANCELLED` Terraform checks for); text as written.
    Other(String),
}

impl Workspace {
    pub fn status(&self) -> WorkspaceStatus {
        let Some(status) = self.workspace_status.as_deref() else {
            return WorkspaceStatus::Other(String::new());
        };
        match status.trim().to_ascii_uppercase().as_str() {
            "RUNNING" => WorkspaceStatus::Running,
            "PROVISIONING" => WorkspaceStatus::Provisioning,
            "NOT_PROVISIONED" => WorkspaceStatus::NotProvisioned,
            "FAILED" => WorkspaceStatus::Failed,
            "BANNED" => WorkspaceStatus::Banned,
            "CANCELLING" => WorkspaceStatus::Cancelling,
            _ => WorkspaceStatus::Other(status.to_string()),
        }
    }
}

/// Fields to change on a workspace; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_access_settings_id: Option<String>,
}

impl WorkspaceUpdate {
    /// `update_mask` value: the set fields, sorted, comma-separated without spaces
    /// (`docs/account-api.md#workspaces`).
    pub fn update_mask(&self) -> String {
        let mut fields = Vec::new();
        if self.network_id.is_some() {
            fields.push("network_id");
        }
        if self.private_access_settings_id.is_some() {
            fields.push("private_access_settings_id");
        }
        fields.sort_unstable();
        fields.join(",")
    }
}

/// Lists the account API sends as `null` are treated like absent ones.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint_with(state: Option<&str>, use_case: Option<&str>) -> VpcEndpoint {
        serde_json::from_value(json!({
            "vpc_endpoint_id": "id",
            "state": state,
            "use_case": use_case,
        }))
        .unwrap()
    }

    #[test]
    fn registration_state_is_case_insensitive() {
        let state = |s| endpoint_with(Some(s), None).registration_state();
        assert_eq!(state("Available"), RegistrationState::Available);
        assert_eq!(state("AVAILABLE"), RegistrationState::Available);
        assert_eq!(state("pendingAcceptance"), RegistrationState::Pending);
        assert_eq!(state("PENDING"), RegistrationState::Pending);
        assert_eq!(
            state("Rejected"),
            RegistrationState::Failed("Rejected".into())
        );
        for failed in ["failed", "EXPIRED", "deleted", "Deleting", "partial"] {
            assert_eq!(state(failed), RegistrationState::Failed(failed.into()));
        }
        assert_eq!(state("Weird"), RegistrationState::Unknown("Weird".into()));
        assert_eq!(
            endpoint_with(None, None).registration_state(),
            RegistrationState::Pending
        );
        assert_eq!(state(" "), RegistrationState::Pending);
    }

    #[test]
    fn only_pending_states_are_worth_waiting_for() {
        let state = |s| endpoint_with(Some(s), None).registration_state();
        for settled in [
            "rejected", "Failed", "expired", "deleted", "deleting", "partial", "blocked",
        ] {
            assert!(
                matches!(
                    state(settled),
                    RegistrationState::Failed(_) | RegistrationState::Unknown(_)
                ),
                "{settled}"
            );
        }
        for waiting in ["pending", "pendingAcceptance", "available"] {
            assert!(
                matches!(
                    state(waiting),
                    RegistrationState::Pending | RegistrationState::Available
                ),
                "{waiting}"
            );
        }
    }

    #[test]
    fn use_case_maps_both_rest_names() {
        let role = |u| endpoint_with(None, Some(u)).use_case_role();
        assert_eq!(role("GENERAL_ACCESS"), Some(EndpointRole::RestApi));
        assert_eq!(role("workspace_access"), Some(EndpointRole::RestApi));
        assert_eq!(role("DATAPLANE_RELAY_ACCESS"), Some(EndpointRole::Relay));
        assert_eq!(role("SOMETHING_NEW"), None);
        assert_eq!(endpoint_with(None, None).use_case_role(), None);
    }

    #[test]
    fn responses_ignore_unknown_fields_and_tolerate_missing_ones() {
        let network: Network = serde_json::from_value(json!({
            "network_id": "n1",
            "subnet_ids": null,
            "creation_time": 1700000000000_i64,
            "warning_messages": [],
            "vpc_endpoints": {"rest_api": ["r"]},
            "workspace_id": 1234567890123456_i64,
        }))
        .unwrap();
        assert!(network.subnet_ids.is_empty() && network.security_group_ids.is_empty());
        let endpoints = network.vpc_endpoints.unwrap();
        assert_eq!(endpoints.rest_api, vec!["r".to_string()]);
        assert!(endpoints.dataplane_relay.is_empty());
        assert_eq!(network.workspace_id, Some(1234567890123456));

        let pas: PrivateAccessSettings =
            serde_json::from_value(json!({"private_access_settings_id": "p", "status": "x"}))
                .unwrap();
        assert_eq!(pas.public_access_enabled, None);
        assert!(serde_json::from_value::<VpcEndpoint>(json!({"state": "available"})).is_err());
    }

    #[test]
    fn network_status_and_messages_are_read_as_databricks_writes_them() {
        let network: Network = serde_json::from_value(json!({
            "network_id": "n1",
            "vpc_status": "broken",
            "error_messages": [
                {"error_type": "subnet", "error_message": "Subnet subnet-1 is in VPC vpc-2"},
                {"error_message": "no type"},
                "plain",
            ],
            "warning_messages": [
                {"warning_type": "securityGroup", "warning_message": "port 443 closed"},
            ],
        }))
        .unwrap();
        assert_eq!(network.status(), NetworkStatus::Broken);
        assert_eq!(
            network.errors(),
            vec![
                "subnet: Subnet subnet-1 is in VPC vpc-2".to_string(),
                "no type".to_string(),
                "\"plain\"".to_string(),
            ]
        );
        assert_eq!(network.warnings(), vec!["securityGroup: port 443 closed"]);
        let status = |s: Option<&str>| {
            serde_json::from_value::<Network>(json!({"network_id": "n", "vpc_status": s}))
                .unwrap()
                .status()
        };
        assert_eq!(status(Some("VALID")), NetworkStatus::Valid);
        assert_eq!(status(Some("WARNED")), NetworkStatus::Warned);
        assert_eq!(status(Some("UNATTACHED")), NetworkStatus::Unattached);
        assert_eq!(status(None), NetworkStatus::Other(String::new()));
    }

    #[test]
    fn pas_request_always_sends_public_access_and_omits_empty_allow_list() {
        let mut request = PrivateAccessSettingsRequest {
            private_access_settings_name: "pas".into(),
            region: "us-east-1".into(),
            public_access_enabled: false,
            private_access_level: "ACCOUNT".into(),
            allowed_vpc_endpoint_ids: vec![],
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"private_access_settings_name": "pas", "region": "us-east-1",
                   "public_access_enabled": false, "private_access_level": "ACCOUNT"})
        );
        request.allowed_vpc_endpoint_ids = vec!["v1".into()];
        assert_eq!(
            serde_json::to_value(&request).unwrap()["allowed_vpc_endpoint_ids"],
            json!(["v1"])
        );
    }

    #[test]
    fn workspace_status_parsing() {
        let status = |s: Option<&str>| {
            serde_json::from_value::<Workspace>(json!({"workspace_id": 1, "workspace_status": s}))
                .unwrap()
                .status()
        };
        assert_eq!(status(Some("RUNNING")), WorkspaceStatus::Running);
        assert_eq!(status(Some("provisioning")), WorkspaceStatus::Provisioning);
        assert_eq!(
            status(Some("NOT_PROVISIONED")),
            WorkspaceStatus::NotProvisioned
        );
        assert_eq!(status(Some("FAILED")), WorkspaceStatus::Failed);
        assert_eq!(status(Some("BANNED")), WorkspaceStatus::Banned);
        assert_eq!(status(Some("CANCELLING")), WorkspaceStatus::Cancelling);
        assert_eq!(
            status(Some("CANCELLED")),
            WorkspaceStatus::Other("CANCELLED".into())
        );
        assert_eq!(status(None), WorkspaceStatus::Other(String::new()));
    }

    #[test]
    fn update_mask_lists_set_fields_sorted() {
        let both = WorkspaceUpdate {
            private_access_settings_id: Some("p".into()),
            network_id: Some("n".into()),
        };
        assert_eq!(both.update_mask(), "network_id,private_access_settings_id");
        assert_eq!(
            serde_json::to_value(&both).unwrap(),
            json!({"network_id": "n", "private_access_settings_id": "p"})
        );
        let pas_only = WorkspaceUpdate {
            private_access_settings_id: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(pas_only.update_mask(), "private_access_settings_id");
        assert_eq!(
            serde_json::to_value(&pas_only).unwrap(),
            json!({"private_access_settings_id": "p"})
        );
    }
}
