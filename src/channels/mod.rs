//! Platform channels: the glue between an adapter (pure, in `adapters/`) and the core.

pub mod passive;
pub mod send;
pub mod webhook;
pub mod wechat;
