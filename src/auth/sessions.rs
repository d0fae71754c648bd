//! The session store: Redis when `REDIS_URL` is set, else the application database
//! (the `sessions` table, written through the same writer as everything else).

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::ExposeSecret;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{
    ClientLike, Config as RedisConfig, PerformanceConfig, Pool as RedisPool, ReconnectPolicy,
};

use crate::config::Config;
use crate::db::{self, Db};

/// One of the supported stores, chosen at start-up.
#[derive(Debug, Clone)]
pub enum AppSessionStore {
    Database(DbSessionStore),
    Redis(RedisStore<RedisPool>),
}

/// Marks a Redis store error, so the page can name Redis rather than the database (the
/// store's errors are plain strings).
const REDIS_ERROR: &str = "redis: ";

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AppSessionStore::Database($s) => $call,
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

/// Sessions in the application database (SQLite or Postgres), through `db::sessions`.
#[derive(Debug, Clone)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> DbSessionStore {
        DbSessionStore { db }
    }
}

fn backend_error(err: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        let expires_at = record.expiry_date.unix_timestamp();
        // A 128-bit random id is practically never taken; if it is, draw another.
        while !db::sessions::insert_new(&self.db, &record.id.to_string(), &data, expires_at)
            .await
            .map_err(backend_error)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = encode(record)?;
        db::sessions::upsert(
            &self.db,
            &record.id.to_string(),
            &data,
            record.expiry_date.unix_timestamp(),
        )
        .await
        .map_err(backend_error)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(stored) = db::sessions::load(&self.db, &id.to_string())
            .await
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_str(&stored.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(stored.expires_at)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        db::sessions::delete(&self.db, &id.to_string())
            .await
            .map_err(backend_error)
    }
}

/// Builds the store and, for database stores, starts the expired-session sweeper.
/// Returns the Redis pool too, for readiness checks. An unreachable Redis is waited for
/// (with backoff, up to `wait`), as the database is.
pub async fn build(
    config: &Config,
    db: &Db,
    wait: Duration,
) -> anyhow::Result<(AppSessionStore, Option<RedisPool>)> {
    if let Some(url) = &config.redis_url {
        let pool = connect_redis(url.expose_secret(), wait).await?;
        return Ok((
            AppSessionStore::Redis(RedisStore::new(pool.clone())),
            Some(pool),
        ));
    }
    let store = DbSessionStore::new(db.clone());
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            // In bounded batches, so a backlog never holds the writer for long.
            loop {
                match db::sessions::delete_expired(&sweeper.db, 1000).await {
                    Ok(1000) => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not delete expired sessions");
                        break;
                    }
                }
            }
        }
    });
    Ok((AppSessionStore::Database(store), None))
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
