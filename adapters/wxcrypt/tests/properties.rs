//! Property tests: encryption round-trips, and no input makes decryption panic.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use botgate_wxcrypt::{signature, signature_matches, CryptError};
use common::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn encrypt_then_decrypt_returns_the_message(
        msg in proptest::collection::vec(any::<u8>(), 0..2048),
        receive_id in ".{0,40}",
        random in any::<[u8; 16]>(),
    ) {
        let crypt = crypt("token", KEY_WECOM_90968, &receive_id);

        let encrypt = crypt.encrypt(&msg, &random);

        let ciphertext_len = STANDARD.decode(&encrypt).unwrap().len();
        prop_assert_eq!(ciphertext_len % 32, 0);
        prop_assert_eq!(crypt.decrypt(&encrypt), Ok(msg));
    }

    #[test]
    fn reply_envelopes_verify_with_their_own_signature(
        msg in proptest::collection::vec(any::<u8>(), 0..512),
        timestamp in "[0-9]{10,13}",
        nonce in "[A-Za-z0-9]{1,16}",
        random in any::<[u8; 16]>(),
    ) {
        let crypt = crypt("token", KEY_DINGTALK, "ding6ccabc44d2c8d38b");
        let encrypt = crypt.encrypt(&msg, &random);
        let msg_signature = signature(&["token", &timestamp, &nonce, &encrypt]);

        let json = crypt.encrypt_reply_json(&msg, &timestamp, &nonce, &random);
        let xml = crypt.encrypt_reply_xml(&msg, &timestamp, &nonce, &random);

        prop_assert!(json.contains(&msg_signature) && json.contains(&encrypt));
        prop_assert!(xml.contains(&msg_signature) && xml.contains(&encrypt));
        prop_assert_eq!(crypt.verify_and_decrypt(&msg_signature, &timestamp, &nonce, &encrypt), Ok(msg));
    }

    #[test]
    fn decrypt_never_panics_on_arbitrary_strings(input in ".{0,300}") {
        let _ = tv8_crypt().decrypt(&input);
    }

    #[test]
    fn decrypt_never_panics_on_arbitrary_whole_blocks(
        blocks in proptest::collection::vec(any::<[u8; 16]>(), 0..12),
    ) {
        let ciphertext: Vec<u8> = blocks.concat();

        let result = tv8_crypt().decrypt(&STANDARD.encode(&ciphertext));

        // Random blocks may by chance form a frame for this corp id, but essentially never.
        prop_assert!(result.is_err());
    }

    #[test]
    fn decrypt_never_panics_on_arbitrary_frames(
        declared_len in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..100),
        pad_byte in any::<u8>(),
    ) {
        let mut plaintext = frame(b"0123456789abcdef", declared_len, &body, 0, 0);
        let pad = 16 - plaintext.len() % 16;
        plaintext.extend(std::iter::repeat_n(pad_byte, pad));

        let _ = tv8_crypt().decrypt(&raw_encrypt(KEY_WECOM_90968, &plaintext));
    }

    #[test]
    fn verify_and_decrypt_never_panics_and_refuses_unsigned_input(
        msg_signature in ".{0,50}",
        timestamp in ".{0,20}",
        nonce in ".{0,20}",
        encrypt in ".{0,200}",
    ) {
        let result = tv8_crypt().verify_and_decrypt(&msg_signature, &timestamp, &nonce, &encrypt);

        prop_assert_eq!(result, Err(CryptError::BadSignature));
    }

    #[test]
    fn signature_matches_exactly_its_own_output(
        parts in proptest::collection::vec(".{0,20}", 0..10),
        other in "[0-9a-f]{40}",
    ) {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let expected = signature(&parts);

        prop_assert_eq!(expected.len(), 40);
        prop_assert!(signature_matches(&expected, &parts));
        prop_assert_eq!(signature_matches(&other, &parts), other == expected);
    }
}
