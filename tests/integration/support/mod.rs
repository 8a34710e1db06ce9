//! Shared test harness: Lambda Runtime API stand-in, the Lambda process, moto and its AWS
//! fixtures, CloudFormation events and response sinks.
//! It must not know what the Lambda does with an event; scenarios own every expectation.
//!
//! A scenario usually reads:
//! ```ignore
//! let moto = Moto::shared();
//! let created = Setup::new("us-east-1")
//!     .network(NetworkOptions::default())
//!     .secret(&unique_name("sp"), r#"{"client_id":"..","client_secret":".."}"#)
//!     .response_url()
//!     .run(moto)
//!     .await;
//! let lambda = Lambda::start(&[("SOME_SETTING", "value")]).await;
//! let sink = &created.response_sinks[0];
//! let event = cfn_event(RequestType::Create, &stack_id("s"), "Res", None, props, None, Some(sink.url()));
//! assert!(matches!(lambda.invoke(event, Duration::from_secs(30)).await, InvocationResult::Response(_)));
//! let response = sink.wait(Duration::from_secs(5)).await.unwrap();
//! ```
//! The Lambda's output is read by other threads: use `wait_for_log`, not `logs()`, to wait
//! for a line. Every test shares one moto, so names of secrets must be unique.

// Each scenario file uses a different subset of the harness, so parts of it are unused in
// any one build of the test binary.
#![allow(dead_code)]

pub mod dns_world;
pub mod events;
// The loopback DNS server and TCP listeners of the library's verifier tests, the same file.
pub mod fixtures;
pub mod lambda;
pub mod lambda_service;
pub mod moto;
#[path = "../../../src/verify/test_network.rs"]
pub mod network;
pub mod runtime;
pub mod server;
pub mod sink;

/// A random version-4-shaped UUID, the form AWS uses for request IDs and stack ID suffixes.
pub fn uuid() -> String {
    let bits = fastrand::u128(..);
    // Version 4 and the RFC 4122 variant, so the value looks like the IDs AWS sends.
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A name no other test of this process uses, for objects in the shared moto server.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid()[..8])
}

/// Random lowercase hex digits, for IDs such as X-Ray trace IDs and log stream names.
pub fn random_hex(digits: usize) -> String {
    (0..digits)
        .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
        .collect()
}
