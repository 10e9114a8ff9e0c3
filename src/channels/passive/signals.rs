//! In-process wake-ups keyed by string: a finished answer wakes the requests waiting for it at
//! once, instead of at their next poll. Cross-replica waiters still poll the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Signals {
    map: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Signals {
    /// The signal for `key`; hold it while waiting (its `notified()` must be enabled before the
    /// readiness check, or a wake-up between check and wait is missed).
    pub fn get(&self, key: &str) -> Arc<Notify> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(key.to_owned()).or_default().clone()
    }

    pub fn wake(&self, key: &str) {
        let notify = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Nobody else holds it: nobody is waiting, and the entry can go.
            match map.get(key) {
                Some(notify) if Arc::strong_count(notify) == 1 => {
                    map.remove(key);
                    return;
                }
                Some(notify) => notify.clone(),
                None => return,
            }
        };
        notify.notify_waiters();
        // Also a stored permit: a waiter that registers just after this (the request that
        // started the answer, racing its own task) returns at once instead of at its next poll.
        notify.notify_one();
    }

    /// Called by a waiter when done, so idle keys don't accumulate.
    pub fn release(&self, key: &str, notify: Arc<Notify>) {
        drop(notify);
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map
            .get(key)
            .is_some_and(|notify| Arc::strong_count(notify) == 1)
        {
            map.remove(key);
        }
    }
}
