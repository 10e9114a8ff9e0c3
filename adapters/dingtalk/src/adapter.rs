//! HTTP-mode robot callbacks behind the platform-neutral [`Adapter`] trait: acknowledged, never
//! answered in the response.

use std::convert::Infallible;

use botgate_contract::{
    Adapter, AdapterError, Inbound, Method, Outcome, Platform, RawRequest, Response,
};

use crate::{DingtalkRobot, ReplyContext};

/// The acknowledgement body: empty. A `200` with an empty body is the safe answer (inbound.md
/// §6.3); an answer in the body is undocumented, so answers go through the session webhook.
pub const ACKNOWLEDGE: &str = "";

const TEXT: &str = "text/plain; charset=utf-8";

impl Adapter for DingtalkRobot {
    /// Where and to whom the answer goes: the session webhook or the robot OpenAPI.
    type Reply = ReplyContext;
    type Notice = Infallible;

    fn platform(&self) -> Platform {
        Platform::Dingtalk
    }

    /// POST only; see [`DingtalkRobot::decode`]. The contract's clock has whole seconds.
    fn accept(
        &self,
        request: &RawRequest<'_>,
    ) -> Result<Inbound<ReplyContext, Infallible>, AdapterError> {
        match request.method {
            Method::Post => self.decode(
                request.headers,
                request.body,
                request.now_secs.saturating_mul(1000),
            ),
            Method::Get | Method::Other => Err(AdapterError::Malformed(
                "DingTalk robots call back with POST only".to_owned(),
            )),
        }
    }

    /// The acknowledgement whatever `text` says: the answer goes through the session webhook.
    fn render(
        &self,
        _reply: &ReplyContext,
        _text: &str,
        _now_secs: u64,
        _random: &[u8; 16],
    ) -> Response {
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
