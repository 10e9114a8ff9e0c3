//! The delivery engine's shared machinery: a durable job queue, platform access tokens, limits.
//!
//! Each piece is a closed enum with an in-process variant (embedded mode, one instance) and a
//! Redis variant (several stateless replicas), like [`crate::store::Store`]. The Redis side does
//! in Lua whatever must be atomic across replicas.

pub mod accept;
pub mod engine;
pub mod job;
pub mod limits;
pub mod queue;
pub mod send;
pub mod tokens;

pub use self::accept::{Accepted, Acceptor};
pub use self::engine::Engine;
pub use self::limits::{Limits, Slot};
pub use self::queue::{Admitted, DeadLetter, Fenced, Job, PartClaim, Queue, QueueDepth, Ticket};
pub use self::tokens::{TokenCache, TokenError};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 128 random bits in hex: owners of locks and holders of slots, unique across replicas so one
/// replica can never release what another holds.
pub(crate) fn random_id() -> String {
    let mut bytes = [0_u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS refused randomness (practically never). Uniqueness is what matters here, not
        // secrecy: the process id, the clock and a counter still tell holders apart.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 40);
        bytes[8..].copy_from_slice(&count.to_le_bytes());
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Wall-clock milliseconds since the Unix epoch: the unit Redis stream ids and TTLs speak.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// `base` plus up to `spread` at random, so replicas polling the same key drift apart instead
/// of hitting Redis in lockstep.
pub(crate) fn jittered(base: Duration, spread: Duration) -> Duration {
    let spread_ms = spread.as_millis().max(1) as u64;
    let extra = u64::from(getrandom::u32().unwrap_or(0)) % spread_ms;
    base + Duration::from_millis(extra)
}

/// A duration as whole milliseconds for Redis, at least 1 (0 means "forever" or is an error to
/// several commands).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_hex() {
        let first = random_id();
        let second = random_id();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        for _ in 0..100 {
            let pause = jittered(Duration::from_millis(20), Duration::from_millis(30));
            assert!(pause >= Duration::from_millis(20) && pause < Duration::from_millis(50));
        }
    }

    #[test]
    fn millis_is_never_zero() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }
}
