//! `POST /webhook/{bot}`: always acknowledged once durably queued, then delivered to
//! `deliver_url`.

use std::collections::HashMap;

use super::send::WebhookSender;
use super::{WebhookAdapter, WebhookChannel};
use crate::channels::channel::Channel;
use crate::channels::wiring::Wiring;

impl Channel for WebhookChannel {
    type Adapter = WebhookAdapter;
    type Sender = WebhookSender;
    const ROUTE: &'static str = "webhook";
    const HANDSHAKE: bool = false;

    fn build(wiring: &Wiring<'_>) -> anyhow::Result<HashMap<String, Self>> {
        Ok(wiring
            .settings
            .bots
            .iter()
            .filter_map(|(name, bot)| {
                let settings = bot.webhook.clone()?;
                Some((
                    name.clone(),
                    WebhookChannel::new(settings, wiring.http.clone()),
                ))
            })
            .collect())
    }

    fn adapter(&self) -> &WebhookAdapter {
        &self.adapter
    }

    fn sender(&self) -> Option<WebhookSender> {
        Some(WebhookSender {
            http: self.http.clone(),
            settings: self.settings.clone(),
        })
    }
}
