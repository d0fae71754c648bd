//! Operations endpoints: liveness, readiness (database reads and writes, Redis), Prometheus
//! metrics. They answer under any `Host` (load balancers and scrapers ask by IP address);
//! `/metrics` can require a bearer token (`METRICS_TOKEN`) or move to its own address
//! (`METRICS_BIND`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use tower_sessions_redis_store::fred::prelude::ClientLike;

use crate::state::AppState;
use crate::web::security::constant_time_eq;

/// `/healthz`, `/readyz` and, unless it has its own address (`METRICS_BIND`), `/metrics`.
pub fn router(with_metrics: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if with_metrics {
        router.route("/metrics", get(metrics))
    } else {
        router
    }
}

/// 200 when the database answers and takes writes (and Redis, when configured, answers);
/// 503 naming what does not.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await;
    if !matches!(db, Ok(Ok(()))) {
        problems.push("database unreachable");
    } else if state.db.write_fault().is_some() {
        // Writes failed and none has succeeded since: try one now (a committed update of a
        // one-row table), so readiness comes back as soon as the disk has room again.
        let probe =
            tokio::time::timeout(std::time::Duration::from_secs(2), state.db.probe_write()).await;
        if !matches!(probe, Ok(Ok(()))) {
            problems.push("database writes are failing (is the disk full?)");
        }
    }
    if let Some(redis) = &state.redis {
        let ping = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            redis.ping::<String>(None),
        )
        .await;
        if !matches!(ping, Ok(Ok(_))) {
            problems.push("redis unreachable");
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join(", ")),
        )
    }
}

/// Prometheus text. With `METRICS_TOKEN` set, only for `Authorization: Bearer <token>`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "/metrics needs Authorization: Bearer <METRICS_TOKEN>\n",
            )
                .into_response();
        }
    }
    let (size, idle) = state.db.pool_stats();
    metrics::gauge!("tracecoder_db_pool_connections").set(size as f64);
    metrics::gauge!("tracecoder_db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("tracecoder_db_writes_failing")
        .set(f64::from(u8::from(state.db.write_fault().is_some())));
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
