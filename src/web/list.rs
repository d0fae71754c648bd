//! The trace list: keyset pages in reading order with this annotator's status per row.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use crate::db::scope::Scope;
use crate::db::trace_search::{self, MetadataColumn};
use crate::db::traces::{self, CodedBy, CodedFilter, ListRow, PageCursor, StatusFilter};
use crate::db::users::{self, User};
use crate::db::{codebook, datasets, decisions, progress};
use crate::domain::UserId;
use crate::domain::annotation::normalize_code;
use crate::domain::search::TraceSearch;
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
    /// The search as typed (`q`, `field`, `value`), kept in the form.
    q_input: String,
    field_input: String,
    value_input: String,
    /// Whether a search or metadata filter is in force.
    searching: bool,
    /// Whether words are searched for (rows then come in import order).
    by_words: bool,
    /// The dataset's metadata columns and their common values, for the metadata filter.
    metadata: Arc<Vec<MetadataColumn>>,
    /// For admins: everyone who annotated the dataset, for the annotator filter.
    annotators: Vec<User>,
    /// The annotator whose list this is, when an admin views someone else's.
    viewing_as: Option<User>,
    /// Every filter but the status and the page, as a query string part (`&q=…`): kept by
    /// the status tabs and the pager.
    filter_query: String,
}

/// The code or mode filter in force, as the page shows it.
pub struct CodedView {
    /// `the code “x”` or `the failure mode “y”`.
    label: String,
    fail_only: bool,
    /// The failure mode filtered by, if that is the filter.
    mode: Option<String>,
}

impl ListPage {
    /// Whether the annotator filter shows this user.
    pub fn views(&self, user: &User) -> bool {
        self.viewing_as.as_ref().is_some_and(|v| v.id == user.id)
    }
}

/// Reads the `code` / `mode` / `verdict` parameters; an unknown mode is a 404.
async fn coded_filter(
    state: &AppState,
    dataset: &crate::db::datasets::Dataset,
    q: &ListQuery,
) -> AppResult<Option<(CodedFilter, CodedView)>> {
    let fail_only = q.verdict.as_deref() == Some("fail");
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
    /// Words to find in the user message or the AI response.
    q: Option<String>,
    /// A metadata column, and the exact `value` it must hold.
    field: Option<String>,
    value: Option<String>,
    /// Admins: another annotator's list (their verdicts, notes, codes and queue), by user id.
    annotator: Option<String>,
}

impl ListQuery {
    /// Every filter but the status and the page, as a query string part.
    fn kept(&self) -> String {
        let params = [
            ("q", &self.q),
            ("field", &self.field),
            ("value", &self.value),
            ("mode", &self.mode),
            ("code", &self.code),
            ("verdict", &self.verdict),
            ("annotator", &self.annotator),
        ];
        params
            .into_iter()
            .filter_map(|(name, v)| {
                let v = v.as_deref()?.trim();
                (!v.is_empty()).then(|| format!("&{name}={}", urls::path_segment(v)))
            })
            .collect()
    }

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

/// The scope the list is read in: the viewer's own, or — for an admin asking with
/// `annotator` — that annotator's, exactly as they see their list (their assigned traces,
/// their verdicts, notes and codes).
async fn list_scope(
    state: &AppState,
    user: &User,
    dataset: &crate::db::datasets::Dataset,
    own: Scope,
    annotator: Option<&str>,
) -> AppResult<(Scope, Option<User>)> {
    let Some(raw) = annotator.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok((own, None));
    };
    let id: i64 = raw
        .parse()
        .map_err(|_| AppError::BadRequest("That annotator link is not valid.".into()))?;
    if UserId(id) == user.id {
        return Ok((own, None));
    }
    if !user.admin() {
        return Err(AppError::Forbidden(
            "Only admins can see another annotator's list.".into(),
        ));
    }
    let not_found =
        || AppError::NotFound(format!("No one with that id annotates {}.", dataset.name));
    let other = users::by_id(&state.db, UserId(id))
        .await?
        .ok_or_else(not_found)?;
    let (_, assignment) = datasets::for_viewer(&state.db, &dataset.slug, &other.email)
        .await?
        .ok_or_else(not_found)?;
    let scope = Scope::annotator(dataset.id, other.id, assignment);
    Ok((scope, Some(other)))
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
    let (scope, viewing_as) =
        list_scope(&state, &user, &dataset, scope, q.annotator.as_deref()).await?;
    let filter = StatusFilter::parse(q.status.as_deref());
    let cursor = q.cursor()?;
    // One row more than shown tells whether another page exists in that direction.
    let per = q.per.unwrap_or(PAGE_SIZE).clamp(10, 500);
    let coded = coded_filter(&state, &dataset, &q).await?;
    let search = TraceSearch::parse(q.q.as_deref(), q.field.as_deref(), q.value.as_deref());
    // Page keys: trace ids for a search of words (import order), sort keys otherwise.
    let (mut keys, mut rows): (Vec<i64>, Vec<ListRow>) = if !search.is_empty() {
        let coded = coded.as_ref().map(|(c, _)| c);
        trace_search::search_page(&state.db, &scope, &search, filter, coded, cursor, per + 1)
            .await?
            .into_iter()
            .map(|r| (r.pk, r.row))
            .unzip()
    } else {
        let rows = match &coded {
            Some((coded, _)) => {
                traces::coded_page(&state.db, &scope, coded, filter, cursor, per + 1).await?
            }
            None => traces::list_page(&state.db, &scope, filter, cursor, per + 1).await?,
        };
        (rows.iter().map(|r| r.sort_key.0).collect(), rows)
    };
    let more = rows.len() as i64 > per;
    if more {
        match cursor {
            PageCursor::After(_) => {
                rows.pop();
                keys.pop();
            }
            PageCursor::Before(_) => {
                rows.remove(0);
                keys.remove(0);
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
        prev_before: has_prev.then(|| keys.first().copied()).flatten(),
        next_after: has_next.then(|| keys.last().copied()).flatten(),
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
        q_input: q.q.clone().unwrap_or_default(),
        field_input: q.field.clone().unwrap_or_default().trim().to_string(),
        value_input: q.value.clone().unwrap_or_default(),
        searching: !search.is_empty(),
        by_words: !search.words.is_empty(),
        metadata: state
            .metadata_hints
            .columns(&state.db, &scope, dataset.trace_count)
            .await?,
        annotators: if user.admin() {
            users::annotators_of(&state.db, dataset.id).await?
        } else {
            Vec::new()
        },
        viewing_as,
        filter_query: q.kept(),
        ds_name: dataset.name,
        ds_slug: dataset.slug,
        progress,
        rows,
    })
}
