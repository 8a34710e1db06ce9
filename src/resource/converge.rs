//! Create and Update: converge the Databricks account on what the properties describe. Compute
//! the desired objects, find the owned ones by the ownership key, create what is missing, replace
//! the private access settings in place, and delete owned objects that are no longer desired.
//!
//! Nothing here is written to Databricks before the properties, the two endpoints, the
//! credentials, the workspaces, the `Network` property's subnets and security groups and the VPC
//! (`readiness`, again right before the switch) have been checked; a create whose answer was lost
//! is looked for before it is sent again.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::try_join;
use tokio::time::Instant;

use crate::aws::services;
use crate::aws::{EndpointServices, VpcEndpointInfo, check_endpoint_pair, missing_ingress_ports};
use crate::cfn::Progress;
use crate::databricks::{
    AccountClient, CreateVpcEndpoint, DatabricksError, EndpointRole, PrivateAccessSettings,
    PrivateAccessSettingsRequest, RegistrationState, VpcEndpoint,
};

use super::error::ResourceError;
use super::names::{OwnershipKey, Role};
use super::properties::{AccessLevel, Properties};
use super::{Handler, delete, readiness, verification, workspaces};

/// What the stack can read with `Fn::GetAtt`.
#[derive(Clone, Debug)]
pub struct Converged {
    pub rest_api_registration_id: String,
    pub relay_registration_id: String,
    pub private_access_settings_id: String,
    pub relay_hostname: String,
    pub attached: workspaces::Attached,
    /// The verifier's report, shortened, when `VerifyFunctionArn` ran it.
    pub verification_report: Option<String>,
}

impl Converged {
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::from([
            (
                "RestApiVpcEndpointRegistrationId".to_string(),
                self.rest_api_registration_id.clone(),
            ),
            (
                "RelayVpcEndpointRegistrationId".to_string(),
                self.relay_registration_id.clone(),
            ),
            (
                "PrivateAccessSettingsId".to_string(),
                self.private_access_settings_id.clone(),
            ),
            ("RelayHostname".to_string(), self.relay_hostname.clone()),
            (
                "AttachedWorkspaceIds".to_string(),
                self.attached
                    .workspace_ids
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "ReadyAfter".to_string(),
                self.attached
                    .ready_after_ms
                    .map(workspaces::iso8601)
                    .unwrap_or_default(),
            ),
        ]);
        if let Some(network) = &self.attached.network_id {
            data.insert("NetworkId".to_string(), network.clone());
        }
        if let Some(report) = &self.verification_report {
            data.insert("VerificationReport".to_string(), report.clone());
        }
        data
    }
}

/// Objects this request created, so a failed Create can remove them before answering.
#[derive(Default)]
pub struct Created {
    registrations: Mutex<Vec<String>>,
    access_settings: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
}

impl Created {
    fn registration(&self, id: &str) {
        if let Ok(mut v) = self.registrations.lock() {
            v.push(id.to_string());
        }
    }

    pub fn network(&self, id: &str) {
        if let Ok(mut v) = self.networks.lock() {
            v.push(id.to_string());
        }
    }

    fn access_settings(&self, id: &str) {
        if let Ok(mut v) = self.access_settings.lock() {
            v.push(id.to_string());
        }
    }

    /// Best effort: whatever cannot be removed now is still found by the ownership key when
    /// CloudFormation's rollback Delete arrives.
    pub async fn remove(&self, client: &AccountClient) {
        let take = |m: &Mutex<Vec<String>>| m.lock().map(|v| v.clone()).unwrap_or_default();
        // Networks reference registrations; a network a workspace was switched to stays.
        let networks = take(&self.networks);
        for id in &networks {
            delete::delete_quietly(client, delete::Kind::Network, id, false).await;
        }
        for id in take(&self.access_settings) {
            delete::delete_quietly(client, delete::Kind::AccessSettings, &id, false).await;
        }
        for id in take(&self.registrations) {
            let going = !networks.is_empty();
            delete::delete_quietly(client, delete::Kind::Registration, &id, going).await;
        }
    }
}

