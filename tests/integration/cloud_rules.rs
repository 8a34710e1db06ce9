//! Lambda's and CloudFormation's own rules as AWS runs them, through the real binary: the
//! attributes the template's outputs read on every path, a `Network` for the workspace a later
//! Update switches, a verifier that is not ready yet, the held answer's bounds, and event text
//! that URL parsing would change.

use std::time::Duration;

use serde_json::json;

use crate::scenario::{TIMEOUT, World};
use crate::support::events::{RequestType, cfn_event};
use crate::support::runtime::InvocationResult;
use crate::support::sink::RecordingSink;

/// The URL standard drops every tab and newline from a URL before parsing it, so a ResponseURL
/// or an AccountHost holding one would reach the host the rest spells: both are refused from
/// their text, and nothing reaches either host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_or_newline_in_the_response_url_or_account_host_is_refused_before_parsing() {
    let world = World::new().await;
    let sink = RecordingSink::start().await;
    // Parsed, this is the sink's own URL.
    let url = sink.url().replacen("127.0.0.1", "127.0.\t0.1", 1);
    let stack = world.stack("tab-in-response-url");
    let event = cfn_event(
        RequestType::Create,
        &stack.stack_id,
        &stack.logical_id,
        None,
        world.props(0),
        None,
        Some(&url),
    );
    match world.lambda.invoke(event, TIMEOUT).await {
        InvocationResult::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "UnusableResponseURL", "{error_message}");
            assert!(
                error_message.contains("control character U+0009"),
                "{error_message}"
            );
            assert!(
                !error_message.contains("X-Amz-Signature"),
                "{error_message}"
            );
        }
        other => panic!("the ResponseURL must be refused: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());
    assert_eq!(world.writes(), 0);

    // Parsed, this is the emulator's own URL, which tests allow as an accounts host.
    let host = world
        .emulator
        .base_url()
        .replacen("127.0.0.1", "127.0.0\n.1", 1);
    let mut props = world.props(0);
    props["AccountHost"] = json!(host);
    let mut stack = world.stack("newline-in-account-host");
    let failed = world.create(&mut stack, props).await;
    failed.assert_failed_with("AccountHost holds a control character");
    assert!(
        world.emulator.state().request_log().is_empty(),
        "the accounts host got requests: {:?}",
        world.emulator.state().request_log()
    );
}
