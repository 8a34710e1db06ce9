//! The resource's public contract: its property names, their defaults and the rules they must
//! satisfy. Parsing is strict for Create and Update (every problem is reported, nothing is
//! written to Databricks before this passes) and lenient for Delete (the rollback Delete after a
//! bad-input Create carries the same bad properties and must still succeed).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::aws::services;
use crate::cfn::properties::{PropertyError, PropertyReader};
use crate::databricks;

use super::pair::EndpointPair;
use super::ready;

mod lenient;
mod rules;

pub use lenient::{LenientTarget, parse_lenient};
pub use rules::quote;
use rules::*;

pub const ACCOUNT_ID: &str = "AccountId";
pub const CREDENTIALS_SECRET_ARN: &str = "CredentialsSecretArn";
pub const REST_API_VPC_ENDPOINT_ID: &str = "RestApiVpcEndpointId";
pub const RELAY_VPC_ENDPOINT_ID: &str = "RelayVpcEndpointId";
pub const REGION: &str = "Region";
pub const ACCOUNT_HOST: &str = "AccountHost";
pub const NAME_PREFIX: &str = "NamePrefix";
pub const PUBLIC_ACCESS_ENABLED: &str = "PublicAccessEnabled";
pub const FRONT_END_PRIVATE_LINK: &str = "FrontEndPrivateLink";
pub const PRIVATE_ACCESS_LEVEL: &str = "PrivateAccessLevel";
pub const ALLOWED_VPC_ENDPOINT_IDS: &str = "AllowedVpcEndpointIds";
pub const ENABLE_PRIVATE_DNS: &str = "EnablePrivateDns";
pub const NETWORK: &str = "Network";
pub const WORKSPACE_IDS: &str = "WorkspaceIds";
pub const VERIFY_FUNCTION_ARN: &str = "VerifyFunctionArn";
pub const WAIT_UNTIL_READY: &str = "WaitUntilReady";
/// CloudFormation's own property: how long it waits for an answer (1 to 3600 s, default 3600).
pub const SERVICE_TIMEOUT: &str = "ServiceTimeout";
/// CloudFormation's default and largest `ServiceTimeout`.
pub const MAX_SERVICE_TIMEOUT: Duration = Duration::from_secs(3600);
const SUBNET_IDS: &str = "SubnetIds";
const SECURITY_GROUP_IDS: &str = "SecurityGroupIds";
const VPC_ID: &str = "VpcId";

/// Longest accepted `NamePrefix`: the longest derived name adds a separator, the ownership
/// marker and a role suffix, and Databricks caps object names at 256 characters
/// (`docs/account-api.md#vpc-endpoint-registrations`, `#private-access-settings`).
pub const MAX_NAME_PREFIX: usize = 200;
/// Longest accepted plain string property; CloudFormation would accept more, but nothing this
/// resource takes is legitimately longer, and a bounded value keeps every reason short.
const MAX_VALUE_LEN: usize = 2048;

/// What one event may ask for. An asynchronous invocation carries up to 1 MB, which as a
/// comma-separated `WorkspaceIds` is half a million entries: the limits are checked before any
/// list is split or any entry judged, so such an event costs a few allocations, not one problem
/// per entry. The numbers are choices, well above what one resource legitimately needs (an
/// account has at most a few dozen workspaces per region; a Databricks network configuration
/// takes at most five security groups).
pub const MAX_WORKSPACE_IDS: usize = 100;
pub const MAX_SUBNET_IDS: usize = 16;
pub const MAX_SECURITY_GROUP_IDS: usize = 5;
pub const MAX_ALLOWED_VPC_ENDPOINT_IDS: usize = 20;
/// Longest string anywhere in the properties, list items and a comma-separated list included.
pub const MAX_STRING_BYTES: usize = 4096;
/// More properties than this is not a template mistake but a flood; the resource has 16 of its own, besides `ServiceToken` and `ServiceTimeout`.
pub const MAX_PROPERTIES: usize = 64;
/// Problems quoted in one reason; the rest are counted.
pub const MAX_PROBLEMS_LISTED: usize = 20;

/// Values the function's environment supplies when a property is absent.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub aws_region: Option<String>,
    pub databricks_host: Option<String>,
    pub account_id: Option<String>,
    pub credentials_secret_arn: Option<String>,
}

