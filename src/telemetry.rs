//! Log setup: human-readable on a terminal, one JSON object per line otherwise (containers), and
//! the keyed hash that stands for user ids in log lines.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins when set; otherwise `default_level`. Logs go to stderr so that stdout stays
/// clean for commands whose output is data (`chat`, `check-config`).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests that start several apps) is harmless; ignore the error it returns.
    if std::io::stderr().is_terminal() {
        let _ = builder.try_init();
    } else {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    }
}

/// The key of [`log_id`]: `server.log_id_key` when configured, else random for this process.
static LOG_ID_KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Bytes of HMAC-SHA256 kept: 12 hex characters tell apart the users one log search shows,
/// and are far too few to recover anything from.
const LOG_ID_BYTES: usize = 6;

/// Fixes the key of [`log_id`] for this process: the configured `server.log_id_key` (the same
/// on every replica, so one user's lines correlate across them), or 32 random bytes. The first
/// call wins; a [`log_id`] before any call draws the random key.
pub fn init_log_ids(configured: Option<&SecretString>) {
    let _ = LOG_ID_KEY.set(match configured {
        Some(key) => key.expose_secret().as_bytes().to_vec(),
        None => random_key(),
    });
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    // Without an OS random source the process could not have started its runtime either; an
    // all-zero key still hides ids from anyone who does not know it is all zero.
    let _ = getrandom::fill(&mut key);
    key
}

/// A user id (OpenID, sender, conversation) as it may appear in logs: the first 12 hex
/// characters of HMAC-SHA256 under this process's key. The same id gives the same value on
/// every line (and every replica sharing `server.log_id_key`), so lines correlate; the id itself
/// cannot be read back, nor replayed in a forged request.
pub fn log_id(id: &str) -> LogId {
    LogId::keyed(LOG_ID_KEY.get_or_init(random_key), id)
}

/// A platform message id as logs may show it: as it is when it is a plain token (WeChat's
/// numeric MsgId, a webhook caller's id), else `#` and its [`log_id`]. Ids the adapters make up
/// themselves embed the sender (WeChat events: `ev:<openid>:<time>:<event>:<key>`).
pub fn log_message_id(id: &str) -> LogMessageId<'_> {
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    match plain {
        true => LogMessageId::Plain(id),
        false => LogMessageId::Hashed(log_id(id)),
    }
}

/// See [`log_message_id`].
pub enum LogMessageId<'a> {
    Plain(&'a str),
    Hashed(LogId),
}

impl fmt::Display for LogMessageId<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogMessageId::Plain(id) => formatter.write_str(id),
            LogMessageId::Hashed(hash) => write!(formatter, "#{hash}"),
        }
    }
}

/// See [`log_id`]. `Display` is the 12 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogId([u8; LOG_ID_BYTES]);

impl LogId {
    /// The hash of `id` under `key`: what [`log_id`] logs in a process whose `log_id_key` is
    /// `key` (tools and tests that look a user up in the logs compute it with this).
    pub fn keyed(key: &[u8], id: &str) -> LogId {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut short = [0u8; LOG_ID_BYTES];
        short.copy_from_slice(&digest[..LOG_ID_BYTES]);
        LogId(short)
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_id_is_12_hex_characters_stable_per_key_and_hides_the_id() {
        let openid = "oyORnuP8q7ou2gfYjqLzSIWZf0rs";

        let one = LogId::keyed(b"key-one-0123456789", openid).to_string();
        let again = LogId::keyed(b"key-one-0123456789", openid).to_string();
        let other_key = LogId::keyed(b"key-two-0123456789", openid).to_string();
        let other_id = LogId::keyed(b"key-one-0123456789", "oAnotherUser").to_string();

        assert_eq!(one.len(), 12);
        assert!(one.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(one, again);
        assert_ne!(one, other_key);
        assert_ne!(one, other_id);
        assert!(!openid.contains(&one));
    }

    #[test]
    fn message_ids_are_shown_unless_they_embed_a_user_id() {
        let event = "ev:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1700000000:CLICK:menu";

        let msg_id = log_message_id("6054768590064713728").to_string();
        let webhook = log_message_id("order-17_a.b").to_string();
        let hidden = log_message_id(event).to_string();

        assert_eq!(msg_id, "6054768590064713728");
        assert_eq!(webhook, "order-17_a.b");
        assert_eq!(hidden, format!("#{}", log_id(event)));
    }

    #[test]
    fn log_id_matches_the_keyed_hash_of_this_process() {
        let id = "o-someone";

        let logged = log_id(id);

        let key = LOG_ID_KEY.get().expect("log_id fixed the key");
        assert_eq!(logged, LogId::keyed(key, id));
        assert_eq!(log_id(id), logged, "one key for the whole process");
    }
}
