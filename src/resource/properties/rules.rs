//! The rules of single properties and of the event's size: limits judged on the raw JSON, id
//! formats, the `Network` object, `WorkspaceIds` and the default name prefix. `parse` in the
//! parent combines them.

use super::*;

/// The limits of one event (see [`MAX_WORKSPACE_IDS`]), judged on the raw JSON without
/// splitting or copying anything, so that a flood costs no more than a well-formed event.
pub(super) fn over_limits(props: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    if props.len() > MAX_PROPERTIES {
        problems.push(format!(
            "there are {} properties; this resource takes at most {MAX_PROPERTIES} (see the README's property table)",
            props.len()
        ));
        return problems;
    }
    let mut longest: Option<(String, usize)> = None;
    for (name, value) in props {
        if let Some(bytes) = longest_string(value)
            && bytes > MAX_STRING_BYTES
            && longest.as_ref().is_none_or(|(_, b)| bytes > *b)
        {
            longest = Some((name.clone(), bytes));
        }
    }
    if let Some((name, bytes)) = longest {
        problems.push(format!(
            "{} holds a value of {bytes} bytes; values may be at most {MAX_STRING_BYTES} bytes",
            quote(&name)
        ));
    }
    let network = props.get(NETWORK).and_then(Value::as_object);
    let lists = [
        (
            WORKSPACE_IDS.to_string(),
            props.get(WORKSPACE_IDS),
            MAX_WORKSPACE_IDS,
            "workspace ids; switch more workspaces with a second resource",
        ),
        (
            ALLOWED_VPC_ENDPOINT_IDS.to_string(),
            props.get(ALLOWED_VPC_ENDPOINT_IDS),
            MAX_ALLOWED_VPC_ENDPOINT_IDS,
            "endpoint ids",
        ),
        (
            format!("{NETWORK}.{SUBNET_IDS}"),
            network.and_then(|n| n.get(SUBNET_IDS)),
            MAX_SUBNET_IDS,
            "subnets",
        ),
        (
            format!("{NETWORK}.{SECURITY_GROUP_IDS}"),
            network.and_then(|n| n.get(SECURITY_GROUP_IDS)),
            MAX_SECURITY_GROUP_IDS,
            "security groups: a Databricks network configuration takes one to five security groups",
        ),
    ];
    for (name, value, max, what) in lists {
        let count = value.map_or(0, list_entries);
        if count > max {
            problems.push(format!(
                "{name} lists {count} entries; at most {max} {what}"
            ));
        }
    }
    problems
}

/// Entries of a JSON list, or non-empty items of a comma-separated string; 0 for anything else
/// (the property reader reports those).
pub(super) fn list_entries(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        Value::String(text) => text.split(',').filter(|i| !i.trim().is_empty()).count(),
        _ => 0,
    }
}

/// Bytes of the longest string (or object key) in `value`, walked without recursion: the event
/// parser bounds nesting, but this must not depend on it.
pub(super) fn longest_string(value: &Value) -> Option<usize> {
    let mut longest = None;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        let bytes = match value {
            Value::String(text) => text.len(),
            Value::Array(items) => {
                pending.extend(items);
                continue;
            }
            Value::Object(map) => {
                pending.extend(map.values());
                map.keys().map(String::len).max().unwrap_or(0)
            }
            _ => continue,
        };
        longest = longest.max(Some(bytes));
    }
    longest
}

/// An official account host as Databricks writes it (so `:443` or a trailing slash is not read as
/// a move to another account on Update); any other host without its trailing slash.
pub(super) fn normalised_host(host: &str) -> String {
    databricks::official_host(host)
        .map(str::to_owned)
        .unwrap_or_else(|| host.trim_end_matches('/').to_string())
}

pub(super) fn parse_network(
    map: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> Option<NetworkSpec> {
    let mut reader = PropertyReader::new(map);
    let mut nested = |r: Result<Option<Vec<String>>, PropertyError>| {
        r.unwrap_or_else(|e| {
            problems.push(format!("{NETWORK}: {e}"));
            None
        })
    };
    let subnets = nested(reader.string_list(SUBNET_IDS));
    let groups = nested(reader.string_list(SECURITY_GROUP_IDS));
    let vpc = match reader.string(VPC_ID) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{NETWORK}: {e}"));
            None
        }
    };
    if let Err(e) = reader.reject_unknown(&[]) {
        problems.push(format!("{NETWORK}: {e}"));
    }
    let before = problems.len();
    let subnet_ids = distinct_ids(subnets.unwrap_or_default(), "subnet-", SUBNET_IDS, problems);
    let security_group_ids = distinct_ids(
        groups.unwrap_or_default(),
        "sg-",
        SECURITY_GROUP_IDS,
        problems,
    );
    if subnet_ids.len() < 2 {
        problems.push(format!(
            "{NETWORK}.{SUBNET_IDS} needs at least two subnets in different availability zones (the existing cluster subnets)"
        ));
    }
    if !(1..=5).contains(&security_group_ids.len()) {
        problems.push(format!(
            "{NETWORK}.{SECURITY_GROUP_IDS} needs one to five security groups (the cluster security group); got {}",
            security_group_ids.len()
        ));
    }
    if let Some(v) = &vpc
        && !is_aws_id(v, "vpc-")
    {
        problems.push(format!(
            "{NETWORK}.{VPC_ID} must be a VPC id like vpc-0a1b2c3d4e5f60718; got {}",
            quote(v)
        ));
    }
    (problems.len() == before).then_some(NetworkSpec {
        vpc_id: vpc,
        subnet_ids,
        security_group_ids,
    })
}

