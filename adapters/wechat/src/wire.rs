//! The WeChat XML wire format: the outer POST envelope and the flat message fields, pulled with quick-xml.
//!
//! Both documents are flat: a `<xml>` root whose children are the fields. Only direct children of
//! the root are read; nested elements (`ScanCodeInfo`, `SendPicsInfo`, …) and unknown fields are
//! skipped, so new platform fields never break decoding. The envelope is attacker-controlled until
//! its signature is checked, so the reader is strict about structure: no DTD (`<!DOCTYPE`, and with
//! it `<!ENTITY`: no billion laughs, no parser differential), one `<xml>` root, balanced tags, only
//! the five predefined entities, and a size cap.

use botgate_contract::AdapterError;
use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

/// The largest body (or decrypted plaintext) accepted. Real payloads are a few KB; Tencent
/// documents no limit, so this only bounds the work an attacker can ask for.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

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
    value
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| malformed(format!("{field} is not an unsigned integer")))
        })
        .transpose()
}

/// Collects the text of the root's children named in `names`, in the same order.
/// A field's text is the concatenation of its text and CDATA children, entities resolved.
fn read_fields<const N: usize>(
    xml: &[u8],
    names: [&str; N],
) -> Result<[Option<String>; N], AdapterError> {
    if xml.len() > MAX_BODY_BYTES {
        return Err(AdapterError::TooLarge);
    }
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut reader = Reader::from_reader(xml);
    let mut depth = 0usize;
    let mut root = RootState::NotSeen;
    // The field being read (an index into `names`) and its text so far.
    let mut current: Option<(usize, String)> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|error| malformed(format!("not well-formed XML: {error}")))?;
        match event {
            Event::DocType(_) => {
                return Err(malformed("document type declarations are not accepted"));
            }
            Event::Start(start) => {
                if depth == 0 {
                    root = root.open(start.name().as_ref())?;
                } else if depth == 1 {
                    let index = field_index(&names, start.name().as_ref());
                    current = index.map(|index| (index, String::new()));
                }
                depth += 1;
            }
            Event::Empty(empty) => {
                if depth == 0 {
                    root = root.open(empty.name().as_ref())?.close();
                } else if depth == 1 {
                    if let Some(index) = field_index(&names, empty.name().as_ref()) {
                        store(&mut values, &names, index, String::new())?;
                    }
                }
            }
            Event::End(_) => {
                // quick-xml rejects unmatched and mismatched end tags, so depth is at least 1.
                depth = depth.saturating_sub(1);
                match depth {
                    0 => root = root.close(),
                    1 => {
                        if let Some((index, text)) = current.take() {
                            store(&mut values, &names, index, text)?;
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(text) => {
                let text = text
                    .xml10_content()
                    .map_err(|_| malformed("text is not UTF-8"))?;
                if depth == 0 && !text.trim().is_empty() {
                    return Err(malformed("text outside the root element"));
                }
                append(&mut current, depth, &text);
            }
            Event::CData(cdata) => {
                let text = cdata
                    .xml10_content()
                    .map_err(|_| malformed("CDATA is not UTF-8"))?;
                if depth == 0 {
                    return Err(malformed("CDATA outside the root element"));
                }
                append(&mut current, depth, &text);
            }
            Event::GeneralRef(reference) => {
                // Resolved even where ignored: an undefined entity makes the document malformed.
                let text = resolve_reference(&reference)?;
                if depth == 0 {
                    return Err(malformed("reference outside the root element"));
                }
                append(&mut current, depth, &text);
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }

    match root {
        RootState::Closed => Ok(values),
        RootState::NotSeen => Err(malformed("no <xml> root element")),
        RootState::Open => Err(malformed("the <xml> root element is not closed")),
    }
}

#[derive(Clone, Copy)]
enum RootState {
    NotSeen,
    Open,
    Closed,
}

impl RootState {
    fn open(self, name: &[u8]) -> Result<Self, AdapterError> {
        match self {
            RootState::NotSeen if name == b"xml" => Ok(RootState::Open),
            RootState::NotSeen => Err(malformed("the root element must be <xml>")),
            RootState::Open | RootState::Closed => Err(malformed("more than one root element")),
        }
    }

    fn close(self) -> Self {
        RootState::Closed
    }
}

fn field_index(names: &[&str], name: &[u8]) -> Option<usize> {
    names.iter().position(|wanted| wanted.as_bytes() == name)
}

/// Text belongs to a field only when it is a direct child of that field (depth 2).
fn append(current: &mut Option<(usize, String)>, depth: usize, text: &str) {
    if depth == 2 {
        if let Some((_, value)) = current {
            value.push_str(text);
        }
    }
}

/// Stores a field's value; a repeated field is refused rather than guessed at (which copy would
/// a different parser, or the signer, have used?).
fn store<const N: usize>(
    values: &mut [Option<String>; N],
    names: &[&str; N],
    index: usize,
    text: String,
) -> Result<(), AdapterError> {
    let slot = &mut values[index];
    if slot.is_some() {
        return Err(malformed(format!("repeated field {}", names[index])));
    }
    *slot = Some(text);
    Ok(())
}

fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, AdapterError> {
    let invalid = || malformed("invalid character reference");
    if let Some(character) = reference.resolve_char_ref().map_err(|_| invalid())? {
        return Ok(character.to_string());
    }
    let name = reference.decode().map_err(|_| invalid())?;
    quick_xml::escape::resolve_xml_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| malformed("undefined entity"))
}

fn malformed(reason: impl Into<String>) -> AdapterError {
    AdapterError::Malformed(reason.into())
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
