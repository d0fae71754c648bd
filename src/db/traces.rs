//! Traces: reading order, lookups, keyset pages and the "next unannotated" query.
//!
//! Every query takes the dataset id as `$1` and hides traces of imports that are not done
//! (`VISIBLE`), so a running or failed import is never half-visible.

use sqlx::{Any, FromRow};

use super::Db;

/// Traces of unfinished imports are invisible. The subquery reads the few import rows of
/// one dataset (index `imports_dataset_state`) once per statement.
const VISIBLE: &str =
    "t.import_id NOT IN (SELECT i.id FROM imports i WHERE i.dataset_id = $1 AND i.state <> 'done')";

/// One trace, as the trace view needs it.
#[derive(Debug, Clone, FromRow)]
pub struct Trace {
    pub id: i64,
    pub dataset_id: i64,
    pub trace_id: String,
    pub sort_key: i64,
    pub flow_session: String,
    pub turn_number: i64,
    pub total_turns: Option<i64>,
    pub user_message: String,
    pub ai_response: String,
    pub tool_calls: String,
    pub metadata: String,
}

/// An earlier turn of the same conversation, shown collapsed above the current one.
#[derive(Debug, Clone, FromRow)]
pub struct Turn {
    pub trace_id: String,
    pub turn_number: i64,
    pub user_message: String,
    pub ai_response: String,
}

/// A row of the trace list with this annotator's verdict (`None` = todo).
#[derive(Debug, Clone, FromRow)]
pub struct ListRow {
    pub trace_id: String,
    pub sort_key: i64,
    pub flow_session: String,
    pub turn_number: i64,
    pub preview: String,
    pub verdict: Option<String>,
}

/// Which rows a list page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    Todo,
    Pass,
    Fail,
}

impl StatusFilter {
    pub fn parse(raw: Option<&str>) -> StatusFilter {
        match raw {
            Some("todo") => StatusFilter::Todo,
            Some("pass") => StatusFilter::Pass,
            Some("fail") => StatusFilter::Fail,
            _ => StatusFilter::All,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::All => "all",
            StatusFilter::Todo => "todo",
            StatusFilter::Pass => "pass",
            StatusFilter::Fail => "fail",
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

/// One trace by its own id (unique index `(dataset_id, trace_id)`).
pub async fn by_trace_id(
    db: &Db,
    dataset_id: i64,
    trace_id: &str,
) -> Result<Option<Trace>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT t.id, t.dataset_id, t.trace_id, t.sort_key, t.flow_session, t.turn_number,
                t.total_turns, t.user_message, t.ai_response, t.tool_calls, t.metadata
         FROM traces t WHERE t.dataset_id = $1 AND t.trace_id = $2 AND {VISIBLE}"
    ))
    .bind(dataset_id)
    .bind(trace_id)
    .fetch_optional(db.reader())
    .await
}

/// The turns of one conversation, in order: a range scan of `(dataset_id, sort_key)`.
pub async fn conversation(
    db: &Db,
    dataset_id: i64,
    range: (i64, i64),
) -> Result<Vec<Turn>, sqlx::Error> {
    conversation_on(db.reader(), dataset_id, range).await
}

async fn conversation_on<'e, E>(
    executor: E,
    dataset_id: i64,
    range: (i64, i64),
) -> Result<Vec<Turn>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT t.trace_id, t.turn_number, t.user_message, t.ai_response
         FROM traces t WHERE t.dataset_id = $1 AND t.sort_key >= $2 AND t.sort_key < $3 AND {VISIBLE}
         ORDER BY t.sort_key LIMIT 1000"
    ))
    .bind(dataset_id)
    .bind(range.0)
    .bind(range.1)
    .fetch_all(executor)
    .await
}

/// Everything the trace view shows around one trace, for one annotator.
#[derive(Debug, Clone)]
pub struct ViewParts {
    /// The whole conversation the trace belongs to, in order.
    pub turns: Vec<Turn>,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub mine: Option<super::annotations::Annotation>,
    /// Other annotators' annotations (only when asked for: admins).
    pub others: Vec<super::annotations::OthersAnnotation>,
    pub passes: i64,
    pub fails: i64,
}

