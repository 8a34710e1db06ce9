//! Verification from inside the VPC (`VerifyFunctionArn`): the names cluster nodes use and the
//! endpoints' interface addresses, read from EC2, go to the verifier function
//! (`src/bin/verifier.rs`, `docs/verification.md`), invoked synchronously a few seconds before
//! the invocation's deadline. Before the switch it asks only what can already be true (the names
//! the endpoints' private DNS serves, TCP to every endpoint address); the workspaces' hosts,
//! public until the switch attaches private access settings, are reported then and required
//! after `ReadyAfter` (`hold`). A failing report, a missing verifier or one that does not answer
//! in time means no workspace is switched.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::{
    AwsError, Ec2, EndpointNetwork, Functions, ServicePrivateDns, privatelink_relay_hostname,
    relay_hostname, workspace_host,
};
use crate::databricks::Workspace;
use crate::verify::{
    EndpointAddresses, EndpointDnsNames, EndpointRole, Expect, ExtraName, RELAY_PORT, VerifyReport,
    VerifyRequest, name_checks,
};

use super::properties::Properties;

/// Longest part of a failure reason given to the verifier's problems; the whole reason must fit
/// CloudFormation's limit with the rest of the message.
const MAX_SUMMARY_CHARS: usize = 1500;

/// Kept back from the verification at the end of the time it is given: when EC2 or the verifier
/// does not answer, a Create still has time to remove what it made and to answer with this
/// module's reason, before the deadline guard answers with a bare time-out.
pub const KEPT_AFTER_VERIFYING: Duration = Duration::from_secs(5);

/// Longest the optional lookup of the services' private DNS names may take.
const SERVICE_LOOKUP_BUDGET: Duration = Duration::from_secs(5);

/// Test-only: when set to `1` in a build with debug assertions (the tests' and `make demo`'s),
/// the endpoints' interface addresses handed to the verifier are their loopback stand-ins
/// (`a.b.c.d` becomes `127.b.c.d`, [`loopback_stand_in`]), the addresses the tests' DNS world
/// answers with and listens on, so no test connects outside 127.0.0.0/8. A release build, the one
/// deployed, ignores it.
pub const TEST_LOOPBACK_VAR: &str = "TEST_ONLY_LOOPBACK_ENDPOINTS";

/// The one error of this module.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the verification from inside the VPC failed, so no workspace was switched (a switch cannot be undone): {0}"
    )]
    Failed(String),

    #[error(
        "the verifier function {0} did not answer before this invocation's deadline, so no workspace was switched: check that it runs in the cluster subnets, that its timeout is under a minute, and retry the stack operation"
    )]
    TimedOut(String),

    #[error(
        "the verifier function {arn} answered something that is not a report ({detail}), so no workspace was switched: deploy the verifier of this package's version"
    )]
    NotAReport { arn: String, detail: String },

    #[error("{0}. No workspace was switched")]
    Aws(#[from] AwsError),
}

impl From<VerifyError> for super::error::ResourceError {
    fn from(error: VerifyError) -> Self {
        super::error::ResourceError::NotVerified(error.to_string())
    }
}

/// Runs the verifier when `VerifyFunctionArn` is given and workspaces are to be switched;
/// returns the short report for the `VerificationReport` attribute.
pub async fn before_switch(
    ec2: &Ec2,
    functions: &Functions,
    props: &Properties,
    workspaces: &[Workspace],
    deadline: Instant,
) -> Result<Option<String>, VerifyError> {
    let Some(arn) = props.verify_function_arn.as_deref() else {
        return Ok(None);
    };
    if props.workspace_ids.is_empty() {
        return Ok(None);
    }
    let hosts = hosts_before_switch(props, workspaces);
    let report = run(ec2, functions, arn, props, &hosts, deadline).await?;
    judge(&report)
}

/// The workspaces' own host names (`<deployment>.cloud.databricks.com`), which their cluster
/// nodes call besides the regional names.
pub fn hosts(props: &Properties, workspaces: &[Workspace]) -> Vec<String> {
    to_switch(props, workspaces)
        .filter_map(|w| w.deployment_name.as_deref())
        .map(|d| workspace_host(d, &props.region))
        .collect()
}

