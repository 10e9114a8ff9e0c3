//! The generic signed webhook channel: JSON in (`POST /webhook/{bot}`), JSON out (`POST
//! deliver_url`), both signed `X-Botgate-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! For custom integrations, and the simplest acknowledge-then-deliver channel to test with.

mod channel;
mod send;

pub use send::{send_webhook, WebhookSender};

use std::convert::Infallible;

use botgate_contract::{
    Adapter, AdapterError, Content, Inbound, InboundMessage, Method, Outcome, Platform, RawRequest,
    Response,
};
use secrecy::{ExposeSecret, SecretString};

use crate::config::WebhookSettings;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Botgate-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
const SIGNATURE_PREFIX: &str = "sha256=";
/// Ids and texts longer than this are not a conversation we serve.
const MAX_ID_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    conversation: String,
    #[serde(default)]
    sender: Option<String>,
    message_id: String,
    text: String,
}

/// One part of an answer, as POSTed to `deliver_url`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outbound<'a> {
    pub bot: &'a str,
    pub conversation: &'a str,
    pub message_id: &'a str,
    pub chunk: usize,
    pub chunks: usize,
    pub text: &'a str,
}

/// One bot's webhook channel: its adapter, and where answers go.
pub struct WebhookChannel {
    pub adapter: WebhookAdapter,
    pub settings: WebhookSettings,
    http: reqwest::Client,
}

impl WebhookChannel {
    pub fn new(settings: WebhookSettings, http: reqwest::Client) -> Self {
        WebhookChannel {
            adapter: WebhookAdapter::new(settings.secret.clone()),
            settings,
            http,
        }
    }
}

/// The webhook's inbound side behind the platform-neutral [`Adapter`] trait.
pub struct WebhookAdapter {
    secret: SecretString,
}

impl WebhookAdapter {
    /// `secret` signs both directions.
    pub fn new(secret: SecretString) -> Self {
        WebhookAdapter { secret }
    }
}

const JSON: &str = "application/json";

impl Adapter for WebhookAdapter {
    /// Nothing: answers never travel in the response.
    type Reply = ();
    type Notice = Infallible;

    fn platform(&self) -> Platform {
        Platform::Webhook
    }

    fn accept(&self, request: &RawRequest<'_>) -> Result<Inbound<(), Infallible>, AdapterError> {
        if request.method != Method::Post {
            return Err(AdapterError::Malformed("messages are POSTed".to_owned()));
        }
        let signature = request.headers.header(SIGNATURE_HEADER);
        let message = decode(
            self.secret.expose_secret().as_bytes(),
            signature,
            request.body,
        )?;
        Ok(Inbound::Message { message, reply: () })
    }

    fn render(&self, _: &(), _: &str, _: u64, _: &[u8; 16]) -> Response {
        self.acknowledge(Outcome::Ignored)
    }

    /// `202 {"status":"accepted","job":…}` once durably queued, `200 {"status":"duplicate"}`
    /// for a message id seen before.
    fn acknowledge(&self, outcome: Outcome<'_>) -> Response {
        let (status, body) = match outcome {
            Outcome::Queued { job } => (202, serde_json::json!({"status": "accepted", "job": job})),
            Outcome::Duplicate => (200, serde_json::json!({"status": "duplicate"})),
            Outcome::Ignored => (200, serde_json::json!({"status": "ignored"})),
        };
        Response {
            status,
            content_type: JSON,
            body: body.to_string(),
        }
    }
}

pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable_key());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(SIGNATURE_PREFIX.len() + 64);
    out.push_str(SIGNATURE_PREFIX);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[allow(clippy::panic)]
fn unreachable_key() -> ! {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    panic!("HMAC rejected a key")
}

