//! The Databricks back-end PrivateLink endpoint services per AWS region, the partition a region
//! belongs to, and the Databricks hosts that follow from it. Pure data: no I/O, and nothing about
//! CloudFormation or the Databricks API client.

/// AWS partition of a region; decides the Databricks account host and DNS zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsUsGov,
    AwsCn,
}

/// The two endpoint services Databricks exposes in a region for back-end PrivateLink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointServices {
    /// The "workspace" (REST API / general access) endpoint service.
    pub rest_api: String,
    /// The secure cluster connectivity (SCC) relay endpoint service.
    pub relay: String,
}

struct ServiceRow {
    region: &'static str,
    variant: &'static str,
    rest_api: &'static str,
    relay: &'static str,
}

// Source (`docs/account-api.md#endpoint-services-ports-and-hostnames`): taken from
// the Databricks-maintained security reference architecture (terraform-databricks-sra,
// aws/tf/variables.tf `general_access_config` and `scc_relay_config`). The official list is on the
// Databricks "IP addresses and domains" page (ip-domain-region#privatelink). GovCloud has two
// Databricks deployments in us-gov-west-1 (civilian and DoD), each with its own services;
// us-gov-east-1 is not supported.
const SERVICES: &[ServiceRow] = &[
    ServiceRow {
        region: "ap-northeast-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ap-northeast-1.vpce-svc-02691fd610d24fd64",
        relay: "com.amazonaws.vpce.ap-northeast-1.vpce-svc-02aa633bda3edbec0",
    },
    ServiceRow {
        region: "ap-northeast-2",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ap-northeast-2.vpce-svc-0babb9bde64f34d7e",
        relay: "com.amazonaws.vpce.ap-northeast-2.vpce-svc-0dc0e98a5800db5c4",
    },
    ServiceRow {
        region: "ap-south-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ap-south-1.vpce-svc-0dbfe5d9ee18d6411",
        relay: "com.amazonaws.vpce.ap-south-1.vpce-svc-03fd4d9b61414f3de",
    },
    ServiceRow {
        region: "ap-southeast-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ap-southeast-1.vpce-svc-02535b257fc253ff4",
        relay: "com.amazonaws.vpce.ap-southeast-1.vpce-svc-0557367c6fc1a0c5c",
    },
    ServiceRow {
        region: "ap-southeast-2",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ap-southeast-2.vpce-svc-0b87155ddd6954974",
        relay: "com.amazonaws.vpce.ap-southeast-2.vpce-svc-0b4a72e8f825495f6",
    },
    ServiceRow {
        region: "ap-southeast-3",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ap-southeast-3.vpce-svc-07a698e7e9ccfd04a",
        relay: "com.amazonaws.vpce.ap-southeast-3.vpce-svc-025ca447c232c6a1b",
    },
    ServiceRow {
        region: "ca-central-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.ca-central-1.vpce-svc-0205f197ec0e28d65",
        relay: "com.amazonaws.vpce.ca-central-1.vpce-svc-0c4e25bdbcbfbb684",
    },
    ServiceRow {
        region: "eu-central-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.eu-central-1.vpce-svc-081f78503812597f7",
        relay: "com.amazonaws.vpce.eu-central-1.vpce-svc-08e5dfca9572c85c4",
    },
    ServiceRow {
        region: "eu-west-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.eu-west-1.vpce-svc-0da6ebf1461278016",
        relay: "com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c",
    },
    ServiceRow {
        region: "eu-west-2",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.eu-west-2.vpce-svc-01148c7cdc1d1326c",
        relay: "com.amazonaws.vpce.eu-west-2.vpce-svc-05279412bf5353a45",
    },
    ServiceRow {
        region: "eu-west-3",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.eu-west-3.vpce-svc-008b9368d1d011f37",
        relay: "com.amazonaws.vpce.eu-west-3.vpce-svc-005b039dd0b5f857d",
    },
    ServiceRow {
        region: "sa-east-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.sa-east-1.vpce-svc-0bafcea8cdfe11b66",
        relay: "com.amazonaws.vpce.sa-east-1.vpce-svc-0e61564963be1b43f",
    },
    ServiceRow {
        region: "us-east-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04",
        relay: "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf",
    },
    ServiceRow {
        region: "us-east-2",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.us-east-2.vpce-svc-041dc2b4d7796b8d3",
        relay: "com.amazonaws.vpce.us-east-2.vpce-svc-090a8fab0d73e39a6",
    },
    ServiceRow {
        region: "us-west-1",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.us-west-1.vpce-svc-09bb6ca26208063f2",
        relay: "com.amazonaws.vpce.us-west-1.vpce-svc-04cb91f9372b792fe",
    },
    ServiceRow {
        region: "us-west-2",
        variant: "commercial",
        rest_api: "com.amazonaws.vpce.us-west-2.vpce-svc-0129f463fcfbc46c5",
        relay: "com.amazonaws.vpce.us-west-2.vpce-svc-0158114c0c730c3bb",
    },
    ServiceRow {
        region: "us-gov-west-1",
        variant: "civilian",
        rest_api: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-0f25e28401cbc9418",
        relay: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-05f27abef1a1a3faa",
    },
    ServiceRow {
        region: "us-gov-west-1",
        variant: "dod",
        rest_api: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-08fddf710780b2a54",
        relay: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-05c210a2feea23ad7",
    },
];

