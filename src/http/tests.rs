//! The LLM's HTTP/1.1 client over TLS, against the fake Bailian behind a TLS front that offers
//! HTTP/2 too, trusting the front's certificate (the only difference from production).

use botgate_testkit::{FakeBailian, TlsFront};

use super::llm_client_builder;

#[tokio::test]
async fn the_llm_http1_client_speaks_http1_to_a_server_that_offers_http2() {
    let fake = FakeBailian::start().await;
    let front = TlsFront::before(&fake, &[b"h2", b"http/1.1"]).await;
    let client = front
        .trusted_by(llm_client_builder())
        .build()
        .expect("a client");
    let url = front.completion_url(&fake);

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
