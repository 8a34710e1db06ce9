//! Integration tests that drive the real compiled Lambda binary through a Runtime API stand-in.

mod harness_smoke;
mod support;

mod lifecycle;
mod scenario;
