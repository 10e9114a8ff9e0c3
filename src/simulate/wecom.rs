//! `botgate simulate wecom`: WeCom's two halves around a running gateway. It posts a signed,
//! encrypted callback (an app member's text, or a 微信客服 notice) and serves the WeCom API the
//! gateway answers through (`api_base` must point at it), printing what the gateway sends.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use botgate_wecom::simulator::{kf_customer_text, sync_msg_response};
use botgate_wecom::{SimulatedCallback, WecomApp};
use botgate_wxcrypt::EncodingAesKey;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::WecomSettings;

/// The account a simulated 微信客服 customer writes to.
pub const SIMULATED_KF: &str = "wk-simulated";

/// What the gateway sent to the fake API: the path and the JSON body.
pub type Sent = (String, Value);

pub struct WecomSimulator {
    url: String,
    app: WecomApp,
    agent_id: u64,
    api: SocketAddr,
}

impl WecomSimulator {
    /// `base_url` is the gateway's; the bot's `api_base` must be a local `http://` address,
    /// where the fake API listens.
    pub fn new(base_url: &str, bot: &str, settings: &WecomSettings) -> anyhow::Result<Self> {
        let key = EncodingAesKey::parse(settings.encoding_aes_key.expose_secret())
            .context("encoding_aes_key")?;
        let api = settings
            .api_base
            .strip_prefix("http://")
            .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
            .filter(|address| address.ip().is_loopback())
            .with_context(|| {
                format!("[bots.{bot}.wecom] api_base must be a local address such as http://127.0.0.1:18081 for the simulator to receive the answer")
            })?;
        Ok(WecomSimulator {
            url: format!("{}/wecom/{bot}", base_url.trim_end_matches('/')),
            app: WecomApp::new(settings.token.expose_secret(), key, &settings.corp_id),
            agent_id: settings.agent_id,
            api,
        })
    }

    /// Sends `text` from `user` (an app member, or with `kf` a 微信客服 customer) and returns
    /// every message the gateway sent back within `wait` (collected until it goes quiet).
    pub async fn send(
        &self,
        user: &str,
        text: &str,
        kf: bool,
        wait: Duration,
    ) -> anyhow::Result<Vec<Sent>> {
        let (sent, mut received) = mpsc::unbounded_channel();
        let now = crate::clock::unix_secs();
        let random = crate::clock::random16();
        let mut id = [0u8; 8];
        id.copy_from_slice(&random[..8]);
        let msg_id = u64::from_le_bytes(id) | (1 << 62);
        let page = sync_msg_response(
            &[kf_customer_text(
                &format!("sim-{msg_id}"),
                SIMULATED_KF,
                user,
                now,
                text,
            )],
            &format!("sim-cursor-{msg_id}"),
            false,
        );
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new((sent.clone(), page.clone())))
                .default_service(web::to(fake_api))
        })
        .workers(1)
        .disable_signals()
        .bind(self.api)
        .with_context(|| format!("listen on {} (the bot's api_base)", self.api))?
        .run();
        let callback = match kf {
            true => SimulatedCallback::KfNotice {
                token: format!("sim-token-{msg_id}"),
                open_kfid: Some(SIMULATED_KF.to_owned()),
            },
            false => SimulatedCallback::Text {
                user: user.to_owned(),
                agent_id: self.agent_id,
                msg_id,
                content: text.to_owned(),
            },
        };
        let nonce = u32::from_le_bytes([random[0], random[1], random[2], random[3]]).to_string();
        let signed = self.app.sign_callback(&callback, now, &nonce, &random);
        let request = reqwest::Client::new()
            .post(format!("{}?{}", self.url, signed.query))
            .body(signed.body);
        super::deliver_and_collect(request, &mut received, wait, server).await
    }
}

type Shared = (mpsc::UnboundedSender<Sent>, String);

/// WeCom's API as far as the gateway calls it: a token, the pull page, and sends recorded.
async fn fake_api(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (sent, page) = shared.get_ref();
    let path = request.path().to_owned();
    let ok = json!({"errcode": 0, "errmsg": "ok"});
    let answer = match path.as_str() {
        "/cgi-bin/gettoken" => {
            json!({"errcode": 0, "errmsg": "ok", "access_token": "simulated-token", "expires_in": 7200})
        }
        "/cgi-bin/kf/sync_msg" => serde_json::from_str(page).unwrap_or(ok),
        _ => {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = sent.send((path, body));
            ok
        }
    };
    HttpResponse::Ok().json(answer)
}

/// The text of one sent message, however the API carries it.
pub fn content(body: &Value) -> &str {
    body["text"]["content"]
        .as_str()
        .or_else(|| body["markdown"]["content"].as_str())
        .unwrap_or_default()
}
