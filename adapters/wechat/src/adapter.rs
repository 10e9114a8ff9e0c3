//! WeChat Official Account callbacks behind the platform-neutral [`Adapter`] trait.

use std::convert::Infallible;

use botgate_contract::{
    Adapter, AdapterError, Inbound, Method, Outcome, Platform, RawRequest, Response,
};

use crate::{ReplyContext, WechatAccount, ACKNOWLEDGE};

const XML: &str = "application/xml; charset=utf-8";

impl Adapter for WechatAccount {
    type Reply = ReplyContext;
    type Notice = Infallible;

    fn platform(&self) -> Platform {
        Platform::Wechat
    }

    /// GET: URL verification, answered with `echostr`. POST: a message (see [`WechatAccount::decode`]).
    fn accept(
        &self,
        request: &RawRequest<'_>,
    ) -> Result<Inbound<ReplyContext, Infallible>, AdapterError> {
        match request.method {
            Method::Get => Ok(Inbound::Handshake(
                self.verify_url(request.query, request.now_secs)?,
            )),
            Method::Post => {
                let decoded = self.decode(request.query, request.body, request.now_secs)?;
                Ok(Inbound::Message {
                    message: decoded.message,
                    reply: decoded.reply,
                })
            }
            Method::Other => Err(AdapterError::Malformed(
                "WeChat calls back with GET or POST only".to_owned(),
            )),
        }
    }

    /// A passive reply; an empty text acknowledges without one.
    fn render(
        &self,
        reply: &ReplyContext,
        text: &str,
        now_secs: u64,
        random: &[u8; 16],
    ) -> Response {
        let body = match text.is_empty() {
            true => ACKNOWLEDGE.to_owned(),
            false => self.render_reply(reply, text, now_secs, random),
        };
        Response {
            status: 200,
            content_type: XML,
            body,
        }
    }

    /// `success`: WeChat neither retries nor shows anything.
    fn acknowledge(&self, _outcome: Outcome<'_>) -> Response {
        Response {
            status: 200,
            content_type: XML,
            body: ACKNOWLEDGE.to_owned(),
        }
    }
}
