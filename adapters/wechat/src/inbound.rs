//! From WeChat's message fields to the platform-neutral `InboundMessage` the conversation core acts on.

use botgate_contract::{AdapterError, Content, InboundMessage, Platform};
pub use botgate_wxcrypt::message::MessageKind;
use botgate_wxcrypt::message::{classify, non_empty, Classified, MessageFields};

use crate::wire::WireMessage;

/// A decoded message with the ids its reply is addressed with.
pub(crate) struct Mapped {
    pub(crate) message: InboundMessage,
    pub(crate) kind: MessageKind,
    /// The account's original id (`ToUserName`), the `FromUserName` of a reply.
    pub(crate) account: String,
}

/// Maps one message. The user (`FromUserName`) is both conversation and sender: an Official
/// Account only has one-to-one chats.
pub(crate) fn map_message(wire: WireMessage) -> Result<Mapped, AdapterError> {
    let user = non_empty(wire.from_user_name, "message without FromUserName")?;
    let account = non_empty(wire.to_user_name, "message without ToUserName")?;
    let msg_type = non_empty(wire.msg_type, "message without MsgType")?.to_ascii_lowercase();

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

    Ok(Mapped {
        message: InboundMessage {
            platform: Platform::Wechat,
            conversation: user.clone(),
            sender: user,
            message_id,
            content,
        },
        kind,
        account,
    })
}

/// Event names are compared case-insensitively: their case differs between events and platforms.
fn event_content(event: &str, event_key: String) -> Content {
    let name = event.to_ascii_lowercase();
    match name.as_str() {
        "subscribe" => Content::FirstContact,
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

    fn map(xml: &str) -> Result<Mapped, AdapterError> {
        map_message(parse_message(xml.as_bytes())?)
    }

    fn event(name: &str, key: &str) -> String {
        format!(
            "<xml><ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType>event</MsgType>\
             <Event>{name}</Event><EventKey>{key}</EventKey></xml>"
        )
    }

    #[test]
    fn maps_text_with_a_large_msg_id() {
        let mapped = map(
            "<xml><ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName>\
             <CreateTime>1</CreateTime><MsgType>text</MsgType><Content> hi </Content>\
             <MsgId>6054768590064713728</MsgId></xml>",
        )
        .unwrap();

        assert_eq!(mapped.kind, MessageKind::Text);
        assert_eq!(mapped.account, "gh_1");
        assert_eq!(
            mapped.message,
            InboundMessage {
                platform: Platform::Wechat,
                conversation: "oUser".into(),
                sender: "oUser".into(),
                message_id: "6054768590064713728".into(),
                content: Content::Text(" hi ".into()),
            }
        );
    }

    #[test]
    fn maps_voice_and_image() {
        let base =
            "<ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName><MsgId>7</MsgId>";

        let voice = map(&format!(
            "<xml>{base}<MsgType>voice</MsgType><Recognition>腾讯</Recognition></xml>"
        ))
        .unwrap();
        let silent = map(&format!(
            "<xml>{base}<MsgType>voice</MsgType><Recognition></Recognition></xml>"
        ))
        .unwrap();
        let image = map(&format!(
            "<xml>{base}<MsgType>image</MsgType><PicUrl>http://p/1</PicUrl></xml>"
        ))
        .unwrap();
        let video = map(&format!("<xml>{base}<MsgType>video</MsgType></xml>")).unwrap();

        assert_eq!(
            voice.message.content,
            Content::Voice {
                recognition: Some("腾讯".into())
            }
        );
        assert_eq!(silent.message.content, Content::Voice { recognition: None });
        assert_eq!(
            image.message.content,
            Content::Image {
                url: "http://p/1".into()
            }
        );
        assert_eq!(
            video.message.content,
            Content::Ignored {
                kind: "video".into()
            }
        );
        assert_eq!(video.kind, MessageKind::Other);
    }

    #[test]
    fn maps_events_case_insensitively() {
        let content = |name: &str, key: &str| map(&event(name, key)).unwrap().message.content;

        assert_eq!(content("subscribe", "qrscene_1"), Content::FirstContact);
        assert_eq!(content("UNSUBSCRIBE", ""), Content::Left);
        assert_eq!(
            content("CLICK", "menu_help"),
            Content::Text("menu_help".into())
        );
        assert_eq!(
            content("click", ""),
            Content::Ignored {
                kind: "click".into()
            }
        );
        assert_eq!(
            content("SCAN", "1"),
            Content::Ignored {
                kind: "scan".into()
            }
        );
        assert_eq!(
            content("VIEW", "http://x"),
            Content::Ignored {
                kind: "view".into()
            }
        );
        assert_eq!(
            content("LOCATION", ""),
            Content::Ignored {
                kind: "location".into()
            }
        );
    }

    #[test]
    fn gives_events_a_stable_id() {
        let mapped = map(&event("CLICK", "menu_help")).unwrap();

        assert_eq!(
            mapped.message.message_id,
            "ev:oUser:1700000000:CLICK:menu_help"
        );
        assert_eq!(mapped.kind, MessageKind::Event);
    }

    #[test]
    fn refuses_messages_missing_what_it_needs() {
        let cases = [
            "<xml><ToUserName>a</ToUserName><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>",
            "<xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName><Content>x</Content><MsgId>1</MsgId></xml>",
            "<xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId></xml>",
            "<xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName><MsgType>text</MsgType><Content>x</Content></xml>",
            "<xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName><MsgType>event</MsgType><CreateTime>1</CreateTime></xml>",
            "<xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName><MsgType>event</MsgType><Event>x</Event></xml>",
            "<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>",
        ];

        for xml in cases {
            let result = map(xml);

            assert!(matches!(result, Err(AdapterError::Malformed(_))), "{xml}");
        }
    }
}
