//! WeChat passive mode across replicas: the replica generating an answer dies, and the user
//! still gets it — another replica adopts the orphaned answer once its generation lease lapses.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use botgate::config;
use botgate::simulate::WechatSimulator;
use botgate_testkit::{FakeBailian, FakePlatform, RedisServer};
use botgate_wechat::{CallbackMode, SimulatedMessage};

use crate::harness::{config as replica_config, Replica};

const WECHAT: &str = r#"
[bots.shop.wechat]
app_id = "wx2c2769f8efd9abc2"
token = "spamtest"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
deadline_ms = 1000
passive_wait_ms = 700
"#;

fn simulator(text: &str, replica: &Replica) -> WechatSimulator {
    let settings = config::parse(text, &[]).unwrap();
    let wechat = settings.bots["shop"].wechat.clone().unwrap();
    WechatSimulator::new(&replica.url, "shop", &wechat, Some(CallbackMode::Safe))
        .unwrap()
        .with_timeout(Duration::from_millis(1000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_generating_replica_still_delivers_the_answer() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    fake.set_delay(Duration::from_secs(4));
    let text_a = replica_config("replica-a", &fake, &redis, &platform, WECHAT);
    let text_b = replica_config("replica-b", &fake, &redis, &platform, WECHAT);
    let mut a = Replica::start(text_a.clone()).await;
    let b = Replica::start(text_b.clone()).await;
    let on_a = simulator(&text_a, &a);
    let on_b = simulator(&text_b, &b);
    let question = SimulatedMessage::Text {
        msg_id: 7_000_000_000_000_000_001,
        content: "问".into(),
    };
    // Signed now: the gateway refuses timestamps outside its window.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let xml = question.to_xml("o-orphan", "gh_x", now);
    let signed = on_a
        .account()
        .sign_request(CallbackMode::Safe, &xml, now, "n9", &[5; 16])
        .unwrap();
    let client = reqwest::Client::new();
    let deliver = |replica: &Replica| {
        client
            .post(format!("{}/wechat/shop?{}", replica.url, signed.query))
            .body(signed.body.clone())
            .timeout(Duration::from_millis(1000))
            .send()
    };

    assert!(deliver(&a).await.is_err(), "first delivery times out on A");
    assert!(
        fake.wait_for_calls(1, Duration::from_secs(5)).await,
        "A is generating"
    );
    a.kill9().await;
    fake.set_delay(Duration::ZERO);
    let _ = deliver(&b).await;
    let placeholder = deliver(&b).await.unwrap().bytes().await.unwrap();
    let placeholder = on_b.account().open_reply(&placeholder).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let placeholder_text = Some("正在思考中，回复任意文字获取回答".to_owned());
    let mut answer = None;
    let mut n = 0;
    // Like a patient user: keep asking while the answer is not there yet.
    while (answer.is_none() || answer == placeholder_text) && Instant::now() < deadline {
        n += 1;
        let pull = SimulatedMessage::Text {
            msg_id: 7_000_000_000_000_000_100 + n,
            content: "好了吗".into(),
        };
        answer = on_b.send("o-orphan", &pull).await.unwrap().reply;
    }

    assert_eq!(
        placeholder.as_deref(),
        Some("正在思考中，回复任意文字获取回答")
    );
    assert_eq!(
        answer.as_deref(),
        Some("echo: 问 (history: 0)"),
        "B adopted the orphaned answer"
    );
    assert_eq!(fake.calls(), 2, "A's lost call, then B's");
}

/// SIGTERM waits for passive answers in the making, as it does for queued jobs: the answer is
/// committed (remembered, waiting in the outbox) before the replica exits, not lost with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_passive_answer_in_the_making_finish() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    // Longer than any delivery of the message is held open: the answer outlives its requests.
    fake.set_delay(Duration::from_secs(3));
    let text = replica_config("replica-a", &fake, &redis, &platform, WECHAT);
    let mut replica = Replica::start(text.clone()).await;
    let wechat = simulator(&text, &replica);
    let question = SimulatedMessage::Text {
        msg_id: 7_000_000_000_000_000_200,
        content: "问".into(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let xml = question.to_xml("o-drain", "gh_x", now);
    let signed = wechat
        .account()
        .sign_request(CallbackMode::Safe, &xml, now, "n10", &[6; 16])
        .unwrap();
    let delivery = reqwest::Client::new()
        .post(format!("{}/wechat/shop?{}", replica.url, signed.query))
        .body(signed.body.clone())
        .timeout(Duration::from_millis(300))
        .send();

    assert!(
        delivery.await.is_err(),
        "WeChat gave up on the first delivery"
    );
    assert!(fake.wait_for_calls(1, Duration::from_secs(5)).await);
    let status = replica.terminate().await;

    assert!(status.success(), "clean exit: {status}");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let remembered: usize = redis::cmd("LLEN")
        .arg("botgate:shop:wechat:o-drain:history")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(remembered, 1, "the answer was committed before the exit");
}
