//! Whether clusters of the workspaces about to be switched can reach the endpoints, judged from
//! what EC2 says, before any Databricks write and again right before the switch (which cannot be
//! undone): the VPC's DNS attributes and DHCP name servers, the endpoints' availability zones
//! against the cluster subnets', and the endpoints' security groups against the cluster security
//! groups and subnets. A check that proves the path broken refuses, naming what to change; one
//! that can be wrong (custom DNS that may forward, a rule by prefix list, a subnet EC2 does not
//! know) warns: logged, and carried into a failure reason. What clusters need besides the
//! endpoints (S3, STS, Kinesis) is judged by `egress` from the same read, and only warns.
//! Why each matters: README "How it behaves", `docs/verification.md#the-dns-chain` and the AWS guide to private DNS of interface
//! endpoints, <https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html#private-dns>.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use tokio::time::Instant;

use crate::aws::vpc::AMAZON_PROVIDED_DNS;
use crate::aws::{
    AwsError, Ec2, IngressRule, RuleSource, SubnetPlacement, VpcDns, VpcEndpointInfo,
};
use crate::databricks::{Network, Workspace};

pub use super::cluster::Cluster;
use super::error::ResourceError;
use super::names::Role;
use super::pair::EndpointPair;
use super::properties::Properties;

use crate::endpoint::{FIPS_RELAY_PORT, RELAY_PORT, REST_API_PORT};

/// The one error of this module: the path is proven broken, or the facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error(
        "{}. No workspace was switched (a switch cannot be undone){}",
        .refusals.join("; "),
        warnings_suffix(.warnings)
    )]
    Broken {
        refusals: Vec<String>,
        warnings: Vec<String>,
    },

    #[error("could not check the VPC before switching workspaces: {0}")]
    Aws(#[from] AwsError),
}

fn warnings_suffix(warnings: &[String]) -> String {
    if warnings.is_empty() {
        String::new()
    } else {
        format!(". Warnings: {}", warnings.join("; "))
    }
}

/// One endpoint, with the ports its clients need (any one of them suffices).
#[derive(Clone, Debug)]
pub struct EndpointSide {
    pub id: String,
    pub what: &'static str,
    pub ports: &'static [u16],
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// Everything EC2 said that the rule needs.
#[derive(Clone, Debug)]
pub struct Facts {
    pub dns: VpcDns,
    pub endpoints: Vec<EndpointSide>,
    pub clusters: Vec<Cluster>,
    /// Endpoint and cluster subnets EC2 knows.
    pub subnets: Vec<SubnetPlacement>,
    /// Endpoint security groups EC2 knows.
    pub groups_found: Vec<String>,
    pub rules: Vec<IngressRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
}

/// The workspaces in `WorkspaceIds` with the subnets and security groups their clusters run in:
/// the `Network` property's when given (it replaces their network), else their current network's.
pub fn clusters(
    props: &Properties,
    workspaces: &[Workspace],
    networks: &[Network],
) -> Vec<Cluster> {
    props
        .workspace_ids
        .iter()
        .filter_map(|id| workspaces.iter().find(|w| w.workspace_id == *id))
        .filter_map(|ws| {
            let (subnets, groups) = match &props.network {
                Some(spec) => (spec.subnet_ids.clone(), spec.security_group_ids.clone()),
                None => {
                    let nid = ws.network_id.as_deref()?;
                    let n = networks.iter().find(|n| n.network_id == nid)?;
                    (n.subnet_ids.clone(), n.security_group_ids.clone())
                }
            };
            Some(Cluster {
                workspace_id: ws.workspace_id,
                subnet_ids: subnets,
                security_group_ids: groups,
            })
        })
        .collect()
}

/// Reads the facts from EC2 and judges them; refuses with every problem at once, or returns the
/// warnings (already logged).
pub async fn check(
    ec2: &Ec2,
    props: &Properties,
    endpoints: &EndpointPair<VpcEndpointInfo>,
    clusters: Vec<Cluster>,
    known_ingress: Option<(Vec<String>, Vec<IngressRule>)>,
    deadline: Instant,
) -> Result<Vec<String>, NotReady> {
    // The check of the pair made sure both endpoints are in one VPC.
    let vpc_id = endpoints.rest_api.vpc_id.clone();
    let region = props.region.as_str();
    let sides = endpoint_sides(endpoints);
    let read = Reading {
        ec2,
        region,
        vpc_id: &vpc_id,
        known_ingress,
        deadline,
    };
    let facts = read_facts(read, sides, clusters).await?;
    let mut verdict = judge(&facts);
    for w in &verdict.warnings {
        tracing::warn!(warning = %w, "the VPC may not let clusters reach the endpoints");
    }
    // Read after the facts that can refuse, not beside them: these only ever warn, so they must
    // not slow those reads down near the deadline. A read cut short is a warning of its own.
    let egress = egress_warnings(ec2, region, &vpc_id, &facts.clusters, deadline).await;
    verdict.warnings.extend(egress);
    if verdict.refusals.is_empty() {
        Ok(verdict.warnings)
    } else {
        Err(NotReady::Broken {
            refusals: verdict.refusals,
            warnings: verdict.warnings,
        })
    }
}

/// Each endpoint with what it is called in a reason and the ports its clients need.
fn endpoint_sides(endpoints: &EndpointPair<VpcEndpointInfo>) -> Vec<EndpointSide> {
    endpoints
        .with_roles()
        .into_iter()
        .map(|(role, e)| {
            let relay = role == Role::Relay;
            EndpointSide {
                id: e.id.clone(),
                what: if relay {
                    "SCC relay endpoint"
                } else {
                    "REST API endpoint"
                },
                ports: if relay {
                    &[RELAY_PORT, FIPS_RELAY_PORT]
                } else {
                    &[REST_API_PORT]
                },
                subnet_ids: e.subnet_ids.clone(),
                security_group_ids: e.security_group_ids.clone(),
            }
        })
        .collect()
}

/// Where and until when the facts are read, and the endpoints' security groups when the request
/// read them already (`prepare::read_endpoint_ingress`).
struct Reading<'a> {
    ec2: &'a Ec2,
    region: &'a str,
    vpc_id: &'a str,
    known_ingress: Option<(Vec<String>, Vec<IngressRule>)>,
    deadline: Instant,
}

