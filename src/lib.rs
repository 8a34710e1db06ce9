//! `Custom::DatabricksBackendPrivateLink`: Databricks back-end PrivateLink under CloudFormation.
//!
//! `cfn` speaks the CloudFormation custom-resource protocol, `databricks` speaks the Databricks
//! account API, `aws` inspects the VPC endpoints and reads the credentials secret; `resource` is
//! the only place where they meet. `trust` reads the CA bundle once for both HTTP stacks;
//! `redact` removes secrets from any text a server sent before it is quoted; `logging` bounds
//! every log line; `text` makes outside text one bounded line. `verify` is the verifier's (the package's second binary): DNS and TCP checks
//! from inside the VPC, with the request and report the function and the verifier share.

// Outside tests nothing may unwrap: every value from outside the process is handled as an error.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aws;
pub mod cfn;
pub mod databricks;
pub mod endpoint;
pub mod logging;
pub mod redact;
pub mod resource;
pub mod text;
pub mod trust;

#[cfg(test)]
mod test_http;
pub mod verify;
