//! CloudFormation custom-resource events as CloudFormation sends them to the Lambda.
//! It owns the event shape (`docs/cloudformation.md#request`); it
//! must not know which properties the resource accepts.

use serde_json::{Map, Value, json};

use super::runtime::{ACCOUNT_ID, FUNCTION_NAME};

pub const RESOURCE_TYPE: &str = "Custom::DatabricksBackendPrivateLink";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

impl RequestType {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Create => "Create",
            RequestType::Update => "Update",
            RequestType::Delete => "Delete",
        }
    }
}

/// A stack ARN in us-east-1, unique per call like a real stack's.
pub fn stack_id(name: &str) -> String {
    stack_id_in("us-east-1", name)
}

pub fn stack_id_in(region: &str, name: &str) -> String {
    format!(
        "arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{name}/{}",
        super::uuid()
    )
}

/// The Lambda ARN a template passes as `ServiceToken`: always in the stack's region.
pub fn service_token(region: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{FUNCTION_NAME}")
}

/// A CloudFormation request event.
///
/// `props` and `old_props` are the template properties (a JSON object). Like
/// CloudFormation, this turns every scalar into a string (`true` → `"true"`, `14` →
/// `"14"`; `docs/cloudformation.md#request`) and adds `ServiceToken` to them. `physical_id` belongs to
/// Update and Delete, `old_props` to Update; they are added when given, whatever the
/// request type, so tests can also send malformed events. Without `response_url` the
/// event has no `ResponseURL`, like a direct invocation that is not from CloudFormation.
pub fn cfn_event(
    request_type: RequestType,
    stack_id: &str,
    logical_id: &str,
    physical_id: Option<&str>,
    props: Value,
    old_props: Option<Value>,
    response_url: Option<&str>,
) -> Value {
    let region = stack_id.split(':').nth(3).unwrap_or("us-east-1");
    let token = service_token(region);
    let mut event = Map::new();
    event.insert("RequestType".into(), json!(request_type.as_str()));
    event.insert("ServiceToken".into(), json!(token));
    if let Some(url) = response_url {
        event.insert("ResponseURL".into(), json!(url));
    }
    event.insert("StackId".into(), json!(stack_id));
    event.insert("RequestId".into(), json!(super::uuid()));
    event.insert("LogicalResourceId".into(), json!(logical_id));
    event.insert("ResourceType".into(), json!(RESOURCE_TYPE));
    if let Some(physical_id) = physical_id {
        event.insert("PhysicalResourceId".into(), json!(physical_id));
    }
    event.insert(
        "ResourceProperties".into(),
        template_properties(props, &token),
    );
    if let Some(old_props) = old_props {
        // (inference) The old properties were the template's properties too, ServiceToken
        // included, so they get the same treatment.
        event.insert(
            "OldResourceProperties".into(),
            template_properties(old_props, &token),
        );
    }
    Value::Object(event)
}

/// The properties as CloudFormation passes them: scalars stringified, and `ServiceToken`
/// included, as in the Lambda documentation's example event (`docs/cloudformation.md#request`).
fn template_properties(props: Value, token: &str) -> Value {
    let Value::Object(mut props) = stringify_scalars(props) else {
        panic!("resource properties must be a JSON object");
    };
    props.insert("ServiceToken".into(), json!(token));
    Value::Object(props)
}

/// Numbers and booleans become strings at any depth; `null`, strings, lists and maps keep
/// their shape.
pub fn stringify_scalars(value: Value) -> Value {
    match value {
        Value::Bool(flag) => Value::String(flag.to_string()),
        Value::Number(number) => Value::String(number.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(stringify_scalars).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key, stringify_scalars(value)))
                .collect(),
        ),
        other => other,
    }
}