fn to_switch<'a>(
    props: &'a Properties,
    workspaces: &'a [Workspace],
) -> impl Iterator<Item = &'a Workspace> {
    props
        .workspace_ids
        .iter()
        .filter_map(|id| workspaces.iter().find(|w| w.workspace_id == *id))
}

/// The workspaces' hosts before the switch. Databricks keeps a workspace's host a CNAME of the
/// region's public name until private access settings are attached to it, and only then points
/// it at the `privatelink` zone the REST API endpoint's private DNS answers
/// (`docs/verification.md#the-dns-chain`): a workspace still without them is reported only; one
/// that has them already (switched earlier) must resolve to the endpoint now.
fn hosts_before_switch(props: &Properties, workspaces: &[Workspace]) -> Vec<ExtraName> {
    to_switch(props, workspaces)
        .filter_map(|w| {
            let host = workspace_host(w.deployment_name.as_deref()?, &props.region);
            let expect = if w.private_access_settings_id.is_some() {
                Expect::Endpoint
            } else {
                Expect::ReportOnly
            };
            Some(ExtraName {
                host,
                endpoint: EndpointRole::RestApi,
                expect,
            })
        })
        .collect()
}

/// After `ReadyAfter` every switched workspace's host must lead to the REST API endpoint.
pub fn hosts_after_ready(hosts: &[String]) -> Vec<ExtraName> {
    hosts
        .iter()
        .map(|host| ExtraName {
            host: host.clone(),
            endpoint: EndpointRole::RestApi,
            expect: Expect::Endpoint,
        })
        .collect()
}

/// The relay's names from the region table, both reported only: the PrivateLink name is
/// required where EC2 reports it as the relay service's private DNS name (it then comes first,
/// from EC2), and no public source says the public name resolves to the endpoint
/// (`docs/verification.md#names-per-region`).
fn relay_names(region: &str) -> [ExtraName; 2] {
    [privatelink_relay_hostname(region), relay_hostname(region)].map(|host| ExtraName {
        host,
        endpoint: EndpointRole::Relay,
        expect: Expect::ReportOnly,
    })
}

/// Whether the test-only [`TEST_LOOPBACK_VAR`] is in effect.
fn loopback_stand_ins() -> bool {
    static CHOSEN: OnceLock<bool> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let set = std::env::var(TEST_LOOPBACK_VAR).is_ok_and(|v| v.trim() == "1");
        if set && cfg!(debug_assertions) {
            tracing::warn!(
                "{TEST_LOOPBACK_VAR} is set: the verifier is given the endpoints' loopback stand-ins instead of their addresses; this setting is for tests only"
            );
            true
        } else {
            if set {
                tracing::warn!("{TEST_LOOPBACK_VAR} is set but ignored: it is for tests only");
            }
            false
        }
    })
}

/// The test-only stand-in of an interface's private IPv4 address: `a.b.c.d` becomes
/// `127.b.c.d`. Other addresses are kept.
pub fn loopback_stand_in(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let [_, b, c, d] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(127, b, c, d))
        }
        IpAddr::V6(_) => address,
    }
}

fn addresses_of(endpoint: Option<&EndpointNetwork>) -> Vec<IpAddr> {
    let found = endpoint.map(|e| e.private_ips.clone()).unwrap_or_default();
    if loopback_stand_ins() {
        found.into_iter().map(loopback_stand_in).collect()
    } else {
        found
    }
}

