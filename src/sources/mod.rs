//! Inbound sources that are not HTTP routes: connections botgate opens itself (DingTalk
//! Stream mode's WebSocket) and pull loops (WeCom customer service's `sync_msg`).
//!
//! Lifecycle, the same for every source:
//! - **start**: [`crate::startup::Application::add_source`] before the application runs; each
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use botgate_contract::InboundMessage;
use tokio::sync::watch;

use crate::core::Conversations;
use crate::delivery::{Accepted, Acceptor};
use crate::store::StoreError;

/// One long-lived inbound source.
pub trait Source: Send + Sync + 'static {
    /// Stable and unique among the sources: logs, `/readyz`, metric labels
    /// (`dingtalk-stream:shop`).
    fn name(&self) -> String;

    /// Runs until `shutdown` turns true: connects, reads, hands each message to `inlet`,
    /// reconnects with backoff after a failure, keeping `status` current throughout.
    fn run(
        self: Arc<Self>,
        inlet: Inlet,
        status: Arc<SourceStatus>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send;
}

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
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>
    {
        Box::pin(async move { Inlet::admit(self, bot, message).await.map(drop) })
    }
}

/// What a source reports of itself; cheap to update on every frame.
#[derive(Debug, Default)]
pub struct SourceStatus {
    connected: AtomicBool,
    /// Unix ms of the last connect.
    since_ms: AtomicU64,
    /// Unix ms of the last frame (message, ping, anything the platform sent).
    last_frame_ms: AtomicU64,
    reconnects: AtomicU64,
}

/// A [`SourceStatus`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub connected: bool,
    pub since_ms: u64,
    pub last_frame_ms: u64,
    pub reconnects: u64,
}

impl SourceStatus {
    pub fn connected(&self) {
        let now = crate::clock::unix_ms();
        if self.since_ms.swap(now, Ordering::Relaxed) != 0 {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.last_frame_ms.store(now, Ordering::Relaxed);
        self.connected.store(true, Ordering::Relaxed);
    }

    pub fn disconnected(&self) {
        self.connected.store(false, Ordering::Relaxed);
    }

    pub fn frame(&self) {
        self.last_frame_ms
            .store(crate::clock::unix_ms(), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: self.connected.load(Ordering::Relaxed),
            since_ms: self.since_ms.load(Ordering::Relaxed),
            last_frame_ms: self.last_frame_ms.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// A source not started yet: how to start it, kept until the application runs.
type Starter = Box<dyn FnOnce(Inlet, watch::Receiver<bool>) -> tokio::task::JoinHandle<()> + Send>;

/// Every source's name and status, shared with `/readyz` and `/metrics`.
pub type Statuses = Arc<RwLock<Vec<(String, Arc<SourceStatus>)>>>;

/// The application's sources, with the status each reports.
#[derive(Default)]
pub struct Sources {
    starters: Vec<Starter>,
    statuses: Statuses,
}

impl Sources {
    pub fn add<S: Source>(&mut self, source: S) {
        let source = Arc::new(source);
        let status = Arc::new(SourceStatus::default());
        self.statuses
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((source.name(), status.clone()));
        self.starters.push(Box::new(move |inlet, shutdown| {
            crate::spawn_traced(source.run(inlet, status, shutdown))
        }));
    }

    /// The statuses, as the request handlers read them.
    pub fn statuses(&self) -> Statuses {
        self.statuses.clone()
    }

    /// Starts every source; the handles resolve when they have stopped.
    pub fn start(
        &mut self,
        inlet: &Inlet,
        shutdown: &watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.starters
            .drain(..)
            .map(|start| start(inlet.clone(), shutdown.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_reconnects_and_keeps_the_last_frame() {
        let status = SourceStatus::default();
        status.connected();
        status.frame();
        status.disconnected();
        let down = status.snapshot();
        status.connected();

        assert!(!down.connected && down.last_frame_ms > 0 && down.reconnects == 0);
        assert_eq!(status.snapshot().reconnects, 1);
        assert!(status.snapshot().connected);
    }
}
