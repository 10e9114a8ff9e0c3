//! The one place for "now" and for random bytes, so every subsystem reads the same clock and
//! draws randomness the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch: the unit Redis stream ids and TTLs speak.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Wall-clock seconds since the Unix epoch: the unit platform timestamps speak.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// 16 random bytes; zeros if the OS refuses (practically never). For fillers whose secrecy
/// nothing relies on, such as the first 16 bytes of an encrypted platform reply.
pub fn random16() -> [u8; 16] {
    let mut random = [0u8; 16];
    let _ = getrandom::fill(&mut random);
    random
}

/// What rendering a platform reply needs: the time, and 16 random bytes.
pub fn now_and_random() -> (u64, [u8; 16]) {
    (unix_secs(), random16())
}

/// 128 random bits in hex: owners of locks and holders of slots, tickets and request ids,
/// unique across replicas so one replica can never release what another holds.
pub fn random_id() -> String {
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

/// `base` plus up to `spread` at random, so replicas polling the same key drift apart instead
/// of hitting Redis in lockstep.
pub fn jittered(base: Duration, spread: Duration) -> Duration {
    let spread_ms = spread.as_millis().max(1) as u64;
    let extra = u64::from(getrandom::u32().unwrap_or(0)) % spread_ms;
    base + Duration::from_millis(extra)
}

/// A duration as whole milliseconds for Redis, at least 1 (0 means "forever" or is an error to
/// several commands).
pub fn millis(duration: Duration) -> u64 {
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
    fn seconds_follow_milliseconds() {
        let (secs, ms) = (unix_secs(), unix_ms());
        assert!(ms / 1000 >= secs && ms / 1000 - secs <= 1);
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
