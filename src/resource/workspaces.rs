//! Network configurations and workspace attachment: the step that actually ends
//! `BOOTSTRAP_TIMEOUT`. A workspace only uses the endpoints once a network configuration lists
//! them under `vpc_endpoints` and the workspace points at that network and at the private access
//! settings. Networks are immutable in Databricks, so a change is a new network, the workspaces
//! re-pointed to it, and the superseded one removed once nothing uses it. PrivateLink cannot be
//! removed from a workspace, so nothing here ever switches a workspace back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;

use crate::databricks::{
    AccountClient, CreateNetwork, Network, NetworkStatus, NetworkVpcEndpoints, Workspace,
    WorkspaceStatus, WorkspaceUpdate,
};

use crate::aws::{SecurityGroupInfo, SubnetInfo};

use super::converge::Created;
use super::delete;
use super::error::ResourceError;
use super::names::{OwnershipKey, Role};
use super::properties::{NetworkSpec, Properties};

/// Workspaces switched at once: enough to overlap their polling, few enough not to trip the
/// account API's rate limit.
const CONCURRENT_SWITCHES: usize = 4;
/// Databricks: "you cannot use or create clusters for another 20 minutes" after the switch
/// (`docs/account-api.md#propagation-and-the-20-minute-rule`).
const PROPAGATION: Duration = Duration::from_secs(20 * 60);

/// What the stack reads back about networks and workspaces.
#[derive(Clone, Debug, Default)]
pub struct Attached {
    pub network_id: Option<String>,
    pub workspace_ids: Vec<i64>,
    /// Epoch milliseconds after which clusters can be launched; `None` when no workspace uses
    /// the endpoints, so there is nothing to wait for (and the answer stays the same for
    /// duplicate deliveries instead of carrying the time of each).
    pub ready_after_ms: Option<i64>,
}

/// The endpoints as Databricks knows them, for the networks that carry them.
pub struct Registrations<'a> {
    pub rest_api: &'a str,
    pub relay: &'a str,
}

/// The `Network` property's subnets and security groups as EC2 describes them.
pub struct NetworkParts {
    pub subnets: Vec<SubnetInfo>,
    pub security_groups: Vec<SecurityGroupInfo>,
}

