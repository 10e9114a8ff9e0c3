//! `dingtalk-http`: distinct signed robot messages from many conversations (one-to-one, and a
//! group @-mention every fourth) at a fixed concurrency, each acknowledged with an empty 200
//! once queued, each answered later through its session webhook.
//!
//! The run and its report are [`acked`]'s.

use std::time::Instant;

use botgate_dingtalk::{DingtalkRobot, SIGN_HEADER, TIMESTAMP_HEADER};

use super::fake_api::{FakeDingtalk, Sent};
use super::{answers, message, unix_ms, APP_SECRET, MESSAGES_PER_CONVERSATION};
use crate::fixture::BOT;
use crate::platform::acked::{self, Callbacks};
use crate::platform::answers::Checked;
use crate::report::Report;
use crate::{http, Options};

/// Distinct robot messages, as DingTalk posts them in HTTP mode.
struct RobotCallbacks {
    robot: DingtalkRobot,
    /// The fake's origin, where every session webhook points.
    webhook_base: String,
}

impl Callbacks for RobotCallbacks {
    type Fake = FakeDingtalk;
    const SCENARIO: &'static str = "dingtalk-http";
    const EMPTY_BECAUSE: &'static str = "an answer goes to the session webhook";
    const ANSWERED_AT: &'static str = "session webhook";
    const ADDRESSED: &'static str = "on their conversation's webhook";

    fn traffic() -> String {
        format!("{MESSAGES_PER_CONVERSATION} messages per conversation, 1 in 4 a group")
    }

    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let message = message(&self.webhook_base, connection, sequence);
        let now = unix_ms()?;
        let signed = self.robot.sign_request(&message, now);
        let find = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .unwrap_or_default()
        };
        Ok(http::post(
            &format!("/dingtalk/{BOT}"),
            "application/json; charset=utf-8",
            &[
                (TIMESTAMP_HEADER, find(TIMESTAMP_HEADER)),
                (SIGN_HEADER, find(SIGN_HEADER)),
            ],
            signed.body.as_bytes(),
        ))
    }

    fn check(sends: &[Sent], sent_at: &[Vec<Instant>], window: (Instant, Instant)) -> Checked {
        answers::check(sends, sent_at, window)
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let stack = super::start_stack(options, None).await?;
    let callbacks = RobotCallbacks {
        robot: DingtalkRobot::new(APP_SECRET),
        webhook_base: stack.api.url(),
    };
    acked::run(options, stack, callbacks).await
}
