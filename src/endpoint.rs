//! Which of the two back-end endpoints, and the ports cluster nodes reach them on: the one
//! vocabulary for "which endpoint" that the AWS checks, the Databricks client, the verifier and
//! the domain share. A leaf: it imports nothing of the crate.

use serde::{Deserialize, Serialize};

/// One of the two back-end PrivateLink endpoints (on the wire: `restApi`, `relay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndpointRole {
    /// The workspace (REST API) endpoint service.
    RestApi,
    /// The secure cluster connectivity (SCC) relay endpoint service.
    Relay,
}

impl EndpointRole {
    /// Both roles, REST API first.
    pub const BOTH: [EndpointRole; 2] = [EndpointRole::RestApi, EndpointRole::Relay];

    /// Short name in a sentence: "the REST API endpoint", "the relay endpoint".
    pub fn label(self) -> &'static str {
        match self {
            EndpointRole::RestApi => "REST API",
            EndpointRole::Relay => "relay",
        }
    }

    /// The Databricks endpoint service, as Databricks names it.
    pub fn service(self) -> &'static str {
        match self {
            EndpointRole::RestApi => "workspace (REST API)",
            EndpointRole::Relay => "SCC relay",
        }
    }

    pub fn other(self) -> EndpointRole {
        match self {
            EndpointRole::RestApi => EndpointRole::Relay,
            EndpointRole::Relay => EndpointRole::RestApi,
        }
    }
}

/// The port cluster nodes use for the REST API endpoint.
pub const REST_API_PORT: u16 = 443;
/// The port of the secure cluster connectivity relay: Databricks lists 443, 6666 and 2443 among
/// the ports the endpoints' security group must admit
/// (<https://docs.databricks.com/aws/en/security/network/classic/privatelink>).
pub const RELAY_PORT: u16 = 6666;
/// The relay's port under the compliance security profile (FIPS)
/// (`docs/account-api.md#endpoint-services-ports-and-hostnames`).
pub const FIPS_RELAY_PORT: u16 = 2443;
