//! Answering inside the platform's own request: WeChat's passive replies today, any platform
//! that waits a few seconds for an answer in its callback's response tomorrow.
//!
//! [`Passive`] runs the reply window (claim, retries joining on any replica, generation lease
//! and takeover, binding on time, an outbox for what the user pulls later) for one platform,
//! whose adapter renders the replies; [`outbox`] holds the state, in Redis or in process.

pub mod outbox;
mod signals;
mod window;

pub use outbox::{Mailbox, Outbox};
pub use window::{Passive, PassiveWindow};
