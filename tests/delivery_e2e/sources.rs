//! An inbound source that is not a route (as DingTalk Stream mode and WeCom's pull loop will
//! be) feeds the same acceptance as the routes, reports its connection in `/readyz` and
//! `/metrics`, and its messages are answered by the delivery engine like any other.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botgate::channels::Admit;
use botgate::config;
use botgate::delivery::Accepted;
use botgate::sources::{Source, SourceStatus};
use botgate::startup::Application;
use botgate_contract::{Content, InboundMessage, Platform};
use botgate_testkit::{FakeBailian, FakePlatform};
use tokio::sync::{mpsc, watch};

use crate::harness::{deliveries, SECRET};

/// Messages pushed by the test, as a platform's connection would push them.
struct PushedMessages {
    messages: Mutex<Option<mpsc::UnboundedReceiver<InboundMessage>>>,
    admitted: mpsc::UnboundedSender<Accepted>,
}

impl Source for PushedMessages {
    fn name(&self) -> String {
        "pushed:shop".to_owned()
    }

    async fn run(
        self: Arc<Self>,
        inlet: Arc<dyn Admit>,
        status: Arc<SourceStatus>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut messages = self.messages.lock().unwrap().take().unwrap();
        status.connected();
        loop {
            tokio::select! {
                message = messages.recv() => {
                    let Some(message) = message else { break };
                    status.frame();
                    let admitted = inlet.admit("shop", &message).await.unwrap();
                    let _ = self.admitted.send(admitted);
                }
                _ = shutdown.changed() => break,
            }
        }
        status.disconnected();
    }
}

fn message(id: &str, text: &str) -> InboundMessage {
    InboundMessage {
        platform: Platform::Webhook,
        conversation: "c-pushed".to_owned(),
        sender: "c-pushed".to_owned(),
        message_id: id.to_owned(),
        content: Content::Text(text.to_owned()),
    }
}

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_feeds_the_pipeline_and_reports_its_connection() {
    let fake = FakeBailian::start().await;
    let platform = FakePlatform::start().await;
    let settings = config::parse(
        &format!(
            r#"
[llm.main]
kind = "bailian"
app_id = "{app_id}"
api_key = "{api_key}"
base_url = "{base_url}"

[bots.shop]
llm = "main"

[bots.shop.webhook]
secret = "{SECRET}"
deliver_url = "{platform}/deliver"
"#,
            app_id = fake.app_id(),
            api_key = fake.api_key(),
            base_url = fake.base_url(),
            platform = platform.url(),
        ),
        &[],
    )
    .unwrap();
    let (push, pushed) = mpsc::unbounded_channel();
    let (admitted, mut admissions) = mpsc::unbounded_channel();
    let mut app =
        Application::build_with_listener(settings, TcpListener::bind("127.0.0.1:0").unwrap())
            .await
            .unwrap();
    app.add_source(PushedMessages {
        messages: Mutex::new(Some(pushed)),
        admitted,
    });
    let url = format!("http://127.0.0.1:{}", app.port());
    botgate::spawn_traced(app.run_until_stopped());

    push.send(message("p-1", "你好")).unwrap();
    let first = admissions.recv().await.unwrap();
    push.send(message("p-1", "你好")).unwrap();
    let again = admissions.recv().await.unwrap();
    assert!(platform.wait_for(1, Duration::from_secs(10)).await);
    let (ready, readiness) = get(format!("{url}/readyz")).await;
    let (_, metrics) = get(format!("{url}/metrics")).await;
    drop(push);
    let mut stopped = (0, String::new());
    for _ in 0..100 {
        stopped = get(format!("{url}/readyz")).await;
        if stopped.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(matches!(first, Accepted::Enqueued(_)), "{first:?}");
    assert_eq!(
        again,
        Accepted::Duplicate,
        "claimed like a callback's message"
    );
    assert_eq!(
        deliveries(&platform),
        [(
            "c-pushed".to_owned(),
            "p-1".to_owned(),
            "echo: 你好 (history: 0)".to_owned()
        )]
    );
    assert_eq!(ready, 200, "{readiness}");
    assert!(readiness.contains(r#""name":"pushed:shop""#), "{readiness}");
    assert!(
        metrics.contains(r#"botgate_source_connected{source="pushed:shop"} 1"#),
        "{metrics}"
    );
    assert_eq!(
        stopped.0, 503,
        "a disconnected source is not ready: {}",
        stopped.1
    );
}
