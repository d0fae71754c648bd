//! The HTTP surface: one router per feature, merged here with the cross-cutting layers.

pub mod annotate;
pub mod assets;
pub mod codebook;
pub mod dashboard;
pub mod dataset;
pub mod errors;
pub mod export;
pub mod extract;
pub mod htmx;
pub mod import;
pub mod judges;
pub mod list;
pub mod login;
pub mod markdown;
pub mod navigation;
pub mod ops;
pub mod pages;
pub mod review;
pub mod security;
pub mod slow_uploads;
pub mod trace_view;
pub mod urls;

use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{from_extractor_with_state, from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Response};
use axum_prometheus::metrics_exporter_prometheus::PrometheusHandle;
use axum_prometheus::{EndpointLabel, PrometheusMetricLayer, PrometheusMetricLayerBuilder};
use tower_governor::GovernorLayer;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::RequireAdmin;
use crate::auth::sessions::AppSessionStore;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::security::Site;

/// Renders a template (or one of its blocks) as HTML; a render failure is a logged 500.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

/// The HTTP metrics layer and the exporter handle. The recorder is global, so it is
/// installed once per process (tests build many apps).
pub fn metrics() -> &'static (PrometheusMetricLayer<'static>, PrometheusHandle) {
    static METRICS: OnceLock<(PrometheusMetricLayer<'static>, PrometheusHandle)> = OnceLock::new();
    METRICS.get_or_init(|| {
        PrometheusMetricLayerBuilder::new()
            .with_prefix("tracecoder")
            .with_endpoint_label_type(EndpointLabel::MatchedPathWithFallbackFn(|_| {
                "unmatched".into()
            }))
            .with_default_metrics()
            .build_pair()
    })
}

/// The whole application router, answering to the names of `site`.
pub fn router(state: AppState, sessions: AppSessionStore, site: Site) -> anyhow::Result<Router> {
    let config = &state.config;
    let login_limit = security::limiter(config, config.login_burst, config.login_ip_period);
    let import_limit = security::limiter(config, config.import_burst, config.rate_limit_period);
    let site = Arc::new(site);

    let admin = import::router()
        .merge(review::lead_router())
        .merge(judges::lead_router())
        .merge(dataset::lead_router())
        .merge(codebook::lead_router())
        .route_layer(from_extractor_with_state::<RequireAdmin, _>(state.clone()));
    let upload = import::upload_router()
        .route_layer(from_extractor_with_state::<RequireAdmin, _>(state.clone()))
        .layer(GovernorLayer::new(import_limit).error_handler(security::too_many_requests))
        .layer(from_fn_with_state(state.clone(), slow_uploads::enforce));
    let attempts = login::attempt_router()
        .layer(GovernorLayer::new(login_limit).error_handler(security::too_many_requests));

    let timed = Router::new()
        .merge(dashboard::router())
        .merge(dataset::router())
        .merge(list::router())
        .merge(trace_view::router())
        .merge(navigation::router())
        .merge(annotate::router())
        .merge(review::router())
        .merge(codebook::router())
        .merge(login::router())
        .merge(attempts)
        .merge(admin)
        .merge(ops::router(config.metrics_bind.is_none()))
        .merge(assets::router())
        .fallback(|| async { AppError::NotFound("There is no page at this address.".into()) })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    // Uploads and exports stream for as long as they need: no request timeout.
    let app = timed.merge(upload).merge(export::router());

    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("tracecoder_session")
        .with_http_only(true)
        .with_secure(config.secure_cookies())
        .with_same_site(tower_sessions::cookie::SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            config.session_idle.as_secs() as i64,
        )));

    let request_id = HeaderName::from_static("x-request-id");
    let (metric_layer, _) = metrics();
    // Each layer wraps the ones before it, so a request meets them bottom-up: a wrong Host
    // is refused before anything else; HTMX requests get error fragments; cross-site writes
    // are refused before the session is loaded; whatever error is left (a rejected form, a
    // timeout, a failed session save) becomes one of our pages.
    let mut app = app
        .layer(from_fn_with_state(state.clone(), errors::with_nav))
        .layer(session_layer)
        .layer(from_fn_with_state(state.clone(), errors::as_pages))
        .layer(from_fn_with_state(site.clone(), security::check_origin))
        .layer(from_fn(htmx::error_fragments))
        .layer(from_fn_with_state(site, security::check_host));
    for layer in security::header_layers() {
        app = app.layer(layer);
    }
    // The fastest level: pages are small, exports are large, and at the default level brotli
    // took a tenth of the server's CPU under the 100-annotator load (docs/benchmarks.md).
    Ok(app
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            // One access-log line per request (status, latency) carrying the span's request id;
            // `RUST_LOG=tower_http=warn` silences it.
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::COOKIE,
            axum::http::header::AUTHORIZATION,
        ]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(metric_layer.clone())
        .layer(CatchPanicLayer::new())
        .with_state(state))
}

/// The router of the separate metrics address (`METRICS_BIND`): `/metrics` and nothing else.
/// Scrapers ask by IP address, so there is no `Host` check here.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(ops::metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
        .with_state(state)
}
