//! Datasets: named collections of traces, addressed by slug.

use sqlx::FromRow;

use super::progress::Counts;
use super::types::Json;
use super::{Db, now};
use crate::domain::{DatasetId, Slug, UserId};

/// A dataset as listed and addressed.
#[derive(Debug, Clone, FromRow)]
pub struct Dataset {
    pub id: DatasetId,
    pub slug: String,
    pub name: String,
    /// The original CSV column names, in file order.
    #[sqlx(try_from = "Json<Vec<String>>")]
    pub columns: Vec<String>,
    pub trace_count: i64,
}

/// A dataset on the dashboard with this user's progress.
#[derive(Debug, Clone, FromRow)]
pub struct DatasetSummary {
    pub slug: String,
    pub name: String,
    pub trace_count: i64,
    #[sqlx(flatten)]
    pub counts: Counts,
}

impl DatasetSummary {
    pub fn done(&self) -> i64 {
        self.counts.done()
    }
}

const COLUMNS: &str = "id, slug, name, columns, trace_count";

/// By slug (unique index on `slug`).
pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<Dataset>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM datasets WHERE slug = $1"))
        .bind(slug)
        .fetch_optional(db.reader())
        .await
}

/// Finds the dataset a name refers to (by its slug) or creates it.
pub async fn find_or_create(db: &Db, name: &str, slug: &Slug) -> Result<Dataset, sqlx::Error> {
    sqlx::query(
        "INSERT INTO datasets (slug, name, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(slug.as_str())
    .bind(name.trim())
    .bind(now())
    .execute(db.writer())
    .await?;
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM datasets WHERE slug = $1"))
        .bind(slug.as_str())
        .fetch_one(db.writer())
        .await
}

/// Datasets that hold traces, with this user's pass/fail counts: one query, one row per
/// dataset (primary key of `annotation_counts`).
pub async fn summaries(db: &Db, user: UserId) -> Result<Vec<DatasetSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.slug, d.name, d.trace_count,
                COALESCE(c.passes, 0) AS passes, COALESCE(c.fails, 0) AS fails
         FROM datasets d
         LEFT JOIN annotation_counts c ON c.dataset_id = d.id AND c.user_id = $1
         WHERE d.trace_count > 0
         ORDER BY d.name",
    )
    .bind(user)
    .fetch_all(db.reader())
    .await
}

/// Every dataset name, for the import form's suggestions (unique index on `slug`).
pub async fn names(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM datasets ORDER BY name LIMIT 1000")
        .fetch_all(db.reader())
        .await
}
