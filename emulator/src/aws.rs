//! What the emulated Databricks control plane can see of AWS: which endpoint service each
//! `vpce-…` connects to and whether AWS reports it in a forced state, and which VPC and
//! availability zone subnets and security groups are in. Tests fill this in, since the emulator
//! does not talk to EC2. Knows nothing of accounts or HTTP.

use std::collections::HashMap;

use crate::model::{EndpointUseCase, NetworkHealth, NetworkMessage};
use crate::services::{self, ServiceKind};

/// What AWS knows about one interface endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEndpoint {
    pub service_name: String,
    pub aws_account_id: Option<String>,
}

/// Registration-time facts Databricks derives from the AWS endpoint
/// (`docs/account-api.md#vpc-endpoint-registrations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub use_case: EndpointUseCase,
    pub aws_endpoint_service_id: Option<String>,
    pub aws_account_id: Option<String>,
}

/// Why a `vpce-…` cannot be registered in the requested region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsEndpointError {
    #[error(
        "VPC endpoint {vpce} was not found in region {requested}: it connects to {service_name} in {actual}. Register it with region {actual}"
    )]
    WrongRegion {
        vpce: String,
        requested: String,
        actual: String,
        service_name: String,
    },
    #[error(
        "VPC endpoint {vpce} connects to {service_name}, which is not a Databricks PrivateLink endpoint service. Create the endpoint for the workspace (REST API) or secure cluster connectivity relay service of your region"
    )]
    NotDatabricks { vpce: String, service_name: String },
}

/// What AWS knows about one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSubnet {
    pub vpc_id: String,
    pub availability_zone: String,
}

#[derive(Debug, Default)]
pub struct AwsEndpoints {
    endpoints: HashMap<String, AwsEndpoint>,
    state_overrides: HashMap<String, String>,
    subnets: HashMap<String, AwsSubnet>,
    /// Security group id → its VPC.
    security_groups: HashMap<String, String>,
}

impl AwsEndpoints {
    pub fn register(&mut self, vpce: &str, endpoint: AwsEndpoint) {
        self.endpoints.insert(vpce.to_owned(), endpoint);
    }

    /// `None` lifts the override, so the state follows the acceptance simulation again.
    pub fn set_state(&mut self, vpce: &str, state: Option<String>) {
        match state {
            Some(state) => self.state_overrides.insert(vpce.to_owned(), state),
            None => self.state_overrides.remove(vpce),
        };
    }

    pub fn state_override(&self, vpce: &str) -> Option<&str> {
        self.state_overrides.get(vpce).map(String::as_str)
    }

    /// Unknown endpoints (never described by a test) are taken as REST endpoints of an unknown
    /// service, so tests that do not care about AWS need no set-up.
    pub fn derive(&self, vpce: &str, region: &str) -> Result<Derived, AwsEndpointError> {
        let Some(endpoint) = self.endpoints.get(vpce) else {
            return Ok(Derived {
                use_case: EndpointUseCase::GeneralAccess,
                aws_endpoint_service_id: None,
                aws_account_id: None,
            });
        };
        let Some(known) = services::classify(&endpoint.service_name) else {
            return Err(AwsEndpointError::NotDatabricks {
                vpce: vpce.to_owned(),
                service_name: endpoint.service_name.clone(),
            });
        };
        if known.region != region {
            return Err(AwsEndpointError::WrongRegion {
                vpce: vpce.to_owned(),
                requested: region.to_owned(),
                actual: known.region.to_owned(),
                service_name: endpoint.service_name.clone(),
            });
        }
        let use_case = match known.kind {
            ServiceKind::RestApi => EndpointUseCase::GeneralAccess,
            ServiceKind::Relay => EndpointUseCase::DataplaneRelayAccess,
        };
        Ok(Derived {
            use_case,
            // Full service name: the exact format is unconfirmed
            // (`docs/account-api.md#vpc-endpoint-registrations`).
            aws_endpoint_service_id: Some(endpoint.service_name.clone()),
            aws_account_id: endpoint.aws_account_id.clone(),
        })
    }

    pub fn describe_subnet(&mut self, subnet_id: &str, subnet: AwsSubnet) {
        self.subnets.insert(subnet_id.to_owned(), subnet);
    }

    pub fn describe_security_group(&mut self, group_id: &str, vpc_id: &str) {
        self.security_groups
            .insert(group_id.to_owned(), vpc_id.to_owned());
    }

