//! Bad input, hostile hosts, leaked secrets and load, through the real binary: a table of malformed events and property sets, AccountHost and ResponseURL values
//! that point outside Databricks and S3, Databricks error bodies too long to quote, and 100
//! stacks against an account API that throttles with 429s.
//!
//! It owns these expectations; the harness and the world know nothing of them. Every Lambda
//! started here has its output audited at the end of its test ([`audit_logs`]): no client
//! secret, access token or presigned query string may appear in any line.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use emulator::{Emulator, EmulatorConfig, FaultBody, FaultKind, FaultSpec};
use serde_json::{Map, Value, json};

use crate::scenario::{
    CLIENT_SECRET, REGION, TIMEOUT, World, WorldOptions, carries_token, deliver_event,
};
use crate::support::events::{RequestType, cfn_event, stack_id};
use crate::support::fixtures::{AwsFixture, NetworkOptions, Setup};
use crate::support::lambda::{Lambda, LambdaProcess};
use crate::support::moto::Moto;
use crate::support::runtime::{InvocationResult, RuntimeApi};
use crate::support::sink::RecordingSink;

/// CloudFormation refuses larger response bodies (`docs/cloudformation.md#response`).
const MAX_RESPONSE_BYTES: usize = 4096;
/// What the function appends to a Reason it had to cut.
const TRUNCATION_MARKER: &str = "[truncated; the full text is in CloudWatch logs]";
const LOGICAL_ID: &str = "PrivateLink";
/// A Databricks service principal's client id; not a secret.
pub(crate) const CLIENT_ID: &str = "abuse-client";

// ---------------------------------------------------------------------------------------------
// Part 5: bad input
// ---------------------------------------------------------------------------------------------

enum Expect {
    /// Answered FAILED with a reason that contains this.
    Failed(&'static str),
    /// Not an event: the invocation fails with `InvalidEvent` and a message containing this.
    NotAnEvent(&'static str),
}

struct Row {
    name: String,
    /// The event without a ResponseURL (a direct invocation).
    event: Value,
    expect: Expect,
    /// The reason is long enough that the response must cut it at 4096 bytes.
    cut: bool,
}

/// The rows, built against one world's valid properties.
struct Table<'a> {
    world: &'a World,
    rows: Vec<Row>,
}

impl Table<'_> {
    fn create_event(&self) -> Value {
        cfn_event(
            RequestType::Create,
            &stack_id("abuse"),
            LOGICAL_ID,
            None,
            self.world.props(0),
            None,
            None,
        )
    }

    /// A Create of the world's valid properties with `edit` applied to them as the function
    /// receives them (after CloudFormation stringified the scalars), so raw JSON types can be
    /// put in as a direct invocation would send them.
    fn props(
        &mut self,
        name: impl Into<String>,
        needle: &'static str,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) {
        let mut event = self.create_event();
        if let Some(props) = event["ResourceProperties"].as_object_mut() {
            edit(props);
        }
        self.rows.push(Row {
            name: name.into(),
            event,
            expect: Expect::Failed(needle),
            cut: false,
        });
    }

    fn set(&mut self, name: &str, needle: &'static str, key: &str, value: Value) {
        let key = key.to_owned();
        self.props(name, needle, move |p| {
            p.insert(key, value);
        });
    }

    fn remove(&mut self, name: &str, needle: &'static str, key: &str) {
        let key = key.to_owned();
        self.props(name, needle, move |p| {
            p.remove(&key);
        });
    }

    /// The last row's reason is too long for a response and must arrive cut.
    fn cut_last(&mut self) {
        if let Some(row) = self.rows.last_mut() {
            row.cut = true;
        }
    }

    fn not_an_event(&mut self, name: &str, needle: &'static str, event: Value) {
        self.rows.push(Row {
            name: name.to_owned(),
            event,
            expect: Expect::NotAnEvent(needle),
            cut: false,
        });
    }

    /// A valid Create event with one top-level field replaced (`Value::Null` removes it).
    fn event_with(&self, field: &str, value: Value) -> Value {
        let mut event = self.create_event();
        if let Some(map) = event.as_object_mut() {
            if value.is_null() {
                map.remove(field);
            } else {
                map.insert(field.to_owned(), value);
            }
        }
        event
    }
}

/// Endpoints the table needs besides the world's two networks.
struct ExtraEndpoints {
    gateway: String,
    rest_without_dns: String,
    relay_without_dns: String,
    not_databricks: String,
}

async fn extra_endpoints(world: &World) -> ExtraEndpoints {
    let net = &world.networks[0];
    let interface = |service: &str, private_dns: bool| {
        json!({
            "op": "endpoint",
            "vpc_id": net.vpc_id,
            "service_name": service,
            "endpoint_type": "Interface",
            "private_dns": private_dns,
            "subnet_ids": net.subnet_ids,
            "security_group_ids": [net.endpoint_sg_id],
        })
    };
    // One Python start for hundreds of endpoints.
    let results = crate::support::fixtures::batch(
        world.moto,
        REGION,
        vec![
            json!({
                "op": "endpoint",
                "vpc_id": net.vpc_id,
                "service_name": format!("com.amazonaws.{REGION}.s3"),
                "endpoint_type": "Gateway",
            }),
            interface(&net.rest_service, false),
            interface(&net.relay_service, false),
            interface(&format!("com.amazonaws.{REGION}.secretsmanager"), true),
        ],
    )
    .await;
    let id = |n: usize| results[n]["vpce_id"].as_str().unwrap().to_owned();
    ExtraEndpoints {
        gateway: id(0),
        rest_without_dns: id(1),
        relay_without_dns: id(2),
        not_databricks: id(3),
    }
}

