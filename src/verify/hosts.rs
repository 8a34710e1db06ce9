//! Which names to check: what EC2 says of the endpoints (their DNS entries, their services'
//! private DNS names) and the names the caller adds (the relay's public and PrivateLink names,
//! the workspaces' hosts), each with the endpoint it should lead to and what it must show. Pure
//! functions, no I/O; the caller derives every name, so this module knows no region or partition.

use std::collections::HashSet;

#[cfg(test)]
use super::RELAY_PORT;
use super::REST_API_PORT;
use super::model::{EndpointRole, Expect, MAX_NAMES, NameCheck, check_host};

/// The DNS names EC2 reports for one endpoint, as given: `DnsEntries[].DnsName` of
/// `DescribeVpcEndpoints` (the `vpce-…` names and, with private DNS on, the service's names) and
/// `PrivateDnsNames[].PrivateDnsName` of the endpoint's service (`DescribeVpcEndpointServices`).
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointDnsNames<'a> {
    pub dns_entries: &'a [String],
    pub service_private_dns_names: &'a [String],
}

/// A name the caller adds to what EC2 reports: a host name or a URL (its host is taken).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraName {
    pub host: String,
    pub endpoint: EndpointRole,
    pub expect: Expect,
}

/// The names to verify, most telling first, at most [`MAX_NAMES`]:
/// 1. each endpoint's private DNS names (its service's, and those among its DNS entries), the
///    names its private DNS serves: required, on `relay_port` (6666, or 2443 under the
///    compliance security profile) or 443;
/// 2. each endpoint's regional `vpce-…` name, which resolves to the endpoint's addresses whether
///    private DNS works or not: when it fails too, the VPC's DNS itself is broken; required;
/// 3. `extra`, in order, as the caller says (on 443 or `relay_port` by their endpoint).
///
/// Wildcards (`*.…`), zonal `vpce-…` names, duplicates and anything that is not a DNS name are
/// left out. A name given twice is checked as it came first.
pub fn name_checks(
    rest_api: EndpointDnsNames<'_>,
    relay: EndpointDnsNames<'_>,
    relay_port: u16,
    extra: &[ExtraName],
) -> Vec<NameCheck> {
    let port = |role: EndpointRole| match role {
        EndpointRole::RestApi => REST_API_PORT,
        EndpointRole::Relay => relay_port,
    };
    let mut checks = Checks::default();
    for (names, role) in [
        (relay, EndpointRole::Relay),
        (rest_api, EndpointRole::RestApi),
    ] {
        for name in private_names(names) {
            checks.add(name, role, port(role), Expect::Endpoint);
        }
    }
    for (names, role) in [
        (relay, EndpointRole::Relay),
        (rest_api, EndpointRole::RestApi),
    ] {
        if let Some(name) = regional_vpce_name(names.dns_entries) {
            checks.add(name, role, port(role), Expect::Endpoint);
        }
    }
    for name in extra {
        checks.add(
            host_of_url(&name.host),
            name.endpoint,
            port(name.endpoint),
            name.expect,
        );
    }
    checks.list.truncate(MAX_NAMES);
    checks.list
}

#[derive(Default)]
struct Checks {
    seen: HashSet<String>,
    list: Vec<NameCheck>,
}

impl Checks {
    fn add(&mut self, name: &str, endpoint: EndpointRole, port: u16, expect: Expect) {
        let host = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.starts_with("*.") || check_host(&host).is_err() || !self.seen.insert(host.clone()) {
            return;
        }
        self.list.push(NameCheck {
            host,
            endpoint,
            ports: vec![port],
            expect,
        });
    }
}

fn is_vpce_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.starts_with("vpce-") && name.contains(".vpce.amazonaws.com")
}

/// The service's private DNS names and the endpoint's DNS entries that are not `vpce-…` names.
fn private_names(endpoint: EndpointDnsNames<'_>) -> impl Iterator<Item = &str> {
    endpoint
        .service_private_dns_names
        .iter()
        .chain(
            endpoint
                .dns_entries
                .iter()
                .filter(|name| !is_vpce_name(name)),
        )
        .map(String::as_str)
}

/// The regional name is `vpce-<id>-<suffix>.vpce-svc-…`; zonal ones add `-<availability zone>`
/// to the first label.
fn regional_vpce_name(dns_entries: &[String]) -> Option<&str> {
    dns_entries
        .iter()
        .map(String::as_str)
        .filter(|name| is_vpce_name(name))
        .find(|name| {
            name.split('.')
                .next()
                .is_some_and(|label| label.split('-').count() == 3)
        })
}

