//! The embedded job queue: the Redis queue's semantics (visibility reclaim, dead letters) in one process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::{Admitted, DeadLetter, Fenced, Job, PartClaim, QueueDepth, Ticket, DEAD_LETTER_CAP};
use crate::core::PendingTurn;
use crate::delivery::unix_ms;
use crate::store::MemoryStore;

pub struct MemoryQueue {
    state: Mutex<State>,
    /// Wakes one consumer waiting in `next` as soon as a job arrives, instead of polling.
    arrived: Notify,
    visibility: Duration,
    /// Claims, replies and sent-markers, as Redis holds them beside the stream.
    store: MemoryStore,
}

#[derive(Default)]
struct State {
    sequence: u64,
    ready: VecDeque<Entry>,
    in_flight: HashMap<String, InFlight>,
    dead: HashMap<String, DeadLetter>,
    /// Dead-letter ids, oldest first.
    dead_order: VecDeque<String>,
    /// Per conversation: the ticket of the job that has the turn, and the jobs behind it.
    orders: HashMap<String, Order>,
}

#[derive(Default)]
struct Order {
    active: Option<String>,
    backlog: VecDeque<(String, String)>,
}

#[derive(Clone)]
struct Entry {
    id: String,
    /// Enqueue order, so reclaims go oldest first like `XAUTOCLAIM`.
    sequence: u64,
    payload: String,
    enqueued_at_ms: u64,
    deliveries: u64,
    order: Option<Ticket>,
}

struct InFlight {
    entry: Entry,
    consumer: String,
    /// When the job becomes reclaimable unless its consumer heartbeats or acks first.
    deadline: Instant,
}

impl Entry {
    fn job(&self) -> Job {
        Job {
            id: self.id.clone(),
            payload: self.payload.clone(),
            deliveries: self.deliveries,
            enqueued_at_ms: self.enqueued_at_ms,
            order: self.order.clone(),
            shard: 0,
        }
    }
}

impl MemoryQueue {
    pub fn new(visibility: Duration, store: MemoryStore) -> Self {
        MemoryQueue {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            visibility,
            store,
        }
    }

    pub fn visibility(&self) -> Duration {
        self.visibility
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in this file panics while holding the lock with the state half-updated;
        // keep serving rather than poisoning every later call.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn admit(
        &self,
        claim: &str,
        claim_ttl: Duration,
        order: &str,
        ticket: &str,
        payload: &str,
    ) -> Admitted {
        let mut state = self.lock();
        if !self.store.set_nx(claim, ticket, claim_ttl) {
            return match self.store.get(claim).as_deref() == Some(ticket) {
                true => Admitted::Enqueued(ticket.to_owned()),
                false => Admitted::Duplicate,
            };
        }
        let conversation = state.orders.entry(order.to_owned()).or_default();
        if conversation.active.is_some() {
            conversation
                .backlog
                .push_back((ticket.to_owned(), payload.to_owned()));
            return Admitted::Enqueued(ticket.to_owned());
        }
        conversation.active = Some(ticket.to_owned());
        let place = Ticket {
            order: order.to_owned(),
            ticket: ticket.to_owned(),
        };
        state.push(payload.to_owned(), Some(place));
        drop(state);
        self.arrived.notify_one();
        Admitted::Enqueued(ticket.to_owned())
    }

    pub fn enqueue(&self, payload: &str) -> String {
        let id = self.lock().push(payload.to_owned(), None);
        // A stored permit if nobody waits yet: the next `next` call then returns at once.
        self.arrived.notify_one();
        id
    }

    pub async fn next(&self, consumer: &str, block: Duration) -> Option<Job> {
        let deadline = Instant::now() + block;
        loop {
            let notified = self.arrived.notified();
            let wake_at = {
                let mut state = self.lock();
                let now = Instant::now();
                if let Some(job) = state.take(consumer, now, self.visibility) {
                    return Some(job);
                }
                if now >= deadline {
                    return None;
                }
                // Wake for a new job, or when an in-flight one becomes reclaimable.
                state
                    .in_flight
                    .values()
                    .map(|flight| flight.deadline)
                    .min()
                    .map_or(deadline, |reclaimable| reclaimable.min(deadline))
            };
            tokio::select! {
                () = notified => {}
                () = sleep_until(wake_at) => {}
            }
        }
    }

    pub fn heartbeat(&self, consumer: &str, job_id: &str) -> bool {
        let mut state = self.lock();
        match state.in_flight.get_mut(job_id) {
            Some(flight) if flight.consumer == consumer => {
                flight.deadline = Instant::now() + self.visibility;
                true
            }
            _ => false,
        }
    }

