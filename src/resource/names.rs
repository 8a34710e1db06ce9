//! Identity and ownership: the ownership key derived from `StackId` + `LogicalResourceId`, the
//! PhysicalResourceId derived from it, and the names of the Databricks objects the resource owns.
//!
//! Ownership lives in the names, not in the PhysicalResourceId, so that any later request for the
//! same resource (a duplicate delivery, a rollback, a Delete carrying an id CloudFormation made up
//! after a cancelled Create) finds exactly what the resource owns by listing the account.

use sha2::{Digest, Sha256};

/// Hex digits of the key: 64 bits, so two resources in one account never collide in practice.
const KEY_LEN: usize = 16;
const MARKER: &str = "cfn";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    RestApi,
    Relay,
    AccessSettings,
    /// The network configuration built from the `Network` property.
    Network,
    /// A copy of one workspace's own network configuration with the endpoints added.
    WorkspaceNetwork(i64),
}

impl Role {
    fn suffix(self) -> String {
        match self {
            Role::RestApi => "rest".into(),
            Role::Relay => "relay".into(),
            Role::AccessSettings => "pas".into(),
            Role::Network => "network".into(),
            Role::WorkspaceNetwork(id) => format!("ws{id}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnershipKey(String);

impl OwnershipKey {
    pub fn new(stack_id: &str, logical_resource_id: &str) -> Self {
        let digest = Sha256::digest(format!("{stack_id}\n{logical_resource_id}").as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        OwnershipKey(hex[..KEY_LEN].to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Stable for the life of the resource and identical for duplicate deliveries.
    pub fn physical_resource_id(&self) -> String {
        format!("databricks-backend-privatelink-{}", self.0)
    }

    /// `<prefix>-cfn<key>-<role>`: the prefix is for people, the marker and key are for us.
    pub fn object_name(&self, prefix: &str, role: Role) -> String {
        format!("{prefix}-{MARKER}{}-{}", self.0, role.suffix())
    }

    /// `<prefix>-cfn<key>-<role>-<stamp>`: for objects whose names Databricks does not keep
    /// unique (private access settings, networks), the creator's clock in epoch milliseconds,
    /// so concurrent deliveries that each created one agree on the oldest as the winner.
    pub fn stamped_name(&self, prefix: &str, role: Role, stamp_ms: u64) -> String {
        format!("{}-{stamp_ms}", self.object_name(prefix, role))
    }

    /// Whether `name` is one of this resource's objects of `role`, whatever prefix it was
    /// created with (the prefix may change on Update) and whether or not it is stamped.
    pub fn owns(&self, name: Option<&str>, role: Role) -> bool {
        self.split(name, role).is_some()
    }

    /// The creation stamp of an owned, stamped name.
    pub fn stamp(&self, name: Option<&str>, role: Role) -> Option<u64> {
        self.split(name, role).flatten()
    }

    /// `Some(stamp)` when owned: the stamp itself is `None` for unstamped names.
    fn split(&self, name: Option<&str>, role: Role) -> Option<Option<u64>> {
        let name = name?;
        let marker = format!("-{MARKER}{}-{}", self.0, role.suffix());
        let at = name.rfind(&marker)?;
        match &name[at + marker.len()..] {
            "" => Some(None),
            rest => {
                let digits = rest.strip_prefix('-')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok().map(Some)
            }
        }
    }
}

/// The clock stamped into the names of objects Databricks does not keep unique, in epoch
/// milliseconds.
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_deterministic_and_distinct() {
        let a = OwnershipKey::new("arn:aws:cloudformation:us-east-1:1:stack/a/1", "PL");
        let b = OwnershipKey::new("arn:aws:cloudformation:us-east-1:1:stack/a/1", "PL");
        let c = OwnershipKey::new("arn:aws:cloudformation:us-east-1:1:stack/b/2", "PL");
        let d = OwnershipKey::new("arn:aws:cloudformation:us-east-1:1:stack/a/1", "PL2");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.physical_resource_id(), b.physical_resource_id());
        assert_eq!(a.as_str().len(), KEY_LEN);
    }

    #[test]
    fn ownership_survives_prefix_changes_but_not_roles_or_keys() {
        let key = OwnershipKey::new("s", "l");
        let other = OwnershipKey::new("s2", "l");
        let name = key.object_name("old-prefix", Role::Relay);
        assert!(key.owns(Some(&name), Role::Relay));
        assert!(key.owns(Some(&key.object_name("new", Role::Relay)), Role::Relay));
        assert!(!key.owns(Some(&name), Role::RestApi));
        assert!(!other.owns(Some(&name), Role::Relay));
        assert!(!key.owns(None, Role::Relay));
        assert!(!key.owns(Some("hand-made-relay"), Role::Relay));
    }

    #[test]
    fn stamped_names_are_owned_and_carry_their_stamp() {
        let key = OwnershipKey::new("s", "l");
        let name = key.stamped_name("p", Role::AccessSettings, 1_764_160_000_123);
        assert!(key.owns(Some(&name), Role::AccessSettings));
        assert_eq!(
            key.stamp(Some(&name), Role::AccessSettings),
            Some(1_764_160_000_123)
        );
        let plain = key.object_name("p", Role::AccessSettings);
        assert!(key.owns(Some(&plain), Role::AccessSettings));
        assert_eq!(key.stamp(Some(&plain), Role::AccessSettings), None);
        assert!(!key.owns(Some(&format!("{plain}-x1")), Role::AccessSettings));
        assert!(!key.owns(Some(&format!("{plain}-")), Role::AccessSettings));
        assert!(!key.owns(Some(&name), Role::Network));
    }

    #[test]
    fn longest_names_fit_databricks_limit() {
        let key = OwnershipKey::new("s", "l");
        let prefix = "p".repeat(super::super::properties::MAX_NAME_PREFIX);
        for role in [
            Role::RestApi,
            Role::Relay,
            Role::AccessSettings,
            Role::Network,
        ] {
            let n = key.stamped_name(&prefix, role, u64::MAX).len();
            assert!((4..=256).contains(&n), "{n}");
        }
        assert!(key.object_name("a", Role::Relay).len() >= 4);
    }
}