impl Defaults {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Defaults {
            aws_region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            databricks_host: var("DATABRICKS_HOST"),
            account_id: var("DATABRICKS_ACCOUNT_ID"),
            credentials_secret_arn: var("DATABRICKS_CREDENTIALS_SECRET_ARN"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLevel {
    Account,
    Endpoint,
}

impl AccessLevel {
    pub fn as_api(self) -> &'static str {
        match self {
            AccessLevel::Account => "ACCOUNT",
            AccessLevel::Endpoint => "ENDPOINT",
        }
    }

    /// The level as the account API writes it (`None` for one this resource never sets).
    pub fn from_api(level: &str) -> Option<Self> {
        match level {
            "ACCOUNT" => Some(AccessLevel::Account),
            "ENDPOINT" => Some(AccessLevel::Endpoint),
            _ => None,
        }
    }
}

/// Where the resource's Databricks objects live: changing any of these on Update means the old
/// objects must be cleaned up in the old place with the old credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub account_id: String,
    pub account_host: String,
    pub credentials_secret_arn: String,
}

/// Fully validated properties of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Properties {
    pub target: Target,
    /// The two `vpce-…` ids.
    pub endpoints: EndpointPair<String>,
    pub region: String,
    pub name_prefix: String,
    pub public_access_enabled: bool,
    pub private_access_level: AccessLevel,
    /// `vpce-` ids allowed with `ENDPOINT` access, besides the resource's own two.
    pub allowed_vpc_endpoint_ids: Vec<String>,
    pub enable_private_dns: bool,
    /// The network configuration to create with both endpoints, when given.
    pub network: Option<NetworkSpec>,
    /// Workspaces to switch to the endpoints and the private access settings, in the given order.
    pub workspace_ids: Vec<i64>,
    /// The verifier Lambda function invoked before the switch, when given.
    pub verify_function_arn: Option<String>,
    /// Hold the answer until `ReadyAfter` has passed and a final verification passes.
    pub wait_until_ready: bool,
    /// How long CloudFormation waits for the answer (`ServiceTimeout`).
    pub service_timeout: Duration,
}

/// `Network`: the cluster subnets and security groups of a network configuration that carries
/// the endpoints. `vpc_id` defaults to the endpoints' VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// Every problem found in a property set, so one failed deployment shows all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProperties(pub Vec<String>);

impl fmt::Display for InvalidProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Invalid properties: ")?;
        for (i, problem) in self.0.iter().take(MAX_PROBLEMS_LISTED).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(problem)?;
        }
        let more = self.0.len().saturating_sub(MAX_PROBLEMS_LISTED);
        if more > 0 {
            write!(f, "; and {more} more")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidProperties {}

impl From<InvalidProperties> for super::error::ResourceError {
    fn from(error: InvalidProperties) -> Self {
        super::error::ResourceError::Properties(error.to_string())
    }
}

/// Identity of the resource inside its stack, used for the default `NamePrefix`.
pub struct Identity<'a> {
    pub stack_name: &'a str,
    pub logical_resource_id: &'a str,
}

/// Every problem found in a property set, in the order found.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// The value read, or `None` with the reason it could not be read noted.
    fn take<T>(&mut self, read: Result<Option<T>, PropertyError>) -> Option<T> {
        read.unwrap_or_else(|e| {
            self.0.push(e.to_string());
            None
        })
    }
}

impl std::ops::Deref for Problems {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        &self.0
    }
}

impl std::ops::DerefMut for Problems {
    fn deref_mut(&mut self) -> &mut Vec<String> {
        &mut self.0
    }
}

/// The properties of a Create or Update, every problem found in one [`InvalidProperties`]:
/// first what cannot be read at all, then each group's rules, in the order of the groups below.
pub fn parse(
    props: &Map<String, Value>,
    defaults: &Defaults,
    identity: &Identity<'_>,
) -> Result<Properties, InvalidProperties> {
    let over = over_limits(props);
    if !over.is_empty() {
        return Err(InvalidProperties(over));
    }
    let mut problems = Problems::default();
    let sent = Sent::read(props, &mut problems);
    let (network, workspace_ids) =
        network_and_workspaces(sent.network, sent.workspaces, &mut problems);
    let (account_id, secret_arn) =
        account(sent.account_id, sent.secret_arn, defaults, &mut problems);
    let endpoints = endpoints(sent.rest, sent.relay, &mut problems);
    let region = region(sent.region, defaults, &mut problems);
    let account_host = account_host(sent.host, region.as_deref(), defaults, &mut problems);
    let name_prefix = name_prefix(sent.prefix, identity, &mut problems);
    let access = access_settings(
        sent.public_access,
        sent.front_end,
        sent.level,
        sent.allowed,
        &mut problems,
    );
    let verify_function_arn = verify_function_arn(sent.verify_function_arn, &mut problems);
    let (wait_until_ready, service_timeout) =
        held_answer(sent.wait_until_ready, sent.service_timeout, &mut problems);

    if !problems.is_empty() {
        return Err(InvalidProperties(problems.0));
    }
    match (account_id, secret_arn, endpoints, region, account_host) {
        (
            Some(account_id),
            Some(credentials_secret_arn),
            Some(endpoints),
            Some(region),
            Some(account_host),
        ) => Ok(Properties {
            target: Target {
                account_id,
                account_host,
                credentials_secret_arn,
            },
            endpoints,
            region,
            name_prefix,
            public_access_enabled: access.public_access_enabled,
            private_access_level: access.level,
            allowed_vpc_endpoint_ids: access.allowed_vpc_endpoint_ids,
            enable_private_dns: sent.enable_dns.unwrap_or(false),
            network,
            workspace_ids,
            verify_function_arn,
            wait_until_ready,
            service_timeout,
        }),
        _ => Err(InvalidProperties(vec![
            "required properties are missing".to_string(),
        ])),
    }
}

