//! Helpers shared by the integration tests: raw AES access that bypasses the crate's checks.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use botgate_wxcrypt::{EncodingAesKey, WxCrypt};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

pub const KEY_ZERO: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
pub const KEY_TENCENT_OA: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const KEY_WECOM_90968: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const KEY_WECOM_NEW: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
pub const KEY_WECHATPY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
pub const KEY_DINGTALK: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
pub const KEY_DINGTALK_GO: &str = "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus";
pub const KEY_DINGTALK_RUST: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";

/// TV-8 (WeCom doc 90968 URL verification): the vector most negative tests start from.
pub mod tv8 {
    pub const TOKEN: &str = "QDG6eK";
    pub const CORP_ID: &str = "wx5823bf96d3bd56c7";
    pub const MSG_SIGNATURE: &str = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
    pub const TIMESTAMP: &str = "1409659589";
    pub const NONCE: &str = "263014780";
    pub const ECHOSTR: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    pub const PLAINTEXT: &str = "1616140317555161061";
}

pub fn key(encoded: &str) -> EncodingAesKey {
    EncodingAesKey::parse(encoded).expect("test key parses")
}

pub fn crypt(token: &str, encoded_key: &str, receive_id: &str) -> WxCrypt {
    WxCrypt::new(token, key(encoded_key), receive_id)
}

pub fn tv8_crypt() -> WxCrypt {
    crypt(tv8::TOKEN, KEY_WECOM_90968, tv8::CORP_ID)
}

/// Decrypts without stripping or checking anything: the padded frame as the sender built it.
pub fn raw_decrypt(encoded_key: &str, encrypted_b64: &str) -> Vec<u8> {
    let key = key(encoded_key);
    let key = key.as_bytes();
    let mut buffer = STANDARD.decode(encrypted_b64).expect("vector is base64");
    cbc::Decryptor::<Aes256>::new(key.into(), key[..16].into())
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .expect("whole blocks");
    buffer
}

/// Encrypts arbitrary whole blocks with the key's fixed IV, for frames the crate would never build.
pub fn raw_encrypt(encoded_key: &str, plaintext: &[u8]) -> String {
    assert_eq!(plaintext.len() % 16, 0, "raw_encrypt takes whole blocks");
    let key = key(encoded_key);
    let key = key.as_bytes();
    let mut buffer = plaintext.to_vec();
    let len = buffer.len();
    let ciphertext = cbc::Encryptor::<Aes256>::new(key.into(), key[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut buffer, len)
        .expect("whole blocks");
    STANDARD.encode(ciphertext)
}

/// `random || u32_be(declared_len) || body`, then `pad` copies of `pad_byte`, unencrypted.
pub fn frame(
    random: &[u8; 16],
    declared_len: u32,
    body: &[u8],
    pad: usize,
    pad_byte: u8,
) -> Vec<u8> {
    let mut frame = random.to_vec();
    frame.extend_from_slice(&declared_len.to_be_bytes());
    frame.extend_from_slice(body);
    frame.extend(std::iter::repeat_n(pad_byte, pad));
    frame
}
