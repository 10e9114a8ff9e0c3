//! The `botgate` binary: `chat` holds a streamed multi-turn conversation and ends on farewell; `check-config` names bad fields.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{echo, Extra, FAREWELL};
use botgate_testkit::{FakeBailian, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Long enough for a debug binary to start on a busy machine; a hang fails well before CI does.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A configuration file under the temp dir, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "botgate-chat-cli-{}-{}.toml",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).expect("write the config file");
        ConfigFile(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `botgate --config FILE ARGS…` with piped stdio; `${BAILIAN_KEY}` resolves from its environment.
fn botgate(config: &ConfigFile, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_botgate"))
        .arg("--config")
        .arg(&config.0)
        .args(args)
        .env("BAILIAN_KEY", "sk-test-bailian")
        .env_remove("BOTGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the botgate binary")
}

/// How a chat run is meant to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The last line says goodbye; stdin stays open, so only the farewell can end the run.
    Farewell,
    /// Stdin is closed after the lines, as Ctrl-D does.
    EndOfInput,
}

/// Writes `lines` to the child's stdin and waits for the child to exit. Returns its status and
/// everything it printed.
async fn converse(
    mut child: Child,
    lines: &[&str],
    ending: Ending,
) -> (ExitStatus, String, String) {
    let mut stdin = child.stdin.take().expect("piped stdin");
    for line in lines {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the chat");
    }
    stdin.flush().await.expect("flush the chat's stdin");
    let stdin = match ending {
        Ending::Farewell => Some(stdin),
        Ending::EndOfInput => {
            drop(stdin);
            None
        }
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let exited = tokio::time::timeout(EXIT_DEADLINE, async {
        let (mut out, mut err) = (String::new(), String::new());
        let (read_out, read_err, status) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err),
            child.wait()
        );
        read_out.expect("read stdout");
        read_err.expect("read stderr");
        (status.expect("wait for botgate"), out, err)
    })
    .await;
    // With a farewell, stdin is still open here: the exit came from the conversation.
    drop(stdin);
    exited.unwrap_or_else(|_| panic!("botgate chat did not exit ({ending:?})"))
}

fn chat_config(fake: &FakeBailian, redis: Option<&RedisServer>, llm: &str) -> ConfigFile {
    let url = redis.map(RedisServer::url);
    ConfigFile::new(&crate::common::config_text(
        fake,
        url.as_deref(),
        Extra {
            llm,
            ..Extra::default()
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_holds_a_conversation_and_ends_on_farewell() {
    for llm in ["stream = true", "stream = false"] {
        let fake = FakeBailian::start().await;
        let config = chat_config(&fake, None, llm);

        let child = botgate(&config, &["chat", "--bot", "shop"]);
        let (status, stdout, stderr) =
            converse(child, &["你好", "再说一次", "再见"], Ending::Farewell).await;

        assert!(status.success(), "{llm}: {status}, stderr: {stderr}");
        // Exactly these lines: a streamed answer is printed once, not again when complete.
        let expected = format!("{}\n{}\n{FAREWELL}\n", echo("你好", 0), echo("再说一次", 2));
        assert_eq!(stdout, expected, "{llm}");
        assert_eq!(fake.calls(), 2, "{llm}: the farewell made no LLM call");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_prints_the_answer_as_it_streams() {
    let fake = FakeBailian::start().await;
    fake.set_chunk_interval(Duration::from_millis(250));
    let config = chat_config(&fake, None, "");
    let mut child = botgate(&config, &["chat", "--bot", "shop"]);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");

    stdin.write_all("你好\n".as_bytes()).await.expect("write");
    stdin.flush().await.expect("flush");
    let mut first = vec![0u8; 256];
    let read = tokio::time::timeout(EXIT_DEADLINE, stdout.read(&mut first))
        .await
        .expect("output within the deadline")
        .expect("read stdout");

    // Frames come 250 ms apart: the first read holds the beginning, not the whole answer.
    let first = String::from_utf8_lossy(&first[..read]).into_owned();
    let whole = echo("你好", 0);
    assert!(
        whole.starts_with(&first) && first.len() < whole.len(),
        "first output {first:?} should be a strict prefix of {whole:?}"
    );
    child.kill().await.expect("stop the chat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_continues_a_conversation_kept_in_redis() {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let config = chat_config(&fake, Some(&redis), "");
    let args = ["chat", "--bot", "shop", "--conversation", "desk-7"];

    // No farewell in the first run, so its memory stays for the second.
    let first = converse(
        botgate(&config, &args),
        &["你好", "/help"],
        Ending::EndOfInput,
    )
    .await;
    let second = converse(
        botgate(&config, &args),
        &["我回来了", "再见"],
        Ending::Farewell,
    )
    .await;

    assert!(
        first.0.success() && second.0.success(),
        "{first:?} {second:?}"
    );
    assert!(first.1.starts_with(&echo("你好", 0)), "{}", first.1);
    assert!(first.1.contains("/reset"), "help was printed: {}", first.1);
    assert_eq!(second.1, format!("{}\n{FAREWELL}\n", echo("我回来了", 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_the_bad_field_and_exits_2() {
    let config = ConfigFile::new("[bots.shop]\nllm = \"missing\"\n");

    let output = botgate(&config, &["check-config"])
        .wait_with_output()
        .await
        .expect("run check-config");

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bots.shop.llm"), "stderr: {stderr}");
    assert!(stderr.contains("missing"), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_accepts_a_good_file() {
    let fake = FakeBailian::start().await;
    let config = chat_config(&fake, None, "");

    let output = botgate(&config, &["check-config"])
        .wait_with_output()
        .await
        .expect("run check-config");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("llm.main: bailian"), "{stdout}");
    assert!(stdout.contains("bots.shop: llm=main"), "{stdout}");
}
