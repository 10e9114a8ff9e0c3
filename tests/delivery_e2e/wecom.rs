//! WeCom end to end: real replicas, real Redis, a fake WeCom API and the fake Bailian. App
//! messages are answered through `message/send`; 微信客服 callbacks make the gateway pull
//! `kf/sync_msg` pages from a cursor it keeps, answering each customer message once.

use std::time::Duration;

use botgate_testkit::conformance::{check, wxbiz_tampered, Fixture, Request};
use botgate_testkit::Received;
use botgate_wecom::kf::{KfEvent, KfMessage};
use botgate_wecom::simulator::{kf_customer_text, sync_msg_response};
use botgate_wecom::{SimulatedCallback, WecomApp};
use botgate_wxcrypt::EncodingAesKey;
use serde_json::{json, Value};

use crate::harness::{config, stack, Replica, Stack};

const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP_ID: &str = "ww-e2e-corp";
const AGENT_ID: u64 = 1000002;
const KF: &str = "wk-e2e-account";
const SEND: &str = "/cgi-bin/message/send";
const SYNC: &str = "/cgi-bin/kf/sync_msg";
const KF_SEND: &str = "/cgi-bin/kf/send_msg";

fn app() -> WecomApp {
    WecomApp::new(TOKEN, EncodingAesKey::parse(AES_KEY).unwrap(), CORP_ID)
}

fn wecom_config(name: &str, stack: &Stack) -> String {
    config(
        name,
        &stack.fake,
        &stack.redis,
        &stack.platform,
        &format!(
            r#"
[bots.shop.wecom]
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "app-secret"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
kf = true
kf_welcome = "欢迎光临"
api_base = "{api}"
"#,
            api = stack.platform.url()
        ),
    )
}

async fn wecom_stack() -> Stack {
    let stack = stack().await;
    stack.platform.respond_to(
        "/cgi-bin/gettoken",
        200,
        json!({"errcode": 0, "errmsg": "ok", "access_token": "T1", "expires_in": 7200}),
    );
    stack
}

