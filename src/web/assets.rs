//! Static assets compiled into the binary, so it runs from any working directory.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

const HTMX: &str = include_str!("../../static/htmx-2.0.11.min.js");
const APP_JS: &str = include_str!("../../static/app.js");
const APP_CSS: &str = include_str!("../../static/app.css");
const REVIEW_JS: &str = include_str!("../../static/review.js");
const CODES_JS: &str = include_str!("../../static/codes.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/static/htmx-2.0.11.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", HTMX, true) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS, false) }),
        )
        .route(
            "/static/review.js",
            get(|| async { asset("text/javascript; charset=utf-8", REVIEW_JS, false) }),
        )
        .route(
            "/static/codes.js",
            get(|| async { asset("text/javascript; charset=utf-8", CODES_JS, false) }),
        )
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS, false) }),
        )
        // Browsers ask for /favicon.ico whatever the page says; both answer the same icon.
        .route(
            "/static/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON, false) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", FAVICON, false) }),
        )
}

fn asset(content_type: &'static str, body: &'static str, immutable: bool) -> impl IntoResponse {
    // The vendored HTMX file has its version in its name; our own files may change.
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
}
