//! The AWS side of a Create or Update: the two endpoints checked against EC2 while signing in to
//! the account, the `Network` property's subnets and security groups described, the endpoints'
//! ports checked, and private DNS turned on. Makes no Databricks write.

use std::time::Duration;

use tokio::time::Instant;

use crate::aws::services;
use crate::aws::{
    Ec2, EndpointServices, IngressRule, Secrets, VpcEndpointInfo, check_endpoint_pair,
    missing_ingress_ports,
};
use crate::cfn::Progress;
use crate::databricks::{AccountClient, ClientCredentials, DatabricksHttp};

use super::error::ResourceError;
use super::networks::NetworkParts;
use super::pair::EndpointPair;
use super::properties::{self as property, Properties};

/// The endpoints named by the properties that set them, so a reason says what to change.
const ENDPOINT_PROPERTIES: crate::aws::EndpointNames = crate::aws::EndpointNames {
    rest_api: property::REST_API_VPC_ENDPOINT_ID,
    relay: property::RELAY_VPC_ENDPOINT_ID,
};

/// Checks the two endpoints against EC2 and, at the same time, signs in to the account with the
/// service principal's credentials; returns the signed-in client. Makes no Databricks write.
pub async fn prepare(
    ec2: &Ec2,
    secrets: &Secrets,
    http: &DatabricksHttp,
    props: &Properties,
    progress: &Progress,
    deadline: Instant,
) -> Result<(AccountClient, EndpointPair<VpcEndpointInfo>), ResourceError> {
    progress.step("checking the VPC endpoints and signing in to the Databricks account");
    let ids: Vec<String> = props.endpoints.iter().cloned().collect();
    // The credentials are read and exchanged for a token while EC2 describes the endpoints: every
    // Databricks call needs the token first, and fetching it writes nothing.
    let sign_in = async {
        let principal = secrets
            .service_principal(&props.target.credentials_secret_arn, deadline)
            .await?;
        let client = AccountClient::new(
            http,
            &props.target.account_host,
            &props.target.account_id,
            ClientCredentials::new(principal.client_id.clone(), principal.client_secret.clone()),
            deadline,
        )?;
        client.ensure_token().await?;
        Ok::<_, ResourceError>(client)
    };
    let (endpoints, signed_in) = tokio::join!(
        ec2.describe_vpc_endpoints(&props.region, &ids, deadline),
        sign_in,
    );
    // Both are checked before either failure is reported, so one failed deployment names every
    // problem with the endpoints and the credentials.
    let checked = endpoints
        .map_err(ResourceError::from)
        .and_then(|endpoints| check_endpoints(props, endpoints));
    let (client, pair) = match (signed_in, checked) {
        (Ok(client), Ok(pair)) => (client, pair),
        (Err(credentials), Err(endpoints)) => {
            return Err(ResourceError::Several(vec![
                endpoints.to_string(),
                credentials.to_string(),
            ]));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok((client, pair))
}

/// The two endpoints as EC2 describes them, checked against the region's Databricks services.
fn check_endpoints(
    props: &Properties,
    endpoints: Vec<VpcEndpointInfo>,
) -> Result<EndpointPair<VpcEndpointInfo>, ResourceError> {
    let find = |id: &str| endpoints.iter().find(|e| e.id == id).cloned();
    let (Some(rest), Some(relay)) = (
        find(&props.endpoints.rest_api),
        find(&props.endpoints.relay),
    ) else {
        return Err(ResourceError::Aws(crate::aws::AwsError::EndpointNotFound {
            id: format!("{} or {}", props.endpoints.rest_api, props.endpoints.relay),
        }));
    };
    let known: Vec<(&str, EndpointServices)> = services::endpoint_services(&props.region);
    let check = check_endpoint_pair(&rest, &relay, &props.region, &known).map_err(|problems| {
        ResourceError::Endpoints(
            problems
                .iter()
                .map(|problem| problem.describe(&ENDPOINT_PROPERTIES))
                .collect(),
        )
    })?;
    if !check.private_dns_missing.is_empty() && !props.enable_private_dns {
        return Err(ResourceError::PrivateDnsDisabled(check.private_dns_missing));
    }
    Ok(EndpointPair {
        rest_api: rest,
        relay,
    })
}

/// The endpoints' security groups found and their inbound rules, as `Ec2::ingress_rules` reads
/// them.
pub type EndpointIngress = (Vec<String>, Vec<IngressRule>);

/// Reads the endpoints' security groups once per request, and logs a warning when they do not
/// admit the ports the compute plane uses (a warning only, since the rule may sit on a group
/// this function cannot see through). The reading is handed to the first VPC check
/// (`readiness::check`), so the groups are not read twice; `None` when EC2 could not be read.
pub async fn read_endpoint_ingress(
    ec2: &Ec2,
    region: &str,
    endpoints: &EndpointPair<VpcEndpointInfo>,
    deadline: Instant,
) -> Option<EndpointIngress> {
    let mut groups: Vec<String> = endpoints
        .iter()
        .flat_map(|e| e.security_group_ids.clone())
        .collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        return Some((Vec::new(), Vec::new()));
    }
    match ec2.ingress_rules(region, &groups, deadline).await {
        Ok(read) => {
            let ranges: Vec<(u16, u16)> = read.1.iter().map(|rule| rule.ports).collect();
            let missing = missing_ingress_ports(&ranges);
            if !missing.is_empty() {
                tracing::warn!(
                    security_groups = %groups.join(","),
                    missing_ports = ?missing,
                    "the endpoints' security groups do not admit these ports from the cluster security group; clusters need 443 and the relay port (6666, or 2443 with FIPS)"
                );
            }
            Some(read)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the endpoints' security groups to check their ports");
            None
        }
    }
}

/// The `Network` property's subnets and security groups as EC2 describes them, both in one
/// round trip; `None` without a `Network`.
pub async fn describe_network_parts(
    ec2: &Ec2,
    props: &Properties,
    deadline: Instant,
) -> Result<Option<NetworkParts>, ResourceError> {
    let Some(spec) = &props.network else {
        return Ok(None);
    };
    let (subnets, security_groups) = tokio::join!(
        ec2.describe_subnets(&props.region, &spec.subnet_ids, deadline),
        ec2.describe_security_groups(&props.region, &spec.security_group_ids, deadline),
    );
    Ok(Some(NetworkParts {
        subnets: subnets?,
        security_groups: security_groups?,
    }))
}

/// Turns private DNS on once Databricks has accepted the endpoint (before acceptance AWS refuses
/// it), then reads it back: EC2 can accept the call and still leave it off.
pub async fn enable_private_dns(
    ec2: &Ec2,
    region: &str,
    id: &str,
    deadline: Instant,
) -> Result<(), ResourceError> {
    ec2.enable_private_dns(region, id, deadline).await?;
    let mut delay = Duration::from_millis(250);
    for _ in 0..6 {
        let now = ec2
            .describe_vpc_endpoints(region, &[id.to_string()], deadline)
            .await?;
        if now.iter().any(|e| e.id == id && e.private_dns_enabled) {
            tracing::info!(vpce = id, "private DNS enabled");
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    Err(ResourceError::PrivateDnsNotEnabled {
        id: id.to_string(),
        detail: "EC2 accepted the change but still reports private DNS off; enable it on the endpoint and retry"
            .to_string(),
    })
}
