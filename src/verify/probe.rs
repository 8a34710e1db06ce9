//! The checks: each name looked up through the resolver the host is configured with (in a Lambda
//! function attached to a VPC, the VPC's resolver, with its private hosted zones and DHCP
//! options), then TCP connections to what it resolved to and to the endpoints' own addresses.
//! Everything is bounded by per-step timeouts and the caller's deadline, and ends by it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::text::shorten;

use super::model::{
    AddressKind, AddressReport, ConnectResult, Connection, EndpointRole,
    MAX_ADDRESSES_PER_ENDPOINT, MAX_NAMES, MAX_PORTS_PER_NAME, MAX_RESOLVED_ADDRESSES, NameCheck,
    NameReport, PrivateDns, Resolution, ResolutionResult, VerifyReport, VerifyRequest, classify,
};

/// Test-only setting: `IP:PORT` of the DNS server to ask instead of the system's resolvers. In a
/// build with debug assertions (the tests' and `make demo`'s) it also arms the loopback guard:
/// a connection to any address outside 127.0.0.0/8 ends the process with
/// [`LOOPBACK_GUARD_MARK`] on stderr, so a test that would leave the machine fails loudly.
pub const DNS_SERVER_VAR: &str = "VERIFIER_DNS_SERVER";

/// What the loopback guard prints before it ends the process; the test harness looks for it.
pub const LOOPBACK_GUARD_MARK: &str = "LOOPBACK GUARD";

/// Longest wait for one DNS answer, and how many tries: a resolver that does not answer within
/// seconds is as good as absent for a cluster node, and the verifier has a deadline to keep.
const DNS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const DNS_MAX_ATTEMPTS: usize = 2;
/// Connections attempted at once; the rest wait for a slot (a Lambda has 1024 descriptors).
const MAX_CONCURRENT_CONNECTIONS: usize = 64;
/// Error texts quoted in the report are cut to this many characters.
const MAX_ERROR_CHARS: usize = 200;

/// Where the verifier asks its DNS questions.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    config: ResolverConfig,
    options: ResolverOpts,
    source: String,
    /// Connections outside 127.0.0.0/8 end the process (tests only: see [`DNS_SERVER_VAR`]).
    loopback_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsSettingsError {
    #[error("{DNS_SERVER_VAR} (a test-only setting) must be IP:PORT, not {0:?}")]
    BadServer(String),
    #[error("the system's resolver configuration cannot be read: {0}")]
    System(String),
}

impl DnsSettings {
    /// The test server named by [`DNS_SERVER_VAR`] when it is set, else the system's resolvers.
    pub fn from_env() -> Result<DnsSettings, DnsSettingsError> {
        match std::env::var(DNS_SERVER_VAR) {
            Ok(value) => DnsSettings::from_setting(&value),
            Err(std::env::VarError::NotPresent) => DnsSettings::system(),
            Err(std::env::VarError::NotUnicode(value)) => Err(DnsSettingsError::BadServer(
                shorten(&value.to_string_lossy(), 60),
            )),
        }
    }

    /// The value of [`DNS_SERVER_VAR`]: `IP:PORT`, nothing else (no name to resolve first).
    fn from_setting(value: &str) -> Result<DnsSettings, DnsSettingsError> {
        let mut settings = value
            .trim()
            .parse::<SocketAddr>()
            .map(DnsSettings::server)
            .map_err(|_| DnsSettingsError::BadServer(shorten(value, 60)))?;
        settings.loopback_only = cfg!(debug_assertions);
        Ok(settings)
    }

    /// The resolvers of `/etc/resolv.conf`, as a cluster node's own lookups would use them.
    pub fn system() -> Result<DnsSettings, DnsSettingsError> {
        let (config, options) =
            hickory_resolver::system_conf::read_system_conf().map_err(|error| {
                DnsSettingsError::System(shorten(&error.to_string(), MAX_ERROR_CHARS))
            })?;
        let servers: Vec<String> = config
            .name_servers
            .iter()
            .map(|server| server.ip.to_string())
            .collect();
        Ok(DnsSettings {
            source: format!("the system's resolvers ({})", servers.join(", ")),
            config,
            options,
            loopback_only: false,
        })
    }

