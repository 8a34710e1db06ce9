//! Delete: converge on nothing. Remove only what the ownership key says this resource owns,
//! treat "already gone" as done and "still in use" as a reason to keep the object (logged), and
//! succeed when nothing can be checked at all because the credentials are unusable. A deleted
//! network is waited for until it is gone, and a refusal that may only mean it is still going
//! away, or a 409 that says nothing, is asked again before the object is kept. Also the record of
//! what one request created (`Created`), so a failed Create removes it again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::Secrets;
use crate::cfn::Progress;
use crate::databricks::{
    AccountClient, ClientCredentials, DatabricksError, DatabricksHttp, Network,
};

use super::error::ResourceError;
use super::names::OwnershipKey;
use super::ownership::{owns_access_settings, owns_network, owns_registration};
use super::properties::LenientTarget;

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Registration,
    AccessSettings,
    Network,
}

impl Kind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Registration => "VPC endpoint registration",
            Kind::AccessSettings => "private access settings",
            Kind::Network => "network configuration",
        }
    }
}

/// What a delete of one object came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    AlreadyGone,
    KeptInUse,
}

/// How long a deleted network may take to disappear: the Terraform provider polls for up to a
/// minute after `DELETE /networks/{id}` before it goes on.
const NETWORK_GONE_WITHIN: Duration = Duration::from_secs(60);

/// Time left at the deadline when asking again about an object refused as in use: those
/// retries never use it up.
const AFTER_WAITING: Duration = Duration::from_secs(10);

/// A `409` that says nothing is asked again this many times before it counts as "in use".
const BARE_CONFLICT_RETRIES: u32 = 3;

/// How long a registration refused as "in use" is asked again while networks that used it are
/// still going away.
const NETWORKS_GOING_PATIENCE: Duration = Duration::from_secs(20);

/// Deletes one owned object: 404 is success, "in use" keeps it with a log line, anything else is
/// an error (the client has already retried what can be retried). A deleted network is waited
/// for until it is gone, so what it referenced can go next.
pub async fn delete_owned(
    client: &AccountClient,
    kind: Kind,
    id: &str,
) -> Result<Removal, DatabricksError> {
    delete_owned_after(client, kind, id, false).await
}

