//! Network configurations: the one from the `Network` property or, for each workspace, a copy
//! of its own with the endpoints added, checked against EC2 and the account's other workspaces.
//! Networks are immutable in Databricks, so a change is a new network.

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::{SecurityGroupInfo, SubnetInfo};
use crate::databricks::{
    AccountClient, CreateNetwork, Network, NetworkStatus, NetworkVpcEndpoints, Workspace,
};

use super::create::create_once;
use super::delete::{self, Created};
use super::error::ResourceError;
use super::names::{OwnershipKey, Role, epoch_ms};
use super::ownership::owns_network;
use super::pair::EndpointPair;
use super::properties::{NetworkSpec, Properties};

/// The `Network` property's subnets and security groups as EC2 describes them.
pub struct NetworkParts {
    pub subnets: Vec<SubnetInfo>,
    pub security_groups: Vec<SecurityGroupInfo>,
}

/// What the check of the `Network` property found: problems refuse the request, warnings are
/// logged.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NetworkCheck {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// The `Network` property against EC2 and against the account's other workspaces: subnets and
/// security groups exist and are in the endpoints' VPC, the subnets span two availability zones
/// (Terraform's mws_networks docs), and none is used by another workspace's network (the SDKs'
/// workspace Create docs: subnets and security groups cannot be reused between workspaces).
///
/// Reuse is refused only when `WorkspaceIds` names a workspace, which then is not the one
/// using them. With `WorkspaceIds` empty (register now, switch later) the network may well be
/// for that very workspace, which a later Update lists: a warning names it instead.
pub fn check_network_parts(
    spec: &NetworkSpec,
    vpc_id: &str,
    parts: &NetworkParts,
    networks: &[Network],
    workspace_ids: &[i64],
) -> NetworkCheck {
    let mut problems = subnet_problems(spec, vpc_id, parts);
    problems.extend(security_group_problems(spec, vpc_id, parts));
    let mut warnings = Vec::new();
    for other in networks {
        let Some(user) = other.workspace_id.filter(|w| !workspace_ids.contains(w)) else {
            continue;
        };
        let Some(used) = shared_with(spec, other, user) else {
            continue;
        };
        if workspace_ids.is_empty() {
            warnings.push(format!(
                "{used}: switch only workspace {user} to this network (a later Update with WorkspaceIds {user}); Databricks does not let subnets or security groups be shared between workspaces"
            ));
        } else {
            problems.push(format!(
                "{used}: Databricks does not let subnets or security groups be shared between workspaces"
            ));
        }
    }
    NetworkCheck { problems, warnings }
}

/// The `Network` subnets that do not exist or are in another VPC, or that all sit in one zone.
fn subnet_problems(spec: &NetworkSpec, vpc_id: &str, parts: &NetworkParts) -> Vec<String> {
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
    problems
}

/// The `Network` security groups that do not exist or are in another VPC.
fn security_group_problems(spec: &NetworkSpec, vpc_id: &str, parts: &NetworkParts) -> Vec<String> {
    let mut problems = Vec::new();
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
    problems
}

/// "Network: ... already used by network configuration ... of workspace `user`" when `other`,
/// the network of workspace `user`, has any of the `Network` subnets or security groups.
fn shared_with(spec: &NetworkSpec, other: &Network, user: i64) -> Option<String> {
    let shared: Vec<&str> = spec
        .subnet_ids
        .iter()
        .filter(|s| other.subnet_ids.contains(s))
        .chain(
            spec.security_group_ids
                .iter()
                .filter(|g| other.security_group_ids.contains(g)),
        )
        .map(String::as_str)
        .collect();
    if shared.is_empty() {
        return None;
    }
    Some(format!(
        "Network: {} already used by network configuration {} of workspace {user}",
        shared.join(", ") + if shared.len() == 1 { " is" } else { " are" },
        other.network_id
    ))
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
    registrations: &EndpointPair<String>,
    workspaces: &[Workspace],
    networks: &[Network],
    created: &Created,
) -> Result<Targets, ResourceError> {
    let endpoints = NetworkVpcEndpoints {
        rest_api: vec![registrations.rest_api.clone()],
        dataplane_relay: vec![registrations.relay.clone()],
    };
    let listed: Vec<&Workspace> = props
        .workspace_ids
        .iter()
        .filter_map(|id| workspaces.iter().find(|w| w.workspace_id == *id))
        .collect();
    let maker = NetworkMaker {
        client,
        key,
        prefix: &props.name_prefix,
        known: networks,
        created,
    };
    match &props.network {
        Some(spec) => ensure_shared_network(&maker, spec, vpc_id, endpoints, &listed).await,
        None => ensure_workspace_copies(&maker, vpc_id, endpoints, &listed).await,
    }
}

