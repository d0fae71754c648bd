//! Reading traces: the keyset list, one trace with its conversation, and "next unannotated".

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::db::annotations::{self, Annotation, OthersAnnotation};
use crate::db::datasets::{self, Dataset};
use crate::db::traces::{self, ListRow, PageCursor, StatusFilter, Trace, Turn};
use crate::db::users::User;
use crate::domain::annotation::AnnotationErrors;
use crate::domain::{SortKey, ToolCall};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::htmx::{Htmx, with_push_url};
use crate::web::pages::Nav;
use crate::web::render;

/// Rows per list page unless `?per=` asks for 10 to 500.
pub const PAGE_SIZE: i64 = 50;

/// Done / total and the split, for the progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
    pub passes: i64,
    pub fails: i64,
}

impl Progress {
    pub async fn load(state: &AppState, dataset: &Dataset, user_id: i64) -> AppResult<Progress> {
        let (passes, fails) = datasets::progress(&state.db, dataset.id, user_id).await?;
        Ok(Progress {
            done: passes + fails,
            total: dataset.trace_count,
            passes,
            fails,
        })
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "trace.html", blocks = ["main"])]
pub struct TracePage {
    pub nav: Option<Nav>,
    pub ds_name: String,
    pub list_url: String,
    pub trace: Trace,
    pub total_turns: i64,
    pub earlier: Vec<Turn>,
    pub tool_calls: Vec<ToolCall>,
    pub metadata: Vec<(String, String)>,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    pub annotate_url: String,
    pub skip_url: String,
    pub progress: Progress,
    pub mine: Option<Annotation>,
    pub others: Vec<OthersAnnotation>,
    pub version: i64,
    pub form_note: String,
    pub form_codes: String,
    pub form_comments: String,
    pub errors: AnnotationErrors,
    pub fail_open: bool,
    pub conflict: Option<Annotation>,
    pub write_failed: bool,
    pub flash: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "done.html", blocks = ["main"])]
pub struct DonePage {
    pub nav: Option<Nav>,
    pub ds_name: String,
    pub ds_slug: String,
    pub progress: Progress,
    pub flash: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "traces.html")]
pub struct ListPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    progress: Progress,
    filter: &'static str,
    filters: Vec<(&'static str, &'static str, i64)>,
    rows: Vec<ListRow>,
    prev_before: Option<i64>,
    next_after: Option<i64>,
    per: i64,
}

/// What the annotation form shows when it is re-rendered after a refused save.
#[derive(Debug, Default)]
pub struct FormState {
    pub note: String,
    pub codes: String,
    pub comments: String,
    pub version: i64,
    pub errors: AnnotationErrors,
    pub conflict: Option<Annotation>,
    /// The database could not commit the save (say so; nothing was saved).
    pub write_failed: bool,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/d/{slug}/traces", get(list))
        .route("/d/{slug}/t/{trace_id}", get(view))
        .route("/d/{slug}/next", get(next))
}

/// A trace's own URL.
pub fn trace_url(slug: &str, trace_id: &str) -> String {
    format!("/d/{slug}/t/{}", path_segment(trace_id))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The dataset named in the URL, or a 404 page.
pub async fn dataset(state: &AppState, slug: &str) -> AppResult<Dataset> {
    match datasets::by_slug(&state.db, slug).await? {
        Some(d) if d.trace_count > 0 => Ok(d),
        _ => Err(AppError::NotFound(format!(
            "There is no dataset \"{slug}\"."
        ))),
    }
}

/// One trace of the dataset, or a 404 page.
pub async fn trace(state: &AppState, dataset: &Dataset, trace_id: &str) -> AppResult<Trace> {
    traces::by_trace_id(&state.db, dataset.id, trace_id)
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "There is no trace \"{trace_id}\" in {}.",
                dataset.name
            ))
        })
}

