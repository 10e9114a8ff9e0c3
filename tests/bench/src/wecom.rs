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
mod fake_api;
mod kf;
mod kf_sends;
mod sync_log;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use botgate_wecom::{SimulatedCallback, WecomApp};
use botgate_wxcrypt::EncodingAesKey;

use crate::fixture::BOT;
use crate::http;
use crate::platform;
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

/// What both scenarios stand on: redis, the fake Bailian, the fake WeCom API and botgate.
pub type Stack = platform::Stack<FakeWecom>;

/// `kf`: whether the bot also serves customer service.
pub async fn start_stack(options: &Options, kf: bool) -> anyhow::Result<Stack> {
    let api = || FakeWecom::start().context("start the fake WeCom API");
    Stack::start(options, api, |api| {
        format!(
            "[bots.{BOT}.wecom]\ncorp_id = \"{CORP_ID}\"\nagent_id = {AGENT_ID}\n\
             secret = \"{SECRET}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\n\
             kf = {kf}\napi_base = \"{}\"\n",
            api.url(),
        )
    })
    .await
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
