//! Team review's reads and the one write: every annotator's current annotation of a trace
//! side by side, a lead's adjudications (all kept; the latest is the decision), and the
//! revision history of a trace.

use std::collections::HashMap;

use sqlx::FromRow;

use super::scope::Scope;
use super::types::Json;
use super::{Db, codes, now};
use crate::domain::{AnnotationId, DatasetId, OpenCodes, SortKey, TracePk, UserId, Verdict};

/// One annotator's current annotation, with the trace it is about.
#[derive(Debug, Clone, FromRow)]
pub struct Coded {
    pub trace_pk: TracePk,
    pub sort_key: SortKey,
    pub trace_id: String,
    pub annotation_id: AnnotationId,
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub verdict: Verdict,
    pub first_failure_note: String,
    pub open_codes: OpenCodes,
    pub comments: String,
    pub updated_at: i64,
}

/// Where a walk over annotations stands: the last (sort key, annotation id) read.
pub type Key = (i64, AnnotationId);

/// The next `limit` current annotations of the dataset after `after`, in reading order,
/// each trace's together (index `annotations_dataset`).
pub async fn coded_page(
    db: &Db,
    dataset: DatasetId,
    after: Key,
    limit: i64,
) -> Result<Vec<Coded>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT a.trace_pk, a.sort_key, t.trace_id, a.id AS annotation_id, a.user_id, u.email,
                u.name, a.verdict, a.first_failure_note, {} AS open_codes, a.comments,
                a.updated_at
         FROM annotations a JOIN traces t ON t.id = a.trace_pk JOIN users u ON u.id = a.user_id
         WHERE a.dataset_id = $1 AND a.sort_key >= $2 AND (a.sort_key > $2 OR a.id > $3)
         ORDER BY a.sort_key, a.id LIMIT $4",
        codes::codes_of(db.backend(), "a.id")
    ))
    .bind(dataset)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(db.reader())
    .await
}

/// One annotator's verdict on a trace that at least two people coded: all agreement reads.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct Rated {
    pub trace_pk: TracePk,
    pub sort_key: SortKey,
    pub annotation_id: AnnotationId,
    pub user_id: UserId,
    pub verdict: Verdict,
}

/// The next `limit` current annotations of traces coded by at least two people, after
/// `after`, in reading order: [`coded_page`] of shared traces without the text, the codes
/// and the joins (index `annotations_dataset`, one probe of the trace's annotations per row).
pub async fn rated_page(
    db: &Db,
    dataset: DatasetId,
    after: Key,
    limit: i64,
) -> Result<Vec<Rated>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.trace_pk, a.sort_key, a.id AS annotation_id, a.user_id, a.verdict
         FROM annotations a
         WHERE a.dataset_id = $1 AND a.sort_key >= $2 AND (a.sort_key > $2 OR a.id > $3)
           AND EXISTS (SELECT 1 FROM annotations o WHERE o.trace_pk = a.trace_pk AND o.id <> a.id)
         ORDER BY a.sort_key, a.id LIMIT $4",
    )
    .bind(dataset)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(db.reader())
    .await
}

/// The emails of these users (primary key), by id.
pub async fn emails_of(
    db: &Db,
    users: &[UserId],
) -> Result<std::collections::BTreeMap<UserId, String>, sqlx::Error> {
    let mut emails = std::collections::BTreeMap::new();
    for chunk in users.chunks(400) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, email FROM users WHERE id IN ({})",
            marks.join(",")
        );
        let mut query = sqlx::query_as::<_, (UserId, String)>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        emails.extend(query.fetch_all(db.reader()).await?);
    }
    Ok(emails)
}

/// Every current annotation of one trace (unique index prefix `trace_pk`), by annotator.
pub async fn coded_trace(db: &Db, trace: TracePk) -> Result<Vec<Coded>, sqlx::Error> {
    coded_traces(db, &[trace]).await
}

/// Every current annotation of these traces (a page of them), in reading order and by
/// annotator within a trace: one statement for the page.
pub async fn coded_traces(db: &Db, traces: &[TracePk]) -> Result<Vec<Coded>, sqlx::Error> {
    if traces.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=traces.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT a.trace_pk, a.sort_key, t.trace_id, a.id AS annotation_id, a.user_id, u.email,
                u.name, a.verdict, a.first_failure_note, {} AS open_codes, a.comments,
                a.updated_at
         FROM annotations a JOIN traces t ON t.id = a.trace_pk JOIN users u ON u.id = a.user_id
         WHERE a.trace_pk IN ({}) ORDER BY a.sort_key, u.name, a.id",
        codes::codes_of(db.backend(), "a.id"),
        marks.join(",")
    );
    let mut query = sqlx::query_as(&sql);
    for trace in traces {
        query = query.bind(*trace);
    }
    query.fetch_all(db.reader()).await
}

/// A lead's decision on one trace.
#[derive(Debug, Clone, FromRow)]
pub struct Adjudication {
    pub trace_pk: TracePk,
    pub verdict: Verdict,
    /// Failure mode names, sorted.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub failure_modes: Vec<String>,
    pub reason: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
}

