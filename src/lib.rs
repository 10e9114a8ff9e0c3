//! botgate: one gateway from chat platforms to an Alibaba Cloud Bailian application.
//!
//! # Layout
//!
//! - [`config`]: typed settings from TOML + environment, validated at load.
//! - [`clock`]: the one place for "now" and for random bytes.
//! - [`store`]: shared state (conversation memory, claims, TTL values) in Redis or in process.
//! - [`llm`]: providers (Bailian application API, OpenAI-compatible, rules) and the retry loop.
//! - [`core`]: the platform-agnostic conversation core (commands, farewell, memory, ordering).
//! - [`channels`]: per-platform glue between adapters and the core (WeChat passive mode).
//! - [`delivery`]: accepting messages, the durable job queue and the workers that deliver answers.
//! - [`limits`], [`tokens`]: rates, concurrency slots and platform access tokens shared by replicas.
//! - [`http`]: the outbound HTTP clients (platform APIs, LLM providers).
//! - [`metrics`]: Prometheus counters and histograms, served at `/metrics`.
//! - [`routes`]: the HTTP surface (health, readiness, platform webhooks).
//! - [`sources`]: inbound sources that are not routes (connections and pull loops we open).
//! - [`startup`]: wiring it all into an [`startup::Application`] that tests run on port 0.
//! - [`simulate`]: WeChat's side of the webhook, for operators' checks, tests and benchmarks.
//! - [`jobs`]: the operator's view of dead letters (`botgate jobs …`).
//! - [`cli`], [`chat`]: the command line and the console conversation.
//!
//! Platform adapters live in their own crates under `adapters/` and are pure.

pub mod channels;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod delivery;
pub mod feedback;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod keyspace;
pub mod limits;
pub mod llm;
pub mod metrics;
pub mod routes;
pub mod simulate;
pub mod sources;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tokens;

use std::future::Future;

/// Spawns a task that keeps the caller's tracing span, so its logs carry the request id.
pub fn spawn_traced<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(future.in_current_span())
}
