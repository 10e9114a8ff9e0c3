//! The WeChat XML wire format: the outer POST envelope and the flat message fields.
//!
//! Both documents are flat: a `<xml>` root whose children are the fields, read by the strict
//! reader WeCom shares (`botgate_wxcrypt::xml`): nested and unknown elements are skipped, so new
//! platform fields never break decoding, and the attacker-controlled envelope gets no DTD, no
//! entities beyond the five predefined, one root, no repeated fields, and a size cap.

use botgate_contract::AdapterError;

use crate::callback_error;

/// The largest body (or decrypted plaintext) accepted: the shared XML reader's cap.
pub const MAX_BODY_BYTES: usize = botgate_wxcrypt::xml::MAX_DOCUMENT_BYTES;

/// The outer POST body of an encrypted request (safe or compatible mode).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The account's original id (`gh_…`). Not covered by the signature: informational only.
    pub to_user_name: Option<String>,
    /// The base64 ciphertext exactly as sent; the `msg_signature` covers this string.
    pub encrypt: Option<String>,
}

/// The fields of a (decrypted or plaintext) message that the adapter reads, named as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireMessage {
    /// `ToUserName`: the account's original id.
    pub to_user_name: Option<String>,
    /// `FromUserName`: the user's OpenID.
    pub from_user_name: Option<String>,
    /// `CreateTime`: seconds since the epoch.
    pub create_time: Option<u64>,
    /// `MsgType`: `text`, `image`, `voice`, `event`, …
    pub msg_type: Option<String>,
    /// `Content` of a text message.
    pub content: Option<String>,
    /// `MsgId`: a 64-bit id (values exceed 2^53); absent on events.
    pub msg_id: Option<u64>,
    /// `Event` of an event message; its case varies (`CLICK`, `subscribe`).
    pub event: Option<String>,
    /// `EventKey`: menu key, QR scene or URL, depending on the event.
    pub event_key: Option<String>,
    /// `Recognition`: the platform's speech-to-text of a voice message, when enabled.
    pub recognition: Option<String>,
    /// `PicUrl` of an image message.
    pub pic_url: Option<String>,
    /// `MediaId` of a media message.
    pub media_id: Option<String>,
    /// `Format` of a voice message (`amr`, `speex`).
    pub format: Option<String>,
}

/// Reads the outer body of a POST: `ToUserName` and `Encrypt` (absent in plaintext mode).
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, AdapterError> {
    let [to_user_name, encrypt] = read_fields(body, ["ToUserName", "Encrypt"])?;
    Ok(Envelope {
        to_user_name,
        encrypt,
    })
}

/// The encrypted passive reply envelope (inbound.md §1.5), as a client (the simulator) reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyEnvelope {
    pub encrypt: Option<String>,
    pub msg_signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
}

