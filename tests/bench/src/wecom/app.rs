//! `wecom-app`: distinct messages from many members of a self-built app at a fixed concurrency,
//! each acknowledged with an empty 200 once queued, each answered later through `message/send`.
//!
//! As in the WeChat scenarios the callbacks are signed and encrypted before the run; the run and
//! its report are [`acked`]'s.

use std::time::Instant;

use botgate_wecom::{SimulatedCallback, WecomApp};

use super::app_sends;
use super::fake_api::{FakeWecom, Sent};
use super::{callback_request, AGENT_ID};
use crate::platform::acked::{self, Callbacks};
use crate::platform::answers::Checked;
use crate::report::Report;
use crate::Options;

/// Members are `bench-<connection>-<n>`, each sending [`MESSAGES_PER_MEMBER`] in a row.
pub const MEMBER_PREFIX: &str = "bench-";
/// A few messages per member: well under the 30 answers a minute botgate allows one member
/// (WeCom drops more), and enough that the second LLM call carries the first turn.
pub const MESSAGES_PER_MEMBER: u64 = 2;
/// Real MsgIds are 19 digits; connection and sequence make each one unique.
const FIRST_MSG_ID: u64 = 7_340_000_000_000_000_000;

/// Distinct text messages from many members, as WeCom posts them.
struct AppCallbacks {
    app: WecomApp,
}

impl Callbacks for AppCallbacks {
    type Fake = FakeWecom;
    const SCENARIO: &'static str = "wecom-app";
    const EMPTY_BECAUSE: &'static str = "WeCom wants it empty";
    const ANSWERED_AT: &'static str = "message/send";
    const ADDRESSED: &'static str = "to their member";

    fn traffic() -> String {
        format!("{MESSAGES_PER_MEMBER} messages per member")
    }

    fn request(&self, connection: usize, sequence: u64) -> anyhow::Result<Vec<u8>> {
        let callback = SimulatedCallback::Text {
            user: format!(
                "{MEMBER_PREFIX}{connection}-{}",
                sequence / MESSAGES_PER_MEMBER
            ),
            agent_id: AGENT_ID,
            msg_id: FIRST_MSG_ID + ((connection as u64) << 32) + sequence,
            content: format!("第{sequence}个问题：请问门店周末几点开门？"),
        };
        callback_request(&self.app, &callback)
    }

    fn check(sends: &[Sent], sent_at: &[Vec<Instant>], window: (Instant, Instant)) -> Checked {
        app_sends::check(sends, sent_at, window)
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let stack = super::start_stack(options, false).await?;
    let app = super::app()?;
    acked::run(options, stack, AppCallbacks { app }).await
}
