//! What every request handler shares, and the per-sender rate limit every channel applies.

use std::collections::HashMap;
use std::sync::Arc;

use botgate_contract::InboundMessage;

use crate::channels::passive::Passive;
use crate::channels::webhook::WebhookChannel;
use crate::channels::wechat::WechatChannel;
use crate::core::Conversations;
use crate::delivery::Acceptor;
use crate::limits::Limits;
use crate::store::StoreError;

/// What every request handler shares.
pub struct AppState {
    pub conversations: Arc<Conversations>,
    pub wechat: HashMap<String, WechatChannel>,
    pub passive: Passive,
    pub webhooks: HashMap<String, WebhookChannel>,
    pub key_prefix: String,
    pub acceptor: Arc<Acceptor>,
    /// What each inbound source (not a route) reports of its connection.
    pub sources: crate::sources::Statuses,
    pub limits: Limits,
}

impl AppState {
    /// See [`Conversations::rate_limit_notice`].
    pub async fn rate_limit_notice(
        &self,
        bot: &str,
        message: &InboundMessage,
    ) -> Result<Option<String>, StoreError> {
        self.conversations.rate_limit_notice(bot, message).await
    }
}
