//! An annotator's progress in a dataset: the pass/fail counters, the low-water mark below
//! which everything is annotated, and the "next unannotated" walk that both use.

use sqlx::{Any, AnyConnection};

use super::Db;
use super::scope::Scope;
use super::traces::{TRACE_COLUMNS, Trace};
use crate::domain::{DatasetId, SortKey, UserId};

/// Passes and fails of one annotator in one dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Counts {
    pub passes: i64,
    pub fails: i64,
}

impl Counts {
    pub fn done(&self) -> i64 {
        self.passes + self.fails
    }
}

/// This user's counters in one dataset (primary key of `annotation_counts`).
pub async fn counts(db: &Db, dataset: DatasetId, user: UserId) -> Result<Counts, sqlx::Error> {
    let row: Option<Counts> = sqlx::query_as(
        "SELECT passes, fails FROM annotation_counts WHERE user_id = $1 AND dataset_id = $2",
    )
    .bind(user)
    .bind(dataset)
    .fetch_optional(db.reader())
    .await?;
    // No row yet: nothing annotated (a missing row, not a value that failed to decode).
    Ok(row.unwrap_or(Counts {
        passes: 0,
        fails: 0,
    }))
}

/// How many traces the viewer's queue holds under an assignment (primary key of
/// `assignees`); `None` without one — the queue is then the whole dataset.
pub async fn queue_size(db: &Db, scope: &Scope) -> Result<Option<i64>, sqlx::Error> {
    match scope.queue {
        Some(id) => {
            sqlx::query_scalar("SELECT assigned FROM assignees WHERE id = $1")
                .bind(id)
                .fetch_optional(db.reader())
                .await
        }
        None if !scope.has_queue() => Ok(Some(0)),
        None => Ok(None),
    }
}

/// This user's low-water mark: every trace at or below it is annotated (primary key).
pub async fn low_water<'e, E>(executor: E, scope: &Scope) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let mark: Option<i64> = sqlx::query_scalar(
        "SELECT low_water FROM resume_points WHERE dataset_id = $1 AND user_id = $2",
    )
    .bind(scope.dataset)
    .bind(scope.viewer)
    .fetch_optional(executor)
    .await?;
    Ok(mark.unwrap_or(0)) // no mark yet: from the start
}

/// The first trace of the viewer's queue after `after` (and before `before`, when given)
/// that they have neither annotated nor skipped. A keyset walk of `(dataset_id, sort_key)` — or, under an
/// assignment, of the assignee's `trace_assignments` rows — probing the unique
/// `(trace_pk, user_id)` index; it stops at the first hit and never loads ids into memory.
pub async fn next_unannotated<'e, E>(
    executor: E,
    scope: &Scope,
    after: i64,
    before: Option<i64>,
) -> Result<Option<Trace>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let (from, key) = scope.queue_walk();
    // The whole row: the step that shows it needs no second read by id.
    sqlx::query_as(&format!(
        "SELECT {TRACE_COLUMNS} FROM {from}
         WHERE t.dataset_id = $1 AND {key} > $3 AND {key} < $4
           AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = t.id AND a.user_id = $2)
           AND NOT EXISTS (SELECT 1 FROM skips s
                           WHERE s.user_id = $2 AND s.dataset_id = $1 AND s.sort_key = t.sort_key)
           AND {}
         ORDER BY {key} LIMIT 1",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(after)
    .bind(before.unwrap_or(i64::MAX))
    .fetch_optional(executor)
    .await
}

/// The next trace the viewer has neither annotated nor skipped: after `current` in reading
/// order, wrapping around once to the start. With no current trace (entering a dataset,
/// "Continue") it resumes after their latest decision, else from their low-water mark, so
/// entering a dataset costs the same after 100,000 annotations as after none.
pub async fn next_for(
    db: &Db,
    scope: &Scope,
    current: Option<SortKey>,
) -> Result<Option<Trace>, sqlx::Error> {
    // One pooled connection for the whole walk; the low-water mark is read only when the
    // walk forward from `current` found nothing (the common step needs one statement).
    let mut conn = db.reader().acquire().await?;
    let current = match current {
        Some(key) => Some(key),
        None => super::decisions::last_position(&mut *conn, scope).await?,
    };
    match current {
        None => {
            let low_water = low_water(&mut *conn, scope).await?;
            next_unannotated(&mut *conn, scope, low_water, None).await
        }
        Some(SortKey(current)) => {
            if let Some(found) = next_unannotated(&mut *conn, scope, current, None).await? {
                return Ok(Some(found));
            }
            let low_water = low_water(&mut *conn, scope).await?;
            if low_water >= current {
                return Ok(None);
            }
            next_unannotated(&mut *conn, scope, low_water, Some(current)).await
        }
    }
}

/// Brings the low-water mark back below a trace that is to do again (an undone first save):
/// the mark promises that everything at or below it is annotated (primary key).
pub(crate) async fn lower_low_water(
    tx: &mut AnyConnection,
    scope: &Scope,
    sort_key: SortKey,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE resume_points SET low_water = $3
         WHERE dataset_id = $1 AND user_id = $2 AND low_water >= $4",
    )
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(sort_key.0 - 1)
    .bind(sort_key.0)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves the low-water mark up to just before the first unannotated trace, inside a save,
/// in one statement: the mark (0 when none), the first to-do trace after it (the same walk
/// as `next_unannotated`, starting from the mark) and the upsert. Probes only the traces
/// annotated since the last move, so it is O(1) amortised per save. Compare-and-set: the
/// update happens only while the row still holds the mark the statement read, so an
/// import that lowered it meanwhile (Postgres, another connection) keeps its lower mark.
pub(crate) async fn advance_low_water(
    tx: &mut AnyConnection,
    scope: &Scope,
) -> Result<(), sqlx::Error> {
    let (from, key) = scope.queue_walk();
    let mark = "COALESCE((SELECT r.low_water FROM resume_points r
                          WHERE r.user_id = $2 AND r.dataset_id = $1), 0)";
    sqlx::query(&format!(
        "INSERT INTO resume_points (dataset_id, user_id, low_water)
         SELECT $1, $2, m.new FROM (
             SELECT o.old, COALESCE(
                 (SELECT t.sort_key FROM {from}
                  WHERE t.dataset_id = $1 AND {key} > o.old
                    AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = t.id AND a.user_id = $2)
                    AND {traces}
                  ORDER BY {key} LIMIT 1) - 1,
                 {none}) AS new
             FROM (SELECT {mark} AS old) o
         ) m
         WHERE m.new > m.old
         ON CONFLICT (user_id, dataset_id) DO UPDATE SET low_water = excluded.low_water
         WHERE resume_points.low_water = {mark}",
        traces = scope.traces("t"),
        none = i64::MAX - 1,
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
