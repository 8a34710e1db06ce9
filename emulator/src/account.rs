//! One Databricks account's objects (VPC endpoint registrations, private access settings,
//! networks, workspaces) and the rules between them (`docs/account-api.md`). Knows nothing of HTTP,
//! tokens, faults or how ids are made unique across accounts.

use serde::Serialize;
use serde_json::json;

use crate::aws::{self, AwsEndpoints};
use crate::error::ApiError;
use crate::model::{
    ComputeMode, CreateNetwork, CreateVpcEndpoint, Network, NetworkVpcEndpoints,
    PrivateAccessLevel, PrivateAccessSettings, PrivateAccessSettingsBody, STATE_AVAILABLE,
    STATE_PENDING_ACCEPTANCE, UpdateWorkspace, VpcEndpoint, VpcStatus, Workspace, WorkspaceStatus,
};

/// How registrations' `state` is computed: AWS overrides win, otherwise an endpoint is accepted
/// once it has been read `accept_after_reads` times while pending.
#[derive(Clone, Copy)]
pub struct EndpointView<'a> {
    pub aws: &'a AwsEndpoints,
    pub accept_after_reads: u32,
}

impl EndpointView<'_> {
    fn state_of(&self, record: &RegistrationRecord) -> String {
        if let Some(state) = self
            .aws
            .state_override(&record.endpoint.aws_vpc_endpoint_id)
        {
            return state.to_owned();
        }
        if record.reads_while_pending >= self.accept_after_reads {
            STATE_AVAILABLE.to_owned()
        } else {
            STATE_PENDING_ACCEPTANCE.to_owned()
        }
    }

    fn render(&self, record: &RegistrationRecord) -> VpcEndpoint {
        VpcEndpoint {
            state: self.state_of(record),
            ..record.endpoint.clone()
        }
    }

    /// Renders what the reader sees, then counts the read towards acceptance.
    fn read(&self, record: &mut RegistrationRecord) -> VpcEndpoint {
        let seen = self.render(record);
        record.reads_while_pending = record.reads_while_pending.saturating_add(1);
        seen
    }
}

#[derive(Debug, Clone)]
struct RegistrationRecord {
    endpoint: VpcEndpoint,
    reads_while_pending: u32,
}

#[derive(Debug, Clone)]
struct WorkspaceRecord {
    workspace: Workspace,
    clusters_running: bool,
    /// PATCHes still to be answered with success but not applied: a failed update may revert
    /// silently (`docs/account-api.md#propagation-and-the-20-minute-rule`).
    silent_reverts: u32,
    /// When set, the next PATCH is applied and then the workspace goes `FAILED` with this
    /// status message, as a failed update does (`docs/account-api.md#workspaces`).
    fail_next_patch: Option<String>,
    /// A failed workspace being updated: reads still to answer `PROVISIONING`, and how it ends
    /// (`None`: `RUNNING`; `Some(message)`: `FAILED` with that message).
    provisioning: Option<(u32, Option<String>)>,
}

/// Reads a `FAILED` workspace answers `PROVISIONING` after an update before it settles.
const PROVISIONING_READS: u32 = 2;

impl WorkspaceRecord {
    /// What a reader sees; each read brings a provisioning workspace closer to its outcome.
    fn read(&mut self) -> Workspace {
        if let Some((reads_left, outcome)) = self.provisioning.take() {
            if reads_left > 0 {
                self.provisioning = Some((reads_left - 1, outcome));
            } else {
                match outcome {
                    None => {
                        self.workspace.workspace_status = WorkspaceStatus::Running;
                        self.workspace.workspace_status_message =
                            WorkspaceStatus::Running.default_message().to_owned();
                    }
                    Some(message) => {
                        self.workspace.workspace_status = WorkspaceStatus::Failed;
                        self.workspace.workspace_status_message = message;
                    }
                }
            }
        }
        self.workspace.clone()
    }
}

/// A network to create and attach together with a seeded workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkSeed {
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// A workspace as a test wants it to exist before the code under test runs. Workspaces cannot be
/// created through the emulated API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WorkspaceSeed {
    pub workspace_id: Option<i64>,
    #[serde(alias = "workspace_name")]
    pub name: String,
    #[serde(alias = "aws_region")]
    pub region: String,
    /// `Some` makes a customer-managed VPC workspace; `None` a Databricks-managed VPC one.
    pub network: Option<NetworkSeed>,
    pub compute_mode: ComputeMode,
    pub running_clusters: bool,
    pub status: WorkspaceStatus,
    /// An existing private access settings id of the same account, for workspaces that already
    /// use PrivateLink.
    pub private_access_settings_id: Option<String>,
}

impl Default for WorkspaceSeed {
    fn default() -> Self {
        Self {
            workspace_id: None,
            name: "emulated-workspace".to_owned(),
            region: "us-east-1".to_owned(),
            network: None,
            compute_mode: ComputeMode::Hybrid,
            running_clusters: false,
            status: WorkspaceStatus::Running,
            private_access_settings_id: None,
        }
    }
}

