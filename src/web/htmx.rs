//! The `Htmx` extractor: whether a request came from HTMX and wants only a fragment.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// HTMX request headers that change what a handler renders.
#[derive(Debug, Clone, Copy)]
pub struct Htmx {
    /// `HX-Request` is set and this is not a history restore: render the fragment.
    pub fragment: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Htmx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let h = &parts.headers;
        let fragment =
            h.contains_key("hx-request") && !h.contains_key("hx-history-restore-request");
        Ok(Htmx { fragment })
    }
}

/// Tells HTMX which URL the swapped-in content belongs to, so the address bar and the
/// back button follow the annotator.
pub fn with_push_url(mut res: Response, url: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(url) {
        res.headers_mut()
            .insert(HeaderName::from_static("hx-push-url"), v);
    }
    res
}

/// Middleware: an error answered to an HTMX request carries only the error's fragment, so
/// it replaces `#main` instead of nesting a whole page (header and all) inside it.
pub async fn error_fragments(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let htmx = request.headers().contains_key("hx-request")
        && !request.headers().contains_key("hx-history-restore-request");
    let response = next.run(request).await;
    if !htmx {
        return response;
    }
    let Some(crate::web::pages::ErrorFragment(fragment)) = response
        .extensions()
        .get::<crate::web::pages::ErrorFragment>()
        .cloned()
    else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(fragment))
}
