//! Saving an annotation: one per (trace, annotator), every save a revision, stale saves
//! refused, and "saved" only once committed.

use sqlx::AnyConnection;

use super::annotations::{Annotation, for_trace_on};
use super::decisions::{self, Decided, SessionTag};
use super::scope::Scope;
use super::write::Writer;
use super::{Backend, Db, codes, now, progress};
use crate::domain::{AnnotationId, AnnotationInput, DatasetId, SortKey, TracePk};

/// What a save did.
#[derive(Debug, Clone)]
pub enum SaveOutcome {
    Saved {
        version: i64,
    },
    /// The annotation changed since the annotator loaded it (another tab or device):
    /// `current` is what is saved now, `None` when the version edited no longer exists.
    Conflict {
        current: Option<Box<Annotation>>,
    },
    /// The save would replace a different saved verdict and was not confirmed: nothing was
    /// written; `current` is what is saved (its note, codes and comments would be replaced).
    NeedsConfirm {
        current: Box<Annotation>,
    },
}

impl SaveOutcome {
    /// Whether the save was written (the transaction or savepoint is kept).
    pub fn saved(&self) -> bool {
        matches!(self, SaveOutcome::Saved { .. })
    }
}

/// The trace a save is about.
#[derive(Debug, Clone, Copy)]
pub struct TraceRef {
    pub pk: TracePk,
    pub dataset_id: DatasetId,
    pub sort_key: SortKey,
}

/// Saves an annotation atomically: the annotation (insert, or update guarded by the
/// version the annotator edited), a revision row, the open-code rows, the pass/fail
/// counters (by trigger, in the annotation's own statement: migration 0017) and the
/// annotator's low-water mark. On SQLite concurrent saves share a
/// transaction (see [`super::group_commit`]); on Postgres each has its own.
/// `by` is the sign-in deciding (what `u` may undo).
pub async fn save(
    db: &Db,
    trace: TraceRef,
    scope: &Scope,
    input: &AnnotationInput,
    by: SessionTag,
) -> Result<SaveOutcome, sqlx::Error> {
    match db.group_commit() {
        Some(queue) => queue.save(trace, *scope, input.clone(), by).await,
        None => save_alone(db.write_path(), trace, scope, input, by).await,
    }
}

/// One save in a transaction of its own: committed if saved, rolled back on a conflict.
/// `Saved` is only returned once the commit succeeded.
pub(crate) async fn save_alone(
    writer: &Writer,
    trace: TraceRef,
    scope: &Scope,
    input: &AnnotationInput,
    by: SessionTag,
) -> Result<SaveOutcome, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let outcome = save_in(&mut tx, writer.backend(), trace, scope, input, by).await?;
    if outcome.saved() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(outcome)
}

/// The statements of one save, inside a transaction (or savepoint) that the caller commits
/// when the outcome is `Saved` and rolls back otherwise. The save is recorded as the
/// annotator's latest decision (what `u` undoes).
pub(crate) async fn save_in(
    tx: &mut AnyConnection,
    backend: Backend,
    trace: TraceRef,
    scope: &Scope,
    input: &AnnotationInput,
    by: SessionTag,
) -> Result<SaveOutcome, sqlx::Error> {
    let outcome = write_in(tx, backend, trace, scope, input).await?;
    if let SaveOutcome::Saved { version } = outcome {
        let base = if version == 1 { 0 } else { input.base_version };
        let cleared_skip = decisions::unskip(tx, scope, trace.sort_key).await?;
        let decided = Decided::Save { version, base };
        decisions::record(tx, scope, trace, decided, by, cleared_skip).await?;
    }
    Ok(outcome)
}

/// The statements of one save without recording it as a decision (an undo restoring an
/// earlier revision writes through here).
pub(crate) async fn write_in(
    tx: &mut AnyConnection,
    backend: Backend,
    trace: TraceRef,
    scope: &Scope,
    input: &AnnotationInput,
) -> Result<SaveOutcome, sqlx::Error> {
    let ts = now();
    let user = scope.viewer;
    // A first save (version 0) inserts straight away: one statement instead of a read and
    // an insert. The row is read only when it exists already, to answer with a conflict.
    let inserted: Option<(AnnotationId,)> = if input.base_version == 0 {
        sqlx::query_as(
            "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict,
                 first_failure_note, comments, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
             ON CONFLICT (trace_pk, user_id) DO NOTHING RETURNING id",
        )
        .bind(trace.pk)
        .bind(trace.dataset_id)
        .bind(user)
        .bind(trace.sort_key)
        .bind(input.verdict)
        .bind(&input.first_failure_note)
        .bind(&input.comments)
        .bind(ts)
        .fetch_optional(&mut *tx)
        .await?
    } else {
        None
    };
    let existing = match inserted {
        Some(_) => None,
        None => for_trace_on(&mut *tx, backend, trace.pk, user).await?,
    };
    let (annotation, version) = match (inserted, existing) {
        (Some((id,)), _) => (id, 1),
        // Saved meanwhile from another tab or device, or edited from an older version.
        (None, Some(current)) if current.version != input.base_version => {
            return Ok(SaveOutcome::Conflict {
                current: Some(Box::new(current)),
            });
        }
        // The annotator edited a version that no longer exists: impossible unless data was
        // removed; a conflict with nothing to show rather than a resurrection.
        (None, None) => return Ok(SaveOutcome::Conflict { current: None }),
        // A different verdict replaces the note, codes and comments saved with the old one:
        // only when the annotator confirmed it (the old revision stays in the history).
        (None, Some(current)) if current.verdict != input.verdict && !input.replace => {
            return Ok(SaveOutcome::NeedsConfirm {
                current: Box::new(current),
            });
        }
        (None, Some(current)) => {
            let updated: Option<(i64,)> = sqlx::query_as(
                "UPDATE annotations SET verdict = $1, first_failure_note = $2, comments = $3,
                        version = version + 1, updated_at = $4
                 WHERE id = $5 AND version = $6 RETURNING version",
            )
            .bind(input.verdict)
            .bind(&input.first_failure_note)
            .bind(&input.comments)
            .bind(ts)
            .bind(current.id)
            .bind(current.version)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((version,)) = updated else {
                return Ok(SaveOutcome::Conflict {
                    current: Some(Box::new(current)),
                });
            };
            (current.id, version)
        }
    };

    // The revision keeps the codes as typed, joined: the history of what was written.
    sqlx::query(
        "INSERT INTO annotation_revisions (annotation_id, version, verdict, first_failure_note,
             open_codes, comments, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(annotation)
    .bind(version)
    .bind(input.verdict)
    .bind(&input.first_failure_note)
    .bind(input.open_codes.joined())
    .bind(&input.comments)
    .bind(ts)
    .execute(&mut *tx)
    .await?;

    let coded = codes::CodedAnnotation {
        annotation,
        dataset: trace.dataset_id,
        trace: trace.pk,
        user,
        sort_key: trace.sort_key,
        verdict: input.verdict,
    };
    codes::replace(tx, coded, &input.open_codes, version == 1).await?;
    progress::advance_low_water(tx, scope).await?;
    Ok(SaveOutcome::Saved { version })
}
