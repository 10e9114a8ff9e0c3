//! `WxCrypt`: one callback account's token, key and receive id, and the checks that use them.

use std::fmt;

use crate::cipher::{CryptError, FrameCipher};
use crate::key::EncodingAesKey;
use crate::signature::signature_matches;

/// Token + key + receive id (OA appid / WeCom corpid / DingTalk appKey or suiteKey; "" for WeCom AI bots).
#[derive(Clone)]
pub struct WxCrypt {
    pub(crate) token: String,
    pub(crate) cipher: FrameCipher,
    receive_id: String,
}

impl WxCrypt {
    pub fn new(token: &str, key: EncodingAesKey, receive_id: &str) -> Self {
        Self {
            token: token.to_owned(),
            cipher: FrameCipher::new(&key),
            receive_id: receive_id.to_owned(),
        }
    }

    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// 3-field signature over token, timestamp, nonce (OA plaintext mode and OA URL verification).
    pub fn plain_signature_matches(&self, signature: &str, timestamp: &str, nonce: &str) -> bool {
        signature_matches(signature, &[&self.token, timestamp, nonce])
    }

    /// Checks the 4-field `msg_signature`, then decrypts, then checks the receive id.
    ///
    /// The signature is checked first so unauthenticated bytes never reach the cipher.
    pub fn verify_and_decrypt(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted_b64: &str,
    ) -> Result<Vec<u8>, CryptError> {
        if !signature_matches(
            msg_signature,
            &[&self.token, timestamp, nonce, encrypted_b64],
        ) {
            return Err(CryptError::BadSignature);
        }
        self.decrypt(encrypted_b64)
    }

    /// Decrypts without a signature check and returns the message bytes.
    ///
    /// base64 -> AES-256-CBC (IV = key[0..16], no padding) -> 32-byte PKCS#7 strip -> frame parse
    /// -> receive-id check (exact bytes).
    pub fn decrypt(&self, encrypted_b64: &str) -> Result<Vec<u8>, CryptError> {
        self.cipher.open(encrypted_b64, self.receive_id.as_bytes())
    }

    /// `random(16) || u32_be(len) || msg || receive_id`, PKCS#7 to 32 bytes, AES-256-CBC, base64.
    pub fn encrypt(&self, msg: &[u8], random: &[u8; 16]) -> String {
        self.cipher.seal(msg, self.receive_id.as_bytes(), random)
    }
}

impl fmt::Debug for WxCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxCrypt")
            .field("token", &"<redacted>")
            .field("key", &"<redacted>")
            .field("receive_id", &self.receive_id)
            .finish()
    }
}