/// Reads the trace view's surroundings on one pooled connection, with the neighbours and
/// the progress counters in one statement: on SQLite every statement and every pool
/// checkout is a hand-off to the connection's worker thread, and those hand-offs, not the
/// queries, were most of a Pass & Next. Indexes: `(dataset_id, sort_key)` for the
/// conversation and both neighbours, `(trace_pk, user_id)` for the annotations, and the
/// primary key of `annotation_counts`.
pub async fn view_parts(
    db: &Db,
    dataset_id: i64,
    trace: &Trace,
    conversation: (i64, i64),
    user_id: i64,
    with_others: bool,
) -> Result<ViewParts, sqlx::Error> {
    let mut conn = db.reader().acquire().await?;
    let turns = conversation_on(&mut *conn, dataset_id, conversation).await?;
    let (prev, next, passes, fails): (Option<String>, Option<String>, i64, i64) = sqlx::query_as(&format!(
        "SELECT
           (SELECT t.trace_id FROM traces t WHERE t.dataset_id = $1 AND t.sort_key < $2 AND {VISIBLE}
            ORDER BY t.sort_key DESC LIMIT 1),
           (SELECT t.trace_id FROM traces t WHERE t.dataset_id = $1 AND t.sort_key > $2 AND {VISIBLE}
            ORDER BY t.sort_key LIMIT 1),
           COALESCE((SELECT c.passes FROM annotation_counts c WHERE c.user_id = $3 AND c.dataset_id = $1), 0),
           COALESCE((SELECT c.fails FROM annotation_counts c WHERE c.user_id = $3 AND c.dataset_id = $1), 0)"
    ))
    .bind(dataset_id)
    .bind(trace.sort_key)
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?;
    let mine = super::annotations::for_trace_on(&mut *conn, trace.id, user_id).await?;
    let others = if with_others {
        super::annotations::others_for_trace_on(&mut *conn, trace.id, user_id).await?
    } else {
        Vec::new()
    };
    Ok(ViewParts {
        turns,
        prev,
        next,
        mine,
        others,
        passes,
        fails,
    })
}

/// The first trace after `after` (and before `before`, when given) that `user_id` has not
/// annotated. A keyset walk of `(dataset_id, sort_key)` probing the unique
/// `(trace_pk, user_id)` index; it stops at the first hit and never loads ids into memory.
pub async fn next_unannotated<'e, E>(
    executor: E,
    dataset_id: i64,
    user_id: i64,
    after: i64,
    before: Option<i64>,
) -> Result<Option<(String, i64)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT t.trace_id, t.sort_key FROM traces t
         WHERE t.dataset_id = $1 AND t.sort_key > $2 AND t.sort_key < $3
           AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = t.id AND a.user_id = $4)
           AND {VISIBLE}
         ORDER BY t.sort_key LIMIT 1"
    ))
    .bind(dataset_id)
    .bind(after)
    .bind(before.unwrap_or(i64::MAX))
    .bind(user_id)
    .fetch_optional(executor)
    .await
}

/// The user's low-water mark (0 when none) and the first trace after it that they have not
/// annotated, in one statement: the save path runs this on every Pass. The same walk as
/// `next_unannotated`, starting from the mark (primary key of `resume_points`).
pub(crate) async fn low_water_and_first_todo<'e, E>(
    executor: E,
    dataset_id: i64,
    user_id: i64,
) -> Result<(i64, Option<i64>), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT COALESCE(r.low_water, 0),
                (SELECT t.sort_key FROM traces t
                 WHERE t.dataset_id = $1 AND t.sort_key > COALESCE(r.low_water, 0)
                   AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = t.id AND a.user_id = $2)
                   AND {VISIBLE}
                 ORDER BY t.sort_key LIMIT 1)
         FROM (SELECT 1 AS one) x
         LEFT JOIN resume_points r ON r.user_id = $2 AND r.dataset_id = $1"
    ))
    .bind(dataset_id)
    .bind(user_id)
    .fetch_one(executor)
    .await
}

/// The trace just after (`forward`) or before `sort_key` in reading order.
pub async fn neighbor(
    db: &Db,
    dataset_id: i64,
    sort_key: i64,
    forward: bool,
) -> Result<Option<String>, sqlx::Error> {
    let sql = if forward {
        format!(
            "SELECT t.trace_id FROM traces t WHERE t.dataset_id = $1 AND t.sort_key > $2 AND {VISIBLE}
             ORDER BY t.sort_key LIMIT 1"
        )
    } else {
        format!(
            "SELECT t.trace_id FROM traces t WHERE t.dataset_id = $1 AND t.sort_key < $2 AND {VISIBLE}
             ORDER BY t.sort_key DESC LIMIT 1"
        )
    };
    sqlx::query_scalar(&sql)
        .bind(dataset_id)
        .bind(sort_key)
        .fetch_optional(db.reader())
        .await
}

