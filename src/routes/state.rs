//! What every request handler shares, and the per-sender rate limit every channel applies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use botgate_contract::{Content, InboundMessage};

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
    pub acceptor: Acceptor,
    pub limits: Limits,
}

impl AppState {
    /// The bot's polite notice when this sender is over its message rate (then no LLM call is
    /// made); `None` when within the rate or no limit is configured. Shared by all replicas.
    /// Only what asks something counts (text, voice, images, a menu click that asks its key),
    /// each message once however often the platform delivers it; events (subscribe,
    /// unsubscribe, location reports) are never counted nor answered with the notice.
    pub async fn rate_limit_notice(
        &self,
        bot: &str,
        message: &InboundMessage,
    ) -> Result<Option<String>, StoreError> {
        if !matches!(
            message.content,
            Content::Text(_) | Content::Voice { .. } | Content::Image { .. }
        ) {
            return Ok(None);
        }
        let Some(rate) = self
            .conversations
            .bot(bot)
            .and_then(|bot| bot.settings.rate_limit.as_ref())
        else {
            return Ok(None);
        };
        let key = format!("rate:{bot}:{}:{}", message.platform, message.sender);
        let allowed = self
            .limits
            .allow(
                &key,
                &message.message_id,
                rate.messages,
                Duration::from_secs(rate.per_secs),
            )
            .await?;
        Ok((!allowed).then(|| rate.reply.clone()))
    }
}
