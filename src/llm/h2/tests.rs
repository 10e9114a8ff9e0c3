//! The HTTP/2 client over TLS against the fake Bailian behind a TLS front, trusting the front's
//! self-signed certificate instead of the webpki roots (the only difference from production).

use std::sync::Arc;

use botgate_testkit::{FakeBailian, TlsFront};
use futures_util::future::join_all;

use super::tls::{h2_tls, web_tls};
use super::{h2_request, send_on, Address, Origin, Request, MAX_STREAMS};
use crate::llm::LlmError;

async fn fake_behind_tls(alpn: &[&[u8]]) -> (FakeBailian, TlsFront) {
    let fake = FakeBailian::start().await;
    let front = TlsFront::before(&fake, alpn).await;
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
    front
        .trusted_by(crate::http::llm_client_builder())
        .build()
        .expect("a client")
}

/// A non-streaming native Bailian call, as the provider makes it.
fn completion(fake: &FakeBailian, front: &TlsFront, prompt: &str) -> Request {
    let url = front.completion_url(fake);
    let body = serde_json::json!({ "input": { "prompt": prompt }, "parameters": {} });
    let request = reqwest::Client::new()
        .post(url)
        .bearer_auth(fake.api_key())
        .json(&body)
        .build()
        .expect("a request");
    h2_request(request).expect("an HTTP/2 request")
}

pub(super) async fn call(
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

/// `calls` calls, one after the other, their responses held (each counts on its connection).
async fn hold(
    origin: &Arc<Origin>,
    fake: &FakeBailian,
    front: &TlsFront,
    calls: usize,
) -> Vec<reqwest::Response> {
    let mut held = Vec::new();
    for n in 0..calls {
        let prompt = format!("问题{n}");
        let response = call(origin, completion(fake, front, &prompt), None)
            .await
            .expect("answered");
        held.push(response);
    }
    held
}

/// A connection carries at most `MAX_STREAMS` calls (a response counts until it is dropped);
/// the next call opens another, and freed streams are used again before a new connection.
#[tokio::test]
async fn calls_beyond_a_connections_streams_open_another() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    let origin = trusting(&front, false);
    let held = hold(&origin, &fake, &front, MAX_STREAMS).await;
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
    let _again = hold(&origin, &fake, &front, 2 * MAX_STREAMS).await;
    assert_eq!(
        front.connections(),
        2,
        "the streams of dropped responses were free again: two connections carry {}",
        2 * MAX_STREAMS
    );
    assert_eq!(fake.calls(), 3 * MAX_STREAMS + 1);
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
