//! The verifier's request and report as they travel in a Lambda invocation (JSON, camelCase), the
//! limits a request must keep, and the report's one-line-per-problem summary for people.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;
#[cfg(test)]
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use crate::endpoint::EndpointRole;
use crate::text::shorten;

/// At most this many names per request: each is one lookup and a few connections.
pub const MAX_NAMES: usize = 24;
/// At most this many ports per name.
pub const MAX_PORTS_PER_NAME: usize = 4;
/// At most this many addresses per endpoint: an endpoint has one network interface per
/// availability zone.
pub const MAX_ADDRESSES_PER_ENDPOINT: usize = 16;
/// Of the addresses a name resolves to, at most this many are kept and connected to.
pub const MAX_RESOLVED_ADDRESSES: usize = 8;
/// Longest DNS name (RFC 1035, without the trailing dot).
const MAX_HOST_CHARS: usize = 253;
/// Connection timeout when the request names none, and the range a request may ask for.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
const CONNECT_TIMEOUT_RANGE_MS: (u64, u64) = (100, 30_000);
/// At most this many summary lines; the rest are counted on the last one.
const MAX_SUMMARY_LINES: usize = 20;

/// What a name must show for the verification to pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Expect {
    /// Resolve to its endpoint's addresses only, every connection taken.
    #[default]
    Endpoint,
    /// Looked up, connected to where private, and reported; never fails the verification (a
    /// name whose answer is known to change later, or that no source says must be private).
    ReportOnly,
}

impl Expect {
    fn is_endpoint(&self) -> bool {
        *self == Expect::Endpoint
    }
}

/// What the function asks the verifier to check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    /// The names cluster nodes look up, each with the endpoint it must lead to.
    pub names: Vec<NameCheck>,
    /// The private IP addresses of the endpoints' network interfaces.
    pub endpoint_addresses: EndpointAddresses,
    /// Per connection attempt; [`DEFAULT_CONNECT_TIMEOUT_MS`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
}

/// One name to resolve and the ports to open on what it resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameCheck {
    pub host: String,
    pub endpoint: EndpointRole,
    pub ports: Vec<u16>,
    /// [`Expect::Endpoint`] when absent.
    #[serde(default, skip_serializing_if = "Expect::is_endpoint")]
    pub expect: Expect,
}

/// The private addresses of each endpoint's network interfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointAddresses {
    pub rest_api: Vec<IpAddr>,
    pub relay: Vec<IpAddr>,
}

impl EndpointAddresses {
    pub fn of(&self, role: EndpointRole) -> &[IpAddr] {
        match role {
            EndpointRole::RestApi => &self.rest_api,
            EndpointRole::Relay => &self.relay,
        }
    }
}

/// A request the verifier refuses to run; the caller built it wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the verification request is not valid JSON of the expected shape: {0}")]
    Shape(String),
    #[error("the verification request is not usable: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl VerifyRequest {
    /// Reads and checks a request from the invocation's JSON text.
    pub fn parse(text: &str) -> Result<VerifyRequest, RequestError> {
        let request: VerifyRequest = serde_json::from_str(text)
            .map_err(|error| RequestError::Shape(shorten(&error.to_string(), 300)))?;
        request.validate()?;
        Ok(request)
    }

    /// Every limit a request must keep, all problems at once.
    pub fn validate(&self) -> Result<(), RequestError> {
        let mut problems = Vec::new();
        if self.names.is_empty() {
            problems.push("names is empty: there is nothing to verify".to_owned());
        }
        if self.names.len() > MAX_NAMES {
            problems.push(format!("{} names; at most {MAX_NAMES}", self.names.len()));
        }
        for check in self.names.iter().take(MAX_NAMES) {
            if let Err(problem) = check_host(&check.host) {
                problems.push(problem);
            }
            if check.ports.is_empty() || check.ports.len() > MAX_PORTS_PER_NAME {
                problems.push(format!(
                    "{}: {} ports; between 1 and {MAX_PORTS_PER_NAME}",
                    shorten(&check.host, 60),
                    check.ports.len()
                ));
            }
            if check.ports.contains(&0) {
                problems.push(format!("{}: port 0", shorten(&check.host, 60)));
            }
        }
        for role in EndpointRole::BOTH {
            let addresses = self.endpoint_addresses.of(role);
            if addresses.len() > MAX_ADDRESSES_PER_ENDPOINT {
                problems.push(format!(
                    "{} addresses for the {} endpoint; at most {MAX_ADDRESSES_PER_ENDPOINT}",
                    addresses.len(),
                    role.label()
                ));
            }
            let wanted = self.names.iter().any(|check| check.endpoint == role);
            if wanted && addresses.is_empty() {
                problems.push(format!(
                    "names lead to the {} endpoint but none of its addresses is given",
                    role.label()
                ));
            }
        }
        if let Some(timeout) = self.connect_timeout_ms {
            let (low, high) = CONNECT_TIMEOUT_RANGE_MS;
            if !(low..=high).contains(&timeout) {
                problems.push(format!(
                    "connectTimeoutMs {timeout}; between {low} and {high}"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RequestError::Invalid(problems))
        }
    }

    pub fn connect_timeout_ms(&self) -> u64 {
        self.connect_timeout_ms
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS)
    }
}

