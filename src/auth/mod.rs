//! Who is asking: session keys, the `CurrentUser` and `RequireAdmin` extractors, sign-in
//! and sign-out shared by the development and OIDC flows.

pub mod dev;
pub mod oidc;
pub mod sessions;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::db::decisions::SessionTag;
use crate::db::users::{self, User};
use crate::error::AppError;
use crate::state::AppState;

/// Session key holding the signed-in user's id.
const USER_ID: &str = "user_id";
/// Session key holding when the session was last extended (unix seconds).
const SEEN_AT: &str = "seen_at";
/// Session key holding this sign-in's tag (random): `u` undoes only the decisions made
/// under it (`db::decisions::SessionTag`).
const SESSION_TAG: &str = "decision_tag";

/// The signed-in user. Rejects with a redirect to `/login` (full page) or a sign-in
/// notice (HTMX, so the page keeps what the person typed).
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

/// A signed-in admin; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct RequireAdmin(pub User);

/// Why there is no current user.
pub enum AuthRejection {
    /// `unsaved`: the request would have changed something (a form post), so say it was not saved.
    SignIn {
        htmx: bool,
        next: String,
        unsaved: bool,
    },
    Error(AppError),
}

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let htmx = parts.headers.contains_key("hx-request");
        let next = return_path(parts);
        let unsaved =
            parts.method != axum::http::Method::GET && parts.method != axum::http::Method::HEAD;
        let sign_in = || AuthRejection::SignIn {
            htmx,
            next: next.clone(),
            unsaved,
        };
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                AuthRejection::Error(AppError::Internal(anyhow::anyhow!("session layer missing")))
            })?;
        let user_id: Option<crate::domain::UserId> = session
            .get(USER_ID)
            .await
            .map_err(|e| AuthRejection::Error(e.into()))?;
        let Some(user_id) = user_id else {
            return Err(sign_in());
        };
        let user = users::by_id(&state.db, user_id)
            .await
            .map_err(|e| AuthRejection::Error(e.into()))?;
        let Some(user) = user else {
            let _ = session.flush().await;
            return Err(sign_in());
        };
        extend_if_due(&session, state)
            .await
            .map_err(AuthRejection::Error)?;
        Ok(CurrentUser(user))
    }
}

impl OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <CurrentUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(u) => Ok(Some(u)),
            Err(AuthRejection::SignIn { .. }) => Ok(None),
            Err(AuthRejection::Error(e)) => Err(e),
        }
    }
}

impl FromRequestParts<AppState> for RequireAdmin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) =
            <CurrentUser as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        if !user.admin() {
            return Err(AppError::Forbidden(
                "This page is for admins. Ask an admin to import data or to make you an admin."
                    .into(),
            )
            .into_response());
        }
        Ok(RequireAdmin(user))
    }
}

/// Where to come back after signing in: the page the person was on. A GET returns to its own
/// URL; a form post (which cannot be replayed by a redirect) returns to the page it was sent
/// from (`HX-Current-URL`, else `Referer`), never to another site.
fn return_path(parts: &Parts) -> String {
    let page = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
    };
    let here = || {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    };
    let path = match page("hx-current-url") {
        Some(p) => p,
        None if parts.method == axum::http::Method::GET => here(),
        None => page("referer").unwrap_or_else(|| "/".into()),
    };
    safe_next(Some(&path))
}

/// Idle expiry without a session write per request: the session is re-saved (pushing its
/// expiry forward) at most once per tenth of the idle window.
async fn extend_if_due(session: &Session, state: &AppState) -> Result<(), AppError> {
    let now = crate::db::now();
    let seen: i64 = session.get(SEEN_AT).await?.unwrap_or(0);
    let window = (state.config.session_idle.as_secs() / 10).max(1) as i64;
    if now - seen >= window {
        session.insert(SEEN_AT, now).await?;
    }
    Ok(())
}

/// The signed-in user of a session, if any (no redirect, no session write): for pages that
/// show the top bar without requiring a sign-in, such as an error page.
pub async fn signed_in_user(session: &Session, state: &AppState) -> Result<Option<User>, AppError> {
    let user_id: Option<crate::domain::UserId> = session.get(USER_ID).await?;
    match user_id {
        Some(id) => Ok(users::by_id(&state.db, id).await?),
        None => Ok(None),
    }
}

/// Signs a user in: a new session id (no fixation), then the user id.
pub async fn sign_in(session: &Session, user: &User) -> Result<(), AppError> {
    session.cycle_id().await?;
    session.insert(USER_ID, user.id).await?;
    session.insert(SEEN_AT, crate::db::now()).await?;
    session.insert(SESSION_TAG, new_tag()).await?;
    Ok(())
}

/// A fresh, positive random tag (0 is the command line's).
fn new_tag() -> i64 {
    (rand::random::<u64>() >> 1).max(1) as i64
}

/// This sign-in's tag for the decision log; a session from before tags were kept gets one
/// now (one session write, once).
pub async fn session_tag(session: &Session) -> Result<SessionTag, AppError> {
    if let Some(tag) = session.get::<i64>(SESSION_TAG).await? {
        return Ok(SessionTag(tag));
    }
    let tag = new_tag();
    session.insert(SESSION_TAG, tag).await?;
    Ok(SessionTag(tag))
}

/// Ends the session everywhere (the store row is deleted).
pub async fn sign_out(session: &Session) -> Result<(), AppError> {
    session.flush().await?;
    Ok(())
}

/// A `next` target after sign-in: only a local path, never another site.
/// Browsers drop tabs and newlines from a URL and read `\\` as `/`, so `/\t/evil.example`
/// would become `//evil.example`; any control character, backslash or space is refused
/// (a path from the app itself never holds one unencoded), which also keeps every `next`
/// a valid `Location` header.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains("://")
                && !n.chars().any(|c| c.is_control() || c == '\\' || c == ' ') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(safe_next(Some("/d/x/next")), "/d/x/next");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/d/x\r\nSet-Cookie: a=b")), "/");
        assert_eq!(
            safe_next(Some("/d/x?status=todo&per=50")),
            "/d/x?status=todo&per=50"
        );
        assert_eq!(safe_next(Some("/d/caf%C3%A9/t/%2F")), "/d/caf%C3%A9/t/%2F");
        assert_eq!(safe_next(None), "/");
    }
}
