//! Create and Update, orchestration only: which step runs when, side by side where the steps
//! are independent, and the attributes the stack reads. Each step lives with what it manages
//! (`endpoints`, `access`, `networks`, `workspaces`); what is ours is answered by `ownership`.
//!
//! Nothing here is written to Databricks before the properties, the two endpoints, the
//! credentials, the workspaces, the `Network` property's subnets and security groups and the VPC
//! (`readiness`, again right before the switch) have been checked; a create whose answer was lost
//! is looked for before it is sent again.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::try_join;
use tokio::time::Instant;

use crate::aws::services;
use crate::aws::{Ec2, Functions, VpcEndpointInfo};
use crate::cfn::Progress;
use crate::databricks::{AccountClient, Network, PrivateAccessSettings, VpcEndpoint, Workspace};

use super::access::{DesiredAccess, ensure_access_settings};
use super::cluster::Cluster;
use super::delete::{self, Created};
use super::endpoints::{Endpoint, ensure_registration, wait_accepted};
use super::error::ResourceError;
use super::names::OwnershipKey;
use super::networks::NetworkParts;
use super::ownership::{owns_network, owns_registration};
use super::pair::EndpointPair;
use super::prepare::{
    EndpointIngress, describe_network_parts, enable_private_dns, read_endpoint_ingress,
};
use super::properties::{AccessLevel, Properties};
use super::{networks, readiness, verification, workspaces};

/// The `Fn::GetAtt` attributes every successful Create and Update answers with, whatever
/// its properties: a template output may read any of them on any path. `tests/template/` checks
/// every output of `template.yaml` against this table and [`RETURNED_WITH_NETWORK`].
pub const ALWAYS_RETURNED: [&str; 8] = [
    "RestApiVpcEndpointRegistrationId",
    "RelayVpcEndpointRegistrationId",
    "PrivateAccessSettingsId",
    "RelayHostname",
    "RelayPrivateLinkHostname",
    "AttachedWorkspaceIds",
    "ReadyAfter",
    "VerificationReport",
];
/// Answered only when the `Network` property is given.
pub const RETURNED_WITH_NETWORK: [&str; 1] = ["NetworkId"];

/// What the stack can read with `Fn::GetAtt`.
#[derive(Clone, Debug)]
pub struct Converged {
    /// The two endpoints' registration ids.
    pub registrations: EndpointPair<String>,
    pub private_access_settings_id: String,
    pub relay_hostname: String,
    /// The relay's "SCC relay for PrivateLink" name, the one its endpoint's private DNS serves.
    pub relay_privatelink_hostname: String,
    pub attached: workspaces::Attached,
    /// The verifier's report, shortened, or why it did not run: CloudFormation fails a stack
    /// whose output reads an attribute the answer lacks, so it is always there.
    pub verification_report: String,
    /// The switched workspaces' own hosts, for a verification after the switch.
    pub workspace_hosts: Vec<String>,
}

impl Converged {
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::from([
            (
                "RestApiVpcEndpointRegistrationId".to_string(),
                self.registrations.rest_api.clone(),
            ),
            (
                "RelayVpcEndpointRegistrationId".to_string(),
                self.registrations.relay.clone(),
            ),
            (
                "PrivateAccessSettingsId".to_string(),
                self.private_access_settings_id.clone(),
            ),
            ("RelayHostname".to_string(), self.relay_hostname.clone()),
            (
                "RelayPrivateLinkHostname".to_string(),
                self.relay_privatelink_hostname.clone(),
            ),
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
                    .map(super::ready::iso8601)
                    .unwrap_or_default(),
            ),
        ]);
        if let Some(network) = &self.attached.network_id {
            data.insert("NetworkId".to_string(), network.clone());
        }
        data.insert(
            "VerificationReport".to_string(),
            self.verification_report.clone(),
        );
        data
    }
}

/// Kept back from the VPC checks at the end of the time they are given: when EC2 does not
/// answer, a Create still has time to remove what it made and to answer with the check's own
/// reason, before the deadline guard answers with a bare time-out.
const KEPT_AFTER_CHECKS: Duration = Duration::from_secs(5);

