//! Self-tests of the browser harness: a real headless Chromium against pages served on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use botgate_testkit::browser::{output_dir, Browser, BrowserError};

const WAIT: Duration = Duration::from_secs(10);

/// Two parts appear one after the other, the way a streamed answer grows.
const HOST_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>harness host</title></head>
<body>
<h1 id="title">Host page</h1>
<button id="go">Go</button>
<div id="out"></div>
<iframe id="widget" src="/frame" width="400" height="120"></iframe>
<script>
console.log("host page loaded");
document.getElementById("go").addEventListener("click", () => {
  const out = document.getElementById("out");
  setTimeout(() => { out.textContent = "first part"; }, 200);
  setTimeout(() => { out.textContent += ", second part"; console.warn("both parts shown"); }, 400);
});
</script>
</body></html>"#;

const FRAME_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"></head>
<body><p id="inside">Inside the frame</p></body></html>"#;

/// Serves `/` and `/frame` on a free loopback port; returns the base URL.
///
/// Threads rather than tasks, so the server answers while the test awaits the browser. Each
/// connection gets its own thread: Chromium opens spare connections it may never send on.
fn serve_pages() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = listener.local_addr().expect("read the bound address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    format!("http://{address}")
}

fn answer(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => ("200 OK", HOST_PAGE),
        "/frame" => ("200 OK", FRAME_PAGE),
        _ => ("404 Not Found", "not found"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

async fn start() -> Browser {
    match Browser::start().await {
        Ok(browser) => browser,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn clicks_and_waits_for_text_that_arrives_in_parts() {
    let base = serve_pages();
    let browser = start().await;
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("open the host page");
    assert_eq!(
        browser.client().title().await.expect("read the title"),
        "harness host"
    );
    assert_eq!(browser.text("#out").await.expect("read #out"), "");

    browser
        .wait_for("#go", WAIT)
        .await
        .expect("the button")
        .click()
        .await
        .expect("click the button");
    let page = &browser;
    browser
        .wait_until(WAIT, || async move {
            page.text("#out").await.is_ok_and(|now| !now.is_empty())
        })
        .await
        .expect("the first part appears");
    let first = browser.text("#out").await.expect("read #out");
    assert_eq!(first, "first part");

    let before = &first;
    browser
        .wait_until(WAIT, || async move {
            page.text("#out").await.is_ok_and(|now| now != *before)
        })
        .await
        .expect("the text grows");
    assert_eq!(
        browser.text("#out").await.expect("read #out"),
        "first part, second part"
    );

    let console = browser.console().await.expect("read the console");
    let loaded = console
        .iter()
        .find(|entry| entry.message.contains("host page loaded"))
        .unwrap_or_else(|| panic!("the page's console.log is captured: {console:?}"));
    assert_eq!(loaded.level, "INFO");
    assert!(
        console
            .iter()
            .any(|entry| entry.level == "WARNING" && entry.message.contains("both parts shown")),
        "{console:?}"
    );
    assert!(
        browser.console().await.expect("read again").is_empty(),
        "each message is handed out once"
    );

    browser.close().await.expect("close the session");
}

#[tokio::test]
async fn reads_inside_an_iframe_and_saves_a_png() {
    let base = serve_pages();
    let browser = start().await;
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("open the host page");

    assert!(
        browser.text("#inside").await.is_err(),
        "the frame's content is not part of the page"
    );
    browser
        .enter_frame("#widget")
        .await
        .expect("enter the iframe");
    let inside = browser
        .wait_for("#inside", WAIT)
        .await
        .expect("the frame's paragraph");
    assert_eq!(inside.text().await.expect("read it"), "Inside the frame");
    assert!(
        browser.text("#title").await.is_err(),
        "inside the frame the page's elements are out of reach"
    );
    browser.leave_frame().await.expect("leave the iframe");
    assert_eq!(
        browser.text("#title").await.expect("read #title"),
        "Host page"
    );

    let dir = output_dir("browser_harness");
    let path = dir.join("nested").join("host.png");
    let _ = std::fs::remove_file(&path);
    browser.screenshot(&path).await.expect("take a screenshot");
    let png = std::fs::read(&path).expect("the screenshot file exists");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // IHDR follows the signature: length, "IHDR", then the width as a big-endian u32.
    let width = u32::from_be_bytes(png[16..20].try_into().expect("four bytes"));
    assert_eq!(width, 1280, "the window is 1280 wide");
}

#[tokio::test]
async fn waits_that_run_out_are_errors_after_their_timeout() {
    let base = serve_pages();
    let browser = start().await;
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("open the host page");
    let short = Duration::from_millis(300);

    let started = Instant::now();
    let missing = browser.wait_for("#never", short).await;
    assert!(
        matches!(missing, Err(BrowserError::Timeout { .. })),
        "{missing:?}"
    );
    assert!(started.elapsed() >= short, "{:?}", started.elapsed());

    let started = Instant::now();
    let mut checks = 0;
    let never = browser
        .wait_until(short, || {
            checks += 1;
            async { false }
        })
        .await;
    assert!(
        matches!(never, Err(BrowserError::Timeout { .. })),
        "{never:?}"
    );
    assert!(started.elapsed() >= short, "{:?}", started.elapsed());
    assert!(checks > 1, "polled more than once: {checks}");
}
