//! What a whole conversation leaves in the logs: the gateway as an OS process with debug logging,
//! its stderr read back, and none of the callback's query values, the secrets or the message
//! text in it; the user's OpenID appears only as its keyed hash.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use botgate::channels::webhook;
use botgate::telemetry::LogId;
use botgate_testkit::{FakeBailian, FakePlatform, RedisServer};
use botgate_wechat::{CallbackMode, SimulatedMessage, WechatAccount};
use botgate_wxcrypt::{signature, EncodingAesKey};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::watch;

use crate::harness::{config as replica_config, serve, terminate, TempFile, SECRET};

const OPENID: &str = "oPrivacyZ9kq2Lw7Vb3Xn5Rt8Yc1Hd4";
const APP_ID: &str = "wx2c2769f8efd9abc2";
const TOKEN: &str = "Tok3nPrivacyTest9";
const AES_KEY: &str = "PrivacyTestKey0123456789abcdefghijklmnopqrs";
const LOG_ID_KEY: &str = "privacy-test-log-id-key-0123456789";
const WEBHOOK_USER: &str = "crm-user-Qx7Jm2Pz";

const WECHAT: &str = r#"
[bots.shop.wechat]
app_id = "wx2c2769f8efd9abc2"
token = "Tok3nPrivacyTest9"
encoding_aes_key = "PrivacyTestKey0123456789abcdefghijklmnopqrs"
"#;

/// A gateway process whose stderr (JSON lines: it is not a terminal) is kept.
pub(crate) struct LoggedGateway {
    child: Child,
    pub(crate) url: String,
    logs: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
    _config: TempFile,
}

impl LoggedGateway {
    pub(crate) async fn start(config: &str) -> LoggedGateway {
        let (mut child, url, config) = serve(
            config,
            &[
                ("RUST_LOG", "debug"),
                ("BOTGATE__SERVER__LOG_ID_KEY", LOG_ID_KEY),
            ],
            Stdio::piped(),
        );
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready, mut is_ready) = watch::channel(false);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = logs.clone();
        let reader = botgate::spawn_traced(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(r#""message":"botgate ready""#) {
                    let _ = ready.send(true);
                }
                kept.lock().unwrap().push(line);
            }
        });
        // The process says when it listens; closed without saying so, it failed to start.
        let started = tokio::time::timeout(Duration::from_secs(10), is_ready.wait_for(|r| *r))
            .await
            .is_ok_and(|ready| ready.is_ok());
        assert!(
            started,
            "gateway never became ready: {:#?}",
            logs.lock().unwrap()
        );
        LoggedGateway {
            child,
            url,
            logs,
            reader,
            _config: config,
        }
    }

    /// SIGTERM, then every line the process wrote until it exited.
    pub(crate) async fn stop(mut self) -> Vec<String> {
        terminate(&mut self.child).await;
        tokio::time::timeout(Duration::from_secs(5), &mut self.reader)
            .await
            .unwrap()
            .unwrap();
        std::mem::take(&mut *self.logs.lock().unwrap())
    }
}

/// WeChat's side of the conversation, remembering every value it put in a query string.
struct Wechat {
    client: reqwest::Client,
    url: String,
    account: WechatAccount,
    query_values: Vec<String>,
}

impl Wechat {
    fn new(url: &str) -> Wechat {
        let key = EncodingAesKey::parse(AES_KEY).unwrap();
        Wechat {
            client: reqwest::Client::new(),
            url: format!("{url}/wechat/shop"),
            account: WechatAccount::new(TOKEN, Some(key), APP_ID),
            query_values: Vec::new(),
        }
    }

    /// The values of the parameters that authenticate a callback or name its user.
    fn remember(&mut self, query: &str) {
        const SENSITIVE: [&str; 6] = [
            "signature",
            "msg_signature",
            "timestamp",
            "nonce",
            "echostr",
            "openid",
        ];
        for (name, value) in form_pairs(query) {
            if SENSITIVE.contains(&name.as_str()) {
                self.query_values.push(value);
            }
        }
    }

