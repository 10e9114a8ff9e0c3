//! The native route `POST /api/v1/apps/{app_id}/completion`: JSON or SSE (outbound.md §1.3-§1.6).

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{chunks, content_text, recorded, tokens, Failure, Reply, Shared};
use super::{API_KEY, APP_ID, MODEL_ID};
use crate::server::{hex32, parse_body, uuid_like};

pub(super) const PATH: &str = "/api/v1/apps/{app_id}/completion";

pub(super) const THROTTLED: &str = "Requests rate limit exceeded, please try again later.";
pub(super) const INTERNAL: &str =
    "An internal error has occured, please try again later or contact service support.";
pub(super) const INPUT_INSPECTION: &str = "Input data may contain inappropriate content.";
pub(super) const OUTPUT_INSPECTION: &str = "Output data may contain inappropriate content.";
const INVALID_KEY: &str = "Invalid API-key provided.";
const MISSING_KEY: &str = "No API-key provided.";
const APP_DENIED: &str = "Access denied: the app is not published, or this API key's \
                          workspace cannot access it.";
const NO_INPUT: &str = r#"Either "prompt" or "messages" must exist and cannot both be none"#;

/// The roles `input.messages` may carry.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// What the request asked for, once validated.
#[derive(Debug)]
struct Call {
    last_user: String,
    history: usize,
    input_tokens: usize,
    session_id: String,
    incremental: bool,
}

pub(super) async fn completion(
    request: HttpRequest,
    app_id: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let streaming = wants_stream(&request);
    shared.record(recorded(&request, &body, streaming), true);
    let request_id = uuid_like();
    if request.method() != Method::POST {
        return error_response(405, "MethodNotAllowed", "Use POST.", &request_id);
    }
    match bearer_key(&request) {
        None => return error_response(401, "InvalidApiKey", MISSING_KEY, &request_id),
        Some(key) if key != API_KEY => {
            return error_response(401, "InvalidApiKey", INVALID_KEY, &request_id)
        }
        Some(_) => {}
    }
    if app_id.as_str() != APP_ID {
        return error_response(403, "App.AccessDenied", APP_DENIED, &request_id);
    }
    let body = parse_body(&body);
    let call = if body.is_object() {
        Call::parse(&body)
    } else {
        Err("The request body must be a JSON object.".to_owned())
    };
    let call = match call {
        Ok(call) => call,
        Err(message) => return error_response(400, "InvalidParameter", &message, &request_id),
    };

    let plan = shared.plan();
    let reply = plan.answer.reply(&call.last_user, call.history, plan.call);
    match plan.failure {
        None => {}
        Some(Failure::Hang(duration)) => tokio::time::sleep(duration).await,
        Some(failure) => {
            let stream = streaming.then_some((&call, &reply, plan.chunk_interval));
            return failure_response(failure, stream, &request_id);
        }
    }
    if !plan.first_token_delay.is_zero() {
        tokio::time::sleep(plan.first_token_delay).await;
    }
    if streaming {
        let frames = result_frames(&call, &reply, &request_id);
        sse_response(200, frames, plan.chunk_interval, &request_id)
    } else {
        let output = output(&call, &reply.text, "stop", &reply.references);
        let body = json!({
            "output": output,
            "usage": usage(&call, tokens(&reply.text)),
            "request_id": request_id,
        });
        json_response(200, &body, &request_id)
    }
}