    pub fn ack(&self, job: &Job) {
        let mut state = self.lock();
        state.remove(&job.id);
        if state.pass_turn(job) {
            drop(state);
            self.arrived.notify_one();
        }
    }

    pub fn store_reply(
        &self,
        consumer: &str,
        job: &Job,
        reply_key: &str,
        text: &str,
        ttl: Duration,
        remember: Option<&PendingTurn>,
    ) -> Fenced<String> {
        // Held across the writes, as the Redis script holds the server: the owner cannot change
        // between the check and the write.
        let state = self.lock();
        if !state.owns(consumer, &job.id) {
            return Fenced::Lost;
        }
        if !self.store.set_nx(reply_key, text, ttl) {
            return Fenced::Held(self.store.get(reply_key).unwrap_or_default());
        }
        if let Some(pending) = remember {
            self.store.append_turn(
                &pending.key,
                pending.turn.clone(),
                pending.max_turns,
                pending.ttl,
            );
        }
        drop(state);
        Fenced::Held(text.to_owned())
    }

    pub fn claim_part(&self, consumer: &str, job: &Job, marker: &str, ttl: Duration) -> PartClaim {
        let state = self.lock();
        if !state.owns(consumer, &job.id) {
            return PartClaim::Lost;
        }
        match self.store.get(marker).as_deref() {
            Some("sent") => PartClaim::Sent,
            Some(holder) if holder != consumer => PartClaim::Busy,
            _ => {
                self.store.set(marker, consumer, ttl);
                PartClaim::Mine
            }
        }
    }

    pub fn dead_letter(&self, job: &Job, reason: &str) {
        let mut state = self.lock();
        state.remove(&job.id);
        if state.pass_turn(job) {
            self.arrived.notify_one();
        }
        state.dead.insert(
            job.id.clone(),
            DeadLetter {
                id: job.id.clone(),
                payload: job.payload.clone(),
                reason: reason.to_owned(),
                failed_at_ms: unix_ms(),
                deliveries: job.deliveries,
            },
        );
        state.dead_order.retain(|id| id != &job.id);
        state.dead_order.push_back(job.id.clone());
        while state.dead_order.len() > DEAD_LETTER_CAP {
            if let Some(oldest) = state.dead_order.pop_front() {
                state.dead.remove(&oldest);
            }
        }
    }

    pub fn dead_letters(&self, limit: usize) -> Vec<DeadLetter> {
        let state = self.lock();
        state
            .dead_order
            .iter()
            .rev()
            .filter_map(|id| state.dead.get(id).cloned())
            .take(limit)
            .collect()
    }

    pub fn dead_letter_by_id(&self, id: &str) -> Option<DeadLetter> {
        self.lock().dead.get(id).cloned()
    }

    pub fn retry_dead_letter(&self, id: &str) -> Option<String> {
        let new_id = {
            let mut state = self.lock();
            let dead = state.dead.remove(id)?;
            state.dead_order.retain(|other| other != id);
            state.push(dead.payload, None)
        };
        self.arrived.notify_one();
        Some(new_id)
    }

    pub fn depth(&self) -> QueueDepth {
        let state = self.lock();
        let oldest = state
            .ready
            .iter()
            .chain(state.in_flight.values().map(|flight| &flight.entry))
            .map(|entry| entry.enqueued_at_ms)
            .min();
        QueueDepth {
            pending: (state.ready.len() + state.in_flight.len()) as u64,
            oldest_age: oldest.map(|at| Duration::from_millis(unix_ms().saturating_sub(at))),
        }
    }
}

impl State {
    fn owns(&self, consumer: &str, job_id: &str) -> bool {
        self.in_flight
            .get(job_id)
            .is_some_and(|flight| flight.consumer == consumer)
    }

    /// When `job` held its conversation's turn, the next job of the conversation gets it (true:
    /// a job was queued), or the conversation falls idle.
    fn pass_turn(&mut self, job: &Job) -> bool {
        let Some(place) = &job.order else {
            return false;
        };
        let Some(conversation) = self.orders.get_mut(&place.order) else {
            return false;
        };
        if conversation.active.as_deref() != Some(place.ticket.as_str()) {
            return false;
        }
        match conversation.backlog.pop_front() {
            Some((ticket, payload)) => {
                conversation.active = Some(ticket.clone());
                let next = Ticket {
                    order: place.order.clone(),
                    ticket,
                };
                self.push(payload, Some(next));
                true
            }
            None => {
                self.orders.remove(&place.order);
                false
            }
        }
    }

