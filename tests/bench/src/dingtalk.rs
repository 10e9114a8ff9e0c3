//! `dingtalk-http` and `dingtalk-stream`: the DingTalk channel, which acknowledges a robot message
//! (an empty 200 in HTTP mode, an ACK frame in Stream mode) once it is durably queued, and
//! answers later through the message's session webhook, here a lean fake of DingTalk
//! ([`fake_api`]) that also hands out the Stream connection.
//!
//! - [`callbacks`]: signed HTTP-mode callbacks at a fixed concurrency (or paced).
//! - [`stream`]: a fake Stream gateway pushing CALLBACK frames with a window in flight.
//! - [`answers`]: every answer checked against the messages, after the run.

mod answers;
mod callbacks;
mod fake_api;
mod stream;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use botgate_dingtalk::SimulatedMessage;

use crate::fixture::BOT;
use crate::platform;
use crate::Options;
use fake_api::FakeDingtalk;

pub use callbacks::run as run_http;
pub use stream::run as run_stream;

pub const APP_KEY: &str = "dingbench";
const APP_SECRET: &str = "bench-secret";
/// Each conversation (one session webhook) carries this many messages in a row: the second LLM
/// call carries the first turn.
pub const MESSAGES_PER_CONVERSATION: u64 = 2;
/// Every this-many-th conversation is a group, its messages @-mentioning the robot.
const GROUP_EVERY: u64 = 4;

/// What both scenarios stand on: redis, the fake Bailian, the fake DingTalk and botgate.
pub type Stack = platform::Stack<FakeDingtalk>;

/// `stream`: `Some(endpoint)` of the fake Stream gateway for a Stream-mode bot.
pub async fn start_stack(options: &Options, stream: Option<String>) -> anyhow::Result<Stack> {
    let mode = if stream.is_some() { "stream" } else { "http" };
    let api = || FakeDingtalk::start(stream).context("start the fake DingTalk");
    Stack::start(options, api, |api| {
        format!(
            "[bots.{BOT}.dingtalk]\napp_key = \"{APP_KEY}\"\napp_secret = \"{APP_SECRET}\"\n\
             mode = \"{mode}\"\nreply = \"text\"\napi_base = \"{url}\"\n\
             session_webhook_hosts = [\"{url}\"]\n",
            url = api.url(),
        )
    })
    .await
}

/// Message `sequence` of `lane` (a connection, or the one Stream connection): conversation
/// `sequence / MESSAGES_PER_CONVERSATION` of the lane, a group every [`GROUP_EVERY`]th, its
/// session webhook on the fake naming the conversation.
pub fn message(webhook_base: &str, lane: usize, sequence: u64) -> SimulatedMessage {
    let conversation = sequence / MESSAGES_PER_CONVERSATION;
    let mut message = SimulatedMessage::new(
        &format!("msg-{lane}-{sequence}"),
        &format!("第{sequence}个问题：请问门店周末几点开门？"),
    );
    if is_group(conversation) {
        message = message.in_group();
        message.text = format!(" {}", message.text);
    }
    message.conversation_id = format!("cid{lane}-{conversation}==");
    message.sender_staff_id = Some(staff_id(lane, conversation));
    message.sender_id = format!("$:LWCP_v1:$sender{lane}-{conversation}");
    message.sender_nick = format!("成员{lane}-{conversation}");
    message.robot_code = APP_KEY.to_owned();
    message.with_session_webhook(&format!(
        "{webhook_base}{}?session={}",
        fake_api::SEND_BY_SESSION,
        session(lane, conversation)
    ))
}

fn is_group(conversation: u64) -> bool {
    conversation % GROUP_EVERY == GROUP_EVERY - 1
}

fn session(lane: usize, conversation: u64) -> String {
    format!("s{lane}-{conversation}")
}

fn staff_id(lane: usize, conversation: u64) -> String {
    format!("staff{lane}-{conversation}")
}

pub fn unix_ms() -> anyhow::Result<u64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_distinct_and_some_are_in_groups() {
        let base = "http://127.0.0.1:9";
        let single = message(base, 2, 0);
        let group = message(base, 2, 7);
        assert!(!single.group && group.group);
        assert_ne!(single.message_id, group.message_id);
        assert_eq!(
            group.session_webhook,
            format!("{base}{}?session=s2-3", fake_api::SEND_BY_SESSION)
        );
        assert_eq!(group.sender_staff_id.as_deref(), Some("staff2-3"));
        assert_eq!(message(base, 2, 1).conversation_id, single.conversation_id);
    }
}
