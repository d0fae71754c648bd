//! A dataset's own page (`/d/{slug}`): progress, the team, where to go from here, and for
//! admins renaming and archiving it.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::db::datasets::{self, Member, RenameError};
use crate::db::{decisions, progress};
use crate::domain::DatasetName;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::extract::InDataset;
use crate::web::pages::{Nav, Progress};
use crate::web::urls;

#[derive(Template, WebTemplate)]
#[template(path = "dataset.html")]
pub struct DatasetPage {
    nav: Option<Nav>,
    is_admin: bool,
    ds_name: String,
    ds_slug: String,
    archived: bool,
    progress: Progress,
    skipped: i64,
    skipped_url: String,
    columns: Vec<String>,
    /// Everyone's progress (admins only; empty for annotators).
    team: Vec<Member>,
    /// The rename form as typed, and why it was refused.
    rename_value: String,
    rename_error: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}", get(page))
}

/// Admin-only routes (behind `RequireAdmin`).
pub fn lead_router() -> Router<AppState> {
    Router::new()
        .route("/d/{slug}/rename", post(rename))
        .route("/d/{slug}/archive", post(archive))
}

async fn page(State(state): State<AppState>, at: InDataset) -> AppResult<DatasetPage> {
    let name = at.dataset.name.clone();
    build(&state, at, name, None).await
}

async fn build(
    state: &AppState,
    at: InDataset,
    rename_value: String,
    rename_error: Option<String>,
) -> AppResult<DatasetPage> {
    let InDataset {
        user,
        dataset,
        scope,
    } = at;
    let total = progress::queue_size(&state.db, &scope)
        .await?
        .unwrap_or(dataset.trace_count);
    let counts = progress::counts(&state.db, dataset.id, user.id).await?;
    let team = if user.admin() {
        datasets::team(&state.db, dataset.id).await?
    } else {
        Vec::new()
    };
    Ok(DatasetPage {
        nav: Nav::of(&user),
        is_admin: user.admin(),
        archived: dataset.archived_at.is_some(),
        progress: Progress::of(counts, total),
        skipped: decisions::skipped_count(&state.db, &scope).await?,
        skipped_url: urls::skipped(&dataset.slug),
        columns: dataset.columns,
        team,
        rename_value,
        rename_error,
        ds_name: dataset.name,
        ds_slug: dataset.slug,
    })
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    at: InDataset,
    Form(form): Form<RenameForm>,
) -> AppResult<Response> {
    let refused = |at, why: String| {
        let state = &state;
        let typed = form.name.clone();
        async move {
            let page = build(state, at, typed, Some(why)).await?;
            AppResult::Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    };
    let name = match DatasetName::parse(&form.name) {
        Ok(name) => name,
        Err(e) => return refused(at, e.to_string()).await,
    };
    if let Err(RenameError::Taken) = datasets::rename(&state.db, at.dataset.id, &name).await? {
        let why = format!("Another dataset is already called “{}”.", name.as_str());
        return refused(at, why).await;
    }
    Ok(Redirect::to(&format!("/d/{}", at.dataset.slug)).into_response())
}

#[derive(Deserialize)]
pub struct ArchiveForm {
    /// `1` archives, anything else brings the dataset back.
    #[serde(default)]
    archive: String,
}

async fn archive(
    State(state): State<AppState>,
    at: InDataset,
    Form(form): Form<ArchiveForm>,
) -> AppResult<Response> {
    datasets::set_archived(&state.db, at.dataset.id, form.archive == "1").await?;
    Ok(Redirect::to(&format!("/d/{}", at.dataset.slug)).into_response())
}