/// Databricks does not let one network configuration serve more than one workspace, nor
/// subnets and security groups be shared between workspaces (the SDKs' workspace Create docs;
/// the Terraform provider's mws_workspaces and mws_networks docs). Attaching the second
/// workspace would fail after the first was switched for good, so it is refused up front.
pub(super) fn one_network_per_workspace(workspace_ids: &[i64]) -> String {
    let listed = workspace_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{NETWORK} can serve one workspace only, but {WORKSPACE_IDS} lists {} ({listed}): Databricks does not let one network configuration be used by more than one workspace, nor subnets and security groups be shared between workspaces. Leave {NETWORK} unset so each workspace gets its own copy of its current network with the endpoints added, or use one resource per workspace",
        workspace_ids.len()
    )
}

pub(super) fn distinct_ids(
    values: Vec<String>,
    prefix: &str,
    name: &str,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for v in values {
        if !is_aws_id(&v, prefix) {
            problems.push(format!(
                "{NETWORK}.{name} entries must look like {prefix}0a1b2c3d; got {}",
                quote(&v)
            ));
        } else if seen.insert(v.clone()) {
            out.push(v);
        }
    }
    out
}

pub(super) fn parse_workspace_ids(values: Vec<String>, problems: &mut Vec<String>) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for v in values {
        match v.trim().parse::<i64>() {
            Ok(id) if id > 0 => {
                if seen.insert(id) {
                    ids.push(id);
                }
            }
            _ => problems.push(format!(
                "{WORKSPACE_IDS} entries must be numeric Databricks workspace ids like 1234567890123456; got {}",
                quote(&v)
            )),
        }
    }
    ids
}

/// `<prefix>` followed by 8 or 17 lowercase hex digits, as EC2 ids are.
pub(super) fn is_aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(super) fn required(
    value: Option<String>,
    default: Option<String>,
    name: &str,
    env: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match value.or(default) {
        Some(v) if v.len() > MAX_VALUE_LEN => {
            problems.push(format!("{name} is too long ({} bytes)", v.len()));
            None
        }
        Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        Some(_) => {
            problems.push(format!("{name} is empty"));
            None
        }
        None => {
            problems.push(format!(
                "{name} is required (or set {env} in the function's environment)"
            ));
            None
        }
    }
}

pub(super) fn vpce_property(
    value: Option<String>,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match value {
        None => {
            problems.push(format!(
                "{name} is required: the vpce- id of the endpoint (for example !Ref YourEndpoint)"
            ));
            None
        }
        Some(v) if is_vpce_id(&v) => Some(v),
        Some(v) => {
            problems.push(format!(
                "{name} must be a VPC endpoint id: vpce- followed by 8 or 17 hex digits, like vpce-0a1b2c3d4e5f60718; got {}",
                quote(&v)
            ));
            None
        }
    }
}

pub fn is_vpce_id(id: &str) -> bool {
    id.strip_prefix("vpce-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// `<stack>-<logical id>` with anything Databricks would not take replaced, kept short so the
/// derived names stay readable in the account console.
pub(super) fn default_name_prefix(identity: &Identity<'_>) -> String {
    let raw = format!("{}-{}", identity.stack_name, identity.logical_resource_id);
    let cleaned: String = raw
        .chars()
        .map(|c| if is_name_char(c) { c } else { '-' })
        .take(64)
        .collect();
    if cleaned.trim_matches('-').is_empty() {
        "cfn".to_string()
    } else {
        cleaned
    }
}

/// A user value quoted for a reason: bounded and with control characters escaped, so a hostile
/// or huge value can neither break the response nor push it past 4096 bytes.
pub fn quote(value: &str) -> String {
    format!("\"{}\"", crate::text::shorten(value, 80))
}

/// `AllowedVpcEndpointIds` without repeats; an entry that is no `vpce-…` id is a problem.
pub(super) fn distinct_vpce_ids(allowed: Vec<String>, problems: &mut Vec<String>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for id in allowed {
        if is_vpce_id(&id) {
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        } else {
            problems.push(format!(
                "{ALLOWED_VPC_ENDPOINT_IDS} entries must be VPC endpoint ids like vpce-0a1b2c3d4e5f60718; got {}",
                quote(&id)
            ));
        }
    }
    ids
}
