//! The storage layer: one set of queries over SQLite and Postgres through `sqlx::Any`.
//!
//! Each aggregate has its own module; every query is a small function whose doc comment
//! names the index that serves it. Rows decode into domain types here (`types`); which
//! traces and annotations a request sees is decided in one place (`scope`).

pub mod annotations;
pub mod assignments;
pub mod codebook;
pub mod codes;
pub mod datasets;
pub mod decisions;
pub mod export;
pub mod group_commit;
pub mod imports;
pub mod judges;
pub mod progress;
pub mod review;
pub mod saves;
pub mod scope;
pub mod sessions;
pub mod trace_search;
pub mod trace_view;
pub mod traces;
pub mod types;
pub mod users;
pub mod write;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Backend {
        if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// Connection pools. On SQLite all writes go through one connection, so writers queue
/// fairly in the pool instead of spinning on SQLITE_BUSY; reads use several. On Postgres
/// both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    reader: AnyPool,
    writer: write::Writer,
    backend: Backend,
    /// Import transactions take turns here (per instance), so an annotator's save waits
    /// behind at most one import transaction, not one per running import. Measured with five
    /// concurrent form imports on 2 cores: Pass & Next p99 ~480 → 37 ms on SQLite (one
    /// writer), 151 → 25 ms on Postgres (parallel imports took the CPU; they now finish in
    /// 22 s instead of 14 s).
    import_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// SQLite only: the writer task that commits concurrent saves together.
    group_commit: Option<group_commit::GroupCommit>,
}

/// Seconds since the Unix epoch: the schema's one time type.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether an error means the database could not be reached (as opposed to a bad query).
pub fn is_connection_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c|
        // Postgres: connection exceptions (08…), shutting down or starting up (57P01–57P03),
        // too many connections (53300).
        c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")))
}

/// Whether a start-up error means "not reachable (yet)", anywhere in its chain (connecting,
/// or a migration cut off by the connection).
fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_connection_error)
    })
}

/// Whether an error is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Who connects, which sizes the connection pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The web app: concurrent requests.
    Server,
    /// A command-line run (import, export, admin): one sequential client. On SQLite every
    /// connection keeps its own page cache (up to 32 MB) and a pool hands consecutive
    /// queries to different idle connections, so more readers only add memory.
    Command,
}

impl Role {
    fn sqlite_readers(self) -> u32 {
        match self {
            Role::Server => 4,
            Role::Command => 1,
        }
    }

    fn postgres_connections(self) -> u32 {
        match self {
            Role::Server => 16,
            Role::Command => 4,
        }
    }

    /// How long a write transaction waits for another process's SQLite write lock beyond
    /// the busy timeout. A command-line import beside a busy server waits its turn; the
    /// server answers its annotators instead of queueing them for minutes.
    fn busy_patience(self) -> Duration {
        match self {
            Role::Server => Duration::ZERO,
            Role::Command => Duration::from_secs(600),
        }
    }
}

impl Db {
    /// Connects (retrying with backoff for up to `wait` while the database is unreachable),
    /// applies pragmas and migrations. Errors that waiting cannot fix (a bad URL, a refused
    /// password, a failing migration) end at once.
    pub async fn connect(url: &str, wait: Duration) -> anyhow::Result<Db> {
        Self::connect_as(url, wait, Role::Server).await
    }