/// Everything about the workspaces and the `Network` property that can be checked before any
/// Databricks write; every problem in one reason.
pub fn check(
    props: &Properties,
    vpc_id: &str,
    workspaces: &[Workspace],
    networks: &[Network],
    parts: Option<&NetworkParts>,
) -> Result<(), ResourceError> {
    let mut problems = Vec::new();
    if let (Some(spec), Some(parts)) = (&props.network, parts) {
        problems.extend(check_network_parts(
            spec,
            vpc_id,
            parts,
            networks,
            &props.workspace_ids,
        ));
    }
    if let Some(spec) = &props.network
        && let Some(v) = spec.vpc_id.as_deref().filter(|v| *v != vpc_id)
    {
        problems.push(format!(
                "Network.VpcId {v} is not the VPC of the endpoints ({vpc_id}): the network configuration must be the VPC the endpoints are in"
            ));
    }
    for id in &props.workspace_ids {
        let Some(ws) = workspaces.iter().find(|w| w.workspace_id == *id) else {
            problems.push(format!(
                "workspace {id} is not in Databricks account {}",
                props.target.account_id
            ));
            continue;
        };
        if ws
            .compute_mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("SERVERLESS"))
        {
            problems.push(format!(
                "workspace {id} is serverless: it has no network of its own, so back-end PrivateLink does not apply"
            ));
            continue;
        }
        if let Some(region) = ws.aws_region.as_deref().filter(|r| *r != props.region) {
            problems.push(format!(
                "workspace {id} is in {region}, the endpoints in {}: private access settings only serve workspaces of their region",
                props.region
            ));
        }
        let Some(network_id) = ws.network_id.as_deref() else {
            problems.push(format!(
                "workspace {id} does not run in a customer-managed VPC (it has no network configuration): back-end PrivateLink needs one"
            ));
            continue;
        };
        match networks.iter().find(|n| n.network_id == network_id) {
            Some(n) if n.vpc_id.as_deref() != Some(vpc_id) => problems.push(format!(
                "workspace {id} runs in VPC {}, but the endpoints are in {vpc_id}: the endpoints must be in the workspace's VPC",
                n.vpc_id.as_deref().unwrap_or("(unknown)")
            )),
            Some(_) => {}
            None => problems.push(format!(
                "workspace {id} uses network configuration {network_id}, which is not in the account"
            )),
        }
        match ws.status() {
            // Databricks documents that a failed workspace's network can be updated to add
            // PrivateLink (together with private access settings); it is provisioned again.
            WorkspaceStatus::Running | WorkspaceStatus::Failed => {}
            other => problems.push(format!(
                "workspace {id} is {}, not RUNNING or FAILED: only a running workspace, or a failed one (which Databricks provisions again), can be switched{}",
                status_name(&other),
                ws.workspace_status_message
                    .as_deref()
                    .map(|m| format!(" ({})", crate::cfn::shorten(m, 200)))
                    .unwrap_or_default()
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ResourceError::Workspaces(problems))
    }
}

/// The `Network` property against EC2 and against the account's other workspaces: subnets and
/// security groups exist and are in the endpoints' VPC, the subnets span two availability zones
/// (Terraform's mws_networks docs), and none is used by another workspace's network (the SDKs'
/// workspace Create docs: subnets and security groups cannot be reused between workspaces).
pub fn check_network_parts(
    spec: &NetworkSpec,
    vpc_id: &str,
    parts: &NetworkParts,
    networks: &[Network],
    workspace_ids: &[i64],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut zones = BTreeSet::new();
    for id in &spec.subnet_ids {
        match parts.subnets.iter().find(|s| &s.id == id) {
            None => problems.push(format!(
                "Network.SubnetIds: subnet {id} does not exist in the endpoints' region"
            )),
            Some(s) if s.vpc_id != vpc_id => problems.push(format!(
                "Network.SubnetIds: subnet {id} is in VPC {}, not in the endpoints' VPC {vpc_id}",
                s.vpc_id
            )),
            Some(s) => {
                zones.insert(s.availability_zone.as_str());
            }
        }
    }
    if zones.len() == 1 && problems.is_empty() {
        problems.push(format!(
            "Network.SubnetIds are all in availability zone {}: Databricks needs subnets in at least two availability zones",
            zones.iter().next().copied().unwrap_or_default()
        ));
    }
    for id in &spec.security_group_ids {
        match parts.security_groups.iter().find(|g| &g.id == id) {
            None => problems.push(format!(
                "Network.SecurityGroupIds: security group {id} does not exist in the endpoints' region"
            )),
            Some(g) if g.vpc_id != vpc_id => problems.push(format!(
                "Network.SecurityGroupIds: security group {id} is in VPC {}, not in the endpoints' VPC {vpc_id}",
                g.vpc_id
            )),
            Some(_) => {}
        }
    }
    for other in networks {
        let Some(user) = other.workspace_id.filter(|w| !workspace_ids.contains(w)) else {
            continue;
        };
        let shared: Vec<&String> = spec
            .subnet_ids
            .iter()
            .filter(|s| other.subnet_ids.contains(s))
            .chain(
                spec.security_group_ids
                    .iter()
                    .filter(|g| other.security_group_ids.contains(g)),
            )
            .collect();
        if !shared.is_empty() {
            problems.push(format!(
                "Network: {} already used by network configuration {} of workspace {user}: Databricks does not let subnets or security groups be shared between workspaces",
                shared
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
                    + if shared.len() == 1 { " is" } else { " are" },
                other.network_id
            ));
        }
    }
    problems
}

fn status_name(status: &WorkspaceStatus) -> String {
    match status {
        WorkspaceStatus::Running => "RUNNING".into(),
        WorkspaceStatus::Provisioning => "PROVISIONING".into(),
        WorkspaceStatus::NotProvisioned => "NOT_PROVISIONED".into(),
        WorkspaceStatus::Failed => "FAILED".into(),
        WorkspaceStatus::Banned => "BANNED".into(),
        WorkspaceStatus::Cancelling => "CANCELLING".into(),
        WorkspaceStatus::Other(s) => s.clone(),
    }
}

/// Workspaces on one of this resource's networks that `WorkspaceIds` no longer lists, with that
/// network: they stay switched, since PrivateLink cannot be removed from a workspace.
pub fn left_switched(
    key: &OwnershipKey,
    workspace_ids: &[i64],
    networks: &[Network],
) -> Vec<(i64, String)> {
    networks
        .iter()
        .filter(|n| owns_network(key, n))
        .filter_map(|n| n.workspace_id.map(|ws| (ws, n.network_id.clone())))
        .filter(|(ws, _)| !workspace_ids.contains(ws))
        .collect()
}

/// Says, at warning level, which workspaces stay switched although `WorkspaceIds` dropped them.
pub fn warn_left_switched(key: &OwnershipKey, props: &Properties, networks: &[Network]) {
    for (workspace, network) in left_switched(key, &props.workspace_ids, networks) {
        tracing::warn!(
            workspace,
            network = %network,
            "workspace {workspace} is no longer in WorkspaceIds but stays switched to back-end PrivateLink on network configuration {network}: PrivateLink cannot be removed from a workspace, so the network, the private access settings and the registrations it uses are kept"
        );
    }
}

/// Whether `network` is one of this resource's networks, of either kind.
pub fn owns_network(key: &OwnershipKey, network: &Network) -> bool {
    let name = network.network_name.as_deref();
    key.owns(name, Role::Network)
        || network
            .workspace_id
            .is_some_and(|id| key.owns(name, Role::WorkspaceNetwork(id)))
        || name.is_some_and(|n| {
            // A copy not attached (yet): its workspace id is only in the name.
            n.rsplit_once("-ws")
                .and_then(|(_, rest)| rest.split('-').next())
                .and_then(|id| id.parse::<i64>().ok())
                .is_some_and(|id| key.owns(name, Role::WorkspaceNetwork(id)))
        })
}

/// The networks the workspaces should use, built before the private access settings are known
/// (they only need the registrations), so both are made in the same round trips.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// The network from the `Network` property, if any.
    pub shared: Option<String>,
    /// Each listed workspace with the network it should use.
    pub workspaces: Vec<(i64, String)>,
}

