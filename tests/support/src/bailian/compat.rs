//! The OpenAI-compatible route `POST /compatible-mode/v1/chat/completions` (outbound.md §1.8).

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use super::native::{
    bearer_key, json_response, sse_response, INPUT_INSPECTION, INTERNAL, OUTPUT_INSPECTION,
    THROTTLED,
};
use super::{chunks, content_text, recorded, tokens, Failure, Shared, API_KEY};
use crate::server::{parse_body, unix_seconds, uuid_like};

pub(super) const PATH: &str = "/compatible-mode/v1/chat/completions";

const INVALID_KEY: &str = "Incorrect API key provided.";
const ACCESS_DENIED: &str = "Access denied.";
const INVALID_REQUEST: &str = "invalid_request_error";

/// The roles an OpenAI-style message may carry.
const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// What the request asked for, once validated.
#[derive(Debug)]
struct Chat {
    model: String,
    last_user: String,
    history: usize,
    prompt_tokens: usize,
    include_usage: bool,
}

pub(super) async fn chat_completions(
    request: HttpRequest,
    raw: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let body = parse_body(&raw);
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    shared.record(recorded(&request, &raw, streaming), true);
    let request_id = uuid_like();
    if request.method() != Method::POST {
        return error_response(
            405,
            "method_not_allowed",
            INVALID_REQUEST,
            "Use POST.",
            &request_id,
        );
    }
    if bearer_key(&request).as_deref() != Some(API_KEY) {
        return error_response(
            401,
            "invalid_api_key",
            INVALID_REQUEST,
            INVALID_KEY,
            &request_id,
        );
    }
    let chat = match Chat::parse(&body) {
        Ok(chat) => chat,
        Err(message) => {
            let code = "invalid_parameter_error";
            return error_response(400, code, INVALID_REQUEST, &message, &request_id);
        }
    };

    let plan = shared.plan();
    let text = plan
        .answer
        .reply(&chat.last_user, chat.history, plan.call)
        .text;
    match plan.failure {
        None => {}
        Some(Failure::Hang(duration)) => tokio::time::sleep(duration).await,
        Some(failure) => {
            let stream = streaming.then_some((&chat, text.as_str(), plan.chunk_interval));
            return failure_response(failure, stream, &request_id);
        }
    }
    if !plan.first_token_delay.is_zero() {
        tokio::time::sleep(plan.first_token_delay).await;
    }
    if streaming {
        let mut lines = vec![role_chunk(&chat, &request_id)];
        for piece in chunks(&text) {
            lines.push(content_chunk(&chat, piece, None, &request_id));
        }
        lines.push(content_chunk(&chat, "", Some("stop"), &request_id));
        if chat.include_usage {
            let mut usage_chunk = chunk(&chat, Vec::new(), &request_id);
            usage_chunk["usage"] = usage(&chat, &text);
            lines.push(data_line(&usage_chunk));
        }
        lines.push(Bytes::from_static(b"data: [DONE]\n\n"));
        sse_response(200, lines, plan.chunk_interval, &request_id)
    } else {
        let body = json!({
            "id": format!("chatcmpl-{request_id}"),
            "object": "chat.completion",
            "created": unix_seconds(),
            "model": chat.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": null,
            }],
            "usage": usage(&chat, &text),
            "system_fingerprint": null,
        });
        json_response(200, &body, &request_id)
    }
}

impl Chat {
    fn parse(body: &Value) -> Result<Chat, String> {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .filter(|model| !model.is_empty())
            .ok_or_else(|| "The model parameter is required.".to_owned())?;
        let messages = match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => messages,
            _ => return Err("messages must be a non-empty array.".to_owned()),
        };
        for (index, message) in messages.iter().enumerate() {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            if !ROLES.contains(&role) {
                return Err(format!(
                    "messages[{index}].role must be one of {ROLES:?}; got {role:?}."
                ));
            }
        }
        let last = messages
            .iter()
            .rposition(|message| message["role"] == "user")
            .ok_or_else(|| "messages has no user message.".to_owned())?;
        let leading_system = usize::from(last > 0 && messages[0]["role"] == "system");
        let prompt_tokens = messages
            .iter()
            .map(|message| tokens(&content_text(&message["content"])))
            .sum();
        let include_usage = body
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Chat {
            model: model.to_owned(),
            last_user: content_text(&messages[last]["content"]),
            history: last - leading_system,
            prompt_tokens,
            include_usage,
        })
    }
}