    fn push(&mut self, payload: String, order: Option<Ticket>) -> String {
        self.sequence += 1;
        let enqueued_at_ms = unix_ms();
        // Shaped like a stream id, so logs and the operator CLI read the same in both modes.
        let id = format!("{enqueued_at_ms}-{}", self.sequence);
        self.ready.push_back(Entry {
            id: id.clone(),
            sequence: self.sequence,
            payload,
            enqueued_at_ms,
            deliveries: 0,
            order,
        });
        id
    }

    /// Reclaims the oldest job whose consumer went silent, else takes the oldest new one.
    fn take(&mut self, consumer: &str, now: Instant, visibility: Duration) -> Option<Job> {
        let silent = self
            .in_flight
            .values_mut()
            .filter(|flight| flight.deadline <= now)
            .min_by_key(|flight| flight.entry.sequence);
        if let Some(flight) = silent {
            flight.consumer = consumer.to_owned();
            flight.deadline = now + visibility;
            flight.entry.deliveries += 1;
            return Some(flight.entry.job());
        }
        let mut entry = self.ready.pop_front()?;
        entry.deliveries = 1;
        let job = entry.job();
        self.in_flight.insert(
            entry.id.clone(),
            InFlight {
                entry,
                consumer: consumer.to_owned(),
                deadline: now + visibility,
            },
        );
        Some(job)
    }

    fn remove(&mut self, job_id: &str) {
        if self.in_flight.remove(job_id).is_none() {
            self.ready.retain(|entry| entry.id != job_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_job_goes_to_one_consumer_and_leaves_on_ack() {
        let queue = MemoryQueue::new(LONG, MemoryStore::new());
        let id = queue.enqueue("{}");

        let job = queue.next("a", Duration::ZERO).await.unwrap();
        let other = queue.next("b", Duration::ZERO).await;
        queue.ack(&job);

        assert_eq!((job.id.as_str(), job.deliveries), (id.as_str(), 1));
        assert!(other.is_none());
        assert_eq!(queue.depth(), QueueDepth::default());
    }

    /// Short enough to keep the tests quick, long enough for a loaded CI machine.
    const SHORT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_silent_consumer_loses_its_job_after_the_visibility_timeout() {
        let queue = MemoryQueue::new(SHORT, MemoryStore::new());
        queue.enqueue("{}");
        let first = queue.next("a", Duration::ZERO).await.unwrap();

        let too_early = queue.next("b", Duration::ZERO).await;
        let reclaimed = queue.next("b", SHORT * 10).await.unwrap();

        assert!(too_early.is_none());
        assert_eq!(reclaimed.id, first.id);
        assert_eq!(reclaimed.deliveries, 2);
        assert!(!queue.heartbeat("a", &first.id), "a no longer owns it");
        assert!(queue.heartbeat("b", &first.id));
    }

    #[tokio::test]
    async fn heartbeats_keep_a_job_from_being_reclaimed() {
        let queue = MemoryQueue::new(SHORT, MemoryStore::new());
        queue.enqueue("{}");
        let job = queue.next("a", Duration::ZERO).await.unwrap();

        for _ in 0..5 {
            tokio::time::sleep(SHORT / 3).await;
            assert!(queue.heartbeat("a", &job.id));
            assert!(queue.next("b", Duration::ZERO).await.is_none());
        }
    }

    #[tokio::test]
    async fn dead_letters_list_newest_first_and_retry_once() {
        let queue = MemoryQueue::new(LONG, MemoryStore::new());
        queue.enqueue("first");
        queue.enqueue("second");
        let first = queue.next("a", Duration::ZERO).await.unwrap();
        let second = queue.next("a", Duration::ZERO).await.unwrap();
        queue.dead_letter(&first, "one");
        queue.dead_letter(&second, "two");

        let listed: Vec<String> = queue
            .dead_letters(10)
            .into_iter()
            .map(|dead| dead.reason)
            .collect();
        let retried = queue.retry_dead_letter(&first.id);
        let again = queue.retry_dead_letter(&first.id);

        assert_eq!(listed, ["two", "one"]);
        assert!(retried.is_some_and(|id| id != first.id));
        assert!(again.is_none());
        assert_eq!(queue.depth().pending, 1);
        let replayed = queue.next("a", Duration::ZERO).await.unwrap();
        assert_eq!(
            (replayed.payload.as_str(), replayed.deliveries),
            ("first", 1)
        );
    }
}
