//! The invocation event: a CloudFormation custom-resource request, or the same shape without a
//! `ResponseURL` when a pipeline invokes the function directly.
//!
//! Parsing is done by hand on `serde_json::Value` rather than with
//! `aws_lambda_events::event::cloudformation`: those types require `ResponseURL` (direct
//! invocations have none) and `PhysicalResourceId` on Update/Delete, and a serde error would not
//! tell the person reading it which field to fix. Properties stay a raw JSON map; what they mean
//! is for the handler to decide.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

impl std::fmt::Display for RequestType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct CfnRequest {
    pub request_type: RequestType,
    pub stack_id: String,
    /// Empty when a direct invocation leaves it out; always set when there is a `ResponseURL`.
    pub request_id: String,
    pub logical_resource_id: String,
    /// Empty when the event carries none: CloudFormation always sends it, a direct invocation may
    /// leave it out.
    pub resource_type: String,
    /// `None` on Create; CloudFormation sends it on Update and Delete (`docs/cloudformation.md#request`).
    pub physical_resource_id: Option<String>,
    /// `None` for a direct invocation: the answer is then the Lambda result itself.
    pub response_url: Option<String>,
    pub resource_properties: Map<String, Value>,
    /// Present on Update only.
    pub old_resource_properties: Option<Map<String, Value>>,
    /// `ServiceTimeout` as the event's top level carries it, when it does: CloudFormation's
    /// documentation lists it beside `ServiceToken` as a template property, and public sample
    /// events carry it at the top level as well as among the properties. The handler decides
    /// which to believe; it is carried through hand-overs like the rest of the event.
    pub service_timeout: Option<Value>,
    /// Set when this invocation continues a request whose answer an earlier invocation held
    /// (see [`HandOver`]); never part of what CloudFormation sends.
    pub hand_over: Option<HandOver>,
}

/// The top-level field of CloudFormation's own timeout (seconds, 1 to 3600).
pub const SERVICE_TIMEOUT_FIELD: &str = "ServiceTimeout";

/// The field of a hand_over event: the original event with this one object added.
pub const HAND_OVER_FIELD: &str = "HandOver";
/// What [`HAND_OVER_FIELD`] was called before: a hand-over queued by an earlier version of the
/// function, still in Lambda's queue when the code is updated, is read too.
const EARLIER_HAND_OVER_FIELD: &str = "Continuation";

/// A request handed on from one invocation to the next while its answer is held: the handler
/// says what to carry in `state`; `hop` counts the hand-overs. The event is the original one with
/// [`HAND_OVER_FIELD`] added, so it is parsed, checked and answered like the original.
#[derive(Clone, Debug, PartialEq)]
pub struct HandOver {
    pub hop: u32,
    pub state: Value,
}

/// Most hand-overs one request may take: a bound on a chain that could otherwise run forever,
/// well under the roughly 16 invocations after which Lambda's recursive loop detection stops a
/// chain it sees as a loop ("Use Lambda recursive loop detection", AWS Lambda Developer Guide).
/// A function whose timeout cannot hold the answer long enough within this many hops is refused
/// before any write (`resource::hold::fits_in_hops`).
pub const MAX_HOPS: u32 = 12;

impl CfnRequest {
    /// The stack name taken from the `StackId` ARN
    /// (`arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<uuid>`); the whole
    /// `StackId` when it is not shaped like that (direct invocations may pass any identifier).
    pub fn stack_name(&self) -> &str {
        stack_name_of(&self.stack_id)
    }

    /// The event that continues this request in another invocation: the fields of the request
    /// this module reads (top-level fields it does not read are left out), with `hand_over`
    /// added.
    pub fn hand_over_event(&self, hand_over: &HandOver) -> Value {
        let mut event = Map::new();
        let mut put = |key: &str, value: Value| {
            event.insert(key.to_owned(), value);
        };
        put("RequestType", Value::from(self.request_type.as_str()));
        put("StackId", Value::from(self.stack_id.as_str()));
        put("RequestId", Value::from(self.request_id.as_str()));
        put(
            "LogicalResourceId",
            Value::from(self.logical_resource_id.as_str()),
        );
        if !self.resource_type.is_empty() {
            put("ResourceType", Value::from(self.resource_type.as_str()));
        }
        if let Some(id) = &self.physical_resource_id {
            put("PhysicalResourceId", Value::from(id.as_str()));
        }
        if let Some(url) = &self.response_url {
            put("ResponseURL", Value::from(url.as_str()));
        }
        put(
            "ResourceProperties",
            Value::Object(self.resource_properties.clone()),
        );
        if let Some(old) = &self.old_resource_properties {
            put("OldResourceProperties", Value::Object(old.clone()));
        }
        if let Some(timeout) = &self.service_timeout {
            put(SERVICE_TIMEOUT_FIELD, timeout.clone());
        }
        put(
            HAND_OVER_FIELD,
            serde_json::json!({"Hop": hand_over.hop, "State": hand_over.state}),
        );
        Value::Object(event)
    }
}