    /// One DNS server at `address`, over UDP and TCP.
    pub fn server(address: SocketAddr) -> DnsSettings {
        let mut server = NameServerConfig::udp_and_tcp(address.ip());
        server.connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
            .into_iter()
            .map(|mut connection| {
                connection.port = address.port();
                connection
            })
            .collect();
        DnsSettings {
            config: ResolverConfig::from_name_servers(vec![server]),
            options: ResolverOpts::default(),
            source: format!("the DNS server {address} ({DNS_SERVER_VAR})"),
            loopback_only: false,
        }
    }

    /// Says which resolvers are asked, for the log.
    pub fn describe(&self) -> &str {
        &self.source
    }

    /// A fresh resolver for one verification: no answer cached from an earlier invocation of a
    /// warm function may stand in for what DNS says now.
    fn resolver(&self) -> Result<TokioResolver, NetError> {
        let mut options = self.options.clone();
        // Cluster nodes reach the control plane over IPv4 (a choice made here: AAAA answers
        // are not asked for, so a dual-stack zone does not add addresses nobody connects to).
        options.ip_strategy = LookupIpStrategy::Ipv4Only;
        // DNS is what is being checked, not /etc/hosts.
        options.use_hosts_file = ResolveHosts::Never;
        options.timeout = options.timeout.min(DNS_ATTEMPT_TIMEOUT);
        options.attempts = options.attempts.clamp(1, DNS_MAX_ATTEMPTS);
        options.cache_size = 64;
        TokioResolver::builder_with_config(self.config.clone(), TokioRuntimeProvider::default())
            .with_options(options)
            .build()
    }
}

/// Runs every check of `request` and reports; returns by `deadline` whatever is still pending
/// (what the deadline cut short is reported as such). The request is expected to be validated
/// ([`VerifyRequest::validate`]); the limits are applied here again all the same.
pub async fn verify(request: &VerifyRequest, dns: &DnsSettings, deadline: Instant) -> VerifyReport {
    let started = Instant::now();
    let timeout = Duration::from_millis(request.connect_timeout_ms());
    let checks: Vec<&NameCheck> = request.names.iter().take(MAX_NAMES).collect();

    // The endpoints' own addresses are tried on the ports of their names while the names are
    // looked up: what a security group does is worth knowing whatever DNS answers.
    let (direct, direct_probes) = endpoint_address_probes(request, &checks);
    let resolver = dns.resolver();
    let lookups = join_all(checks.iter().map(|check| {
        let resolver = resolver
            .as_ref()
            .map_err(|error| shorten(&error.to_string(), MAX_ERROR_CHARS));
        resolve(resolver, &check.host, deadline)
    }));
    let guard = Guard(dns.loopback_only);
    let (lookups, mut results) = tokio::join!(
        lookups,
        connect_all(direct_probes.list, timeout, deadline, guard)
    );

    let mut names: Vec<NameReport> = checks
        .iter()
        .zip(lookups)
        .map(|(check, lookup)| name_report(request, check, lookup))
        .collect();

    // Then what the names led to, each address and port once. Public addresses are not tried:
    // the name already fails on DNS, and the path that matters, to the endpoints, was tried.
    let more = name_probes_not_tried(&names, &checks, &results);
    results.extend(connect_all(more.list, timeout, deadline, guard).await);

    for (name, check) in names.iter_mut().zip(&checks) {
        name.connections = connections_of(&results, name_targets(name, &check.ports));
    }
    let endpoint_addresses = direct
        .into_iter()
        .map(|(address, endpoint, ports)| AddressReport {
            address,
            endpoint,
            connections: connections_of(&results, ports.iter().map(|&port| (address, port))),
        })
        .collect();
    VerifyReport::new(millis_since(started), names, endpoint_addresses)
}

/// Each endpoint address (once, whichever role names it first) with its role and the ports of
/// that role's names, and the probes that try them.
fn endpoint_address_probes(
    request: &VerifyRequest,
    checks: &[&NameCheck],
) -> (Vec<(IpAddr, EndpointRole, Vec<u16>)>, Probes) {
    let mut direct: Vec<(IpAddr, EndpointRole, Vec<u16>)> = Vec::new();
    let mut probes = Probes::default();
    for role in [EndpointRole::RestApi, EndpointRole::Relay] {
        let ports = ports_of_role(checks, role);
        for &address in request
            .endpoint_addresses
            .of(role)
            .iter()
            .take(MAX_ADDRESSES_PER_ENDPOINT)
        {
            if direct.iter().any(|(seen, _, _)| *seen == address) {
                continue;
            }
            for &port in &ports {
                probes.add(address, port);
            }
            direct.push((address, role, ports.clone()));
        }
    }
    (direct, probes)
}

