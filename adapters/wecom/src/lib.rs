//! The WeCom (企业微信) adapter: self-built app callbacks and customer-service (微信客服, kf) notices.
//!
//! Pure: bytes and strings in, data out. No I/O, no clock, no randomness of its own (the caller
//! passes `now` and, to the simulator, the random bytes), so every path is testable and
//! fuzzable. Protocol: `shared/reference/inbound.md` §3 (app callbacks), §4 (kf), §1 (crypto).
//!
//! WeCom callbacks are always encrypted, and botgate never answers them passively: every
//! accepted request gets `200` with an empty body (doc 90238: 可以直接返回200（即以空串为返回包）)
//! and the answer goes through `message/send` (apps) or `kf/send_msg` (customer service).
//!
//! # Layout
//!
//! - `lib.rs`: [`WecomApp`] and its two entry points (`verify_url`, `decode`).
//! - `adapter.rs`: the [`botgate_contract::Adapter`] impl.
//! - `query.rs`: the signature parameters of the callback URL (`botgate_wxcrypt::query`).
//! - `wire.rs`: the envelope and message fields, XML or JSON ([`wire::parse_message`]), over
//!   `xml.rs` (the strict flat reader of `botgate_wxcrypt::xml`) and `json.rs`.
//! - `inbound.rs`: messages and events mapped to [`Decoded`]: an [`AppMessage`] or a [`KfNotice`].
//! - `kf.rs`: customer service: `kf/sync_msg` bodies and items, `kf/send_msg` bodies.
//! - `simulator.rs`: WeCom's side (signed requests) for the simulator and tests.
//!
//! # Freshness
//!
//! A request is accepted only while its `timestamp` is within the app's window of `now` (either
//! direction; [`DEFAULT_TIMESTAMP_WINDOW`] unless set), checked right after the signature so
//! only an authentic request is ever refused as stale, and a stale one is never decrypted.
//! WeCom retries three times within seconds; windows are never narrower than
//! [`MIN_TIMESTAMP_WINDOW`] so those retries pass. Replays inside the window are absorbed by
//! the core's dedup on [`InboundMessage::message_id`](botgate_contract::InboundMessage).

use std::fmt;
use std::time::Duration;

use botgate_contract::AdapterError;
use botgate_wxcrypt::{CallbackError, CryptError, EncodingAesKey, WxCrypt};

mod adapter;
mod inbound;
mod json;
pub mod kf;
mod query;
pub mod simulator;
pub mod wire;
mod xml;

pub use adapter::ACKNOWLEDGE;
pub use inbound::{AppMessage, Decoded, KfNotice, MessageKind};
pub use query::MAX_QUERY_BYTES;
pub use simulator::{SignedRequest, SimulatedCallback};
pub use wire::{BodyFormat, MAX_BODY_BYTES};

use query::CallbackQuery;

/// How far a request's `timestamp` may be from `now` unless the app says otherwise.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);

/// The narrowest window that still accepts WeCom's own retries (three, after 5 s timeouts)
/// from a server whose clock is a few seconds off.
pub const MIN_TIMESTAMP_WINDOW: Duration = Duration::from_secs(30);

/// One self-built app's (or customer-service) callback endpoint, as configured in the admin
/// console: Token, EncodingAESKey and the corp id the ciphertexts are addressed to.
#[derive(Clone)]
pub struct WecomApp {
    crypt: WxCrypt,
    corp_id: String,
    timestamp_window_secs: u64,
}

impl WecomApp {
    /// `corp_id` is the receive id every ciphertext must carry (`ww…`/`wx…`).
    pub fn new(token: &str, key: EncodingAesKey, corp_id: &str) -> Self {
        Self {
            crypt: WxCrypt::new(token, key, corp_id),
            corp_id: corp_id.to_owned(),
            timestamp_window_secs: DEFAULT_TIMESTAMP_WINDOW.as_secs(),
        }
    }

    /// Accepts requests whose `timestamp` is at most `window` from `now`, in either direction.
    /// Narrower than [`MIN_TIMESTAMP_WINDOW`] is raised to it: WeCom's retries must pass.
    pub fn timestamp_window(mut self, window: Duration) -> Self {
        self.timestamp_window_secs = window.max(MIN_TIMESTAMP_WINDOW).as_secs();
        self
    }

    pub fn corp_id(&self) -> &str {
        &self.corp_id
    }

    /// GET URL verification: `msg_signature`, `timestamp`, `nonce`, `echostr` (URL-encoded).
    /// The echostr is encrypted: checks the signature over the decoded values, then the window,
    /// then decrypts it (addressed to the corp id) and returns the plaintext, which is the whole
    /// answer (no quotes, no newline).
    pub fn verify_url(&self, query: &str, now_secs: u64) -> Result<String, AdapterError> {
        let query = CallbackQuery::parse(query)?;
        let echostr =
            botgate_wxcrypt::query::required(&query.echostr, "echostr").map_err(callback_error)?;
        let plaintext = self.open(&query, echostr, now_secs)?;
        String::from_utf8(plaintext)
            .map_err(|_| AdapterError::Malformed("echostr plaintext is not UTF-8".to_owned()))
    }

    /// POST: checks `msg_signature` over the body's `Encrypt` (XML or JSON body), then the
    /// window, then decrypts (addressed to the corp id) and decodes the plaintext message.
    pub fn decode(&self, query: &str, body: &[u8], now_secs: u64) -> Result<Decoded, AdapterError> {
        let query = CallbackQuery::parse(query)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(AdapterError::TooLarge);
        }
        let encrypt = wire::parse_encrypt(body)?;
        let plaintext = self.open(&query, &encrypt, now_secs)?;
        inbound::map_message(wire::parse_message(&plaintext)?)
    }

    /// The GET's echostr and the POST's `Encrypt` are signed and encrypted alike.
    fn open(
        &self,
        query: &CallbackQuery,
        encrypt: &str,
        now_secs: u64,
    ) -> Result<Vec<u8>, AdapterError> {
        query
            .signed()
            .and_then(|signed| {
                self.crypt
                    .open_callback(signed, encrypt, now_secs, self.timestamp_window_secs)
            })
            .map_err(callback_error)
    }
}

impl fmt::Debug for WecomApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WecomApp")
            .field("token", &"<redacted>")
            .field("key", &"<redacted>")
            .field("corp_id", &self.corp_id)
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