/// A DNS name as a cluster node would look it up: letters, digits, hyphens and dots, labels of 1
/// to 63 characters, not an IP address (that would "resolve" to itself and prove nothing).
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    let shown = shorten(host, 60);
    if host.is_empty() || host.len() > MAX_HOST_CHARS {
        return Err(format!("host {shown:?}: 1 to {MAX_HOST_CHARS} characters"));
    }
    if host.parse::<IpAddr>().is_ok() {
        return Err(format!("host {shown:?} is an IP address, not a name"));
    }
    let labels_fit = host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if labels_fit {
        Ok(())
    } else {
        Err(format!("host {shown:?} is not a DNS name"))
    }
}

/// Everything the verifier saw, per name and per endpoint address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Every name resolved to its endpoint's addresses only, and every connection was taken.
    pub passed: bool,
    pub elapsed_ms: u64,
    /// Some check was cut short by the verifier's own deadline.
    pub deadline_reached: bool,
    pub names: Vec<NameReport>,
    /// The endpoints' addresses connected to directly, whatever DNS says, so a security group
    /// problem shows even when private DNS is not in effect.
    pub endpoint_addresses: Vec<AddressReport>,
}

/// What one name resolved to, and the connections to those addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameReport {
    pub host: String,
    pub endpoint: EndpointRole,
    /// As the request asked; a report-only name never fails the verification.
    #[serde(default, skip_serializing_if = "Expect::is_endpoint")]
    pub expect: Expect,
    pub resolution: Resolution,
    pub addresses: Vec<ResolvedAddress>,
    /// Addresses beyond [`MAX_RESOLVED_ADDRESSES`], neither listed nor connected to.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub addresses_left_out: usize,
    pub private_dns: PrivateDns,
    /// To every listed address that is not public, on every port of the request.
    pub connections: Vec<Connection>,
}

fn is_zero(value: &usize) -> bool {
    *value == 0
}

/// The DNS lookup of one name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub result: ResolutionResult,
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResolutionResult {
    Resolved,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no IPv4 address.
    NoAddresses,
    /// No answer within the resolver's timeouts.
    TimedOut,
    /// The verifier's deadline came before the answer.
    DeadlineReached,
    Failed,
}

/// One address a name resolved to, and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedAddress {
    pub address: IpAddr,
    pub kind: AddressKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressKind {
    /// One of the addresses of the endpoint the name should lead to.
    Endpoint,
    /// An address of the other endpoint (REST API name on the relay endpoint or the reverse).
    OtherEndpoint,
    /// A private address that is neither endpoint's (another VPC's endpoint, custom DNS).
    OtherPrivate,
    /// A public address: the name is answered from public DNS.
    Public,
}

impl AddressKind {
    /// How `address` relates to the endpoint `role` should lead to.
    pub fn of(address: IpAddr, role: EndpointRole, endpoints: &EndpointAddresses) -> AddressKind {
        if endpoints.of(role).contains(&address) {
            AddressKind::Endpoint
        } else if endpoints.of(role.other()).contains(&address) {
            AddressKind::OtherEndpoint
        } else if is_private(address) {
            AddressKind::OtherPrivate
        } else {
            AddressKind::Public
        }
    }
}