/// One keyset page of the list with this user's verdicts, in one query whatever the
/// page size. `All`/`Todo` walk `(dataset_id, sort_key)` (`Todo` from the low-water mark);
/// `Pass`/`Fail` walk the user's annotations of that verdict by `annotations_user_verdict`,
/// so sparse filters stay fast.
pub async fn list_page(
    db: &Db,
    dataset_id: i64,
    user_id: i64,
    filter: StatusFilter,
    cursor: PageCursor,
    limit: i64,
) -> Result<Vec<ListRow>, sqlx::Error> {
    let (cmp, order, key) = match cursor {
        PageCursor::After(k) => (">", "ASC", k),
        PageCursor::Before(k) => ("<", "DESC", k),
    };
    // Everything at or below the low-water mark is annotated: the to-do walk starts above
    // it (or stops at it, going backwards) instead of stepping over, say, 100,000 annotated
    // traces. Read inside the statement, so a page stays one query.
    const LOW_WATER: &str =
        "(SELECT r.low_water FROM resume_points r WHERE r.user_id = $2 AND r.dataset_id = $1)";
    let sql = match filter {
        StatusFilter::All => format!(
            "SELECT t.trace_id, t.sort_key, t.flow_session, t.turn_number,
                    SUBSTR(t.user_message, 1, 160) AS preview, a.verdict
             FROM traces t
             LEFT JOIN annotations a ON a.trace_pk = t.id AND a.user_id = $2
             WHERE t.dataset_id = $1 AND t.sort_key {cmp} $3 AND {VISIBLE}
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
                        SUBSTR(t.user_message, 1, 160) AS preview, CAST(NULL AS TEXT) AS verdict
                 FROM traces t
                 WHERE t.dataset_id = $1 AND {range}
                   AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = t.id AND a.user_id = $2)
                   AND {VISIBLE}
                 ORDER BY t.sort_key {order} LIMIT $4"
            )
        }
        StatusFilter::Pass | StatusFilter::Fail => format!(
            "SELECT t.trace_id, t.sort_key, t.flow_session, t.turn_number,
                    SUBSTR(t.user_message, 1, 160) AS preview, a.verdict
             FROM annotations a JOIN traces t ON t.id = a.trace_pk
             WHERE a.user_id = $2 AND a.dataset_id = $1 AND a.sort_key {cmp} $3
               AND a.verdict = '{}' AND {VISIBLE}
             ORDER BY a.sort_key {order} LIMIT $4",
            filter.as_str()
        ),
    };
    let mut rows: Vec<ListRow> = sqlx::query_as(&sql)
        .bind(dataset_id)
        .bind(user_id)
        .bind(key)
        .bind(limit)
        .fetch_all(db.reader())
        .await?;
    if matches!(cursor, PageCursor::Before(_)) {
        rows.reverse();
    }
    Ok(rows)
}

/// The next trace `user_id` has not annotated: after `current` in reading order, wrapping
/// around once to the start; with no current trace, from the user's low-water mark, so
/// entering a dataset costs the same after 100,000 annotations as after none.
pub async fn next_for(
    db: &Db,
    dataset_id: i64,
    user_id: i64,
    current: Option<i64>,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    // One pooled connection for the whole walk; the low-water mark is read only when the
    // walk forward from `current` found nothing (the common step needs one statement).
    let mut conn = db.reader().acquire().await?;
    match current {
        None => {
            let low_water = super::annotations::low_water(&mut *conn, dataset_id, user_id).await?;
            next_unannotated(&mut *conn, dataset_id, user_id, low_water, None).await
        }
        Some(current) => {
            if let Some(found) =
                next_unannotated(&mut *conn, dataset_id, user_id, current, None).await?
            {
                return Ok(Some(found));
            }
            let low_water = super::annotations::low_water(&mut *conn, dataset_id, user_id).await?;
            if low_water >= current {
                return Ok(None);
            }
            next_unannotated(&mut *conn, dataset_id, user_id, low_water, Some(current)).await
        }
    }
}
