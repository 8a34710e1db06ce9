//! Whether the cluster subnets reach what a cluster needs besides Databricks' two services: S3
//! (through a gateway endpoint on their route table, or a route out through a NAT or internet
//! gateway), and STS and Kinesis (an interface endpoint each in the VPC, or a route out). Judged
//! from EC2's route tables and endpoints with the other VPC checks; it only ever warns, since a
//! firewall, a proxy or a transit gateway can carry traffic the AWS APIs do not show.
//! Why clusters need them: Databricks' customer-managed VPC guide (regional endpoints,
//! <https://docs.databricks.com/aws/en/security/network/classic/customer-managed-vpc>) and the
//! Terraform provider's firewall guide, which gives a VPC without open egress exactly these three
//! endpoints (<https://registry.terraform.io/providers/databricks/databricks/latest/docs/guides/aws-e2-firewall-workspace>).

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::{AwsError, EndpointInVpc, RouteTable, VpcEgress};

use super::cluster::Cluster;

const DEFAULT_ROUTE: &str = "0.0.0.0/0";
const S3: &str = "s3";
const STS: &str = "sts";
const KINESIS: &str = "kinesis-streams";

/// A default route through one of these leaves the VPC for the internet.
fn leads_out(target: &str) -> bool {
    target.starts_with("igw-") || target.starts_with("nat-")
}

/// An endpoint that carries traffic, or soon will.
fn usable(endpoint: &EndpointInVpc) -> bool {
    !matches!(
        endpoint.state.to_ascii_lowercase().as_str(),
        "deleted" | "deleting" | "rejected" | "failed" | "expired"
    )
}

/// The endpoint is one to this AWS service in the region (`com.amazonaws.<region>.<service>`,
/// with another prefix in other partitions).
fn serves(endpoint: &EndpointInVpc, region: &str, service: &str) -> bool {
    endpoint
        .service_name
        .ends_with(&format!(".{region}.{service}"))
}

/// What one route table serves among the cluster subnets.
struct Served<'a> {
    table: &'a RouteTable,
    subnets: BTreeSet<&'a str>,
    workspaces: BTreeSet<i64>,
}

/// The warnings, each naming what is missing and where; none when the facts could not be read
/// beyond one saying so.
pub fn warnings(
    region: &str,
    vpc_id: &str,
    clusters: &[Cluster],
    egress: Result<VpcEgress, AwsError>,
) -> Vec<String> {
    if clusters.is_empty() {
        return Vec::new();
    }
    let egress = match egress {
        Ok(egress) => egress,
        Err(error) => {
            return vec![format!(
                "could not read VPC {vpc_id}'s route tables and endpoints ({error}), so whether clusters reach S3, STS and Kinesis was not checked"
            )];
        }
    };
    let served = route_tables_of_clusters(&egress, clusters);
    let live: Vec<&EndpointInVpc> = egress.endpoints.iter().filter(|e| usable(e)).collect();
    let (mut warnings, without_route_out) = s3_warnings(region, &served, &live);
    if without_route_out.is_empty() {
        return warnings;
    }
    warnings.extend(sts_and_kinesis_warnings(
        region,
        vpc_id,
        &without_route_out,
        &live,
    ));
    warnings
}

/// Each route table of the cluster subnets (a subnet without its own uses the main one), with
/// the subnets and workspaces it serves.
fn route_tables_of_clusters<'a>(
    egress: &'a VpcEgress,
    clusters: &'a [Cluster],
) -> BTreeMap<&'a str, Served<'a>> {
    let main = egress.route_tables.iter().find(|t| t.main);
    let table_of = |subnet: &str| {
        egress
            .route_tables
            .iter()
            .find(|t| t.subnet_ids.iter().any(|s| s == subnet))
            .or(main)
    };
    let mut served: BTreeMap<&str, Served> = BTreeMap::new();
    for cluster in clusters {
        for subnet in &cluster.subnet_ids {
            let Some(table) = table_of(subnet) else {
                continue;
            };
            let entry = served.entry(table.id.as_str()).or_insert_with(|| Served {
                table,
                subnets: BTreeSet::new(),
                workspaces: BTreeSet::new(),
            });
            entry.subnets.insert(subnet.as_str());
            entry.workspaces.insert(cluster.workspace_id);
        }
    }
    served
}