/// Posts one callback as WeCom does; returns the status and body.
async fn callback(replica: &Replica, callback: &SimulatedCallback, nonce: u32) -> (u16, String) {
    let now = botgate::clock::unix_secs();
    let signed = app().sign_callback(callback, now, &nonce.to_string(), &[nonce as u8; 16]);
    let response = reqwest::Client::new()
        .post(format!("{}/wecom/shop?{}", replica.url, signed.query))
        .body(signed.body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn text(user: &str, msg_id: u64, content: &str) -> SimulatedCallback {
    SimulatedCallback::Text {
        user: user.into(),
        agent_id: AGENT_ID,
        msg_id,
        content: content.into(),
    }
}

fn kf_notice(token: &str) -> SimulatedCallback {
    SimulatedCallback::KfNotice {
        token: token.into(),
        open_kfid: Some(KF.into()),
    }
}

fn page(items: &[KfMessage], cursor: &str, more: bool) -> (u16, Value) {
    (
        200,
        serde_json::from_str(&sync_msg_response(items, cursor, more)).unwrap(),
    )
}

fn customer(msgid: &str, customer: &str, text: &str) -> KfMessage {
    kf_customer_text(msgid, KF, customer, botgate::clock::unix_secs(), text)
}

fn event(origin: u32, event: KfEvent) -> KfMessage {
    KfMessage {
        msgid: Some(format!("ev-{}", event.event_type)),
        origin: Some(origin),
        msgtype: Some("event".into()),
        send_time: Some(botgate::clock::unix_secs()),
        event: Some(event),
        ..KfMessage::default()
    }
}

/// `(touser, content)` of each customer-service answer, in order.
fn kf_answers(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|sent| {
            assert_eq!(sent.body["open_kfid"], KF, "sent from the account asked");
            (
                sent.body["touser"].as_str().unwrap().to_owned(),
                sent.body["text"]["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn wait_for_path(stack: &Stack, path: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while stack.platform.received_on(path).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} requests on {path}; got {:?}",
            stack.platform.received_on(path)
        );
        stack
            .platform
            .wait_for(
                stack.platform.received().len() + 1,
                Duration::from_millis(200),
            )
            .await;
    }
}

/// Nothing more arrives on `path` for a while after `n` requests.
async fn settles_at(stack: &Stack, path: &str, n: usize) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        stack.platform.received_on(path).len(),
        n,
        "no more requests on {path}"
    );
}

#[test]
fn the_wecom_adapter_passes_the_conformance_kit() {
    let app = app();
    let now = botgate::clock::unix_secs();
    let sign = |timestamp: u64, nonce: &str, random: u8| {
        let signed = app.sign_callback(
            &text("zhangsan", 42, "你好"),
            timestamp,
            nonce,
            &[random; 16],
        );
        Request::post(signed.query, Vec::new(), signed.body.into_bytes())
    };
    let valid = sign(now, "1357", 1);
    let verification = app.sign_verification("1616140317555161061", now, "2468", &[3; 16]);
    check(
        &app,
        &Fixture {
            now_secs: now,
            retry: sign(now + 5, "9753", 2),
            tampered: wxbiz_tampered(&valid, now, "1357"),
            required: vec!["msg_signature", "timestamp", "nonce"],
            handshake: Some((
                Request {
                    method: botgate_contract::Method::Get,
                    query: verification,
                    headers: Vec::new(),
                    body: Vec::new(),
                },
                "1616140317555161061".to_owned(),
            )),
            open_reply: None,
            valid,
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_answers_the_decrypted_echostr() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    let now = botgate::clock::unix_secs();
    let query = app().sign_verification("1616140317555161061", now, "77", &[5; 16]);
    let response = reqwest::get(format!("{}/wecom/shop?{query}", replica.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "1616140317555161061");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_message_is_answered_through_message_send_in_parts_with_a_refreshed_token() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    // The first send finds the token expired; the refresh gets a new one.
    stack.platform.push_responses_for(
        SEND,
        [(200, json!({"errcode": 42001, "errmsg": "expired"}))],
    );
    stack.platform.push_responses_for(
        "/cgi-bin/gettoken",
        [
            (
                200,
                json!({"errcode": 0, "access_token": "T1", "expires_in": 7200}),
            ),
            (
                200,
                json!({"errcode": 0, "access_token": "T2", "expires_in": 7200}),
            ),
        ],
    );
    let question = "这是一个问题。".repeat(120);

    let (status, body) = callback(&replica, &text("zhangsan", 7001, &question), 11).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ""),
        "acknowledged with an empty 200"
    );

    let answer = format!("echo: {question} (history: 0)");
    assert!(answer.len() > 2048, "long enough to need two parts");
    wait_for_path(&stack, SEND, 3).await;
    settles_at(&stack, SEND, 3).await;
    let sends = stack.platform.received_on(SEND);
    assert_eq!(sends[0].query_param("access_token"), Some("T1"));
    assert!(sends[1..]
        .iter()
        .all(|sent| sent.query_param("access_token") == Some("T2")));
    let parts: Vec<&str> = sends[1..]
        .iter()
        .map(|sent| {
            assert_eq!(sent.body["touser"], "zhangsan");
            assert_eq!(sent.body["agentid"], AGENT_ID);
            assert_eq!(sent.body["msgtype"], "text");
            sent.body["text"]["content"].as_str().unwrap()
        })
        .collect();
    assert!(
        parts.iter().all(|part| part.len() <= 2048),
        "each part fits WeCom's 2048 bytes"
    );
    let unspaced = |text: &str| text.split_whitespace().collect::<String>();
    assert_eq!(
        unspaced(&parts.concat()),
        unspaced(&answer),
        "the whole answer, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kf_pulls_every_page_and_answers_only_customer_messages_in_order_once() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    let enter = KfEvent {
        event_type: "enter_session".into(),
        open_kfid: Some(KF.into()),
        external_userid: Some("wm-alice".into()),
        welcome_code: Some("WELCOME-CODE".into()),
        ..KfEvent::default()
    };
    let failed = KfEvent {
        event_type: "msg_send_fail".into(),
        fail_msgid: Some("abc".into()),
        fail_type: Some(6),
        ..KfEvent::default()
    };
    let mut servicer = customer("m-servicer", "wm-alice", "人工客服在此");
    servicer.origin = Some(5);
    stack.platform.push_responses_for(
        SYNC,
        [
            page(
                &[
                    event(4, enter),
                    customer("m-1", "wm-alice", "第一问"),
                    servicer,
                ],
                "c1",
                true,
            ),
            page(&[], "c2", true),
            page(
                &[
                    customer("m-2", "wm-alice", "第二问"),
                    customer("m-3", "wm-bob", "另一个人"),
                    event(4, failed),
                ],
                "c3",
                false,
            ),
        ],
    );

    let (status, body) = callback(&replica, &kf_notice("PULL-TOKEN"), 21).await;
    assert_eq!((status, body.as_str()), (200, ""));

    let pulls = stack.platform.received_on(SYNC);
    let cursors: Vec<&Value> = pulls.iter().map(|pull| &pull.body["cursor"]).collect();
    assert_eq!(
        cursors,
        [&Value::Null, &json!("c1"), &json!("c2")],
        "every page, from each cursor"
    );
    assert!(pulls
        .iter()
        .all(|pull| pull.body["token"] == "PULL-TOKEN" && pull.body["open_kfid"] == KF));
    let welcome = stack.platform.received_on("/cgi-bin/kf/send_msg_on_event");
    assert_eq!(welcome.len(), 1, "one static welcome");
    assert_eq!(welcome[0].body["code"], "WELCOME-CODE");
    assert_eq!(welcome[0].body["text"]["content"], "欢迎光临");

    wait_for_path(&stack, KF_SEND, 3).await;
    settles_at(&stack, KF_SEND, 3).await;
    let answers = kf_answers(&stack.platform.received_on(KF_SEND));
    let alice: Vec<&str> = answers
        .iter()
        .filter(|(to, _)| to == "wm-alice")
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(
        alice,
        ["echo: 第一问 (history: 0)", "echo: 第二问 (history: 2)"],
        "in order, with memory"
    );
    assert!(answers.contains(&("wm-bob".into(), "echo: 另一个人 (history: 0)".into())));
    let msgids: Vec<String> = stack
        .platform
        .received_on(KF_SEND)
        .iter()
        .map(|sent| sent.body["msgid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        msgids.iter().all(|id| id.len() <= 32),
        "idempotency ids WeCom accepts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_resumes_from_the_saved_cursor() {
    let stack = wecom_stack().await;
    let mut first = Replica::start(wecom_config("a", &stack)).await;
    stack.platform.push_responses_for(
        SYNC,
        [page(&[customer("m-1", "wm-alice", "一")], "c1", false)],
    );
    assert_eq!(callback(&first, &kf_notice("T-A"), 31).await.0, 200);
    wait_for_path(&stack, KF_SEND, 1).await;
    first.terminate().await;

    let second = Replica::start(wecom_config("b", &stack)).await;
    stack.platform.push_responses_for(
        SYNC,
        [page(&[customer("m-2", "wm-alice", "二")], "c2", false)],
    );
    assert_eq!(callback(&second, &kf_notice("T-B"), 32).await.0, 200);

    let pulls = stack.platform.received_on(SYNC);
    assert_eq!(pulls.len(), 2);
    assert_eq!(
        pulls[1].body["cursor"], "c1",
        "resumed where the first replica stopped"
    );
    wait_for_path(&stack, KF_SEND, 2).await;
    settles_at(&stack, KF_SEND, 2).await;
    let answers = kf_answers(&stack.platform.received_on(KF_SEND));
    assert_eq!(
        answers
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>(),
        ["echo: 一 (history: 0)", "echo: 二 (history: 2)"],
        "nothing replayed, nothing skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_given_the_same_kf_callback_answer_each_message_once() {
    let stack = wecom_stack().await;
    let a = Replica::start(wecom_config("a", &stack)).await;
    let b = Replica::start(wecom_config("b", &stack)).await;
    // Every pull sees the same page, as two pulls from one cursor would.
    let (_, same) = page(
        &[
            customer("m-1", "wm-alice", "甲"),
            customer("m-2", "wm-bob", "乙"),
        ],
        "c1",
        false,
    );
    stack.platform.respond_to(SYNC, 200, same);

    let notice = kf_notice("T");
    let (first, second) = tokio::join!(callback(&a, &notice, 41), callback(&b, &notice, 42));
    assert_eq!((first.0, second.0), (200, 200));
    // Another callback later, to the other replica: the page is pulled again.
    assert_eq!(callback(&b, &kf_notice("T2"), 43).await.0, 200);

    wait_for_path(&stack, KF_SEND, 2).await;
    settles_at(&stack, KF_SEND, 2).await;
    let mut answers = kf_answers(&stack.platform.received_on(KF_SEND));
    answers.sort();
    assert_eq!(
        answers,
        [
            ("wm-alice".to_owned(), "echo: 甲 (history: 0)".to_owned()),
            ("wm-bob".to_owned(), "echo: 乙 (history: 0)".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_a_human_has_taken_gets_no_answer_and_no_retry() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    stack.platform.push_responses_for(
        SYNC,
        [page(&[customer("m-1", "wm-alice", "在吗")], "c1", false)],
    );
    stack.platform.respond_to(
        KF_SEND,
        200,
        json!({"errcode": 95018, "errmsg": "send msg session status invalid"}),
    );
    assert_eq!(callback(&replica, &kf_notice("T"), 51).await.0, 200);

    wait_for_path(&stack, KF_SEND, 1).await;
    settles_at(&stack, KF_SEND, 1).await;
    let dead = reqwest::get(format!("{}/metrics", replica.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dead.lines()
            .any(|line| line.starts_with("botgate_deliveries_total")
                && line.contains("withheld")
                && line.contains("95018")),
        "counted as withheld: {dead}"
    );
}

/// `botgate simulate wecom` against a replica whose `api_base` is the simulator's fake API.
async fn simulate(stack: &Stack, kf: bool) -> String {
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = wecom_config("sim", stack).replace(
        &format!("api_base = \"{}\"", stack.platform.url()),
        &format!("api_base = \"http://{api}\""),
    );
    let replica = Replica::start(config.clone()).await;
    let mut args = vec![
        "simulate",
        "wecom",
        "--bot",
        "shop",
        "--text",
        "你好",
        "--url",
        &replica.url,
    ];
    if kf {
        args.push("--kf");
    }
    let output = crate::harness::run_command(&config, &args).await;
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_wecom_prints_the_answer_for_a_member_and_for_a_kf_customer() {
    let stack = stack().await;
    assert_eq!(simulate(&stack, false).await, "echo: 你好 (history: 0)\n");
    assert_eq!(simulate(&stack, true).await, "echo: 你好 (history: 0)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_message_is_asked_to_be_typed_and_entering_the_app_is_welcomed() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    let now = botgate::clock::unix_secs();
    // WeCom's voice messages carry no transcript (no Recognition field).
    let voice = format!(
        "<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{now}</CreateTime><MsgType>voice</MsgType><MediaId>m</MediaId><Format>amr</Format><MsgId>9001</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    );
    let signed = app().sign_plaintext(
        botgate_wecom::BodyFormat::Xml,
        &voice,
        Some(AGENT_ID),
        now,
        "61",
        &[6; 16],
    );
    let status = reqwest::Client::new()
        .post(format!("{}/wecom/shop?{}", replica.url, signed.query))
        .body(signed.body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let enter = SimulatedCallback::Event {
        user: "wangwu".into(),
        agent_id: AGENT_ID,
        event: "enter_agent".into(),
        event_key: String::new(),
    };
    assert_eq!(callback(&replica, &enter, 62).await.0, 200);

    wait_for_path(&stack, SEND, 2).await;
    settles_at(&stack, SEND, 2).await;
    let mut sent: Vec<(String, String)> = stack
        .platform
        .received_on(SEND)
        .iter()
        .map(|sent| {
            (
                sent.body["touser"].as_str().unwrap().to_owned(),
                sent.body["text"]["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (
                "lisi".to_owned(),
                "抱歉，没有听清您的语音，请打字告诉我。".to_owned()
            ),
            ("wangwu".to_owned(), "您好，有什么可以帮您？".to_owned()),
        ]
    );
    assert_eq!(stack.fake.calls(), 0, "no LLM call for either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kf_callback_arriving_during_another_replicas_pull_is_not_lost() {
    let stack = wecom_stack().await;
    let a = Replica::start(wecom_config("a", &stack)).await;
    let b = Replica::start(wecom_config("b", &stack)).await;
    stack.platform.push_responses_for(
        SYNC,
        [
            page(&[customer("m-1", "wm-alice", "一")], "c1", false),
            page(&[customer("m-2", "wm-bob", "二")], "c2", false),
        ],
    );
    // A's pull is slow, so B's callback (for a message that came after A's page was cut)
    // finds the account's lease taken.
    stack.platform.set_delay(Duration::from_millis(800));
    let first = botgate::spawn_traced(async move {
        let status = callback(&a, &kf_notice("T1"), 71).await.0;
        (status, a)
    });
    wait_for_path(&stack, SYNC, 1).await;
    assert_eq!(
        callback(&b, &kf_notice("T2"), 72).await.0,
        200,
        "acknowledged at once"
    );
    let (status, _a) = first.await.unwrap();
    assert_eq!(status, 200);

    wait_for_path(&stack, KF_SEND, 2).await;
    let pulls = stack.platform.received_on(SYNC);
    assert_eq!(
        pulls[1].body["cursor"], "c1",
        "the holder went round again from its cursor"
    );
    assert_eq!(
        pulls[1].body["token"], "T2",
        "with the newest callback's token"
    );
    let mut answers = kf_answers(&stack.platform.received_on(KF_SEND));
    answers.sort();
    assert_eq!(
        answers,
        [
            ("wm-alice".to_owned(), "echo: 一 (history: 0)".to_owned()),
            ("wm-bob".to_owned(), "echo: 二 (history: 0)".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ip_is_logged_with_its_fix_and_no_secret_or_text_is_logged() {
    let stack = wecom_stack().await;
    stack.platform.respond_to(
        SEND,
        200,
        json!({"errcode": 60020, "errmsg": "not allow to access from your ip"}),
    );
    stack.platform.push_responses_for(
        SYNC,
        [page(
            &[customer(
                "m-p",
                "wm-private-customer",
                "我的订单号是 778899",
            )],
            "c1",
            false,
        )],
    );
    stack.platform.respond_to(
        "/cgi-bin/gettoken",
        200,
        json!({"errcode": 0, "access_token": "ACCESS-TOKEN-77", "expires_in": 7200}),
    );
    let gateway = crate::privacy::LoggedGateway::start(&wecom_config("a", &stack)).await;
    let replica_url = gateway.url.clone();
    let post = |signed: botgate_wecom::SignedRequest| {
        let url = format!("{replica_url}/wecom/shop?{}", signed.query);
        async move {
            reqwest::Client::new()
                .post(url)
                .body(signed.body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let now = botgate::clock::unix_secs();
    let question = text("private-member-77", 8001, "请帮我查一下工资条");
    assert_eq!(
        post(app().sign_callback(&question, now, "81", &[8; 16])).await,
        200
    );
    assert_eq!(
        post(app().sign_callback(&kf_notice("PULL-TOKEN-SECRET"), now, "82", &[9; 16])).await,
        200
    );
    wait_for_path(&stack, SEND, 1).await;
    wait_for_path(&stack, KF_SEND, 1).await;
    let logs = gateway.stop().await.join("\n");

    assert!(logs.contains("企业可信IP"), "60020 names the fix: {logs}");
    for secret in [
        "app-secret",
        TOKEN,
        AES_KEY,
        "ACCESS-TOKEN-77",
        "PULL-TOKEN-SECRET",
        "请帮我查一下工资条",
        "778899",
        "private-member-77",
        "wm-private-customer",
    ] {
        assert!(!logs.contains(secret), "the logs show {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_pull_answers_recent_questions_not_the_accounts_history() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    let hour_ago = botgate::clock::unix_secs() - 3600;
    let history = kf_customer_text("m-old", KF, "wm-alice", hour_ago, "一小时前的问题");
    stack.platform.push_responses_for(
        SYNC,
        [page(
            &[history, customer("m-new", "wm-alice", "现在的问题")],
            "c1",
            false,
        )],
    );
    assert_eq!(callback(&replica, &kf_notice("T"), 91).await.0, 200);

    wait_for_path(&stack, KF_SEND, 1).await;
    settles_at(&stack, KF_SEND, 1).await;
    assert_eq!(
        kf_answers(&stack.platform.received_on(KF_SEND)),
        [(
            "wm-alice".to_owned(),
            "echo: 现在的问题 (history: 0)".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_thirty_messages_a_minute_go_to_one_member() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    for index in 0..31u64 {
        let (status, _) = callback(
            &replica,
            &text("busy-member", 9_100 + index, &format!("问题{index}")),
            100 + index as u32,
        )
        .await;
        assert_eq!(status, 200);
    }

    wait_for_path(&stack, SEND, 30).await;
    // The 31st waits for the member's minute instead of being dropped by WeCom.
    settles_at(&stack, SEND, 30).await;
    let metrics = reqwest::get(format!("{}/metrics", replica.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("botgate_deliveries_total")
                && line.contains("outcome=\"dead\"")),
        "held, not given up: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_kf_pull_is_tried_again_rather_than_left_for_the_next_callback() {
    let stack = wecom_stack().await;
    let replica = Replica::start(wecom_config("a", &stack)).await;
    stack.platform.push_responses_for(
        SYNC,
        [
            (502, json!({})),
            page(&[customer("m-1", "wm-alice", "在吗")], "c1", false),
        ],
    );
    assert_eq!(callback(&replica, &kf_notice("T"), 95).await.0, 200);

    wait_for_path(&stack, KF_SEND, 1).await;
    assert_eq!(
        stack.platform.received_on(SYNC).len(),
        2,
        "pulled again after the failure"
    );
    assert_eq!(
        kf_answers(&stack.platform.received_on(KF_SEND)),
        [("wm-alice".to_owned(), "echo: 在吗 (history: 0)".to_owned())]
    );
}
