//! The trace list: keyset pages in reading order with this annotator's status per row.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use crate::db::traces::{self, CodedBy, CodedFilter, ListRow, PageCursor, StatusFilter};
use crate::db::{codebook, decisions, progress};
use crate::domain::annotation::normalize_code;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::extract::InDataset;
use crate::web::pages::{Nav, Progress};
use crate::web::urls;

/// Rows per list page unless `?per=` asks for 10 to 500.
pub const PAGE_SIZE: i64 = 50;

#[derive(Template, WebTemplate)]
#[template(path = "traces.html")]
pub struct ListPage {
    nav: Option<Nav>,
    ds_name: String,
    ds_slug: String,
    progress: Progress,
    filter: StatusFilter,
    filters: Vec<(StatusFilter, &'static str, i64)>,
    rows: Vec<ListRow>,
    prev_before: Option<i64>,
    next_after: Option<i64>,
    per: i64,
    /// Active failure mode names, for the filter.
    modes: Vec<String>,
    coded: Option<CodedView>,
    code_input: String,
}

/// The code or mode filter in force, as the page shows it.
pub struct CodedView {
    /// `the code “x”` or `the failure mode “y”`.
    label: String,
    fail_only: bool,
    /// The failure mode filtered by, if that is the filter.
    mode: Option<String>,
    /// The filter's query string part (`&code=…`), kept by the pager.
    query: String,
}

impl ListPage {
    /// The filter's part of the pager's links.
    pub fn coded_query(&self) -> &str {
        self.coded.as_ref().map_or("", |c| c.query.as_str())
    }
}

/// Reads the `code` / `mode` / `verdict` parameters; an unknown mode is a 404.
async fn coded_filter(
    state: &AppState,
    dataset: &crate::db::datasets::Dataset,
    q: &ListQuery,
) -> AppResult<Option<(CodedFilter, CodedView)>> {
    let fail_only = q.verdict.as_deref() == Some("fail");
    let fail = if fail_only { "&verdict=fail" } else { "" };
    if let Some(name) = q.mode.as_deref().filter(|m| !m.trim().is_empty()) {
        let mode = codebook::mode_by_name(&state.db, dataset.id, name)
            .await?
            .filter(|m| !m.archived())
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "There is no failure mode \"{name}\" in {}.",
                    dataset.name
                ))
            })?;
        let filter = CodedFilter {
            by: CodedBy::Mode(mode.id),
            fail_only,
        };
        let view = CodedView {
            label: format!("the failure mode “{}”", mode.name),
            mode: Some(mode.name.clone()),
            fail_only,
            query: format!("&mode={}{fail}", urls::path_segment(&mode.name)),
        };
        return Ok(Some((filter, view)));
    }
    let code = q.code.as_deref().map(normalize_code).unwrap_or_default();
    if code.is_empty() {
        return Ok(None);
    }
    let view = CodedView {
        label: format!("the open code “{code}”"),
        mode: None,
        fail_only,
        query: format!("&code={}{fail}", urls::path_segment(&code)),
    };
    let filter = CodedFilter {
        by: CodedBy::Code(code),
        fail_only,
    };
    Ok(Some((filter, view)))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/d/{slug}/traces", get(list))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    after: Option<i64>,
    before: Option<String>,
    per: Option<i64>,
    /// An open code (any spelling): traces whose annotation carries it.
    code: Option<String>,
    /// A failure mode by name (or a former name): traces carrying any of its codes.
    mode: Option<String>,
    /// `fail`: only annotations that are a Fail carry it (with `code` or `mode`).
    verdict: Option<String>,
}

impl ListQuery {
    /// Where the page starts; a `before` that is not a number is a broken link.
    fn cursor(&self) -> AppResult<PageCursor> {
        Ok(match (self.after, self.before.as_deref()) {
            (_, Some("last")) => PageCursor::Before(i64::MAX),
            (_, Some(b)) => PageCursor::Before(
                b.parse()
                    .map_err(|_| AppError::BadRequest("That page link is not valid.".into()))?,
            ),
            (Some(a), None) => PageCursor::After(a),
            (None, None) => PageCursor::After(0),
        })
    }
}

async fn list(
    State(state): State<AppState>,
    at: InDataset,
    Query(q): Query<ListQuery>,
) -> AppResult<ListPage> {
    let InDataset {
        user,
        dataset,
        scope,
    } = at;
    let filter = StatusFilter::parse(q.status.as_deref());
    let cursor = q.cursor()?;
    // One row more than shown tells whether another page exists in that direction.
    let per = q.per.unwrap_or(PAGE_SIZE).clamp(10, 500);
    let coded = coded_filter(&state, &dataset, &q).await?;
    let mut rows = match &coded {
        Some((coded, _)) => traces::coded_page(&state.db, &scope, coded, cursor, per + 1).await?,
        None => traces::list_page(&state.db, &scope, filter, cursor, per + 1).await?,
    };
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
    let total = progress::queue_size(&state.db, &scope)
        .await?
        .unwrap_or(dataset.trace_count);
    let (counts, skipped) = decisions::counts_and_skipped(&state.db, &scope).await?;
    let progress = Progress::of(counts, total);
    Ok(ListPage {
        nav: Nav::of(&user),
        prev_before: has_prev
            .then(|| rows.first().map(|r| r.sort_key.0))
            .flatten(),
        next_after: has_next
            .then(|| rows.last().map(|r| r.sort_key.0))
            .flatten(),
        filters: vec![
            (StatusFilter::All, "All", progress.total),
            (
                StatusFilter::Todo,
                "To do",
                progress.total - progress.done - skipped,
            ),
            (StatusFilter::Pass, "Pass", progress.passes),
            (StatusFilter::Fail, "Fail", progress.fails),
            (StatusFilter::Skipped, "Skipped", skipped),
        ],
        filter,
        per,
        modes: codebook::modes(&state.db, dataset.id)
            .await?
            .into_iter()
            .filter(|m| !m.archived())
            .map(|m| m.name)
            .collect(),
        coded: coded.map(|(_, view)| view),
        code_input: q.code.clone().unwrap_or_default(),
        ds_name: dataset.name,
        ds_slug: dataset.slug,
        progress,
        rows,
    })
}