/// Identifiers the caller (which sees all accounts) hands in when an object is created.
pub struct NewIds {
    pub id: String,
    pub now_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Account {
    account_id: String,
    registrations: Vec<RegistrationRecord>,
    private_access_settings: Vec<PrivateAccessSettings>,
    networks: Vec<Network>,
    /// Networks whose DELETE was answered but which are still going away: still listed and
    /// readable for this many more reads, and still using their registrations meanwhile.
    deleting_networks: Vec<(Network, u32)>,
    workspaces: Vec<WorkspaceRecord>,
}

/// Reads a deleted network is still listed for. Terraform polls `GET` for up to a minute after
/// `DELETE /networks/{id}` until it answers 404, so the real deletion takes time; how many reads
/// is a choice.
const DELETING_READS: u32 = 2;

fn check_name(field: &str, value: Option<&str>) -> Result<String, ApiError> {
    let Some(value) = value else {
        return Err(ApiError::invalid(format!(
            "{field} is required: give a name of 4 to 256 characters"
        )));
    };
    let length = value.chars().count();
    if !(4..=256).contains(&length) {
        return Err(ApiError::invalid(format!(
            "{field} must be 4 to 256 characters long, got {length}"
        )));
    }
    Ok(value.to_owned())
}

fn check_required(field: &str, value: Option<&str>) -> Result<String, ApiError> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value.to_owned()),
        _ => Err(ApiError::invalid(format!("{field} is required"))),
    }
}

fn first_duplicate(values: &[String]) -> Option<&String> {
    values
        .iter()
        .enumerate()
        .find(|(index, value)| values[..*index].contains(value))
        .map(|(_, value)| value)
}