/// Addresses a VPC may use privately: RFC 1918, the shared range 100.64.0.0/10 (RFC 6598, allowed
/// as a secondary VPC CIDR), loopback and link-local; IPv6 unique-local and link-local. A VPC can
/// also use public ranges privately; those count as public here (a choice: nothing in DNS tells).
fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0b1100_0000) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Whether the name leads where private DNS of the endpoint would send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PrivateDns {
    /// Every address is one of the endpoint's.
    InEffect,
    /// Some address is public: the public zone answers, not the endpoint's private one.
    NotInEffect,
    /// Private addresses that are not (all) the endpoint's.
    OtherAddresses,
    /// The name did not resolve.
    Unknown,
}

impl PrivateDns {
    pub fn of(resolution: ResolutionResult, addresses: &[ResolvedAddress]) -> PrivateDns {
        if resolution != ResolutionResult::Resolved || addresses.is_empty() {
            PrivateDns::Unknown
        } else if addresses.iter().any(|a| a.kind == AddressKind::Public) {
            PrivateDns::NotInEffect
        } else if addresses.iter().all(|a| a.kind == AddressKind::Endpoint) {
            PrivateDns::InEffect
        } else {
            PrivateDns::OtherAddresses
        }
    }
}

/// One TCP connection attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub address: IpAddr,
    pub port: u16,
    pub result: ConnectResult,
    /// Time from the attempt's start to its result.
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectResult {
    Connected,
    /// Something answered with a reset: nothing accepts the port there.
    Refused,
    /// No answer within the connection timeout: something drops the traffic.
    TimedOut,
    /// The verifier's deadline came before the answer.
    DeadlineReached,
    /// No route to the address.
    Unreachable,
    Failed,
}

/// One endpoint address connected to directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressReport {
    pub address: IpAddr,
    pub endpoint: EndpointRole,
    pub connections: Vec<Connection>,
}

impl NameReport {
    /// A report-only name always passes; any other must resolve to its endpoint only, every
    /// connection taken.
    pub fn passed(&self) -> bool {
        self.expect == Expect::ReportOnly || self.found_private()
    }

    /// Resolved to the endpoint's addresses only, and every connection was taken.
    pub fn found_private(&self) -> bool {
        self.resolution.result == ResolutionResult::Resolved
            && self.private_dns == PrivateDns::InEffect
            && self
                .connections
                .iter()
                .all(|c| c.result == ConnectResult::Connected)
    }
}

impl VerifyReport {
    /// Builds the report from its parts; `passed` and `deadline_reached` follow from them.
    pub fn new(
        elapsed_ms: u64,
        names: Vec<NameReport>,
        endpoint_addresses: Vec<AddressReport>,
    ) -> Self {
        let connections = || {
            names
                .iter()
                .filter(|name| name.expect == Expect::Endpoint)
                .flat_map(|name| &name.connections)
                .chain(endpoint_addresses.iter().flat_map(|a| &a.connections))
        };
        let deadline_reached = connections().any(|c| c.result == ConnectResult::DeadlineReached)
            || names
                .iter()
                .any(|n| n.resolution.result == ResolutionResult::DeadlineReached);
        let passed = !names.is_empty()
            && names.iter().all(NameReport::passed)
            && connections().all(|c| c.result == ConnectResult::Connected);
        VerifyReport {
            passed,
            elapsed_ms,
            deadline_reached,
            names,
            endpoint_addresses,
        }
    }

