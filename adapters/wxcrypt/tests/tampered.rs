//! Every tampered field and malformed frame is refused with the right error, and secrets stay out
//! of `Debug` and error messages.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use botgate_wxcrypt::{
    signature, signature_matches, CryptError, EncodingAesKey, KeyError, MAX_ENCRYPTED_LEN,
};
use common::*;

/// Flips one ASCII character to another one of the same class, keeping the length.
fn flip(value: &str, index: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    bytes[index] = match bytes[index] {
        b'0' => b'1',
        b'a' => b'b',
        b'A' => b'B',
        c if c.is_ascii_digit() || c.is_ascii_alphabetic() => b'0',
        _ => b'A',
    };
    String::from_utf8(bytes).expect("flip keeps ASCII")
}

// ---- signature fields ----

#[test]
fn untampered_tv8_is_accepted() {
    let result = tv8_crypt().verify_and_decrypt(
        tv8::MSG_SIGNATURE,
        tv8::TIMESTAMP,
        tv8::NONCE,
        tv8::ECHOSTR,
    );

    assert_eq!(result, Ok(tv8::PLAINTEXT.as_bytes().to_vec()));
}

#[test]
fn every_flipped_signature_character_is_refused() {
    let crypt = tv8_crypt();
    for index in 0..tv8::MSG_SIGNATURE.len() {
        let signature = flip(tv8::MSG_SIGNATURE, index);

        let result = crypt.verify_and_decrypt(&signature, tv8::TIMESTAMP, tv8::NONCE, tv8::ECHOSTR);

        assert_eq!(result, Err(CryptError::BadSignature), "index {index}");
    }
}

#[test]
fn flipped_timestamp_is_refused() {
    let timestamp = flip(tv8::TIMESTAMP, 9);

    let result =
        tv8_crypt().verify_and_decrypt(tv8::MSG_SIGNATURE, &timestamp, tv8::NONCE, tv8::ECHOSTR);

    assert_eq!(result, Err(CryptError::BadSignature));
}

#[test]
fn flipped_nonce_is_refused() {
    let nonce = flip(tv8::NONCE, 0);

    let result =
        tv8_crypt().verify_and_decrypt(tv8::MSG_SIGNATURE, tv8::TIMESTAMP, &nonce, tv8::ECHOSTR);

    assert_eq!(result, Err(CryptError::BadSignature));
}

#[test]
fn flipped_encrypt_is_refused_before_decrypting() {
    let crypt = tv8_crypt();
    for index in [0, 10, tv8::ECHOSTR.len() - 3] {
        let encrypt = flip(tv8::ECHOSTR, index);

        let result =
            crypt.verify_and_decrypt(tv8::MSG_SIGNATURE, tv8::TIMESTAMP, tv8::NONCE, &encrypt);

        assert_eq!(result, Err(CryptError::BadSignature), "index {index}");
    }
}

#[test]
fn wrong_token_is_refused() {
    let crypt = crypt("QDG6eL", KEY_WECOM_90968, tv8::CORP_ID);

    let result =
        crypt.verify_and_decrypt(tv8::MSG_SIGNATURE, tv8::TIMESTAMP, tv8::NONCE, tv8::ECHOSTR);

    assert_eq!(result, Err(CryptError::BadSignature));
}

#[test]
fn signature_of_other_length_or_case_never_matches() {
    let parts = [tv8::TOKEN, tv8::TIMESTAMP, tv8::NONCE, tv8::ECHOSTR];
    assert!(signature_matches(tv8::MSG_SIGNATURE, &parts));

    for expected in [
        "",
        &tv8::MSG_SIGNATURE[..39],
        &format!("{}0", tv8::MSG_SIGNATURE),
        &tv8::MSG_SIGNATURE.to_uppercase(),
        &format!(" {}", &tv8::MSG_SIGNATURE[1..]),
    ] {
        assert!(!signature_matches(expected, &parts), "{expected:?}");
    }
}

#[test]
fn signature_of_many_parts_sorts_like_few() {
    let parts = ["i", "h", "g", "f", "e", "d", "c", "b", "a"];

    assert_eq!(signature(&parts), signature(&["abcdefghi"]));
}

// ---- receive id ----

#[test]
fn wrong_receive_id_is_refused() {
    for receive_id in [
        "wx5823bf96d3bd56c8",
        "wx5823bf96d3bd56c",
        "wx5823bf96d3bd56c77",
        "WX5823BF96D3BD56C7",
        "",
    ] {
        let crypt = crypt(tv8::TOKEN, KEY_WECOM_90968, receive_id);

        let result =
            crypt.verify_and_decrypt(tv8::MSG_SIGNATURE, tv8::TIMESTAMP, tv8::NONCE, tv8::ECHOSTR);

        assert_eq!(result, Err(CryptError::WrongReceiver), "{receive_id:?}");
    }
}

