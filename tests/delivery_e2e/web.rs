//! The website chat against real replicas: answers streamed as server-sent events in parts,
//! a retried message answered once (on the same replica or another), origins, rate limits,
//! signed visitor ids, bad input, and ratings listed by `botgate feedback list`.

use std::time::{Duration, Instant};

use botgate_testkit::{Answer, FakeBailian, FakePlatform, RedisServer};
use botgate_web::sign_identity;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::harness::{config, Replica};

const VISITOR: &str = "v-AAAAAAAAAAAAAAAAAAAAAA";
const OTHER_DEVICE: &str = "v-BBBBBBBBBBBBBBBBBBBBBB";
const ACCESS_KEY: &str = "site-signing-key-0123456789";

struct Web {
    fake: FakeBailian,
    _redis: RedisServer,
    _platform: FakePlatform,
    replicas: Vec<Replica>,
    config: String,
}

async fn web(replicas: usize, web_table: &str) -> Web {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    let mut started = Vec::new();
    let mut last = String::new();
    for name in 0..replicas {
        last = config(&format!("r{name}"), &fake, &redis, &platform, web_table);
        started.push(Replica::start(last.clone()).await);
    }
    Web {
        fake,
        _redis: redis,
        _platform: platform,
        replicas: started,
        config: last,
    }
}

const OPEN: &str = "[bots.shop.web]\naccess_key = \"site-signing-key-0123456789\"\n";

/// One message's response: its status, headers and, for a stream, its events in order.
struct Streamed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    events: Vec<(String, Value)>,
    /// How many network reads carried at least one `delta`.
    delta_reads: usize,
}

impl Streamed {
    fn text(&self) -> String {
        self.events
            .iter()
            .filter(|(name, _)| name == "delta")
            .map(|(_, data)| data["text"].as_str().unwrap().to_owned())
            .collect()
    }

    fn done(&self) -> &Value {
        let (name, data) = self.events.last().expect("no events");
        assert_eq!(name, "done", "{:?}", self.events);
        data
    }
}

fn message(visitor: &str, id: &str, text: &str) -> Value {
    json!({"visitor": visitor, "id": id, "text": text})
}

async fn send(url: &str, body: &Value, origin: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/web/shop/messages"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.unwrap()
}

/// Sends and reads the whole stream (or the error body).
async fn ask(url: &str, body: &Value) -> Streamed {
    read(send(url, body, None).await).await
}

async fn read(response: reqwest::Response) -> Streamed {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let mut delta_reads = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        let before = events.len();
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(event) = parse(&frame) {
                events.push(event);
            }
        }
        if events[before..].iter().any(|(name, _)| name == "delta") {
            delta_reads += 1;
        }
    }
    if status != 200 {
        events.push((
            "body".to_owned(),
            serde_json::from_str(&buffer).unwrap_or(Value::Null),
        ));
    }
    Streamed {
        status,
        headers,
        events,
        delta_reads,
    }
}

fn parse(frame: &str) -> Option<(String, Value)> {
    let mut name = None;
    let mut data = None;
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("event: ") {
            name = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(value).unwrap());
        }
    }
    Some((name?, data?))
}

