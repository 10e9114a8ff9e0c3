//! `botgate simulate dingtalk`: DingTalk's two halves around a running gateway. It posts a
//! signed HTTP-mode robot message whose session webhook is a local server it runs (its origin
//! must be one of the bot's `session_webhook_hosts`), and returns what the gateway posts there.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use botgate_dingtalk::outbound::SessionWebhookMessage;
use botgate_dingtalk::{DingtalkRobot, SimulatedMessage};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::DingtalkSettings;

pub struct DingtalkSimulator {
    url: String,
    robot: DingtalkRobot,
    robot_code: String,
    /// Where the local session webhook listens: a loopback origin the bot allows.
    webhook: SocketAddr,
}

impl DingtalkSimulator {
    /// `base_url` is the gateway's; one of the bot's `session_webhook_hosts` must be a local
    /// `http://127.0.0.1:PORT` origin, where the simulated session webhook listens.
    pub fn new(base_url: &str, bot: &str, settings: &DingtalkSettings) -> anyhow::Result<Self> {
        let webhook = settings
            .session_webhook_hosts
            .iter()
            .filter_map(|entry| entry.strip_prefix("http://"))
            .filter_map(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            .find(|address| address.ip().is_loopback())
            .with_context(|| {
                format!("[bots.{bot}.dingtalk] session_webhook_hosts needs a local origin such as \"http://127.0.0.1:18082\" for the simulator to receive the answer")
            })?;
        Ok(DingtalkSimulator {
            url: format!("{}/dingtalk/{bot}", base_url.trim_end_matches('/')),
            robot: DingtalkRobot::new(settings.app_secret.expose_secret()),
            robot_code: settings.robot_code().to_owned(),
            webhook,
        })
    }

    /// Sends `text` one-to-one (or @-mentioning the robot in a group) and returns every body
    /// the gateway posted to the session webhook within `wait` (collected until it goes quiet).
    pub async fn send(
        &self,
        text: &str,
        group: bool,
        wait: Duration,
    ) -> anyhow::Result<Vec<SessionWebhookMessage>> {
        let (sent, mut received) = mpsc::unbounded_channel();
        let random = crate::clock::random16();
        let id: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let mut message =
            SimulatedMessage::new(&format!("msgsim{id}"), text).with_session_webhook(&format!(
                "http://{}/robot/sendBySession?session=simulated",
                self.webhook
            ));
        message.robot_code = self.robot_code.clone();
        if group {
            message = message.in_group();
        }
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(sent.clone()))
                .default_service(web::to(session_webhook))
        })
        .workers(1)
        .disable_signals()
        .bind(self.webhook)
        .with_context(|| format!("listen on {} (the session webhook)", self.webhook))?
        .run();

        let signed = self.robot.sign_request(&message, crate::clock::unix_ms());
        let mut request = reqwest::Client::new().post(&self.url);
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        super::deliver_and_collect(request.body(signed.body), &mut received, wait, server).await
    }
}

/// A session webhook as far as the gateway uses it: every message recorded, `errcode` 0.
async fn session_webhook(
    body: web::Bytes,
    sent: web::Data<mpsc::UnboundedSender<SessionWebhookMessage>>,
) -> HttpResponse {
    match serde_json::from_slice::<SessionWebhookMessage>(&body) {
        Ok(message) => {
            let _ = sent.send(message);
            HttpResponse::Ok().json(json!({"errcode": 0, "errmsg": "ok"}))
        }
        Err(_) => HttpResponse::Ok().json(json!({"errcode": 300001, "errmsg": "bad body"})),
    }
}
