//! The LLM's HTTP/1.1 client over TLS, against the fake Bailian behind a TLS front that offers
//! HTTP/2 too, trusting the front's certificate (the only difference from production).

use botgate_testkit::{FakeBailian, TlsFront};

use super::llm_client_builder;

#[tokio::test]
async fn the_llm_http1_client_speaks_http1_to_a_server_that_offers_http2() {
    let fake = FakeBailian::start().await;
    let port = reqwest::Url::parse(&fake.base_url())
        .expect("the fake's URL")
        .port()
        .expect("a port");
    let front = TlsFront::start(port, &[b"h2", b"http/1.1"]).await;
    let client = llm_client_builder()
        .add_root_certificate(
            reqwest::Certificate::from_der(front.certificate()).expect("the front's certificate"),
        )
        .build()
        .expect("a client");
    let url = fake
        .completion_url()
        .replace(&fake.base_url(), &front.url());

    let response = client
        .post(url)
        .bearer_auth(fake.api_key())
        .json(&serde_json::json!({ "input": { "prompt": "在吗" }, "parameters": {} }))
        .send()
        .await
        .expect("answered");

    assert_eq!(response.status(), 200);
    assert_eq!(fake.requests()[0].http_version, "HTTP/1.1");
}
