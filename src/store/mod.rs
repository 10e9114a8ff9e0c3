//! Shared state: conversation memory, claims, small values with a TTL. Redis or in-process.
//!
//! A closed set of two, so an enum, not a trait object. Both implementations give the same
//! observable behaviour (TTL expiry, bounded history, atomic claims); the tests run the same
//! scenarios against both.

mod connection;
mod memory;
mod redis;
mod scan;

pub use self::connection::{DedicatedConnection, RedisConnection};
pub use self::memory::MemoryStore;
pub use self::redis::{append_turn_args, RedisStore, APPEND_TURN_LUA};
pub use self::scan::any_key_matching;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One user+assistant exchange in a conversation's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub user: String,
    pub assistant: String,
    /// The message this turn answers. Appending the same turn twice (a write replayed after a
    /// dropped connection, a second worker that lost the race) leaves one copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the list's idle expiry was last set, as of this turn (Unix ms): a writer that
    /// read this turn last sets it again only when a twentieth of the TTL has passed.
    #[serde(default, rename = "x", skip_serializing_if = "Option::is_none")]
    pub expiry_set: Option<u64>,
}

/// A turn as stored in a Redis memory list (one JSON document per item), for the scripts that
/// write memory together with other state.
pub fn encode_turn(key: &str, turn: &Turn) -> Result<String, StoreError> {
    serde_json::to_string(turn).map_err(|error| StoreError::Corrupt {
        key: key.to_owned(),
        reason: json_reason(&error),
    })
}

/// The `LRANGE` start that reads a memory list's last `max_turns`: a list may hold more until
/// its next trim (the passive commit trims only now and then), so every reader takes the tail.
pub fn history_start(max_turns: usize) -> isize {
    -(max_turns.max(1) as isize)
}

/// The turns of a Redis memory list, oldest first, as read by `LRANGE key start -1` (as bytes:
/// the text is checked once here, with a vectorised UTF-8 check, rather than once per item by
/// the client's `String` conversion).
pub fn decode_history(key: &str, items: &[Vec<u8>]) -> Result<Vec<Turn>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    items
        .iter()
        .map(|item| {
            let text = simdutf8::basic::from_utf8(item)
                .map_err(|_| corrupt("a turn is not UTF-8".to_owned()))?;
            serde_json::from_str(text).map_err(|error| corrupt(json_reason(&error)))
        })
        .collect()
}

/// Why a stored document did not (de)serialise, without the document: serde_json's messages
/// quote the values they met (`invalid type: string "…"`), and stored values hold what users
/// wrote. Syntax errors say where; shape errors say only that and where.
pub fn json_reason(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let (line, column) = (error.line(), error.column());
    match error.classify() {
        Category::Syntax | Category::Eof => error.to_string(),
        Category::Data => format!("unexpected shape at line {line} column {column}"),
        Category::Io => "I/O error".to_owned(),
    }
}

/// `Debug` as `Display`: both may reach a log line, and neither may show a key's user id.
#[derive(thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// `key` is the full key, for code; its `Display` shows only [`redacted_key`].
    #[error("stored value under {} is not valid: {reason}", redacted_key(key))]
    Corrupt { key: String, reason: String },
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Redis(error) => formatter.debug_tuple("Redis").field(error).finish(),
            StoreError::Corrupt { key, reason } => formatter
                .debug_struct("Corrupt")
                .field("key", &redacted_key(key))
                .field("reason", reason)
                .finish(),
        }
    }
}

/// Key kinds whose name is shown when they end a key (`…:history`): they say what broke.
const KEY_KINDS: [&str; 4] = ["history", "bailian_session", "seq", "dead"];

/// A Redis key as logs may show it. Keys embed user ids (`botgate:shop:wechat:<openid>:history`),
/// so only the configured prefix, a known kind at the end and the key's
/// [`crate::telemetry::log_id`] are shown: `botgate:…:history (key 3fa2c1d0e9b8)`.
pub fn redacted_key(key: &str) -> String {
    let hash = crate::telemetry::log_id(key);
    let Some((prefix, rest)) = key.split_once(':') else {
        return format!("a key (key {hash})");
    };
    match rest.rsplit_once(':').map(|(_, last)| last) {
        Some(kind) if KEY_KINDS.contains(&kind) => format!("{prefix}:…:{kind} (key {hash})"),
        _ => format!("{prefix}:… (key {hash})"),
    }
}

