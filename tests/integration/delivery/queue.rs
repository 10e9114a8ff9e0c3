//! The job queue: delivery and ack, reclaim after a silent consumer, heartbeats, dead letters, restarts, concurrency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use botgate::delivery::{Admitted, Fenced, PartClaim, Queue, QueueDepth};
use botgate::spawn_traced;
use tokio::time::{sleep, timeout};

use super::{Backend, Kind};

/// Long enough that nothing is reclaimed unless a scenario means it to be.
const LONG: Duration = Duration::from_secs(30);
/// The visibility timeout of the reclaim scenarios.
const SHORT: Duration = Duration::from_millis(300);
/// How long a consumer waits for a job that should come.
const WAIT: Duration = Duration::from_secs(3);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

both!(
    enqueue_next_ack_leaves_nothing_pending,
    a_silent_consumers_job_is_reclaimed_after_the_visibility_timeout,
    heartbeats_keep_a_long_job_from_being_reclaimed,
    dead_letters_are_listed_and_replayed,
    a_blocked_consumer_does_not_delay_enqueue,
    two_hundred_jobs_over_four_consumers_are_each_delivered_once,
    a_conversation_has_one_job_in_the_queue_and_passes_its_turn,
    only_the_jobs_owner_stores_a_reply_or_claims_a_part,
);

async fn enqueue_next_ack_leaves_nothing_pending(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let queue = backend.queue(LONG);
    let before = unix_ms();

    let id = queue.enqueue(0, r#"{"reply":"你好"}"#).await.unwrap();
    let waiting = queue.depth().await.unwrap();
    let job = queue.next(0, "a", WAIT).await.unwrap().unwrap();
    queue.ack(&job).await.unwrap();

    assert_eq!(waiting.pending, 1);
    assert!(waiting.oldest_age.is_some_and(|age| age < WAIT));
    assert_eq!(job.id, id);
    assert_eq!(job.payload, r#"{"reply":"你好"}"#);
    assert_eq!(job.deliveries, 1);
    assert!((before.saturating_sub(1000)..=unix_ms() + 1000).contains(&job.enqueued_at_ms));
    assert_eq!(queue.depth().await.unwrap(), QueueDepth::default());
    let nothing = queue.next(0, "a", Duration::from_millis(50)).await.unwrap();
    assert!(nothing.is_none());
}

async fn a_silent_consumers_job_is_reclaimed_after_the_visibility_timeout(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.queues(SHORT);
    replica_a.enqueue(0, "job").await.unwrap();
    let taken = replica_a.next(0, "a", WAIT).await.unwrap().unwrap();
    let taken_at = Instant::now();

    // Consumer "a" never acks nor heartbeats: killed mid-job.
    let too_early = replica_b.next(0, "b", Duration::ZERO).await.unwrap();
    let reclaimed = replica_b.next(0, "b", WAIT).await.unwrap().unwrap();
    let waited = taken_at.elapsed();
    let a_still_owns_it = replica_a.heartbeat("a", 0, &taken.id).await.unwrap();
    replica_b.ack(&reclaimed).await.unwrap();

    assert!(too_early.is_none());
    assert_eq!(
        (reclaimed.id.as_str(), reclaimed.payload.as_str()),
        (taken.id.as_str(), "job")
    );
    assert_eq!((taken.deliveries, reclaimed.deliveries), (1, 2));
    assert!(
        waited >= SHORT - Duration::from_millis(50),
        "reclaimed after {waited:?}"
    );
    assert!(waited < SHORT * 4, "reclaimed only after {waited:?}");
    assert!(!a_still_owns_it, "a heartbeat must not steal the job back");
    assert_eq!(replica_b.depth().await.unwrap().pending, 0);
}

async fn heartbeats_keep_a_long_job_from_being_reclaimed(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.queues(SHORT);
    replica_a.enqueue(0, "long job").await.unwrap();
    let job = replica_a.next(0, "a", WAIT).await.unwrap().unwrap();

    let other = replica_b.clone();
    let stealer = spawn_traced(async move { other.next(0, "b", Duration::from_secs(1)).await });
    for _ in 0..12 {
        sleep(SHORT / 3).await;
        assert!(replica_a.heartbeat("a", 0, &job.id).await.unwrap());
    }
    let stolen = stealer.await.unwrap().unwrap();
    // Once the heartbeats stop, the job is reclaimed as usual.
    let reclaimed = replica_b.next(0, "b", WAIT).await.unwrap().unwrap();

    assert!(stolen.is_none(), "taken from a live worker: {stolen:?}");
    assert_eq!((reclaimed.id, reclaimed.deliveries), (job.id, 2));
}

async fn dead_letters_are_listed_and_replayed(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let queue = backend.queue(LONG);
    let before = unix_ms();
    queue.enqueue(0, "first").await.unwrap();
    queue.enqueue(0, "second").await.unwrap();
    let first = queue.next(0, "a", WAIT).await.unwrap().unwrap();
    let second = queue.next(0, "a", WAIT).await.unwrap().unwrap();

    queue
        .dead_letter(&first, "40003 invalid openid")
        .await
        .unwrap();
    sleep(Duration::from_millis(5)).await;
    queue
        .dead_letter(&second, "45047 out of quota")
        .await
        .unwrap();
    let depth = queue.depth().await.unwrap();
    let listed = queue.dead_letters(10).await.unwrap();
    let newest = queue.dead_letters(1).await.unwrap();
    let shown = queue.dead_letter_by_id(&first.id).await.unwrap();
    let retried = queue.retry_dead_letter(&first.id).await.unwrap().unwrap();
    let retried_again = queue.retry_dead_letter(&first.id).await.unwrap();
    let replayed = queue.next(0, "a", WAIT).await.unwrap().unwrap();

    assert_eq!(depth.pending, 0, "dead letters are acked");
    let ids: Vec<&str> = listed.iter().map(|dead| dead.id.as_str()).collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()], "newest first");
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].id, second.id);
    let dead = &listed[1];
    assert_eq!(
        (dead.payload.as_str(), dead.reason.as_str(), dead.deliveries),
        ("first", "40003 invalid openid", 1)
    );
    assert!(dead.failed_at_ms >= before);
    assert_eq!(shown.as_ref(), Some(dead));
    assert_ne!(retried, first.id);
    assert!(retried_again.is_none());
    assert_eq!(
        (
            replayed.id.as_str(),
            replayed.payload.as_str(),
            replayed.deliveries
        ),
        (retried.as_str(), "first", 1)
    );
    let remaining = queue.dead_letters(10).await.unwrap();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].id, second.id);
    assert!(queue.dead_letter_by_id(&first.id).await.unwrap().is_none());
}

