//! The webhook's protocol surface: URL verification, events, media, and refusals of bad input.

use std::time::{SystemTime, UNIX_EPOCH};

use botgate_testkit::FakeBailian;
use botgate_wechat::{CallbackMode, SimulatedMessage};
use botgate_wxcrypt::signature;

use crate::harness::{event, msg_id, settings, text, Gateway, TOKEN};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_returns_echostr_byte_for_byte() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    let timestamp = &unix_now().to_string();
    let (nonce, echostr) = ("1514711492", "4375120948345356249");
    let good = signature(&[TOKEN, timestamp, nonce]);
    let client = reqwest::Client::new();
    let url = |signature: &str| {
        format!("{}/wechat/shop?signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}", gateway.url)
    };

    let ok = client.get(url(&good)).send().await.unwrap();
    let bad = client.get(url(&"0".repeat(40))).send().await.unwrap();
    let unknown = client
        .get(format!("{}/wechat/nobody?x=1", gateway.url))
        .send()
        .await
        .unwrap();

    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), echostr);
    assert_eq!(bad.status(), 401);
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_subscribe_click_unsubscribe_and_others() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let welcome = wechat.send("o-ev", &event("subscribe", "")).await.unwrap();
    let click = wechat
        .send("o-ev", &event("CLICK", "营业时间"))
        .await
        .unwrap();
    let view = wechat
        .send("o-ev", &event("VIEW", "https://example.com"))
        .await
        .unwrap();
    let question = wechat
        .send("o-ev", &text(msg_id(50), "在吗"))
        .await
        .unwrap();
    let left = wechat
        .send("o-ev", &event("unsubscribe", ""))
        .await
        .unwrap();
    let back = wechat
        .send("o-ev", &text(msg_id(51), "我回来了"))
        .await
        .unwrap();

    assert_eq!(welcome.reply.as_deref(), Some("欢迎关注！"));
    assert_eq!(
        click.reply.as_deref(),
        Some("每天 9:00-21:00"),
        "menu key answered by the rule"
    );
    assert_eq!(
        (view.reply, view.answered),
        (None, true),
        "other events acknowledged with success"
    );
    assert_eq!(
        question.reply.as_deref(),
        Some("echo: 在吗 (history: 2)"),
        "the rule hit is remembered"
    );
    assert_eq!((left.reply, left.answered), (None, true));
    assert_eq!(
        back.reply.as_deref(),
        Some("echo: 我回来了 (history: 0)"),
        "unsubscribe forgot the conversation"
    );
    assert_eq!(fake.calls(), 2, "events and rules cost no LLM call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_uses_recognition_and_images_get_a_polite_answer() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);
    let voice = |n, recognition: Option<&str>| SimulatedMessage::Voice {
        msg_id: msg_id(n),
        recognition: recognition.map(str::to_owned),
    };

    let heard = wechat
        .send("o-voice", &voice(60, Some("今天天气")))
        .await
        .unwrap();
    let unheard = wechat.send("o-voice", &voice(61, None)).await.unwrap();
    let image = wechat
        .send(
            "o-voice",
            &SimulatedMessage::Image {
                msg_id: msg_id(62),
                pic_url: "https://x/y.png".into(),
            },
        )
        .await
        .unwrap();

    assert_eq!(heard.reply.as_deref(), Some("echo: 今天天气 (history: 0)"));
    assert!(
        unheard.reply.unwrap().contains("打字"),
        "asks the user to type"
    );
    assert!(image.reply.unwrap().contains("图片"));
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_without_an_llm_call() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    let account = gateway.wechat(CallbackMode::Safe);
    let xml = text(msg_id(70), "hi").to_xml("o-bad", "gh_x", unix_now());
    let signed = account
        .account()
        .sign_request(CallbackMode::Safe, &xml, unix_now(), "n1", &[3; 16])
        .unwrap();
    let client = reqwest::Client::new();
    let post = |query: String, body: String| {
        let client = client.clone();
        let url = format!("{}/wechat/shop?{query}", gateway.url);
        async move {
            client
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let tampered_signature = signed.query.replace("msg_signature=", "msg_signature=0");
    let doctype = format!("<!DOCTYPE xml [<!ENTITY x \"y\">]>{}", signed.body);
    let broken = signed.body.replace("</xml>", "");
    let oversize = "x".repeat(300 * 1024);

    assert_eq!(post(tampered_signature, signed.body.clone()).await, 401);
    assert_eq!(post(signed.query.clone(), doctype).await, 400);
    assert_eq!(post(signed.query.clone(), broken).await, 400);
    assert_eq!(post(signed.query.clone(), oversize).await, 413);
    assert_eq!(post("timestamp=1".into(), signed.body.clone()).await, 400);
    assert_eq!(fake.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_outside_the_timestamp_window_are_refused_with_401() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "timestamp_window_secs = 60")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);
    let client = reqwest::Client::new();
    let verify = |skew: i64| {
        let timestamp = unix_now().saturating_add_signed(-skew).to_string();
        let signature = signature(&[TOKEN, &timestamp, "7"]);
        let url = format!(
            "{}/wechat/shop?signature={signature}&timestamp={timestamp}&nonce=7&echostr=e",
            gateway.url
        );
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    let post = |skew: i64, n: u64| {
        let at = unix_now().saturating_add_signed(-skew);
        let xml = text(msg_id(n), "旧消息").to_xml("o-replayed", "gh_x", at);
        let signed = wechat
            .account()
            .sign_request(CallbackMode::Safe, &xml, at, "n7", &[7; 16])
            .unwrap();
        let url = format!("{}/wechat/shop?{}", gateway.url, signed.query);
        let client = client.clone();
        async move {
            let response = client.post(url).body(signed.body).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };

    let verified_now = verify(0).await;
    let verified_late = verify(61).await;
    let verified_early = verify(-61).await;
    let (replayed, reason) = post(600, 90).await;
    let (from_the_future, _) = post(-600, 91).await;
    let (in_time, _) = post(30, 92).await;

    assert_eq!(
        (verified_now, verified_late, verified_early),
        (200, 401, 401)
    );
    assert_eq!((replayed, from_the_future, in_time), (401, 401, 200));
    assert!(reason.contains("skew 600 s"), "says by how much: {reason}");
    assert_eq!(fake.calls(), 1, "only the request in time reached the LLM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_with_a_key_refuses_plaintext_unless_told_otherwise() {
    let fake = FakeBailian::start().await;
    let mut defaults = settings(&fake, None, "");
    // The harness turns the requirement off for the plaintext tests; this one wants the default.
    defaults
        .bots
        .get_mut("shop")
        .unwrap()
        .wechat
        .as_mut()
        .unwrap()
        .require_encryption = None;
    let gateway = Gateway::start(defaults).await;

    let plaintext = gateway
        .wechat(CallbackMode::Plaintext)
        .send("o-plain", &text(msg_id(95), "明文"))
        .await;
    let safe = gateway
        .wechat(CallbackMode::Safe)
        .send("o-plain", &text(msg_id(96), "密文"))
        .await
        .unwrap();

    let refusal = plaintext.unwrap_err().to_string();
    assert!(refusal.contains("400"), "{refusal}");
    assert!(refusal.contains("requires encryption"), "{refusal}");
    assert_eq!(safe.reply.as_deref(), Some("echo: 密文 (history: 0)"));
    assert_eq!(fake.calls(), 1);
}
