//! `wecom-app` and `wecom-kf`: the WeCom channel, which acknowledges a callback with an empty 200
//! once its message is durably queued (app) or pulled (customer service), and answers later
//! through WeCom's API, here a lean fake of it ([`fake_api`]).
//!
//! - [`app`](mod@app): members of a self-built app, each answered through `message/send`.
//! - [`kf`]: 微信客服 customers in bursts, pulled through `kf/sync_msg`, answered through
//!   `kf/send_msg`.
//! - [`app_sends`], [`kf_sends`]: every answer checked against the messages, after the run.
//! - [`sync_log`]: the fake's `kf/sync_msg` queue, handed out by cursor.

mod app;
mod app_sends;
pub(crate) mod fake_api;
mod kf;
mod kf_sends;
mod sync_log;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use botgate_wecom::{SimulatedCallback, WecomApp};
use botgate_wxcrypt::EncodingAesKey;

use crate::fake_llm::FrameWrites;
use crate::fixture::{LlmOptions, Upstreams, BOT};
use crate::http;
use crate::stack::Botgate;
use crate::Options;
use fake_api::FakeWecom;

pub use app::run as run_app;
pub use kf::run as run_kf;

pub const CORP_ID: &str = "ww-bench";
pub const AGENT_ID: u64 = 1000002;
pub const SECRET: &str = "bench-secret";
const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
/// The customer-service account every 微信客服 message is for.
pub const KF_ACCOUNT: &str = "wk-bench";
/// Every callback's pull token starts so; a pull with another was not asked for by a callback.
pub const KF_TOKEN_PREFIX: &str = "kf-pull-";
/// After the last expected answer, how long to watch for extra (duplicate) ones.
const DUPLICATE_WATCH: Duration = Duration::from_secs(1);
/// Waiting for the answers gives up once none arrived for this long: a backlog that drains
/// slowly is waited for, a stuck one is reported.
const DELIVERY_STALL: Duration = Duration::from_secs(20);

/// What both scenarios stand on: redis, the fake Bailian, the fake WeCom API and botgate.
pub struct Stack {
    pub upstreams: Upstreams,
    pub llm: LlmOptions,
    pub api: Arc<FakeWecom>,
    pub botgate: Botgate,
}

impl Stack {
    /// `kf`: whether the bot also serves customer service.
    pub async fn start(options: &Options, kf: bool) -> anyhow::Result<Stack> {
        let llm = LlmOptions {
            stream: !options.llm_json,
            http2: options.llm_http2,
            delay: Duration::ZERO,
            // The lean fakes: the harness's CPU is taken from the gateway's two cores.
            lean: (!options.llm_http2).then_some(FrameWrites::One),
        };
        let upstreams = Upstreams::start(options.store, llm).await?;
        let api = Arc::new(FakeWecom::start().context("start the fake WeCom API")?);
        let delivery = match options.wecom_delivery_workers {
            Some(workers) => format!("[delivery]\nworkers = {workers}\n\n"),
            None => String::new(),
        };
        let config = format!(
            "{}{delivery}[bots.{BOT}]\nllm = \"main\"\n\n[bots.{BOT}.wecom]\n\
             corp_id = \"{CORP_ID}\"\nagent_id = {AGENT_ID}\nsecret = \"{SECRET}\"\n\
             token = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\nkf = {kf}\napi_base = \"{}\"\n",
            upstreams.config(llm),
            api.url(),
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

/// The bot's callback endpoint, as the admin console has it.
pub fn app() -> anyhow::Result<WecomApp> {
    Ok(WecomApp::new(
        TOKEN,
        EncodingAesKey::parse(AES_KEY).context("the bench's EncodingAESKey")?,
        CORP_ID,
    ))
}

/// `callback` as WeCom posts it, signed now with a fresh nonce and IV, as request bytes.
pub fn callback_request(app: &WecomApp, callback: &SimulatedCallback) -> anyhow::Result<Vec<u8>> {
    let now = unix_secs()?;
    let mut random = [0_u8; 16];
    getrandom::fill(&mut random).context("random bytes")?;
    let nonce = u32::from_le_bytes([random[0], random[1], random[2], random[3]]).to_string();
    let signed = app.sign_callback(callback, now, &nonce, &random);
    Ok(http::post(
        &format!("/wecom/{BOT}?{}", signed.query),
        "text/xml",
        &[],
        signed.body.as_bytes(),
    ))
}

pub fn unix_secs() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs())
}

/// Nearest-rank percentiles of a set of durations.
pub struct Spread {
    sorted: Vec<Duration>,
}

impl Spread {
    pub fn new(mut durations: Vec<Duration>) -> Self {
        durations.sort_unstable();
        Spread { sorted: durations }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The duration below which `quantile` (0..=1) of them fall, in ms; 0 when there are none.
    pub fn ms(&self, quantile: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = (quantile * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1].as_secs_f64() * 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.sorted
            .last()
            .map_or(0.0, |max| max.as_secs_f64() * 1000.0)
    }

    /// "12.3 / 45.6 / 78.9 ms" (p50 / p99 / max).
    pub fn text(&self) -> String {
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.max_ms()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_nearest_rank() {
        let spread = Spread::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!((spread.ms(0.5), spread.ms(0.99)), (50.0, 99.0));
        assert_eq!(spread.max_ms(), 100.0);
        assert_eq!(Spread::new(Vec::new()).ms(0.5), 0.0);
    }
}
