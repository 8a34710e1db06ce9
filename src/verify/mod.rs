//! Verification from inside the VPC: what a cluster node sees when it looks up the Databricks
//! names and connects to the back-end PrivateLink endpoints. Owns the request the function sends
//! to the verifier Lambda and the report it gets back (both serde), the host names worth checking
//! (`hosts`), and the checks themselves (`probe`: DNS through the VPC's resolver, TCP connects).
//!
//! It must not know of CloudFormation, EC2 or the Databricks API: the caller reads those and
//! hands over plain names and addresses, so the verifier needs no AWS API and no internet.

pub mod hosts;
pub mod model;
pub mod probe;
#[cfg(test)]
mod test_network;

pub use hosts::{EndpointDnsNames, ExtraName, name_checks};
pub use model::{
    AddressKind, AddressReport, ConnectResult, Connection, EndpointAddresses, EndpointRole, Expect,
    NameCheck, NameReport, PrivateDns, RequestError, Resolution, ResolutionResult, ResolvedAddress,
    VerifyReport, VerifyRequest,
};
pub use probe::{DNS_SERVER_VAR, DnsSettings, DnsSettingsError, LOOPBACK_GUARD_MARK, verify};

pub use crate::endpoint::{RELAY_PORT, REST_API_PORT};
