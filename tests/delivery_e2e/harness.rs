//! Spawning gateway processes and talking to them like a platform.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use botgate::channels::webhook;
use botgate_testkit::{FakeBailian, FakePlatform, RedisServer};
use tokio::process::{Child, Command};

pub const SECRET: &str = "e2e-webhook-secret-0123456789";

/// What the replicas of one scenario share: the fake Bailian, Redis and the fake platform.
pub struct Stack {
    pub fake: FakeBailian,
    pub redis: RedisServer,
    pub platform: FakePlatform,
}

pub async fn stack() -> Stack {
    Stack {
        fake: FakeBailian::start().await,
        redis: RedisServer::start().await,
        platform: FakePlatform::start().await,
    }
}

pub struct Replica {
    child: Child,
    pub url: String,
    _config: TempFile,
}

/// A file removed when this is dropped.
pub struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A replica's configuration: Redis, the fake Bailian (with `workspace` naming the replica so the
/// fake's records tell which replica made a call), and the webhook channel to the fake platform.
pub fn config(
    name: &str,
    fake: &FakeBailian,
    redis: &RedisServer,
    platform: &FakePlatform,
    extra: &str,
) -> String {
    config_on(name, fake, &redis.store_toml(), platform, extra)
}

/// [`config`] with the `[store]` lines given: a single Redis's or a Redis Cluster's.
pub fn config_on(
    name: &str,
    fake: &FakeBailian,
    store: &str,
    platform: &FakePlatform,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_timeout_secs = 5

[store]
{store}
max_turns = 20

[delivery]
workers = 16
visibility_timeout_secs = 2

[llm.main]
kind = "bailian"
app_id = "{app_id}"
api_key = "{api_key}"
base_url = "{base_url}"
workspace = "{name}"
timeout_secs = 20
retries = 0

[bots.shop]
llm = "main"

[bots.shop.webhook]
secret = "{SECRET}"
deliver_url = "{platform}/deliver"
{extra}
"#,
        port = free_port(),
        app_id = fake.app_id(),
        api_key = fake.api_key(),
        base_url = fake.base_url(),
        platform = platform.url(),
    )
}

/// `botgate serve` as an OS process on `config` (written to a file that lives as long as the
/// returned [`TempFile`]), with `env` set and its stderr sent to `stderr`. Returns the child
/// and the URL it listens on (the config's `listen`); it may not be ready yet.
pub fn serve(config: &str, env: &[(&str, &str)], stderr: Stdio) -> (Child, String, TempFile) {
    let path = std::env::temp_dir().join(format!(
        "botgate-e2e-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, config).unwrap();
    let listen = config
        .lines()
        .find_map(|line| line.strip_prefix("listen = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap()
        .to_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_botgate"))
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, format!("http://{listen}"), TempFile(path))
}

impl Replica {
    pub async fn start(config: String) -> Replica {
        let (child, url, config) = serve(&config, &[("RUST_LOG", "warn")], Stdio::inherit());
        let replica = Replica {
            child,
            url,
            _config: config,
        };
        replica.wait_ready(Duration::from_secs(10)).await;
        replica
    }

    async fn wait_ready(&self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/readyz", self.url)).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("replica at {} never became ready", self.url);
    }

    /// `kill -9`: no drain, no goodbye.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Sends a signal (`STOP`, `CONT`, …) with `kill`, as an operator or the kernel would.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// SIGTERM, then wait for the process to exit (graceful drain).
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(&mut self.child).await
    }

    pub async fn readyz(&self) -> u16 {
        reqwest::get(format!("{}/readyz", self.url))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// SIGTERM to a gateway process, then wait (up to 15 s) for it to exit.
pub async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// POSTs one signed message the way an integration would; returns the HTTP status.
pub async fn post(
    client: &reqwest::Client,
    replica: &Replica,
    conversation: &str,
    message_id: &str,
    text: &str,
) -> u16 {
    let body = serde_json::json!({
        "conversation": conversation, "sender": conversation, "message_id": message_id, "text": text,
    })
    .to_string();
    let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
    client
        .post(format!("{}/webhook/shop", replica.url))
        .header(webhook::SIGNATURE_HEADER, signature)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

/// Like a platform that retries until it gets an acknowledgement (2xx).
pub async fn post_until_accepted(
    client: &reqwest::Client,
    replica: &Replica,
    conversation: &str,
    message_id: &str,
    text: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = post(client, replica, conversation, message_id, text).await;
        if (200..300).contains(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "message {message_id} never accepted (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The deliveries the fake platform received, as (conversation, message_id, text).
pub fn deliveries(platform: &FakePlatform) -> Vec<(String, String, String)> {
    platform
        .received_on("/deliver")
        .into_iter()
        .map(|received| {
            let body = received.body;
            (
                body["conversation"].as_str().unwrap_or_default().to_owned(),
                body["message_id"].as_str().unwrap_or_default().to_owned(),
                body["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `botgate --config <config> ARGS…` run to its end (a one-shot command such as `simulate`);
/// panics with its stderr unless it succeeds.
pub async fn run_command(config: &str, args: &[&str]) -> std::process::Output {
    let path = std::env::temp_dir().join(format!(
        "botgate-e2e-command-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_botgate"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "botgate {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