/// Finds or creates the networks: the shared one, or for each workspace a copy of its own with
/// the endpoints added, so nothing about its cluster subnets changes. Independent networks are
/// made together.
#[allow(clippy::too_many_arguments)]
pub async fn ensure_networks(
    client: &AccountClient,
    key: &OwnershipKey,
    props: &Properties,
    vpc_id: &str,
    registrations: &Registrations<'_>,
    workspaces: &[Workspace],
    networks: &[Network],
    created: &Created,
) -> Result<Targets, ResourceError> {
    let endpoints = NetworkVpcEndpoints {
        rest_api: vec![registrations.rest_api.to_string()],
        dataplane_relay: vec![registrations.relay.to_string()],
    };
    let listed: Vec<&Workspace> = props
        .workspace_ids
        .iter()
        .filter_map(|id| workspaces.iter().find(|w| w.workspace_id == *id))
        .collect();
    if let Some(spec) = &props.network {
        let desired = CreateNetwork {
            network_name: String::new(),
            vpc_id: vpc_id.to_string(),
            subnet_ids: spec.subnet_ids.clone(),
            security_group_ids: spec.security_group_ids.clone(),
            vpc_endpoints: endpoints,
        };
        let shared = ensure_network(
            client,
            key,
            &props.name_prefix,
            Role::Network,
            desired,
            networks,
            created,
        )
        .await?;
        let targets = listed
            .iter()
            .map(|ws| (ws.workspace_id, shared.clone()))
            .collect();
        return Ok(Targets {
            shared: Some(shared),
            workspaces: targets,
        });
    }
    let copies = listed.iter().map(|ws| {
        let id = ws.workspace_id;
        let current = ws
            .network_id
            .as_deref()
            .and_then(|nid| networks.iter().find(|n| n.network_id == nid));
        let endpoints = endpoints.clone();
        async move {
            let current = current.ok_or_else(|| {
                ResourceError::Workspaces(vec![format!(
                    "workspace {id} has no network configuration"
                )])
            })?;
            let desired = CreateNetwork {
                network_name: String::new(),
                vpc_id: current.vpc_id.clone().unwrap_or_else(|| vpc_id.to_string()),
                subnet_ids: current.subnet_ids.clone(),
                security_group_ids: current.security_group_ids.clone(),
                vpc_endpoints: endpoints,
            };
            let role = Role::WorkspaceNetwork(id);
            let network = ensure_network(
                client,
                key,
                &props.name_prefix,
                role,
                desired,
                networks,
                created,
            )
            .await?;
            Ok::<_, ResourceError>((id, network))
        }
    });
    let workspaces = futures_util::future::try_join_all(copies).await?;
    Ok(Targets {
        shared: None,
        workspaces,
    })
}

