//! The WeChat Official Account adapter: verifies, decrypts and decodes webhook requests, and renders passive replies.
//!
//! Pure: bytes and strings in, data out. No I/O, no clock, no randomness of its own (the caller
//! passes `now` and the 16 random bytes of an encrypted reply), so every path is testable and
//! fuzzable. Protocol: `shared/reference/inbound.md` §2 (modes, messages, replies) and §1 (crypto).
//!
//! # Layout
//!
//! - `lib.rs`: [`WechatAccount`], the three entry points (`verify_url`, `decode`, `render_reply`).
//! - `query.rs`: the signature parameters of the callback URL (`botgate_wxcrypt::query`, plus
//!   WeChat's `signature` and `encrypt_type`).
//! - `wire.rs`: the XML envelope and message fields ([`wire::parse_envelope`], [`wire::parse_message`]),
//!   read by the strict flat reader of `botgate_wxcrypt::xml`.
//! - `inbound.rs`: WeChat messages and events mapped to [`InboundMessage`], [`MessageKind`].
//! - `reply.rs`: the passive text reply XML ([`render_text_reply`]).
//! - `simulator.rs`: WeChat's side (signed requests, reading replies) for the simulator and tests.
//! - markdown flattened to plain text and long text split into messages come from `botgate-text`.
//!
//! # Freshness
//!
//! A signed request is accepted only while its `timestamp` is within the account's window of
//! `now` (either direction; [`DEFAULT_TIMESTAMP_WINDOW`] unless set): a plaintext `signature`
//! covers no body, so a logged or leaked URL would otherwise authorise forged messages forever.
//! Tencent documents no window; retries of one message span about 15 s and (unverified) may
//! reuse the original timestamp, so windows are never narrower than [`MIN_TIMESTAMP_WINDOW`].
//! The signature is checked first: only an authentic request is refused as stale, so the skew
//! in [`AdapterError::StaleTimestamp`] is a real replay or a real clock problem, never noise.
//! Replays inside the window are absorbed by the core's dedup on
//! [`InboundMessage::message_id`].

use std::fmt;
use std::time::Duration;

use botgate_contract::{AdapterError, InboundMessage};
use botgate_wxcrypt::{
    check_timestamp, signature_matches, CallbackError, CryptError, EncodingAesKey, WxCrypt,
};

mod adapter;
mod inbound;
mod query;
pub mod reply;
pub mod simulator;
pub mod wire;

pub use botgate_text::{markdown_to_text, split_utf8};
pub use inbound::MessageKind;
pub use query::MAX_QUERY_BYTES;
pub use reply::{render_text_reply, MAX_TEXT_REPLY_BYTES};
pub use simulator::{CallbackMode, SignedRequest, SimulatedMessage};
pub use wire::MAX_BODY_BYTES;

use query::{required, CallbackQuery, Mode};

/// The body that acknowledges a message without replying: WeChat neither retries nor shows
/// anything, and it needs no encryption even in safe mode (inbound.md §2.6).
pub const ACKNOWLEDGE: &str = "success";

/// How far a request's `timestamp` may be from `now` unless the account says otherwise.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);

/// The narrowest window that still accepts WeChat's own retries (about 15 s after the first
/// delivery, possibly with the original timestamp) from a server whose clock is a few seconds off.
pub const MIN_TIMESTAMP_WINDOW: Duration = Duration::from_secs(30);

/// One Official Account's callback settings, as configured in its console.
#[derive(Clone)]
pub struct WechatAccount {
    token: String,
    crypt: Option<WxCrypt>,
    app_id: String,
    require_encryption: bool,
    timestamp_window_secs: u64,
}

/// A verified and decoded POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub message: InboundMessage,
    /// What a passive reply to this request needs.
    pub reply: ReplyContext,
    pub kind: MessageKind,
}

/// Addressing and protection of the passive reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyContext {
    /// The user's OpenID (the request's `FromUserName`): the reply's `ToUserName`.
    pub user: String,
    /// The account's original id (the request's `ToUserName`): the reply's `FromUserName`.
    pub account: String,
    /// Whether the request was encrypted, and so the reply must be.
    pub encrypted: bool,
    /// The request's `nonce`, echoed in an encrypted reply's envelope.
    pub nonce: String,
}

impl WechatAccount {
    /// `token`, the optional EncodingAESKey (`None` = a plaintext-only account), and `app_id`
    /// (the receive id encrypted messages must be addressed to).
    pub fn new(token: &str, key: Option<EncodingAesKey>, app_id: &str) -> Self {
        Self {
            token: token.to_owned(),
            crypt: key.map(|key| WxCrypt::new(token, key, app_id)),
            app_id: app_id.to_owned(),
            require_encryption: false,
            timestamp_window_secs: DEFAULT_TIMESTAMP_WINDOW.as_secs(),
        }
    }

    /// Refuses plaintext POSTs. Plaintext mode signs only token, timestamp and nonce, never the
    /// body, and safe-mode URLs carry that same `signature`: anyone who saw one request URL could
    /// replay it with a body of their choosing. Accounts running in safe mode should opt in.
    pub fn require_encryption(mut self) -> Self {
        self.require_encryption = true;
        self
    }

