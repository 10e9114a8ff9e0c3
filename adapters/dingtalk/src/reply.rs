//! What answering one robot message needs: where (session webhook, or the robot OpenAPI once it
//! has expired) and whom to @-mention.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::outbound::{
    session_webhook_usable, BatchSendOto, GroupMessageSend, OpenApiSend, OutgoingMessage,
    SessionWebhookMessage,
};

/// One-to-one or group, DingTalk's `conversationType` `"1"` / `"2"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationType {
    Single,
    Group,
}

impl ConversationType {
    /// DingTalk's spelling; anything else is not a conversation type it documents.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "1" => Some(ConversationType::Single),
            "2" => Some(ConversationType::Group),
            _ => None,
        }
    }
}

/// The reply channel of one message. Serialisable so the gateway can queue it with the job.
///
/// `Debug` hides the webhook's query: the `session` parameter is the only credential needed
/// to post into the conversation until it expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// `sessionWebhook`: where to POST the answer, without a token.
    pub session_webhook: Option<String>,
    /// `sessionWebhookExpiredTime`, Unix milliseconds.
    pub session_webhook_expires_ms: Option<u64>,
    pub conversation_type: ConversationType,
    /// `conversationId` (`cid…`): the `openConversationId` of `groupMessages/send`.
    pub conversation_id: String,
    /// `senderStaffId`: the userid to @-mention and to send to with `oToMessages/batchSend`.
    pub sender_staff_id: Option<String>,
    /// `senderId`, present even for senders from another organisation.
    pub sender_id: String,
    /// `senderNick`: the name an AI card's @-mention shows. Absent in contexts stored before
    /// cards existed.
    #[serde(default)]
    pub sender_nick: Option<String>,
    /// `robotCode` (the appKey of enterprise-internal robots).
    pub robot_code: Option<String>,
}

impl ReplyContext {
    pub fn is_group(&self) -> bool {
        self.conversation_type == ConversationType::Group
    }

    /// Whom an answer @-mentions: the sender in a group (when DingTalk gave a userid for them),
    /// nobody in a one-to-one chat, where a mention adds nothing.
    pub fn at_user_ids(&self) -> Vec<String> {
        match (self.is_group(), &self.sender_staff_id) {
            (true, Some(staff_id)) => vec![staff_id.clone()],
            _ => Vec::new(),
        }
    }

    /// The session webhook, if it is still usable at `now_ms` (see
    /// [`session_webhook_usable`]) and its host is one of `hosts`.
    pub fn usable_webhook(&self, now_ms: u64, hosts: &[&str]) -> Option<&str> {
        let url = self.session_webhook.as_deref()?;
        let expires_ms = self.session_webhook_expires_ms?;
        session_webhook_usable(url, expires_ms, now_ms, hosts).then_some(url)
    }

    /// The session-webhook body saying `message`, @-mentioning the sender in a group.
    pub fn webhook_body(&self, message: &OutgoingMessage<'_>) -> String {
        SessionWebhookMessage::new(message, self.is_group().then(|| self.at_user_ids())).to_json()
    }

    /// The robot OpenAPI call that says `message` once the webhook is gone: a group message to
    /// the conversation, or a one-to-one message to the sender. `None` when the message lacks
    /// what the call needs (no `robotCode`, or a sender without a userid in a one-to-one chat).
    pub fn openapi_send(&self, message: &OutgoingMessage<'_>) -> Option<OpenApiSend> {
        let robot_code = self.robot_code.as_deref()?;
        match self.conversation_type {
            ConversationType::Group => Some(OpenApiSend::Group(GroupMessageSend::new(
                robot_code,
                &self.conversation_id,
                message,
            ))),
            ConversationType::Single => {
                let staff_id = self.sender_staff_id.as_deref()?;
                Some(OpenApiSend::Single(BatchSendOto::new(
                    robot_code,
                    &[staff_id],
                    message,
                )))
            }
        }
    }
}

impl fmt::Debug for ReplyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let webhook = self
            .session_webhook
            .as_deref()
            .map(|url| match url.split_once('?') {
                Some((base, _)) => format!("{base}?<redacted>"),
                None => url.to_owned(),
            });
        f.debug_struct("ReplyContext")
            .field("session_webhook", &webhook)
            .field(
                "session_webhook_expires_ms",
                &self.session_webhook_expires_ms,
            )
            .field("conversation_type", &self.conversation_type)
            .field("conversation_id", &self.conversation_id)
            .field("sender_staff_id", &self.sender_staff_id)
            .field("sender_id", &self.sender_id)
            .field("sender_nick", &self.sender_nick)
            .field("robot_code", &self.robot_code)
            .finish()
    }
}