/// Assembles the trace view. `form` is `None` for a fresh view (the form shows the saved
/// annotation), or what the annotator typed when a save was refused.
pub async fn trace_page(
    state: &AppState,
    user: &User,
    dataset: &Dataset,
    trace: Trace,
    form: Option<FormState>,
    flash: Option<String>,
) -> AppResult<TracePage> {
    let range = SortKey(trace.sort_key).conversation_range();
    let parts =
        traces::view_parts(&state.db, dataset.id, &trace, range, user.id, user.admin()).await?;
    let traces::ViewParts {
        turns,
        prev,
        next,
        mine,
        others,
        passes,
        fails,
    } = parts;
    let total_turns = trace.total_turns.unwrap_or(turns.len() as i64);
    let earlier: Vec<Turn> = turns
        .into_iter()
        .filter(|t| t.turn_number < trace.turn_number)
        .collect();
    let progress = Progress {
        done: passes + fails,
        total: dataset.trace_count,
        passes,
        fails,
    };
    let tool_calls: Vec<ToolCall> = serde_json::from_str(&trace.tool_calls).unwrap_or_default();
    let metadata: Vec<(String, String)> = serde_json::from_str(&trace.metadata).unwrap_or_default();
    let url = trace_url(&dataset.slug, &trace.trace_id);
    let form = form.unwrap_or_else(|| FormState {
        note: mine
            .as_ref()
            .map(|a| a.first_failure_note.clone())
            .unwrap_or_default(),
        codes: mine
            .as_ref()
            .map(|a| a.open_codes.clone())
            .unwrap_or_default(),
        comments: mine
            .as_ref()
            .map(|a| a.comments.clone())
            .unwrap_or_default(),
        version: mine.as_ref().map_or(0, |a| a.version),
        ..FormState::default()
    });
    let fail_open = !form.errors.is_empty()
        || form.conflict.is_some()
        || (form.write_failed && !form.note.is_empty());
    Ok(TracePage {
        nav: Nav::of(user),
        ds_name: dataset.name.clone(),
        list_url: format!("/d/{}/traces", dataset.slug),
        total_turns,
        earlier,
        tool_calls,
        metadata,
        prev_url: prev.map(|id| trace_url(&dataset.slug, &id)),
        next_url: next.map(|id| trace_url(&dataset.slug, &id)),
        annotate_url: format!("{url}/annotate"),
        skip_url: format!(
            "/d/{}/next?after={}",
            dataset.slug,
            path_segment(&trace.trace_id)
        ),
        progress,
        mine,
        others,
        version: form.version,
        form_note: form.note,
        form_codes: form.codes,
        form_comments: form.comments,
        errors: form.errors,
        fail_open,
        conflict: form.conflict,
        write_failed: form.write_failed,
        flash,
        trace,
    })
}

/// Shows the next unannotated trace after `current` (or the done page), as HTMX fragment
/// with `HX-Push-Url`, or as a redirect for a plain browser. `fallback` is shown when
/// nothing else is left (skipping the last unannotated trace stays on it).
pub async fn go_next(
    state: &AppState,
    htmx: Htmx,
    user: &User,
    dataset: &Dataset,
    current: Option<&Trace>,
    fallback: Option<Trace>,
    flash: Option<String>,
) -> AppResult<Response> {
    let found =
        traces::next_for(&state.db, dataset.id, user.id, current.map(|t| t.sort_key)).await?;
    let (next, flash) = match (found, fallback) {
        (Some((trace_id, _)), _) => (Some(trace_id), flash),
        (None, Some(fb)) => (
            Some(fb.trace_id),
            Some("This is the only trace you have not annotated yet.".to_string()),
        ),
        (None, None) => (None, flash),
    };
    match next {
        Some(trace_id) => {
            let url = trace_url(&dataset.slug, &trace_id);
            if !htmx.fragment {
                return Ok(Redirect::to(&url).into_response());
            }
            let next = trace(state, dataset, &trace_id).await?;
            let page = trace_page(state, user, dataset, next, None, flash).await?;
            Ok(with_push_url(render(&page.as_main()), &url))
        }
        None => {
            let page = DonePage {
                nav: Nav::of(user),
                ds_name: dataset.name.clone(),
                ds_slug: dataset.slug.clone(),
                progress: Progress::load(state, dataset, user.id).await?,
                flash,
            };
            if htmx.fragment {
                Ok(with_push_url(
                    render(&page.as_main()),
                    &format!("/d/{}/next", dataset.slug),
                ))
            } else {
                Ok(page.into_response())
            }
        }
    }
}

