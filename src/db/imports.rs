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

/// The database's clock in unix seconds, as SQL. Heartbeats are written and judged by the
/// one clock every process shares, so an instance (or an operator's laptop running the CLI)
/// whose clock is off can neither look dead nor reap a live import.
fn db_now(backend: super::Backend) -> &'static str {
    match backend {
        super::Backend::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
        super::Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)",
    }
}

/// Registers a running import owned by `owner` (a token of this run). The partial unique
/// index `imports_one_running` makes a second concurrent import into the same dataset fail
/// here.
pub async fn start(
    db: &Db,
    dataset_id: DatasetId,
    user_id: Option<UserId>,
    file_name: &str,
    bytes_total: i64,
    owner: &str,
) -> Result<Result<ImportId, AlreadyRunning>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO imports (dataset_id, user_id, file_name, state, bytes_total, created_at,
             heartbeat_at, owner)
         VALUES ($1, $2, $3, 'running', $4, $5, {}, $6) RETURNING id",
        db_now(db.backend())
    );
    let res = sqlx::query_scalar(&sql)
        .bind(dataset_id)
        .bind(user_id)
        .bind(file_name)
        .bind(bytes_total)
        .bind(now())
        .bind(owner)
        .fetch_one(db.writer())
        .await;
    match res {
        Ok(id) => Ok(Ok(id)),
        Err(e) if is_unique_violation(&e) => Ok(Err(AlreadyRunning)),
        Err(e) => Err(e),
    }
}