/// Switches every workspace that does not use its target network and the private access
/// settings yet, then removes this resource's networks that nothing should use any more.
pub async fn switch_and_clean(
    client: &AccountClient,
    key: &OwnershipKey,
    pas_id: &str,
    workspaces: &[Workspace],
    networks: &[Network],
    targets: Targets,
) -> Result<Attached, ResourceError> {
    let Targets {
        shared,
        workspaces: targets,
    } = targets;
    let switches: Vec<(i64, String)> = targets
        .iter()
        .filter(|(id, network)| {
            workspaces
                .iter()
                .find(|w| w.workspace_id == *id)
                .is_some_and(|ws| {
                    ws.network_id.as_deref() != Some(network.as_str())
                        || ws.private_access_settings_id.as_deref() != Some(pas_id)
                        // A failed workspace already on its target is updated again: the
                        // update is what provisions it again.
                        || ws.status() == WorkspaceStatus::Failed
                })
        })
        .cloned()
        .collect();

    // Databricks' verdict on each network is read fresh, right before the switch, and a broken
    // one refuses every switch: nothing is switched yet, and a switch cannot be undone.
    let mut users: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (id, network) in &switches {
        users.entry(network.as_str()).or_default().push(*id);
    }
    let fresh = futures_util::future::try_join_all(
        users
            .keys()
            .map(|network_id| client.get_network(network_id)),
    )
    .await?;
    let judged: Vec<(Network, Vec<i64>)> = fresh
        .into_iter()
        .map(|n| {
            let ids = users
                .get(n.network_id.as_str())
                .cloned()
                .unwrap_or_default();
            (n, ids)
        })
        .collect();
    let warnings = judge_networks(&judged)?;

    let results: Vec<(i64, Result<(), String>)> =
        futures_util::stream::iter(switches.iter().cloned())
            .map(|(id, network)| {
                let was_failed = workspaces
                    .iter()
                    .any(|w| w.workspace_id == id && w.status() == WorkspaceStatus::Failed);
                async move { (id, switch(client, id, &network, pas_id, was_failed).await) }
            })
            .buffer_unordered(CONCURRENT_SWITCHES)
            .collect()
            .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(id, r)| {
            let e = r.as_ref().err()?;
            let warned = switches
                .iter()
                .find(|(ws, _)| ws == id)
                .and_then(|(_, network)| warnings.get(network.as_str()))
                .map(|w| format!(" (Databricks warned about its network: {})", w.join("; ")))
                .unwrap_or_default();
            Some(format!("{id}: {e}{warned}"))
        })
        .collect();
    if !failed.is_empty() {
        let switched: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| id.to_string())
            .collect();
        return Err(ResourceError::SwitchFailed { switched, failed });
    }
    for (id, _) in &results {
        tracing::info!(workspace = id, "workspace switched to back-end PrivateLink");
    }

    // Networks of this resource that no workspace should use any more; one still in use (a
    // workspace removed from WorkspaceIds cannot be switched back) is kept and logged.
    let wanted: BTreeSet<&str> = targets
        .iter()
        .map(|(_, n)| n.as_str())
        .chain(shared.as_deref())
        .collect();
    let stale = networks
        .iter()
        .filter(|n| owns_network(key, n) && !wanted.contains(n.network_id.as_str()));
    futures_util::future::try_join_all(
        stale.map(|n| delete::delete_owned(client, delete::Kind::Network, &n.network_id)),
    )
    .await?;

    let now = epoch_ms();
    let ready_after_ms = if !results.is_empty() {
        Some(now + PROPAGATION.as_millis() as i64)
    } else if targets.is_empty() {
        None
    } else {
        // Nothing switched now: 20 minutes after the newest network in use was made, which is
        // when its workspaces were switched to it, give or take the seconds between the two.
        networks
            .iter()
            .filter(|n| wanted.contains(n.network_id.as_str()))
            .filter_map(|n| n.creation_time)
            .max()
            .map_or(now, |ms| ms + PROPAGATION.as_millis() as i64)
            .into()
    };
    Ok(Attached {
        network_id: shared,
        workspace_ids: targets.iter().map(|(id, _)| *id).collect(),
        ready_after_ms,
    })
}

