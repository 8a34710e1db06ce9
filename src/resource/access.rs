//! The private access settings: one object per resource, created or replaced in place (a full
//! `PUT`), with duplicates from concurrent deliveries resolved to the oldest.

use crate::databricks::{AccountClient, PrivateAccessSettings, PrivateAccessSettingsRequest};

use super::create::create_once;
use super::delete::{self, Created};
use super::error::ResourceError;
use super::names::{OwnershipKey, Role, epoch_ms};
use super::ownership::owns_access_settings;
use super::properties::AccessLevel;

/// What the private access settings should say, whatever their name: the level stays an enum
/// until the request is built.
#[derive(Clone, Debug)]
pub struct DesiredAccess {
    pub region: String,
    pub public_access_enabled: bool,
    pub level: AccessLevel,
    pub allowed_vpc_endpoint_ids: Vec<String>,
}

impl DesiredAccess {
    fn request(&self, name: String) -> PrivateAccessSettingsRequest {
        PrivateAccessSettingsRequest {
            private_access_settings_name: name,
            region: self.region.clone(),
            public_access_enabled: self.public_access_enabled,
            private_access_level: self.level.as_api().to_string(),
            allowed_vpc_endpoint_ids: self.allowed_vpc_endpoint_ids.clone(),
        }
    }
}

/// One private access settings object per resource. Names are not unique in Databricks, so two
/// deliveries of the same Create running at once can both create one. Each creator stamps the
/// name with its clock; after creating, it lists again and, if an older owned object exists,
/// removes its own and uses that one. The oldest wins everywhere, so every delivery gives the
/// same answer without a sleep.
pub async fn ensure_access_settings(
    client: &AccountClient,
    key: &OwnershipKey,
    prefix: &str,
    desired: &DesiredAccess,
    known: &[PrivateAccessSettings],
    created: &Created,
) -> Result<String, ResourceError> {
    let mine = owned_oldest_first(key, known);
    let winner = match mine.iter().find(|p| in_region(p, desired)) {
        Some(current) => replace_if_changed(client, key, prefix, desired, current).await?,
        None => create_and_resolve_duplicates(client, key, prefix, desired, created).await?,
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

/// This resource's private access settings, the oldest (by the stamp in its name) first.
fn owned_oldest_first(
    key: &OwnershipKey,
    list: &[PrivateAccessSettings],
) -> Vec<PrivateAccessSettings> {
    let mut v: Vec<PrivateAccessSettings> = list
        .iter()
        .filter(|p| owns_access_settings(key, p))
        .cloned()
        .collect();
    v.sort_by_key(|p| {
        (
            key.stamp(
                p.private_access_settings_name.as_deref(),
                Role::AccessSettings,
            )
            .unwrap_or(0),
            p.private_access_settings_id.clone(),
        )
    });
    v
}

/// A PAS is region-specific; a region change is a new object (whether PUT may change the
/// region is unconfirmed: `docs/account-api.md#private-access-settings`).
fn in_region(p: &PrivateAccessSettings, desired: &DesiredAccess) -> bool {
    p.region.as_deref() == Some(desired.region.as_str())
}

/// The existing settings, replaced in place (a full `PUT`, its name's stamp kept) when they do
/// not say what is desired; returns their id.
async fn replace_if_changed(
    client: &AccountClient,
    key: &OwnershipKey,
    prefix: &str,
    desired: &DesiredAccess,
    current: &PrivateAccessSettings,
) -> Result<String, ResourceError> {
    let role = Role::AccessSettings;
    let stamp = key.stamp(current.private_access_settings_name.as_deref(), role);
    let name = match stamp {
        Some(stamp) => key.stamped_name(prefix, role, stamp),
        None => key.object_name(prefix, role),
    };
    if !matches_desired(current, desired, &name) {
        let want = desired.request(name);
        client
            .replace_private_access_settings(&current.private_access_settings_id, &want)
            .await?;
        tracing::info!(pas = %current.private_access_settings_id, "replaced private access settings");
    }
    Ok(current.private_access_settings_id.clone())
}

/// Creates the settings under a stamped name, then lists again: when a concurrent delivery's
/// are older, this one's are removed and those used. Returns the id that wins.
async fn create_and_resolve_duplicates(
    client: &AccountClient,
    key: &OwnershipKey,
    prefix: &str,
    desired: &DesiredAccess,
    created: &Created,
) -> Result<String, ResourceError> {
    let want = desired.request(key.stamped_name(prefix, Role::AccessSettings, epoch_ms()));
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
    let now = owned_oldest_first(key, &client.list_private_access_settings().await?);
    match now.iter().find(|p| in_region(p, desired)) {
        Some(oldest) if oldest.private_access_settings_id != new.private_access_settings_id => {
            tracing::info!(pas = %oldest.private_access_settings_id, "a concurrent delivery created the private access settings first; using those");
            delete::delete_owned(
                client,
                delete::Kind::AccessSettings,
                &new.private_access_settings_id,
            )
            .await?;
            Ok(oldest.private_access_settings_id.clone())
        }
        _ => Ok(new.private_access_settings_id),
    }
}

fn matches_desired(current: &PrivateAccessSettings, desired: &DesiredAccess, name: &str) -> bool {
    let mut current_allowed = current.allowed_vpc_endpoint_ids.clone().unwrap_or_default();
    let mut desired_allowed = desired.allowed_vpc_endpoint_ids.clone();
    current_allowed.sort();
    desired_allowed.sort();
    current.private_access_settings_name.as_deref() == Some(name)
        && current.public_access_enabled == Some(desired.public_access_enabled)
        // A missing level is the default, ACCOUNT.
        && current
            .private_access_level
            .as_deref()
            .map_or(Some(AccessLevel::Account), AccessLevel::from_api)
            == Some(desired.level)
        && current_allowed == desired_allowed
}
