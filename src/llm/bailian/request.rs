//! The completion request body (outbound.md §1.3), serialized straight from borrowed parts: a
//! request carries the whole memory, and copying it into a JSON tree first cost as much again.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

use crate::llm::CompletionRequest;
use crate::store::Turn;

#[derive(serde::Serialize)]
pub struct RequestBody<'a> {
    input: Input<'a>,
    parameters: Parameters,
    debug: Empty,
}

#[derive(serde::Serialize)]
struct Input<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Messages<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    image_list: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_params: Option<&'a Value>,
}

#[derive(serde::Serialize)]
struct Parameters {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    incremental_output: bool,
}

#[derive(serde::Serialize)]
struct Empty {}

/// The memory as `{role, content}` messages, then the new question.
struct Messages<'a> {
    history: &'a [Turn],
    user: &'a str,
}

#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.history.len() * 2 + 1))?;
        for turn in self.history {
            seq.serialize_element(&Message {
                role: "user",
                content: &turn.user,
            })?;
            seq.serialize_element(&Message {
                role: "assistant",
                content: &turn.assistant,
            })?;
        }
        seq.serialize_element(&Message {
            role: "user",
            content: self.user,
        })?;
        seq.end()
    }
}

impl<'a> RequestBody<'a> {
    pub fn new(
        request: &'a CompletionRequest<'a>,
        stream: bool,
        biz_params: Option<&'a Value>,
    ) -> Self {
        let (messages, prompt) = match request.session_id {
            // Bailian keeps the history: send only the new turn. `messages` would override
            // `session_id` (outbound.md §1.3), so never send both.
            Some(_) => (None, Some(request.user)),
            None => (
                Some(Messages {
                    history: request.history,
                    user: request.user,
                }),
                None,
            ),
        };
        RequestBody {
            input: Input {
                messages,
                prompt,
                session_id: request.session_id,
                image_list: request.images,
                biz_params,
            },
            parameters: Parameters {
                incremental_output: stream,
            },
            debug: Empty {},
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn turn(user: &str, assistant: &str) -> Turn {
        Turn {
            user: user.to_owned(),
            assistant: assistant.to_owned(),
            id: None,
            expiry_set: None,
        }
    }

    #[test]
    fn memory_becomes_messages_then_the_question() {
        let history = [turn("早", "早上好")];
        let request = CompletionRequest {
            history: &history,
            user: "几点开门？",
            images: &[],
            session_id: None,
        };

        let body = serde_json::to_value(RequestBody::new(&request, true, None)).unwrap();

        assert_eq!(
            body,
            json!({
                "input": {"messages": [
                    {"role": "user", "content": "早"},
                    {"role": "assistant", "content": "早上好"},
                    {"role": "user", "content": "几点开门？"},
                ]},
                "parameters": {"incremental_output": true},
                "debug": {},
            })
        );
    }

    #[test]
    fn a_cloud_session_sends_only_the_prompt_with_images_and_biz_params() {
        let images = ["https://img/1.png".to_owned()];
        let biz = json!({"city": "杭州"});
        let request = CompletionRequest {
            history: &[],
            user: "这是什么？",
            images: &images,
            session_id: Some("sess-1"),
        };

        let body = serde_json::to_value(RequestBody::new(&request, false, Some(&biz))).unwrap();

        assert_eq!(
            body,
            json!({
                "input": {
                    "prompt": "这是什么？",
                    "session_id": "sess-1",
                    "image_list": ["https://img/1.png"],
                    "biz_params": {"city": "杭州"},
                },
                "parameters": {},
                "debug": {},
            })
        );
    }
}
