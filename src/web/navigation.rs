//! Moving through a dataset: the next trace this annotator has not annotated (entering a
//! dataset, skipping, after a save), the all-done page that offers the skipped traces, and
//! undoing the last decision of this session.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::db::annotations;
use crate::db::datasets::Dataset;
use crate::db::decisions::{self, Undone};
use crate::db::progress;
use crate::db::review;
use crate::db::saves::TraceRef;
use crate::db::scope::Scope;
use crate::db::traces::Trace;
use crate::db::users::User;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::extract::{InDataset, OnTrace, find_trace};
use crate::web::htmx::{Htmx, with_push_url};
use crate::web::pages::{Nav, Progress};
use crate::web::trace_view::trace_page;
use crate::web::{render, urls};

#[derive(Template, WebTemplate)]
#[template(path = "done.html", blocks = ["main"])]
pub struct DonePage {
    pub nav: Option<Nav>,
    pub ds_name: String,
    pub ds_slug: String,
    pub progress: Progress,
    /// The dataset has an assignment that does not name this annotator.
    pub not_assigned: bool,
    /// Traces this annotator skipped and has not annotated since.
    pub skipped: i64,
    pub skipped_url: String,
    pub undo_url: String,
    pub flash: Option<String>,
}

/// A message for the flash area alone (HTMX retargets it there; nothing else changes).
#[derive(Template)]
#[template(
    source = r#"<p class="notice notice-warn" id="{{ id }}">{{ message }}</p>"#,
    ext = "html"
)]
struct FlashNotice<'a> {
    id: &'a str,
    message: &'a str,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/d/{slug}/next", get(next))
        .route("/d/{slug}/t/{trace_id}/skip", post(skip))
        .route("/d/{slug}/undo", post(undo))
        .route("/d/{slug}/skipped", get(review_skipped))
}

/// Where "next" starts, and what to show when nothing else is left.
pub struct Leaving<'a> {
    /// The trace being left (after a save or a skip), or `None` when entering.
    pub current: Option<&'a Trace>,
    /// Shown when nothing else is left (skipping the last unannotated trace stays on it).
    pub fallback: Option<Trace>,
}

/// Shows the next unannotated trace (or the done page), as an HTMX fragment with
/// `HX-Push-Url`, or as a redirect for a plain browser.
pub async fn go_next(
    state: &AppState,
    htmx: Htmx,
    user: &User,
    dataset: &Dataset,
    scope: &Scope,
    from: Leaving<'_>,
    flash: Option<String>,
) -> AppResult<Response> {
    let found = progress::next_for(&state.db, scope, from.current.map(|t| t.sort_key)).await?;
    let (next, flash) = match (found, from.fallback) {
        (Some(trace), _) => (Some(trace), flash),
        (None, Some(fb)) => (
            Some(fb),
            Some("This is the only trace you have not annotated yet.".to_string()),
        ),
        (None, None) => (None, flash),
    };
    let Some(next) = next else {
        let page = DonePage {
            nav: Nav::of(user),
            ds_name: dataset.name.clone(),
            ds_slug: dataset.slug.clone(),
            progress: Progress::of(
                progress::counts(&state.db, dataset.id, user.id).await?,
                progress::queue_size(&state.db, scope)
                    .await?
                    .unwrap_or(dataset.trace_count),
            ),
            not_assigned: !scope.has_queue(),
            skipped: decisions::skipped_count(&state.db, scope).await?,
            skipped_url: urls::skipped(&dataset.slug),
            undo_url: urls::undo(&dataset.slug),
            flash,
        };
        return Ok(if htmx.fragment {
            with_push_url(render(&page.as_main()), &urls::next(&dataset.slug))
        } else {
            page.into_response()
        });
    };
    let url = urls::trace(&dataset.slug, &next.trace_id);
    if !htmx.fragment {
        return Ok(Redirect::to(&url).into_response());
    }
    let page = trace_page(state, user, dataset, scope, next, None, flash).await?;
    Ok(with_push_url(render(&page.as_main()), &url))
}

#[derive(Deserialize)]
pub struct NextQuery {
    /// Skip: the trace the annotator is leaving without a verdict.
    after: Option<String>,
}

