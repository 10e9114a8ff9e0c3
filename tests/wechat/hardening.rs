//! Passive mode under awkward timing, dropped Redis connections and limits: every question
//! reaches the LLM once, in order; promises are kept; retries and replays count once.

use std::time::Duration;

use botgate::config::Settings;
use botgate_testkit::{Answer, DropProxy, FakeBailian, RedisServer};
use botgate_wechat::CallbackMode;
use secrecy::SecretString;

use crate::harness::{event, msg_id, settings, text, Gateway};

/// A gateway whose Redis traffic goes through a [`DropProxy`], warmed up so that Redis holds
/// every script before a test drops a connection (the first call of a script is answered
/// NOSCRIPT and did not run).
struct Proxied {
    fake: FakeBailian,
    proxy: DropProxy,
    gateway: Gateway,
    _redis: RedisServer,
}

impl Proxied {
    async fn start(adjust: impl FnOnce(Settings) -> Settings) -> Proxied {
        let fake = FakeBailian::start().await;
        let redis = RedisServer::start().await;
        let proxy = DropProxy::start(redis.port()).await;
        let mut settings = adjust(settings(&fake, None, ""));
        settings.store.redis_url = Some(SecretString::from(proxy.url()));
        let gateway = Gateway::start(settings).await;
        let warm = gateway
            .wechat(CallbackMode::Safe)
            .send("o-warm-up", &text(msg_id(99), "热身"))
            .await
            .unwrap();
        assert!(warm.reply.is_some());
        Proxied {
            fake,
            proxy,
            gateway,
            _redis: redis,
        }
    }
}

/// The confirmed defect: a question sent while the first answer is still owed was taken for a
/// pull; it never reached the LLM, and its last delivery promised an answer that did not exist.
/// Now it is a question of its own, answered after the first, with the first in its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_question_sent_while_the_first_is_owed_gets_its_own_answer() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    fake.set_delay(Duration::from_millis(1200));
    let gateway = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let (one, two) = (text(msg_id(1), "第一个问题"), text(msg_id(2), "第二个问题"));
    let (first, second) = tokio::join!(wechat.send("o-two", &one), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        wechat.send("o-two", &two).await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    let second_reply = match second.reply.as_deref() {
        Some("正在思考中，回复任意文字获取回答") => {
            // Not ready by its last delivery: the promise is kept on the next message.
            wechat
                .send("o-two", &text(msg_id(3), "好了吗"))
                .await
                .unwrap()
                .reply
        }
        other => other.map(str::to_owned),
    };

    assert_eq!(
        first.reply.as_deref(),
        Some("echo: 第一个问题 (history: 0)")
    );
    assert_eq!(
        second_reply.as_deref(),
        Some("echo: 第二个问题 (history: 2)"),
        "the second question was asked, after the first was remembered"
    );
    assert_eq!(fake.calls(), 2);
}

/// `/reset` while answer parts are still owed resets: the old parts are dropped, never served
/// as the reply to a later, unrelated question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_while_parts_are_owed_drops_them() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let paragraph = "这是一个很长的回答。".repeat(60);
    fake.set_answer(Answer::Fixed(format!("{paragraph}\n\n{paragraph}")));
    let gateway = Gateway::start(settings(&fake, Some(&redis), "")).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let first = wechat
        .send("o-reset", &text(msg_id(1), "详细说说"))
        .await
        .unwrap();
    let reset = wechat
        .send("o-reset", &text(msg_id(2), "/reset"))
        .await
        .unwrap();
    fake.set_answer(Answer::Echo);
    let after = wechat
        .send("o-reset", &text(msg_id(3), "新问题"))
        .await
        .unwrap();

    assert!(first.reply.unwrap().contains("回复任意文字继续"));
    assert_eq!(
        reset.reply.as_deref(),
        Some(botgate::core::commands::RESET_CONFIRMATION)
    );
    assert_eq!(
        after.reply.as_deref(),
        Some("echo: 新问题 (history: 0)"),
        "a fresh conversation, no stale part"
    );
}

/// A connection dropped after Redis ran the arrival script: the resent script is recognised
/// (keyed by the request) instead of counting a second delivery, which would leave the first
/// delivery without a generator and give the user the placeholder early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_arrival_counts_one_delivery() {
    let proxied = Proxied::start(|settings| settings).await;
    let (fake, proxy) = (&proxied.fake, &proxied.proxy);
    let wechat = proxied.gateway.wechat(CallbackMode::Safe);
    // Only the arrival script carries the question itself.
    let arrival = r#""text":"你好""#;
    proxy.arm(arrival);

    let delivery = wechat
        .send("o-arrive", &text(msg_id(1), "你好"))
        .await
        .unwrap();

    assert_eq!(proxy.fired(), 1);
    assert_eq!(proxy.forwarded(arrival), 2, "the arrival script ran twice");
    assert_eq!(delivery.attempts, 1, "answered on its first delivery");
    assert_eq!(delivery.reply.as_deref(), Some("echo: 你好 (history: 0)"));
    assert_eq!(fake.calls(), 2, "the warm-up's call and this one's");
}

