//! How a failed send is classified: the delivery engine's retry decisions come from it.

/// Why a send failed; retry decisions come from the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: timeouts, 5xx, throttling, busy.
    #[error("transient failure ({code}): {message}")]
    Transient { code: String, message: String },
    /// Retrying cannot help: user unreachable, window closed, content rejected, bad config.
    #[error("permanent failure ({code}): {message}")]
    Permanent { code: String, message: String },
    /// The channel cannot deliver this way, and its fallback takes the answer instead.
    #[error("falling back ({code}): {message}")]
    Fallback { code: String, message: String },
}

impl SendError {
    pub fn code(&self) -> &str {
        match self {
            SendError::Transient { code, .. }
            | SendError::Permanent { code, .. }
            | SendError::Fallback { code, .. } => code,
        }
    }

    pub fn transport(error: reqwest::Error) -> Self {
        SendError::Transient {
            code: "http".into(),
            message: error.without_url().to_string(),
        }
    }
}
