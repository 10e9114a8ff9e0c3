//! The website chat: a page at `/web/{bot}`, a one-line embed (`widget.js`), and answers
//! streamed into the visitor's open request as server-sent events (the third way to answer,
//! beside the reply window and the delivery engine). A retried message is answered from its
//! stored answer, never generated twice.

mod answer;
mod feedback;
mod routes;
mod stream;

pub use feedback::{FeedbackEntry, FEEDBACK_KEPT};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use botgate_web::{OriginPolicy, WebAdapter};
use secrecy::ExposeSecret;

use super::channel::{Channel, Deliver};
use super::live::NoLive;
use super::send::SendError;
use super::wiring::Wiring;
use crate::config::WebSettings;
use crate::core::job::JobPayload;
use crate::core::Conversations;
use answer::InFlight;

/// One bot's web chat; cloned into each HTTP worker's routes.
#[derive(Clone)]
pub struct WebChannel(Arc<WebBot>);

pub struct WebBot {
    name: String,
    adapter: WebAdapter,
    settings: WebSettings,
    /// The first bubble: the channel's own welcome or the bot's.
    welcome: String,
    policy: OriginPolicy,
    conversations: Arc<Conversations>,
    /// Answers being generated: they finish (and are stored) when the visitor's connection
    /// drops, so a retry gets them; shutdown waits for them.
    tasks: tokio_util::task::TaskTracker,
    in_flight: InFlight,
    /// How long a claim on a message's answer holds before another request may take it over:
    /// the longest an answer can take (an LLM slot wait, then the whole call).
    lease: Duration,
}

/// An LLM slot may be waited for this long before the call starts (see the core).
const SLOT_WAIT: Duration = Duration::from_secs(30);

impl Channel for WebChannel {
    type Adapter = WebAdapter;
    type Sender = NoSender;

    const ROUTE: &'static str = "web";
    const HANDSHAKE: bool = false;
    const CALLBACK: bool = false;

    fn build(wiring: &Wiring<'_>) -> anyhow::Result<HashMap<String, Self>> {
        Ok(wiring
            .settings
            .bots
            .iter()
            .filter_map(|(name, bot)| {
                let settings = bot.web.clone()?;
                let access_key = settings
                    .access_key
                    .as_ref()
                    .map(|key| key.expose_secret().as_bytes().to_vec());
                let deadline = wiring
                    .conversations
                    .bot(name)
                    .map_or(Duration::ZERO, |bot| bot.llm.call_deadline());
                let channel = WebBot {
                    name: name.clone(),
                    adapter: WebAdapter::new(name, access_key, settings.max_message_chars),
                    welcome: settings.welcome.clone().unwrap_or(bot.welcome.clone()),
                    policy: OriginPolicy::new(&settings.allowed_origins),
                    settings,
                    conversations: wiring.conversations.clone(),
                    tasks: wiring.tasks.clone(),
                    in_flight: InFlight::default(),
                    lease: SLOT_WAIT + deadline + Duration::from_secs(15),
                };
                Some((name.clone(), WebChannel(Arc::new(channel))))
            })
            .collect())
    }

    fn adapter(&self) -> &WebAdapter {
        &self.0.adapter
    }

    fn sender(&self) -> Option<NoSender> {
        None
    }

    fn mount(channels: &HashMap<String, Self>, config: &mut actix_web::web::ServiceConfig) {
        routes::mount(channels, config);
    }
}

/// The web has no way to reach a visitor outside their own request.
pub enum NoSender {}

impl Deliver for NoSender {
    type Live = NoLive;

    fn parts(&self, _job: &JobPayload, _text: &str) -> Vec<String> {
        match *self {}
    }

    async fn send(&self, _: &JobPayload, _: usize, _: usize, _: &str) -> Result<(), SendError> {
        match *self {}
    }
}
