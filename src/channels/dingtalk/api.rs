//! The DingTalk HTTP calls botgate makes (outbound.md §4): the robot OpenAPI with its shared
//! access token, and posts to a message's session webhook.

use std::sync::Arc;
use std::time::Duration;

use botgate_dingtalk::outbound::{
    AccessTokenRequest, AccessTokenResponse, OpenApiError, OpenApiSend, SessionWebhookResponse,
    ACCESS_TOKEN_HEADER, OPENAPI_BASE,
};
use botgate_dingtalk::stream::{OpenConnectionRequest, OpenConnectionResponse};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::channels::send::SendError;
use crate::metrics::{Metrics, PlatformLabels};
use crate::tokens::{TokenCache, TokenError};

const API_TIMEOUT: Duration = Duration::from_secs(10);

/// One robot app's view of api.dingtalk.com (or a configured stand-in).
pub struct DingtalkApi {
    http: reqwest::Client,
    base: String,
    app_key: String,
    app_secret: SecretString,
    token_key: String,
    tokens: TokenCache,
    metrics: Arc<Metrics>,
}

/// Why an api.dingtalk.com call did not succeed.
#[derive(Debug)]
pub enum ApiFailure {
    /// DingTalk answered with this HTTP status and error body.
    Refused { status: u16, error: OpenApiError },
    /// No answer (timeout, connection).
    Unreachable(String),
    /// No token to ask with.
    NoToken(String),
}

impl ApiFailure {
    /// A short code for logs and metrics: DingTalk's error code, or the HTTP status.
    pub fn code(&self) -> String {
        match self {
            ApiFailure::Refused { status, error } if error.code.is_empty() => status.to_string(),
            ApiFailure::Refused { error, .. } => error.code.clone(),
            ApiFailure::Unreachable(_) | ApiFailure::NoToken(_) => "unreachable".to_owned(),
        }
    }
}

/// A session webhook's answer, as the sender acts on it.
pub enum WebhookOutcome {
    Sent,
    /// Refused (expired session, bad body, a non-DingTalk answer): the OpenAPI may still work.
    Refused(String),
}