/// Refuses networks Databricks calls `BROKEN`, quoting its `error_messages`; logs the
/// `warning_messages` of `WARNED` ones and returns them by network id, for a failure reason.
/// `networks` pairs each network with the workspaces about to be switched to it.
fn judge_networks(
    networks: &[(Network, Vec<i64>)],
) -> Result<BTreeMap<String, Vec<String>>, ResourceError> {
    let mut broken = Vec::new();
    let mut warned = BTreeMap::new();
    for (network, workspaces) in networks {
        let for_workspaces = workspaces
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match network.status() {
            NetworkStatus::Broken => {
                let errors = network.errors();
                let said = if errors.is_empty() {
                    "no error messages".to_string()
                } else {
                    crate::cfn::shorten(&errors.join("; "), 600)
                };
                broken.push(format!(
                    "Databricks reports network configuration {} (for workspace {for_workspaces}) as BROKEN: {said}",
                    network.network_id
                ));
            }
            NetworkStatus::Warned => {
                let warnings = network.warnings();
                tracing::warn!(
                    network = %network.network_id,
                    workspaces = %for_workspaces,
                    // Server text: scrubbed like every other before it reaches a log.
                    warnings = %crate::redact::scrub(&warnings.join("; ")),
                    "Databricks warns about the network configuration the workspaces are switched to"
                );
                warned.insert(network.network_id.clone(), warnings);
            }
            _ => {}
        }
    }
    if broken.is_empty() {
        Ok(warned)
    } else {
        Err(ResourceError::NetworkBroken(broken))
    }
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The owned network with exactly this content, created if there is none. Names are not unique
/// in Databricks: as for the private access settings, concurrent creators agree on the oldest.
async fn ensure_network(
    client: &AccountClient,
    key: &OwnershipKey,
    prefix: &str,
    role: Role,
    desired: CreateNetwork,
    known: &[Network],
    created_here: &Created,
) -> Result<String, ResourceError> {
    let matching = |list: &[Network]| -> Vec<Network> {
        let mut v: Vec<Network> = list
            .iter()
            .filter(|n| key.owns(n.network_name.as_deref(), role) && same_content(n, &desired))
            .cloned()
            .collect();
        v.sort_by_key(|n| {
            (
                key.stamp(n.network_name.as_deref(), role).unwrap_or(0),
                n.network_id.clone(),
            )
        });
        v
    };
    if let Some(existing) = matching(known).first() {
        return Ok(existing.network_id.clone());
    }
    let request = CreateNetwork {
        network_name: key.stamped_name(prefix, role, epoch_ms().max(0) as u64),
        ..desired.clone()
    };
    let created = super::converge::create_once(
        client,
        "create network",
        || client.create_network(&request),
        // The stamped name is this request's own: a network with it is the one it made.
        || async {
            Ok(client
                .list_networks()
                .await?
                .into_iter()
                .find(|n| n.network_name.as_deref() == Some(request.network_name.as_str())))
        },
    )
    .await?;
    created_here.network(&created.network_id);
    tracing::info!(network = %created.network_id, "created network configuration with both endpoints");
    let now = matching(&client.list_networks().await?);
    match now.first() {
        Some(oldest) if oldest.network_id != created.network_id => {
            delete::delete_owned(client, delete::Kind::Network, &created.network_id).await?;
            Ok(oldest.network_id.clone())
        }
        _ => Ok(created.network_id),
    }
}

fn same_content(network: &Network, desired: &CreateNetwork) -> bool {
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
    let endpoints = network.vpc_endpoints.clone().unwrap_or_default();
    network.vpc_id.as_deref() == Some(desired.vpc_id.as_str())
        && set(&network.subnet_ids) == set(&desired.subnet_ids)
        && set(&network.security_group_ids) == set(&desired.security_group_ids)
        && set(&endpoints.rest_api) == set(&desired.vpc_endpoints.rest_api)
        && set(&endpoints.dataplane_relay) == set(&desired.vpc_endpoints.dataplane_relay)
}

/// How long a workspace that was `FAILED` before its update may still read `FAILED` before
/// `PROVISIONING` shows: the first reads after the update can predate it.
const FAILED_BEFORE_GRACE: Duration = Duration::from_secs(30);

/// What one read of a workspace being switched means.
#[derive(Debug, PartialEq, Eq)]
enum SwitchRead {
    Wait,
    Done,
    Failed(String),
}

/// The rule of the switch loop: `RUNNING` ends it; `FAILED` or `BANNED` fails it, except that a
/// workspace that was `FAILED` before the update is given time to show `PROVISIONING` first.
fn judge_switch_read(
    ws: &Workspace,
    was_failed: bool,
    seen_provisioning: bool,
    in_grace: bool,
) -> SwitchRead {
    match ws.status() {
        WorkspaceStatus::Running => SwitchRead::Done,
        WorkspaceStatus::Failed if was_failed && !seen_provisioning && in_grace => SwitchRead::Wait,
        status @ (WorkspaceStatus::Failed | WorkspaceStatus::Banned) => {
            let how = if was_failed && !seen_provisioning {
                "stayed"
            } else {
                "went"
            };
            SwitchRead::Failed(format!(
                "the workspace {how} {}: {}",
                status_name(&status),
                crate::cfn::shorten(
                    ws.workspace_status_message
                        .as_deref()
                        .unwrap_or("no status message"),
                    300
                )
            ))
        }
        _ => SwitchRead::Wait,
    }
}

/// One `PATCH` with both ids, then reads until `RUNNING` (a failed workspace passes through
/// `PROVISIONING`). The read that sees `RUNNING` also confirms both ids took: Databricks
/// documents that a failed update may revert silently.
async fn switch(
    client: &AccountClient,
    id: i64,
    network_id: &str,
    pas_id: &str,
    was_failed: bool,
) -> Result<(), String> {
    let update = WorkspaceUpdate {
        network_id: Some(network_id.to_string()),
        private_access_settings_id: Some(pas_id.to_string()),
    };
    client
        .update_workspace(id, &update)
        .await
        .map_err(|e| e.to_string())?;
    if was_failed {
        tracing::info!(
            workspace = id,
            "the workspace was FAILED; Databricks provisions it again with the new network"
        );
    }
    let grace_ends = tokio::time::Instant::now() + FAILED_BEFORE_GRACE;
    let mut seen_provisioning = false;
    let mut delay = Duration::from_millis(100);
    loop {
        let ws = client.get_workspace(id).await.map_err(|e| e.to_string())?;
        seen_provisioning |= ws.status() == WorkspaceStatus::Provisioning;
        let in_grace = tokio::time::Instant::now() < grace_ends;
        match judge_switch_read(&ws, was_failed, seen_provisioning, in_grace) {
            SwitchRead::Done => {
                if ws.network_id.as_deref() == Some(network_id)
                    && ws.private_access_settings_id.as_deref() == Some(pas_id)
                {
                    return Ok(());
                }
                return Err(format!(
                    "Databricks accepted the update but the workspace reverted silently to network {} and private access settings {}; check the network configuration's errors in the account console",
                    ws.network_id.as_deref().unwrap_or("(none)"),
                    ws.private_access_settings_id.as_deref().unwrap_or("(none)")
                ));
            }
            SwitchRead::Failed(reason) => return Err(reason),
            SwitchRead::Wait => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// ISO 8601 UTC to the second, as `Fn::GetAtt` users read it.
pub fn iso8601(epoch_ms: i64) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_secs(epoch_ms.div_euclid(1000))
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, value: serde_json::Value) -> Network {
        let mut v = value;
        v["network_id"] = serde_json::json!(id);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_broken_network_refuses_every_switch_and_a_warned_one_is_passed_on() {
        let valid = network("n-valid", serde_json::json!({"vpc_status": "VALID"}));
        let warned = network(
            "n-warned",
            serde_json::json!({"vpc_status": "WARNED", "warning_messages": [
                {"warning_type": "subnet", "warning_message": "one availability zone"}]}),
        );
        let broken = network(
            "n-broken",
            serde_json::json!({"vpc_status": "BROKEN", "error_messages": [
                {"error_type": "securityGroup", "error_message": "sg-1 is in another VPC"}]}),
        );
        let warnings =
            judge_networks(&[(valid.clone(), vec![1]), (warned.clone(), vec![2])]).unwrap();
        assert_eq!(
            warnings.get("n-warned"),
            Some(&vec!["subnet: one availability zone".to_string()])
        );
        assert!(!warnings.contains_key("n-valid"));

        let refused = judge_networks(&[(valid, vec![1]), (broken, vec![3, 4]), (warned, vec![2])])
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(
                "Databricks reports network configuration n-broken (for workspace 3, 4) as BROKEN: securityGroup: sg-1 is in another VPC"
            ),
            "{refused}"
        );
        assert!(refused.contains("No workspace was switched"), "{refused}");
        assert!(!refused.contains("n-valid"), "{refused}");
    }

    fn workspace(status: &str, message: &str) -> Workspace {
        serde_json::from_value(serde_json::json!({
            "workspace_id": 7, "workspace_status": status, "workspace_status_message": message,
        }))
        .unwrap()
    }

    #[test]
    fn a_failed_workspace_is_followed_through_provisioning() {
        let failed = workspace("FAILED", "Network validation failed");
        // Right after the update, a read may still show the old FAILED.
        assert_eq!(
            judge_switch_read(&failed, true, false, true),
            SwitchRead::Wait
        );
        assert_eq!(
            judge_switch_read(&workspace("PROVISIONING", ""), true, true, true),
            SwitchRead::Wait
        );
        assert_eq!(
            judge_switch_read(&workspace("RUNNING", ""), true, true, true),
            SwitchRead::Done
        );
        // FAILED after PROVISIONING is the outcome, with Databricks' message.
        assert_eq!(
            judge_switch_read(&failed, true, true, true),
            SwitchRead::Failed("the workspace went FAILED: Network validation failed".into())
        );
        // Never left FAILED within the grace period.
        assert_eq!(
            judge_switch_read(&failed, true, false, false),
            SwitchRead::Failed("the workspace stayed FAILED: Network validation failed".into())
        );
        // A running workspace that goes FAILED fails at once.
        assert_eq!(
            judge_switch_read(&failed, false, false, true),
            SwitchRead::Failed("the workspace went FAILED: Network validation failed".into())
        );
    }

    #[test]
    fn workspaces_dropped_from_the_list_but_on_our_networks_are_named() {
        let key = OwnershipKey::new("arn:aws:cloudformation:us-east-1:1:stack/s/1", "PL");
        let ours = |name: String, ws: Option<i64>| {
            network(
                &format!("n-{name}"),
                serde_json::json!({"network_name": name, "workspace_id": ws}),
            )
        };
        let networks = vec![
            ours(key.stamped_name("p", Role::WorkspaceNetwork(1), 5), Some(1)),
            ours(key.stamped_name("p", Role::WorkspaceNetwork(2), 5), Some(2)),
            ours(key.stamped_name("p", Role::Network, 5), None),
            // Another stack's network, or the workspace's own: not ours to talk about.
            ours("someone-elses-network".into(), Some(3)),
        ];
        let left = left_switched(&key, &[2], &networks);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].0, 1);
        assert!(left_switched(&key, &[1, 2], &networks).is_empty());
    }

    #[test]
    fn network_subnets_and_groups_are_checked_against_ec2_and_other_workspaces() {
        let subnet = |id: &str, vpc: &str, zone: &str| SubnetInfo {
            id: id.into(),
            vpc_id: vpc.into(),
            availability_zone: zone.into(),
        };
        let group = |id: &str, vpc: &str| SecurityGroupInfo {
            id: id.into(),
            vpc_id: vpc.into(),
        };
        let spec = |subnets: &[&str], groups: &[&str]| NetworkSpec {
            vpc_id: None,
            subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
            security_group_ids: groups.iter().map(|s| s.to_string()).collect(),
        };
        let parts = NetworkParts {
            subnets: vec![
                subnet("subnet-a", "vpc-1", "us-east-1a"),
                subnet("subnet-b", "vpc-1", "us-east-1b"),
                subnet("subnet-c", "vpc-1", "us-east-1a"),
                subnet("subnet-x", "vpc-2", "us-east-1b"),
            ],
            security_groups: vec![group("sg-1", "vpc-1"), group("sg-x", "vpc-2")],
        };
        let problems = |s: &NetworkSpec, networks: &[Network], ids: &[i64]| {
            check_network_parts(s, "vpc-1", &parts, networks, ids).join(" | ")
        };
        assert_eq!(
            problems(&spec(&["subnet-a", "subnet-b"], &["sg-1"]), &[], &[]),
            ""
        );
        let wrong = problems(
            &spec(
                &["subnet-a", "subnet-x", "subnet-gone"],
                &["sg-x", "sg-gone"],
            ),
            &[],
            &[],
        );
        for needle in [
            "subnet subnet-x is in VPC vpc-2, not in the endpoints' VPC vpc-1",
            "subnet subnet-gone does not exist",
            "security group sg-x is in VPC vpc-2",
            "security group sg-gone does not exist",
        ] {
            assert!(wrong.contains(needle), "{needle}: {wrong}");
        }
        assert!(
            problems(&spec(&["subnet-a", "subnet-c"], &["sg-1"]), &[], &[])
                .contains("all in availability zone us-east-1a"),
        );

        // Used by another workspace's network: refused; by the listed workspace's own: fine.
        let other = network(
            "n-other",
            serde_json::json!({"workspace_id": 9, "subnet_ids": ["subnet-b", "subnet-q"], "security_group_ids": ["sg-1"]}),
        );
        let shared = problems(
            &spec(&["subnet-a", "subnet-b"], &["sg-1"]),
            std::slice::from_ref(&other),
            &[5],
        );
        assert!(
            shared.contains("Network: subnet-b, sg-1 are already used by network configuration n-other of workspace 9"),
            "{shared}"
        );
        assert_eq!(
            problems(&spec(&["subnet-a", "subnet-b"], &["sg-1"]), &[other], &[9]),
            ""
        );
    }

    #[test]
    fn ready_after_is_iso8601_utc_to_the_second() {
        assert_eq!(iso8601(1_795_696_496_789), "2026-11-26T12:34:56Z");
    }
}
