//! A minimal HTTP/1.1 client over one keep-alive `TcpStream`: write a request, read one
//! `Content-Length` response. Far cheaper than a full client, which matters when the load
//! generator shares two cores with the gateway it measures.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response heads larger than this are refused (the gateway's are a few hundred bytes).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Responses larger than this are refused.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Initial read buffer per connection.
const BUFFER_BYTES: usize = 8 * 1024;

/// One response: status and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// A request, serialised once and written as is.
pub fn post(target: &str, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = Vec::with_capacity(target.len() + body.len() + 160);
    request.extend_from_slice(b"POST ");
    request.extend_from_slice(target.as_bytes());
    request.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ");
    request.extend_from_slice(content_type.as_bytes());
    for (name, value) in headers {
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
    }
    request.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// A keep-alive connection that (re)connects on demand. After any error the stream is dropped,
/// so the next request starts on a fresh connection instead of reading a stale response.
pub struct Connection {
    address: SocketAddr,
    stream: Option<TcpStream>,
    buffer: BytesMut,
}

impl Connection {
    pub fn new(address: SocketAddr) -> Self {
        Connection {
            address,
            stream: None,
            buffer: BytesMut::with_capacity(BUFFER_BYTES),
        }
    }

    /// Forgets the stream, e.g. after the caller abandoned a request half-way (timeout).
    pub fn reset(&mut self) {
        self.stream = None;
        self.buffer.clear();
    }

    /// Sends one request and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        let result = self.exchange(request).await;
        if result.is_err() {
            self.reset();
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.address).await?;
                stream.set_nodelay(true)?;
                self.buffer.clear();
                self.stream.insert(stream)
            }
        };
        stream.write_all(request).await?;
        loop {
            if let Some(head) = parse_head(&self.buffer)? {
                let total = head.length + head.body_len;
                while self.buffer.len() < total {
                    read_more(stream, &mut self.buffer).await?;
                }
                let mut message = self.buffer.split_to(total);
                let body = message.split_off(head.length).freeze();
                if head.close {
                    self.stream = None;
                }
                return Ok(Response {
                    status: head.status,
                    body,
                });
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(invalid("response head too large"));
            }
            read_more(stream, &mut self.buffer).await?;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut BytesMut) -> io::Result<()> {
    buffer.reserve(BUFFER_BYTES);
    if stream.read_buf(buffer).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server",
        ));
    }
    Ok(())
}

/// What the response head says about the message.
struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    length: usize,
    body_len: usize,
    close: bool,
}

/// `None` until the whole head is buffered.
fn parse_head(buffer: &[u8]) -> io::Result<Option<Head>> {
    let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buffer[..end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut body_len = 0;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value.parse().map_err(|_| invalid("bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked responses are not supported"));
        }
    }
    if body_len > MAX_BODY_BYTES {
        return Err(invalid("response body too large"));
    }
    Ok(Some(Head {
        status,
        length: end + 4,
        body_len,
        close,
    }))
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";
        assert!(parse_head(&response[..20]).unwrap().is_none());
        let head = parse_head(response).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.body_len, 5);
        assert_eq!(head.length, response.len() - 5);
        assert!(head.close);
    }

    #[test]
    fn a_request_carries_its_length_and_headers() {
        let request = post("/x?a=1", "text/xml", &[("X-Key", "v")], b"body");
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("POST /x?a=1 HTTP/1.1\r\n"));
        assert!(text.contains("\r\nX-Key: v\r\n"));
        assert!(text.ends_with("Content-Length: 4\r\n\r\nbody"));
    }
}
