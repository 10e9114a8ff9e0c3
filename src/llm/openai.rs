//! Any OpenAI-compatible chat-completions endpoint (DashScope compatible mode, vLLM, Ollama, …).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{read_events, Completion, CompletionRequest, DeltaSink, LlmError};
use crate::config::{CallLimits, OpenAiSettings};

pub struct OpenAi {
    http: super::LlmHttp,
    url: reqwest::Url,
    api_key: Option<SecretString>,
    model: String,
    system_prompt: Option<String>,
    stream: bool,
    limits: CallLimits,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    /// Present only on an error chunk; a chunk whose text merely mentions "error" has none.
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    delta: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

fn error_from(status: u16, bytes: &[u8]) -> LlmError {
    let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
    let detail = body.error.unwrap_or_default();
    let code = match detail.code {
        Some(Value::String(code)) => code,
        Some(other) => other.to_string(),
        None => detail.kind.unwrap_or_default(),
    };
    LlmError::classify(
        status,
        &code,
        detail.message.as_deref().unwrap_or_default(),
        body.request_id,
    )
}

impl OpenAi {
    /// Fails when `base_url` does not make a URL.
    pub fn new(settings: &OpenAiSettings, http: super::LlmHttp) -> anyhow::Result<Self> {
        let url = format!(
            "{}/chat/completions",
            settings.base_url.trim_end_matches('/')
        );
        Ok(OpenAi {
            http,
            url: reqwest::Url::parse(&url)?,
            api_key: settings.api_key.clone(),
            model: settings.model.clone(),
            system_prompt: settings.system_prompt.clone(),
            stream: settings.stream,
            limits: settings.limits.clone(),
        })
    }

    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    fn body(&self, request: &CompletionRequest<'_>) -> Value {
        let mut messages = Vec::with_capacity(request.history.len() * 2 + 2);
        if let Some(system) = &self.system_prompt {
            messages.push(json!({"role": "system", "content": system}));
        }
        for turn in request.history {
            messages.push(json!({"role": "user", "content": turn.user}));
            messages.push(json!({"role": "assistant", "content": turn.assistant}));
        }
        if request.images.is_empty() {
            messages.push(json!({"role": "user", "content": request.user}));
        } else {
            let mut parts = vec![json!({"type": "text", "text": request.user})];
            parts.extend(
                request
                    .images
                    .iter()
                    .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
            );
            messages.push(json!({"role": "user", "content": parts}));
        }
        json!({"model": self.model, "messages": messages, "stream": self.stream})
    }

    pub(super) async fn attempt(
        &self,
        request: &CompletionRequest<'_>,
        sink: &mut DeltaSink<'_>,
        remaining: Duration,
    ) -> Result<Completion, LlmError> {
        let mut builder = self.http.post(&self.url).json(&self.body(request));
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose_secret());
        }
        if !self.stream {
            builder = builder.timeout(remaining);
        }
        let response = self.http.send(builder).await?;
        let status = response.status().as_u16();
        if status != 200 {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(error_from(status, &bytes));
        }
        if !self.stream {
            let bytes = response
                .bytes()
                .await
                .map_err(|error| LlmError::transport(&error))?;
            let parsed: Response =
                serde_json::from_slice(&bytes).map_err(|_| error_from(200, &bytes))?;
            let text = parsed
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message)
                .and_then(|message| message.content)
                .unwrap_or_default();
            sink.emit(&text);
            return Ok(Completion {
                text,
                request_id: parsed.id,
                ..Completion::default()
            });
        }
        let idle = Duration::from_secs(self.limits.idle_timeout_secs);
        let mut completion = Completion::default();
        let finished = read_events(response, idle, |event| {
            if event.data == "[DONE]" {
                return Ok(true);
            }
            let parsed: Response = serde_json::from_str(&event.data)
                .map_err(|_| LlmError::Protocol("stream chunk is not JSON".into()))?;
            if parsed.error.is_some() {
                return Err(error_from(200, event.data.as_bytes()));
            }
            if completion.request_id.is_none() {
                completion.request_id = parsed.id;
            }
            for choice in parsed.choices {
                if let Some(text) = choice.delta.and_then(|delta| delta.content) {
                    sink.emit(&text);
                    completion.text.push_str(&text);
                }
            }
            Ok(false)
        })
        .await?;
        if !finished {
            return Err(LlmError::Transport("stream ended before [DONE]".into()));
        }
        Ok(completion)
    }
}
