//! AES-256-CBC over the `random || len || msg || receive_id` frame, with 32-byte PKCS#7.

use aes::Aes256;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, STANDARD};
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};

use crate::key::EncodingAesKey;

/// Longest base64 ciphertext accepted (1 MiB); real callbacks are a few KB.
pub const MAX_ENCRYPTED_LEN: usize = 1 << 20;

// WXBizMsgCrypt pads to 32 bytes although AES blocks are 16 (inbound.md §0 row 2).
const PAD_BLOCK: usize = 32;
const AES_BLOCK: usize = 16;
const RANDOM_LEN: usize = 16;
const HEADER_LEN: usize = RANDOM_LEN + 4;

// Tencent always sends '=' padding; being indifferent costs nothing because the signature
// already covers the exact string, and it spares a peer that strips padding.
const CIPHERTEXT_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a callback was refused. Messages name the failed check, never key, token or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    #[error("msg_signature does not match")]
    BadSignature,
    #[error("encrypted payload is not valid base64")]
    Base64,
    #[error("ciphertext is empty, too long, or not a multiple of 16 bytes")]
    BadLength,
    #[error("ciphertext has invalid 32-byte PKCS#7 padding")]
    BadPadding,
    #[error("plaintext frame's length prefix runs past its end")]
    BadFrame,
    #[error("plaintext frame is addressed to another receive id")]
    WrongReceiver,
}

/// The expanded AES key and its fixed IV, so each message skips the key schedule.
#[derive(Clone)]
pub(crate) struct FrameCipher {
    aes: Aes256,
    iv: [u8; AES_BLOCK],
}

impl FrameCipher {
    pub(crate) fn new(key: &EncodingAesKey) -> Self {
        let key = key.as_bytes();
        let mut iv = [0u8; AES_BLOCK];
        iv.copy_from_slice(&key[..AES_BLOCK]);
        Self {
            aes: Aes256::new(key.into()),
            iv,
        }
    }

    /// Encrypts one frame; returns standard base64 with '='.
    pub(crate) fn seal(&self, msg: &[u8], receive_id: &[u8], random: &[u8; RANDOM_LEN]) -> String {
        let frame_len = HEADER_LEN + msg.len() + receive_id.len();
        let pad = PAD_BLOCK - frame_len % PAD_BLOCK;
        let mut buffer = Vec::with_capacity(frame_len + pad);
        buffer.extend_from_slice(random);
        // The platforms cap messages far below 4 GiB; a longer one cannot be framed at all.
        let declared = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        buffer.extend_from_slice(&declared.to_be_bytes());
        buffer.extend_from_slice(msg);
        buffer.extend_from_slice(receive_id);
        // `pad` is 1..=32, so the cast cannot truncate.
        buffer.resize(frame_len + pad, pad as u8);

        let total = buffer.len();
        let encryptor =
            cbc::Encryptor::<Aes256>::inner_iv_init(self.aes.clone(), (&self.iv).into());
        // Already padded to a multiple of 32, so NoPadding cannot fail; an error would mean a
        // broken invariant above, and an empty reply is then safer than a panic.
        let ciphertext = encryptor
            .encrypt_padded_mut::<NoPadding>(&mut buffer, total)
            .unwrap_or_default();
        STANDARD.encode(ciphertext)
    }

    /// base64 -> AES-256-CBC -> strip 32-byte PKCS#7 -> frame -> receive-id check, in one buffer.
    pub(crate) fn open(
        &self,
        encrypted_b64: &str,
        receive_id: &[u8],
    ) -> Result<Vec<u8>, CryptError> {
        if encrypted_b64.len() > MAX_ENCRYPTED_LEN {
            return Err(CryptError::BadLength);
        }
        let mut buffer = CIPHERTEXT_ENGINE
            .decode(encrypted_b64)
            .map_err(|_| CryptError::Base64)?;
        // Multiples of 16 rather than 32: DingTalk's Go and Rust samples pad to 16.
        if buffer.is_empty() || buffer.len() % AES_BLOCK != 0 {
            return Err(CryptError::BadLength);
        }
        let decryptor =
            cbc::Decryptor::<Aes256>::inner_iv_init(self.aes.clone(), (&self.iv).into());
        let len = decryptor
            .decrypt_padded_mut::<NoPadding>(&mut buffer)
            .map_err(|_| CryptError::BadLength)?
            .len();

        // Only the last byte is read, as the official libraries do; they treat an out-of-range
        // value as 0 while we refuse it, which genuine traffic never triggers.
        let pad = usize::from(buffer[len - 1]);
        if pad == 0 || pad > PAD_BLOCK || pad + HEADER_LEN > len {
            return Err(CryptError::BadPadding);
        }
        let content_end = len - pad;
        let declared = u32::from_be_bytes([buffer[16], buffer[17], buffer[18], buffer[19]]);
        let msg_end = usize::try_from(declared)
            .ok()
            .and_then(|msg_len| HEADER_LEN.checked_add(msg_len))
            .filter(|&msg_end| msg_end <= content_end)
            .ok_or(CryptError::BadFrame)?;
        if buffer[msg_end..content_end] != *receive_id {
            return Err(CryptError::WrongReceiver);
        }

        buffer.truncate(msg_end);
        buffer.drain(..HEADER_LEN);
        Ok(buffer)
    }
}
