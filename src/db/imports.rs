//! Imports: their state and progress, batch inserts of traces, completion and clean-up.

use std::collections::HashMap;

use sqlx::any::AnyArguments;
use sqlx::{AnyConnection, Arguments, FromRow};

use super::types::Json;
use super::{Db, is_unique_violation, now};
use crate::domain::{DatasetId, ImportId, ImportState, NewTrace, RowError, UserId};

/// An import as its progress page shows it.
#[derive(Debug, Clone, FromRow)]
pub struct ImportRecord {
    pub id: ImportId,
    pub dataset_id: DatasetId,
    pub dataset_slug: String,
    pub dataset_name: String,
    pub file_name: String,
    pub state: ImportState,
    pub rows_read: i64,
    pub rows_inserted: i64,
    pub rows_duplicate: i64,
    pub bytes_total: i64,
    pub bytes_read: i64,
    pub message: String,
    /// The first row errors (at most 100).
    #[sqlx(try_from = "Json<Vec<RowError>>")]
    pub errors: Vec<RowError>,
    pub error_count: i64,
}

/// Refused because another import into the same dataset is still running.
#[derive(Debug)]
pub struct AlreadyRunning;

/// Registers a running import. The partial unique index `imports_one_running` makes a
/// second concurrent import into the same dataset fail here.
pub async fn start(
    db: &Db,
    dataset_id: DatasetId,
    user_id: Option<UserId>,
    file_name: &str,
    bytes_total: i64,
) -> Result<Result<ImportId, AlreadyRunning>, sqlx::Error> {
    let ts = now();
    let res = sqlx::query_scalar(
        "INSERT INTO imports (dataset_id, user_id, file_name, state, bytes_total, created_at, heartbeat_at)
         VALUES ($1, $2, $3, 'running', $4, $5, $5) RETURNING id",
    )
    .bind(dataset_id)
    .bind(user_id)
    .bind(file_name)
    .bind(bytes_total)
    .bind(ts)
    .fetch_one(db.writer())
    .await;
    match res {
        Ok(id) => Ok(Ok(id)),
        Err(e) if is_unique_violation(&e) => Ok(Err(AlreadyRunning)),
        Err(e) => Err(e),
    }
}

/// One import with its dataset (primary key).
pub async fn by_id(db: &Db, id: ImportId) -> Result<Option<ImportRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.dataset_id, d.slug AS dataset_slug, d.name AS dataset_name, i.file_name,
                i.state, i.rows_read, i.rows_inserted, i.rows_duplicate, i.bytes_total,
                i.bytes_read, i.message, i.errors, i.error_count
         FROM imports i JOIN datasets d ON d.id = i.dataset_id WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(db.reader())
    .await
}

/// The most recent imports, newest first (primary key order).
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<ImportRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.dataset_id, d.slug AS dataset_slug, d.name AS dataset_name, i.file_name,
                i.state, i.rows_read, i.rows_inserted, i.rows_duplicate, i.bytes_total,
                i.bytes_read, i.message, i.errors, i.error_count
         FROM imports i JOIN datasets d ON d.id = i.dataset_id ORDER BY i.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.reader())
    .await
}

/// Where a running import stands, to continue it batch after batch.
#[derive(Debug)]
pub struct Cursor {
    pub import_id: ImportId,
    pub dataset_id: DatasetId,
    /// Conversation positions already known (bounded cache; the table is the truth).
    positions: HashMap<String, i64>,
    next_position: i64,
    pub min_sort_key: Option<i64>,
    backend: super::Backend,
}

const POSITION_CACHE: usize = 10_000;

impl Cursor {
    pub async fn new(
        db: &Db,
        import_id: ImportId,
        dataset_id: DatasetId,
    ) -> Result<Cursor, sqlx::Error> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(position) FROM conversations WHERE dataset_id = $1")
                .bind(dataset_id)
                .fetch_one(db.writer())
                .await?;
        Ok(Cursor {
            import_id,
            dataset_id,
            positions: HashMap::new(),
            next_position: max.unwrap_or(0) + 1,
            min_sort_key: None,
            backend: db.backend(),
        })
    }
}

/// The outcome of one batch: rows inserted, rows skipped as duplicates, and rows whose
/// (conversation, turn) slot already holds another trace id.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub inserted: i64,
    pub duplicates: i64,
    pub slot_taken: Vec<usize>,
}