#[test]
fn empty_receive_id_round_trips_for_wecom_ai_bots() {
    let crypt = crypt("token", KEY_WECOM_NEW, "");
    let encrypt = crypt.encrypt(br#"{"msgtype":"text"}"#, b"0000000000000000");

    assert_eq!(
        crypt.decrypt(&encrypt),
        Ok(br#"{"msgtype":"text"}"#.to_vec())
    );
    assert_eq!(
        crypt_for_other_id().decrypt(&encrypt),
        Err(CryptError::WrongReceiver)
    );
}

fn crypt_for_other_id() -> botgate_wxcrypt::WxCrypt {
    crypt("token", KEY_WECOM_NEW, "ww1436e0e65a779aee")
}

// ---- ciphertext length ----

#[test]
fn ciphertext_truncated_by_one_block_is_refused() {
    let mut ciphertext = STANDARD.decode(tv8::ECHOSTR).unwrap();
    ciphertext.truncate(ciphertext.len() - 16);

    let result = tv8_crypt().decrypt(&STANDARD.encode(&ciphertext));

    // The last byte is now the corp id's '9' (57), far outside 1..=32.
    assert_eq!(result, Err(CryptError::BadPadding));
}

#[test]
fn ciphertext_not_a_multiple_of_16_is_refused() {
    for len in [1, 15, 17, 33, 63] {
        let result = tv8_crypt().decrypt(&STANDARD.encode(vec![7u8; len]));

        assert_eq!(result, Err(CryptError::BadLength), "length {len}");
    }
}

#[test]
fn empty_ciphertext_is_refused() {
    assert_eq!(tv8_crypt().decrypt(""), Err(CryptError::BadLength));
}

#[test]
fn overlong_input_is_refused_before_decoding() {
    // Not valid base64 either: BadLength proves the length is checked first.
    let input = "!".repeat(MAX_ENCRYPTED_LEN + 1);

    assert_eq!(tv8_crypt().decrypt(&input), Err(CryptError::BadLength));
}

#[test]
fn single_block_is_too_short_for_a_frame() {
    let encrypt = raw_encrypt(KEY_WECOM_90968, &[1u8; 16]);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Err(CryptError::BadPadding));
}

// ---- padding ----

#[test]
fn pad_byte_zero_is_refused() {
    let plaintext = frame(b"0123456789abcdef", 4, b"abcdwx5823bf96d3bd56c7", 22, 0);
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Err(CryptError::BadPadding));
}

#[test]
fn pad_byte_33_is_refused() {
    // 64 bytes, so 33 would fit inside the buffer: the bound, not the length, refuses it.
    let plaintext = frame(b"0123456789abcdef", 0, b"", 44, 33);
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Err(CryptError::BadPadding));
}

#[test]
fn pad_reaching_into_the_header_is_refused() {
    // 32 bytes with pad 13 leaves 19 < 20 header bytes.
    let plaintext = frame(b"0123456789abcdef", 0, b"", 12, 13);
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Err(CryptError::BadPadding));
}

#[test]
fn pad_to_16_as_dingtalk_samples_do_is_accepted() {
    // 16 + 4 + 5 + 18 = 43 bytes, padded with 5 to 48: a multiple of 16 but not of 32.
    let plaintext = frame(b"0123456789abcdef", 5, b"hellowx5823bf96d3bd56c7", 5, 5);
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Ok(b"hello".to_vec()));
}

#[test]
fn empty_message_with_exact_header_is_accepted() {
    let crypt = crypt("t", KEY_ZERO, "");
    let plaintext = frame(b"0123456789abcdef", 0, b"", 12, 12);

    assert_eq!(
        crypt.decrypt(&raw_encrypt(KEY_ZERO, &plaintext)),
        Ok(Vec::new())
    );
}

// ---- frame ----

#[test]
fn msg_len_past_the_end_is_refused() {
    // 16 + 4 + 22 + 22 = 64; the receive id would start at 20 + 23 > 64 - 22.
    let plaintext = frame(b"0123456789abcdef", 23, b"abcdwx5823bf96d3bd56c7", 22, 22);
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Err(CryptError::BadFrame));
}

#[test]
fn msg_len_of_u32_max_is_refused() {
    let plaintext = frame(
        b"0123456789abcdef",
        u32::MAX,
        b"abcdwx5823bf96d3bd56c7",
        22,
        22,
    );
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(tv8_crypt().decrypt(&encrypt), Err(CryptError::BadFrame));
}

