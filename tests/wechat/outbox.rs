//! The passive outbox on Redis and in process: answers bound to the request waiting for them,
//! questions generated one at a time in the order asked, pulls, restarts, promises, and
//! scripts that are safe to run twice.

use std::time::Duration;

use botgate::channels::passive::outbox::{Committed, Kind, Role, Take, TakeMode};
use botgate::channels::passive::{Mailbox, Outbox};
use botgate::channels::wechat::CONTINUE_HINT;
use botgate::core::PendingTurn;
use botgate::store::{MemoryStore, RedisStore, Store, Turn};
use botgate_testkit::RedisServer;

pub(crate) const WAIT: Duration = Duration::from_secs(5);
const HISTORY: &str = "bg:shop:wechat:o-1:history";
const BOX: &str = "bg:wechat:box:shop:o-1";
pub(crate) const USER: Mailbox<'static> = Mailbox {
    bot: "shop",
    user: "o-1",
};

pub(crate) struct Backend {
    pub(crate) outbox: Outbox,
    store: Store,
    _redis: Option<RedisServer>,
}

/// The outbox and store on `redis` (which the caller keeps running).
pub(crate) async fn on_redis(redis: &RedisServer) -> Backend {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    Backend {
        outbox: Outbox::redis(
            store.connection(),
            botgate::keyspace::KeySpace::new("bg", 1),
            botgate_contract::Platform::Wechat,
            CONTINUE_HINT,
        ),
        store: Store::Redis(store),
        _redis: None,
    }
}

pub(crate) async fn backends() -> Vec<(&'static str, Backend)> {
    let redis = RedisServer::start().await;
    let on_redis = on_redis(&redis).await;
    vec![
        (
            "embedded",
            Backend {
                outbox: Outbox::memory(CONTINUE_HINT),
                store: Store::Memory(MemoryStore::new()),
                _redis: None,
            },
        ),
        (
            "redis",
            Backend {
                _redis: Some(redis),
                ..on_redis
            },
        ),
    ]
}

fn pending(id: &str, user: &str, assistant: &str) -> PendingTurn {
    PendingTurn {
        key: HISTORY.to_owned(),
        turn: Turn {
            user: user.to_owned(),
            assistant: assistant.to_owned(),
            id: Some(id.to_owned()),
            expiry_set: None,
        },
        max_turns: 10,
        ttl: Duration::from_secs(600),
        expiry_due: true,
    }
}

fn parts(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|text| (*text).to_owned()).collect()
}

pub(crate) fn text(value: &str) -> Take {
    Take::Text(value.to_owned())
}

impl Backend {
    pub(crate) async fn arrive(&self, message: &str, kind: Kind, wait: Duration) -> (u64, Role) {
        let arrival = self
            .outbox
            .arrive(
                USER,
                message,
                &format!("request-of-{message}"),
                "q",
                kind,
                None,
                wait,
            )
            .await
            .unwrap();
        (arrival.attempt, arrival.role)
    }

    pub(crate) async fn ask(&self, message: &str) -> Role {
        self.arrive(message, Kind::Question, WAIT).await.1
    }

    pub(crate) async fn commit(&self, message: &str, answer: &[&str]) -> Committed {
        self.commit_as(message, answer, false).await
    }

    /// `awaited`: the caller says the message's first delivery is still there to be handed
    /// the answer (a generator whose own request started it).
    async fn commit_as(&self, message: &str, answer: &[&str], awaited: bool) -> Committed {
        let remember = pending(message, message, &answer.concat());
        self.outbox
            .commit(
                &self.store,
                USER,
                message,
                &parts(answer),
                Some(&remember),
                awaited,
            )
            .await
            .unwrap()
    }

    pub(crate) async fn take(&self, message: &str, mode: TakeMode) -> Take {
        self.outbox.take(USER, message, mode).await.unwrap()
    }

    pub(crate) async fn remembered(&self) -> Vec<String> {
        let turns = self.store.history(HISTORY, 10).await.unwrap();
        turns.into_iter().map(|turn| turn.user).collect()
    }
}

