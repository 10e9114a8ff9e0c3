//! The HTTP/2 client over TLS against the fake Bailian behind a TLS front, trusting the front's
//! self-signed certificate instead of the webpki roots (the only difference from production).

use std::sync::Arc;

use botgate_testkit::{FakeBailian, TlsFront};
use futures_util::future::join_all;

use super::{h2_tls, web_tls, Address, Origin};
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

fn trusting(front: &TlsFront) -> Origin {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(front.certificate().to_vec().into())
        .expect("the front's certificate");
    origin(front, h2_tls(roots))
}

fn origin(front: &TlsFront, tls: Arc<rustls::ClientConfig>) -> Origin {
    let url = reqwest::Url::parse(&front.url()).expect("the front's URL");
    Origin::new(Address::of(&url).expect("an address"), Some(tls))
}

/// A non-streaming native Bailian call, as the provider makes it.
fn completion(fake: &FakeBailian, front: &TlsFront, prompt: &str) -> hyper::Request<reqwest::Body> {
    let url = fake
        .completion_url()
        .replace(&fake.base_url(), &front.url());
    let body = serde_json::json!({ "input": { "prompt": prompt }, "parameters": {} });
    hyper::Request::post(url)
        .version(hyper::Version::HTTP_2)
        .header("authorization", format!("Bearer {}", fake.api_key()))
        .header("content-type", "application/json")
        .body(reqwest::Body::from(body.to_string()))
        .expect("a request")
}

async fn status(origin: &Origin, request: hyper::Request<reqwest::Body>) -> Result<u16, LlmError> {
    origin
        .send(Box::new(request))
        .await
        .map(|response| response.status().as_u16())
}

#[tokio::test]
async fn calls_over_tls_share_one_http2_connection() {
    let (fake, front) = fake_behind_tls(&[b"h2"]).await;
    let origin = trusting(&front);

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
        let origin = trusting(&front);

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
    let origin = origin(&front, web_tls());

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
    let origin = trusting(&front);
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