/// Partition of a region, by its name prefix.
pub fn partition_of(region: &str) -> Partition {
    if region.starts_with("us-gov-") {
        Partition::AwsUsGov
    } else if region.starts_with("cn-") {
        Partition::AwsCn
    } else {
        Partition::Aws
    }
}

/// Whether `region` has the shape of an AWS region name (`us-east-1`, `us-gov-west-1`,
/// `ap-southeast-3`, `eusc-de-east-1`). It says nothing about whether Databricks is there.
pub fn is_valid_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let is_letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    (3..=4).contains(&parts.len())
        && (2..=4).contains(&first.len())
        && is_letters(first)
        && parts[1..parts.len() - 1].iter().all(|p| is_letters(p))
        && (1..=2).contains(&last.len())
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// Every known pair of endpoint services for `region`, each with its deployment variant
/// (`commercial`, or `civilian` / `dod` in us-gov-west-1). Empty when Databricks offers no
/// back-end PrivateLink there.
pub fn endpoint_services(region: &str) -> Vec<(&'static str, EndpointServices)> {
    SERVICES
        .iter()
        .filter(|row| row.region == region)
        .map(|row| {
            (
                row.variant,
                EndpointServices {
                    rest_api: row.rest_api.to_owned(),
                    relay: row.relay.to_owned(),
                },
            )
        })
        .collect()
}

/// The Databricks account console host for a region's partition
/// (`docs/account-api.md#hosts-and-authentication`). The
/// GovCloud DoD host (`https://accounts-dod.cloud.databricks.mil`) cannot be told apart by region,
/// so a DoD user names it explicitly.
pub fn default_accounts_host(region: &str) -> &'static str {
    match partition_of(region) {
        Partition::AwsUsGov => "https://accounts.cloud.databricks.us",
        Partition::Aws | Partition::AwsCn => "https://accounts.cloud.databricks.com",
    }
}

/// The DNS zone of Databricks' hosts in `region`'s partition: `cloud.databricks.com`, and
/// `cloud.databricks.us` in GovCloud (the workspace URLs' zone there; for the relay an
/// assumption, `docs/verification.md#names-per-region`).
fn zone(region: &str) -> &'static str {
    match partition_of(region) {
        Partition::AwsUsGov => "cloud.databricks.us",
        Partition::Aws | Partition::AwsCn => "cloud.databricks.com",
    }
}

/// Regions whose SCC relay has no region label in its names: Databricks' own examples list
/// `tunnel.cloud.databricks.com` for us-west-1 and us-west-2, the regions served from the
/// `oregon` control plane (`docs/verification.md#names-per-region`).
const RELAY_WITHOUT_REGION_LABEL: &[&str] = &["us-west-1", "us-west-2"];

/// The public host name of the SCC relay in `region`, the one Databricks lists as "SCC relay":
/// `tunnel.<region>.cloud.databricks.com`, but `tunnel.cloud.databricks.com` in us-west-1 and
/// us-west-2 (`docs/verification.md#names-per-region`).
pub fn relay_hostname(region: &str) -> String {
    if RELAY_WITHOUT_REGION_LABEL.contains(&region) {
        format!("tunnel.{}", zone(region))
    } else {
        format!("tunnel.{region}.{}", zone(region))
    }
}

/// The relay's host name for PrivateLink, "SCC relay for PrivateLink" on Databricks' list:
/// `tunnel.privatelink.<region>.cloud.databricks.com`, following [`relay_hostname`]'s shape
/// where the region label is left out. Documented for some regions and a pattern elsewhere
/// (`docs/verification.md#names-per-region`), so the verification requires it only where EC2
/// reports it as the relay service's private DNS name.
pub fn privatelink_relay_hostname(region: &str) -> String {
    if RELAY_WITHOUT_REGION_LABEL.contains(&region) {
        format!("tunnel.privatelink.{}", zone(region))
    } else {
        format!("tunnel.privatelink.{region}.{}", zone(region))
    }
}

