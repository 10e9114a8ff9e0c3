//! [`FakeStreamGateway`]: DingTalk's Stream-mode WebSocket gateway on a loopback port. It
//! records the ticket of every connection and every frame the client sends (ACKs), and pushes
//! the frames a test gives it to the latest connection. The `connections/open` call that hands
//! out endpoint and ticket is answered by a [`crate::FakePlatform`] with
//! [`FakeStreamGateway::open_response`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::server::{lock, wait_until};

/// What the test asks of the latest connection.
enum Command {
    Push(String),
    Close,
}

#[derive(Default)]
struct State {
    tickets: Vec<String>,
    frames: Vec<Value>,
    current: Option<mpsc::UnboundedSender<Command>>,
    /// `open N` and `client closed N`, in order (connections numbered from 1).
    log: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    connections: watch::Sender<usize>,
    frames: watch::Sender<usize>,
}

pub struct FakeStreamGateway {
    port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl FakeStreamGateway {
    // A test double with no spans worth keeping (and no botgate dependency to keep them with).
    #[allow(clippy::disallowed_methods)]
    pub async fn start() -> FakeStreamGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            connections: watch::Sender::new(0),
            frames: watch::Sender::new(0),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, accepting.clone()));
            }
        });
        FakeStreamGateway {
            port,
            shared,
            accept,
        }
    }

    /// `ws://127.0.0.1:PORT/connect`, the `endpoint` DingTalk's `connections/open` returns.
    pub fn endpoint(&self) -> String {
        format!("ws://127.0.0.1:{}/connect", self.port)
    }

    /// The `connections/open` answer handing out `ticket` for this gateway.
    pub fn open_response(&self, ticket: &str) -> Value {
        json!({"endpoint": self.endpoint(), "ticket": ticket})
    }

    /// The ticket of each connection, in order.
    pub fn tickets(&self) -> Vec<String> {
        lock(&self.shared.state).tickets.clone()
    }

    /// Waits until `n` connections have been made; false if `timeout` passes first.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        wait_until(&self.shared.connections, n, timeout).await
    }

    /// Sends `frame` on the latest connection.
    pub fn push(&self, frame: &str) {
        let state = lock(&self.shared.state);
        let current = state.current.as_ref().expect("a connection to push on");
        current.send(Command::Push(frame.to_owned())).unwrap();
    }

    /// Drops the latest connection without a word, as a network failure would.
    pub fn close(&self) {
        if let Some(current) = lock(&self.shared.state).current.take() {
            let _ = current.send(Command::Close);
        }
    }

    /// When connections opened and when the client closed them (`open 2`, `client closed 1`),
    /// in order; a connection the gateway dropped because a newer one opened logs nothing.
    pub fn log(&self) -> Vec<String> {
        lock(&self.shared.state).log.clone()
    }

    /// Every text frame the client sent, parsed, in order.
    pub fn frames(&self) -> Vec<Value> {
        lock(&self.shared.state).frames.clone()
    }

    /// The client's frame answering `message_id`, once it arrives within `timeout`.
    pub async fn ack_for(&self, message_id: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frames = self.frames();
            if let Some(ack) = frames
                .iter()
                .find(|frame| frame["headers"]["messageId"] == message_id)
            {
                return Some(ack.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !wait_until(&self.shared.frames, frames.len() + 1, left).await {
                return None;
            }
        }
    }
}

impl Drop for FakeStreamGateway {
    fn drop(&mut self) {
        self.accept.abort();
        self.close();
    }
}

async fn serve(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut ticket = String::new();
    // The handshake callback's signature is tungstenite's, large error type included.
    #[allow(clippy::result_large_err)]
    let record_ticket = |request: &Request, response: Response| {
        ticket = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("ticket="))
            .unwrap_or_default()
            .to_owned();
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, record_ticket).await else {
        return;
    };
    let (commands, mut receive) = mpsc::unbounded_channel();
    let index = {
        let mut state = lock(&shared.state);
        state.tickets.push(ticket);
        state.current = Some(commands);
        let index = state.tickets.len();
        state.log.push(format!("open {index}"));
        index
    };
    let client_closed = |shared: &Shared| {
        lock(&shared.state)
            .log
            .push(format!("client closed {index}"));
    };
    shared.connections.send_modify(|count| *count += 1);
    let (mut outgoing, mut incoming) = socket.split();
    loop {
        tokio::select! {
            command = receive.recv() => match command {
                Some(Command::Push(frame)) => {
                    if outgoing.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Close) | None => return,
            },
            frame = incoming.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    lock(&shared.state).frames.push(value);
                    shared.frames.send_modify(|count| *count += 1);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    client_closed(&shared);
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
