//! Datasets: named collections of traces, addressed by slug.

use sqlx::FromRow;

use super::{Db, now};
use crate::domain::Slug;

/// A dataset as listed and addressed.
#[derive(Debug, Clone, FromRow)]
pub struct Dataset {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// JSON array of the original column names, in file order.
    pub columns: String,
    pub trace_count: i64,
}

impl Dataset {
    /// The original CSV columns, in file order.
    pub fn column_names(&self) -> Vec<String> {
        serde_json::from_str(&self.columns).unwrap_or_default()
    }
}

/// A dataset on the dashboard with this user's progress.
#[derive(Debug, Clone, FromRow)]
pub struct DatasetSummary {
    pub slug: String,
    pub name: String,
    pub trace_count: i64,
    pub passes: i64,
    pub fails: i64,
}

impl DatasetSummary {
    pub fn done(&self) -> i64 {
        self.passes + self.fails
    }
}

/// By slug (unique index on `slug`).
pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<Dataset>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug, name, columns, trace_count FROM datasets WHERE slug = $1")
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
    sqlx::query_as("SELECT id, slug, name, columns, trace_count FROM datasets WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_one(db.writer())
        .await
}

/// Datasets that hold traces, with this user's pass/fail counts: one query, one row per
/// dataset (primary key of `annotation_counts`).
pub async fn summaries(db: &Db, user_id: i64) -> Result<Vec<DatasetSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.slug, d.name, d.trace_count,
                COALESCE(c.passes, 0) AS passes, COALESCE(c.fails, 0) AS fails
         FROM datasets d
         LEFT JOIN annotation_counts c ON c.dataset_id = d.id AND c.user_id = $1
         WHERE d.trace_count > 0
         ORDER BY d.name",
    )
    .bind(user_id)
    .fetch_all(db.reader())
    .await
}

/// This user's progress in one dataset (primary key of `annotation_counts`).
pub async fn progress(db: &Db, dataset_id: i64, user_id: i64) -> Result<(i64, i64), sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT passes, fails FROM annotation_counts WHERE user_id = $1 AND dataset_id = $2",
    )
    .bind(user_id)
    .bind(dataset_id)
    .fetch_optional(db.reader())
    .await?;
    Ok(row.unwrap_or((0, 0)))
}

/// Every dataset name, for the import form's suggestions (unique index on `slug`).
pub async fn names(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM datasets ORDER BY name LIMIT 1000")
        .fetch_all(db.reader())
        .await
}