const ADJUDICATION_COLUMNS: &str = "j.trace_pk, j.verdict, j.failure_modes, j.reason, u.email, \
    u.name, j.created_at";

/// Records a lead's decision (every decision is kept; the latest counts).
pub async fn adjudicate(
    db: &Db,
    dataset: DatasetId,
    trace: TracePk,
    lead: UserId,
    verdict: Verdict,
    failure_modes: &[String],
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO adjudications (dataset_id, trace_pk, user_id, verdict, failure_modes, reason,
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(dataset)
    .bind(trace)
    .bind(lead)
    .bind(verdict)
    .bind(Json(failure_modes))
    .bind(reason)
    .bind(now())
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Every decision on one trace, newest first (index `adjudications_trace`).
pub async fn adjudications_of(db: &Db, trace: TracePk) -> Result<Vec<Adjudication>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ADJUDICATION_COLUMNS} FROM adjudications j JOIN users u ON u.id = j.user_id
         WHERE j.trace_pk = $1 ORDER BY j.id DESC"
    ))
    .bind(trace)
    .fetch_all(db.reader())
    .await
}

/// The latest decision on each adjudicated trace of the dataset (index
/// `adjudications_dataset`). Adjudicated traces are few: a lead settles them one by one.
pub async fn latest_adjudications(
    db: &Db,
    dataset: DatasetId,
) -> Result<HashMap<TracePk, Adjudication>, sqlx::Error> {
    let rows: Vec<Adjudication> = sqlx::query_as(&format!(
        "SELECT {ADJUDICATION_COLUMNS} FROM adjudications j JOIN users u ON u.id = j.user_id
         WHERE j.dataset_id = $1
           AND j.id = (SELECT MAX(k.id) FROM adjudications k WHERE k.trace_pk = j.trace_pk)"
    ))
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    Ok(rows.into_iter().map(|a| (a.trace_pk, a)).collect())
}

/// One saved revision of an annotation of a trace.
#[derive(Debug, Clone, FromRow)]
pub struct Revision {
    pub email: String,
    pub name: String,
    pub version: i64,
    pub verdict: Verdict,
    pub first_failure_note: String,
    /// As typed, joined.
    pub open_codes: String,
    pub comments: String,
    pub created_at: i64,
    /// When the save was undone (its annotation then removed), if it was.
    pub undone_at: Option<i64>,
}

/// The revisions of a trace's annotations the viewer may see (their own; a lead's others'
/// under the blind rule), oldest first per annotator (unique `(annotation_id, version)`),
/// with the undone first saves among them (index `undone_saves_trace`).
pub async fn revisions_of(
    db: &Db,
    scope: &Scope,
    trace: TracePk,
) -> Result<Vec<Revision>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT email, name, version, verdict, first_failure_note, open_codes, comments,
                created_at, undone_at
         FROM (
           SELECT u.email, u.name, r.version, r.verdict, r.first_failure_note, r.open_codes,
                  r.comments, r.created_at, CAST(NULL AS BIGINT) AS undone_at, a.user_id,
                  1 AS part, r.id AS seq
           FROM annotations a
           JOIN annotation_revisions r ON r.annotation_id = a.id
           JOIN users u ON u.id = a.user_id
           WHERE a.dataset_id = $1 AND a.trace_pk = $3
             AND (a.user_id = $2 OR ({} AND {}))
           UNION ALL
           SELECT u.email, u.name, a.version, a.verdict, a.first_failure_note, a.open_codes,
                  a.comments, a.created_at, a.undone_at, a.user_id, 0 AS part, a.id AS seq
           FROM undone_saves a
           JOIN users u ON u.id = a.user_id
           WHERE a.dataset_id = $1 AND a.trace_pk = $3
             AND (a.user_id = $2 OR ({} AND {}))
         ) h
         ORDER BY name, user_id, part, seq",
        scope.annotations("a"),
        scope.others_visible("a"),
        scope.annotations("a"),
        scope.others_visible("a"),
    ))
    .bind(scope.dataset)
    .bind(scope.viewer)
    .bind(trace)
    .fetch_all(db.reader())
    .await
}

/// A trace's own id by its row (primary key).
pub async fn trace_id_of(db: &Db, trace: TracePk) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT trace_id FROM traces WHERE id = $1")
        .bind(trace)
        .fetch_optional(db.reader())
        .await
}

/// The dataset's active failure modes (names, sorted) and, for each annotation whose open
/// codes are grouped, the modes they belong to. The codebook holds the grouping.
pub async fn failure_modes(
    db: &Db,
    dataset: DatasetId,
) -> Result<
    (
        Vec<String>,
        HashMap<AnnotationId, std::collections::BTreeSet<String>>,
    ),
    sqlx::Error,
> {
    let (names, rows) = super::codebook::annotation_modes(db, dataset).await?;
    let mut of_annotation: HashMap<AnnotationId, std::collections::BTreeSet<String>> =
        HashMap::new();
    for (annotation, mode) in rows {
        of_annotation.entry(annotation).or_default().insert(mode);
    }
    Ok((names, of_annotation))
}
