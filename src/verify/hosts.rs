//! Which names to check: the names cluster nodes use for the REST API and the relay, derived from
//! what EC2 and the account API say (the endpoints' DNS entries, their services' private DNS
//! names, the workspaces' deployment names) and the region. Pure functions, no I/O.

use std::collections::HashSet;

use crate::aws::services::{Partition, partition_of, relay_hostname};

#[cfg(test)]
use super::RELAY_PORT;
use super::REST_API_PORT;
use super::model::{EndpointRole, MAX_NAMES, NameCheck, check_host};

/// The DNS names EC2 reports for one endpoint, as given: `DnsEntries[].DnsName` of
/// `DescribeVpcEndpoints` (the `vpce-…` names and, with private DNS on, the service's names) and
/// `PrivateDnsNames[].PrivateDnsName` of the endpoint's service (`DescribeVpcEndpointServices`).
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointDnsNames<'a> {
    pub dns_entries: &'a [String],
    pub service_private_dns_names: &'a [String],
}

/// The host of a workspace's URL, `<deployment name>.cloud.databricks.com`
/// (<https://docs.databricks.com/aws/en/workspace/workspace-details>); in GovCloud the zone is
/// `cloud.databricks.us`, as for the relay ([`relay_hostname`]).
pub fn workspace_host(deployment_name: &str, region: &str) -> String {
    let zone = match partition_of(region) {
        Partition::AwsUsGov => "cloud.databricks.us",
        Partition::Aws | Partition::AwsCn => "cloud.databricks.com",
    };
    format!("{}.{zone}", deployment_name.trim().to_ascii_lowercase())
}

/// The names to verify, most telling first, at most [`MAX_NAMES`]:
/// 1. `tunnel.<region>.cloud.databricks.com`, the relay name cluster nodes use
///    (<https://docs.databricks.com/aws/en/resources/ip-domain-region>), on `relay_port` (6666,
///    or 2443 for workspaces with the compliance security profile);
/// 2. each endpoint's private DNS names (the service's, and those among its DNS entries), on
///    6666/`relay_port` or 443;
/// 3. each endpoint's regional `vpce-…` name, which resolves to the endpoint's addresses whether
///    private DNS works or not: when it fails too, the VPC's DNS itself is broken;
/// 4. the workspaces' own hosts (from [`workspace_host`] or their URLs), on 443.
///
/// Wildcards (`*.…`), zonal `vpce-…` names, duplicates and anything that is not a DNS name are
/// left out. A name given in both roles is checked in the first.
pub fn name_checks(
    region: &str,
    workspace_hosts: &[String],
    rest_api: EndpointDnsNames<'_>,
    relay: EndpointDnsNames<'_>,
    relay_port: u16,
) -> Vec<NameCheck> {
    let relay_ports = [relay_port];
    let mut checks = Checks::default();
    checks.add(&relay_hostname(region), EndpointRole::Relay, &relay_ports);
    for name in private_names(relay) {
        checks.add(name, EndpointRole::Relay, &relay_ports);
    }
    for name in private_names(rest_api) {
        checks.add(name, EndpointRole::RestApi, &[REST_API_PORT]);
    }
    if let Some(name) = regional_vpce_name(relay.dns_entries) {
        checks.add(name, EndpointRole::Relay, &relay_ports);
    }
    if let Some(name) = regional_vpce_name(rest_api.dns_entries) {
        checks.add(name, EndpointRole::RestApi, &[REST_API_PORT]);
    }
    for host in workspace_hosts {
        checks.add(host_of_url(host), EndpointRole::RestApi, &[REST_API_PORT]);
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
    fn add(&mut self, name: &str, endpoint: EndpointRole, ports: &[u16]) {
        let host = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.starts_with("*.") || check_host(&host).is_err() || !self.seen.insert(host.clone()) {
            return;
        }
        self.list.push(NameCheck {
            host,
            endpoint,
            ports: ports.to_vec(),
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

    fn hosts(checks: &[NameCheck]) -> Vec<(&str, EndpointRole, Vec<u16>)> {
        checks
            .iter()
            .map(|c| (c.host.as_str(), c.endpoint, c.ports.clone()))
            .collect()
    }

    #[test]
    fn names_come_from_the_region_the_endpoints_and_the_workspaces() {
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
        let workspaces = strings(&[
            "https://dbc-1234abcd-5678.cloud.databricks.com/",
            "*.cloud.databricks.com",
        ]);
        let checks = name_checks(
            "us-east-1",
            &workspaces,
            EndpointDnsNames {
                dns_entries: &rest_entries,
                service_private_dns_names: &rest_service,
            },
            EndpointDnsNames {
                dns_entries: &relay_entries,
                service_private_dns_names: &relay_service,
            },
            RELAY_PORT,
        );
        use EndpointRole::{Relay, RestApi};
        assert_eq!(
            hosts(&checks),
            vec![
                ("tunnel.us-east-1.cloud.databricks.com", Relay, vec![6666]),
                (
                    "tunnel.privatelink.us-east-1.cloud.databricks.com",
                    Relay,
                    vec![6666]
                ),
                (
                    "nvirginia.privatelink.cloud.databricks.com",
                    RestApi,
                    vec![443]
                ),
                (
                    "vpce-0f0e0d0c0b0a09080-zyxwvuts.vpce-svc-00018a8c3ff62ffdf.us-east-1.vpce.amazonaws.com",
                    Relay,
                    vec![6666]
                ),
                (
                    "vpce-0a1b2c3d4e5f60718-abcdefgh.vpce-svc-09143d1e626de2f04.us-east-1.vpce.amazonaws.com",
                    RestApi,
                    vec![443]
                ),
                ("dbc-1234abcd-5678.cloud.databricks.com", RestApi, vec![443]),
            ]
        );
    }

    #[test]
    fn the_fips_relay_port_and_govcloud_zone_are_followed() {
        let checks = name_checks(
            "us-gov-west-1",
            &[workspace_host("dbc-9", "us-gov-west-1")],
            EndpointDnsNames::default(),
            EndpointDnsNames::default(),
            2443,
        );
        assert_eq!(
            hosts(&checks),
            vec![
                (
                    "tunnel.us-gov-west-1.cloud.databricks.us",
                    EndpointRole::Relay,
                    vec![2443]
                ),
                (
                    "dbc-9.cloud.databricks.us",
                    EndpointRole::RestApi,
                    vec![443]
                ),
            ]
        );
        assert_eq!(
            workspace_host(" DBC-1 ", "eu-west-1"),
            "dbc-1.cloud.databricks.com"
        );
    }

    #[test]
    fn many_workspaces_are_cut_to_the_limit_after_the_endpoint_names() {
        let workspaces: Vec<String> = (0..100)
            .map(|i| format!("dbc-{i}.cloud.databricks.com:443"))
            .chain([
                "not a host".to_owned(),
                "dbc-0.cloud.databricks.com".to_owned(),
            ])
            .collect();
        let checks = name_checks(
            "eu-west-1",
            &workspaces,
            EndpointDnsNames::default(),
            EndpointDnsNames::default(),
            RELAY_PORT,
        );
        assert_eq!(checks.len(), MAX_NAMES);
        assert_eq!(checks[0].host, "tunnel.eu-west-1.cloud.databricks.com");
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
