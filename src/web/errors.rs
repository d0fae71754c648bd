//! How errors become pages (and fragments for HTMX): every `AppError` a handler returns, a
//! missing sign-in (a redirect, or for HTMX a notice that keeps the page as it is), and the
//! errors that do not come from a handler — extractor rejections (a form that does not
//! parse, a body over the 2 MB form limit), 405s, request timeouts, and a session store that
//! failed while saving. axum and tower-http answer those with plain text or an empty body; a
//! person should get the same page, in the same words, as for every other error.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{AuthRejection, urlencode};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::pages::{ErrorFragment, ErrorPage, Nav, SessionExpired, ShownError};
use crate::web::security::is_probe;

/// Middleware, just outside the session layer: every 4xx/5xx that is not already HTML (one
/// of our pages, or a page such as the sign-in form answered with an error status) becomes
/// one of our error pages. Probes (`/readyz` answers 503 in plain text) are left alone.
pub async fn as_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let probe = is_probe(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let ours = response.extensions().get::<ErrorFragment>().is_some()
        || content_type.is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if probe || ours || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if status == StatusCode::INTERNAL_SERVER_ERROR && content_type.is_none() {
        // tower-sessions answers a bare 500 when saving the session failed (and has logged
        // why): the store is not reachable.
        return store_unavailable(&state).into_response();
    }
    let detail = axum::body::to_bytes(response.into_body(), 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if status.is_server_error() {
        tracing::error!(%status, %detail, "server error outside a handler");
    } else {
        tracing::info!(%status, %detail, "request refused before its handler");
    }
    let page = ErrorPage {
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        message: message_for(status).into(),
        nav: None,
    };
    page.into_error_response(status)
}

/// Middleware, just inside the session layer: an error page shown to a signed-in person
/// keeps the top bar of every other page (their name, the datasets, sign out), so a 404 is
/// not a dead end. Only error pages pay for the user lookup; HTMX fragments are left alone.
pub async fn with_nav(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let session = request
        .extensions()
        .get::<tower_sessions::Session>()
        .cloned();
    let htmx = request.headers().contains_key("hx-request");
    let response = next.run(request).await;
    let Some(shown) = response.extensions().get::<ShownError>().cloned() else {
        return response;
    };
    if htmx {
        return response;
    }
    let Some(session) = session else {
        return response;
    };
    let Ok(Some(user)) = crate::auth::signed_in_user(&session, &state).await else {
        return response;
    };
    let status = response.status();
    let (parts, _) = response.into_parts();
    let page = ErrorPage {
        title: shown.title,
        status: shown.status,
        message: shown.message,
        nav: Nav::of(&user),
    };
    let fresh = page.into_error_response(status);
    let (fresh_parts, body) = fresh.into_parts();
    let mut parts = parts;
    parts.extensions = fresh_parts.extensions;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// The session store's outage, naming Redis when sessions live there.
pub fn store_unavailable(state: &AppState) -> AppError {
    let cause = anyhow::anyhow!("saving the session failed");
    if state.redis.is_some() {
        AppError::RedisUnavailable(cause)
    } else {
        AppError::Unavailable(cause)
    }
}

/// What the person is told, by status. The framework's own text (which names Rust types and
/// fields) is logged instead.
fn message_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        405 => {
            "This address does not take that kind of request. Go back and use the page's own links and buttons."
        }
        408 => {
            "This took too long and was stopped. If you were saving, reload the page to see whether it was saved, then try again."
        }
        413 => "What you sent is larger than this form accepts (2 MB). Shorten it and try again.",
        415 | 422 => {
            "The form was incomplete or held a value this page does not accept. Reload the page and try again."
        }
        404 => "There is no page at this address.",
        400..=499 => "This request could not be understood. Reload the page and try again.",
        _ => "Something went wrong on our side. It has been logged.",
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            AppError::Unavailable(e) | AppError::RedisUnavailable(e) => {
                tracing::warn!(error = %e, "dependency unavailable")
            }
            _ => {}
        }
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            message: self.public_message(),
            nav: None,
        };
        let mut response = page.into_error_response(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("5"));
        }
        response
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::SignIn {
                htmx: false, next, ..
            } => Redirect::to(&format!("/login?next={}", urlencode(&next))).into_response(),
            AuthRejection::SignIn {
                htmx: true,
                next,
                unsaved,
            } => {
                let page = SessionExpired { next, unsaved };
                let mut res = (StatusCode::UNAUTHORIZED, page).into_response();
                let h = res.headers_mut();
                h.insert("hx-retarget", HeaderValue::from_static("#flash"));
                h.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
                res
            }
            AuthRejection::Error(e) => e.into_response(),
        }
    }
}
