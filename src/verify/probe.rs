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

use crate::cfn::shorten;

use super::model::{
    AddressKind, AddressReport, ConnectResult, Connection, EndpointRole,
    MAX_ADDRESSES_PER_ENDPOINT, MAX_NAMES, MAX_PORTS_PER_NAME, MAX_RESOLVED_ADDRESSES, NameReport,
    PrivateDns, Resolution, ResolutionResult, VerifyReport, VerifyRequest, classify,
};

/// Test-only setting: `IP:PORT` of the DNS server to ask instead of the system's resolvers.
pub const DNS_SERVER_VAR: &str = "VERIFIER_DNS_SERVER";

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
            Ok(value) => value
                .trim()
                .parse::<SocketAddr>()
                .map(DnsSettings::server)
                .map_err(|_| DnsSettingsError::BadServer(shorten(&value, 60))),
            Err(std::env::VarError::NotPresent) => DnsSettings::system(),
            Err(std::env::VarError::NotUnicode(value)) => Err(DnsSettingsError::BadServer(
                shorten(&value.to_string_lossy(), 60),
            )),
        }
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
    let checks: Vec<_> = request.names.iter().take(MAX_NAMES).collect();
    let resolver = dns.resolver();
    let lookups = join_all(checks.iter().map(|check| {
        let resolver = resolver
            .as_ref()
            .map_err(|error| shorten(&error.to_string(), MAX_ERROR_CHARS));
        resolve(resolver, &check.host, deadline)
    }))
    .await;

    let mut names: Vec<NameReport> = checks
        .iter()
        .zip(lookups)
        .map(|(check, lookup)| {
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
                private_dns: PrivateDns::of(lookup.resolution.result, &addresses),
                resolution: lookup.resolution,
                addresses,
                addresses_left_out,
                connections: Vec::new(),
            }
        })
        .collect();

    // Each address and port is tried once, whichever names lead there. Public addresses are
    // not tried: the name already fails on DNS, and the path worth knowing about is the one to
    // the endpoints, which are tried directly.
    let mut probes = Probes::default();
    for (name, check) in names.iter().zip(&checks) {
        for address in name
            .addresses
            .iter()
            .filter(|a| a.kind != AddressKind::Public)
        {
            for &port in check.ports.iter().take(MAX_PORTS_PER_NAME) {
                probes.add(address.address, port);
            }
        }
    }
    let mut direct: Vec<(IpAddr, EndpointRole, Vec<u16>)> = Vec::new();
    for role in [EndpointRole::RestApi, EndpointRole::Relay] {
        let mut ports: Vec<u16> = Vec::new();
        for check in checks.iter().filter(|check| check.endpoint == role) {
            for &port in check.ports.iter().take(MAX_PORTS_PER_NAME) {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
        }
        for &address in request
            .endpoint_addresses
            .of(role)
            .iter()
            .take(MAX_ADDRESSES_PER_ENDPOINT)
        {
            for &port in &ports {
                probes.add(address, port);
            }
            direct.push((address, role, ports.clone()));
        }
    }

    let timeout = Duration::from_millis(request.connect_timeout_ms());
    let results: HashMap<(IpAddr, u16), Connection> = futures_util::stream::iter(probes.list)
        .map(|(address, port)| async move {
            (
                (address, port),
                connect(address, port, timeout, deadline).await,
            )
        })
        .buffer_unordered(MAX_CONCURRENT_CONNECTIONS)
        .collect()
        .await;
    let result_of = |address: IpAddr, port: u16| results.get(&(address, port)).cloned();

    for (name, check) in names.iter_mut().zip(&checks) {
        name.connections = name
            .addresses
            .iter()
            .filter(|a| a.kind != AddressKind::Public)
            .flat_map(|a| {
                check
                    .ports
                    .iter()
                    .take(MAX_PORTS_PER_NAME)
                    .map(move |&port| (a.address, port))
            })
            .filter_map(|(address, port)| result_of(address, port))
            .collect();
    }
    let endpoint_addresses = direct
        .into_iter()
        .map(|(address, endpoint, ports)| AddressReport {
            address,
            endpoint,
            connections: ports
                .iter()
                .filter_map(|&port| result_of(address, port))
                .collect(),
        })
        .collect();
    VerifyReport::new(millis_since(started), names, endpoint_addresses)
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
