//! The 43-character EncodingAESKey, decoded once into the 32-byte AES key.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;

/// Characters in an EncodingAESKey as the consoles generate it.
pub const ENCODING_AES_KEY_LEN: usize = 43;

// 43 base64 characters carry 258 bits of which only 256 are used, and Tencent's own keys leave
// the two spare bits non-zero, so the strict standard engine would reject them.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Why a configured EncodingAESKey was refused. Never carries the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("EncodingAESKey has length {found}, expected {ENCODING_AES_KEY_LEN}")]
    Length { found: usize },
    #[error(
        "EncodingAESKey has an invalid character at position {position} (allowed: A-Z, a-z, 0-9)"
    )]
    InvalidCharacter { position: usize },
    #[error("EncodingAESKey does not decode to 32 bytes")]
    Undecodable,
}

/// 32-byte AES key decoded from a 43-char EncodingAESKey. `Debug` never shows it.
#[derive(Clone)]
pub struct EncodingAesKey([u8; 32]);

impl EncodingAesKey {
    /// Exactly 43 chars of `[A-Za-z0-9]`, decoded as `base64(s + "=")` with trailing bits allowed.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let found = s.chars().count();
        if found != ENCODING_AES_KEY_LEN {
            return Err(KeyError::Length { found });
        }
        // '+' and '/' are base64 but never appear in a console-generated key: a key holding them
        // was mangled on the way (URL decoding, copy-paste), better to say so at startup.
        if let Some(position) = s.chars().position(|c| !c.is_ascii_alphanumeric()) {
            return Err(KeyError::InvalidCharacter { position });
        }
        // 43 characters decode to 32 bytes and 2 leftover bits; the slack keeps the engine's
        // conservative output-size check happy.
        let mut decoded = [0u8; 33];
        let written = KEY_ENGINE
            .decode_slice(s, &mut decoded)
            .map_err(|_| KeyError::Undecodable)?;
        let key = decoded
            .get(..32)
            .filter(|_| written == 32)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(KeyError::Undecodable)?;
        Ok(Self(key))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EncodingAesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodingAesKey(<redacted>)")
    }
}
