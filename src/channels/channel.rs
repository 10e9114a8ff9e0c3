//! What a platform's channel gives the rest of the service: its adapter for the inbound
//! pipeline, its reply window when it answers inside the request, and its sender for the
//! delivery engine.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use botgate_contract::{Adapter, InboundMessage};
use tokio::sync::oneshot;

use super::live::LiveAnswer;
use super::passive::{Passive, PassiveWindow};
use super::send::SendError;
use super::source::{Admit, Sources};
use super::wiring::Wiring;
use crate::core::job::JobPayload;
use crate::store::StoreError;

/// One platform's channel of one bot. Implemented in the platform's channel module and
/// registered with one line in [`super::registry`].
pub trait Channel: Send + Sync + Sized + 'static {
    type Adapter: Adapter;
    /// How the delivery engine sends this platform's answers.
    type Sender: Deliver;

    /// The route segment (`/{ROUTE}/{bot}`) and the name in "no such channel" errors.
    const ROUTE: &'static str;

    /// Whether the platform verifies the callback URL with a GET (then routed here too).
    const HANDSHAKE: bool;

    /// Whether `POST /{ROUTE}/{bot}` is a platform callback for the inbound pipeline; a
    /// platform that serves its own routes (the web chat) says no and adds them in
    /// [`Channel::mount`].
    const CALLBACK: bool = true;

    /// The channel of every bot with this platform's settings table, by bot name.
    fn build(wiring: &Wiring<'_>) -> anyhow::Result<HashMap<String, Self>>;

    fn adapter(&self) -> &Self::Adapter;

    /// The reply window when this bot answers inside the platform's request right now;
    /// `None`: acknowledge, then deliver through [`Channel::sender`].
    fn window(
        &self,
    ) -> impl Future<Output = Result<Option<(&Passive, &PassiveWindow)>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// How answers reach this bot's users outside the request, if they can.
    fn sender(&self) -> Option<Self::Sender>;

    /// Routes of the platform's own, besides its callback (the web chat's page and stream).
    fn mount(_channels: &HashMap<String, Self>, _config: &mut actix_web::web::ServiceConfig) {}

    /// Adds the inbound sources this bot's channel runs besides its route (DingTalk Stream
    /// mode's connection); they start with the application.
    fn sources(&self, _bot: &str, _sources: &mut Sources) {}

    /// Keeps what the sender will need of `message` beyond its job (DingTalk: the session
    /// webhook and whom to @-mention). Called just before the message is queued, so it is
    /// durable before the job can run; a retry of the same message writes the same value.
    fn remember(
        &self,
        _bot: &str,
        _message: &InboundMessage,
        _reply: &<Self::Adapter as Adapter>::Reply,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Acts on a notification that says where to fetch messages (see
    /// [`botgate_contract::Inbound::Notice`]); what it fetches goes to `inlet`. The request is
    /// acknowledged once this returns.
    fn notice(
        &self,
        _bot: &str,
        _notice: <Self::Adapter as Adapter>::Notice,
        _inlet: Arc<dyn Admit>,
    ) -> impl Future<Output = Result<(), NoticeError>> + Send {
        async { Ok(()) }
    }
}

/// Why a notice could not be acted on; the callback is refused so the platform sends it again.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("platform API: {0}")]
    Platform(String),
}

/// What the delivery engine needs of a platform to send an answer.
pub trait Deliver: Send + Sync + 'static {
    /// What [`Deliver::live`] returns; [`super::live::NoLive`] where the platform has none.
    type Live: LiveAnswer;

    /// The answer to `job` as this platform takes it, one part per send.
    fn parts(&self, job: &JobPayload, text: &str) -> Vec<String>;

    /// Sends part `chunk` of `chunks` of the answer to `job`'s message.
    fn send(
        &self,
        job: &JobPayload,
        chunk: usize,
        chunks: usize,
        part: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Shows the user that an answer is coming until the returned sender is dropped, where the
    /// platform has such a thing.
    fn typing(&self, _job: &JobPayload) -> Option<oneshot::Sender<()>> {
        None
    }

    /// The answer to `job` shown while it is generated and finished in place, where the
    /// platform (and this bot's settings) has such a thing; `None`: the answer goes in parts.
    /// Does nothing visible until [`LiveAnswer::push`] or [`LiveAnswer::finish`].
    fn live(&self, _job: &JobPayload) -> Option<Self::Live> {
        None
    }

    /// The platform refused to take the answer this way ([`SendError::Fallback`]): its
    /// fallback takes the parts not sent yet, and the job is done.
    fn fall_back(
        &self,
        _job: &JobPayload,
        _unsent: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}
