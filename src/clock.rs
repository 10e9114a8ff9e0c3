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
    hex(&bytes)
}

/// Lower-case hex in one allocation: `format!` per byte made sixteen, on every passive
/// message's path.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
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

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC, for people reading a listing.
pub fn format_unix_secs(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (H. Hinnant's algorithm), shifted so eras start on 0000-03-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_read_as_utc_dates() {
        assert_eq!(format_unix_secs(0), "1970-01-01 00:00:00");
        assert_eq!(format_unix_secs(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_unix_secs(1_795_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn random_ids_are_distinct_hex() {
        let first = random_id();
        let second = random_id();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first, second);
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff, 0x5c]), "000fa0ff5c");
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
