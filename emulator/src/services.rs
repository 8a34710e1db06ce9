//! Databricks' AWS PrivateLink endpoint services per region
//! (`docs/account-api.md#endpoint-services-ports-and-hostnames`), embedded so the
//! emulator can tell which Databricks service a registered `vpce-…` points at.
//! Knows nothing of HTTP or of account state.

/// Which Databricks deployment a row belongs to; us-gov-west-1 has two sets of services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Commercial,
    GovCloudCivilian,
    GovCloudDod,
}

/// The two back-end PrivateLink endpoint services Databricks runs in one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivateLinkServices {
    pub region: &'static str,
    pub variant: Variant,
    /// Workspace (REST API) service: registrations get use case `GENERAL_ACCESS`.
    pub rest_api: &'static str,
    /// Secure cluster connectivity relay: registrations get use case `DATAPLANE_RELAY_ACCESS`.
    pub relay: &'static str,
}

/// What a Databricks endpoint service is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    RestApi,
    Relay,
}

/// A service name found in [`PRIVATELINK_SERVICES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownService {
    pub region: &'static str,
    pub variant: Variant,
    pub kind: ServiceKind,
}

/// The same public table as `src/aws/services.rs`
/// (`docs/account-api.md#endpoint-services-ports-and-hostnames`).
pub const PRIVATELINK_SERVICES: &[PrivateLinkServices] = &[
    PrivateLinkServices {
        region: "ap-northeast-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ap-northeast-1.vpce-svc-02691fd610d24fd64",
        relay: "com.amazonaws.vpce.ap-northeast-1.vpce-svc-02aa633bda3edbec0",
    },
    PrivateLinkServices {
        region: "ap-northeast-2",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ap-northeast-2.vpce-svc-0babb9bde64f34d7e",
        relay: "com.amazonaws.vpce.ap-northeast-2.vpce-svc-0dc0e98a5800db5c4",
    },
    PrivateLinkServices {
        region: "ap-south-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ap-south-1.vpce-svc-0dbfe5d9ee18d6411",
        relay: "com.amazonaws.vpce.ap-south-1.vpce-svc-03fd4d9b61414f3de",
    },
    PrivateLinkServices {
        region: "ap-southeast-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ap-southeast-1.vpce-svc-02535b257fc253ff4",
        relay: "com.amazonaws.vpce.ap-southeast-1.vpce-svc-0557367c6fc1a0c5c",
    },
    PrivateLinkServices {
        region: "ap-southeast-2",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ap-southeast-2.vpce-svc-0b87155ddd6954974",
        relay: "com.amazonaws.vpce.ap-southeast-2.vpce-svc-0b4a72e8f825495f6",
    },
    PrivateLinkServices {
        region: "ap-southeast-3",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ap-southeast-3.vpce-svc-07a698e7e9ccfd04a",
        relay: "com.amazonaws.vpce.ap-southeast-3.vpce-svc-025ca447c232c6a1b",
    },
    PrivateLinkServices {
        region: "ca-central-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.ca-central-1.vpce-svc-0205f197ec0e28d65",
        relay: "com.amazonaws.vpce.ca-central-1.vpce-svc-0c4e25bdbcbfbb684",
    },
    PrivateLinkServices {
        region: "eu-central-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.eu-central-1.vpce-svc-081f78503812597f7",
        relay: "com.amazonaws.vpce.eu-central-1.vpce-svc-08e5dfca9572c85c4",
    },
    PrivateLinkServices {
        region: "eu-west-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.eu-west-1.vpce-svc-0da6ebf1461278016",
        relay: "com.amazonaws.vpce.eu-west-1.vpce-svc-09b4eb2bc775f4e8c",
    },
    PrivateLinkServices {
        region: "eu-west-2",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.eu-west-2.vpce-svc-01148c7cdc1d1326c",
        relay: "com.amazonaws.vpce.eu-west-2.vpce-svc-05279412bf5353a45",
    },
    PrivateLinkServices {
        region: "eu-west-3",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.eu-west-3.vpce-svc-008b9368d1d011f37",
        relay: "com.amazonaws.vpce.eu-west-3.vpce-svc-005b039dd0b5f857d",
    },
    PrivateLinkServices {
        region: "sa-east-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.sa-east-1.vpce-svc-0bafcea8cdfe11b66",
        relay: "com.amazonaws.vpce.sa-east-1.vpce-svc-0e61564963be1b43f",
    },
    PrivateLinkServices {
        region: "us-east-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04",
        relay: "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf",
    },
    PrivateLinkServices {
        region: "us-east-2",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.us-east-2.vpce-svc-041dc2b4d7796b8d3",
        relay: "com.amazonaws.vpce.us-east-2.vpce-svc-090a8fab0d73e39a6",
    },
    PrivateLinkServices {
        region: "us-west-1",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.us-west-1.vpce-svc-09bb6ca26208063f2",
        relay: "com.amazonaws.vpce.us-west-1.vpce-svc-04cb91f9372b792fe",
    },
    PrivateLinkServices {
        region: "us-west-2",
        variant: Variant::Commercial,
        rest_api: "com.amazonaws.vpce.us-west-2.vpce-svc-0129f463fcfbc46c5",
        relay: "com.amazonaws.vpce.us-west-2.vpce-svc-0158114c0c730c3bb",
    },
    PrivateLinkServices {
        region: "us-gov-west-1",
        variant: Variant::GovCloudCivilian,
        rest_api: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-0f25e28401cbc9418",
        relay: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-05f27abef1a1a3faa",
    },
    PrivateLinkServices {
        region: "us-gov-west-1",
        variant: Variant::GovCloudDod,
        rest_api: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-08fddf710780b2a54",
        relay: "com.amazonaws.vpce.us-gov-west-1.vpce-svc-05c210a2feea23ad7",
    },
];

