//! Passive mode: answers inside WeChat's request, retries joining one answer, placeholder and
//! pull on the next message, long answers in parts.

use std::time::Duration;

use botgate_testkit::{Answer, FakeBailian, RedisCluster, RedisServer};
use botgate_wechat::CallbackMode;

use crate::harness::{msg_id, settings, settings_on, text, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_answers_in_time_with_one_llm_call() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    for (n, mode) in [
        CallbackMode::Plaintext,
        CallbackMode::Compatible,
        CallbackMode::Safe,
    ]
    .into_iter()
    .enumerate()
    {
        let user = format!("o-user-{n}");

        let delivery = gateway
            .wechat(mode)
            .send(&user, &text(msg_id(n as u64), "你好"))
            .await
            .unwrap();

        assert_eq!(delivery.attempts, 1, "{mode:?}");
        assert_eq!(
            delivery.reply.as_deref(),
            Some("echo: 你好 (history: 0)"),
            "{mode:?}"
        );
    }
    assert_eq!(fake.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answer_gets_placeholder_then_arrives_with_the_next_message() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    fake.set_delay(Duration::from_millis(3500));
    let gateway = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let first = wechat
        .send("o-slow", &text(msg_id(1), "讲个长故事"))
        .await
        .unwrap();
    let second = wechat
        .send("o-slow", &text(msg_id(2), "好了吗"))
        .await
        .unwrap();

    assert_eq!(first.attempts, 3, "all three deliveries were used");
    assert_eq!(
        first.reply.as_deref(),
        Some("正在思考中，回复任意文字获取回答")
    );
    assert_eq!(
        second.reply.as_deref(),
        Some("echo: 讲个长故事 (history: 0)")
    );
    assert_eq!(
        fake.calls(),
        1,
        "retries and the pull never cause a second LLM call"
    );
}

/// The reply window's scripts on a real three-master Redis Cluster: an answer in time with the
/// memory of the one before, then a slow one that gets the placeholder and arrives with the
/// next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_answers_come_in_time_or_with_the_next_message() {
    let cluster = RedisCluster::start().await;
    answers_come_in_time_or_with_the_next_message(&cluster, "").await;
}

/// The same with the users' conversations spread over the cluster's three masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_sharded_redis_cluster_answers_come_in_time_and_users_spread_over_the_nodes() {
    let cluster = RedisCluster::start().await;
    let (gateway, _fake) =
        answers_come_in_time_or_with_the_next_message(&cluster, "shards = 6").await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    for user in 0..9 {
        let delivery = wechat
            .send(&format!("o-user-{user}"), &text(msg_id(100 + user), "你好"))
            .await
            .unwrap();
        assert_eq!(delivery.reply.as_deref(), Some("echo: 你好 (history: 0)"));
    }

    let memories = cluster.keys_per_node("{botgate:*:history").await;
    assert_eq!(memories.iter().sum::<usize>(), 10, "{memories:?}");
    assert!(memories.iter().all(|&count| count > 0), "{memories:?}");
    // Each message's record sits with its user's memory: those bound to an answer. The slow
    // one got the placeholder; its deliveries are kept in its user's box.
    let records = cluster.keys_per_node("{botgate:*:wechat:msg:*").await;
    assert_eq!(records.iter().sum::<usize>(), 9 + 3, "{records:?}");
    let boxes = cluster.keys_per_node("{botgate:*:wechat:box:*").await;
    assert_eq!(boxes.iter().sum::<usize>(), 1, "{boxes:?}");
    // A new deployment found no outbox of the older layout on any master: no upgrade window.
    let marker = "{botgate}:passive:box_since";
    let since: u64 = redis::cmd("GET")
        .arg(marker)
        .query_async(&mut cluster.connection_for(marker).await)
        .await
        .unwrap();
    assert_eq!(since, 0);
    assert!(
        records
            .iter()
            .zip(&memories)
            .all(|(records, memories)| records >= memories),
        "{records:?} {memories:?}"
    );
}