async fn view(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    htmx: Htmx,
    Path((slug, trace_id)): Path<(String, String)>,
) -> AppResult<Response> {
    let dataset = dataset(&state, &slug).await?;
    let trace = trace(&state, &dataset, &trace_id).await?;
    let page = trace_page(&state, &user, &dataset, trace, None, None).await?;
    Ok(if htmx.fragment {
        render(&page.as_main())
    } else {
        page.into_response()
    })
}

#[derive(Deserialize)]
pub struct NextQuery {
    /// Skip: the trace the annotator is leaving without a verdict.
    after: Option<String>,
}

async fn next(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    htmx: Htmx,
    Path(slug): Path<String>,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let dataset = dataset(&state, &slug).await?;
    let Some(after) = q.after.as_deref() else {
        return go_next(&state, htmx, &user, &dataset, None, None, None).await;
    };
    let current = trace(&state, &dataset, after).await?;
    let unannotated = annotations::for_trace(&state.db, current.id, user.id)
        .await?
        .is_none();
    let fallback = unannotated.then(|| current.clone());
    go_next(
        &state,
        htmx,
        &user,
        &dataset,
        Some(&current),
        fallback,
        None,
    )
    .await
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    after: Option<i64>,
    before: Option<String>,
    per: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> AppResult<ListPage> {
    let dataset = dataset(&state, &slug).await?;
    let filter = StatusFilter::parse(q.status.as_deref());
    let cursor = match (q.after, q.before.as_deref()) {
        (_, Some("last")) => PageCursor::Before(i64::MAX),
        (_, Some(b)) => PageCursor::Before(
            b.parse()
                .map_err(|_| AppError::BadRequest("That page link is not valid.".into()))?,
        ),
        (Some(a), None) => PageCursor::After(a),
        (None, None) => PageCursor::After(0),
    };
    // One row more than shown tells whether another page exists in that direction.
    let per = q.per.unwrap_or(PAGE_SIZE).clamp(10, 500);
    let mut rows =
        traces::list_page(&state.db, dataset.id, user.id, filter, cursor, per + 1).await?;
    let more = rows.len() as i64 > per;
    if more {
        match cursor {
            PageCursor::After(_) => {
                rows.pop();
            }
            PageCursor::Before(_) => {
                rows.remove(0);
            }
        }
    }
    let (has_prev, has_next) = match cursor {
        PageCursor::After(k) => (k > 0, more),
        PageCursor::Before(k) => (more, k != i64::MAX),
    };
    let progress = Progress::load(&state, &dataset, user.id).await?;
    Ok(ListPage {
        nav: Nav::of(&user),
        prev_before: if has_prev {
            rows.first().map(|r| r.sort_key)
        } else {
            None
        },
        next_after: if has_next {
            rows.last().map(|r| r.sort_key)
        } else {
            None
        },
        filters: vec![
            ("all", "All", progress.total),
            ("todo", "To do", progress.total - progress.done),
            ("pass", "Pass", progress.passes),
            ("fail", "Fail", progress.fails),
        ],
        filter: filter.as_str(),
        per,
        ds_name: dataset.name,
        ds_slug: dataset.slug,
        progress,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_urls_encode_reserved_characters() {
        assert_eq!(trace_url("ds", "a b/c?d"), "/d/ds/t/a%20b%2Fc%3Fd");
        assert_eq!(trace_url("ds", "conv_1-2.x~"), "/d/ds/t/conv_1-2.x~");
    }
}