    /// One line per problem, for a log line or a FAILED reason; empty when the report passed.
    /// A connection problem is told once per address and port, on the first name that led
    /// there, else on the endpoint address itself.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut told: HashSet<(IpAddr, u16)> = HashSet::new();
        for name in self.names.iter().filter(|n| n.expect == Expect::Endpoint) {
            if let Some(line) = dns_problem(name) {
                lines.push(line);
            }
            for connection in &name.connections {
                if connection.result != ConnectResult::Connected
                    && told.insert((connection.address, connection.port))
                {
                    lines.push(format!(
                        "{} port {} at {} {}",
                        name.host,
                        connection.port,
                        connection.address,
                        connection_problem(connection, name.endpoint)
                    ));
                }
            }
        }
        for address in &self.endpoint_addresses {
            for connection in &address.connections {
                if connection.result != ConnectResult::Connected
                    && told.insert((connection.address, connection.port))
                {
                    lines.push(format!(
                        "{} endpoint address {} port {} {}",
                        address.endpoint.label(),
                        connection.address,
                        connection.port,
                        connection_problem(connection, address.endpoint)
                    ));
                }
            }
        }
        if self.names.is_empty() {
            lines.push("no names were checked".to_owned());
        }
        cut_to_limit(&mut lines);
        lines
    }

    /// One line per report-only name: what it resolved to, for a passing report's text.
    pub fn notes(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .names
            .iter()
            .filter(|n| n.expect == Expect::ReportOnly)
            .map(|name| {
                let found = match name.resolution.result {
                    ResolutionResult::Resolved => {
                        let all: Vec<&ResolvedAddress> = name.addresses.iter().collect();
                        let what = match name.private_dns {
                            PrivateDns::InEffect => {
                                format!("the {} endpoint", name.endpoint.label())
                            }
                            PrivateDns::NotInEffect => "public".to_owned(),
                            PrivateDns::OtherAddresses | PrivateDns::Unknown => "other".to_owned(),
                        };
                        format!("resolves to {what} {}", list(&all))
                    }
                    ResolutionResult::NxDomain => "does not exist".to_owned(),
                    ResolutionResult::NoAddresses => "has no IPv4 address".to_owned(),
                    ResolutionResult::TimedOut
                    | ResolutionResult::DeadlineReached
                    | ResolutionResult::Failed => "had no answer".to_owned(),
                };
                format!("{} {found}", name.host)
            })
            .collect();
        cut_to_limit(&mut lines);
        lines
    }
}

/// At most [`MAX_SUMMARY_LINES`], the last one counting the rest.
fn cut_to_limit(lines: &mut Vec<String>) {
    if lines.len() > MAX_SUMMARY_LINES {
        let more = lines.len() - (MAX_SUMMARY_LINES - 1);
        lines.truncate(MAX_SUMMARY_LINES - 1);
        lines.push(format!("... and {more} more (see the full report)"));
    }
}

fn list(addresses: &[&ResolvedAddress]) -> String {
    let mut out = String::new();
    for (index, address) in addresses.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", address.address);
    }
    out
}

const DNS_SERVERS_HINT: &str = "the VPC's DNS servers must be the VPC resolver (DHCP options \
AmazonProvidedDNS) or forward to it, with DNS support on";

fn dns_problem(name: &NameReport) -> Option<String> {
    let host = &name.host;
    let ms = name.resolution.ms;
    let error = name.resolution.error.as_deref().unwrap_or("no detail");
    let line = match name.resolution.result {
        ResolutionResult::NxDomain => format!(
            "{host} does not exist in DNS as the VPC sees it (NXDOMAIN): check the name, and {DNS_SERVERS_HINT}"
        ),
        ResolutionResult::NoAddresses => {
            format!("{host} has no IPv4 address in DNS as the VPC sees it: {DNS_SERVERS_HINT}")
        }
        ResolutionResult::TimedOut => format!(
            "{host}: no DNS answer after {ms} ms: {DNS_SERVERS_HINT}, and reachable from the cluster subnets"
        ),
        ResolutionResult::DeadlineReached => format!(
            "{host}: no DNS answer when the verifier's deadline came ({ms} ms): raise the verifier's timeout; if this persists, {DNS_SERVERS_HINT}"
        ),
        ResolutionResult::Failed => {
            format!("{host}: the DNS lookup failed ({error}): {DNS_SERVERS_HINT}")
        }
        ResolutionResult::Resolved => match name.private_dns {
            PrivateDns::InEffect | PrivateDns::Unknown => return None,
            PrivateDns::NotInEffect => {
                let public: Vec<_> = name
                    .addresses
                    .iter()
                    .filter(|a| a.kind == AddressKind::Public)
                    .collect();
                format!(
                    "{host} resolves to public {}, not an endpoint address: private DNS is not in effect (check the {} endpoint's private DNS and the VPC's DNS support/hostnames and DHCP options)",
                    list(&public),
                    name.endpoint.label()
                )
            }
            PrivateDns::OtherAddresses => {
                let other: Vec<_> = name
                    .addresses
                    .iter()
                    .filter(|a| a.kind != AddressKind::Endpoint)
                    .collect();
                let whose = if other.iter().any(|a| a.kind == AddressKind::OtherEndpoint) {
                    format!("the {} endpoint's", name.endpoint.other().label())
                } else {
                    "another endpoint's or DNS server's".to_owned()
                };
                format!(
                    "{host} resolves to {}, not an address of the {} endpoint but {whose}: private DNS of this endpoint is not what answers (an endpoint in another VPC, a private hosted zone or custom DNS takes precedence)",
                    list(&other),
                    name.endpoint.label()
                )
            }
        },
    };
    Some(line)
}