/// Rows per write transaction of an import. Each transaction holds SQLite's one writer:
/// 500 rows keep that to about 15 ms, so an annotator's save never waits long behind an
/// import (2,000-row transactions held it for ~60 ms); the extra commits cost ~5% of an
/// import's time.
const ROWS_PER_TRANSACTION: usize = 500;

/// Inserts one batch in short transactions (so annotators' saves interleave), each
/// recording its progress. Imports take turns per transaction (`Db::import_turn`).
pub async fn insert_batch(
    db: &Db,
    cursor: &mut Cursor,
    batch: &[NewTrace],
    rows_read: i64,
    bytes_read: i64,
) -> Result<BatchResult, sqlx::Error> {
    let mut result = BatchResult::default();
    for start in (0..batch.len()).step_by(ROWS_PER_TRANSACTION) {
        let part = &batch[start..(start + ROWS_PER_TRANSACTION).min(batch.len())];
        let _turn = db.import_turn().await;
        let done = insert_part(db, cursor, part, rows_read, bytes_read).await?;
        result.inserted += done.inserted;
        result.duplicates += done.duplicates;
        result
            .slot_taken
            .extend(done.slot_taken.into_iter().map(|i| start + i));
    }
    Ok(result)
}

/// One transaction of an import: its conversations, its traces and its progress.
async fn insert_part(
    db: &Db,
    cursor: &mut Cursor,
    batch: &[NewTrace],
    rows_read: i64,
    bytes_read: i64,
) -> Result<BatchResult, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let positions = resolve_positions(&mut tx, cursor, batch).await?;
    let mut result = BatchResult::default();
    for chunk_start in (0..batch.len()).step_by(ROWS_PER_INSERT) {
        let chunk = &batch[chunk_start..(chunk_start + ROWS_PER_INSERT).min(batch.len())];
        let keys: Vec<i64> = chunk
            .iter()
            .map(|row| {
                (positions[&row.flow_session] << crate::domain::order::TURN_BITS) | row.turn_number
            })
            .collect();
        if let Some(&min) = keys.iter().min() {
            cursor.min_sort_key = Some(cursor.min_sort_key.map_or(min, |m| m.min(min)));
        }
        // The common case inserts every row: one statement and one answer. Only when some
        // rows were skipped is the chunk redone with `RETURNING` to learn which (a row per
        // returned id is a hand-off per row on SQLite: a third of the import's time).
        sqlx::query("SAVEPOINT import_chunk")
            .execute(&mut *tx)
            .await?;
        let done = insert_chunk(&mut tx, cursor, chunk, &keys, false).await?;
        if done.len() == chunk.len() {
            sqlx::query("RELEASE SAVEPOINT import_chunk")
                .execute(&mut *tx)
                .await?;
            result.inserted += chunk.len() as i64;
            continue;
        }
        sqlx::query("ROLLBACK TO SAVEPOINT import_chunk")
            .execute(&mut *tx)
            .await?;
        let inserted = insert_chunk(&mut tx, cursor, chunk, &keys, true).await?;
        sqlx::query("RELEASE SAVEPOINT import_chunk")
            .execute(&mut *tx)
            .await?;
        result.inserted += inserted.len() as i64;
        if inserted.len() < chunk.len() {
            // A multiset: a trace id repeated inside the chunk was inserted at most once.
            let mut returned: HashMap<&str, usize> = HashMap::new();
            for id in &inserted {
                *returned.entry(id.as_str()).or_default() += 1;
            }
            for (i, row) in chunk.iter().enumerate() {
                if let Some(n) = returned.get_mut(row.trace_id.as_str())
                    && *n > 0
                {
                    *n -= 1;
                    continue;
                }
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM traces WHERE dataset_id = $1 AND trace_id = $2",
                )
                .bind(cursor.dataset_id)
                .bind(&row.trace_id)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_some() {
                    result.duplicates += 1;
                } else {
                    result.slot_taken.push(chunk_start + i);
                }
            }
        }
    }
    sqlx::query(
        "UPDATE imports SET rows_read = $1, bytes_read = $2, heartbeat_at = $3,
                rows_inserted = rows_inserted + $4, rows_duplicate = rows_duplicate + $5
         WHERE id = $6",
    )
    .bind(rows_read)
    .bind(bytes_read)
    .bind(now())
    .bind(result.inserted)
    .bind(result.duplicates)
    .bind(cursor.import_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(result)
}