    /// Accepts requests whose `timestamp` is at most `window` from `now`, in either direction.
    /// Narrower than [`MIN_TIMESTAMP_WINDOW`] is raised to it: WeChat's retries must pass.
    pub fn timestamp_window(mut self, window: Duration) -> Self {
        self.timestamp_window_secs = window.max(MIN_TIMESTAMP_WINDOW).as_secs();
        self
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// GET URL verification: `signature`, `timestamp`, `nonce`, `echostr` (URL-encoded). Returns
    /// `echostr`, URL-decoded and otherwise byte for byte, when the 3-field signature matches
    /// and `timestamp` is within the window of `now_secs` (Unix seconds).
    pub fn verify_url(&self, query: &str, now_secs: u64) -> Result<String, AdapterError> {
        let query = CallbackQuery::parse(query)?;
        let signature = required(&query.signature, "signature")?;
        let timestamp = required(&query.timestamp, "timestamp")?;
        let nonce = required(&query.nonce, "nonce")?;
        let echostr = required(&query.echostr, "echostr")?;
        self.check_plain_signature(signature, timestamp, nonce)?;
        self.check_fresh(timestamp, now_secs)?;
        Ok(echostr.to_owned())
    }

    /// POST: the mode is chosen per request from `encrypt_type`. Absent (or `raw`): plaintext,
    /// `signature` is checked and the body parsed. `aes` (safe or compatible mode): only
    /// `msg_signature` over `Encrypt` is checked (never `signature`, which covers no body), the
    /// message is decrypted, and compatible mode's plaintext copies in the body are ignored.
    /// Either way `timestamp` must be within the window of `now_secs` (Unix seconds), checked
    /// right after the signature: a stale message is never decrypted nor read.
    pub fn decode(&self, query: &str, body: &[u8], now_secs: u64) -> Result<Decoded, AdapterError> {
        let query = CallbackQuery::parse(query)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(AdapterError::TooLarge);
        }
        let (plaintext, encrypted) = match query.mode()? {
            Mode::Plaintext => {
                if self.require_encryption {
                    return Err(AdapterError::Malformed(
                        "plaintext request to an account that requires encryption".to_owned(),
                    ));
                }
                let signature = required(&query.signature, "signature")?;
                let timestamp = required(&query.timestamp, "timestamp")?;
                let nonce = required(&query.nonce, "nonce")?;
                self.check_plain_signature(signature, timestamp, nonce)?;
                self.check_fresh(timestamp, now_secs)?;
                (wire::parse_message(body)?, false)
            }
            Mode::Aes => {
                let crypt = self
                    .crypt
                    .as_ref()
                    .ok_or(AdapterError::EncryptionNotConfigured)?;
                let signed = query.signed().map_err(callback_error)?;
                let encrypt = wire::parse_envelope(body)?.encrypt.ok_or_else(|| {
                    AdapterError::Malformed("encrypted request without Encrypt".to_owned())
                })?;
                let decrypted = crypt
                    .open_callback(signed, &encrypt, now_secs, self.timestamp_window_secs)
                    .map_err(callback_error)?;
                (wire::parse_message(&decrypted)?, true)
            }
        };
        let mapped = inbound::map_message(plaintext)?;
        Ok(Decoded {
            reply: ReplyContext {
                user: mapped.message.sender.clone(),
                account: mapped.account,
                encrypted,
                nonce: query.nonce.clone().unwrap_or_default(),
            },
            message: mapped.message,
            kind: mapped.kind,
        })
    }

    /// A passive text reply for a decoded request: the plaintext XML in plaintext mode; in aes
    /// modes the encrypted envelope with `TimeStamp` = `now_secs`, `Nonce` = the request's nonce
    /// and the given 16 random bytes. Keep `text` within [`MAX_TEXT_REPLY_BYTES`].
    pub fn render_reply(
        &self,
        context: &ReplyContext,
        text: &str,
        now_secs: u64,
        random: &[u8; 16],
    ) -> String {
        let xml = render_text_reply(&context.user, &context.account, now_secs, text);
        if !context.encrypted {
            return xml;
        }
        match &self.crypt {
            Some(crypt) => crypt.encrypt_reply_xml(
                xml.as_bytes(),
                &now_secs.to_string(),
                &context.nonce,
                random,
            ),
            // Only a context built by hand gets here (this account never decodes an encrypted
            // request without a key). Never downgrade to plaintext: acknowledge without a reply.
            None => ACKNOWLEDGE.to_owned(),
        }
    }

    /// `timestamp` (decimal Unix seconds, as WeChat sends it) within the window of `now_secs`.
    fn check_fresh(&self, timestamp: &str, now_secs: u64) -> Result<(), AdapterError> {
        check_timestamp(timestamp, now_secs, self.timestamp_window_secs).map_err(callback_error)
    }

    fn check_plain_signature(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<(), AdapterError> {
        if signature_matches(signature, &[&self.token, timestamp, nonce]) {
            Ok(())
        } else {
            Err(AdapterError::BadSignature)
        }
    }
}

impl fmt::Debug for WechatAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatAccount")
            .field("token", &"<redacted>")
            .field(
                "key",
                &if self.crypt.is_some() {
                    "<redacted>"
                } else {
                    "none"
                },
            )
            .field("app_id", &self.app_id)
            .field("require_encryption", &self.require_encryption)
            .field("timestamp_window_secs", &self.timestamp_window_secs)
            .finish()
    }
}

/// The shared callback checks' refusals in the contract's terms. Not a `From` impl: neither
/// type is this crate's, and botgate-wxcrypt stays free of the gateway's contract.
pub(crate) fn callback_error(error: CallbackError) -> AdapterError {
    match error {
        CallbackError::MissingParameter(name) => AdapterError::MissingParameter(name),
        CallbackError::BadSignature | CallbackError::Crypt(CryptError::BadSignature) => {
            AdapterError::BadSignature
        }
        CallbackError::StaleTimestamp { skew_secs } => AdapterError::StaleTimestamp { skew_secs },
        CallbackError::Malformed(reason) => AdapterError::Malformed(reason),
        CallbackError::TooLarge => AdapterError::TooLarge,
        CallbackError::Crypt(CryptError::WrongReceiver) => AdapterError::WrongReceiver,
        CallbackError::Crypt(error) => AdapterError::Decrypt(error.to_string()),
    }
}
