//! Shared setup for the integration tests: a conversation core over a fake Bailian, on either store.

// Each test crate uses its own part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use botgate::config::Settings;
use botgate::core::{Conversations, Reply, ReplyKind};
use botgate_contract::{Content, InboundMessage, Platform};
use botgate_testkit::{FakeBailian, RedisServer};

/// Runs each scenario once per store: `memory_grows::embedded`, `memory_grows::redis`, …
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn embedded() {
                super::$scenario($crate::common::StoreKind::Embedded).await;
            }

            #[tokio::test]
            async fn redis() {
                super::$scenario($crate::common::StoreKind::Redis).await;
            }
        }
    )*};
}

/// Runs each scenario with `stream = true` and `stream = false` in `[llm.main]`.
#[allow(unused_macros)]
macro_rules! streaming_and_not {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn streaming() {
                super::$scenario(true).await;
            }

            #[tokio::test]
            async fn not_streaming() {
                super::$scenario(false).await;
            }
        }
    )*};
}

/// The bot every test talks to.
pub const BOT: &str = "shop";
/// The bot's texts, distinct from the defaults so a test can tell where a reply came from.
pub const FAREWELL: &str = "感谢光临小店，再见！";
pub const WELCOME: &str = "欢迎光临小店！";
pub const FALLBACK: &str = "小店客服暂时繁忙，请稍后再试。";
pub const REFUSAL: &str = "这个问题小店无法回答。";

/// Which conversation store the core runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The in-process store (no `redis_url`).
    Embedded,
    /// A private `redis-server` of the test's own.
    Redis,
}

/// TOML lines added to the tables of the base configuration (tables cannot be opened twice).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extra<'a> {
    /// Lines for `[store]`.
    pub store: &'a str,
    /// Lines for `[llm.main]`.
    pub llm: &'a str,
    /// Lines for `[bots.shop]`.
    pub bot: &'a str,
    /// Whole tables appended at the end (e.g. a `[llm.faq]` rules provider).
    pub tables: &'a str,
    /// Another app id than the one the fake serves.
    pub app_id: Option<&'a str>,
    /// Another API key than the one the fake accepts.
    pub api_key: Option<&'a str>,
}

/// The configuration text: bot `shop` answered by `[llm.main]`, a Bailian app on `fake`.
pub fn config_text(fake: &FakeBailian, redis_url: Option<&str>, extra: Extra<'_>) -> String {
    let redis = redis_url.map_or(String::new(), |url| format!("redis_url = \"{url}\""));
    format!(
        r#"
[store]
{redis}
{store}

[llm.main]
kind = "bailian"
base_url = "{base_url}"
app_id = "{app_id}"
api_key = "{api_key}"
{llm}

[bots.shop]
llm = "main"
farewell = "{FAREWELL}"
welcome = "{WELCOME}"
fallback = "{FALLBACK}"
refusal = "{REFUSAL}"
{bot}

{tables}
"#,
        store = extra.store,
        base_url = fake.base_url(),
        app_id = extra.app_id.unwrap_or(fake.app_id()),
        api_key = extra.api_key.unwrap_or("${BAILIAN_KEY}"),
        llm = extra.llm,
        bot = extra.bot,
        tables = extra.tables,
    )
}

/// Parses configuration text against an environment holding the fake's API key.
pub fn parse(text: &str) -> Settings {
    let env = vec![("BAILIAN_KEY".to_owned(), "sk-test-bailian".to_owned())];
    botgate::config::parse(text, &env).expect("the test configuration is valid")
}

/// A conversation core with the parts it talks to, kept alive as long as the core.
pub struct Core {
    pub conversations: Conversations,
    pub fake: FakeBailian,
    /// Present on [`StoreKind::Redis`].
    pub redis: Option<RedisServer>,
}

/// Starts a fake Bailian (and Redis if asked) and builds the core from the base configuration.
pub async fn core(store: StoreKind, extra: Extra<'_>) -> Core {
    let fake = FakeBailian::start().await;
    let redis = match store {
        StoreKind::Embedded => None,
        StoreKind::Redis => Some(RedisServer::start().await),
    };
    let settings = parse(&config_text(
        &fake,
        redis.as_ref().map(RedisServer::url).as_deref(),
        extra,
    ));
    let conversations = conversations(&settings).await;
    Core {
        conversations,
        fake,
        redis,
    }
}

/// The core exactly as the server and the console build it.
pub async fn conversations(settings: &Settings) -> Conversations {
    botgate::startup::build_conversations(settings)
        .await
        .expect("build the conversation core")
}

impl Core {
    /// Sends a text into `conversation` and returns the reply, which must exist.
    pub async fn say(&self, conversation: &str, words: &str) -> Reply {
        say(&self.conversations, conversation, words).await
    }
}

/// A core on the embedded store whose `[llm.main]` streams or not, plus `llm` lines.
pub async fn bailian(stream: bool, llm: &str) -> Core {
    let llm = format!("stream = {stream}\n{llm}");
    core(
        StoreKind::Embedded,
        Extra {
            llm: &llm,
            ..Extra::default()
        },
    )
    .await
}

pub fn reply(text: &str, kind: ReplyKind) -> Reply {
    Reply {
        text: text.to_owned(),
        kind,
    }
}

/// Sends a text into `conversation` of bot `shop` and returns the reply, which must exist.
pub async fn say(conversations: &Conversations, conversation: &str, words: &str) -> Reply {
    conversations
        .handle(BOT, &text(conversation, words), None)
        .await
        .expect("the core handles the message")
        .expect("the message gets a reply")
}

/// A text message from the test platform, with a fresh message id.
pub fn text(conversation: &str, words: &str) -> InboundMessage {
    message(conversation, Content::Text(words.to_owned()))
}

/// Any message from the test platform, with a fresh message id.
pub fn message(conversation: &str, content: Content) -> InboundMessage {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    InboundMessage {
        platform: Platform::Test,
        conversation: conversation.to_owned(),
        sender: conversation.to_owned(),
        message_id: format!("m-{}", SEQUENCE.fetch_add(1, Ordering::Relaxed)),
        content,
    }
}

/// What [`botgate_testkit::Answer::Echo`] answers when `history` messages came before `words`.
pub fn echo(words: &str, history: usize) -> String {
    format!("echo: {words} (history: {history})")
}

/// The `history: N` an echo answer reports.
pub fn echoed_history(answer: &str) -> usize {
    let (_, tail) = answer
        .rsplit_once("(history: ")
        .unwrap_or_else(|| panic!("not an echo answer: {answer}"));
    tail.trim_end_matches(')')
        .parse()
        .unwrap_or_else(|_| panic!("not an echo answer: {answer}"))
}

/// Polls `probe` until it returns true or `deadline` passes; for outages and recoveries,
/// which have no signal to wait on. Returns whether it became true.
pub async fn eventually<F, Fut>(deadline: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
