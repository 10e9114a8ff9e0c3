//! One HTTP/2 connection on the `h2` crate: the handshake, the task that drives it and pings
//! it, and a call's response body.
//!
//! hyper's HTTP/2 client (on top of the same `h2`) spawns two tasks per request, one that waits
//! for the response and one that pipes the request body, each allocated at the size of its
//! largest task kind (~1.4 KiB). h2 keeps the body task's waker until the stream ends, so both
//! stay allocated while an answer is awaited: ~2.9 KiB per waiting call. Here a call is a
//! stream polled by the caller's own future, and its body, already in memory, is handed to h2
//! at once.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::LlmError;

/// How a connection with calls in flight is pinged, so a dead one is noticed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pings {
    pub every: Duration,
    /// Unanswered this long, the connection is closed and its calls fail.
    pub timeout: Duration,
}

impl Pings {
    pub(super) const DEFAULT: Pings = Pings {
        every: Duration::from_secs(20),
        timeout: Duration::from_secs(10),
    };
}

/// Flow-control windows, as hyper's client sets them: an answer's bytes flow without waiting for
/// the reader's window updates.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// The response headers botgate accepts (hyper's default): an LLM's are a few hundred bytes.
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// An open connection, for the calls that share it.
#[derive(Clone)]
pub(super) struct Connection {
    sender: h2::client::SendRequest<Bytes>,
    /// Calls whose response has not been dropped yet.
    in_flight: Arc<AtomicUsize>,
    /// Set once the connection ended (closed by either side, or unanswered pings).
    closed: Arc<AtomicBool>,
}

/// A call's place on its connection: counted there until its response body is dropped.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// Starts HTTP/2 on `io` and spawns the task that drives it.
    pub(super) async fn handshake<T>(io: T, pings: Pings) -> Result<Connection, LlmError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, mut connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .enable_push(false)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|error| LlmError::Transport(format!("HTTP/2 handshake: {error}")))?;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let ping_pong = connection.ping_pong();
        let (watched, ended) = (in_flight.clone(), closed.clone());
        // Not in the first call's span (`spawn_traced`): the connection outlives that call and
        // serves every later one.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(%error, "LLM HTTP/2 connection ended");
                },
                () = keep_alive(ping_pong, pings, watched) => {
                    tracing::warn!("an LLM HTTP/2 connection did not answer a ping; closed");
                }
            }
            ended.store(true, Ordering::Relaxed);
        });
        Ok(Connection {
            sender,
            in_flight,
            closed,
        })
    }

    /// Whether `other` is a handle onto this same connection (a failed call's connection,
    /// told from its replacement).
    pub(super) fn is(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.closed, &other.closed)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Whether another call fits: fewer than `most` in flight, and fewer than the server
    /// allows at once (`SETTINGS_MAX_CONCURRENT_STREAMS`), so that no call waits in h2's queue
    /// for an earlier answer to end.
    pub(super) fn has_room(&self, most: usize) -> bool {
        let limit = most.min(self.sender.current_max_send_streams());
        self.in_flight.load(Ordering::Relaxed) < limit
    }

    /// Counts one more call on this connection, until the returned [`Slot`] is dropped.
    pub(super) fn take_slot(&self) -> Slot {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Slot(self.in_flight.clone())
    }

    /// Sends `request` and waits for the response's head. The body, already in memory, goes
    /// to h2 with the headers.
    pub(super) async fn send(
        &self,
        request: Box<http::Request<Bytes>>,
        slot: Slot,
    ) -> Result<http::Response<ResponseBody>, SendError> {
        let sender = match self.sender.clone().ready().await {
            Ok(sender) => sender,
            Err(error) => return Err(SendError::NotSent(request, error)),
        };
        // In a block, so that nothing of the request is kept while the answer is awaited.
        let response = {
            let mut sender = sender;
            let (head, body) = request.into_parts();
            let (response, mut stream) = sender
                .send_request(http::Request::from_parts(head, ()), body.is_empty())
                .map_err(SendError::Failed)?;
            if !body.is_empty() {
                stream.send_data(body, true).map_err(SendError::Failed)?;
            }
            response
        };
        let response = response.await.map_err(SendError::Failed)?;
        Ok(response.map(|body| ResponseBody { body, _slot: slot }))
    }
}

/// Why [`Connection::send`] failed.
pub(super) enum SendError {
    /// Nothing went out: the connection takes no new calls (the server sent GOAWAY, or it is
    /// gone). The request comes back, for another connection.
    NotSent(Box<http::Request<Bytes>>, h2::Error),
    /// The call failed on its way or while its answer was awaited.
    Failed(h2::Error),
}

/// Pings while calls are in flight (an idle connection is left for the server to close);
/// returns when a ping goes unanswered.
async fn keep_alive(ping_pong: Option<h2::PingPong>, pings: Pings, in_flight: Arc<AtomicUsize>) {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(pings.every).await;
        if in_flight.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let pong = tokio::time::timeout(pings.timeout, ping_pong.ping(h2::Ping::opaque())).await;
        if !matches!(pong, Ok(Ok(_))) {
            return;
        }
    }
}

/// A response body read off its stream: gives the flow-control window back as data is read,
/// and keeps the call counted on its connection until dropped.
pub(super) struct ResponseBody {
    body: h2::RecvStream,
    _slot: Slot,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, h2::Error>>> {
        let body = &mut self.get_mut().body;
        match body.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                // Fails only once the stream is gone, which the next poll reports.
                let _ = body.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(http_body::Frame::data(data))))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Ready(None) => match body.poll_trailers(cx) {
                Poll::Ready(Ok(Some(trailers))) => {
                    Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
                }
                Poll::Ready(Ok(None)) => Poll::Ready(None),
                Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}
