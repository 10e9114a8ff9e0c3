//! WXBizMsgCrypt: the callback crypto shared by WeChat Official Accounts, WeCom and DingTalk.
//!
//! Pure functions over bytes and strings: no I/O, no clock, no randomness of its own (callers
//! pass the 16 random bytes and the timestamp), so every path is reproducible in tests.
//!
//! The protocol (see `shared/reference/inbound.md` §1):
//! - `msg_signature = sha1(sort([token, timestamp, nonce, encrypt]))` in lower-case hex, checked
//!   in constant time *before* anything is decrypted;
//! - `encrypt = base64(AES-256-CBC(key, iv = key[0..16], random(16) || u32_be(len) || msg || receive_id))`
//!   with PKCS#7 padding to **32**-byte blocks;
//! - the receive id (appid, corpid, appKey, suiteKey, or "" for WeCom AI bots) must match exactly.
//!
//! # Layout
//!
//! - `key.rs`: [`EncodingAesKey`], the 43-character console key parsed once at startup.
//! - `signature.rs`: [`signature()`] and [`signature_matches`] over sorted values.
//! - `cipher.rs`: the frame cipher, [`CryptError`] and [`MAX_ENCRYPTED_LEN`].
//! - `crypt.rs`: [`WxCrypt`], one account's token, key and receive id.
//! - `envelope.rs`: the signed XML (WeChat/WeCom) and JSON (DingTalk) reply envelopes.
//! - `message.rs`: the message inside a WeChat or WeCom callback, classified ([`message::classify`]).
//! - `callback.rs`: [`WxCrypt::open_callback`] (signature, then timestamp window, then
//!   decryption), [`check_timestamp`] and [`CallbackError`], which the adapters map to theirs.
//! - [`query`]: the signed parameters of the callback URL ([`query::CallbackQuery`]).
//! - [`xml`]: the strict reader of the flat `<xml>` envelope and message fields.

mod callback;
mod cipher;
mod crypt;
mod envelope;
mod key;
pub mod message;
pub mod query;
mod signature;
pub mod xml;

pub use callback::{check_timestamp, CallbackError};
pub use cipher::{CryptError, MAX_ENCRYPTED_LEN};
pub use crypt::WxCrypt;
pub use key::{EncodingAesKey, KeyError, ENCODING_AES_KEY_LEN};
pub use signature::{signature, signature_matches};