/// Invokes the verifier `arn` with the names cluster nodes use (what EC2 reports of the
/// endpoints, the relay's names, and `hosts`) and the endpoints' interface addresses as EC2
/// reports them now; its report, passed or not. Ends [`KEPT_AFTER_VERIFYING`] before `deadline`.
pub async fn run(
    ec2: &Ec2,
    functions: &Functions,
    arn: &str,
    props: &Properties,
    hosts: &[ExtraName],
    deadline: Instant,
) -> Result<VerifyReport, VerifyError> {
    let deadline = deadline
        .checked_sub(KEPT_AFTER_VERIFYING)
        .unwrap_or_else(Instant::now);
    let ids = [
        props.endpoints.rest_api.clone(),
        props.endpoints.relay.clone(),
    ];
    let found = ec2.endpoint_networks(&props.region, &ids, deadline).await?;
    let of = |id: &str| found.iter().find(|e| e.id == id);
    let (rest, relay) = (of(&ids[0]), of(&ids[1]));
    let services = service_private_dns(ec2, &props.region, &found, deadline).await;
    let mut extra: Vec<ExtraName> = relay_names(&props.region).into();
    extra.extend_from_slice(hosts);
    let request = VerifyRequest {
        names: name_checks(
            dns_names(rest, &services),
            dns_names(relay, &services),
            RELAY_PORT,
            &extra,
        ),
        endpoint_addresses: EndpointAddresses {
            rest_api: addresses_of(rest),
            relay: addresses_of(relay),
        },
        connect_timeout_ms: None,
    };
    let payload = serde_json::to_vec(&request).map_err(|e| VerifyError::NotAReport {
        arn: arn.to_owned(),
        detail: e.to_string(),
    })?;
    let answer = match functions.invoke(arn, payload, deadline).await {
        Err(AwsError::DeadlineExceeded { .. }) => return Err(VerifyError::TimedOut(arn.into())),
        other => other?,
    };
    serde_json::from_slice(&answer).map_err(|e| VerifyError::NotAReport {
        arn: arn.to_owned(),
        detail: crate::text::shorten(&e.to_string(), 200),
    })
}

/// One endpoint's DNS entries and its service's private DNS names; none for an endpoint EC2 did
/// not describe.
fn dns_names<'a>(
    endpoint: Option<&'a EndpointNetwork>,
    services: &'a [ServicePrivateDns],
) -> EndpointDnsNames<'a> {
    EndpointDnsNames {
        dns_entries: endpoint.map_or(&[], |e| &e.dns_names),
        service_private_dns_names: endpoint
            .and_then(|e| services.iter().find(|s| s.service_name == e.service_name))
            .map_or(&[], |s| &s.private_dns_names),
    }
}

/// The private DNS names of the endpoints' services. The endpoints' DNS entries name the same
/// hosts once private DNS is on, so without these (EC2 refused, or does not know the services)
/// the verification goes on with the entries alone, and a warning says so.
async fn service_private_dns(
    ec2: &Ec2,
    region: &str,
    endpoints: &[EndpointNetwork],
    deadline: Instant,
) -> Vec<ServicePrivateDns> {
    let mut service_names: Vec<String> = Vec::new();
    for name in endpoints.iter().map(|e| &e.service_name) {
        if !name.is_empty() && !service_names.contains(name) {
            service_names.push(name.clone());
        }
    }
    // A budget of its own: the lookup is optional, and one that hangs must not use up the time
    // the verifier is given.
    let budget = deadline.min(Instant::now() + SERVICE_LOOKUP_BUDGET);
    match ec2
        .service_private_dns_names(region, &service_names, budget)
        .await
    {
        Ok(services) => services,
        Err(error) => {
            tracing::warn!(
                %error,
                "could not read the private DNS names of the endpoints' services; the verifier is given the endpoints' DNS entries only"
            );
            Vec::new()
        }
    }
}

impl VerifyError {
    /// What went wrong, without what it means for the switch: for a verification after it.
    pub fn detail(&self) -> String {
        match self {
            VerifyError::Failed(problems) => problems.clone(),
            VerifyError::TimedOut(arn) => {
                format!("the verifier function {arn} did not answer in time")
            }
            VerifyError::NotAReport { arn, detail } => {
                format!(
                    "the verifier function {arn} answered something that is not a report ({detail})"
                )
            }
            VerifyError::Aws(e) => e.to_string(),
        }
    }
}

