//! `/wechat/{bot}`: WeChat Official Account callbacks (GET URL verification, POST messages),
//! answered inside the request (passive) or acknowledged and sent through the API (active).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use botgate_wechat::WechatAccount;
use botgate_wxcrypt::EncodingAesKey;
use secrecy::ExposeSecret;

use super::active::{fallback_key, WechatActive};
use super::api::WechatApi;
use super::{answer_parts, WechatChannel, CONTINUE_HINT};
use crate::channels::channel::Channel;
use crate::channels::passive::{Outbox, Passive, PassiveWindow};
use crate::channels::wiring::Wiring;
use crate::config::ReplyMode;
use crate::store::{Store, StoreError};
use botgate_contract::Platform;

impl Channel for WechatChannel {
    type Adapter = WechatAccount;
    type Sender = Arc<WechatActive>;
    const ROUTE: &'static str = "wechat";
    const HANDSHAKE: bool = true;

    /// One channel per bot with a `[bots.NAME.wechat]` table; their passive answers share one
    /// outbox.
    fn build(wiring: &Wiring<'_>) -> anyhow::Result<HashMap<String, Self>> {
        let prefix = wiring.key_prefix();
        let store = wiring.conversations.store();
        let outbox = match store {
            Store::Memory(_) => Outbox::memory(CONTINUE_HINT),
            Store::Redis(redis) => Outbox::redis(
                redis.connection(),
                wiring.conversations.keys().clone(),
                Platform::Wechat,
                CONTINUE_HINT,
            ),
        };
        let passive = Passive::new(
            Platform::Wechat,
            outbox.clone(),
            answer_parts,
            wiring.tasks.clone(),
        );
        let mut channels = HashMap::new();
        for (name, bot) in &wiring.settings.bots {
            let Some(wechat) = &bot.wechat else { continue };
            let key = wechat
                .encoding_aes_key
                .as_ref()
                .map(|key| EncodingAesKey::parse(key.expose_secret()))
                .transpose()
                .with_context(|| format!("bots.{name}.wechat.encoding_aes_key"))?;
            let mut account = WechatAccount::new(wechat.token.expose_secret(), key, &wechat.app_id)
                .timestamp_window(Duration::from_secs(wechat.timestamp_window_secs));
            if wechat.requires_encryption() {
                account = account.require_encryption();
            }
            let active = match wechat.reply_mode {
                ReplyMode::Passive => None,
                ReplyMode::Active => {
                    let secret = wechat.app_secret.clone().with_context(|| {
                        format!("bots.{name}.wechat: active mode needs app_secret")
                    })?;
                    let api = WechatApi::new(
                        wiring.http.clone(),
                        &wechat.api_base,
                        &wechat.app_id,
                        secret,
                        wiring.tokens.clone(),
                        wiring.conversations.metrics().clone(),
                    );
                    Some(Arc::new(WechatActive::new(
                        api,
                        outbox.clone(),
                        store.clone(),
                        name,
                        prefix,
                    )))
                }
            };
            channels.insert(
                name.clone(),
                WechatChannel {
                    account,
                    window: PassiveWindow {
                        wait: Duration::from_millis(wechat.passive_wait_ms),
                        deadline: Duration::from_millis(wechat.deadline_ms),
                        placeholder: wechat.placeholder.clone(),
                    },
                    settings: wechat.clone(),
                    passive: passive.clone(),
                    active,
                    store: store.clone(),
                    fallback_key: fallback_key(prefix, name),
                },
            );
        }
        Ok(channels)
    }

    fn adapter(&self) -> &WechatAccount {
        &self.account
    }

    /// Passive accounts always answer in the request; active ones too while WeChat refuses
    /// their sends (48001).
    async fn window(&self) -> Result<Option<(&Passive, &PassiveWindow)>, StoreError> {
        if self.active.is_some() && self.store.get(&self.fallback_key).await?.is_none() {
            return Ok(None);
        }
        Ok(Some((&self.passive, &self.window)))
    }

    fn sender(&self) -> Option<Arc<WechatActive>> {
        self.active.clone()
    }
}