/// Looks a full endpoint service name (`com.amazonaws.vpce.<region>.vpce-svc-…`) up in the table.
pub fn classify(service_name: &str) -> Option<KnownService> {
    PRIVATELINK_SERVICES.iter().find_map(|row| {
        let kind = if row.rest_api == service_name {
            ServiceKind::RestApi
        } else if row.relay == service_name {
            ServiceKind::Relay
        } else {
            return None;
        };
        Some(KnownService {
            region: row.region,
            variant: row.variant,
            kind,
        })
    })
}

/// The services of one region, commercial variant first (us-gov-west-1 has civilian and DoD rows).
pub fn for_region(region: &str) -> impl Iterator<Item = &'static PrivateLinkServices> + '_ {
    PRIVATELINK_SERVICES
        .iter()
        .filter(move |row| row.region == region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_distinct_rest_and_relay_services_named_after_the_region() {
        assert_eq!(PRIVATELINK_SERVICES.len(), 18);
        for row in PRIVATELINK_SERVICES {
            assert_ne!(row.rest_api, row.relay, "{}", row.region);
            let prefix = format!("com.amazonaws.vpce.{}.vpce-svc-", row.region);
            assert!(row.rest_api.starts_with(&prefix), "{}", row.rest_api);
            assert!(row.relay.starts_with(&prefix), "{}", row.relay);
        }
    }

    #[test]
    fn classify_tells_rest_from_relay_and_gov_variants_apart() {
        let rest = classify("com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04").unwrap();
        assert_eq!(rest.kind, ServiceKind::RestApi);
        assert_eq!(rest.region, "us-east-1");
        let relay =
            classify("com.amazonaws.vpce.us-gov-west-1.vpce-svc-05c210a2feea23ad7").unwrap();
        assert_eq!(relay.kind, ServiceKind::Relay);
        assert_eq!(relay.variant, Variant::GovCloudDod);
        assert_eq!(classify("com.amazonaws.us-east-1.s3"), None);
        assert_eq!(for_region("us-gov-west-1").count(), 2);
    }
}
