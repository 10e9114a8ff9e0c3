//! HTTP/2 behaviour that needs a server doing something particular (hanging, closing
//! gracefully, allowing few streams): the `h2` crate's own server, in cleartext.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::connection::Pings;
use super::tests::call;
use super::{h2_request, Address, LlmError, Origin, Request};

/// Bounds a step only so that a broken client fails the test instead of hanging it.
const HANG: Duration = Duration::from_secs(10);

/// An HTTP/2 server on `127.0.0.1:0` running `serve` on every connection it accepts.
struct Server {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Server {
    async fn start<F, Fut>(serve: F) -> Server
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = accepted.clone();
        crate::spawn_traced(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                crate::spawn_traced(serve(socket));
            }
        });
        Server { port, accepted }
    }

    /// Connections accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// A cleartext origin for it, pinged as `pings` says.
    fn origin(&self, pings: Pings) -> Arc<Origin> {
        let url = reqwest::Url::parse(&self.url()).expect("a URL");
        let address = Address::of(&url, false).expect("an address");
        Arc::new(Origin {
            pings,
            ..Origin::new(address, None)
        })
    }

    fn request(&self) -> Request {
        let request = reqwest::Client::new()
            .post(format!("{}/answer", self.url()))
            .body("{}")
            .build()
            .expect("a request");
        h2_request(request).expect("an HTTP/2 request")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Answers every request 200 with its body left open, allowing `streams` at once.
async fn answer_and_hold(socket: TcpStream, streams: u32) {
    let mut connection = h2::server::Builder::new()
        .max_concurrent_streams(streams)
        .handshake::<_, Bytes>(socket)
        .await
        .expect("handshake");
    let mut open = Vec::new();
    while let Some(Ok((_, mut respond))) = connection.accept().await {
        let response = http::Response::new(());
        open.push(respond.send_response(response, false).expect("answer"));
    }
}

/// A server that stops answering (its process hung, a network path black-holed) leaves calls
/// waiting on a stream that will never answer: the connection's pings notice, the call fails
/// (the LLM retry loop tries again) and the next call opens a new connection.
#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_closed_and_replaced() {
    let server = Server::start(|socket| async move {
        let mut connection = h2::server::handshake(socket).await.expect("handshake");
        let _request = connection.accept().await;
        // Never answered, and the connection never polled again: no pong either.
        std::future::pending::<()>().await;
        drop(connection);
    })
    .await;
    let origin = server.origin(Pings {
        every: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
    });

    let first = tokio::time::timeout(HANG, call(&origin, server.request(), None))
        .await
        .expect("the pings ended the call");
    assert!(first.is_err(), "a hung server answered");
    let _second = tokio::time::timeout(HANG, call(&origin, server.request(), None))
        .await
        .expect("the pings ended the call");

    assert_eq!(
        server.accepted(),
        2,
        "the second call went to a new connection"
    );
}

/// Servers close connections gracefully (nginx after 1,000 requests on one, a load balancer
/// draining): a GOAWAY lets the calls in flight finish and refuses new ones on it. A call that
/// meets such a connection goes to another at once, without failing: nothing of it was sent;
/// the call in flight still gets its whole answer.
#[tokio::test]
async fn a_call_after_goaway_goes_to_a_new_connection() {
    let server = Server::start(serve_then_go_away).await;
    let origin = server.origin(Pings::DEFAULT);

    // The first call on each connection is held open: the GOAWAY that follows the second
    // call's answer does not close the connection while it runs.
    let held = call(&origin, server.request(), None)
        .await
        .expect("answered");
    let second = call(&origin, server.request(), None)
        .await
        .expect("answered");
    assert_eq!(second.status(), 200);
    assert_eq!(server.accepted(), 1);

    let third = call(&origin, server.request(), None)
        .await
        .expect("answered on a new connection");

    assert_eq!(third.status(), 200);
    assert_eq!(server.accepted(), 2);
    let finished = held
        .bytes()
        .await
        .expect("the call in flight finished after the GOAWAY");
    assert_eq!(&finished[..], b"done");
}

/// Answers every request 200 with its body left open; after the second, a GOAWAY goes out
/// before the answer, so the client knows of it by the time the answer arrives, and then the
/// first request's body ends with `done`.
async fn serve_then_go_away(socket: TcpStream) {
    let mut connection = h2::server::handshake(socket).await.expect("handshake");
    let mut streams = Vec::new();
    while let Some(Ok((_, mut respond))) = connection.accept().await {
        if streams.len() == 1 {
            connection.graceful_shutdown();
        }
        let response = http::Response::new(());
        streams.push(respond.send_response(response, false).expect("answer"));
        if streams.len() == 2 {
            streams[0]
                .send_data(Bytes::from_static(b"done"), true)
                .expect("the first body");
        }
    }
}

/// A server that allows fewer concurrent streams than botgate's own limit: the call beyond
/// its limit opens another connection instead of waiting in h2's queue for an answer to end.
#[tokio::test]
async fn a_servers_lower_stream_limit_opens_another_connection() {
    let server = Server::start(|socket| answer_and_hold(socket, 2)).await;
    let origin = server.origin(Pings::DEFAULT);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            call(&origin, server.request(), None)
                .await
                .expect("answered"),
        );
    }

    let third = tokio::time::timeout(HANG, call(&origin, server.request(), None))
        .await
        .expect("not queued behind the two held answers")
        .expect("answered");

    assert_eq!(third.status(), 200);
    assert_eq!(server.accepted(), 2);
}

/// A stream the server had not taken when it sent GOAWAY (its id above the GOAWAY's last
/// stream id) was not processed (RFC 9113 §6.8): the call fails as `Unprocessed`, which the
/// LLM retry loop sends again at once instead of after a backoff, and the next call goes to a
/// new connection.
#[tokio::test]
async fn a_stream_above_the_goaway_last_id_fails_as_unprocessed() {
    let server = Server::start(|socket| async move {
        go_away_at_first_request(socket).await;
    })
    .await;
    let origin = server.origin(Pings::DEFAULT);

    let refused = tokio::time::timeout(HANG, call(&origin, server.request(), None))
        .await
        .expect("the GOAWAY ended the call");

    let error = refused.expect_err("a server that processed nothing answered");
    assert!(matches!(error, LlmError::Unprocessed(_)), "{error}");
    let _ = tokio::time::timeout(HANG, call(&origin, server.request(), None)).await;
    assert_eq!(
        server.accepted(),
        2,
        "the next call opened a new connection"
    );
}

/// Speaks just enough HTTP/2 by hand to send what the `h2` crate's server cannot be made to
/// send on cue: GOAWAY with last stream id 0 as soon as a request's HEADERS arrive.
async fn go_away_at_first_request(mut socket: TcpStream) {
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    const GOAWAY: u8 = 0x7;
    let mut preface = [0u8; 24];
    if socket.read_exact(&mut preface).await.is_err() {
        return;
    }
    let _ = socket.write_all(&frame(SETTINGS, 0, &[])).await;
    let mut head = [0u8; 9];
    while socket.read_exact(&mut head).await.is_ok() {
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; length];
        if socket.read_exact(&mut payload).await.is_err() {
            return;
        }
        let reply = match (head[3], head[4] & 0x1) {
            (SETTINGS, 0) => frame(SETTINGS, 0x1, &[]),
            // Last stream id 0, NO_ERROR: nothing was processed.
            (HEADERS, _) => frame(GOAWAY, 0, &[0; 8]),
            _ => continue,
        };
        let _ = socket.write_all(&reply).await;
    }
}

/// One HTTP/2 frame on stream 0.
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}
