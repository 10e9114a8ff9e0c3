//! Starting gateways for the WeChat tests and talking to them like WeChat.

use std::net::TcpListener;
use std::time::Duration;

use botgate::config::{self, Settings};
use botgate::simulate::WechatSimulator;
use botgate::startup::Application;
use botgate_testkit::{FakeBailian, RedisServer};
use botgate_wechat::{CallbackMode, SimulatedMessage};

pub const TOKEN: &str = "spamtest";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const APP_ID: &str = "wx2c2769f8efd9abc2";
/// The gateway waits this long inside one request; the simulated WeChat gives up at
/// `WECHAT_TIMEOUT` (the gateway's `deadline_ms`). Both are scaled down from 4.5 s / 5 s to keep
/// the suite quick, with the same shape (the wait ends well before WeChat hangs up, within the
/// 70%..deadline − 100 ms the configuration accepts).
pub const PASSIVE_WAIT_MS: u64 = 700;
pub const WECHAT_TIMEOUT: Duration = Duration::from_millis(1000);

pub fn settings(fake: &FakeBailian, redis: Option<&RedisServer>, extra: &str) -> Settings {
    let store = redis.map(RedisServer::store_toml).unwrap_or_default();
    settings_on(fake, &store, extra)
}

/// [`settings`] with the `[store]` lines given: a single Redis's or a Redis Cluster's.
pub fn settings_on(fake: &FakeBailian, store: &str, extra: &str) -> Settings {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[store]
{store}

[llm.main]
kind = "bailian"
app_id = "{app_id}"
api_key = "{api_key}"
base_url = "{base_url}"
timeout_secs = 20

[llm.faq]
kind = "rules"
[[llm.faq.rules]]
keywords = ["营业时间"]
answer = "每天 9:00-21:00"

[bots.shop]
llm = "main"
rules = "faq"
welcome = "欢迎关注！"

[bots.shop.wechat]
app_id = "{APP_ID}"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
# The suite also sends plaintext-mode messages to this keyed account (off is not the default).
require_encryption = false
deadline_ms = {deadline_ms}
passive_wait_ms = {PASSIVE_WAIT_MS}
placeholder = "正在思考中，回复任意文字获取回答"
{extra}
"#,
        app_id = fake.app_id(),
        api_key = fake.api_key(),
        base_url = fake.base_url(),
        deadline_ms = WECHAT_TIMEOUT.as_millis(),
    );
    config::parse(&text, &[]).expect("test configuration is valid")
}

pub struct Gateway {
    pub url: String,
    wechat: std::collections::HashMap<String, botgate::config::WechatSettings>,
}

impl Gateway {
    pub async fn start(settings: Settings) -> Gateway {
        let wechat = settings
            .bots
            .iter()
            .filter_map(|(name, bot)| Some((name.clone(), bot.wechat.clone()?)))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build_with_listener(settings, listener)
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{}", app.port());
        botgate::spawn_traced(app.run_until_stopped());
        Gateway { url, wechat }
    }

    pub fn wechat(&self, mode: CallbackMode) -> WechatSimulator {
        self.wechat_for("shop", mode)
    }

    /// WeChat's side of another bot's account.
    pub fn wechat_for(&self, bot: &str, mode: CallbackMode) -> WechatSimulator {
        let wechat = self.wechat.get(bot).expect("the bot has a wechat table");
        WechatSimulator::new(&self.url, bot, wechat, Some(mode))
            .unwrap()
            .with_timeout(WECHAT_TIMEOUT)
    }
}

pub fn text(msg_id: u64, content: &str) -> SimulatedMessage {
    SimulatedMessage::Text {
        msg_id,
        content: content.to_owned(),
    }
}

pub fn event(event: &str, key: &str) -> SimulatedMessage {
    SimulatedMessage::Event {
        event: event.to_owned(),
        event_key: key.to_owned(),
    }
}

/// A MsgId beyond 2^53, as real ones are.
pub fn msg_id(n: u64) -> u64 {
    6_054_768_590_064_713_728 + n
}