/// [`CfnRequest::stack_name`] of any StackId.
pub(crate) fn stack_name_of(stack_id: &str) -> &str {
    let resource = stack_id.splitn(6, ':').nth(5);
    match resource
        .and_then(|r| r.strip_prefix("stack/"))
        .and_then(|r| r.split('/').next())
    {
        Some(name) if !name.is_empty() && stack_id.starts_with("arn:") => name,
        _ => stack_id,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "the event is {found}, not a JSON object: this function expects a CloudFormation custom-resource event"
    )]
    NotAnObject { found: &'static str },
    #[error(
        "the event has no {field}: this function expects a CloudFormation custom-resource event"
    )]
    MissingField { field: &'static str },
    #[error("the event's {field} must be {expected}, got {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("the event's {field} is empty: it must identify the {what}")]
    EmptyField {
        field: &'static str,
        what: &'static str,
    },
    #[error("the event's RequestType must be Create, Update or Delete, got \"{found}\"")]
    UnknownRequestType { found: String },
    /// More values than any request of a custom resource holds; refused from the text.
    #[error(
        "the event holds {values} JSON values{}; a request may hold at most {MAX_EVENT_VALUES}",
        largest.as_ref().map(|(name, values)| format!(", {values} of them in property {name}")).unwrap_or_default()
    )]
    TooLarge {
        values: usize,
        largest: Option<(String, usize)>,
    },
    /// Valid JSON syntax that `serde_json` still cannot hold as a value.
    #[error(
        "the event cannot be read ({detail}): properties may be nested at most {MAX_NESTING} \
         levels deep, numbers must fit a 64-bit floating point value, and strings must not carry \
         a lone UTF-16 surrogate escape such as \\ud800"
    )]
    Unreadable { detail: String },
}

/// Most JSON values (every string, number, list, object and property name counts one) a request
/// may hold. A CloudFormation request of a custom resource holds its properties twice at most
/// (an Update's old and new ones); a few hundred values is a large one. An asynchronous
/// invocation may carry a megabyte, which as a list is hundreds of thousands of values, each of
/// which would cost memory as a `Value`: such an event is refused from its text, before it is
/// built.
pub const MAX_EVENT_VALUES: usize = 2000;

/// How many JSON values an event holds, and which property holds the most.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub values: usize,
    /// The property (of `ResourceProperties` or `OldResourceProperties`) holding the most values.
    pub largest: Option<(String, usize)>,
}

/// Counts the values of the event text without building them (nothing is allocated per value).
/// An error means the text cannot be read as a value either; [`read_event`] then says why.
pub fn census(raw: &str) -> Result<Census, serde_json::Error> {
    use serde::de::Deserializer as _;
    serde_json::Deserializer::from_str(raw).deserialize_any(CensusOf::Event)
}

/// What is being counted: the event (whose properties objects are looked into), a properties
/// object (whose largest property is named), or any other value (counted whole).
#[derive(Clone, Copy)]
enum CensusOf {
    Event,
    Properties,
    Value,
}

/// Scalars count one, whatever is being counted.
macro_rules! count_scalars {
    ($($visit:ident($($ty:ty)?)),*) => {
        $(fn $visit<E>(self $(, _: $ty)?) -> Result<Census, E> {
            Ok(Census { values: 1, largest: None })
        })*
    };
}

