//! Operations endpoints: liveness, readiness (database reads and writes, Redis), Prometheus
//! metrics.

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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}