/// The ports of the names of one endpoint, each once, in the order the names give them.
fn ports_of_role(checks: &[&NameCheck], role: EndpointRole) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for check in checks.iter().filter(|check| check.endpoint == role) {
        for &port in check.ports.iter().take(MAX_PORTS_PER_NAME) {
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
    }
    ports
}

/// One name's report from its lookup, its connections still to come.
fn name_report(request: &VerifyRequest, check: &NameCheck, lookup: Lookup) -> NameReport {
    let addresses_left_out = lookup
        .addresses
        .len()
        .saturating_sub(MAX_RESOLVED_ADDRESSES);
    let addresses = classify(
        &lookup.addresses[..lookup.addresses.len().min(MAX_RESOLVED_ADDRESSES)],
        check.endpoint,
        &request.endpoint_addresses,
    );
    NameReport {
        host: check.host.clone(),
        endpoint: check.endpoint,
        expect: check.expect,
        private_dns: PrivateDns::of(lookup.resolution.result, &addresses),
        resolution: lookup.resolution,
        addresses,
        addresses_left_out,
        connections: Vec::new(),
    }
}

/// The addresses and ports a name's connections are tried on: its addresses that are not
/// public, on its ports.
fn name_targets(name: &NameReport, ports: &[u16]) -> Vec<(IpAddr, u16)> {
    name.addresses
        .iter()
        .filter(|a| a.kind != AddressKind::Public)
        .flat_map(|a| {
            ports
                .iter()
                .take(MAX_PORTS_PER_NAME)
                .map(move |&port| (a.address, port))
        })
        .collect()
}

/// The names' targets that no earlier probe tried.
fn name_probes_not_tried(
    names: &[NameReport],
    checks: &[&NameCheck],
    tried: &HashMap<(IpAddr, u16), Connection>,
) -> Probes {
    let mut probes = Probes::default();
    for (name, check) in names.iter().zip(checks) {
        for (address, port) in name_targets(name, &check.ports) {
            if !tried.contains_key(&(address, port)) {
                probes.add(address, port);
            }
        }
    }
    probes
}

/// The results of `targets`, in their order, leaving out any not tried.
fn connections_of(
    results: &HashMap<(IpAddr, u16), Connection>,
    targets: impl IntoIterator<Item = (IpAddr, u16)>,
) -> Vec<Connection> {
    targets
        .into_iter()
        .filter_map(|(address, port)| results.get(&(address, port)).cloned())
        .collect()
}

/// Tries every address and port, [`MAX_CONCURRENT_CONNECTIONS`] at a time.
async fn connect_all(
    probes: Vec<(IpAddr, u16)>,
    timeout: Duration,
    deadline: Instant,
    guard: Guard,
) -> HashMap<(IpAddr, u16), Connection> {
    futures_util::stream::iter(probes)
        .map(|(address, port)| async move {
            guard.check(address, port);
            (
                (address, port),
                connect(address, port, timeout, deadline).await,
            )
        })
        .buffer_unordered(MAX_CONCURRENT_CONNECTIONS)
        .collect()
        .await
}

/// The loopback guard of the tests: armed, it ends the process before any connection outside
/// 127.0.0.0/8, whatever DNS or the request said.
#[derive(Clone, Copy)]
struct Guard(bool);

impl Guard {
    fn check(self, address: IpAddr, port: u16) {
        if self.0 && !address.is_loopback() {
            eprintln!(
                "{LOOPBACK_GUARD_MARK}: the verifier was about to connect to {address}:{port}, outside 127.0.0.0/8; tests must use loopback stand-ins (TEST_ONLY_LOOPBACK_ENDPOINTS)"
            );
            std::process::abort();
        }
    }
}

#[derive(Default)]
struct Probes {
    seen: HashSet<(IpAddr, u16)>,
    list: Vec<(IpAddr, u16)>,
}

impl Probes {
    fn add(&mut self, address: IpAddr, port: u16) {
        if self.seen.insert((address, port)) {
            self.list.push((address, port));
        }
    }
}

struct Lookup {
    resolution: Resolution,
    addresses: Vec<IpAddr>,
}

