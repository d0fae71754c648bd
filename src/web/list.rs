//! The trace list: keyset pages in reading order with this annotator's status per row.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use crate::db::traces::{self, ListRow, PageCursor, StatusFilter};
use crate::db::{decisions, progress};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::extract::InDataset;
use crate::web::pages::{Nav, Progress};

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
    let mut rows = traces::list_page(&state.db, &scope, filter, cursor, per + 1).await?;
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
    let progress = Progress::of(
        progress::counts(&state.db, dataset.id, user.id).await?,
        total,
    );
    let skipped = decisions::skipped_count(&state.db, &scope).await?;
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
        ds_name: dataset.name,
        ds_slug: dataset.slug,
        progress,
        rows,
    })
}
