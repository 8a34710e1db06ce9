//! Workspace attachment: the step that actually ends `BOOTSTRAP_TIMEOUT`. A workspace only uses
//! the endpoints once a network configuration lists them under `vpc_endpoints` and the workspace
//! points at that network and at the private access settings. The workspaces are checked before
//! any write, re-pointed when their network changes, and the superseded networks removed once
//! nothing uses them. PrivateLink cannot be
//! removed from a workspace, so nothing here ever switches a workspace back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;

use crate::databricks::{AccountClient, Network, Workspace, WorkspaceStatus, WorkspaceUpdate};

use super::delete;
use super::error::ResourceError;
use super::names::{OwnershipKey, epoch_ms};
use super::networks::{NetworkParts, Targets, check_network_parts, judge_networks};
use super::ownership::owns_network;
use super::properties::Properties;

/// Workspaces switched at once: enough to overlap their polling, few enough not to trip the
/// account API's rate limit.
const CONCURRENT_SWITCHES: usize = 4;

/// What the stack reads back about networks and workspaces.
#[derive(Clone, Debug, Default)]
pub struct Attached {
    pub network_id: Option<String>,
    pub workspace_ids: Vec<i64>,
    /// Epoch milliseconds after which clusters can be launched; `None` when no workspace uses
    /// the endpoints, so there is nothing to wait for (and the answer stays the same for
    /// duplicate deliveries instead of carrying the time of each).
    pub ready_after_ms: Option<i64>,
    /// Whether this request switched a workspace (a switch the next 20 minutes propagate), not
    /// only found them switched.
    pub switched_now: bool,
    /// Networks of this resource that this request deleted (not those kept in use): only these
    /// can explain a superseded registration refused as in use.
    pub removed_network_ids: Vec<String>,
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
    let mut problems = network_property_problems(props, vpc_id, networks, parts);
    for id in &props.workspace_ids {
        problems.extend(workspace_problems(props, vpc_id, *id, workspaces, networks));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ResourceError::Workspaces(problems))
    }
}

/// The `Network` property against EC2 and the account: its parts (in-use ones only logged) and
/// its VPC, which must be the endpoints'.
fn network_property_problems(
    props: &Properties,
    vpc_id: &str,
    networks: &[Network],
    parts: Option<&NetworkParts>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let (Some(spec), Some(parts)) = (&props.network, parts) {
        let checked = check_network_parts(spec, vpc_id, parts, networks, &props.workspace_ids);
        for warning in &checked.warnings {
            tracing::warn!(%warning, "the Network property's subnets or security groups are in use");
        }
        problems.extend(checked.problems);
    }
    if let Some(spec) = &props.network
        && let Some(v) = spec.vpc_id.as_deref().filter(|v| *v != vpc_id)
    {
        problems.push(format!(
                "Network.VpcId {v} is not the VPC of the endpoints ({vpc_id}): the network configuration must be the VPC the endpoints are in"
            ));
    }
    problems
}

/// Why workspace `id` cannot be switched, if anything: not in the account, serverless, in
/// another region, without a customer-managed VPC, in another VPC, or not running.
fn workspace_problems(
    props: &Properties,
    vpc_id: &str,
    id: i64,
    workspaces: &[Workspace],
    networks: &[Network],
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(ws) = workspaces.iter().find(|w| w.workspace_id == id) else {
        problems.push(format!(
            "workspace {id} is not in Databricks account {}",
            props.target.account_id
        ));
        return problems;
    };
    if ws
        .compute_mode
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("SERVERLESS"))
    {
        problems.push(format!(
            "workspace {id} is serverless: it has no network of its own, so back-end PrivateLink does not apply"
        ));
        return problems;
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
        return problems;
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
                .map(|m| format!(" ({})", crate::text::shorten(m, 200)))
                .unwrap_or_default()
        )),
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
    let switches = pending_switches(workspaces, &targets, pas_id);
    let warnings = judge_networks_before_switch(client, &switches).await?;
    let results = run_switches(client, workspaces, &switches, pas_id).await;
    refuse_failed_switches(&results, &switches, &warnings)?;
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
    let removed_network_ids = remove_stale_networks(client, key, networks, &wanted).await?;
    let switched_now = !results.is_empty();
    let ready_after_ms = ready_after(switched_now, &targets, networks, &wanted);
    Ok(Attached {
        network_id: shared,
        workspace_ids: targets.iter().map(|(id, _)| *id).collect(),
        ready_after_ms,
        switched_now,
        removed_network_ids,
    })
}

