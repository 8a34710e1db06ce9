//! AWS side of Databricks back-end PrivateLink: the region's Databricks endpoint services, the two
//! interface VPC endpoints (and a network configuration's subnets and security groups) as EC2
//! sees them, the service principal secret in Secrets Manager, the status CloudFormation reports
//! for a stack resource, and Lambda invocations (the verifier, and this function handing a held
//! answer on). Knows nothing of the custom-resource protocol or of the Databricks account API
//! client.

pub mod endpoints;
pub mod error;
pub mod lambda;
mod regional;
pub mod secrets;
pub mod services;
pub mod stacks;
pub mod vpc;

use std::future::Future;

use tokio::time::Instant;

pub use endpoints::{
    Ec2, EndpointKind, EndpointNames, EndpointPairCheck, EndpointProblem, SecurityGroupInfo,
    SubnetInfo, VpcEndpointInfo, check_endpoint_pair, missing_ingress_ports,
};
pub use error::AwsError;
pub use lambda::Functions;
pub use secrets::{Secrets, ServicePrincipalSecret, parse_service_principal, secret_region};
pub use services::{
    EndpointServices, Partition, default_accounts_host, endpoint_services, is_valid_region_name,
    partition_of, privatelink_relay_hostname, relay_hostname, supported_regions, workspace_host,
};
pub use stacks::{ResourceStatus, Stacks, stack_region};
pub use vpc::{
    EndpointInVpc, EndpointNetwork, IngressRule, Route, RouteTable, RuleSource, ServicePrivateDns,
    SubnetPlacement, VpcDns, VpcEgress,
};

/// Attempts per EC2 / Secrets Manager / CloudFormation call, so that API throttling (RequestLimitExceeded,
/// ThrottlingException) is ridden out by the SDK's standard retry mode with backoff; the
/// invocation's deadline still bounds the total.
const MAX_ATTEMPTS: u32 = 5;

/// Runs one SDK call, refusing to start after the deadline and abandoning it at the deadline.
async fn within_deadline<T>(
    operation: &'static str,
    deadline: Instant,
    call: impl Future<Output = T>,
) -> Result<T, AwsError> {
    if Instant::now() >= deadline {
        return Err(AwsError::DeadlineExceeded { operation });
    }
    tokio::time::timeout_at(deadline, call)
        .await
        .map_err(|_| AwsError::DeadlineExceeded { operation })
}

#[cfg(test)]
pub(crate) mod test_support;
