//! An annotator's decisions: skips recorded as their own status, the log of saves and skips
//! that `u` undoes (latest first) and that "Continue" resumes from.

use sqlx::{AnyConnection, FromRow};

use super::annotations::for_trace_on;
use super::saves::{SaveOutcome, TraceRef, write_in};
use super::scope::Scope;
use super::{Db, now, progress};
use crate::domain::{AnnotationInput, OpenCodes, SortKey, TracePk, Verdict};

/// Which sign-in made a decision: a random tag kept in the session (not the session id,
/// which is a secret), so `u` undoes only what this session decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTag(pub i64);

/// What a decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// A save that wrote annotation version `version` over version `base` (0: it created
    /// the annotation).
    Save {
        version: i64,
        base: i64,
    },
    Skip,
}

/// What kind of entry a decision-log row is (stored as `save` / `skip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    Save,
    Skip,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Save => "save",
            DecisionKind::Skip => "skip",
        }
    }

    pub fn from_stored(raw: &str) -> Option<DecisionKind> {
        match raw {
            "save" => Some(DecisionKind::Save),
            "skip" => Some(DecisionKind::Skip),
            _ => None,
        }
    }
}

/// One entry of the decision log.
#[derive(Debug, Clone, FromRow)]
pub struct Decision {
    pub id: i64,
    pub trace_pk: TracePk,
    pub sort_key: SortKey,
    pub kind: DecisionKind,
    pub version: i64,
    pub base: i64,
    /// 1 when this save took the trace out of the viewer's skipped ones.
    pub cleared_skip: i64,
}

impl Decision {
    pub fn decided(&self) -> Decided {
        match self.kind {
            DecisionKind::Skip => Decided::Skip,
            DecisionKind::Save => Decided::Save {
                version: self.version,
                base: self.base,
            },
        }
    }
}