/// Every property as sent, before any rule: a value of the wrong shape is a problem here, in the
/// order of the properties, before any group's rules are judged.
struct Sent {
    account_id: Option<String>,
    secret_arn: Option<String>,
    rest: Option<String>,
    relay: Option<String>,
    region: Option<String>,
    host: Option<String>,
    prefix: Option<String>,
    public_access: Option<bool>,
    front_end: Option<bool>,
    level: Option<String>,
    allowed: Option<Vec<String>>,
    enable_dns: Option<bool>,
    network: Option<Map<String, Value>>,
    workspaces: Option<Vec<String>>,
    verify_function_arn: Option<String>,
    wait_until_ready: Option<bool>,
    service_timeout: Option<String>,
}

impl Sent {
    fn read(props: &Map<String, Value>, problems: &mut Problems) -> Self {
        let mut reader = PropertyReader::new(props);
        let sent = Sent {
            account_id: problems.take(reader.string(ACCOUNT_ID)),
            secret_arn: problems.take(reader.string(CREDENTIALS_SECRET_ARN)),
            rest: problems.take(reader.string(REST_API_VPC_ENDPOINT_ID)),
            relay: problems.take(reader.string(RELAY_VPC_ENDPOINT_ID)),
            region: problems.take(reader.string(REGION)),
            host: problems.take(reader.string(ACCOUNT_HOST)),
            prefix: problems.take(reader.string(NAME_PREFIX)),
            public_access: problems.take(reader.bool(PUBLIC_ACCESS_ENABLED)),
            front_end: problems.take(reader.bool(FRONT_END_PRIVATE_LINK)),
            level: problems.take(reader.string(PRIVATE_ACCESS_LEVEL)),
            allowed: problems.take(reader.string_list(ALLOWED_VPC_ENDPOINT_IDS)),
            enable_dns: problems.take(reader.bool(ENABLE_PRIVATE_DNS)),
            network: problems.take(reader.object(NETWORK)),
            workspaces: problems.take(reader.string_list(WORKSPACE_IDS)),
            verify_function_arn: problems.take(reader.string(VERIFY_FUNCTION_ARN)),
            wait_until_ready: problems.take(reader.bool(WAIT_UNTIL_READY)),
            service_timeout: problems.take(reader.string(SERVICE_TIMEOUT)),
        };
        problems.take(reader.reject_unknown(&[]).map(Some));
        sent
    }
}

/// `Network` and `WorkspaceIds`, and that one network serves one workspace only.
fn network_and_workspaces(
    network: Option<Map<String, Value>>,
    workspaces: Option<Vec<String>>,
    problems: &mut Problems,
) -> (Option<NetworkSpec>, Vec<i64>) {
    let network = network.and_then(|n| parse_network(&n, problems));
    let workspace_ids = parse_workspace_ids(workspaces.unwrap_or_default(), problems);
    if network.is_some() && workspace_ids.len() > 1 {
        problems.push(one_network_per_workspace(&workspace_ids));
    }
    (network, workspace_ids)
}

/// `AccountId` and `CredentialsSecretArn`, each defaulting to the function's environment.
fn account(
    account_id: Option<String>,
    secret_arn: Option<String>,
    defaults: &Defaults,
    problems: &mut Problems,
) -> (Option<String>, Option<String>) {
    let account_id = required(
        account_id,
        defaults.account_id.clone(),
        ACCOUNT_ID,
        "DATABRICKS_ACCOUNT_ID",
        problems,
    );
    if let Some(id) = &account_id
        && !databricks::is_uuid(id)
    {
        problems.push(format!(
                "{ACCOUNT_ID} must be the Databricks account id, a UUID like 0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f; got {}",
                quote(id)
            ));
    }
    let secret_arn = required(
        secret_arn,
        defaults.credentials_secret_arn.clone(),
        CREDENTIALS_SECRET_ARN,
        "DATABRICKS_CREDENTIALS_SECRET_ARN",
        problems,
    );
    if let Some(arn) = &secret_arn
        && (!arn.starts_with("arn:") || !arn.contains(":secretsmanager:"))
    {
        problems.push(format!(
                "{CREDENTIALS_SECRET_ARN} must be the ARN of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME); got {}",
                quote(arn)
            ));
    }
    (account_id, secret_arn)
}

