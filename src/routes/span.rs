//! The access log's root span: method, route pattern, query parameter names, status and request
//! id — never a value the caller sent.
//!
//! Every line logged while a request is served (and by the tasks it spawns) carries this span.
//! A callback's query values are credentials: WeChat's plaintext `signature` covers no body, so
//! one logged URL would let anyone forge messages as the user named in `openid` until the
//! timestamp window closes. So the span records which parameters came, not what they said.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// Query parameters the platforms send, logged by name. Any other name is counted, not shown:
/// a name is as much the caller's text as a value is (`?<openid>` has one and no value).
const KNOWN_PARAMETERS: [&str; 7] = [
    "signature",
    "msg_signature",
    "timestamp",
    "nonce",
    "echostr",
    "openid",
    "encrypt_type",
];

/// The [`RootSpanBuilder`] of botgate's access log (`TracingLogger::<RequestSpan>::new()`).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            method = method_name(request.method()),
            route = route.as_deref().unwrap_or("unmatched"),
            query = %parameter_names(request.query_string()),
            status = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("status", status.as_u16());
        // Lines logged while serving carry the span before its status is known; this one closes
        // the request with it. Debug: at INFO it would double the log volume of busy replicas.
        tracing::debug!("request finished");
    }
}

/// Standard methods by name; an extension method is the caller's text, so it is not logged.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `signature,timestamp,nonce,openid` for WeChat's query; other names become `+N other`.
fn parameter_names(query: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut others = 0usize;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        match KNOWN_PARAMETERS.iter().find(|known| **known == name) {
            Some(known) => names.push(known),
            None => others += 1,
        }
    }
    let mut logged = names.join(",");
    if others > 0 {
        if !logged.is_empty() {
            logged.push(',');
        }
        logged.push_str(&format!("+{others} other"));
    }
    logged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_parameter_names_are_kept_and_no_value_ever() {
        let wechat = "signature=5d19&timestamp=1409735669&nonce=1320562132&openid=oyORnuP8q7ou2gfYjqLzSIWZf0rs&encrypt_type=aes&msg_signature=003f";
        let hostile = "oyORnuP8q7ou2gfYjqLzSIWZf0rs&sk-secret=1&nonce=7&=x&&";

        assert_eq!(
            parameter_names(wechat),
            "signature,timestamp,nonce,openid,encrypt_type,msg_signature"
        );
        assert_eq!(parameter_names(hostile), "nonce,+3 other");
        assert_eq!(parameter_names(""), "");
    }

    #[test]
    fn extension_methods_are_not_echoed() {
        let custom = Method::from_bytes(b"OYORNUP8Q7OU").unwrap();

        assert_eq!(method_name(&Method::POST), "POST");
        assert_eq!(method_name(&custom), "other");
    }
}
