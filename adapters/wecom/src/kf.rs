//! WeCom customer service (微信客服, kf): the callback only says "pull"; these are the pure bodies
//! of that pull (`kf/sync_msg`) and of the answer (`kf/send_msg`, `kf/send_msg_on_event`).
//!
//! inbound.md §4. The HTTP calls, the access token, the persisted cursor and the serialisation
//! of pulls per `open_kfid` live in the gateway; this module only reads and writes JSON.
//!
//! - `sync.rs`: [`SyncMsgRequest`], [`SyncMsgResponse`].
//! - `item.rs`: one pulled message ([`KfMessage`]) mapped to what the gateway does ([`KfItem`]).
//! - `send.rs`: [`SendMsgRequest`], [`SendMsgOnEventRequest`], [`SendMsgId`].

mod item;
mod send;
mod sync;

pub use item::{
    map_kf_message, parse_kf_item, KfEvent, KfItem, KfMessage, KfText, ORIGIN_CUSTOMER,
    ORIGIN_SERVICER, ORIGIN_SYSTEM,
};
pub use send::{
    SendBody, SendMsgId, SendMsgOnEventRequest, SendMsgRequest, SendMsgResponse, SendText,
    MAX_SEND_MSGID_BYTES, MAX_SEND_TEXT_BYTES,
};
pub use sync::{SyncMsgRequest, SyncMsgResponse, MAX_SYNC_LIMIT};
