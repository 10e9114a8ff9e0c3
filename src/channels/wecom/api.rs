//! The WeCom server APIs botgate calls (outbound.md §3): `gettoken` per secret, the app's
//! `message/send`, and customer service's `kf/sync_msg`, `kf/send_msg`, `kf/send_msg_on_event`.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::channels::send::SendError;
use crate::metrics::{Metrics, PlatformLabels};
use crate::tokens::{TokenCache, TokenError};

const API_TIMEOUT: Duration = Duration::from_secs(10);

/// What one call's `errcode` means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 40001, 40014, 42001: the token is not (or no longer) valid: refresh once and retry.
    Token(i64),
    /// 95018: a human servicer has the customer-service session (or it is queued or ended).
    HumanHasSession,
    Send(SendError),
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

/// One secret's view of the WeCom API: the self-built app's, or customer service's.
pub struct WecomApi {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: SecretString,
    /// Tokens are per secret: two secrets of one corp have two tokens.
    token_key: String,
    tokens: TokenCache,
    metrics: Arc<Metrics>,
}

impl WecomApi {
    /// `scope` names the secret in the token cache (`app:1000002`, `kf`).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        corp_id: &str,
        secret: SecretString,
        scope: &str,
        tokens: TokenCache,
        metrics: Arc<Metrics>,
    ) -> Self {
        WecomApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
            corp_id: corp_id.to_owned(),
            secret,
            token_key: format!("wecom:{corp_id}:{scope}"),
            tokens,
            metrics,
        }
    }

    /// The shared token: `gettoken` returns the same token within its validity, so replicas
    /// share one, fetched single-flight (WeCom intercepts frequent `gettoken` calls).
    async fn token(&self) -> Result<String, TokenError> {
        let http = self.http.clone();
        let metrics = self.metrics.clone();
        let url = format!("{}/cgi-bin/gettoken", self.base);
        let query = [
            ("corpid", self.corp_id.clone()),
            ("corpsecret", self.secret.expose_secret().to_owned()),
        ];
        self.tokens
            .get(&self.token_key, || async move {
                metrics
                    .token_refreshes
                    .get_or_create(&PlatformLabels { platform: "wecom" })
                    .inc();
                // The URL carries the secret: errors never show it.
                let fetch =
                    |error: reqwest::Error| TokenError::Fetch(error.without_url().to_string());
                let reply: Reply = http
                    .get(url)
                    .query(&query)
                    .timeout(API_TIMEOUT)
                    .send()
                    .await
                    .map_err(fetch)?
                    .json()
                    .await
                    .map_err(fetch)?;
                match (reply.access_token, reply.errcode) {
                    (Some(token), 0) => {
                        Ok((token, Duration::from_secs(reply.expires_in.unwrap_or(7200))))
                    }
                    (_, code) => {
                        log_hint(code);
                        Err(TokenError::Fetch(format!(
                            "gettoken errcode {code}: {}",
                            reply.errmsg
                        )))
                    }
                }
            })
            .await
    }

    /// POSTs `body` to `/cgi-bin/{path}` with the shared token, refreshing it once when WeCom
    /// says it is stale (the cached one is dropped only if it is still the one that failed,
    /// so replicas never fight). Returns the response body of a call that succeeded.
    pub async fn call<B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<bytes::Bytes, ApiError> {
        let mut refreshed = false;
        loop {
            let token = self.token().await.map_err(|error| {
                ApiError::Send(SendError::Transient {
                    code: "token".into(),
                    message: error.to_string(),
                })
            })?;
            match self.call_once(path, &token, body).await {
                Err(ApiError::Token(code)) if !refreshed => {
                    tracing::warn!(code, "wecom token rejected; refreshing once");
                    if let Err(error) = self.tokens.invalidate_if(&self.token_key, &token).await {
                        tracing::warn!(%error, "could not invalidate the wecom token");
                    }
                    refreshed = true;
                }
                Err(ApiError::Token(code)) => {
                    return Err(ApiError::Send(SendError::Transient {
                        code: code.to_string(),
                        message: "token rejected twice".into(),
                    }))
                }
                other => return other,
            }
        }
    }

    async fn call_once<B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        token: &str,
        body: &B,
    ) -> Result<bytes::Bytes, ApiError> {
        let transient = |code: &str, message: String| {
            ApiError::Send(SendError::Transient {
                code: code.to_owned(),
                message,
            })
        };
        let response = self
            .http
            .post(format!("{}/cgi-bin/{path}", self.base))
            .query(&[("access_token", token)])
            .timeout(API_TIMEOUT)
            .json(body)
            .send()
            .await
            // The URL carries the access token: never let it into an error message.
            .map_err(|error| transient("http", error.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(transient(
                status.as_str(),
                "WeCom API answered with an HTTP error".into(),
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| transient("http", error.without_url().to_string()))?;
        let reply: Reply = serde_json::from_slice(&body)
            .map_err(|error| transient("decode", error.to_string()))?;
        classify(reply.errcode, &reply.errmsg)?;
        Ok(body)
    }
}

/// errcodes from outbound.md §3.
pub fn classify(errcode: i64, errmsg: &str) -> Result<(), ApiError> {
    let error = |transient: bool| {
        let (code, message) = (errcode.to_string(), errmsg.to_owned());
        ApiError::Send(match transient {
            true => SendError::Transient { code, message },
            false => SendError::Permanent { code, message },
        })
    };
    match errcode {
        0 => Ok(()),
        40001 | 40014 | 42001 => Err(ApiError::Token(errcode)),
        95018 => Err(ApiError::HumanHasSession),
        // System busy, frequency and concurrency limits: the block lasts about a minute.
        -1 | 45009 | 45033 => Err(error(true)),
        _ => {
            log_hint(errcode);
            Err(error(false))
        }
    }
}

/// The errors an operator fixes in the WeCom admin console, named with the fix.
fn log_hint(errcode: i64) {
    let hint = match errcode {
        60020 => "WeCom refused the call because this server's IP is not trusted: add its egress IP under the app's 企业可信IP (Trusted IPs) in the WeCom admin console",
        40013 | 40001 => "WeCom refused the corp id or secret: check corp_id and secret (or kf_secret) in [bots.NAME.wecom]",
        48002 => "WeCom says the app has no permission for this API: grant it in the admin console (for 微信客服, add the kf accounts to the app's 可调用接口的应用)",
        95017 | 95000 | 95004 => "the 微信客服 account is not managed by this app: in 微信客服 → API, give the app the accounts it should answer",
        _ => return,
    };
    tracing::error!(errcode, "{hint}");
}

impl From<ApiError> for SendError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Token(code) => SendError::Transient {
                code: code.to_string(),
                message: "token rejected".into(),
            },
            ApiError::HumanHasSession => SendError::Permanent {
                code: "95018".into(),
                message: "a human servicer has the session".into(),
            },
            ApiError::Send(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_are_classified() {
        assert_eq!(classify(0, "ok"), Ok(()));
        assert_eq!(classify(42001, "expired"), Err(ApiError::Token(42001)));
        assert_eq!(classify(95018, "session"), Err(ApiError::HumanHasSession));
        assert!(matches!(
            classify(45009, "freq"),
            Err(ApiError::Send(SendError::Transient { .. }))
        ));
        assert!(matches!(
            classify(60020, "ip"),
            Err(ApiError::Send(SendError::Permanent { .. }))
        ));
    }
}
