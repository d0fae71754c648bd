//! Write transactions: begun `IMMEDIATE` on SQLite, never reused after a failure, and the
//! writer's health that `/readyz` reports.
//!
//! Why not sqlx's `Transaction`: when a COMMIT fails (a full disk, an I/O error) SQLite may
//! or may not have rolled the transaction back, and sqlx's bookkeeping of the nesting depth
//! then disagrees with the connection's real state — later "transactions" became savepoints
//! of a transaction that never committed, and saves were acknowledged that no restart found.
//! Here a transaction is the plain statements on one pooled connection, and any failure
//! (a statement, the commit, a dropped future) closes that connection instead of returning
//! it to the pool: the next write gets a fresh connection with nothing pending.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use super::Backend;

/// The last write failure, while no write has succeeded since.
#[derive(Debug, Clone)]
pub struct WriteFault {
    pub since: Instant,
    pub message: String,
}

/// Whether writes currently fail: set by a failed write, cleared by the next commit that
/// succeeds. Shared by every clone of the `Db`.
#[derive(Debug, Clone, Default)]
pub struct WriterHealth(Arc<Mutex<Option<WriteFault>>>);

impl WriterHealth {
    /// Records `err` if it means the database cannot take writes (not a conflict or a
    /// constraint, which are answers, not failures).
    pub fn record(&self, err: &sqlx::Error) {
        if !is_write_fault(err) {
            return;
        }
        metrics::counter!("tracecoder_db_write_failures_total").increment(1);
        let mut fault = self.lock();
        if fault.is_none() {
            tracing::error!(error = %err, "database writes are failing");
        }
        *fault = Some(WriteFault {
            since: fault.as_ref().map_or_else(Instant::now, |f| f.since),
            message: err.to_string(),
        });
    }

    fn succeeded(&self) {
        let mut fault = self.lock();
        if let Some(f) = fault.take() {
            tracing::warn!(
                failing_for_ms = f.since.elapsed().as_millis() as u64,
                "database writes succeed again"
            );
        }
    }

    /// The current fault, if writes are failing.
    pub fn fault(&self) -> Option<WriteFault> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<WriteFault>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether an error means the database cannot take writes right now: storage errors (disk
/// full, I/O, read-only, locked), the connection, Postgres' resource and system errors — as
/// opposed to a constraint violation, which is about the data.
pub fn is_write_fault(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() || db.is_foreign_key_violation() || db.is_check_violation()
            {
                return false;
            }
            let code = db.code().unwrap_or_default();
            // SQLite primary result codes (the extended code's low byte): BUSY 5, LOCKED 6,
            // NOMEM 7, READONLY 8, IOERR 10, CORRUPT 11, FULL 13, CANTOPEN 14, PROTOCOL 15,
            // NOTADB 26. Postgres SQLSTATE classes: 08 connection, 53 insufficient resources
            // (53100 disk full), 57 operator intervention, 58 system error, XX internal.
            // A SQLSTATE always has five characters; SQLite's codes have at most four digits.
            if code.len() == 5 {
                ["08", "53", "57", "58", "XX"]
                    .iter()
                    .any(|class| code.starts_with(class))
            } else {
                code.parse::<i64>()
                    .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 11 | 13 | 14 | 15 | 26))
            }
        }
        other => super::is_connection_error(other),
    }
}

/// Opens write transactions on the write pool (one connection on SQLite).
#[derive(Debug, Clone)]
pub struct Writer {
    pool: AnyPool,
    backend: Backend,
    health: WriterHealth,
    /// How long a begin waits for another process's write lock beyond SQLite's busy
    /// timeout (the command line waits its turn behind a busy server; the server does not).
    busy_patience: Duration,
}

