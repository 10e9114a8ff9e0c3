//! A newcomer's first minute: `botgate serve` with no config at all prints the demo's chat
//! page, which answers in a browser's way (streamed), warns about the demo secrets, and every
//! `botgate simulate` works against it out of the box.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn simulate(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_botgate"))
        .env_remove("BOTGATE_CONFIG")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "botgate {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_config_prints_a_chat_page_and_every_simulator_gets_the_demo_answer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_botgate"))
        .arg("serve")
        .env_remove("BOTGATE_CONFIG")
        .env("BOTGATE__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(gateway.stderr.take().unwrap()).lines();
    let mut warned = false;
    let printed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            warned |= line.contains("DEMO secrets");
            if line.contains("web chat: open") {
                return line;
            }
        }
        panic!("serve ended without printing the chat page");
    })
    .await
    .expect("serve printed no chat page within 20 s");
    // The rest of the log must keep draining, or the gateway would block on a full pipe.
    botgate::spawn_traced(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let base = format!("http://127.0.0.1:{port}");
    let page_url = format!("{base}/web/demo");

    let page = reqwest::get(&page_url).await.unwrap();
    let streamed = reqwest::Client::new()
        .post(format!("{page_url}/messages"))
        .header("Content-Type", "application/json")
        .body(r#"{"visitor":"v-FirstMinuteVisitor01","id":"m-firstminute1","text":"营业时间"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wechat = simulate(&[
        "simulate",
        "wechat",
        "--bot",
        "demo",
        "--text",
        "营业时间",
        "--url",
        &base,
    ])
    .await;
    let wecom = simulate(&[
        "simulate", "wecom", "--bot", "demo", "--text", "退货", "--url", &base,
    ])
    .await;
    let dingtalk = simulate(&[
        "simulate", "dingtalk", "--bot", "demo", "--text", "人工", "--url", &base,
    ])
    .await;

    assert!(printed.contains(&page_url), "{printed}");
    assert!(
        warned,
        "serve did not warn about the demo secrets before it printed the page"
    );
    assert_eq!(page.status(), 200);
    assert!(streamed.contains("event: done"), "{streamed}");
    assert!(streamed.contains("9:00-21:00"), "{streamed}");
    assert!(
        wechat.contains("我们的营业时间是每天 9:00-21:00。"),
        "{wechat}"
    );
    assert!(wecom.contains("收到商品 7 天内可无理由退货"), "{wecom}");
    assert!(dingtalk.contains("正在为您转接人工客服"), "{dingtalk}");
}
