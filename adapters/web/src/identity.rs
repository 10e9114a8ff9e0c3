//! Visitor identities: a random id the browser keeps, or a user id the host site signs with
//! the bot's `access_key`, so a logged-in user keeps their memory across devices.

use botgate_contract::AdapterError;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// A user id signed by the host site's server: `signature` is the lowercase hex
/// HMAC-SHA256 of `"{bot}\n{user}\n{expires}"` under the bot's `access_key`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub user: String,
    /// Unix seconds after which the signature is refused.
    pub expires: u64,
    pub signature: String,
}

/// Longest signed user id, in bytes.
const MAX_USER_BYTES: usize = 128;

/// What the host site's server computes for a logged-in user (and what tests sign with).
pub fn sign_identity(key: &[u8], bot: &str, user: &str, expires: u64) -> String {
    let mac = mac(key, bot, user, expires);
    let mut hex = String::with_capacity(64);
    for byte in mac.finalize().into_bytes() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 15)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn mac(key: &[u8], bot: &str, user: &str, expires: u64) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bot.as_bytes());
    mac.update(b"\n");
    mac.update(user.as_bytes());
    mac.update(b"\n");
    mac.update(expires.to_string().as_bytes());
    mac
}

impl Identity {
    /// Checks the signature (in constant time) and the expiry against `now_secs`.
    pub fn verify(&self, key: &[u8], bot: &str, now_secs: u64) -> Result<(), AdapterError> {
        if self.user.is_empty()
            || self.user.len() > MAX_USER_BYTES
            || self.user.chars().any(char::is_control)
        {
            return Err(AdapterError::Malformed(
                "identity.user must be 1 to 128 bytes without control characters".to_owned(),
            ));
        }
        let signature = decode_hex(&self.signature).ok_or(AdapterError::BadSignature)?;
        mac(key, bot, &self.user, self.expires)
            .verify_slice(&signature)
            .map_err(|_| AdapterError::BadSignature)?;
        if self.expires <= now_secs {
            return Err(AdapterError::StaleTimestamp {
                skew_secs: i64::try_from(now_secs - self.expires).unwrap_or(i64::MAX),
            });
        }
        Ok(())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"site-secret";

    fn signed(user: &str, expires: u64) -> Identity {
        Identity {
            user: user.to_owned(),
            expires,
            signature: sign_identity(KEY, "shop", user, expires),
        }
    }

    #[test]
    fn a_signed_identity_is_accepted_until_it_expires() {
        let identity = signed("alice@example.com", 2_000);

        assert_eq!(identity.verify(KEY, "shop", 1_999), Ok(()));
        assert_eq!(
            identity.verify(KEY, "shop", 2_000),
            Err(AdapterError::StaleTimestamp { skew_secs: 0 })
        );
    }

    #[test]
    fn a_changed_user_expiry_bot_or_key_breaks_the_signature() {
        let good = signed("alice", 2_000);
        let other_user = Identity {
            user: "mallory".into(),
            ..good.clone()
        };
        let later = Identity {
            expires: 9_000,
            ..good.clone()
        };

        for (identity, key, bot) in [
            (&other_user, KEY, "shop"),
            (&later, KEY, "shop"),
            (&good, KEY, "other-bot"),
            (&good, b"wrong-key".as_slice(), "shop"),
        ] {
            assert_eq!(
                identity.verify(key, bot, 1_000),
                Err(AdapterError::BadSignature)
            );
        }
    }

    #[test]
    fn a_signature_that_is_not_64_hex_digits_is_refused() {
        for signature in ["", "zz", &"g".repeat(64), &"0".repeat(63)] {
            let identity = Identity {
                signature: signature.to_owned(),
                ..signed("alice", 2_000)
            };
            assert_eq!(
                identity.verify(KEY, "shop", 1_000),
                Err(AdapterError::BadSignature)
            );
        }
    }

    #[test]
    fn uppercase_hex_is_the_same_signature() {
        let mut identity = signed("alice", 2_000);
        identity.signature = identity.signature.to_uppercase();

        assert_eq!(identity.verify(KEY, "shop", 1_000), Ok(()));
    }
}
