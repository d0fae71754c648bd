//! Annotations: one per (trace, annotator); reading them (saving is `super::saves`).

use sqlx::{Any, FromRow};

use super::scope::Scope;
use super::{Backend, Db, codes};
use crate::domain::{AnnotationId, OpenCodes, TracePk, UserId, Verdict};

/// An annotator's current annotation of one trace.
#[derive(Debug, Clone, FromRow)]
pub struct Annotation {
    pub id: AnnotationId,
    pub user_id: UserId,
    pub verdict: Verdict,
    pub first_failure_note: String,
    pub open_codes: OpenCodes,
    pub comments: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Another annotator's annotation, as a lead sees it beside the trace.
#[derive(Debug, Clone, FromRow)]
pub struct OthersAnnotation {
    pub user_name: String,
    pub user_email: String,
    pub verdict: Verdict,
    pub first_failure_note: String,
    pub open_codes: OpenCodes,
    pub comments: String,
    pub version: i64,
}

/// The columns of [`Annotation`] from `annotations a`, the codes aggregated from their rows.
fn columns(backend: Backend) -> String {
    format!(
        "a.id, a.user_id, a.verdict, a.first_failure_note, {} AS open_codes, a.comments, \
         a.version, a.created_at, a.updated_at",
        codes::codes_of(backend, "a.id")
    )
}

/// This user's annotation of a trace (unique index `(trace_pk, user_id)`).
pub async fn for_trace(
    db: &Db,
    trace: TracePk,
    user: UserId,
) -> Result<Option<Annotation>, sqlx::Error> {
    for_trace_on(db.reader(), db.backend(), trace, user).await
}

/// `for_trace` on a given connection (the trace view reads on one).
pub(crate) async fn for_trace_on<'e, E>(
    executor: E,
    backend: Backend,
    trace: TracePk,
    user: UserId,
) -> Result<Option<Annotation>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {} FROM annotations a WHERE a.trace_pk = $1 AND a.user_id = $2",
        columns(backend)
    ))
    .bind(trace)
    .bind(user)
    .fetch_optional(executor)
    .await
}

/// The annotations of a trace by others than the viewer that the scope shows (unique index
/// prefix `trace_pk`): none for an annotator; for a lead, everyone else's once the blind
/// rule allows (see `super::scope`).
pub(crate) async fn others_for_trace_on<'e, E>(
    executor: E,
    backend: Backend,
    scope: &Scope,
    trace: TracePk,
) -> Result<Vec<OthersAnnotation>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT u.name AS user_name, u.email AS user_email, a.verdict, a.first_failure_note,
                {} AS open_codes, a.comments, a.version
         FROM annotations a JOIN users u ON u.id = a.user_id
         WHERE a.trace_pk = $3 AND a.dataset_id = $1 AND a.user_id <> $2 AND {} AND {}
         ORDER BY u.name",
        codes::codes_of(backend, "a.id"),
        // An own-only scope holds none of them; a lead's is blind until their own save.
        scope.annotations("a"),
        scope.others_visible("a"),
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(trace)
    .fetch_all(executor)
    .await
}
