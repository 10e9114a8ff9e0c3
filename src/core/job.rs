//! What a queued job carries: the message, where the answer goes, and its place in the conversation.

use botgate_contract::{Content, InboundMessage, Platform};
use serde::{Deserialize, Serialize};

/// What happened to an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Durably enqueued under this job id (its ticket in the conversation).
    Enqueued(String),
    /// Seen before (a platform retry, a redelivery, another replica's): nothing to do.
    Duplicate,
    /// Needs no answer (an ignored event).
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobContent {
    Text { text: String },
    Image { url: String },
    Voice { recognition: Option<String> },
    FirstContact,
    Left,
}

impl JobContent {
    /// `None` for content that needs no job (ignored events).
    pub fn from_content(content: &Content) -> Option<Self> {
        Some(match content {
            Content::Text(text) => JobContent::Text { text: text.clone() },
            Content::Image { url } => JobContent::Image { url: url.clone() },
            Content::Voice { recognition } => JobContent::Voice {
                recognition: recognition.clone(),
            },
            Content::FirstContact => JobContent::FirstContact,
            Content::Left => JobContent::Left,
            Content::Ignored { .. } => return None,
        })
    }

    pub fn to_content(&self) -> Content {
        match self {
            JobContent::Text { text } => Content::Text(text.clone()),
            JobContent::Image { url } => Content::Image { url: url.clone() },
            JobContent::Voice { recognition } => Content::Voice {
                recognition: recognition.clone(),
            },
            JobContent::FirstContact => Content::FirstContact,
            JobContent::Left => Content::Left,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    pub bot: String,
    pub platform: String,
    pub conversation: String,
    pub sender: String,
    pub message_id: String,
    pub content: JobContent,
    pub received_at_ms: u64,
    /// A reply decided at accept time (e.g. the rate-limit notice): sent without an LLM call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl JobPayload {
    pub fn platform(&self) -> Option<Platform> {
        Platform::parse(&self.platform)
    }

    pub fn message(&self) -> Option<InboundMessage> {
        Some(InboundMessage {
            platform: self.platform()?,
            conversation: self.conversation.clone(),
            sender: self.sender.clone(),
            message_id: self.message_id.clone(),
            content: self.content.to_content(),
        })
    }
}
