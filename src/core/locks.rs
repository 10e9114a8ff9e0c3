//! Per-key async locks: messages of one conversation are handled one at a time, in arrival order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// tokio's Mutex is fair (FIFO), so waiters are served in the order they asked, which is the
/// order the messages arrived. Entries are removed when the last holder or waiter leaves, so the
/// map only holds conversations that are busy right now.
#[derive(Default)]
pub struct KeyedLocks {
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

pub struct KeyedGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let mutex = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        KeyedGuard {
            guard: Some(guard),
            key: key.to_owned(),
            map: self.map.clone(),
        }
    }

    /// How many conversations are busy (held or waited for); for tests and metrics.
    pub fn busy(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

impl Drop for KeyedGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the map's own reference left: nobody holds or waits for this key.
        if map
            .get(&self.key)
            .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_removed_when_idle() {
        let locks = KeyedLocks::default();
        {
            let _guard = locks.lock("a").await;
            assert_eq!(locks.busy(), 1);
        }
        assert_eq!(locks.busy(), 0);
    }
}
