//! The two AWS interface VPC endpoints behind Databricks back-end PrivateLink: reading them (and
//! their security groups) from EC2, turning private DNS on, and judging whether the pair fits the
//! region's Databricks endpoint services. Knows nothing of CloudFormation or the Databricks API.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use tokio::time::Instant;

use super::error::{AwsError, describe_sdk_error};
use super::services::{EndpointServices, is_valid_region_name, supported_regions};
use super::{MAX_ATTEMPTS, within_deadline};

/// Property naming the workspace (REST API) endpoint, used to point people at what to change.
pub const REST_API_ROLE: &str = "RestApiVpcEndpointId";
/// Property naming the SCC relay endpoint.
pub const RELAY_ROLE: &str = "RelayVpcEndpointId";

const REST_API_PORT: u16 = 443;
const RELAY_PORT: u16 = 6666;
// With the compliance security profile (FIPS) the relay is reached on 2443 instead
// (reference section 8.2).
const FIPS_RELAY_PORT: u16 = 2443;

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
}

/// EC2 access for the regions the resource names. One SDK client per region, built lazily from
/// the same base configuration (credentials, retry settings, and any `AWS_ENDPOINT_URL`
/// override), because a resource's Region need not be the Lambda's own region.
#[derive(Clone)]
pub struct Ec2 {
    base: aws_sdk_ec2::Config,
    clients: Arc<Mutex<HashMap<String, aws_sdk_ec2::Client>>>,
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
            base,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn client(&self, region: &str) -> Result<aws_sdk_ec2::Client, AwsError> {
        if !is_valid_region_name(region) {
            return Err(AwsError::InvalidRegion {
                region: region.to_owned(),
            });
        }
        // A poisoned lock only means another task panicked while inserting; the map is intact.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = clients.entry(region.to_owned()).or_insert_with(|| {
            aws_sdk_ec2::Client::from_conf(
                self.base
                    .to_builder()
                    .region(Region::new(region.to_owned()))
                    .build(),
            )
        });
        Ok(client.clone())
    }

    /// Describes exactly these endpoints in one call. Every id must exist.
    pub async fn describe_vpc_endpoints(
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
            code if is_access_denied(code) => AwsError::Ec2AccessDenied {
                operation: OPERATION,
            },
            _ => AwsError::Call {
                operation: OPERATION,
                message: describe_sdk_error(&err),
            },
        })?;

        let endpoints: Vec<VpcEndpointInfo> = output
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
                })
            })
            .collect();

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

    /// TCP port ranges these security groups let in; "all traffic" rules count as 0-65535.
    /// Sorted and without duplicates.
    pub async fn security_group_ingress_ports(
        &self,
        region: &str,
        group_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<(u16, u16)>, AwsError> {
        const OPERATION: &str = "DescribeSecurityGroups";
        let client = self.client(region)?;
        // Without ids EC2 would list every security group in the region.
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let output = within_deadline(
            OPERATION,
            deadline,
            client
                .describe_security_groups()
                .set_group_ids(Some(group_ids.to_vec()))
                .send(),
        )
        .await?
        .map_err(|err| match err.code() {
            Some("InvalidGroup.NotFound" | "InvalidGroupId.Malformed") => {
                AwsError::SecurityGroupNotFound {
                    id: named_id(err.message(), group_ids, "sg-"),
                }
            }
            code if is_access_denied(code) => AwsError::Ec2AccessDenied {
                operation: OPERATION,
            },
            _ => AwsError::Call {
                operation: OPERATION,
                message: describe_sdk_error(&err),
            },
        })?;

        let mut ranges: Vec<(u16, u16)> = output
            .security_groups()
            .iter()
            .flat_map(|group| group.ip_permissions())
            .filter_map(|permission| {
                tcp_range(
                    permission.ip_protocol()?,
                    permission.from_port(),
                    permission.to_port(),
                )
            })
            .collect();
        ranges.sort_unstable();
        ranges.dedup();
        Ok(ranges)
    }
}

fn tcp_range(protocol: &str, from: Option<i32>, to: Option<i32>) -> Option<(u16, u16)> {
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

fn is_access_denied(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException")
    )
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
        role: &'static str,
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

fn role_service(role: &str) -> &'static str {
    if role == RELAY_ROLE {
        "SCC relay"
    } else {
        "workspace (REST API)"
    }
}

impl fmt::Display for EndpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
                "{REST_API_ROLE} is in {rest_vpc} but {RELAY_ROLE} is in {relay_vpc}; both \
                 endpoints must be in the workspace's VPC. Use two endpoints of the same VPC."
            ),
            EndpointProblem::Swapped { rest_id, relay_id } => write!(
                f,
                "{REST_API_ROLE} {rest_id} and {RELAY_ROLE} {relay_id} look swapped: {rest_id} \
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
                "{role} {id} points at {service_name:?}, which is not the Databricks {} \
                 endpoint service of this region; expected {expected}. Use an endpoint created \
                 for that service.",
                role_service(role)
            ),
            EndpointProblem::BadState { id, state } => write!(
                f,
                "VPC endpoint {id} is {state}; only an available (or pending acceptance) \
                 endpoint can be registered with Databricks. Create a new endpoint and use its id."
            ),
            EndpointProblem::SameEndpoint { id } => write!(
                f,
                "{REST_API_ROLE} and {RELAY_ROLE} are both {id}; Databricks needs two endpoints, \
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
/// (`services` is [`super::services::endpoint_services`] of `region`). No I/O; every problem is
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
            role: REST_API_ROLE,
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
            role: RELAY_ROLE,
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
/// where 2443 (the FIPS relay port) also satisfies the relay (reference section 8.2).
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
