//! The WeChat Official Account send APIs used by active mode: `stable_token`, customer-service
//! text messages and the typing indicator (outbound.md §2).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::channels::send::SendError;
use std::sync::Arc;

use crate::metrics::{Metrics, PlatformLabels};
use crate::tokens::{TokenCache, TokenError};

const API_TIMEOUT: Duration = Duration::from_secs(10);

/// What one call's `errcode` means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 40001, 40014, 42001: the token is not (or no longer) valid: refresh once and retry.
    Token(i64),
    /// 48001: the account lacks the customer-service permission: fall back to passive mode.
    NoPermission,
    Send(SendErrorKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendErrorKind {
    Transient(String, String),
    Permanent(String, String),
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

pub struct WechatApi {
    http: reqwest::Client,
    base: String,
    app_id: String,
    secret: SecretString,
    tokens: TokenCache,
    metrics: Arc<Metrics>,
}

impl WechatApi {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        app_id: &str,
        secret: SecretString,
        tokens: TokenCache,
        metrics: Arc<Metrics>,
    ) -> Self {
        WechatApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            secret,
            tokens,
            metrics,
        }
    }

    fn token_key(&self) -> String {
        format!("wechat:{}", self.app_id)
    }

    /// The shared token, from `stable_token` in normal mode: idempotent within its validity, so
    /// replicas never invalidate each other's (never `cgi-bin/token`, never `force_refresh`).
    pub async fn token(&self) -> Result<String, TokenError> {
        let http = self.http.clone();
        let metrics = self.metrics.clone();
        let url = format!("{}/cgi-bin/stable_token", self.base);
        let body = json!({
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self.secret.expose_secret(),
            "force_refresh": false,
        });
        self.tokens
            .get(&self.token_key(), || async move {
                metrics
                    .token_refreshes
                    .get_or_create(&PlatformLabels { platform: "wechat" })
                    .inc();
                let response = http
                    .post(url)
                    .timeout(API_TIMEOUT)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|error| TokenError::Fetch(error.without_url().to_string()))?;
                let reply: Reply = response
                    .json()
                    .await
                    .map_err(|error| TokenError::Fetch(error.without_url().to_string()))?;
                match (reply.access_token, reply.errcode) {
                    (Some(token), 0) => {
                        Ok((token, Duration::from_secs(reply.expires_in.unwrap_or(7200))))
                    }
                    (_, code) => Err(TokenError::Fetch(format!(
                        "stable_token errcode {code}: {}",
                        reply.errmsg
                    ))),
                }
            })
            .await
    }

    pub async fn invalidate(&self, failed: &str) {
        if let Err(error) = self.tokens.invalidate_if(&self.token_key(), failed).await {
            tracing::warn!(%error, "could not invalidate the wechat token");
        }
    }

    pub async fn send_text(
        &self,
        token: &str,
        openid: &str,
        content: &str,
    ) -> Result<(), ApiError> {
        let body = json!({"touser": openid, "msgtype": "text", "text": {"content": content}});
        self.call("message/custom/send", token, &body).await
    }

    pub async fn typing(&self, token: &str, openid: &str, on: bool) -> Result<(), ApiError> {
        let command = if on { "Typing" } else { "CancelTyping" };
        self.call(
            "message/custom/typing",
            token,
            &json!({"touser": openid, "command": command}),
        )
        .await
    }

    async fn call(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<(), ApiError> {
        let response = self
            .http
            .post(format!("{}/cgi-bin/{path}", self.base))
            .query(&[("access_token", token)])
            .timeout(API_TIMEOUT)
            .json(body)
            .send()
            .await
            // The URL carries the access token: never let it into an error message.
            .map_err(|error| transient("http", &error.without_url().to_string()))?;
        if !response.status().is_success() {
            let status = response.status().as_u16().to_string();
            return Err(transient(&status, "WeChat API answered with an HTTP error"));
        }
        let reply: Reply = response
            .json()
            .await
            .map_err(|error| transient("decode", &error.without_url().to_string()))?;
        classify(reply.errcode, &reply.errmsg)
    }
}

fn transient(code: &str, message: &str) -> ApiError {
    ApiError::Send(SendErrorKind::Transient(
        code.to_owned(),
        message.to_owned(),
    ))
}

/// errcodes from outbound.md §2.3.
pub fn classify(errcode: i64, errmsg: &str) -> Result<(), ApiError> {
    let permanent = |meaning: &str| {
        ApiError::Send(SendErrorKind::Permanent(
            errcode.to_string(),
            format!("{meaning} ({errmsg})"),
        ))
    };
    match errcode {
        0 => Ok(()),
        40001 | 40014 | 42001 => Err(ApiError::Token(errcode)),
        48001 => Err(ApiError::NoPermission),
        -1 | 45009 | 45011 => Err(transient(&errcode.to_string(), errmsg)),
        45015 => Err(permanent(
            "reply window closed (48 h) or the user unfollowed",
        )),
        45047 => Err(permanent("more than 5 messages for one user message")),
        40003 | 43004 => Err(permanent("user unknown or not following")),
        48002 => Err(permanent("user blocked messages")),
        45002 => Err(permanent("content too long")),
        _ => Err(permanent("refused")),
    }
}

impl From<SendErrorKind> for SendError {
    fn from(kind: SendErrorKind) -> Self {
        match kind {
            SendErrorKind::Transient(code, message) => SendError::Transient { code, message },
            SendErrorKind::Permanent(code, message) => SendError::Permanent { code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_map_to_what_we_do_about_them() {
        assert_eq!(classify(0, "ok"), Ok(()));
        assert_eq!(classify(42001, ""), Err(ApiError::Token(42001)));
        assert_eq!(classify(48001, ""), Err(ApiError::NoPermission));
        assert!(matches!(
            classify(-1, ""),
            Err(ApiError::Send(SendErrorKind::Transient(..)))
        ));
        assert!(
            matches!(classify(45015, ""), Err(ApiError::Send(SendErrorKind::Permanent(code, _))) if code == "45015")
        );
        assert!(matches!(
            classify(45047, ""),
            Err(ApiError::Send(SendErrorKind::Permanent(..)))
        ));
    }
}
