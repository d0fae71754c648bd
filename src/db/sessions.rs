//! Sessions: one row per signed-in browser, written through the application's writer (on
//! SQLite its one connection, so a sign-in never competes with a save for the write lock).

use super::{Db, now};

/// A stored session: its values as a JSON object, and when it expires.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSession {
    pub data: String,
    pub expires_at: i64,
}

/// Inserts a new session; `false` when the id is taken (the caller picks another).
/// One statement: no read-then-write transaction (primary key).
pub async fn insert_new(
    db: &Db,
    id: &str,
    data: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(data)
    .bind(expires_at)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes a session's values and expiry (primary key).
pub async fn upsert(db: &Db, id: &str, data: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
    )
    .bind(id)
    .bind(data)
    .bind(expires_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// A session that has not expired (primary key).
pub async fn load(db: &Db, id: &str) -> Result<Option<StoredSession>, sqlx::Error> {
    sqlx::query_as("SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
        .bind(id)
        .bind(now())
        .fetch_optional(db.reader())
        .await
}

/// Ends a session (primary key).
pub async fn delete(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Deletes up to `limit` expired sessions (index `sessions_expiry`); returns how many.
pub async fn delete_expired(db: &Db, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM sessions WHERE id IN
           (SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2)",
    )
    .bind(now())
    .bind(limit)
    .execute(db.writer())
    .await?
    .rows_affected())
}
