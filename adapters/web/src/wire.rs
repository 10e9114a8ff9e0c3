//! What the chat page POSTs: a message (answered with server-sent events) or a rating of an
//! answer, each from a visitor who is either a random browser id or a signed user.

use std::convert::Infallible;

use botgate_contract::{
    Adapter, AdapterError, Content, Inbound, InboundMessage, Method, Outcome, Platform, RawRequest,
    Response,
};
use serde::Deserialize;

use crate::identity::Identity;

/// `POST /web/{bot}/messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The browser's random id (`v-…`), kept in its local storage.
    pub visitor: String,
    /// The page's id for this message (`m-…`), the same on every retry of it: the dedup key.
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// `POST /web/{bot}/feedback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub visitor: String,
    /// The id of the message whose answer is rated.
    pub id: String,
    pub rating: Rating,
    #[serde(default)]
    pub identity: Option<Identity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }
}

/// Who is writing: the conversation id their memory is kept under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// `u:{user}` for a signed user (the same on every device), else the browser's `v-…` id;
    /// the prefixes keep a random id from ever naming a signed user's conversation.
    pub conversation: String,
    pub signed: bool,
}

/// One bot's web channel, as far as the wire goes.
#[derive(Debug, Clone)]
pub struct WebAdapter {
    bot: String,
    /// The host site's signing key for visitor identities; `None`: identities are refused.
    access_key: Option<Vec<u8>>,
    /// Longest message, in characters.
    max_chars: usize,
}

/// Random ids the page makes are 22 base64url characters after their prefix; allow some room.
const MAX_ID_CHARS: usize = 64;

impl WebAdapter {
    pub fn new(bot: &str, access_key: Option<Vec<u8>>, max_chars: usize) -> Self {
        WebAdapter {
            bot: bot.to_owned(),
            access_key,
            max_chars,
        }
    }

    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Decodes a message: ids well formed, text non-empty and within the cap, identity signed.
    pub fn message(&self, body: &[u8], now_secs: u64) -> Result<InboundMessage, AdapterError> {
        let request: MessageRequest = decode(body)?;
        let visitor = self.visitor(&request.visitor, request.identity.as_ref(), now_secs)?;
        check_id("id", &request.id, "m-")?;
        let text = request.text.trim();
        if text.is_empty() {
            return Err(AdapterError::Malformed("text is empty".to_owned()));
        }
        if text.chars().count() > self.max_chars {
            return Err(AdapterError::TooLarge);
        }
        Ok(InboundMessage {
            platform: Platform::Web,
            sender: visitor.conversation.clone(),
            conversation: visitor.conversation,
            message_id: request.id,
            content: Content::Text(text.to_owned()),
        })
    }

    /// Decodes a rating, with the conversation it is about.
    pub fn feedback(
        &self,
        body: &[u8],
        now_secs: u64,
    ) -> Result<(FeedbackRequest, Visitor), AdapterError> {
        let request: FeedbackRequest = decode(body)?;
        let visitor = self.visitor(&request.visitor, request.identity.as_ref(), now_secs)?;
        check_id("id", &request.id, "m-")?;
        Ok((request, visitor))
    }

