//! Typed LLM failures; retry decisions come from the variant, never from matching error text.

/// What went wrong with one LLM call. `request_id` is Bailian's, for support tickets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("throttled ({code}), request_id={request_id:?}")]
    Throttled {
        code: String,
        request_id: Option<String>,
    },
    #[error("server error {status} ({code}), request_id={request_id:?}")]
    Server {
        status: u16,
        code: String,
        request_id: Option<String>,
    },
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Transport(String),
    /// The server said it did not process the request because it is closing the connection (an
    /// HTTP/2 stream above a GOAWAY's last stream id): sending it again cannot answer twice.
    #[error("not processed by the server: {0}")]
    Unprocessed(String),
    #[error("content moderation rejected the question or answer, request_id={request_id:?}")]
    ContentRejected { request_id: Option<String> },
    /// Bad key, key/region mismatch, unpublished app, wrong workspace, arrears: an operator must act.
    #[error("not authorised ({code}: {message}), request_id={request_id:?}")]
    Unauthorized {
        code: String,
        message: String,
        request_id: Option<String>,
    },
    #[error("request rejected ({status} {code}: {message}), request_id={request_id:?}")]
    BadRequest {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    #[error("unexpected response: {0}")]
    Protocol(String),
}

impl LlmError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::Throttled { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout
                | LlmError::Transport(_)
                | LlmError::Unprocessed(_)
        )
    }

    /// Retried without a backoff: the server asked for the request to go to another connection,
    /// so waiting would only spend the reply window (WeChat's 5 s). Still bounded by `retries`.
    pub fn retry_at_once(&self) -> bool {
        matches!(self, LlmError::Unprocessed(_))
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            LlmError::Throttled { request_id, .. }
            | LlmError::Server { request_id, .. }
            | LlmError::ContentRejected { request_id }
            | LlmError::Unauthorized { request_id, .. }
            | LlmError::BadRequest { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Maps a provider's error status and code to a variant. Codes follow the Bailian catalogue
    /// (outbound.md §1.6); OpenAI-style lower-case codes map the same way.
    pub fn classify(status: u16, code: &str, message: &str, request_id: Option<String>) -> Self {
        let code_owned = code.to_owned();
        if code.starts_with("Throttling") || status == 429 {
            return LlmError::Throttled {
                code: code_owned,
                request_id,
            };
        }
        if code.eq_ignore_ascii_case("DataInspectionFailed") || code == "data_inspection_failed" {
            return LlmError::ContentRejected { request_id };
        }
        if status == 401
            || status == 403
            || code == "InvalidApiKey"
            || code == "invalid_api_key"
            || code == "Arrearage"
            || code.contains("AccessDenied")
        {
            return LlmError::Unauthorized {
                code: code_owned,
                message: message.to_owned(),
                request_id,
            };
        }
        if matches!(status, 408 | 500 | 502 | 503 | 504)
            || code.starts_with("InternalError")
            || code == "ServiceUnavailable"
            || code == "GatewayTimeout"
            || code == "RequestTimeOut"
        {
            let status = if status == 200 { 500 } else { status };
            return LlmError::Server {
                status,
                code: code_owned,
                request_id,
            };
        }
        LlmError::BadRequest {
            status,
            code: code_owned,
            message: message.to_owned(),
            request_id,
        }
    }

    pub(crate) fn transport(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return LlmError::Timeout;
        }
        // reqwest's Display includes the URL; our URLs carry no secrets (keys go in headers).
        LlmError::Transport(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_catalogue() {
        assert!(matches!(
            LlmError::classify(429, "Throttling.RateQuota", "", None),
            LlmError::Throttled { .. }
        ));
        assert!(matches!(
            LlmError::classify(400, "DataInspectionFailed", "", None),
            LlmError::ContentRejected { .. }
        ));
        assert!(matches!(
            LlmError::classify(401, "InvalidApiKey", "", None),
            LlmError::Unauthorized { .. }
        ));
        assert!(matches!(
            LlmError::classify(403, "App.AccessDenied", "", None),
            LlmError::Unauthorized { .. }
        ));
        assert!(matches!(
            LlmError::classify(400, "Arrearage", "", None),
            LlmError::Unauthorized { .. }
        ));
        assert!(matches!(
            LlmError::classify(500, "InternalError", "", None),
            LlmError::Server { .. }
        ));
        assert!(matches!(
            LlmError::classify(200, "InternalError", "", None),
            LlmError::Server { status: 500, .. }
        ));
        assert!(matches!(
            LlmError::classify(400, "InvalidParameter", "", None),
            LlmError::BadRequest { .. }
        ));
    }

    #[test]
    fn only_transient_errors_retry() {
        assert!(LlmError::Timeout.is_retryable());
        assert!(LlmError::Unprocessed(String::new()).is_retryable());
        assert!(LlmError::classify(503, "ServiceUnavailable", "", None).is_retryable());
        assert!(!LlmError::classify(401, "InvalidApiKey", "", None).is_retryable());
        assert!(!LlmError::classify(400, "DataInspectionFailed", "", None).is_retryable());
    }
}