impl DingtalkApi {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        app_key: &str,
        app_secret: SecretString,
        tokens: TokenCache,
        metrics: Arc<Metrics>,
    ) -> Self {
        DingtalkApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
            app_key: app_key.to_owned(),
            app_secret,
            token_key: format!("dingtalk:{app_key}"),
            tokens,
            metrics,
        }
    }

    /// The app's access token, shared by every replica and fetched single-flight.
    async fn token(&self) -> Result<String, TokenError> {
        let http = self.http.clone();
        let metrics = self.metrics.clone();
        let url = format!("{}/v1.0/oauth2/accessToken", self.base);
        let body = AccessTokenRequest::new(&self.app_key, self.app_secret.expose_secret());
        self.tokens
            .get(&self.token_key, || async move {
                metrics
                    .token_refreshes
                    .get_or_create(&PlatformLabels {
                        platform: "dingtalk",
                    })
                    .inc();
                let fetch =
                    |error: reqwest::Error| TokenError::Fetch(error.without_url().to_string());
                let response = http
                    .post(url)
                    .timeout(API_TIMEOUT)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_json())
                    .send()
                    .await
                    .map_err(fetch)?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(fetch)?;
                if !status.is_success() {
                    let error: OpenApiError = serde_json::from_slice(&bytes).unwrap_or_default();
                    tracing::error!(status = status.as_u16(), code = %error.code, "DingTalk refused the access token request: check app_key and app_secret in [bots.NAME.dingtalk]");
                    return Err(TokenError::Fetch(format!(
                        "accessToken HTTP {status}: {}",
                        error.code
                    )));
                }
                let token: AccessTokenResponse = serde_json::from_slice(&bytes)
                    .map_err(|error| TokenError::Fetch(format!("accessToken body: {error}")))?;
                Ok((token.access_token, Duration::from_secs(token.expire_in)))
            })
            .await
    }

    /// Sends one robot OpenAPI message (through [`Self::call`], so a rejected token is fetched
    /// again once).
    pub async fn send(&self, send: &OpenApiSend) -> Result<(), SendError> {
        let path = send.url().strip_prefix(OPENAPI_BASE).unwrap_or(send.url());
        match self.call(reqwest::Method::POST, path, send.to_json()).await {
            Ok(()) => Ok(()),
            Err(ApiFailure::NoToken(message)) => Err(SendError::Transient {
                code: "token".into(),
                message,
            }),
            Err(ApiFailure::Unreachable(message)) => Err(SendError::Transient {
                code: "http".into(),
                message,
            }),
            Err(ApiFailure::Refused { status, error }) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if status == StatusCode::FORBIDDEN {
                    tracing::error!(code = %error.code, "DingTalk refused the robot send: grant the app 企业内机器人发送消息权限 (qyapi_robot_sendmsg) in the developer console");
                }
                Err(classify(status, &error))
            }
        }
    }

    /// One JSON call to `path` on api.dingtalk.com with the shared token; a token DingTalk
    /// rejects (401) is dropped and fetched again once (only if it is still the one that
    /// failed, so replicas never fight).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: String,
    ) -> Result<(), ApiFailure> {
        let url = format!("{}{path}", self.base);
        let mut refreshed = false;
        loop {
            let token = self
                .token()
                .await
                .map_err(|error| ApiFailure::NoToken(error.to_string()))?;
            let response = self
                .http
                .request(method.clone(), &url)
                .timeout(API_TIMEOUT)
                .header(ACCESS_TOKEN_HEADER, &token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|error| ApiFailure::Unreachable(error.without_url().to_string()))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let bytes = response.bytes().await.unwrap_or_default();
            let error: OpenApiError = serde_json::from_slice(&bytes).unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::warn!(code = %error.code, "dingtalk token rejected; refreshing once");
                if let Err(error) = self.tokens.invalidate_if(&self.token_key, &token).await {
                    tracing::warn!(%error, "could not invalidate the dingtalk token");
                }
                refreshed = true;
                continue;
            }
            return Err(ApiFailure::Refused {
                status: status.as_u16(),
                error,
            });
        }
    }

    /// POSTs `body` to a session webhook (already checked against the allowed hosts). The URL
    /// is a credential: it never reaches an error message or a log.
    pub async fn post_webhook(&self, url: &str, body: String) -> Result<WebhookOutcome, SendError> {
        let response = self
            .http
            .post(url)
            .timeout(API_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(SendError::transport)?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SendError::Transient {
                code: status.as_str().to_owned(),
                message: "session webhook answered with an HTTP error".into(),
            });
        }
        if !status.is_success() {
            return Ok(WebhookOutcome::Refused(format!("HTTP {status}")));
        }
        let bytes = response.bytes().await.map_err(SendError::transport)?;
        // DingTalk answers `{"errcode":0}`; an empty 200 is taken as sent.
        let reply: SessionWebhookResponse = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(match reply.is_ok() {
            true => WebhookOutcome::Sent,
            false => WebhookOutcome::Refused(format!("errcode {}", reply.errcode)),
        })
    }
}

impl DingtalkApi {
    /// Stream mode's `POST /v1.0/gateway/connections/open`: where to connect, with a ticket
    /// for one connection. The error says what failed, never the secret or the ticket.
    pub async fn open_connection(&self, ua: &str) -> Result<OpenConnectionResponse, String> {
        let body = OpenConnectionRequest::robot_messages(
            &self.app_key,
            self.app_secret.expose_secret(),
            ua,
        );
        let response = self
            .http
            .post(format!("{}/v1.0/gateway/connections/open", self.base))
            .timeout(API_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_json())
            .send()
            .await
            .map_err(|error| error.without_url().to_string())?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| error.without_url().to_string())?;
        if !status.is_success() {
            let error: OpenApiError = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(format!("connections/open HTTP {status}: {}", error.code));
        }
        serde_json::from_slice(&bytes).map_err(|error| format!("connections/open body: {error}"))
    }
}

/// 5xx and 429 are worth retrying; any other refusal is not.
fn classify(status: StatusCode, error: &OpenApiError) -> SendError {
    let code = match error.code.is_empty() {
        true => status.as_str().to_owned(),
        false => error.code.clone(),
    };
    let message = format!("HTTP {status}: {}", error.message);
    match status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        true => SendError::Transient { code, message },
        false => SendError::Permanent { code, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_transient_the_rest_permanent() {
        let error = OpenApiError::default();

        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &error),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &error),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &error),
            SendError::Permanent { .. }
        ));
    }
}
