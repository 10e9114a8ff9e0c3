//! From WeCom's decrypted fields to what the gateway acts on: a member's message, or a
//! customer-service notice that says where to pull messages from.

use std::fmt;

use botgate_contract::{AdapterError, Content, InboundMessage, Platform};
pub use botgate_wxcrypt::message::MessageKind;
use botgate_wxcrypt::message::{classify, non_empty, Classified, MessageFields};

use crate::wire::WireMessage;

/// A verified and decoded POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A member wrote to (or acted on) a self-built app.
    Message(AppMessage),
    /// `kf_msg_or_event`: customer service has news; pull it with `kf/sync_msg`.
    Notice(KfNotice),
}

/// A member's message to a self-built app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMessage {
    pub message: InboundMessage,
    pub kind: MessageKind,
    /// The plaintext's `AgentID` (covered by the signature, unlike the envelope's), for callers
    /// that serve several apps from one URL or want to check it.
    pub agent_id: Option<u64>,
}

/// The `kf_msg_or_event` callback: it carries no message, only the pull token.
#[derive(Clone, PartialEq, Eq)]
pub struct KfNotice {
    /// `Token`: lifts `kf/sync_msg`'s strict rate limit; valid 10 minutes.
    pub token: String,
    /// `OpenKfId`: the customer-service account with news (absent in older payloads).
    pub open_kfid: Option<String>,
}

// The pull token is a short-lived credential: logs get its length, never its value.
impl fmt::Debug for KfNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KfNotice")
            .field("token_len", &self.token.len())
            .field("open_kfid", &self.open_kfid)
            .finish()
    }
}

const KF_NOTICE_EVENT: &str = "kf_msg_or_event";

/// Maps one decrypted message. The member (`FromUserName`) is both conversation and sender:
/// app messages are one-to-one.
pub(crate) fn map_message(wire: WireMessage) -> Result<Decoded, AdapterError> {
    let msg_type = non_empty(wire.msg_type, "message without MsgType")?.to_ascii_lowercase();
    // A notice has no FromUserName, so it is recognised before a sender is required.
    if msg_type == "event"
        && wire
            .event
            .as_deref()
            .is_some_and(|event| event.eq_ignore_ascii_case(KF_NOTICE_EVENT))
    {
        return Ok(Decoded::Notice(KfNotice {
            token: non_empty(wire.token, "kf_msg_or_event without Token")?,
            open_kfid: wire.open_kf_id.filter(|id| !id.is_empty()),
        }));
    }

    let user = non_empty(wire.from_user_name, "message without FromUserName")?;
    let Classified {
        kind,
        message_id,
        content,
    } = classify(
        MessageFields {
            user: user.clone(),
            msg_type,
            msg_id: wire.msg_id,
            create_time: wire.create_time,
            event: wire.event,
            event_key: wire.event_key,
            content: wire.content,
            recognition: wire.recognition,
            pic_url: wire.pic_url,
        },
        event_content,
    )?;

    Ok(Decoded::Message(AppMessage {
        message: InboundMessage {
            platform: Platform::Wecom,
            conversation: user.clone(),
            sender: user,
            message_id,
            content,
        },
        kind,
        agent_id: wire.agent_id,
    }))
}