/// As [`delete_owned`]; `networks_going` says that an "in use" refusal may only mean that
/// networks this request deleted are still going away (and none that stays uses the object; see
/// [`worth_asking_again`]): it is asked again for a while before the object is kept.
pub async fn delete_owned_after(
    client: &AccountClient,
    kind: Kind,
    id: &str,
    networks_going: bool,
) -> Result<Removal, DatabricksError> {
    let started = Instant::now();
    let mut bare_conflicts = 0u32;
    let mut delay = Duration::from_millis(250);
    loop {
        let result = match kind {
            Kind::Registration => client.delete_vpc_endpoint(id).await,
            Kind::AccessSettings => client.delete_private_access_settings(id).await,
            Kind::Network => client.delete_network(id).await,
        };
        let retry = match &result {
            Err(e) if e.is_bare_conflict() && bare_conflicts < BARE_CONFLICT_RETRIES => {
                bare_conflicts += 1;
                true
            }
            Err(e) if e.is_in_use() && networks_going => {
                started.elapsed() < NETWORKS_GOING_PATIENCE
            }
            _ => false,
        };
        let left = client
            .deadline()
            .saturating_duration_since(Instant::now())
            .saturating_sub(AFTER_WAITING);
        if retry && left > delay {
            tracing::info!(
                object = kind.describe(),
                id,
                "refused as in use; asking again"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            continue;
        }
        return match result {
            Ok(()) => {
                tracing::info!(object = kind.describe(), id, "deleted");
                if matches!(kind, Kind::Network) {
                    wait_network_gone(client, id).await;
                }
                Ok(Removal::Deleted)
            }
            Err(e) if e.is_not_found() => {
                // An earlier request's DELETE may still be under way: still listed, and still
                // using what it references.
                if matches!(kind, Kind::Network) {
                    wait_network_gone(client, id).await;
                }
                Ok(Removal::AlreadyGone)
            }
            Err(e) if e.is_in_use() => {
                tracing::warn!(object = kind.describe(), id, reason = %e, "kept: still in use");
                Ok(Removal::KeptInUse)
            }
            Err(e) => Err(e),
        };
    }
}

/// Reads the network until Databricks answers 404, within a minute and the deadline. Not gone
/// in time is logged, not an error: what it references is then refused as in use and kept.
async fn wait_network_gone(client: &AccountClient, id: &str) {
    // Up to the deadline: a network left going away would be listed, and could be adopted, by
    // the request that follows (a rollback Update builds the same network again).
    let until = (Instant::now() + NETWORK_GONE_WITHIN).min(client.deadline());
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_network(id).await {
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                tracing::warn!(id, error = %e, "could not confirm that the deleted network is gone");
                return;
            }
            Ok(_) if Instant::now() + delay >= until => {
                tracing::warn!(
                    id,
                    "the deleted network is still listed; going on without waiting longer"
                );
                return;
            }
            Ok(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// For cleanup after a failed Create, where the first error is what the user needs to see.
/// Returns whether the object is gone (deleted now or before).
pub async fn delete_quietly(
    client: &AccountClient,
    kind: Kind,
    id: &str,
    networks_going: bool,
) -> bool {
    match delete_owned_after(client, kind, id, networks_going).await {
        Ok(removal) => removal != Removal::KeptInUse,
        Err(e) => {
            tracing::warn!(object = kind.describe(), id, error = %e, "could not remove an object this request created; the rollback Delete will retry");
            false
        }
    }
}

/// Builds the account client for a Delete, or says why nothing can be checked (`Ok(None)`).
async fn client_for(
    secrets: &Secrets,
    http: &DatabricksHttp,
    key: &OwnershipKey,
    target: &LenientTarget,
    deadline: Instant,
) -> Result<Option<AccountClient>, ResourceError> {
    let (Some(account_id), Some(secret_arn), Some(host)) = (
        &target.account_id,
        &target.credentials_secret_arn,
        &target.account_host,
    ) else {
        // Create validates these before any write, so a Delete without them has nothing to remove.
        tracing::warn!(
            ownership_key = key.as_str(),
            "properties name no usable account, secret or host: nothing was created, nothing to delete"
        );
        return Ok(None);
    };
    let principal = match secrets.service_principal(secret_arn, deadline).await {
        Ok(p) => p,
        Err(e) if e.is_permanent_credentials_problem() => {
            unusable(key, &e.to_string());
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let credentials =
        ClientCredentials::new(principal.client_id.clone(), principal.client_secret.clone());
    match AccountClient::new(http, host, account_id, credentials, deadline) {
        Ok(client) => Ok(Some(client)),
        // A host or account refused here was refused at Create too: nothing was written there.
        Err(e) => {
            tracing::warn!(ownership_key = key.as_str(), error = %e, "the account cannot be reached with these properties: nothing to delete");
            Ok(None)
        }
    }
}

fn unusable(key: &OwnershipKey, why: &str) {
    tracing::error!(
        ownership_key = key.as_str(),
        reason = why,
        "the Databricks credentials are unusable, so nothing could be checked: objects owned by this resource may remain in the account; their names contain cfn{}",
        key.as_str()
    );
}

/// Removes every object the resource owns in the target account.
pub async fn delete_all(
    secrets: &Secrets,
    http: &DatabricksHttp,
    key: &OwnershipKey,
    target: &LenientTarget,
    progress: &Progress,
    deadline: Instant,
) -> Result<(), ResourceError> {
    progress.step("reading the credentials secret");
    let Some(client) = client_for(secrets, http, key, target, deadline).await? else {
        return Ok(());
    };
    match remove_owned(&client, key, progress).await {
        Err(ResourceError::Databricks(e)) if e.is_permanent_credentials() => {
            unusable(key, &e.to_string());
            return Ok(());
        }
        removed => removed?,
    }
    tracing::info!(
        retries = client.retries_spent(),
        "Databricks account API retries spent"
    );
    Ok(())
}

/// Removes every object the resource owns in the account `client` is for. Refused credentials
/// are an error like any other here; the Delete decides what they mean.
pub async fn remove_owned(
    client: &AccountClient,
    key: &OwnershipKey,
    progress: &Progress,
) -> Result<(), ResourceError> {
    progress.step("listing the objects this resource owns");
    let (registrations, access_settings, networks) = tokio::join!(
        client.list_vpc_endpoints(),
        client.list_private_access_settings(),
        client.list_networks()
    );
    let (registrations, access_settings, networks) =
        match (registrations, access_settings, networks) {
            (Ok(r), Ok(p), Ok(n)) => (r, p, n),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(e.into()),
        };

    // Networks and access settings reference the registrations, so they go first, together. A
    // network or settings a workspace uses cannot go (a workspace cannot be switched back), so it
    // and what it references are kept and logged; the network a workspace had before the switch
    // is not ours and never touched.
    progress.step("deleting the network configurations and private access settings");
    let owned_networks = networks
        .iter()
        .filter(|n| owns_network(key, n))
        .map(|n| (Kind::Network, n.network_id.as_str()));
    let owned_pas = access_settings
        .iter()
        .filter(|p| owns_access_settings(key, p))
        .map(|p| (Kind::AccessSettings, p.private_access_settings_id.as_str()));
    let targets: Vec<(Kind, &str)> = owned_networks.chain(owned_pas).collect();
    let removals = futures_util::future::try_join_all(
        targets
            .iter()
            .map(|(kind, id)| delete_owned(client, *kind, id)),
    )
    .await?;
    // Only networks that are going can explain a registration refused as in use; one a
    // workspace uses stays, and so does what it references: asking again would only wait.
    let removed: Vec<String> = targets
        .iter()
        .zip(&removals)
        .filter(|((kind, _), removal)| {
            matches!(kind, Kind::Network) && **removal != Removal::KeptInUse
        })
        .map(|((_, id), _)| (*id).to_owned())
        .collect();

    progress.step("deleting the VPC endpoint registrations");
    let owned_regs = registrations.iter().filter(|r| owns_registration(key, r));
    futures_util::future::try_join_all(owned_regs.map(|r| {
        let again = worth_asking_again(&networks, &removed, &r.vpc_endpoint_id);
        delete_owned_after(client, Kind::Registration, &r.vpc_endpoint_id, again)
    }))
    .await?;
    Ok(())
}

/// Whether a registration refused as in use is worth asking about again: a network this request
/// deleted lists it (Databricks may not have let go of it yet), and no network that stays does
/// (then it is in use for good, and asking again would only wait).
pub fn worth_asking_again(networks: &[Network], removed: &[String], registration_id: &str) -> bool {
    let lists = |n: &Network| {
        n.vpc_endpoints.as_ref().is_some_and(|e| {
            e.rest_api.iter().any(|x| x == registration_id)
                || e.dataplane_relay.iter().any(|x| x == registration_id)
        })
    };
    let (going, staying): (Vec<&Network>, Vec<&Network>) = networks
        .iter()
        .filter(|n| lists(n))
        .partition(|n| removed.contains(&n.network_id));
    !going.is_empty() && staying.is_empty()
}

/// Objects this request created, so a failed Create can remove them before answering.
#[derive(Default)]
pub struct Created {
    registrations: Mutex<Vec<String>>,
    access_settings: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
}

impl Created {
    pub fn registration(&self, id: &str) {
        if let Ok(mut v) = self.registrations.lock() {
            v.push(id.to_string());
        }
    }

    pub fn network(&self, id: &str) {
        if let Ok(mut v) = self.networks.lock() {
            v.push(id.to_string());
        }
    }

    pub fn access_settings(&self, id: &str) {
        if let Ok(mut v) = self.access_settings.lock() {
            v.push(id.to_string());
        }
    }

    /// Best effort: whatever cannot be removed now is still found by the ownership key when
    /// CloudFormation's rollback Delete arrives.
    pub async fn remove(&self, client: &AccountClient) {
        let take = |m: &Mutex<Vec<String>>| m.lock().map(|v| v.clone()).unwrap_or_default();
        // Networks reference registrations; a network a workspace was switched to stays.
        let mut going = false;
        for id in &take(&self.networks) {
            going |= delete_quietly(client, Kind::Network, id, false).await;
        }
        for id in take(&self.access_settings) {
            delete_quietly(client, Kind::AccessSettings, &id, false).await;
        }
        for id in take(&self.registrations) {
            delete_quietly(client, Kind::Registration, &id, going).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, relay: &str) -> Network {
        crate::resource::tests::network(
            id,
            serde_json::json!({"vpc_endpoints": {"rest_api": ["rest"], "dataplane_relay": [relay]}}),
        )
    }

    #[test]
    fn asking_again_helps_only_while_every_network_listing_it_is_going() {
        let networks = [
            network("gone", "old"),
            network("kept", "old"),
            network("other", "new"),
        ];
        let removed = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            !worth_asking_again(&networks, &removed(&["gone"]), "old"),
            "kept still lists it"
        );
        assert!(worth_asking_again(
            &networks,
            &removed(&["gone", "kept"]),
            "old"
        ));
        assert!(
            !worth_asking_again(&networks, &removed(&[]), "old"),
            "nothing is going"
        );
        assert!(!worth_asking_again(
            &networks,
            &removed(&["gone"]),
            "unlisted"
        ));
    }
}