/// The workspaces (with their target network) not yet on their target network and the
/// private access settings.
fn pending_switches(
    workspaces: &[Workspace],
    targets: &[(i64, String)],
    pas_id: &str,
) -> Vec<(i64, String)> {
    targets
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
        .collect()
}

/// Databricks' verdict on each network is read fresh, right before the switch, and a broken
/// one refuses every switch: nothing is switched yet, and a switch cannot be undone. Returns
/// Databricks' warnings by network id.
async fn judge_networks_before_switch(
    client: &AccountClient,
    switches: &[(i64, String)],
) -> Result<BTreeMap<String, Vec<String>>, ResourceError> {
    let mut users: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (id, network) in switches {
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
    judge_networks(&judged)
}

/// Switches the workspaces, a few at a time, each to the end of its update.
async fn run_switches(
    client: &AccountClient,
    workspaces: &[Workspace],
    switches: &[(i64, String)],
    pas_id: &str,
) -> Vec<(i64, Result<(), String>)> {
    futures_util::stream::iter(switches.iter().cloned())
        .map(|(id, network)| {
            let was_failed = workspaces
                .iter()
                .any(|w| w.workspace_id == id && w.status() == WorkspaceStatus::Failed);
            async move { (id, switch(client, id, &network, pas_id, was_failed).await) }
        })
        .buffer_unordered(CONCURRENT_SWITCHES)
        .collect()
        .await
}

/// One failed switch fails the request, naming the switched workspaces too (a switch cannot be
/// undone) and, for a failed one, what Databricks warned about its network.
fn refuse_failed_switches(
    results: &[(i64, Result<(), String>)],
    switches: &[(i64, String)],
    warnings: &BTreeMap<String, Vec<String>>,
) -> Result<(), ResourceError> {
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
    if failed.is_empty() {
        return Ok(());
    }
    let switched: Vec<String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| id.to_string())
        .collect();
    Err(ResourceError::SwitchFailed { switched, failed })
}

/// Deletes this resource's networks not in `wanted`; returns the ids of those deleted (one
/// still in use is kept).
async fn remove_stale_networks(
    client: &AccountClient,
    key: &OwnershipKey,
    networks: &[Network],
    wanted: &BTreeSet<&str>,
) -> Result<Vec<String>, ResourceError> {
    let stale: Vec<&Network> = networks
        .iter()
        .filter(|n| owns_network(key, n) && !wanted.contains(n.network_id.as_str()))
        .collect();
    let removals = futures_util::future::try_join_all(
        stale
            .iter()
            .map(|n| delete::delete_owned(client, delete::Kind::Network, &n.network_id)),
    )
    .await?;
    Ok(stale
        .iter()
        .zip(&removals)
        .filter(|(_, removal)| **removal != delete::Removal::KeptInUse)
        .map(|(n, _)| n.network_id.clone())
        .collect())
}

/// Epoch milliseconds after which clusters can be launched: the propagation after a switch made
/// now, after the newest network in use otherwise; `None` when no workspace is targeted.
fn ready_after(
    switched_now: bool,
    targets: &[(i64, String)],
    networks: &[Network],
    wanted: &BTreeSet<&str>,
) -> Option<i64> {
    let now = epoch_ms() as i64;
    if switched_now {
        Some(now + super::ready::propagation().as_millis() as i64)
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
            .map_or(now, |ms| {
                ms + super::ready::propagation().as_millis() as i64
            })
            .into()
    }
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
                crate::text::shorten(
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resource::tests::network;

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
}
