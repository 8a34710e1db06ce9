//! The VPC around the endpoints as EC2 describes it, for the checks made before a workspace is
//! switched: the VPC's DNS attributes and DHCP option set, where subnets are and what address
//! ranges they hold, the inbound rules of security groups, and the endpoints' names, addresses
//! and services' private DNS names the verifier is given. Reads only; judges nothing.

use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use tokio::time::Instant;

use super::endpoints::{Ec2, tcp_range};
use super::error::{AwsError, ec2_call_error};
use super::within_deadline;

/// The DHCP option the VPC resolver (Route 53 Resolver) is named by.
pub const AMAZON_PROVIDED_DNS: &str = "AmazonProvidedDNS";

/// The VPC's DNS settings: the two attributes private DNS needs and the name servers its DHCP
/// option set hands to instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcDns {
    pub vpc_id: String,
    pub dns_support: bool,
    pub dns_hostnames: bool,
    /// `None` when the VPC has no DHCP option set of its own (`default`): instances then use the
    /// VPC resolver.
    pub dhcp_options_id: Option<String>,
    /// `domain-name-servers` of the option set; empty without one.
    pub name_servers: Vec<String>,
}

/// Where one subnet is and the IPv4 range it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetPlacement {
    pub id: String,
    pub availability_zone: String,
    pub cidr_block: String,
}

/// Whom one inbound rule admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSource {
    Group(String),
    Ipv4(String),
    Ipv6(String),
    PrefixList(String),
}

/// One inbound TCP rule ("all traffic" counts as TCP 0-65535) of a security group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRule {
    pub group_id: String,
    pub ports: (u16, u16),
    pub source: RuleSource,
}

/// One security group as the checks read it: its VPC and its inbound TCP rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub ingress: Vec<IngressRule>,
}

/// The inbound TCP rules of one permission of `group_id`, one per source ("all traffic" counts
/// as TCP 0-65535; other protocols give none).
fn ingress_of(group_id: &str, permission: &aws_sdk_ec2::types::IpPermission) -> Vec<IngressRule> {
    let Some(ports) = permission
        .ip_protocol()
        .and_then(|p| tcp_range(p, permission.from_port(), permission.to_port()))
    else {
        return Vec::new();
    };
    let groups = permission
        .user_id_group_pairs()
        .iter()
        .filter_map(|p| p.group_id())
        .map(|g| RuleSource::Group(g.to_owned()));
    let ipv4 = permission
        .ip_ranges()
        .iter()
        .filter_map(|r| r.cidr_ip())
        .map(|c| RuleSource::Ipv4(c.to_owned()));
    let ipv6 = permission
        .ipv6_ranges()
        .iter()
        .filter_map(|r| r.cidr_ipv6())
        .map(|c| RuleSource::Ipv6(c.to_owned()));
    let prefix_lists = permission
        .prefix_list_ids()
        .iter()
        .filter_map(|p| p.prefix_list_id())
        .map(|p| RuleSource::PrefixList(p.to_owned()));
    groups
        .chain(ipv4)
        .chain(ipv6)
        .chain(prefix_lists)
        .map(|source| IngressRule {
            group_id: group_id.to_owned(),
            ports,
            source,
        })
        .collect()
}