#[tokio::test]
async fn commit_binds_the_first_part_to_the_waiting_request_and_queues_the_rest() {
    for (name, backend) in backends().await {
        assert_eq!(backend.ask("m1").await, Role::Generate, "{name}");

        let committed = backend.commit("m1", &["一", "二"]).await;

        assert_eq!(committed.bound.as_deref(), Some("一"), "{name}");
        assert_eq!(
            backend.take("m1", TakeMode::Look).await,
            text("一"),
            "{name}: a retry of the same message gets the same bytes"
        );
        assert_eq!(
            backend.ask("m2").await,
            Role::Pull,
            "{name}: with a part waiting, the next message is a pull"
        );
        assert_eq!(
            backend.take("m2", TakeMode::Look).await,
            text("二"),
            "{name}: the next message pulls the second part"
        );
        assert_eq!(backend.remembered().await, ["m1"], "{name}");
    }
}

/// Whatever the generator says (`awaited`: its own request started the answer), a request
/// that gave up waiting is never bound to.
#[tokio::test]
async fn an_answer_committed_after_the_request_gave_up_waits_for_the_next_delivery() {
    for (name, backend) in backends().await {
        for (message, awaited) in [("m1", false), ("m2", true)] {
            backend.ask(message).await;
            assert_eq!(
                backend.take(message, TakeMode::GiveUp).await,
                Take::Pending,
                "{name}"
            );

            let committed = backend.commit_as(message, &["答"], awaited).await;

            assert_eq!(
                committed.bound, None,
                "{name}, awaited {awaited}: nothing is bound to a request that answered without it"
            );
            assert_eq!(
                backend.take(message, TakeMode::Look).await,
                text("答"),
                "{name}, awaited {awaited}: WeChat's retry of the message takes it"
            );
        }
    }
}

#[tokio::test]
async fn the_waiting_mark_lapses_with_the_wait() {
    for (name, backend) in backends().await {
        backend
            .arrive("m1", Kind::Question, Duration::from_millis(50))
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;

        let committed = backend.commit("m1", &["答"]).await;

        assert_eq!(
            committed.bound, None,
            "{name}: a request dropped mid-wait is not bound to"
        );
        assert_eq!(
            backend.take("m1", TakeMode::Look).await,
            text("答"),
            "{name}"
        );
    }
}

/// A generator whose own request is still there to be handed the answer says so, and the
/// waiting time is not read (a request that gave up is covered above).
#[tokio::test]
async fn a_commit_for_a_request_known_to_wait_binds_past_its_waiting_time() {
    for (name, backend) in backends().await {
        backend
            .arrive("m1", Kind::Question, Duration::from_millis(1))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;

        let awaited = backend.commit_as("m1", &["答一"], true).await;

        assert_eq!(
            awaited.bound.as_deref(),
            Some("答一"),
            "{name}: bound to the request its generator knows is waiting"
        );
    }
}

/// The confirmed defect: a second question sent while the first answer was owed was taken
/// for a pull, never reached the LLM, and its last delivery promised an answer that did not
/// exist.
#[tokio::test]
async fn a_question_asked_while_an_answer_is_in_the_making_is_generated_after_it() {
    for (name, backend) in backends().await {
        assert_eq!(backend.ask("m1").await, Role::Generate, "{name}");
        assert_eq!(
            backend.ask("m2").await,
            Role::Queued,
            "{name}: a question, generated after m1"
        );

        let first = backend.commit("m1", &["答一"]).await;
        let second = backend.commit("m2", &["答二"]).await;

        assert_eq!(first.bound.as_deref(), Some("答一"), "{name}");
        assert_eq!(
            first.next,
            Some(("m2".to_owned(), "q".to_owned())),
            "{name}: committing m1 names m2 as the next to generate"
        );
        assert_eq!(
            second.bound.as_deref(),
            Some("答二"),
            "{name}: m2's own request carries its answer"
        );
        assert_eq!(second.next, None, "{name}");
        assert_eq!(backend.remembered().await, ["m1", "m2"], "{name}: in order");
    }
}

