//! The one application error type. How it becomes a page is the web layer's business
//! (`web::errors`).

use axum::http::StatusCode;

/// Every failure a handler can return. 4xx variants carry a message for the person;
/// `Internal` is logged in full and shown generically.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Redis, where sessions live (`REDIS_URL`), did not answer.
    #[error("Redis is unavailable")]
    RedisUnavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) | AppError::RedisUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person is told. Internal details never leave the server.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unavailable(_) => {
                "The database is not reachable right now. If you were saving, nothing was \
                 saved: please try again in a moment."
                    .to_string()
            }
            AppError::RedisUnavailable(_) => {
                "Redis, which keeps sign-in sessions, is not reachable right now. Nothing was \
                 lost; please try again in a moment."
                    .to_string()
            }
            AppError::Internal(_) => {
                "Something went wrong on our side. It has been logged.".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        // Unreachable, or unable to write (a full disk, an I/O error): 503, try again later.
        if crate::db::write::is_write_fault(&err) {
            AppError::Unavailable(err.into())
        } else {
            AppError::Internal(err.into())
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(err: tower_sessions::session::Error) -> Self {
        if crate::auth::sessions::is_redis_error(&err) {
            AppError::RedisUnavailable(err.into())
        } else {
            AppError::Unavailable(err.into())
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
