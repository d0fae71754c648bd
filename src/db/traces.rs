//! Traces: one by its id, the turns of its conversation, and keyset pages of the list.
//!
//! Every query is scoped ([`Scope`]): `$1` is the dataset, `$2` the viewer, and traces of
//! imports that are not done are never visible.

use sqlx::{Any, FromRow};

use super::Db;
use super::scope::Scope;
use super::types::Json;
use crate::domain::{DatasetId, Metadata, ModeId, OpenCodes, SortKey, ToolCall, TracePk, Verdict};

/// One trace, as the trace view needs it.
#[derive(Debug, Clone, FromRow)]
pub struct Trace {
    pub id: TracePk,
    pub dataset_id: DatasetId,
    pub trace_id: String,
    pub sort_key: SortKey,
    pub flow_session: String,
    pub turn_number: i64,
    pub total_turns: Option<i64>,
    pub user_message: String,
    pub ai_response: String,
    #[sqlx(try_from = "Json<Vec<ToolCall>>")]
    pub tool_calls: Vec<ToolCall>,
    #[sqlx(try_from = "Json<Metadata>")]
    pub metadata: Metadata,
}

/// An earlier turn of the same conversation, shown collapsed above the current one.
#[derive(Debug, Clone, FromRow)]
pub struct Turn {
    pub trace_id: String,
    pub turn_number: i64,
    pub user_message: String,
    pub ai_response: String,
}

/// A row of the trace list with this annotator's verdict (`None` = todo, or skipped).
#[derive(Debug, Clone, FromRow)]
pub struct ListRow {
    pub trace_id: String,
    pub sort_key: SortKey,
    pub flow_session: String,
    pub turn_number: i64,
    pub preview: String,
    pub verdict: Option<Verdict>,
    /// 1 when the annotator skipped it and has not annotated it since.
    pub skipped: i64,
    /// The viewer's first-failure note on it (empty when none).
    pub note: String,
    /// The viewer's open codes on it.
    pub codes: OpenCodes,
}

impl ListRow {
    /// The row's status for this annotator: `pass`, `fail`, `skipped` or `todo`.
    pub fn status(&self) -> &'static str {
        match (self.verdict, self.skipped) {
            (Some(v), _) => v.as_str(),
            (None, 1) => "skipped",
            (None, _) => "todo",
        }
    }
}

/// SQL condition: the viewer has skipped trace `t`.
pub(super) const SKIPPED: &str = "EXISTS (SELECT 1 FROM skips s
    WHERE s.user_id = $2 AND s.dataset_id = $1 AND s.sort_key = t.sort_key)";

/// Which rows a list page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    Todo,
    Pass,
    Fail,
    Skipped,
}

impl StatusFilter {
    /// Reads the `status` query parameter; anything unknown shows everything.
    pub fn parse(raw: Option<&str>) -> StatusFilter {
        match raw {
            Some("todo") => StatusFilter::Todo,
            Some("pass") => StatusFilter::Pass,
            Some("fail") => StatusFilter::Fail,
            Some("skipped") => StatusFilter::Skipped,
            _ => StatusFilter::All,
        }
    }

    /// SQL condition: trace `t`, with the viewer's annotation `a` joined, has this status.
    pub(super) fn condition(self) -> String {
        match self {
            StatusFilter::All => "1 = 1".to_string(),
            StatusFilter::Todo => format!("a.verdict IS NULL AND NOT {SKIPPED}"),
            StatusFilter::Pass => format!("a.verdict = '{}'", Verdict::Pass.as_str()),
            StatusFilter::Fail => format!("a.verdict = '{}'", Verdict::Fail.as_str()),
            StatusFilter::Skipped => format!("a.verdict IS NULL AND {SKIPPED}"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Todo => "todo",
            StatusFilter::Pass => "pass",
            StatusFilter::Fail => "fail",
            StatusFilter::Skipped => "skipped",
        }
    }
}

/// Where a keyset page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor {
    /// Rows with `sort_key > k`, ascending (k = 0 is the first page).
    After(i64),
    /// Rows with `sort_key < k`, the `limit` closest ones (i64::MAX is the last page).
    Before(i64),
}

impl PageCursor {
    /// The keyset comparison, the order of the walk and the key, for `sort_key {cmp} $k
    /// ORDER BY sort_key {order}`.
    pub(super) fn keyset(self) -> (&'static str, &'static str, i64) {
        match self {
            PageCursor::After(k) => (">", "ASC", k),
            PageCursor::Before(k) => ("<", "DESC", k),
        }
    }

    /// Rows walked backwards come nearest first: put them back in reading order.
    pub(super) fn in_reading_order<T>(self, rows: &mut [T]) {
        if matches!(self, PageCursor::Before(_)) {
            rows.reverse();
        }
    }
}

