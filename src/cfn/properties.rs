//! Reading `ResourceProperties` the way CloudFormation delivers them: every scalar arrives as a
//! string (`true` becomes `"true"`, `14` becomes `"14"`; `docs/cloudformation.md#request`), while direct invocations
//! may send real JSON booleans and numbers. Unknown property names are refused so a typo in a
//! template fails the stack instead of being silently ignored.
//!
//! Generic: which properties exist and what they mean is for the handler to say.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::text::shorten;

/// Template-level properties CloudFormation may pass inside `ResourceProperties`: the Lambda docs'
/// example event includes `ServiceToken`, and `ServiceTimeout` may arrive the same way
/// (unconfirmed; `docs/cloudformation.md#request`).
const ALWAYS_ALLOWED: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// How many unknown names an error lists before saying "and N more".
const UNKNOWN_LISTED: usize = 5;
/// Values and names quoted in errors are cut to this many characters: the error becomes the
/// stack event's Reason, which has to fit in the 4096-byte response.
const QUOTED_CHARS: usize = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("Property `{name}` must be {expected}, got {got}")]
    Invalid {
        name: String,
        expected: &'static str,
        got: String,
    },
    #[error(
        "Property `{name}` must be a list of strings or one comma-separated string; item {index} is {got}"
    )]
    InvalidListItem {
        name: String,
        index: usize,
        got: String,
    },
    #[error("{}", unknown_message(unknown, *more, valid))]
    Unknown {
        /// The first few unknown names, sorted.
        unknown: Vec<String>,
        /// How many more unknown names there were.
        more: usize,
        /// The names this resource accepts, sorted.
        valid: Vec<String>,
    },
}

fn unknown_message(unknown: &[String], more: usize, valid: &[String]) -> String {
    let quoted: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
    let noun = if unknown.len() + more == 1 {
        "Unknown property"
    } else {
        "Unknown properties"
    };
    let mut msg = format!("{noun} {}", quoted.join(", "));
    if more > 0 {
        msg.push_str(&format!(" (and {more} more)"));
    }
    if valid.is_empty() {
        msg.push_str("; this resource takes no properties");
    } else {
        msg.push_str(&format!("; valid properties are: {}", valid.join(", ")));
    }
    msg
}

/// Reads properties by name and remembers which names were asked for, so
/// [`reject_unknown`](Self::reject_unknown) can refuse everything else.
pub struct PropertyReader<'a> {
    props: &'a Map<String, Value>,
    read: BTreeSet<String>,
}

impl<'a> PropertyReader<'a> {
    pub fn new(props: &'a Map<String, Value>) -> Self {
        Self {
            props,
            read: BTreeSet::new(),
        }
    }

    /// Absent (or JSON null) gives `None`. The value is returned as given: an empty string is
    /// `Some("")` and whitespace is kept, for the caller to judge.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, PropertyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(invalid(name, "a string", other)),
        }
    }

    /// `true`/`false` as JSON booleans or as strings in any casing (CloudFormation stringifies).
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, PropertyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(invalid(name, "true or false", other)),
        }
    }

    /// A JSON list of strings (numbers are accepted and stringified), or one comma-separated
    /// string such as a `CommaDelimitedList` parameter joined with `Fn::Join`; items of the
    /// comma-separated form are trimmed and empty ones dropped.
    pub fn string_list(&mut self, name: &str) -> Result<Option<Vec<String>>, PropertyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(PropertyError::InvalidListItem {
                        name: shorten(name, QUOTED_CHARS),
                        index,
                        got: describe(other),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(invalid(name, "a list of strings", other)),
        }
    }

    pub fn object(&mut self, name: &str) -> Result<Option<Map<String, Value>>, PropertyError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(other) => Err(invalid(name, "an object", other)),
        }
    }

    /// Refuses any property that was neither read nor listed in `also_allowed`
    /// (`ServiceToken` and `ServiceTimeout` are always allowed). Call it after reading everything.
    pub fn reject_unknown(&self, also_allowed: &[&str]) -> Result<(), PropertyError> {
        let unknown: Vec<&String> = self
            .props
            .keys()
            .filter(|key| {
                !self.read.contains(key.as_str())
                    && !also_allowed.contains(&key.as_str())
                    && !ALWAYS_ALLOWED.contains(&key.as_str())
            })
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut unknown: Vec<String> = unknown
            .into_iter()
            .map(|k| shorten(k, QUOTED_CHARS))
            .collect();
        unknown.sort();
        let more = unknown.len().saturating_sub(UNKNOWN_LISTED);
        unknown.truncate(UNKNOWN_LISTED);
        let valid: BTreeSet<String> = self
            .read
            .iter()
            .map(|n| shorten(n, QUOTED_CHARS))
            .chain(also_allowed.iter().map(|n| shorten(n, QUOTED_CHARS)))
            .collect();
        Err(PropertyError::Unknown {
            unknown,
            more,
            valid: valid.into_iter().collect(),
        })
    }

    fn get(&mut self, name: &str) -> Option<&'a Value> {
        self.read.insert(name.to_owned());
        // A JSON null only comes from direct invocations; it means "not set".
        self.props.get(name).filter(|v| !v.is_null())
    }
}