/// One multi-row insert of traces, skipping rows whose trace id or (conversation, turn)
/// slot is taken. With `returning`, the ids of the inserted rows; without, as many empty
/// strings as rows were inserted.
async fn insert_chunk(
    tx: &mut AnyConnection,
    cursor: &Cursor,
    chunk: &[NewTrace],
    keys: &[i64],
    returning: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO traces (dataset_id, import_id, trace_id, sort_key, flow_session, turn_number,
             total_turns, user_message, ai_response, tool_calls, metadata) VALUES {}
         ON CONFLICT DO NOTHING{}",
        values_list(cursor.backend, chunk.len(), 11),
        if returning { " RETURNING trace_id" } else { "" }
    );
    let mut args = AnyArguments::default();
    for (row, key) in chunk.iter().zip(keys) {
        args.add(cursor.dataset_id).map_err(sqlx::Error::Encode)?;
        args.add(cursor.import_id).map_err(sqlx::Error::Encode)?;
        args.add(&row.trace_id).map_err(sqlx::Error::Encode)?;
        args.add(*key).map_err(sqlx::Error::Encode)?;
        args.add(&row.flow_session).map_err(sqlx::Error::Encode)?;
        args.add(row.turn_number).map_err(sqlx::Error::Encode)?;
        args.add(row.total_turns).map_err(sqlx::Error::Encode)?;
        args.add(&row.user_message).map_err(sqlx::Error::Encode)?;
        args.add(&row.ai_response).map_err(sqlx::Error::Encode)?;
        args.add(&row.tool_calls).map_err(sqlx::Error::Encode)?;
        args.add(&row.metadata).map_err(sqlx::Error::Encode)?;
    }
    if returning {
        sqlx::query_scalar_with::<_, String, _>(&sql, args)
            .fetch_all(&mut *tx)
            .await
    } else {
        let n = sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        Ok(vec![String::new(); n as usize])
    }
}

/// Rows per multi-row insert of traces.
const ROWS_PER_INSERT: usize = 500;
/// Conversations per lookup or insert statement.
const SESSIONS_PER_STATEMENT: usize = 500;

/// `(…),(…)` placeholders of a multi-row statement, bound in order. SQLite gets anonymous
/// `?`: it finds a *named* parameter (`$n`) by a linear scan of the statement's parameter
/// list, and sqlx asks for every parameter's name, so `$n` costs grow with the square of
/// the parameters (a 4,400-parameter insert spent half the import there).
fn values_list(backend: super::Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..columns {
            n += 1;
            if c > 0 {
                sql.push(',');
            }
            push_placeholder(&mut sql, backend, n);
        }
        sql.push(')');
    }
    sql
}

fn push_placeholder(sql: &mut String, backend: super::Backend, n: usize) {
    match backend {
        super::Backend::Sqlite => sql.push('?'),
        super::Backend::Postgres => {
            sql.push('$');
            sql.push_str(&n.to_string());
        }
    }
}