impl<'de> serde::de::DeserializeSeed<'de> for CensusOf {
    type Value = Census;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Census, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CensusOf {
    type Value = Census;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    count_scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_unit()
    );

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Census, A::Error> {
        let mut values = 1usize;
        while let Some(inner) = seq.next_element_seed(CensusOf::Value)? {
            values = values.saturating_add(inner.values);
        }
        Ok(Census {
            values,
            largest: None,
        })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Census, A::Error> {
        let mut census = Census {
            values: 1,
            largest: None,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let inner = match self {
                CensusOf::Event
                    if key == "ResourceProperties" || key == "OldResourceProperties" =>
                {
                    map.next_value_seed(CensusOf::Properties)?
                }
                CensusOf::Properties => {
                    let inner = map.next_value_seed(CensusOf::Value)?;
                    Census {
                        largest: Some((crate::text::shorten(&key, 60), inner.values)),
                        ..inner
                    }
                }
                _ => map.next_value_seed(CensusOf::Value)?,
            };
            census.values = census.values.saturating_add(1).saturating_add(inner.values);
            if let Some((name, values)) = inner.largest
                && census
                    .largest
                    .as_ref()
                    .is_none_or(|(_, most)| values > *most)
            {
                census.largest = Some((name, values));
            }
        }
        Ok(census)
    }
}

/// How deep `serde_json` lets values nest (its fixed recursion limit of 128, the event object
/// itself included).
pub const MAX_NESTING: usize = 127;

/// The fields of an event that identify where and how to answer it, read from text that could
/// not be parsed whole (nested too deep, a number beyond `f64`, a lone surrogate escape).
/// Every other field is skipped without being parsed; a field that cannot be read as a string
/// is left out. The result is an object of those strings, for
/// `answer_for_unreadable_event` in `cfn/response.rs`.
pub fn salvage_ids(raw: &str) -> Value {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Ids {
        request_type: Option<Box<RawValue>>,
        #[serde(rename = "ResponseURL")]
        response_url: Option<Box<RawValue>>,
        stack_id: Option<Box<RawValue>>,
        request_id: Option<Box<RawValue>>,
        logical_resource_id: Option<Box<RawValue>>,
        physical_resource_id: Option<Box<RawValue>>,
    }
    let Ok(ids) = serde_json::from_str::<Ids>(raw) else {
        return Value::Object(Map::new());
    };
    let fields = [
        ("RequestType", ids.request_type),
        ("ResponseURL", ids.response_url),
        ("StackId", ids.stack_id),
        ("RequestId", ids.request_id),
        ("LogicalResourceId", ids.logical_resource_id),
        ("PhysicalResourceId", ids.physical_resource_id),
    ];
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(name, raw)| {
                let text = serde_json::from_str::<String>(raw?.get()).ok()?;
                Some((name.to_owned(), Value::String(text)))
            })
            .collect(),
    )
}

/// The event as a JSON value; [`RequestError::TooLarge`] when its text holds more than
/// [`MAX_EVENT_VALUES`] values (judged before any is built), or [`RequestError::Unreadable`]
/// naming what `serde_json` refused.
pub fn read_event(raw: &str) -> Result<Value, RequestError> {
    if let Ok(Census { values, largest }) = census(raw)
        && values > MAX_EVENT_VALUES
    {
        // A property is named only when it is the flood, not one of many small ones.
        let largest = largest.filter(|(_, most)| *most > MAX_EVENT_VALUES / 2);
        return Err(RequestError::TooLarge { values, largest });
    }
    serde_json::from_str(raw).map_err(|error| RequestError::Unreadable {
        detail: crate::text::shorten(&error.to_string(), 120),
    })
}

/// Reads an invocation event. Field names are CloudFormation's (PascalCase, `ResponseURL`).
pub fn parse_event(event: &Value) -> Result<CfnRequest, RequestError> {
    let Value::Object(fields) = event else {
        return Err(RequestError::NotAnObject {
            found: kind_of(event),
        });
    };
    let request_type = match fields.get("RequestType") {
        None | Some(Value::Null) => {
            return Err(RequestError::MissingField {
                field: "RequestType",
            });
        }
        Some(Value::String(s)) => parse_request_type(s)?,
        Some(other) => {
            return Err(RequestError::WrongType {
                field: "RequestType",
                expected: "a string",
                found: kind_of(other),
            });
        }
    };
    let stack_id = required_string(fields, "StackId", "stack")?;
    // An empty ResponseURL is what a pipeline templating the CloudFormation shape leaves behind:
    // it means "nobody to PUT to", the same as leaving the field out.
    let response_url = optional_string(fields, "ResponseURL")?.filter(|s| !s.is_empty());
    // CloudFormation matches an answer by StackId and RequestId together, so an answer PUT to a
    // ResponseURL needs it; a direct caller reads the invocation's own result and may leave it
    // out (`docs/direct-invocation.md`).
    let request_id = match optional_string(fields, "RequestId")? {
        None if response_url.is_none() => String::new(),
        // Given but empty is a mistake either way.
        _ => required_string(fields, "RequestId", "request")?,
    };
    let logical_resource_id =
        required_string(fields, "LogicalResourceId", "resource in the template")?;
    let resource_type = optional_string(fields, "ResourceType")?.unwrap_or_default();
    let physical_resource_id =
        optional_string(fields, "PhysicalResourceId")?.filter(|s| !s.is_empty());
    let resource_properties = optional_object(fields, "ResourceProperties")?.unwrap_or_default();
    let old_resource_properties = optional_object(fields, "OldResourceProperties")?;
    let hand_over = parse_hand_over(fields)?;
    // Read as any scalar: what it means, and whether it is valid, is the handler's to say.
    let service_timeout = fields
        .get(SERVICE_TIMEOUT_FIELD)
        .filter(|v| v.is_string() || v.is_number())
        .cloned();
    Ok(CfnRequest {
        request_type,
        stack_id,
        request_id,
        logical_resource_id,
        resource_type,
        physical_resource_id,
        response_url,
        resource_properties,
        old_resource_properties,
        service_timeout,
        hand_over,
    })
}

