//! The HTTP-mode robot signature (`sign` header) and the millisecond timestamp window.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use botgate_contract::AdapterError;

/// `base64(HMAC-SHA256(key = app_secret, message = timestamp + "\n" + app_secret))`, standard
/// base64 with padding and not URL-encoded (inbound.md §6.1; vectors G3, G3b).
pub fn sign(app_secret: &str, timestamp: &str) -> String {
    STANDARD.encode(mac(app_secret, timestamp))
}

/// Whether `sign` is the signature of `timestamp`, compared in constant time.
pub fn sign_matches(app_secret: &str, timestamp: &str, sign: &str) -> bool {
    let expected = STANDARD.encode(mac(app_secret, timestamp));
    // `ct_eq` on slices of unequal length is false; only the length leaks, and it is public.
    expected.as_bytes().ct_eq(sign.as_bytes()).into()
}

fn mac(app_secret: &str, timestamp: &str) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail; the fallback only satisfies the type.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return [0; 32];
    };
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(app_secret.as_bytes());
    mac.finalize().into_bytes().into()
}

/// A millisecond timestamp as DingTalk sends it: decimal digits only (no sign, no spaces).
pub(crate) fn parse_millis(timestamp: &str) -> Result<u64, AdapterError> {
    let malformed = || AdapterError::Malformed("timestamp is not a whole number of ms".to_owned());
    if timestamp.is_empty() || !timestamp.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(malformed());
    }
    timestamp.parse().map_err(|_| malformed())
}

/// `timestamp_ms` at most `window_ms` from `now_ms`, in either direction.
///
/// The skew is reported in whole seconds rounded away from zero, so a refused request never
/// reports a skew that looks inside a whole-second window.
pub(crate) fn check_window(
    timestamp_ms: u64,
    now_ms: u64,
    window_ms: u64,
) -> Result<(), AdapterError> {
    let skew_ms = i128::from(now_ms) - i128::from(timestamp_ms);
    if skew_ms.unsigned_abs() <= u128::from(window_ms) {
        return Ok(());
    }
    // Two u64 milliseconds are at most ~1.8e16 s apart, well inside i64: no saturation needed.
    let magnitude = i64::try_from(skew_ms.unsigned_abs().div_ceil(1000)).unwrap_or(i64::MAX);
    let skew_secs = if skew_ms < 0 { -magnitude } else { magnitude };
    Err(AdapterError::StaleTimestamp { skew_secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_inclusive_and_rounds_the_reported_skew_outwards() {
        assert_eq!(check_window(1_000, 3_601_000, 3_600_000), Ok(()));
        assert_eq!(
            check_window(1_000, 3_601_001, 3_600_000),
            Err(AdapterError::StaleTimestamp { skew_secs: 3601 })
        );
        assert_eq!(
            check_window(3_600_001, 0, 3_600_000),
            Err(AdapterError::StaleTimestamp { skew_secs: -3601 })
        );
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let most = (u64::MAX / 1000 + 1) as i64;

        assert_eq!(
            check_window(0, u64::MAX, 0),
            Err(AdapterError::StaleTimestamp { skew_secs: most })
        );
        assert_eq!(
            check_window(u64::MAX, 0, 0),
            Err(AdapterError::StaleTimestamp { skew_secs: -most })
        );
    }

    #[test]
    fn timestamps_are_bare_digits() {
        assert_eq!(parse_millis("1577262236757"), Ok(1_577_262_236_757));
        for bad in ["", "+1", "-1", " 1", "1.5", "99999999999999999999"] {
            assert!(parse_millis(bad).is_err(), "{bad:?}");
        }
    }
}