/// The VPC's DNS, and (when there are clusters) the subnets' zones and the endpoints' security
/// group rules, read from EC2 side by side; the rules are read only when not known already.
async fn read_facts(
    read: Reading<'_>,
    sides: Vec<EndpointSide>,
    clusters: Vec<Cluster>,
) -> Result<Facts, NotReady> {
    let Reading {
        ec2,
        region,
        vpc_id,
        known_ingress,
        deadline,
    } = read;
    let subnet_ids: Vec<String> = unique(
        sides
            .iter()
            .flat_map(|s| s.subnet_ids.iter())
            .chain(clusters.iter().flat_map(|c| c.subnet_ids.iter())),
    );
    let group_ids: Vec<String> = unique(sides.iter().flat_map(|s| s.security_group_ids.iter()));
    let (dns, subnets, rules) = tokio::join!(
        ec2.vpc_dns(region, vpc_id, deadline),
        async {
            if clusters.is_empty() {
                Ok(Vec::new())
            } else {
                ec2.subnet_placements(region, &subnet_ids, deadline).await
            }
        },
        async {
            match known_ingress {
                _ if clusters.is_empty() => Ok((Vec::new(), Vec::new())),
                Some(known) => Ok(known),
                None => ec2.ingress_rules(region, &group_ids, deadline).await,
            }
        },
    );
    let (groups_found, rules) = rules?;
    Ok(Facts {
        dns: dns?,
        endpoints: sides,
        clusters,
        subnets: subnets?,
        groups_found,
        rules,
    })
}

/// Whether the clusters reach S3, STS and Kinesis (`egress`), logged; none without clusters.
async fn egress_warnings(
    ec2: &Ec2,
    region: &str,
    vpc_id: &str,
    clusters: &[Cluster],
    deadline: Instant,
) -> Vec<String> {
    let egress = if clusters.is_empty() {
        Vec::new()
    } else {
        let read = ec2.vpc_egress(region, vpc_id, deadline).await;
        super::egress::warnings(region, vpc_id, clusters, read)
    };
    for w in &egress {
        tracing::warn!(warning = %w, "the VPC may leave clusters without S3, STS or Kinesis");
    }
    egress
}

impl From<NotReady> for ResourceError {
    fn from(error: NotReady) -> Self {
        ResourceError::NotReady(error.to_string())
    }
}

