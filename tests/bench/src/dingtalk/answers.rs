//! Checking what the session webhooks received against the messages sent: one answer per
//! message, on its conversation's webhook, with the fake Bailian's text, @-mentioning the
//! sender in a group and nobody in a one-to-one chat.
//!
//! An answer names no message, only its conversation (the webhook), so [`InOrder`] counts the
//! k-th answer on a webhook for the conversation's k-th message.

use std::time::Instant;

use serde_json::Value;

use super::fake_api::Sent;
use super::{is_group, staff_id, MESSAGES_PER_CONVERSATION};
use crate::fixture::ANSWER;
use crate::platform::answers::{Checked, InOrder};

/// `sent_at[lane][sequence]`: when each message went out; those within `window` count towards
/// the end-to-end times.
pub fn check(sends: &[Sent], sent_at: &[Vec<Instant>], window: (Instant, Instant)) -> Checked {
    let mut tally = InOrder::new(sent_at, window, MESSAGES_PER_CONVERSATION);
    for sent in sends {
        tally.arrived(sent.at);
        let session = sent.session.as_deref().unwrap_or_default();
        let Some((lane, conversation)) =
            parse_session(session).filter(|(lane, _)| *lane < tally.lanes())
        else {
            tally.bad(format!("an answer on an unknown session {session:?}"));
            continue;
        };
        let body: Value = serde_json::from_slice(&sent.body).unwrap_or(Value::Null);
        match well_formed(&body, lane, conversation) {
            Ok(()) => tally.answer(lane, conversation, session, sent.at),
            Err(problem) => tally.bad(format!("{session}: {problem}")),
        }
    }
    tally.finish()
}

/// A text message with the fake's answer; `at` the sender in a group, absent one-to-one.
fn well_formed(body: &Value, lane: usize, conversation: u64) -> Result<(), String> {
    if body["msgtype"] != "text" {
        return Err(format!("msgtype {}, not text", body["msgtype"]));
    }
    match body["text"]["content"].as_str() {
        Some(ANSWER) => {}
        Some(other) => return Err(format!("wrong text {other:?}")),
        None => return Err(format!("malformed answer {body}")),
    }
    let at = &body["at"];
    if is_group(conversation) {
        let expected = serde_json::json!([staff_id(lane, conversation)]);
        if at["atUserIds"] != expected || at["isAtAll"] == true {
            return Err(format!("a group answer @-mentioning {at}, not {expected}"));
        }
    } else if !at.is_null() {
        return Err(format!("a one-to-one answer with at {at}"));
    }
    Ok(())
}

/// `s<lane>-<conversation>` → (lane, conversation).
fn parse_session(session: &str) -> Option<(usize, u64)> {
    let (lane, conversation) = session.strip_prefix('s')?.split_once('-')?;
    Some((lane.parse().ok()?, conversation.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;
    use std::time::Duration;

    fn send(session: &str, body: Value, at: Instant) -> Sent {
        Sent {
            session: Some(session.to_owned()),
            at,
            body: Bytes::from(body.to_string()),
        }
    }

    fn text(content: &str) -> Value {
        json!({"msgtype": "text", "text": {"content": content}})
    }

    #[test]
    fn every_message_needs_one_right_answer() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Lane 0: seven messages, conversations 0 to 2 (two each) and 3 (a group, one).
        let sent_at = vec![(0..7).map(at).collect::<Vec<_>>(), Vec::new()];
        let mut group = text(ANSWER);
        group["at"] = json!({"atUserIds": ["staff0-3"], "isAtAll": false});
        let mut wrong_at = text(ANSWER);
        wrong_at["at"] = json!({"atUserIds": ["staff0-2"], "isAtAll": false});
        let sends = vec![
            send("s0-0", text(ANSWER), at(10)),
            send("s0-0", text(ANSWER), at(20)),
            send("s0-0", text(ANSWER), at(30)),
            send("s0-1", text("别的"), at(40)),
            send("s0-3", group, at(50)),
            send("s0-3", wrong_at, at(55)),
            send("s0-3", text(ANSWER), at(56)),
            send("s1-0", text(ANSWER), at(60)),
            send("nope", text(ANSWER), at(70)),
        ];
        let checked = check(&sends, &sent_at, (at(1), at(100)));
        assert_eq!(checked.answered, 3);
        // The third answer on s0-0; one for lane 1, which sent nothing.
        assert_eq!(checked.duplicates, 2, "{:?}", checked.samples);
        // Wrong text, wrong @, a group answer without @, an unknown session.
        assert_eq!(checked.bad, 4, "{:?}", checked.samples);
        assert_eq!(checked.missing, 4);
        // Messages 1 (at 1 ms, answered at 20) and 6 (at 6, answered at 50) were in the window.
        assert_eq!(
            checked.end_to_end,
            [Duration::from_millis(19), Duration::from_millis(44)]
        );
        assert_eq!(checked.last, Some(at(70)));
    }
}