fn rows(world: &World, extra: &ExtraEndpoints) -> Vec<Row> {
    let net0 = &world.networks[0];
    let net1 = &world.networks[1];
    let hundred_kb = |unit: &str| unit.repeat(100 * 1024 / unit.len());
    let mut t = Table {
        world,
        rows: Vec::new(),
    };

    // Wrong types.
    t.set(
        "a boolean given as a list",
        "Property `PublicAccessEnabled` must be true or false",
        "PublicAccessEnabled",
        json!(["true"]),
    );
    t.set(
        "a list where a string is expected",
        "Property `AccountId` must be a string",
        "AccountId",
        json!([world.account_id]),
    );
    t.set(
        "an object where a string is expected",
        "Property `RestApiVpcEndpointId` must be a string",
        "RestApiVpcEndpointId",
        json!({"Ref": "RestApiEndpoint"}),
    );
    t.set(
        "a JSON boolean where a string is expected",
        "Property `Region` must be a string",
        "Region",
        json!(true),
    );
    t.set(
        "a boolean that is neither true nor false",
        "Property `EnablePrivateDns` must be true or false",
        "EnablePrivateDns",
        json!("yes"),
    );
    t.set(
        "a number where a boolean is expected",
        "Property `FrontEndPrivateLink` must be true or false",
        "FrontEndPrivateLink",
        json!(1),
    );
    t.set(
        "an object where a list is expected",
        "Property `AllowedVpcEndpointIds` must be a list of strings",
        "AllowedVpcEndpointIds",
        json!({"vpce": "vpce-0123abcd"}),
    );
    t.set(
        "an object inside a list",
        "Property `WorkspaceIds` must be a list of strings or one comma-separated string; item 0",
        "WorkspaceIds",
        json!([{"Id": "1234"}]),
    );

    // Missing and unknown properties.
    t.remove("AccountId missing", "AccountId is required", "AccountId");
    t.remove(
        "CredentialsSecretArn missing",
        "CredentialsSecretArn is required",
        "CredentialsSecretArn",
    );
    t.remove(
        "RestApiVpcEndpointId missing",
        "RestApiVpcEndpointId is required",
        "RestApiVpcEndpointId",
    );
    t.remove(
        "RelayVpcEndpointId missing",
        "RelayVpcEndpointId is required",
        "RelayVpcEndpointId",
    );
    t.props("no properties at all", "AccountId is required", |p| {
        p.retain(|k, _| k == "ServiceToken");
    });
    t.set(
        "AccountId null",
        "AccountId is required",
        "AccountId",
        Value::Null,
    );
    t.set(
        "AccountId empty",
        "AccountId is empty",
        "AccountId",
        json!(""),
    );
    t.set(
        "an unknown property",
        "Unknown property `RestApiEndpoint`",
        "RestApiEndpoint",
        json!("vpce-0a1b2c3d"),
    );
    t.props(
        "a property name with a typo",
        "Unknown property `Accountid`",
        |p| {
            let id = p.remove("AccountId").unwrap_or_default();
            p.insert("Accountid".into(), id);
        },
    );

    // Malformed ids.
    for (what, id) in [
        ("too short", "vpce-123"),
        ("uppercase", "vpce-0A1B2C3D4E5F60718"),
        ("not hex", "vpce-0g1b2c3d4e5f6071z"),
        ("9 digits", "vpce-0a1b2c3d4"),
        ("without its prefix", "0a1b2c3d4e5f60718"),
        ("with a leading space", " vpce-0a1b2c3d4e5f60718"),
    ] {
        t.set(
            &format!("a vpce id {what}"),
            "RestApiVpcEndpointId must be a VPC endpoint id",
            "RestApiVpcEndpointId",
            json!(id),
        );
    }
    t.set(
        "the same endpoint for both roles",
        "needs two endpoints",
        "RelayVpcEndpointId",
        json!(net0.rest_vpce_id),
    );
    t.set(
        "an AccountId that is not a UUID",
        "AccountId must be the Databricks account id",
        "AccountId",
        json!("1234567890"),
    );
    t.set(
        "a CredentialsSecretArn that is not an ARN",
        "CredentialsSecretArn must be the ARN of a Secrets Manager secret",
        "CredentialsSecretArn",
        json!("databricks/sp"),
    );
    t.set(
        "a secret that does not exist",
        "does not exist or is scheduled for deletion",
        "CredentialsSecretArn",
        json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf"),
    );

    // Regions.
    t.set(
        "a region other than the endpoints'",
        "does not exist in the region the resource names",
        "Region",
        json!("eu-west-1"),
    );
    t.set(
        "a region name in capitals",
        "Region must be an AWS region name",
        "Region",
        json!("US-EAST-1"),
    );
    t.set(
        "a region without PrivateLink",
        "has no Databricks back-end PrivateLink endpoint services",
        "Region",
        json!("eu-north-1"),
    );

    // Endpoints EC2 knows but that cannot work.
    t.props("swapped endpoints", "look swapped", |p| {
        p.insert("RestApiVpcEndpointId".into(), json!(net0.relay_vpce_id));
        p.insert("RelayVpcEndpointId".into(), json!(net0.rest_vpce_id));
    });
    t.set(
        "endpoints in different VPCs",
        "both endpoints must be in the workspace's VPC",
        "RelayVpcEndpointId",
        json!(net1.relay_vpce_id),
    );
    t.set(
        "a Gateway endpoint",
        "is a Gateway endpoint",
        "RelayVpcEndpointId",
        json!(extra.gateway),
    );
    t.set(
        "an endpoint to another service",
        "which is not the Databricks SCC relay endpoint service",
        "RelayVpcEndpointId",
        json!(extra.not_databricks),
    );
    t.set(
        "an endpoint EC2 does not know",
        "does not exist in the region the resource names",
        "RestApiVpcEndpointId",
        json!("vpce-0123456789abcdef0"),
    );
    t.props(
        "private DNS off without EnablePrivateDns",
        "Private DNS is disabled on",
        |p| {
            p.insert("RestApiVpcEndpointId".into(), json!(extra.rest_without_dns));
            p.insert("RelayVpcEndpointId".into(), json!(extra.relay_without_dns));
        },
    );

    // Access settings.
    t.set(
        "PublicAccessEnabled=false without FrontEndPrivateLink",
        "would lock users out of the workspace UI",
        "PublicAccessEnabled",
        json!("false"),
    );
    t.set(
        "an unknown PrivateAccessLevel",
        "PrivateAccessLevel must be ACCOUNT or ENDPOINT",
        "PrivateAccessLevel",
        json!("SOMETIMES"),
    );
    t.set(
        "AllowedVpcEndpointIds with ACCOUNT access",
        "is only used with PrivateAccessLevel=ENDPOINT",
        "AllowedVpcEndpointIds",
        json!(["vpce-0123abcd"]),
    );
    t.props(
        "a malformed AllowedVpcEndpointIds entry",
        "AllowedVpcEndpointIds entries must be VPC endpoint ids",
        |p| {
            p.insert("PrivateAccessLevel".into(), json!("ENDPOINT"));
            p.insert("AllowedVpcEndpointIds".into(), json!("vpce-XYZ"));
        },
    );
    t.props(
        "an AllowedVpcEndpointIds entry Databricks does not know",
        "vpce-0fedcba987654321f is not registered in the Databricks account",
        |p| {
            p.insert("PrivateAccessLevel".into(), json!("ENDPOINT"));
            p.insert(
                "AllowedVpcEndpointIds".into(),
                json!(["vpce-0fedcba987654321f"]),
            );
        },
    );
    t.set(
        "a NamePrefix with spaces",
        "NamePrefix must be 1 to 200 letters",
        "NamePrefix",
        json!("my prefix"),
    );
    t.set(
        "an empty NamePrefix",
        "NamePrefix must be 1 to 200 letters",
        "NamePrefix",
        json!(""),
    );

    // Network and workspaces.
    let network =
        |subnets: Value, groups: Value| json!({"SubnetIds": subnets, "SecurityGroupIds": groups});
    t.set(
        "a Network with one subnet",
        "Network.SubnetIds needs at least two subnets",
        "Network",
        network(json!([net0.subnet_ids[0]]), json!([net0.cluster_sg_id])),
    );
    t.set(
        "a Network given as a string",
        "Property `Network` must be an object",
        "Network",
        json!(net0.subnet_ids.join(",")),
    );
    t.props(
        "a Network with an unknown key",
        "Network: Unknown property `Subnets`",
        |p| {
            let mut n = network(json!(net0.subnet_ids), json!([net0.cluster_sg_id]));
            n["Subnets"] = json!(net0.subnet_ids);
            p.insert("Network".into(), n);
        },
    );
    t.set(
        "a Network with six security groups",
        "one to five security groups",
        "Network",
        network(
            json!(net0.subnet_ids),
            json!((0..6).map(|i| format!("sg-0{i}1b2c3d")).collect::<Vec<_>>()),
        ),
    );
    t.props(
        "a Network with a malformed VpcId",
        "Network.VpcId must be a VPC id",
        |p| {
            let mut n = network(json!(net0.subnet_ids), json!([net0.cluster_sg_id]));
            n["VpcId"] = json!("my-vpc");
            p.insert("Network".into(), n);
        },
    );
    for (what, value) in [
        ("non-numeric", json!(["prod-workspace"])),
        ("negative", json!("-5")),
        ("past 64 bits", json!(["99999999999999999999"])),
    ] {
        t.set(
            &format!("WorkspaceIds {what}"),
            "WorkspaceIds entries must be numeric Databricks workspace ids",
            "WorkspaceIds",
            value,
        );
    }

    // Account hosts the function must not talk to even with insecure endpoints allowed.
    t.set(
        "an empty AccountHost",
        "AccountHost is empty",
        "AccountHost",
        json!(""),
    );
    t.set(
        "an AccountHost with a path and query",
        "is not allowed",
        "AccountHost",
        json!("http://127.0.0.1:9/api?x=1"),
    );
    t.set(
        "an AccountHost that is not http(s)",
        "is not allowed",
        "AccountHost",
        json!("ftp://accounts.cloud.databricks.com"),
    );

    // Oversized values: 100 KB each.
    t.set(
        "a 100 KB AccountId",
        "\"AccountId\" holds a value of 102400 bytes; values may be at most 4096 bytes",
        "AccountId",
        json!(hundred_kb("0")),
    );
    t.set(
        "a 100 KB vpce id",
        "\"RestApiVpcEndpointId\" holds a value of",
        "RestApiVpcEndpointId",
        json!(format!("vpce-{}", hundred_kb("a"))),
    );
    t.set(
        "a 100 KB NamePrefix",
        "\"NamePrefix\" holds a value of",
        "NamePrefix",
        json!(hundred_kb("p")),
    );
    t.set(
        "a 100 KB multi-byte Region",
        "\"Region\" holds a value of",
        "Region",
        json!(hundred_kb("é")),
    );
    t.set(
        "a 100 KB property name",
        "Unknown property `",
        &hundred_kb("X"),
        json!("x"),
    );
    t.set(
        "500 workspace ids",
        "WorkspaceIds lists 500 entries; at most 100 workspace ids",
        "WorkspaceIds",
        json!(vec!["not-a-workspace"; 500]),
    );
    // As many malformed ids as are allowed, each quoted: twenty problems are listed, the rest
    // counted, and that still runs past 4096 bytes.
    t.set(
        "100 malformed workspace ids",
        "WorkspaceIds entries must be numeric Databricks workspace ids",
        "WorkspaceIds",
        json!(vec!["é".repeat(100); 100]),
    );
    t.cut_last();

    // Control characters, and multi-byte characters where the response is cut.
    t.set(
        "control characters in a vpce id",
        "RelayVpcEndpointId must be a VPC endpoint id",
        "RelayVpcEndpointId",
        json!("vpce-\u{0}\u{7}\u{1b}[31m\r\n\t\u{7f}\u{85}0a1b2c3d"),
    );
    t.set(
        "control characters in a property name",
        "Unknown property `Bad",
        "Bad\u{0}\u{1b}[2JName\n",
        json!("x"),
    );
    // Each entry is quoted (cut to 80 characters) in its own problem, so the reason runs past
    // 4096 bytes, mostly 4-byte characters (twenty entries, the most allowed). The first entry
    // starts with `ascii` ASCII characters in place of emoji, 3 bytes less each: 0 to 3 move the
    // cut through every byte of a character, and 40 more move it 120 bytes, past the ASCII text (under 100 bytes) between
    // two entries' emoji. So whatever the wording of the problem, several rows cut inside a
    // character.
    for ascii in [0, 1, 2, 3, 40, 41, 42, 43] {
        let mut entries = vec![format!("{}{}", "x".repeat(ascii), "😀".repeat(80 - ascii))];
        entries.extend(std::iter::repeat_n("😀".repeat(80), 19));
        t.props(
            format!("multi-byte characters across the 4096-byte cut ({ascii} ASCII first)"),
            "AllowedVpcEndpointIds entries must be VPC endpoint ids",
            |p| {
                p.insert("PrivateAccessLevel".into(), json!("ENDPOINT"));
                p.insert("AllowedVpcEndpointIds".into(), json!(entries));
            },
        );
        t.cut_last();
    }
    // Two-byte characters too, on a first entry of odd length.
    t.set(
        "two-byte characters across the 4096-byte cut",
        "AllowedVpcEndpointIds is only used with PrivateAccessLevel=ENDPOINT",
        "AllowedVpcEndpointIds",
        json!(
            std::iter::once("x".to_owned())
                .chain(std::iter::repeat_n("é".repeat(80), 19))
                .collect::<Vec<_>>()
        ),
    );
    t.cut_last();

    // JSON bodies that are not events.
    t.not_an_event("[]", "the event is a list, not a JSON object", json!([]));
    t.not_an_event(
        "\"x\"",
        "the event is a string, not a JSON object",
        json!("x"),
    );
    t.not_an_event("null", "the event is null, not a JSON object", Value::Null);
    t.not_an_event("42", "the event is a number, not a JSON object", json!(42));
    t.not_an_event("{}", "the event has no RequestType", json!({}));
    t.not_an_event(
        "only a RequestType",
        "the event has no StackId",
        json!({"RequestType": "Create"}),
    );
    let unknown_type = t.event_with("RequestType", json!("Upsert"));
    t.not_an_event(
        "an unknown RequestType",
        "RequestType must be Create, Update or Delete",
        unknown_type,
    );
    let numeric_type = t.event_with("RequestType", json!(1));
    t.not_an_event(
        "a numeric RequestType",
        "RequestType must be a string",
        numeric_type,
    );
    let string_props = t.event_with("ResourceProperties", json!("AccountId=x"));
    t.not_an_event(
        "ResourceProperties as a string",
        "ResourceProperties must be an object",
        string_props,
    );
    let list_props = t.event_with("ResourceProperties", json!([]));
    t.not_an_event(
        "ResourceProperties as a list",
        "ResourceProperties must be an object",
        list_props,
    );
    let numeric_stack = t.event_with("StackId", json!(12));
    t.not_an_event(
        "a numeric StackId",
        "StackId must be a string",
        numeric_stack,
    );
    let empty_request = t.event_with("RequestId", json!(""));
    t.not_an_event("an empty RequestId", "RequestId is empty", empty_request);
    let no_logical = t.event_with("LogicalResourceId", Value::Null);
    t.not_an_event(
        "no LogicalResourceId",
        "the event has no LogicalResourceId",
        no_logical,
    );
    let numeric_url = t.event_with("ResponseURL", json!(443));
    t.not_an_event(
        "a numeric ResponseURL",
        "ResponseURL must be a string",
        numeric_url,
    );
    t.rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_and_properties_fail_clearly_small_and_without_a_write() {
    let started = Instant::now();
    let world = World::with(WorldOptions {
        networks: 2,
        ..WorldOptions::default()
    })
    .await;
    let extra = extra_endpoints(&world).await;
    let rows = rows(&world, &extra);
    assert!(rows.len() >= 40, "only {} rows", rows.len());

    let mut signatures = Vec::new();
    let mut through_response_url = 0;
    let mut cut_inside_a_character = 0;
    let mut answered_unrunnable = 0;
    for row in &rows {
        let name = &row.name;
        match row.expect {
            Expect::NotAnEvent(needle) => {
                match world.lambda.invoke(row.event.clone(), TIMEOUT).await {
                    InvocationResult::Error {
                        error_type,
                        error_message,
                    } => {
                        assert_eq!(error_type, "InvalidEvent", "{name}");
                        assert_readable(name, &error_message, needle);
                    }
                    other => panic!("{name}: not an event, must fail the invocation: {other:?}"),
                }
                // The same event with a ResponseURL: answered FAILED once when it names the ids
                // CloudFormation matches answers by, otherwise still a failed invocation.
                if row.event.is_object()
                    && row.event.get("ResponseURL").is_none_or(Value::is_string)
                {
                    let sink = RecordingSink::start().await;
                    signatures.push(signature_of(&sink.url()));
                    let mut event = row.event.clone();
                    event["ResponseURL"] = json!(sink.url());
                    let answerable = ["StackId", "RequestId", "LogicalResourceId"]
                        .iter()
                        .all(|f| event[f].as_str().is_some_and(|s| !s.is_empty()));
                    let result = world.lambda.invoke(event, TIMEOUT).await;
                    if answerable {
                        assert!(
                            matches!(result, InvocationResult::Response(_)),
                            "{name}: once answered, the invocation succeeds: {result:?}"
                        );
                        let puts = sink.wait_for(1, Duration::from_secs(5)).await;
                        assert_eq!(puts.len(), 1, "{name}: exactly one PUT");
                        let doc: Value = serde_json::from_slice(&puts[0].body).unwrap();
                        assert_eq!(doc["Status"], "FAILED", "{name}");
                        assert_readable(name, doc["Reason"].as_str().unwrap_or_default(), needle);
                        answered_unrunnable += 1;
                    } else {
                        assert!(
                            matches!(result, InvocationResult::Error { .. }),
                            "{name}: {result:?}"
                        );
                        assert!(sink.requests().is_empty(), "{name}: nothing to answer");
                    }
                }
            }
            Expect::Failed(needle) => {
                // A direct invocation: the reason is the function error.
                match world.lambda.invoke(row.event.clone(), TIMEOUT).await {
                    InvocationResult::Error {
                        error_type,
                        error_message,
                    } => {
                        assert_eq!(error_type, "CustomResourceFailed", "{name}");
                        assert_readable(name, &error_message, needle);
                    }
                    other => panic!("{name}: expected a FAILED direct invocation: {other:?}"),
                }
                // The same request from CloudFormation: the document PUT to the ResponseURL.
                let sink = RecordingSink::start().await;
                signatures.push(signature_of(&sink.url()));
                let mut event = row.event.clone();
                event["ResponseURL"] = json!(sink.url());
                let result = world.lambda.invoke(event.clone(), TIMEOUT).await;
                let InvocationResult::Response(returned) = result else {
                    panic!("{name}: once answered, the invocation succeeds: {result:?}");
                };
                let puts = sink.wait_for(1, Duration::from_secs(5)).await;
                assert_eq!(puts.len(), 1, "{name}: exactly one PUT");
                let put = &puts[0];
                assert_eq!(put.method, "PUT", "{name}");
                assert!(
                    put.body.len() <= MAX_RESPONSE_BYTES,
                    "{name}: the response is {} bytes",
                    put.body.len()
                );
                // Panics unless the body is valid UTF-8 JSON.
                let doc = put.json();
                assert_eq!(doc, returned, "{name}: PUT and result differ");
                assert_eq!(doc["Status"], "FAILED", "{name}: {doc:#}");
                assert_eq!(doc["RequestId"], event["RequestId"], "{name}");
                assert_eq!(doc["StackId"], event["StackId"], "{name}");
                assert!(
                    !doc["PhysicalResourceId"]
                        .as_str()
                        .unwrap_or_default()
                        .is_empty(),
                    "{name}: {doc:#}"
                );
                let reason = doc["Reason"].as_str().unwrap_or_default();
                assert_readable(name, reason, needle);
                assert_eq!(
                    reason.ends_with(TRUNCATION_MARKER),
                    row.cut,
                    "{name}: cut {} (response {} bytes): {reason}",
                    row.cut,
                    put.body.len()
                );
                if row.cut && put.body.len() < MAX_RESPONSE_BYTES {
                    // Bytes were left over: the next character did not fit whole, so the
                    // 4096-byte limit fell inside it. The full reason is in the log.
                    let full = logged_reason(&world.lambda.logs(), &event)
                        .unwrap_or_else(|| panic!("{name}: the full reason is not logged"));
                    let kept = reason
                        .strip_suffix(TRUNCATION_MARKER)
                        .and_then(|r| r.strip_suffix(" … "))
                        .unwrap_or(reason);
                    assert!(full.starts_with(kept), "{name}: the cut is not a prefix");
                    let next = full[kept.len()..].chars().next().unwrap_or_default();
                    // Besides a multi-byte character, only an escaped one (2 bytes in JSON)
                    // can leave bytes over.
                    assert!(
                        next.len_utf8() > 1 || matches!(next, '"' | '\\'),
                        "{name}: {} bytes left over before {next:?}",
                        MAX_RESPONSE_BYTES - put.body.len()
                    );
                    if next.len_utf8() > 1 {
                        cut_inside_a_character += 1;
                    }
                }
                through_response_url += 1;
            }
        }
        assert_eq!(
            world.writes(),
            0,
            "{name}: Databricks was written to: {:?}",
            world.emulator.state().request_log()
        );
    }

    assert!(
        cut_inside_a_character >= 3,
        "only {cut_inside_a_character} responses were cut inside a multi-byte character"
    );
    // An unknown or numeric RequestType, properties as a string or a list.
    assert_eq!(
        answered_unrunnable, 4,
        "unrunnable events answered through a ResponseURL"
    );

    let mut secrets = vec![CLIENT_SECRET.to_owned()];
    secrets.extend(signatures);
    audit_logs("bad-input Lambda", &world.lambda.logs(), &secrets);
    eprintln!(
        "bad input: {} rows ({} also through a ResponseURL, {} unrunnable events answered FAILED, {} cut inside a multi-byte character), 0 Databricks writes, {:.1} s",
        rows.len(),
        through_response_url,
        answered_unrunnable,
        cut_inside_a_character,
        started.elapsed().as_secs_f64()
    );
}

/// The whole reason the function logged for the request `event` made.
fn logged_reason(logs: &str, event: &Value) -> Option<String> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["fields"]["message"] == "custom-resource request handled"
                && line["span"]["request_id"] == event["RequestId"]
        })
        .and_then(|line| line["fields"]["reason"].as_str().map(str::to_owned))
}

