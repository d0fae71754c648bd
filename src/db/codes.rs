//! Open codes: their one store, a row per (annotation, code) with the text as typed and its
//! normalized form, indexed for counting per dataset (`annotation_codes_counting`).

use sqlx::AnyConnection;

use super::types::Flag;
use super::{Backend, Db};
use crate::domain::annotation::normalize_code;
use crate::domain::{AnnotationId, DatasetId, OpenCodes, SortKey, TracePk, UserId, Verdict};

/// Joins an annotation's codes in one TEXT column; a code never contains it.
pub const SEPARATOR: char = ',';

/// SQL: the codes of annotation `annotation_id` (a column expression) as one TEXT in typed
/// order, NULL when it has none — decoded as [`OpenCodes`]. Primary key prefix
/// `annotation_id` of `annotation_codes`.
pub fn codes_of(backend: Backend, annotation_id: &str) -> String {
    let aggregate = match backend {
        // ORDER BY inside an aggregate needs SQLite 3.44 (the bundled one is 3.46).
        Backend::Sqlite => "group_concat(c.code, ',' ORDER BY c.position)",
        Backend::Postgres => "string_agg(c.code, ',' ORDER BY c.position)",
    };
    format!("(SELECT {aggregate} FROM annotation_codes c WHERE c.annotation_id = {annotation_id})")
}

/// The annotation whose codes are written, with what the counting index carries.
#[derive(Debug, Clone, Copy)]
pub struct CodedAnnotation {
    pub annotation: AnnotationId,
    pub dataset: DatasetId,
    pub trace: TracePk,
    pub user: UserId,
    pub sort_key: SortKey,
    pub verdict: Verdict,
}

/// Replaces an annotation's code rows with `codes` (a new annotation has none to delete):
/// at most two statements whatever the number of codes. The rows carry the trace, the
/// annotator, the reading position and whether the annotation is a Fail, so counting them
/// (the codebook) reads one index (`annotation_codes_counting`).
pub async fn replace(
    conn: &mut AnyConnection,
    coded: CodedAnnotation,
    codes: &OpenCodes,
    new: bool,
) -> Result<(), sqlx::Error> {
    if !new {
        sqlx::query("DELETE FROM annotation_codes WHERE annotation_id = $1")
            .bind(coded.annotation)
            .execute(&mut *conn)
            .await?;
    }
    if codes.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO annotation_codes (annotation_id, dataset_id, trace_pk, user_id, sort_key, \
         fail, position, code, normalized) VALUES ",
    );
    for i in 0..codes.as_slice().len() {
        let n = 7 + i * 3;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "($1, $2, $3, $4, $5, $6, ${n}, ${}, ${})",
            n + 1,
            n + 2
        ));
    }
    let mut query = sqlx::query(&sql)
        .bind(coded.annotation)
        .bind(coded.dataset)
        .bind(coded.trace)
        .bind(coded.user)
        .bind(coded.sort_key)
        .bind(Flag(coded.verdict == Verdict::Fail));
    for (position, code) in codes.as_slice().iter().enumerate() {
        query = query
            .bind(position as i64)
            .bind(code)
            .bind(normalize_code(code));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Fills the normalized form of code rows written before it existed (the migration leaves
/// it empty: SQLite's `LOWER()` only folds ASCII), in batches. Runs at start-up; with
/// nothing left to do it is one query.
pub async fn backfill_normalized(db: &Db) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    loop {
        let rows: Vec<(AnnotationId, String)> = sqlx::query_as(
            "SELECT annotation_id, code FROM annotation_codes WHERE normalized = '' LIMIT 1000",
        )
        .fetch_all(db.reader())
        .await?;
        if rows.is_empty() {
            return Ok(done);
        }
        let mut tx = db.begin_write().await?;
        for (annotation, code) in &rows {
            sqlx::query(
                "UPDATE annotation_codes SET normalized = $1 WHERE annotation_id = $2 AND code = $3",
            )
            .bind(normalize_code(code))
            .bind(annotation)
            .bind(code)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        done += rows.len() as u64;
    }
}

/// The distinct codes (normalized) an annotator used in a dataset (index
/// `annotation_codes_counting`, which carries the annotator).
pub async fn codes_used_by(
    db: &Db,
    dataset: DatasetId,
    user: UserId,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT normalized FROM annotation_codes WHERE dataset_id = $1 AND user_id = $2",
    )
    .bind(dataset)
    .bind(user)
    .fetch_all(db.reader())
    .await?
    .into_iter()
    .collect())
}