    /// The conversation a request belongs to: the signed user's when it carries an identity
    /// (which must verify), the browser's random id otherwise.
    pub fn visitor(
        &self,
        visitor: &str,
        identity: Option<&Identity>,
        now_secs: u64,
    ) -> Result<Visitor, AdapterError> {
        check_id("visitor", visitor, "v-")?;
        let Some(identity) = identity else {
            return Ok(Visitor {
                conversation: visitor.to_owned(),
                signed: false,
            });
        };
        let key = self.access_key.as_deref().ok_or_else(|| {
            AdapterError::Malformed("this bot takes no signed identities".to_owned())
        })?;
        identity.verify(key, &self.bot, now_secs)?;
        Ok(Visitor {
            conversation: format!("u:{}", identity.user),
            signed: true,
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdapterError> {
    serde_json::from_slice(body).map_err(|error| {
        // serde's message names the field and position, never the value.
        AdapterError::Malformed(format!("not the expected JSON: {error}"))
    })
}

/// Ids go into storage keys and logs (hashed): a known prefix, then base64url characters only.
fn check_id(field: &'static str, id: &str, prefix: &str) -> Result<(), AdapterError> {
    let well_formed = id.len() <= MAX_ID_CHARS
        && id.strip_prefix(prefix).is_some_and(|rest| {
            rest.len() >= 8
                && rest
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        });
    if well_formed {
        Ok(())
    } else {
        Err(AdapterError::Malformed(format!(
            "{field} must be `{prefix}` and 8 to {} base64url characters",
            MAX_ID_CHARS - prefix.len()
        )))
    }
}

const JSON: &str = "application/json";

/// The web channel behind the platform-neutral trait, so it is registered like every other
/// platform; its route streams answers itself and uses [`WebAdapter::message`] directly.
impl Adapter for WebAdapter {
    type Reply = ();
    type Notice = Infallible;

    fn platform(&self) -> Platform {
        Platform::Web
    }

    fn accept(&self, request: &RawRequest<'_>) -> Result<Inbound<(), Infallible>, AdapterError> {
        if request.method != Method::Post {
            return Err(AdapterError::Malformed("messages are POSTed".to_owned()));
        }
        let message = self.message(request.body, request.now_secs)?;
        Ok(Inbound::Message { message, reply: () })
    }

    fn render(&self, _: &(), text: &str, _: u64, _: &[u8; 16]) -> Response {
        Response {
            status: 200,
            content_type: JSON,
            body: serde_json::json!({ "text": text }).to_string(),
        }
    }

    fn acknowledge(&self, _: Outcome<'_>) -> Response {
        Response {
            status: 204,
            content_type: JSON,
            body: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::sign_identity;

    const VISITOR: &str = "v-AAAAAAAAAAAAAAAAAAAAAA";

    fn adapter() -> WebAdapter {
        WebAdapter::new("shop", Some(b"site-secret".to_vec()), 10)
    }

    fn body(value: serde_json::Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    #[test]
    fn a_message_names_the_visitor_as_its_conversation() {
        let message = adapter()
            .message(
                &body(
                    serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": " 你好 "}),
                ),
                1_000,
            )
            .unwrap();

        assert_eq!(message.platform, Platform::Web);
        assert_eq!(message.conversation, VISITOR);
        assert_eq!(message.sender, VISITOR);
        assert_eq!(message.message_id, "m-12345678");
        assert_eq!(message.content, Content::Text("你好".to_owned()));
    }

    #[test]
    fn a_signed_user_is_their_own_conversation_on_every_device() {
        let signature = sign_identity(b"site-secret", "shop", "alice", 2_000);
        let identity =
            serde_json::json!({"user": "alice", "expires": 2_000, "signature": signature});

        let message = adapter()
            .message(
                &body(serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": "hi", "identity": identity})),
                1_000,
            )
            .unwrap();

        assert_eq!(message.conversation, "u:alice");
    }

    #[test]
    fn an_identity_is_refused_by_a_bot_without_an_access_key() {
        let signature = sign_identity(b"site-secret", "shop", "alice", 2_000);
        let identity =
            serde_json::json!({"user": "alice", "expires": 2_000, "signature": signature});
        let keyless = WebAdapter::new("shop", None, 10);

        let refused = keyless.message(
            &body(serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": "hi", "identity": identity})),
            1_000,
        );

        assert!(
            matches!(refused, Err(AdapterError::Malformed(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn bad_ids_empty_or_long_text_and_broken_json_are_refused() {
        let cases = [
            (
                serde_json::json!({"visitor": "alice", "id": "m-12345678", "text": "hi"}),
                "visitor",
            ),
            (
                serde_json::json!({"visitor": "v-short", "id": "m-12345678", "text": "hi"}),
                "visitor",
            ),
            (
                serde_json::json!({"visitor": VISITOR, "id": "m-1234:5678", "text": "hi"}),
                "id",
            ),
            (
                serde_json::json!({"visitor": VISITOR, "id": format!("m-{}", "a".repeat(63)), "text": "hi"}),
                "id",
            ),
            (
                serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": "  "}),
                "empty",
            ),
            (
                serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": "hi", "extra": 1}),
                "extra",
            ),
        ];
        for (value, what) in cases {
            let refused = adapter().message(&body(value), 1_000);
            assert!(
                matches!(refused, Err(AdapterError::Malformed(_))),
                "{what}: {refused:?}"
            );
        }
        assert!(matches!(
            adapter().message(b"{\"visitor\":", 1_000),
            Err(AdapterError::Malformed(_))
        ));
        assert_eq!(
            adapter().message(
                &body(serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": "一二三四五六七八九十一"})),
                1_000
            ),
            Err(AdapterError::TooLarge)
        );
    }

    #[test]
    fn exactly_the_cap_in_characters_is_accepted() {
        let accepted = adapter().message(
            &body(serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "text": "一二三四五六七八九十"})),
            1_000,
        );

        assert!(accepted.is_ok(), "{accepted:?}");
    }

    #[test]
    fn a_rating_is_up_or_down() {
        let (request, visitor) = adapter()
            .feedback(
                &body(
                    serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "rating": "down"}),
                ),
                1_000,
            )
            .unwrap();

        assert_eq!(request.rating, Rating::Down);
        assert_eq!(visitor.conversation, VISITOR);
        assert!(adapter()
            .feedback(
                &body(serde_json::json!({"visitor": VISITOR, "id": "m-12345678", "rating": "meh"})),
                1_000
            )
            .is_err());
    }
}
