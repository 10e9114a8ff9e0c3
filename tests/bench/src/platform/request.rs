//! Reading the requests botgate sends the fake platform APIs: a head parsed with httparse, a
//! body of known length (botgate never chunks one), and JSON answers as the platforms write them.

const MAX_HEADERS: usize = 32;
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn http_response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=UTF-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    )
    .into_bytes()
}

/// A query parameter's value, undecoded (the bench's values need no escaping).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Partial,
    /// The next request's start is unknown: answered 400, then the connection goes.
    Malformed(&'static str),
    Complete {
        method: String,
        path: String,
        query: String,
        /// Where the body is in the buffer.
        body: (usize, usize),
        /// Bytes of the whole request.
        length: usize,
        close: bool,
    },
}

pub fn parse(buffer: &[u8]) -> Parsed {
    if buffer.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
            return Parsed::Malformed("request head too large")
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Malformed("malformed HTTP request"),
    };
    let mut body_length = 0;
    let mut close = request.version == Some(0);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse().ok())
            {
                Some(length) => body_length = length,
                None => return Parsed::Malformed("bad Content-Length"),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Malformed("chunked request bodies are not supported");
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    if body_length > MAX_BODY_BYTES {
        return Parsed::Malformed("request body too large");
    }
    if buffer.len() < head + body_length {
        return Parsed::Partial;
    }
    let target = request.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Parsed::Complete {
        method: request.method.unwrap_or_default().to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        body: (head, head + body_length),
        length: head + body_length,
        close,
    }
}