fn connection_problem(connection: &Connection, role: EndpointRole) -> String {
    let port = connection.port;
    let ms = connection.ms;
    let admit =
        format!("the endpoint security group must admit the cluster security group on {port}");
    match connection.result {
        ConnectResult::Connected => "connected".to_owned(),
        ConnectResult::Refused => {
            // Security groups and network ACLs drop what they do not allow; a refusal means
            // something answered, so the port itself is also worth checking.
            let port_hint = match role {
                EndpointRole::Relay => {
                    " (the relay listens on 6666, or 2443 under the compliance security profile)"
                }
                EndpointRole::RestApi => "",
            };
            format!(
                "refused ({ms} ms): {admit}, and {port} must be a port the endpoint serves{port_hint}"
            )
        }
        ConnectResult::TimedOut => format!(
            "timed out after {ms} ms: something drops the traffic; {admit}, the cluster security group must allow it outbound, and the subnets' network ACLs must pass it both ways"
        ),
        ConnectResult::DeadlineReached => format!(
            "had no answer when the verifier's deadline came ({ms} ms): raise the verifier's timeout; if this persists, {admit}"
        ),
        ConnectResult::Unreachable => format!(
            "is unreachable ({}): check the cluster subnets' route tables",
            connection.error.as_deref().unwrap_or("no route")
        ),
        ConnectResult::Failed => format!(
            "could not be connected to ({})",
            connection.error.as_deref().unwrap_or("no detail")
        ),
    }
}

/// `addresses` as a cluster node would see them for `role`, without duplicates, in order.
pub fn classify(
    addresses: &[IpAddr],
    role: EndpointRole,
    endpoints: &EndpointAddresses,
) -> Vec<ResolvedAddress> {
    addresses
        .iter()
        .map(|&address| ResolvedAddress {
            address,
            kind: AddressKind::of(address, role, endpoints),
        })
        .collect()
}