/// The `VerificationReport` text of a passing report: what was checked, then what the names
/// reported only resolved to.
pub fn passed_text(report: &VerifyReport) -> String {
    let mut text = format!(
        "passed: {} names and {} endpoint addresses checked from inside the VPC in {} ms",
        report.names.len(),
        report.endpoint_addresses.len(),
        report.elapsed_ms
    );
    append_notes(&mut text, report);
    text
}

/// Appends the report-only names' lines, and why a workspace host may be public before the
/// switch, shortened to fit the attribute.
pub fn append_notes(text: &mut String, report: &VerifyReport) {
    let notes = report.notes();
    if notes.is_empty() {
        return;
    }
    text.push_str("; reported only: ");
    text.push_str(&notes.join("; "));
    let public_host = report.names.iter().any(|n| {
        n.expect == Expect::ReportOnly
            && n.endpoint == EndpointRole::RestApi
            && n.private_dns == crate::verify::PrivateDns::NotInEffect
    });
    if public_host {
        text.push_str(
            " (a workspace host stays public until the switch attaches private access settings; Databricks then points it at the privatelink zone, checked after ReadyAfter with WaitUntilReady)",
        );
    }
    *text = crate::text::shorten(text, MAX_SUMMARY_CHARS);
}

/// The problems of a failing report, shortened to fit a reason.
pub fn problems_text(report: &VerifyReport) -> String {
    crate::text::shorten(&report.summary().join("; "), MAX_SUMMARY_CHARS)
}

