//! End-to-end WeChat Official Account tests: the real server on port 0, a real redis-server, the
//! fake Bailian, and WeChat simulated by `botgate::simulate` (signing, encryption, retries).

// Test code: a failed setup step should stop the test right there.
#![allow(clippy::unwrap_used)]

mod active;
mod conformance;
mod deliveries;
mod hardening;
mod harness;
mod outbox;
mod passive;
mod protocol;
mod replicas;
mod upgrade;
