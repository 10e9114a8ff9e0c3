//! The one mapping from webhook failures to HTTP: 4xx with the reason for bad input, an opaque
//! 503 for our own trouble (the platform retries; nothing was accepted, so nothing is lost).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use botgate_contract::AdapterError;

use crate::channels::NoticeError;
use crate::core::CoreError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("no {channel} channel for bot `{bot}`")]
    UnknownBot { channel: &'static str, bot: String },
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("could not act on the notice: {0}")]
    Notice(#[from] NoticeError),
}

impl ResponseError for CallbackError {
    fn status_code(&self) -> StatusCode {
        match self {
            CallbackError::UnknownBot { .. } => StatusCode::NOT_FOUND,
            CallbackError::Adapter(
                AdapterError::BadSignature | AdapterError::StaleTimestamp { .. },
            ) => StatusCode::UNAUTHORIZED,
            CallbackError::Adapter(AdapterError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            CallbackError::Adapter(_) => StatusCode::BAD_REQUEST,
            CallbackError::Core(_) | CallbackError::Store(_) | CallbackError::Notice(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "webhook failed");
            return HttpResponse::build(status).body("temporarily unavailable");
        }
        // The skew, as a field of its own: a replay shows as one large value, a server whose
        // clock drifts as many similar ones.
        let skew_secs = match self {
            CallbackError::Adapter(AdapterError::StaleTimestamp { skew_secs }) => Some(*skew_secs),
            _ => None,
        };
        tracing::warn!(error = %self, status = status.as_u16(), skew_secs, "webhook refused");
        HttpResponse::build(status).body(self.to_string())
    }
}
