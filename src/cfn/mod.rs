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

pub use guard::{GUARD_MARGIN, Progress};
pub use invoke::{InvocationError, ResourceHandler, handle_invocation, handle_raw_invocation};
pub use properties::{PropertyError, PropertyReader};
pub use request::{CfnRequest, RequestError, RequestType, parse_event};
pub use response::{
    Outcome, Responder, ResponseError, ResponseUrlError, Status, response_document,
    validate_response_url,
};
