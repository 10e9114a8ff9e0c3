//! The DingTalk (钉钉) adapter: enterprise-internal robots in HTTP mode and Stream mode.
//!
//! Pure: bytes and strings in, data out. No I/O, no clock, no randomness of its own (the caller
//! passes `now` and any random bytes), so every path is testable and fuzzable. Protocol:
//! `shared/reference/inbound.md` §6 (HTTP mode), §8 (Stream), §7 (event subscription crypto);
//! `outbound.md` §4 (replies).
//!
//! botgate never answers a robot message inside the callback's response: HTTP mode gets `200`
//! with an empty body, Stream mode an ACK frame, and the answer goes to the message's session
//! webhook, or through the robot OpenAPI once that has expired ([`ReplyContext`]).
//!
//! # Layout
//!
//! - `robot.rs`: [`DingtalkRobot`], HTTP-mode checks (`sign`, `timestamp`) and decoding.
//! - `signature.rs`: [`sign`] and the millisecond timestamp window.
//! - `adapter.rs`: the [`botgate_contract::Adapter`] impl.
//! - `wire.rs`: the robot message JSON ([`RobotMessage`]), the same in both modes.
//! - `inbound.rs`: a robot message mapped to a message or an ignore ([`decode_robot_message`]).
//! - `reply.rs`: [`ReplyContext`], where and to whom an answer goes.
//! - [`stream`]: Stream mode: connection open, socket URL, frames, ACKs.
//! - [`outbound`]: session-webhook and OpenAPI bodies, the access token, the host allow-list,
//!   and [`outbound::PARTS`], how an answer is cut into messages.
//! - [`event`]: event-subscription push (WXBizMsgCrypt in JSON with ms timestamps).
//! - [`simulator`]: DingTalk's side (signed requests, Stream frames) for the simulator and tests.
//!
//! # Trust
//!
//! HTTP mode's `sign` covers the timestamp and the AppSecret only, **not the body**: whoever
//! holds one valid `timestamp`/`sign` pair can post any body for the rest of the window. So the
//! window stays as narrow as DingTalk allows, [`DingtalkRobot::robot_code`] ties bodies to the
//! robot, the core dedups on `msgId`, and a session webhook is only ever used when its host is
//! DingTalk's ([`outbound::webhook_host_allowed`]): a forged body must not aim the gateway's
//! POST at anything else. Stream frames carry no signature at all; the TLS connection opened
//! with a single-use ticket authenticates them.

mod adapter;
pub mod event;
mod inbound;
pub mod outbound;
mod reply;
mod robot;
mod signature;
pub mod simulator;
pub mod stream;
pub mod wire;

pub use adapter::ACKNOWLEDGE;
pub use inbound::{decode_robot_message, map_robot_message, RobotInbound};
pub use outbound::OutgoingMessage;
pub use reply::{ConversationType, ReplyContext};
pub use robot::{
    DingtalkRobot, DEFAULT_TIMESTAMP_WINDOW, MIN_TIMESTAMP_WINDOW, SIGN_HEADER, TIMESTAMP_HEADER,
};
pub use signature::{sign, sign_matches};
pub use simulator::{SignedRequest, SimulatedMessage};
pub use wire::{RobotMessage, MAX_BODY_BYTES};
