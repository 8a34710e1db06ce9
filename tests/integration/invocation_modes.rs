//! The ways the function is invoked, through the real binary: the request files users run by
//! hand (`events/`) answered over a presigned ResponseURL, `sam local invoke` (the response is
//! printed, nothing is PUT), a direct invocation by a pipeline (no ResponseURL: the response
//! document is the invocation's result), payloads that are not events, a ResponseURL outside S3,
//! and the deadline guard.
//!
//! It owns what the files in `events/` must look like and what each must do; the harness knows
//! nothing of them. The files carry placeholder ids; the tests put a world's moto and emulator ids
//! in their place and leave everything else as written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backend_privatelink::cfn::{GUARD_MARGIN, parse_event};
use backend_privatelink::resource::testing::{self as properties, Defaults, Identity};
use emulator::{Emulator, EmulatorConfig, FaultKind, FaultSpec, PrivateAccessLevel};
use serde_json::{Value, json};

use crate::scenario::{Answer, REGION, TIMEOUT, World, WorldOptions};
use crate::support::fixtures::{self, ResponseSink, Setup};
use crate::support::lambda::{Lambda, LambdaProcess};
use crate::support::runtime::{InvocationResult, RuntimeApi};
use crate::support::sink::RecordingSink;

// The placeholders of the files in events/: syntactically valid, so the function gets past
// property validation with them (`sam local invoke -e events/create.json`).
const ACCOUNT: &str = "0d3f7c1e-2b4a-4c5d-9e8f-1a2b3c4d5e6f";
const SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:databricks-backend-privatelink-sp-AbCdEf";
const REST: &str = "vpce-0a1b2c3d4e5f60718";
const RELAY: &str = "vpce-0f1e2d3c4b5a69788";
/// The relay endpoint `update-replacement.json` moves to.
const NEW_RELAY: &str = "vpce-09a8b7c6d5e4f3021";
/// SAM's sample ResponseURL (`docs/cloudformation.md#sam-local-invoke`): never reachable, so only
/// SAM local can use it.
const SAM_RESPONSE_URL: &str = "http://pre-signed-S3-url-for-response";
const RESOURCE_TYPE: &str = "Custom::DatabricksBackendPrivateLink";

/// What the function prints under `AWS_SAM_LOCAL` in front of the response document.
const SAM_LOCAL_PREFIX: &str = "CloudFormation response (AWS_SAM_LOCAL, not sent): ";

/// The request files and the request type each must carry; with `env.json`, everything that
/// `events/` may hold, so a new file there without a test here fails.
const REQUEST_FILES: [(&str, &str); 7] = [
    ("create.json", "Create"),
    ("update.json", "Update"),
    ("update-replacement.json", "Update"),
    ("delete.json", "Delete"),
    ("direct-invoke.json", "Create"),
    ("direct-update.json", "Update"),
    ("direct-delete.json", "Delete"),
];
/// The files a pipeline sends (`docs/direct-invocation.md`): no ResponseURL, only the fields the
/// page calls required.
const DIRECT_FILES: [&str; 3] = [
    "direct-invoke.json",
    "direct-update.json",
    "direct-delete.json",
];
const ENV_FILE: &str = "env.json";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn load(name: &str) -> Value {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading events/{name}: {error}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("events/{name} is not valid JSON: {error}"))
}

/// Every string equal to a placeholder is replaced, at any depth; nothing else changes.
fn substitute(value: Value, pairs: &[(&str, &str)]) -> Value {
    match value {
        Value::String(text) => match pairs.iter().find(|(from, _)| *from == text) {
            Some((_, to)) => Value::String((*to).to_owned()),
            None => Value::String(text),
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| substitute(item, pairs))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, item)| (key, substitute(item, pairs)))
                .collect(),
        ),
        other => other,
    }
}