/// A passing report gives the attribute; a failing one the reason, shortened.
pub fn judge(report: &VerifyReport) -> Result<Option<String>, VerifyError> {
    if !report.passed {
        let problems = problems_text(report);
        tracing::warn!(%problems, "verification from inside the VPC failed");
        return Err(VerifyError::Failed(problems));
    }
    let text = passed_text(report);
    tracing::info!(report = %text, "verification from inside the VPC passed");
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::test_support::{Recorder, ec2_conf, ec2_error, lambda_conf, later};
    use aws_smithy_mocks::{Rule, mock};

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:verifier";
    const REST_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-09143d1e626de2f04";
    const RELAY_SERVICE: &str = "com.amazonaws.vpce.us-east-1.vpce-svc-00018a8c3ff62ffdf";
    const RELAY_PRIVATE_NAME: &str = "tunnel.privatelink.us-east-1.cloud.databricks.com";
    const REST_PRIVATE_NAME: &str = "nvirginia.privatelink.cloud.databricks.com";

    fn props() -> Properties {
        Properties {
            workspace_ids: vec![1],
            verify_function_arn: Some(ARN.into()),
            ..crate::resource::tests::properties(
                "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f",
                "https://accounts.cloud.databricks.com",
                ["vpce-rest", "vpce-relay"],
                "us-east-1",
            )
        }
    }

    /// The two endpoints with private DNS still off (their DNS entries are only `vpce-…` names)
    /// and one interface each.
    fn endpoint_rules() -> [Rule; 2] {
        let endpoint = |id: &str, service: &str, eni: &str| {
            format!(
                "<item><vpcEndpointId>{id}</vpcEndpointId><serviceName>{service}</serviceName>\
                 <dnsEntrySet><item><dnsName>{id}-abc.{}.us-east-1.vpce.amazonaws.com</dnsName></item></dnsEntrySet>\
                 <networkInterfaceIdSet><item>{eni}</item></networkInterfaceIdSet></item>",
                service.rsplit('.').next().unwrap_or_default()
            )
        };
        let endpoints = format!(
            "<DescribeVpcEndpointsResponse><vpcEndpointSet>{}{}</vpcEndpointSet></DescribeVpcEndpointsResponse>",
            endpoint("vpce-rest", REST_SERVICE, "eni-rest"),
            endpoint("vpce-relay", RELAY_SERVICE, "eni-relay")
        );
        let interfaces = "<DescribeNetworkInterfacesResponse><networkInterfaceSet>\
            <item><networkInterfaceId>eni-rest</networkInterfaceId><privateIpAddress>10.0.8.5</privateIpAddress></item>\
            <item><networkInterfaceId>eni-relay</networkInterfaceId><privateIpAddress>10.0.8.6</privateIpAddress></item>\
            </networkInterfaceSet></DescribeNetworkInterfacesResponse>";
        [
            mock!(aws_sdk_ec2::Client::describe_vpc_endpoints)
                .sequence()
                .http_status(200, Some(endpoints))
                .build(),
            mock!(aws_sdk_ec2::Client::describe_network_interfaces)
                .sequence()
                .http_status(200, Some(interfaces.into()))
                .build(),
        ]
    }

    /// Runs the verification against `services` (the DescribeVpcEndpointServices answer) and
    /// returns the request the verifier was given.
    async fn request_sent(services: Rule) -> VerifyRequest {
        let [endpoints, interfaces] = endpoint_rules();
        let ec2 = Ec2::from_conf(ec2_conf(
            &[&endpoints, &interfaces, &services],
            &Recorder::default(),
            None,
        ));
        let verifier = mock!(aws_sdk_lambda::Client::invoke)
            .sequence()
            .http_status(
                200,
                Some(
                    r#"{"passed":true,"elapsedMs":40,"deadlineReached":false,"names":[],"endpointAddresses":[]}"#
                        .into(),
                ),
            )
            .build();
        let sent = Recorder::default();
        let functions = Functions::from_conf(lambda_conf(&[&verifier], &sent));
        let report = run(&ec2, &functions, ARN, &props(), &[], later())
            .await
            .unwrap();
        assert!(report.passed);
        let requests = sent.requests();
        assert_eq!(requests.len(), 1, "the verifier is invoked once");
        serde_json::from_str(&requests[0].body).unwrap()
    }

    fn checked(request: &VerifyRequest) -> Vec<(&str, EndpointRole)> {
        request
            .names
            .iter()
            .map(|c| (c.host.as_str(), c.endpoint))
            .collect()
    }

    #[tokio::test]
    async fn the_services_private_dns_names_are_verified_before_private_dns_is_on() {
        let body = format!(
            "<DescribeVpcEndpointServicesResponse><serviceDetailSet>\
             <item><serviceName>{REST_SERVICE}</serviceName><privateDnsNameSet><item><privateDnsName>{REST_PRIVATE_NAME}</privateDnsName></item></privateDnsNameSet></item>\
             <item><serviceName>{RELAY_SERVICE}</serviceName><privateDnsName>{RELAY_PRIVATE_NAME}</privateDnsName></item>\
             </serviceDetailSet></DescribeVpcEndpointServicesResponse>"
        );
        let services = mock!(aws_sdk_ec2::Client::describe_vpc_endpoint_services)
            .match_requests(|r| r.service_names() == [REST_SERVICE, RELAY_SERVICE])
            .sequence()
            .http_status(200, Some(body))
            .build();
        let request = request_sent(services).await;
        let names = checked(&request);
        assert!(
            names.contains(&(RELAY_PRIVATE_NAME, EndpointRole::Relay)),
            "{names:?}"
        );
        assert!(
            names.contains(&(REST_PRIVATE_NAME, EndpointRole::RestApi)),
            "{names:?}"
        );
        assert_eq!(
            request.endpoint_addresses.relay,
            ["10.0.8.6".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn services_ec2_will_not_describe_leave_the_dns_entries_to_verify() {
        let unknown = mock!(aws_sdk_ec2::Client::describe_vpc_endpoint_services)
            .sequence()
            .http_status(
                400,
                Some(ec2_error(
                    "InvalidServiceName",
                    &format!("The Vpc Endpoint Service &apos;{REST_SERVICE}&apos; does not exist"),
                )),
            )
            .build();
        let request = request_sent(unknown).await;
        let names = checked(&request);
        assert_eq!(
            names,
            [
                (
                    "vpce-relay-abc.vpce-svc-00018a8c3ff62ffdf.us-east-1.vpce.amazonaws.com",
                    EndpointRole::Relay
                ),
                (
                    "vpce-rest-abc.vpce-svc-09143d1e626de2f04.us-east-1.vpce.amazonaws.com",
                    EndpointRole::RestApi
                ),
                (RELAY_PRIVATE_NAME, EndpointRole::Relay),
                ("tunnel.us-east-1.cloud.databricks.com", EndpointRole::Relay),
            ]
        );
        // Without EC2's word for it, the region table's PrivateLink relay name is reported
        // only, like the public relay name.
        let expects: Vec<Expect> = request.names.iter().map(|c| c.expect).collect();
        assert_eq!(
            expects,
            [
                Expect::Endpoint,
                Expect::Endpoint,
                Expect::ReportOnly,
                Expect::ReportOnly
            ]
        );
    }

    #[tokio::test]
    async fn the_relay_name_ec2_reports_is_required() {
        let body = format!(
            "<DescribeVpcEndpointServicesResponse><serviceDetailSet>\
             <item><serviceName>{RELAY_SERVICE}</serviceName><privateDnsName>{RELAY_PRIVATE_NAME}</privateDnsName></item>\
             </serviceDetailSet></DescribeVpcEndpointServicesResponse>"
        );
        let services = mock!(aws_sdk_ec2::Client::describe_vpc_endpoint_services)
            .sequence()
            .http_status(200, Some(body))
            .build();
        let request = request_sent(services).await;
        let relay = request
            .names
            .iter()
            .find(|c| c.host == RELAY_PRIVATE_NAME)
            .unwrap();
        assert_eq!(relay.expect, Expect::Endpoint);
        assert_eq!(request.names[0].host, RELAY_PRIVATE_NAME);
    }

    #[test]
    fn before_the_switch_a_workspace_host_is_required_only_once_it_has_private_access_settings() {
        let workspace = |id: i64, pas: Option<&str>| Workspace {
            workspace_id: id,
            deployment_name: Some(format!("dbc-{id}")),
            private_access_settings_id: pas.map(str::to_owned),
            ..Default::default()
        };
        let props = Properties {
            workspace_ids: vec![1, 2],
            ..props()
        };
        let hosts = hosts_before_switch(&props, &[workspace(1, None), workspace(2, Some("pas"))]);
        let seen: Vec<(&str, Expect)> = hosts.iter().map(|h| (h.host.as_str(), h.expect)).collect();
        assert_eq!(
            seen,
            [
                ("dbc-1.cloud.databricks.com", Expect::ReportOnly),
                ("dbc-2.cloud.databricks.com", Expect::Endpoint)
            ]
        );
        assert!(
            hosts_after_ready(&["dbc-1.cloud.databricks.com".into()])
                .iter()
                .all(|h| h.expect == Expect::Endpoint)
        );
    }

    #[test]
    fn the_loopback_stand_in_keeps_the_last_three_octets() {
        let stand_in = |a: &str| loopback_stand_in(a.parse().unwrap()).to_string();
        assert_eq!(stand_in("10.37.109.222"), "127.37.109.222");
        assert_eq!(stand_in("192.168.4.5"), "127.168.4.5");
        assert_eq!(stand_in("fd00::1"), "fd00::1");
    }

    fn report(passed: bool) -> VerifyReport {
        VerifyReport {
            passed,
            elapsed_ms: 42,
            deadline_reached: !passed,
            names: Vec::new(),
            endpoint_addresses: Vec::new(),
        }
    }

    #[test]
    fn a_passing_report_is_the_attribute_and_a_failing_one_the_reason() {
        let passed = judge(&report(true)).unwrap().unwrap();
        assert_eq!(
            passed,
            "passed: 0 names and 0 endpoint addresses checked from inside the VPC in 42 ms"
        );
        let failed = judge(&report(false)).unwrap_err().to_string();
        assert!(
            failed.starts_with(
                "the verification from inside the VPC failed, so no workspace was switched"
            ),
            "{failed}"
        );
    }
}
