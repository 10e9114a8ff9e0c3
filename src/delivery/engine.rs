//! The workers: take a job, wait for the conversation's turn, answer once, deliver every part
//! once, acknowledge. Several replicas run them against one Redis; any may finish a job another
//! started (reclaim after the visibility timeout), and the markers make that safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate_contract::Platform;
use tokio::sync::watch;

use super::accept::{Acceptor, ORDER_TTL};
use super::job::JobPayload;
use super::queue::{Job, Queue};
use super::send::{send_webhook, SendError};
use crate::channels::webhook::Outbound;
use crate::channels::wechat::{active::WechatActive, active_parts};
use crate::config::{DeliverySettings, WebhookSettings};
use crate::core::Conversations;
use crate::metrics::DeliveryLabels;
use crate::store::Store;

/// A job whose predecessor in the conversation is still queued behind it goes to the back of
/// the queue this many times at most; a predecessor in progress is waited for this long at most.
/// Past either bound the predecessor is presumed lost and the job goes ahead.
const MAX_YIELDS: u32 = 50;
const ORDER_STALL: Duration = Duration::from_secs(120);
const ORDER_POLL: Duration = Duration::from_millis(25);
/// A predecessor not picked up by any worker within this long is taken to be queued behind.
const YIELD_AFTER: Duration = Duration::from_millis(250);
/// Between two attempts of a failed send, before jitter.
const SEND_BACKOFF: Duration = Duration::from_millis(500);
/// How long a worker sleeps after the queue itself failed (Redis down), so an outage is not a busy loop.
const QUEUE_ERROR_PAUSE: Duration = Duration::from_secs(1);
const NEXT_BLOCK: Duration = Duration::from_secs(1);
/// Loops pulling jobs; each may hold a blocked Redis connection while the queue is empty.
const MAX_FETCHERS: usize = 4;

enum Failure {
    /// The channel's fallback took the answer (WeChat 48001 → passive); the job is done.
    FellBack,
    /// Leave it un-acked: it comes back after the visibility timeout (here or on another replica).
    Retry(String),
    /// Give up: dead-letter with this reason.
    Dead(String),
}

pub struct Engine {
    queue: Queue,
    store: Store,
    conversations: Arc<Conversations>,
    http: reqwest::Client,
    webhooks: HashMap<String, WebhookSettings>,
    wechat: HashMap<String, Arc<WechatActive>>,
    settings: DeliverySettings,
    prefix: String,
    consumer: String,
}

