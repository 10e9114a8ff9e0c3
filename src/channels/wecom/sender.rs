//! Answers to WeCom: app members through `message/send`, 微信客服 customers through
//! `kf/send_msg`; the job's conversation says which (see [`super::kf_conversation`]).

use std::sync::Arc;
use std::time::Duration;

use botgate_text::PartsPolicy;
use botgate_wecom::kf::{SendMsgId, SendMsgRequest};
use serde_json::json;

use super::api::{ApiError, WecomApi};
use super::kf::kf_customer;
use crate::channels::channel::Deliver;
use crate::channels::send::SendError;
use crate::config::ReplyFormat;
use crate::core::job::JobPayload;
use crate::limits::Limits;
use crate::metrics::{DeliveryLabels, Metrics};
use crate::telemetry::log_message_id;

/// WeCom truncates text beyond 2048 bytes without an error; stay clear of the edge.
const PART_BYTES: usize = 2000;
/// 微信客服 takes 5 messages per customer message (fail_type 6 beyond).
const KF_MAX_PARTS: usize = 5;
const TRUNCATED_HINT: &str = "……（回答较长，其余部分已省略）";
/// WeCom drops (silently) app messages beyond 30 a minute to one member.
const MEMBER_MESSAGES_PER_MINUTE: u32 = 30;
/// A part waits this long at most for its member's window (one window and a bit), then the
/// engine's retries take over.
const MEMBER_WAIT: Duration = Duration::from_secs(65);
const MEMBER_POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct WecomSender {
    pub(super) app: Arc<WecomApi>,
    /// Customer service's API, when the bot serves it (the app's own when they share a secret).
    pub(super) kf: Option<Arc<WecomApi>>,
    pub(super) agent_id: u64,
    pub(super) format: ReplyFormat,
    pub(super) limits: Limits,
    pub(super) bot: String,
    pub(super) metrics: Arc<Metrics>,
}

impl WecomSender {
    fn app_parts(&self) -> PartsPolicy {
        PartsPolicy {
            max_bytes: PART_BYTES,
            max_parts: None,
            continue_hint: None,
            truncated_hint: "",
            plain_text: self.format == ReplyFormat::Text,
        }
    }

    async fn send_app(&self, job: &JobPayload, chunk: usize, part: &str) -> Result<(), SendError> {
        self.member_turn(job, chunk).await?;
        let body = match self.format {
            ReplyFormat::Text => json!({
                "touser": job.sender, "msgtype": "text", "agentid": self.agent_id,
                "text": {"content": part},
            }),
            ReplyFormat::Markdown => json!({
                "touser": job.sender, "msgtype": "markdown", "agentid": self.agent_id,
                "markdown": {"content": part},
            }),
        };
        self.app
            .call("message/send", &body)
            .await
            .map(drop)
            .map_err(SendError::from)
    }

    async fn send_kf(
        &self,
        api: &WecomApi,
        open_kfid: &str,
        customer: &str,
        job: &JobPayload,
        chunk: usize,
        part: &str,
    ) -> Result<(), SendError> {
        // Our own msgid makes a resent part a duplicate WeCom drops, and lets a later
        // msg_send_fail event name the part it is about.
        let msgid = SendMsgId::derive_from(&format!("{}:{chunk}", job.message_id));
        // The line a later msg_send_fail (which names only this msgid) is matched with.
        tracing::debug!(msgid = msgid.as_str(), message_id = %log_message_id(&job.message_id), chunk, "kf part sent");
        let body = SendMsgRequest::text(customer, open_kfid, Some(msgid), part);
        match api.call("kf/send_msg", &body).await {
            Ok(_) => Ok(()),
            Err(ApiError::HumanHasSession) => {
                // A person is talking to the customer now: the bot stays out of it.
                tracing::info!(bot = %self.bot, "a human servicer has this 微信客服 session (95018): the answer is not sent");
                self.metrics
                    .deliveries
                    .get_or_create(&DeliveryLabels {
                        platform: "wecom",
                        outcome: "withheld",
                        code: "95018".into(),
                    })
                    .inc();
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}

impl WecomSender {
    /// Waits until this part may go to its member without passing WeCom's 30 a minute (beyond
    /// which WeCom drops messages without an error). The window is shared by every replica;
    /// a part is counted once however often it asks.
    async fn member_turn(&self, job: &JobPayload, chunk: usize) -> Result<(), SendError> {
        let key = format!("wecom:{}:{}", self.bot, job.sender);
        let event = format!("{}:{chunk}", job.message_id);
        let deadline = tokio::time::Instant::now() + MEMBER_WAIT;
        loop {
            let allowed = self
                .limits
                .allow(
                    &key,
                    &event,
                    MEMBER_MESSAGES_PER_MINUTE,
                    Duration::from_secs(60),
                )
                .await
                .map_err(|error| SendError::Transient {
                    code: "store".into(),
                    message: error.to_string(),
                })?;
            if allowed {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SendError::Transient {
                    code: "member_rate".into(),
                    message: "30 messages a minute to this member already; WeCom would drop more"
                        .into(),
                });
            }
            tokio::time::sleep(crate::clock::jittered(MEMBER_POLL, MEMBER_POLL)).await;
        }
    }
}

impl Deliver for WecomSender {
    type Live = crate::channels::live::NoLive;

    /// App members get text or WeCom markdown; customer service plain text, at most five
    /// messages.
    fn parts(&self, job: &JobPayload, text: &str) -> Vec<String> {
        match kf_customer(&job.conversation) {
            None => self.app_parts().parts(text),
            Some(_) => KF_PARTS.parts(text),
        }
    }

    async fn send(
        &self,
        job: &JobPayload,
        chunk: usize,
        _chunks: usize,
        part: &str,
    ) -> Result<(), SendError> {
        match kf_customer(&job.conversation) {
            None => self.send_app(job, chunk, part).await,
            Some((open_kfid, customer)) => {
                let api = self.kf.as_ref().ok_or_else(|| SendError::Permanent {
                    code: "config".into(),
                    message: "a 微信客服 answer, but [bots.NAME.wecom] has kf = false".into(),
                })?;
                self.send_kf(api, open_kfid, customer, job, chunk, part)
                    .await
            }
        }
    }
}

/// Customer-service answers: plain text, at most five messages.
pub const KF_PARTS: PartsPolicy = PartsPolicy {
    max_bytes: PART_BYTES,
    max_parts: Some(KF_MAX_PARTS),
    continue_hint: None,
    truncated_hint: TRUNCATED_HINT,
    plain_text: true,
};
