//! The HTTP/2 client over TLS against the fake Bailian behind a TLS front, trusting the front's
//! self-signed certificate instead of the webpki roots (the only difference from production).

use std::sync::Arc;

use botgate_testkit::{FakeBailian, TlsFront};
use bytes::Bytes;
use futures_util::future::join_all;

use super::connection::Pings;
use super::tls::{h2_tls, web_tls};
use super::{h2_request, send_on, Address, Origin, Request, MAX_STREAMS};
use crate::llm::LlmError;

async fn fake_behind_tls(alpn: &[&[u8]]) -> (FakeBailian, TlsFront) {
    let fake = FakeBailian::start().await;
    let port = reqwest::Url::parse(&fake.base_url())
        .expect("the fake's URL")
        .port()
        .expect("a port");
    let front = TlsFront::start(port, alpn).await;
    (fake, front)
}

/// An origin offering HTTP/2 only (`http2 = true`), or HTTP/1.1 too (`auto`).
fn trusting(front: &TlsFront, offer_http1: bool) -> Arc<Origin> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(front.certificate().to_vec().into())
        .expect("the front's certificate");
    origin(front, h2_tls(roots, offer_http1), offer_http1)
}

fn origin(front: &TlsFront, tls: Arc<rustls::ClientConfig>, offer_http1: bool) -> Arc<Origin> {
    let url = reqwest::Url::parse(&front.url()).expect("the front's URL");
    let address = Address::of(&url, offer_http1).expect("an address");
    Arc::new(Origin::new(address, Some(tls)))
}

/// `auto`'s HTTP/1.1 client, as botgate builds it, trusting the front.
fn http1_client(front: &TlsFront) -> reqwest::Client {
    crate::http::llm_client_builder()
        .add_root_certificate(
            reqwest::Certificate::from_der(front.certificate()).expect("the front's certificate"),
        )
        .build()
        .expect("a client")
}

/// A non-streaming native Bailian call, as the provider makes it.
fn completion(fake: &FakeBailian, front: &TlsFront, prompt: &str) -> Request {
    let url = fake
        .completion_url()
        .replace(&fake.base_url(), &front.url());
    let body = serde_json::json!({ "input": { "prompt": prompt }, "parameters": {} });
    let request = reqwest::Client::new()
        .post(url)
        .bearer_auth(fake.api_key())
        .json(&body)
        .build()
        .expect("a request");
    h2_request(request).expect("an HTTP/2 request")
}

async fn call(
    origin: &Arc<Origin>,
    request: Request,
    fallback: Option<reqwest::Client>,
) -> Result<reqwest::Response, LlmError> {
    send_on(origin.clone(), request, fallback).await
}

async fn status(origin: &Arc<Origin>, request: Request) -> Result<u16, LlmError> {
    call(origin, request, None)
        .await
        .map(|response| response.status().as_u16())
}

#[tokio::test]
async fn calls_over_tls_share_one_http2_connection() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    let origin = trusting(&front, false);

    let statuses =
        join_all((0..5).map(|n| status(&origin, completion(&fake, &front, &format!("问题{n}")))))
            .await;

    for status in statuses {
        assert_eq!(status.expect("answered"), 200);
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests
        .iter()
        .all(|request| request.http_version == "HTTP/2.0"));
    assert_eq!(front.connections(), 1, "one TLS connection for all five");
}

/// Whether the server offers other protocols (it then refuses the handshake) or none (it
/// completes it without choosing one), the error says what to change.
#[tokio::test]
async fn a_server_that_will_not_speak_http2_gets_a_clear_error() {
    for offered in [&[&b"http/1.1"[..]][..], &[]] {
        let (fake, front) = fake_behind_tls(offered).await;
        let origin = trusting(&front, false);

        let error = status(&origin, completion(&fake, &front, "在吗"))
            .await
            .expect_err("refused");

        assert!(
            error.to_string().contains("did not agree to HTTP/2"),
            "{offered:?}: {error}"
        );
        assert_eq!(fake.calls(), 0);
    }
}

#[tokio::test]
async fn a_certificate_outside_the_webpki_roots_is_refused() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    let origin = origin(&front, web_tls(false), false);

    let error = status(&origin, completion(&fake, &front, "在吗"))
        .await
        .expect_err("untrusted");

    assert!(error.to_string().contains("TLS"), "{error}");
    assert_eq!(fake.calls(), 0);
}

