//! The website chat channel's adapter: pure, no I/O. A visitor's message or rating comes in as
//! JSON; the answer goes out as server-sent events; the page and the widget are served from
//! the assets compiled in here.

mod assets;
mod identity;
mod origin;
mod sse;
mod wire;

pub use assets::{Asset, Page, ASSETS};
pub use identity::{sign_identity, Identity};
pub use origin::OriginPolicy;
pub use sse::{comment, event, Done};
pub use wire::{FeedbackRequest, MessageRequest, Rating, Visitor, WebAdapter};
