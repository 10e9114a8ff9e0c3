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

use std::time::Duration;

pub(crate) use crate::clock::{random_id, unix_ms};

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
