//! WeCom callbacks behind the platform-neutral [`Adapter`] trait: never a passive reply.

use botgate_contract::{
    Adapter, AdapterError, Inbound, Method, Outcome, Platform, RawRequest, Response,
};

use crate::{Decoded, KfNotice, WecomApp};

/// The acknowledgement body: empty. WeCom takes `200` with an empty body as "received, no
/// reply" and does not retry (doc 90238); the answer goes through the send APIs instead.
pub const ACKNOWLEDGE: &str = "";

const TEXT: &str = "text/plain; charset=utf-8";

impl Adapter for WecomApp {
    /// Nothing: a passive reply would have to be encrypted and arrive within 5 s, and an LLM
    /// answer rarely does, so every answer is sent through the API.
    type Reply = ();
    type Notice = KfNotice;

    fn platform(&self) -> Platform {
        Platform::Wecom
    }

    /// GET: URL verification, answered with the decrypted echostr. POST: a member's message,
    /// or a customer-service notice (see [`WecomApp::decode`]).
    fn accept(&self, request: &RawRequest<'_>) -> Result<Inbound<(), KfNotice>, AdapterError> {
        match request.method {
            Method::Get => Ok(Inbound::Handshake(
                self.verify_url(request.query, request.now_secs)?,
            )),
            Method::Post => Ok(
                match self.decode(request.query, request.body, request.now_secs)? {
                    Decoded::Message(app) => Inbound::Message {
                        message: app.message,
                        reply: (),
                    },
                    Decoded::Notice(notice) => Inbound::Notice(notice),
                },
            ),
            Method::Other => Err(AdapterError::Malformed(
                "WeCom calls back with GET or POST only".to_owned(),
            )),
        }
    }

    /// The acknowledgement whatever `text` says: WeCom gets its answers through the API.
    fn render(&self, _reply: &(), _text: &str, _now_secs: u64, _random: &[u8; 16]) -> Response {
        acknowledged()
    }

    fn acknowledge(&self, _outcome: Outcome<'_>) -> Response {
        acknowledged()
    }
}

fn acknowledged() -> Response {
    Response {
        status: 200,
        content_type: TEXT,
        body: ACKNOWLEDGE.to_owned(),
    }
}