/// Appends a decision to the log, inside the save's (or skip's) transaction;
/// `cleared_skip`: the save took the trace out of the viewer's skipped ones.
pub(crate) async fn record(
    tx: &mut AnyConnection,
    scope: &Scope,
    trace: TraceRef,
    decided: Decided,
    by: SessionTag,
    cleared_skip: bool,
) -> Result<(), sqlx::Error> {
    let (kind, version, base) = match decided {
        Decided::Save { version, base } => (DecisionKind::Save, version, base),
        Decided::Skip => (DecisionKind::Skip, 0, 0),
    };
    sqlx::query(
        "INSERT INTO decisions (user_id, dataset_id, trace_pk, sort_key, kind, version, base,
             session, created_at, cleared_skip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(scope.viewer)
    .bind(scope.dataset)
    .bind(trace.pk)
    .bind(trace.sort_key)
    .bind(kind)
    .bind(version)
    .bind(base)
    .bind(by.0)
    .bind(now())
    .bind(i64::from(cleared_skip))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A save removes the trace from the annotator's skipped ones (primary key of `skips`);
/// whether it was among them.
pub(crate) async fn unskip(
    tx: &mut AnyConnection,
    scope: &Scope,
    sort_key: SortKey,
) -> Result<bool, sqlx::Error> {
    let removed =
        sqlx::query("DELETE FROM skips WHERE user_id = $1 AND dataset_id = $2 AND sort_key = $3")
            .bind(scope.viewer)
            .bind(scope.dataset)
            .bind(sort_key)
            .execute(&mut *tx)
            .await?;
    Ok(removed.rows_affected() > 0)
}

/// Records a skip of a trace the viewer has not annotated (an annotated one is left as it
/// is: skipping past it decides nothing). Returns whether a skip was recorded.
pub async fn skip(
    db: &Db,
    scope: &Scope,
    trace: TraceRef,
    by: SessionTag,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let inserted = insert_skip(&mut tx, scope, trace).await?;
    if inserted {
        record(&mut tx, scope, trace, Decided::Skip, by, false).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Puts the trace among the viewer's skipped ones unless they annotated it (or it is
/// there already); whether it was put there.
async fn insert_skip(
    tx: &mut AnyConnection,
    scope: &Scope,
    trace: TraceRef,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO skips (user_id, dataset_id, sort_key, trace_pk, created_at)
         SELECT $1, $2, $3, $4, $5
         WHERE NOT EXISTS (SELECT 1 FROM annotations a WHERE a.trace_pk = $4 AND a.user_id = $1)
         ON CONFLICT (user_id, dataset_id, sort_key) DO NOTHING",
    )
    .bind(scope.viewer)
    .bind(scope.dataset)
    .bind(trace.sort_key)
    .bind(trace.pk)
    .bind(now())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0)
}

/// How many traces the viewer has skipped and not annotated since, among those they may
/// see (a range of the `skips` primary key).
pub async fn skipped_count(db: &Db, scope: &Scope) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM skips s JOIN traces t ON t.id = s.trace_pk
         WHERE s.user_id = $2 AND s.dataset_id = $1 AND {}",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .fetch_one(db.reader())
    .await
}

/// The viewer's pass/fail counters and their skipped count in one statement (the list page
/// keeps to a handful): primary keys of `annotation_counts` and `skips`.
pub async fn counts_and_skipped(
    db: &Db,
    scope: &Scope,
) -> Result<(progress::Counts, i64), sqlx::Error> {
    let (passes, fails, skipped): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT
           COALESCE((SELECT c.passes FROM annotation_counts c WHERE c.user_id = $2 AND c.dataset_id = $1), 0),
           COALESCE((SELECT c.fails FROM annotation_counts c WHERE c.user_id = $2 AND c.dataset_id = $1), 0),
           (SELECT COUNT(*) FROM skips s JOIN traces t ON t.id = s.trace_pk
            WHERE s.user_id = $2 AND s.dataset_id = $1 AND {})",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .fetch_one(db.reader())
    .await?;
    Ok((progress::Counts { passes, fails }, skipped))
}

/// The first skipped trace after `after` in reading order (the `skips` primary key).
pub async fn next_skipped(
    db: &Db,
    scope: &Scope,
    after: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT t.trace_id FROM skips s JOIN traces t ON t.id = s.trace_pk
         WHERE s.user_id = $2 AND s.dataset_id = $1 AND s.sort_key > $3 AND {}
         ORDER BY s.sort_key LIMIT 1",
        scope.traces("t")
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(after)
    .fetch_optional(db.reader())
    .await
}

/// Where the viewer's latest decision in this dataset was, undone or not: "Continue"
/// resumes after it (index `decisions_user`, read backwards, one row).
pub async fn last_position<'e, E>(
    executor: E,
    scope: &Scope,
) -> Result<Option<SortKey>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query_scalar(
        "SELECT sort_key FROM decisions WHERE user_id = $2 AND dataset_id = $1
         ORDER BY id DESC LIMIT 1",
    )
    .bind(scope.dataset)
    .bind(scope.viewer)
    .fetch_optional(executor)
    .await
}

/// The latest decision of this session not yet undone. Index `decisions_user`, read
/// backwards (past the few undone ones and those of the viewer's other sessions).
pub async fn latest_undoable(
    db: &Db,
    scope: &Scope,
    by: SessionTag,
) -> Result<Option<Decision>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, trace_pk, sort_key, kind, version, base, cleared_skip FROM decisions
         WHERE user_id = $2 AND dataset_id = $1 AND undone_at IS NULL AND session = $3
         ORDER BY id DESC LIMIT 1",
    )
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(by.0)
    .fetch_optional(db.reader())
    .await
}

/// What an undo did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    /// A skip: the trace is to do again.
    Skip,
    /// A first save: the annotation is gone (kept in `undone_saves` for the history), the
    /// trace is to do again, or skipped again if it was skipped before that save.
    /// `skipped_again`: the trace was skipped before that save, and is skipped again.
    FirstSave {
        verdict: Verdict,
        skipped_again: bool,
    },
    /// A save that replaced an earlier one: the earlier revision is back, as a new version.
    Replacement { verdict: Verdict, restored: Verdict },
    /// The annotation was saved again after this decision (another tab): nothing undone.
    ChangedSince,
}