impl Call {
    /// Validates `input` the way §1.3 describes: `prompt`, `messages`, or both.
    fn parse(body: &Value) -> Result<Call, String> {
        let input = body.get("input").unwrap_or(&Value::Null);
        let prompt = match input.get("prompt") {
            None | Some(Value::Null) => None,
            Some(Value::String(prompt)) => Some(prompt.as_str()),
            Some(_) => return Err("input.prompt must be a string.".to_owned()),
        };
        let messages = match input.get("messages") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(messages)) => messages.as_slice(),
            Some(_) => return Err("input.messages must be an array.".to_owned()),
        };
        for (index, message) in messages.iter().enumerate() {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            if !ROLES.contains(&role) {
                return Err(format!(
                    "input.messages[{index}].role must be one of system, user, assistant; got {role:?}."
                ));
            }
            if !message.get("content").is_some_and(Value::is_string) {
                return Err(format!("input.messages[{index}].content must be a string."));
            }
        }
        let (last_user, history) = match (prompt, messages.len()) {
            // The SDK appends a prompt after the messages as the final user turn (§1.3).
            (Some(prompt), count) => (prompt.to_owned(), count),
            (None, 0) => return Err(NO_INPUT.to_owned()),
            (None, _) => {
                let last = messages
                    .iter()
                    .rposition(|message| message["role"] == "user")
                    .ok_or_else(|| "input.messages has no user message.".to_owned())?;
                (content_text(&messages[last]["content"]), last)
            }
        };
        let input_tokens = prompt.map_or(0, tokens)
            + messages
                .iter()
                .map(|message| tokens(&content_text(&message["content"])))
                .sum::<usize>();
        // `messages` wins over `session_id` (§1.3): a new session then, as far as we can tell.
        let session_id = match input.get("session_id").and_then(Value::as_str) {
            Some(session_id) if messages.is_empty() => session_id.to_owned(),
            _ => hex32(),
        };
        let incremental = body
            .get("parameters")
            .and_then(|parameters| parameters.get("incremental_output"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Call {
            last_user,
            history,
            input_tokens,
            session_id,
            incremental,
        })
    }
}

/// `X-DashScope-SSE: enable` or `Accept: text/event-stream`: either is enough (§1.2).
fn wants_stream(request: &HttpRequest) -> bool {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    header("x-dashscope-sse").eq_ignore_ascii_case("enable")
        || header("accept")
            .to_ascii_lowercase()
            .contains("text/event-stream")
}

/// The key from `Authorization: Bearer <key>`.
pub(super) fn bearer_key(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let key = value.strip_prefix("Bearer ")?;
    Some(key.trim().to_owned())
}

/// The `output` object; `doc_references` only when there are some.
fn output(call: &Call, text: &str, finish_reason: &str, references: &[(String, String)]) -> Value {
    let mut output = json!({
        "text": text,
        "finish_reason": finish_reason,
        "session_id": call.session_id,
    });
    if !references.is_empty() {
        output["doc_references"] = references
            .iter()
            .enumerate()
            .map(|(index, (doc_name, title))| {
                json!({
                    "index_id": (index + 1).to_string(),
                    "title": title,
                    "doc_id": format!("doc_{}", index + 1),
                    "doc_name": doc_name,
                    "text": format!("An excerpt of {doc_name}."),
                })
            })
            .collect();
    }
    output
}

fn usage(call: &Call, output_tokens: usize) -> Value {
    json!({"models": [{
        "model_id": MODEL_ID,
        "input_tokens": call.input_tokens,
        "output_tokens": output_tokens,
    }]})
}

/// One SSE event as Bailian writes it: no space after colons, a `:HTTP_STATUS` comment line.
fn frame(id: usize, event: &str, status: u16, data: &Value) -> Bytes {
    Bytes::from(format!(
        "id:{id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n"
    ))
}

/// The `result` events of a successful stream: a frame per chunk with the string `"null"` as
/// `finish_reason`, then a `"stop"` frame (empty text when incremental, the whole answer
/// otherwise) carrying the final usage and any references.
fn result_frames(call: &Call, reply: &Reply, request_id: &str) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut so_far = String::new();
    for piece in chunks(&reply.text) {
        so_far.push_str(piece);
        let text = if call.incremental { piece } else { &so_far };
        let data = json!({
            "output": output(call, text, "null", &[]),
            "usage": usage(call, tokens(&so_far)),
            "request_id": request_id,
        });
        frames.push(frame(frames.len() + 1, "result", 200, &data));
    }
    let text = if call.incremental { "" } else { &reply.text };
    let data = json!({
        "output": output(call, text, "stop", &reply.references),
        "usage": usage(call, tokens(&reply.text)),
        "request_id": request_id,
    });
    frames.push(frame(frames.len() + 1, "result", 200, &data));
    frames
}

