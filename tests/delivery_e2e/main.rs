//! The delivery engine with real processes: several `botgate serve` replicas sharing one real
//! redis-server, the fake Bailian, and a fake platform receiving deliveries through the signed
//! webhook channel. Replicas are OS processes so that `kill -9` is real.

// Test code: a failed setup step should stop the test right there.
#![allow(clippy::unwrap_used)]

mod cluster;
mod conformance;
mod dingtalk;
mod dingtalk_card;
mod dingtalk_stream;
mod first_minute;
mod hardening;
mod harness;
mod operations;
mod passive_takeover;
pub(crate) mod privacy;
mod scenarios;
mod sources;
mod web;
mod web_browser;
mod wecom;