/// `RestApiVpcEndpointId` and `RelayVpcEndpointId`: two different `vpce-…` ids. Both, or
/// `None` when either is missing or wrong.
fn endpoints(
    rest: Option<String>,
    relay: Option<String>,
    problems: &mut Problems,
) -> Option<EndpointPair<String>> {
    let rest = vpce_property(rest, REST_API_VPC_ENDPOINT_ID, problems);
    let relay = vpce_property(relay, RELAY_VPC_ENDPOINT_ID, problems);
    if let (Some(r), Some(s)) = (&rest, &relay)
        && r == s
    {
        problems.push(format!(
                "{REST_API_VPC_ENDPOINT_ID} and {RELAY_VPC_ENDPOINT_ID} are both {r}: back-end PrivateLink needs two endpoints, one to the workspace (REST API) service and one to the SCC relay service"
            ));
    }
    Some(EndpointPair {
        rest_api: rest?,
        relay: relay?,
    })
}

/// `Region`, defaulting to the function's own: a region with Databricks' endpoint services.
fn region(region: Option<String>, defaults: &Defaults, problems: &mut Problems) -> Option<String> {
    match region.or_else(|| defaults.aws_region.clone()) {
        Some(r) if services::is_valid_region_name(&r) => {
            if services::endpoint_services(&r).is_empty() {
                problems.push(format!(
                    "{REGION} {r} has no Databricks back-end PrivateLink endpoint services; supported regions: {}",
                    services::supported_regions().join(", ")
                ));
            }
            Some(r)
        }
        Some(r) => {
            problems.push(format!(
                "{REGION} must be an AWS region name like us-east-1; got {}",
                quote(&r)
            ));
            None
        }
        None => {
            problems.push(format!(
                "{REGION} is missing and the function has no AWS_REGION to default to"
            ));
            None
        }
    }
}

/// `AccountHost`, defaulting to `DATABRICKS_HOST` and then to the region's accounts host.
fn account_host(
    host: Option<String>,
    region: Option<&str>,
    defaults: &Defaults,
    problems: &mut Problems,
) -> Option<String> {
    match host.or_else(|| defaults.databricks_host.clone()) {
        Some(h) if h.trim().is_empty() => {
            problems.push(format!("{ACCOUNT_HOST} is empty"));
            None
        }
        // Before any parsing: URL parsing drops tabs and newlines, so the host the client
        // secret goes to would not be the one the text shows.
        Some(h) if h.chars().any(char::is_control) => {
            problems.push(format!(
                "{ACCOUNT_HOST} holds a control character (a tab, newline or the like): write the accounts host as one plain URL, such as https://accounts.cloud.databricks.com; got {}",
                quote(&h)
            ));
            None
        }
        Some(h) => Some(normalised_host(&h)),
        None => region.map(|r| services::default_accounts_host(r).to_string()),
    }
}

/// `NamePrefix`, defaulting to one made of the stack's and the resource's names.
fn name_prefix(prefix: Option<String>, identity: &Identity<'_>, problems: &mut Problems) -> String {
    match prefix {
        Some(p) => {
            if p.is_empty() || p.len() > MAX_NAME_PREFIX || !p.chars().all(is_name_char) {
                problems.push(format!(
                    "{NAME_PREFIX} must be 1 to {MAX_NAME_PREFIX} letters, digits, '-' or '_'; got {}",
                    quote(&p)
                ));
            }
            p
        }
        None => default_name_prefix(identity),
    }
}

/// What the private access settings say: `PublicAccessEnabled` (with `FrontEndPrivateLink`),
/// `PrivateAccessLevel` and `AllowedVpcEndpointIds`.
struct Access {
    public_access_enabled: bool,
    level: AccessLevel,
    allowed_vpc_endpoint_ids: Vec<String>,
}