/// The response for a scripted failure; `stream` is set for streaming requests.
fn failure_response(
    failure: Failure,
    stream: Option<(&Call, &Reply, Duration)>,
    request_id: &str,
) -> HttpResponse {
    let (status, code, message) = match failure {
        Failure::Throttled => (429, "Throttling.RateQuota".to_owned(), THROTTLED.to_owned()),
        Failure::ServerError => (500, "InternalError".to_owned(), INTERNAL.to_owned()),
        Failure::DataInspection => (
            400,
            "DataInspectionFailed".to_owned(),
            INPUT_INSPECTION.to_owned(),
        ),
        Failure::InvalidApiKey => (401, "InvalidApiKey".to_owned(), INVALID_KEY.to_owned()),
        Failure::AppAccessDenied => (403, "App.AccessDenied".to_owned(), APP_DENIED.to_owned()),
        Failure::StreamError => {
            let Some((call, reply, interval)) = stream else {
                return error_response(400, "DataInspectionFailed", OUTPUT_INSPECTION, request_id);
            };
            // One normal frame, then the moderation error mid-stream, inside an HTTP 200.
            let first = chunks(&reply.text).first().copied().unwrap_or("");
            let data = json!({
                "output": output(call, first, "null", &[]),
                "usage": usage(call, tokens(first)),
                "request_id": request_id,
            });
            let error = error_body("DataInspectionFailed", OUTPUT_INSPECTION, request_id);
            let frames = vec![
                frame(1, "result", 200, &data),
                frame(2, "error", 400, &error),
            ];
            return sse_response(200, frames, interval, request_id);
        }
        Failure::BusinessErrorIn200 => (200, "InternalError".to_owned(), INTERNAL.to_owned()),
        Failure::Custom {
            status,
            code,
            message,
        } => (status, code, message),
        Failure::SseError {
            status,
            code,
            message,
        } => {
            if let Some((_, _, interval)) = stream {
                let error = error_body(&code, &message, request_id);
                let frames = vec![frame(1, "error", status, &error)];
                return sse_response(status, frames, interval, request_id);
            }
            (status, code, message)
        }
        Failure::Hang(_) => unreachable!("a hang is served as a delay, not a failure"),
    };
    error_response(status, &code, &message, request_id)
}

fn error_body(code: &str, message: &str, request_id: &str) -> Value {
    json!({"code": code, "message": message, "request_id": request_id})
}

/// A native JSON error: `{"code","message","request_id"}` with this HTTP status.
pub(crate) fn error_response(
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> HttpResponse {
    json_response(status, &error_body(code, message, request_id), request_id)
}

pub(super) fn json_response(status: u16, body: &Value, request_id: &str) -> HttpResponse {
    HttpResponse::build(status_code(status))
        .content_type("application/json;charset=UTF-8")
        .insert_header(("x-request-id", request_id))
        .body(body.to_string())
}

/// Streams frames as separate writes: each waits for the interval, or at least yields, which
/// makes actix flush the previous one (a ready stream would be coalesced into one write).
pub(super) fn sse_response(
    status: u16,
    frames: Vec<Bytes>,
    interval: Duration,
    request_id: &str,
) -> HttpResponse {
    let body = futures_util::stream::iter(frames.into_iter().enumerate()).then(
        move |(index, frame)| async move {
            if index > 0 {
                if interval.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(interval).await;
                }
            }
            Ok::<Bytes, Infallible>(frame)
        },
    );
    HttpResponse::build(status_code(status))
        .content_type("text/event-stream;charset=UTF-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-request-id", request_id))
        .streaming(body)
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