/// An IPv4 address from its octets, for tests.
#[cfg(test)]
pub(crate) fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints() -> EndpointAddresses {
        EndpointAddresses {
            rest_api: vec![v4(10, 0, 1, 10), v4(10, 0, 2, 10)],
            relay: vec![v4(10, 0, 1, 11), v4(10, 0, 2, 11)],
        }
    }

    fn request_json() -> serde_json::Value {
        json!({
            "names": [
                {"host": "tunnel.us-east-1.cloud.databricks.com", "endpoint": "relay", "ports": [6666]},
                {"host": "dbc-1234abcd-5678.cloud.databricks.com", "endpoint": "restApi", "ports": [443]}
            ],
            "endpointAddresses": {"restApi": ["10.0.1.10", "10.0.2.10"], "relay": ["10.0.1.11", "10.0.2.11"]},
            "connectTimeoutMs": 2000
        })
    }

    #[test]
    fn a_request_reads_from_its_json_and_back() {
        let text = request_json().to_string();
        let request = VerifyRequest::parse(&text).unwrap();
        assert_eq!(request.names[0].endpoint, EndpointRole::Relay);
        assert_eq!(request.endpoint_addresses, endpoints());
        assert_eq!(request.connect_timeout_ms(), 2000);
        assert_eq!(serde_json::to_value(&request).unwrap(), request_json());
    }

    #[test]
    fn requests_out_of_bounds_are_refused_with_every_problem() {
        let mut doc = request_json();
        doc["names"][0]["host"] = json!("10.0.0.1");
        doc["names"][1]["host"] = json!("bad name.example");
        doc["names"][1]["ports"] = json!([]);
        doc["connectTimeoutMs"] = json!(5);
        doc["endpointAddresses"]["relay"] = json!([]);
        let Err(RequestError::Invalid(problems)) = VerifyRequest::parse(&doc.to_string()) else {
            panic!("accepted");
        };
        let text = problems.join("\n");
        for expected in [
            "is an IP address",
            "\"bad name.example\" is not a DNS name",
            "0 ports",
            "connectTimeoutMs 5",
            "none of its addresses is given",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }

        let mut doc = request_json();
        doc["names"] = json!((0..=MAX_NAMES)
            .map(|i| json!({"host": format!("h{i}.example.com"), "endpoint": "relay", "ports": [6666]}))
            .collect::<Vec<_>>());
        let error = VerifyRequest::parse(&doc.to_string()).unwrap_err();
        assert!(
            error.to_string().contains("25 names; at most 24"),
            "{error}"
        );

        for shape in [
            json!({"names": []}).to_string(),
            "[1, 2]".to_owned(),
            request_json()
                .to_string()
                .replace("10.0.1.10", "10.0.1.300"),
            request_json()
                .to_string()
                .replace("\"relay\",", "\"relay\", \"extra\": 1,"),
        ] {
            assert!(
                matches!(VerifyRequest::parse(&shape), Err(RequestError::Shape(_))),
                "{shape}"
            );
        }
    }

    #[test]
    fn addresses_are_classified_against_the_right_endpoint() {
        let endpoints = endpoints();
        let relay = EndpointRole::Relay;
        assert_eq!(
            AddressKind::of(v4(10, 0, 1, 11), relay, &endpoints),
            AddressKind::Endpoint
        );
        assert_eq!(
            AddressKind::of(v4(10, 0, 1, 10), relay, &endpoints),
            AddressKind::OtherEndpoint
        );
        assert_eq!(
            AddressKind::of(v4(10, 9, 9, 9), relay, &endpoints),
            AddressKind::OtherPrivate
        );
        assert_eq!(
            AddressKind::of(v4(100, 64, 0, 1), relay, &endpoints),
            AddressKind::OtherPrivate
        );
        assert_eq!(
            AddressKind::of(v4(100, 128, 0, 1), relay, &endpoints),
            AddressKind::Public
        );
        assert_eq!(
            AddressKind::of(v4(52, 1, 2, 3), relay, &endpoints),
            AddressKind::Public
        );
        assert_eq!(
            AddressKind::of("fd00::1".parse().unwrap(), relay, &endpoints),
            AddressKind::OtherPrivate
        );
        assert_eq!(
            AddressKind::of("2600:1f18::1".parse().unwrap(), relay, &endpoints),
            AddressKind::Public
        );
    }

    fn name(
        host: &str,
        role: EndpointRole,
        addresses: &[IpAddr],
        connections: Vec<Connection>,
    ) -> NameReport {
        let addresses = classify(addresses, role, &endpoints());
        NameReport {
            host: host.to_owned(),
            endpoint: role,
            expect: Expect::Endpoint,
            resolution: Resolution {
                result: ResolutionResult::Resolved,
                ms: 3,
                error: None,
            },
            private_dns: PrivateDns::of(ResolutionResult::Resolved, &addresses),
            addresses,
            addresses_left_out: 0,
            connections,
        }
    }

    fn connection(address: IpAddr, port: u16, result: ConnectResult) -> Connection {
        Connection {
            address,
            port,
            result,
            ms: 7,
            error: None,
        }
    }

    #[test]
    fn a_clean_report_passes_with_no_summary_and_round_trips() {
        let relay = name(
            "tunnel.us-east-1.cloud.databricks.com",
            EndpointRole::Relay,
            &[v4(10, 0, 1, 11)],
            vec![connection(v4(10, 0, 1, 11), 6666, ConnectResult::Connected)],
        );
        let report = VerifyReport::new(12, vec![relay], vec![]);
        assert!(report.passed);
        assert!(!report.deadline_reached);
        assert!(report.summary().is_empty());
        let doc = serde_json::to_value(&report).unwrap();
        assert_eq!(doc["names"][0]["privateDns"], "inEffect");
        assert_eq!(
            doc["names"][0]["addresses"][0],
            json!({"address": "10.0.1.11", "kind": "endpoint"})
        );
        assert_eq!(doc["names"][0]["connections"][0]["result"], "connected");
        assert_eq!(serde_json::from_value::<VerifyReport>(doc).unwrap(), report);
    }

    #[test]
    fn the_summary_names_the_cause_once_per_problem() {
        let public = name(
            "tunnel.us-east-1.cloud.databricks.com",
            EndpointRole::Relay,
            &[v4(52, 1, 2, 3)],
            vec![],
        );
        let swapped = name(
            "dbc-1.cloud.databricks.com",
            EndpointRole::RestApi,
            &[v4(10, 0, 1, 11)],
            vec![],
        );
        let refused = name(
            "tunnel.privatelink.us-east-1.cloud.databricks.com",
            EndpointRole::Relay,
            &[v4(10, 0, 1, 11)],
            vec![connection(v4(10, 0, 1, 11), 6666, ConnectResult::Refused)],
        );
        let direct = AddressReport {
            address: v4(10, 0, 1, 11),
            endpoint: EndpointRole::Relay,
            connections: vec![connection(v4(10, 0, 1, 11), 6666, ConnectResult::Refused)],
        };
        let dropped = AddressReport {
            address: v4(10, 0, 2, 10),
            endpoint: EndpointRole::RestApi,
            connections: vec![connection(v4(10, 0, 2, 10), 443, ConnectResult::TimedOut)],
        };
        let report = VerifyReport::new(40, vec![public, swapped, refused], vec![direct, dropped]);
        assert!(!report.passed);
        let lines = report.summary();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(
            lines[0],
            "tunnel.us-east-1.cloud.databricks.com resolves to public 52.1.2.3, not an endpoint address: private DNS is not in effect (check the relay endpoint's private DNS and the VPC's DNS support/hostnames and DHCP options)"
        );
        assert!(lines[1].starts_with("dbc-1.cloud.databricks.com resolves to 10.0.1.11, not an address of the REST API endpoint but the relay endpoint's"), "{}", lines[1]);
        assert!(lines[2].starts_with("tunnel.privatelink.us-east-1.cloud.databricks.com port 6666 at 10.0.1.11 refused (7 ms): the endpoint security group must admit the cluster security group on 6666"), "{}", lines[2]);
        assert!(lines[3].starts_with("REST API endpoint address 10.0.2.10 port 443 timed out after 7 ms: something drops the traffic"), "{}", lines[3]);
    }

    #[test]
    fn dns_failures_and_the_deadline_are_told_apart() {
        let mut missing = name(
            "dbc-2.cloud.databricks.com",
            EndpointRole::RestApi,
            &[],
            vec![],
        );
        missing.resolution.result = ResolutionResult::NxDomain;
        missing.private_dns = PrivateDns::Unknown;
        let mut late = name(
            "tunnel.us-east-1.cloud.databricks.com",
            EndpointRole::Relay,
            &[v4(10, 0, 1, 11)],
            vec![],
        );
        late.connections = vec![connection(
            v4(10, 0, 1, 11),
            6666,
            ConnectResult::DeadlineReached,
        )];
        let report = VerifyReport::new(900, vec![missing, late], vec![]);
        assert!(report.deadline_reached);
        let lines = report.summary();
        assert!(
            lines[0].contains("does not exist in DNS as the VPC sees it (NXDOMAIN)"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("DHCP options"), "{}", lines[0]);
        assert!(
            lines[1]
                .contains("port 6666 at 10.0.1.11 had no answer when the verifier's deadline came"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn the_summary_is_bounded() {
        let names = (0..MAX_NAMES)
            .map(|i| {
                name(
                    &format!("h{i}.cloud.databricks.com"),
                    EndpointRole::RestApi,
                    &[v4(52, 0, 0, i as u8)],
                    vec![],
                )
            })
            .collect();
        let lines = VerifyReport::new(1, names, vec![]).summary();
        assert_eq!(lines.len(), MAX_SUMMARY_LINES);
        assert_eq!(
            lines[MAX_SUMMARY_LINES - 1],
            "... and 5 more (see the full report)"
        );
    }
}
