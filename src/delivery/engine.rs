//! The workers: take a job, wait for the conversation's turn, answer once, deliver every part
//! once, acknowledge. Several replicas run them against one Redis; any may finish a job another
//! started (reclaim after the visibility timeout), and the markers make that safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::job::JobPayload;
use super::queue::{Fenced, Job, Queue};
use crate::channels::Sender;
use crate::config::DeliverySettings;
use crate::core::Conversations;
use crate::store::Store;
use live::Answered;
use send::{marker, Delivered};

mod live;
mod send;

/// Between two attempts of a failed send, before jitter.
const SEND_BACKOFF: Duration = Duration::from_millis(500);
/// How long a worker's claim on sending one part lasts; it is renewed before every attempt,
/// so it lapses only when its worker stopped (lost the job, died). Longer than one attempt.
const PART_CLAIM_TTL: Duration = Duration::from_secs(30);
/// How often a worker looks again at a part another worker is sending.
const PART_BUSY_POLL: Duration = Duration::from_millis(250);
/// How long a worker sleeps after the queue itself failed (Redis down), so an outage is not a busy loop.
const QUEUE_ERROR_PAUSE: Duration = Duration::from_secs(1);
const NEXT_BLOCK: Duration = Duration::from_secs(1);
/// Loops pulling jobs; each may hold a blocked Redis connection while the queue is empty.
const MAX_FETCHERS: usize = 4;

enum Failure {
    /// The platform refused this way of sending and its fallback took the answer; the job is done.
    FellBack,
    /// Leave it un-acked: it comes back after the visibility timeout (here or on another replica).
    Retry(String),
    /// Give up: dead-letter with this reason.
    Dead(String),
    /// Another worker holds the job now (this one stalled past the visibility timeout): stop
    /// without writing or sending anything more.
    Lost,
}

pub struct Engine {
    queue: Queue,
    store: Store,
    conversations: Arc<Conversations>,
    /// By bot and platform name.
    senders: HashMap<(String, String), Sender>,
    settings: DeliverySettings,
    consumer: String,
}

impl Engine {
    pub fn new(
        queue: Queue,
        conversations: Arc<Conversations>,
        senders: HashMap<(String, String), Sender>,
        settings: DeliverySettings,
    ) -> Self {
        // Unique per process, so a restarted replica never inherits a dead one's pending jobs by name.
        let random = crate::clock::random_id();
        let consumer = format!("{}-{}-{}", hostname(), std::process::id(), &random[..8]);
        Engine {
            queue,
            store: conversations.store().clone(),
            conversations,
            senders,
            settings,
            consumer,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Starts the fetchers, at least one per shard. Each takes a job only when one of the
    /// `delivery.workers` slots is free and runs it in its own task, so concurrency costs a
    /// task per job, not a blocked Redis connection per slot. On `shutdown` they stop taking
    /// jobs; the returned future resolves once every job in hand is done (or handed back by
    /// not acknowledging it).
    pub fn start(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.settings.workers));
        let shards = self.queue.shards();
        let per_shard = (self.settings.workers.min(MAX_FETCHERS) / shards).max(1);
        let fetchers: Vec<_> = (0..shards * per_shard)
            .map(|index| {
                let engine = self.clone();
                let shutdown = shutdown.clone();
                let slots = slots.clone();
                let shard = index / per_shard;
                crate::spawn_traced(
                    async move { engine.fetch(index, shard, slots, shutdown).await },
                )
            })
            .collect();
        let workers = u32::try_from(self.settings.workers).unwrap_or(u32::MAX);
        async move {
            futures_util::future::join_all(fetchers).await;
            // Every slot back means every job in hand has finished.
            let _ = slots.acquire_many(workers).await;
        }
    }

