//! What a channel is built from: the settings and the shared parts of the running service.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::core::Conversations;
use crate::tokens::TokenCache;

pub struct Wiring<'a> {
    pub settings: &'a Settings,
    pub http: &'a reqwest::Client,
    pub conversations: &'a Arc<Conversations>,
    /// Platform access tokens, shared by every replica.
    pub tokens: &'a TokenCache,
    /// Answers being generated inside platform requests: shutdown waits for them.
    pub tasks: &'a TaskTracker,
}

impl Wiring<'_> {
    pub fn key_prefix(&self) -> &str {
        &self.settings.store.key_prefix
    }
}