/// The VPC is checked again right before the switch when the first check is older than this.
const CHECK_AGAIN_AFTER: Duration = Duration::from_secs(10);

fn checks_end(deadline: Instant) -> Instant {
    deadline
        .checked_sub(KEPT_AFTER_CHECKS)
        .unwrap_or_else(Instant::now)
}

/// What every step of a Create or Update works with: the clients, the request's properties and
/// endpoints, the deadline, the progress the guard names on a time-out, and what this request
/// created so far (removed again when a Create fails).
pub struct Context<'a> {
    pub ec2: &'a Ec2,
    pub functions: &'a Functions,
    pub client: &'a AccountClient,
    pub key: &'a OwnershipKey,
    pub props: &'a Properties,
    pub endpoints: &'a EndpointPair<VpcEndpointInfo>,
    pub progress: &'a Progress,
    pub deadline: Instant,
    pub created: &'a Created,
}

/// The account as listed before any write, and the `Network` property's parts.
struct Listed {
    registrations: Vec<VpcEndpoint>,
    access_settings: Vec<PrivateAccessSettings>,
    networks: Vec<Network>,
    workspaces: Vec<Workspace>,
    parts: Option<NetworkParts>,
    /// The endpoints' security groups, read once here for the port warning and the first VPC
    /// check; `None` when EC2 could not be read (the check then reads them itself).
    endpoint_ingress: Option<EndpointIngress>,
}

/// What the checks before any write found: the endpoints' VPC, the clusters to check again
/// before the switch, the first VPC check's warnings and when it ran, and the registration ids
/// of the foreign endpoints allowed with `ENDPOINT` access.
struct Checked {
    vpc_id: String,
    clusters: Vec<Cluster>,
    first_warnings: Vec<String>,
    first_checked: Instant,
    foreign_allowed: Vec<String>,
}

/// Create and Update, one named step after the other.
pub async fn converge(cx: &Context<'_>) -> Result<Converged, ResourceError> {
    let listed = list_account(cx).await?;
    let checked = check_before_writing(cx, &listed).await?;
    let registered = register_endpoints(cx, &listed).await?;
    enable_private_dns_where_off(cx).await?;
    let (pas_id, targets) = ensure_access_and_networks(cx, &listed, &checked, &registered).await?;
    let (attached, verification_report) =
        switch_workspaces(cx, &listed, checked, &pas_id, targets).await?;
    remove_superseded_registrations(cx, &listed, &registered, &attached).await?;
    let props = cx.props;
    Ok(Converged {
        registrations: registered,
        private_access_settings_id: pas_id,
        relay_hostname: services::relay_hostname(&props.region),
        relay_privatelink_hostname: services::privatelink_relay_hostname(&props.region),
        attached,
        verification_report: verification_report.unwrap_or_else(|| not_verified(props)),
        workspace_hosts: verification::hosts(props, &listed.workspaces),
    })
}

/// The account's registrations, private access settings, networks and (with `WorkspaceIds`)
/// workspaces, read side by side with the `Network` property's parts and the endpoints' ports.
async fn list_account(cx: &Context<'_>) -> Result<Listed, ResourceError> {
    let (client, props) = (cx.client, cx.props);
    cx.progress
        .step("listing the account's VPC endpoint registrations and private access settings");
    let (registrations, access_settings, networks, workspaces, endpoint_ingress, parts) = tokio::join!(
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
        read_endpoint_ingress(cx.ec2, &props.region, cx.endpoints, cx.deadline),
        describe_network_parts(cx.ec2, props, cx.deadline),
    );
    Ok(Listed {
        registrations: registrations?,
        access_settings: access_settings?,
        networks: networks?,
        workspaces: workspaces?,
        parts: parts?,
        endpoint_ingress,
    })
}

