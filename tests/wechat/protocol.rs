//! The webhook's protocol surface: URL verification, events, media, and refusals of bad input.

use botgate_testkit::FakeBailian;
use botgate_wechat::{CallbackMode, SimulatedMessage};
use botgate_wxcrypt::signature;

use crate::harness::{event, msg_id, settings, text, Gateway, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_returns_echostr_byte_for_byte() {
    let fake = FakeBailian::start().await;
    let gateway = Gateway::start(settings(&fake, None, "")).await;
    let (timestamp, nonce, echostr) = ("1714036504", "1514711492", "4375120948345356249");
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
    let xml = text(msg_id(70), "hi").to_xml("o-bad", "gh_x", 1_700_000_000);
    let signed = account
        .account()
        .sign_request(CallbackMode::Safe, &xml, 1_700_000_000, "n1", &[3; 16])
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