/// Undoes one decision of the viewer in one transaction; the undone save stays in the
/// trace's history (a new revision, or a row of `undone_saves`).
pub async fn undo(db: &Db, scope: &Scope, decision: &Decision) -> Result<Undone, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let backend = db.backend();
    let trace = TraceRef {
        pk: decision.trace_pk,
        dataset_id: scope.dataset,
        sort_key: decision.sort_key,
    };
    let undone = match decision.decided() {
        Decided::Skip => {
            unskip(&mut tx, scope, decision.sort_key).await?;
            Undone::Skip
        }
        Decided::Save { version, base } => {
            let current = for_trace_on(&mut *tx, backend, decision.trace_pk, scope.viewer).await?;
            match current {
                Some(current) if current.version != version => Undone::ChangedSince,
                None => Undone::ChangedSince,
                Some(current) if base == 0 => {
                    remove_first_save(&mut tx, scope, &current, decision).await?;
                    // It was skipped before this save: skipped it is again.
                    let skipped_again =
                        decision.cleared_skip != 0 && insert_skip(&mut tx, scope, trace).await?;
                    Undone::FirstSave {
                        verdict: current.verdict,
                        skipped_again,
                    }
                }
                Some(current) => {
                    let earlier: Option<(Verdict, String, String, String)> = sqlx::query_as(
                        "SELECT verdict, first_failure_note, open_codes, comments
                         FROM annotation_revisions WHERE annotation_id = $1 AND version = $2",
                    )
                    .bind(current.id)
                    .bind(base)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((verdict, note, codes, comments)) = earlier else {
                        tx.rollback().await?;
                        return Ok(Undone::ChangedSince);
                    };
                    // Stored joined from parsed codes, so parsing them again does not fail;
                    // if a stored value ever does, that is an error, not "no codes".
                    let open_codes = OpenCodes::parse(&codes).map_err(|e| {
                        sqlx::Error::Decode(
                            format!(
                                "revision {base} of annotation {}: stored open codes do not parse: {e}",
                                current.id.0
                            )
                            .into(),
                        )
                    })?;
                    let input = AnnotationInput {
                        verdict,
                        first_failure_note: note,
                        open_codes,
                        comments,
                        base_version: version,
                        replace: true,
                    };
                    match write_in(&mut tx, backend, trace, scope, &input).await? {
                        SaveOutcome::Saved { version: restored } => {
                            // The decision that wrote `base`, on the same trace, now stands
                            // at the restored version: undoing it next checks that one.
                            sqlx::query(
                                "UPDATE decisions SET version = $1
                                 WHERE user_id = $2 AND dataset_id = $3 AND trace_pk = $4
                                   AND kind = 'save' AND undone_at IS NULL AND version = $5",
                            )
                            .bind(restored)
                            .bind(scope.viewer)
                            .bind(scope.dataset)
                            .bind(decision.trace_pk)
                            .bind(base)
                            .execute(&mut *tx)
                            .await?;
                            Undone::Replacement {
                                verdict: current.verdict,
                                restored: verdict,
                            }
                        }
                        _ => Undone::ChangedSince,
                    }
                }
            }
        }
    };
    if undone == Undone::ChangedSince {
        tx.rollback().await?;
        return Ok(undone);
    }
    sqlx::query("UPDATE decisions SET undone_at = $1 WHERE id = $2")
        .bind(now())
        .bind(decision.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(undone)
}

/// Takes back a first save: its revisions move to `undone_saves`, the annotation and its
/// code rows go, the counters drop and the low-water mark comes back below the trace.
async fn remove_first_save(
    tx: &mut AnyConnection,
    scope: &Scope,
    current: &super::annotations::Annotation,
    decision: &Decision,
) -> Result<(), sqlx::Error> {
    let ts = now();
    sqlx::query(
        "INSERT INTO undone_saves (dataset_id, trace_pk, user_id, version, verdict,
             first_failure_note, open_codes, comments, created_at, undone_at)
         SELECT $1, $2, $3, r.version, r.verdict, r.first_failure_note, r.open_codes,
                r.comments, r.created_at, $4
         FROM annotation_revisions r WHERE r.annotation_id = $5 ORDER BY r.version",
    )
    .bind(scope.dataset)
    .bind(decision.trace_pk)
    .bind(scope.viewer)
    .bind(ts)
    .bind(current.id)
    .execute(&mut *tx)
    .await?;
    for table in ["annotation_revisions", "annotation_codes"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE annotation_id = $1"))
            .bind(current.id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM annotations WHERE id = $1")
        .bind(current.id)
        .execute(&mut *tx)
        .await?;
    // The pass/fail counters follow by trigger (migration 0017).
    progress::lower_low_water(tx, scope, decision.sort_key).await?;
    Ok(())
}