impl Account {
    pub fn new(account_id: &str) -> Self {
        Self {
            account_id: account_id.to_owned(),
            registrations: Vec::new(),
            private_access_settings: Vec::new(),
            networks: Vec::new(),
            deleting_networks: Vec::new(),
            workspaces: Vec::new(),
        }
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    // ---- VPC endpoint registrations (`docs/account-api.md#vpc-endpoint-registrations`) ----

    pub fn create_vpc_endpoint(
        &mut self,
        request: CreateVpcEndpoint,
        view: EndpointView<'_>,
        ids: NewIds,
    ) -> Result<VpcEndpoint, ApiError> {
        if request.gcp_vpc_endpoint_info.is_some() {
            return Err(ApiError::invalid(
                "gcp_vpc_endpoint_info is only valid for accounts on Google Cloud; this account is on AWS, send aws_vpc_endpoint_id instead",
            ));
        }
        let name = check_name("vpc_endpoint_name", request.vpc_endpoint_name.as_deref())?;
        let vpce = check_required(
            "aws_vpc_endpoint_id",
            request.aws_vpc_endpoint_id.as_deref(),
        )?;
        if !aws::is_vpce_id(&vpce) {
            return Err(ApiError::invalid(format!(
                "aws_vpc_endpoint_id must be the ID of an AWS VPC endpoint (vpce- followed by 8 or 17 hexadecimal characters), got '{vpce}'"
            )));
        }
        let region = check_required("region", request.region.as_deref())?;
        if self
            .registrations
            .iter()
            .any(|r| r.endpoint.aws_vpc_endpoint_id == vpce)
        {
            return Err(ApiError::ResourceAlreadyExists(format!(
                "VPC endpoint with AWS VPC endpoint ID {vpce} already exists in this account"
            )));
        }
        let derived = view
            .aws
            .derive(&vpce, &region)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let record = RegistrationRecord {
            endpoint: VpcEndpoint {
                vpc_endpoint_id: ids.id,
                account_id: self.account_id.clone(),
                vpc_endpoint_name: name,
                aws_vpc_endpoint_id: vpce,
                aws_endpoint_service_id: derived.aws_endpoint_service_id,
                aws_account_id: derived.aws_account_id,
                use_case: derived.use_case,
                region,
                state: String::new(),
            },
            reads_while_pending: 0,
        };
        let created = view.render(&record);
        self.registrations.push(record);
        Ok(created)
    }

    pub fn get_vpc_endpoint(
        &mut self,
        id: &str,
        view: EndpointView<'_>,
    ) -> Result<VpcEndpoint, ApiError> {
        let record = self
            .registrations
            .iter_mut()
            .find(|r| r.endpoint.vpc_endpoint_id == id)
            .ok_or_else(|| missing_registration(id))?;
        Ok(view.read(record))
    }

    pub fn list_vpc_endpoints(&mut self, view: EndpointView<'_>) -> Vec<VpcEndpoint> {
        self.registrations
            .iter_mut()
            .map(|r| view.read(r))
            .collect()
    }

    pub fn delete_vpc_endpoint(
        &mut self,
        id: &str,
        view: EndpointView<'_>,
    ) -> Result<VpcEndpoint, ApiError> {
        let index = self
            .registrations
            .iter()
            .position(|r| r.endpoint.vpc_endpoint_id == id)
            .ok_or_else(|| missing_registration(id))?;
        // Only networks attached to a workspace count: whether unattached ones block is
        // unconfirmed (`docs/account-api.md#vpc-endpoint-registrations`), and blocking them would make stack deletion order-dependent.
        let user = self.networks.iter().find_map(|n| {
            let uses = n
                .vpc_endpoints
                .as_ref()
                .is_some_and(|e| e.ids().any(|x| x == id));
            n.workspace_id.filter(|_| uses)
        });
        let user = user.or_else(|| {
            self.workspaces.iter().find_map(|w| {
                let pas_id = w.workspace.private_access_settings_id.as_deref()?;
                let pas = self.pas(pas_id)?;
                pas.allowed_vpc_endpoint_ids
                    .iter()
                    .any(|x| x == id)
                    .then_some(w.workspace.workspace_id)
            })
        });
        if let Some(workspace_id) = user {
            return Err(ApiError::invalid_state(format!(
                "Unable to delete, VPC endpoint {id} is being used by active workspace {workspace_id}"
            )));
        }
        if let Some((going, _)) = self.deleting_networks.iter().find(|(n, _)| {
            n.vpc_endpoints
                .as_ref()
                .is_some_and(|e| e.ids().any(|x| x == id))
        }) {
            return Err(ApiError::invalid_state(format!(
                "Unable to delete, VPC endpoint {id} is being used by network {}, which is being deleted",
                going.network_id
            )));
        }
        let record = self.registrations.remove(index);
        Ok(view.render(&record))
    }

    fn registration(&self, id: &str) -> Option<&RegistrationRecord> {
        self.registrations
            .iter()
            .find(|r| r.endpoint.vpc_endpoint_id == id)
    }

    // ---- Private access settings (`docs/account-api.md#private-access-settings`) ----

    fn validate_pas(
        &self,
        body: PrivateAccessSettingsBody,
    ) -> Result<(String, String, bool, PrivateAccessLevel, Vec<String>), ApiError> {
        let name = check_name(
            "private_access_settings_name",
            body.private_access_settings_name.as_deref(),
        )?;
        let region = check_required("region", body.region.as_deref())?;
        let level = match body.private_access_level.as_deref() {
            None | Some("ACCOUNT") => PrivateAccessLevel::Account,
            Some("ENDPOINT") => PrivateAccessLevel::Endpoint,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "private_access_level must be ACCOUNT or ENDPOINT, got '{other}'"
                )));
            }
        };
        let allowed = body.allowed_vpc_endpoint_ids.unwrap_or_default();
        if let Some(unknown) = allowed.iter().find(|id| self.registration(id).is_none()) {
            return Err(ApiError::invalid(format!(
                "allowed_vpc_endpoint_ids contains {unknown}, which is not a VPC endpoint registered in this account; use the Databricks vpc_endpoint_id, not the AWS vpce- ID"
            )));
        }
        // AWS default is false when omitted (`docs/account-api.md#private-access-settings`), which
        // is what makes omitting it a
        // classic mistake for back-end-only PrivateLink.
        let public = body.public_access_enabled.unwrap_or(false);
        Ok((name, region, public, level, allowed))
    }

    pub fn create_private_access_settings(
        &mut self,
        body: PrivateAccessSettingsBody,
        ids: NewIds,
    ) -> Result<PrivateAccessSettings, ApiError> {
        let (name, region, public, level, allowed) = self.validate_pas(body)?;
        let pas = PrivateAccessSettings {
            private_access_settings_id: ids.id,
            account_id: self.account_id.clone(),
            private_access_settings_name: name,
            region,
            public_access_enabled: public,
            private_access_level: level,
            allowed_vpc_endpoint_ids: allowed,
        };
        self.private_access_settings.push(pas.clone());
        Ok(pas)
    }

    pub fn get_private_access_settings(&self, id: &str) -> Result<PrivateAccessSettings, ApiError> {
        self.pas(id).cloned().ok_or_else(|| missing_pas(id))
    }

    pub fn list_private_access_settings(&self) -> Vec<PrivateAccessSettings> {
        self.private_access_settings.clone()
    }

    /// Full overwrite (`docs/account-api.md#private-access-settings`): whatever the body omits goes
    /// back to its default.
    pub fn replace_private_access_settings(
        &mut self,
        id: &str,
        body: PrivateAccessSettingsBody,
    ) -> Result<PrivateAccessSettings, ApiError> {
        let index = self
            .private_access_settings
            .iter()
            .position(|p| p.private_access_settings_id == id)
            .ok_or_else(|| missing_pas(id))?;
        let (name, region, public, level, allowed) = self.validate_pas(body)?;
        let current = &self.private_access_settings[index];
        let user = self
            .workspace_using_pas(id)
            .filter(|_| region != current.region);
        if let Some(user) = user {
            return Err(ApiError::invalid(format!(
                "region cannot change from {} to {region}: private access settings {id} are used by workspace {user} in {}. Create new private access settings for {region} instead",
                current.region, current.region
            )));
        }
        let replaced = PrivateAccessSettings {
            private_access_settings_id: id.to_owned(),
            account_id: self.account_id.clone(),
            private_access_settings_name: name,
            region,
            public_access_enabled: public,
            private_access_level: level,
            allowed_vpc_endpoint_ids: allowed,
        };
        self.private_access_settings[index] = replaced.clone();
        Ok(replaced)
    }

    pub fn delete_private_access_settings(
        &mut self,
        id: &str,
    ) -> Result<PrivateAccessSettings, ApiError> {
        let index = self
            .private_access_settings
            .iter()
            .position(|p| p.private_access_settings_id == id)
            .ok_or_else(|| missing_pas(id))?;
        if let Some(user) = self.workspace_using_pas(id) {
            // Message modelled on the network one; the real text is unconfirmed
            // (`docs/account-api.md#private-access-settings`).
            return Err(ApiError::invalid_state(format!(
                "Unable to delete, Private access settings is being used by active workspace {user}"
            )));
        }
        Ok(self.private_access_settings.remove(index))
    }

    fn pas(&self, id: &str) -> Option<&PrivateAccessSettings> {
        self.private_access_settings
            .iter()
            .find(|p| p.private_access_settings_id == id)
    }

    fn workspace_using_pas(&self, id: &str) -> Option<i64> {
        self.workspaces
            .iter()
            .find(|w| w.workspace.private_access_settings_id.as_deref() == Some(id))
            .map(|w| w.workspace.workspace_id)
    }

    // ---- Networks (`docs/account-api.md#network-configurations`) ----

    pub fn create_network(
        &mut self,
        request: CreateNetwork,
        view: EndpointView<'_>,
        ids: NewIds,
    ) -> Result<Network, ApiError> {
        if request.gcp_network_info.is_some() {
            return Err(ApiError::invalid(
                "gcp_network_info is only valid for accounts on Google Cloud; this account is on AWS, send vpc_id, subnet_ids and security_group_ids instead",
            ));
        }
        let name = check_name("network_name", request.network_name.as_deref())?;
        let vpc_id = check_required("vpc_id", request.vpc_id.as_deref())?;
        let subnet_ids = request.subnet_ids.unwrap_or_default();
        if subnet_ids.len() < 2 {
            return Err(ApiError::invalid(format!(
                "subnet_ids must list at least two subnets in different availability zones, got {}",
                subnet_ids.len()
            )));
        }
        if let Some(duplicate) = first_duplicate(&subnet_ids) {
            return Err(ApiError::invalid(format!(
                "subnet_ids lists {duplicate} more than once"
            )));
        }
        let security_group_ids = request.security_group_ids.unwrap_or_default();
        if !(1..=5).contains(&security_group_ids.len()) {
            return Err(ApiError::invalid(format!(
                "security_group_ids must list one to five security groups, got {}",
                security_group_ids.len()
            )));
        }
        let vpc_endpoints = request.vpc_endpoints.filter(|e| !e.is_empty());
        if let Some(endpoints) = &vpc_endpoints {
            self.check_network_endpoints(endpoints)?;
        }
        // Databricks validates the network against AWS and reports what it found as data
        // (`vpc_status`, `error_messages`, `warning_messages`) rather than refusing the create.
        let health = view
            .aws
            .judge_network(&vpc_id, &subnet_ids, &security_group_ids);
        let network = Network {
            network_id: ids.id,
            account_id: self.account_id.clone(),
            network_name: name,
            vpc_id,
            subnet_ids,
            security_group_ids,
            vpc_endpoints,
            vpc_status: health.status(false),
            error_messages: health.errors,
            warning_messages: health.warnings,
            workspace_id: None,
            creation_time: ids.now_ms,
        };
        self.networks.push(network.clone());
        Ok(network)
    }

    fn check_network_endpoints(&self, endpoints: &NetworkVpcEndpoints) -> Result<(), ApiError> {
        for (field, ids, wants_rest) in [
            ("rest_api", &endpoints.rest_api, true),
            ("dataplane_relay", &endpoints.dataplane_relay, false),
        ] {
            for id in ids {
                let record = self.registration(id).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "vpc_endpoints.{field} contains {id}, which is not a VPC endpoint registered in this account; use the Databricks vpc_endpoint_id, not the AWS vpce- ID"
                    ))
                })?;
                let use_case = record.endpoint.use_case;
                if use_case.serves_rest_api() != wants_rest {
                    return Err(ApiError::invalid(format!(
                        "vpc_endpoints.{field} contains {id} ({}), whose use case is {}; {field} needs a registration with use case {}",
                        record.endpoint.aws_vpc_endpoint_id,
                        use_case.as_str(),
                        if wants_rest {
                            "GENERAL_ACCESS or WORKSPACE_ACCESS"
                        } else {
                            "DATAPLANE_RELAY_ACCESS"
                        }
                    )));
                }
            }
        }
        Ok(())
    }

    /// A read: a network being deleted is answered while it has reads left, then it is gone.
    pub fn get_network(&mut self, id: &str) -> Result<Network, ApiError> {
        if let Some(network) = self.network(id) {
            return Ok(network.clone());
        }
        let index = self
            .deleting_networks
            .iter()
            .position(|(n, _)| n.network_id == id)
            .ok_or_else(|| missing_network(id))?;
        self.read_deleting(index).ok_or_else(|| missing_network(id))
    }

    /// A read of every network, the ones being deleted included while they have reads left.
    pub fn list_networks(&mut self) -> Vec<Network> {
        let mut listed = self.networks.clone();
        let mut index = 0;
        while index < self.deleting_networks.len() {
            let before = self.deleting_networks.len();
            if let Some(network) = self.read_deleting(index) {
                listed.push(network);
            }
            if self.deleting_networks.len() == before {
                index += 1;
            }
        }
        listed
    }

    fn read_deleting(&mut self, index: usize) -> Option<Network> {
        let (network, reads_left) = self.deleting_networks.get_mut(index)?;
        if *reads_left == 0 {
            self.deleting_networks.remove(index);
            return None;
        }
        *reads_left -= 1;
        Some(network.clone())
    }

    pub fn delete_network(&mut self, id: &str) -> Result<Network, ApiError> {
        // Already being deleted: nothing is left to delete, so a second DELETE answers 404 (a
        // choice; see the README).
        let index = self
            .networks
            .iter()
            .position(|n| n.network_id == id)
            .ok_or_else(|| missing_network(id))?;
        if let Some(workspace_id) = self.networks[index].workspace_id {
            // Exact text from the real API (`docs/account-api.md#network-configurations`).
            return Err(ApiError::invalid_state(format!(
                "Unable to delete, Network is being used by active workspace {workspace_id}"
            )));
        }
        let network = self.networks.remove(index);
        self.deleting_networks
            .push((network.clone(), DELETING_READS));
        Ok(network)
    }

    fn network(&self, id: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.network_id == id)
    }

    /// Subnets and security groups may repeat across networks but not across networks of
    /// different workspaces: "you cannot reuse subnets or Security Groups between workspaces"
    /// (workspace Create docs of the Databricks SDKs). Enforced at attachment, since Terraform's
    /// documented network change creates a second network with the same subnets first.
    fn check_subnets_free(&self, network: &Network, workspace_id: i64) -> Result<(), ApiError> {
        for other in &self.networks {
            let Some(other_workspace) = other.workspace_id else {
                continue;
            };
            if other.network_id == network.network_id || other_workspace == workspace_id {
                continue;
            }
            if let Some(subnet) = network
                .subnet_ids
                .iter()
                .find(|s| other.subnet_ids.contains(s))
            {
                return Err(ApiError::invalid(format!(
                    "Subnet {subnet} of network {} is already used by network {} of workspace {other_workspace}; subnet IDs cannot be used in multiple network configurations",
                    network.network_id, other.network_id
                )));
            }
            if let Some(group) = network
                .security_group_ids
                .iter()
                .find(|g| other.security_group_ids.contains(g))
            {
                return Err(ApiError::invalid(format!(
                    "Security group {group} of network {} is already used by network {} of workspace {other_workspace}; security groups cannot be reused between workspaces",
                    network.network_id, other.network_id
                )));
            }
        }
        Ok(())
    }

    // ---- Workspaces (`docs/account-api.md#workspaces`) ----

    pub fn seed_workspace(
        &mut self,
        workspace_id: i64,
        seed: WorkspaceSeed,
        view: EndpointView<'_>,
        ids: SeedIds,
    ) -> Result<Workspace, ApiError> {
        if seed.name.trim().is_empty() {
            return Err(ApiError::invalid("workspace name is required"));
        }
        if seed.region.trim().is_empty() {
            return Err(ApiError::invalid("workspace region is required"));
        }
        if seed.compute_mode == ComputeMode::Serverless && seed.network.is_some() {
            return Err(ApiError::invalid(
                "a serverless workspace has no customer-managed network: leave network unset",
            ));
        }
        if let Some(pas_id) = &seed.private_access_settings_id {
            let pas = self.pas(pas_id).ok_or_else(|| missing_pas(pas_id))?;
            if pas.region != seed.region {
                return Err(ApiError::invalid(format!(
                    "private access settings {pas_id} are for {}, the workspace is in {}",
                    pas.region, seed.region
                )));
            }
        }
        let network_id = match seed.network {
            Some(network_seed) => {
                let request = CreateNetwork {
                    network_name: Some(format!("{} network", seed.name)),
                    vpc_id: Some(network_seed.vpc_id),
                    subnet_ids: Some(network_seed.subnet_ids),
                    security_group_ids: Some(network_seed.security_group_ids),
                    vpc_endpoints: None,
                    gcp_network_info: None,
                };
                let network = self.create_network(
                    request,
                    view,
                    NewIds {
                        id: ids.network_id,
                        now_ms: ids.now_ms,
                    },
                )?;
                if let Err(e) = self.check_subnets_free(&network, workspace_id) {
                    self.networks.retain(|n| n.network_id != network.network_id);
                    return Err(e);
                }
                self.attach(&network.network_id, workspace_id);
                Some(network.network_id)
            }
            None => None,
        };
        let hybrid = seed.compute_mode == ComputeMode::Hybrid;
        let workspace = Workspace {
            workspace_id,
            workspace_name: seed.name,
            account_id: self.account_id.clone(),
            aws_region: seed.region,
            deployment_name: ids.deployment_name,
            cloud: "aws".to_owned(),
            pricing_tier: "ENTERPRISE".to_owned(),
            compute_mode: seed.compute_mode,
            credentials_id: hybrid.then_some(ids.credentials_id),
            storage_configuration_id: hybrid.then_some(ids.storage_configuration_id),
            network_id,
            private_access_settings_id: seed.private_access_settings_id,
            workspace_status: seed.status,
            workspace_status_message: seed.status.default_message().to_owned(),
            creation_time: ids.now_ms,
        };
        self.workspaces.push(WorkspaceRecord {
            workspace: workspace.clone(),
            clusters_running: seed.running_clusters,
            silent_reverts: 0,
            fail_next_patch: None,
            provisioning: None,
        });
        Ok(workspace)
    }

    /// `GET /workspaces/{id}`: a read, which moves a provisioning workspace on.
    pub fn get_workspace(&mut self, workspace_id: i64) -> Result<Workspace, ApiError> {
        self.workspaces
            .iter_mut()
            .find(|w| w.workspace.workspace_id == workspace_id)
            .map(WorkspaceRecord::read)
            .ok_or_else(|| missing_workspace(workspace_id))
    }

    /// `GET /workspaces`: a read of each.
    pub fn read_workspaces(&mut self) -> Vec<Workspace> {
        self.workspaces
            .iter_mut()
            .map(WorkspaceRecord::read)
            .collect()
    }

    /// The workspaces as they are, without counting a read.
    pub fn list_workspaces(&self) -> Vec<Workspace> {
        self.workspaces
            .iter()
            .map(|w| w.workspace.clone())
            .collect()
    }

    pub fn has_workspace(&self, workspace_id: i64) -> bool {
        self.workspace_record(workspace_id).is_some()
    }

    pub fn set_clusters_running(&mut self, workspace_id: i64, running: bool) -> bool {
        self.with_workspace(workspace_id, |w| w.clusters_running = running)
    }

    pub fn force_status(
        &mut self,
        workspace_id: i64,
        status: WorkspaceStatus,
        message: &str,
    ) -> bool {
        self.with_workspace(workspace_id, |w| {
            w.workspace.workspace_status = status;
            w.workspace.workspace_status_message = message.to_owned();
        })
    }

    pub fn set_silent_reverts(&mut self, workspace_id: i64, count: u32) -> bool {
        self.with_workspace(workspace_id, |w| w.silent_reverts = count)
    }

    pub fn set_fail_next_patch(&mut self, workspace_id: i64, message: Option<String>) -> bool {
        self.with_workspace(workspace_id, |w| w.fail_next_patch = message)
    }

    fn with_workspace(
        &mut self,
        workspace_id: i64,
        change: impl FnOnce(&mut WorkspaceRecord),
    ) -> bool {
        match self
            .workspaces
            .iter_mut()
            .find(|w| w.workspace.workspace_id == workspace_id)
        {
            Some(record) => {
                change(record);
                true
            }
            None => false,
        }
    }

    fn workspace_record(&self, workspace_id: i64) -> Option<&WorkspaceRecord> {
        self.workspaces
            .iter()
            .find(|w| w.workspace.workspace_id == workspace_id)
    }

    /// `PATCH /workspaces/{id}`. `update_mask` is not consulted: the Terraform provider's change
    /// notes say AWS ignores it (unconfirmed, `docs/account-api.md#workspaces`), so whatever
    /// fields the body carries are applied.
    pub fn update_workspace(
        &mut self,
        workspace_id: i64,
        request: UpdateWorkspace,
        view: EndpointView<'_>,
    ) -> Result<Workspace, ApiError> {
        let record = self
            .workspace_record(workspace_id)
            .ok_or_else(|| missing_workspace(workspace_id))?;
        let current = &record.workspace;
        // "You can use a network configuration update in this API for a failed or running
        // workspace to add support for PrivateLink" (SDK workspace update docstring).
        let failed = current.workspace_status == WorkspaceStatus::Failed;
        if current.workspace_status != WorkspaceStatus::Running && !failed {
            return Err(ApiError::invalid_state(format!(
                "Workspace {workspace_id} is {} ({}); it can only be updated while RUNNING or FAILED",
                current.workspace_status.as_str(),
                current.workspace_status_message
            )));
        }
        if request.network_id.is_none() && request.private_access_settings_id.is_none() {
            return Ok(current.clone());
        }
        if current.compute_mode == ComputeMode::Serverless {
            return Err(ApiError::invalid(format!(
                "Workspace {workspace_id} is a serverless workspace and has no classic compute plane network; network_id and private_access_settings_id cannot be set on it"
            )));
        }
        if record.clusters_running {
            // Documented precondition (`docs/account-api.md#workspaces`); the real wording is
            // unconfirmed.
            return Err(ApiError::invalid_state(format!(
                "Unable to update workspace {workspace_id}: you must terminate all running compute resources (clusters, SQL warehouses, jobs) in the workspace's VPC before updating its network or private access settings"
            )));
        }

        let network_id = match request.network_id.as_deref() {
            None => current.network_id.clone(),
            Some("") if current.network_id.is_some() => {
                return Err(ApiError::invalid(format!(
                    "Workspace {workspace_id} uses a customer-managed VPC; network_id cannot be removed (a workspace cannot go back to a Databricks-managed VPC)"
                )));
            }
            Some("") => None,
            Some(id) => {
                self.check_network_switch(current, id, view)?;
                Some(id.to_owned())
            }
        };
        let private_access_settings_id = match request.private_access_settings_id.as_deref() {
            None => current.private_access_settings_id.clone(),
            Some("") if current.private_access_settings_id.is_some() => {
                return Err(ApiError::invalid(format!(
                    "Cannot remove private access settings from workspace {workspace_id}: existing PrivateLink support cannot be downgraded"
                )));
            }
            Some("") => None,
            Some(id) => {
                let pas = self.pas(id).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Private access settings {id} do not exist in account {}",
                        self.account_id
                    ))
                })?;
                if pas.region != current.aws_region {
                    return Err(ApiError::invalid(format!(
                        "Private access settings {id} are for region {}, but workspace {workspace_id} is in {}; use private access settings of the workspace's region",
                        pas.region, current.aws_region
                    )));
                }
                Some(id.to_owned())
            }
        };
        let privatelink_network = network_id
            .as_deref()
            .and_then(|id| self.network(id))
            .filter(|n| n.has_backend_privatelink());
        if let (Some(network), None) = (privatelink_network, &private_access_settings_id) {
            return Err(ApiError::invalid(format!(
                "Network {} uses back-end PrivateLink (vpc_endpoints), which needs private access settings on workspace {workspace_id}: set private_access_settings_id in the same request",
                network.network_id
            )));
        }

        let broken_errors = network_id
            .as_deref()
            .filter(|id| current.network_id.as_deref() != Some(*id))
            .and_then(|id| self.network(id))
            .filter(|n| n.vpc_status == VpcStatus::Broken)
            .map(|n| {
                n.error_messages
                    .iter()
                    .map(|m| m.text().to_owned())
                    .collect::<Vec<_>>()
                    .join("; ")
            });
        let mut updated = current.clone();
        updated.network_id = network_id;
        updated.private_access_settings_id = private_access_settings_id;
        let old_network_id = current.network_id.clone();

        let record = self
            .workspaces
            .iter_mut()
            .find(|w| w.workspace.workspace_id == workspace_id)
            .ok_or_else(|| missing_workspace(workspace_id))?;
        if record.silent_reverts > 0 {
            record.silent_reverts -= 1;
            return Ok(updated);
        }
        record.workspace = updated.clone();
        if failed {
            // A failed deployment is provisioned again with the new configuration.
            record.workspace.workspace_status = WorkspaceStatus::Provisioning;
            record.workspace.workspace_status_message =
                WorkspaceStatus::Provisioning.default_message().to_owned();
            record.provisioning = Some((PROVISIONING_READS, record.fail_next_patch.take()));
        } else if let Some(message) = record.fail_next_patch.take() {
            record.workspace.workspace_status = WorkspaceStatus::Failed;
            record.workspace.workspace_status_message = message;
        }
        // A workspace put on a network Databricks found broken fails, with the network's errors
        // (the Terraform provider quotes them when a workspace fails).
        if let Some(errors) = broken_errors {
            record.workspace.workspace_status = WorkspaceStatus::Failed;
            record.workspace.workspace_status_message =
                format!("Network validation failed: {errors}");
            record.provisioning = None;
        }
        let answered = record.workspace.clone();
        if old_network_id != updated.network_id {
            if let Some(old) = old_network_id {
                self.detach(&old);
            }
            if let Some(new) = &updated.network_id {
                self.attach(new, workspace_id);
            }
        }
        Ok(answered)
    }

    fn check_network_switch(
        &self,
        current: &Workspace,
        network_id: &str,
        view: EndpointView<'_>,
    ) -> Result<(), ApiError> {
        let workspace_id = current.workspace_id;
        let Some(current_network_id) = current.network_id.as_deref() else {
            return Err(ApiError::invalid(format!(
                "Workspace {workspace_id} uses a Databricks-managed VPC; network_id can only be updated on workspaces that already use a customer-managed VPC"
            )));
        };
        let network = self.network(network_id).ok_or_else(|| {
            ApiError::invalid(format!(
                "Network {network_id} does not exist in account {}",
                self.account_id
            ))
        })?;
        if let Some(other) = network.workspace_id.filter(|w| *w != workspace_id) {
            return Err(ApiError::invalid(format!(
                "Network {network_id} is already used by workspace {other}; a network configuration can be used by one workspace only"
            )));
        }
        self.check_subnets_free(network, workspace_id)?;
        if let Some(endpoints) = &network.vpc_endpoints {
            for id in endpoints.ids() {
                let record = self.registration(id).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Network {network_id} references VPC endpoint {id}, which is no longer registered in this account"
                    ))
                })?;
                let state = view.state_of(record);
                if !state.eq_ignore_ascii_case(STATE_AVAILABLE) {
                    return Err(ApiError::invalid_state(format!(
                        "VPC endpoint {id} ({}) referenced by network {network_id} is {state}, not available; wait until it is available",
                        record.endpoint.aws_vpc_endpoint_id
                    )));
                }
            }
        }
        if let Some(old) = self.network(current_network_id) {
            let old_endpoints = old.vpc_endpoints.clone().unwrap_or_default();
            let new_endpoints = network.vpc_endpoints.clone().unwrap_or_default();
            for (field, had, has) in [
                (
                    "rest_api",
                    !old_endpoints.rest_api.is_empty(),
                    !new_endpoints.rest_api.is_empty(),
                ),
                (
                    "dataplane_relay",
                    !old_endpoints.dataplane_relay.is_empty(),
                    !new_endpoints.dataplane_relay.is_empty(),
                ),
            ] {
                if had && !has {
                    return Err(ApiError::invalid(format!(
                        "Cannot downgrade back-end PrivateLink on workspace {workspace_id}: its network {current_network_id} has vpc_endpoints.{field} but network {network_id} has none"
                    )));
                }
            }
        }
        Ok(())
    }

    fn attach(&mut self, network_id: &str, workspace_id: i64) {
        if let Some(network) = self
            .networks
            .iter_mut()
            .find(|n| n.network_id == network_id)
        {
            network.workspace_id = Some(workspace_id);
            network.refresh_status();
        }
    }

    fn detach(&mut self, network_id: &str) {
        if let Some(network) = self
            .networks
            .iter_mut()
            .find(|n| n.network_id == network_id)
        {
            network.workspace_id = None;
            network.refresh_status();
        }
    }

    /// Everything, as the API would show it, without counting reads.
    pub fn snapshot(&self, view: EndpointView<'_>) -> AccountSnapshot {
        AccountSnapshot {
            account_id: self.account_id.clone(),
            vpc_endpoints: self.registrations.iter().map(|r| view.render(r)).collect(),
            private_access_settings: self.private_access_settings.clone(),
            networks: self.networks.clone(),
            deleting_networks: self
                .deleting_networks
                .iter()
                .map(|(n, _)| n.network_id.clone())
                .collect(),
            workspaces: self.list_workspaces(),
            workspace_controls: self
                .workspaces
                .iter()
                .map(|w| WorkspaceControls {
                    workspace_id: w.workspace.workspace_id,
                    clusters_running: w.clusters_running,
                    silent_reverts: w.silent_reverts,
                })
                .collect(),
        }
    }

    /// [`Account::snapshot`] as JSON, the body of `GET /_emulator/state`.
    pub fn dump(&self, view: EndpointView<'_>) -> serde_json::Value {
        json!(self.snapshot(view))
    }
}

