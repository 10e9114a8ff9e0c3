//! The bookkeeping of checking answers that name no message, only whom they are for (a member, a
//! conversation's webhook): the k-th answer for a conversation counts for its k-th message, as
//! botgate answers a conversation in order. What makes an answer right is the platform's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Problems kept to show what went wrong.
const SAMPLES_KEPT: usize = 5;

#[derive(Debug, Default)]
pub struct Checked {
    /// Messages answered once, right.
    pub answered: u64,
    /// Answers beyond the messages a conversation carried.
    pub duplicates: u64,
    /// Messages without an answer.
    pub missing: u64,
    /// Answers that are malformed, misaddressed or carry the wrong text.
    pub bad: u64,
    pub samples: Vec<String>,
    /// From a message going out to its answer arriving, for the messages sent in the window.
    pub end_to_end: Vec<Duration>,
    /// When the last answer arrived.
    pub last: Option<Instant>,
}

impl Checked {
    fn problem(&mut self, text: String) {
        if self.samples.len() < SAMPLES_KEPT {
            self.samples.push(text);
        }
    }
}

/// Answers matched to messages: message `sequence` of a lane (a load connection) belongs to the
/// lane's conversation `sequence / per_conversation`.
pub struct InOrder<'a> {
    /// `sent_at[lane][sequence]`: when each message went out.
    sent_at: &'a [Vec<Instant>],
    /// Only messages that went out within it count towards the end-to-end times.
    window: (Instant, Instant),
    per_conversation: u64,
    /// (lane, conversation) → answers so far.
    answers: HashMap<(usize, u64), u64>,
    checked: Checked,
}

impl<'a> InOrder<'a> {
    pub fn new(sent_at: &'a [Vec<Instant>], window: (Instant, Instant), per: u64) -> Self {
        InOrder {
            sent_at,
            window,
            per_conversation: per,
            answers: HashMap::new(),
            checked: Checked::default(),
        }
    }

    pub fn lanes(&self) -> usize {
        self.sent_at.len()
    }

    /// Every answer, right or not, arrived at `at`.
    pub fn arrived(&mut self, at: Instant) {
        self.checked.last = self.checked.last.max(Some(at));
    }

    pub fn bad(&mut self, problem: String) {
        self.checked.bad += 1;
        self.checked.problem(problem);
    }

    /// A right answer for `conversation` of `lane` (below [`Self::lanes`]), arrived at `at`;
    /// `whom` names the conversation in problems.
    pub fn answer(&mut self, lane: usize, conversation: u64, whom: &str, at: Instant) {
        let count = self.answers.entry((lane, conversation)).or_default();
        let sequence = conversation * self.per_conversation + *count;
        *count += 1;
        let count = *count;
        let Some(&sent) = self.sent_at[lane]
            .get(sequence as usize)
            .filter(|_| count <= self.per_conversation)
        else {
            self.checked.duplicates += 1;
            self.checked
                .problem(format!("{whom}: answer {count}, for fewer messages"));
            return;
        };
        self.checked.answered += 1;
        if sent >= self.window.0 && sent < self.window.1 {
            self.checked
                .end_to_end
                .push(at.saturating_duration_since(sent));
        }
    }

    /// The tally, with the messages never answered.
    pub fn finish(mut self) -> Checked {
        let expected: u64 = self.sent_at.iter().map(|times| times.len() as u64).sum();
        self.checked.missing = expected.saturating_sub(self.checked.answered);
        self.checked
    }
}