/// The access settings group, judged together: `PublicAccessEnabled=false` needs
/// `FrontEndPrivateLink`, and `AllowedVpcEndpointIds` needs `ENDPOINT` access.
fn access_settings(
    public_access: Option<bool>,
    front_end: Option<bool>,
    level: Option<String>,
    allowed: Option<Vec<String>>,
    problems: &mut Problems,
) -> Access {
    let public_access_enabled = public_access.unwrap_or(true);
    if !public_access_enabled && !front_end.unwrap_or(false) {
        problems.push(format!(
            "{PUBLIC_ACCESS_ENABLED}=false would lock users out of the workspace UI: with back-end-only PrivateLink users still reach the workspace over the internet. Keep it true, or set {FRONT_END_PRIVATE_LINK}=true if front-end PrivateLink is in place"
        ));
    }
    let private_access_level = match level.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("ACCOUNT") => AccessLevel::Account,
        Some("ENDPOINT") => AccessLevel::Endpoint,
        Some(_) => {
            problems.push(format!(
                "{PRIVATE_ACCESS_LEVEL} must be ACCOUNT or ENDPOINT; got {}",
                quote(level.as_deref().unwrap_or_default())
            ));
            AccessLevel::Account
        }
    };
    let allowed = allowed.unwrap_or_default();
    if !allowed.is_empty() && private_access_level != AccessLevel::Endpoint {
        problems.push(format!(
            "{ALLOWED_VPC_ENDPOINT_IDS} is only used with {PRIVATE_ACCESS_LEVEL}=ENDPOINT; remove it or set the level to ENDPOINT"
        ));
    }
    Access {
        public_access_enabled,
        level: private_access_level,
        allowed_vpc_endpoint_ids: distinct_vpce_ids(allowed, problems),
    }
}

/// `VerifyFunctionArn`: a Lambda function's ARN, when given.
fn verify_function_arn(arn: Option<String>, problems: &mut Problems) -> Option<String> {
    if let Some(arn) = &arn
        && !is_function_arn(arn)
    {
        problems.push(format!(
            "{VERIFY_FUNCTION_ARN} must be the ARN of a Lambda function (arn:aws:lambda:REGION:ACCOUNT:function:NAME); got {}",
            quote(arn)
        ));
    }
    arn
}

/// `WaitUntilReady` and `ServiceTimeout`: a held answer needs CloudFormation to wait past
/// `ReadyAfter`.
fn held_answer(
    wait_until_ready: Option<bool>,
    service_timeout: Option<String>,
    problems: &mut Problems,
) -> (bool, Duration) {
    let wait_until_ready = wait_until_ready.unwrap_or(false);
    let service_timeout = parse_service_timeout(service_timeout.as_deref(), problems);
    if wait_until_ready {
        let needed = ready::propagation() + ready::SLACK;
        if service_timeout < needed {
            problems.push(format!(
                "{WAIT_UNTIL_READY} holds the answer for {} min after the switch, but {SERVICE_TIMEOUT} is {} s: set {SERVICE_TIMEOUT} to at least {} (up to 3600), or leave {WAIT_UNTIL_READY} off",
                ready::propagation().as_secs().div_ceil(60),
                service_timeout.as_secs(),
                needed.as_secs()
            ));
        }
    }
    (wait_until_ready, service_timeout)
}

/// `ServiceTimeout`: whole seconds from 1 to 3600; CloudFormation's default of 3600 when absent.
fn parse_service_timeout(value: Option<&str>, problems: &mut Problems) -> Duration {
    let Some(value) = value else {
        return MAX_SERVICE_TIMEOUT;
    };
    match value.trim().parse::<u64>() {
        Ok(secs @ 1..=3600) => Duration::from_secs(secs),
        _ => {
            problems.push(format!(
                "{SERVICE_TIMEOUT} must be a whole number of seconds from 1 to 3600; got {}",
                quote(value)
            ));
            MAX_SERVICE_TIMEOUT
        }
    }
}

