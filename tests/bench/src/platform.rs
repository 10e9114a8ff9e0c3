//! What the WeCom and DingTalk scenarios share: both channels acknowledge a message once it is
//! durably queued and answer it later through the platform's API, here a lean fake of it.
//!
//! - [`Stack`] (this file): redis, the fake Bailian, the platform's fake and botgate.
//! - [`api`], [`request`]: the fakes' routing, record of answers and request reader.
//! - [`acked`]: the callback scenarios' driver, a load of callbacks and then the answers.
//! - [`answers`]: the bookkeeping of checking answers matched to messages in order.
//! - [`summary`]: the report rows and checks every such scenario has.
//! - percentiles of the latencies ([`Spread`]).

pub mod acked;
pub mod answers;
pub mod api;
pub mod request;
mod spread;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use api::Fake;
pub use spread::Spread;

use crate::fake_llm::FrameWrites;
use crate::fixture::{LlmOptions, Upstreams, BOT};
use crate::stack::Botgate;
use crate::Options;

/// After the last expected answer, how long to watch for extra (duplicate) ones.
pub const DUPLICATE_WATCH: Duration = Duration::from_secs(1);
/// Waiting for the answers gives up once none arrived for this long: a backlog that drains
/// slowly is waited for, a stuck one is reported.
pub const DELIVERY_STALL: Duration = Duration::from_secs(20);

/// What a scenario stands on: redis, the fake Bailian, the platform's fake and botgate.
pub struct Stack<A> {
    pub upstreams: Upstreams,
    pub llm: LlmOptions,
    pub api: Arc<A>,
    pub botgate: Botgate,
}

impl<A: Fake> Stack<A> {
    /// Starts the upstreams, then the platform's fake with `api`, then botgate with one bot
    /// whose platform table (`[bots.bench.<platform>]`, pointing at the fake) `section` writes.
    pub async fn start(
        options: &Options,
        api: impl FnOnce() -> anyhow::Result<A>,
        section: impl FnOnce(&A) -> String,
    ) -> anyhow::Result<Stack<A>> {
        let llm = LlmOptions {
            stream: !options.llm_json,
            http2: options.llm_http2,
            delay: Duration::ZERO,
            // The lean fakes: the harness's CPU is taken from the gateway's two cores.
            lean: (!options.llm_http2).then_some(FrameWrites::One),
        };
        let upstreams = Upstreams::start(options.store, options.shards, llm).await?;
        let api = Arc::new(api()?);
        let delivery = match options.wecom_delivery_workers {
            Some(workers) => format!("[delivery]\nworkers = {workers}\n\n"),
            None => String::new(),
        };
        let config = format!(
            "{}{delivery}[bots.{BOT}]\nllm = \"main\"\n\n{}",
            upstreams.config(llm),
            section(&api),
        );
        let botgate = Botgate::start(&options.binary, options.workers, &config).await?;
        Ok(Stack {
            upstreams,
            llm,
            api,
            botgate,
        })
    }

    /// "2 workers, default delivery workers, redis store, LLM SSE over HTTP/1.1, pid 123".
    pub fn setup(&self, options: &Options) -> String {
        format!(
            "{} workers, {} delivery workers, {} store, LLM {} over HTTP/{}, pid {}",
            options.workers,
            options
                .wecom_delivery_workers
                .map_or_else(|| "default".to_owned(), |workers| workers.to_string()),
            self.upstreams.store_name(),
            if self.llm.stream { "SSE" } else { "JSON" },
            if self.llm.http2 { "2" } else { "1.1" },
            self.botgate.pid(),
        )
    }
}
