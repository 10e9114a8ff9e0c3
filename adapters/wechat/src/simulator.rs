//! The other side of the protocol: requests as WeChat sends them, replies as WeChat reads them.
//! Used by `botgate simulate wechat`, the end-to-end tests and the benchmark.

use botgate_contract::AdapterError;
use botgate_wxcrypt::{signature, signature_matches};

use crate::wire::{parse_message, parse_reply_envelope};
use crate::{WechatAccount, ACKNOWLEDGE};

/// How the account's console is set (消息加解密方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMode {
    Plaintext,
    /// Plaintext fields and `<Encrypt>` in one body.
    Compatible,
    Safe,
}

/// A message as a user would send it; rendered as WeChat's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedMessage {
    Text {
        msg_id: u64,
        content: String,
    },
    Voice {
        msg_id: u64,
        recognition: Option<String>,
    },
    Image {
        msg_id: u64,
        pic_url: String,
    },
    Event {
        event: String,
        event_key: String,
    },
}

/// One signed (and, by mode, encrypted) callback request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The query string, without `?`.
    pub query: String,
    pub body: String,
}

impl SimulatedMessage {
    /// The plaintext XML WeChat would send from `user` to the account `account` (a `gh_` id).
    pub fn to_xml(&self, user: &str, account: &str, create_time: u64) -> String {
        let head = format!(
            "<xml><ToUserName><![CDATA[{account}]]></ToUserName>\n<FromUserName><![CDATA[{user}]]></FromUserName>\n<CreateTime>{create_time}</CreateTime>\n"
        );
        let tail = match self {
            SimulatedMessage::Text { msg_id, content } => format!(
                "<MsgType><![CDATA[text]]></MsgType>\n<Content>{}</Content>\n<MsgId>{msg_id}</MsgId>\n",
                cdata(content)
            ),
            SimulatedMessage::Voice { msg_id, recognition } => format!(
                "<MsgType><![CDATA[voice]]></MsgType>\n<MediaId><![CDATA[media]]></MediaId>\n<Format><![CDATA[amr]]></Format>\n<Recognition>{}</Recognition>\n<MsgId>{msg_id}</MsgId>\n",
                cdata(recognition.as_deref().unwrap_or_default())
            ),
            SimulatedMessage::Image { msg_id, pic_url } => format!(
                "<MsgType><![CDATA[image]]></MsgType>\n<PicUrl>{}</PicUrl>\n<MediaId><![CDATA[media]]></MediaId>\n<MsgId>{msg_id}</MsgId>\n",
                cdata(pic_url)
            ),
            SimulatedMessage::Event { event, event_key } => format!(
                "<MsgType><![CDATA[event]]></MsgType>\n<Event>{}</Event>\n<EventKey>{}</EventKey>\n",
                cdata(event),
                cdata(event_key)
            ),
        };
        format!("{head}{tail}</xml>")
    }
}

fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

impl WechatAccount {
    /// Signs (and in aes modes encrypts) `xml` as WeChat would; `random` fills the frame.
    /// `timestamp` is what the gateway compares with its clock: pass the current Unix time.
    /// Like WeChat, the query names the sender (`openid`, the message's `FromUserName`).
    pub fn sign_request(
        &self,
        mode: CallbackMode,
        xml: &str,
        timestamp: u64,
        nonce: &str,
        random: &[u8; 16],
    ) -> Result<SignedRequest, AdapterError> {
        let timestamp = timestamp.to_string();
        let plain_signature = signature(&[&self.token, &timestamp, nonce]);
        let mut query = format!("signature={plain_signature}&timestamp={timestamp}&nonce={nonce}");
        // A document that does not parse is sent anyway (tests send broken XML on purpose),
        // just without an openid.
        if let Some(openid) = parse_message(xml.as_bytes())
            .ok()
            .and_then(|message| message.from_user_name)
        {
            query.push_str("&openid=");
            query.extend(form_urlencoded::byte_serialize(openid.as_bytes()));
        }
        let body = match mode {
            CallbackMode::Plaintext => xml.to_owned(),
            CallbackMode::Compatible | CallbackMode::Safe => {
                let crypt = self
                    .crypt
                    .as_ref()
                    .ok_or(AdapterError::EncryptionNotConfigured)?;
                let encrypted = crypt.encrypt(xml.as_bytes(), random);
                let msg_signature = signature(&[&self.token, &timestamp, nonce, &encrypted]);
                query.push_str(&format!("&encrypt_type=aes&msg_signature={msg_signature}"));
                let envelope = format!("<Encrypt><![CDATA[{encrypted}]]></Encrypt>");
                match mode {
                    CallbackMode::Compatible => {
                        xml.replacen("</xml>", &format!("{envelope}</xml>"), 1)
                    }
                    _ => format!(
                        "<xml><ToUserName><![CDATA[{}]]></ToUserName>{envelope}</xml>",
                        self.app_id
                    ),
                }
            }
        };
        Ok(SignedRequest { query, body })
    }

