//! The two AWS interface VPC endpoints behind Databricks back-end PrivateLink: reading them (and
//! their security groups) from EC2, turning private DNS on, and judging whether the pair fits the
//! region's Databricks endpoint services. Knows nothing of CloudFormation or the Databricks API.

use std::fmt;

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use tokio::time::Instant;

use super::error::{AwsError, describe_sdk_error, ec2_call_error, is_access_denied};
use super::regional::PerRegion;
use super::services::{EndpointServices, is_valid_region_name, supported_regions};
use super::{MAX_ATTEMPTS, within_deadline};

/// Which of the two endpoints a problem is about.
pub use crate::endpoint::EndpointRole as EndpointKind;

/// What the caller calls each endpoint in a message: the names people set it by (the resource's
/// property names), so a problem points at what to change. This module does not know them.
#[derive(Clone, Copy, Debug)]
pub struct EndpointNames {
    pub rest_api: &'static str,
    pub relay: &'static str,
}

impl EndpointNames {
    /// For messages without a caller's names (`Display`).
    pub const PLAIN: EndpointNames = EndpointNames {
        rest_api: "the workspace (REST API) endpoint",
        relay: "the SCC relay endpoint",
    };

    fn of(&self, kind: EndpointKind) -> &'static str {
        match kind {
            EndpointKind::RestApi => self.rest_api,
            EndpointKind::Relay => self.relay,
        }
    }
}

use crate::endpoint::{FIPS_RELAY_PORT, RELAY_PORT, REST_API_PORT};

/// What EC2 says about one VPC endpoint.
#[derive(Clone, Debug)]
pub struct VpcEndpointInfo {
    pub id: String,
    pub vpc_id: String,
    pub service_name: String,
    /// `Interface`, `Gateway`, `GatewayLoadBalancer`, ...
    pub endpoint_type: String,
    /// Lower-cased EC2 state: `available`, `pendingacceptance`, `pending`, `rejected`, `failed`,
    /// `deleted`, `deleting`, `expired`, `partial`.
    pub state: String,
    pub private_dns_enabled: bool,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// The endpoint's own DNS names (`DnsEntries`).
    pub dns_names: Vec<String>,
    pub network_interface_ids: Vec<String>,
}

/// What EC2 says about one subnet a network configuration would use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub id: String,
    pub vpc_id: String,
    pub availability_zone: String,
}

/// What EC2 says about one security group a network configuration would use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    pub id: String,
    pub vpc_id: String,
}

/// EC2 access for the regions the resource names. One SDK client per region, built lazily from
/// the same base configuration (credentials, retry settings, and any `AWS_ENDPOINT_URL`
/// override), because a resource's Region need not be the Lambda's own region.
#[derive(Clone)]
pub struct Ec2 {
    clients: PerRegion<aws_sdk_ec2::Client>,
}

