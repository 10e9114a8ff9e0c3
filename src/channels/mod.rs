//! Platform channels: the glue between an adapter (pure, in `adapters/`) and the core. Each
//! platform's module implements [`Channel`]; [`registry`] lists them.

mod channel;
pub mod dingtalk;
pub mod live;
pub mod passive;
pub mod registry;
pub mod send;
pub mod source;
pub mod web;
pub mod webhook;
pub mod wechat;
pub mod wecom;
mod wiring;

pub use channel::{Channel, Deliver, NoticeError};
pub use registry::{Channels, Live, Registered, Sender, Visitor};
pub use source::Admit;
pub use source::{Source, SourceStatus, Sources};
pub use wiring::Wiring;