/// The host of a workspace's URL, `<deployment name>.cloud.databricks.com`
/// (<https://docs.databricks.com/aws/en/workspace/workspace-details>), in GovCloud
/// `<deployment name>.cloud.databricks.us`.
pub fn workspace_host(deployment_name: &str, region: &str) -> String {
    format!(
        "{}.{}",
        deployment_name.trim().to_ascii_lowercase(),
        zone(region)
    )
}

/// Regions with Databricks back-end PrivateLink, each once, in table order.
pub fn supported_regions() -> Vec<&'static str> {
    let mut regions: Vec<&'static str> = Vec::new();
    for row in SERVICES {
        if !regions.contains(&row.region) {
            regions.push(row.region);
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    // A second, independent transcription of the same public table, so a typo in
    // the table above (one wrong hex digit sends the endpoint check to the wrong verdict) fails here.
    const REFERENCE_CSV: &str = "\
region,variant,rest_api_service_name,relay_service_name
ap-northeast-1,commercial,com.amazonaws.vpce.ap-northeast-1.vpce-svc-02691fd610d24fd64,com.amazonaws.vpce.ap-northeast-1.vpce-svc-02aa633bda3edbec0
ap-northeast-2,commercial,com.amazonaws.vpce.ap-northeast-2.vpce-svc-0babb9bde64f34d7e,com.amazonaws.vpce.ap-northeast-2.vpce-svc-0dc0e98a5800db5c4
ap-south-1,commercial,com.amazonaws.vpce.ap-south-1.vpce-svc-0dbfe5d9ee18d6411,com.amazonaws.vpce.ap-south-1.vpce-svc-03fd4d9b61414f3de
ap-southeast-1,commercial,com.amazonaws.vpce.ap-southeast-1.vpce-svc-02535b257fc253ff4,com.amazonaws.vpce.ap-southeast-1.vpce-svc-0557367c6fc1a0c5c
ap-southeast-2,commercial,com.amazonaws.vpce.ap-southeast-2.vpce-svc-0b87155ddd6954974,com.amazonaws.vpce.ap-southeast-2.vpce-svc-0b4a72e8f825495f6
ap-southeast-3,commercial,com.amazonaws.vpce.ap-southeast-3.vpce-svc-07a698e7e9ccfd04a,com.amazonaws.vpce.ap-southeast-3.vpce-svc-025ca447c232c6a1b
ca-central-1,commercial,com.amazonaws.vpce.ca-central-1.vpce-svc-0205f197ec0e28d65,com.amazonaws.vpce.ca-central-1.vpce-svc-0c4e25bdbcbfbb684
eu-central-1,commercial,com.amazonaws.vpce.eu-central-1.vpce-svc-081f78503812597f7,com.amazonaws.vpce.eu-central-1.vpce-svc-08e5dfca9572c85c4
eu-west-1,commercial,com.amazonaws.vpce.eu-west-1.vpce-svc-0da6ebf1461278016,com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c
eu-west-2,commercial,com.amazonaws.vpce.eu-west-2.vpce-svc-01148c7cdc1d1326c,com.amazonaws.vpce.eu-west-2.vpce-svc-05279412bf5353a45
eu-west-3,commercial,com.amazonaws.vpce.eu-west-3.vpce-svc-008b9368d1d011f37,com.amazonaws.vpce.eu-west-3.vpce-svc-005b039dd0b5f857d
sa-east-1,commercial,com.amazonaws.vpce.sa-east-1.vpce-svc-0bafcea8cdfe11b66,com.amazonaws.vpce.sa-east-1.vpce-svc-0e61564963be1b43f
us-east-1,commercial,com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04,com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf
us-east-2,commercial,com.amazonaws.vpce.us-east-2.vpce-svc-041dc2b4d7796b8d3,com.amazonaws.vpce.us-east-2.vpce-svc-090a8fab0d73e39a6
us-west-1,commercial,com.amazonaws.vpce.us-west-1.vpce-svc-09bb6ca26208063f2,com.amazonaws.vpce.us-west-1.vpce-svc-04cb91f9372b792fe
us-west-2,commercial,com.amazonaws.vpce.us-west-2.vpce-svc-0129f463fcfbc46c5,com.amazonaws.vpce.us-west-2.vpce-svc-0158114c0c730c3bb
us-gov-west-1,civilian,com.amazonaws.vpce.us-gov-west-1.vpce-svc-0f25e28401cbc9418,com.amazonaws.vpce.us-gov-west-1.vpce-svc-05f27abef1a1a3faa
us-gov-west-1,dod,com.amazonaws.vpce.us-gov-west-1.vpce-svc-08fddf710780b2a54,com.amazonaws.vpce.us-gov-west-1.vpce-svc-05c210a2feea23ad7
";

    #[test]
    fn every_reference_row_is_in_the_table_and_nothing_else() {
        let mut rows = 0;
        for line in REFERENCE_CSV
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
        {
            let fields: Vec<&str> = line.split(',').collect();
            let [region, variant, rest_api, relay] = fields[..] else {
                panic!("unexpected CSV line {line}");
            };
            let services = endpoint_services(region);
            let found = services.iter().find(|(v, _)| *v == variant);
            assert_eq!(
                found.map(|(_, s)| s.clone()),
                Some(EndpointServices {
                    rest_api: rest_api.to_owned(),
                    relay: relay.to_owned()
                }),
                "row {line}"
            );
            rows += 1;
        }
        assert_eq!(rows, SERVICES.len());
        assert_eq!(rows, 18);
    }

    #[test]
    fn service_names_belong_to_their_region_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for row in SERVICES {
            for name in [row.rest_api, row.relay] {
                let prefix = format!("com.amazonaws.vpce.{}.vpce-svc-", row.region);
                let suffix = name
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("{name}"));
                assert_eq!(suffix.len(), 17, "{name}");
                assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
                assert!(seen.insert(name), "{name} listed twice");
            }
        }
    }

    #[test]
    fn govcloud_has_civilian_and_dod_variants() {
        let services = endpoint_services("us-gov-west-1");
        let variants: Vec<&str> = services.iter().map(|(v, _)| *v).collect();
        assert_eq!(variants, ["civilian", "dod"]);
        assert_ne!(services[0].1, services[1].1);
        assert!(endpoint_services("us-gov-east-1").is_empty());
    }

    #[test]
    fn commercial_regions_have_one_variant() {
        let services = endpoint_services("eu-west-1");
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].0, "commercial");
        assert_eq!(
            services[0].1.relay,
            "com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c"
        );
    }

    #[test]
    fn regions_without_back_end_privatelink_have_no_services() {
        assert!(endpoint_services("eu-north-1").is_empty());
        assert!(endpoint_services("cn-north-1").is_empty());
        assert!(endpoint_services("").is_empty());
    }

    #[test]
    fn supported_regions_lists_each_region_once() {
        let regions = supported_regions();
        assert_eq!(regions.len(), 17);
        assert_eq!(regions.iter().filter(|r| **r == "us-gov-west-1").count(), 1);
        assert!(regions.contains(&"us-west-1"));
    }

    #[test]
    fn partitions_follow_the_region_prefix() {
        assert_eq!(partition_of("us-east-1"), Partition::Aws);
        assert_eq!(partition_of("us-gov-west-1"), Partition::AwsUsGov);
        assert_eq!(partition_of("cn-northwest-1"), Partition::AwsCn);
    }

    #[test]
    fn region_name_shape() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-3",
            "cn-north-1",
            "il-central-1",
            "eusc-de-east-1",
        ] {
            assert!(is_valid_region_name(good), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "us_east_1",
            "useast1",
            "us-east-1 ",
            "us--1",
            "-east-1",
            "us-east-123",
            "https://us-east-1",
        ] {
            assert!(!is_valid_region_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn accounts_host_and_relay_follow_the_partition() {
        assert_eq!(
            default_accounts_host("eu-central-1"),
            "https://accounts.cloud.databricks.com"
        );
        assert_eq!(
            default_accounts_host("us-gov-west-1"),
            "https://accounts.cloud.databricks.us"
        );
        assert_eq!(
            relay_hostname("ap-northeast-1"),
            "tunnel.ap-northeast-1.cloud.databricks.com"
        );
        assert_eq!(
            relay_hostname("us-gov-west-1"),
            "tunnel.us-gov-west-1.cloud.databricks.us"
        );
    }

    #[test]
    fn the_oregon_regions_name_their_relay_without_a_region_label() {
        for region in ["us-west-1", "us-west-2"] {
            assert_eq!(relay_hostname(region), "tunnel.cloud.databricks.com");
            assert_eq!(
                privatelink_relay_hostname(region),
                "tunnel.privatelink.cloud.databricks.com"
            );
        }
        assert_eq!(
            privatelink_relay_hostname("eu-west-1"),
            "tunnel.privatelink.eu-west-1.cloud.databricks.com"
        );
        // Every region of the table has both names, each a DNS name of the partition's zone.
        for region in supported_regions() {
            for name in [relay_hostname(region), privatelink_relay_hostname(region)] {
                assert!(name.starts_with("tunnel."), "{name}");
                assert!(name.ends_with(zone(region)), "{name}");
            }
        }
        assert_eq!(
            workspace_host(" DBC-1 ", "eu-west-1"),
            "dbc-1.cloud.databricks.com"
        );
        assert_eq!(
            workspace_host("dbc-9", "us-gov-west-1"),
            "dbc-9.cloud.databricks.us"
        );
    }
}