/// Verifies the signature (constant time) and decodes the message. Pure: no I/O.
pub fn decode(
    secret: &[u8],
    signature: Option<&str>,
    body: &[u8],
) -> Result<InboundMessage, AdapterError> {
    let signature = signature.ok_or(AdapterError::MissingParameter("X-Botgate-Signature"))?;
    let hex = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(AdapterError::BadSignature)?;
    let expected = decode_hex(hex).ok_or(AdapterError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable_key());
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| AdapterError::BadSignature)?;
    let inbound: WireMessage = serde_json::from_slice(body).map_err(|error| {
        AdapterError::Malformed(format!("JSON: {}", crate::store::json_reason(&error)))
    })?;
    for (value, field) in [
        (&inbound.conversation, "conversation"),
        (&inbound.message_id, "message_id"),
    ] {
        if value.is_empty() || value.len() > MAX_ID_BYTES {
            return Err(AdapterError::Malformed(format!(
                "`{field}` must be 1 to {MAX_ID_BYTES} bytes"
            )));
        }
    }
    // Ids travel on in headers (`Idempotency-Key`) and storage keys: a control character
    // (CR/LF) would be accepted here and then fail every delivery attempt.
    for (value, field) in [
        (Some(&inbound.conversation), "conversation"),
        (inbound.sender.as_ref(), "sender"),
        (Some(&inbound.message_id), "message_id"),
    ] {
        if value.is_some_and(|value| value.chars().any(char::is_control)) {
            return Err(AdapterError::Malformed(format!(
                "`{field}` must not contain control characters"
            )));
        }
    }
    let sender = inbound
        .sender
        .filter(|sender| !sender.is_empty())
        .unwrap_or_else(|| inbound.conversation.clone());
    Ok(InboundMessage {
        platform: Platform::Webhook,
        conversation: inbound.conversation,
        sender,
        message_id: inbound.message_id,
        content: Content::Text(inbound.text),
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(hex.get(index..index + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    fn body() -> Vec<u8> {
        br#"{"conversation":"c1","sender":"u1","message_id":"m1","text":"hi"}"#.to_vec()
    }

    #[test]
    fn signed_body_decodes() {
        let body = body();
        let message = decode(SECRET, Some(&sign(SECRET, &body)), &body).unwrap();
        assert_eq!(message.message_id, "m1");
        assert_eq!(message.content, Content::Text("hi".into()));
    }

    #[test]
    fn tampered_body_missing_or_malformed_signature_is_refused() {
        let body = body();
        let signature = sign(SECRET, &body);
        let mut tampered = body.clone();
        tampered[20] ^= 1;
        assert_eq!(
            decode(SECRET, Some(&signature), &tampered),
            Err(AdapterError::BadSignature)
        );
        assert_eq!(
            decode(SECRET, None, &body),
            Err(AdapterError::MissingParameter("X-Botgate-Signature"))
        );
        assert_eq!(
            decode(SECRET, Some("sha256=zz"), &body),
            Err(AdapterError::BadSignature)
        );
        assert_eq!(
            decode(b"another-secret-xyz", Some(&signature), &body),
            Err(AdapterError::BadSignature)
        );
    }

    #[test]
    fn signed_but_broken_json_is_malformed() {
        let body = b"{not json".to_vec();
        assert!(matches!(
            decode(SECRET, Some(&sign(SECRET, &body)), &body),
            Err(AdapterError::Malformed(_))
        ));
        let empty_id = br#"{"conversation":"c","message_id":"","text":"x"}"#.to_vec();
        assert!(matches!(
            decode(SECRET, Some(&sign(SECRET, &empty_id)), &empty_id),
            Err(AdapterError::Malformed(_))
        ));
    }

    #[test]
    fn ids_with_control_characters_are_malformed() {
        for body in [
            r#"{"conversation":"c","message_id":"m1\r\nX-Evil: 1","text":"x"}"#,
            r#"{"conversation":"c\n","message_id":"m1","text":"x"}"#,
            r#"{"conversation":"c","sender":"u\u0000","message_id":"m1","text":"x"}"#,
        ] {
            let body = body.as_bytes();
            assert!(
                matches!(
                    decode(SECRET, Some(&sign(SECRET, body)), body),
                    Err(AdapterError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
