//! The integration tests that drive the server in process (conversation core, LLM wire formats
//! and errors, ordering, the delivery engine's parts, the HTTP surface, the chat CLI), in one
//! binary: each test binary links the whole service, and on two cores linking is what a change
//! to `src/` waits for. The WeChat and multi-process suites keep binaries of their own.

// Test code: a failed setup step should stop the test right there.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod chat_cli;
mod conversation;
mod delivery;
mod http;
mod llm_errors;
mod llm_transport;
mod llm_wire;
mod ordering;
mod redis_scan;