    async fn fetch(
        self: Arc<Self>,
        index: usize,
        shard: usize,
        slots: Arc<tokio::sync::Semaphore>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let consumer = format!("{}-{index}", self.consumer);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot { Ok(slot) => slot, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let next = tokio::select! {
                next = self.queue.next(shard, &consumer, NEXT_BLOCK) => next,
                _ = shutdown.changed() => break,
            };
            let job = match next {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "queue unavailable; pausing");
                    tokio::time::sleep(QUEUE_ERROR_PAUSE).await;
                    continue;
                }
            };
            let engine = self.clone();
            let consumer = consumer.clone();
            crate::spawn_traced(async move {
                engine.run(&consumer, &job).await;
                drop(slot);
            });
        }
    }

    #[tracing::instrument(skip_all, fields(job = %job.id, deliveries = job.deliveries))]
    // `&Job`: the spawned task owns the job; by value it would be held twice while it waits.
    async fn run(&self, consumer: &str, job: &Job) {
        let payload: JobPayload = match serde_json::from_str(&job.payload) {
            Ok(payload) => payload,
            Err(error) => {
                self.give_up(
                    job,
                    &format!("unreadable payload: {}", crate::store::json_reason(&error)),
                )
                .await;
                return;
            }
        };
        if job.deliveries > self.settings.max_deliveries {
            self.abandon_live(&payload).await;
            self.give_up(job, "delivered too many times without completing")
                .await;
            return;
        }
        let (stop_heartbeat, lost, heartbeat) = self.keep_alive(consumer, job.shard, &job.id);
        // The job's shard is its conversation's: the reply sits beside the stream that fences it.
        let reply_key = crate::keys::reply(
            self.conversations.keys().shard(job.shard),
            &payload.bot,
            &payload.platform,
            &payload.message_id,
        );
        let result = self
            .process(consumer, job, &payload, &reply_key, lost)
            .await;
        drop(stop_heartbeat);
        let _ = heartbeat.await;
        match result {
            Ok(delivered) => self.complete(job, &reply_key, delivered).await,
            Err(Failure::FellBack) => {
                self.complete(job, &reply_key, Delivered::nothing()).await;
            }
            Err(Failure::Dead(reason)) => {
                self.abandon_live(&payload).await;
                self.give_up(job, &reason).await;
            }
            Err(Failure::Retry(reason)) => {
                tracing::warn!(%reason, "job failed; it will be retried after the visibility timeout");
            }
            Err(Failure::Lost) => {
                tracing::warn!("job was taken over by another worker; this one stopped");
            }
        }
    }

    /// Acknowledges the job (its conversation's next job gets the turn), then forgets its
    /// reply and sent-markers: an acknowledged job is never run again, so they are no longer
    /// needed, and keeping them would grow Redis with traffic. The last thing sent was not
    /// marked (`Delivered::unmarked`); it is marked only when the acknowledgement fails.
    async fn complete(&self, job: &Job, reply_key: &str, delivered: Delivered) {
        let Delivered { parts, unmarked } = delivered;
        if let Err(error) = self.queue.ack(job).await {
            // Not fatal: a reclaim finds the reply and the sent-markers and sends nothing twice.
            tracing::warn!(%error, "could not acknowledge a finished job");
            if let Some(marker) = unmarked {
                if let Err(error) = self.mark_sent(&marker).await {
                    tracing::warn!(%error, "could not mark the last part sent either");
                }
            }
            return;
        }
        let mut markers: Vec<String> = (0..parts).map(|chunk| marker(reply_key, chunk)).collect();
        markers.push(crate::keys::live_sent(reply_key));
        markers.push(crate::keys::live_fell_back(reply_key));
        let mut keys: Vec<&str> = markers.iter().map(String::as_str).collect();
        keys.push(reply_key);
        if let Err(error) = self.store.delete(&keys).await {
            tracing::debug!(%error, "could not delete a finished job's reply; it expires");
        }
    }

    /// Heartbeats every visibility/3 until the returned sender is dropped. The watch turns
    /// true once a heartbeat finds the job is no longer this worker's.
    fn keep_alive(
        &self,
        consumer: &str,
        shard: usize,
        job_id: &str,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        watch::Receiver<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (lose, lost) = watch::channel(false);
        let queue = self.queue.clone();
        let consumer = consumer.to_owned();
        let job_id = job_id.to_owned();
        let period = (queue.visibility() / 3).max(Duration::from_millis(100));
        let handle = crate::spawn_traced(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(period) => {
                        // Boxed: the task sleeps nearly always, and an inline Redis call would
                        // size it for the call (about 1.4 KiB per job in flight).
                        match Box::pin(queue.heartbeat(&consumer, shard, &job_id)).await {
                            Ok(true) => {}
                            Ok(false) => {
                                let _ = lose.send(true);
                                break;
                            }
                            Err(error) => tracing::warn!(%error, "heartbeat failed"),
                        }
                    }
                }
            }
        });
        (stop, lost, handle)
    }

    /// Dead-letters the job; its conversation's next job gets the turn in the same step, so
    /// the conversation never waits for a job that will not finish.
    async fn give_up(&self, job: &Job, reason: &str) {
        tracing::error!(reason, "job dead-lettered");
        if let Err(error) = self.queue.dead_letter(job, reason).await {
            tracing::error!(%error, "could not dead-letter the job; it will be retried");
        }
    }

    /// The job's turn in its conversation came when the queue handed it over: its predecessors
    /// are done. Returns how many parts went out.
    async fn process(
        &self,
        consumer: &str,
        job: &Job,
        payload: &JobPayload,
        reply_key: &str,
        lost: watch::Receiver<bool>,
    ) -> Result<Delivered, Failure> {
        let answered = self.answer(consumer, job, payload, reply_key, lost).await?;
        if answered.text.is_empty() {
            // Nothing to say; a live answer shown for it must not stay open.
            if let Some(live) = &answered.live {
                live.abandon().await;
            }
            return Ok(Delivered::nothing());
        }
        // Boxed: a job spends nearly all its life waiting on the LLM inside `answer`, and an
        // inline `deliver` would size every waiting job's task for the delivery too.
        Box::pin(self.deliver(consumer, job, payload, reply_key, &answered)).await
    }

    /// The reply text, generated once: a job taken over reuses what its predecessor stored,
    /// and of two workers that both generated one, the first to store it wins and both deliver
    /// that one. Generation stops as soon as the job is lost. Where the platform shows answers
    /// live, it sees the text as it is generated.
    async fn answer(
        &self,
        consumer: &str,
        job: &Job,
        payload: &JobPayload,
        reply_key: &str,
        mut lost: watch::Receiver<bool>,
    ) -> Result<Answered, Failure> {
        let store_error =
            |error: crate::store::StoreError| Failure::Retry(format!("reply store: {error}"));
        // Shown from the first piece of a generated answer; a reused reply just finishes it.
        let live = self.sender(payload).and_then(|sender| sender.live(payload));
        if let Some(text) = self.store.get(reply_key).await.map_err(store_error)? {
            return Ok(Answered {
                text,
                live,
                failed: false,
            });
        }
        let (text, remember, failed) = match &payload.notice {
            Some(notice) => (notice.clone(), None, false),
            None => {
                let message = payload.message().ok_or_else(|| {
                    Failure::Dead(format!("unknown platform {}", payload.platform))
                })?;
                // While the answer is generated the user sees "typing…" where the platform can.
                let _typing = self
                    .sender(payload)
                    .and_then(|sender| sender.typing(payload));
                let handled = {
                    let mut push = |delta: &str| {
                        if let Some(live) = &live {
                            live.push(delta);
                        }
                    };
                    let on_delta: Option<&mut (dyn FnMut(&str) + Send)> =
                        live.is_some().then_some(&mut push);
                    tokio::select! {
                        handled = self.conversations.handle_deferred(&payload.bot, &message, None, on_delta) => handled,
                        // The live answer is left to the job's new owner, who finishes it.
                        _ = lost.wait_for(|lost| *lost) => return Err(Failure::Lost),
                    }
                };
                match handled {
                    Ok(handled) => {
                        let failed = handled
                            .reply
                            .as_ref()
                            .is_some_and(|reply| reply.kind == crate::core::ReplyKind::Fallback);
                        (
                            handled.reply.map(|reply| reply.text).unwrap_or_default(),
                            handled.remember,
                            failed,
                        )
                    }
                    Err(error) => {
                        if let Some(live) = &live {
                            // Boxed: rare, and inline it would size every waiting job's task
                            // for a DingTalk card's last update (2.5 KiB).
                            Box::pin(live.abandon()).await;
                        }
                        return Err(match error {
                            crate::core::CoreError::UnknownBot(bot) => {
                                Failure::Dead(format!("no bot named {bot}"))
                            }
                            error => Failure::Retry(error.to_string()),
                        });
                    }
                }
            }
        };
        let ttl = Duration::from_secs(self.settings.dedup_ttl_secs);
        match self
            .queue
            .store_reply(consumer, job, reply_key, &text, ttl, remember.as_ref())
            .await
            .map_err(store_error)?
        {
            Fenced::Held(stored) => Ok(Answered {
                // Another worker's reply won: whether it is a failure notice is unknown.
                failed: failed && stored == text,
                text: stored,
                live,
            }),
            Fenced::Lost => Err(Failure::Lost),
        }
    }

    /// The sender of the job's bot on the job's platform.
    fn sender(&self, payload: &JobPayload) -> Option<&Sender> {
        self.senders
            .get(&(payload.bot.clone(), payload.platform.clone()))
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "botgate".to_owned())
}

/// When `Engine::send_once` writes the sent-marker of a part it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    /// Right after the send.
    Now,
    /// Not at all: the caller acknowledges the job next (see [`Delivered::unmarked`]).
    Deferred,
}