    async fn verify_url(&mut self) -> (u16, String) {
        let timestamp = unix_now().to_string();
        let nonce = distinct_number().to_string();
        let echostr = format!("echo{}", distinct_number());
        let signature = signature(&[TOKEN, &timestamp, &nonce]);
        let query =
            format!("signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}");
        self.remember(&query);
        let response = self
            .client
            .get(format!("{}?{query}", self.url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// One delivery; the status and the reply's text as the user would see it.
    async fn send(
        &mut self,
        mode: CallbackMode,
        message: &SimulatedMessage,
    ) -> (u16, Option<String>) {
        let now = unix_now();
        let xml = message.to_xml(OPENID, "gh_privacy", now);
        let nonce = distinct_number().to_string();
        let signed = self
            .account
            .sign_request(mode, &xml, now, &nonce, &[9; 16])
            .unwrap();
        assert!(
            signed.query.contains(OPENID),
            "the query names the user, as WeChat's does"
        );
        self.remember(&signed.query);
        let response = self
            .client
            .post(format!("{}?{}", self.url, signed.query))
            .body(signed.body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let reply = match status {
            200 => self.account.open_reply(&body).unwrap(),
            _ => None,
        };
        (status, reply)
    }
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        Some((name.to_owned(), value.to_owned()))
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A ten-digit number unlikely to appear in a log line by chance.
fn distinct_number() -> u64 {
    1_000_000_000 + u64::from(getrandom::u32().unwrap()) % 8_000_000_000
}

/// `needle` as a whole token (not inside a longer run of letters and digits): a 10-digit
/// timestamp must not match the millisecond prefix of a Redis stream id.
fn contains_token(haystack: &str, needle: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    haystack.match_indices(needle).any(|(at, _)| {
        boundary(haystack[..at].chars().next_back())
            && boundary(haystack[at + needle.len()..].chars().next())
    })
}

fn text(msg_id: u64, content: &str) -> SimulatedMessage {
    SimulatedMessage::Text {
        msg_id,
        content: content.to_owned(),
    }
}

fn event(name: &str) -> SimulatedMessage {
    SimulatedMessage::Event {
        event: name.to_owned(),
        event_key: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_conversation_logs_no_query_value_secret_or_message_text() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    let config_text = replica_config("privacy", &fake, &redis, &platform, WECHAT);
    let gateway = LoggedGateway::start(&config_text).await;
    let mut wechat = Wechat::new(&gateway.url);
    let questions = [
        "隐私问题一：我的订单号是 PX-771",
        "second private question about 4412",
        "明文里的秘密问题",
        "webhook private question 5531",
    ];
    let base_id = distinct_number() * 1000;

    let verified = wechat.verify_url().await;
    let welcome = wechat.send(CallbackMode::Safe, &event("subscribe")).await;
    let first = wechat
        .send(CallbackMode::Safe, &text(base_id + 1, questions[0]))
        .await;
    let second = wechat
        .send(CallbackMode::Compatible, &text(base_id + 2, questions[1]))
        .await;
    let plaintext = wechat
        .send(CallbackMode::Plaintext, &text(base_id + 3, questions[2]))
        .await;
    let left = wechat.send(CallbackMode::Safe, &event("unsubscribe")).await;
    let body = serde_json::json!({
        "conversation": WEBHOOK_USER, "sender": WEBHOOK_USER,
        "message_id": format!("m{base_id}"), "text": questions[3],
    })
    .to_string();
    let accepted = reqwest::Client::new()
        .post(format!("{}/webhook/shop", gateway.url))
        .header(
            webhook::SIGNATURE_HEADER,
            webhook::sign(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let delivered = platform.wait_for(1, Duration::from_secs(10)).await;
    let logs = gateway.stop().await;

    // The conversation happened as a user would see it.
    assert_eq!(verified.0, 200);
    assert_eq!(welcome, (200, Some("您好，有什么可以帮您？".to_owned())));
    let answers = [
        format!("echo: {} (history: 0)", questions[0]),
        format!("echo: {} (history: 2)", questions[1]),
        format!("echo: {} (history: 0)", questions[3]),
    ];
    assert_eq!(first, (200, Some(answers[0].clone())));
    assert_eq!(second, (200, Some(answers[1].clone())));
    assert_eq!(
        plaintext,
        (400, None),
        "plaintext refused: the account has a key"
    );
    assert_eq!(left, (200, None));
    assert_eq!(accepted, 202);
    assert!(delivered, "the webhook answer was delivered");
    assert_eq!(deliveries_text(&platform), [answers[2].clone()]);

    let all = logs.join("\n");

    // Nothing in it that could be replayed, or that the user wrote or was told.
    let mut forbidden: Vec<(String, &str)> = wechat
        .query_values
        .iter()
        .map(|value| (value.clone(), "a callback query value"))
        .collect();
    forbidden.extend([
        (OPENID.to_owned(), "the OpenID"),
        (WEBHOOK_USER.to_owned(), "the webhook user"),
        (TOKEN.to_owned(), "the WeChat token"),
        (AES_KEY.to_owned(), "the EncodingAESKey"),
        (fake.api_key().to_owned(), "the Bailian API key"),
        (SECRET.to_owned(), "the webhook secret"),
        (LOG_ID_KEY.to_owned(), "the log id key"),
        ("您好，有什么可以帮您？".to_owned(), "the welcome text"),
    ]);
    forbidden.extend(questions.iter().map(|q| (q.to_string(), "a question")));
    forbidden.extend(answers.iter().map(|a| (a.clone(), "an answer")));
    for (value, what) in &forbidden {
        let leaks: Vec<&String> = logs
            .iter()
            .filter(|line| contains_token(line, value))
            .collect();
        assert!(leaks.is_empty(), "{what} `{value}` is logged:\n{leaks:#?}");
    }

    // The access log still says what happened: routes, parameter names, JSON lines.
    assert!(logs.len() > 20, "debug logging is on: {} lines", logs.len());
    assert!(
        logs.iter()
            .all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok()),
        "every line is JSON"
    );
    assert!(all.contains(r#""route":"/wechat/shop""#), "{all}");
    assert!(
        all.contains(r#""query":"signature,timestamp,nonce,echostr""#),
        "{all}"
    );
    assert!(
        all.contains(r#""query":"signature,timestamp,nonce,openid,encrypt_type,msg_signature""#),
        "{all}"
    );

    // The user is still traceable across lines, by the keyed hash only.
    let hashed = LogId::keyed(LOG_ID_KEY.as_bytes(), OPENID).to_string();
    assert!(
        contains_token(&all, &hashed),
        "the OpenID's log id {hashed} marks the user's lines"
    );
}

fn deliveries_text(platform: &FakePlatform) -> Vec<String> {
    platform
        .received_on("/deliver")
        .into_iter()
        .map(|received| {
            received.body["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}