/// Finds or assigns the position of each conversation in the batch, in order of first
/// appearance (primary key of `conversations`): one lookup and one insert per chunk of
/// new conversations, not per conversation.
async fn resolve_positions(
    tx: &mut AnyConnection,
    cursor: &mut Cursor,
    batch: &[NewTrace],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut out: HashMap<String, i64> = HashMap::new();
    // Conversations neither in this batch's map nor in the cache, in order of appearance.
    let mut unknown: Vec<&str> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for row in batch {
        let session = row.flow_session.as_str();
        if !seen.insert(session) {
            continue;
        }
        match cursor.positions.get(session) {
            Some(p) => {
                out.insert(session.to_string(), *p);
            }
            None => unknown.push(session),
        }
    }
    let mut known: HashMap<String, i64> = HashMap::new();
    for chunk in unknown.chunks(SESSIONS_PER_STATEMENT) {
        let mut marks = String::new();
        for i in 0..chunk.len() {
            if i > 0 {
                marks.push(',');
            }
            push_placeholder(&mut marks, cursor.backend, i + 2);
        }
        let first = if cursor.backend == super::Backend::Sqlite {
            "?"
        } else {
            "$1"
        };
        let sql = format!(
            "SELECT flow_session, position FROM conversations WHERE dataset_id = {first} AND flow_session IN ({marks})"
        );
        let mut query = sqlx::query_as::<_, (String, i64)>(&sql).bind(cursor.dataset_id);
        for session in chunk {
            query = query.bind(*session);
        }
        known.extend(query.fetch_all(&mut *tx).await?);
    }
    let mut new: Vec<(&str, i64)> = Vec::new();
    for session in unknown {
        let position = match known.get(session) {
            Some(p) => *p,
            None => {
                let p = cursor.next_position;
                cursor.next_position += 1;
                new.push((session, p));
                p
            }
        };
        if cursor.positions.len() >= POSITION_CACHE {
            cursor.positions.clear();
        }
        cursor.positions.insert(session.to_string(), position);
        out.insert(session.to_string(), position);
    }
    for chunk in new.chunks(SESSIONS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO conversations (dataset_id, flow_session, position, import_id) VALUES {}",
            values_list(cursor.backend, chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (session, position) in chunk {
            query = query
                .bind(cursor.dataset_id)
                .bind(*session)
                .bind(*position)
                .bind(cursor.import_id);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(out)
}

/// Makes a finished import visible, all at once: state, dataset columns and count, and
/// annotators' low-water marks lowered below any new trace.
pub async fn finish_done(
    db: &Db,
    cursor: &Cursor,
    columns: &[String],
    rows_read: i64,
    bytes_read: i64,
    message: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let Json(mut merged): Json<Vec<String>> =
        sqlx::query_scalar("SELECT columns FROM datasets WHERE id = $1")
            .bind(cursor.dataset_id)
            .fetch_one(&mut *tx)
            .await?;
    for c in columns {
        if !merged.contains(c) {
            merged.push(c.clone());
        }
    }
    let inserted: i64 = sqlx::query_scalar("SELECT rows_inserted FROM imports WHERE id = $1")
        .bind(cursor.import_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("UPDATE datasets SET columns = $1, trace_count = trace_count + $2 WHERE id = $3")
        .bind(Json(merged))
        .bind(inserted)
        .bind(cursor.dataset_id)
        .execute(&mut *tx)
        .await?;
    if let Some(min) = cursor.min_sort_key {
        sqlx::query(
            "UPDATE resume_points SET low_water = $1 WHERE dataset_id = $2 AND low_water >= $3",
        )
        .bind(min - 1)
        .bind(cursor.dataset_id)
        .bind(min)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE imports SET state = 'done', rows_read = $1, bytes_read = $2, message = $3,
                finished_at = $4, heartbeat_at = $4 WHERE id = $5",
    )
    .bind(rows_read)
    .bind(bytes_read)
    .bind(message)
    .bind(now())
    .bind(cursor.import_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Marks an import failed and removes whatever it had inserted, in batches so annotators'
/// saves are never blocked for long.
pub async fn finish_failed(
    db: &Db,
    import_id: ImportId,
    message: &str,
    errors: &[RowError],
    error_count: i64,
    rows_read: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE imports SET state = 'failed', message = $1, errors = $2, error_count = $3,
                rows_read = $4, rows_inserted = 0, rows_duplicate = 0, finished_at = $5 WHERE id = $6",
    )
    .bind(message)
    .bind(Json(errors))
    .bind(error_count)
    .bind(rows_read)
    .bind(now())
    .bind(import_id)
    .execute(db.writer())
    .await?;
    remove_rows_of(db, import_id).await
}

/// Deletes the traces and conversations of an import (index `traces_import`).
async fn remove_rows_of(db: &Db, import_id: ImportId) -> Result<(), sqlx::Error> {
    loop {
        let gone = sqlx::query(
            "DELETE FROM traces WHERE id IN (SELECT id FROM traces WHERE import_id = $1 LIMIT 5000)",
        )
        .bind(import_id)
        .execute(db.writer())
        .await?
        .rows_affected();
        if gone == 0 {
            break;
        }
    }
    sqlx::query("DELETE FROM conversations WHERE import_id = $1")
        .bind(import_id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Fails imports whose runner stopped sending heartbeats (a crashed process) and removes
/// their rows. Returns how many were cleaned up.
pub async fn reap_stale(db: &Db, older_than_secs: i64) -> Result<usize, sqlx::Error> {
    let stale: Vec<ImportId> =
        sqlx::query_scalar("SELECT id FROM imports WHERE state = 'running' AND heartbeat_at < $1")
            .bind(now() - older_than_secs)
            .fetch_all(db.reader())
            .await?;
    for id in &stale {
        finish_failed(
            db,
            *id,
            "The import was interrupted (the server stopped while it ran). Nothing from it was kept; please import the file again.",
            &[],
            0,
            0,
        )
        .await?;
    }
    Ok(stale.len())
}
