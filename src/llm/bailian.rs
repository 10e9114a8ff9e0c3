//! The Bailian (百炼) application completion API: `POST {base}/api/v1/apps/{app_id}/completion`.

use std::borrow::Cow;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use self::request::RequestBody;

use super::sse::SseEvent;
use super::{read_events, Completion, CompletionRequest, DeltaSink, LlmError, Reference};
use crate::config::{BailianSettings, CallLimits};

mod request;

pub struct Bailian {
    http: super::LlmHttp,
    url: reqwest::Url,
    api_key: SecretString,
    workspace: Option<String>,
    stream: bool,
    biz_params: Option<Value>,
    limits: CallLimits,
}

/// A response body or stream frame. Strings borrow from the frame (a stream has dozens of
/// frames per answer); only what the answer keeps is copied.
#[derive(Deserialize, Default)]
struct Body<'a> {
    #[serde(default, borrow)]
    output: Option<Output<'a>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    msg: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    request_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Output<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    /// The string "null" until the last frame, then "stop"; never JSON null in practice, but tolerated.
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(default)]
    doc_references: Option<Vec<DocReference>>,
}

#[derive(Deserialize)]
struct DocReference {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    doc_name: Option<String>,
}

impl Body<'_> {
    fn request_id(&self) -> Option<String> {
        self.request_id.as_deref().map(str::to_owned)
    }

    fn error(&self, status: u16) -> Option<LlmError> {
        let code = self.code.as_deref().filter(|code| !code.is_empty())?;
        let message = self
            .message
            .as_deref()
            .or(self.msg.as_deref())
            .unwrap_or_default();
        Some(LlmError::classify(status, code, message, self.request_id()))
    }
}

impl Bailian {
    /// Fails when `base_url` and `app_id` do not make a URL.
    pub fn new(settings: &BailianSettings, http: super::LlmHttp) -> anyhow::Result<Self> {
        let base = settings.base_url.trim_end_matches('/');
        let url = format!("{base}/api/v1/apps/{}/completion", settings.app_id);
        Ok(Bailian {
            http,
            url: reqwest::Url::parse(&url)?,
            api_key: settings.api_key.clone(),
            workspace: settings.workspace.clone(),
            stream: settings.stream,
            biz_params: settings
                .biz_params
                .as_ref()
                .and_then(|table| serde_json::to_value(table).ok()),
            limits: settings.limits.clone(),
        })
    }

    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    pub(super) async fn attempt(
        &self,
        request: &CompletionRequest<'_>,
        sink: &mut DeltaSink<'_>,
        remaining: Duration,
    ) -> Result<Completion, LlmError> {
        let mut builder = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_key.expose_secret())
            .json(&RequestBody::new(
                request,
                self.stream,
                self.biz_params.as_ref(),
            ));
        if let Some(workspace) = &self.workspace {
            builder = builder.header("X-DashScope-WorkSpace", workspace);
        }
        if self.stream {
            builder = builder
                .header("X-DashScope-SSE", "enable")
                .header("Accept", "text/event-stream");
        } else {
            builder = builder.timeout(remaining);
        }
        let response = self.http.send(builder).await?;
        let status = response.status().as_u16();
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        let idle = Duration::from_secs(self.limits.idle_timeout_secs);
        if is_sse {
            return self.read_stream(response, status, sink, idle).await;
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| LlmError::transport(&error))?;
        let body: Body = serde_json::from_slice(&bytes).map_err(|_| {
            if status == 200 {
                LlmError::Protocol("response body is not JSON".into())
            } else {
                LlmError::classify(status, "", "non-JSON error body", None)
            }
        })?;
        if let Some(error) = body.error(status) {
            return Err(error);
        }
        let request_id = body.request_id();
        if status != 200 {
            return Err(LlmError::classify(
                status,
                "",
                "error without a code",
                request_id,
            ));
        }
        let output = body
            .output
            .ok_or_else(|| LlmError::Protocol("no `output` in response".into()))?;
        let text = output.text.map(Cow::into_owned).unwrap_or_default();
        sink.emit(&text);
        Ok(Completion {
            text,
            session_id: output.session_id.map(Cow::into_owned),
            references: references(output.doc_references),
            request_id,
        })
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        status: u16,
        sink: &mut DeltaSink<'_>,
        idle: Duration,
    ) -> Result<Completion, LlmError> {
        let mut completion = Completion::default();
        let finished = read_events(response, idle, |event| {
            self.apply(event, status, sink, &mut completion)
        })
        .await?;
        if !finished {
            // A stream cut before its "stop" frame may hold half an answer; treat as transient.
            return Err(LlmError::Transport(
                "stream ended before finish_reason \"stop\"".into(),
            ));
        }
        Ok(completion)
    }

    /// Applies one frame; true when it was the last one.
    fn apply(
        &self,
        event: SseEvent,
        http_status: u16,
        sink: &mut DeltaSink<'_>,
        completion: &mut Completion,
    ) -> Result<bool, LlmError> {
        if event.data.is_empty() {
            return Ok(false);
        }
        let status = event.status.unwrap_or(http_status);
        let body: Body = serde_json::from_str(&event.data)
            .map_err(|_| LlmError::Protocol("stream frame is not JSON".into()))?;
        if completion.request_id.is_none() {
            completion.request_id = body.request_id();
        }
        let is_error_frame = event.event.as_deref() == Some("error");
        if let Some(error) = body.error(status) {
            return Err(error);
        }
        if is_error_frame || status >= 400 {
            return Err(LlmError::classify(
                status,
                "",
                "error frame without a code",
                body.request_id(),
            ));
        }
        let Some(output) = body.output else {
            return Ok(false);
        };
        if let Some(text) = output.text.as_deref() {
            // We always ask for incremental output, so each frame's text is a delta.
            sink.emit(text);
            completion.text.push_str(text);
        }
        if let Some(session_id) = output.session_id {
            // Every frame repeats it: copy it once.
            if completion.session_id.as_deref() != Some(&*session_id) {
                completion.session_id = Some(session_id.into_owned());
            }
        }
        if output
            .doc_references
            .as_ref()
            .is_some_and(|refs| !refs.is_empty())
        {
            completion.references = references(output.doc_references);
        }
        Ok(output
            .finish_reason
            .as_deref()
            .is_some_and(|reason| reason != "null"))
    }
}

fn references(references: Option<Vec<DocReference>>) -> Vec<Reference> {
    references
        .unwrap_or_default()
        .into_iter()
        .map(|reference| Reference {
            title: reference.title.unwrap_or_default(),
            doc_name: reference.doc_name.unwrap_or_default(),
        })
        .collect()
}