/// A server restart closes the connection; the next calls open a new one. The first call after
/// the close may still meet the old connection before botgate notices its end, and fail (the
/// LLM retry loop retries it); the one after that must not.
#[tokio::test]
async fn a_closed_connection_is_replaced() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    let origin = trusting(&front, false);
    assert_eq!(
        status(&origin, completion(&fake, &front, "一"))
            .await
            .expect("answered"),
        200
    );

    front.close_connections().await;
    let first = status(&origin, completion(&fake, &front, "二")).await;
    let answered = match first {
        Ok(status) => status,
        Err(_) => status(&origin, completion(&fake, &front, "三"))
            .await
            .expect("answered on a new connection"),
    };

    assert_eq!(answered, 200);
    assert_eq!(front.connections(), 2);
}

/// `auto` offers both; a server that offers both too speaks HTTP/2.
#[tokio::test]
async fn auto_speaks_http2_to_a_server_that_offers_both() {
    let (fake, front) = fake_behind_tls(&[b"h2", b"http/1.1"]).await;
    let origin = trusting(&front, true);

    let answered = join_all((0..3).map(|n| {
        call(
            &origin,
            completion(&fake, &front, &format!("问题{n}")),
            Some(http1_client(&front)),
        )
    }))
    .await;

    for response in answered {
        assert_eq!(response.expect("answered").status(), 200);
    }
    let versions: Vec<String> = fake
        .requests()
        .into_iter()
        .map(|r| r.http_version)
        .collect();
    assert_eq!(versions, ["HTTP/2.0"; 3]);
    assert_eq!(front.connections(), 1);
}

/// A server that picks HTTP/1.1 (or nothing) is asked over HTTP/1.1, at once and from then
/// on, without offering HTTP/2 again on every call.
#[tokio::test]
async fn auto_falls_back_to_http1_for_a_server_that_will_not_speak_http2() {
    for offered in [&[&b"http/1.1"[..]][..], &[]] {
        let (fake, front) = fake_behind_tls(offered).await;
        let origin = trusting(&front, true);
        let client = http1_client(&front);

        for n in 0..3 {
            let response = call(
                &origin,
                completion(&fake, &front, &format!("问题{n}")),
                Some(client.clone()),
            )
            .await
            .expect("answered");
            assert_eq!(response.status(), 200, "{offered:?}");
            response.bytes().await.expect("the body");
        }

        let versions: Vec<String> = fake
            .requests()
            .into_iter()
            .map(|r| r.http_version)
            .collect();
        assert_eq!(versions, ["HTTP/1.1"; 3], "{offered:?}");
        assert_eq!(
            front.connections(),
            2,
            "{offered:?}: the handshake that found HTTP/1.1, then one kept-alive connection"
        );
    }
}

/// A connection carries at most `MAX_STREAMS` calls (a response counts until it is dropped);
/// the next call opens another, and freed streams are used again before a new connection.
#[tokio::test]
async fn calls_beyond_a_connections_streams_open_another() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    let origin = trusting(&front, false);
    let mut held = Vec::new();
    for n in 0..MAX_STREAMS {
        let response = call(&origin, completion(&fake, &front, &format!("{n}")), None)
            .await
            .expect("answered");
        held.push(response);
    }
    assert_eq!(
        front.connections(),
        1,
        "{MAX_STREAMS} calls on one connection"
    );

    let beyond = call(&origin, completion(&fake, &front, "再来"), None)
        .await
        .expect("answered");
    assert_eq!(beyond.status(), 200);
    assert_eq!(front.connections(), 2, "one more opened a second");

    drop(held);
    drop(beyond);
    let mut again = Vec::new();
    for n in 0..2 * MAX_STREAMS {
        let response = call(&origin, completion(&fake, &front, &format!("又{n}")), None)
            .await
            .expect("answered");
        again.push(response);
    }
    assert_eq!(
        front.connections(),
        2,
        "the streams of dropped responses were free again: two connections carry {}",
        2 * MAX_STREAMS
    );
    assert_eq!(fake.calls(), 3 * MAX_STREAMS + 1);
}

