//! The WeChat Official Account channel: accounts built from settings, and the reply modes.

pub mod active;
pub mod api;
mod channel;
mod render;

pub use render::{active_parts, answer_parts, CONTINUE_HINT};

use std::sync::Arc;

use botgate_wechat::WechatAccount;

use crate::channels::passive::{Passive, PassiveWindow};
use crate::config::WechatSettings;
use crate::store::Store;
use active::WechatActive;

pub struct WechatChannel {
    pub account: WechatAccount,
    pub settings: WechatSettings,
    /// Passive mode's reply window (active mode's too, while WeChat refuses its sends).
    pub window: PassiveWindow,
    passive: Passive,
    /// Active mode's sender.
    active: Option<Arc<WechatActive>>,
    store: Store,
    /// Set while WeChat refuses this active account's sends (48001).
    fallback_key: String,
}