impl Ec2 {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let base = aws_sdk_ec2::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        Self::from_conf(base)
    }

    /// Uses `base` as it is (only the region is replaced per call); for tests and for callers
    /// that need their own retry or endpoint settings.
    pub fn from_conf(base: aws_sdk_ec2::Config) -> Self {
        Self {
            clients: PerRegion::new(move |region| {
                aws_sdk_ec2::Client::from_conf(base.to_builder().region(region).build())
            }),
        }
    }

    pub(super) fn client(&self, region: &str) -> Result<aws_sdk_ec2::Client, AwsError> {
        if !is_valid_region_name(region) {
            return Err(AwsError::InvalidRegion {
                region: region.to_owned(),
            });
        }
        Ok(self.clients.get(region))
    }

    /// Describes exactly these endpoints in one call. Every id must exist.
    pub async fn describe_vpc_endpoints(
        &self,
        region: &str,
        ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<VpcEndpointInfo>, AwsError> {
        let endpoints = self
            .describe_vpc_endpoints_listed(region, ids, deadline)
            .await?;
        // EC2 answers an unknown id with an error, but emulators (and eventual consistency right
        // after creation) may simply leave it out.
        if let Some(missing) = ids
            .iter()
            .find(|id| !endpoints.iter().any(|e| &e.id == *id))
        {
            return Err(AwsError::EndpointNotFound {
                id: missing.clone(),
            });
        }
        Ok(endpoints)
    }

    /// Describes these endpoints in one call: those EC2 lists.
    pub(super) async fn describe_vpc_endpoints_listed(
        &self,
        region: &str,
        ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<VpcEndpointInfo>, AwsError> {
        const OPERATION: &str = "DescribeVpcEndpoints";
        let client = self.client(region)?;
        // Without ids EC2 would list every endpoint in the region.
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let output = within_deadline(
            OPERATION,
            deadline,
            client
                .describe_vpc_endpoints()
                .set_vpc_endpoint_ids(Some(ids.to_vec()))
                .send(),
        )
        .await?
        .map_err(|err| match err.code() {
            Some("InvalidVpcEndpointId.NotFound") => AwsError::EndpointNotFound {
                id: named_id(err.message(), ids, "vpce-"),
            },
            Some("InvalidVpcEndpointId.Malformed") => AwsError::MalformedEndpointId {
                id: named_id(err.message(), ids, "vpce-"),
            },
            _ => ec2_call_error(OPERATION, &err),
        })?;

        Ok(output
            .vpc_endpoints()
            .iter()
            .filter_map(|endpoint| {
                Some(VpcEndpointInfo {
                    id: endpoint.vpc_endpoint_id()?.to_owned(),
                    vpc_id: endpoint.vpc_id().unwrap_or_default().to_owned(),
                    service_name: endpoint.service_name().unwrap_or_default().to_owned(),
                    endpoint_type: endpoint
                        .vpc_endpoint_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    // The wire carries `available`, `pendingAcceptance`, ... while the SDK model
                    // spells `Available`, `PendingAcceptance`: lower-casing makes both one form.
                    state: endpoint
                        .state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .unwrap_or_default(),
                    private_dns_enabled: endpoint.private_dns_enabled().unwrap_or(false),
                    subnet_ids: endpoint.subnet_ids().to_vec(),
                    security_group_ids: endpoint
                        .groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_owned))
                        .collect(),
                    dns_names: endpoint
                        .dns_entries()
                        .iter()
                        .filter_map(|d| d.dns_name().map(str::to_owned))
                        .collect(),
                    network_interface_ids: endpoint.network_interface_ids().to_vec(),
                })
            })
            .collect())
    }

    /// Turns on private DNS for one endpoint (ModifyVpcEndpoint PrivateDnsEnabled=true).
    pub async fn enable_private_dns(
        &self,
        region: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<(), AwsError> {
        const OPERATION: &str = "ModifyVpcEndpoint";
        let client = self.client(region)?;
        let output = within_deadline(
            OPERATION,
            deadline,
            client
                .modify_vpc_endpoint()
                .vpc_endpoint_id(id)
                .private_dns_enabled(true)
                .send(),
        )
        .await?
        .map_err(|err| match err.code() {
            Some("InvalidVpcEndpointId.NotFound") => AwsError::EndpointNotFound { id: id.into() },
            Some("InvalidVpcEndpointId.Malformed") => {
                AwsError::MalformedEndpointId { id: id.into() }
            }
            code if is_access_denied(code) => AwsError::Ec2AccessDenied {
                operation: OPERATION,
            },
            // EC2 refuses with InvalidParameter when the VPC lacks DNS hostnames/resolution or
            // the endpoint is in a state that does not allow the change.
            Some(code) if code.starts_with("Invalid") || code == "IncorrectState" => {
                AwsError::EnablePrivateDnsFailed {
                    id: id.into(),
                    message: describe_sdk_error(&err),
                }
            }
            _ => AwsError::Call {
                operation: OPERATION,
                message: describe_sdk_error(&err),
            },
        })?;
        if output.r#return() == Some(false) {
            return Err(AwsError::EnablePrivateDnsFailed {
                id: id.into(),
                message: "EC2 did not accept the change".into(),
            });
        }
        Ok(())
    }
}

