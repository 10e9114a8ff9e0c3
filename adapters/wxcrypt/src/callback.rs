//! One signed callback checked in the order that keeps work away from forgers: the signature,
//! then the timestamp window, then decryption.

use crate::cipher::CryptError;
use crate::crypt::WxCrypt;
use crate::signature::{signature, signature_matches};

/// The values `msg_signature` is checked with, every one present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    pub msg_signature: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
}

/// Why a callback was refused: its query, its XML, its timestamp or its ciphertext. Messages
/// name the failed check, never key, token or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("missing query parameter `{0}`")]
    MissingParameter(&'static str),
    #[error("signature does not match")]
    BadSignature,
    /// `skew_secs` is now minus the timestamp: positive when the request claims to be older.
    #[error("timestamp outside the accepted window (skew {skew_secs} s)")]
    StaleTimestamp { skew_secs: i64 },
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("query or document too large")]
    TooLarge,
    #[error(transparent)]
    Crypt(#[from] CryptError),
}

/// `timestamp` (decimal Unix seconds, as Tencent sends it) at most `window_secs` from
/// `now_secs`, in either direction. A skew beyond `i64` saturates instead of overflowing.
pub fn check_timestamp(
    timestamp: &str,
    now_secs: u64,
    window_secs: u64,
) -> Result<(), CallbackError> {
    let timestamp: u64 = timestamp.parse().map_err(|_| {
        CallbackError::Malformed("timestamp is not a whole number of seconds".to_owned())
    })?;
    let skew = i128::from(now_secs) - i128::from(timestamp);
    if skew.unsigned_abs() <= u128::from(window_secs) {
        return Ok(());
    }
    let skew_secs = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
    Err(CallbackError::StaleTimestamp { skew_secs })
}

impl WxCrypt {
    /// [`WxCrypt::verify_and_decrypt`] with the timestamp window between the two: a forged
    /// request is refused as such even when stale, and a stale one is never decrypted.
    pub fn open_callback(
        &self,
        signed: Signed<'_>,
        encrypt: &str,
        now_secs: u64,
        window_secs: u64,
    ) -> Result<Vec<u8>, CallbackError> {
        if !signature_matches(
            signed.msg_signature,
            &[&self.token, signed.timestamp, signed.nonce, encrypt],
        ) {
            return Err(CallbackError::BadSignature);
        }
        check_timestamp(signed.timestamp, now_secs, window_secs)?;
        Ok(self.decrypt(encrypt)?)
    }

    /// The `msg_signature` a callback carrying `encrypt` is sent with.
    pub fn msg_signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature(&[&self.token, timestamp, nonce, encrypt])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncodingAesKey;

    const NOW: u64 = 1_700_000_000;

    fn crypt() -> WxCrypt {
        let key = EncodingAesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        WxCrypt::new("token", key, "receiver")
    }

    fn signed<'a>(msg_signature: &'a str, timestamp: &'a str) -> Signed<'a> {
        Signed {
            msg_signature,
            timestamp,
            nonce: "n",
        }
    }

    #[test]
    fn opens_a_fresh_authentic_callback() {
        let crypt = crypt();
        let encrypt = crypt.encrypt(b"hello", &[3; 16]);
        let msg_signature = crypt.msg_signature("1700000010", "n", &encrypt);

        let opened = crypt.open_callback(signed(&msg_signature, "1700000010"), &encrypt, NOW, 300);

        assert_eq!(opened, Ok(b"hello".to_vec()));
    }

    #[test]
    fn checks_the_signature_before_the_window_and_the_window_before_decrypting() {
        let crypt = crypt();
        // Authentic but undecryptable: only decryption could refuse it.
        let encrypt = "AAAA";
        let msg_signature = crypt.msg_signature("1", "n", encrypt);

        let forged_and_stale = crypt.open_callback(signed(&"0".repeat(40), "1"), encrypt, NOW, 300);
        let stale = crypt.open_callback(signed(&msg_signature, "1"), encrypt, NOW, 300);
        let fresh = crypt.open_callback(signed(&msg_signature, "1"), encrypt, 1, 300);

        assert_eq!(forged_and_stale, Err(CallbackError::BadSignature));
        assert_eq!(
            stale,
            Err(CallbackError::StaleTimestamp {
                skew_secs: NOW as i64 - 1
            })
        );
        assert_eq!(fresh, Err(CallbackError::Crypt(CryptError::BadLength)));
    }

    #[test]
    fn the_window_is_inclusive_in_both_directions() {
        assert_eq!(check_timestamp("1700000300", NOW, 300), Ok(()));
        assert_eq!(check_timestamp("1699999700", NOW, 300), Ok(()));
        assert_eq!(
            check_timestamp("1700000301", NOW, 300),
            Err(CallbackError::StaleTimestamp { skew_secs: -301 })
        );
    }

    #[test]
    fn extreme_timestamps_saturate_and_words_are_malformed() {
        assert_eq!(
            check_timestamp(&u64::MAX.to_string(), 0, 300),
            Err(CallbackError::StaleTimestamp {
                skew_secs: i64::MIN
            })
        );
        assert_eq!(
            check_timestamp("0", u64::MAX, 300),
            Err(CallbackError::StaleTimestamp {
                skew_secs: i64::MAX
            })
        );
        assert!(matches!(
            check_timestamp("-5", NOW, 300),
            Err(CallbackError::Malformed(_))
        ));
    }
}