    /// [`Db::connect`] with pools sized for `role`.
    pub async fn connect_as(url: &str, wait: Duration, role: Role) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url);
        let mut delay = Duration::from_millis(200);
        let started = std::time::Instant::now();
        loop {
            match Self::try_connect(url, backend, role).await {
                Ok(db) => return Ok(db),
                Err(err) if is_unreachable(&err) && started.elapsed() < wait => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "database not reachable yet; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(err) if is_unreachable(&err) => {
                    return Err(err.context(format!(
                        "the database was not reachable within {} s",
                        wait.as_secs()
                    )));
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn try_connect(url: &str, backend: Backend, role: Role) -> anyhow::Result<Db> {
        let options = AnyConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid database URL")?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let db = match backend {
            Backend::Sqlite => {
                let pool = sqlite_pool(1, WRITER_CACHE_KIB)
                    .connect_with(options.clone())
                    .await?;
                let reader = sqlite_pool(role.sqlite_readers(), READER_CACHE_KIB)
                    .connect_with(options)
                    .await?;
                let writer = write::Writer::new(pool, backend, role.busy_patience());
                Db {
                    reader,
                    group_commit: Some(group_commit::GroupCommit::start(writer.clone())),
                    writer,
                    backend,
                    import_turn: Default::default(),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(role.postgres_connections())
                    .acquire_timeout(Duration::from_secs(5))
                    // Ping only connections that sat idle for a second or more (they may
                    // have outlived a database restart), not before every statement: the
                    // ping is a round trip, and a Pass & Next checks out a dozen connections.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= Duration::from_secs(1) {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await?;
                Db {
                    reader: pool.clone(),
                    writer: write::Writer::new(pool, backend, role.busy_patience()),
                    backend,
                    import_turn: Default::default(),
                    group_commit: None,
                }
            }
        };
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(db.writer.pool())
            .await
            .context("applying database migrations")?;
        let normalized = codes::backfill_normalized(&db)
            .await
            .context("normalizing the open codes of earlier versions")?;
        if normalized > 0 {
            tracing::info!(
                codes = normalized,
                "normalized the open codes saved by an earlier version"
            );
        }
        Ok(db)
    }

    /// The pool for reads.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// The pool for single-statement writes (one connection on SQLite). A statement on
    /// its own is a transaction of its own; anything longer goes through [`Db::begin_write`].
    pub fn writer(&self) -> &AnyPool {
        self.writer.pool()
    }

    /// The write path itself (the group-commit writer and single saves use it).
    pub(crate) fn write_path(&self) -> &write::Writer {
        &self.writer
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite); see [`write::WriteTx`].
    pub async fn begin_write(&self) -> Result<write::WriteTx, sqlx::Error> {
        self.writer.begin().await
    }

    /// Whether writes are failing now (a full disk, an I/O error…), and since when.
    pub fn write_fault(&self) -> Option<write::WriteFault> {
        self.writer.health().fault()
    }

    /// A small committed write, to find out whether writes work again.
    pub async fn probe_write(&self) -> Result<(), sqlx::Error> {
        self.writer.probe().await
    }

    /// An import's turn to write one transaction.
    pub async fn import_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.import_turn.lock().await
    }

    /// The group-commit queue for annotation saves (SQLite), or `None` (Postgres, whose
    /// connections commit in parallel and whose WAL flushes group concurrent commits).
    pub fn group_commit(&self) -> Option<&group_commit::GroupCommit> {
        self.group_commit.as_ref()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
    }

    /// Pool sizes for the metrics gauges: (connections open, idle).
    pub fn pool_stats(&self) -> (u32, usize) {
        let size = self.reader.size()
            + if self.backend == Backend::Sqlite {
                self.writer().size()
            } else {
                0
            };
        let idle = self.reader.num_idle()
            + if self.backend == Backend::Sqlite {
                self.writer().num_idle()
            } else {
                0
            };
        (size, idle)
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer().close().await;
    }
}

/// SQLite page cache of the one writer connection, KiB: imports insert into the traces'
/// indexes and the search index through it.
const WRITER_CACHE_KIB: u32 = 16_000;

/// SQLite page cache of each reader connection, KiB. The pages a request needs are index
/// walks of a few dozen pages; a miss is a read from the OS's file cache. Four readers at
/// 32 MB each held most of the server's memory under load (docs/benchmarks.md).
const READER_CACHE_KIB: u32 = 8_000;

/// How long an unused SQLite connection stays open. Closing it frees its page cache, so an
/// idle server shrinks back within a minute; reopening one costs about a millisecond.
const SQLITE_IDLE: Duration = Duration::from_secs(15);

/// SQLite: WAL for concurrent readers; `synchronous=FULL` so an acknowledged save survives
/// a power cut; a busy timeout for the rare writer from another process (the CLI).
fn sqlite_pool(max: u32, cache_kib: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .idle_timeout(SQLITE_IDLE)
        .acquire_timeout(Duration::from_secs(10))
        // An embedded database cannot hang up; the default ping before every acquire is one
        // more round trip to the connection's worker thread per query (measured: a third of
        // the database hand-offs in a Pass & Next).
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    format!(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; \
                         PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-{cache_kib};"
                    )
                    .as_str(),
                )
                .await?;
                Ok(())
            })
        })
}
