//! The website chat in a real browser (Debian's Chromium): a host page on another origin
//! embeds the widget with its one script tag; a visitor asks, watches the answer stream in,
//! asks a follow-up that needs memory, rates an answer and says goodbye. Markup from the
//! model never runs.

use std::time::Duration;

use botgate_testkit::browser::fantoccini::Locator;
use botgate_testkit::browser::{output_dir, Browser};
use botgate_testkit::{Answer, FakeBailian, FakePlatform, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{config, Replica};

const PATIENCE: Duration = Duration::from_secs(20);

/// A site of its own origin whose page is `html`, for as long as the value lives.
struct HostSite {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Scene {
    fake: FakeBailian,
    _redis: RedisServer,
    _platform: FakePlatform,
    gateway: Replica,
    site: HostSite,
    browser: Browser,
}

/// A gateway whose `shop` bot allows the host site, the host site embedding its widget, and a
/// browser on the host page with the chat panel open.
async fn scene() -> Scene {
    let fake = FakeBailian::start().await;
    let redis = RedisServer::start().await;
    let platform = FakePlatform::start().await;
    // The gateway's config names the site's origin, and the site's page the gateway's URL:
    // the site listens first and serves once the gateway is up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_url = format!("http://{}", listener.local_addr().unwrap());
    let table = format!(
        "[bots.shop.web]\ntitle = \"Shop assistant\"\nwelcome = \"您好，有什么可以帮您？\"\nallowed_origins = [\"{site_url}\"]\n"
    );
    let gateway = Replica::start(config("browser", &fake, &redis, &platform, &table)).await;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Example shop</title></head>\
         <body><h1>Example shop</h1><p>Everything for your home.</p>\
         <script src=\"{}/web/shop/widget.js\" async></script></body></html>",
        gateway.url
    );
    let site = HostSite {
        url: site_url,
        task: host_site_from(listener, html),
    };
    let browser = Browser::start()
        .await
        .expect("a browser (apt-get install chromium chromium-driver, or run .ci/run)");
    browser.goto(&site.url).await.unwrap();
    browser
        .wait_for("#botgate-launcher", PATIENCE)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#botgate-frame", PATIENCE).await.unwrap();
    browser.enter_frame("#botgate-frame").await.unwrap();
    browser.wait_for("#input", PATIENCE).await.unwrap();
    Scene {
        fake,
        _redis: redis,
        _platform: platform,
        gateway,
        site,
        browser,
    }
}

/// Serves `html` to every request on `listener`.
fn host_site_from(listener: tokio::net::TcpListener, html: String) -> tokio::task::JoinHandle<()> {
    botgate::spawn_traced(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            botgate::spawn_traced(serve_page(socket, html.clone()));
        }
    })
}

async fn serve_page(mut socket: tokio::net::TcpStream, html: String) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
}

/// Types `text` and sends it with Enter.
async fn say(browser: &Browser, text: &str) {
    let input = browser.wait_for("#input", PATIENCE).await.unwrap();
    input.send_keys(text).await.unwrap();
    input.send_keys("\u{E007}").await.unwrap();
}

