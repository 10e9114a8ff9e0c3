//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can serve messages).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::metrics::SourceLabels;
use crate::sources::SourceStatus;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

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
    let now = crate::clock::unix_ms();
    for (name, status) in sources(&state) {
        let labels = SourceLabels { source: name };
        let seen = status.snapshot();
        metrics
            .source_connected
            .get_or_create(&labels)
            .set(i64::from(seen.connected));
        metrics
            .source_last_frame_age_seconds
            .get_or_create(&labels)
            .set(now.saturating_sub(seen.last_frame_ms) as f64 / 1000.0);
        metrics
            .source_reconnects
            .get_or_create(&labels)
            .set(seen.reconnects as i64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.conversations.metrics().encode())
}

/// Ready when the configuration is loaded (it is, or we would not be running), with Redis
/// configured Redis answers a PING right now, and every inbound source is connected. Load
/// balancers stop sending traffic while not.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.conversations.store();
    let kind = if store.is_shared() {
        "redis"
    } else {
        "embedded"
    };
    let now = crate::clock::unix_ms();
    let sources: Vec<_> = sources(&state)
        .into_iter()
        .map(|(name, status)| {
            let seen = status.snapshot();
            json!({
                "name": name,
                "connected": seen.connected,
                "connected_for_secs": if seen.connected { now.saturating_sub(seen.since_ms) / 1000 } else { 0 },
                "last_frame_secs_ago": now.saturating_sub(seen.last_frame_ms) / 1000,
                "reconnects": seen.reconnects,
            })
        })
        .collect();
    let disconnected = sources.iter().any(|source| source["connected"] == false);
    match store.ping().await {
        // A source that is not connected receives nothing: not ready until it is again.
        Ok(()) if disconnected => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable", "store": kind, "reason": "a source is disconnected", "sources": sources,
        })),
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "store": kind, "sources": sources})),
        Err(error) => {
            tracing::warn!(%error, "readiness check: store unavailable");
            HttpResponse::ServiceUnavailable().json(
                json!({"status": "unavailable", "store": kind, "reason": "store unreachable"}),
            )
        }
    }
}

/// Every inbound source's name and status, read without holding the lock.
fn sources(state: &AppState) -> Vec<(String, std::sync::Arc<SourceStatus>)> {
    state
        .sources
        .read()
        .map(|statuses| statuses.clone())
        .unwrap_or_default()
}