/// A warning for each route table that reaches neither an S3 gateway endpoint nor a NAT or
/// internet gateway, and the cluster subnets without a route out.
fn s3_warnings<'a>(
    region: &str,
    served: &BTreeMap<&'a str, Served<'a>>,
    live: &[&EndpointInVpc],
) -> (Vec<String>, BTreeSet<&'a str>) {
    let s3_gateways: Vec<&EndpointInVpc> = live
        .iter()
        .copied()
        .filter(|e| e.endpoint_type.eq_ignore_ascii_case("Gateway") && serves(e, region, S3))
        .collect();
    let mut warnings = Vec::new();
    let mut without_route_out: BTreeSet<&str> = BTreeSet::new();
    for (
        id,
        Served {
            table,
            subnets,
            workspaces,
        },
    ) in served
    {
        let default_route = table.routes.iter().find(|r| r.destination == DEFAULT_ROUTE);
        if default_route.is_some_and(|r| leads_out(&r.target)) {
            continue;
        }
        without_route_out.extend(subnets.iter().copied());
        let s3 = s3_gateways.iter().any(|g| {
            g.route_table_ids.iter().any(|t| t == id)
                || table.routes.iter().any(|r| r.target == g.id)
        });
        if s3 {
            continue;
        }
        let through = default_route
            .map(|r| {
                format!(
                    " (its default route goes to {}, which these checks cannot see past)",
                    r.target
                )
            })
            .unwrap_or_default();
        warnings.push(format!(
            "route table {id} of the cluster subnets {} ({}) reaches neither an S3 gateway endpoint nor a NAT or internet gateway{through}: clusters read and write S3 (the workspace's storage, logs, libraries) and fail to start unless a firewall or proxy the AWS APIs do not show carries that traffic. Add an S3 gateway endpoint (com.amazonaws.{region}.s3) to {id}",
            join(subnets.iter().copied()),
            workspaces_text(workspaces),
        ));
    }
    (warnings, without_route_out)
}

