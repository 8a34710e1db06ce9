//! What this resource owns: the one answer, for every kind of object, to "is this one ours?".
//! Everything that adopts, replaces or deletes an object asks here. Ownership lives in the
//! names (see `names`); a registration someone else made is used but never owned.

use crate::databricks::{Network, PrivateAccessSettings, VpcEndpoint};

use super::names::{OwnershipKey, Role};

/// Whether `registration` is one of this resource's two registrations.
pub fn owns_registration(key: &OwnershipKey, registration: &VpcEndpoint) -> bool {
    let name = registration.vpc_endpoint_name.as_deref();
    key.owns(name, Role::RestApi) || key.owns(name, Role::Relay)
}

/// Whether `settings` is this resource's private access settings object (of any region).
pub fn owns_access_settings(key: &OwnershipKey, settings: &PrivateAccessSettings) -> bool {
    key.owns(
        settings.private_access_settings_name.as_deref(),
        Role::AccessSettings,
    )
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
