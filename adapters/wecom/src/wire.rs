//! WeCom's wire format: the outer POST envelope and the flat message fields, in XML or JSON.
//!
//! The format is sniffed per document (a `{` first means JSON), so one endpoint serves apps set
//! to either 回调数据格式. Only `Encrypt` is read from the envelope: the signature covers nothing
//! else there, so the outer `ToUserName` and `AgentID` are never trusted (inbound.md §10).

use botgate_contract::AdapterError;

use crate::{callback_error, json, xml};

/// The largest body (or decrypted plaintext) accepted, XML or JSON: the shared XML reader's cap.
pub const MAX_BODY_BYTES: usize = botgate_wxcrypt::xml::MAX_DOCUMENT_BYTES;

/// How a callback body is written: XML (the default) or JSON (an app setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Xml,
    Json,
}

impl BodyFormat {
    /// JSON when the first significant byte is `{`; a byte order mark and whitespace are skipped.
    pub fn sniff(body: &[u8]) -> Self {
        let body = body.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(body);
        match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') => BodyFormat::Json,
            _ => BodyFormat::Xml,
        }
    }
}

/// The base64 ciphertext of an encrypted POST, exactly as sent (the `msg_signature` covers it).
pub fn parse_encrypt(body: &[u8]) -> Result<String, AdapterError> {
    let encrypt = match BodyFormat::sniff(body) {
        BodyFormat::Xml => {
            let [encrypt] = xml::read_fields(body, ["Encrypt"])?;
            encrypt
        }
        // Tencent's JSON sample and library use lower-case `encrypt` (the reference's prose
        // says `Encrypt`); both are read, and a body with both is refused as ambiguous.
        BodyFormat::Json => match json::read_fields(body, ["Encrypt", "encrypt"], &[])? {
            [Some(_), Some(_)] => return Err(malformed("both Encrypt and encrypt")),
            [upper, lower] => upper.or(lower),
        },
    };
    encrypt.ok_or_else(|| malformed("callback without Encrypt"))
}

/// The fields of a decrypted message that the adapter reads, named as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireMessage {
    /// `ToUserName`: the corp id.
    pub to_user_name: Option<String>,
    /// `FromUserName`: the member's UserID (absent on customer-service notices).
    pub from_user_name: Option<String>,
    /// `CreateTime`: seconds since the epoch.
    pub create_time: Option<u64>,
    /// `MsgType`: `text`, `image`, `voice`, `event`, …
    pub msg_type: Option<String>,
    /// `Content` of a text message.
    pub content: Option<String>,
    /// `MsgId`: a 64-bit id (values exceed 2^53); absent on events.
    pub msg_id: Option<u64>,
    /// `Event`: lower case in WeCom (`enter_agent`, `click`, `kf_msg_or_event`), compared
    /// case-insensitively all the same.
    pub event: Option<String>,
    /// `EventKey`: the menu key of a click.
    pub event_key: Option<String>,
    /// `Recognition`: WeCom's speech-to-text of a voice message, when enabled.
    pub recognition: Option<String>,
    /// `PicUrl` of an image message.
    pub pic_url: Option<String>,
    /// `MediaId` of a media message.
    pub media_id: Option<String>,
    /// `AgentID`: the app the message is for; absent on corp-level events.
    pub agent_id: Option<u64>,
    /// `Token` of a `kf_msg_or_event` notice: the pull token for `kf/sync_msg`.
    pub token: Option<String>,
    /// `OpenKfId` of a `kf_msg_or_event` notice: the customer-service account with news.
    pub open_kf_id: Option<String>,
}

const FIELDS: [&str; 14] = [
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
    "AgentID",
    "Token",
    "OpenKfId",
];
const NUMERIC: [&str; 3] = ["CreateTime", "MsgId", "AgentID"];

