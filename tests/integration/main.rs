//! Integration tests that drive the real compiled Lambda binary through a Runtime API stand-in.

mod client;
mod faults;
mod harness_smoke;
mod support;

mod abuse;
mod account_rules;
mod cloud_rules;
mod egress;
mod hold;
mod hostile;
mod invocation_modes;
mod lifecycle;
mod local_world;
mod readiness;
mod scenario;
mod verifier;
mod workspaces;
