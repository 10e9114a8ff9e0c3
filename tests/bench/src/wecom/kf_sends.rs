//! Checking what `kf/send_msg` received against the customer messages queued: one answer per
//! message, to its customer, from the account, with the fake Bailian's text, each customer's
//! in the order they wrote.
//!
//! Each send names its message: botgate's `msgid` is derived from the pulled message's id and
//! the part's index, so it is computed here for every message and looked up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use botgate_wecom::kf::SendMsgId;
use serde_json::Value;

use super::fake_api::{Sent, KF_SEND};
use super::kf::Plan;
use super::KF_ACCOUNT;
use crate::fixture::ANSWER;

/// Problems kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

#[derive(Debug, Default)]
pub struct Checked {
    /// Messages answered once, right.
    pub answered: u64,
    /// Second and later answers to one message.
    pub duplicates: u64,
    pub missing: u64,
    /// Answers that reached a customer before the answer to an earlier message of theirs.
    pub out_of_order: u64,
    /// Answers that are malformed, misaddressed, for no message, or carry the wrong text.
    pub bad: u64,
    pub samples: Vec<String>,
    /// From a message's burst being queued to its answer arriving.
    pub burst_to_answer: Vec<Duration>,
    pub last: Option<Instant>,
}

impl Checked {
    fn problem(&mut self, text: String) {
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(text);
        }
    }
}

/// `queued_at[burst]`: when each burst was queued in the fake (`None`: never).
pub fn check(sends: &[Sent], plan: &Plan, queued_at: &[Option<Instant>]) -> Checked {
    let total = plan.total();
    // The msgid of the first (only) part of each message's answer → the message.
    let ids: HashMap<String, u64> = (0..total)
        .map(|index| {
            let id = SendMsgId::derive_from(&format!("{}:0", plan.msgid(index)));
            (id.as_str().to_owned(), index)
        })
        .collect();
    let mut checked = Checked::default();
    let mut answers = vec![0_u32; total as usize];
    // Per customer, the latest turn answered so far.
    let mut latest: Vec<Option<u64>> = vec![None; plan.customers as usize];
    for sent in sends {
        checked.last = checked.last.max(Some(sent.at));
        let body: Value = serde_json::from_slice(&sent.body).unwrap_or(Value::Null);
        if let Err(problem) = well_formed(sent, &body) {
            checked.bad += 1;
            checked.problem(problem);
            continue;
        }
        let msgid = body["msgid"].as_str().unwrap_or_default();
        let Some(&index) = ids.get(msgid) else {
            checked.bad += 1;
            checked.problem(format!("an answer with msgid {msgid:?}, for no message"));
            continue;
        };
        let (customer, turn) = plan.turn(index);
        if body["touser"] != plan.customer(customer).as_str() {
            checked.bad += 1;
            checked.problem(format!(
                "{}'s answer sent to {}",
                plan.customer(customer),
                body["touser"]
            ));
            continue;
        }
        answers[index as usize] += 1;
        if answers[index as usize] > 1 {
            checked.duplicates += 1;
            checked.problem(format!("{} answered again", plan.msgid(index)));
            continue;
        }
        checked.answered += 1;
        let before = &mut latest[customer as usize];
        if before.is_some_and(|before| before > turn) {
            checked.out_of_order += 1;
            checked.problem(format!(
                "{}: message {turn} answered after message {}",
                plan.customer(customer),
                before.unwrap_or_default()
            ));
        }
        *before = (*before).max(Some(turn));
        if let Some(Some(queued)) = queued_at.get(plan.burst_of(index) as usize) {
            checked
                .burst_to_answer
                .push(sent.at.saturating_duration_since(*queued));
        }
    }
    checked.missing = total - checked.answered;
    checked
}

/// Everything but the message and addressee, which [`check`] looks up.
fn well_formed(sent: &Sent, body: &Value) -> Result<(), String> {
    if sent.path != KF_SEND {
        return Err(format!("an answer on {} instead of {KF_SEND}", sent.path));
    }
    if !sent.token_ok {
        return Err("a send without the access token gettoken handed out".to_owned());
    }
    if body["open_kfid"] != KF_ACCOUNT || body["msgtype"] != "text" {
        return Err(format!(
            "msgtype {} from account {}, not text from {KF_ACCOUNT}",
            body["msgtype"], body["open_kfid"]
        ));
    }
    match body["text"]["content"].as_str() {
        Some(ANSWER) => Ok(()),
        Some(other) => Err(format!("{}: wrong text {other:?}", body["touser"])),
        None => Err(format!("malformed send {body}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botgate_wecom::kf::SendMsgRequest;
    use bytes::Bytes;

    fn send(plan: &Plan, index: u64, customer: u64, content: &str, at: Instant) -> Sent {
        let msgid = SendMsgId::derive_from(&format!("{}:0", plan.msgid(index)));
        let body = SendMsgRequest::text(&plan.customer(customer), KF_ACCOUNT, Some(msgid), content);
        Sent {
            path: KF_SEND,
            at,
            token_ok: true,
            body: Bytes::from(serde_json::to_string(&body).unwrap()),
        }
    }

    #[test]
    fn every_message_needs_one_answer_in_its_customers_order() {
        // Two customers of three messages, bursts of four: messages 0..3 are customer 0's.
        let plan = Plan {
            customers: 2,
            messages: 3,
            burst: 4,
        };
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let queued_at = [Some(at(0)), Some(at(5))];
        let sends = vec![
            send(&plan, 0, 0, ANSWER, at(10)),
            send(&plan, 2, 0, ANSWER, at(11)),
            // Customer 0's second message, answered after the third.
            send(&plan, 1, 0, ANSWER, at(12)),
            send(&plan, 1, 0, ANSWER, at(13)),
            // Message 3 is customer 1's: sent to customer 0.
            send(&plan, 3, 0, ANSWER, at(14)),
            send(&plan, 4, 1, "别的", at(15)),
            send(&plan, 5, 1, ANSWER, at(25)),
        ];
        let checked = check(&sends, &plan, &queued_at);
        assert_eq!(checked.answered, 4);
        assert_eq!(checked.duplicates, 1);
        assert_eq!(checked.out_of_order, 1);
        assert_eq!(checked.bad, 2, "{:?}", checked.samples);
        assert_eq!(checked.missing, 2);
        // Message 5 is in the second burst, queued at 5 ms.
        assert_eq!(
            checked.burst_to_answer.last(),
            Some(&Duration::from_millis(20))
        );
        assert_eq!(checked.last, Some(at(25)));
    }
}
