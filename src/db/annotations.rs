//! Annotations: one per (trace, annotator), every save a revision, stale saves refused.

use sqlx::{Any, AnyConnection, FromRow};

use super::write::Writer;
use super::{Db, now, traces};
use crate::domain::{AnnotationInput, Verdict};

/// An annotator's current annotation of one trace.
#[derive(Debug, Clone, FromRow)]
pub struct Annotation {
    pub id: i64,
    pub user_id: i64,
    pub verdict: String,
    pub first_failure_note: String,
    pub open_codes: String,
    pub comments: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Another annotator's annotation, as an admin sees it beside the trace.
#[derive(Debug, Clone, FromRow)]
pub struct OthersAnnotation {
    pub user_name: String,
    pub user_email: String,
    pub verdict: String,
    pub first_failure_note: String,
    pub open_codes: String,
    pub comments: String,
    pub version: i64,
}

/// What a save did.
#[derive(Debug, Clone)]
pub enum SaveOutcome {
    Saved {
        version: i64,
    },
    /// The annotation changed since the annotator loaded it (another tab or device).
    Conflict {
        current: Box<Annotation>,
    },
}

/// The trace a save is about.
#[derive(Debug, Clone, Copy)]
pub struct TraceRef {
    pub pk: i64,
    pub dataset_id: i64,
    pub sort_key: i64,
}

const COLUMNS: &str = "id, user_id, verdict, first_failure_note, open_codes, comments, version, \
                       created_at, updated_at";

/// This user's annotation of a trace (unique index `(trace_pk, user_id)`).
pub async fn for_trace(
    db: &Db,
    trace_pk: i64,
    user_id: i64,
) -> Result<Option<Annotation>, sqlx::Error> {
    for_trace_on(db.reader(), trace_pk, user_id).await
}

/// `for_trace` on a given connection (see `traces::view_parts`).
pub(crate) async fn for_trace_on<'e, E>(
    executor: E,
    trace_pk: i64,
    user_id: i64,
) -> Result<Option<Annotation>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM annotations WHERE trace_pk = $1 AND user_id = $2"
    ))
    .bind(trace_pk)
    .bind(user_id)
    .fetch_optional(executor)
    .await
}

/// Everyone else's annotations of a trace, for admins (unique index prefix `trace_pk`).
pub async fn others_for_trace(
    db: &Db,
    trace_pk: i64,
    except_user: i64,
) -> Result<Vec<OthersAnnotation>, sqlx::Error> {
    others_for_trace_on(db.reader(), trace_pk, except_user).await
}

/// `others_for_trace` on a given connection (see `traces::view_parts`).
pub(crate) async fn others_for_trace_on<'e, E>(
    executor: E,
    trace_pk: i64,
    except_user: i64,
) -> Result<Vec<OthersAnnotation>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(
        "SELECT u.name AS user_name, u.email AS user_email, a.verdict, a.first_failure_note,
                a.open_codes, a.comments, a.version
         FROM annotations a JOIN users u ON u.id = a.user_id
         WHERE a.trace_pk = $1 AND a.user_id <> $2 ORDER BY u.name",
    )
    .bind(trace_pk)
    .bind(except_user)
    .fetch_all(executor)
    .await
}

/// How many revisions an annotation has (for tests and the history view later).
pub async fn revision_count(db: &Db, annotation_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM annotation_revisions WHERE annotation_id = $1")
        .bind(annotation_id)
        .fetch_one(db.reader())
        .await
}

/// Saves an annotation atomically: the annotation (insert, or update guarded by the
/// version the annotator edited), a revision row, the open-code rows, the pass/fail
/// counters and the annotator's low-water mark. On SQLite concurrent saves share a
/// transaction (see [`super::group_commit`]); on Postgres each has its own.
pub async fn save(
    db: &Db,
    trace: TraceRef,
    user_id: i64,
    input: &AnnotationInput,
) -> Result<SaveOutcome, sqlx::Error> {
    match db.group_commit() {
        Some(queue) => queue.save(trace, user_id, input.clone()).await,
        None => save_alone(db.write_path(), trace, user_id, input).await,
    }
}

/// One save in a transaction of its own: committed if saved, rolled back on a conflict.
/// `Saved` is only returned once the commit succeeded.
pub(crate) async fn save_alone(
    writer: &Writer,
    trace: TraceRef,
    user_id: i64,
    input: &AnnotationInput,
) -> Result<SaveOutcome, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let outcome = save_in(&mut tx, trace, user_id, input).await?;
    match outcome {
        SaveOutcome::Saved { .. } => tx.commit().await?,
        SaveOutcome::Conflict { .. } => tx.rollback().await?,
    }
    Ok(outcome)
}