/// A server that stops answering (its process hung, a network path black-holed) leaves calls
/// waiting on a stream that will never answer: the connection's pings notice, the call fails
/// (the LLM retry loop tries again) and the next call opens a new connection.
#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_closed_and_replaced() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = accepted.clone();
    let _server = crate::spawn_traced(async move {
        let mut hung = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut connection = h2::server::handshake(socket).await.expect("handshake");
            let request = connection.accept().await;
            // Never answered, and the connection never polled again: no pong either.
            hung.push((connection, request));
        }
    });
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).expect("a URL");
    let origin = Arc::new(Origin {
        pings: Pings {
            every: std::time::Duration::from_millis(50),
            timeout: std::time::Duration::from_millis(200),
        },
        ..Origin::new(Address::of(&url, false).expect("an address"), None)
    });
    let request = |prompt: &str| {
        let request = reqwest::Client::new()
            .post(format!("{url}api/v1/apps/app/completion"))
            .json(&serde_json::json!({ "input": { "prompt": prompt } }))
            .build()
            .expect("a request");
        h2_request(request).expect("an HTTP/2 request")
    };

    // Bounded only so a broken keep-alive fails the test instead of hanging it.
    let first = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        call(&origin, request("一"), None),
    )
    .await
    .expect("the pings ended the call");
    assert!(first.is_err(), "a hung server answered");
    let _second = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        call(&origin, request("二"), None),
    )
    .await
    .expect("the pings ended the call");

    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the second call went to a new connection"
    );
}

/// Every byte read gives h2's flow-control windows back: one answer larger than both the
/// stream's window (2 MiB) and the connection's (5 MiB) arrives whole.
#[tokio::test]
async fn an_answer_larger_than_the_flow_control_windows_arrives_whole() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    // 6 MiB of three-byte characters.
    fake.set_answer(botgate_testkit::Answer::Fixed("长".repeat(2 * 1024 * 1024)));
    let origin = trusting(&front, false);

    let response = call(&origin, completion(&fake, &front, "长一点"), None)
        .await
        .expect("answered");
    // Bounded only so a stalled stream fails the test instead of hanging it.
    let body = tokio::time::timeout(std::time::Duration::from_secs(20), response.bytes())
        .await
        .expect("not stalled")
        .expect("the body");

    assert!(body.len() > 6 * 1024 * 1024, "{} bytes", body.len());
}

/// Servers close connections gracefully (nginx after 1,000 requests on one, a load balancer
/// draining): a GOAWAY lets the calls in flight finish and refuses new ones on it. A call that
/// meets such a connection goes to another at once, without failing: nothing of it was sent;
/// the call in flight still gets its whole answer.
#[tokio::test]
async fn a_call_after_goaway_goes_to_a_new_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = accepted.clone();
    let _server = crate::spawn_traced(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            crate::spawn_traced(serve_then_go_away(socket));
        }
    });
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).expect("a URL");
    let origin = Arc::new(Origin::new(
        Address::of(&url, false).expect("an address"),
        None,
    ));
    let request = || {
        let request = reqwest::Client::new()
            .post(format!("{url}answer"))
            .body("{}")
            .build()
            .expect("a request");
        h2_request(request).expect("an HTTP/2 request")
    };

    // The first call on each connection is held open: the GOAWAY that follows the second
    // call's answer does not close the connection while it runs.
    let held = call(&origin, request(), None).await.expect("answered");
    let second = call(&origin, request(), None).await.expect("answered");
    assert_eq!(second.status(), 200);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

    let third = call(&origin, request(), None)
        .await
        .expect("answered on a new connection");

    assert_eq!(third.status(), 200);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    let finished = held
        .bytes()
        .await
        .expect("the call in flight finished after the GOAWAY");
    assert_eq!(&finished[..], b"done");
}

/// Answers every request 200 with its body left open; after the second, a GOAWAY goes out
/// before the answer, so the client knows of it by the time the answer arrives, and then the
/// first request's body ends with `done`.
async fn serve_then_go_away(socket: tokio::net::TcpStream) {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = accepted.clone();
    let _server = crate::spawn_traced(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            crate::spawn_traced(async move {
                let mut connection = h2::server::Builder::new()
                    .max_concurrent_streams(2)
                    .handshake::<_, Bytes>(socket)
                    .await
                    .expect("handshake");
                let mut open = Vec::new();
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    let response = http::Response::new(());
                    open.push(respond.send_response(response, false).expect("answer"));
                }
            });
        }
    });
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).expect("a URL");
    let origin = Arc::new(Origin::new(
        Address::of(&url, false).expect("an address"),
        None,
    ));
    let request = || {
        let request = reqwest::Client::new()
            .post(format!("{url}answer"))
            .body("{}")
            .build()
            .expect("a request");
        h2_request(request).expect("an HTTP/2 request")
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(call(&origin, request(), None).await.expect("answered"));
    }

    // Bounded only so a call queued behind the server's limit fails the test instead of
    // hanging it.
    let third = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        call(&origin, request(), None),
    )
    .await
    .expect("not queued behind the two held answers")
    .expect("answered");

    assert_eq!(third.status(), 200);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}