/// The workspaces, the `Network` and the VPC checked, and the foreign allowed endpoints found
/// registered, before anything is written.
async fn check_before_writing(cx: &Context<'_>, listed: &Listed) -> Result<Checked, ResourceError> {
    let props = cx.props;
    // The check of the pair made sure both endpoints are in one VPC.
    let vpc_id = cx.endpoints.rest_api.vpc_id.clone();
    workspaces::check(
        props,
        &vpc_id,
        &listed.workspaces,
        &listed.networks,
        listed.parts.as_ref(),
    )?;
    let clusters = readiness::clusters(props, &listed.workspaces, &listed.networks);
    let first_warnings = readiness::check(
        cx.ec2,
        props,
        cx.endpoints,
        clusters.clone(),
        listed.endpoint_ingress.clone(),
        checks_end(cx.deadline),
    )
    .await?;
    let first_checked = Instant::now();
    networks::warn_left_switched(cx.key, props, &listed.networks);
    let foreign_allowed = foreign_allowed(props, &listed.registrations)?;
    Ok(Checked {
        vpc_id,
        clusters,
        first_warnings,
        first_checked,
        foreign_allowed,
    })
}

/// Foreign endpoints allowed with ENDPOINT access must already be registered: this resource
/// never registers, owns or deletes them. Their registration ids.
fn foreign_allowed(
    props: &Properties,
    registrations: &[VpcEndpoint],
) -> Result<Vec<String>, ResourceError> {
    let mut foreign_allowed = Vec::new();
    for vpce in &props.allowed_vpc_endpoint_ids {
        if props.endpoints.contains(vpce) {
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
    Ok(foreign_allowed)
}

/// The two endpoints registered (adopted or created) side by side, then waited for until
/// Databricks accepts both. Their registration ids.
async fn register_endpoints(
    cx: &Context<'_>,
    listed: &Listed,
) -> Result<EndpointPair<String>, ResourceError> {
    let (client, key, props, created) = (cx.client, cx.key, cx.props, cx.created);
    let registrations = &listed.registrations;
    cx.progress
        .step("registering the two VPC endpoints with Databricks");
    let [rest, relay] = props
        .endpoints
        .with_roles()
        .map(|(role, vpce)| Endpoint { vpce, role });
    let (rest_registration, relay_registration) = try_join(
        ensure_registration(client, key, props, &rest, registrations, created),
        ensure_registration(client, key, props, &relay, registrations, created),
    )
    .await?;
    let registered = EndpointPair {
        rest_api: rest_registration.vpc_endpoint_id.clone(),
        relay: relay_registration.vpc_endpoint_id.clone(),
    };

    cx.progress
        .step("waiting for Databricks to accept the VPC endpoints");
    try_join(
        wait_accepted(client, &rest, rest_registration),
        wait_accepted(client, &relay, relay_registration),
    )
    .await?;
    Ok(registered)
}

/// With `EnablePrivateDns`, private DNS turned on for the endpoints that have it off.
async fn enable_private_dns_where_off(cx: &Context<'_>) -> Result<(), ResourceError> {
    if !cx.props.enable_private_dns {
        return Ok(());
    }
    let off: Vec<&VpcEndpointInfo> = cx
        .endpoints
        .iter()
        .filter(|e| !e.private_dns_enabled)
        .collect();
    if !off.is_empty() {
        cx.progress
            .step("enabling private DNS on the VPC endpoints");
        for e in off {
            enable_private_dns(cx.ec2, &cx.props.region, &e.id, cx.deadline).await?;
        }
    }
    Ok(())
}

/// The private access settings and, when the resource uses any, the network configurations,
/// made side by side. The id of the settings, and the networks to switch the workspaces to.
async fn ensure_access_and_networks(
    cx: &Context<'_>,
    listed: &Listed,
    checked: &Checked,
    registered: &EndpointPair<String>,
) -> Result<(String, Option<networks::Targets>), ResourceError> {
    let (client, key, props, created) = (cx.client, cx.key, cx.props, cx.created);
    cx.progress
        .step("creating or updating the private access settings and network configurations");
    let mut allowed = Vec::new();
    if props.private_access_level == AccessLevel::Endpoint {
        // The resource's own endpoints carry the compute plane's traffic: always allowed.
        allowed = registered.iter().cloned().collect();
        allowed.extend(checked.foreign_allowed.iter().cloned());
    }
    let desired = DesiredAccess {
        region: props.region.clone(),
        public_access_enabled: props.public_access_enabled,
        level: props.private_access_level,
        allowed_vpc_endpoint_ids: allowed,
    };
    let uses_networks = props.network.is_some()
        || !props.workspace_ids.is_empty()
        || listed.networks.iter().any(|n| owns_network(key, n));
    // The networks need only the registrations, the switch needs both: PAS and networks are
    // made side by side.
    try_join(
        ensure_access_settings(
            client,
            key,
            &props.name_prefix,
            &desired,
            &listed.access_settings,
            created,
        ),
        async {
            if uses_networks {
                networks::ensure_networks(
                    client,
                    key,
                    props,
                    &checked.vpc_id,
                    registered,
                    &listed.workspaces,
                    &listed.networks,
                    created,
                )
                .await
                .map(Some)
            } else {
                Ok(None)
            }
        },
    )
    .await
}

/// With networks to switch to: the VPC checked again when the first check is old, the verifier
/// run, and the workspaces switched. What is attached, and the verifier's report when it ran.
async fn switch_workspaces(
    cx: &Context<'_>,
    listed: &Listed,
    checked: Checked,
    pas_id: &str,
    targets: Option<networks::Targets>,
) -> Result<(workspaces::Attached, Option<String>), ResourceError> {
    let Some(targets) = targets else {
        return Ok((workspaces::Attached::default(), None));
    };
    let props = cx.props;
    // Again right before the switch, for what changed while Databricks accepted the
    // endpoints; a check seconds old already says what a new one would.
    let warned = if checked.first_checked.elapsed() < CHECK_AGAIN_AFTER {
        cx.progress.step("switching the workspaces");
        checked.first_warnings
    } else {
        cx.progress
            .step("checking the VPC again and switching the workspaces");
        // Read anew: the first reading is over 10 s old, and a rule may have changed.
        readiness::check(
            cx.ec2,
            props,
            cx.endpoints,
            checked.clusters,
            None,
            checks_end(cx.deadline),
        )
        .await?
    };
    let verification_report =
        verification::before_switch(cx.ec2, cx.functions, props, &listed.workspaces, cx.deadline)
            .await?;
    let attached = workspaces::switch_and_clean(
        cx.client,
        cx.key,
        pas_id,
        &listed.workspaces,
        &listed.networks,
        targets,
    )
    .await
    .map_err(|e| readiness::with_warnings(e, &warned))?;
    Ok((attached, verification_report))
}

/// The registrations this resource owns that it no longer uses, removed side by side.
async fn remove_superseded_registrations(
    cx: &Context<'_>,
    listed: &Listed,
    registered: &EndpointPair<String>,
    attached: &workspaces::Attached,
) -> Result<(), ResourceError> {
    cx.progress.step("removing superseded registrations");
    let superseded: Vec<&VpcEndpoint> = listed
        .registrations
        .iter()
        .filter(|r| owns_registration(cx.key, r))
        .filter(|r| !registered.contains(&r.vpc_endpoint_id))
        .collect();
    futures_util::future::try_join_all(superseded.iter().map(|r| {
        let again = delete::worth_asking_again(
            &listed.networks,
            &attached.removed_network_ids,
            &r.vpc_endpoint_id,
        );
        delete::delete_owned_after(
            cx.client,
            delete::Kind::Registration,
            &r.vpc_endpoint_id,
            again,
        )
    }))
    .await?;
    Ok(())
}

/// The `VerificationReport` of a request whose verifier did not run, and why.
fn not_verified(props: &Properties) -> String {
    if props.verify_function_arn.is_none() {
        "not run: no VerifyFunctionArn".to_string()
    } else {
        "not run: no workspace to switch".to_string()
    }
}

/// The first object `converged` reports that Databricks no longer has (404), if any. Nothing
/// but a Delete for this resource removes them, so one gone at the end of a Create means a Delete
/// ran meanwhile. Any other error proves nothing: it is logged and the check moves on.
pub async fn vanished(client: &AccountClient, converged: &Converged) -> Option<String> {
    let mut objects = vec![
        (
            delete::Kind::Registration,
            &converged.registrations.rest_api,
        ),
        (delete::Kind::Registration, &converged.registrations.relay),
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