/// The statements of one save, inside a transaction (or savepoint) that the caller commits
/// when the outcome is `Saved` and rolls back otherwise.
pub(crate) async fn save_in(
    tx: &mut AnyConnection,
    trace: TraceRef,
    user_id: i64,
    input: &AnnotationInput,
) -> Result<SaveOutcome, sqlx::Error> {
    let ts = now();
    let codes = input.open_codes.joined();
    // A first save (version 0) inserts straight away: one statement instead of a read and
    // an insert. The row is read only when it exists already, to answer with a conflict.
    let inserted: Option<(i64,)> = if input.base_version == 0 {
        sqlx::query_as(
            "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict,
                 first_failure_note, open_codes, comments, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)
             ON CONFLICT (trace_pk, user_id) DO NOTHING RETURNING id",
        )
        .bind(trace.pk)
        .bind(trace.dataset_id)
        .bind(user_id)
        .bind(trace.sort_key)
        .bind(input.verdict.as_str())
        .bind(&input.first_failure_note)
        .bind(&codes)
        .bind(&input.comments)
        .bind(ts)
        .fetch_optional(&mut *tx)
        .await?
    } else {
        None
    };
    let existing: Option<Annotation> = match inserted {
        Some(_) => None,
        None => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM annotations WHERE trace_pk = $1 AND user_id = $2"
            ))
            .bind(trace.pk)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    let (annotation_id, version, old_verdict) = match (inserted, existing) {
        (Some((id,)), _) => (id, 1, None),
        // Saved meanwhile from another tab or device, or edited from an older version.
        (None, Some(current)) if current.version != input.base_version => {
            return Ok(SaveOutcome::Conflict {
                current: Box::new(current),
            });
        }
        (None, None) => {
            // The annotator edited a version that no longer exists: impossible unless data
            // was removed; treat as a conflict with nothing to show rather than resurrect.
            return Ok(SaveOutcome::Conflict {
                current: Box::new(Annotation {
                    id: 0,
                    user_id,
                    verdict: String::new(),
                    first_failure_note: String::new(),
                    open_codes: String::new(),
                    comments: String::new(),
                    version: 0,
                    created_at: ts,
                    updated_at: ts,
                }),
            });
        }
        (None, Some(current)) => {
            let updated: Option<(i64,)> = sqlx::query_as(
                "UPDATE annotations SET verdict = $1, first_failure_note = $2, open_codes = $3,
                        comments = $4, version = version + 1, updated_at = $5
                 WHERE id = $6 AND version = $7 RETURNING version",
            )
            .bind(input.verdict.as_str())
            .bind(&input.first_failure_note)
            .bind(&codes)
            .bind(&input.comments)
            .bind(ts)
            .bind(current.id)
            .bind(current.version)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((version,)) = updated else {
                return Ok(SaveOutcome::Conflict {
                    current: Box::new(current),
                });
            };
            (current.id, version, Verdict::parse(&current.verdict))
        }
    };

    sqlx::query(
        "INSERT INTO annotation_revisions (annotation_id, version, verdict, first_failure_note,
             open_codes, comments, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(annotation_id)
    .bind(version)
    .bind(input.verdict.as_str())
    .bind(&input.first_failure_note)
    .bind(&codes)
    .bind(&input.comments)
    .bind(ts)
    .execute(&mut *tx)
    .await?;

    replace_codes(tx, annotation_id, trace.dataset_id, input, version == 1).await?;
    bump_counts(tx, user_id, trace.dataset_id, old_verdict, input.verdict).await?;
    advance_low_water(tx, trace.dataset_id, user_id).await?;
    Ok(SaveOutcome::Saved { version })
}

/// Replaces the annotation's open-code rows (a new annotation has none to delete).
async fn replace_codes(
    tx: &mut AnyConnection,
    annotation_id: i64,
    dataset_id: i64,
    input: &AnnotationInput,
    new: bool,
) -> Result<(), sqlx::Error> {
    if !new {
        sqlx::query("DELETE FROM annotation_codes WHERE annotation_id = $1")
            .bind(annotation_id)
            .execute(&mut *tx)
            .await?;
    }
    for code in input.open_codes.as_slice() {
        sqlx::query(
            "INSERT INTO annotation_codes (annotation_id, dataset_id, code) VALUES ($1, $2, $3)",
        )
        .bind(annotation_id)
        .bind(dataset_id)
        .bind(code)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Keeps `annotation_counts` exact: +1 for a new verdict, moved for a changed one.
async fn bump_counts(
    tx: &mut AnyConnection,
    user_id: i64,
    dataset_id: i64,
    old: Option<Verdict>,
    new: Verdict,
) -> Result<(), sqlx::Error> {
    if old == Some(new) {
        return Ok(());
    }
    let delta = |v: Verdict| i64::from(new == v) - i64::from(old == Some(v));
    sqlx::query(
        "INSERT INTO annotation_counts (user_id, dataset_id, passes, fails) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, dataset_id) DO UPDATE
           SET passes = annotation_counts.passes + excluded.passes,
               fails = annotation_counts.fails + excluded.fails",
    )
    .bind(user_id)
    .bind(dataset_id)
    .bind(delta(Verdict::Pass))
    .bind(delta(Verdict::Fail))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// This user's low-water mark: every trace at or below it is annotated (primary key).
pub async fn low_water<'e, E>(
    executor: E,
    dataset_id: i64,
    user_id: i64,
) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let mark: Option<i64> = sqlx::query_scalar(
        "SELECT low_water FROM resume_points WHERE user_id = $1 AND dataset_id = $2",
    )
    .bind(user_id)
    .bind(dataset_id)
    .fetch_optional(executor)
    .await?;
    Ok(mark.unwrap_or(0))
}

/// Moves the low-water mark up to just before the first unannotated trace. Probes only the
/// traces annotated since the last move, so it is O(1) amortised per save. Compare-and-set:
/// if an import lowered the mark meanwhile, this save leaves it alone.
async fn advance_low_water(
    tx: &mut AnyConnection,
    dataset_id: i64,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    let (old, first_todo) = traces::low_water_and_first_todo(&mut *tx, dataset_id, user_id).await?;
    let new = match first_todo {
        Some(key) => key - 1,
        None => i64::MAX - 1,
    };
    if new <= old {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO resume_points (user_id, dataset_id, low_water) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, dataset_id) DO UPDATE SET low_water = excluded.low_water
         WHERE resume_points.low_water = $4",
    )
    .bind(user_id)
    .bind(dataset_id)
    .bind(new)
    .bind(old)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