/// Reads a stream until its first `delta`, then drops the connection (a visitor's network
/// failing mid-answer).
async fn drop_after_first_delta(url: &str, body: &Value) {
    let response = send(url, body, None).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        if std::str::from_utf8(&chunk.unwrap())
            .unwrap()
            .contains("event: delta")
        {
            return;
        }
    }
    panic!("the stream ended before any delta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_streams_in_parts_and_is_remembered() {
    let web = web(1, OPEN).await;
    web.fake.set_chunk_interval(Duration::from_millis(30));
    let url = &web.replicas[0].url;

    let first = ask(url, &message(VISITOR, "m-first0001", "你好")).await;
    let follow_up = ask(url, &message(VISITOR, "m-second001", "再说一遍")).await;

    assert_eq!(first.status, 200);
    assert_eq!(first.headers["content-type"], "text/event-stream");
    assert_eq!(first.headers["cache-control"], "no-cache");
    assert!(
        first.delta_reads >= 3,
        "the answer came in {} reads",
        first.delta_reads
    );
    assert_eq!(first.text(), "echo: 你好 (history: 0)");
    assert_eq!(
        first.done(),
        &json!({"id": "m-first0001", "text": "echo: 你好 (history: 0)", "kind": "answer", "feedback": true})
    );
    assert_eq!(follow_up.done()["text"], "echo: 再说一遍 (history: 2)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_gets_the_first_answer_and_no_second_call() {
    let web = web(1, OPEN).await;
    web.fake.set_answer(Answer::Numbered("answer".into()));
    web.fake.set_chunk_interval(Duration::from_millis(40));
    let url = &web.replicas[0].url;
    let body = message(VISITOR, "m-retried01", "你好");

    drop_after_first_delta(url, &body).await;
    let while_made = ask(url, &body).await;
    let after = ask(url, &body).await;

    for retry in [&while_made, &after] {
        assert_eq!(retry.text(), "answer #1");
        assert_eq!(retry.done()["text"], "answer #1");
    }
    assert_eq!(web.fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_replica_waits_for_the_answer_made_on_the_first() {
    let web = web(2, OPEN).await;
    web.fake.set_answer(Answer::Numbered("answer".into()));
    web.fake.set_chunk_interval(Duration::from_millis(40));
    let body = message(VISITOR, "m-replica01", "你好");

    drop_after_first_delta(&web.replicas[0].url, &body).await;
    let elsewhere = ask(&web.replicas[1].url, &body).await;

    assert_eq!(elsewhere.done()["text"], "answer #1");
    assert_eq!(elsewhere.text(), "answer #1");
    assert_eq!(web.fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_call_and_frame_the_chat() {
    let web = web(
        1,
        "[bots.shop.web]\nallowed_origins = [\"https://shop.example\"]\n",
    )
    .await;
    let url = &web.replicas[0].url;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{url}/web/shop/messages"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };

    let allowed = preflight("https://shop.example").await.unwrap();
    let refused = preflight("https://evil.example").await.unwrap();
    let evil_post = read(
        send(
            url,
            &message(VISITOR, "m-evil0001", "hi"),
            Some("https://evil.example"),
        )
        .await,
    )
    .await;
    let good_post = read(
        send(
            url,
            &message(VISITOR, "m-good0001", "hi"),
            Some("https://shop.example"),
        )
        .await,
    )
    .await;
    let page = client.get(format!("{url}/web/shop")).send().await.unwrap();

    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(allowed.headers()["access-control-allow-methods"], "POST");
    assert_eq!(refused.status(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert_eq!(evil_post.status, 403);
    assert_eq!(good_post.status, 200);
    assert_eq!(
        good_post.headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(good_post.done()["text"], "echo: hi (history: 0)");
    assert_eq!(web.fake.calls(), 1, "the refused origin reached the LLM");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("frame-ancestors 'self' https://shop.example"),
        "{policy}"
    );
    assert!(policy.contains("script-src 'self'"), "{policy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_over_the_rate_is_told_so_without_an_llm_call_on_any_replica() {
    let web = web(2, "[bots.shop.web]\nmessages_per_minute = 2\n").await;
    let (a, b) = (&web.replicas[0].url, &web.replicas[1].url);

    let first = ask(a, &message(VISITOR, "m-rate00001", "一")).await;
    let second = ask(b, &message(VISITOR, "m-rate00002", "二")).await;
    let third = ask(a, &message(VISITOR, "m-rate00003", "三")).await;
    let first_again = ask(b, &message(VISITOR, "m-rate00001", "一")).await;
    let someone_else = ask(b, &message(OTHER_DEVICE, "m-rate00004", "四")).await;

    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(third.status, 429);
    assert_eq!(third.events[0].1["error"], "您发送得太快了，请稍后再试。");
    assert_eq!(first_again.done()["text"], "echo: 一 (history: 0)");
    assert_eq!(someone_else.status, 200);
    assert_eq!(web.fake.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_user_keeps_their_memory_across_devices_and_a_forged_one_is_refused() {
    let web = web(1, OPEN).await;
    let url = &web.replicas[0].url;
    let expires = botgate::clock::unix_secs() + 600;
    let signed =
        |visitor: &str, id: &str, text: &str, user: &str, signature: String, expires: u64| {
            let mut body = message(visitor, id, text);
            body["identity"] = json!({"user": user, "expires": expires, "signature": signature});
            body
        };
    let good = sign_identity(ACCESS_KEY.as_bytes(), "shop", "alice", expires);

    let laptop = ask(
        url,
        &signed(
            VISITOR,
            "m-signed001",
            "我是谁",
            "alice",
            good.clone(),
            expires,
        ),
    )
    .await;
    let phone = ask(
        url,
        &signed(
            OTHER_DEVICE,
            "m-signed002",
            "还记得吗",
            "alice",
            good.clone(),
            expires,
        ),
    )
    .await;
    let forged = ask(
        url,
        &signed(VISITOR, "m-signed003", "hi", "bob", good.clone(), expires),
    )
    .await;
    let stale_signature = sign_identity(ACCESS_KEY.as_bytes(), "shop", "alice", 1_000);
    let expired = ask(
        url,
        &signed(
            VISITOR,
            "m-signed004",
            "hi",
            "alice",
            stale_signature,
            1_000,
        ),
    )
    .await;
    let anonymous_phone = ask(url, &message(OTHER_DEVICE, "m-signed005", "匿名")).await;

    assert_eq!(laptop.done()["text"], "echo: 我是谁 (history: 0)");
    assert_eq!(phone.done()["text"], "echo: 还记得吗 (history: 2)");
    assert_eq!(anonymous_phone.done()["text"], "echo: 匿名 (history: 0)");
    assert_eq!((forged.status, expired.status), (401, 401));
    assert_eq!(web.fake.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_no_llm_call() {
    let web = web(1, "[bots.shop.web]\nmax_message_chars = 5\n").await;
    let url = &web.replicas[0].url;
    let raw = |body: &'static str| async move {
        let response = reqwest::Client::new()
            .post(format!("{url}/web/shop/messages"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };

    let broken = raw("{\"visitor\":").await;
    let no_visitor = raw(r#"{"visitor":"alice","id":"m-12345678","text":"hi"}"#).await;
    let too_long =
        raw(r#"{"visitor":"v-AAAAAAAAAAAAAAAAAAAAAA","id":"m-12345678","text":"一二三四五六"}"#)
            .await;
    let identity_unasked = raw(r#"{"visitor":"v-AAAAAAAAAAAAAAAAAAAAAA","id":"m-12345678","text":"hi","identity":{"user":"a","expires":9999999999,"signature":"00"}}"#).await;
    let unknown_bot = reqwest::Client::new()
        .post(format!("{url}/web/nobody/messages"))
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(broken.0, 400);
    assert!(
        broken.1["error"].as_str().unwrap().contains("JSON"),
        "{}",
        broken.1
    );
    assert_eq!(no_visitor.0, 400);
    assert!(no_visitor.1["error"].as_str().unwrap().contains("visitor"));
    assert_eq!(too_long.0, 413);
    assert!(
        too_long.1["error"].as_str().unwrap().contains('5'),
        "{}",
        too_long.1
    );
    assert_eq!(identity_unasked.0, 400);
    assert_eq!(unknown_bot.status(), 404);
    assert_eq!(web.fake.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_are_stored_once_counted_and_listed_newest_first_with_question_and_answer() {
    let web = web(1, OPEN).await;
    let url = &web.replicas[0].url;
    let client = reqwest::Client::new();
    let rate = |id: &'static str, rating: &'static str| {
        client
            .post(format!("{url}/web/shop/feedback"))
            .header("Content-Type", "application/json")
            .body(json!({"visitor": VISITOR, "id": id, "rating": rating}).to_string())
            .send()
    };
    ask(url, &message(VISITOR, "m-rated0001", "退货怎么办")).await;
    ask(url, &message(VISITOR, "m-rated0002", "几点开门")).await;
    let farewell = ask(url, &message(VISITOR, "m-rated0003", "再见")).await;

    let down = rate("m-rated0001", "down").await.unwrap().status();
    let up = rate("m-rated0002", "up").await.unwrap().status();
    let again = rate("m-rated0002", "down").await.unwrap().status();
    let unknown = rate("m-unknown01", "up").await.unwrap().status();
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path =
        std::env::temp_dir().join(format!("botgate-web-feedback-{}.toml", std::process::id()));
    std::fs::write(&path, &web.config).unwrap();
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_botgate"))
        .arg("--config")
        .arg(&path)
        .args(["feedback", "list", "--bot", "shop", "--json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);

    assert_eq!(farewell.done()["kind"], "farewell");
    assert_eq!(farewell.done()["feedback"], false);
    assert_eq!(
        (down.as_u16(), up.as_u16(), again.as_u16()),
        (204, 204, 204)
    );
    assert_eq!(unknown.as_u16(), 404);
    assert!(
        metrics.contains(r#"botgate_feedback_total{bot="shop",rating="up"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"botgate_feedback_total{bot="shop",rating="down"} 1"#));
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let entries: Vec<Value> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["message_id"], "m-rated0002");
    assert_eq!(entries[0]["rating"], "up");
    assert_eq!(entries[0]["question"], "几点开门");
    assert_eq!(entries[0]["answer"], "echo: 几点开门 (history: 2)");
    assert_eq!(entries[0]["conversation"], VISITOR);
    assert_eq!(entries[1]["message_id"], "m-rated0001");
    assert_eq!(entries[1]["rating"], "down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_widget_are_served_with_the_bots_settings() {
    let web = web(
        1,
        "[bots.shop.web]\ntitle = \"Shop <assistant>\"\nwelcome = \"欢迎光临\"\n",
    )
    .await;
    let url = &web.replicas[0].url;
    let started = Instant::now();

    let page = reqwest::get(format!("{url}/web/shop")).await.unwrap();
    let widget = reqwest::get(format!("{url}/web/shop/widget.js"))
        .await
        .unwrap();
    let script = reqwest::get(format!("{url}/web/shop/chat.js"))
        .await
        .unwrap();

    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Shop &lt;assistant&gt;"), "{html}");
    assert!(html.contains("data-welcome=\"欢迎光临\""));
    assert!(html.contains("data-bot=\"shop\""));
    assert_eq!(
        widget.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(widget.text().await.unwrap().contains("botgate-launcher"));
    assert_eq!(script.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}
