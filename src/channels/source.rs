//! Inbound sources that are not HTTP routes, as channels define them: connections botgate
//! opens itself (DingTalk Stream mode's WebSocket) and pull loops. The runner, with the
//! acceptance they feed, is [`crate::sources`]; this lives below it so that a channel can
//! implement [`Source`] without importing what imports channels.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use std::pin::Pin;

use botgate_contract::InboundMessage;

use crate::core::job::Accepted;
use crate::store::StoreError;

/// Where a channel hands the messages it fetched or was pushed itself: rate limit, claim and
/// queue (the same acceptance as the routes'). Implemented by [`crate::sources::Inlet`].
pub trait Admit: Send + Sync + 'static {
    /// Durable once `Ok`: the fetch may be acknowledged (a cursor saved, a frame ACKed) after
    /// it. A message already accepted is `Ok` too ([`Accepted::Duplicate`]).
    fn admit<'a>(
        &'a self,
        bot: &'a str,
        message: &'a InboundMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Accepted, StoreError>> + Send + 'a>>;
}

/// One long-lived inbound source.
pub trait Source: Send + Sync + 'static {
    /// Stable and unique among the sources: logs, `/readyz`, metric labels
    /// (`dingtalk-stream:shop`).
    fn name(&self) -> String;

    /// Runs until `shutdown` turns true: connects, reads, hands each message to `inlet` (then acknowledges it to its platform),
    /// reconnects with backoff after a failure, keeping `status` current throughout.
    fn run(
        self: Arc<Self>,
        inlet: Arc<dyn Admit>,
        status: Arc<SourceStatus>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send;
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
type Starter =
    Box<dyn FnOnce(Arc<dyn Admit>, watch::Receiver<bool>) -> tokio::task::JoinHandle<()> + Send>;

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
        inlet: &Arc<dyn Admit>,
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