impl Writer {
    pub fn new(pool: AnyPool, backend: Backend, busy_patience: Duration) -> Writer {
        Writer {
            pool,
            backend,
            health: WriterHealth::default(),
            busy_patience,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn health(&self) -> &WriterHealth {
        &self.health
    }

    /// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
    /// at the start (waiting up to the busy timeout), so a transaction that reads before it
    /// writes can never fail with "database is locked" when it comes to write.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let started = Instant::now();
        let mut waited_loudly = false;
        loop {
            match self.try_begin().await {
                Err(err) if is_busy(&err) && started.elapsed() < self.busy_patience => {
                    if !waited_loudly {
                        tracing::info!(
                            "another process is writing to the database; waiting for it"
                        );
                        waited_loudly = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                result => return result,
            }
        }
    }

    async fn try_begin(&self) -> Result<WriteTx, sqlx::Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .inspect_err(|e| self.health.record(e))?;
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        if let Err(err) = (&mut *conn).execute(begin).await {
            self.health.record(&err);
            conn.close_on_drop();
            return Err(err);
        }
        Ok(WriteTx {
            conn,
            health: self.health.clone(),
            open: true,
        })
    }

    /// A small write committed to the database (an update of the one-row `write_probe`
    /// table), for `/readyz` while writes are failing: success means they work again.
    pub async fn probe(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE write_probe SET probed_at = $1 WHERE id = 1")
            .bind(super::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// SQLite's SQLITE_BUSY (another process holds the write lock past the busy timeout).
fn is_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c.len() < 5 && c.parse::<i64>().is_ok_and(|n| n & 0xff == 5)))
}

/// An open write transaction on one pooled connection. Commit or roll it back; dropped
/// open (an error was returned, or the future was cancelled) it closes its connection, so
/// SQLite or Postgres discards whatever it had written.
pub struct WriteTx {
    conn: PoolConnection<Any>,
    health: WriterHealth,
    open: bool,
}

impl WriteTx {
    /// Commits; only an `Ok` means the transaction is durable.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        match (&mut *self.conn).execute("COMMIT").await {
            Ok(_) => {
                self.open = false;
                self.health.succeeded();
                Ok(())
            }
            Err(err) => {
                self.health.record(&err);
                Err(err) // dropped open: the connection is closed, never reused
            }
        }
    }

    /// Rolls back (an answer such as a conflict, not a failure: the connection is reused).
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        (&mut *self.conn).execute("ROLLBACK").await?;
        self.open = false;
        Ok(())
    }

    /// Starts a savepoint `name` inside the transaction.
    pub async fn savepoint(&mut self, name: &str) -> Result<(), sqlx::Error> {
        self.run(&format!("SAVEPOINT {name}")).await
    }

    /// Keeps what was done since savepoint `name`.
    pub async fn release(&mut self, name: &str) -> Result<(), sqlx::Error> {
        self.run(&format!("RELEASE SAVEPOINT {name}")).await
    }

    /// Undoes what was done since savepoint `name` and ends it.
    pub async fn rollback_to(&mut self, name: &str) -> Result<(), sqlx::Error> {
        self.run(&format!("ROLLBACK TO SAVEPOINT {name}")).await?;
        self.release(name).await
    }

    async fn run(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        (&mut *self.conn)
            .execute(sql)
            .await
            .map(|_| ())
            .inspect_err(|e| self.health.record(e))
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct FakeDbError(&'static str);

    impl std::fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "code {}", self.0)
        }
    }
    impl std::error::Error for FakeDbError {}
    impl sqlx::error::DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn db_error(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDbError(code)))
    }

    #[test]
    fn storage_errors_are_write_faults_and_data_errors_are_not() {
        assert!(is_write_fault(&db_error("13"))); // SQLITE_FULL
        assert!(is_write_fault(&db_error("778"))); // SQLITE_IOERR_WRITE
        assert!(is_write_fault(&db_error("5"))); // SQLITE_BUSY
        assert!(is_write_fault(&db_error("53100"))); // Postgres disk_full
        assert!(is_write_fault(&db_error("57P01"))); // Postgres admin shutdown
        assert!(!is_write_fault(&db_error("1"))); // SQLITE_ERROR: a bad statement
        assert!(!is_write_fault(&db_error("23505"))); // a Postgres unique violation
        assert!(!is_write_fault(&db_error("42601"))); // a Postgres syntax error
        assert!(is_write_fault(&sqlx::Error::PoolTimedOut));
        assert!(!is_write_fault(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn health_is_failing_from_a_fault_until_a_success() {
        let health = WriterHealth::default();
        assert!(health.fault().is_none());
        health.record(&db_error("23505"));
        assert!(health.fault().is_none(), "a constraint is not a fault");
        health.record(&db_error("13"));
        let first = health.fault().expect("failing");
        health.record(&db_error("13"));
        assert_eq!(health.fault().expect("still failing").since, first.since);
        health.succeeded();
        assert!(health.fault().is_none());
    }
}