/// A reason a person can act on: it names what to fix, fits a response, stays on one line.
#[track_caller]
fn assert_readable(row: &str, text: &str, needle: &str) {
    assert!(
        text.contains(needle),
        "{row}: {needle:?} not in {:?}",
        cut_for_display(text)
    );
    assert!(
        text.len() <= MAX_RESPONSE_BYTES,
        "{row}: {} bytes: {:?}",
        text.len(),
        cut_for_display(text)
    );
    assert!(
        !text.chars().any(char::is_control),
        "{row}: control characters in {text:?}"
    );
}

fn cut_for_display(text: &str) -> String {
    text.chars().take(600).collect()
}

// ---------------------------------------------------------------------------------------------
// Part 6: security
// ---------------------------------------------------------------------------------------------

/// A secret and an account of this test's own, so a leak of exactly these values is found.
pub(crate) struct Secured {
    pub(crate) network: AwsFixture,
    pub(crate) secret_arn: String,
    pub(crate) wrong_secret_arn: String,
    pub(crate) client_secret: String,
    pub(crate) wrong_client_secret: String,
    pub(crate) account_id: String,
    pub(crate) emulator: Emulator,
}

impl Secured {
    pub(crate) async fn new() -> Secured {
        let moto = Moto::shared();
        let client_secret = format!("dose{}", crate::support::random_hex(40));
        let wrong_client_secret = format!("dose{}", crate::support::random_hex(40));
        let secret = |s: &str| json!({"client_id": CLIENT_ID, "client_secret": s}).to_string();
        let mut created = Setup::new(REGION)
            .secret(
                &crate::support::unique_name("abuse-sp"),
                &secret(&client_secret),
            )
            .secret(
                &crate::support::unique_name("abuse-wrong"),
                &secret(&wrong_client_secret),
            )
            .network(NetworkOptions::default())
            .run(moto)
            .await;
        let emulator = Emulator::start(EmulatorConfig {
            clients: vec![(CLIENT_ID.to_owned(), client_secret.clone())],
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let network = created.networks.remove(0);
        crate::scenario::register_endpoints(&emulator, &network);
        Secured {
            network,
            secret_arn: created.secret_arns[0].clone(),
            wrong_secret_arn: created.secret_arns[1].clone(),
            client_secret,
            wrong_client_secret,
            account_id: crate::support::uuid(),
            emulator,
        }
    }

    pub(crate) fn props(&self) -> Value {
        json!({
            "AccountId": self.account_id,
            "CredentialsSecretArn": self.secret_arn,
            "RestApiVpcEndpointId": self.network.rest_vpce_id,
            "RelayVpcEndpointId": self.network.relay_vpce_id,
        })
    }

    fn props_with(&self, key: &str, value: &str) -> Value {
        let mut props = self.props();
        props[key] = json!(value);
        props
    }
}

fn direct_event(request_type: RequestType, props: Value, response_url: Option<&str>) -> Value {
    let physical =
        (request_type != RequestType::Create).then_some("databricks-backend-privatelink-0");
    cfn_event(
        request_type,
        &stack_id("abuse-security"),
        LOGICAL_ID,
        physical,
        props,
        None,
        response_url,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_outside_databricks_and_s3_never_get_a_request() {
    let world = Secured::new().await;
    let emulator_url = world.emulator.base_url();
    let port = world.emulator.address().port();

    // As deployed: no ALLOW_INSECURE_ENDPOINTS, no DATABRICKS_HOST.
    let runtime = RuntimeApi::start().await;
    let process = LambdaProcess::builder(&runtime)
        .env_remove("ALLOW_INSECURE_ENDPOINTS")
        .env_remove("DATABRICKS_HOST")
        .spawn();
    let lambda = Lambda { process, runtime };

    let password = "hunter2hunter2";
    let hosts = [
        emulator_url.clone(),
        format!("https://127.0.0.1:{port}"),
        "https://evil.example.com".to_owned(),
        "https://accounts.cloud.databricks.com.evil.example.com".to_owned(),
        "https://evil.example.com/accounts.cloud.databricks.com".to_owned(),
        "https://accounts.cloud.databricks.com@evil.example.com".to_owned(),
        format!("https://admin:{password}@accounts.cloud.databricks.com"),
        "http://accounts.cloud.databricks.com".to_owned(),
        "https://accounts.cloud.databricks.com:8443".to_owned(),
    ];
    for host in &hosts {
        let event = direct_event(
            RequestType::Create,
            world.props_with("AccountHost", host),
            None,
        );
        match lambda.invoke(event, TIMEOUT).await {
            InvocationResult::Error {
                error_type,
                error_message,
            } => {
                assert_eq!(error_type, "CustomResourceFailed", "{host}");
                assert!(
                    error_message.contains("is not allowed")
                        && error_message.contains("https://accounts.cloud.databricks.com"),
                    "{host}: {error_message}"
                );
                assert!(!error_message.contains(password), "{error_message}");
            }
            other => panic!("AccountHost {host} must be refused: {other:?}"),
        }
    }
    // Update and Delete read the same host; Delete has nothing to remove there.
    let update = direct_event(
        RequestType::Update,
        world.props_with("AccountHost", &emulator_url),
        None,
    );
    match lambda.invoke(update, TIMEOUT).await {
        InvocationResult::Error { error_message, .. } => {
            assert!(error_message.contains("is not allowed"), "{error_message}");
        }
        other => panic!("an Update to {emulator_url} must be refused: {other:?}"),
    }
    let delete = direct_event(
        RequestType::Delete,
        world.props_with("AccountHost", &emulator_url),
        None,
    );
    match lambda.invoke(delete, TIMEOUT).await {
        InvocationResult::Response(doc) => assert_eq!(doc["Status"], "SUCCESS", "{doc:#}"),
        other => panic!("a Delete for an unusable host has nothing to delete: {other:?}"),
    }

    // DATABRICKS_HOST is held to the same rule as AccountHost.
    let runtime = RuntimeApi::start().await;
    let process = LambdaProcess::builder(&runtime)
        .env_remove("ALLOW_INSECURE_ENDPOINTS")
        .env("DATABRICKS_HOST", &emulator_url)
        .spawn();
    let env_lambda = Lambda { process, runtime };
    let event = direct_event(RequestType::Create, world.props(), None);
    match env_lambda.invoke(event, TIMEOUT).await {
        InvocationResult::Error { error_message, .. } => {
            assert!(error_message.contains("is not allowed"), "{error_message}");
        }
        other => panic!("DATABRICKS_HOST {emulator_url} must be refused: {other:?}"),
    }

    // ResponseURLs that are not https on an S3 host: the answer is never sent.
    let sink = RecordingSink::start().await;
    let local = sink.url();
    let signature = signature_of(&local);
    let query = &local[local.find('?').unwrap()..];
    let sink_port = local
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let urls = [
        local.clone(),
        format!("https://127.0.0.1:{sink_port}/bucket/key{query}"),
        format!("https://evil.example.com/bucket/key{query}"),
        format!("https://s3.amazonaws.com.evil.example.com/bucket/key{query}"),
        format!("https://s3-x-1.us-east-1.elb.amazonaws.com/bucket/key{query}"),
        format!("https://user:{password}@s3.amazonaws.com/bucket/key{query}"),
        format!("ftp://s3.amazonaws.com/bucket/key{query}"),
        // S3 presigned URLs never carry a port; this one would reach a non-S3 listener.
        format!("https://s3.amazonaws.com:444/bucket/key{query}"),
        format!("https://bucket.s3.us-east-1.amazonaws.com:8443/key{query}"),
    ];
    for url in &urls {
        let event = direct_event(
            RequestType::Create,
            world.props_with("AccountHost", &emulator_url),
            Some(url),
        );
        match lambda.invoke(event, TIMEOUT).await {
            InvocationResult::Error {
                error_type,
                error_message,
            } => {
                assert_eq!(error_type, "UnusableResponseURL", "{url}: {error_message}");
                assert!(
                    !error_message.contains(&signature) && !error_message.contains(password),
                    "{error_message}"
                );
            }
            other => panic!("ResponseURL {url} must be refused: {other:?}"),
        }
    }
    assert!(
        sink.requests().is_empty(),
        "a refused ResponseURL got a request: {:?}",
        sink.requests()
    );
    assert!(
        world.emulator.state().request_log().is_empty(),
        "a refused host got requests: {:?}",
        world.emulator.state().request_log()
    );

    let secrets = [
        world.client_secret.clone(),
        password.to_owned(),
        signature.clone(),
    ];
    audit_logs("deployed-mode Lambda", &lambda.logs(), &secrets);
    audit_logs("DATABRICKS_HOST Lambda", &env_lambda.logs(), &secrets);
    eprintln!(
        "security: {} requests for a host outside Databricks ({} AccountHost values on Create, \
         an Update, a Delete, DATABRICKS_HOST) and {} ResponseURLs outside S3: none reached them",
        hosts.len() + 3,
        hosts.len(),
        urls.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_logs_and_responses_and_databricks_messages_are_shortened() {
    let world = Secured::new().await;
    // The most verbose logging an operator can ask for: the audit covers every level.
    let lambda = Lambda::start(&[
        ("DATABRICKS_HOST", world.emulator.base_url().as_str()),
        ("RUST_LOG", "trace"),
    ])
    .await;
    let state = world.emulator.state();
    let mut signatures = Vec::new();
    let mut documents = Vec::new();

    let stack = stack_id("abuse-secrets");
    let created = through_sink(
        &lambda,
        RequestType::Create,
        (&stack, None),
        world.props(),
        &mut signatures,
    )
    .await;
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    assert!(
        created["Data"]
            .as_object()
            .is_some_and(|d| d.contains_key("PrivateAccessSettingsId")),
        "{created:#}"
    );
    documents.push(created);

    // A wrong secret is refused by the token endpoint; the reason does not repeat it.
    let wrong = through_sink(
        &lambda,
        RequestType::Create,
        (&stack_id("abuse-wrong-secret"), None),
        world.props_with("CredentialsSecretArn", &world.wrong_secret_arn),
        &mut signatures,
    )
    .await;
    assert_eq!(wrong["Status"], "FAILED", "{wrong:#}");
    assert!(
        wrong["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected the service principal credentials"),
        "{wrong:#}"
    );
    documents.push(wrong);

    // Databricks error bodies of 3 KB: JSON, plain text and HTML, on non-retryable statuses.
    let long = |tag: &str| format!("HEAD-{tag} {} TAIL-{tag}", "lorem ipsum ".repeat(256));
    let faults = [
        (
            "POST",
            "/private-access-settings",
            FaultKind::status_json(400, "INVALID_PARAMETER_VALUE", &long("json")),
            "json",
        ),
        (
            "GET",
            "/vpc-endpoints",
            FaultKind::Status {
                status: 500,
                retry_after: None,
                body: FaultBody::PlainText(format!("INTERNAL_ERROR: {}", long("text"))),
            },
            "text",
        ),
        (
            "GET",
            "/private-access-settings",
            FaultKind::Status {
                status: 403,
                retry_after: None,
                body: FaultBody::Html(format!("<html><body>{}</body></html>", long("html"))),
            },
            "html",
        ),
    ];
    for (method, path, kind, tag) in faults {
        state.inject_fault(FaultSpec::new(kind).method(method).path_contains(path));
        let failed = through_sink(
            &lambda,
            RequestType::Create,
            (&stack_id(&format!("abuse-long-{tag}")), None),
            world.props(),
            &mut signatures,
        )
        .await;
        assert_eq!(failed["Status"], "FAILED", "{failed:#}");
        let reason = failed["Reason"].as_str().unwrap_or_default();
        assert!(
            !reason.contains(&format!("TAIL-{tag}")),
            "the whole body is quoted: {reason}"
        );
        assert!(
            reason.len() < 1024,
            "{tag}: a {}-byte reason for a 3 KB body: {reason}",
            reason.len()
        );
        if tag != "html" {
            assert!(
                reason.contains(&format!("HEAD-{tag}")),
                "{tag}: Databricks' message is quoted: {reason}"
            );
        }
        documents.push(failed);
    }
    state.clear_faults();

    let deleted = through_sink(
        &lambda,
        RequestType::Delete,
        (&stack, documents[0]["PhysicalResourceId"].as_str()),
        world.props(),
        &mut signatures,
    )
    .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted:#}");
    documents.push(deleted);

    let tokens_issued = state
        .request_log()
        .iter()
        .filter(|r| r.path.contains("/oidc/") && r.status == 200)
        .count();
    assert!(
        tokens_issued >= 1,
        "the audit needs issued tokens to mean anything"
    );
    let mut secrets = vec![
        world.client_secret.clone(),
        world.wrong_client_secret.clone(),
    ];
    secrets.extend(signatures);
    for doc in &documents {
        let text = doc.to_string();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a response carries a secret: {doc:#}"
            );
        }
        assert!(!carries_token(&text), "a response carries a token: {doc:#}");
    }
    let logs = lambda.logs();
    for tag in ["json", "text", "html"] {
        assert!(
            !logs.contains(&format!("TAIL-{tag}")),
            "a whole Databricks body was logged"
        );
    }
    audit_logs("secrets Lambda", &logs, &secrets);
}

/// Sends one request from "CloudFormation" and returns the document PUT to its ResponseURL.
pub(crate) async fn through_sink(
    lambda: &Lambda,
    request_type: RequestType,
    (stack, physical_id): (&str, Option<&str>),
    props: Value,
    signatures: &mut Vec<String>,
) -> Value {
    let sink = RecordingSink::start().await;
    signatures.push(signature_of(&sink.url()));
    let event = cfn_event(
        request_type,
        stack,
        LOGICAL_ID,
        physical_id,
        props,
        None,
        Some(&sink.url()),
    );
    let answer = deliver_event(lambda, &sink, event, TIMEOUT).await;
    assert!(
        matches!(answer.invocation, InvocationResult::Response(_)),
        "{:?}\n{}",
        answer.invocation,
        lambda.logs()
    );
    assert_eq!(answer.puts.len(), 1, "exactly one PUT");
    assert!(answer.puts[0].body.len() <= MAX_RESPONSE_BYTES);
    answer.puts[0].json()
}

/// The `X-Amz-Signature` value of a presigned URL.
pub(crate) fn signature_of(url: &str) -> String {
    url.split("X-Amz-Signature=")
        .nth(1)
        .map(|rest| rest.split('&').next().unwrap_or_default().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no signature in {url}"))
}

/// No line of `logs` carries one of `secrets`, an access token, an Authorization header value
/// or a presigned query string.
#[track_caller]
pub(crate) fn audit_logs(who: &str, logs: &str, secrets: &[String]) {
    assert!(!logs.is_empty(), "{who} wrote no logs to audit");
    for (number, line) in logs.lines().enumerate() {
        for secret in secrets {
            assert!(
                !line.contains(secret.as_str()),
                "{who} log line {number} carries a secret: {line}"
            );
        }
        // What the function's redaction leaves of an echoed Authorization header is fine.
        let line = &line.replace("Bearer [REDACTED]", "");
        for marker in [
            "Bearer ",
            "access_token",
            "X-Amz-Signature",
            "X-Amz-Credential",
        ] {
            assert!(
                !line.contains(marker),
                "{who} log line {number} carries {marker}: {line}"
            );
        }
        assert!(
            !carries_token(line),
            "{who} log line {number} carries an access token: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Part 7: load
// ---------------------------------------------------------------------------------------------

const STACKS: usize = 100;
/// Lambda processes (execution environments), one per stack: all 100 Creates run at once.
const PROCESSES: usize = 100;
/// Account API and token requests the emulator admits per second; the rest get 429 with
/// `Retry-After: 1`.
const RATE_LIMIT_PER_SEC: u32 = 50;
/// Each invocation's deadline; the template gives the function 600 s.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_stacks_against_a_rate_limited_account_all_succeed_once() {
    let moto = Moto::shared();
    let setup_started = Instant::now();
    let secret = json!({"client_id": CLIENT_ID, "client_secret": format!("load{}", crate::support::random_hex(32))});
    let client_secret = secret["client_secret"].as_str().unwrap().to_owned();
    let mut created = Setup::new(REGION)
        .secret(
            &crate::support::unique_name("abuse-load"),
            &secret.to_string(),
        )
        .network(NetworkOptions::default())
        .run(moto)
        .await;
    let net = created.networks.remove(0);
    // One VPC holds every stack's pair, made in one fixture run. AWS would refuse a second
    // private-DNS endpoint to the same service in one VPC; moto does not, and the function
    // judges each pair on its own (type, state, VPC, service, private DNS), so this costs no
    // realism in what is tested.
    let mut operations = Vec::new();
    for _ in 1..STACKS {
        for service in [&net.rest_service, &net.relay_service] {
            operations.push(json!({
                "op": "endpoint",
                "vpc_id": net.vpc_id,
                "service_name": service,
                "endpoint_type": "Interface",
                "private_dns": true,
                "subnet_ids": net.subnet_ids,
                "security_group_ids": [net.endpoint_sg_id],
            }));
        }
    }
    let made = crate::support::fixtures::batch(moto, REGION, operations).await;
    let mut pairs = vec![(net.rest_vpce_id.clone(), net.relay_vpce_id.clone())];
    for pair in made.chunks(2) {
        let id = |v: &Value| v["vpce_id"].as_str().unwrap().to_owned();
        pairs.push((id(&pair[0]), id(&pair[1])));
    }
    assert_eq!(pairs.len(), STACKS);

    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![(CLIENT_ID.to_owned(), client_secret.clone())],
        rate_limit_per_sec: Some(RATE_LIMIT_PER_SEC),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let state = emulator.state();
    for (rest, relay) in &pairs {
        state.register_aws_endpoint(rest, &net.rest_service);
        state.register_aws_endpoint(relay, &net.relay_service);
    }
    let account_id = crate::support::uuid();
    let host = emulator.base_url();
    let mut lambdas = Vec::new();
    for _ in 0..PROCESSES {
        lambdas.push(Lambda::start(&[("DATABRICKS_HOST", host.as_str())]).await);
    }
    let setup = setup_started.elapsed();

    let events: Vec<(usize, Value)> = pairs
        .iter()
        .enumerate()
        .map(|(n, (rest, relay))| {
            let props = json!({
                "AccountId": account_id,
                "CredentialsSecretArn": created.secret_arns[0],
                "RestApiVpcEndpointId": rest,
                "RelayVpcEndpointId": relay,
            });
            let stack = stack_id(&format!("load-{n}"));
            (
                n,
                cfn_event(
                    RequestType::Create,
                    &stack,
                    LOGICAL_ID,
                    None,
                    props,
                    None,
                    None,
                ),
            )
        })
        .collect();
    let load_started = Instant::now();
    let per_process = events.len().div_ceil(PROCESSES);
    let runs = lambdas
        .iter()
        .zip(events.chunks(per_process))
        .map(|(lambda, share)| async move {
            let mut results = Vec::new();
            for (n, event) in share {
                let started = Instant::now();
                let result = lambda.invoke(event.clone(), LOAD_DEADLINE).await;
                results.push((*n, result, started.elapsed()));
            }
            results
        });
    let results: Vec<(usize, InvocationResult, Duration)> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let load = load_started.elapsed();

    assert_eq!(results.len(), STACKS);
    let mut failures = Vec::new();
    let mut answers = BTreeMap::new();
    for (n, result, latency) in &results {
        match result {
            InvocationResult::Response(doc) if doc["Status"] == "SUCCESS" => {
                answers.insert(*n, doc.clone());
            }
            other => failures.push(format!("stack {n} after {latency:?}: {other:?}")),
        }
        assert!(*latency < LOAD_DEADLINE, "stack {n} took {latency:?}");
    }
    assert!(
        failures.is_empty(),
        "{} stacks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Exactly one registration per endpoint and one PAS per stack, each the one it reported.
    let account = state.snapshot(&account_id);
    let registrations = &account.vpc_endpoints;
    let access_settings = &account.private_access_settings;
    assert_eq!(registrations.len(), 2 * STACKS, "registrations");
    assert_eq!(access_settings.len(), STACKS, "private access settings");
    let registered: BTreeSet<&str> = registrations
        .iter()
        .map(|r| r.aws_vpc_endpoint_id.as_str())
        .collect();
    let expected: BTreeSet<&str> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    assert_eq!(registered, expected, "each endpoint registered once");
    let registration_ids: BTreeSet<&str> = registrations
        .iter()
        .map(|r| r.vpc_endpoint_id.as_str())
        .collect();
    let pas_ids: BTreeSet<&str> = access_settings
        .iter()
        .map(|p| p.private_access_settings_id.as_str())
        .collect();
    let reported_pas: BTreeSet<&str> = answers
        .values()
        .filter_map(|doc| doc["Data"]["PrivateAccessSettingsId"].as_str())
        .collect();
    assert_eq!(reported_pas, pas_ids, "every stack reports its own PAS");
    for doc in answers.values() {
        for attribute in [
            "RestApiVpcEndpointRegistrationId",
            "RelayVpcEndpointRegistrationId",
        ] {
            let id = doc["Data"][attribute].as_str().unwrap_or_default();
            assert!(
                registration_ids.contains(id),
                "{attribute} {id} is not in the account"
            );
        }
    }

    // Throttling: every 429 was retried, nothing else was, and within the budget.
    let log = state.request_log();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    assert!(
        throttled > 0,
        "the rate limit was never reached, so this test shows nothing"
    );
    let mut retries = Vec::new();
    for lambda in &lambdas {
        retries.extend(retries_spent(&lambda.logs()));
    }
    assert_eq!(retries.len(), STACKS, "one retry count per stack");
    let total_retries: u64 = retries.iter().sum();
    assert_eq!(
        total_retries, throttled as u64,
        "the function retried {total_retries} times for {throttled} throttled requests"
    );
    let max_latency = results.iter().map(|(_, _, l)| *l).max().unwrap_or_default();
    for lambda in &lambdas {
        audit_logs(
            "load Lambda",
            &lambda.logs(),
            std::slice::from_ref(&client_secret),
        );
    }
    eprintln!(
        "load: {STACKS} stacks on {PROCESSES} processes at {RATE_LIMIT_PER_SEC} requests/s: all SUCCESS in {:.1} s \
         (setup {:.1} s); {} requests, {throttled} answered 429, retries per stack at most {}; \
         max stack latency {:.1} s of a {} s deadline",
        load.as_secs_f64(),
        setup.as_secs_f64(),
        log.len(),
        retries.iter().max().unwrap_or(&0),
        max_latency.as_secs_f64(),
        LOAD_DEADLINE.as_secs()
    );
}

/// The per-invocation `retries` the function logs after converging.
fn retries_spent(logs: &str) -> Vec<u64> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "Databricks account API retries spent")
        .filter_map(|line| line["fields"]["retries"].as_u64())
        .collect()
}