/// For cluster subnets without a route out: a warning for each of STS and Kinesis that has no
/// interface endpoint in the VPC.
fn sts_and_kinesis_warnings(
    region: &str,
    vpc_id: &str,
    without_route_out: &BTreeSet<&str>,
    live: &[&EndpointInVpc],
) -> Vec<String> {
    let has_interface = |service: &str| {
        live.iter().any(|e| {
            e.endpoint_type.eq_ignore_ascii_case("Interface") && serves(e, region, service)
        })
    };
    let subnets = join(without_route_out.iter().copied());
    let mut warnings = Vec::new();
    // (service, its name, the name with its article, why clusters need it)
    for (service, name, a_name, why) in [
        (
            STS,
            "STS",
            "an STS",
            "clusters get the AWS credentials of their instance profile from STS",
        ),
        (
            KINESIS,
            "Kinesis",
            "a Kinesis",
            "clusters send their logs and usage data to Databricks through Kinesis",
        ),
    ] {
        if !has_interface(service) {
            warnings.push(format!(
                "VPC {vpc_id} has no {name} interface endpoint (com.amazonaws.{region}.{service}) and the cluster subnets {subnets} have no route to a NAT or internet gateway: {why}, which fails unless a firewall or proxy the AWS APIs do not show carries that traffic. Add {a_name} interface endpoint with private DNS in the cluster subnets"
            ));
        }
    }
    warnings
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn workspaces_text(ids: &BTreeSet<i64>) -> String {
    let listed: Vec<String> = ids.iter().map(i64::to_string).collect();
    match listed.len() {
        1 => format!("workspace {}", listed[0]),
        _ => format!("workspaces {}", listed.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Route;

    fn route(destination: &str, target: &str) -> Route {
        Route {
            destination: destination.into(),
            target: target.into(),
        }
    }

    fn endpoint(id: &str, service: &str, kind: &str, tables: &[&str]) -> EndpointInVpc {
        EndpointInVpc {
            id: id.into(),
            service_name: format!("com.amazonaws.us-east-1.{service}"),
            endpoint_type: kind.into(),
            state: "available".into(),
            route_table_ids: tables.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// The cluster subnets on the VPC's main route table, which routes only inside the VPC.
    fn closed() -> VpcEgress {
        VpcEgress {
            route_tables: vec![RouteTable {
                id: "rtb-main".into(),
                subnet_ids: vec![],
                main: true,
                routes: vec![route("10.0.0.0/16", "local")],
            }],
            endpoints: vec![endpoint("vpce-rest", "vpce-svc-1", "Interface", &[])],
        }
    }

    fn clusters() -> Vec<Cluster> {
        vec![Cluster {
            workspace_id: 7,
            subnet_ids: vec!["subnet-c1".into(), "subnet-c2".into()],
            security_group_ids: vec!["sg-c".into()],
        }]
    }

    fn judged(egress: VpcEgress) -> Vec<String> {
        warnings("us-east-1", "vpc-1", &clusters(), Ok(egress))
    }

    #[test]
    fn a_closed_vpc_warns_about_s3_sts_and_kinesis_naming_what_to_add() {
        let found = judged(closed());
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("route table rtb-main of the cluster subnets subnet-c1, subnet-c2 (workspace 7) reaches neither an S3 gateway endpoint nor a NAT or internet gateway"),
            "{}",
            found[0]
        );
        assert!(
            found[0]
                .ends_with("Add an S3 gateway endpoint (com.amazonaws.us-east-1.s3) to rtb-main"),
            "{}",
            found[0]
        );
        assert!(
            found[1].starts_with("VPC vpc-1 has no STS interface endpoint (com.amazonaws.us-east-1.sts) and the cluster subnets subnet-c1, subnet-c2 have no route to a NAT or internet gateway"),
            "{}",
            found[1]
        );
        assert!(
            found[2].starts_with("VPC vpc-1 has no Kinesis interface endpoint (com.amazonaws.us-east-1.kinesis-streams)"),
            "{}",
            found[2]
        );
    }

    #[test]
    fn a_route_out_through_an_internet_or_nat_gateway_is_enough() {
        for target in ["igw-1", "nat-1"] {
            let mut egress = closed();
            egress.route_tables[0]
                .routes
                .push(route(DEFAULT_ROUTE, target));
            assert_eq!(judged(egress), Vec::<String>::new(), "{target}");
        }
        // The subnets' own table counts, not the main one.
        let mut egress = closed();
        egress.route_tables.push(RouteTable {
            id: "rtb-private".into(),
            subnet_ids: vec!["subnet-c1".into(), "subnet-c2".into()],
            main: false,
            routes: vec![route(DEFAULT_ROUTE, "nat-1")],
        });
        assert_eq!(judged(egress), Vec::<String>::new());
    }

    #[test]
    fn the_three_endpoints_are_enough_without_a_route_out() {
        let mut egress = closed();
        egress.endpoints.extend([
            endpoint("vpce-s3", S3, "Gateway", &["rtb-main"]),
            endpoint("vpce-sts", STS, "Interface", &[]),
            endpoint("vpce-kin", KINESIS, "Interface", &[]),
        ]);
        assert_eq!(judged(egress.clone()), Vec::<String>::new());

        // A gateway endpoint found by the route it put in the table counts the same.
        egress.endpoints[1].route_table_ids.clear();
        egress.route_tables[0]
            .routes
            .push(route("pl-63a5400a", "vpce-s3"));
        assert_eq!(judged(egress), Vec::<String>::new());
    }

    #[test]
    fn what_cannot_carry_traffic_does_not_count() {
        let mut egress = closed();
        egress.endpoints.extend([
            endpoint("vpce-s3", S3, "Gateway", &["rtb-other"]),
            EndpointInVpc {
                state: "deleted".into(),
                ..endpoint("vpce-sts", STS, "Interface", &[])
            },
            // An S3 interface endpoint is not the gateway the route table needs.
            endpoint("vpce-s3i", S3, "Interface", &[]),
            endpoint("vpce-kin", KINESIS, "Interface", &[]),
        ]);
        let found = judged(egress);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("S3 gateway endpoint"), "{}", found[0]);
        assert!(
            found[1].contains("no STS interface endpoint"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn a_default_route_elsewhere_is_named_and_still_warned_about() {
        let mut egress = closed();
        egress.route_tables[0]
            .routes
            .push(route(DEFAULT_ROUTE, "tgw-1"));
        let found = judged(egress);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0]
                .contains("(its default route goes to tgw-1, which these checks cannot see past)"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn facts_that_cannot_be_read_warn_once_and_no_workspace_means_no_check() {
        let denied = AwsError::Ec2AccessDenied {
            operation: "DescribeRouteTables",
        };
        let found = warnings("us-east-1", "vpc-1", &clusters(), Err(denied));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("could not read VPC vpc-1's route tables and endpoints"),
            "{}",
            found[0]
        );
        assert!(warnings("us-east-1", "vpc-1", &[], Ok(closed())).is_empty());
    }
}