/// A failure after the checks passed, with what they warned about appended: the warnings may be
/// why it failed.
pub fn with_warnings(error: ResourceError, warnings: &[String]) -> ResourceError {
    if warnings.is_empty() {
        error
    } else {
        ResourceError::Several(vec![
            error.to_string(),
            format!("the VPC checks warned: {}", warnings.join("; ")),
        ])
    }
}

fn unique<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    ids.cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// The rule, on facts alone.
pub fn judge(facts: &Facts) -> Verdict {
    let mut v = Verdict::default();
    judge_dns(&facts.dns, &mut v);

    let zone_of = |id: &str| {
        facts
            .subnets
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.availability_zone.as_str())
    };
    for cluster in &facts.clusters {
        let ws = cluster.workspace_id;
        let unknown: Vec<&str> = cluster
            .subnet_ids
            .iter()
            .filter(|s| zone_of(s).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            v.warnings.push(format!(
                "workspace {ws}'s subnets {} are not in EC2's answer, so their zones and address ranges could not be checked",
                unknown.join(", ")
            ));
        }
        let cluster_zones: BTreeSet<&str> = cluster
            .subnet_ids
            .iter()
            .filter_map(|s| zone_of(s))
            .collect();
        let cidrs: Vec<(&str, &str)> = cluster
            .subnet_ids
            .iter()
            .filter_map(|id| facts.subnets.iter().find(|s| &s.id == id))
            .map(|s| (s.id.as_str(), s.cidr_block.as_str()))
            .collect();
        for side in &facts.endpoints {
            let endpoint_zones: BTreeSet<&str> =
                side.subnet_ids.iter().filter_map(|s| zone_of(s)).collect();
            let missing: Vec<&str> = cluster_zones.difference(&endpoint_zones).copied().collect();
            if !missing.is_empty() && !endpoint_zones.is_empty() {
                v.warnings.push(format!(
                    "the {} {} has no network interface in {}, where workspace {ws}'s clusters run: they reach it across zones, and not at all if its zone fails. Add a subnet in {} to the endpoint",
                    side.what,
                    side.id,
                    missing.join(", "),
                    if missing.len() == 1 { "that zone" } else { "each of those zones" }
                ));
            }
            judge_ingress(facts, side, cluster, &cidrs, unknown.is_empty(), &mut v);
        }
    }
    v
}

/// The VPC's DNS: resolution or hostnames off refuse; custom DNS servers warn.
fn judge_dns(dns: &VpcDns, v: &mut Verdict) {
    if !dns.dns_support {
        v.refusals.push(format!(
            "VPC {} has DNS resolution (enableDnsSupport) turned off: nothing in it can resolve the endpoints' private names. Turn on DNS resolution in the VPC's settings",
            dns.vpc_id
        ));
    }
    if !dns.dns_hostnames {
        v.refusals.push(format!(
            "VPC {} has DNS hostnames (enableDnsHostnames) turned off: the endpoints' private DNS takes no effect without it. Turn on DNS hostnames in the VPC's settings",
            dns.vpc_id
        ));
    }
    let custom: Vec<&str> = dns
        .name_servers
        .iter()
        .map(String::as_str)
        .filter(|s| !s.eq_ignore_ascii_case(AMAZON_PROVIDED_DNS))
        .collect();
    if !custom.is_empty() {
        v.warnings.push(format!(
            "VPC {}'s DHCP option set {} hands out custom DNS servers {}: private DNS takes effect only if they forward the Databricks names to the VPC resolver (AmazonProvidedDNS, the VPC's base address plus two)",
            dns.vpc_id,
            dns.dhcp_options_id.as_deref().unwrap_or("(unknown)"),
            custom.join(", ")
        ));
    }
}

/// Whether the endpoint's security groups admit the cluster on one of its ports: proven to
/// (nothing said), proven not to (a refusal), or not provable either way (a warning).
fn judge_ingress(
    facts: &Facts,
    side: &EndpointSide,
    cluster: &Cluster,
    cidrs: &[(&str, &str)],
    all_subnets_known: bool,
    v: &mut Verdict,
) {
    let relevant = rules_on_ports(facts, side);
    if admits_cluster(&relevant, cluster, cidrs, all_subnets_known) {
        return;
    }
    if let Some(warning) = unprovable_ingress(facts, side, cluster, &relevant, all_subnets_known) {
        v.warnings.push(warning);
        return;
    }
    v.refusals.push(ingress_refusal(side, cluster, cidrs));
}