fn parse_hand_over(fields: &Map<String, Value>) -> Result<Option<HandOver>, RequestError> {
    let object = match optional_object(fields, HAND_OVER_FIELD)? {
        Some(object) => object,
        None => match optional_object(fields, EARLIER_HAND_OVER_FIELD)? {
            Some(object) => object,
            None => return Ok(None),
        },
    };
    let hop = object
        .get("Hop")
        .and_then(Value::as_u64)
        .and_then(|h| u32::try_from(h).ok())
        .filter(|h| *h <= MAX_HOPS)
        .ok_or(RequestError::WrongType {
            field: "HandOver.Hop",
            expected: "a whole number of hand-overs up to MAX_HOPS (12)",
            found: "something else",
        })?;
    let state = object.get("State").cloned().unwrap_or(Value::Null);
    Ok(Some(HandOver { hop, state }))
}

fn parse_request_type(value: &str) -> Result<RequestType, RequestError> {
    // CloudFormation sends exactly "Create"/"Update"/"Delete"; any casing is accepted so that a
    // hand-written pipeline event saying "delete" is not refused over a capital letter.
    match value.to_ascii_lowercase().as_str() {
        "create" => Ok(RequestType::Create),
        "update" => Ok(RequestType::Update),
        "delete" => Ok(RequestType::Delete),
        _ => Err(RequestError::UnknownRequestType {
            found: crate::text::shorten(value, 40),
        }),
    }
}

fn required_string(
    fields: &Map<String, Value>,
    field: &'static str,
    what: &'static str,
) -> Result<String, RequestError> {
    match optional_string(fields, field)? {
        None => Err(RequestError::MissingField { field }),
        Some(s) if s.is_empty() => Err(RequestError::EmptyField { field, what }),
        Some(s) => Ok(s),
    }
}

fn optional_string(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, RequestError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(RequestError::WrongType {
            field,
            expected: "a string",
            found: kind_of(other),
        }),
    }
}

