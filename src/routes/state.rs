//! What every request handler shares.

use std::sync::Arc;

use crate::channels::Channels;
use crate::core::Conversations;
use crate::delivery::Acceptor;
use crate::sources::{Inlet, Statuses};

/// What every request handler shares.
pub struct AppState {
    pub conversations: Arc<Conversations>,
    /// Every bot's channel on every platform.
    pub channels: Channels,
    pub acceptor: Arc<Acceptor>,
    /// Rate limit, claim and queue: what routes and sources hand a message to.
    pub inlet: Inlet,
    /// What each inbound source (not a route) reports of its connection.
    pub sources: Statuses,
}