fn invalid(name: &str, expected: &'static str, got: &Value) -> PropertyError {
    PropertyError::Invalid {
        name: shorten(name, QUOTED_CHARS),
        expected,
        got: describe(got),
    }
}

/// A value as it should appear in an error: strings quoted, everything else as compact JSON,
/// shortened and with control characters escaped.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{}\"", shorten(s, QUOTED_CHARS)),
        other => shorten(&other.to_string(), QUOTED_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn strings_come_back_as_given_and_numbers_are_stringified() {
        let p = props(
            json!({"Name": " padded ", "Empty": "", "Port": 443, "Ratio": 1.5, "Null": null}),
        );
        let mut r = PropertyReader::new(&p);
        assert_eq!(r.string("Name").unwrap().as_deref(), Some(" padded "));
        assert_eq!(r.string("Empty").unwrap().as_deref(), Some(""));
        assert_eq!(r.string("Port").unwrap().as_deref(), Some("443"));
        assert_eq!(r.string("Ratio").unwrap().as_deref(), Some("1.5"));
        assert_eq!(r.string("Null").unwrap(), None);
        assert_eq!(r.string("Missing").unwrap(), None);
    }

    #[test]
    fn string_refuses_lists_objects_and_booleans() {
        let p = props(json!({"Name": ["a"], "Obj": {"a": 1}, "Flag": true}));
        let mut r = PropertyReader::new(&p);
        assert_eq!(
            r.string("Name").unwrap_err().to_string(),
            "Property `Name` must be a string, got [\"a\"]"
        );
        assert!(r.string("Obj").is_err());
        assert_eq!(
            r.string("Flag").unwrap_err().to_string(),
            "Property `Flag` must be a string, got true"
        );
    }

    #[test]
    fn bools_accept_cloudformation_strings_in_any_case() {
        let p = props(json!({"A": "true", "B": "FALSE", "C": true, "D": "True", "E": false}));
        let mut r = PropertyReader::new(&p);
        assert_eq!(r.bool("A").unwrap(), Some(true));
        assert_eq!(r.bool("B").unwrap(), Some(false));
        assert_eq!(r.bool("C").unwrap(), Some(true));
        assert_eq!(r.bool("D").unwrap(), Some(true));
        assert_eq!(r.bool("E").unwrap(), Some(false));
        assert_eq!(r.bool("Missing").unwrap(), None);
    }

    #[test]
    fn bool_errors_quote_the_value_shortened_and_escaped() {
        let long = format!("yes\n{}", "x".repeat(500));
        let p = props(json!({"A": "maybe", "B": "1", "C": 1, "D": long, "E": " true"}));
        let mut r = PropertyReader::new(&p);
        assert_eq!(
            r.bool("A").unwrap_err().to_string(),
            "Property `A` must be true or false, got \"maybe\""
        );
        assert_eq!(
            r.bool("B").unwrap_err().to_string(),
            "Property `B` must be true or false, got \"1\""
        );
        assert_eq!(
            r.bool("C").unwrap_err().to_string(),
            "Property `C` must be true or false, got 1"
        );
        let msg = r.bool("D").unwrap_err().to_string();
        assert!(
            msg.starts_with("Property `D` must be true or false, got \"yes\\nxxx"),
            "{msg}"
        );
        assert!(msg.ends_with("…\""), "{msg}");
        assert!(msg.len() < 150, "{msg}");
        assert!(!msg.contains('\n'));
        assert!(r.bool("E").is_err(), "whitespace is not trimmed");
    }

    #[test]
    fn string_lists_from_json_lists_or_comma_separated_strings() {
        let p = props(json!({
            "List": ["a", "b c", 3],
            "Csv": "vpce-1, vpce-2,,vpce-3 ",
            "EmptyCsv": "",
            "EmptyList": [],
            "Bad": ["a", {"x": 1}],
            "Obj": {"x": 1}
        }));
        let mut r = PropertyReader::new(&p);
        assert_eq!(
            r.string_list("List").unwrap().unwrap(),
            vec!["a", "b c", "3"]
        );
        assert_eq!(
            r.string_list("Csv").unwrap().unwrap(),
            vec!["vpce-1", "vpce-2", "vpce-3"]
        );
        assert_eq!(
            r.string_list("EmptyCsv").unwrap().unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            r.string_list("EmptyList").unwrap().unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            r.string_list("Bad").unwrap_err().to_string(),
            "Property `Bad` must be a list of strings or one comma-separated string; item 1 is {\"x\":1}"
        );
        assert!(r.string_list("Obj").is_err());
        assert_eq!(r.string_list("Missing").unwrap(), None);
    }

    #[test]
    fn objects() {
        let p = props(json!({"Tags": {"team": "net"}, "Bad": "team=net"}));
        let mut r = PropertyReader::new(&p);
        assert_eq!(r.object("Tags").unwrap().unwrap()["team"], json!("net"));
        assert_eq!(
            r.object("Bad").unwrap_err().to_string(),
            "Property `Bad` must be an object, got \"team=net\""
        );
    }

    #[test]
    fn unknown_properties_are_refused_with_the_valid_names() {
        let p = props(json!({
            "ServiceToken": "arn:aws:lambda:...",
            "ServiceTimeout": "300",
            "Enabled": "true",
            "Enabeld": "true",
            "Legacy": "x"
        }));
        let mut r = PropertyReader::new(&p);
        r.bool("Enabled").unwrap();
        r.string("Region").unwrap();
        let err = r.reject_unknown(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown properties `Enabeld`, `Legacy`; valid properties are: Enabled, Region"
        );
        let err = r.reject_unknown(&["Legacy"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown property `Enabeld`; valid properties are: Enabled, Legacy, Region"
        );
        let p2 = props(json!({"ServiceToken": "t", "Enabled": "true"}));
        let mut r2 = PropertyReader::new(&p2);
        r2.bool("Enabled").unwrap();
        r2.reject_unknown(&[]).unwrap();
    }

    #[test]
    fn many_unknown_properties_are_listed_sorted_and_capped() {
        let mut map = Map::new();
        for name in ["Z", "Y", "X", "W", "V", "U", "T"] {
            map.insert(name.to_owned(), json!("1"));
        }
        let r = PropertyReader::new(&map);
        match r.reject_unknown(&[]).unwrap_err() {
            PropertyError::Unknown {
                unknown,
                more,
                valid,
            } => {
                assert_eq!(unknown, vec!["T", "U", "V", "W", "X"]);
                assert_eq!(more, 2);
                assert!(valid.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = r.reject_unknown(&[]).unwrap_err().to_string();
        assert_eq!(
            msg,
            "Unknown properties `T`, `U`, `V`, `W`, `X` (and 2 more); this resource takes no properties"
        );
    }
}