async fn resolve(
    resolver: Result<&TokioResolver, String>,
    host: &str,
    deadline: Instant,
) -> Lookup {
    let started = Instant::now();
    let finish = |result: ResolutionResult, error: Option<String>, addresses: Vec<IpAddr>| Lookup {
        resolution: Resolution {
            result,
            ms: millis_since(started),
            error,
        },
        addresses,
    };
    let resolver = match resolver {
        Ok(resolver) => resolver,
        Err(error) => return finish(ResolutionResult::Failed, Some(error), Vec::new()),
    };
    // Fully qualified, so no search domain of the resolver configuration is tried first.
    let fqdn = format!("{host}.");
    match tokio::time::timeout_at(deadline, resolver.lookup_ip(fqdn.as_str())).await {
        Err(_elapsed) => finish(ResolutionResult::DeadlineReached, None, Vec::new()),
        Ok(Ok(found)) => {
            let mut addresses: Vec<IpAddr> = Vec::new();
            for address in found.iter() {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            if addresses.is_empty() {
                finish(ResolutionResult::NoAddresses, None, addresses)
            } else {
                finish(ResolutionResult::Resolved, None, addresses)
            }
        }
        Ok(Err(error)) if error.is_nx_domain() => {
            finish(ResolutionResult::NxDomain, None, Vec::new())
        }
        Ok(Err(error)) if error.is_no_records_found() => {
            finish(ResolutionResult::NoAddresses, None, Vec::new())
        }
        Ok(Err(NetError::Timeout)) => finish(ResolutionResult::TimedOut, None, Vec::new()),
        Ok(Err(error)) => finish(
            ResolutionResult::Failed,
            Some(shorten(&error.to_string(), MAX_ERROR_CHARS)),
            Vec::new(),
        ),
    }
}

/// One TCP connection, closed again at once: reaching the listener is the question, not TLS.
async fn connect(address: IpAddr, port: u16, timeout: Duration, deadline: Instant) -> Connection {
    let started = Instant::now();
    let own_limit = started + timeout;
    let attempt =
        tokio::time::timeout_at(own_limit.min(deadline), TcpStream::connect((address, port))).await;
    let (result, error) = match attempt {
        Ok(Ok(_stream)) => (ConnectResult::Connected, None),
        Ok(Err(error)) => {
            let result = match error.kind() {
                std::io::ErrorKind::ConnectionRefused => ConnectResult::Refused,
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    ConnectResult::Unreachable
                }
                _ => ConnectResult::Failed,
            };
            (result, Some(shorten(&error.to_string(), MAX_ERROR_CHARS)))
        }
        Err(_elapsed) if deadline < own_limit => (ConnectResult::DeadlineReached, None),
        Err(_elapsed) => (ConnectResult::TimedOut, None),
    };
    Connection {
        address,
        port,
        result,
        ms: millis_since(started),
        error: if result == ConnectResult::Refused {
            None
        } else {
            error
        },
    }
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::verify::model::{EndpointAddresses, Expect, NameCheck};
    use crate::verify::test_network::{
        Accepting, Answer, BlackHole, SilentDns, TestDns, refused_port,
    };

    const REST_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
    const ZONE: &str = "cloud.databricks.com.";
    const TUNNEL: &str = "tunnel.us-east-1.cloud.databricks.com";
    const WORKSPACE: &str = "dbc-1234abcd-5678.cloud.databricks.com";
    const REST_PRIVATE_NAME: &str = "nvirginia.privatelink.cloud.databricks.com";

    fn request(rest_port: u16, relay_port: u16, connect_timeout_ms: u64) -> VerifyRequest {
        VerifyRequest {
            names: vec![
                NameCheck {
                    host: TUNNEL.to_owned(),
                    endpoint: EndpointRole::Relay,
                    ports: vec![relay_port],
                    expect: Expect::Endpoint,
                },
                NameCheck {
                    host: WORKSPACE.to_owned(),
                    endpoint: EndpointRole::RestApi,
                    ports: vec![rest_port],
                    expect: Expect::Endpoint,
                },
            ],
            endpoint_addresses: EndpointAddresses {
                rest_api: vec![IpAddr::V4(REST_IP)],
                relay: vec![IpAddr::V4(RELAY_IP)],
            },
            connect_timeout_ms: Some(connect_timeout_ms),
        }
    }

    /// The zone as the VPC resolver serves it with private DNS in effect: the workspace host is
    /// a CNAME to the REST API service's private name, as in Databricks' public zone.
    async fn private_zone() -> TestDns {
        TestDns::start(
            ZONE,
            &[
                (TUNNEL, Answer::A(RELAY_IP)),
                (WORKSPACE, Answer::Cname(REST_PRIVATE_NAME)),
                (REST_PRIVATE_NAME, Answer::A(REST_IP)),
            ],
        )
        .await
    }

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    fn results(connections: &[Connection]) -> Vec<(IpAddr, ConnectResult)> {
        connections.iter().map(|c| (c.address, c.result)).collect()
    }

    #[tokio::test]
    async fn private_dns_in_effect_and_open_ports_pass() {
        let dns = private_zone().await;
        let (rest, relay) = (
            Accepting::start(REST_IP).await,
            Accepting::start(RELAY_IP).await,
        );
        let request = request(rest.port, relay.port, 2_000);
        let report = verify(&request, &DnsSettings::server(dns.address()), in_secs(10)).await;

        assert!(report.passed, "{report:#?}");
        assert_eq!(report.summary(), Vec::<String>::new());
        let [tunnel, workspace] = &report.names[..] else {
            panic!("{report:#?}")
        };
        assert_eq!(tunnel.private_dns, PrivateDns::InEffect);
        assert_eq!(tunnel.addresses[0].address, IpAddr::V4(RELAY_IP));
        assert_eq!(
            results(&tunnel.connections),
            [(IpAddr::V4(RELAY_IP), ConnectResult::Connected)]
        );
        assert_eq!(workspace.addresses[0].address, IpAddr::V4(REST_IP));
        assert_eq!(workspace.addresses[0].kind, AddressKind::Endpoint);
        assert_eq!(
            results(&workspace.connections),
            [(IpAddr::V4(REST_IP), ConnectResult::Connected)]
        );
        assert_eq!(report.endpoint_addresses.len(), 2);
        assert!(report.endpoint_addresses.iter().all(
            |a| a.connections.len() == 1 && a.connections[0].result == ConnectResult::Connected
        ));
    }

    #[tokio::test]
    async fn names_answered_from_public_dns_fail_naming_private_dns() {
        let dns = TestDns::start(
            ZONE,
            &[
                (TUNNEL, Answer::A(Ipv4Addr::new(52, 1, 2, 3))),
                (WORKSPACE, Answer::A(Ipv4Addr::new(52, 1, 2, 4))),
            ],
        )
        .await;
        let (rest, relay) = (
            Accepting::start(REST_IP).await,
            Accepting::start(RELAY_IP).await,
        );
        let request = request(rest.port, relay.port, 2_000);
        let report = verify(&request, &DnsSettings::server(dns.address()), in_secs(10)).await;

        assert!(!report.passed);
        for name in &report.names {
            assert_eq!(name.private_dns, PrivateDns::NotInEffect);
            // Public addresses are not connected to: nothing leaves for the internet.
            assert!(name.connections.is_empty(), "{name:#?}");
        }
        // The endpoints themselves still take connections: only DNS is wrong.
        assert!(
            report
                .endpoint_addresses
                .iter()
                .all(|a| a.connections[0].result == ConnectResult::Connected)
        );
        let lines = report.summary();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].starts_with(&format!("{TUNNEL} resolves to public 52.1.2.3, not an endpoint address: private DNS is not in effect")), "{}", lines[0]);
        assert!(
            lines[1].starts_with(&format!("{WORKSPACE} resolves to public 52.1.2.4")),
            "{}",
            lines[1]
        );
    }

    #[tokio::test]
    async fn a_refused_relay_port_fails_naming_the_security_group() {
        let dns = private_zone().await;
        let rest = Accepting::start(REST_IP).await;
        let relay_port = refused_port(RELAY_IP).await;
        let request = request(rest.port, relay_port, 2_000);
        let report = verify(&request, &DnsSettings::server(dns.address()), in_secs(10)).await;

        assert!(!report.passed);
        assert_eq!(report.names[0].private_dns, PrivateDns::InEffect);
        assert_eq!(
            results(&report.names[0].connections),
            [(IpAddr::V4(RELAY_IP), ConnectResult::Refused)]
        );
        assert!(report.names[1].passed());
        // Told once, on the name, though the endpoint address was tried directly too.
        let lines = report.summary();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].starts_with(&format!(
                "{TUNNEL} port {relay_port} at 127.0.0.3 refused ("
            )),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(&format!(
            "the endpoint security group must admit the cluster security group on {relay_port}"
        )));
    }

    #[tokio::test]
    async fn a_name_that_does_not_exist_fails_naming_dns() {
        let dns = TestDns::start(
            ZONE,
            &[
                (REST_PRIVATE_NAME, Answer::A(REST_IP)),
                (WORKSPACE, Answer::Cname(REST_PRIVATE_NAME)),
            ],
        )
        .await;
        let (rest, relay) = (
            Accepting::start(REST_IP).await,
            Accepting::start(RELAY_IP).await,
        );
        let request = request(rest.port, relay.port, 2_000);
        let report = verify(&request, &DnsSettings::server(dns.address()), in_secs(10)).await;

        assert!(!report.passed);
        let tunnel = &report.names[0];
        assert_eq!(tunnel.resolution.result, ResolutionResult::NxDomain);
        assert_eq!(tunnel.private_dns, PrivateDns::Unknown);
        assert!(tunnel.addresses.is_empty() && tunnel.connections.is_empty());
        assert!(report.names[1].passed());
        let lines = report.summary();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].starts_with(&format!(
                "{TUNNEL} does not exist in DNS as the VPC sees it (NXDOMAIN)"
            )),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("DHCP options"));
    }

    #[tokio::test]
    async fn the_deadline_cuts_a_hanging_connection_and_the_report_comes_before_it() {
        let dns = private_zone().await;
        let rest = Accepting::start(REST_IP).await;
        let relay = BlackHole::start(RELAY_IP).await;
        let request = request(rest.port, relay.port, 10_000);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(800);
        let report = verify(&request, &DnsSettings::server(dns.address()), deadline).await;
        let answered = Instant::now();

        assert!(
            answered < deadline + Duration::from_millis(200),
            "answered {:?} after the start",
            answered - started
        );
        assert!(!report.passed);
        assert!(report.deadline_reached);
        let relay_direct = &report.endpoint_addresses[1];
        assert_eq!(
            relay_direct.connections[0].result,
            ConnectResult::DeadlineReached
        );
        assert!(relay_direct.connections[0].ms >= 700, "{relay_direct:#?}");
        assert_eq!(
            report.names[0].connections[0].result,
            ConnectResult::DeadlineReached
        );
        let lines = report.summary();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].contains("had no answer when the verifier's deadline came"),
            "{}",
            lines[0]
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_times_out_on_its_own_timeout_naming_the_security_group() {
        let dns = private_zone().await;
        let rest = Accepting::start(REST_IP).await;
        let relay = BlackHole::start(RELAY_IP).await;
        let request = request(rest.port, relay.port, 300);
        let report = verify(&request, &DnsSettings::server(dns.address()), in_secs(10)).await;

        assert!(!report.passed);
        assert!(!report.deadline_reached);
        let connection = &report.names[0].connections[0];
        assert_eq!(connection.result, ConnectResult::TimedOut);
        assert!((300..2_000).contains(&connection.ms), "{connection:#?}");
        let lines = report.summary();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("timed out after"), "{}", lines[0]);
        assert!(lines[0].contains("security group"), "{}", lines[0]);
    }

    #[tokio::test]
    async fn a_silent_dns_server_is_reported_and_the_endpoints_still_tried() {
        let dns = SilentDns::start().await;
        let (rest, relay) = (
            Accepting::start(REST_IP).await,
            Accepting::start(RELAY_IP).await,
        );
        let request = request(rest.port, relay.port, 2_000);
        let deadline = Instant::now() + Duration::from_millis(1_000);
        let report = verify(&request, &DnsSettings::server(dns.address()), deadline).await;

        assert!(Instant::now() < deadline + Duration::from_millis(200));
        assert!(!report.passed);
        for name in &report.names {
            assert_eq!(
                name.resolution.result,
                ResolutionResult::DeadlineReached,
                "{name:#?}"
            );
        }
        assert!(
            report
                .endpoint_addresses
                .iter()
                .all(|a| a.connections[0].result == ConnectResult::Connected)
        );
        let lines = report.summary();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with(&format!(
                "{TUNNEL}: no DNS answer when the verifier's deadline came"
            )),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn the_test_dns_setting_must_be_an_address_and_port() {
        let settings = DnsSettings::from_setting(" 127.0.0.1:5353 ").unwrap();
        assert_eq!(
            settings.describe(),
            "the DNS server 127.0.0.1:5353 (VERIFIER_DNS_SERVER)"
        );
        assert_eq!(settings.config.name_servers[0].connections[0].port, 5353);
        for bad in ["127.0.0.1", "localhost:53", ""] {
            let error = DnsSettings::from_setting(bad).unwrap_err();
            assert!(error.to_string().contains("must be IP:PORT"), "{error}");
        }
    }
}
