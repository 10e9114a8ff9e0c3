//! A message's deliveries stay countable wherever its answer went: a WeChat retry that comes
//! after the answer left the outbox (taken by the user's next message, or dropped by a
//! restart) is still a retry, not a new question. And the memory the commits write is read
//! back as the last turns kept, however seldom it is trimmed.

use botgate::channels::passive::outbox::{Kind, Role, Take, TakeMode};
use botgate_testkit::RedisServer;

use super::outbox::{backends, on_redis, text, USER, WAIT};

async fn retry_of(outbox: &botgate::channels::passive::Outbox, message: &str) -> (u64, Role) {
    let arrival = outbox
        .arrive(
            USER,
            message,
            "a-later-request",
            "q",
            Kind::Question,
            None,
            WAIT,
        )
        .await
        .unwrap();
    (arrival.attempt, arrival.role)
}

#[tokio::test]
async fn a_retry_after_the_next_message_took_the_answer_is_still_a_retry() {
    for (name, backend) in backends().await {
        assert_eq!(backend.ask("m1").await, Role::Generate, "{name}");
        assert_eq!(
            backend.take("m1", TakeMode::Last).await,
            Take::Placeholder,
            "{name}"
        );
        backend.commit("m1", &["答"]).await;
        assert_eq!(backend.ask("m2").await, Role::Pull, "{name}");
        assert_eq!(
            backend.take("m2", TakeMode::Look).await,
            text("答"),
            "{name}"
        );

        let retry = retry_of(&backend.outbox, "m1").await;

        assert_eq!(retry, (2, Role::Retry), "{name}");
        assert_eq!(
            backend.take("m1", TakeMode::Look).await,
            Take::Empty,
            "{name}: nothing is owed, and the answer is not given twice"
        );
    }
}

#[tokio::test]
async fn a_retry_of_a_question_a_restart_dropped_is_still_a_retry() {
    for (name, backend) in backends().await {
        assert_eq!(backend.ask("m1").await, Role::Generate, "{name}");
        assert_eq!(
            backend.arrive("m2", Kind::Restart, WAIT).await,
            (1, Role::Generate),
            "{name}"
        );

        let retry = retry_of(&backend.outbox, "m1").await;

        assert_eq!(retry, (2, Role::Retry), "{name}");
    }
}

/// The commit trims the memory only once it holds half as many turns again as it keeps (a
/// command saved on the other commits); readers still get exactly the last turns kept.
#[tokio::test]
async fn memory_written_by_commits_reads_as_the_last_turns_kept() {
    let redis = RedisServer::start().await;
    let backend = on_redis(&redis).await;
    let mut asked = Vec::new();
    for n in 0..17 {
        let message = format!("m{n:02}");
        assert_eq!(backend.ask(&message).await, Role::Generate);
        backend.commit(&message, &["答"]).await;
        asked.push(message);
    }

    let remembered = backend.remembered().await;

    assert_eq!(remembered, asked[7..], "the last 10 of 17");
    let mut connection = redis.connection().await;
    let stored: usize = redis::cmd("LLEN")
        .arg("bg:shop:wechat:o-1:history")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((10..=15).contains(&stored), "trimmed back by now: {stored}");
}