/// WeCom sends event names in lower case, but compares are case-insensitive like WeChat's.
fn event_content(event: &str, event_key: String) -> Content {
    let name = event.to_ascii_lowercase();
    match name.as_str() {
        // Opening the app (enter_agent) and installing it (subscribe) both start a conversation.
        "enter_agent" | "subscribe" => Content::FirstContact,
        "unsubscribe" => Content::Left,
        // A menu click asks the menu key as a question; a key-less click has nothing to ask.
        "click" if !event_key.is_empty() => Content::Text(event_key),
        _ => Content::Ignored { kind: name },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_message;

    fn map(xml: &str) -> Result<Decoded, AdapterError> {
        map_message(parse_message(xml.as_bytes())?)
    }

    fn app(xml: &str) -> AppMessage {
        match map(xml) {
            Ok(Decoded::Message(message)) => message,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn event(name: &str, key: &str) -> String {
        format!(
            "<xml><ToUserName>ww1</ToUserName><FromUserName>zhang</FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType>event</MsgType>\
             <Event>{name}</Event><EventKey>{key}</EventKey><AgentID>1000002</AgentID></xml>"
        )
    }

    #[test]
    fn maps_text_with_its_agent_id() {
        let mapped = app(
            "<xml><ToUserName>ww1</ToUserName><FromUserName>zhang</FromUserName>\
             <CreateTime>1</CreateTime><MsgType>text</MsgType><Content> hi </Content>\
             <MsgId>4561255354251345929</MsgId><AgentID>218</AgentID></xml>",
        );

        assert_eq!(mapped.kind, MessageKind::Text);
        assert_eq!(mapped.agent_id, Some(218));
        assert_eq!(
            mapped.message,
            InboundMessage {
                platform: Platform::Wecom,
                conversation: "zhang".into(),
                sender: "zhang".into(),
                message_id: "4561255354251345929".into(),
                content: Content::Text(" hi ".into()),
            }
        );
    }

    #[test]
    fn maps_voice_image_and_others() {
        let base = "<ToUserName>ww1</ToUserName><FromUserName>zhang</FromUserName><MsgId>7</MsgId>";
        let content = |tail: &str| app(&format!("<xml>{base}{tail}</xml>")).message.content;

        assert_eq!(
            content("<MsgType>voice</MsgType><Recognition>腾讯</Recognition>"),
            Content::Voice {
                recognition: Some("腾讯".into())
            }
        );
        assert_eq!(
            content("<MsgType>voice</MsgType><MediaId>m</MediaId>"),
            Content::Voice { recognition: None }
        );
        assert_eq!(
            content("<MsgType>image</MsgType><PicUrl>http://p/1</PicUrl>"),
            Content::Image {
                url: "http://p/1".into()
            }
        );
        assert_eq!(
            content("<MsgType>File</MsgType>"),
            Content::Ignored {
                kind: "file".into()
            }
        );
    }

    #[test]
    fn maps_events() {
        let content = |name: &str, key: &str| app(&event(name, key)).message.content;

        assert_eq!(content("enter_agent", ""), Content::FirstContact);
        assert_eq!(content("subscribe", ""), Content::FirstContact);
        assert_eq!(content("unsubscribe", ""), Content::Left);
        assert_eq!(content("click", "#help"), Content::Text("#help".into()));
        assert_eq!(
            content("click", ""),
            Content::Ignored {
                kind: "click".into()
            }
        );
        assert_eq!(
            content("LOCATION", ""),
            Content::Ignored {
                kind: "location".into()
            }
        );
        assert_eq!(
            content("change_contact", ""),
            Content::Ignored {
                kind: "change_contact".into()
            }
        );
    }

    #[test]
    fn gives_events_a_stable_id() {
        let mapped = app(&event("click", "#help"));

        assert_eq!(mapped.message.message_id, "ev:zhang:1700000000:click:#help");
        assert_eq!(mapped.kind, MessageKind::Event);
        assert_eq!(mapped.agent_id, Some(1000002));
    }

    #[test]
    fn maps_the_kf_notice_with_and_without_an_account() {
        let with = map("<xml><ToUserName>ww1</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>kf_msg_or_event</Event><Token>T1</Token><OpenKfId>wk1</OpenKfId></xml>");
        let without = map("<xml><MsgType>event</MsgType><Event>KF_MSG_OR_EVENT</Event><Token>T2</Token><OpenKfId></OpenKfId></xml>");

        assert_eq!(
            with,
            Ok(Decoded::Notice(KfNotice {
                token: "T1".into(),
                open_kfid: Some("wk1".into())
            }))
        );
        assert_eq!(
            without,
            Ok(Decoded::Notice(KfNotice {
                token: "T2".into(),
                open_kfid: None
            }))
        );
    }

    #[test]
    fn a_notice_never_shows_its_token_in_debug() {
        let notice = KfNotice {
            token: "secret-token".into(),
            open_kfid: None,
        };

        let shown = format!("{notice:?}");

        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("token_len: 12"), "{shown}");
    }

    #[test]
    fn refuses_messages_missing_what_it_needs() {
        let cases = [
            "<xml><MsgType>event</MsgType><Event>kf_msg_or_event</Event></xml>",
            "<xml><MsgType>event</MsgType><Event>kf_msg_or_event</Event><Token></Token></xml>",
            "<xml><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>",
            "<xml><FromUserName>u</FromUserName><Content>x</Content><MsgId>1</MsgId></xml>",
            "<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId></xml>",
            "<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><Content>x</Content></xml>",
            "<xml><FromUserName>u</FromUserName><MsgType>image</MsgType><MsgId>1</MsgId></xml>",
            "<xml><FromUserName>u</FromUserName><MsgType>event</MsgType><CreateTime>1</CreateTime></xml>",
            "<xml><FromUserName>u</FromUserName><MsgType>event</MsgType><Event>click</Event></xml>",
        ];

        for xml in cases {
            let result = map(xml);

            assert!(
                matches!(result, Err(AdapterError::Malformed(_))),
                "{xml}: {result:?}"
            );
        }
    }
}
