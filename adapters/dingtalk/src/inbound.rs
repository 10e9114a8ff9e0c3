//! From a robot message to the platform-neutral message the conversation core acts on, shared
//! by HTTP mode and Stream mode.

use std::convert::Infallible;

use botgate_contract::{AdapterError, Content, Inbound, InboundMessage, Platform};

use crate::reply::{ConversationType, ReplyContext};
use crate::wire::RobotMessage;

/// What a robot message asks of the gateway: an answer, or nothing (a group message that does
/// not @-mention the robot).
pub type RobotInbound = Inbound<ReplyContext, Infallible>;

/// Parses and maps one robot message body (HTTP body or Stream `data`).
pub fn decode_robot_message(json: &[u8]) -> Result<RobotInbound, AdapterError> {
    map_robot_message(RobotMessage::parse(json)?)
}

/// Maps one parsed robot message.
pub fn map_robot_message(wire: RobotMessage) -> Result<RobotInbound, AdapterError> {
    let message_id = non_empty(wire.message_id.clone(), "message without msgId")?;
    let conversation_id = non_empty(
        wire.conversation_id.clone(),
        "message without conversationId",
    )?;
    let conversation_type = wire
        .conversation_type
        .as_deref()
        .ok_or_else(|| malformed("message without conversationType".to_owned()))
        .and_then(|value| {
            ConversationType::parse(value)
                .ok_or_else(|| malformed(format!("unknown conversationType {value:?}")))
        })?;
    // Groups deliver only messages that @-mention the robot, but a group robot that answered
    // every message it happened to see would be a nuisance: without the flag, stay silent.
    if conversation_type == ConversationType::Group && wire.is_in_at_list != Some(true) {
        return Ok(Inbound::Ignore);
    }
    let sender_staff_id = wire.sender_staff_id.clone().filter(|id| !id.is_empty());
    let sender_id = wire.sender_id.clone().filter(|id| !id.is_empty());
    // The staff id is the userid the OpenAPI and @-mentions take; cross-organisation senders
    // have none, and their senderId is the only stable id left.
    let sender = sender_staff_id
        .clone()
        .or_else(|| sender_id.clone())
        .ok_or_else(|| malformed("message without senderStaffId or senderId".to_owned()))?;
    let content = content(&wire)?;
    Ok(Inbound::Message {
        message: InboundMessage {
            platform: Platform::Dingtalk,
            conversation: conversation_id.clone(),
            sender: sender.clone(),
            message_id,
            content,
        },
        reply: ReplyContext {
            session_webhook: wire.session_webhook.filter(|url| !url.is_empty()),
            session_webhook_expires_ms: wire.session_webhook_expired_time,
            conversation_type,
            conversation_id,
            sender_staff_id,
            sender_id: sender_id.unwrap_or(sender),
            sender_nick: wire.sender_nick.clone().filter(|nick| !nick.is_empty()),
            robot_code: wire.robot_code.filter(|code| !code.is_empty()),
        },
    })
}

fn content(wire: &RobotMessage) -> Result<Content, AdapterError> {
    let kind = non_empty(wire.message_type.clone(), "message without msgtype")?;
    Ok(match kind.as_str() {
        // DingTalk removes the robot's own @Name and leaves the space before it; other people's
        // @Nick stay as typed, and guessing which @-tokens are names would eat real text.
        "text" => {
            let text = wire
                .text
                .as_ref()
                .ok_or_else(|| malformed("text message without text".to_owned()))?;
            Content::Text(text.content.trim().to_owned())
        }
        "richText" => {
            let text = wire.rich_text().concat();
            match text.trim() {
                "" => Content::Ignored { kind },
                text => Content::Text(text.to_owned()),
            }
        }
        "audio" => Content::Voice {
            recognition: wire
                .recognition()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned),
        },
        // Pictures come as a downloadCode that only the OpenAPI turns into a URL, so there is
        // nothing a model could fetch: acknowledged and left unanswered, like video and files.
        _ => Content::Ignored { kind },
    })
}

fn non_empty(value: Option<String>, reason: &str) -> Result<String, AdapterError> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| malformed(reason.to_owned()))
}

fn malformed(reason: String) -> AdapterError {
    AdapterError::Malformed(reason)
}
