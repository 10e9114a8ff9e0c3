//! The running server: liveness, readiness that follows a Redis outage and recovery, body limits.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::{echo, Extra, BOT};
use botgate::config::Settings;
use botgate::core::{CoreError, ReplyKind};
use botgate::startup::Application;
use botgate_testkit::{FakeBailian, RedisServer};

/// How long an outage or a recovery may take to show; Redis calls time out after 2 s.
const DETECTION: Duration = Duration::from_secs(10);

/// One small worker and a body limit the oversize test can exceed cheaply.
const SERVER: &str = "[server]\nworkers = 1\nmax_body_bytes = 4096\n";

/// The real application on a free port, running in the background.
struct TestApp {
    address: String,
    client: reqwest::Client,
}

impl TestApp {
    async fn spawn(settings: Settings) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let app = Application::build_with_listener(settings, listener)
            .await
            .expect("build the application");
        let address = format!("http://127.0.0.1:{}", app.port());
        let _server = botgate::spawn_traced(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    async fn ready_status(&self) -> u16 {
        self.get("/readyz").await.0
    }
}

fn settings(fake: &FakeBailian, redis: Option<&RedisServer>) -> Settings {
    let url = redis.map(RedisServer::url);
    crate::common::parse(&crate::common::config_text(
        fake,
        url.as_deref(),
        Extra {
            tables: SERVER,
            ..Extra::default()
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_with_the_embedded_store() {
    let fake = FakeBailian::start().await;
    let app = TestApp::spawn(settings(&fake, None)).await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health, (200, serde_json::json!({"status": "ok"})));
    assert_eq!(ready.0, 200);
    assert_eq!(ready.1["store"], "embedded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_shows_in_readyz_and_botgate_reconnects_by_itself() {
    let fake = FakeBailian::start().await;
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn(settings(&fake, Some(&redis))).await;
    let conversations = crate::common::conversations(&settings(&fake, Some(&redis))).await;
    let message = || crate::common::text("alice", "你好");
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, &body["store"]), (200, &serde_json::json!("redis")));
    crate::common::say(&conversations, "alice", "第一句").await;

    // Outage.
    redis.stop().await;

    let unready =
        crate::common::eventually(DETECTION, || async { app.ready_status().await == 503 }).await;
    assert!(unready, "/readyz did not report the outage");
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "liveness does not hang on Redis"
    );
    let started = Instant::now();
    let during = conversations.handle(BOT, &message(), None).await;
    assert!(
        matches!(during, Err(CoreError::Store(_))),
        "a store error, not an answer without memory: {during:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the failing call took {:?}",
        started.elapsed()
    );

    // Recovery, on the same port with every key gone.
    redis.restart().await;

    let ready =
        crate::common::eventually(DETECTION, || async { app.ready_status().await == 200 }).await;
    assert!(ready, "/readyz did not recover after Redis came back");
    let recovered = crate::common::eventually(DETECTION, || async {
        conversations.handle(BOT, &message(), None).await.is_ok()
    })
    .await;
    assert!(recovered, "the core did not reconnect to Redis");
    let reply = crate::common::say(&conversations, "bob", "你好").await;
    assert_eq!(reply.kind, ReplyKind::Answer);
    assert_eq!(reply.text, echo("你好", 0));
    let remembered = crate::common::say(&conversations, "bob", "还在吗").await;
    assert_eq!(remembered.text, echo("还在吗", 2), "memory works again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_is_refused_before_parsing() {
    let fake = FakeBailian::start().await;
    let app = TestApp::spawn(settings(&fake, None)).await;
    let post = |body: Vec<u8>| {
        app.client
            .post(format!("{}/wechat/shop", app.address))
            .timeout(Duration::from_secs(5))
            .body(body)
            .send()
    };

    let oversize = post(vec![b'x'; 64 * 1024])
        .await
        .expect("the server answers");
    let small = post(b"<xml></xml>".to_vec())
        .await
        .expect("the server answers");

    assert_eq!(oversize.status().as_u16(), 413);
    // No `[bots.shop.wechat]`: within the limit, the request gets as far as the bot lookup.
    assert_eq!(small.status().as_u16(), 404);
}