#[tokio::test]
async fn a_placeholder_is_only_given_when_something_is_owed() {
    for (name, backend) in backends().await {
        backend.ask("m1").await;
        assert_eq!(
            backend.take("m1", TakeMode::Last).await,
            Take::Placeholder,
            "{name}: m1's answer is on its way"
        );
        assert_eq!(
            backend.ask("m2").await,
            Role::Pull,
            "{name}: after a placeholder, the next message pulls"
        );
        backend.commit("m1", &["答一"]).await;
        assert_eq!(
            backend.take("m2", TakeMode::Look).await,
            text("答一"),
            "{name}"
        );

        backend.ask("m3").await;
        backend.commit("m3", &["答三"]).await;
        backend.ask("m4").await;
        assert_eq!(
            backend.take("m4", TakeMode::Last).await,
            Take::Placeholder,
            "{name}: m4's own answer is owed"
        );
        assert_eq!(
            backend.take("m3", TakeMode::Look).await,
            text("答三"),
            "{name}"
        );
        backend.commit("m4", &["答四"]).await;
        assert_eq!(
            backend.take("m5", TakeMode::Look).await,
            text("答四"),
            "{name}"
        );
        assert_eq!(
            backend.take("m6", TakeMode::Last).await,
            Take::Empty,
            "{name}: nothing owed, nothing promised"
        );
    }
}

#[tokio::test]
async fn a_part_carries_the_continue_hint_when_a_promised_answer_is_still_owed() {
    for (name, backend) in backends().await {
        backend.ask("m1").await;
        backend.ask("m2").await;
        backend.take("m1", TakeMode::Last).await;
        backend.take("m2", TakeMode::Last).await;
        backend.commit("m1", &["答一"]).await;
        backend.commit("m2", &["答二"]).await;

        assert_eq!(backend.ask("m3").await, Role::Pull, "{name}");
        assert_eq!(
            backend.take("m3", TakeMode::Look).await,
            text(&format!("答一{CONTINUE_HINT}")),
            "{name}: the user knows to reply for the rest"
        );
        assert_eq!(backend.ask("m4").await, Role::Pull, "{name}");
        assert_eq!(
            backend.take("m4", TakeMode::Look).await,
            text("答二"),
            "{name}"
        );
        assert_eq!(
            backend.ask("m5").await,
            Role::Generate,
            "{name}: nothing owed any more: a question again"
        );
    }
}