fn optional_object(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Map<String, Value>>, RequestError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(other) => Err(RequestError::WrongType {
            field,
            expected: "an object of property names to values",
            found: kind_of(other),
        }),
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_event_is_the_original_event_plus_what_the_handler_carries() {
        let original = serde_json::json!({
            "RequestType": "Update",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
            "RequestId": "r",
            "LogicalResourceId": "L",
            "ResourceType": "Custom::X",
            "PhysicalResourceId": "p",
            "ResponseURL": "https://s3.amazonaws.com/b/k?X-Amz-Signature=s",
            "ResourceProperties": {"ServiceToken": "t", "A": "1"},
            "OldResourceProperties": {"ServiceToken": "t", "A": "0"},
            // Carried to the next hop, which reads it as the first one did.
            "ServiceTimeout": "1800"
        });
        let req = parse_event(&original).unwrap();
        assert_eq!(req.hand_over, None);
        assert_eq!(req.service_timeout, Some(Value::from("1800")));
        let hand_over = HandOver {
            hop: 2,
            state: serde_json::json!({"x": [1]}),
        };
        let event = req.hand_over_event(&hand_over);
        let mut expected = original.clone();
        expected[HAND_OVER_FIELD] = serde_json::json!({"Hop": 2, "State": {"x": [1]}});
        assert_eq!(event, expected);
        assert_eq!(
            parse_event(&event).unwrap().hand_over,
            Some(hand_over.clone())
        );

        let mut endless = event.clone();
        endless[HAND_OVER_FIELD]["Hop"] = serde_json::json!(MAX_HOPS + 1);
        assert!(parse_event(&endless).is_err());

        // A hand-over an earlier version queued under the field's old name is still one.
        let mut earlier = original.clone();
        earlier[EARLIER_HAND_OVER_FIELD] = serde_json::json!({"Hop": 2, "State": {"x": [1]}});
        assert_eq!(parse_event(&earlier).unwrap().hand_over, Some(hand_over));
    }

    #[test]
    fn census_counts_every_value_and_names_the_largest_property() {
        let raw = r#"{"RequestType":"Create","ResourceProperties":{"A":"x","WorkspaceIds":["1","2","3"],"N":{"K":[1,2]}},"OldResourceProperties":{"B":[true,null,1.5,-2]}}"#;
        let counted = census(raw).unwrap();
        // Event object 1; RequestType key+value 2; ResourceProperties key 1 + object 1
        // + A 2 + WorkspaceIds 1+4 + N 1+(1+1+3); OldResourceProperties key 1 + object 1 + B 1+5.
        assert_eq!(counted.values, 26);
        // N and B hold five values each; the first found is named.
        assert_eq!(counted.largest, Some(("N".to_owned(), 5)));
        assert_eq!(census("[1,[2,3]]").unwrap().values, 5);
        assert!(census("1e400").is_err());
    }

    #[test]
    fn an_event_of_too_many_values_is_refused_from_its_text() {
        let ids = vec!["1"; 300_000];
        let raw = serde_json::json!({"RequestType": "Create", "ResourceProperties": {"WorkspaceIds": ids}})
            .to_string();
        let error = read_event(&raw).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the event holds 300007 JSON values, 300001 of them in property WorkspaceIds; a request may hold at most 2000"
        );
        // Many small properties: the flood is not one property, so none is named.
        let many: serde_json::Map<String, Value> = (0..3000)
            .map(|i| (format!("P{i}"), Value::from(1)))
            .collect();
        let raw = serde_json::json!({"ResourceProperties": many}).to_string();
        assert_eq!(
            read_event(&raw).unwrap_err().to_string(),
            "the event holds 6003 JSON values; a request may hold at most 2000"
        );
        let fine = serde_json::json!({"ResourceProperties": {"WorkspaceIds": vec!["1"; 100]}});
        assert_eq!(read_event(&fine.to_string()).unwrap(), fine);
    }
    use serde_json::json;

    const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/my-stack/5b9e2a70-1111-2222-3333-444455556666";

    fn create_event() -> Value {
        // Shape of the Lambda docs' example event (services-cloudformation.html), including
        // ServiceToken inside ResourceProperties and every scalar stringified.
        json!({
            "RequestType": "Create",
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:provider",
            "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com/arn%3A?X-Amz-Signature=abc",
            "StackId": STACK_ID,
            "RequestId": "c7a2d3b4-0000-1111-2222-333344445555",
            "LogicalResourceId": "BackendPrivateLink",
            "ResourceType": "Custom::DatabricksBackendPrivateLink",
            "ResourceProperties": {
                "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:provider",
                "Enabled": "true",
                "Count": "14",
                "Names": ["a", "b"],
                "Nested": {"k": "v"}
            }
        })
    }

    #[test]
    fn parses_a_cloudformation_create_event() {
        let req = parse_event(&create_event()).unwrap();
        assert_eq!(req.request_type, RequestType::Create);
        assert_eq!(req.stack_id, STACK_ID);
        assert_eq!(req.request_id, "c7a2d3b4-0000-1111-2222-333344445555");
        assert_eq!(req.logical_resource_id, "BackendPrivateLink");
        assert_eq!(req.resource_type, "Custom::DatabricksBackendPrivateLink");
        assert_eq!(req.physical_resource_id, None);
        assert!(
            req.response_url
                .as_deref()
                .unwrap()
                .starts_with("https://cloudformation-custom-resource-response-euwest1.")
        );
        assert_eq!(req.resource_properties["Enabled"], json!("true"));
        assert_eq!(req.resource_properties["Names"], json!(["a", "b"]));
        assert_eq!(req.resource_properties["Nested"], json!({"k": "v"}));
        assert!(req.old_resource_properties.is_none());
        assert_eq!(req.stack_name(), "my-stack");
    }

    #[test]
    fn parses_update_with_old_properties_and_physical_id() {
        let mut event = create_event();
        event["RequestType"] = json!("Update");
        event["PhysicalResourceId"] = json!("pid-1");
        event["OldResourceProperties"] = json!({"Enabled": "false"});
        let req = parse_event(&event).unwrap();
        assert_eq!(req.request_type, RequestType::Update);
        assert_eq!(req.physical_resource_id.as_deref(), Some("pid-1"));
        assert_eq!(
            req.old_resource_properties.unwrap()["Enabled"],
            json!("false")
        );
    }

    #[test]
    fn direct_invocation_has_no_response_url_and_may_omit_properties() {
        let event = json!({
            "RequestType": "delete",
            "StackId": "vending-pipeline-run-42",
            "RequestId": "r-1",
            "LogicalResourceId": "Backend",
            "PhysicalResourceId": "pid-9",
        });
        let req = parse_event(&event).unwrap();
        assert_eq!(req.request_type, RequestType::Delete);
        assert_eq!(req.response_url, None);
        assert!(req.resource_properties.is_empty());
        assert_eq!(req.resource_type, "");
        assert_eq!(req.stack_name(), "vending-pipeline-run-42");
    }

    #[test]
    fn request_id_is_needed_only_to_answer_at_a_response_url() {
        let direct = json!({
            "RequestType": "Create",
            "StackId": "vending-pipeline-run-42",
            "LogicalResourceId": "Backend",
        });
        assert_eq!(parse_event(&direct).unwrap().request_id, "");

        let mut with_url = create_event();
        with_url.as_object_mut().unwrap().remove("RequestId");
        assert_eq!(
            parse_event(&with_url).unwrap_err(),
            RequestError::MissingField { field: "RequestId" }
        );

        // Given, it must say something, with or without a ResponseURL.
        let mut empty = direct.clone();
        empty["RequestId"] = json!("");
        assert!(matches!(
            parse_event(&empty),
            Err(RequestError::EmptyField {
                field: "RequestId",
                ..
            })
        ));
    }

    #[test]
    fn empty_response_url_means_direct_invocation() {
        let mut event = create_event();
        event["ResponseURL"] = json!("");
        assert_eq!(parse_event(&event).unwrap().response_url, None);
    }

    #[test]
    fn errors_name_the_field_to_fix() {
        let err = parse_event(&json!({"hello": "world"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event has no RequestType: this function expects a CloudFormation custom-resource event"
        );

        let err = parse_event(&json!("just a string")).unwrap_err();
        assert!(
            err.to_string().contains("is a string, not a JSON object"),
            "{err}"
        );

        for field in ["StackId", "RequestId", "LogicalResourceId"] {
            let mut event = create_event();
            event.as_object_mut().unwrap().remove(field);
            let err = parse_event(&event).unwrap_err();
            assert_eq!(err, RequestError::MissingField { field });
            assert!(err.to_string().contains(field));
        }

        let mut event = create_event();
        event["RequestType"] = json!("Upsert");
        assert_eq!(
            parse_event(&event).unwrap_err().to_string(),
            "the event's RequestType must be Create, Update or Delete, got \"Upsert\""
        );

        let mut event = create_event();
        event["ResourceProperties"] = json!("Enabled=true");
        let err = parse_event(&event).unwrap_err().to_string();
        assert!(
            err.contains("ResourceProperties must be an object"),
            "{err}"
        );

        let mut event = create_event();
        event["StackId"] = json!(12);
        let err = parse_event(&event).unwrap_err().to_string();
        assert_eq!(err, "the event's StackId must be a string, got a number");

        let mut event = create_event();
        event["RequestId"] = json!("");
        let err = parse_event(&event).unwrap_err().to_string();
        assert!(err.contains("RequestId is empty"), "{err}");
    }

    #[test]
    fn stack_name_handles_other_partitions_and_odd_ids() {
        let mut req = parse_event(&create_event()).unwrap();
        req.stack_id =
            "arn:aws-cn:cloudformation:cn-north-1:123456789012:stack/cn-stack/uuid".into();
        assert_eq!(req.stack_name(), "cn-stack");
        req.stack_id = "arn:aws:cloudformation:eu-west-1:123456789012:stackset/x/uuid".into();
        assert_eq!(req.stack_name(), req.stack_id);
        req.stack_id = "arn:aws:cloudformation:eu-west-1:1:stack//uuid".into();
        assert_eq!(req.stack_name(), req.stack_id);
    }
}
