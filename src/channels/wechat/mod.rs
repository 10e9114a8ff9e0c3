//! The WeChat Official Account channel: accounts built from settings, and the reply modes.

pub mod active;
pub mod api;
mod render;

pub use render::{active_parts, answer_parts, CONTINUE_HINT};

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use botgate_wechat::WechatAccount;
use botgate_wxcrypt::EncodingAesKey;
use secrecy::ExposeSecret;

use crate::channels::passive::PassiveWindow;
use crate::config::{Settings, WechatSettings};

pub struct WechatChannel {
    pub account: WechatAccount,
    pub settings: WechatSettings,
    /// Passive mode's reply window (active mode's too, while WeChat refuses its sends).
    pub window: PassiveWindow,
}

/// One channel per bot with a `[bots.NAME.wechat]` table.
pub fn build(settings: &Settings) -> anyhow::Result<HashMap<String, WechatChannel>> {
    let mut channels = HashMap::new();
    for (name, bot) in &settings.bots {
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
            },
        );
    }
    Ok(channels)
}
