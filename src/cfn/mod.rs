//! The CloudFormation custom-resource protocol: reading the event, reading its properties,
//! answering exactly once (PUT, SAM-local print or direct return) and the deadline guard.
//!
//! This module runs any [`ResourceHandler`]; it must not know what the resource is (nothing about
//! Databricks or EC2 belongs here).

pub mod guard;
pub mod invoke;
pub mod properties;
pub mod request;
pub mod response;
#[cfg(test)]
mod test_server;

pub use guard::{GUARD_MARGIN, Progress};
pub use invoke::{InvocationError, ResourceHandler, handle_invocation, handle_raw_invocation};
pub use properties::{PropertyError, PropertyReader};
pub use request::{CfnRequest, RequestError, RequestType, parse_event};
pub use response::{
    Outcome, Responder, ResponseError, ResponseUrlError, Status, response_document,
    validate_response_url,
};

/// Makes untrusted text safe to quote in a message meant for people (a stack event, a log line):
/// control characters are escaped so the message stays on one line, and the result is cut to
/// `max_chars` characters with an ellipsis so one bad value cannot flood the 4096-byte response.
pub fn shorten(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (taken, ch) in text.chars().enumerate() {
        if taken == max_chars {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn shorten_escapes_control_characters_and_cuts_long_text() {
        assert_eq!(shorten("a\nb\tc\u{1b}", 20), "a\\nb\\tc\\u{1b}");
        assert_eq!(shorten("ünïcødé text", 5), "ünïcø…");
        assert_eq!(shorten("exact", 5), "exact");
    }
}
