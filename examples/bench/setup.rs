//! Setup, not measured: deterministic BotDojo files, a fresh database per run, and the
//! measuring user's 100,000 annotations written straight into the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tracecoder::db::{Backend, Db};
use tracecoder::demo::RowShape;
use tracecoder::domain::{DatasetId, UserId};

/// Seed of every generated file: the same bytes on every machine.
pub const SEED: u64 = 42;

/// The BotDojo file with exactly `rows` traces, generated once and reused. Written to a
/// temporary name first, so an existing file is always complete.
pub fn botdojo_file(dir: &Path, rows: u64, shape: RowShape) -> anyhow::Result<PathBuf> {
    let name = match shape.suffix() {
        "" => format!("botdojo-{rows}.csv"),
        kind => format!("botdojo-{kind}-{rows}.csv"),
    };
    let path = dir.join(&name);
    if path.exists() {
        return Ok(path);
    }
    let tmp = dir.join(format!("{name}.tmp"));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let written = tracecoder::demo::write_botdojo_rows(&mut out, rows, SEED, shape)?;
    std::io::Write::flush(&mut out)?;
    anyhow::ensure!(
        written == rows,
        "generated {written} rows instead of {rows}"
    );
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// An empty database for one run: the SQLite file is deleted; the Postgres database is
/// dropped and created again on the given server.
pub async fn fresh_database(
    backend: Backend,
    dir: &Path,
    postgres_url: &str,
    postgres_db: &str,
) -> anyhow::Result<String> {
    match backend {
        Backend::Sqlite => {
            let path = dir.join("bench.db");
            for suffix in ["", "-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{suffix}", path.display()));
                if p.exists() {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("removing {}", p.display()))?;
                }
            }
            Ok(format!("sqlite://{}?mode=rwc", path.display()))
        }
        Backend::Postgres => {
            anyhow::ensure!(
                postgres_db
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "the Postgres database name may only hold letters, digits and _"
            );
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(postgres_url)
                .await
                .with_context(|| "connecting to Postgres (--postgres-url)")?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {postgres_db} WITH (FORCE)"
            ))
            .execute(&mut conn)
            .await?;
            sqlx::query(&format!("CREATE DATABASE {postgres_db}"))
                .execute(&mut conn)
                .await?;
            let mut url = url::Url::parse(postgres_url)?;
            url.set_path(postgres_db);
            Ok(url.to_string())
        }
    }
}

/// Connects through the app's own storage layer (migrations included).
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    Db::connect(url, Duration::from_secs(30)).await
}

/// The database engine's version, for the report.
pub async fn engine_version(db: &Db) -> String {
    let sql = match db.backend() {
        Backend::Sqlite => "SELECT 'SQLite ' || sqlite_version()",
        Backend::Postgres => "SELECT 'PostgreSQL ' || current_setting('server_version')",
    };
    sqlx::query_scalar::<_, String>(sql)
        .fetch_one(db.reader())
        .await
        .unwrap_or_else(|_| "unknown".into())
}

/// The id of a development user (created by signing in over HTTP first).
pub async fn user_id(db: &Db, name: &str) -> anyhow::Result<UserId> {
    sqlx::query_scalar("SELECT id FROM users WHERE issuer = $1 AND subject = $2")
        .bind(tracecoder::auth::dev::DEV_ISSUER)
        .bind(name.to_lowercase())
        .fetch_optional(db.reader())
        .await?
        .with_context(|| format!("no user {name}"))
}

/// Gives `user_id` annotations of the first `n` traces of the dataset in reading order, as
/// if they had annotated them one by one with Pass & Next: the annotation rows (one in
/// seven a fail with a note), their first revisions, the pass/fail counters (set to what the
/// rows hold, whether or not the database's triggers counted them already) and the
/// low-water mark, all in one transaction. Setup for the measurements, not measured.
pub async fn seed_annotations(
    db: &Db,
    dataset_id: DatasetId,
    user_id: UserId,
    n: u64,
) -> anyhow::Result<()> {
    let ts = tracecoder::db::now();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict,
             first_failure_note, comments, version, created_at, updated_at)
         SELECT t.id, t.dataset_id, $1, t.sort_key,
                CASE WHEN t.id % 7 = 0 THEN 'fail' ELSE 'pass' END,
                CASE WHEN t.id % 7 = 0 THEN 'bench: the answer ignores the tool error' ELSE '' END,
                '', 1, $2, $2
         FROM traces t WHERE t.dataset_id = $3 ORDER BY t.sort_key LIMIT $4",
    )
    .bind(user_id)
    .bind(ts)
    .bind(dataset_id)
    .bind(n as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO annotation_revisions (annotation_id, version, verdict, first_failure_note,
             open_codes, comments, created_at)
         SELECT id, 1, verdict, first_failure_note, '', comments, created_at
         FROM annotations WHERE user_id = $1 AND dataset_id = $2",
    )
    .bind(user_id)
    .bind(dataset_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO annotation_counts (user_id, dataset_id, passes, fails)
         SELECT $1, $2,
                COALESCE(SUM(CASE WHEN verdict = 'pass' THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN verdict = 'fail' THEN 1 ELSE 0 END), 0)
         FROM annotations WHERE user_id = $1 AND dataset_id = $2
         ON CONFLICT (user_id, dataset_id) DO UPDATE
           SET passes = excluded.passes, fails = excluded.fails",
    )
    .bind(user_id)
    .bind(dataset_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO resume_points (user_id, dataset_id, low_water)
         SELECT $1, $2, MAX(sort_key) FROM annotations WHERE user_id = $1 AND dataset_id = $2",
    )
    .bind(user_id)
    .bind(dataset_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if db.backend() == Backend::Postgres {
        // What autovacuum does on its own a minute after a bulk load.
        sqlx::query("ANALYZE").execute(db.writer()).await?;
    }
    Ok(())
}

/// The states of the benchmark's form uploads: (done, failed, running).
pub async fn upload_states(db: &Db, prefix: &str) -> anyhow::Result<(i64, i64, i64)> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT i.state, COUNT(*) FROM imports i JOIN datasets d ON d.id = i.dataset_id
         WHERE d.slug LIKE $1 GROUP BY i.state",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(db.reader())
    .await?;
    let get = |s: &str| rows.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    Ok((get("done"), get("failed"), get("running")))
}
