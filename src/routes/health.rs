//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can serve messages).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the configuration is loaded (it is, or we would not be running) and, with Redis
/// configured, Redis answers a PING right now. Load balancers stop sending traffic while not.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = state.conversations.metrics();
    // Read at scrape time: the queue is shared, so every replica reports the same depth.
    match state.acceptor.queue().depth().await {
        Ok(depth) => {
            metrics.queue_depth.set(depth.pending as i64);
            metrics
                .queue_oldest_age_seconds
                .set(depth.oldest_age.map_or(0.0, |age| age.as_secs_f64()));
        }
        Err(error) => tracing::warn!(%error, "queue depth unavailable for /metrics"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.conversations.metrics().encode())
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.conversations.store();
    let kind = if store.is_shared() {
        "redis"
    } else {
        "embedded"
    };
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "store": kind})),
        Err(error) => {
            tracing::warn!(%error, "readiness check: store unavailable");
            HttpResponse::ServiceUnavailable().json(
                json!({"status": "unavailable", "store": kind, "reason": "store unreachable"}),
            )
        }
    }
}