impl Ec2 {
    /// DNS support, DNS hostnames and the DHCP option set's name servers of one VPC.
    pub async fn vpc_dns(
        &self,
        region: &str,
        vpc_id: &str,
        deadline: Instant,
    ) -> Result<VpcDns, AwsError> {
        const ATTRIBUTE: &str = "DescribeVpcAttribute";
        const VPCS: &str = "DescribeVpcs";
        const DHCP: &str = "DescribeDhcpOptions";
        let client = self.client(region)?;
        let attribute = |name: VpcAttributeName| {
            client
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(name)
                .send()
        };
        let (support, hostnames, vpcs) = tokio::join!(
            within_deadline(
                ATTRIBUTE,
                deadline,
                attribute(VpcAttributeName::EnableDnsSupport)
            ),
            within_deadline(
                ATTRIBUTE,
                deadline,
                attribute(VpcAttributeName::EnableDnsHostnames)
            ),
            within_deadline(
                VPCS,
                deadline,
                client.describe_vpcs().vpc_ids(vpc_id).send()
            ),
        );
        let support = support?.map_err(|e| ec2_call_error(ATTRIBUTE, &e))?;
        let hostnames = hostnames?.map_err(|e| ec2_call_error(ATTRIBUTE, &e))?;
        let vpcs = vpcs?.map_err(|e| ec2_call_error(VPCS, &e))?;
        let dhcp_options_id = vpcs
            .vpcs()
            .iter()
            .find(|v| v.vpc_id() == Some(vpc_id))
            .and_then(|v| v.dhcp_options_id())
            .filter(|id| !id.is_empty() && *id != "default")
            .map(str::to_owned);
        let mut name_servers = Vec::new();
        if let Some(id) = &dhcp_options_id {
            let options = within_deadline(
                DHCP,
                deadline,
                client.describe_dhcp_options().dhcp_options_ids(id).send(),
            )
            .await?
            .map_err(|e| ec2_call_error(DHCP, &e))?;
            name_servers = options
                .dhcp_options()
                .iter()
                .flat_map(|o| o.dhcp_configurations())
                .filter(|c| c.key() == Some("domain-name-servers"))
                .flat_map(|c| c.values())
                .filter_map(|v| v.value().map(str::to_owned))
                .collect();
        }
        Ok(VpcDns {
            vpc_id: vpc_id.to_owned(),
            dns_support: support
                .enable_dns_support()
                .and_then(|a| a.value())
                .unwrap_or(false),
            dns_hostnames: hostnames
                .enable_dns_hostnames()
                .and_then(|a| a.value())
                .unwrap_or(false),
            dhcp_options_id,
            name_servers,
        })
    }