async fn a_blocked_consumer_does_not_delay_enqueue(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let queue = backend.queue(LONG);
    let consumer = queue.clone();
    let waiting = spawn_traced(async move { consumer.next(0, "a", Duration::from_secs(3)).await });
    sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let id = queue.enqueue(0, "wake up").await.unwrap();
    let enqueue_took = started.elapsed();
    let job = timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap();
    let woke_after = started.elapsed();

    assert!(
        enqueue_took < Duration::from_millis(200),
        "enqueue took {enqueue_took:?}"
    );
    assert_eq!(job.unwrap().unwrap().id, id);
    assert!(
        woke_after < Duration::from_secs(1),
        "consumer woke after {woke_after:?}"
    );
}

async fn two_hundred_jobs_over_four_consumers_are_each_delivered_once(kind: Kind) {
    const JOBS: usize = 200;
    let mut backend = Backend::start(kind).await;
    let replicas: [Queue; 4] = backend.queues(LONG);
    let deliveries = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let acked = Arc::new(AtomicUsize::new(0));

    let consumers: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(index, queue)| {
            let (queue, deliveries, acked) = (queue.clone(), deliveries.clone(), acked.clone());
            spawn_traced(async move {
                let name = format!("worker-{index}");
                while acked.load(Ordering::SeqCst) < JOBS {
                    let Some(job) = queue
                        .next(0, &name, Duration::from_millis(200))
                        .await
                        .unwrap()
                    else {
                        continue;
                    };
                    *deliveries
                        .lock()
                        .unwrap()
                        .entry(job.payload.clone())
                        .or_default() += 1;
                    queue.ack(&job).await.unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for index in 0..JOBS {
        let replica = &replicas[index % replicas.len()];
        replica.enqueue(0, &format!("job-{index}")).await.unwrap();
    }
    for consumer in consumers {
        timeout(Duration::from_secs(30), consumer)
            .await
            .unwrap()
            .unwrap();
    }

    let deliveries = deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), JOBS);
    let repeated: Vec<_> = deliveries
        .iter()
        .filter(|(_, count)| **count != 1)
        .collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(replicas[0].depth().await.unwrap(), QueueDepth::default());
}

/// Redis without persistence comes back empty: the group is gone with the stream, and the
/// queue must recreate it instead of failing every `next` with NOGROUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_redis_restart_the_queue_works_again() {
    let mut backend = Backend::start(Kind::Redis).await;
    let queue = backend.queue(LONG);
    queue.enqueue(0, "before").await.unwrap();
    let in_flight = queue.next(0, "a", WAIT).await.unwrap().unwrap();

    backend.redis.as_mut().unwrap().restart().await;
    let id = enqueue_once_reconnected(&queue, "after").await;
    let job = queue.next(0, "a", WAIT).await.unwrap().unwrap();
    let lost_still_owned = queue.heartbeat("a", 0, &in_flight.id).await.unwrap();
    queue.ack(&in_flight).await.unwrap();
    queue.ack(&job).await.unwrap();

    assert_eq!((job.id, job.payload.as_str()), (id, "after"));
    assert!(
        !lost_still_owned,
        "the job in flight went with Redis's memory"
    );
    assert_eq!(queue.depth().await.unwrap(), QueueDepth::default());
}

/// The first command on a connection Redis dropped fails while the manager reconnects; a
/// webhook handler sees that as a 5xx and the platform retries, so the test retries too.
async fn enqueue_once_reconnected(queue: &Queue, payload: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        match queue.enqueue(0, payload).await {
            Ok(id) => return id,
            Err(error) if Instant::now() < deadline => {
                eprintln!("enqueue after restart: {error}");
                sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("enqueue never recovered: {error}"),
        }
    }
}

async fn a_conversation_has_one_job_in_the_queue_and_passes_its_turn(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let queue = backend.queue(LONG);
    let admit =
        |claim: &'static str, order: &'static str, ticket: &'static str, payload: &'static str| {
            let queue = queue.clone();
            async move {
                queue
                    .admit(0, claim, LONG, order, ticket, payload)
                    .await
                    .unwrap()
            }
        };
    for (claim, ticket, payload) in [
        ("c:1", "t1", "m1"),
        ("c:2", "t2", "m2"),
        ("c:3", "t3", "m3"),
    ] {
        assert_eq!(
            admit(claim, "order:a", ticket, payload).await,
            Admitted::Enqueued(ticket.into())
        );
    }
    admit("c:x", "order:b", "tx", "x").await;

    let first = queue.next(0, "w", WAIT).await.unwrap().unwrap();
    let other = queue.next(0, "w", WAIT).await.unwrap().unwrap();
    let held_back = queue
        .next(0, "w", Duration::from_millis(100))
        .await
        .unwrap();
    let duplicate = admit("c:1", "order:a", "t-retry", "m1").await;
    let replayed = admit("c:1", "order:a", "t1", "m1").await;
    queue.ack(&first).await.unwrap();
    let second = queue.next(0, "w", WAIT).await.unwrap().unwrap();
    queue.dead_letter(&second, "refused").await.unwrap();
    let third = queue.next(0, "w", WAIT).await.unwrap().unwrap();
    queue.ack(&third).await.unwrap();
    queue.ack(&other).await.unwrap();

    assert_eq!(
        (first.payload.as_str(), other.payload.as_str()),
        ("m1", "x")
    );
    assert!(
        held_back.is_none(),
        "m2 waits for m1 without being handed out"
    );
    assert_eq!(duplicate, Admitted::Duplicate);
    assert_eq!(
        replayed,
        Admitted::Enqueued("t1".into()),
        "the same admission replayed"
    );
    assert_eq!(second.payload, "m2", "acking m1 passed the turn");
    assert_eq!(third.payload, "m3", "dead-lettering m2 passed the turn");
    assert_eq!(queue.depth().await.unwrap().pending, 0);
    assert!(queue
        .next(0, "w", Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
}

async fn only_the_jobs_owner_stores_a_reply_or_claims_a_part(kind: Kind) {
    let mut backend = Backend::start(kind).await;
    let [replica_a, replica_b] = backend.queues(SHORT);
    replica_a.enqueue(0, "job").await.unwrap();
    let stalled = replica_a.next(0, "a", WAIT).await.unwrap().unwrap();
    let taken = replica_b.next(0, "b", WAIT).await.unwrap().unwrap();
    let ttl = Duration::from_secs(60);

    let zombie_reply = replica_a
        .store_reply("a", &stalled, "test:reply:job", "A's answer", ttl, None)
        .await
        .unwrap();
    let reply = replica_b
        .store_reply("b", &taken, "test:reply:job", "B's answer", ttl, None)
        .await
        .unwrap();
    let second_reply = replica_b
        .store_reply(
            "b",
            &taken,
            "test:reply:job",
            "B's second answer",
            ttl,
            None,
        )
        .await
        .unwrap();
    let zombie_part = replica_a
        .claim_part("a", &stalled, "test:reply:job:sent:0", ttl)
        .await
        .unwrap();
    let part = replica_b
        .claim_part("b", &taken, "test:reply:job:sent:0", ttl)
        .await
        .unwrap();
    let again = replica_b
        .claim_part("b", &taken, "test:reply:job:sent:0", ttl)
        .await
        .unwrap();

    assert_eq!(taken.id, stalled.id);
    assert_eq!(
        zombie_reply,
        Fenced::Lost,
        "the stalled worker may not store"
    );
    assert_eq!(reply, Fenced::Held("B's answer".to_owned()));
    assert_eq!(
        second_reply,
        Fenced::Held("B's answer".to_owned()),
        "first writer wins"
    );
    assert_eq!(zombie_part, PartClaim::Lost);
    assert_eq!((part, again), (PartClaim::Mine, PartClaim::Mine));
}
