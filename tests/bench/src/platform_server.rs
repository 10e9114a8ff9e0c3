//! The lean fakes' server: raw keep-alive HTTP/1.1 on a thread and runtime of its own, because
//! the fakes share the two cores with the gateway they stand behind and must never wait behind
//! the load generator's tasks. What a request means and how it is answered is the fake's
//! ([`Respond`]); accepting, buffering and stopping are here.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

const READ_BYTES: usize = 16 * 1024;

/// A whole request at the start of the buffer.
pub struct Request<A> {
    /// Bytes of the request, head and body.
    pub length: usize,
    /// What to answer, decided from the request's bytes.
    pub answer: A,
    /// Whether the connection closes once it is answered.
    pub close: bool,
}

/// A fake's side of the server.
pub trait Respond: Send + Sync + 'static {
    type Answer: Send;
    /// The request at the start of `buffer`, once it is all there.
    fn next(&self, buffer: &[u8]) -> Option<Request<Self::Answer>>;
    fn answer(
        &self,
        stream: &mut TcpStream,
        answer: Self::Answer,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// A fake serving on 127.0.0.1 until dropped.
pub struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds a free port and serves `respond` on thread `name`; `what` names the fake in errors.
    pub fn start<R: Respond>(
        name: &str,
        what: &'static str,
        respond: Arc<R>,
    ) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || runtime.block_on(accept(listener, what, respond, stopped)))?;
        Ok(Server {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    #[cfg(test)]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept<R: Respond>(
    listener: std::net::TcpListener,
    what: &str,
    respond: Arc<R>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{what}: cannot listen: {error}");
            return;
        }
    };
    // Connections are tasks of a set, reaped as they end and aborted with it on stop.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve(stream, Arc::clone(&respond)));
                }
            }
        }
    }
}

/// One keep-alive connection: answers every complete request buffered, in order, then reads.
async fn serve<R: Respond>(mut stream: TcpStream, respond: Arc<R>) {
    // Each answer is written whole; waiting for an ACK before the next segment would only add
    // latency (and the fake Bailian's per-frame mode must put each event in a segment of its own).
    let _ = stream.set_nodelay(true);
    let mut buffer = BytesMut::with_capacity(READ_BYTES);
    loop {
        while let Some(request) = respond.next(&buffer) {
            buffer.advance(request.length);
            if respond.answer(&mut stream, request.answer).await.is_err() || request.close {
                return;
            }
        }
        buffer.reserve(READ_BYTES);
        match stream.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
