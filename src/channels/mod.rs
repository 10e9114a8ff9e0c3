//! Platform channels: the glue between an adapter (pure, in `adapters/`) and the core.

mod signals;
pub mod webhook;
pub mod wechat;

pub use signals::Signals;
