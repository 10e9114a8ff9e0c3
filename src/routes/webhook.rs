//! `POST /webhook/{bot}`: the generic signed webhook channel; acknowledged once durably queued.

use super::inbound::Channel;
use super::AppState;
use crate::channels::passive::PassiveWindow;
use crate::channels::webhook::{WebhookAdapter, WebhookChannel};
use crate::store::StoreError;

impl Channel for WebhookChannel {
    type Adapter = WebhookAdapter;
    const ROUTE: &'static str = "webhook";
    const HANDSHAKE: bool = false;

    fn of<'a>(state: &'a AppState, bot: &str) -> Option<&'a Self> {
        state.webhooks.get(bot)
    }

    fn adapter(&self) -> &Self::Adapter {
        &self.adapter
    }

    /// Always acknowledged, then delivered to `deliver_url`.
    async fn window(&self, _: &AppState, _: &str) -> Result<Option<&PassiveWindow>, StoreError> {
        Ok(None)
    }
}