/// One endpoint in its role, as this resource uses it.
struct Endpoint<'a> {
    vpce: &'a str,
    role: Role,
}

impl Endpoint<'_> {
    fn api_role(&self) -> EndpointRole {
        match self.role {
            Role::Relay => EndpointRole::Relay,
            _ => EndpointRole::RestApi,
        }
    }

    fn describe(&self) -> &'static str {
        match self.role {
            Role::Relay => "SCC relay",
            _ => "workspace (REST API)",
        }
    }
}

/// Checks the two endpoints against EC2 and, at the same time, signs in to the account with the
/// service principal's credentials; returns the signed-in client. Makes no Databricks write.
pub async fn prepare(
    handler: &Handler,
    props: &Properties,
    progress: &Progress,
    deadline: Instant,
) -> Result<(AccountClient, Vec<VpcEndpointInfo>), ResourceError> {
    progress.step("checking the VPC endpoints and signing in to the Databricks account");
    let ids = vec![
        props.rest_api_vpc_endpoint_id.clone(),
        props.relay_vpc_endpoint_id.clone(),
    ];
    // The credentials are read and exchanged for a token while EC2 describes the endpoints: every
    // Databricks call needs the token first, and fetching it writes nothing.
    let sign_in = async {
        let principal = handler
            .secrets
            .service_principal(&props.target.credentials_secret_arn, deadline)
            .await?;
        let client = AccountClient::new(
            &handler.http,
            &props.target.account_host,
            &props.target.account_id,
            crate::databricks::ClientCredentials::new(
                principal.client_id.clone(),
                principal.client_secret.clone(),
            ),
            deadline,
        )?;
        client.ensure_token().await?;
        Ok::<_, ResourceError>(client)
    };
    let (endpoints, signed_in) = tokio::join!(
        handler
            .ec2
            .describe_vpc_endpoints(&props.region, &ids, deadline),
        sign_in,
    );
    // Both are checked before either failure is reported, so one failed deployment names every
    // problem with the endpoints and the credentials.
    let checked = endpoints
        .map_err(ResourceError::from)
        .and_then(|endpoints| check_endpoints(props, endpoints));
    let (client, (rest, relay)) = match (signed_in, checked) {
        (Ok(client), Ok(pair)) => (client, pair),
        (Err(credentials), Err(endpoints)) => {
            return Err(ResourceError::Several(vec![
                endpoints.to_string(),
                credentials.to_string(),
            ]));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok((client, vec![rest, relay]))
}

/// The two endpoints as EC2 describes them, checked against the region's Databricks services.
fn check_endpoints(
    props: &Properties,
    endpoints: Vec<VpcEndpointInfo>,
) -> Result<(VpcEndpointInfo, VpcEndpointInfo), ResourceError> {
    let find = |id: &str| endpoints.iter().find(|e| e.id == id).cloned();
    let (Some(rest), Some(relay)) = (
        find(&props.rest_api_vpc_endpoint_id),
        find(&props.relay_vpc_endpoint_id),
    ) else {
        return Err(ResourceError::Aws(crate::aws::AwsError::EndpointNotFound {
            id: format!(
                "{} or {}",
                props.rest_api_vpc_endpoint_id, props.relay_vpc_endpoint_id
            ),
        }));
    };
    let known: Vec<(&str, EndpointServices)> = services::endpoint_services(&props.region);
    let check = check_endpoint_pair(&rest, &relay, &props.region, &known)
        .map_err(ResourceError::Endpoints)?;
    if !check.private_dns_missing.is_empty() && !props.enable_private_dns {
        return Err(ResourceError::PrivateDnsDisabled(check.private_dns_missing));
    }
    Ok((rest, relay))
}

/// Logs a warning when the endpoints' security groups do not admit the ports the compute plane
/// uses; a warning only, since the rule may sit on a group this function cannot see through.
async fn warn_about_ports(
    handler: &Handler,
    region: &str,
    endpoints: &[VpcEndpointInfo],
    deadline: Instant,
) {
    let mut groups: Vec<String> = endpoints
        .iter()
        .flat_map(|e| e.security_group_ids.clone())
        .collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        return;
    }
    match handler
        .ec2
        .security_group_ingress_ports(region, &groups, deadline)
        .await
    {
        Ok(ranges) => {
            let missing = missing_ingress_ports(&ranges);
            if !missing.is_empty() {
                tracing::warn!(
                    security_groups = %groups.join(","),
                    missing_ports = ?missing,
                    "the endpoints' security groups do not admit these ports from the cluster security group; clusters need 443 and the relay port (6666, or 2443 with FIPS)"
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the endpoints' security groups to check their ports")
        }
    }
}

/// The `Network` property's subnets and security groups as EC2 describes them, both in one
/// round trip; `None` without a `Network`.
async fn describe_network_parts(
    handler: &Handler,
    props: &Properties,
    deadline: Instant,
) -> Result<Option<workspaces::NetworkParts>, ResourceError> {
    let Some(spec) = &props.network else {
        return Ok(None);
    };
    let (subnets, security_groups) = tokio::join!(
        handler
            .ec2
            .describe_subnets(&props.region, &spec.subnet_ids, deadline),
        handler
            .ec2
            .describe_security_groups(&props.region, &spec.security_group_ids, deadline),
    );
    Ok(Some(workspaces::NetworkParts {
        subnets: subnets?,
        security_groups: security_groups?,
    }))
}

#[allow(clippy::too_many_arguments)]
pub async fn converge(
    handler: &Handler,
    client: &AccountClient,
    key: &OwnershipKey,
    props: &Properties,
    endpoints: &[VpcEndpointInfo],
    progress: &Progress,
    deadline: Instant,
    created: &Created,
) -> Result<Converged, ResourceError> {
    progress.step("listing the account's VPC endpoint registrations and private access settings");
    let (registrations, access_settings, networks, workspaces, (), parts) = tokio::join!(
        client.list_vpc_endpoints(),
        client.list_private_access_settings(),
        client.list_networks(),
        async {
            if props.workspace_ids.is_empty() {
                Ok(Vec::new())
            } else {
                client.list_workspaces().await
            }
        },
        warn_about_ports(handler, &props.region, endpoints, deadline),
        describe_network_parts(handler, props, deadline),
    );
    let (registrations, access_settings, networks, workspaces, parts) = (
        registrations?,
        access_settings?,
        networks?,
        workspaces?,
        parts?,
    );
    let vpc_id = endpoints
        .first()
        .map(|e| e.vpc_id.clone())
        .unwrap_or_default();
    workspaces::check(props, &vpc_id, &workspaces, &networks, parts.as_ref())?;
    let clusters = readiness::clusters(props, &workspaces, &networks);
    readiness::check(handler, props, endpoints, clusters.clone(), deadline).await?;
    workspaces::warn_left_switched(key, props, &networks);

    // Foreign endpoints allowed with ENDPOINT access must already be registered: this resource
    // never registers, owns or deletes them.
    let mut foreign_allowed = Vec::new();
    for vpce in &props.allowed_vpc_endpoint_ids {
        if vpce == &props.rest_api_vpc_endpoint_id || vpce == &props.relay_vpc_endpoint_id {
            continue;
        }
        match registrations
            .iter()
            .find(|r| r.aws_vpc_endpoint_id.as_deref() == Some(vpce.as_str()))
        {
            Some(r) => foreign_allowed.push(r.vpc_endpoint_id.clone()),
            None => return Err(ResourceError::AllowedEndpointNotRegistered(vpce.clone())),
        }
    }

    progress.step("registering the two VPC endpoints with Databricks");
    let rest = Endpoint {
        vpce: &props.rest_api_vpc_endpoint_id,
        role: Role::RestApi,
    };
    let relay = Endpoint {
        vpce: &props.relay_vpc_endpoint_id,
        role: Role::Relay,
    };
    let (rest_registration, relay_registration) = try_join(
        ensure_registration(client, key, props, &rest, &registrations, created),
        ensure_registration(client, key, props, &relay, &registrations, created),
    )
    .await?;
    let (rest_id, relay_id) = (
        rest_registration.vpc_endpoint_id.clone(),
        relay_registration.vpc_endpoint_id.clone(),
    );

    progress.step("waiting for Databricks to accept the VPC endpoints");
    try_join(
        wait_accepted(client, &rest, rest_registration),
        wait_accepted(client, &relay, relay_registration),
    )
    .await?;

    if props.enable_private_dns {
        let off: Vec<&VpcEndpointInfo> = endpoints
            .iter()
            .filter(|e| !e.private_dns_enabled)
            .collect();
        if !off.is_empty() {
            progress.step("enabling private DNS on the VPC endpoints");
            for e in off {
                enable_private_dns(handler, &props.region, &e.id, deadline).await?;
            }
        }
    }

    progress.step("creating or updating the private access settings and network configurations");
    let mut allowed = Vec::new();
    if props.private_access_level == AccessLevel::Endpoint {
        // The resource's own endpoints carry the compute plane's traffic: always allowed.
        allowed = vec![rest_id.clone(), relay_id.clone()];
        allowed.extend(foreign_allowed);
    }
    let desired = PrivateAccessSettingsRequest {
        private_access_settings_name: key.object_name(&props.name_prefix, Role::AccessSettings),
        region: props.region.clone(),
        public_access_enabled: props.public_access_enabled,
        private_access_level: props.private_access_level.as_api().to_string(),
        allowed_vpc_endpoint_ids: allowed,
    };
    let uses_networks = props.network.is_some()
        || !props.workspace_ids.is_empty()
        || networks.iter().any(|n| workspaces::owns_network(key, n));
    let ids = workspaces::Registrations {
        rest_api: &rest_id,
        relay: &relay_id,
    };
    // The networks need only the registrations, the switch needs both: PAS and networks are
    // made side by side.
    let (pas_id, targets) = try_join(
        ensure_access_settings(
            client,
            key,
            &props.name_prefix,
            &desired,
            &access_settings,
            created,
        ),
        async {
            if uses_networks {
                workspaces::ensure_networks(
                    client,
                    key,
                    props,
                    &vpc_id,
                    &ids,
                    &workspaces,
                    &networks,
                    created,
                )
                .await
                .map(Some)
            } else {
                Ok(None)
            }
        },
    )
    .await?;

    let mut verification_report = None;
    let attached = match targets {
        Some(targets) => {
            progress.step("checking the VPC again and switching the workspaces");
            let warned = readiness::check(handler, props, endpoints, clusters, deadline).await?;
            verification_report =
                verification::before_switch(handler, props, &workspaces, deadline).await?;
            workspaces::switch_and_clean(client, key, &pas_id, &workspaces, &networks, targets)
                .await
                .map_err(|e| readiness::with_warnings(e, &warned))?
        }
        None => workspaces::Attached::default(),
    };

    progress.step("removing superseded registrations");
    let superseded: Vec<&VpcEndpoint> = registrations
        .iter()
        .filter(|r| owns_registration(key, r))
        .filter(|r| r.vpc_endpoint_id != rest_id && r.vpc_endpoint_id != relay_id)
        .collect();
    futures_util::future::try_join_all(superseded.iter().map(|r| {
        let going = delete::networks_reference(&networks, key, &r.vpc_endpoint_id);
        delete::delete_owned_after(
            client,
            delete::Kind::Registration,
            &r.vpc_endpoint_id,
            going,
        )
    }))
    .await?;

    Ok(Converged {
        rest_api_registration_id: rest_id,
        relay_registration_id: relay_id,
        private_access_settings_id: pas_id,
        relay_hostname: services::relay_hostname(&props.region),
        attached,
        verification_report,
    })
}

/// The first object `converged` reports that Databricks no longer has (404), if any. Nothing
/// but a Delete for this resource removes them, so one gone at the end of a Create means a Delete
/// ran meanwhile. Any other error proves nothing: it is logged and the check moves on.
pub async fn vanished(client: &AccountClient, converged: &Converged) -> Option<String> {
    let mut objects = vec![
        (
            delete::Kind::Registration,
            &converged.rest_api_registration_id,
        ),
        (delete::Kind::Registration, &converged.relay_registration_id),
        (
            delete::Kind::AccessSettings,
            &converged.private_access_settings_id,
        ),
    ];
    if let Some(network) = &converged.attached.network_id {
        objects.push((delete::Kind::Network, network));
    }
    // One round trip: the reads run together.
    let reads = objects.into_iter().map(|(kind, id)| async move {
        let found = match kind {
            delete::Kind::Registration => client.get_vpc_endpoint(id).await.map(drop),
            delete::Kind::AccessSettings => client.get_private_access_settings(id).await.map(drop),
            delete::Kind::Network => client.get_network(id).await.map(drop),
        };
        match found {
            Ok(()) => None,
            Err(e) if e.is_not_found() => Some(format!("{} {id}", kind.describe())),
            Err(e) => {
                tracing::warn!(object = kind.describe(), id = %id, error = %e, "could not confirm that the object still exists");
                None
            }
        }
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .next()
}

pub fn owns_registration(key: &OwnershipKey, r: &VpcEndpoint) -> bool {
    let name = r.vpc_endpoint_name.as_deref();
    key.owns(name, Role::RestApi) || key.owns(name, Role::Relay)
}

/// Registrations are keyed by `aws_vpc_endpoint_id` (one per endpoint per account): adopt an
/// existing one, owned or not, before creating; a foreign one is used but never deleted.
async fn ensure_registration(
    client: &AccountClient,
    key: &OwnershipKey,
    props: &Properties,
    endpoint: &Endpoint<'_>,
    known: &[VpcEndpoint],
    created: &Created,
) -> Result<VpcEndpoint, ResourceError> {
    if let Some(existing) = pick_registration(key, endpoint.vpce, known) {
        return Ok(existing.clone());
    }
    let request = CreateVpcEndpoint {
        vpc_endpoint_name: key.object_name(&props.name_prefix, endpoint.role),
        aws_vpc_endpoint_id: endpoint.vpce.to_string(),
        region: props.region.clone(),
    };
    let created_here = create_once(
        client,
        "create VPC endpoint registration",
        || client.create_vpc_endpoint(&request),
        || async {
            // Registrations are unique per endpoint; ours carries the name this request sent.
            Ok(client.list_vpc_endpoints().await?.into_iter().find(|r| {
                r.aws_vpc_endpoint_id.as_deref() == Some(request.aws_vpc_endpoint_id.as_str())
                    && r.vpc_endpoint_name.as_deref() == Some(request.vpc_endpoint_name.as_str())
            }))
        },
    )
    .await;
    match created_here {
        Ok(registration) => {
            tracing::info!(vpce = endpoint.vpce, registration = %registration.vpc_endpoint_id, "registered VPC endpoint");
            created.registration(&registration.vpc_endpoint_id);
            Ok(registration)
        }
        // Another delivery of the same event (or another stack) registered it meanwhile.
        Err(e) if is_already_registered(&e) => {
            let again = client.list_vpc_endpoints().await?;
            pick_registration(key, endpoint.vpce, &again)
                .cloned()
                .ok_or(ResourceError::Databricks(e))
        }
        Err(e) => Err(e.into()),
    }
}

fn is_already_registered(e: &DatabricksError) -> bool {
    e.status() == Some(409) || e.error_code().is_some_and(|c| c.contains("ALREADY_EXISTS"))
}

/// The registration of `vpce` to use: ours first, then any other (deterministic by id).
fn pick_registration<'a>(
    key: &OwnershipKey,
    vpce: &str,
    known: &'a [VpcEndpoint],
) -> Option<&'a VpcEndpoint> {
    let mut matching: Vec<&VpcEndpoint> = known
        .iter()
        .filter(|r| r.aws_vpc_endpoint_id.as_deref() == Some(vpce))
        .collect();
    matching.sort_by(|a, b| {
        owns_registration(key, b)
            .cmp(&owns_registration(key, a))
            .then(a.vpc_endpoint_id.cmp(&b.vpc_endpoint_id))
    });
    matching.first().copied()
}

/// Databricks accepts a registered endpoint on its own; poll without sleeping first (it is often
/// already available), then back off, bounded by the invocation's deadline through the client.
async fn wait_accepted(
    client: &AccountClient,
    endpoint: &Endpoint<'_>,
    known: VpcEndpoint,
) -> Result<(), ResourceError> {
    // The registration in hand (listed or just created) is the first read: an endpoint already
    // accepted costs no round trip. The next two reads follow at once, then the polls back off.
    let mut registration = known;
    let mut reads = 0u32;
    loop {
        if let Some(actual) = registration.use_case_role()
            && actual != endpoint.api_role()
        {
            return Err(ResourceError::WrongUseCase {
                vpce: endpoint.vpce.to_string(),
                expected: endpoint.describe(),
                actual: registration.use_case.clone().unwrap_or_default(),
            });
        }
        match registration.registration_state() {
            RegistrationState::Available => return Ok(()),
            // Terraform waits only on the pending states; anything else is final, so it fails
            // now instead of at the deadline.
            RegistrationState::Failed(state) | RegistrationState::Unknown(state) => {
                return Err(ResourceError::RegistrationFailed {
                    vpce: endpoint.vpce.to_string(),
                    role: endpoint.describe(),
                    state,
                });
            }
            RegistrationState::Pending => {}
        }
        if reads >= 2 {
            let backoff = Duration::from_millis(100) * 2u32.pow((reads - 2).min(6));
            tokio::time::sleep(backoff.min(Duration::from_secs(5))).await;
        }
        reads += 1;
        registration = client
            .get_vpc_endpoint(&registration.vpc_endpoint_id)
            .await?;
    }
}

/// Turns private DNS on once Databricks has accepted the endpoint (before acceptance AWS refuses
/// it), then reads it back: EC2 can accept the call and still leave it off.
async fn enable_private_dns(
    handler: &Handler,
    region: &str,
    id: &str,
    deadline: Instant,
) -> Result<(), ResourceError> {
    handler.ec2.enable_private_dns(region, id, deadline).await?;
    let mut delay = Duration::from_millis(250);
    for _ in 0..6 {
        let now = handler
            .ec2
            .describe_vpc_endpoints(region, &[id.to_string()], deadline)
            .await?;
        if now.iter().any(|e| e.id == id && e.private_dns_enabled) {
            tracing::info!(vpce = id, "private DNS enabled");
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    Err(ResourceError::PrivateDnsNotEnabled {
        id: id.to_string(),
        detail: "EC2 accepted the change but still reports private DNS off; enable it on the endpoint and retry"
            .to_string(),
    })
}

/// One private access settings object per resource. Names are not unique in Databricks, so two
/// deliveries of the same Create running at once can both create one. Each creator stamps the
/// name with its clock; after creating, it lists again and, if an older owned object exists,
/// removes its own and uses that one. The oldest wins everywhere, so every delivery gives the
/// same answer without a sleep.
async fn ensure_access_settings(
    client: &AccountClient,
    key: &OwnershipKey,
    prefix: &str,
    desired: &PrivateAccessSettingsRequest,
    known: &[PrivateAccessSettings],
    created: &Created,
) -> Result<String, ResourceError> {
    let role = Role::AccessSettings;
    let owned = |list: &[PrivateAccessSettings]| -> Vec<PrivateAccessSettings> {
        let mut v: Vec<PrivateAccessSettings> = list
            .iter()
            .filter(|p| key.owns(p.private_access_settings_name.as_deref(), role))
            .cloned()
            .collect();
        v.sort_by_key(|p| {
            (
                key.stamp(p.private_access_settings_name.as_deref(), role)
                    .unwrap_or(0),
                p.private_access_settings_id.clone(),
            )
        });
        v
    };
    // A PAS is region-specific; a region change is a new object (whether PUT may change the
    // region is unconfirmed: `docs/account-api.md#private-access-settings`).
    let in_region =
        |p: &PrivateAccessSettings| p.region.as_deref() == Some(desired.region.as_str());
    let mine = owned(known);
    let winner = match mine.iter().find(|p| in_region(p)) {
        Some(current) => {
            let stamp = key.stamp(current.private_access_settings_name.as_deref(), role);
            let want = PrivateAccessSettingsRequest {
                private_access_settings_name: match stamp {
                    Some(stamp) => key.stamped_name(prefix, role, stamp),
                    None => key.object_name(prefix, role),
                },
                ..desired.clone()
            };
            if !matches_desired(current, &want) {
                client
                    .replace_private_access_settings(&current.private_access_settings_id, &want)
                    .await?;
                tracing::info!(pas = %current.private_access_settings_id, "replaced private access settings");
            }
            current.private_access_settings_id.clone()
        }
        None => {
            let want = PrivateAccessSettingsRequest {
                private_access_settings_name: key.stamped_name(prefix, role, epoch_ms()),
                ..desired.clone()
            };
            let new = create_once(
                client,
                "create private access settings",
                || client.create_private_access_settings(&want),
                // The stamped name is this request's own: an object with it is the one it made.
                || async {
                    Ok(client
                        .list_private_access_settings()
                        .await?
                        .into_iter()
                        .find(|p| {
                            p.private_access_settings_name.as_deref()
                                == Some(want.private_access_settings_name.as_str())
                        }))
                },
            )
            .await?;
            created.access_settings(&new.private_access_settings_id);
            tracing::info!(pas = %new.private_access_settings_id, "created private access settings");
            let now = owned(&client.list_private_access_settings().await?);
            match now.iter().find(|p| in_region(p)) {
                Some(oldest)
                    if oldest.private_access_settings_id != new.private_access_settings_id =>
                {
                    tracing::info!(pas = %oldest.private_access_settings_id, "a concurrent delivery created the private access settings first; using those");
                    delete::delete_owned(
                        client,
                        delete::Kind::AccessSettings,
                        &new.private_access_settings_id,
                    )
                    .await?;
                    oldest.private_access_settings_id.clone()
                }
                _ => new.private_access_settings_id,
            }
        }
    };
    // Leftovers: settings of a previous region, or newer duplicates whose creators will also
    // give way (a 404 when they get there is fine).
    for other in mine
        .iter()
        .filter(|p| p.private_access_settings_id != winner)
    {
        delete::delete_owned(
            client,
            delete::Kind::AccessSettings,
            &other.private_access_settings_id,
        )
        .await?;
    }
    Ok(winner)
}

/// Creates one object. The account API's POSTs carry no idempotency token, so a create whose
/// answer was lost may have been carried out: before trying again, `find` looks for the object
/// by what only this request's create has (the endpoint and name it sent, or its stamped name),
/// so the request ends with exactly one object. Tries until the client's deadline.
pub(super) async fn create_once<T, Create, Created, Find, Found>(
    client: &AccountClient,
    what: &'static str,
    create: Create,
    find: Find,
) -> Result<T, DatabricksError>
where
    Create: Fn() -> Created,
    Created: std::future::Future<Output = Result<T, DatabricksError>>,
    Find: Fn() -> Found,
    Found: std::future::Future<Output = Result<Option<T>, DatabricksError>>,
{
    let mut delay = Duration::from_millis(250);
    loop {
        match create().await {
            Err(lost) if lost.is_answer_lost() => {
                if let Some(found) = find().await? {
                    tracing::info!(
                        operation = what,
                        "the create whose answer was lost had been carried out; using what it made"
                    );
                    return Ok(found);
                }
                let left = client.deadline().saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(DatabricksError::DeadlineExceeded {
                        operation: what,
                        last_error: lost.to_string(),
                    });
                }
                tracing::info!(
                    operation = what,
                    "the create whose answer was lost was not carried out; trying again"
                );
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn matches_desired(
    current: &PrivateAccessSettings,
    desired: &PrivateAccessSettingsRequest,
) -> bool {
    let mut current_allowed = current.allowed_vpc_endpoint_ids.clone().unwrap_or_default();
    let mut desired_allowed = desired.allowed_vpc_endpoint_ids.clone();
    current_allowed.sort();
    desired_allowed.sort();
    current.private_access_settings_name.as_deref()
        == Some(desired.private_access_settings_name.as_str())
        && current.public_access_enabled == Some(desired.public_access_enabled)
        && current.private_access_level.as_deref().unwrap_or("ACCOUNT")
            == desired.private_access_level
        && current_allowed == desired_allowed
}
