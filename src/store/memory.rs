//! The embedded store: everything in one process, for a single instance and for trying botgate out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Turn;

enum Value {
    Text(String),
    History(VecDeque<Turn>),
    /// Newest first.
    Recent(VecDeque<String>),
}

struct Entry {
    value: Value,
    expires_at: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    writes_since_sweep: usize,
}

/// Expired entries are dropped when read, and swept every few thousand writes so a long-running
/// instance with many one-off conversations doesn't grow without bound.
const SWEEP_EVERY_WRITES: usize = 4096;

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a bug in this file; the map is
        // still structurally valid, so keep serving rather than poisoning every later call.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn live<'a>(inner: &'a mut Inner, key: &str, now: Instant) -> Option<&'a mut Entry> {
        if inner
            .entries
            .get(key)
            .is_some_and(|entry| entry.expires_at <= now)
        {
            inner.entries.remove(key);
        }
        inner.entries.get_mut(key)
    }

    fn wrote(inner: &mut Inner, now: Instant) {
        inner.writes_since_sweep += 1;
        if inner.writes_since_sweep >= SWEEP_EVERY_WRITES {
            inner.writes_since_sweep = 0;
            inner.entries.retain(|_, entry| entry.expires_at > now);
        }
    }

    pub fn history(&self, key: &str) -> Vec<Turn> {
        let mut inner = self.lock();
        match Self::live(&mut inner, key, Instant::now()) {
            Some(Entry {
                value: Value::History(turns),
                ..
            }) => turns.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn append_turn(&self, key: &str, turn: Turn, max_turns: usize, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        let expires_at = now + ttl;
        match Self::live(&mut inner, key, now) {
            Some(Entry {
                value: Value::History(turns),
                expires_at: at,
            }) => {
                if turn.id.is_some() && turns.back() == Some(&turn) {
                    *at = expires_at;
                    return;
                }
                turns.push_back(turn);
                while turns.len() > max_turns {
                    turns.pop_front();
                }
                *at = expires_at;
            }
            _ => {
                let turns = VecDeque::from([turn]);
                inner.entries.insert(
                    key.to_owned(),
                    Entry {
                        value: Value::History(turns),
                        expires_at,
                    },
                );
            }
        }
        Self::wrote(&mut inner, now);
    }

    /// Writes a text value with its expiry and counts the write towards the next sweep.
    fn put_text(inner: &mut Inner, key: &str, value: String, ttl: Duration, now: Instant) {
        let entry = Entry {
            value: Value::Text(value),
            expires_at: now + ttl,
        };
        inner.entries.insert(key.to_owned(), entry);
        Self::wrote(inner, now);
    }

    /// A live counter's value; 0 when absent, expired or not a number.
    fn counter(inner: &mut Inner, key: &str, now: Instant) -> u64 {
        match Self::live(inner, key, now) {
            Some(Entry {
                value: Value::Text(text),
                ..
            }) => text.parse::<u64>().unwrap_or(0),
            _ => 0,
        }
    }

    pub fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        if Self::live(&mut inner, key, now).is_some() {
            return false;
        }
        Self::put_text(&mut inner, key, value.to_owned(), ttl, now);
        true
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let mut inner = self.lock();
        match Self::live(&mut inner, key, Instant::now()) {
            Some(Entry {
                value: Value::Text(text),
                ..
            }) => Some(text.clone()),
            _ => None,
        }
    }

    pub fn set(&self, key: &str, value: &str, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::put_text(&mut inner, key, value.to_owned(), ttl, now);
    }

    pub fn incr(&self, key: &str, ttl: Duration) -> u64 {
        let now = Instant::now();
        let mut inner = self.lock();
        let next = Self::counter(&mut inner, key, now) + 1;
        Self::put_text(&mut inner, key, next.to_string(), ttl, now);
        next
    }

    pub fn advance(&self, key: &str, value: u64, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        let value = value.max(Self::counter(&mut inner, key, now));
        Self::put_text(&mut inner, key, value.to_string(), ttl, now);
    }

    pub fn push_recent(&self, key: &str, value: &str, keep: usize, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        let expires_at = now + ttl;
        match Self::live(&mut inner, key, now) {
            Some(Entry {
                value: Value::Recent(items),
                expires_at: at,
            }) => {
                items.push_front(value.to_owned());
                items.truncate(keep.max(1));
                *at = expires_at;
            }
            _ => {
                let entry = Entry {
                    value: Value::Recent(VecDeque::from([value.to_owned()])),
                    expires_at,
                };
                inner.entries.insert(key.to_owned(), entry);
            }
        }
        Self::wrote(&mut inner, now);
    }

    pub fn recent(&self, key: &str, count: usize) -> Vec<String> {
        let mut inner = self.lock();
        match Self::live(&mut inner, key, Instant::now()) {
            Some(Entry {
                value: Value::Recent(items),
                ..
            }) => items.iter().take(count).cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn delete(&self, keys: &[&str]) {
        let mut inner = self.lock();
        for key in keys {
            inner.entries.remove(*key);
        }
    }
}
