//! The checks every platform adapter must pass, whatever its wire format: a valid request is
//! accepted, each tampered signed field and each missing parameter is refused, an oversize body
//! is refused, the handshake is answered, a retried delivery keeps its message id, and a reply
//! rendered for a request reads back as the text it says.

use botgate_contract::{Adapter, AdapterError, HeaderList, Inbound, Method, Outcome, RawRequest};

/// One request as the platform sends it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn post(query: impl Into<String>, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Request {
            method: Method::Post,
            query: query.into(),
            headers,
            body,
        }
    }

    /// This request with every occurrence of `from` in its query, headers and body replaced.
    pub fn replaced(&self, from: &str, to: &str) -> Request {
        let body = String::from_utf8_lossy(&self.body)
            .replace(from, to)
            .into_bytes();
        Request {
            method: self.method,
            query: self.query.replace(from, to),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.replace(from, to)))
                .collect(),
            body,
        }
    }

    /// This request without the query parameter or header `name`.
    pub fn without(&self, name: &str) -> Request {
        let query = self
            .query
            .split('&')
            .filter(|pair| pair.split('=').next() != Some(name))
            .collect::<Vec<_>>()
            .join("&");
        Request {
            method: self.method,
            query,
            headers: self
                .headers
                .iter()
                .filter(|(header, _)| !header.eq_ignore_ascii_case(name))
                .cloned()
                .collect(),
            body: self.body.clone(),
        }
    }
}

/// Reads a rendered reply body back as the text it says (`None`: it says nothing).
pub type OpenReply = Box<dyn Fn(&[u8]) -> Option<String>>;

/// What a platform's test hands the kit.
pub struct Fixture {
    /// Unix seconds the requests were signed at.
    pub now_secs: u64,
    /// A valid message request.
    pub valid: Request,
    /// The same message delivered again, signed anew (the platform's retry).
    pub retry: Request,
    /// `valid` with one signed field changed, named by what was changed.
    pub tampered: Vec<(&'static str, Request)>,
    /// `valid` without each parameter or header the platform always sends.
    pub required: Vec<&'static str>,
    /// The URL verification request and the exact body that answers it, where there is one.
    pub handshake: Option<(Request, String)>,
    /// Reads a rendered reply body back as its text, where answers travel in the response.
    pub open_reply: Option<OpenReply>,
}

/// Runs every check; panics naming the first that fails.
pub fn check<A: Adapter>(adapter: &A, fixture: &Fixture) {
    let accept = |request: &Request| {
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        adapter.accept(&RawRequest {
            method: request.method,
            query: &request.query,
            headers: &HeaderList(&headers),
            body: &request.body,
            now_secs: fixture.now_secs,
        })
    };
    let Ok(Inbound::Message { message, reply }) = accept(&fixture.valid) else {
        panic!("a valid request is accepted as a message");
    };
    assert_eq!(
        message.platform,
        adapter.platform(),
        "the adapter's platform"
    );
    assert!(!message.message_id.is_empty(), "a message id to dedup on");

    match accept(&fixture.retry) {
        Ok(Inbound::Message { message: again, .. }) => assert_eq!(
            again.message_id, message.message_id,
            "a retried delivery keeps its message id"
        ),
        other => panic!("the retry is accepted too: {other:?}"),
    }

    assert!(
        !fixture.tampered.is_empty(),
        "the fixture tampers with something"
    );
    for (field, request) in &fixture.tampered {
        assert!(
            accept(request).is_err(),
            "a request with a tampered {field} is refused"
        );
    }
    for name in &fixture.required {
        match accept(&fixture.valid.without(name)) {
            Err(AdapterError::MissingParameter(_) | AdapterError::BadSignature) => {}
            other => panic!("a request without {name} is refused as such: {other:?}"),
        }
    }

    let mut oversize = fixture.valid.clone();
    oversize.body.resize(2 * 1024 * 1024, b' ');
    assert!(accept(&oversize).is_err(), "an oversize body is refused");

    if let Some((request, answer)) = &fixture.handshake {
        match accept(request) {
            Ok(Inbound::Handshake(body)) => assert_eq!(&body, answer, "the handshake answer"),
            other => panic!("the handshake is answered: {other:?}"),
        }
    }

    if let Some(open) = &fixture.open_reply {
        let text = "你好 <b>&amp; ]]> 世界";
        let rendered = adapter.render(&reply, text, fixture.now_secs, &[7; 16]);
        assert_eq!(rendered.status, 200);
        assert_eq!(
            open(rendered.body.as_bytes()).as_deref(),
            Some(text),
            "a reply reads back as its text"
        );
    }
    for outcome in [
        Outcome::Queued { job: "job-1" },
        Outcome::Duplicate,
        Outcome::Ignored,
    ] {
        let acknowledged = adapter.acknowledge(outcome);
        assert!(
            (200..300).contains(&acknowledged.status),
            "{outcome:?} is acknowledged with a 2xx"
        );
    }
}

/// `valid`, a WXBizMsgCrypt POST (WeChat safe mode, WeCom) signed at `now` with `nonce`, with
/// each signed field changed in turn: `msg_signature`, `timestamp`, `nonce` and the `Encrypt`
/// ciphertext.
pub fn wxbiz_tampered(valid: &Request, now: u64, nonce: &str) -> Vec<(&'static str, Request)> {
    let body = String::from_utf8_lossy(&valid.body).into_owned();
    let cipher = body
        .split("<Encrypt><![CDATA[")
        .nth(1)
        .and_then(|rest| rest.split("]]>").next())
        .expect("an <Encrypt> element")
        .to_owned();
    let msg_signature = valid
        .query
        .split('&')
        .find_map(|pair| pair.strip_prefix("msg_signature="))
        .expect("a msg_signature parameter")
        .to_owned();
    let other_nonce = format!("{nonce}9");
    vec![
        (
            "msg_signature",
            valid.replaced(&msg_signature, &flip(&msg_signature)),
        ),
        (
            "timestamp",
            valid.replaced(
                &format!("timestamp={now}"),
                &format!("timestamp={}", now - 1),
            ),
        ),
        (
            "nonce",
            valid.replaced(&format!("nonce={nonce}"), &format!("nonce={other_nonce}")),
        ),
        ("Encrypt", valid.replaced(&cipher, &flip(&cipher))),
    ]
}

/// `value` with its middle character changed.
fn flip(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}