async fn answers_come_in_time_or_with_the_next_message(
    cluster: &RedisCluster,
    store_extra: &str,
) -> (Gateway, FakeBailian) {
    let fake = FakeBailian::start().await;
    let store = format!("{}\n{store_extra}", cluster.store_toml());
    let gateway = Gateway::start(settings_on(&fake, &store, "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let first = wechat
        .send("o-cluster", &text(msg_id(90), "第一句"))
        .await
        .unwrap();
    let second = wechat
        .send("o-cluster", &text(msg_id(91), "第二句"))
        .await
        .unwrap();
    fake.set_delay(Duration::from_millis(3500));
    let slow = wechat
        .send("o-cluster", &text(msg_id(92), "讲个长故事"))
        .await
        .unwrap();
    fake.set_delay(Duration::ZERO);
    let pull = wechat
        .send("o-cluster", &text(msg_id(93), "好了吗"))
        .await
        .unwrap();

    assert_eq!(first.reply.as_deref(), Some("echo: 第一句 (history: 0)"));
    assert_eq!(second.reply.as_deref(), Some("echo: 第二句 (history: 2)"));
    assert_eq!(
        slow.reply.as_deref(),
        Some("正在思考中，回复任意文字获取回答")
    );
    assert_eq!(pull.reply.as_deref(), Some("echo: 讲个长故事 (history: 4)"));
    assert_eq!(fake.calls(), 3, "one LLM call per question");
    (gateway, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_ready_during_a_retry_is_delivered_by_that_retry() {
    let fake = FakeBailian::start().await;
    fake.set_delay(Duration::from_millis(1200));
    let gateway = Gateway::start(settings(&fake, None, "")).await;

    let delivery = gateway
        .wechat(CallbackMode::Safe)
        .send("o-retry", &text(msg_id(3), "问题"))
        .await
        .unwrap();

    assert_eq!(delivery.attempts, 2);
    assert_eq!(delivery.reply.as_deref(), Some("echo: 问题 (history: 0)"));
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_answer_goes_out_in_parts_one_per_message() {
    let fake = FakeBailian::start().await;
    let paragraph = "这是一个很长的回答。".repeat(60);
    let answer = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
    fake.set_answer(Answer::Fixed(answer.clone()));
    let redis = RedisServer::start().await;
    let gateway = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let mut parts = Vec::new();
    let first = wechat
        .send("o-long", &text(msg_id(10), "详细说说"))
        .await
        .unwrap();
    parts.push(first.reply.unwrap());
    for n in 11..20 {
        let last = parts.last().unwrap();
        if !last.contains("回复任意文字继续") {
            break;
        }
        let next = wechat
            .send("o-long", &text(msg_id(n), "继续"))
            .await
            .unwrap();
        parts.push(next.reply.unwrap());
    }

    assert!(parts.len() >= 2, "split into parts: {}", parts.len());
    assert!(
        parts.iter().all(|part| part.len() <= 2048),
        "each part fits one passive reply"
    );
    let joined: String = parts
        .iter()
        .map(|part| part.replace("\n\n（未完待续，回复任意文字继续）", ""))
        .collect::<Vec<_>>()
        .join("");
    let strip = |text: &str| {
        text.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    };
    assert_eq!(
        strip(&joined),
        strip(&answer),
        "nothing lost, nothing repeated"
    );
    assert_eq!(fake.calls(), 1, "pulling the next part costs no LLM call");

    let after = wechat
        .send("o-long", &text(msg_id(30), "新问题"))
        .await
        .unwrap();
    assert_eq!(
        after.reply.as_deref(),
        Some(parts[0].as_str()),
        "a fresh answer starts at its first part"
    );
    assert_eq!(
        fake.calls(),
        2,
        "once the outbox is empty a message is a question again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_memory_carries_across_wechat_messages() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    let wechat = gateway.wechat(CallbackMode::Plaintext);

    wechat
        .send("o-mem", &text(msg_id(40), "第一句"))
        .await
        .unwrap();
    let second = wechat
        .send("o-mem", &text(msg_id(41), "第二句"))
        .await
        .unwrap();

    assert_eq!(second.reply.as_deref(), Some("echo: 第二句 (history: 2)"));
}

/// Redis's `MONITOR` feed, read until a marker command shows that everything before it is in.
struct Monitor {
    reader: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl Monitor {
    async fn start(redis: &RedisServer) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", redis.port()))
            .await
            .unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut reader = tokio::io::BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).await.unwrap();
        assert_eq!(ok.trim_end(), "+OK");
        Monitor { reader }
    }

    /// Every command Redis ran up to the marker `ECHO`, those scripts ran included: each
    /// script's own calls follow the line of the `EVALSHA` that ran it.
    async fn lines_until_marker(&mut self, redis: &RedisServer) -> Vec<String> {
        use tokio::io::AsyncBufReadExt;
        let marker = "botgate-test-marker";
        let _: String = redis::cmd("ECHO")
            .arg(marker)
            .query_async(&mut redis.connection().await)
            .await
            .unwrap();
        let mut commands = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            assert!(!line.is_empty(), "MONITOR feed closed");
            if line.contains(marker) {
                return commands;
            }
            commands.push(line.trim_end().to_owned());
        }
    }
}

/// The commands in `lines` that served a request about `needle`: the client's own commands
/// that name it, and every call of the scripts among them.
fn commands_about(lines: &[String], needle: &str) -> Vec<String> {
    let mut ours = false;
    let mut about = Vec::new();
    for line in lines {
        if !line.contains(" lua] ") {
            ours = line.contains(needle);
        }
        if ours {
            about.push(line.clone());
        }
    }
    about
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_time_costs_two_redis_round_trips_and_eight_commands() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let gateway = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);
    // The first message loads the scripts (`NOSCRIPT`, `SCRIPT LOAD`), once per Redis.
    wechat
        .send("o-warm", &text(msg_id(50), "你好"))
        .await
        .unwrap();
    wechat
        .send("o-trips", &text(msg_id(51), "第一句"))
        .await
        .unwrap();
    let mut monitor = Monitor::start(&redis).await;

    let delivery = wechat
        .send("o-trips", &text(msg_id(52), "第二句"))
        .await
        .unwrap();

    assert_eq!(delivery.reply.as_deref(), Some("echo: 第二句 (history: 2)"));
    let lines = monitor.lines_until_marker(&redis).await;
    let about_it: Vec<&String> = lines
        .iter()
        .filter(|line| !line.contains(" lua] "))
        .filter(|line| line.contains("o-trips") || line.contains(&msg_id(52).to_string()))
        .collect();
    let names: Vec<&str> = about_it
        .iter()
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    // Round trip 1: the claim script and, pipelined with it, the memory read. Round trip 2:
    // the commit script (answer, memory write, binding to this request).
    assert_eq!(
        names,
        ["EVALSHA", "LRANGE", "EVALSHA"],
        "claim + memory read, then commit: {about_it:#?}"
    );
    // Counted as `INFO commandstats` counts them: each script call and every call it makes.
    let every_call = commands_about(&lines, "o-trips");
    let all: Vec<&str> = every_call
        .iter()
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    assert_eq!(
        all,
        [
            // The claim script: the user's box and the message's record read in one, the box
            // written with the message's entry (its question, deliveries, lease, wait).
            "EVALSHA", "MGET", "SET", // The memory, read in the same round trip.
            "LRANGE",
            // The commit script: the box taken (it holds nothing else, so it is not written
            // back), the turn appended to memory (its expiry was set a moment ago, by the
            // message before), the message's record written with the answer bound to it.
            "EVALSHA", "GETDEL", "RPUSH", "SET",
        ],
        "{} commands for one message: {every_call:#?}",
        every_call.len()
    );
}

/// A commit sets the memory's idle expiry again only once a twentieth of it (90 s of 30
/// minutes) has passed since it was last set, as the last turn records; a command saved on
/// every other message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_expiry_is_set_again_once_a_twentieth_of_it_has_passed() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let gateway = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);
    let memory = "botgate:shop:wechat:o-ttl:history";
    let mut connection = redis.connection().await;
    wechat.send("o-ttl", &text(msg_id(60), "一")).await.unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg(memory)
        .arg(100)
        .query_async(&mut connection)
        .await
        .unwrap();

    wechat.send("o-ttl", &text(msg_id(61), "二")).await.unwrap();
    let soon_after = ttl_of(&mut connection, memory).await;
    // The last turn as if its expiry had been set 91 s ago.
    let last: String = redis::cmd("LINDEX")
        .arg(memory)
        .arg(-1)
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut turn: serde_json::Value = serde_json::from_str(&last).unwrap();
    turn["x"] = (turn["x"].as_u64().unwrap() - 91_000).into();
    let _: () = redis::cmd("LSET")
        .arg(memory)
        .arg(-1)
        .arg(turn.to_string())
        .query_async(&mut connection)
        .await
        .unwrap();
    wechat.send("o-ttl", &text(msg_id(62), "三")).await.unwrap();
    let once_due = ttl_of(&mut connection, memory).await;

    assert!(
        (1..=100).contains(&soon_after),
        "not set again: {soon_after}"
    );
    assert!(once_due > 1700, "set again: {once_due}");
}

async fn ttl_of(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}