/// The rules of the endpoint's security groups that open one of its ports.
fn rules_on_ports<'a>(facts: &'a Facts, side: &EndpointSide) -> Vec<&'a IngressRule> {
    facts
        .rules
        .iter()
        .filter(|r| side.security_group_ids.contains(&r.group_id))
        .filter(|r| {
            side.ports
                .iter()
                .any(|p| r.ports.0 <= *p && *p <= r.ports.1)
        })
        .collect()
}

/// A rule admits the cluster's security groups, or the rules' ranges hold every cluster subnet
/// (all of them known).
fn admits_cluster(
    relevant: &[&IngressRule],
    cluster: &Cluster,
    cidrs: &[(&str, &str)],
    all_subnets_known: bool,
) -> bool {
    let by_group = relevant.iter().any(
        |r| matches!(&r.source, RuleSource::Group(g) if cluster.security_group_ids.contains(g)),
    );
    let ranges: Vec<(Ipv4Addr, u8)> = relevant
        .iter()
        .filter_map(|r| match &r.source {
            RuleSource::Ipv4(c) => parse_cidr(c),
            _ => None,
        })
        .collect();
    let by_cidr = all_subnets_known
        && !cidrs.is_empty()
        && cidrs.iter().all(|(_, c)| {
            parse_cidr(c).is_some_and(|inner| ranges.iter().any(|outer| contains(*outer, inner)))
        });
    by_group || by_cidr
}

