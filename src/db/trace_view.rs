//! Everything the trace view reads around one trace, for one viewer, on one connection.

use super::Db;
use super::annotations::{self, Annotation, OthersAnnotation};
use super::progress::Counts;
use super::scope::Scope;
use super::traces::{self, Trace, Turn};

/// The trace view's surroundings.
#[derive(Debug, Clone)]
pub struct ViewParts {
    /// The whole conversation the trace belongs to, in order.
    pub turns: Vec<Turn>,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub mine: Option<Annotation>,
    /// Other annotators' annotations that the scope shows (a lead's).
    pub others: Vec<OthersAnnotation>,
    pub counts: Counts,
    /// The viewer's queue size under an assignment.
    pub assigned: Option<i64>,
    /// Whether the viewer skipped the trace (and has not saved it since: a save clears it).
    pub skipped: bool,
}

/// Reads the view on one pooled connection, with the neighbours and the progress counters
/// in one statement: on SQLite every statement and every pool checkout is a hand-off to the
/// connection's worker thread, and those hand-offs, not the queries, were most of a Pass &
/// Next. Indexes: `(dataset_id, sort_key)` for the conversation and both neighbours, the
/// primary key of `skips` for the viewer's skip,
/// `(trace_pk, user_id)` for the annotations, and the primary key of `annotation_counts`.
pub async fn view_parts(db: &Db, scope: &Scope, trace: &Trace) -> Result<ViewParts, sqlx::Error> {
    let mut conn = db.reader().acquire().await?;
    let range = trace.sort_key.conversation_range();
    let turns = traces::conversation_on(&mut *conn, scope, range).await?;
    let visible = scope.traces("t");
    let assigned = match scope.queue {
        Some(id) => format!("(SELECT s.assigned FROM assignees s WHERE s.id = {id})"),
        None => "CAST(NULL AS BIGINT)".to_string(),
    };
    type Around = (Option<String>, Option<String>, i64, i64, Option<i64>, i64);
    let (prev, next, passes, fails, assigned, skipped): Around = sqlx::query_as(&format!(
        "SELECT
           (SELECT t.trace_id FROM traces t WHERE t.dataset_id = $1 AND t.sort_key < $3 AND {visible}
            ORDER BY t.sort_key DESC LIMIT 1),
           (SELECT t.trace_id FROM traces t WHERE t.dataset_id = $1 AND t.sort_key > $3 AND {visible}
            ORDER BY t.sort_key LIMIT 1),
           COALESCE((SELECT c.passes FROM annotation_counts c WHERE c.user_id = $2 AND c.dataset_id = $1), 0),
           COALESCE((SELECT c.fails FROM annotation_counts c WHERE c.user_id = $2 AND c.dataset_id = $1), 0),
           {assigned},
           CAST(CASE WHEN EXISTS (SELECT 1 FROM skips s
                 WHERE s.user_id = $2 AND s.dataset_id = $1 AND s.sort_key = $3) THEN 1 ELSE 0 END
             AS BIGINT)"
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(trace.sort_key)
    .fetch_one(&mut *conn)
    .await?;
    let mine = annotations::for_trace_on(&mut *conn, db.backend(), trace.id, scope.viewer).await?;
    let others = if scope.shows_others() {
        annotations::others_for_trace_on(&mut *conn, db.backend(), scope, trace.id).await?
    } else {
        Vec::new() // nothing to read
    };
    Ok(ViewParts {
        turns,
        prev,
        next,
        mine,
        others,
        counts: Counts { passes, fails },
        assigned,
        skipped: skipped == 1,
    })
}
