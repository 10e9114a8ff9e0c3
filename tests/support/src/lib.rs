//! Test doubles for botgate's integration tests and benchmarks: real servers on loopback ports.
//!
//! # Layout
//!
//! - [`redis`]: [`RedisServer`], a private `redis-server` child process on a free port.
//! - [`redis_cluster`]: [`RedisCluster`], three `redis-server` masters joined into a cluster.
//! - [`bailian`]: [`FakeBailian`], an HTTP server speaking the Bailian application API
//!   (`/api/v1/apps/{app_id}/completion`, JSON and the quirky SSE) and the OpenAI-compatible
//!   `/compatible-mode/v1/chat/completions`, with scripted answers and failures.
//! - [`conformance`]: the checks every platform adapter must pass, given fixtures of its wire.
//! - [`proxy`]: [`DropProxy`], a TCP proxy in front of Redis that drops a connection after a
//!   command ran and before its reply arrives.
//! - [`platform`]: [`FakePlatform`], a recorder standing in for the WeChat, WeCom and DingTalk
//!   send APIs.
//! - [`stream`]: [`FakeStreamGateway`], DingTalk's Stream-mode WebSocket gateway.
//! - [`tls`]: [`TlsFront`], TLS with a self-signed certificate in front of a plain fake.
//! - [`browser`]: [`browser::Browser`], Debian's Chromium driven through chromedriver, for the
//!   web chat's tests in a real browser.
//!
//! Every HTTP fake runs its own actix-web system on a thread of its own and binds
//! `127.0.0.1:0`, so it works under any test runtime and stops when the value is dropped.

// A test-only crate: a failed setup step should stop the test right there.
#![allow(clippy::unwrap_used)]

pub mod bailian;
pub mod browser;
pub mod conformance;
pub mod platform;
pub mod proxy;
pub mod redis;
pub mod redis_cluster;
mod server;
pub mod stream;
pub mod tls;

pub use bailian::{Answer, Failure, FakeBailian, RecordedRequest};
pub use platform::{FakePlatform, Received};
pub use proxy::DropProxy;
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
pub use stream::FakeStreamGateway;
pub use tls::TlsFront;