/// The texts of the bot's answers (not the welcome) once `count` of them are finished.
async fn finished_answers(browser: &Browser, count: usize) -> Vec<String> {
    let b = browser;
    b.wait_until(PATIENCE, || async move {
        b.client()
            .find_all(Locator::Css(".msg-bot[data-id]"))
            .await
            .is_ok_and(|found| found.len() >= count)
    })
    .await
    .unwrap();
    let mut texts = Vec::new();
    for element in b
        .client()
        .find_all(Locator::Css(".msg-bot[data-id] .msg-body"))
        .await
        .unwrap()
    {
        texts.push(element.text().await.unwrap());
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_chats_through_the_embedded_widget_in_a_real_browser() {
    let scene = scene().await;
    let browser = &scene.browser;
    scene.fake.set_chunk_interval(Duration::from_millis(120));

    let welcome = browser.text(".msg-bot .msg-body").await.unwrap();
    say(browser, "你好").await;
    // Watch the answer grow: each distinct text seen while it streams.
    let mut seen: Vec<String> = Vec::new();
    let finished = loop {
        let last = browser
            .text(".msg-bot:last-of-type .msg-body")
            .await
            .unwrap_or_default();
        if seen.last() != Some(&last) && !last.is_empty() {
            seen.push(last.clone());
        }
        let done = browser
            .client()
            .find(Locator::Css(".msg-bot:last-of-type[data-id]"))
            .await
            .is_ok();
        if done {
            break last;
        }
        assert!(seen.len() < 1000, "the answer never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    say(browser, "我刚才说了什么").await;
    let answers = finished_answers(browser, 2).await;
    browser
        .client()
        .find(Locator::Css(".msg-bot[data-id] .fb-up"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    say(browser, "再见").await;
    let answers_after_goodbye = finished_answers(browser, 3).await;
    browser.leave_frame().await.unwrap();
    let shot = output_dir("web_widget").join("widget.png");
    browser.screenshot(&shot).await.unwrap();
    let metrics = reqwest::get(format!("{}/metrics", scene.gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert_eq!(welcome, "您好，有什么可以帮您？");
    assert_eq!(finished, "echo: 你好 (history: 0)");
    let partial: Vec<&String> = seen.iter().filter(|text| **text != finished).collect();
    assert!(
        !partial.is_empty(),
        "no partial answer was ever shown: {seen:?}"
    );
    for text in &partial {
        assert!(
            finished.starts_with(text.as_str()),
            "{text:?} is not a beginning of the answer"
        );
    }
    assert_eq!(answers[1], "echo: 我刚才说了什么 (history: 2)");
    assert_eq!(answers_after_goodbye[2], "感谢您的咨询，再见");
    assert_eq!(scene.fake.calls(), 2, "the farewell cost an LLM call");
    assert!(
        metrics.contains(r#"botgate_feedback_total{bot="shop",rating="up"} 1"#),
        "{metrics}"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let _ = &scene.site;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_from_the_model_is_shown_as_text_and_only_web_links_are_links() {
    let scene = scene().await;
    let browser = &scene.browser;
    scene.fake.set_answer(Answer::Fixed(
        "**注意** <img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'</script> \
         [说明](https://example.com/help) [坏链接](javascript:document.title='pwned')"
            .into(),
    ));

    say(browser, "<b>hi</b>").await;
    finished_answers(browser, 1).await;
    let css = |selector: &'static str| Locator::Css(selector);
    let client = browser.client();
    let bold = client
        .find(css(".msg-bot[data-id] .msg-body strong"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let images = client.find_all(css("#messages img")).await.unwrap().len();
    let scripts = client
        .find_all(css("#messages script"))
        .await
        .unwrap()
        .len();
    let links = client
        .find_all(css(".msg-bot[data-id] .msg-body a"))
        .await
        .unwrap();
    let user_bold = client.find_all(css(".msg-user b")).await.unwrap().len();
    let user_text = browser.text(".msg-user").await.unwrap();
    let answer_text = browser.text(".msg-bot[data-id] .msg-body").await.unwrap();
    let title = client.title().await.unwrap();

    assert_eq!(bold, "注意");
    assert_eq!((images, scripts, user_bold), (0, 0, 0));
    assert_eq!(links.len(), 1, "only the https link is a link");
    assert_eq!(
        links[0].attr("href").await.unwrap().as_deref(),
        Some("https://example.com/help")
    );
    assert_eq!(
        links[0].attr("target").await.unwrap().as_deref(),
        Some("_blank")
    );
    let rel = links[0].attr("rel").await.unwrap().unwrap_or_default();
    assert!(rel.contains("noopener"), "{rel}");
    assert!(user_text.contains("<b>hi</b>"), "{user_text}");
    assert!(answer_text.contains("<script>"), "{answer_text}");
    assert!(answer_text.contains("javascript:"), "{answer_text}");
    assert_ne!(title, "pwned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_keeps_what_was_shown_and_the_next_question_is_answered() {
    let scene = scene().await;
    let browser = &scene.browser;
    scene.fake.set_chunk_interval(Duration::from_millis(300));

    say(browser, "讲一个很长的故事").await;
    let b = browser;
    b.wait_until(PATIENCE, || async move {
        b.text(".msg-bot.streaming .msg-body")
            .await
            .is_ok_and(|text| !text.is_empty())
    })
    .await
    .unwrap();
    b.wait_for("#stop", PATIENCE)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let stopped = b
        .wait_for(".msg-bot.stopped .msg-body", PATIENCE)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    scene.fake.set_chunk_interval(Duration::ZERO);
    say(browser, "下一个问题").await;
    let answers = finished_answers(browser, 1).await;

    let whole = "echo: 讲一个很长的故事 (history: 0)";
    assert!(
        !stopped.is_empty() && whole.starts_with(&stopped) && stopped != whole,
        "{stopped:?}"
    );
    assert_eq!(answers.last().unwrap(), "echo: 下一个问题 (history: 2)");
}
