//! The resource's two VPC endpoints as one value, from the validated properties to the
//! attributes: the same pair whether it holds `vpce-…` ids, EC2's descriptions of them or their
//! Databricks registration ids.

use super::names::Role;

/// One value per endpoint role: the workspace (REST API) endpoint and the SCC relay endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPair<T> {
    pub rest_api: T,
    pub relay: T,
}

impl<T> EndpointPair<T> {
    #[cfg(test)]
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> EndpointPair<U> {
        EndpointPair {
            rest_api: f(&self.rest_api),
            relay: f(&self.relay),
        }
    }

    /// Both values, the REST API endpoint's first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        [&self.rest_api, &self.relay].into_iter()
    }

    /// Both values with the role each has in the owned objects' names.
    pub fn with_roles(&self) -> [(Role, &T); 2] {
        [(Role::RestApi, &self.rest_api), (Role::Relay, &self.relay)]
    }
}

impl<T: PartialEq> EndpointPair<T> {
    pub fn contains(&self, value: &T) -> bool {
        self.iter().any(|v| v == value)
    }
}