    /// Zone and IPv4 range of these subnets; ones EC2 does not know are left out (asked for by
    /// filter, so one unknown id does not fail the others).
    pub async fn subnet_placements(
        &self,
        region: &str,
        subnet_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<SubnetPlacement>, AwsError> {
        const OPERATION: &str = "DescribeSubnets";
        let client = self.client(region)?;
        // Without ids EC2 would list every subnet in the region.
        if subnet_ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = Filter::builder()
            .name("subnet-id")
            .set_values(Some(subnet_ids.to_vec()))
            .build();
        let output = within_deadline(
            OPERATION,
            deadline,
            client.describe_subnets().filters(filter).send(),
        )
        .await?
        .map_err(|e| ec2_call_error(OPERATION, &e))?;
        Ok(output
            .subnets()
            .iter()
            .filter_map(|s| {
                let id = s.subnet_id()?;
                subnet_ids.iter().any(|w| w == id).then(|| SubnetPlacement {
                    id: id.to_owned(),
                    availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
                    cidr_block: s.cidr_block().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// The inbound TCP rules of these security groups, one per source; groups EC2 does not know
    /// are left out. Also returns the ids of the groups found.
    pub async fn ingress_rules(
        &self,
        region: &str,
        group_ids: &[String],
        deadline: Instant,
    ) -> Result<(Vec<String>, Vec<IngressRule>), AwsError> {
        let groups = self.security_groups(region, group_ids, deadline).await?;
        let found = groups.iter().map(|g| g.id.clone()).collect();
        let rules = groups.into_iter().flat_map(|g| g.ingress).collect();
        Ok((found, rules))
    }

    /// These security groups, each with its VPC and inbound TCP rules: the one reader of
    /// security groups (`DescribeSecurityGroups` by a `group-id` filter, so a group EC2 does not
    /// know is left out rather than failing the call).
    pub async fn security_groups(
        &self,
        region: &str,
        group_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<SecurityGroup>, AwsError> {
        const OPERATION: &str = "DescribeSecurityGroups";
        let client = self.client(region)?;
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = Filter::builder()
            .name("group-id")
            .set_values(Some(group_ids.to_vec()))
            .build();
        let output = within_deadline(
            OPERATION,
            deadline,
            client.describe_security_groups().filters(filter).send(),
        )
        .await?
        .map_err(|e| ec2_call_error(OPERATION, &e))?;
        Ok(output
            .security_groups()
            .iter()
            .filter_map(|group| {
                let id = group
                    .group_id()
                    .filter(|g| group_ids.iter().any(|w| w == g))?;
                Some(SecurityGroup {
                    id: id.to_owned(),
                    vpc_id: group.vpc_id().unwrap_or_default().to_owned(),
                    ingress: group
                        .ip_permissions()
                        .iter()
                        .flat_map(|permission| ingress_of(id, permission))
                        .collect(),
                })
            })
            .collect())
    }
}

/// One endpoint's service, DNS names (`DnsEntries`) and the private addresses of its network
/// interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointNetwork {
    pub id: String,
    /// Empty when EC2 does not say.
    pub service_name: String,
    pub dns_names: Vec<String>,
    pub private_ips: Vec<std::net::IpAddr>,
}

impl Ec2 {
    /// Service, DNS names and interface addresses of these endpoints, for the verifier; an
    /// endpoint EC2 does not list is left out.
    pub async fn endpoint_networks(
        &self,
        region: &str,
        ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<EndpointNetwork>, AwsError> {
        const INTERFACES: &str = "DescribeNetworkInterfaces";
        let client = self.client(region)?;
        let mut found: Vec<(EndpointNetwork, Vec<String>)> = self
            .describe_vpc_endpoints_listed(region, ids, deadline)
            .await?
            .into_iter()
            .map(|e| {
                (
                    EndpointNetwork {
                        id: e.id,
                        service_name: e.service_name,
                        dns_names: e.dns_names,
                        private_ips: Vec::new(),
                    },
                    e.network_interface_ids,
                )
            })
            .collect();
        let interface_ids: Vec<String> = found.iter().flat_map(|(_, i)| i.clone()).collect();
        if !interface_ids.is_empty() {
            let interfaces = within_deadline(
                INTERFACES,
                deadline,
                client
                    .describe_network_interfaces()
                    .set_network_interface_ids(Some(interface_ids))
                    .send(),
            )
            .await?
            .map_err(|e| ec2_call_error(INTERFACES, &e))?;
            for interface in interfaces.network_interfaces() {
                let (Some(id), Some(ip)) = (
                    interface.network_interface_id(),
                    interface
                        .private_ip_address()
                        .and_then(|a| a.parse::<std::net::IpAddr>().ok()),
                ) else {
                    continue;
                };
                if let Some((endpoint, _)) = found
                    .iter_mut()
                    .find(|(_, ids)| ids.iter().any(|i| i == id))
                {
                    endpoint.private_ips.push(ip);
                }
            }
        }
        Ok(found.into_iter().map(|(e, _)| e).collect())
    }

    /// The private DNS names of these endpoint services (`PrivateDnsNames`, and `PrivateDnsName`
    /// where EC2 gives only that); services EC2 does not describe are left out. EC2 refuses the
    /// whole call when it does not know one of the names.
    pub async fn service_private_dns_names(
        &self,
        region: &str,
        service_names: &[String],
        deadline: Instant,
    ) -> Result<Vec<ServicePrivateDns>, AwsError> {
        const OPERATION: &str = "DescribeVpcEndpointServices";
        let client = self.client(region)?;
        // Without names EC2 would list every service in the region.
        if service_names.is_empty() {
            return Ok(Vec::new());
        }
        let output = within_deadline(
            OPERATION,
            deadline,
            client
                .describe_vpc_endpoint_services()
                .set_service_names(Some(service_names.to_vec()))
                .send(),
        )
        .await?
        .map_err(|e| ec2_call_error(OPERATION, &e))?;
        Ok(output
            .service_details()
            .iter()
            .filter_map(|service| {
                let name = service
                    .service_name()
                    .filter(|n| service_names.iter().any(|w| w == n))?;
                let mut private_dns_names: Vec<String> = Vec::new();
                let listed = service
                    .private_dns_names()
                    .iter()
                    .filter_map(|d| d.private_dns_name());
                for dns_name in listed.chain(service.private_dns_name()) {
                    if !dns_name.is_empty() && !private_dns_names.iter().any(|n| n == dns_name) {
                        private_dns_names.push(dns_name.to_owned());
                    }
                }
                Some(ServicePrivateDns {
                    service_name: name.to_owned(),
                    private_dns_names,
                })
            })
            .collect())
    }
}

/// The private DNS names of one endpoint service, as EC2 describes the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrivateDns {
    pub service_name: String,
    pub private_dns_names: Vec<String>,
}

/// One route table of a VPC: which subnets it serves and where its routes lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    /// Subnets associated with it explicitly.
    pub subnet_ids: Vec<String>,
    /// The VPC's main route table, which serves every subnet without an explicit association.
    pub main: bool,
    /// Its routes that are not blackholes.
    pub routes: Vec<Route>,
}

/// One route: where to (an IPv4 or IPv6 range, or a prefix list) and through what (the target's
/// id: `igw-`, `nat-`, `vpce-`, `tgw-`, `eni-`, `i-`, `pcx-`, ..., or `local`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: String,
    pub target: String,
}

/// Any endpoint of a VPC, whatever its service, as far as telling which AWS services the VPC
/// reaches privately goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInVpc {
    pub id: String,
    pub service_name: String,
    /// `Interface`, `Gateway`, `GatewayLoadBalancer`, ...
    pub endpoint_type: String,
    /// As EC2 spells it (`available`, `pending`, `deleted`, ...).
    pub state: String,
    /// A gateway endpoint's route tables.
    pub route_table_ids: Vec<String>,
}

/// The ways out of a VPC: its route tables and its endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VpcEgress {
    pub route_tables: Vec<RouteTable>,
    pub endpoints: Vec<EndpointInVpc>,
}

impl Ec2 {
    /// Every route table and every endpoint of one VPC, read side by side.
    pub async fn vpc_egress(
        &self,
        region: &str,
        vpc_id: &str,
        deadline: Instant,
    ) -> Result<VpcEgress, AwsError> {
        const ROUTES: &str = "DescribeRouteTables";
        const ENDPOINTS: &str = "DescribeVpcEndpoints";
        let client = self.client(region)?;
        let in_vpc = || Filter::builder().name("vpc-id").values(vpc_id).build();
        let (tables, endpoints) = tokio::join!(
            within_deadline(
                ROUTES,
                deadline,
                client.describe_route_tables().filters(in_vpc()).send()
            ),
            within_deadline(
                ENDPOINTS,
                deadline,
                client.describe_vpc_endpoints().filters(in_vpc()).send()
            ),
        );
        let tables = tables?.map_err(|e| ec2_call_error(ROUTES, &e))?;
        let endpoints = endpoints?.map_err(|e| ec2_call_error(ENDPOINTS, &e))?;
        Ok(VpcEgress {
            route_tables: tables
                .route_tables()
                .iter()
                .filter_map(route_table_of)
                .collect(),
            endpoints: endpoints
                .vpc_endpoints()
                .iter()
                .filter_map(endpoint_in_vpc_of)
                .collect(),
        })
    }
}

/// A route table as EC2 describes it: its subnets, whether it is the main one, and its routes
/// that carry traffic (not the blackholes).
fn route_table_of(table: &aws_sdk_ec2::types::RouteTable) -> Option<RouteTable> {
    let associations = table.associations();
    Some(RouteTable {
        id: table.route_table_id()?.to_owned(),
        subnet_ids: associations
            .iter()
            .filter_map(|a| a.subnet_id())
            .map(str::to_owned)
            .collect(),
        main: associations.iter().any(|a| a.main() == Some(true)),
        routes: table
            .routes()
            .iter()
            .filter(|r| r.state() != Some(&aws_sdk_ec2::types::RouteState::Blackhole))
            .filter_map(route_of)
            .collect(),
    })
}

/// One route's destination and target, whichever kind each is.
fn route_of(r: &aws_sdk_ec2::types::Route) -> Option<Route> {
    let destination = r
        .destination_cidr_block()
        .or(r.destination_ipv6_cidr_block())
        .or(r.destination_prefix_list_id())?;
    let target = r
        .gateway_id()
        .or(r.nat_gateway_id())
        .or(r.transit_gateway_id())
        .or(r.network_interface_id())
        .or(r.instance_id())
        .or(r.vpc_peering_connection_id())
        .or(r.egress_only_internet_gateway_id())
        .or(r.local_gateway_id())
        .or(r.carrier_gateway_id())
        .or(r.core_network_arn())?;
    Some(Route {
        destination: destination.to_owned(),
        target: target.to_owned(),
    })
}

/// Any endpoint of the VPC as far as telling which AWS services it reaches privately goes.
fn endpoint_in_vpc_of(e: &aws_sdk_ec2::types::VpcEndpoint) -> Option<EndpointInVpc> {
    Some(EndpointInVpc {
        id: e.vpc_endpoint_id()?.to_owned(),
        service_name: e.service_name().unwrap_or_default().to_owned(),
        endpoint_type: e
            .vpc_endpoint_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        state: e.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        route_table_ids: e.route_table_ids().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_support::{Recorder, ec2_conf, ec2_error, later};
    use aws_sdk_ec2::Client;
    use aws_smithy_mocks::mock;

    fn attribute(name: &str, value: bool) -> String {
        format!(
            "<DescribeVpcAttributeResponse><vpcId>vpc-1</vpcId><{name}><value>{value}</value></{name}></DescribeVpcAttributeResponse>"
        )
    }

    const VPCS: &str = "<DescribeVpcsResponse><vpcSet><item><vpcId>vpc-1</vpcId><dhcpOptionsId>dopt-1</dhcpOptionsId></item></vpcSet></DescribeVpcsResponse>";
    const DHCP: &str = "<DescribeDhcpOptionsResponse><dhcpOptionsSet><item><dhcpOptionsId>dopt-1</dhcpOptionsId><dhcpConfigurationSet>\
        <item><key>domain-name</key><valueSet><item><value>corp.example</value></item></valueSet></item>\
        <item><key>domain-name-servers</key><valueSet><item><value>10.9.0.2</value></item><item><value>10.9.0.3</value></item></valueSet></item>\
        </dhcpConfigurationSet></item></dhcpOptionsSet></DescribeDhcpOptionsResponse>";

    #[tokio::test]
    async fn dns_attributes_and_the_dhcp_name_servers_are_read() {
        let support = mock!(Client::describe_vpc_attribute)
            .match_requests(|r| r.attribute() == Some(&VpcAttributeName::EnableDnsSupport))
            .sequence()
            .http_status(200, Some(attribute("enableDnsSupport", false)))
            .build();
        let hostnames = mock!(Client::describe_vpc_attribute)
            .match_requests(|r| r.attribute() == Some(&VpcAttributeName::EnableDnsHostnames))
            .sequence()
            .http_status(200, Some(attribute("enableDnsHostnames", true)))
            .build();
        let vpcs = mock!(Client::describe_vpcs)
            .sequence()
            .http_status(200, Some(VPCS.into()))
            .build();
        let dhcp = mock!(Client::describe_dhcp_options)
            .sequence()
            .http_status(200, Some(DHCP.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(
            &[&support, &hostnames, &vpcs, &dhcp],
            &Recorder::default(),
            None,
        ));
        let dns = ec2.vpc_dns("us-east-1", "vpc-1", later()).await.unwrap();
        assert_eq!(
            dns,
            VpcDns {
                vpc_id: "vpc-1".into(),
                dns_support: false,
                dns_hostnames: true,
                dhcp_options_id: Some("dopt-1".into()),
                name_servers: vec!["10.9.0.2".into(), "10.9.0.3".into()],
            }
        );
    }

    #[tokio::test]
    async fn a_refused_attribute_read_names_the_permission() {
        let denied = mock!(Client::describe_vpc_attribute)
            .sequence()
            .http_status(403, Some(ec2_error("UnauthorizedOperation", "no")))
            .times(2)
            .build();
        let vpcs = mock!(Client::describe_vpcs)
            .sequence()
            .http_status(200, Some(VPCS.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&denied, &vpcs], &Recorder::default(), None));
        let err = ec2
            .vpc_dns("us-east-1", "vpc-1", later())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("not allowed to call ec2:DescribeVpcAttribute"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn ingress_rules_keep_each_source_and_skip_other_protocols() {
        let body = "<DescribeSecurityGroupsResponse><securityGroupInfo><item><groupId>sg-e</groupId><vpcId>vpc-1</vpcId><ipPermissions>\
            <item><ipProtocol>tcp</ipProtocol><fromPort>443</fromPort><toPort>443</toPort>\
              <groups><item><groupId>sg-c</groupId></item></groups>\
              <ipRanges><item><cidrIp>10.0.0.0/16</cidrIp></item></ipRanges>\
              <prefixListIds><item><prefixListId>pl-1</prefixListId></item></prefixListIds></item>\
            <item><ipProtocol>udp</ipProtocol><fromPort>6666</fromPort><toPort>6666</toPort>\
              <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>\
            <item><ipProtocol>-1</ipProtocol>\
              <groups><item><groupId>sg-all</groupId></item></groups></item>\
            </ipPermissions></item></securityGroupInfo></DescribeSecurityGroupsResponse>";
        let rule = mock!(Client::describe_security_groups)
            .sequence()
            .http_status(200, Some(body.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let (found, rules) = ec2
            .ingress_rules("us-east-1", &["sg-e".into(), "sg-gone".into()], later())
            .await
            .unwrap();
        assert_eq!(found, ["sg-e"]);
        let sources: Vec<&RuleSource> = rules.iter().map(|r| &r.source).collect();
        assert_eq!(
            sources,
            [
                &RuleSource::Group("sg-c".into()),
                &RuleSource::Ipv4("10.0.0.0/16".into()),
                &RuleSource::PrefixList("pl-1".into()),
                &RuleSource::Group("sg-all".into()),
            ]
        );
        let ports: Vec<(u16, u16)> = rules.iter().map(|r| r.ports).collect();
        // "All traffic" counts as TCP 0-65535.
        assert_eq!(ports, [(443, 443), (443, 443), (443, 443), (0, 65535)]);
    }

    #[tokio::test]
    async fn endpoint_names_and_interface_addresses_are_paired() {
        let endpoints = mock!(Client::describe_vpc_endpoints)
            .sequence()
            .http_status(200, Some("<DescribeVpcEndpointsResponse><vpcEndpointSet><item><vpcEndpointId>vpce-r</vpcEndpointId>\
                <serviceName>com.amazonaws.vpce.us-east-1.vpce-svc-1</serviceName><dnsEntrySet><item><dnsName>vpce-r-abc.vpce-svc-1.us-east-1.vpce.amazonaws.com</dnsName></item></dnsEntrySet>\
                <networkInterfaceIdSet><item>eni-1</item><item>eni-2</item></networkInterfaceIdSet></item></vpcEndpointSet></DescribeVpcEndpointsResponse>".into()))
            .build();
        let interfaces = mock!(Client::describe_network_interfaces)
            .sequence()
            .http_status(200, Some("<DescribeNetworkInterfacesResponse><networkInterfaceSet>\
                <item><networkInterfaceId>eni-1</networkInterfaceId><privateIpAddress>10.0.8.5</privateIpAddress></item>\
                <item><networkInterfaceId>eni-2</networkInterfaceId><privateIpAddress>10.0.9.5</privateIpAddress></item>\
                </networkInterfaceSet></DescribeNetworkInterfacesResponse>".into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(
            &[&endpoints, &interfaces],
            &Recorder::default(),
            None,
        ));
        let found = ec2
            .endpoint_networks("us-east-1", &["vpce-r".into()], later())
            .await
            .unwrap();
        assert_eq!(
            found,
            [EndpointNetwork {
                id: "vpce-r".into(),
                service_name: "com.amazonaws.vpce.us-east-1.vpce-svc-1".into(),
                dns_names: vec!["vpce-r-abc.vpce-svc-1.us-east-1.vpce.amazonaws.com".into()],
                private_ips: vec!["10.0.8.5".parse().unwrap(), "10.0.9.5".parse().unwrap()],
            }]
        );
    }

    const REST_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04";
    const RELAY_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf";

    #[tokio::test]
    async fn service_private_dns_names_are_read_from_the_list_and_the_single_field() {
        let body = format!(
            "<DescribeVpcEndpointServicesResponse><serviceNameSet><item>{REST_SERVICE}</item><item>{RELAY_SERVICE}</item></serviceNameSet>\
            <serviceDetailSet>\
            <item><serviceName>{REST_SERVICE}</serviceName><privateDnsName>nvirginia.privatelink.cloud.databricks.com</privateDnsName>\
              <privateDnsNameSet><item><privateDnsName>nvirginia.privatelink.cloud.databricks.com</privateDnsName></item>\
              <item><privateDnsName>nvirginia.cloud.databricks.com</privateDnsName></item></privateDnsNameSet></item>\
            <item><serviceName>{RELAY_SERVICE}</serviceName><privateDnsName>tunnel.privatelink.us-east-1.cloud.databricks.com</privateDnsName></item>\
            <item><serviceName>com.amazonaws.us-east-1.s3</serviceName><privateDnsName>s3.us-east-1.amazonaws.com</privateDnsName></item>\
            </serviceDetailSet></DescribeVpcEndpointServicesResponse>"
        );
        let rule = mock!(Client::describe_vpc_endpoint_services)
            .match_requests(|r| r.service_names() == [REST_SERVICE, RELAY_SERVICE])
            .sequence()
            .http_status(200, Some(body))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let services = ec2
            .service_private_dns_names(
                "us-east-1",
                &[REST_SERVICE.into(), RELAY_SERVICE.into()],
                later(),
            )
            .await
            .unwrap();
        assert_eq!(
            services,
            [
                ServicePrivateDns {
                    service_name: REST_SERVICE.into(),
                    private_dns_names: vec![
                        "nvirginia.privatelink.cloud.databricks.com".into(),
                        "nvirginia.cloud.databricks.com".into(),
                    ],
                },
                ServicePrivateDns {
                    service_name: RELAY_SERVICE.into(),
                    private_dns_names: vec![
                        "tunnel.privatelink.us-east-1.cloud.databricks.com".into()
                    ],
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_service_read_names_the_permission_and_no_names_ask_nothing() {
        let denied = mock!(Client::describe_vpc_endpoint_services)
            .sequence()
            .http_status(
                403,
                Some(ec2_error(
                    "UnauthorizedOperation",
                    "You are not authorized to perform this operation.",
                )),
            )
            .build();
        let recorder = Recorder::default();
        let ec2 = Ec2::from_conf(ec2_conf(&[&denied], &recorder, None));
        let err = ec2
            .service_private_dns_names("us-east-1", &[REST_SERVICE.into()], later())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("not allowed to call ec2:DescribeVpcEndpointServices"),
            "{err}"
        );
        let asked = recorder.requests().len();
        let none = ec2
            .service_private_dns_names("us-east-1", &[], later())
            .await
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(
            recorder.requests().len(),
            asked,
            "without names EC2 would list every service"
        );
    }

    #[tokio::test]
    async fn subnets_are_asked_for_by_filter_and_unknown_ones_left_out() {
        let body = "<DescribeSubnetsResponse><subnetSet><item><subnetId>subnet-a</subnetId><vpcId>vpc-1</vpcId>\
            <availabilityZone>us-east-1a</availabilityZone><cidrBlock>10.0.1.0/24</cidrBlock></item></subnetSet></DescribeSubnetsResponse>";
        let rule = mock!(Client::describe_subnets)
            .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("subnet-id")))
            .sequence()
            .http_status(200, Some(body.into()))
            .build();
        let ec2 = Ec2::from_conf(ec2_conf(&[&rule], &Recorder::default(), None));
        let subnets = ec2
            .subnet_placements(
                "us-east-1",
                &["subnet-a".into(), "subnet-gone".into()],
                later(),
            )
            .await
            .unwrap();
        assert_eq!(
            subnets,
            [SubnetPlacement {
                id: "subnet-a".into(),
                availability_zone: "us-east-1a".into(),
                cidr_block: "10.0.1.0/24".into(),
            }]
        );
    }
}
