//! The export's reads, in bounded batches: a keyset walk over the annotations in scope, each
//! joined with its trace; or pages of every visible trace with the annotations inside each
//! page's key range. Scoped like every read (`$1` dataset, `$2` viewer).

use sqlx::FromRow;

use super::scope::Scope;
use super::types::Json;
use super::{Db, codebook, codes};
use crate::domain::{AnnotationId, Metadata, OpenCodes, SortKey, Verdict};

/// A trace's stored fields.
#[derive(Debug, FromRow)]
pub struct ExportTrace {
    pub sort_key: SortKey,
    pub trace_id: String,
    pub flow_session: String,
    pub turn_number: i64,
    pub total_turns: Option<i64>,
    pub user_message: String,
    pub ai_response: String,
    #[sqlx(try_from = "Json<Metadata>")]
    pub metadata: Metadata,
}

/// An annotation in scope, with its annotator.
#[derive(Debug, FromRow)]
pub struct ExportAnnotation {
    #[sqlx(rename = "annotation_sort_key")]
    pub sort_key: SortKey,
    pub annotation_id: AnnotationId,
    pub email: String,
    pub name: String,
    pub verdict: Verdict,
    pub first_failure_note: String,
    pub open_codes: OpenCodes,
    /// Names of the active failure modes its codes belong to (aggregated unordered).
    pub failure_modes: OpenCodes,
    pub comments: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An annotation walk's row: the annotation joined with its trace.
#[derive(Debug, FromRow)]
pub struct AnnotatedRow {
    #[sqlx(flatten)]
    pub trace: ExportTrace,
    #[sqlx(flatten)]
    pub annotation: ExportAnnotation,
}

/// Where a walk over annotations stands: the last (sort key, annotation id) written.
pub type AnnotationKey = (i64, AnnotationId);

const TRACE_COLUMNS: &str = "t.sort_key, t.trace_id, t.flow_session, t.turn_number, \
    t.total_turns, t.user_message, t.ai_response, t.metadata";

fn annotation_columns(db: &Db) -> String {
    format!(
        "a.sort_key AS annotation_sort_key, a.id AS annotation_id, u.email, u.name, \
         a.verdict, a.first_failure_note, {} AS open_codes, {} AS failure_modes, a.comments, \
         a.version, a.created_at, a.updated_at",
        codes::codes_of(db.backend(), "a.id"),
        codebook::modes_of(db.backend(), "a.id")
    )
}

/// The next `limit` annotations in scope after `after`, each with its trace, in reading
/// order (index `annotations_dataset` or `annotations_user_dataset`).
pub async fn annotated_page(
    db: &Db,
    scope: &Scope,
    after: AnnotationKey,
    limit: i64,
) -> Result<Vec<AnnotatedRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {TRACE_COLUMNS}, {}
         FROM annotations a
         JOIN traces t ON t.id = a.trace_pk
         JOIN users u ON u.id = a.user_id
         WHERE a.dataset_id = $1 AND {} AND {}
           AND a.sort_key >= $3 AND (a.sort_key > $3 OR a.id > $4)
         ORDER BY a.sort_key, a.id
         LIMIT $5",
        annotation_columns(db),
        scope.annotations("a"),
        scope.traces("t"),
    );
    sqlx::query_as(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(db.reader())
        .await
}

/// The next keyset page of visible traces after sort key `after`.
pub async fn trace_page(
    db: &Db,
    scope: &Scope,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportTrace>, sqlx::Error> {
    let sql = format!(
        "SELECT {TRACE_COLUMNS} FROM traces t
         WHERE t.dataset_id = $1 AND $2 = $2 AND t.sort_key > $3 AND {}
         ORDER BY t.sort_key LIMIT $4",
        scope.traces("t")
    );
    sqlx::query_as(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(after)
        .bind(limit)
        .fetch_all(db.reader())
        .await
}

/// The next `limit` annotations in scope after `after` up to sort key `last`, in order.
pub async fn annotations_in_range(
    db: &Db,
    scope: &Scope,
    after: AnnotationKey,
    last: i64,
    limit: i64,
) -> Result<Vec<ExportAnnotation>, sqlx::Error> {
    let sql = format!(
        "SELECT {}
         FROM annotations a JOIN users u ON u.id = a.user_id
         WHERE a.dataset_id = $1 AND {}
           AND a.sort_key >= $3 AND (a.sort_key > $3 OR a.id > $4) AND a.sort_key <= $5
         ORDER BY a.sort_key, a.id
         LIMIT $6",
        annotation_columns(db),
        scope.annotations("a"),
    );
    sqlx::query_as(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(after.0)
        .bind(after.1)
        .bind(last)
        .bind(limit)
        .fetch_all(db.reader())
        .await
}
