//! The WeCom (企业微信) channel: a self-built app's members, and the 微信客服 accounts it
//! manages. Callbacks are acknowledged with an empty 200 once durably queued (or, for
//! customer service, once pulled); answers go out through the API.

mod api;
mod kf;
mod sender;

pub use kf::{kf_conversation, kf_customer};
pub use sender::{WecomSender, KF_PARTS};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use botgate_wecom::{KfNotice, WecomApp};
use botgate_wxcrypt::EncodingAesKey;
use secrecy::ExposeSecret;

use crate::channels::channel::{Channel, NoticeError};
use crate::channels::source::Admit;
use crate::channels::wiring::Wiring;
use api::WecomApi;
use kf::KfPuller;

pub struct WecomChannel {
    app: WecomApp,
    sender: WecomSender,
    /// Customer service, when the bot serves it.
    kf: Option<Arc<KfPuller>>,
}

impl Channel for WecomChannel {
    type Adapter = WecomApp;
    type Sender = WecomSender;
    const ROUTE: &'static str = "wecom";
    const HANDSHAKE: bool = true;

    fn build(wiring: &Wiring<'_>) -> anyhow::Result<HashMap<String, Self>> {
        let mut channels = HashMap::new();
        for (name, bot) in &wiring.settings.bots {
            let Some(wecom) = &bot.wecom else { continue };
            let key = EncodingAesKey::parse(wecom.encoding_aes_key.expose_secret())
                .with_context(|| format!("bots.{name}.wecom.encoding_aes_key"))?;
            let app = WecomApp::new(wecom.token.expose_secret(), key, &wecom.corp_id)
                .timestamp_window(Duration::from_secs(wecom.timestamp_window_secs));
            let metrics = wiring.conversations.metrics().clone();
            let api = |secret: &secrecy::SecretString, scope: &str| {
                Arc::new(WecomApi::new(
                    wiring.http.clone(),
                    &wecom.api_base,
                    &wecom.corp_id,
                    secret.clone(),
                    scope,
                    wiring.tokens.clone(),
                    metrics.clone(),
                ))
            };
            let app_api = api(&wecom.secret, &format!("app:{}", wecom.agent_id));
            let kf_api = match (&wecom.kf, &wecom.kf_secret) {
                (false, _) => None,
                (true, None) => Some(app_api.clone()),
                (true, Some(secret)) => Some(api(secret, "kf")),
            };
            let kf = kf_api.clone().map(|api| {
                Arc::new(KfPuller {
                    api,
                    store: wiring.conversations.store().clone(),
                    limits: wiring.conversations.limits().clone(),
                    prefix: wiring.key_prefix().to_owned(),
                    bot: name.clone(),
                    welcome: wecom
                        .kf_welcome
                        .clone()
                        .unwrap_or_else(|| bot.welcome.clone()),
                    metrics: metrics.clone(),
                    tasks: wiring.tasks.clone(),
                })
            });
            let sender = WecomSender {
                app: app_api,
                kf: kf_api,
                agent_id: wecom.agent_id,
                format: wecom.reply_format,
                limits: wiring.conversations.limits().clone(),
                bot: name.clone(),
                metrics,
            };
            channels.insert(name.clone(), WecomChannel { app, sender, kf });
        }
        Ok(channels)
    }

    fn adapter(&self) -> &WecomApp {
        &self.app
    }

    fn sender(&self) -> Option<WecomSender> {
        Some(self.sender.clone())
    }

    async fn notice(
        &self,
        bot: &str,
        notice: KfNotice,
        inlet: Arc<dyn Admit>,
    ) -> Result<(), NoticeError> {
        match &self.kf {
            Some(kf) => kf.notice(notice, inlet).await,
            None => {
                tracing::warn!(
                    bot,
                    "a 微信客服 callback, but [bots.NAME.wecom] has kf = false: ignored"
                );
                Ok(())
            }
        }
    }
}