/// Tells the database the import's runner is alive (primary key). `false`: the import is
/// no longer this runner's (reaped, or finished).
pub async fn heartbeat(db: &Db, import_id: ImportId, owner: &str) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE imports SET heartbeat_at = {} WHERE id = $1 AND owner = $2 AND state = 'running'",
        db_now(db.backend())
    );
    let res = sqlx::query(&sql)
        .bind(import_id)
        .bind(owner)
        .execute(db.writer())
        .await?;
    Ok(res.rows_affected() == 1)
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
    /// The run's ownership token: every write checks the import is still its own.
    owner: String,
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
        owner: &str,
    ) -> Result<Cursor, sqlx::Error> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(position) FROM conversations WHERE dataset_id = $1")
                .bind(dataset_id)
                .fetch_one(db.writer())
                .await?;
        Ok(Cursor {
            import_id,
            dataset_id,
            owner: owner.to_string(),
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
    /// The import is no longer this run's (a reaper took it over): nothing was written.
    pub lost: bool,
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
        if done.lost {
            result.lost = true;
            return Ok(result);
        }
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
    // Only while the import is still this run's: a reaper that took it over is removing its
    // rows, and these must not join them.
    let progress = format!(
        "UPDATE imports SET rows_read = $1, bytes_read = $2, heartbeat_at = {},
                rows_inserted = rows_inserted + $3, rows_duplicate = rows_duplicate + $4
         WHERE id = $5 AND owner = $6 AND state = 'running'",
        db_now(cursor.backend)
    );
    let ours = sqlx::query(&progress)
        .bind(rows_read)
        .bind(bytes_read)
        .bind(result.inserted)
        .bind(result.duplicates)
        .bind(cursor.import_id)
        .bind(&cursor.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !ours {
        tx.rollback().await?;
        return Ok(BatchResult {
            lost: true,
            ..BatchResult::default()
        });
    }
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
pub(crate) fn values_list(backend: super::Backend, rows: usize, columns: usize) -> String {
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
/// annotators' low-water marks lowered below any new trace. `false` (and nothing changed):
/// the import is no longer this run's.
/// How many conversations an import added to its dataset (the dataset's rows of
/// `conversations`, by primary key prefix, filtered by the import that created them).
pub async fn new_conversations(
    db: &Db,
    dataset: DatasetId,
    import: ImportId,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM conversations WHERE dataset_id = $1 AND import_id = $2",
    )
    .bind(dataset)
    .bind(import)
    .fetch_one(db.writer())
    .await
}

/// On Postgres, merges the search index's pending list (`gin_clean_pending_list`) before
/// the import's traces become visible. A large import leaves megabytes of new words in the
/// GIN index's pending list, which every search scans until autovacuum merges it. Without
/// this, a search for a word in no trace had p99 5.5–5.8 s at 100,000 traces (a few requests
/// stalled for seconds, likely while autovacuum merged the list); with it, 7.5 ms. Merged
/// here, while the traces are still invisible, by the import that wrote them. SQLite's FTS5
/// index merges as it goes.
pub async fn merge_search_index(db: &Db) -> Result<(), sqlx::Error> {
    if db.backend() == super::Backend::Postgres {
        sqlx::query("SELECT gin_clean_pending_list('traces_search'::regclass)")
            .execute(db.writer())
            .await?;
    }
    Ok(())
}

pub async fn finish_done(
    db: &Db,
    cursor: &Cursor,
    columns: &[String],
    rows_read: i64,
    bytes_read: i64,
    message: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    // First, so the row is locked (Postgres) and a reaper cannot take it over meanwhile.
    let ours = sqlx::query(
        "UPDATE imports SET state = 'done', rows_read = $1, bytes_read = $2, message = $3,
                finished_at = $4, heartbeat_at = $4
         WHERE id = $5 AND owner = $6 AND state = 'running'",
    )
    .bind(rows_read)
    .bind(bytes_read)
    .bind(message)
    .bind(now())
    .bind(cursor.import_id)
    .bind(&cursor.owner)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !ours {
        tx.rollback().await?;
        return Ok(false);
    }
    let existing: Json<Vec<String>> =
        sqlx::query_scalar("SELECT columns FROM datasets WHERE id = $1")
            .bind(cursor.dataset_id)
            .fetch_one(&mut *tx)
            .await?;
    let Json(mut merged) = existing;
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
    tx.commit().await?;
    Ok(true)
}

/// Removes whatever an import had inserted, then marks it failed with `message` — in that
/// order, so a failed import never leaves rows behind: while its rows go, the import is
/// still running (its heartbeat kept fresh here), a new import into the dataset waits, and
/// if this process dies meanwhile a reaper finishes the job. Only the import's `owner` marks
/// it failed; removing rows is harmless for anyone, because a failing import's rows all go.
pub async fn finish_failed(
    db: &Db,
    import_id: ImportId,
    owner: &str,
    message: &str,
    errors: &[RowError],
    error_count: i64,
    rows_read: i64,
) -> Result<(), sqlx::Error> {
    remove_rows_of(db, import_id, owner).await?;
    sqlx::query(
        "UPDATE imports SET state = 'failed', message = $1, errors = $2, error_count = $3,
                rows_read = $4, rows_inserted = 0, rows_duplicate = 0, finished_at = $5
         WHERE id = $6 AND owner = $7 AND state = 'running'",
    )
    .bind(message)
    .bind(Json(errors))
    .bind(error_count)
    .bind(rows_read)
    .bind(now())
    .bind(import_id)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Deletes the traces and conversations of an import (index `traces_import`), in batches so
/// annotators' saves are never blocked for long, refreshing the owner's heartbeat after each.
async fn remove_rows_of(db: &Db, import_id: ImportId, owner: &str) -> Result<(), sqlx::Error> {
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
        heartbeat(db, import_id, owner).await?;
    }
    sqlx::query("DELETE FROM conversations WHERE import_id = $1")
        .bind(import_id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Fails imports whose runner stopped sending heartbeats `stale_after_secs` ago or more (a
/// process that died or was killed) and removes their rows. Safe with several processes on
/// one database: each import is first claimed, atomically and only while its heartbeat is
/// still stale, by a new owner token, so a live runner (whose heartbeat is fresh) is never
/// reaped, two reapers never both clean one import, and a runner that was merely slow finds
/// the import no longer its own at its next write. Returns how many were cleaned up.
pub async fn reap_stale(db: &Db, stale_after_secs: i64) -> Result<usize, sqlx::Error> {
    let stale_sql = format!(
        "SELECT id FROM imports WHERE state = 'running' AND heartbeat_at < {} - $1",
        db_now(db.backend())
    );
    let stale: Vec<ImportId> = sqlx::query_scalar(&stale_sql)
        .bind(stale_after_secs)
        .fetch_all(db.reader())
        .await?;
    let claim_sql = format!(
        "UPDATE imports SET owner = $1, heartbeat_at = {now}
         WHERE id = $2 AND state = 'running' AND heartbeat_at < {now} - $3",
        now = db_now(db.backend())
    );
    let mut reaped = 0;
    for id in stale {
        let reaper = format!("reaper-{}", uuid::Uuid::new_v4().simple());
        let claimed = sqlx::query(&claim_sql)
            .bind(&reaper)
            .bind(id)
            .bind(stale_after_secs)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1;
        if !claimed {
            continue;
        }
        finish_failed(
            db,
            id,
            &reaper,
            "The import was interrupted: the process running it stopped before it finished. \
             Nothing from it was kept; please import the file again.",
            &[],
            0,
            0,
        )
        .await?;
        reaped += 1;
    }
    Ok(reaped)
}
