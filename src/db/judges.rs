//! Judge runs: an LLM judge's verdicts on a dataset's traces, one version per import of a
//! judge name (`judge_runs`, `judge_verdicts`).

use std::collections::HashMap;

use sqlx::FromRow;

use super::imports::values_list;
use super::scope::Scope;
use super::types::{Flag, Json};
use super::{Db, now};
use crate::domain::{DatasetId, TracePk, Verdict};

/// One import of a judge's verdicts.
#[derive(Debug, Clone, FromRow)]
pub struct JudgeRun {
    pub id: i64,
    pub judge: String,
    pub version: i64,
    pub file_name: String,
    pub imported_by: String,
    pub judged: i64,
    #[sqlx(try_from = "Flag")]
    pub has_modes: bool,
    pub created_at: i64,
}

/// The judge's verdict on one trace.
#[derive(Debug, Clone, FromRow)]
pub struct JudgeVerdict {
    pub trace_pk: TracePk,
    pub trace_id: String,
    pub verdict: Verdict,
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub failure_modes: Vec<String>,
}

/// A row to import: the trace, the verdict, the failure mode names (sorted).
pub struct NewVerdict {
    pub trace: TracePk,
    pub verdict: Verdict,
    pub failure_modes: Vec<String>,
}

const RUN_COLUMNS: &str =
    "id, judge, version, file_name, imported_by, judged, has_modes, created_at";

/// The rows of the dataset's visible traces among `trace_ids`, by trace id (unique index
/// `(dataset_id, trace_id)`), for checking a file before anything is written.
pub async fn resolve_traces(
    db: &Db,
    dataset: DatasetId,
    trace_ids: &[&str],
) -> Result<HashMap<String, TracePk>, sqlx::Error> {
    let scope = Scope::command_line(dataset);
    let mut found = HashMap::with_capacity(trace_ids.len());
    for chunk in trace_ids.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT t.trace_id, t.id FROM traces t
             WHERE t.dataset_id = $1 AND $2 = $2 AND t.trace_id IN ({}) AND {}",
            marks.join(","),
            scope.traces("t")
        );
        let mut query = sqlx::query_as::<_, (String, TracePk)>(&sql)
            .bind(scope.dataset)
            .bind(scope.viewer);
        for id in chunk {
            query = query.bind(*id);
        }
        found.extend(query.fetch_all(db.reader()).await?);
    }
    Ok(found)
}

/// Stores a new version of `judge` with its verdicts, all in one transaction; returns it.
pub async fn insert_run(
    db: &Db,
    dataset: DatasetId,
    judge: &str,
    file_name: &str,
    imported_by: &str,
    has_modes: bool,
    verdicts: &[NewVerdict],
) -> Result<JudgeRun, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM judge_runs WHERE dataset_id = $1 AND judge = $2",
    )
    .bind(dataset)
    .bind(judge)
    .fetch_one(&mut *tx)
    .await?;
    let run: JudgeRun = sqlx::query_as(&format!(
        "INSERT INTO judge_runs (dataset_id, judge, version, file_name, imported_by, judged,
             has_modes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {RUN_COLUMNS}"
    ))
    .bind(dataset)
    .bind(judge)
    .bind(version)
    .bind(file_name)
    .bind(imported_by)
    .bind(verdicts.len() as i64)
    .bind(Flag(has_modes))
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    for chunk in verdicts.chunks(400) {
        let sql = format!(
            "INSERT INTO judge_verdicts (run_id, trace_pk, verdict, failure_modes) VALUES {}",
            values_list(db.backend(), chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for v in chunk {
            query = query
                .bind(run.id)
                .bind(v.trace)
                .bind(v.verdict)
                .bind(Json(&v.failure_modes));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(run)
}

/// Every judge's latest version in the dataset, by name (unique index prefix).
pub async fn latest_runs(db: &Db, dataset: DatasetId) -> Result<Vec<JudgeRun>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM judge_runs r WHERE r.dataset_id = $1
           AND r.version = (SELECT MAX(o.version) FROM judge_runs o
                            WHERE o.dataset_id = r.dataset_id AND o.judge = r.judge)
         ORDER BY r.judge"
    ))
    .bind(dataset)
    .fetch_all(db.reader())
    .await
}

/// Every version of one judge, newest first.
pub async fn runs_of(
    db: &Db,
    dataset: DatasetId,
    judge: &str,
) -> Result<Vec<JudgeRun>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM judge_runs WHERE dataset_id = $1 AND judge = $2
         ORDER BY version DESC"
    ))
    .bind(dataset)
    .bind(judge)
    .fetch_all(db.reader())
    .await
}

/// A run's verdicts, in reading order (primary key, then the trace).
pub async fn verdicts_of(db: &Db, run: i64) -> Result<Vec<JudgeVerdict>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.trace_pk, t.trace_id, v.verdict, v.failure_modes
         FROM judge_verdicts v JOIN traces t ON t.id = v.trace_pk
         WHERE v.run_id = $1 ORDER BY t.sort_key",
    )
    .bind(run)
    .fetch_all(db.reader())
    .await
}