/// SQL columns of a [`ListRow`] for trace `t` with the viewer's annotation `a` left-joined
/// (NULL when there is none): its verdict, whether it is skipped, the note and the codes.
pub(super) fn row_columns(db: &Db) -> String {
    format!(
        "t.trace_id, t.sort_key, t.flow_session, t.turn_number,
         SUBSTR(t.user_message, 1, 160) AS preview, a.verdict,
         CAST(CASE WHEN a.verdict IS NULL AND {SKIPPED} THEN 1 ELSE 0 END AS BIGINT) AS skipped,
         {}",
        own_note_and_codes(db)
    )
}

/// SQL columns: the viewer's own note and codes on a list row, from annotation `a` (codes
/// by the primary key prefix of `annotation_codes`; NULL, no codes, without an annotation).
fn own_note_and_codes(db: &Db) -> String {
    format!(
        "SUBSTR(COALESCE(a.first_failure_note, ''), 1, 200) AS note, {} AS codes",
        super::codes::codes_of(db.backend(), "a.id")
    )
}

/// The columns of a [`Trace`] of alias `t`.
pub(crate) const TRACE_COLUMNS: &str = "t.id, t.dataset_id, t.trace_id, t.sort_key, t.flow_session, \
    t.turn_number, t.total_turns, t.user_message, t.ai_response, t.tool_calls, t.metadata";

/// One trace by its own id (unique index `(dataset_id, trace_id)`).
pub async fn by_trace_id(
    db: &Db,
    scope: &Scope,
    trace_id: &str,
) -> Result<Option<Trace>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TRACE_COLUMNS} FROM traces t
         WHERE t.dataset_id = $1 AND $2 = $2 AND t.trace_id = $3 AND {}",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(trace_id)
    .fetch_optional(db.reader())
    .await
}

/// The turns of one conversation, in order: a range scan of `(dataset_id, sort_key)`.
pub(crate) async fn conversation_on<'e, E>(
    executor: E,
    scope: &Scope,
    range: (i64, i64),
) -> Result<Vec<Turn>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT t.trace_id, t.turn_number, t.user_message, t.ai_response
         FROM traces t WHERE t.dataset_id = $1 AND $2 = $2
           AND t.sort_key >= $3 AND t.sort_key < $4 AND {}
         ORDER BY t.sort_key LIMIT 1000",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(range.0)
    .bind(range.1)
    .fetch_all(executor)
    .await
}

/// One keyset page of the list with the viewer's verdicts, in one query whatever the
/// page size. `All`/`Todo` walk `(dataset_id, sort_key)` (`Todo` from the low-water mark);
/// `Pass`/`Fail` walk the viewer's annotations of that verdict by `annotations_user_verdict`,
/// `Skipped` their `skips` rows, so sparse filters stay fast.
pub async fn list_page(
    db: &Db,
    scope: &Scope,
    filter: StatusFilter,
    cursor: PageCursor,
    limit: i64,
) -> Result<Vec<ListRow>, sqlx::Error> {
    let (cmp, order, key) = cursor.keyset();
    let visible = scope.traces("t");
    let note_codes = own_note_and_codes(db);
    let columns = row_columns(db);
    // Everything at or below the low-water mark is annotated: the to-do walk starts above
    // it (or stops at it, going backwards) instead of stepping over, say, 100,000 annotated
    // traces. Read inside the statement, so a page stays one query.
    const LOW_WATER: &str =
        "(SELECT r.low_water FROM resume_points r WHERE r.user_id = $2 AND r.dataset_id = $1)";
    let sql = match filter {
        StatusFilter::All => format!(
            "SELECT {columns}
             FROM traces t
             LEFT JOIN annotations a ON a.trace_pk = t.id AND a.user_id = $2
             WHERE t.dataset_id = $1 AND t.sort_key {cmp} $3 AND {visible}
             ORDER BY t.sort_key {order} LIMIT $4"
        ),
        StatusFilter::Todo => {
            let range = match cursor {
                PageCursor::After(_) => "t.sort_key > (SELECT CASE WHEN COALESCE(MAX(r.low_water), 0) > $3
                                                    THEN MAX(r.low_water) ELSE $3 END
                                                FROM resume_points r WHERE r.user_id = $2 AND r.dataset_id = $1)"
                    .to_string(),
                PageCursor::Before(_) => format!("t.sort_key < $3 AND t.sort_key > COALESCE({LOW_WATER}, 0)"),
            };
            // NOT EXISTS rather than LEFT JOIN … IS NULL: Postgres then walks the index
            // and probes; with the join it estimated one to-do row in all and chose a
            // parallel sequential scan and a sort (90 ms at 100,000 traces).
            format!(
                "SELECT t.trace_id, t.sort_key, t.flow_session, t.turn_number,
                        SUBSTR(t.user_message, 1, 160) AS preview, CAST(NULL AS TEXT) AS verdict,
                        CAST(0 AS BIGINT) AS skipped, '' AS note, CAST(NULL AS TEXT) AS codes
                 FROM traces t
                 WHERE t.dataset_id = $1 AND {range}
                   AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = t.id AND a.user_id = $2)
                   AND NOT EXISTS (SELECT 1 FROM skips s
                                   WHERE s.user_id = $2 AND s.dataset_id = $1 AND s.sort_key = t.sort_key)
                   AND {visible}
                 ORDER BY t.sort_key {order} LIMIT $4"
            )
        }
        StatusFilter::Pass | StatusFilter::Fail => {
            let verdict = if filter == StatusFilter::Pass {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            format!(
                "SELECT t.trace_id, t.sort_key, t.flow_session, t.turn_number,
                        SUBSTR(t.user_message, 1, 160) AS preview, a.verdict,
                        CAST(0 AS BIGINT) AS skipped, {note_codes}
                 FROM annotations a JOIN traces t ON t.id = a.trace_pk
                 WHERE a.user_id = $2 AND a.dataset_id = $1 AND a.sort_key {cmp} $3
                   AND a.verdict = '{}' AND {visible}
                 ORDER BY a.sort_key {order} LIMIT $4",
                verdict.as_str()
            )
        }
        // The annotator's skipped traces: a walk of the `skips` primary key.
        StatusFilter::Skipped => format!(
            "SELECT t.trace_id, t.sort_key, t.flow_session, t.turn_number,
                    SUBSTR(t.user_message, 1, 160) AS preview, CAST(NULL AS TEXT) AS verdict,
                    CAST(1 AS BIGINT) AS skipped, '' AS note, CAST(NULL AS TEXT) AS codes
             FROM skips s JOIN traces t ON t.id = s.trace_pk
             WHERE s.user_id = $2 AND s.dataset_id = $1 AND s.sort_key {cmp} $3 AND {visible}
             ORDER BY s.sort_key {order} LIMIT $4"
        ),
    };
    let mut rows: Vec<ListRow> = sqlx::query_as(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(key)
        .bind(limit)
        .fetch_all(db.reader())
        .await?;
    cursor.in_reading_order(&mut rows);
    Ok(rows)
}