/// Reads a decrypted message. Strings are kept exactly (no trimming: user text may start or end
/// with spaces); numbers may be padded or CDATA-wrapped and are trimmed before parsing.
pub fn parse_message(plaintext: &[u8]) -> Result<WireMessage, AdapterError> {
    let fields = match BodyFormat::sniff(plaintext) {
        BodyFormat::Xml => xml::read_fields(plaintext, FIELDS)?,
        BodyFormat::Json => json::read_fields(plaintext, FIELDS, &NUMERIC)?,
    };
    let [to_user_name, from_user_name, create_time, msg_type, content, msg_id, event, event_key, recognition, pic_url, media_id, agent_id, token, open_kf_id] =
        fields;
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
        // Only informational, so an empty element is taken as absent rather than refused.
        agent_id: parse_number("AgentID", agent_id.filter(|text| !text.trim().is_empty()))?,
        token,
        open_kf_id,
    })
}

fn parse_number(field: &str, value: Option<String>) -> Result<Option<u64>, AdapterError> {
    botgate_wxcrypt::xml::parse_number(field, value).map_err(callback_error)
}

fn malformed(reason: &str) -> AdapterError {
    AdapterError::Malformed(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_format() {
        assert_eq!(BodyFormat::sniff(b" \n{\"a\":1}"), BodyFormat::Json);
        assert_eq!(BodyFormat::sniff("\u{FEFF}{}".as_bytes()), BodyFormat::Json);
        assert_eq!(BodyFormat::sniff(b"<xml/>"), BodyFormat::Xml);
        assert_eq!(BodyFormat::sniff(b""), BodyFormat::Xml);
    }

    #[test]
    fn xml_and_json_messages_read_alike() {
        let xml = "<xml><ToUserName>ww1</ToUserName><FromUserName><![CDATA[zhang]]></FromUserName>\n<CreateTime><![CDATA[ 17 ]]></CreateTime><MsgType>text</MsgType><Content> hi </Content><MsgId>18446744073709551615</MsgId><AgentID>1000002</AgentID></xml>";
        let json = r#"{"ToUserName":"ww1","FromUserName":"zhang","CreateTime":17,"MsgType":"text","Content":" hi ","MsgId":18446744073709551615,"AgentID":"1000002"}"#;

        let (from_xml, from_json) = (
            parse_message(xml.as_bytes()).unwrap(),
            parse_message(json.as_bytes()).unwrap(),
        );

        assert_eq!(from_xml, from_json);
        assert_eq!(from_xml.msg_id, Some(u64::MAX));
        assert_eq!(from_xml.create_time, Some(17));
        assert_eq!(from_xml.agent_id, Some(1000002));
        assert_eq!(from_xml.content.as_deref(), Some(" hi "));
    }

    #[test]
    fn an_empty_agent_id_is_absent_but_a_bad_number_is_malformed() {
        let empty = parse_message(b"<xml><AgentID></AgentID></xml>").unwrap();
        let bad = [
            &b"<xml><AgentID>x</AgentID></xml>"[..],
            b"<xml><MsgId>12a</MsgId></xml>",
            b"{\"CreateTime\":-1}",
            b"{\"MsgId\":1.5}",
        ];

        assert_eq!(empty.agent_id, None);
        for body in bad {
            let result = parse_message(body);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{result:?}"
            );
        }
    }

    #[test]
    fn reads_encrypt_from_either_format() {
        let xml = b"<xml> <ToUserName><![CDATA[ww]]></ToUserName><Encrypt><![CDATA[a+b/=]]></Encrypt>\n<AgentID><![CDATA[218]]></AgentID>\n</xml>";
        let lower = br#"{ "tousername": "ww", "encrypt": "a+b/=", "agentid": 218 }"#;
        let upper = br#"{"ToUserName":"ww","Encrypt":"a+b/=","AgentID":"218"}"#;

        for body in [&xml[..], lower, upper] {
            assert_eq!(parse_encrypt(body).as_deref(), Ok("a+b/="));
        }
    }

    #[test]
    fn refuses_envelopes_without_one_encrypt() {
        let cases = [
            &b"<xml><ToUserName>ww</ToUserName></xml>"[..],
            br#"{"encrypt":"a","Encrypt":"a"}"#,
            br#"{"encrypt":5}"#,
            br#"{}"#,
        ];

        for body in cases {
            let result = parse_encrypt(body);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{result:?}"
            );
        }
    }
}
