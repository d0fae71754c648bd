//! Operations endpoints: liveness, readiness (database and Redis), Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_sessions_redis_store::fred::prelude::ClientLike;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// 200 when the database (and Redis, when configured) answer; 503 naming what does not.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await;
    if !matches!(db, Ok(Ok(()))) {
        problems.push("database unreachable");
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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle) = state.db.pool_stats();
    metrics::gauge!("tracecoder_db_pool_connections").set(size as f64);
    metrics::gauge!("tracecoder_db_pool_idle_connections").set(idle as f64);
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}
