//! The session store: Redis when `REDIS_URL` is set, else the application database.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{
    ClientLike, Config as RedisConfig, PerformanceConfig, Pool as RedisPool, ReconnectPolicy,
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::config::Config;
use crate::db::Backend;

/// One of the supported stores, chosen at start-up.
#[derive(Debug, Clone)]
pub enum AppSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore<RedisPool>),
}

/// Marks a Redis store error, so the page can name Redis rather than the database (the
/// store's errors are plain strings).
const REDIS_ERROR: &str = "redis: ";

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AppSessionStore::Sqlite($s) => $call,
            AppSessionStore::Postgres($s) => $call,
            AppSessionStore::Redis($s) => $call.map_err(tag_redis),
        }
    };
}

fn tag_redis(err: session_store::Error) -> session_store::Error {
    match err {
        session_store::Error::Backend(msg) => {
            session_store::Error::Backend(format!("{REDIS_ERROR}{msg}"))
        }
        other => other,
    }
}

/// Whether a session error came from Redis failing (not from the database store).
pub fn is_redis_error(err: &tower_sessions::session::Error) -> bool {
    matches!(err, tower_sessions::session::Error::Store(session_store::Error::Backend(msg))
        if msg.starts_with(REDIS_ERROR))
}

#[async_trait]
impl SessionStore for AppSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        delegate!(self, s => s.create(record).await)
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        delegate!(self, s => s.save(record).await)
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        delegate!(self, s => s.load(id).await)
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        delegate!(self, s => s.delete(id).await)
    }
}

/// Builds the store and, for database stores, starts the expired-session sweeper.
/// Returns the Redis pool too, for readiness checks. An unreachable Redis is waited for
/// (with backoff, up to `wait`), as the database is.
pub async fn build(
    config: &Config,
    wait: Duration,
) -> anyhow::Result<(AppSessionStore, Option<RedisPool>)> {
    if let Some(url) = &config.redis_url {
        let pool = connect_redis(url.expose_secret(), wait).await?;
        return Ok((
            AppSessionStore::Redis(RedisStore::new(pool.clone())),
            Some(pool),
        ));
    }
    let store = match Backend::from_url(&config.database_url) {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(&config.database_url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10));
            // No ping before each acquire: an embedded database cannot hang up (see `db::sqlite_pool`).
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            let store = SqliteStore::new(pool);
            store.migrate().await?;
            AppSessionStore::Sqlite(store)
        }
        Backend::Postgres => {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&config.database_url)
                .await?;
            let store = PostgresStore::new(pool);
            store.migrate().await?;
            AppSessionStore::Postgres(store)
        }
    };
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            let res = match &sweeper {
                AppSessionStore::Sqlite(s) => {
                    tower_sessions::ExpiredDeletion::delete_expired(s).await
                }
                AppSessionStore::Postgres(s) => {
                    tower_sessions::ExpiredDeletion::delete_expired(s).await
                }
                AppSessionStore::Redis(_) => Ok(()),
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
        }
    });
    Ok((store, None))
}

/// Connects to Redis, retrying while it is not reachable. Errors waiting cannot fix (a bad
/// URL, a refused password) end at once.
async fn connect_redis(url: &str, wait: Duration) -> anyhow::Result<RedisPool> {
    use tower_sessions_redis_store::fred::error::ErrorKind;
    let redis_config = RedisConfig::from_url(url).context("REDIS_URL is not a valid Redis URL")?;
    // Fail a command after 5 s instead of waiting forever (a 503, not a hung request), and
    // reconnect for as long as it takes when Redis goes away and comes back.
    let perf = PerformanceConfig {
        default_command_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let policy = ReconnectPolicy::new_exponential(0, 100, 5_000, 2);
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let pool = RedisPool::new(
            redis_config.clone(),
            Some(perf.clone()),
            None,
            Some(policy.clone()),
            4,
        )?;
        let err = match pool.init().await {
            Ok(_) => return Ok(pool),
            Err(err) => err,
        };
        let unreachable = matches!(
            err.kind(),
            ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled
        );
        if !unreachable {
            return Err(anyhow::Error::new(err).context("connecting to Redis (REDIS_URL)"));
        }
        if started.elapsed() >= wait {
            return Err(anyhow::Error::new(err).context(format!(
                "Redis (REDIS_URL) was not reachable within {} s",
                wait.as_secs()
            )));
        }
        tracing::warn!(
            error = %err,
            retry_in_ms = delay.as_millis() as u64,
            "Redis not reachable yet (REDIS_URL); retrying"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
