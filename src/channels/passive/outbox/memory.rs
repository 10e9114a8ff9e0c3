//! The outbox in process: the Lua scripts' semantics (see `scripts.rs`) for one instance.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{
    Arrival, Committed, Kind, Mailbox, Role, Take, TakeMode, BOUND_STATE_TTL, GENERATION_LEASE,
    OUTBOX_TTL, REQUEST_STATE_TTL,
};

/// Sweeps expired entries every so many operations, so the maps track live traffic only.
const SWEEP_EVERY: usize = 4096;

pub struct MemoryOutbox {
    hint: &'static str,
    messages: HashMap<String, Message>,
    boxes: HashMap<String, Box>,
    operations: usize,
}

/// One message's deliveries (the `msg` hash).
struct Message {
    deliveries: u64,
    waiting_until: Option<Instant>,
    reply: Option<String>,
    committed: Option<Committed>,
    expires: Instant,
}

/// One user's outbox and its state (the `outbox` list and the `state` hash).
#[derive(Default)]
struct Box {
    entries: VecDeque<String>,
    questions: HashMap<String, String>,
    leases: HashMap<String, Instant>,
    answers: HashMap<String, Vec<String>>,
    promised: bool,
    fallbacks: HashSet<String>,
    expires: Option<Instant>,
}

impl Box {
    fn first_ungenerated(&self) -> Option<String> {
        self.entries
            .iter()
            .filter_map(|entry| entry.strip_prefix('A'))
            .find(|id| !self.answers.contains_key(*id))
            .map(str::to_owned)
    }

    fn take_front(&mut self) -> Option<String> {
        let front = self.entries.front()?;
        if let Some(text) = front.strip_prefix('P') {
            let text = text.to_owned();
            self.entries.pop_front();
            return Some(text);
        }
        let id = front.strip_prefix('A').unwrap_or_default().to_owned();
        let parts = self.answers.remove(&id)?;
        self.entries.pop_front();
        Some(self.unfold(parts))
    }

    /// Puts an answer's parts after the first at the front, and returns the first.
    fn unfold(&mut self, mut parts: Vec<String>) -> String {
        let rest = parts.split_off(1.min(parts.len()));
        for part in rest.into_iter().rev() {
            self.entries.push_front(format!("P{part}"));
        }
        parts.pop().unwrap_or_default()
    }

    /// The text as bound: with the hint when the user was promised more than this carries.
    fn bind(&mut self, text: String, hint: &str) -> String {
        if self.entries.is_empty() {
            self.promised = false;
            return text;
        }
        match self.promised && !text.ends_with(hint) {
            true => text + hint,
            false => text,
        }
    }
}