/// The warning when admission can be neither proven nor disproven: a rule by prefix list, a
/// security group EC2 does not know, or a cluster subnet it does not know.
fn unprovable_ingress(
    facts: &Facts,
    side: &EndpointSide,
    cluster: &Cluster,
    relevant: &[&IngressRule],
    all_subnets_known: bool,
) -> Option<String> {
    let ws = cluster.workspace_id;
    let port = side.ports[0];
    let unknown_groups: Vec<&str> = side
        .security_group_ids
        .iter()
        .filter(|g| !facts.groups_found.contains(g))
        .map(String::as_str)
        .collect();
    let unprovable: Vec<&str> = relevant
        .iter()
        .filter_map(|r| match &r.source {
            RuleSource::PrefixList(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    if unprovable.is_empty() && unknown_groups.is_empty() && all_subnets_known {
        return None;
    }
    let groups = side.security_group_ids.join(", ");
    let sources = cluster.security_group_ids.join(", ");
    let why = if !unprovable.is_empty() {
        format!(
            "they admit TCP {port} only by prefix list {}",
            unprovable.join(", ")
        )
    } else if !unknown_groups.is_empty() {
        format!("EC2 does not know {}", unknown_groups.join(", "))
    } else {
        "not every cluster subnet is known to EC2".to_string()
    };
    Some(format!(
        "could not prove that the {} {}'s security groups ({groups}) admit workspace {ws}'s clusters ({sources}) on TCP {port}: {why}",
        side.what, side.id
    ))
}

/// The refusal when the security groups are proven not to admit the cluster, naming the rule
/// to add.
fn ingress_refusal(side: &EndpointSide, cluster: &Cluster, cidrs: &[(&str, &str)]) -> String {
    let ws = cluster.workspace_id;
    let port = side.ports[0];
    let groups = side.security_group_ids.join(", ");
    let sources = cluster.security_group_ids.join(", ");
    let subnets = cidrs
        .iter()
        .map(|(id, c)| format!("{id} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let fips = if side.ports.len() > 1 {
        format!(" (or {FIPS_RELAY_PORT} with the compliance security profile)")
    } else {
        String::new()
    };
    format!(
        "the {} {}'s security groups ({groups}) do not admit workspace {ws}'s cluster security groups ({sources}) or subnets ({subnets}) on TCP {port}{fips}: add an inbound rule for TCP {port} from {} to {}",
        side.what,
        side.id,
        cluster
            .security_group_ids
            .first()
            .map(String::as_str)
            .unwrap_or("the cluster security group"),
        side.security_group_ids
            .first()
            .map(String::as_str)
            .unwrap_or("the endpoint's security group"),
    )
}

fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((addr.parse().ok()?, len))
}

/// Whether range `outer` holds all of range `inner`.
fn contains(outer: (Ipv4Addr, u8), inner: (Ipv4Addr, u8)) -> bool {
    if outer.1 > inner.1 {
        return false;
    }
    let mask = |len: u8| u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    (u32::from(outer.0) & mask(outer.1)) == (u32::from(inner.0) & mask(outer.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_endpoints_groups_read_for_the_request_are_not_read_again() {
        use crate::aws::test_support::{Recorder, healthy_vpc_ec2_recorded, later};
        let endpoint = |id: &str| VpcEndpointInfo {
            id: id.into(),
            vpc_id: "vpc-1".into(),
            service_name: String::new(),
            endpoint_type: "Interface".into(),
            state: "available".into(),
            private_dns_enabled: true,
            subnet_ids: vec!["subnet-1".into()],
            security_group_ids: vec!["sg-e".into()],
            dns_names: Vec::new(),
            network_interface_ids: Vec::new(),
        };
        let endpoints = EndpointPair {
            rest_api: endpoint("vpce-rest"),
            relay: endpoint("vpce-relay"),
        };
        let clusters = vec![Cluster {
            workspace_id: 1,
            subnet_ids: vec!["subnet-1".into()],
            security_group_ids: vec!["sg-c".into()],
        }];
        let props = crate::resource::tests::properties(
            "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f",
            "https://accounts.cloud.databricks.com",
            ["vpce-rest", "vpce-relay"],
            "us-east-1",
        );
        let reads = |recorder: &Recorder| {
            recorder
                .requests()
                .iter()
                .filter(|r| r.body.contains("Action=DescribeSecurityGroups"))
                .count()
        };
        for (known, expected) in [(Some((vec!["sg-e".to_owned()], Vec::new())), 0), (None, 1)] {
            let recorder = Recorder::default();
            let ec2 = healthy_vpc_ec2_recorded("vpc-1", &recorder);
            let _ = check(&ec2, &props, &endpoints, clusters.clone(), known, later()).await;
            assert_eq!(reads(&recorder), expected);
        }
    }

    fn subnet(id: &str, zone: &str, cidr: &str) -> SubnetPlacement {
        SubnetPlacement {
            id: id.into(),
            availability_zone: zone.into(),
            cidr_block: cidr.into(),
        }
    }

    fn rule(group: &str, ports: (u16, u16), source: RuleSource) -> IngressRule {
        IngressRule {
            group_id: group.into(),
            ports,
            source,
        }
    }

    fn facts() -> Facts {
        let side = |id: &str, what, ports| EndpointSide {
            id: id.into(),
            what,
            ports,
            subnet_ids: vec!["subnet-e1".into(), "subnet-e2".into()],
            security_group_ids: vec!["sg-e".into()],
        };
        Facts {
            dns: VpcDns {
                vpc_id: "vpc-1".into(),
                dns_support: true,
                dns_hostnames: true,
                dhcp_options_id: Some("dopt-1".into()),
                name_servers: vec![AMAZON_PROVIDED_DNS.into()],
            },
            endpoints: vec![
                side("vpce-rest", "REST API endpoint", &[REST_API_PORT]),
                side(
                    "vpce-relay",
                    "SCC relay endpoint",
                    &[RELAY_PORT, FIPS_RELAY_PORT],
                ),
            ],
            clusters: vec![Cluster {
                workspace_id: 7,
                subnet_ids: vec!["subnet-c1".into(), "subnet-c2".into()],
                security_group_ids: vec!["sg-c".into()],
            }],
            subnets: vec![
                subnet("subnet-e1", "us-east-1a", "10.0.8.0/24"),
                subnet("subnet-e2", "us-east-1b", "10.0.9.0/24"),
                subnet("subnet-c1", "us-east-1a", "10.0.0.0/24"),
                subnet("subnet-c2", "us-east-1b", "10.0.1.0/24"),
            ],
            groups_found: vec!["sg-e".into()],
            rules: vec![
                rule("sg-e", (443, 443), RuleSource::Group("sg-c".into())),
                rule("sg-e", (6666, 6666), RuleSource::Group("sg-c".into())),
            ],
        }
    }

    #[test]
    fn a_vpc_that_is_all_right_passes_without_warnings() {
        assert_eq!(judge(&facts()), Verdict::default());
    }

    #[test]
    fn dns_support_or_hostnames_off_refuses() {
        let mut f = facts();
        f.dns.dns_support = false;
        f.dns.dns_hostnames = false;
        let v = judge(&f);
        assert_eq!(v.refusals.len(), 2, "{v:?}");
        assert!(
            v.refusals[0].contains("VPC vpc-1 has DNS resolution (enableDnsSupport) turned off")
        );
        assert!(v.refusals[1].contains("DNS hostnames (enableDnsHostnames) turned off"));
    }

    #[test]
    fn custom_dns_servers_warn_naming_them() {
        let mut f = facts();
        f.dns.name_servers = vec!["10.9.0.2".into(), AMAZON_PROVIDED_DNS.into()];
        let v = judge(&f);
        assert!(v.refusals.is_empty());
        assert_eq!(v.warnings.len(), 1);
        assert!(
            v.warnings[0].contains("dopt-1 hands out custom DNS servers 10.9.0.2: private DNS takes effect only if they forward"),
            "{}",
            v.warnings[0]
        );
    }

    #[test]
    fn a_zone_without_an_endpoint_interface_warns_naming_it() {
        let mut f = facts();
        f.subnets[3] = subnet("subnet-c2", "us-east-1c", "10.0.1.0/24");
        let v = judge(&f);
        assert!(v.refusals.is_empty());
        assert_eq!(v.warnings.len(), 2, "one per endpoint: {v:?}");
        assert!(v.warnings[0].contains(
            "the REST API endpoint vpce-rest has no network interface in us-east-1c, where workspace 7's clusters run"
        ));
    }

    #[test]
    fn a_missing_relay_rule_refuses_naming_the_rule_to_add() {
        let mut f = facts();
        f.rules.pop();
        let v = judge(&f);
        assert_eq!(v.refusals.len(), 1, "{v:?}");
        assert!(
            v.refusals[0].contains("the SCC relay endpoint vpce-relay's security groups (sg-e) do not admit workspace 7's cluster security groups (sg-c) or subnets (subnet-c1 10.0.0.0/24, subnet-c2 10.0.1.0/24) on TCP 6666 (or 2443 with the compliance security profile): add an inbound rule for TCP 6666 from sg-c to sg-e"),
            "{}",
            v.refusals[0]
        );
    }

    #[test]
    fn the_fips_relay_port_or_all_traffic_or_the_subnets_ranges_admit() {
        let mut f = facts();
        f.rules = vec![rule("sg-e", (0, 65535), RuleSource::Group("sg-c".into()))];
        assert_eq!(judge(&f), Verdict::default());
        f.rules = vec![
            rule("sg-e", (443, 443), RuleSource::Ipv4("10.0.0.0/23".into())),
            rule("sg-e", (2443, 2443), RuleSource::Ipv4("10.0.0.0/16".into())),
        ];
        assert_eq!(judge(&f), Verdict::default());
        // one subnet's range left out is a proven miss
        f.rules[0] = rule("sg-e", (443, 443), RuleSource::Ipv4("10.0.0.0/24".into()));
        let v = judge(&f);
        assert_eq!(v.refusals.len(), 1, "{v:?}");
        assert!(v.refusals[0].contains("REST API endpoint vpce-rest"));
    }

    #[test]
    fn a_rule_by_prefix_list_or_an_unknown_subnet_warns_instead_of_refusing() {
        let mut f = facts();
        f.rules = vec![
            rule("sg-e", (443, 443), RuleSource::PrefixList("pl-1".into())),
            rule("sg-e", (6666, 6666), RuleSource::Group("sg-c".into())),
        ];
        let v = judge(&f);
        assert!(v.refusals.is_empty(), "{v:?}");
        assert!(v.warnings[0].contains("admit TCP 443 only by prefix list pl-1"));

        let mut f = facts();
        f.subnets.pop();
        f.rules.clear();
        let v = judge(&f);
        assert!(v.refusals.is_empty(), "{v:?}");
        assert!(v.warnings[0].contains("workspace 7's subnets subnet-c2 are not in EC2's answer"));
    }

    #[test]
    fn cidr_containment() {
        let c = |s| parse_cidr(s).unwrap();
        assert!(contains(c("10.0.0.0/16"), c("10.0.1.0/24")));
        assert!(contains(c("0.0.0.0/0"), c("10.0.1.0/24")));
        assert!(!contains(c("10.0.1.0/24"), c("10.0.0.0/16")));
        assert!(!contains(c("10.1.0.0/16"), c("10.0.1.0/24")));
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("nonsense"), None);
    }
}
