//! What operators rely on: dead letters they can list and replay, rate limits and LLM
//! concurrency caps that hold across replicas, and the queue on /metrics.

use std::time::{Duration, Instant};

use botgate_testkit::{FakeBailian, FakePlatform, RedisServer};
use serde_json::json;

use crate::harness::{config, deliveries, post, Replica};

fn jobs(config_path: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_botgate"))
        .arg("--config")
        .arg(config_path)
        .arg("jobs")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_is_dead_lettered_listed_and_replayed() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    platform.push_responses_for(
        "/deliver",
        [(400, json!({"error": "unknown conversation"}))],
    );
    let text = config("replica-a", &fake, &redis, &platform, "");
    let path = std::env::temp_dir().join(format!("botgate-jobs-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let a = Replica::start(text).await;
    let client = reqwest::Client::new();

    assert_eq!(post(&client, &a, "c-dead", "m-dead", "你好").await, 202);
    assert!(platform.wait_for(1, Duration::from_secs(10)).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (ok, stdout, stderr) = jobs(&path, &["list"]);
        assert!(ok, "{stderr}");
        if !stdout.contains("no dead letters") || Instant::now() > deadline {
            break stdout;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = listed.split_whitespace().next().unwrap().to_owned();
    let (_, shown, _) = jobs(&path, &["show", &id]);
    let (retried, retry_out, _) = jobs(&path, &["retry", &id]);

    assert!(listed.contains("refused the delivery (400)"), "{listed}");
    assert!(shown.contains("\"message_id\": \"m-dead\""), "{shown}");
    assert!(retried, "{retry_out}");
    assert!(
        platform.wait_for(2, Duration::from_secs(10)).await,
        "the replayed job was delivered"
    );
    assert_eq!(deliveries(&platform)[1].2, "echo: 你好 (history: 0)");
    assert_eq!(
        fake.calls(),
        1,
        "the stored reply was reused: no second LLM call"
    );
    assert!(jobs(&path, &["list"]).1.contains("no dead letters"));
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_llm_slots_hold_across_replicas() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    let extra = "[bots.shop.rate_limit]\nmessages = 2\nper_secs = 60\nreply = \"慢一点\"";
    let limits = format!("{extra}\n");
    let a = Replica::start(config("replica-a", &fake, &redis, &platform, &limits)).await;
    let b = Replica::start(config("replica-b", &fake, &redis, &platform, &limits)).await;
    let client = reqwest::Client::new();

    for (n, replica) in [&a, &b, &a].into_iter().enumerate() {
        assert_eq!(
            post(&client, replica, "c-rate", &format!("m-rate-{n}"), "问").await,
            202
        );
    }
    assert!(platform.wait_for(3, Duration::from_secs(10)).await);

    let texts: Vec<String> = deliveries(&platform).into_iter().map(|d| d.2).collect();
    assert_eq!(
        texts[2], "慢一点",
        "the third message in the window got the notice"
    );
    assert_eq!(fake.calls(), 2, "and cost no LLM call");
    // The job is acknowledged just after its delivery: wait for the queue to drain.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = reqwest::get(format!("{}/metrics", a.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("botgate_queue_depth 0") || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metrics.contains("botgate_queue_depth 0"), "{metrics}");
    assert!(metrics.contains(r#"botgate_inbound_total{platform="webhook",outcome="accepted"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_llm_calls_are_capped_per_bot() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    fake.set_delay(Duration::from_millis(400));
    let capped = "max_concurrent_llm_calls = 1\n";
    // The cap is a bot field: put it before the [bots.shop.webhook] table starts.
    let a = Replica::start(config("replica-a", &fake, &redis, &platform, "").replace(
        "[bots.shop.webhook]",
        &format!("{capped}\n[bots.shop.webhook]"),
    ))
    .await;
    let client = reqwest::Client::new();

    let started = Instant::now();
    for n in 0..3 {
        assert_eq!(
            post(
                &client,
                &a,
                &format!("c-cap-{n}"),
                &format!("m-cap-{n}"),
                "问"
            )
            .await,
            202
        );
    }
    assert!(platform.wait_for(3, Duration::from_secs(15)).await);

    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "three 400 ms calls one at a time: {:?}",
        started.elapsed()
    );
    assert!(
        deliveries(&platform)
            .iter()
            .all(|d| d.2.starts_with("echo:")),
        "all answered, none fell back"
    );
}
