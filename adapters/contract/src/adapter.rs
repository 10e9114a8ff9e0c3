//! The trait every platform adapter implements: a raw request in, a verified message (or a
//! handshake answer) out, and the platform's reply and acknowledgement bodies. Pure: no I/O,
//! the caller passes the time and the random bytes an encrypted reply needs.

use crate::{AdapterError, InboundMessage, Platform};

/// The HTTP method of a callback, as far as adapters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    /// Anything else; adapters refuse it.
    Other,
}

/// Header lookup without a web framework's types (names are case-insensitive).
pub trait Headers {
    fn header(&self, name: &str) -> Option<&str>;
}

/// Headers as a list of pairs: for tests and for callers without a header map.
pub struct HeaderList<'a>(pub &'a [(&'a str, &'a str)]);

impl Headers for HeaderList<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// One platform callback as the adapter sees it.
pub struct RawRequest<'a> {
    pub method: Method,
    /// The query string, undecoded (signatures cover the decoded values).
    pub query: &'a str,
    pub headers: &'a dyn Headers,
    pub body: &'a [u8],
    /// Unix seconds on the receiver's clock, for timestamp windows.
    pub now_secs: u64,
}

/// What a verified request asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<R, N> {
    /// A handshake (URL verification): answer with this body and nothing else.
    Handshake(String),
    /// A message to answer; `reply` is what a reply inside this request's response needs.
    Message { message: InboundMessage, reply: R },
    /// A verified request that needs no answer (the platform's own notices): acknowledge it.
    Ignore,
    /// A notification that carries no message but says where to fetch some (WeCom customer
    /// service's "call sync_msg with this token"): the channel acts on it, then the request
    /// is acknowledged.
    Notice(N),
}

/// What became of an accepted message, for the platform's acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Durably queued under this job id; the answer follows through the platform's API.
    Queued { job: &'a str },
    /// A retry of a message already accepted.
    Duplicate,
    /// Nothing to answer.
    Ignored,
}

/// A response body with its status and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// One platform's callbacks. The gateway's inbound pipeline is generic over this trait: it
/// owns bot lookup, metrics, rate limits, dedup and the choice between answering inside the
/// request and acknowledging then delivering; the adapter owns the wire.
pub trait Adapter: Send + Sync + 'static {
    /// What a reply inside the request's own response needs (addressing, encryption).
    type Reply: Clone + std::fmt::Debug + Send + Sync + 'static;

    /// What an [`Inbound::Notice`] carries; [`std::convert::Infallible`] for platforms whose
    /// callbacks always carry their messages.
    type Notice: std::fmt::Debug + Send + 'static;

    /// The platform's name in keys, metrics and logs.
    fn platform(&self) -> Platform;

    /// Verifies and decodes one request. Errors map to 4xx.
    fn accept(
        &self,
        request: &RawRequest<'_>,
    ) -> Result<Inbound<Self::Reply, Self::Notice>, AdapterError>;

    /// The body that answers the request `reply` came with, saying `text`; for platforms that
    /// take no answer in the response, the acknowledgement.
    fn render(&self, reply: &Self::Reply, text: &str, now_secs: u64, random: &[u8; 16])
        -> Response;

    /// The platform's acknowledgement of a message it will get no answer to in this response.
    fn acknowledge(&self, outcome: Outcome<'_>) -> Response;
}
