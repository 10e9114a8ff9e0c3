//! The one place for "now" and for random bytes, so every subsystem reads the same clock and
//! draws randomness the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
}