impl Engine {
    pub fn new(
        queue: Queue,
        conversations: Arc<Conversations>,
        http: reqwest::Client,
        webhooks: HashMap<String, WebhookSettings>,
        wechat: HashMap<String, Arc<WechatActive>>,
        settings: DeliverySettings,
        prefix: &str,
    ) -> Self {
        let mut id = [0u8; 4];
        let _ = getrandom::fill(&mut id);
        // Unique per process, so a restarted replica never inherits a dead one's pending jobs by name.
        let consumer = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            u32::from_le_bytes(id)
        );
        Engine {
            queue,
            store: conversations.store().clone(),
            conversations,
            http,
            webhooks,
            wechat,
            settings,
            prefix: prefix.to_owned(),
            consumer,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Starts the fetchers. Each takes a job only when one of the `delivery.workers` slots is
    /// free and runs it in its own task, so concurrency costs a task per job, not a blocked
    /// Redis connection per slot. On `shutdown` they stop taking jobs; the returned future
    /// resolves once every job in hand is done (or handed back by not acknowledging it).
    pub fn start(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.settings.workers));
        let fetchers: Vec<_> = (0..self.settings.workers.min(MAX_FETCHERS))
            .map(|index| {
                let engine = self.clone();
                let shutdown = shutdown.clone();
                let slots = slots.clone();
                crate::spawn_traced(async move { engine.fetch(index, slots, shutdown).await })
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
                next = self.queue.next(&consumer, NEXT_BLOCK) => next,
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
                engine.run(&consumer, job).await;
                drop(slot);
            });
        }
    }

    #[tracing::instrument(skip_all, fields(job = %job.id, deliveries = job.deliveries))]
    async fn run(&self, consumer: &str, job: Job) {
        let payload: JobPayload = match serde_json::from_str(&job.payload) {
            Ok(payload) => payload,
            Err(error) => {
                self.give_up(&job, None, &format!("unreadable payload: {error}"))
                    .await;
                return;
            }
        };
        if job.deliveries > self.settings.max_deliveries {
            // With the payload, so the conversation's later messages are not held up by it.
            self.give_up(
                &job,
                Some(&payload),
                "delivered too many times without completing",
            )
            .await;
            return;
        }
        let (stop_heartbeat, heartbeat) = self.keep_alive(consumer, &job.id);
        let result = self.process(&job, &payload).await;
        drop(stop_heartbeat);
        let _ = heartbeat.await;
        match result {
            Ok(()) | Err(Failure::FellBack) => {
                if let Err(error) = self.queue.ack(&job.id).await {
                    // Not fatal: a reclaim finds the reply and the sent-markers and sends nothing twice.
                    tracing::warn!(%error, "could not acknowledge a finished job");
                }
            }
            Err(Failure::Dead(reason)) => self.give_up(&job, Some(&payload), &reason).await,
            Err(Failure::Retry(reason)) => {
                tracing::warn!(%reason, "job failed; it will be retried after the visibility timeout");
            }
        }
    }

    /// Heartbeats every visibility/3 until the returned sender is dropped.
    fn keep_alive(
        &self,
        consumer: &str,
        job_id: &str,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let queue = self.queue.clone();
        let consumer = consumer.to_owned();
        let job_id = job_id.to_owned();
        let period = (queue.visibility() / 3).max(Duration::from_millis(100));
        let handle = crate::spawn_traced(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(period) => {
                        match queue.heartbeat(&consumer, &job_id).await {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!("job was taken over by another worker"),
                            Err(error) => tracing::warn!(%error, "heartbeat failed"),
                        }
                    }
                }
            }
        });
        (stop, handle)
    }

    async fn give_up(&self, job: &Job, payload: Option<&JobPayload>, reason: &str) {
        tracing::error!(reason, "job dead-lettered");
        if let Some(payload) = payload {
            // The conversation must not wait forever for a job that will never finish.
            let done = format!("{}:done", self.order_key(payload));
            if let Err(error) = self.store.advance(&done, payload.seq, ORDER_TTL).await {
                tracing::warn!(%error, "could not advance the conversation after a dead letter");
            }
        }
        if let Err(error) = self.queue.dead_letter(job, reason).await {
            tracing::error!(%error, "could not dead-letter the job; it will be retried");
        }
    }

    fn order_key(&self, payload: &JobPayload) -> String {
        Acceptor::order_key(
            &self.prefix,
            &payload.bot,
            &payload.platform,
            &payload.conversation,
        )
    }

    async fn process(&self, job: &Job, payload: &JobPayload) -> Result<(), Failure> {
        let order = self.order_key(payload);
        if !self.wait_turn(job, payload, &order).await? {
            return Ok(()); // yielded: a copy of this job now waits behind its predecessor
        }
        let reply_key = format!(
            "{}:reply:{}:{}:{}",
            self.prefix, payload.bot, payload.platform, payload.message_id
        );
        let text = self.answer(payload, &reply_key).await?;
        if !text.is_empty() {
            match self.deliver(payload, &reply_key, &text).await {
                Ok(()) | Err(Failure::FellBack) => {}
                Err(failure) => return Err(failure),
            }
        }
        self.store
            .advance(&format!("{order}:done"), payload.seq, ORDER_TTL)
            .await
            .map_err(|error| Failure::Retry(format!("advance the conversation: {error}")))?;
        Ok(())
    }

    /// True when it is this job's turn. The job is marked started as soon as a worker holds
    /// it, so its successor can tell "predecessor in progress (wait for it)" from "predecessor
    /// still queued behind me" — then this job yields its place by going to the back of the
    /// queue, so that even a single worker can never wait on a job that is waiting on it.
    async fn wait_turn(
        &self,
        job: &Job,
        payload: &JobPayload,
        order: &str,
    ) -> Result<bool, Failure> {
        let started_key = format!("{order}:started:{}", payload.seq);
        let store_error =
            |error: crate::store::StoreError| Failure::Retry(format!("order: {error}"));
        self.store
            .set(&started_key, "1", ORDER_TTL)
            .await
            .map_err(store_error)?;
        if payload.seq <= 1 {
            return Ok(true);
        }
        let previous_started = format!("{order}:started:{}", payload.seq - 1);
        let waited = Instant::now();
        loop {
            let done = self
                .store
                .get(&format!("{order}:done"))
                .await
                .map_err(store_error)?;
            let done: u64 = done.and_then(|value| value.parse().ok()).unwrap_or(0);
            if done + 1 >= payload.seq {
                return Ok(true);
            }
            if waited.elapsed() > ORDER_STALL {
                tracing::warn!(seq = payload.seq, done, "predecessor stalled; going ahead");
                return Ok(true);
            }
            let predecessor_started = self
                .store
                .get(&previous_started)
                .await
                .map_err(store_error)?
                .is_some();
            if !predecessor_started && waited.elapsed() >= YIELD_AFTER {
                let yields = self.yields(job);
                let age = Duration::from_millis(
                    super::accept::now_ms().saturating_sub(payload.received_at_ms),
                );
                if yields >= MAX_YIELDS || age >= ORDER_STALL {
                    tracing::warn!(
                        seq = payload.seq,
                        yields,
                        "predecessor never started; going ahead"
                    );
                    return Ok(true);
                }
                self.store
                    .delete(&[&started_key])
                    .await
                    .map_err(store_error)?;
                self.requeue(job, payload, yields + 1).await?;
                return Ok(false);
            }
            tokio::time::sleep(ORDER_POLL).await;
        }
    }

    fn yields(&self, job: &Job) -> u32 {
        serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|value| value.get("yields").and_then(|yields| yields.as_u64()))
            .unwrap_or(0) as u32
    }

    async fn requeue(&self, job: &Job, payload: &JobPayload, yields: u32) -> Result<(), Failure> {
        let mut value =
            serde_json::to_value(payload).map_err(|error| Failure::Dead(error.to_string()))?;
        value["yields"] = yields.into();
        self.queue
            .enqueue(&value.to_string())
            .await
            .map_err(|error| Failure::Retry(format!("requeue behind predecessor: {error}")))?;
        // The copy is durable; the original goes. A crash between the two leaves a duplicate
        // job, which finds the reply and sent-markers of the first and sends nothing twice.
        self.queue
            .ack(&job.id)
            .await
            .map_err(|error| Failure::Retry(format!("ack yielded job: {error}")))?;
        Ok(())
    }

    /// The reply text, generated once: a reclaimed job reuses what its predecessor stored.
    async fn answer(&self, payload: &JobPayload, reply_key: &str) -> Result<String, Failure> {
        let store_error =
            |error: crate::store::StoreError| Failure::Retry(format!("reply store: {error}"));
        if let Some(text) = self.store.get(reply_key).await.map_err(store_error)? {
            return Ok(text);
        }
        let text = match &payload.notice {
            Some(notice) => notice.clone(),
            None => {
                let message = payload.message().ok_or_else(|| {
                    Failure::Dead(format!("unknown platform {}", payload.platform))
                })?;
                // While the answer is generated the WeChat user sees "typing…".
                let _typing = match (payload.platform(), self.wechat.get(&payload.bot)) {
                    (Some(Platform::Wechat), Some(active)) => Some(active.typing(&payload.sender)),
                    _ => None,
                };
                match self
                    .conversations
                    .handle(&payload.bot, &message, None)
                    .await
                {
                    Ok(reply) => reply.map(|reply| reply.text).unwrap_or_default(),
                    Err(crate::core::CoreError::UnknownBot(bot)) => {
                        return Err(Failure::Dead(format!("no bot named {bot}")))
                    }
                    Err(error) => return Err(Failure::Retry(error.to_string())),
                }
            }
        };
        let ttl = Duration::from_secs(self.settings.dedup_ttl_secs);
        self.store
            .set(reply_key, &text, ttl)
            .await
            .map_err(store_error)?;
        Ok(text)
    }

    async fn deliver(
        &self,
        payload: &JobPayload,
        reply_key: &str,
        text: &str,
    ) -> Result<(), Failure> {
        match payload.platform() {
            Some(Platform::Webhook) => {
                let settings = self.webhooks.get(&payload.bot).ok_or_else(|| {
                    Failure::Dead(format!("bot {} has no [webhook] table", payload.bot))
                })?;
                let parts = botgate_wechat::split_utf8(text, settings.max_part_bytes);
                let chunks = parts.len();
                for (chunk, part) in parts.iter().enumerate() {
                    let outbound = Outbound {
                        bot: &payload.bot,
                        conversation: &payload.conversation,
                        message_id: &payload.message_id,
                        chunk,
                        chunks,
                        text: part,
                    };
                    self.send_once(reply_key, chunk, "webhook", || {
                        send_webhook(&self.http, settings, &outbound)
                    })
                    .await?;
                }
                Ok(())
            }
            Some(Platform::Wechat) => {
                let active = self.wechat.get(&payload.bot).ok_or_else(|| {
                    Failure::Dead(format!("bot {} has no active WeChat channel", payload.bot))
                })?;
                let parts = active_parts(text);
                for (chunk, part) in parts.iter().enumerate() {
                    let sent = self
                        .send_once(reply_key, chunk, "wechat", || {
                            active.send_part(&payload.sender, part)
                        })
                        .await;
                    if let Err(Failure::FellBack) = sent {
                        active
                            .fall_back(&payload.sender, &parts[chunk..])
                            .await
                            .map_err(|error| {
                                Failure::Retry(format!("passive fallback: {error}"))
                            })?;
                        return Err(Failure::FellBack);
                    }
                    sent?;
                }
                Ok(())
            }
            _ => Err(Failure::Dead(format!(
                "no asynchronous delivery for platform {}",
                payload.platform
            ))),
        }
    }

    /// Sends one part unless its marker says it went out already; transient failures are
    /// retried with backoff and jitter, permanent ones end the job.
    async fn send_once<F, Fut>(
        &self,
        reply_key: &str,
        chunk: usize,
        platform: &'static str,
        send: F,
    ) -> Result<(), Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), SendError>>,
    {
        let marker = format!("{reply_key}:sent:{chunk}");
        let store_error =
            |error: crate::store::StoreError| Failure::Retry(format!("sent-marker: {error}"));
        if self
            .store
            .get(&marker)
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Ok(());
        }
        let metrics = self.conversations.metrics();
        let record = |outcome: &'static str, code: &str| {
            metrics
                .deliveries
                .get_or_create(&DeliveryLabels {
                    platform,
                    outcome,
                    code: code.to_owned(),
                })
                .inc();
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match send().await {
                Ok(()) => {
                    record("delivered", "0");
                    let ttl = Duration::from_secs(self.settings.dedup_ttl_secs);
                    self.store
                        .set(&marker, "1", ttl)
                        .await
                        .map_err(store_error)?;
                    return Ok(());
                }
                Err(SendError::Fallback { code, message }) => {
                    record("fallback", &code);
                    tracing::warn!(%code, %message, "delivery falls back");
                    return Err(Failure::FellBack);
                }
                Err(SendError::Permanent { code, message }) => {
                    record("failed", &code);
                    return Err(Failure::Dead(format!(
                        "{platform} refused the delivery ({code}): {message}"
                    )));
                }
                Err(error) if attempt >= self.settings.send_attempts => {
                    record("dead", error.code());
                    return Err(Failure::Dead(format!(
                        "{platform} delivery failed {attempt} times, last: {error}"
                    )));
                }
                Err(error) => {
                    record("retried", error.code());
                    tracing::warn!(%error, attempt, "send failed; retrying");
                    let jitter = getrandom::u32().unwrap_or(0) % 1000;
                    let backoff = SEND_BACKOFF * 2u32.pow(attempt.min(5) - 1);
                    tokio::time::sleep(backoff.mul_f64(0.5 + f64::from(jitter) / 2000.0)).await;
                }
            }
        }
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
