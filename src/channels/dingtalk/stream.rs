//! Stream mode (inbound.md §8): botgate holds a WebSocket to DingTalk, opened with a fresh
//! ticket each time, and ACKs every robot message once it is durably queued. On a
//! `disconnect` frame the next connection is opened before the old one is let go; a dropped
//! or silent socket reconnects with backoff and jitter.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use botgate_contract::Inbound;
use botgate_dingtalk::stream::{
    ack_callback, ack_error, ack_not_found, ack_pong, parse_frame, Frame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::api::DingtalkApi;
use super::sender::DingtalkSender;
use crate::channels::source::Admit;
use crate::channels::source::{Source, SourceStatus};
use crate::telemetry::log_message_id;

/// After this long without a frame the client pings (a WebSocket control frame, as the SDKs
/// do); another as long without even the pong means the connection is dead though TCP has not
/// noticed: 90 s in all.
const KEEPALIVE: Duration = Duration::from_secs(45);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One bot's Stream connection.
pub struct DingtalkStream {
    pub(super) bot: String,
    pub(super) api: Arc<DingtalkApi>,
    pub(super) sender: DingtalkSender,
}

/// Why a connection ended.
enum Ended {
    Shutdown,
    /// No connection could be opened: try again after a growing backoff.
    Failed(String),
    /// A connection that was up failed or went quiet: try again soon, the backoff starting over.
    Lost(String),
}

/// A replacement connection being opened.
type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Socket, String>> + Send + 'a>>;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Source for DingtalkStream {
    fn name(&self) -> String {
        format!("dingtalk-stream:{}", self.bot)
    }

    async fn run(
        self: Arc<Self>,
        inlet: Arc<dyn Admit>,
        status: Arc<SourceStatus>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = FIRST_BACKOFF;
        while !*shutdown.borrow() {
            let ended = self.connection(&*inlet, &status, &mut shutdown).await;
            status.disconnected();
            let reason = match ended {
                Ended::Shutdown => break,
                Ended::Failed(reason) => reason,
                Ended::Lost(reason) => {
                    // It was up: the failures before it say nothing about this one.
                    backoff = FIRST_BACKOFF;
                    reason
                }
            };
            tracing::warn!(bot = %self.bot, %reason, retry_in_ms = backoff.as_millis() as u64, "DingTalk Stream connection lost");
            let wait = crate::clock::jittered(backoff, backoff / 2);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
        status.disconnected();
    }
}

impl DingtalkStream {
    /// Opens a connection: a fresh ticket, then the WebSocket.
    async fn connect(&self) -> Result<Socket, String> {
        let opened = self.api.open_connection(crate::http::USER_AGENT).await?;
        // The URL carries the ticket: it is never logged.
        let connect = tokio_tungstenite::connect_async(opened.websocket_url());
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(error)) => Err(format!("websocket: {error}")),
            Err(_) => Err("websocket: connect timed out".to_owned()),
        }
    }

    /// Opens one connection and serves it until it ends. When DingTalk asks for a new one
    /// (`disconnect`), the next is opened while this one still delivers, and replaces it once
    /// connected, so no message waits on the gap.
    async fn connection(
        &self,
        inlet: &dyn Admit,
        status: &SourceStatus,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut socket = match self.connect().await {
            Ok(socket) => socket,
            Err(reason) => return Ended::Failed(reason),
        };
        status.connected();
        tracing::info!(bot = %self.bot, "DingTalk Stream connected");
        let mut pinged = false;
        let mut replacement: Option<Connecting<'_>> = None;
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(KEEPALIVE, socket.next()) => next,
                replaced = async { replacement.as_mut().expect("guarded").await }, if replacement.is_some() => {
                    replacement = None;
                    if let Err(ended) = self.adopt(&mut socket, replaced, status).await {
                        return ended;
                    }
                    pinged = false;
                    continue;
                }
                _ = shutdown.changed() => {
                    let _ = socket.close(None).await;
                    return Ended::Shutdown;
                }
            };
            let text = match next {
                Err(_) if pinged => {
                    return Ended::Lost("no frame, not even a pong, for 90 s".to_owned())
                }
                Err(_) => {
                    if let Err(error) = socket.send(Message::Ping(Default::default())).await {
                        return Ended::Lost(format!("websocket ping: {error}"));
                    }
                    pinged = true;
                    continue;
                }
                // The old connection ended (DingTalk drops it once the new one is up) while
                // its replacement was still opening: carry on with the replacement.
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_))))
                    if replacement.is_some() =>
                {
                    let replaced = replacement.take().expect("guarded").await;
                    if let Err(ended) = self.adopt(&mut socket, replaced, status).await {
                        return ended;
                    }
                    pinged = false;
                    continue;
                }
                Ok(None) => return Ended::Lost("socket closed".to_owned()),
                Ok(Some(Err(error))) => return Ended::Lost(format!("websocket: {error}")),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) => {
                    return Ended::Lost("closed by DingTalk".to_owned())
                }
                // Pings are answered by the socket itself; binary frames are not DingTalk's.
                Ok(Some(Ok(_))) => {
                    pinged = false;
                    status.frame();
                    continue;
                }
            };
            pinged = false;
            status.frame();
            match self.frame(inlet, &mut socket, text.as_str()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(bot = %self.bot, "DingTalk asked for a new Stream connection");
                    if replacement.is_none() {
                        replacement = Some(Box::pin(self.connect()));
                    }
                }
                Err(reason) => return Ended::Lost(reason),
            }
        }
    }

    /// Carries on with the connection opened on DingTalk's request in place of `socket`;
    /// DingTalk redelivers whatever the old one had not ACKed.
    async fn adopt(
        &self,
        socket: &mut Socket,
        replaced: Result<Socket, String>,
        status: &SourceStatus,
    ) -> Result<(), Ended> {
        let new = replaced.map_err(Ended::Lost)?;
        let _ = socket.close(None).await;
        *socket = new;
        status.connected();
        tracing::info!(bot = %self.bot, "DingTalk Stream replaced by a new connection");
        Ok(())
    }

    /// Acts on one text frame; `Ok(false)` when DingTalk asks for a new connection.
    async fn frame(
        &self,
        inlet: &dyn Admit,
        socket: &mut Socket,
        text: &str,
    ) -> Result<bool, String> {
        let ack = match parse_frame(text) {
            Err(error) => {
                tracing::warn!(bot = %self.bot, %error, "unreadable Stream frame");
                return Ok(true);
            }
            Ok(Frame::Disconnect { reason }) => {
                tracing::info!(bot = %self.bot, reason = reason.as_deref().unwrap_or(""), "Stream disconnect frame");
                return Ok(false);
            }
            Ok(Frame::Ping { message_id, data }) => ack_pong(&message_id, &data),
            Ok(Frame::Other {
                message_id: None, ..
            }) => return Ok(true),
            Ok(Frame::Other {
                message_id: Some(message_id),
                ..
            }) => ack_not_found(&message_id),
            Ok(Frame::Callback {
                message_id, data, ..
            }) => match data {
                Err(error) => {
                    tracing::warn!(bot = %self.bot, %error, "a Stream robot message that cannot be read");
                    ack_error(&message_id, "unreadable robot message")
                }
                Ok(Inbound::Message { message, reply }) => {
                    // Durable before the ACK: unACKed, DingTalk sends the message again.
                    let queued = match self.sender.robot.remember(&message, &reply).await {
                        Ok(()) => inlet.admit(&self.bot, &message).await.map(drop),
                        Err(error) => Err(error),
                    };
                    if let Err(error) = queued {
                        tracing::error!(bot = %self.bot, message_id = %log_message_id(&message.message_id), %error, "Stream message not queued; left unacknowledged");
                        return Ok(true);
                    }
                    tracing::debug!(bot = %self.bot, message_id = %log_message_id(&message.message_id), "Stream message queued");
                    ack_callback(&message_id)
                }
                Ok(_) => ack_callback(&message_id),
            },
        };
        socket
            .send(Message::text(ack))
            .await
            .map_err(|error| format!("websocket send: {error}"))?;
        Ok(true)
    }
}