async fn next(
    State(state): State<AppState>,
    htmx: Htmx,
    at: InDataset,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let InDataset {
        user,
        dataset,
        scope,
    } = at;
    let Some(after) = q.after.as_deref() else {
        let from = Leaving {
            current: None,
            fallback: None,
        };
        return go_next(&state, htmx, &user, &dataset, &scope, from, None).await;
    };
    let current = find_trace(&state, &dataset, &scope, after).await?;
    let unannotated = annotations::for_trace(&state.db, current.id, user.id)
        .await?
        .is_none();
    let from = Leaving {
        current: Some(&current),
        fallback: unannotated.then(|| current.clone()),
    };
    go_next(&state, htmx, &user, &dataset, &scope, from, None).await
}

/// Skip: recorded as this annotator's skip (the trace is passed over until they review
/// their skipped traces), then the next trace to do.
async fn skip(
    State(state): State<AppState>,
    htmx: Htmx,
    session: Session,
    at: OnTrace,
) -> AppResult<Response> {
    let OnTrace {
        user,
        dataset,
        scope,
        trace,
    } = at;
    let target = TraceRef {
        pk: trace.id,
        dataset_id: dataset.id,
        sort_key: trace.sort_key,
    };
    let by = crate::auth::session_tag(&session).await?;
    let recorded = decisions::skip(&state.db, &scope, target, by).await?;
    let flash = recorded.then(|| format!("Skipped {}.", trace.trace_id));
    let from = Leaving {
        current: Some(&trace),
        fallback: None,
    };
    go_next(&state, htmx, &user, &dataset, &scope, from, flash).await
}

/// The first of the annotator's skipped traces, to review them (else where to go next).
async fn review_skipped(State(state): State<AppState>, at: InDataset) -> AppResult<Response> {
    let url = match decisions::next_skipped(&state.db, &at.scope, 0).await? {
        Some(trace_id) => urls::trace(&at.dataset.slug, &trace_id),
        None => urls::next(&at.dataset.slug),
    };
    Ok(Redirect::to(&url).into_response())
}

/// Undo (`u`): the latest decision of this session not yet undone — a save or a skip — is
/// taken back, and the annotator is shown that trace again.
async fn undo(
    State(state): State<AppState>,
    htmx: Htmx,
    session: Session,
    at: InDataset,
) -> AppResult<Response> {
    let InDataset {
        user,
        dataset,
        scope,
    } = at;
    let by = crate::auth::session_tag(&session).await?;
    let Some(decision) = decisions::latest_undoable(&state.db, &scope, by).await? else {
        return Ok(nothing_to_undo(htmx, &dataset.slug));
    };
    let undone = decisions::undo(&state.db, &scope, &decision).await?;
    let Some(trace_id) = review::trace_id_of(&state.db, decision.trace_pk).await? else {
        return Ok(nothing_to_undo(htmx, &dataset.slug));
    };
    let flash = match undone {
        Undone::Skip => format!("Undone: your skip of {trace_id}. It is to do again."),
        Undone::FirstSave {
            verdict,
            skipped_again,
        } => format!(
            "Undone: your {} on {trace_id}. It is {} again; the undone save stays in its history.",
            verdict.label(),
            if skipped_again { "skipped" } else { "to do" }
        ),
        Undone::Replacement { verdict, restored } => format!(
            "Undone: your {} on {trace_id}; your earlier {} is back.",
            verdict.label(),
            restored.label()
        ),
        Undone::ChangedSince => format!(
            "Not undone: {trace_id} was saved again after that decision (another tab or device). Its history has every version."
        ),
    };
    let url = urls::trace(&dataset.slug, &trace_id);
    if !htmx.fragment {
        return Ok(Redirect::to(&url).into_response());
    }
    let trace = find_trace(&state, &dataset, &scope, &trace_id).await?;
    let page = trace_page(&state, &user, &dataset, &scope, trace, None, Some(flash)).await?;
    Ok(with_push_url(render(&page.as_main()), &url))
}

/// Nothing this session decided is left to undo: said in the flash area, the page stays.
fn nothing_to_undo(htmx: Htmx, slug: &str) -> Response {
    if !htmx.fragment {
        return Redirect::to(&urls::next(slug)).into_response();
    }
    let mut res = render(&FlashNotice {
        id: "nothing-to-undo",
        message: "Nothing to undo: you have made no decision in this dataset since you signed in (or undid them all).",
    });
    for (name, value) in [("hx-retarget", "#flash"), ("hx-reswap", "innerHTML")] {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}
