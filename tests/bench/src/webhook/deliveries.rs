//! Checking what the fake platform received against the webhook channel's outbound contract.

use std::collections::HashMap;

use botgate_testkit::Received;

use super::{DELIVER_PATH, MESSAGE_ID_PREFIX};
use crate::fixture::{ANSWER, BOT};

/// Problems kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

/// What the deliveries add up to.
#[derive(Debug, Default)]
pub struct Checked {
    /// Messages whose chunks all arrived, once each, and join to the answer.
    pub complete: u64,
    /// Deliveries that are malformed, unexpected, duplicated, or part of a wrong answer.
    pub bad: u64,
    pub samples: Vec<String>,
}

impl Checked {
    fn bad(&mut self, problem: String) {
        self.bad += 1;
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(problem);
        }
    }
}

/// Checks every delivery against the contract and joins each message's chunks.
///
/// The signature header's shape is checked, not its value: the fake platform keeps the parsed
/// JSON, not the exact bytes that were signed.
pub fn check(received: &[Received], run: u64, expected: u64) -> Checked {
    let mut checked = Checked::default();
    // message id → (chunks announced, chunk number → text)
    let mut messages: HashMap<String, (u64, HashMap<u64, String>)> = HashMap::new();
    for delivery in received {
        let body = &delivery.body;
        let (Some(message_id), Some(chunk), Some(chunks), Some(text)) = (
            body["message_id"].as_str(),
            body["chunk"].as_u64(),
            body["chunks"].as_u64(),
            body["text"].as_str(),
        ) else {
            checked.bad(format!(
                "{} {}: malformed body {body}",
                delivery.method, delivery.path
            ));
            continue;
        };
        if delivery.method != "POST" || delivery.path != DELIVER_PATH || body["bot"] != BOT {
            checked.bad(format!(
                "{} {} for bot {}",
                delivery.method, delivery.path, body["bot"]
            ));
            continue;
        }
        let Some(index) = message_id
            .strip_prefix(&format!("{MESSAGE_ID_PREFIX}{run}-"))
            .and_then(|index| index.parse::<u64>().ok())
            .filter(|&index| index < expected)
        else {
            checked.bad(format!("unknown message id {message_id}"));
            continue;
        };
        if body["conversation"] != format!("conversation-{index}").as_str() {
            checked.bad(format!(
                "{message_id} delivered to {}",
                body["conversation"]
            ));
            continue;
        }
        let signature_ok = delivery.headers.iter().any(|(name, value)| {
            name == "x-botgate-signature"
                && value.strip_prefix("sha256=").is_some_and(|hex| {
                    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                })
        });
        let idempotency_ok = delivery.headers.iter().any(|(name, value)| {
            name == "idempotency-key" && *value == format!("{message_id}:{chunk}")
        });
        if !signature_ok || !idempotency_ok {
            checked.bad(format!(
                "{message_id}: signature or Idempotency-Key header missing or malformed"
            ));
            continue;
        }
        let entry = messages.entry(message_id.to_owned()).or_default();
        entry.0 = chunks;
        if entry.1.insert(chunk, text.to_owned()).is_some() {
            checked.bad(format!("{message_id} chunk {chunk} delivered twice"));
        }
    }
    for (message_id, (chunks, parts)) in messages {
        let mut numbers: Vec<&u64> = parts.keys().collect();
        numbers.sort_unstable();
        let joined: String = numbers
            .iter()
            .map(|number| parts[*number].as_str())
            .collect();
        if parts.len() as u64 == chunks && joined == ANSWER {
            checked.complete += 1;
        } else {
            checked.bad(format!(
                "{message_id}: {} of {chunks} chunks, text {joined:?}",
                parts.len()
            ));
        }
    }
    checked
}