/// `name` from events/ with the world's account, secret and endpoints in place of the
/// placeholders, and `extra` replacements (a ResponseURL, a new endpoint).
fn event_for(world: &World, name: &str, extra: &[(&str, &str)]) -> Value {
    let net = &world.networks[0];
    let mut pairs = vec![
        (ACCOUNT, world.account_id.as_str()),
        (SECRET, world.secret_arn.as_str()),
        (REST, net.rest_vpce_id.as_str()),
        (RELAY, net.relay_vpce_id.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let event = substitute(load(name), &pairs);
    let text = event.to_string();
    for placeholder in [ACCOUNT, SECRET, REST, RELAY, NEW_RELAY] {
        assert!(
            !text.contains(placeholder),
            "events/{name}: {placeholder} was not replaced by a real id"
        );
    }
    event
}

fn world_options() -> WorldOptions {
    WorldOptions::default()
}

/// Invokes through the Runtime API and reads what was PUT to the presigned URL; the invocation
/// itself must return that same document.
async fn play(world: &World, name: &str, event: Value, sink: &ResponseSink) -> Answer {
    let invocation = world.lambda.invoke(event, TIMEOUT).await;
    let response = sink.wait(Duration::from_secs(5)).await.unwrap_or_else(|| {
        panic!(
            "nothing was PUT for events/{name} ({invocation:?}); logs:\n{}",
            world.lambda.logs()
        )
    });
    assert_eq!(
        invocation,
        InvocationResult::Response(response.clone()),
        "events/{name}: the invocation returns what CloudFormation was sent"
    );
    Answer::delivered(invocation, response)
}

fn file_physical_id() -> String {
    load("update.json")["PhysicalResourceId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn pas_level(world: &World) -> PrivateAccessLevel {
    world.access_settings()[0].private_access_level
}

/// Whether any scalar anywhere in `value` is not a string (CloudFormation sends every scalar as
/// one, `docs/cloudformation.md#request`); returns the path of the first.
fn non_string_scalar(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(_) => None,
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| non_string_scalar(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(key, item)| non_string_scalar(item, &format!("{path}.{key}"))),
        _ => Some(path.to_owned()),
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn every_event_file_has_cloudformations_shape_and_passes_property_validation() {
    let present: BTreeSet<String> = std::fs::read_dir(events_dir())
        .expect("events/ exists at the repository root")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected: BTreeSet<String> = REQUEST_FILES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    expected.insert(ENV_FILE.to_owned());
    assert_eq!(
        present, expected,
        "every file in events/ is played by a test in this module"
    );

    let physical_id = file_physical_id();
    for (name, request_type) in REQUEST_FILES {
        let event = load(name);
        let fields = event
            .as_object()
            .unwrap_or_else(|| panic!("events/{name} is not a JSON object"));
        let direct = DIRECT_FILES.contains(&name);
        let mut want = vec![
            "RequestType",
            "StackId",
            "LogicalResourceId",
            "ResourceProperties",
        ];
        if !direct {
            want.extend(["ServiceToken", "ResponseURL", "RequestId", "ResourceType"]);
            if request_type != "Create" {
                want.push("PhysicalResourceId");
            }
            if request_type == "Update" {
                want.push("OldResourceProperties");
            }
        }
        let mut want: Vec<String> = want.into_iter().map(str::to_owned).collect();
        want.sort();
        let mut keys: Vec<String> = fields.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, want, "events/{name}: the fields CloudFormation sends");

        assert_eq!(event["RequestType"], request_type, "events/{name}");
        assert_eq!(event["LogicalResourceId"], "PrivateLink", "events/{name}");
        if !direct {
            assert_eq!(event["ResourceType"], RESOURCE_TYPE, "events/{name}");
            assert!(
                is_uuid(event["RequestId"].as_str().unwrap_or_default()),
                "events/{name}: RequestId is a UUID"
            );
            // A pipeline may send plain JSON booleans and numbers; CloudFormation never does.
            if let Some(path) = non_string_scalar(&event, name) {
                panic!("{path} is not a string: CloudFormation sends every scalar as a string");
            }
            let stack_id = event["StackId"].as_str().unwrap_or_default();
            assert!(
                stack_id.starts_with("arn:aws:cloudformation:us-east-1:123456789012:stack/"),
                "events/{name}: {stack_id}"
            );
            assert_eq!(event["ResponseURL"], SAM_RESPONSE_URL, "events/{name}");
            let token = event["ServiceToken"].as_str().unwrap_or_default();
            assert!(
                token.starts_with("arn:aws:lambda:us-east-1:123456789012:function:"),
                "events/{name}: the ServiceToken is a Lambda in the stack's region: {token}"
            );
            assert_eq!(
                event["ResourceProperties"]["ServiceToken"], token,
                "events/{name}: ServiceToken is repeated in ResourceProperties"
            );
        }
        if request_type != "Create" && !direct {
            assert_eq!(
                event["PhysicalResourceId"], physical_id,
                "events/{name}: every request of the stack names the same resource"
            );
        }

        // What the binary does first with each file: read the event, then the properties.
        let request = parse_event(&event).unwrap_or_else(|error| panic!("events/{name}: {error}"));
        let defaults = Defaults {
            aws_region: Some(REGION.to_owned()),
            ..Defaults::default()
        };
        let identity = Identity {
            stack_name: request.stack_name(),
            logical_resource_id: &request.logical_resource_id,
        };
        if direct && request_type == "Delete" {
            // A Delete reads only where the account is and how to sign in.
            let target = properties::parse_lenient(&request.resource_properties, &defaults);
            assert_eq!(target.account_id.as_deref(), Some(ACCOUNT), "events/{name}");
            assert_eq!(
                target.credentials_secret_arn.as_deref(),
                Some(SECRET),
                "events/{name}"
            );
            continue;
        }
        for props in [
            Some(&request.resource_properties),
            request.old_resource_properties.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            properties::parse(props, &defaults, &identity)
                .unwrap_or_else(|error| panic!("events/{name}: {error}"));
        }
    }
    let pipeline = load("direct-invoke.json");
    for name in DIRECT_FILES {
        let event = load(name);
        assert_eq!(event["StackId"], pipeline["StackId"], "events/{name}");
        assert_eq!(
            event["ResourceProperties"]["AccountId"], pipeline["ResourceProperties"]["AccountId"],
            "events/{name}"
        );
    }

    let create = load("create.json");
    let update = load("update.json");
    let mut level_changed = create["ResourceProperties"].clone();
    level_changed["PrivateAccessLevel"] = json!("ENDPOINT");
    assert_eq!(update["ResourceProperties"], level_changed);
    assert_eq!(
        update["OldResourceProperties"],
        create["ResourceProperties"]
    );
    let replacement = load("update-replacement.json");
    let mut relay_changed = create["ResourceProperties"].clone();
    relay_changed["RelayVpcEndpointId"] = json!(NEW_RELAY);
    assert_eq!(replacement["ResourceProperties"], relay_changed);
    assert_eq!(
        replacement["OldResourceProperties"],
        create["ResourceProperties"]
    );
    assert_eq!(
        load("delete.json")["ResourceProperties"],
        create["ResourceProperties"]
    );
    assert_eq!(create["StackId"], update["StackId"]);
    assert_eq!(create["StackId"], replacement["StackId"]);
    assert_eq!(create["StackId"], load("delete.json")["StackId"]);

    // `sam local invoke --env-vars events/env.json`: {"<function logical id>": {"NAME": "value"}}.
    let env = load(ENV_FILE);
    let functions = env.as_object().expect("env.json is a JSON object");
    assert_eq!(
        functions.keys().collect::<Vec<_>>(),
        vec!["Function"],
        "env.json is keyed by the template's function"
    );
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
            .expect("template.yaml at the repository root");
    assert!(
        template.contains("\n  Function:\n    Type: AWS::Serverless::Function\n"),
        "template.yaml has a function with the logical id Function"
    );
    let variables = functions["Function"]
        .as_object()
        .expect("env.json's Function is an object of variables");
    for (name, value) in variables {
        assert!(value.is_string(), "env.json {name} must be a string");
    }
    for name in ["DATABRICKS_HOST", "AWS_ENDPOINT_URL"] {
        let url = variables[name].as_str().unwrap_or_default();
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("env.json {name}: {e}"));
        assert_eq!(parsed.scheme(), "http", "env.json {name}: local stand-ins");
        assert!(parsed.port().is_some(), "env.json {name} names a port");
    }
    assert_eq!(variables["ALLOW_INSECURE_ENDPOINTS"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_files_play_a_lifecycle_answered_over_presigned_response_urls() {
    let world = World::with(world_options()).await;
    let net = &world.networks[0];
    let (sinks, new_relay) = tokio::join!(
        async {
            Setup::new(REGION)
                .response_url()
                .response_url()
                .response_url()
                .response_url()
                .run(world.moto)
                .await
                .response_sinks
        },
        net.create_endpoint(world.moto, &net.relay_service, true),
    );
    world
        .emulator
        .state()
        .register_aws_endpoint(&new_relay, &net.relay_service);

    let created = play(
        &world,
        "create.json",
        event_for(&world, "create.json", &[(SAM_RESPONSE_URL, sinks[0].url())]),
        &sinks[0],
    )
    .await;
    created.assert_success();
    assert_eq!(
        created.physical_id(),
        file_physical_id(),
        "Create answers with the PhysicalResourceId the Update and Delete files carry"
    );
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &created);
    assert_eq!(pas_level(&world), PrivateAccessLevel::Account);

    let updated = play(
        &world,
        "update.json",
        event_for(&world, "update.json", &[(SAM_RESPONSE_URL, sinks[1].url())]),
        &sinks[1],
    )
    .await;
    updated.assert_success();
    assert_eq!(updated.physical_id(), created.physical_id());
    assert_eq!(
        updated.data("PrivateAccessSettingsId"),
        created.data("PrivateAccessSettingsId"),
        "the access settings are replaced in place"
    );
    assert_eq!(pas_level(&world), PrivateAccessLevel::Endpoint);
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &updated);

    let replaced = play(
        &world,
        "update-replacement.json",
        event_for(
            &world,
            "update-replacement.json",
            &[(SAM_RESPONSE_URL, sinks[2].url()), (NEW_RELAY, &new_relay)],
        ),
        &sinks[2],
    )
    .await;
    replaced.assert_success();
    assert_eq!(
        replaced.physical_id(),
        created.physical_id(),
        "a new relay endpoint is converged in place: CloudFormation must not see a replacement"
    );
    assert_eq!(
        replaced.data("RestApiVpcEndpointRegistrationId"),
        created.data("RestApiVpcEndpointRegistrationId")
    );
    assert_ne!(
        replaced.data("RelayVpcEndpointRegistrationId"),
        created.data("RelayVpcEndpointRegistrationId")
    );
    assert_eq!(
        replaced.data("PrivateAccessSettingsId"),
        created.data("PrivateAccessSettingsId")
    );
    world.assert_exactly(&[&net.rest_vpce_id, &new_relay], &replaced);

    let deleted = play(
        &world,
        "delete.json",
        event_for(&world, "delete.json", &[(SAM_RESPONSE_URL, sinks[3].url())]),
        &sinks[3],
    )
    .await;
    deleted.assert_success();
    assert_eq!(deleted.physical_id(), created.physical_id());
    assert!(
        world.registrations().is_empty() && world.access_settings().is_empty(),
        "Delete leaves the account empty: {:#}",
        world.account()
    );
}

/// The response documents printed so far, in order.
fn printed_responses(lambda: &Lambda) -> Vec<Value> {
    lambda
        .logs()
        .lines()
        .filter_map(|line| line.strip_prefix(SAM_LOCAL_PREFIX))
        .map(|json| {
            serde_json::from_str(json).unwrap_or_else(|error| {
                panic!("the printed response is not JSON ({error}): {json}")
            })
        })
        .collect()
}

/// Waits for the response printed after `seen` earlier ones; the files reuse RequestIds, so the
/// order tells the responses apart.
async fn next_printed(lambda: &Lambda, seen: usize) -> Value {
    assert!(
        lambda
            .wait_for_log(SAM_LOCAL_PREFIX, Duration::from_secs(10))
            .await,
        "nothing printed; logs:\n{}",
        lambda.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let printed = printed_responses(lambda);
        if printed.len() > seen {
            assert_eq!(
                printed.len(),
                seen + 1,
                "one response per request: {printed:#?}"
            );
            return printed[seen].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no response printed after the first {seen}; logs:\n{}",
            lambda.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sam_local_the_response_is_printed_and_never_put() {
    let world = World::with(world_options()).await;
    let net = &world.networks[0];
    let host = world.emulator.base_url();
    let sam = Lambda::start(&[
        ("DATABRICKS_HOST", host.as_str()),
        ("AWS_SAM_LOCAL", "true"),
    ])
    .await;

    // The file as shipped: its placeholder ids pass property validation and fail only where
    // they are looked up, which is what `sam local invoke -e events/create.json` shows first.
    let verbatim = load("create.json");
    let result = sam.invoke(verbatim, TIMEOUT).await;
    let printed = next_printed(&sam, 0).await;
    assert_eq!(result, InvocationResult::Response(printed.clone()));
    assert_eq!(printed["Status"], "FAILED", "{printed:#}");
    let reason = printed["Reason"].as_str().unwrap_or_default();
    assert!(!reason.starts_with("Invalid properties"), "{reason}");
    // The endpoints and the secret are looked up at once; the reason names whichever lookup
    // failed first.
    assert!(
        reason.contains("does not exist") && (reason.contains(REST) || reason.contains(SECRET)),
        "{reason}"
    );
    assert!(
        world.emulator.state().request_log().is_empty(),
        "nothing reaches Databricks before the endpoints are found"
    );

    // With real ids and SAM's ResponseURL: the work is done and the answer printed.
    let create = event_for(&world, "create.json", &[]);
    assert_eq!(create["ResponseURL"], SAM_RESPONSE_URL);
    let result = sam.invoke(create, TIMEOUT).await;
    let printed = next_printed(&sam, 1).await;
    assert_eq!(printed["Status"], "SUCCESS", "{printed:#}");
    assert_eq!(printed["PhysicalResourceId"], file_physical_id());
    let answer = Answer::delivered(result, printed.clone());
    assert_eq!(answer.invocation, InvocationResult::Response(printed));
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &answer);

    // A reachable ResponseURL changes nothing: under SAM local it is never called.
    let sink = RecordingSink::start().await;
    let delete = event_for(&world, "delete.json", &[(SAM_RESPONSE_URL, &sink.url())]);
    let result = sam.invoke(delete, TIMEOUT).await;
    let printed = next_printed(&sam, 2).await;
    assert_eq!(result, InvocationResult::Response(printed.clone()));
    assert_eq!(printed["Status"], "SUCCESS", "{printed:#}");
    assert!(
        world.registrations().is_empty() && world.access_settings().is_empty(),
        "the Delete was carried out: {:#}",
        world.account()
    );
    let puts = sink.wait_for(1, Duration::from_secs(2)).await;
    assert!(
        puts.is_empty(),
        "no request may reach the ResponseURL: {puts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invocation_returns_the_response_or_fails_with_the_reason() {
    let world = World::with(world_options()).await;
    let net = &world.networks[0];

    let event = event_for(&world, "direct-invoke.json", &[]);
    assert!(event.get("ResponseURL").is_none());
    let result = world.lambda.invoke(event.clone(), TIMEOUT).await;
    let InvocationResult::Response(doc) = &result else {
        panic!(
            "a successful direct invocation returns the response document: {result:?}\n{}",
            world.lambda.logs()
        );
    };
    assert_eq!(doc["Status"], "SUCCESS", "{doc:#}");
    assert_eq!(doc["StackId"], event["StackId"]);
    assert_eq!(doc["RequestId"], event["RequestId"]);
    assert!(
        doc["PhysicalResourceId"]
            .as_str()
            .unwrap_or_default()
            .starts_with("databricks-backend-privatelink-"),
        "{doc:#}"
    );
    let answer = Answer::delivered(result.clone(), doc.clone());
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &answer);
    let names: Vec<String> = world
        .registrations()
        .iter()
        .map(|r| r.vpc_endpoint_name.clone())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("account-vending-123456789012-us-east-1-PrivateLink-")),
        "the pipeline's StackId names the objects: {names:?}"
    );

    // A FAILED outcome fails the invocation, so the pipeline step fails with the reason.
    let writes = world.writes();
    let mut refused = event.clone();
    refused["ResourceProperties"]["PublicAccessEnabled"] = json!("false");
    match world.lambda.invoke(refused, TIMEOUT).await {
        InvocationResult::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "CustomResourceFailed");
            assert!(
                error_message.contains("PublicAccessEnabled=false would lock users out"),
                "{error_message}"
            );
        }
        other => panic!("a FAILED direct invocation is a function error: {other:?}"),
    }
    assert_eq!(world.writes(), writes, "a refused request writes nothing");
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &answer);

    // The same pipeline tears it down with RequestType Delete.
    let mut delete = event.clone();
    delete["RequestType"] = json!("Delete");
    delete["PhysicalResourceId"] = doc["PhysicalResourceId"].clone();
    let InvocationResult::Response(deleted) = world.lambda.invoke(delete, TIMEOUT).await else {
        panic!("the direct Delete returns its response document");
    };
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted:#}");
    assert!(
        world.registrations().is_empty() && world.access_settings().is_empty(),
        "{:#}",
        world.account()
    );
}

