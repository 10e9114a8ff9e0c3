//! Active mode: acknowledge at once, answer through the customer-service API (verified accounts).

use std::time::Duration;

use tokio::sync::oneshot;

use std::sync::Arc;

use super::api::{ApiError, WechatApi};
use crate::channels::channel::Deliver;
use crate::channels::passive::{Mailbox, Outbox};
use crate::channels::send::SendError;
use crate::core::job::JobPayload;
use crate::store::{Store, StoreError};

/// The typing indicator lasts 15 s and cannot be renewed while active (45081), so refresh just
/// after it lapses.
const TYPING_REFRESH: Duration = Duration::from_secs(15);
/// How long a bot whose account lacks the customer-service permission answers passively
/// before active mode is tried again.
const PASSIVE_FALLBACK_TTL: Duration = Duration::from_secs(3600);

pub struct WechatActive {
    pub api: WechatApi,
    outbox: Outbox,
    store: Store,
    bot: String,
    fallback_key: String,
}

impl WechatActive {
    pub fn new(api: WechatApi, outbox: Outbox, store: Store, bot: &str, prefix: &str) -> Self {
        WechatActive {
            api,
            outbox,
            store,
            bot: bot.to_owned(),
            fallback_key: fallback_key(prefix, bot),
        }
    }

    /// One part, with one token refresh when WeChat says the token is stale (the cached token
    /// is invalidated only if it is still the one that failed, so replicas never fight).
    pub async fn send_part(&self, openid: &str, part: &str) -> Result<(), SendError> {
        let mut refreshed = false;
        loop {
            let token = self
                .api
                .token()
                .await
                .map_err(|error| SendError::Transient {
                    code: "token".into(),
                    message: error.to_string(),
                })?;
            match self.api.send_text(&token, openid, part).await {
                Ok(()) => return Ok(()),
                Err(ApiError::Token(code)) if !refreshed => {
                    tracing::warn!(code, "wechat token rejected; refreshing once");
                    self.api.invalidate(&token).await;
                    refreshed = true;
                }
                Err(ApiError::Token(code)) => {
                    return Err(SendError::Transient {
                        code: code.to_string(),
                        message: "token rejected twice".into(),
                    })
                }
                Err(ApiError::NoPermission) => {
                    return Err(SendError::Fallback {
                        code: "48001".into(),
                        message: "the account has no customer-service API permission".into(),
                    })
                }
                Err(ApiError::Send(kind)) => return Err(kind.into()),
            }
        }
    }

    /// 48001: this account cannot send actively. The answer's unsent `parts` wait in the
    /// user's passive outbox (their next messages receive them, one per message, each but the
    /// last asking for a reply) and the bot answers passively for a while. Once per message.
    pub async fn fall_back(
        &self,
        openid: &str,
        message_id: &str,
        parts: &[String],
    ) -> Result<(), StoreError> {
        tracing::error!(
            bot = %self.bot,
            "wechat active mode refused with 48001 (no customer-service permission): answering passively; set reply_mode = \"passive\" or grant the permission"
        );
        self.store
            .set(&self.fallback_key, "48001", PASSIVE_FALLBACK_TTL)
            .await?;
        let passive = super::answer_parts(&parts.join("\n\n"));
        let mailbox = Mailbox {
            bot: &self.bot,
            user: openid,
        };
        self.outbox.push_parts(mailbox, message_id, &passive).await
    }

    /// Shows "typing…" to the user until the returned sender is dropped.
    pub fn typing(self: &Arc<Self>, openid: &str) -> oneshot::Sender<()> {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let active = self.clone();
        let openid = openid.to_owned();
        crate::spawn_traced(async move {
            loop {
                if let Ok(token) = active.api.token().await {
                    // Typing is a courtesy: 45080 (no recent interaction) and friends are ignored.
                    if let Err(error) = active.api.typing(&token, &openid, true).await {
                        tracing::debug!(?error, "typing indicator refused");
                    }
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(TYPING_REFRESH) => {}
                }
            }
        });
        stop
    }
}

impl Deliver for Arc<WechatActive> {
    type Live = crate::channels::live::NoLive;

    fn parts(&self, _job: &JobPayload, text: &str) -> Vec<String> {
        super::active_parts(text)
    }

    async fn send(
        &self,
        job: &JobPayload,
        _chunk: usize,
        _chunks: usize,
        part: &str,
    ) -> Result<(), SendError> {
        self.send_part(&job.sender, part).await
    }

    fn typing(&self, job: &JobPayload) -> Option<oneshot::Sender<()>> {
        Some(WechatActive::typing(self, &job.sender))
    }

    async fn fall_back(&self, job: &JobPayload, unsent: &[String]) -> Result<(), StoreError> {
        WechatActive::fall_back(self, &job.sender, &job.message_id, unsent).await
    }
}

pub fn fallback_key(prefix: &str, bot: &str) -> String {
    crate::keys::passive_fallback(prefix, botgate_contract::Platform::Wechat.as_str(), bot)
}