/// Traces whose annotations (in the viewer's scope) carry an open code, or any code of a
/// failure mode: the trace list as the codebook links to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedFilter {
    pub by: CodedBy,
    /// Only annotations that are a Fail.
    pub fail_only: bool,
}

impl CodedFilter {
    /// SQL condition: trace `t` is among those this filter finds, with the code or the mode
    /// bound at `param`. The matching sort keys come from `annotation_codes` (dataset, code,
    /// sort key), so a rare code is found without walking the dataset.
    pub(super) fn condition(&self, scope: &Scope, param: &str) -> String {
        let code = match self.by {
            CodedBy::Code(_) => format!("c.normalized = {param}"),
            CodedBy::Mode(_) => format!(
                "c.normalized IN (SELECT fc.code FROM failure_mode_codes fc
                                  WHERE fc.dataset_id = $1 AND fc.mode_id = {param})"
            ),
        };
        let fail = if self.fail_only { "AND c.fail = 1" } else { "" };
        format!(
            "t.sort_key IN (SELECT c.sort_key FROM annotation_codes c
                            WHERE c.dataset_id = $1 AND {code} AND {} {fail})",
            scope.annotations("c")
        )
    }

    /// Binds the code or the mode, next in order.
    pub(super) fn bind<'q, O>(&self, query: AnyQueryAs<'q, O>) -> AnyQueryAs<'q, O> {
        match &self.by {
            CodedBy::Code(code) => query.bind(code.clone()),
            CodedBy::Mode(mode) => query.bind(*mode),
        }
    }
}

/// A statement of typed rows, on either backend.
pub(super) type AnyQueryAs<'q, O> =
    sqlx::query::QueryAs<'q, Any, O, <Any as sqlx::Database>::Arguments<'q>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodedBy {
    /// A normalized open code.
    Code(String),
    /// The codes of a failure mode.
    Mode(ModeId),
}

/// One keyset page of the traces matching `coded` with `status` for the viewer, with the
/// viewer's verdicts, in one query.
pub async fn coded_page(
    db: &Db,
    scope: &Scope,
    coded: &CodedFilter,
    status: StatusFilter,
    cursor: PageCursor,
    limit: i64,
) -> Result<Vec<ListRow>, sqlx::Error> {
    let (cmp, order, key) = cursor.keyset();
    let visible = scope.traces("t");
    let columns = row_columns(db);
    let sql = format!(
        "SELECT {columns}
         FROM traces t
         LEFT JOIN annotations a ON a.trace_pk = t.id AND a.user_id = $2
         WHERE t.dataset_id = $1 AND t.sort_key {cmp} $3 AND {visible}
           AND {} AND {}
         ORDER BY t.sort_key {order} LIMIT $4",
        coded.condition(scope, "$5"),
        status.condition(),
    );
    let query = sqlx::query_as(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(key)
        .bind(limit);
    let query = coded.bind(query);
    let mut rows: Vec<ListRow> = query.fetch_all(db.reader()).await?;
    cursor.in_reading_order(&mut rows);
    Ok(rows)
}