/// What `docs/direct-invocation.md` shows a pipeline: its JSON examples in order (each request
/// file followed by its answer) and the first column of each of its tables, by the heading above.
struct DirectInvocationPage {
    /// Every ```json block, with the `events/...` file named in the line before it, if any.
    examples: Vec<(Option<String>, Value)>,
    /// `(heading, first header cell, first cells of the rows)` of each table.
    tables: Vec<(String, String, Vec<String>)>,
}

impl DirectInvocationPage {
    fn read() -> DirectInvocationPage {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/direct-invocation.md");
        let text = std::fs::read_to_string(&path).expect("docs/direct-invocation.md exists");
        let lines: Vec<&str> = text.lines().collect();
        let mut page = DirectInvocationPage {
            examples: Vec::new(),
            tables: Vec::new(),
        };
        let mut heading = String::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if let Some(title) = line.strip_prefix("## ") {
                heading = title.trim().to_owned();
            }
            if line.trim() == "```json" {
                // The paragraph right above the block names the file it shows, if any.
                let paragraph: Vec<&str> = lines[..i]
                    .iter()
                    .rev()
                    .skip_while(|l| l.trim().is_empty())
                    .take_while(|l| !l.trim().is_empty())
                    .copied()
                    .collect();
                let named = paragraph
                    .iter()
                    .rev()
                    .flat_map(|l| l.split('`'))
                    .find(|part| part.starts_with("events/"))
                    .map(str::to_owned);
                let end = (i + 1..lines.len())
                    .find(|&j| lines[j].trim() == "```")
                    .expect("every ```json block is closed");
                let block = lines[i + 1..end].join("\n");
                let value = serde_json::from_str(&block).unwrap_or_else(|error| {
                    panic!(
                        "docs/direct-invocation.md: a JSON example is not JSON ({error}):\n{block}"
                    )
                });
                page.examples.push((named, value));
                i = end + 1;
                continue;
            }
            if line.starts_with('|') {
                let end = (i..lines.len())
                    .find(|&j| !lines[j].starts_with('|'))
                    .unwrap_or(lines.len());
                let cells = |row: &str| -> Vec<String> {
                    row.trim()
                        .trim_matches('|')
                        .split('|')
                        .map(|c| c.trim().replace('`', ""))
                        .collect()
                };
                let header = cells(lines[i]);
                let rows = lines[i + 2..end]
                    .iter()
                    .map(|row| cells(row)[0].clone())
                    .collect();
                page.tables.push((heading.clone(), header[0].clone(), rows));
                i = end;
                continue;
            }
            i += 1;
        }
        page
    }

    /// The first column of the table under `heading` whose first header cell is `header`.
    fn column(&self, heading: &str, header: &str) -> Vec<String> {
        self.tables
            .iter()
            .find(|(h, first, _)| h == heading && first == header)
            .map(|(_, _, rows)| rows.clone())
            .unwrap_or_else(|| {
                panic!("docs/direct-invocation.md has no {header} table under {heading}")
            })
    }

    /// The request the page shows as `events/<name>`, and the answer it shows right after it.
    fn example(&self, name: &str) -> (Value, Option<Value>) {
        let file = format!("events/{name}");
        let at = self
            .examples
            .iter()
            .position(|(named, _)| named.as_deref() == Some(file.as_str()))
            .unwrap_or_else(|| panic!("docs/direct-invocation.md shows no {file}"));
        let answer = self
            .examples
            .get(at + 1)
            .filter(|(named, value)| named.is_none() && value.get("Status").is_some())
            .map(|(_, value)| value.clone());
        (self.examples[at].1.clone(), answer)
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

/// A pipeline written from `docs/direct-invocation.md` alone: the page's examples are the files in
/// `events/`, and their answers through the binary have the keys the page's tables and examples
/// promise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_written_from_the_direct_invocation_page_creates_updates_and_deletes() {
    let page = DirectInvocationPage::read();
    let top_level = page.column("Output", "Key");
    let data_keys = page.column("Output", "Data key");
    let error_types = page.column("Errors", "errorType");
    let required: Vec<String> = page.column("Request", "Field");
    for name in DIRECT_FILES {
        let (shown, _) = page.example(name);
        assert_eq!(
            shown,
            load(name),
            "docs/direct-invocation.md shows events/{name} as it is"
        );
        for field in keys(&shown) {
            assert!(
                required.contains(&field),
                "events/{name}: {field} is not in the page's Request table"
            );
        }
    }

    let world = World::with(world_options()).await;
    let net = &world.networks[0];
    let direct = |doc: InvocationResult, name: &str| -> Value {
        match doc {
            InvocationResult::Response(doc) => doc,
            other => panic!("events/{name}: {other:?}\n{}", world.lambda.logs()),
        }
    };
    let check_keys = |doc: &Value, shown: &Option<Value>, name: &str| {
        let shown = shown.as_ref().unwrap_or_else(|| {
            panic!("docs/direct-invocation.md shows no answer after events/{name}")
        });
        assert_eq!(
            keys(doc),
            keys(shown),
            "events/{name}: the answer has the keys the page shows: {doc:#}"
        );
        assert_eq!(
            keys(&doc["Data"]),
            keys(&shown["Data"]),
            "events/{name}: {doc:#}"
        );
        for key in keys(doc) {
            assert!(
                top_level.contains(&key),
                "{key} is not in the page's Output table"
            );
        }
        for key in keys(&doc["Data"]) {
            assert!(
                data_keys.contains(&key),
                "{key} is not in the page's Data table"
            );
        }
        assert_eq!(doc["StackId"], shown["StackId"]);
        assert_eq!(doc["LogicalResourceId"], shown["LogicalResourceId"]);
    };

    let (_, create_answer) = page.example("direct-invoke.json");
    let created = direct(
        world
            .lambda
            .invoke(event_for(&world, "direct-invoke.json", &[]), TIMEOUT)
            .await,
        "direct-invoke.json",
    );
    assert_eq!(created["Status"], "SUCCESS", "{created:#}");
    check_keys(&created, &create_answer, "direct-invoke.json");
    let answer = Answer::delivered(InvocationResult::Response(created.clone()), created.clone());
    world.assert_exactly(&[&net.rest_vpce_id, &net.relay_vpce_id], &answer);
    assert_eq!(pas_level(&world), PrivateAccessLevel::Account);

    // "Its answer has the same keys and the same PhysicalResourceId".
    let updated = direct(
        world
            .lambda
            .invoke(event_for(&world, "direct-update.json", &[]), TIMEOUT)
            .await,
        "direct-update.json",
    );
    assert_eq!(updated["Status"], "SUCCESS", "{updated:#}");
    check_keys(&updated, &create_answer, "direct-update.json");
    assert_eq!(updated["PhysicalResourceId"], created["PhysicalResourceId"]);
    assert_eq!(
        updated["Data"]["PrivateAccessSettingsId"],
        created["Data"]["PrivateAccessSettingsId"]
    );
    assert_eq!(pas_level(&world), PrivateAccessLevel::Endpoint);

    // The page's failure example, through the same Create.
    let mut refused = event_for(&world, "direct-invoke.json", &[]);
    refused["ResourceProperties"]["PublicAccessEnabled"] = json!("false");
    match world.lambda.invoke(refused, TIMEOUT).await {
        InvocationResult::Error { error_type, .. } => {
            assert!(
                error_types.contains(&error_type),
                "{error_type} is not in the page's Errors table"
            );
            assert_eq!(error_type, "CustomResourceFailed");
        }
        other => panic!("a refused Create fails the invocation: {other:?}"),
    }
    match world
        .lambda
        .invoke(json!({"RequestType": "Create"}), TIMEOUT)
        .await
    {
        InvocationResult::Error { error_type, .. } => {
            assert!(
                error_types.contains(&error_type),
                "{error_type} is not in the page's Errors table"
            );
        }
        other => panic!("an event without StackId fails the invocation: {other:?}"),
    }

    let (_, delete_answer) = page.example("direct-delete.json");
    let deleted = direct(
        world
            .lambda
            .invoke(event_for(&world, "direct-delete.json", &[]), TIMEOUT)
            .await,
        "direct-delete.json",
    );
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted:#}");
    check_keys(&deleted, &delete_answer, "direct-delete.json");
    assert_eq!(deleted["PhysicalResourceId"], created["PhysicalResourceId"]);
    assert!(
        world.registrations().is_empty() && world.access_settings().is_empty(),
        "{:#}",
        world.account()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_are_not_events_fail_the_invocation_and_write_nothing() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let lambda = Lambda::start(&[("DATABRICKS_HOST", emulator.base_url().as_str())]).await;
    let cases = [
        (json!({"hello": "world"}), "the event has no RequestType"),
        (json!([]), "the event is a list, not a JSON object"),
        (json!("text"), "the event is a string, not a JSON object"),
    ];
    for (payload, expected) in cases {
        match lambda.invoke(payload.clone(), TIMEOUT).await {
            InvocationResult::Error {
                error_type,
                error_message,
            } => {
                assert_eq!(error_type, "InvalidEvent", "{payload}");
                assert!(
                    error_message.contains(expected),
                    "{payload}: {error_message}"
                );
                assert!(
                    error_message.contains("CloudFormation custom-resource event"),
                    "{payload}: {error_message}"
                );
            }
            other => panic!("{payload} must fail the invocation: {other:?}"),
        }
    }
    assert!(
        emulator.state().request_log().is_empty(),
        "{:?}",
        emulator.state().request_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_url_outside_s3_is_refused_without_logging_its_signature() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let runtime = RuntimeApi::start().await;
    let process = LambdaProcess::builder(&runtime)
        .env("DATABRICKS_HOST", emulator.base_url())
        .env_remove("ALLOW_INSECURE_ENDPOINTS")
        .spawn();
    let lambda = Lambda { process, runtime };

    let signature = "c0ffee5ecre7519na7ure0000deadbeef";
    let url = format!("https://evil.example.com/x?X-Amz-Signature={signature}");
    let event = substitute(load("create.json"), &[(SAM_RESPONSE_URL, &url)]);
    match lambda.invoke(event, TIMEOUT).await {
        InvocationResult::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "UnusableResponseURL");
            assert!(
                error_message.contains("evil.example.com")
                    && error_message.contains("not an Amazon S3 endpoint"),
                "{error_message}"
            );
            assert!(!error_message.contains(signature), "{error_message}");
        }
        other => panic!("an unusable ResponseURL fails the invocation: {other:?}"),
    }
    assert!(
        lambda
            .wait_for_log("evil.example.com", Duration::from_secs(5))
            .await,
        "the log names the refused host:\n{}",
        lambda.logs()
    );
    let logs = lambda.logs();
    assert!(!logs.contains(signature), "{logs}");
    assert!(!logs.contains("X-Amz-Signature"), "{logs}");
    assert!(emulator.state().request_log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_databricks_api_gets_cloudformation_failed_before_the_deadline() {
    // Short, but long enough for the checks before registration on a busy machine.
    const DEADLINE: Duration = Duration::from_secs(10);
    let world = World::with(world_options()).await;
    let (url, sink) = fixtures::response_url(world.moto).await;
    world.emulator.state().inject_fault(
        FaultSpec::new(FaultKind::Hang)
            .method("POST")
            .path_contains("/vpc-endpoints")
            .times(10),
    );

    let event = event_for(&world, "create.json", &[(SAM_RESPONSE_URL, &url)]);
    let started = Instant::now();
    let result = world.lambda.invoke(event, DEADLINE).await;
    let elapsed = started.elapsed();
    let InvocationResult::Response(returned) = &result else {
        panic!(
            "the invocation returns once CloudFormation is answered: {result:?}\n{}",
            world.lambda.logs()
        );
    };
    assert!(
        elapsed < DEADLINE,
        "returned after {elapsed:?}, past the {DEADLINE:?} deadline"
    );
    assert!(
        elapsed + Duration::from_secs(1) >= DEADLINE - GUARD_MARGIN,
        "returned after {elapsed:?}: the answer should come from the deadline guard"
    );
    let response = sink
        .fetch()
        .await
        .expect("FAILED was PUT before the invocation returned");
    assert_eq!(&response, returned);
    assert_eq!(response["Status"], "FAILED", "{response:#}");
    assert_eq!(response["PhysicalResourceId"], file_physical_id());
    let reason = response["Reason"].as_str().unwrap_or_default();
    // The guard names the step; if the request's own timeout (bounded by the same instant)
    // lands first, the reason names the registration call instead.
    assert!(
        reason.contains("timed out while registering the two VPC endpoints")
            || reason.contains("create VPC endpoint registration did not succeed before the"),
        "{reason}"
    );
    assert!(world.registrations().is_empty(), "{:#}", world.account());
    assert!(world.access_settings().is_empty(), "{:#}", world.account());
}