/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
fn is_function_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    matches!(parts.as_slice(), ["arn", partition, "lambda", region, account, "function", name, ..]
        if partition.starts_with("aws")
            && services::is_valid_region_name(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty()
            && parts.len() <= 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f";

    fn identity() -> Identity<'static> {
        Identity {
            stack_name: "my-stack",
            logical_resource_id: "PrivateLink",
        }
    }

    fn defaults() -> Defaults {
        Defaults {
            aws_region: Some("us-east-1".into()),
            ..Defaults::default()
        }
    }

    fn base() -> Map<String, Value> {
        json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "AccountId": ACCOUNT,
            "CredentialsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:sp-AbCdEf",
            "RestApiVpcEndpointId": "vpce-0a1b2c3d4e5f60718",
            "RelayVpcEndpointId": "vpce-1a1b2c3d",
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn with(pairs: &[(&str, Value)]) -> Map<String, Value> {
        let mut m = base();
        for (k, v) in pairs {
            m.insert((*k).to_string(), v.clone());
        }
        m
    }

    fn problems(props: Map<String, Value>) -> String {
        match parse(&props, &defaults(), &identity()) {
            Ok(p) => panic!("expected a problem, parsed {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn limits_are_judged_before_any_entry_and_named() {
        let flood = vec!["x"; 500_000].join(",");
        let started = std::time::Instant::now();
        let text = problems(with(&[(WORKSPACE_IDS, json!(flood))]));
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        assert_eq!(
            text,
            format!(
                "Invalid properties: \"WorkspaceIds\" holds a value of {} bytes; values may be at most 4096 bytes; WorkspaceIds lists 500000 entries; at most 100 workspace ids; switch more workspaces with a second resource",
                flood.len()
            )
        );
        let ids: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        assert!(
            problems(with(&[(WORKSPACE_IDS, json!(ids))]))
                .contains("WorkspaceIds lists 101 entries; at most 100")
        );
        let subnets: Vec<String> = (0..17).map(|i| format!("subnet-{i:08x}")).collect();
        let groups: Vec<String> = (0..6).map(|i| format!("sg-{i:08x}")).collect();
        let text = problems(with(&[(
            NETWORK,
            json!({"SubnetIds": subnets, "SecurityGroupIds": groups}),
        )]));
        assert!(
            text.contains("Network.SubnetIds lists 17 entries; at most 16 subnets"),
            "{text}"
        );
        assert!(
            text.contains("Network.SecurityGroupIds lists 6 entries; at most 5"),
            "{text}"
        );
        let allowed: Vec<String> = (0..21).map(|i| format!("vpce-{i:08x}")).collect();
        let text = problems(with(&[
            (PRIVATE_ACCESS_LEVEL, json!("ENDPOINT")),
            (ALLOWED_VPC_ENDPOINT_IDS, json!(allowed)),
        ]));
        assert!(
            text.contains("AllowedVpcEndpointIds lists 21 entries; at most 20"),
            "{text}"
        );
        let nested_long = json!({"VpcId": "v".repeat(5000)});
        assert!(
            problems(with(&[(NETWORK, nested_long)]))
                .contains("\"Network\" holds a value of 5000 bytes")
        );
        let mut many = base();
        for i in 0..100 {
            many.insert(format!("Extra{i}"), json!("x"));
        }
        assert_eq!(
            problems(many),
            "Invalid properties: there are 105 properties; this resource takes at most 64 (see the README's property table)"
        );
    }

    #[test]
    fn limits_leave_legitimate_sizes_alone_and_duplicates_collapse_in_linear_time() {
        let ids: Vec<String> = (1..=50).map(|i| (1_000_000 + i).to_string()).collect();
        let mut repeated = ids.clone();
        repeated.extend(ids.iter().cloned());
        let p = parse(
            &with(&[(WORKSPACE_IDS, json!(repeated.join(",")))]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert_eq!(p.workspace_ids.len(), 50);
        assert_eq!(p.workspace_ids[0], 1_000_001);
    }

    #[test]
    fn a_reason_lists_at_most_twenty_problems_and_counts_the_rest() {
        let bad: Vec<String> = (0..100).map(|i| format!("bad{i}")).collect();
        let text = problems(with(&[(WORKSPACE_IDS, json!(bad))]));
        assert_eq!(
            text.matches("WorkspaceIds entries must be numeric").count(),
            20
        );
        assert!(text.ends_with("; and 80 more"), "{text}");
    }

    #[test]
    fn the_default_port_of_an_official_host_is_normalised() {
        for host in [
            "https://accounts.cloud.databricks.com:443",
            "https://accounts.cloud.databricks.com:443/",
            "https://ACCOUNTS.cloud.databricks.com/",
        ] {
            let p = parse(
                &with(&[(ACCOUNT_HOST, json!(host))]),
                &defaults(),
                &identity(),
            )
            .unwrap();
            assert_eq!(
                p.target.account_host, "https://accounts.cloud.databricks.com",
                "{host}"
            );
            let lenient = parse_lenient(&with(&[(ACCOUNT_HOST, json!(host))]), &defaults());
            assert_eq!(
                lenient.account_host.as_deref(),
                Some("https://accounts.cloud.databricks.com")
            );
        }
    }

    #[test]
    fn an_account_host_with_a_control_character_is_refused_before_it_is_parsed() {
        // URL parsing would drop the tab and accept the official host the rest spells.
        for host in [
            "https://accounts.cloud.data\tbricks.com",
            "https://accounts.cloud.databricks.com\n.evil.example",
        ] {
            let text = problems(with(&[(ACCOUNT_HOST, json!(host))]));
            assert!(
                text.contains("AccountHost holds a control character"),
                "{host:?}: {text}"
            );
            assert!(!text.contains('\t') && !text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn wait_until_ready_needs_a_service_timeout_that_outlasts_the_propagation() {
        let p = parse(&with(&[]), &defaults(), &identity()).unwrap();
        assert!(!p.wait_until_ready);
        assert_eq!(p.service_timeout, MAX_SERVICE_TIMEOUT);
        let p = parse(
            &with(&[
                (WAIT_UNTIL_READY, json!("true")),
                (SERVICE_TIMEOUT, json!("1800")),
            ]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert!(p.wait_until_ready);
        assert_eq!(p.service_timeout, Duration::from_secs(1800));
        let short = problems(with(&[
            (WAIT_UNTIL_READY, json!("true")),
            (SERVICE_TIMEOUT, json!("900")),
        ]));
        assert!(
            short.contains("WaitUntilReady holds the answer for 20 min after the switch, but ServiceTimeout is 900 s: set ServiceTimeout to at least 1800"),
            "{short}"
        );
        // Without WaitUntilReady a short ServiceTimeout is CloudFormation's business.
        assert!(
            parse(
                &with(&[(SERVICE_TIMEOUT, json!("900"))]),
                &defaults(),
                &identity()
            )
            .is_ok()
        );
        for bad in ["0", "3601", "ten"] {
            assert!(
                problems(with(&[(SERVICE_TIMEOUT, json!(bad))]))
                    .contains("ServiceTimeout must be a whole number of seconds from 1 to 3600"),
                "{bad}"
            );
        }
    }

    #[test]
    fn verify_function_arn_must_be_a_lambda_function_arn() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:verifier";
        let p = parse(
            &with(&[(VERIFY_FUNCTION_ARN, json!(arn))]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert_eq!(p.verify_function_arn.as_deref(), Some(arn));
        for bad in [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
            "arn:aws:lambda:us-east-1:1234:function:verifier",
            "verifier",
        ] {
            assert!(
                problems(with(&[(VERIFY_FUNCTION_ARN, json!(bad))]))
                    .contains("VerifyFunctionArn must be the ARN of a Lambda function"),
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults_apply() {
        let p = parse(&base(), &defaults(), &identity()).unwrap();
        assert_eq!(p.region, "us-east-1");
        assert_eq!(
            p.target.account_host,
            "https://accounts.cloud.databricks.com"
        );
        assert!(p.public_access_enabled);
        assert_eq!(p.private_access_level, AccessLevel::Account);
        assert_eq!(p.name_prefix, "my-stack-PrivateLink");
        assert!(!p.enable_private_dns);
    }

    #[test]
    fn booleans_arrive_as_strings() {
        let p = parse(
            &with(&[
                ("EnablePrivateDns", json!("true")),
                ("PublicAccessEnabled", json!("TRUE")),
            ]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert!(p.enable_private_dns);
        assert!(problems(with(&[("EnablePrivateDns", json!("yes"))])).contains("EnablePrivateDns"));
    }

    #[test]
    fn public_access_off_needs_front_end() {
        let msg = problems(with(&[("PublicAccessEnabled", json!("false"))]));
        assert!(msg.contains("lock users out"), "{msg}");
        let p = parse(
            &with(&[
                ("PublicAccessEnabled", json!("false")),
                ("FrontEndPrivateLink", json!("true")),
            ]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert!(!p.public_access_enabled);
    }

    #[test]
    fn unknown_property_is_named() {
        let msg = problems(with(&[("RestApiEndpoint", json!("x"))]));
        assert!(msg.contains("RestApiEndpoint"), "{msg}");
        assert!(msg.contains("RestApiVpcEndpointId"), "{msg}");
    }

    #[test]
    fn malformed_ids_name_the_property() {
        let msg = problems(with(&[("RelayVpcEndpointId", json!("vpce-XYZ"))]));
        assert!(msg.contains("RelayVpcEndpointId"), "{msg}");
        let msg = problems(with(&[("AccountId", json!("not-a-uuid"))]));
        assert!(msg.contains("AccountId"), "{msg}");
        let msg = problems(with(&[(
            "RelayVpcEndpointId",
            json!("vpce-0a1b2c3d4e5f60718"),
        )]));
        assert!(msg.contains("two endpoints"), "{msg}");
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut m = base();
        m.remove("AccountId");
        m.insert("RestApiVpcEndpointId".into(), json!("nope"));
        let msg = problems(m);
        assert!(msg.contains("AccountId is required"), "{msg}");
        assert!(msg.contains("RestApiVpcEndpointId must be"), "{msg}");
    }

    #[test]
    fn environment_supplies_account_and_secret() {
        let mut m = base();
        m.remove("AccountId");
        m.remove("CredentialsSecretArn");
        let d = Defaults {
            account_id: Some(ACCOUNT.into()),
            credentials_secret_arn: Some("arn:aws:secretsmanager:us-east-1:1:secret:x".into()),
            databricks_host: Some("http://127.0.0.1:9/".into()),
            ..defaults()
        };
        let p = parse(&m, &d, &identity()).unwrap();
        assert_eq!(p.target.account_id, ACCOUNT);
        assert_eq!(p.target.account_host, "http://127.0.0.1:9");
    }

    #[test]
    fn allowed_ids_need_endpoint_level() {
        let msg = problems(with(&[("AllowedVpcEndpointIds", json!(["vpce-0123abcd"]))]));
        assert!(msg.contains("ENDPOINT"), "{msg}");
        let p = parse(
            &with(&[
                ("PrivateAccessLevel", json!("ENDPOINT")),
                (
                    "AllowedVpcEndpointIds",
                    json!("vpce-0123abcd,vpce-0123abcd"),
                ),
            ]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert_eq!(
            p.allowed_vpc_endpoint_ids,
            vec!["vpce-0123abcd".to_string()]
        );
    }

    #[test]
    fn region_without_privatelink_is_refused() {
        let msg = problems(with(&[("Region", json!("eu-north-1"))]));
        assert!(msg.contains("no Databricks back-end PrivateLink"), "{msg}");
    }

    #[test]
    fn hostile_values_are_bounded_and_escaped() {
        let long = format!("vpce-{}\u{0007}", "é".repeat(5000));
        let msg = problems(with(&[("RelayVpcEndpointId", json!(long))]));
        assert!(msg.len() < 600, "{}", msg.len());
        assert!(!msg.chars().any(|c| c == '\u{0007}'));
    }

    #[test]
    fn network_and_workspaces_are_parsed_and_checked() {
        let p = parse(
            &with(&[
                (
                    "Network",
                    json!({"SubnetIds": ["subnet-0a1b2c3d", "subnet-1a1b2c3d"], "SecurityGroupIds": "sg-0a1b2c3d"}),
                ),
                ("WorkspaceIds", json!(["1234567890123456"])),
            ]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        let n = p.network.unwrap();
        assert_eq!(n.subnet_ids.len(), 2);
        assert_eq!(n.security_group_ids, vec!["sg-0a1b2c3d".to_string()]);
        assert_eq!(n.vpc_id, None);
        assert_eq!(p.workspace_ids, vec![1234567890123456]);
        let several = parse(
            &with(&[("WorkspaceIds", json!(["1234567890123456", "42"]))]),
            &defaults(),
            &identity(),
        )
        .unwrap();
        assert_eq!(several.workspace_ids, vec![1234567890123456, 42]);

        let msg = problems(with(&[(
            "Network",
            json!({"SubnetIds": ["subnet-0a1b2c3d"], "SecurityGroupIds": []}),
        )]));
        assert!(msg.contains("at least two subnets"), "{msg}");
        assert!(msg.contains("one to five security groups"), "{msg}");
        let msg = problems(with(&[(
            "Network",
            json!({"SubnetIds": ["subnet-0a1b2c3d", "subnet-1a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"], "Subnets": 1}),
        )]));
        assert!(msg.contains("Subnets"), "{msg}");
        let msg = problems(with(&[("WorkspaceIds", json!(["abc"]))]));
        assert!(msg.contains("WorkspaceIds"), "{msg}");
        let msg = problems(with(&[("Network", json!("subnet-0a1b2c3d"))]));
        assert!(msg.contains("Network"), "{msg}");
    }

    #[test]
    fn one_network_never_serves_several_workspaces() {
        let network = json!({"SubnetIds": ["subnet-0a1b2c3d", "subnet-1a1b2c3d"], "SecurityGroupIds": ["sg-0a1b2c3d"]});
        let msg = problems(with(&[
            ("Network", network.clone()),
            ("WorkspaceIds", json!(["1234567890123456", "42"])),
        ]));
        assert!(
            msg.contains("Network can serve one workspace only, but WorkspaceIds lists 2 (1234567890123456, 42)"),
            "{msg}"
        );
        assert!(msg.contains("Leave Network unset"), "{msg}");
        assert!(msg.contains("one resource per workspace"), "{msg}");
        // One workspace, or none, is what a network configuration can serve.
        for ids in [json!(["42"]), json!([])] {
            let p = parse(
                &with(&[("Network", network.clone()), ("WorkspaceIds", ids)]),
                &defaults(),
                &identity(),
            );
            assert!(p.is_ok(), "{:?}", p.err());
        }
    }

    #[test]
    fn lenient_parse_keeps_what_is_usable() {
        let m = with(&[("AccountId", json!("bad")), ("Bogus", json!(1))]);
        let t = parse_lenient(&m, &defaults());
        assert_eq!(t.account_id, None);
        assert!(t.credentials_secret_arn.is_some());
        // The region (here the function's own) decides the accounts host.
        assert_eq!(
            t.account_host.as_deref(),
            Some("https://accounts.cloud.databricks.com")
        );
        let gov = Defaults {
            aws_region: Some("us-gov-west-1".into()),
            ..Defaults::default()
        };
        assert_eq!(
            parse_lenient(&m, &gov).account_host.as_deref(),
            Some("https://accounts.cloud.databricks.us")
        );
    }
}
