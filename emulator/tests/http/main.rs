//! HTTP-level tests of the emulator: the account API rules, OAuth, faults and the control API,
//! exercised the way a client sees them. The crate's only integration test binary.

mod auth;
mod faults;
mod networks;
mod private_access;
mod process;
mod support;
mod vpc_endpoints;
mod workspaces;