    /// How Databricks judges a network's subnets and security groups (`error_messages` and
    /// `warning_messages`). Only what a test described is judged: unknown ids pass, so tests
    /// that do not care about AWS need no set-up.
    pub fn judge_network(
        &self,
        vpc_id: &str,
        subnet_ids: &[String],
        security_group_ids: &[String],
    ) -> NetworkHealth {
        let mut health = NetworkHealth::default();
        for id in subnet_ids {
            if let Some(subnet) = self.subnets.get(id).filter(|s| s.vpc_id != vpc_id) {
                health.errors.push(NetworkMessage::error(
                    "subnet",
                    format!(
                        "Subnet {id} is in VPC {}, not in the network's VPC {vpc_id}",
                        subnet.vpc_id
                    ),
                ));
            }
        }
        for id in security_group_ids {
            if let Some(group_vpc) = self.security_groups.get(id).filter(|v| *v != vpc_id) {
                health.errors.push(NetworkMessage::error(
                    "securityGroup",
                    format!(
                        "Security group {id} is in VPC {group_vpc}, not in the network's VPC {vpc_id}"
                    ),
                ));
            }
        }
        let zones: Vec<&str> = subnet_ids
            .iter()
            .filter_map(|id| self.subnets.get(id))
            .map(|s| s.availability_zone.as_str())
            .collect();
        let all_known = zones.len() == subnet_ids.len();
        if all_known && !zones.is_empty() && zones.iter().all(|z| *z == zones[0]) {
            health.warnings.push(NetworkMessage::warning(
                "subnet",
                format!(
                    "Subnets {} are all in availability zone {}; use subnets in at least two availability zones",
                    subnet_ids.join(", "),
                    zones[0]
                ),
            ));
        }
        health
    }

    pub fn clear(&mut self) {
        self.endpoints.clear();
        self.state_overrides.clear();
        self.subnets.clear();
        self.security_groups.clear();
    }
}

/// `vpce-` followed by 8 (legacy) or 17 lowercase hex digits, as EC2 issues them.
pub fn is_vpce_id(candidate: &str) -> bool {
    candidate.strip_prefix("vpce-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpce_ids_need_eight_or_seventeen_lowercase_hex_digits() {
        assert!(is_vpce_id("vpce-0123abcd"));
        assert!(is_vpce_id("vpce-0123456789abcdef0"));
        assert!(!is_vpce_id("vpce-0123456789abcdef"));
        assert!(!is_vpce_id("vpce-0123ABCD"));
        assert!(!is_vpce_id("vpc-0123abcd"));
        assert!(!is_vpce_id("vpce-0123abcg"));
    }

    #[test]
    fn networks_are_judged_on_what_aws_was_told() {
        let mut aws = AwsEndpoints::default();
        let subnet = |vpc: &str, zone: &str| AwsSubnet {
            vpc_id: vpc.into(),
            availability_zone: zone.into(),
        };
        aws.describe_subnet("subnet-a", subnet("vpc-1", "us-east-1a"));
        aws.describe_subnet("subnet-b", subnet("vpc-1", "us-east-1a"));
        aws.describe_subnet("subnet-c", subnet("vpc-1", "us-east-1b"));
        aws.describe_subnet("subnet-x", subnet("vpc-2", "us-east-1b"));
        aws.describe_security_group("sg-x", "vpc-2");
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        let fine = aws.judge_network("vpc-1", &ids(&["subnet-a", "subnet-c"]), &ids(&["sg-1"]));
        assert!(
            fine.errors.is_empty() && fine.warnings.is_empty(),
            "{fine:?}"
        );
        let unknown = aws.judge_network("vpc-1", &ids(&["subnet-q", "subnet-r"]), &ids(&["sg-q"]));
        assert!(unknown.errors.is_empty() && unknown.warnings.is_empty());

        let one_zone = aws.judge_network("vpc-1", &ids(&["subnet-a", "subnet-b"]), &ids(&["sg-1"]));
        assert!(one_zone.errors.is_empty());
        assert!(
            one_zone.warnings[0].text().contains("us-east-1a"),
            "{one_zone:?}"
        );

        let broken = aws.judge_network("vpc-1", &ids(&["subnet-a", "subnet-x"]), &ids(&["sg-x"]));
        assert_eq!(broken.errors.len(), 2, "{broken:?}");
        assert!(broken.errors[0].text().contains("subnet-x is in VPC vpc-2"));
        assert!(broken.errors[1].text().contains("sg-x is in VPC vpc-2"));
    }

    #[test]
    fn derive_maps_services_to_use_cases_and_refuses_foreign_services() {
        let mut aws = AwsEndpoints::default();
        aws.register(
            "vpce-00000001",
            AwsEndpoint {
                service_name: "com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c".into(),
                aws_account_id: Some("111122223333".into()),
            },
        );
        aws.register(
            "vpce-00000002",
            AwsEndpoint {
                service_name: "com.amazonaws.eu-west-1.s3".into(),
                aws_account_id: None,
            },
        );
        let relay = aws.derive("vpce-00000001", "eu-west-1").unwrap();
        assert_eq!(relay.use_case, EndpointUseCase::DataplaneRelayAccess);
        assert_eq!(relay.aws_account_id.as_deref(), Some("111122223333"));
        assert!(matches!(
            aws.derive("vpce-00000001", "us-east-1"),
            Err(AwsEndpointError::WrongRegion { .. })
        ));
        assert!(matches!(
            aws.derive("vpce-00000002", "eu-west-1"),
            Err(AwsEndpointError::NotDatabricks { .. })
        ));
        let unknown = aws.derive("vpce-00000003", "eu-west-1").unwrap();
        assert_eq!(unknown.use_case, EndpointUseCase::GeneralAccess);
        assert_eq!(unknown.aws_endpoint_service_id, None);
    }
}
