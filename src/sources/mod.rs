//! Inbound sources that are not HTTP routes: connections botgate opens itself (DingTalk
//! Stream mode's WebSocket) and pull loops (WeCom customer service's `sync_msg`).
//!
//! The [`Source`] trait and [`SourceStatus`] live in [`crate::channels::source`], so channels
//! can define sources; this module is the acceptance they feed ([`Inlet`]).
//!
//! Lifecycle, the same for every source:
//! - **start**: a channel's [`crate::channels::Channel::sources`] (or
//!   [`crate::startup::Application::add_source`]) before the application runs; each
//!   source runs in a task of its own from `run_until_stopped` on.
//! - **feed**: a source decodes with its platform's adapter, then hands each message to its
//!   [`Inlet`]: the routes' own acceptance (rate limit, claim, queue), so a message from a
//!   source is answered exactly like one from a callback, by the delivery engine.
//! - **report**: it keeps its [`SourceStatus`] current (connected, since when, last frame,
//!   reconnects); `/readyz` is ready only while every source is connected, and `/metrics`
//!   shows each one's state.
//! - **stop**: on SIGTERM its shutdown watch turns true; it closes its connection and returns,
//!   and shutdown waits for it (bounded by `server.shutdown_timeout_secs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use botgate_contract::InboundMessage;

pub use crate::channels::source::{Snapshot, Source, SourceStatus, Sources, Statuses};
use crate::core::Conversations;
use crate::delivery::{Accepted, Acceptor};
use crate::store::StoreError;

/// Where sources hand decoded messages: the same acceptance as the routes.
#[derive(Clone)]
pub struct Inlet {
    conversations: Arc<Conversations>,
    acceptor: Arc<Acceptor>,
}

impl Inlet {
    pub fn new(conversations: Arc<Conversations>, acceptor: Arc<Acceptor>) -> Self {
        Inlet {
            conversations,
            acceptor,
        }
    }

    /// Applies `bot`'s rate limit, then claims and queues the message: durable when this
    /// returns `Ok`, so a source acknowledges its platform (a Stream ACK, a saved cursor) only
    /// after it.
    pub async fn admit(&self, bot: &str, message: &InboundMessage) -> Result<Accepted, StoreError> {
        let notice = self.conversations.rate_limit_notice(bot, message).await?;
        self.acceptor.accept(bot, message, notice).await
    }
}

impl crate::channels::Admit for Inlet {
    fn admit<'a>(
        &'a self,
        bot: &'a str,
        message: &'a InboundMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Accepted, StoreError>> + Send + 'a>> {
        Box::pin(Inlet::admit(self, bot, message))
    }
}
