//! Judge alignment pages for leads (admins): every judge side by side with the upload form
//! (`/d/{dataset}/judges`), and one judge measured against the reference labels
//! (`/d/{dataset}/judges/{judge}`, `.json` for CI).

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::db::judges::{self, JudgeRun};
use crate::domain::agreement::Interval;
use crate::error::{AppError, AppResult};
use crate::judges::{self as alignment, Alignment, Refusal, Report};
use crate::state::AppState;
use crate::web::extract::InDataset;
use crate::web::pages::Nav;
use crate::web::urls;

/// Largest judge file accepted through the form (a row is a trace id and a verdict).
const MAX_JUDGE_FILE: usize = 64 * 1024 * 1024;

/// Leads only (the router is guarded by `RequireAdmin` in `web`).
pub fn lead_router() -> Router<AppState> {
    Router::new()
        .route("/d/{slug}/judges", get(judges_page).post(upload))
        .route("/d/{slug}/judges/{judge}", get(judge_page))
        .layer(DefaultBodyLimit::max(MAX_JUDGE_FILE))
}

/// A judge's page URL.
pub fn judge_url(slug: &str, judge: &str) -> String {
    format!("/d/{slug}/judges/{}", urls::path_segment(judge))
}

#[derive(Template, WebTemplate)]
#[template(path = "judges.html")]
pub struct JudgesPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    reports: Vec<Report>,
    refusal: Option<Refusal>,
    judge_name: String,
}

impl JudgesPage {
    pub fn url(&self, judge: &str) -> String {
        judge_url(&self.ds_slug, judge)
    }
}

/// Formatting shared by the judge pages.
pub struct Fmt;

impl Fmt {
    pub fn pct(value: &Option<f64>) -> String {
        value.map_or("—".into(), |v| format!("{:.1}%", v * 100.0))
    }

    pub fn interval(value: &Option<Interval>) -> String {
        value.map_or("—".into(), |i| {
            format!("{:.1}% – {:.1}%", i.low * 100.0, i.high * 100.0)
        })
    }

    pub fn ci(value: &Option<[f64; 2]>) -> String {
        value.map_or("—".into(), |[lo, hi]| {
            format!("{:.1}% – {:.1}%", lo * 100.0, hi * 100.0)
        })
    }
}

async fn judges_page_for(
    state: &AppState,
    at: &InDataset,
    refusal: Option<Refusal>,
    judge_name: String,
) -> AppResult<JudgesPage> {
    let mut reports = Vec::new();
    for run in judges::latest_runs(&state.db, at.dataset.id).await? {
        reports.push(alignment::measure(&state.db, at.dataset.id, run).await?);
    }
    Ok(JudgesPage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name.clone(),
        ds_slug: at.dataset.slug.clone(),
        reports,
        refusal,
        judge_name,
    })
}

async fn judges_page(State(state): State<AppState>, at: InDataset) -> AppResult<JudgesPage> {
    judges_page_for(&state, &at, None, String::new()).await
}

async fn upload(
    State(state): State<AppState>,
    at: InDataset,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let bad_form = |_| {
        AppError::BadRequest(
            "The upload was interrupted or is not a valid form. Please try again.".into(),
        )
    };
    let (mut judge, mut file) = (String::new(), None);
    while let Some(field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("judge") => judge = field.text().await.map_err(bad_form)?,
            Some("file") => {
                let name = field.file_name().unwrap_or("judge.csv").to_string();
                file = Some((name, field.bytes().await.map_err(bad_form)?));
            }
            _ => {}
        }
    }
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        let refusal = Refusal {
            message: "Choose the judge's CSV file.".into(),
            errors: Vec::new(),
            error_count: 0,
        };
        let page = judges_page_for(&state, &at, Some(refusal), judge).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let outcome = alignment::import(
        &state.db,
        at.dataset.id,
        &judge,
        &file_name,
        &at.user.email,
        bytes.as_ref(),
    )
    .await?;
    match outcome {
        Ok(run) => Ok(Redirect::to(&judge_url(&at.dataset.slug, &run.judge)).into_response()),
        Err(refusal) => {
            let page = judges_page_for(&state, &at, Some(refusal), judge).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "judge.html")]
pub struct JudgePage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    report: Report,
    runs: Vec<JudgeRun>,
}

impl JudgePage {
    pub fn trace_url(&self, trace_id: &str) -> String {
        urls::trace(&self.ds_slug, trace_id)
    }

    pub fn version_url(&self, version: &i64) -> String {
        format!(
            "{}?version={version}",
            judge_url(&self.ds_slug, &self.report.run.judge)
        )
    }

    pub fn a(&self) -> &Alignment {
        &self.report.verdict
    }
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<i64>,
}

async fn judge_page(
    State(state): State<AppState>,
    at: InDataset,
    Path((_, raw)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> AppResult<Response> {
    let (judge, json) = match raw.strip_suffix(".json") {
        Some(name) => (name.to_string(), true),
        None => (raw, false),
    };
    let runs = judges::runs_of(&state.db, at.dataset.id, &judge).await?;
    let run = match q.version {
        Some(v) => runs.iter().find(|r| r.version == v),
        None => runs.first(),
    }
    .cloned()
    .ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no judge \"{judge}\"{} in {}.",
            q.version
                .map(|v| format!(" version {v}"))
                .unwrap_or_default(),
            at.dataset.name
        ))
    })?;
    let report = alignment::measure(&state.db, at.dataset.id, run).await?;
    if json {
        return Ok(axum::Json(report.verdict).into_response());
    }
    Ok(JudgePage {
        nav: Nav::of(&at.user),
        ds_name: at.dataset.name,
        ds_slug: at.dataset.slug,
        report,
        runs,
    }
    .into_response())
}