/// A connection dropped after Redis ran the commit script: the resent script stores nothing
/// twice, so the conversation remembers the turn once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_commit_remembers_the_turn_once() {
    let proxied = Proxied::start(|settings| settings).await;
    let proxy = &proxied.proxy;
    let wechat = proxied.gateway.wechat(CallbackMode::Safe);
    proxy.arm("echo: 第一句".as_bytes());

    let first = wechat
        .send("o-commit", &text(msg_id(1), "第一句"))
        .await
        .unwrap();
    let second = wechat
        .send("o-commit", &text(msg_id(2), "第二句"))
        .await
        .unwrap();

    assert_eq!(proxy.fired(), 1);
    assert_eq!(
        proxy.forwarded("echo: 第一句"),
        2,
        "the commit script ran twice"
    );
    assert_eq!(first.reply.as_deref(), Some("echo: 第一句 (history: 0)"));
    assert_eq!(
        second.reply.as_deref(),
        Some("echo: 第二句 (history: 2)"),
        "one turn in memory, not two"
    );
}

/// A connection dropped after Redis counted a message against the rate limit: the resent
/// count is the same message, not another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_rate_count_counts_the_message_once() {
    let proxied = Proxied::start(|settings| with_rate_limit(settings, 2)).await;
    let proxy = &proxied.proxy;
    let wechat = proxied.gateway.wechat(CallbackMode::Safe);
    proxy.arm("rate:shop:wechat:o-rate");

    let first = wechat.send("o-rate", &text(msg_id(1), "一")).await.unwrap();
    let second = wechat.send("o-rate", &text(msg_id(2), "二")).await.unwrap();
    let third = wechat.send("o-rate", &text(msg_id(3), "三")).await.unwrap();

    assert_eq!(proxy.fired(), 1);
    assert_eq!(
        proxy.forwarded("rate:shop:wechat:o-rate"),
        4,
        "the first count ran twice"
    );
    assert_eq!(first.reply.as_deref(), Some("echo: 一 (history: 0)"));
    assert_eq!(second.reply.as_deref(), Some("echo: 二 (history: 2)"));
    assert_eq!(third.reply.as_deref(), Some(RATE_NOTICE));
}

const RATE_NOTICE: &str = "消息太频繁了，请稍后再试。";

/// The test bot, limited to `messages` per ten minutes.
fn with_rate_limit(mut settings: Settings, messages: u32) -> Settings {
    let bot = settings.bots.get_mut("shop").expect("the test bot exists");
    bot.rate_limit = Some(botgate::config::RateLimitSettings {
        messages,
        per_secs: 600,
        reply: RATE_NOTICE.to_owned(),
    });
    settings
}

/// Only a message's first delivery counts, only what the user asks counts, and events are
/// never answered with the notice: a slow answer's retries are not refused, location reports
/// use up nothing, and an unsubscribe over the limit still forgets the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_counts_each_question_once_and_never_events() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    fake.set_delay(Duration::from_millis(1200));
    let limited = with_rate_limit(settings(&fake, Some(&redis), ""), 2);
    let gateway = Gateway::start(limited).await;
    let wechat = gateway.wechat(CallbackMode::Safe);

    let slow = wechat
        .send("o-limit", &text(msg_id(1), "慢问题"))
        .await
        .unwrap();
    for _ in 0..3 {
        let location = wechat
            .send("o-limit", &event("LOCATION", ""))
            .await
            .unwrap();
        assert_eq!(location.reply, None, "events get no notice");
    }
    fake.set_delay(Duration::ZERO);
    let second = wechat
        .send("o-limit", &text(msg_id(2), "第二个"))
        .await
        .unwrap();
    let over = wechat
        .send("o-limit", &text(msg_id(3), "第三个"))
        .await
        .unwrap();
    wechat
        .send("o-limit", &event("unsubscribe", ""))
        .await
        .unwrap();
    let history = redis_history(&redis, "o-limit").await;

    assert!(slow.attempts >= 2, "the slow answer needed a retry");
    assert_eq!(slow.reply.as_deref(), Some("echo: 慢问题 (history: 0)"));
    assert_eq!(second.reply.as_deref(), Some("echo: 第二个 (history: 2)"));
    assert_eq!(over.reply.as_deref(), Some(RATE_NOTICE));
    assert_eq!(history, 0, "the unsubscribe forgot the conversation");
}

async fn redis_history(redis: &RedisServer, user: &str) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("LLEN")
        .arg(format!("botgate:shop:wechat:{user}:history"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// Two accounts on one Redis may see the same MsgId: per-message state is kept per bot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_id_on_two_bots_is_two_messages() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let mut two_bots = settings(&fake, Some(&redis), "");
    let mut other = two_bots.bots["shop"].clone();
    other.rules = None;
    two_bots.bots.insert("other".to_owned(), other);
    let gateway = Gateway::start(two_bots).await;

    let shop = gateway
        .wechat(CallbackMode::Safe)
        .send("o-same", &text(msg_id(7), "你好"))
        .await
        .unwrap();
    let other = gateway
        .wechat_for("other", CallbackMode::Safe)
        .send("o-same", &text(msg_id(7), "你好"))
        .await
        .unwrap();

    assert_eq!(shop.reply.as_deref(), Some("echo: 你好 (history: 0)"));
    assert_eq!(other.reply.as_deref(), Some("echo: 你好 (history: 0)"));
    assert_eq!(fake.calls(), 2);
}
