//! `botgate simulate`: talk to a running gateway as a platform does. Here `simulate wechat`: talk to a running gateway exactly as WeChat does — signed, encrypted
//! per the account's mode, 5-second timeout, up to three deliveries — and read the reply.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use botgate_wechat::{CallbackMode, SimulatedMessage, WechatAccount};
use botgate_wxcrypt::EncodingAesKey;
use secrecy::ExposeSecret;

use crate::config::WechatSettings;

mod dingtalk;
mod wecom;

pub use dingtalk::DingtalkSimulator;
pub use wecom::{content, Sent, WecomSimulator, SIMULATED_KF};

/// WeChat's patience with one delivery, and how many deliveries it makes.
pub const WECHAT_TIMEOUT: Duration = Duration::from_secs(5);
pub const WECHAT_DELIVERIES: u32 = 3;

pub struct WechatSimulator {
    http: reqwest::Client,
    url: String,
    account: WechatAccount,
    mode: CallbackMode,
    timeout: Duration,
}

/// What WeChat saw of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Deliveries made (1 when the first was answered in time).
    pub attempts: u32,
    /// The reply's text; `None` for `success`/empty or when every delivery timed out.
    pub reply: Option<String>,
    /// Whether a delivery was answered in time at all.
    pub answered: bool,
    pub elapsed: Duration,
}

impl WechatSimulator {
    /// `base_url` is the gateway's (`http://127.0.0.1:8080`); `mode` defaults to safe when the
    /// account has a key, plaintext otherwise.
    pub fn new(
        base_url: &str,
        bot: &str,
        settings: &WechatSettings,
        mode: Option<CallbackMode>,
    ) -> anyhow::Result<Self> {
        let key = settings
            .encoding_aes_key
            .as_ref()
            .map(|key| EncodingAesKey::parse(key.expose_secret()))
            .transpose()
            .context("encoding_aes_key")?;
        let mode = mode.unwrap_or(if key.is_some() {
            CallbackMode::Safe
        } else {
            CallbackMode::Plaintext
        });
        if mode != CallbackMode::Plaintext && key.is_none() {
            bail!("mode {mode:?} needs an encoding_aes_key in [bots.{bot}.wechat]");
        }
        Ok(WechatSimulator {
            http: reqwest::Client::builder()
                .build()
                .context("build the HTTP client")?,
            url: format!("{}/wechat/{bot}", base_url.trim_end_matches('/')),
            account: WechatAccount::new(settings.token.expose_secret(), key, &settings.app_id),
            mode,
            timeout: WECHAT_TIMEOUT,
        })
    }

    /// Shorter patience, for tests that also shorten the gateway's `passive_wait_ms`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn account(&self) -> &WechatAccount {
        &self.account
    }

    /// Sends `message` from `user` the way WeChat does: the same signed request up to three
    /// times, each abandoned after the timeout. A non-200 answer is an error. Signed with the
    /// current time, as WeChat does: the gateway refuses timestamps outside its window.
    pub async fn send(&self, user: &str, message: &SimulatedMessage) -> anyhow::Result<Delivery> {
        let started = Instant::now();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let xml = message.to_xml(user, "gh_simulated", now);
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).context("random bytes")?;
        let nonce = format!(
            "{}",
            u32::from_le_bytes([random[0], random[1], random[2], random[3]])
        );
        let request = self
            .account
            .sign_request(self.mode, &xml, now, &nonce, &random)?;
        let url = format!("{}?{}", self.url, request.query);
        for attempt in 1..=WECHAT_DELIVERIES {
            let sent = self
                .http
                .post(&url)
                .header("Content-Type", "text/xml")
                .timeout(self.timeout)
                .body(request.body.clone())
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) if error.is_timeout() => continue,
                Err(error) => return Err(error).context("deliver to the gateway"),
            };
            let status = response.status();
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(error) if error.is_timeout() => continue,
                Err(error) => return Err(error).context("read the gateway's reply"),
            };
            if !status.is_success() {
                bail!(
                    "gateway answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let reply = self.account.open_reply(&body).context("read the reply")?;
            return Ok(Delivery {
                attempts: attempt,
                reply,
                answered: true,
                elapsed: started.elapsed(),
            });
        }
        Ok(Delivery {
            attempts: WECHAT_DELIVERIES,
            reply: None,
            answered: false,
            elapsed: started.elapsed(),
        })
    }
}

/// Delivers the platform's `request` to the gateway, then collects what the gateway sent to
/// the simulator's fake platform (`server`, stopped on return): the first within `wait`, the
/// rest until two seconds pass without another part.
async fn deliver_and_collect<T>(
    request: reqwest::RequestBuilder,
    received: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    wait: Duration,
    server: actix_web::dev::Server,
) -> anyhow::Result<Vec<T>> {
    let handle = server.handle();
    let serving = crate::spawn_traced(server);
    let delivered = async {
        let response = request
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .context("deliver to the gateway")?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("gateway answered {status}: {body}");
        }
        let mut answers = Vec::new();
        let mut patience = wait;
        while let Ok(Some(answer)) = tokio::time::timeout(patience, received.recv()).await {
            answers.push(answer);
            // More parts follow quickly once the first is out.
            patience = Duration::from_secs(2);
        }
        Ok(answers)
    }
    .await;
    handle.stop(false).await;
    let _ = serving.await;
    delivered
}