/// `https://dbc-1.cloud.databricks.com/` and `dbc-1.cloud.databricks.com:443` both give the host.
fn host_of_url(value: &str) -> &str {
    let value = value.trim();
    let value = value.split_once("://").map_or(value, |(_, rest)| rest);
    let value = value.split(['/', '?', '#']).next().unwrap_or(value);
    value.split(':').next().unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn hosts(checks: &[NameCheck]) -> Vec<(&str, EndpointRole, Vec<u16>, Expect)> {
        checks
            .iter()
            .map(|c| (c.host.as_str(), c.endpoint, c.ports.clone(), c.expect))
            .collect()
    }

    fn extra(host: &str, endpoint: EndpointRole, expect: Expect) -> ExtraName {
        ExtraName {
            host: host.to_owned(),
            endpoint,
            expect,
        }
    }

    #[test]
    fn ec2s_names_are_required_and_the_callers_come_as_asked() {
        let rest_entries = strings(&[
            "vpce-0a1b2c3d4e5f60718-abcdefgh.vpce-svc-09143d1e626de2f04.us-east-1.vpce.amazonaws.com",
            "vpce-0a1b2c3d4e5f60718-abcdefgh-us-east-1a.vpce-svc-09143d1e626de2f04.us-east-1.vpce.amazonaws.com",
            "nvirginia.privatelink.cloud.databricks.com",
        ]);
        let rest_service = strings(&["nvirginia.privatelink.cloud.databricks.com"]);
        let relay_entries = strings(&[
            "vpce-0f0e0d0c0b0a09080-zyxwvuts-us-east-1b.vpce-svc-00018a8c3ff62ffdf.us-east-1.vpce.amazonaws.com",
            "vpce-0f0e0d0c0b0a09080-zyxwvuts.vpce-svc-00018a8c3ff62ffdf.us-east-1.vpce.amazonaws.com",
        ]);
        let relay_service = strings(&["Tunnel.PrivateLink.us-east-1.cloud.databricks.com."]);
        use EndpointRole::{Relay, RestApi};
        use Expect::{Endpoint, ReportOnly};
        let checks = name_checks(
            EndpointDnsNames {
                dns_entries: &rest_entries,
                service_private_dns_names: &rest_service,
            },
            EndpointDnsNames {
                dns_entries: &relay_entries,
                service_private_dns_names: &relay_service,
            },
            RELAY_PORT,
            &[
                // Already reported by EC2: stays required.
                extra(
                    "tunnel.privatelink.us-east-1.cloud.databricks.com",
                    Relay,
                    ReportOnly,
                ),
                extra("tunnel.us-east-1.cloud.databricks.com", Relay, ReportOnly),
                extra(
                    "https://dbc-1234abcd-5678.cloud.databricks.com/",
                    RestApi,
                    ReportOnly,
                ),
                extra("*.cloud.databricks.com", RestApi, Endpoint),
            ],
        );
        assert_eq!(
            hosts(&checks),
            vec![
                (
                    "tunnel.privatelink.us-east-1.cloud.databricks.com",
                    Relay,
                    vec![6666],
                    Endpoint
                ),
                (
                    "nvirginia.privatelink.cloud.databricks.com",
                    RestApi,
                    vec![443],
                    Endpoint
                ),
                (
                    "vpce-0f0e0d0c0b0a09080-zyxwvuts.vpce-svc-00018a8c3ff62ffdf.us-east-1.vpce.amazonaws.com",
                    Relay,
                    vec![6666],
                    Endpoint
                ),
                (
                    "vpce-0a1b2c3d4e5f60718-abcdefgh.vpce-svc-09143d1e626de2f04.us-east-1.vpce.amazonaws.com",
                    RestApi,
                    vec![443],
                    Endpoint
                ),
                (
                    "tunnel.us-east-1.cloud.databricks.com",
                    Relay,
                    vec![6666],
                    ReportOnly
                ),
                (
                    "dbc-1234abcd-5678.cloud.databricks.com",
                    RestApi,
                    vec![443],
                    ReportOnly
                ),
            ]
        );
    }

    #[test]
    fn the_relay_port_follows_the_compliance_profile() {
        let checks = name_checks(
            EndpointDnsNames::default(),
            EndpointDnsNames::default(),
            2443,
            &[
                extra(
                    "tunnel.us-gov-west-1.cloud.databricks.us",
                    EndpointRole::Relay,
                    Expect::ReportOnly,
                ),
                extra(
                    "dbc-9.cloud.databricks.us",
                    EndpointRole::RestApi,
                    Expect::Endpoint,
                ),
            ],
        );
        assert_eq!(checks[0].ports, [2443]);
        assert_eq!(checks[1].ports, [443]);
    }

    #[test]
    fn many_workspaces_are_cut_to_the_limit_after_the_endpoint_names() {
        let relay_service = strings(&["tunnel.privatelink.eu-west-1.cloud.databricks.com"]);
        let workspaces: Vec<ExtraName> = (0..100)
            .map(|i| format!("dbc-{i}.cloud.databricks.com:443"))
            .chain([
                "not a host".to_owned(),
                "dbc-0.cloud.databricks.com".to_owned(),
            ])
            .map(|host| extra(&host, EndpointRole::RestApi, Expect::Endpoint))
            .collect();
        let checks = name_checks(
            EndpointDnsNames::default(),
            EndpointDnsNames {
                dns_entries: &[],
                service_private_dns_names: &relay_service,
            },
            RELAY_PORT,
            &workspaces,
        );
        assert_eq!(checks.len(), MAX_NAMES);
        assert_eq!(
            checks[0].host,
            "tunnel.privatelink.eu-west-1.cloud.databricks.com"
        );
        assert_eq!(checks[1].host, "dbc-0.cloud.databricks.com");
        assert_eq!(
            checks[MAX_NAMES - 1].host,
            format!("dbc-{}.cloud.databricks.com", MAX_NAMES - 2)
        );
    }

    #[test]
    fn urls_give_their_host() {
        assert_eq!(
            host_of_url("https://dbc-1.cloud.databricks.com/?o=1#x"),
            "dbc-1.cloud.databricks.com"
        );
        assert_eq!(
            host_of_url("dbc-1.cloud.databricks.com:443"),
            "dbc-1.cloud.databricks.com"
        );
        assert_eq!(
            host_of_url(" dbc-1.cloud.databricks.com "),
            "dbc-1.cloud.databricks.com"
        );
    }
}