impl MemoryOutbox {
    pub fn new(hint: &'static str) -> Self {
        MemoryOutbox {
            hint,
            messages: HashMap::new(),
            boxes: HashMap::new(),
            operations: 0,
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.operations += 1;
        if self.operations % SWEEP_EVERY != 0 {
            return;
        }
        self.messages.retain(|_, message| message.expires > now);
        self.boxes.retain(|_, user| {
            user.expires.is_some_and(|expires| expires > now) && !user.entries.is_empty()
        });
    }

    fn user(&mut self, mailbox: Mailbox<'_>, now: Instant) -> &mut Box {
        let user = self
            .boxes
            .entry(format!("{}:{}", mailbox.bot, mailbox.user))
            .or_default();
        if user.expires.is_some_and(|expires| expires <= now) {
            *user = Box::default();
        }
        user
    }

    fn message(&mut self, bot: &str, message_id: &str, now: Instant) -> &mut Message {
        let message = self
            .messages
            .entry(format!("{bot}:{message_id}"))
            .or_insert_with(|| Message {
                deliveries: 0,
                waiting_until: None,
                reply: None,
                committed: None,
                expires: now + REQUEST_STATE_TTL,
            });
        if message.expires <= now {
            *message = Message {
                deliveries: 0,
                waiting_until: None,
                reply: None,
                committed: None,
                expires: now + REQUEST_STATE_TTL,
            };
        }
        message
    }

    pub fn arrive(
        &mut self,
        mailbox: Mailbox<'_>,
        message_id: &str,
        question: &str,
        kind: Kind,
        wait: Duration,
    ) -> Arrival {
        let now = Instant::now();
        self.sweep(now);
        let message = self.message(mailbox.bot, message_id, now);
        message.deliveries += 1;
        let attempt = message.deliveries;
        if attempt > 1 {
            return Arrival {
                attempt,
                role: Role::Retry,
                history: None,
            };
        }
        message.waiting_until = Some(now + wait);
        let user = self.user(mailbox, now);
        if kind == Kind::Restart {
            *user = Box::default();
        }
        user.expires = Some(now + OUTBOX_TTL);
        let owed = user
            .entries
            .front()
            .is_some_and(|front| front.starts_with('P') || user.promised);
        let role = if owed {
            Role::Pull
        } else {
            let ready = user.first_ungenerated().is_none();
            user.entries.push_back(format!("A{message_id}"));
            user.questions
                .insert(message_id.to_owned(), question.to_owned());
            if ready {
                user.leases
                    .insert(message_id.to_owned(), now + GENERATION_LEASE);
                Role::Generate
            } else {
                Role::Queued
            }
        };
        if role == Role::Pull {
            self.message(mailbox.bot, message_id, now).waiting_until = None;
        }
        Arrival {
            attempt,
            role,
            history: None,
        }
    }

    /// `COMMIT` in process; also says whether the answer was kept (the caller then writes the
    /// memory turn, which lives in the store).
    pub fn commit(
        &mut self,
        mailbox: Mailbox<'_>,
        message_id: &str,
        parts: &[String],
        awaited: bool,
    ) -> (Committed, bool) {
        let now = Instant::now();
        if let Some(done) = &self.message(mailbox.bot, message_id, now).committed {
            return (done.clone(), false);
        }
        let hint = self.hint;
        let entry = format!("A{message_id}");
        let waiting = self
            .message(mailbox.bot, message_id, now)
            .waiting_until
            .is_some_and(|until| awaited || until > now);
        let unbound = self.message(mailbox.bot, message_id, now).reply.is_none();
        let user = self.user(mailbox, now);
        let Some(position) = user.entries.iter().position(|other| *other == entry) else {
            let committed = Committed::default();
            self.message(mailbox.bot, message_id, now).committed = Some(committed.clone());
            return (committed, false);
        };
        user.questions.remove(message_id);
        user.leases.remove(message_id);
        let mut bound = None;
        if position == 0 && waiting && unbound {
            user.entries.pop_front();
            let first = user.unfold(parts.to_vec());
            bound = Some(user.bind(first, hint));
        } else {
            user.answers.insert(message_id.to_owned(), parts.to_vec());
        }
        let mut next = None;
        if let Some(next_id) = user.first_ungenerated() {
            let lapsed = user.leases.get(&next_id).is_none_or(|lease| *lease < now);
            if let (true, Some(question)) = (lapsed, user.questions.get(&next_id).cloned()) {
                user.leases.insert(next_id.clone(), now + GENERATION_LEASE);
                next = Some((next_id, question));
            }
        }
        let committed = Committed { bound, next };
        let message = self.message(mailbox.bot, message_id, now);
        if let Some(text) = &committed.bound {
            message.reply = Some(text.clone());
            message.waiting_until = None;
            message.expires = now + BOUND_STATE_TTL;
        }
        message.committed = Some(committed.clone());
        (committed, true)
    }

    pub fn renew(&mut self, mailbox: Mailbox<'_>, message_id: &str) {
        let user = self.user(mailbox, Instant::now());
        if let Some(lease) = user.leases.get_mut(message_id) {
            *lease = Instant::now() + GENERATION_LEASE;
        }
    }

    pub fn takeover(&mut self, mailbox: Mailbox<'_>) -> Option<(String, String)> {
        let now = Instant::now();
        let user = self.user(mailbox, now);
        let id = user.first_ungenerated()?;
        if user.leases.get(&id).is_some_and(|lease| *lease >= now) {
            return None;
        }
        match user.questions.get(&id).cloned() {
            Some(question) => {
                user.leases.insert(id.clone(), now + GENERATION_LEASE);
                Some((id, question))
            }
            None => {
                let entry = format!("A{id}");
                user.entries.retain(|other| *other != entry);
                user.leases.remove(&id);
                None
            }
        }
    }

    pub fn take(&mut self, mailbox: Mailbox<'_>, message_id: &str, mode: TakeMode) -> Take {
        let now = Instant::now();
        let hint = self.hint;
        let message = self.message(mailbox.bot, message_id, now);
        if mode != TakeMode::Look {
            message.waiting_until = None;
        }
        if let Some(text) = &message.reply {
            return Take::Text(text.clone());
        }
        let user = self.user(mailbox, now);
        if let Some(text) = user.take_front() {
            let own = format!("A{message_id}");
            if user.entries.contains(&own) {
                user.promised = true;
            }
            let text = user.bind(text, hint);
            let message = self.message(mailbox.bot, message_id, now);
            message.reply = Some(text.clone());
            message.expires = now + BOUND_STATE_TTL;
            return Take::Text(text);
        }
        if user.entries.is_empty() {
            return Take::Empty;
        }
        if mode == TakeMode::Last {
            user.promised = true;
            return Take::Placeholder;
        }
        Take::Pending
    }

    pub fn push_parts(&mut self, mailbox: Mailbox<'_>, message_id: &str, parts: &[String]) {
        let now = Instant::now();
        let user = self.user(mailbox, now);
        if !user.fallbacks.insert(message_id.to_owned()) {
            return;
        }
        user.entries
            .extend(parts.iter().map(|part| format!("P{part}")));
        user.promised = true;
        user.expires = Some(now + OUTBOX_TTL);
    }

    pub fn clear(&mut self, mailbox: Mailbox<'_>) {
        self.boxes
            .remove(&format!("{}:{}", mailbox.bot, mailbox.user));
    }
}