#[tokio::test]
async fn a_request_that_carries_an_earlier_answer_promises_its_own() {
    for (name, backend) in backends().await {
        backend.ask("m1").await;
        backend.ask("m2").await;
        backend.take("m1", TakeMode::GiveUp).await;
        backend.commit("m1", &["答一"]).await;

        assert_eq!(
            backend.take("m2", TakeMode::Look).await,
            text(&format!("答一{CONTINUE_HINT}")),
            "{name}: m2's request shows m1's answer, and says more is coming"
        );
        backend.commit("m2", &["答二"]).await;
        assert_eq!(backend.ask("m3").await, Role::Pull, "{name}");
        assert_eq!(
            backend.take("m3", TakeMode::Look).await,
            text("答二"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_restart_drops_what_is_owed_and_a_late_answer_is_neither_shown_nor_remembered() {
    for (name, backend) in backends().await {
        backend.ask("m1").await;
        backend.take("m1", TakeMode::Last).await;
        backend.ask("m2").await;
        assert_eq!(
            backend.arrive("m3", Kind::Restart, WAIT).await.1,
            Role::Generate,
            "{name}: a farewell is never a pull"
        );

        let late = backend.commit("m1", &["旧答"]).await;
        let restart = backend.commit("m3", &["再见"]).await;

        assert_eq!(late, Committed::default(), "{name}");
        assert_eq!(restart.bound.as_deref(), Some("再见"), "{name}");
        assert_eq!(
            backend.remembered().await,
            ["m3"],
            "{name}: only the restart"
        );
        assert_eq!(
            backend.take("m4", TakeMode::Last).await,
            Take::Empty,
            "{name}"
        );
    }
}

#[tokio::test]
async fn arrive_and_commit_are_safe_to_run_twice() {
    for (name, backend) in backends().await {
        let first = backend.arrive("m1", Kind::Question, WAIT).await;
        let replayed = backend.arrive("m1", Kind::Question, WAIT).await;
        let committed = backend.commit("m1", &["答"]).await;
        let again = backend.commit("m1", &["答"]).await;

        assert_eq!(first, (1, Role::Generate), "{name}");
        if name == "redis" {
            assert_eq!(
                replayed, first,
                "{name}: the same request replayed is told the same"
            );
        }
        assert_eq!(
            again, committed,
            "{name}: a replayed commit changes nothing"
        );
        assert_eq!(
            backend.remembered().await,
            ["m1"],
            "{name}: remembered once"
        );
    }
}

#[tokio::test]
async fn arrive_reads_the_memory_only_for_the_generating_request() {
    let redis = RedisServer::start().await;
    let Backend { outbox, store, .. } = on_redis(&redis).await;
    store
        .append_turn(HISTORY, &pending("m0", "早", "早上好").turn, 10, WAIT)
        .await
        .unwrap();

    let first = outbox
        .arrive(
            USER,
            "m1",
            "r1",
            "q",
            Kind::Question,
            Some((HISTORY, 10)),
            WAIT,
        )
        .await
        .unwrap();
    let retry = outbox
        .arrive(
            USER,
            "m1",
            "r2",
            "q",
            Kind::Question,
            Some((HISTORY, 10)),
            WAIT,
        )
        .await
        .unwrap();

    assert_eq!(
        first.history,
        Some(vec![pending("m0", "早", "早上好").turn])
    );
    assert_eq!(
        (retry.attempt, retry.role, retry.history),
        (2, Role::Retry, None)
    );
}

/// An answer slower than its user's box lives does not leave a box without expiry.
#[tokio::test]
async fn a_commit_after_the_box_expired_leaves_nothing_without_expiry() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    let outbox = &backend.outbox;
    outbox
        .arrive(USER, "m1", "r1", "q", Kind::Question, None, WAIT)
        .await
        .unwrap();
    let mut connection = redis.connection().await;
    let _: () = redis::cmd("DEL")
        .arg(BOX)
        .query_async(&mut connection)
        .await
        .unwrap();

    let committed = backend.commit("m1", &["答"]).await;

    assert_eq!(
        committed,
        Committed::default(),
        "an entry gone is not answered"
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg("bg:wechat:msg:shop:m1")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        ttl > 0,
        "the message's record, kept for a replay, expires: TTL {ttl}"
    );
}

/// A multi-part answer taken by a later delivery leaves its other parts in the outbox; the
/// outbox must keep its expiry (an LPOP that emptied it, then an LPUSH, made it a new key
/// without one: leftover parts stayed in Redis forever).
#[tokio::test]
async fn parts_left_after_a_delivery_takes_a_stored_answer_still_expire() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    backend.ask("m1").await;
    assert_eq!(backend.take("m1", TakeMode::GiveUp).await, Take::Pending);
    backend.commit("m1", &["一", "二", "三"]).await;

    let taken = backend.take("m1", TakeMode::Look).await;

    assert_eq!(taken, text("一"));
    let mut connection = redis.connection().await;
    let (stored, ttl): (String, i64) = redis::pipe()
        .cmd("GET")
        .arg(BOX)
        .cmd("TTL")
        .arg(BOX)
        .query_async(&mut connection)
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        stored["e"],
        serde_json::json!([{"p": "二"}, {"p": "三"}]),
        "the second and third parts wait"
    );
    assert!(ttl > 0, "the box with parts left expires: TTL {ttl}");
}