/// Reads an encrypted reply envelope: `Encrypt`, `MsgSignature`, `TimeStamp`, `Nonce`.
pub fn parse_reply_envelope(body: &[u8]) -> Result<ReplyEnvelope, AdapterError> {
    let [encrypt, msg_signature, timestamp, nonce] =
        read_fields(body, ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"])?;
    Ok(ReplyEnvelope {
        encrypt,
        msg_signature,
        timestamp: timestamp.map(|value| value.trim().to_owned()),
        nonce,
    })
}

/// Reads a message document. Strings are kept exactly (no trimming); numbers may be padded or
/// CDATA-wrapped and are trimmed before parsing.
pub fn parse_message(xml: &[u8]) -> Result<WireMessage, AdapterError> {
    let [to_user_name, from_user_name, create_time, msg_type, content, msg_id, event, event_key, recognition, pic_url, media_id, format] =
        read_fields(
            xml,
            [
                "ToUserName",
                "FromUserName",
                "CreateTime",
                "MsgType",
                "Content",
                "MsgId",
                "Event",
                "EventKey",
                "Recognition",
                "PicUrl",
                "MediaId",
                "Format",
            ],
        )?;
    Ok(WireMessage {
        to_user_name,
        from_user_name,
        create_time: parse_number("CreateTime", create_time)?,
        msg_type,
        content,
        msg_id: parse_number("MsgId", msg_id)?,
        event,
        event_key,
        recognition,
        pic_url,
        media_id,
        format,
    })
}

fn parse_number(field: &str, value: Option<String>) -> Result<Option<u64>, AdapterError> {
    botgate_wxcrypt::xml::parse_number(field, value).map_err(callback_error)
}

fn read_fields<const N: usize>(
    xml: &[u8],
    names: [&str; N],
) -> Result<[Option<String>; N], AdapterError> {
    botgate_wxcrypt::xml::read_fields(xml, names).map_err(callback_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cdata_and_bare_values_alike() {
        let with_cdata = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime><![CDATA[ 17 ]]></CreateTime><MsgId>18446744073709551615</MsgId></xml>";
        let bare = b"<xml><ToUserName>gh_1</ToUserName><CreateTime>17</CreateTime><MsgId>18446744073709551615</MsgId></xml>";

        let (a, b) = (
            parse_message(with_cdata).unwrap(),
            parse_message(bare).unwrap(),
        );

        assert_eq!(a, b);
        assert_eq!(a.to_user_name.as_deref(), Some("gh_1"));
        assert_eq!(a.create_time, Some(17));
        assert_eq!(a.msg_id, Some(u64::MAX));
    }

    #[test]
    fn keeps_string_values_exactly_and_unescapes_entities() {
        let xml = "<xml>\n  <Content> a &amp; b&#x4e2d;<![CDATA[ <c> ]]>\n</Content>\n</xml>";

        let message = parse_message(xml.as_bytes()).unwrap();

        assert_eq!(message.content.as_deref(), Some(" a & b中 <c> \n"));
    }

    #[test]
    fn ignores_nested_and_unknown_elements() {
        let xml = b"<xml><MsgType>event</MsgType><ScanCodeInfo><Content>nested</Content></ScanCodeInfo><Other>x</Other><EventKey/></xml>";

        let message = parse_message(xml).unwrap();

        assert_eq!(message.msg_type.as_deref(), Some("event"));
        assert_eq!(message.content, None);
        assert_eq!(message.event_key.as_deref(), Some(""));
    }

    #[test]
    fn refuses_what_a_signed_envelope_never_contains() {
        let cases: &[&[u8]] = &[
            b"<!DOCTYPE xml><xml><Encrypt>a</Encrypt></xml>",
            b"<!DOCTYPE xml [<!ENTITY e \"x\">]><xml><Encrypt>&e;</Encrypt></xml>",
            b"<xml><Encrypt>&e;</Encrypt></xml>",
            b"<root><Encrypt>a</Encrypt></root>",
            b"<xml><Encrypt>a</Encrypt></xml><xml/>",
            b"<xml><Encrypt>a</Encrypt>",
            b"<xml><Encrypt>a</xml>",
            b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
            b"junk<xml/>",
            b"",
        ];

        for body in cases {
            let result = parse_envelope(body);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn accepts_a_declaration_comments_and_a_byte_order_mark() {
        let xml = "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c --><xml><Encrypt>a<!-- c -->b</Encrypt></xml>\n";

        let envelope = parse_envelope(xml.as_bytes()).unwrap();

        assert_eq!(envelope.encrypt.as_deref(), Some("ab"));
    }

    #[test]
    fn caps_the_size() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];

        assert_eq!(parse_envelope(&body), Err(AdapterError::TooLarge));
    }

    #[test]
    fn rejects_non_numeric_numbers() {
        let result = parse_message(b"<xml><MsgId>12a</MsgId></xml>");

        assert!(matches!(result, Err(AdapterError::Malformed(_))));
    }
}
