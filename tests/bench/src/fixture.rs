//! What every scenario runs against: a private redis-server and a fake Bailian with a fixed,
//! realistic answer, plus the `[store]` and `[llm]` tables that point botgate at them.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use botgate_testkit::{Answer, FakeBailian, RedisCluster, RedisServer};

use crate::fake_llm::{FrameWrites, LeanBailian};

/// The fake LLM's answer: about 100 Chinese characters of plain text (no markdown), so that
/// botgate's markdown-to-text leaves it unchanged and every reply can be compared with it.
pub const ANSWER: &str =
    "您好，感谢您的咨询。我们的门店每天上午九点到晚上九点营业，节假日照常开放。\
如果您需要预约服务，可以在公众号菜单中选择在线预约，填写姓名和联系电话即可，\
客服会在两小时内与您确认具体时间。还有其他问题欢迎随时留言。";

/// The bot every scenario talks to.
pub const BOT: &str = "bench";

/// How often the test kit fake's request log is emptied: it keeps every body, which a run of a
/// hundred thousand messages with twenty turns of history each would turn into gigabytes.
const CLEAR_EVERY: Duration = Duration::from_millis(500);

/// Where botgate keeps conversation memory, claims and outboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// A private redis-server (the production setup, and the targets' setting).
    Redis,
    /// botgate's in-process store.
    Embedded,
    /// A private three-master Redis Cluster (`store.cluster`); the CPU line shows each node.
    Cluster,
}

/// How botgate calls the fake Bailian.
#[derive(Debug, Clone, Copy)]
pub struct LlmOptions {
    /// SSE (botgate's default) or one JSON answer.
    pub stream: bool,
    /// HTTP/2 (multiplexed connections, up to 100 calls each) rather than HTTP/1.1 (one connection per call).
    pub http2: bool,
    /// Delay before the first byte of each answer.
    pub delay: Duration,
    /// The lean fake ([`LeanBailian`]) writing frames this way, rather than the test kit's.
    /// The lean one has no delay and no HTTP/2: `delay` and `http2` need the test kit's.
    pub lean: Option<FrameWrites>,
}

/// The fake Bailian of a run.
pub enum Fake {
    /// The test kit's: any delay, h2c, every request recorded.
    Testkit(FakeBailian),
    /// The bench's own: cheap enough not to crowd the gateway off the shared cores.
    Lean(LeanBailian),
}

impl Fake {
    pub fn app_id(&self) -> &'static str {
        match self {
            Fake::Testkit(fake) => fake.app_id(),
            Fake::Lean(fake) => fake.app_id(),
        }
    }

    pub fn api_key(&self) -> &'static str {
        match self {
            Fake::Testkit(fake) => fake.api_key(),
            Fake::Lean(fake) => fake.api_key(),
        }
    }

    pub fn base_url(&self) -> String {
        match self {
            Fake::Testkit(fake) => fake.base_url(),
            Fake::Lean(fake) => fake.base_url(),
        }
    }

    /// Completion calls: every one the test kit's fake saw, the lean fake's accepted ones.
    pub fn calls(&self) -> usize {
        match self {
            Fake::Testkit(fake) => fake.calls(),
            Fake::Lean(fake) => usize::try_from(fake.accepted()).unwrap_or(usize::MAX),
        }
    }

    /// Requests the lean fake refused, and why the first was; the test kit's does not count them.
    pub fn rejected(&self) -> Option<(u64, Option<&str>)> {
        match self {
            Fake::Testkit(_) => None,
            Fake::Lean(fake) => Some((fake.rejected(), fake.first_rejection())),
        }
    }

    /// Waits until `n` calls arrived; false if `timeout` passes first.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> bool {
        match self {
            Fake::Testkit(fake) => fake.wait_for_calls(n, timeout).await,
            Fake::Lean(fake) => fake.wait_for_calls(n as u64, timeout).await,
        }
    }

    /// How a streamed answer goes on the wire.
    pub fn frames(&self) -> &'static str {
        match self {
            // actix flushes each frame of the test kit's stream on its own.
            Fake::Testkit(_) => "a write per frame (test kit fake)",
            Fake::Lean(fake) => fake.writes().describe(),
        }
    }
}

pub struct Upstreams {
    pub fake: Fake,
    redis: Option<RedisServer>,
    cluster: Option<RedisCluster>,
    /// `store.shards` on the cluster.
    shards: usize,
}

impl Upstreams {
    pub async fn start(
        store: StoreKind,
        shards: usize,
        llm: LlmOptions,
    ) -> anyhow::Result<Upstreams> {
        let redis = match store {
            StoreKind::Redis => Some(RedisServer::start().await),
            StoreKind::Embedded | StoreKind::Cluster => None,
        };
        let cluster = match store {
            StoreKind::Cluster => Some(RedisCluster::start().await),
            StoreKind::Redis | StoreKind::Embedded => None,
        };
        let fake = match llm.lean {
            Some(writes) => Fake::Lean(
                LeanBailian::start(ANSWER, writes).context("start the lean fake Bailian")?,
            ),
            None => {
                let fake = FakeBailian::start().await;
                fake.set_answer(Answer::Fixed(ANSWER.to_owned()));
                fake.set_delay(llm.delay);
                Fake::Testkit(fake)
            }
        };
        Ok(Upstreams {
            fake,
            redis,
            cluster,
            shards,
        })
    }

    /// The `[store]` and `[llm.main]` tables for botgate's config (the bot says `llm = "main"`).
    pub fn config(&self, llm: LlmOptions) -> String {
        let store = match (&self.redis, &self.cluster) {
            (Some(redis), _) => redis.store_toml(),
            (None, Some(cluster)) => format!("{}\nshards = {}", cluster.store_toml(), self.shards),
            (None, None) => String::new(),
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

    /// The private redis-server's port, with the Redis store.
    pub fn redis_port(&self) -> Option<u16> {
        self.redis.as_ref().map(RedisServer::port)
    }

    pub fn store_name(&self) -> String {
        match (&self.redis, &self.cluster) {
            (Some(_), _) => "redis".into(),
            (None, Some(_)) => format!("redis cluster (3 masters, {} shards)", self.shards),
            (None, None) => "embedded".into(),
        }
    }

    /// Drives `work` to completion while emptying the test kit fake's request log now and then
    /// (the lean fake keeps none).
    pub async fn while_clearing<T>(&self, work: impl Future<Output = T>) -> T {
        let Fake::Testkit(fake) = &self.fake else {
            return work.await;
        };
        tokio::pin!(work);
        let mut ticks = tokio::time::interval(CLEAR_EVERY);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = ticks.tick() => fake.clear_requests(),
            }
        }
    }
}