    /// The text of a passive reply as the user would see it: `None` for `success` or an empty
    /// body; the `Content` of a text reply, after checking the envelope's signature and
    /// decrypting when the reply is encrypted.
    pub fn open_reply(&self, body: &[u8]) -> Result<Option<String>, AdapterError> {
        let trimmed = std::str::from_utf8(body)
            .map_err(|_| AdapterError::Malformed("reply is not UTF-8".into()))?
            .trim();
        if trimmed.is_empty() || trimmed == ACKNOWLEDGE {
            return Ok(None);
        }
        let envelope = parse_reply_envelope(trimmed.as_bytes())?;
        let xml = match envelope.encrypt {
            Some(encrypted) => {
                let crypt = self
                    .crypt
                    .as_ref()
                    .ok_or(AdapterError::EncryptionNotConfigured)?;
                let timestamp = envelope.timestamp.unwrap_or_default();
                let nonce = envelope.nonce.unwrap_or_default();
                let msg_signature = envelope.msg_signature.unwrap_or_default();
                if !signature_matches(
                    &msg_signature,
                    &[&self.token, &timestamp, &nonce, &encrypted],
                ) {
                    return Err(AdapterError::BadSignature);
                }
                crypt
                    .decrypt(&encrypted)
                    .map_err(|error| AdapterError::Decrypt(error.to_string()))?
            }
            None => trimmed.as_bytes().to_vec(),
        };
        let message = parse_message(&xml)?;
        if message.msg_type.as_deref() != Some("text") {
            return Err(AdapterError::Malformed(
                "reply is not a text message".into(),
            ));
        }
        Ok(Some(message.content.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botgate_wxcrypt::EncodingAesKey;

    fn account() -> WechatAccount {
        let key = EncodingAesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        WechatAccount::new("spamtest", Some(key), "wx2c2769f8efd9abc2")
    }

    #[test]
    fn every_mode_round_trips_through_decode_and_reply() {
        let account = account();
        let message = SimulatedMessage::Text {
            msg_id: 6054768590064713728,
            content: "问]]>题".into(),
        };
        for mode in [
            CallbackMode::Plaintext,
            CallbackMode::Compatible,
            CallbackMode::Safe,
        ] {
            let xml = message.to_xml("oUser", "gh_account", 1_700_000_000);
            let request = account
                .sign_request(mode, &xml, 1_700_000_000, "nonce1", &[7; 16])
                .unwrap();
            let decoded = account
                .decode(&request.query, request.body.as_bytes(), 1_700_000_000)
                .unwrap();
            assert!(
                request.query.ends_with("&openid=oUser")
                    || request.query.contains("&openid=oUser&"),
                "names the sender as WeChat does: {}",
                request.query
            );
            assert_eq!(
                decoded.message.message_id, "6054768590064713728",
                "{mode:?}"
            );
            assert_eq!(
                decoded.message.content,
                botgate_contract::Content::Text("问]]>题".into())
            );
            assert_eq!(decoded.reply.encrypted, mode != CallbackMode::Plaintext);
            let reply = account.render_reply(&decoded.reply, "答]]>案", 1_700_000_001, &[9; 16]);
            assert_eq!(
                account.open_reply(reply.as_bytes()).unwrap().as_deref(),
                Some("答]]>案")
            );
        }
    }

    #[test]
    fn success_and_empty_mean_no_reply() {
        assert_eq!(account().open_reply(b"success").unwrap(), None);
        assert_eq!(account().open_reply(b"").unwrap(), None);
    }

    #[test]
    fn a_tampered_reply_signature_is_refused() {
        let account = account();
        let xml = SimulatedMessage::Text {
            msg_id: 1,
            content: "q".into(),
        }
        .to_xml("u", "gh", 1);
        let request = account
            .sign_request(CallbackMode::Safe, &xml, 1, "n", &[1; 16])
            .unwrap();
        let decoded = account
            .decode(&request.query, request.body.as_bytes(), 1)
            .unwrap();
        let reply = account.render_reply(&decoded.reply, "a", 2, &[2; 16]);
        let tampered = reply.replacen("<TimeStamp>2</TimeStamp>", "<TimeStamp>3</TimeStamp>", 1);
        assert_eq!(
            account.open_reply(tampered.as_bytes()),
            Err(AdapterError::BadSignature)
        );
    }
}