impl Ec2 {
    /// Describes these subnets; one that does not exist is left out of the answer (EC2 refuses
    /// the whole call then, so each id is asked for on its own to find which).
    pub async fn describe_subnets(
        &self,
        region: &str,
        subnet_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<SubnetInfo>, AwsError> {
        each_that_exists(
            subnet_ids,
            |e| matches!(e, AwsError::SubnetNotFound { .. }),
            |ids| self.describe_subnets_strict(region, ids, deadline),
        )
        .await
    }

    /// Describes exactly these subnets in one call. Every id must exist.
    async fn describe_subnets_strict(
        &self,
        region: &str,
        subnet_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<SubnetInfo>, AwsError> {
        const OPERATION: &str = "DescribeSubnets";
        let client = self.client(region)?;
        // Without ids EC2 would list every subnet in the region.
        if subnet_ids.is_empty() {
            return Ok(Vec::new());
        }
        let output = within_deadline(
            OPERATION,
            deadline,
            client
                .describe_subnets()
                .set_subnet_ids(Some(subnet_ids.to_vec()))
                .send(),
        )
        .await?
        .map_err(|err| match err.code() {
            Some("InvalidSubnetID.NotFound" | "InvalidSubnetID.Malformed") => {
                AwsError::SubnetNotFound {
                    id: named_id(err.message(), subnet_ids, "subnet-"),
                }
            }
            _ => ec2_call_error(OPERATION, &err),
        })?;
        Ok(output
            .subnets()
            .iter()
            .map(|subnet| SubnetInfo {
                id: subnet.subnet_id().unwrap_or_default().to_owned(),
                vpc_id: subnet.vpc_id().unwrap_or_default().to_owned(),
                availability_zone: subnet.availability_zone().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Describes these security groups; one that does not exist is left out of the answer.
    /// Read through [`Ec2::security_groups`], the one reader of security groups.
    pub async fn describe_security_groups(
        &self,
        region: &str,
        group_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<SecurityGroupInfo>, AwsError> {
        let groups = self.security_groups(region, group_ids, deadline).await?;
        Ok(groups
            .into_iter()
            .map(|group| SecurityGroupInfo {
                id: group.id,
                vpc_id: group.vpc_id,
            })
            .collect())
    }
}

/// Asks for all `ids` in one call; when EC2 refuses it because one of them does not exist (it
/// refuses the whole call then), asks for each on its own and leaves the missing ones out.
async fn each_that_exists<'a, T, Fut>(
    ids: &'a [String],
    missing: impl Fn(&AwsError) -> bool,
    describe: impl Fn(&'a [String]) -> Fut,
) -> Result<Vec<T>, AwsError>
where
    Fut: std::future::Future<Output = Result<Vec<T>, AwsError>>,
{
    match describe(ids).await {
        Err(e) if missing(&e) && ids.len() > 1 => {
            let each = ids.iter().map(|id| describe(std::slice::from_ref(id)));
            let mut found = Vec::new();
            for answer in futures_util::future::join_all(each).await {
                match answer {
                    Ok(items) => found.extend(items),
                    Err(e) if missing(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        }
        Err(e) if missing(&e) => Ok(Vec::new()),
        other => other,
    }
}

pub(super) fn tcp_range(protocol: &str, from: Option<i32>, to: Option<i32>) -> Option<(u16, u16)> {
    match protocol {
        "-1" => Some((0, u16::MAX)),
        "tcp" | "6" => {
            let from = u16::try_from(from?).ok()?;
            let to = u16::try_from(to?).ok()?;
            (from <= to).then_some((from, to))
        }
        _ => None,
    }
}

// EC2 names the offending id in its message ("The vpcEndpoint ID 'vpce-123' does not exist");
// prefer one of the ids asked for, then any id-shaped word, then all of them.
fn named_id(message: Option<&str>, ids: &[String], prefix: &str) -> String {
    let message = message.unwrap_or_default();
    if let Some(id) = ids.iter().find(|id| message.contains(id.as_str())) {
        return id.clone();
    }
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|word| word.starts_with(prefix) && word.len() > prefix.len())
        .map(str::to_owned)
        .unwrap_or_else(|| ids.join(", "))
}

/// The result of a successful [`check_endpoint_pair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPairCheck {
    pub vpc_id: String,
    /// Which deployment the pair belongs to: `commercial`, `civilian` or `dod`.
    pub variant: &'static str,
    /// Endpoints whose private DNS is off; the caller decides whether to enable it or to fail
    /// with [`EndpointProblem::PrivateDnsDisabled`].
    pub private_dns_missing: Vec<String>,
}

/// One thing wrong with the endpoint pair, displayed as a sentence saying what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointProblem {
    NotInterface {
        id: String,
        endpoint_type: String,
    },
    DifferentVpcs {
        rest_vpc: String,
        relay_vpc: String,
    },
    Swapped {
        rest_id: String,
        relay_id: String,
    },
    WrongService {
        id: String,
        role: EndpointKind,
        service_name: String,
        /// The acceptable service name(s), joined with " or ".
        expected: String,
    },
    BadState {
        id: String,
        state: String,
    },
    SameEndpoint {
        id: String,
    },
    RegionHasNoPrivateLink {
        region: String,
    },
    /// Never produced by [`check_endpoint_pair`] (it lists such ids in
    /// [`EndpointPairCheck::private_dns_missing`]); for the caller that decides not to enable it.
    PrivateDnsDisabled {
        id: String,
    },
}

impl fmt::Display for EndpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, &EndpointNames::PLAIN)
    }
}

impl EndpointProblem {
    /// The problem in a sentence that names the endpoints as `names` does.
    pub fn describe(&self, names: &EndpointNames) -> String {
        struct Described<'a>(&'a EndpointProblem, &'a EndpointNames);
        impl fmt::Display for Described<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, self.1)
            }
        }
        Described(self, names).to_string()
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, names: &EndpointNames) -> fmt::Result {
        let (rest_name, relay_name) = (names.rest_api, names.relay);
        match self {
            EndpointProblem::NotInterface { id, endpoint_type } => write!(
                f,
                "VPC endpoint {id} is a {endpoint_type} endpoint, but Databricks back-end \
                 PrivateLink needs Interface endpoints. Create an Interface endpoint to the \
                 Databricks endpoint service and use its id."
            ),
            EndpointProblem::DifferentVpcs {
                rest_vpc,
                relay_vpc,
            } => write!(
                f,
                "{rest_name} is in {rest_vpc} but {relay_name} is in {relay_vpc}; both \
                 endpoints must be in the workspace's VPC. Use two endpoints of the same VPC."
            ),
            EndpointProblem::Swapped { rest_id, relay_id } => write!(
                f,
                "{rest_name} {rest_id} and {relay_name} {relay_id} look swapped: {rest_id} \
                 points at the SCC relay service and {relay_id} at the workspace (REST API) \
                 service. Swap the two properties."
            ),
            EndpointProblem::WrongService {
                id,
                role,
                service_name,
                expected,
            } => write!(
                f,
                "{} {id} points at {service_name:?}, which is not the Databricks {} \
                 endpoint service of this region; expected {expected}. Use an endpoint created \
                 for that service.",
                names.of(*role),
                role.service()
            ),
            EndpointProblem::BadState { id, state } => write!(
                f,
                "VPC endpoint {id} is {state}; only an available (or pending acceptance) \
                 endpoint can be registered with Databricks. Create a new endpoint and use its id."
            ),
            EndpointProblem::SameEndpoint { id } => write!(
                f,
                "{rest_name} and {relay_name} are both {id}; Databricks needs two endpoints, \
                 one to the workspace (REST API) service and one to the SCC relay service. Set \
                 each property to its own endpoint."
            ),
            EndpointProblem::RegionHasNoPrivateLink { region } => write!(
                f,
                "Databricks offers no back-end PrivateLink in {region}; set Region to one of: {}.",
                supported_regions().join(", ")
            ),
            EndpointProblem::PrivateDnsDisabled { id } => write!(
                f,
                "{id} has private DNS disabled; without it the Databricks hostnames keep \
                 resolving to public IPs and clusters keep failing with BOOTSTRAP_TIMEOUT. Enable \
                 private DNS on the endpoint or set EnablePrivateDns to true."
            ),
        }
    }
}

// pendingAcceptance is the normal state before registration: Databricks accepts the connection
// once the endpoint is registered with the account.
fn is_usable_state(state: &str) -> bool {
    matches!(state, "available" | "pendingacceptance" | "pending")
}

/// Judges the REST API and relay endpoints against the region's Databricks endpoint services
/// (`services` is [`crate::aws::endpoint_services`] of `region`). No I/O; every problem is
/// reported, not just the first.
pub fn check_endpoint_pair(
    rest: &VpcEndpointInfo,
    relay: &VpcEndpointInfo,
    region: &str,
    services: &[(&'static str, EndpointServices)],
) -> Result<EndpointPairCheck, Vec<EndpointProblem>> {
    let mut problems = Vec::new();
    let same = rest.id == relay.id;
    let endpoints: &[&VpcEndpointInfo] = if same { &[rest] } else { &[rest, relay] };

    if same {
        problems.push(EndpointProblem::SameEndpoint {
            id: rest.id.clone(),
        });
    }
    for endpoint in endpoints {
        if endpoint.endpoint_type != "Interface" {
            problems.push(EndpointProblem::NotInterface {
                id: endpoint.id.clone(),
                endpoint_type: endpoint.endpoint_type.clone(),
            });
        }
        if !is_usable_state(&endpoint.state) {
            problems.push(EndpointProblem::BadState {
                id: endpoint.id.clone(),
                state: endpoint.state.clone(),
            });
        }
    }
    if !same && rest.vpc_id != relay.vpc_id {
        problems.push(EndpointProblem::DifferentVpcs {
            rest_vpc: rest.vpc_id.clone(),
            relay_vpc: relay.vpc_id.clone(),
        });
    }

    let variant = if services.is_empty() {
        problems.push(EndpointProblem::RegionHasNoPrivateLink {
            region: region.to_owned(),
        });
        None
    } else if same {
        // One endpoint cannot serve both roles; which role it fits adds nothing to the advice.
        None
    } else {
        match_services(rest, relay, services, &mut problems)
    };

    match variant {
        Some(variant) if problems.is_empty() => {
            let private_dns_missing = endpoints
                .iter()
                .filter(|e| !e.private_dns_enabled)
                .map(|e| e.id.clone())
                .collect();
            Ok(EndpointPairCheck {
                vpc_id: rest.vpc_id.clone(),
                variant,
                private_dns_missing,
            })
        }
        _ => Err(problems),
    }
}

fn match_services(
    rest: &VpcEndpointInfo,
    relay: &VpcEndpointInfo,
    services: &[(&'static str, EndpointServices)],
    problems: &mut Vec<EndpointProblem>,
) -> Option<&'static str> {
    if let Some((variant, _)) = services
        .iter()
        .find(|(_, s)| s.rest_api == rest.service_name && s.relay == relay.service_name)
    {
        return Some(variant);
    }
    if services.iter().any(|(_, s)| s.relay == rest.service_name)
        && services
            .iter()
            .any(|(_, s)| s.rest_api == relay.service_name)
    {
        problems.push(EndpointProblem::Swapped {
            rest_id: rest.id.clone(),
            relay_id: relay.id.clone(),
        });
        return None;
    }

    let rest_variants: Vec<&EndpointServices> = services
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.rest_api == rest.service_name)
        .collect();
    if rest_variants.is_empty() {
        problems.push(EndpointProblem::WrongService {
            id: rest.id.clone(),
            role: EndpointKind::RestApi,
            service_name: rest.service_name.clone(),
            expected: join_or(services.iter().map(|(_, s)| s.rest_api.as_str())),
        });
    }
    // In us-gov-west-1 the relay must belong to the same deployment (civilian or DoD) as the
    // REST API endpoint; mixing them fails at registration.
    let relay_candidates: Vec<&str> = if rest_variants.is_empty() {
        services.iter().map(|(_, s)| s.relay.as_str()).collect()
    } else {
        rest_variants.iter().map(|s| s.relay.as_str()).collect()
    };
    if !relay_candidates.contains(&relay.service_name.as_str()) {
        problems.push(EndpointProblem::WrongService {
            id: relay.id.clone(),
            role: EndpointKind::Relay,
            service_name: relay.service_name.clone(),
            expected: join_or(relay_candidates.into_iter()),
        });
    }
    None
}

fn join_or<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(" or ")
}

/// Which required ports the ingress ranges miss: 443 for the REST API and 6666 for the relay,
/// where 2443 (the FIPS relay port) also satisfies the relay
/// (`docs/account-api.md#endpoint-services-ports-and-hostnames`).
pub fn missing_ingress_ports(ranges: &[(u16, u16)]) -> Vec<u16> {
    let covers = |port: u16| ranges.iter().any(|&(from, to)| from <= port && port <= to);
    let mut missing = Vec::new();
    if !covers(REST_API_PORT) {
        missing.push(REST_API_PORT);
    }
    if !covers(RELAY_PORT) && !covers(FIPS_RELAY_PORT) {
        missing.push(RELAY_PORT);
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::services::endpoint_services;
    use crate::aws::test_support::{Recorder, ec2_conf, ec2_error, later};
    use aws_sdk_ec2::Client;
    use aws_smithy_mocks::mock;

    /// The names the resource gives the endpoints, as in its reasons.
    const PROPERTY_NAMES: EndpointNames = EndpointNames {
        rest_api: "RestApiVpcEndpointId",
        relay: "RelayVpcEndpointId",
    };

    #[test]
    fn without_the_callers_names_a_problem_says_which_endpoint_in_words() {
        let problem = EndpointProblem::SameEndpoint {
            id: "vpce-0123".into(),
        };
        assert!(problem.to_string().starts_with(
            "the workspace (REST API) endpoint and the SCC relay endpoint are both vpce-0123"
        ));
        assert!(
            problem
                .describe(&PROPERTY_NAMES)
                .starts_with("RestApiVpcEndpointId and RelayVpcEndpointId are both vpce-0123")
        );
    }

    const REST_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04";
    const RELAY_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf";
    const GOV_CIVILIAN_REST: &str = "com.amazonaws.vpce.us-gov-west-1.vpce-svc-0f25e28401cbc9418";
    const GOV_CIVILIAN_RELAY: &str = "com.amazonaws.vpce.us-gov-west-1.vpce-svc-05f27abef1a1a3faa";
    const GOV_DOD_REST: &str = "com.amazonaws.vpce.us-gov-west-1.vpce-svc-08fddf710780b2a54";
    const GOV_DOD_RELAY: &str = "com.amazonaws.vpce.us-gov-west-1.vpce-svc-05c210a2feea23ad7";

    fn endpoint(id: &str, service_name: &str) -> VpcEndpointInfo {
        VpcEndpointInfo {
            id: id.into(),
            vpc_id: "vpc-0aaa".into(),
            service_name: service_name.into(),
            endpoint_type: "Interface".into(),
            state: "available".into(),
            private_dns_enabled: true,
            subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
            security_group_ids: vec!["sg-1".into()],
            dns_names: Vec::new(),
            network_interface_ids: Vec::new(),
        }
    }

    fn check(
        rest: &VpcEndpointInfo,
        relay: &VpcEndpointInfo,
        region: &str,
    ) -> Result<EndpointPairCheck, Vec<EndpointProblem>> {
        check_endpoint_pair(rest, relay, region, &endpoint_services(region))
    }

    #[test]
    fn a_good_pair_passes() {
        let checked = check(
            &endpoint("vpce-rest", REST_SERVICE),
            &endpoint("vpce-relay", RELAY_SERVICE),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(
            checked,
            EndpointPairCheck {
                vpc_id: "vpc-0aaa".into(),
                variant: "commercial",
                private_dns_missing: vec![],
            }
        );
    }

    #[test]
    fn pending_acceptance_is_fine_before_registration() {
        let mut rest = endpoint("vpce-rest", REST_SERVICE);
        rest.state = "pendingacceptance".into();
        assert!(check(&rest, &endpoint("vpce-relay", RELAY_SERVICE), "us-east-1").is_ok());
    }

    #[test]
    fn private_dns_off_is_listed_not_refused() {
        let mut relay = endpoint("vpce-relay", RELAY_SERVICE);
        relay.private_dns_enabled = false;
        let checked = check(&endpoint("vpce-rest", REST_SERVICE), &relay, "us-east-1").unwrap();
        assert_eq!(checked.private_dns_missing, ["vpce-relay"]);

        let sentence = EndpointProblem::PrivateDnsDisabled {
            id: "vpce-relay".into(),
        }
        .to_string();
        assert!(sentence.contains("vpce-relay has private DNS disabled"));
        assert!(sentence.contains("BOOTSTRAP_TIMEOUT"));
        assert!(sentence.contains("EnablePrivateDns"));
    }

    #[test]
    fn swapped_endpoints_are_named_as_swapped() {
        let problems = check(
            &endpoint("vpce-0123", RELAY_SERVICE),
            &endpoint("vpce-0456", REST_SERVICE),
            "us-east-1",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::Swapped {
                rest_id: "vpce-0123".into(),
                relay_id: "vpce-0456".into()
            }]
        );
        let sentence = problems[0].describe(&PROPERTY_NAMES);
        assert!(sentence.starts_with(
            "RestApiVpcEndpointId vpce-0123 and RelayVpcEndpointId vpce-0456 look swapped: \
             vpce-0123 points at the SCC relay service"
        ));
        assert!(sentence.ends_with("Swap the two properties."));
    }

    #[test]
    fn endpoints_in_different_vpcs_are_refused() {
        let mut relay = endpoint("vpce-relay", RELAY_SERVICE);
        relay.vpc_id = "vpc-0bbb".into();
        let problems =
            check(&endpoint("vpce-rest", REST_SERVICE), &relay, "us-east-1").unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::DifferentVpcs {
                rest_vpc: "vpc-0aaa".into(),
                relay_vpc: "vpc-0bbb".into()
            }]
        );
        assert!(problems[0].to_string().contains("vpc-0aaa"));
    }

    #[test]
    fn a_gateway_endpoint_is_refused() {
        let mut rest = endpoint("vpce-rest", REST_SERVICE);
        rest.endpoint_type = "Gateway".into();
        let problems =
            check(&rest, &endpoint("vpce-relay", RELAY_SERVICE), "us-east-1").unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::NotInterface {
                id: "vpce-rest".into(),
                endpoint_type: "Gateway".into()
            }]
        );
        assert!(
            problems[0]
                .to_string()
                .contains("needs Interface endpoints")
        );
    }

    #[test]
    fn a_rejected_endpoint_is_refused() {
        let mut relay = endpoint("vpce-relay", RELAY_SERVICE);
        relay.state = "rejected".into();
        let problems =
            check(&endpoint("vpce-rest", REST_SERVICE), &relay, "us-east-1").unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::BadState {
                id: "vpce-relay".into(),
                state: "rejected".into()
            }]
        );
    }

    #[test]
    fn the_same_endpoint_twice_is_refused_once() {
        let one = endpoint("vpce-rest", REST_SERVICE);
        let problems = check(&one, &one, "us-east-1").unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::SameEndpoint {
                id: "vpce-rest".into()
            }]
        );
    }

    #[test]
    fn an_endpoint_to_another_service_is_refused_with_the_expected_name() {
        let problems = check(
            &endpoint("vpce-rest", "com.amazonaws.us-east-1.s3"),
            &endpoint("vpce-relay", RELAY_SERVICE),
            "us-east-1",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::WrongService {
                id: "vpce-rest".into(),
                role: EndpointKind::RestApi,
                service_name: "com.amazonaws.us-east-1.s3".into(),
                expected: REST_SERVICE.into(),
            }]
        );
        let sentence = problems[0].describe(&PROPERTY_NAMES);
        assert!(sentence.contains("workspace (REST API)"), "{sentence}");
        assert!(sentence.contains(REST_SERVICE), "{sentence}");
    }

    #[test]
    fn endpoints_of_another_region_are_refused() {
        let problems = check(
            &endpoint("vpce-rest", REST_SERVICE),
            &endpoint("vpce-relay", RELAY_SERVICE),
            "eu-west-1",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(
            problems
                .iter()
                .all(|p| matches!(p, EndpointProblem::WrongService { .. }))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut rest = endpoint("vpce-rest", REST_SERVICE);
        rest.endpoint_type = "Gateway".into();
        rest.state = "failed".into();
        let mut relay = endpoint("vpce-relay", "com.amazonaws.vpce.us-east-1.vpce-svc-0nope");
        relay.vpc_id = "vpc-0bbb".into();
        let problems = check(&rest, &relay, "us-east-1").unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn a_region_without_privatelink_is_refused() {
        let problems = check(
            &endpoint("vpce-rest", REST_SERVICE),
            &endpoint("vpce-relay", RELAY_SERVICE),
            "eu-north-1",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::RegionHasNoPrivateLink {
                region: "eu-north-1".into()
            }]
        );
        let sentence = problems[0].describe(&PROPERTY_NAMES);
        assert!(sentence.contains("us-east-1") && sentence.contains("us-gov-west-1"));
    }

    #[test]
    fn govcloud_pairs_report_their_deployment() {
        let civilian = check(
            &endpoint("vpce-rest", GOV_CIVILIAN_REST),
            &endpoint("vpce-relay", GOV_CIVILIAN_RELAY),
            "us-gov-west-1",
        )
        .unwrap();
        assert_eq!(civilian.variant, "civilian");
        let dod = check(
            &endpoint("vpce-rest", GOV_DOD_REST),
            &endpoint("vpce-relay", GOV_DOD_RELAY),
            "us-gov-west-1",
        )
        .unwrap();
        assert_eq!(dod.variant, "dod");
    }

    #[test]
    fn govcloud_civilian_and_dod_services_do_not_mix() {
        let problems = check(
            &endpoint("vpce-rest", GOV_CIVILIAN_REST),
            &endpoint("vpce-relay", GOV_DOD_RELAY),
            "us-gov-west-1",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [EndpointProblem::WrongService {
                id: "vpce-relay".into(),
                role: EndpointKind::Relay,
                service_name: GOV_DOD_RELAY.into(),
                expected: GOV_CIVILIAN_RELAY.into(),
            }]
        );
    }

    #[test]
    fn govcloud_swaps_are_detected_too() {
        let problems = check(
            &endpoint("vpce-a", GOV_DOD_RELAY),
            &endpoint("vpce-b", GOV_DOD_REST),
            "us-gov-west-1",
        )
        .unwrap_err();
        assert!(matches!(problems[..], [EndpointProblem::Swapped { .. }]));
    }

    #[test]
    fn required_ports() {
        assert_eq!(missing_ingress_ports(&[]), [443, 6666]);
        assert_eq!(
            missing_ingress_ports(&[(443, 443), (6666, 6666)]),
            [] as [u16; 0]
        );
        assert_eq!(missing_ingress_ports(&[(0, 65535)]), [] as [u16; 0]);
        assert_eq!(
            missing_ingress_ports(&[(443, 443), (2443, 2443)]),
            [] as [u16; 0]
        );
        assert_eq!(missing_ingress_ports(&[(443, 443)]), [6666]);
        assert_eq!(
            missing_ingress_ports(&[(444, 2442), (2444, 6665)]),
            [443, 6666]
        );
        assert_eq!(missing_ingress_ports(&[(6666, 6666), (8443, 8451)]), [443]);
    }

    const DESCRIBE_TWO: &str = r#"<DescribeVpcEndpointsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
  <vpcEndpointSet>
    <item>
      <vpcEndpointId>vpce-0123</vpcEndpointId>
      <vpcEndpointType>Interface</vpcEndpointType>
      <vpcId>vpc-0aaa</vpcId>
      <serviceName>com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04</serviceName>
      <state>available</state>
      <subnetIdSet><item>subnet-1</item><item>subnet-2</item></subnetIdSet>
      <groupSet><item><groupId>sg-1</groupId><groupName>privatelink</groupName></item></groupSet>
      <privateDnsEnabled>true</privateDnsEnabled>
    </item>
    <item>
      <vpcEndpointId>vpce-0456</vpcEndpointId>
      <vpcEndpointType>Gateway</vpcEndpointType>
      <vpcId>vpc-0aaa</vpcId>
      <serviceName>com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf</serviceName>
      <state>pendingAcceptance</state>
      <privateDnsEnabled>false</privateDnsEnabled>
    </item>
  </vpcEndpointSet>
</DescribeVpcEndpointsResponse>"#;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn describe_maps_what_ec2_sends() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .build();
        let recorder = Recorder::default();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &recorder, None));

        let found = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123", "vpce-0456"]), later())
            .await
            .unwrap();

        assert_eq!(found.len(), 2);
        let rest = &found[0];
        assert_eq!(rest.id, "vpce-0123");
        assert_eq!(rest.vpc_id, "vpc-0aaa");
        assert_eq!(rest.service_name, REST_SERVICE);
        assert_eq!(rest.endpoint_type, "Interface");
        assert_eq!(rest.state, "available");
        assert!(rest.private_dns_enabled);
        assert_eq!(rest.subnet_ids, ["subnet-1", "subnet-2"]);
        assert_eq!(rest.security_group_ids, ["sg-1"]);
        let relay = &found[1];
        assert_eq!(relay.endpoint_type, "Gateway");
        assert_eq!(relay.state, "pendingacceptance");
        assert!(!relay.private_dns_enabled);

        let sent = recorder.requests();
        assert_eq!(sent.len(), 1, "both endpoints in one call");
        assert!(sent[0].body.contains("Action=DescribeVpcEndpoints"));
        assert!(sent[0].body.contains("VpcEndpointId.1=vpce-0123"));
        assert!(sent[0].body.contains("VpcEndpointId.2=vpce-0456"));
    }

    #[tokio::test]
    async fn an_unknown_endpoint_is_named() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(
                400,
                Some(ec2_error(
                    "InvalidVpcEndpointId.NotFound",
                    "The Vpc Endpoint Id &apos;vpce-0456&apos; does not exist",
                )),
            )
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123", "vpce-0456"]), later())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AwsError::EndpointNotFound { id } if id == "vpce-0456"),
            "{err:?}"
        );
        assert_eq!(rule.num_calls(), 1, "a missing endpoint is not retried");
    }

    #[tokio::test]
    async fn an_endpoint_left_out_of_the_answer_is_not_found() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123", "vpce-0789"]), later())
            .await
            .unwrap_err();
        assert!(matches!(&err, AwsError::EndpointNotFound { id } if id == "vpce-0789"));
    }

    #[tokio::test]
    async fn throttling_is_retried() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(
                503,
                Some(ec2_error("RequestLimitExceeded", "Request limit exceeded.")),
            )
            .times(2)
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let found = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123", "vpce-0456"]), later())
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn persistent_throttling_ends_as_a_short_error() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(
                503,
                Some(ec2_error("RequestLimitExceeded", "Request limit exceeded.")),
            )
            .repeatedly()
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123"]), later())
            .await
            .unwrap_err();
        assert_eq!(rule.num_calls(), 5);
        assert_eq!(
            err.to_string(),
            "AWS DescribeVpcEndpoints failed: RequestLimitExceeded: Request limit exceeded."
        );
    }

    #[tokio::test]
    async fn a_passed_deadline_makes_no_call() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123"]), Instant::now())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            AwsError::DeadlineExceeded {
                operation: "DescribeVpcEndpoints"
            }
        ));
        assert_eq!(rule.num_calls(), 0);
    }

    #[tokio::test]
    async fn missing_permission_says_which_action() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(
                403,
                Some(ec2_error(
                    "UnauthorizedOperation",
                    "You are not authorized to perform this operation.",
                )),
            )
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .describe_vpc_endpoints("us-east-1", &ids(&["vpce-0123"]), later())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("ec2:DescribeVpcEndpoints"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn calls_go_to_the_resource_region() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .repeatedly()
            .build();
        let recorder = Recorder::default();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &recorder, None));
        let one = ids(&["vpce-0123"]);
        ec2.describe_vpc_endpoints("eu-west-1", &one, later())
            .await
            .unwrap();
        ec2.describe_vpc_endpoints("us-east-1", &one, later())
            .await
            .unwrap();
        let hosts: Vec<String> = recorder.requests().into_iter().map(|r| r.uri).collect();
        assert!(
            hosts[0].starts_with("https://ec2.eu-west-1.amazonaws.com"),
            "{hosts:?}"
        );
        assert!(
            hosts[1].starts_with("https://ec2.us-east-1.amazonaws.com"),
            "{hosts:?}"
        );
    }

    #[tokio::test]
    async fn an_endpoint_url_override_holds_for_every_region() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .build();
        let recorder = Recorder::default();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &recorder, Some("http://127.0.0.1:5000")));
        ec2.describe_vpc_endpoints("ap-southeast-3", &ids(&["vpce-0123"]), later())
            .await
            .unwrap();
        assert!(
            recorder.requests()[0]
                .uri
                .starts_with("http://127.0.0.1:5000")
        );
    }

    #[tokio::test]
    async fn a_malformed_region_makes_no_call() {
        let rule = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some(DESCRIBE_TWO.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .describe_vpc_endpoints("evil.example/", &ids(&["vpce-0123"]), later())
            .await
            .unwrap_err();
        assert!(matches!(err, AwsError::InvalidRegion { .. }));
        assert_eq!(rule.num_calls(), 0);
    }

    #[tokio::test]
    async fn enabling_private_dns_sends_the_flag() {
        let rule = mock!(Client::modify_vpc_endpoint)
            .sequence()
            .http_status(
                200,
                Some(
                    "<ModifyVpcEndpointResponse><return>true</return></ModifyVpcEndpointResponse>"
                        .into(),
                ),
            )
            .build();
        let recorder = Recorder::default();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &recorder, None));
        ec2.enable_private_dns("us-east-1", "vpce-0123", later())
            .await
            .unwrap();
        let body = &recorder.requests()[0].body;
        assert!(body.contains("Action=ModifyVpcEndpoint"), "{body}");
        assert!(body.contains("VpcEndpointId=vpce-0123"), "{body}");
        assert!(body.contains("PrivateDnsEnabled=true"), "{body}");
    }

    #[tokio::test]
    async fn a_refused_private_dns_change_says_what_to_fix() {
        let rule = mock!(Client::modify_vpc_endpoint)
            .sequence()
            .http_status(
                400,
                Some(ec2_error(
                    "InvalidParameter",
                    "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for vpc-0aaa",
                )),
            )
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let err = ec2
            .enable_private_dns("us-east-1", "vpce-0123", later())
            .await
            .unwrap_err();
        let shown = err.to_string();
        assert!(matches!(err, AwsError::EnablePrivateDnsFailed { .. }));
        assert!(
            shown.contains("vpce-0123") && shown.contains("enableDnsHostnames"),
            "{shown}"
        );
    }

    #[test]
    fn tcp_ranges_from_permissions() {
        assert_eq!(tcp_range("-1", None, None), Some((0, 65535)));
        assert_eq!(tcp_range("tcp", Some(443), Some(443)), Some((443, 443)));
        assert_eq!(tcp_range("6", Some(0), Some(65535)), Some((0, 65535)));
        assert_eq!(tcp_range("udp", Some(443), Some(443)), None);
        assert_eq!(tcp_range("tcp", Some(-1), Some(-1)), None);
        assert_eq!(tcp_range("tcp", None, Some(443)), None);
        assert_eq!(tcp_range("tcp", Some(500), Some(400)), None);
    }
}