fn usage(chat: &Chat, text: &str) -> Value {
    let completion_tokens = tokens(text);
    json!({
        "prompt_tokens": chat.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": chat.prompt_tokens + completion_tokens,
    })
}

/// A `chat.completion.chunk` with these choices.
fn chunk(chat: &Chat, choices: Vec<Value>, request_id: &str) -> Value {
    json!({
        "id": format!("chatcmpl-{request_id}"),
        "object": "chat.completion.chunk",
        "created": unix_seconds(),
        "model": chat.model,
        "choices": choices,
    })
}

/// The first chunk: the assistant role with empty content.
fn role_chunk(chat: &Chat, request_id: &str) -> Bytes {
    let choice = json!({
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "finish_reason": null,
        "logprobs": null,
    });
    data_line(&chunk(chat, vec![choice], request_id))
}

fn content_chunk(
    chat: &Chat,
    content: &str,
    finish_reason: Option<&str>,
    request_id: &str,
) -> Bytes {
    let choice = json!({
        "index": 0,
        "delta": {"content": content},
        "finish_reason": finish_reason,
        "logprobs": null,
    });
    data_line(&chunk(chat, vec![choice], request_id))
}

/// A standard SSE line: `data: <json>` and a blank line.
fn data_line(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The response for a scripted failure; `stream` is set for streaming requests.
fn failure_response(
    failure: Failure,
    stream: Option<(&Chat, &str, Duration)>,
    request_id: &str,
) -> HttpResponse {
    let (status, code, kind, message) = match failure {
        Failure::Throttled => (429, "limit_requests", "limit_requests", THROTTLED),
        Failure::ServerError => (500, "internal_error", "internal_error", INTERNAL),
        Failure::DataInspection => (
            400,
            "data_inspection_failed",
            "data_inspection_failed",
            INPUT_INSPECTION,
        ),
        Failure::InvalidApiKey => (401, "invalid_api_key", INVALID_REQUEST, INVALID_KEY),
        Failure::AppAccessDenied => (403, "access_denied", INVALID_REQUEST, ACCESS_DENIED),
        Failure::StreamError => {
            let code = "data_inspection_failed";
            let Some((chat, text, interval)) = stream else {
                return error_response(400, code, code, OUTPUT_INSPECTION, request_id);
            };
            // A normal start, then an error object in place of the next chunk, and no [DONE].
            let first = chunks(text).first().copied().unwrap_or("");
            let lines = vec![
                role_chunk(chat, request_id),
                content_chunk(chat, first, None, request_id),
                data_line(&error_body(code, code, OUTPUT_INSPECTION, request_id)),
            ];
            return sse_response(200, lines, interval, request_id);
        }
        Failure::BusinessErrorIn200 => (200, "internal_error", "internal_error", INTERNAL),
        Failure::Custom {
            status,
            code,
            message,
        }
        | Failure::SseError {
            status,
            code,
            message,
        } => return error_response(status, &code, &code, &message, request_id),
        Failure::Hang(_) => unreachable!("a hang is served as a delay, not a failure"),
    };
    error_response(status, code, kind, message, request_id)
}

fn error_body(code: &str, kind: &str, message: &str, request_id: &str) -> Value {
    json!({
        "error": {"code": code, "message": message, "param": null, "type": kind},
        "request_id": request_id,
    })
}

/// An OpenAI-style error: `{"error":{"code","message","param","type"},"request_id"}`.
fn error_response(
    status: u16,
    code: &str,
    kind: &str,
    message: &str,
    request_id: &str,
) -> HttpResponse {
    json_response(
        status,
        &error_body(code, kind, message, request_id),
        request_id,
    )
}