#[derive(Clone)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// The conversation's last `max_turns` turns, oldest first.
    pub async fn history(&self, key: &str, max_turns: usize) -> Result<Vec<Turn>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.history(key)),
            Store::Redis(store) => store.history(key, max_turns).await,
        }
    }

    /// Appends a turn, keeps only the last `max_turns`, and restarts the idle TTL. A turn equal
    /// to the last one stored (same message id) is not appended again.
    pub async fn append_turn(
        &self,
        key: &str,
        turn: &Turn,
        max_turns: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.append_turn(key, turn.clone(), max_turns, ttl);
                Ok(())
            }
            Store::Redis(store) => store.append_turn(key, turn, max_turns, ttl).await,
        }
    }

    /// Sets `key` only when absent; true when this caller now holds it.
    pub async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.set_nx(key, value, ttl)),
            Store::Redis(store) => store.set_nx(key, value, ttl).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.get(key)),
            Store::Redis(store) => store.get(key).await,
        }
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.set(key, value, ttl);
                Ok(())
            }
            Store::Redis(store) => store.set(key, value, ttl).await,
        }
    }

    pub async fn delete(&self, keys: &[&str]) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.delete(keys);
                Ok(())
            }
            Store::Redis(store) => store.delete(keys).await,
        }
    }

    /// Increments a counter (created at 1) and restarts its TTL; returns the new value.
    pub async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.incr(key, ttl)),
            Store::Redis(store) => store.incr(key, ttl).await,
        }
    }

    /// Sets a counter to `value` unless it already holds a larger one (a high-water mark).
    pub async fn advance(&self, key: &str, value: u64, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.advance(key, value, ttl);
                Ok(())
            }
            Store::Redis(store) => store.advance(key, value, ttl).await,
        }
    }

    /// Puts `value` at the head of a list that keeps its newest `keep` items and idles out
    /// after `ttl`.
    pub async fn push_recent(
        &self,
        key: &str,
        value: &str,
        keep: usize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.push_recent(key, value, keep, ttl);
                Ok(())
            }
            Store::Redis(store) => store.push_recent(key, value, keep, ttl).await,
        }
    }

    /// The newest `count` items of a [`Store::push_recent`] list, newest first.
    pub async fn recent(&self, key: &str, count: usize) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.recent(key, count)),
            Store::Redis(store) => store.recent(key, count).await,
        }
    }

    /// Readiness: can the store answer right now?
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(store) => store.ping().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_value_is_reported_without_its_user_id_or_its_text() {
        let key = "botgate:shop:wechat:oyORnuP8q7ou2gfYjqLzSIWZf0rs:history";
        let stored = [b"\"what the user wrote\"".to_vec()];

        let error = decode_history(key, &stored).unwrap_err();

        let shown = [error.to_string(), format!("{error:?}")];
        for shown in shown {
            assert!(!shown.contains("oyORnuP8q7ou2gfYjqLzSIWZf0rs"), "{shown}");
            assert!(!shown.contains("what the user wrote"), "{shown}");
            assert!(shown.contains("botgate:…:history (key "), "{shown}");
            assert!(
                shown.contains(&crate::telemetry::log_id(key).to_string()),
                "{shown}"
            );
        }
        let dead_letter = "botgate:jobs:dead 1-0";
        assert_eq!(
            redacted_key(dead_letter),
            format!("botgate:… (key {})", crate::telemetry::log_id(dead_letter))
        );
        assert!(!redacted_key("oUserWithoutPrefix").contains("oUser"));
    }

    #[test]
    fn stored_turns_decode_and_damaged_ones_name_their_key() {
        let good = encode_turn(
            "k",
            &Turn {
                user: "几点开门？".to_owned(),
                assistant: "九点。".to_owned(),
                id: None,
                expiry_set: None,
            },
        )
        .unwrap();

        let turns = decode_history("k", &[good.clone().into_bytes()]).unwrap();
        let not_utf8 = decode_history("k", &[good.into_bytes(), vec![0xff, 0xfe]]);
        let not_json = decode_history("k", &[b"{\"user\":".to_vec()]);

        assert_eq!(turns[0].assistant, "九点。");
        for damaged in [not_utf8, not_json] {
            match damaged {
                Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "k"),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }
}