/// One account's objects as the API shows them, read without side effects: what tests inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountSnapshot {
    pub account_id: String,
    pub vpc_endpoints: Vec<VpcEndpoint>,
    pub private_access_settings: Vec<PrivateAccessSettings>,
    pub networks: Vec<Network>,
    /// Ids of networks whose DELETE was answered but which are still listed for a few reads.
    pub deleting_networks: Vec<String>,
    pub workspaces: Vec<Workspace>,
    pub workspace_controls: Vec<WorkspaceControls>,
}

impl AccountSnapshot {
    /// The registration of AWS endpoint `vpce`, if any.
    pub fn registration_of(&self, vpce: &str) -> Option<&VpcEndpoint> {
        self.vpc_endpoints
            .iter()
            .find(|r| r.aws_vpc_endpoint_id == vpce)
    }

    /// The `vpce-` ids registered, sorted.
    pub fn registered_vpces(&self) -> Vec<String> {
        let mut vpces: Vec<String> = self
            .vpc_endpoints
            .iter()
            .map(|r| r.aws_vpc_endpoint_id.clone())
            .collect();
        vpces.sort();
        vpces
    }

    pub fn network(&self, network_id: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.network_id == network_id)
    }

    pub fn workspace(&self, workspace_id: i64) -> Option<&Workspace> {
        self.workspaces
            .iter()
            .find(|w| w.workspace_id == workspace_id)
    }

    pub fn private_access_settings(&self, id: &str) -> Option<&PrivateAccessSettings> {
        self.private_access_settings
            .iter()
            .find(|p| p.private_access_settings_id == id)
    }
}

/// Pretty JSON, as `GET /_emulator/state` shows it: for failure messages.
impl std::fmt::Display for AccountSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string_pretty(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// The test controls of one workspace that the API does not show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceControls {
    pub workspace_id: i64,
    pub clusters_running: bool,
    pub silent_reverts: u32,
}

/// Ids for everything a seeded workspace brings along.
pub struct SeedIds {
    pub network_id: String,
    pub deployment_name: String,
    pub credentials_id: String,
    pub storage_configuration_id: String,
    pub now_ms: i64,
}

fn missing_registration(id: &str) -> ApiError {
    ApiError::not_found(format!("VPC endpoint configuration {id} does not exist"))
}

fn missing_pas(id: &str) -> ApiError {
    ApiError::not_found(format!("Private access settings {id} does not exist"))
}

fn missing_network(id: &str) -> ApiError {
    ApiError::not_found(format!("Network {id} does not exist"))
}

fn missing_workspace(workspace_id: i64) -> ApiError {
    ApiError::not_found(format!("Workspace {workspace_id} does not exist"))
}