#[test]
fn msg_len_too_short_leaves_bytes_in_the_receive_id() {
    let plaintext = frame(b"0123456789abcdef", 3, b"abcdwx5823bf96d3bd56c7", 22, 22);
    let encrypt = raw_encrypt(KEY_WECOM_90968, &plaintext);

    assert_eq!(
        tv8_crypt().decrypt(&encrypt),
        Err(CryptError::WrongReceiver)
    );
}

// ---- base64 ----

#[test]
fn invalid_base64_is_refused() {
    for input in [
        "P9nA!CzyDtyTWESH",
        "P9nA zCzyDtyTWES",
        "P9nA-CzyDtyTWESH",
        "====",
        "P9nAzCzyDtyTWESHe",
    ] {
        assert_eq!(
            tv8_crypt().decrypt(input),
            Err(CryptError::Base64),
            "{input:?}"
        );
    }
}

#[test]
fn missing_base64_padding_is_tolerated() {
    let unpadded = tv8::ECHOSTR.trim_end_matches('=');

    assert_eq!(
        tv8_crypt().decrypt(unpadded),
        Ok(tv8::PLAINTEXT.as_bytes().to_vec())
    );
}

// ---- keys ----

#[test]
fn key_of_wrong_length_is_refused() {
    assert_eq!(
        EncodingAesKey::parse(&KEY_WECOM_90968[..42]).unwrap_err(),
        KeyError::Length { found: 42 }
    );
    assert_eq!(
        EncodingAesKey::parse(&format!("{KEY_WECOM_90968}A")).unwrap_err(),
        KeyError::Length { found: 44 }
    );
    assert_eq!(
        EncodingAesKey::parse(&format!("{KEY_WECOM_90968}=")).unwrap_err(),
        KeyError::Length { found: 44 }
    );
    assert_eq!(
        EncodingAesKey::parse("").unwrap_err(),
        KeyError::Length { found: 0 }
    );
}

#[test]
fn key_with_base64_symbols_or_non_ascii_is_refused() {
    let with_plus = format!("{}+{}", &KEY_WECOM_90968[..5], &KEY_WECOM_90968[6..]);
    let with_slash = format!("{}/", &KEY_WECOM_90968[..42]);
    let with_han = format!("中{}", &KEY_WECOM_90968[1..]);

    assert_eq!(
        EncodingAesKey::parse(&with_plus).unwrap_err(),
        KeyError::InvalidCharacter { position: 5 }
    );
    assert_eq!(
        EncodingAesKey::parse(&with_slash).unwrap_err(),
        KeyError::InvalidCharacter { position: 42 }
    );
    assert_eq!(
        EncodingAesKey::parse(&with_han).unwrap_err(),
        KeyError::InvalidCharacter { position: 0 }
    );
}

#[test]
fn key_error_messages_say_what_is_wrong_without_the_key() {
    let too_short = &KEY_WECOM_90968[..42];
    let with_plus = format!("{}+", &KEY_WECOM_90968[..42]);

    let length = EncodingAesKey::parse(too_short).unwrap_err().to_string();
    let character = EncodingAesKey::parse(&with_plus).unwrap_err().to_string();

    assert!(length.contains("42") && length.contains("43"), "{length}");
    assert!(character.contains("position 42"), "{character}");
    for message in [length, character] {
        assert!(!message.contains(&KEY_WECOM_90968[..8]), "{message}");
    }
}

// ---- secrets stay out of Debug and errors ----

#[test]
fn debug_redacts_key_and_token() {
    let key = key(KEY_WECOM_90968);
    let crypt = tv8_crypt();

    let key_debug = format!("{key:?}");
    let crypt_debug = format!("{crypt:?}");
    let crypt_pretty = format!("{crypt:#?}");

    assert_eq!(key_debug, "EncodingAesKey(<redacted>)");
    for debug in [&crypt_debug, &crypt_pretty] {
        assert!(!debug.contains(tv8::TOKEN), "{debug}");
        assert!(!debug.contains(&KEY_WECOM_90968[..8]), "{debug}");
        assert!(
            !debug.contains(&format!("{:?}", &key.as_bytes()[..4])),
            "{debug}"
        );
        assert!(debug.contains(tv8::CORP_ID), "{debug}");
    }
}

#[test]
fn error_messages_carry_no_plaintext_or_secret() {
    let errors = [
        CryptError::BadSignature,
        CryptError::Base64,
        CryptError::BadLength,
        CryptError::BadPadding,
        CryptError::BadFrame,
        CryptError::WrongReceiver,
    ];
    for error in errors {
        let message = error.to_string();
        assert!(!message.is_empty());
        for secret in [
            tv8::TOKEN,
            tv8::PLAINTEXT,
            &KEY_WECOM_90968[..8],
            tv8::CORP_ID,
        ] {
            assert!(!message.contains(secret), "{message}");
        }
    }
}
