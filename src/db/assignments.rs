//! Assignments: who codes which trace of a dataset (`dataset_assignments`, `assignees`,
//! `trace_assignments`), dealt by `domain::assignment`, extended as traces are imported.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow};

use super::imports::values_list;
use super::scope::Scope;
use super::write::WriteTx;
use super::{Backend, Db, now};
use crate::domain::assignment::{Dealer, Plan, is_shared};
use crate::domain::{AssigneeId, DatasetId, ImportId, SortKey, TracePk};

/// A dataset's assignment as the admin page and the CLI show it.
#[derive(Debug, Clone)]
pub struct AssignmentInfo {
    pub shared: i64,
    pub per_trace: i64,
    pub created_by: String,
    pub created_at: i64,
    /// In the order they were named.
    pub assignees: Vec<Assignee>,
}

/// A person named in an assignment, by (lowercase) email.
#[derive(Debug, Clone, FromRow)]
pub struct Assignee {
    pub id: AssigneeId,
    pub email: String,
    pub position: i64,
}

/// What making an assignment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dealt {
    /// Traces every assignee codes.
    pub shared: u64,
    /// Other traces dealt (each to `per_trace` assignees).
    pub dealt: u64,
}

/// Traces read and dealt per statement.
const PAGE: i64 = 2000;
/// Rows per multi-row insert (5 columns each).
const ROWS_PER_INSERT: usize = 400;

/// The dataset's assignment, if it has one (primary keys).
pub async fn get(db: &Db, dataset: DatasetId) -> Result<Option<AssignmentInfo>, sqlx::Error> {
    let head: Option<(i64, i64, String, i64)> = sqlx::query_as(
        "SELECT shared, per_trace, created_by, created_at FROM dataset_assignments WHERE dataset_id = $1",
    )
    .bind(dataset)
    .fetch_optional(db.reader())
    .await?;
    let Some((shared, per_trace, created_by, created_at)) = head else {
        return Ok(None);
    };
    let assignees = sqlx::query_as(
        "SELECT id, email, position FROM assignees WHERE dataset_id = $1 ORDER BY position",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    Ok(Some(AssignmentInfo {
        shared,
        per_trace,
        created_by,
        created_at,
        assignees,
    }))
}

/// Replaces the dataset's assignment with a new one and deals every visible trace, in one
/// transaction: `shared` traces spread over the dataset go to everyone, every other trace to
/// `per_trace` assignees, queues balanced. `emails` must be lowercase, distinct, non-empty.
/// Annotators' resume points are reset (their queues changed).
pub async fn replace(
    db: &Db,
    dataset: DatasetId,
    emails: &[String],
    shared: u64,
    per_trace: usize,
    by: &str,
) -> Result<Dealt, sqlx::Error> {
    let Some(plan) = Plan::new(emails.len(), shared, per_trace) else {
        return Err(sqlx::Error::Protocol(
            "an assignment needs an assignee".into(),
        ));
    };
    let mut tx = db.begin_write().await?;
    remove(&mut tx, dataset).await?;
    sqlx::query(
        "INSERT INTO dataset_assignments (dataset_id, shared, per_trace, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(dataset)
    .bind(shared as i64)
    .bind(plan.per_trace as i64)
    .bind(by)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let mut ids = Vec::with_capacity(emails.len());
    for (position, email) in emails.iter().enumerate() {
        let id: AssigneeId = sqlx::query_scalar(
            "INSERT INTO assignees (dataset_id, email, position) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(dataset)
        .bind(email)
        .bind(position as i64)
        .fetch_one(&mut *tx)
        .await?;
        ids.push(id);
    }
    let scope = Scope::command_line(dataset);
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM traces t WHERE t.dataset_id = $1 AND $2 = $2 AND {}",
        scope.traces("t")
    ))
    .bind(dataset)
    .bind(scope.viewer)
    .fetch_one(&mut *tx)
    .await?;
    let mut dealer = Dealer::new(plan, &[]);
    let mut result = Dealt {
        shared: 0,
        dealt: 0,
    };
    let (mut after, mut index) = (0i64, 0u64);
    loop {
        let page = traces_after(&mut tx, &scope, after, None, false).await?;
        let Some(&(_, last)) = page.last() else {
            break;
        };
        after = last.0;
        let mut rows = Vec::with_capacity(page.len());
        for (trace, key) in page {
            if is_shared(index, total as u64, shared) {
                result.shared += 1;
                rows.extend(ids.iter().map(|&a| (a, key, trace, true)));
            } else {
                result.dealt += 1;
                rows.extend(
                    dealer
                        .deal()
                        .into_iter()
                        .map(|i| (ids[i], key, trace, false)),
                );
            }
            index += 1;
        }
        insert_rows(&mut tx, db.backend(), dataset, &rows).await?;
    }
    recount(&mut tx, dataset).await?;
    tx.commit().await?;
    refresh_statistics(db).await?;
    Ok(result)
}

/// Traces dealt at once after which the planner's statistics are refreshed.
const FRESH_STATISTICS_AFTER: u64 = 10_000;

/// On Postgres, `ANALYZE trace_assignments` after a large deal. An assignment fills the
/// table in one transaction; until autovacuum samples it, the planner still believes an
/// assignee has no rows and walks all of an assignee's rows for each trace it checks
/// (measured: 6–10 ms per statement instead of 0.1 ms at 100,000 traces, so Pass & Next
/// p50 went from 2 to 21 ms for the first minute). SQLite plans from its indexes alone.
async fn refresh_statistics(db: &Db) -> Result<(), sqlx::Error> {
    if db.backend() == Backend::Postgres {
        sqlx::query("ANALYZE trace_assignments")
            .execute(db.writer())
            .await?;
    }
    Ok(())
}

/// Removes the dataset's assignment: everyone may code every trace again. `false` when it
/// had none.
pub async fn clear(db: &Db, dataset: DatasetId) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let had = remove(&mut tx, dataset).await?;
    tx.commit().await?;
    Ok(had)
}

