//! Checking what `message/send` received against the app messages sent: one answer per
//! message, to its member, from the app, with the fake Bailian's text.
//!
//! `message/send` names no message, so [`InOrder`] counts the k-th answer to a member for its
//! k-th message (`wecom-kf`, whose sends do name their message, checks that order).

use std::time::Instant;

use serde_json::Value;

use super::app::{MEMBER_PREFIX, MESSAGES_PER_MEMBER};
use super::fake_api::{Sent, APP_SEND};
use super::AGENT_ID;
use crate::fixture::ANSWER;
use crate::platform::answers::{Checked, InOrder};

/// `sent_at[connection][sequence]`: when each message went out. Only messages that went out
/// within `window` count towards the end-to-end times.
pub fn check(sends: &[Sent], sent_at: &[Vec<Instant>], window: (Instant, Instant)) -> Checked {
    let mut tally = InOrder::new(sent_at, window, MESSAGES_PER_MEMBER);
    for sent in sends {
        tally.arrived(sent.at);
        let body: Value = serde_json::from_slice(&sent.body).unwrap_or(Value::Null);
        if let Err(problem) = well_formed(sent, &body) {
            tally.bad(problem);
            continue;
        }
        let touser = body["touser"].as_str().unwrap_or_default();
        match parse_member(touser).filter(|(connection, _)| *connection < tally.lanes()) {
            Some((connection, member)) => tally.answer(connection, member, touser, sent.at),
            None => tally.bad(format!("an answer to an unknown member {touser:?}")),
        }
    }
    tally.finish()
}

/// Everything but the addressee, which [`check`] matches with the messages.
fn well_formed(sent: &Sent, body: &Value) -> Result<(), String> {
    if sent.path != APP_SEND {
        return Err(format!("an answer on {} instead of {APP_SEND}", sent.path));
    }
    if !sent.token_ok {
        return Err("a send without the access token gettoken handed out".to_owned());
    }
    if body["msgtype"] != "text" || body["agentid"] != AGENT_ID {
        return Err(format!(
            "msgtype {} from agent {}, not text from {AGENT_ID}",
            body["msgtype"], body["agentid"]
        ));
    }
    match body["text"]["content"].as_str() {
        Some(ANSWER) => Ok(()),
        Some(other) => Err(format!("{}: wrong text {other:?}", body["touser"])),
        None => Err(format!("malformed send {body}")),
    }
}

/// `MEMBER_PREFIX<connection>-<member>` → (connection, member).
fn parse_member(touser: &str) -> Option<(usize, u64)> {
    let (connection, member) = touser.strip_prefix(MEMBER_PREFIX)?.split_once('-')?;
    Some((connection.parse().ok()?, member.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;
    use std::time::Duration;

    fn send(touser: &str, content: &str, at: Instant) -> Sent {
        let body = json!({"touser": touser, "msgtype": "text", "agentid": AGENT_ID,
            "text": {"content": content}});
        Sent {
            path: APP_SEND,
            at,
            token_ok: true,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn every_message_needs_one_right_answer() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Connection 0 sent three messages: member 0 two, member 1 one; connection 1 none.
        let sent_at = vec![vec![at(0), at(1), at(2)], Vec::new()];
        let member = |connection, member| format!("{MEMBER_PREFIX}{connection}-{member}");
        let sends = vec![
            send(&member(0, 0), ANSWER, at(10)),
            send(&member(0, 0), ANSWER, at(20)),
            send(&member(0, 0), ANSWER, at(30)),
            send(&member(0, 1), "别的", at(40)),
            send(&member(1, 0), ANSWER, at(50)),
            send("zhangsan", ANSWER, at(60)),
        ];
        let checked = check(&sends, &sent_at, (at(1), at(100)));
        assert_eq!(checked.answered, 2);
        // The third answer to member 0, and one to a member of connection 1, which sent none.
        assert_eq!(checked.duplicates, 2);
        assert_eq!(checked.bad, 2, "{:?}", checked.samples);
        assert_eq!(checked.missing, 1);
        // Only the second message went out inside the window.
        assert_eq!(checked.end_to_end, [Duration::from_millis(19)]);
        assert_eq!(checked.last, Some(at(60)));
    }
}
