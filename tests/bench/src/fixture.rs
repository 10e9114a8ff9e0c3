//! What every scenario runs against: a private redis-server and a fake Bailian with a fixed,
//! realistic answer, plus the `[store]` and `[llm]` tables that point botgate at them.

use std::future::Future;
use std::time::Duration;

use botgate_testkit::{Answer, FakeBailian, RedisServer};

/// The fake LLM's answer: about 100 Chinese characters of plain text (no markdown), so that
/// botgate's markdown-to-text leaves it unchanged and every reply can be compared with it.
pub const ANSWER: &str =
    "您好，感谢您的咨询。我们的门店每天上午九点到晚上九点营业，节假日照常开放。\
如果您需要预约服务，可以在公众号菜单中选择在线预约，填写姓名和联系电话即可，\
客服会在两小时内与您确认具体时间。还有其他问题欢迎随时留言。";

/// The bot every scenario talks to.
pub const BOT: &str = "bench";

/// How often the fake's request log is emptied: it keeps every body, which a run of a hundred
/// thousand messages with twenty turns of history each would turn into gigabytes.
const CLEAR_EVERY: Duration = Duration::from_millis(500);

/// Where botgate keeps conversation memory, claims and outboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// A private redis-server (the production setup, and the targets' setting).
    Redis,
    /// botgate's in-process store.
    Embedded,
}

/// How botgate calls the fake Bailian.
#[derive(Debug, Clone, Copy)]
pub struct LlmOptions {
    /// SSE (botgate's default) or one JSON answer.
    pub stream: bool,
    /// HTTP/2 (one multiplexed connection) rather than HTTP/1.1 (one connection per call).
    pub http2: bool,
    /// Delay before the first byte of each answer.
    pub delay: Duration,
}

pub struct Upstreams {
    pub fake: FakeBailian,
    redis: Option<RedisServer>,
}

impl Upstreams {
    pub async fn start(store: StoreKind, llm: LlmOptions) -> Upstreams {
        let redis = match store {
            StoreKind::Redis => Some(RedisServer::start().await),
            StoreKind::Embedded => None,
        };
        let fake = FakeBailian::start().await;
        fake.set_answer(Answer::Fixed(ANSWER.to_owned()));
        fake.set_delay(llm.delay);
        Upstreams { fake, redis }
    }

    /// The `[store]` and `[llm.main]` tables for botgate's config (the bot says `llm = "main"`).
    pub fn config(&self, llm: LlmOptions) -> String {
        let store = match &self.redis {
            Some(redis) => format!("redis_url = \"{}\"", redis.url()),
            None => String::new(),
        };
        format!(
            "[store]\n{store}\n\n\
             [llm.main]\nkind = \"bailian\"\napp_id = \"{}\"\napi_key = \"{}\"\n\
             base_url = \"{}\"\nstream = {}\nhttp2 = {}\n\n",
            self.fake.app_id(),
            self.fake.api_key(),
            self.fake.base_url(),
            llm.stream,
            llm.http2,
        )
    }

    pub fn store_name(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "embedded"
        }
    }

    /// Drives `work` to completion while emptying the fake's request log now and then.
    pub async fn while_clearing<T>(&self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let mut ticks = tokio::time::interval(CLEAR_EVERY);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = ticks.tick() => self.fake.clear_requests(),
            }
        }
    }
}
