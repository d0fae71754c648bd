//! Sign-in and sign-out routes: the development form, or the OIDC redirect and callback.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::auth::{self, CurrentUser, dev, oidc, safe_next};
use crate::db::users;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::pages::Nav;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    nav: Option<Nav>,
    next: String,
    oidc_provider: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct DevLoginForm {
    name: String,
    next: Option<String>,
    admin: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Routes that rate limiting applies to (attempts to sign in).
pub fn attempt_router() -> Router<AppState> {
    Router::new()
        .route("/login", post(dev_login))
        .route("/auth/start", get(oidc_start))
        .route("/auth/callback", get(oidc_callback))
}

/// The rest: the form and sign-out.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page))
        .route("/logout", post(logout))
}

async fn login_page(
    State(state): State<AppState>,
    user: Option<CurrentUser>,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if user.is_some() {
        return Redirect::to(&next).into_response();
    }
    if let Some(oidc) = &state.oidc
        && oidc.straight_to_provider()
    {
        let start = format!("/auth/start?next={}", auth::urlencode(&next));
        return Redirect::to(&start).into_response();
    }
    LoginPage {
        nav: None,
        next,
        oidc_provider: state.oidc.as_ref().map(|o| o.provider_name()),
        error: None,
    }
    .into_response()
}

async fn dev_login(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<DevLoginForm>,
) -> AppResult<Response> {
    if state.oidc.is_some() {
        return Err(AppError::NotFound(
            "Sign in through your identity provider.".into(),
        ));
    }
    let next = safe_next(form.next.as_deref());
    let Some(name) = dev::parse_name(&form.name) else {
        let page = LoginPage {
            nav: None,
            next,
            oidc_provider: None,
            error: Some("Type a name of 1 to 100 characters.".into()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    if let Err(limited) = state.login_accounts.attempt(&dev::account_key(&name)) {
        return Ok(limited.into_response());
    }
    let admin = form.admin.is_some() || state.config.is_admin_email(&dev::email_of(&name));
    let user = dev::user_for(&state.db, &name, admin).await?;
    auth::sign_in(&session, &user).await?;
    Ok(Redirect::to(&next).into_response())
}

async fn oidc_start(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let Some(oidc) = &state.oidc else {
        return Err(AppError::NotFound("OIDC sign-in is not configured.".into()));
    };
    let url = oidc.start(&session, safe_next(q.next.as_deref())).await?;
    Ok(Redirect::to(&url).into_response())
}

async fn oidc_callback(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<CallbackQuery>,
) -> AppResult<Response> {
    let Some(oidc) = &state.oidc else {
        return Err(AppError::NotFound("OIDC sign-in is not configured.".into()));
    };
    let refuse = |msg: String| {
        let page = LoginPage {
            nav: None,
            next: "/".into(),
            oidc_provider: Some(oidc.provider_name()),
            error: Some(msg),
        };
        Ok((StatusCode::BAD_REQUEST, page).into_response())
    };
    if let Some(err) = q.error {
        let _ = session.remove::<serde_json::Value>("oidc_pending").await;
        tracing::warn!(
            error = %err,
            description = q.error_description.as_deref().unwrap_or(""),
            "the identity provider sent the sign-in back with an error"
        );
        return refuse(oidc::provider_error_message(&err).into());
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return refuse("The sign-in answer was incomplete. Please sign in again.".into());
    };
    match oidc.callback(&session, &code, &st).await? {
        Err(e) => {
            tracing::warn!(reason = ?e, "OIDC sign-in refused");
            refuse(e.to_string())
        }
        Ok((identity, next)) => {
            let account = format!("{} {}", identity.issuer, identity.subject);
            if let Err(limited) = state.login_accounts.attempt(&account) {
                return Ok(limited.into_response());
            }
            let verified = identity.email_verified(oidc.assume_email_verified());
            let who = users::SignIn {
                issuer: &identity.issuer,
                subject: &identity.subject,
                email: &identity.email,
                name: &identity.name,
                email_verified: verified,
            };
            let admin = verified && state.config.is_admin_email(&identity.email);
            let user = users::upsert(&state.db, &who, admin).await?;
            auth::sign_in(&session, &user).await?;
            Ok(Redirect::to(&next).into_response())
        }
    }
}

async fn logout(session: Session) -> AppResult<Redirect> {
    auth::sign_out(&session).await?;
    Ok(Redirect::to("/login"))
}
