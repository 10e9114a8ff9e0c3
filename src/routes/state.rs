//! What every request handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use crate::channels::passive::Passive;
use crate::channels::webhook::WebhookChannel;
use crate::channels::wechat::WechatChannel;
use crate::core::Conversations;
use crate::delivery::Acceptor;
use crate::sources::{Inlet, Statuses};

/// What every request handler shares.
pub struct AppState {
    pub conversations: Arc<Conversations>,
    pub wechat: HashMap<String, WechatChannel>,
    pub passive: Passive,
    pub webhooks: HashMap<String, WebhookChannel>,
    pub key_prefix: String,
    pub acceptor: Arc<Acceptor>,
    /// Rate limit, claim and queue: what routes and sources hand a message to.
    pub inlet: Inlet,
    /// What each inbound source (not a route) reports of its connection.
    pub sources: Statuses,
}
