//! Two gateways sharing one Redis: WeChat's retries may land on either, and still one answer.

use std::time::Duration;

use botgate_testkit::{FakeBailian, RedisServer};
use botgate_wechat::CallbackMode;

use crate::harness::{msg_id, settings, text, Gateway, WECHAT_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_replica_joins_the_answer_in_progress() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    fake.set_delay(Duration::from_millis(1300));
    let first = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let second = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let xml = text(msg_id(80), "跨副本").to_xml("o-rep", "gh_x", now);
    let simulator = first.wechat(CallbackMode::Safe);
    let signed = simulator
        .account()
        .sign_request(CallbackMode::Safe, &xml, now, "n2", &[4; 16])
        .unwrap();
    let client = reqwest::Client::new();
    let deliver = |gateway: &Gateway| {
        client
            .post(format!("{}/wechat/shop?{}", gateway.url, signed.query))
            .body(signed.body.clone())
            .timeout(WECHAT_TIMEOUT)
            .send()
    };

    let attempt_one = deliver(&first).await;
    let attempt_two = deliver(&second).await.unwrap().bytes().await.unwrap();

    assert!(
        attempt_one.is_err(),
        "the first delivery timed out like WeChat's"
    );
    let reply = simulator.account().open_reply(&attempt_two).unwrap();
    assert_eq!(reply.as_deref(), Some("echo: 跨副本 (history: 0)"));
    assert_eq!(
        fake.calls(),
        1,
        "the second replica joined instead of asking again"
    );
}