/// What every network a request finds or creates shares: the account, the owner, the names'
/// prefix, the account's networks as listed, and the record of what was created.
struct NetworkMaker<'a> {
    client: &'a AccountClient,
    key: &'a OwnershipKey,
    prefix: &'a str,
    known: &'a [Network],
    created: &'a Created,
}

impl NetworkMaker<'_> {
    async fn ensure(&self, role: Role, desired: CreateNetwork) -> Result<String, ResourceError> {
        ensure_network(
            self.client,
            self.key,
            self.prefix,
            role,
            desired,
            self.known,
            self.created,
        )
        .await
    }
}

/// The network from the `Network` property, the one every listed workspace uses.
async fn ensure_shared_network(
    maker: &NetworkMaker<'_>,
    spec: &NetworkSpec,
    vpc_id: &str,
    endpoints: NetworkVpcEndpoints,
    listed: &[&Workspace],
) -> Result<Targets, ResourceError> {
    let desired = CreateNetwork {
        network_name: String::new(),
        vpc_id: vpc_id.to_string(),
        subnet_ids: spec.subnet_ids.clone(),
        security_group_ids: spec.security_group_ids.clone(),
        vpc_endpoints: endpoints,
    };
    let shared = maker.ensure(Role::Network, desired).await?;
    let targets = listed
        .iter()
        .map(|ws| (ws.workspace_id, shared.clone()))
        .collect();
    Ok(Targets {
        shared: Some(shared),
        workspaces: targets,
    })
}

/// For each listed workspace, a copy of its current network with the endpoints added, made
/// side by side.
async fn ensure_workspace_copies(
    maker: &NetworkMaker<'_>,
    vpc_id: &str,
    endpoints: NetworkVpcEndpoints,
    listed: &[&Workspace],
) -> Result<Targets, ResourceError> {
    let copies = listed.iter().map(|ws| {
        let id = ws.workspace_id;
        let current = ws
            .network_id
            .as_deref()
            .and_then(|nid| maker.known.iter().find(|n| n.network_id == nid));
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
            let network = maker.ensure(Role::WorkspaceNetwork(id), desired).await?;
            Ok::<_, ResourceError>((id, network))
        }
    });
    let workspaces = futures_util::future::try_join_all(copies).await?;
    Ok(Targets {
        shared: None,
        workspaces,
    })
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
        network_name: key.stamped_name(prefix, role, epoch_ms()),
        ..desired.clone()
    };
    let created = create_once(
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

/// Refuses networks Databricks calls `BROKEN`, quoting its `error_messages`; logs the
/// `warning_messages` of `WARNED` ones and returns them by network id, for a failure reason.
/// `networks` pairs each network with the workspaces about to be switched to it.
pub fn judge_networks(
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
                    crate::text::shorten(&errors.join("; "), 600)
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resource::tests::network;

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
            check_network_parts(s, "vpc-1", &parts, networks, ids)
                .problems
                .join(" | ")
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
            problems(
                &spec(&["subnet-a", "subnet-b"], &["sg-1"]),
                std::slice::from_ref(&other),
                &[9]
            ),
            ""
        );
        // With no WorkspaceIds the network may be for workspace 9, which a later Update
        // switches: a warning names it, nothing is refused.
        let register_first = check_network_parts(
            &spec(&["subnet-a", "subnet-b"], &["sg-1"]),
            "vpc-1",
            &parts,
            &[other],
            &[],
        );
        assert_eq!(register_first.problems, Vec::<String>::new());
        assert_eq!(register_first.warnings.len(), 1);
        assert!(
            register_first.warnings[0].contains("switch only workspace 9 to this network"),
            "{:?}",
            register_first.warnings
        );
    }
}