async fn remove(tx: &mut AnyConnection, dataset: DatasetId) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM trace_assignments WHERE dataset_id = $1")
        .bind(dataset)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM assignees WHERE dataset_id = $1")
        .bind(dataset)
        .execute(&mut *tx)
        .await?;
    // Low-water marks were computed over the old queues.
    sqlx::query("DELETE FROM resume_points WHERE dataset_id = $1")
        .bind(dataset)
        .execute(&mut *tx)
        .await?;
    Ok(
        sqlx::query("DELETE FROM dataset_assignments WHERE dataset_id = $1")
            .bind(dataset)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Deals the visible traces that have no assignment yet (those of `import` only, when
/// given) to the assignees with the fewest, in batches of one transaction each; earlier
/// assignments never move. Runs after every import into an assigned dataset, and at start-up
/// to catch up on one a crash interrupted. Returns how many traces were dealt.
pub async fn assign_pending(
    db: &Db,
    dataset: DatasetId,
    import: Option<ImportId>,
) -> Result<u64, sqlx::Error> {
    let Some(info) = get(db, dataset).await? else {
        return Ok(0);
    };
    let ids: Vec<AssigneeId> = info.assignees.iter().map(|a| a.id).collect();
    let Some(plan) = Plan::new(ids.len(), 0, info.per_trace as usize) else {
        return Ok(0);
    };
    let scope = Scope::command_line(dataset);
    let (mut after, mut dealt_total) = (0i64, 0u64);
    loop {
        let mut tx = db.begin_write().await?;
        lock_assignment(&mut tx, db.backend(), dataset).await?;
        // Counts and pending traces read inside the transaction: two runners never deal
        // one trace twice (the lock on Postgres, the single writer on SQLite).
        let dealt = dealt_counts(&mut tx, dataset).await?;
        let counts: Vec<u64> = ids
            .iter()
            .map(|id| dealt.get(id).copied().unwrap_or(0))
            .collect();
        let mut dealer = Dealer::new(plan, &counts);
        let page = traces_after(&mut tx, &scope, after, import, true).await?;
        let Some(&(_, last)) = page.last() else {
            tx.rollback().await?;
            if dealt_total >= FRESH_STATISTICS_AFTER {
                refresh_statistics(db).await?;
            }
            return Ok(dealt_total);
        };
        after = last.0;
        let mut rows = Vec::new();
        for (trace, key) in page {
            rows.extend(
                dealer
                    .deal()
                    .into_iter()
                    .map(|i| (ids[i], key, trace, false)),
            );
            dealt_total += 1;
        }
        insert_rows(&mut tx, db.backend(), dataset, &rows).await?;
        recount(&mut tx, dataset).await?;
        tx.commit().await?;
    }
}

/// Refreshes each assignee's count of assigned traces (primary key of `trace_assignments`).
async fn recount(tx: &mut AnyConnection, dataset: DatasetId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE assignees SET assigned = (SELECT COUNT(*) FROM trace_assignments x
             WHERE x.dataset_id = assignees.dataset_id AND x.assignee = assignees.id)
         WHERE dataset_id = $1",
    )
    .bind(dataset)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Every dataset with an assignment catches up (at start-up).
pub async fn assign_all_pending(db: &Db) -> Result<u64, sqlx::Error> {
    let datasets: Vec<DatasetId> = sqlx::query_scalar("SELECT dataset_id FROM dataset_assignments")
        .fetch_all(db.reader())
        .await?;
    let mut dealt = 0;
    for dataset in datasets {
        dealt += assign_pending(db, dataset, None).await?;
    }
    Ok(dealt)
}

/// Postgres: concurrent dealers of one dataset take turns on its assignment row (SQLite's
/// `BEGIN IMMEDIATE` already lets one writer in at a time).
async fn lock_assignment(
    tx: &mut WriteTx,
    backend: Backend,
    dataset: DatasetId,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT dataset_id FROM dataset_assignments WHERE dataset_id = $1 FOR UPDATE")
            .bind(dataset)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Traces dealt to each assignee outside the shared sample (primary key prefix).
async fn dealt_counts(
    tx: &mut AnyConnection,
    dataset: DatasetId,
) -> Result<HashMap<AssigneeId, u64>, sqlx::Error> {
    let rows: Vec<(AssigneeId, i64)> = sqlx::query_as(
        "SELECT assignee, COUNT(*) FROM trace_assignments
         WHERE dataset_id = $1 AND shared = 0 GROUP BY assignee",
    )
    .bind(dataset)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|(a, n)| (a, n as u64)).collect())
}

/// The next page of visible traces after sort key `after`, in reading order — only those
/// without an assignment (`pending`, probing `trace_assignments_trace`), only those of
/// `import` (index `traces_import`) when given.
async fn traces_after(
    tx: &mut AnyConnection,
    scope: &Scope,
    after: i64,
    import: Option<ImportId>,
    pending: bool,
) -> Result<Vec<(TracePk, SortKey)>, sqlx::Error> {
    let pending = if pending {
        "AND NOT EXISTS (SELECT 1 FROM trace_assignments x WHERE x.trace_pk = t.id)"
    } else {
        ""
    };
    let of_import = if import.is_some() {
        "AND t.import_id = $4"
    } else {
        "AND $4 = $4"
    };
    sqlx::query_as(&format!(
        "SELECT t.id, t.sort_key FROM traces t
         WHERE t.dataset_id = $1 AND $2 = $2 AND t.sort_key > $3 {of_import} {pending} AND {}
         ORDER BY t.sort_key LIMIT {PAGE}",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(after)
    .bind(import.map_or(0, |i| i.0))
    .fetch_all(&mut *tx)
    .await
}

/// Inserts assignment rows `(assignee, sort key, trace, shared)` in multi-row statements.
async fn insert_rows(
    tx: &mut AnyConnection,
    backend: Backend,
    dataset: DatasetId,
    rows: &[(AssigneeId, SortKey, TracePk, bool)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO trace_assignments (dataset_id, assignee, sort_key, trace_pk, shared) VALUES {}
             ON CONFLICT DO NOTHING",
            values_list(backend, chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for &(assignee, key, trace, shared) in chunk {
            query = query
                .bind(dataset)
                .bind(assignee)
                .bind(key)
                .bind(trace)
                .bind(i64::from(shared));
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// One row of the team's progress: an assignee, an annotator of the dataset, or both.
#[derive(Debug, Clone, FromRow)]
pub struct MemberProgress {
    pub email: String,
    /// Empty for an assignee who has not signed in yet.
    pub name: String,
    pub passes: i64,
    pub fails: i64,
    /// Traces assigned to them (0 without an assignment or when not named).
    pub assigned: i64,
    /// Of those, the ones they have annotated.
    pub assigned_done: i64,
    /// Median seconds between their consecutive first saves in this dataset, gaps over ten
    /// minutes (breaks) left out; `None` with fewer than two saves.
    pub median_seconds: Option<f64>,
}

impl MemberProgress {
    pub fn done(&self) -> i64 {
        self.passes + self.fails
    }
}

/// Everyone's progress in the dataset in one statement, whatever the team's size: each
/// assignee (by email, signed in or not) and each annotator with annotations here. Window
/// functions over `annotations_dataset` give the median time per trace; counts come from
/// `annotation_counts` and `trace_assignments`' primary key.
pub async fn team_progress(
    db: &Db,
    dataset: DatasetId,
) -> Result<Vec<MemberProgress>, sqlx::Error> {
    sqlx::query_as(
        "WITH gaps AS (
            SELECT a.user_id,
                   a.created_at - LAG(a.created_at) OVER (PARTITION BY a.user_id ORDER BY a.created_at) AS gap
            FROM annotations a WHERE a.dataset_id = $1
         ), ranked AS (
            SELECT user_id, gap,
                   ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY gap) AS rn,
                   COUNT(*) OVER (PARTITION BY user_id) AS n
            FROM gaps WHERE gap IS NOT NULL AND gap <= 600
         ), medians AS (
            SELECT user_id, CAST(AVG(CAST(gap AS DOUBLE PRECISION)) AS DOUBLE PRECISION) AS median_seconds
            FROM ranked WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY user_id
         ), members AS (
            SELECT u.id AS user_id, LOWER(u.email) AS email, u.name, c.passes, c.fails
            FROM annotation_counts c JOIN users u ON u.id = c.user_id
            WHERE c.dataset_id = $1 AND c.passes + c.fails > 0
         )
         SELECT s.email, COALESCE(m.name, '') AS name,
                COALESCE(m.passes, 0) AS passes, COALESCE(m.fails, 0) AS fails,
                s.assigned,
                (SELECT COUNT(*) FROM trace_assignments x
                 JOIN annotations a ON a.trace_pk = x.trace_pk AND a.user_id = m.user_id
                 WHERE x.dataset_id = $1 AND x.assignee = s.id) AS assigned_done,
                md.median_seconds
         FROM assignees s
         LEFT JOIN members m ON m.email = s.email
         LEFT JOIN medians md ON md.user_id = m.user_id
         WHERE s.dataset_id = $1
         UNION ALL
         SELECT m.email, m.name, m.passes, m.fails, 0, 0, md.median_seconds
         FROM members m LEFT JOIN medians md ON md.user_id = m.user_id
         WHERE NOT EXISTS (SELECT 1 FROM assignees s WHERE s.dataset_id = $1 AND s.email = m.email)
         ORDER BY 1",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await
}
