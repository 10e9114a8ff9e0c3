//! Stream mode (inbound.md §8): the robot opens a WebSocket to DingTalk instead of exposing a
//! URL. Pure pieces only: the connection-open call, the socket URL, server frames parsed, and
//! the ACK frames answering them. The gateway owns the socket, the reconnects and the clock.
//!
//! A frame carries no signature: the TLS connection opened with a single-use ticket is what
//! authenticates it. Frames are still untrusted input: every parse returns errors, never panics.

mod ack;
mod frame;
mod open;

use std::time::Duration;

pub use ack::{
    ack_callback, ack_error, ack_not_found, ack_pong, Ack, CALLBACK_ACK_DATA, CODE_BAD_REQUEST,
    CODE_NOT_FOUND, CODE_OK,
};
pub use frame::{parse_frame, Frame, MAX_FRAME_BYTES};
pub use open::{
    websocket_url, OpenConnectionRequest, OpenConnectionResponse, Subscription, OPEN_CONNECTION_URL,
};

/// The topic robot messages arrive on.
pub const BOT_MESSAGE_TOPIC: &str = "/v1.0/im/bot/messages/get";

/// How long a ticket may wait before it is used, once: fetch a new one for every connection.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(90);
