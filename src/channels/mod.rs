//! Platform channels: the glue between an adapter (pure, in `adapters/`) and the core.

pub mod passive;
pub mod send;
mod sender;
pub mod webhook;
pub mod wechat;

pub use sender::Sender;
