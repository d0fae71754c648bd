//! Moving through a dataset: the next trace this annotator has not annotated (entering a
//! dataset, skipping, after a save), or the all-done page.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::db::annotations;
use crate::db::datasets::Dataset;
use crate::db::progress;
use crate::db::scope::Scope;
use crate::db::traces::Trace;
use crate::db::users::User;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::extract::{InDataset, find_trace};
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
    pub flash: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/next", get(next))
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
        (Some((trace_id, _)), _) => (Some(trace_id), flash),
        (None, Some(fb)) => (
            Some(fb.trace_id),
            Some("This is the only trace you have not annotated yet.".to_string()),
        ),
        (None, None) => (None, flash),
    };
    let Some(trace_id) = next else {
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
            flash,
        };
        return Ok(if htmx.fragment {
            with_push_url(render(&page.as_main()), &urls::next(&dataset.slug))
        } else {
            page.into_response()
        });
    };
    let url = urls::trace(&dataset.slug, &trace_id);
    if !htmx.fragment {
        return Ok(Redirect::to(&url).into_response());
    }
    let next = find_trace(state, dataset, scope, &trace_id).await?;
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
