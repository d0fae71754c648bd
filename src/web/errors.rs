//! How errors become pages: every `AppError` as the error page (its fragment for HTMX), and
//! a missing sign-in as a redirect or, for HTMX, a notice that keeps the page as it is.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{AuthRejection, urlencode};
use crate::error::AppError;
use crate::web::pages::{ErrorPage, SessionExpired};

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            AppError::Unavailable(e) => tracing::warn!(error = %e, "dependency unavailable"),
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
