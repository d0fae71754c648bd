//! Datasets: named collections of traces, addressed by slug.

use sqlx::FromRow;

use super::progress::Counts;
use super::scope::Assignment;
use super::types::{Flag, Json};
use super::{Db, now};
use crate::domain::dataset_name::key_of;
use crate::domain::{AssigneeId, DatasetId, DatasetName, UserId};

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
    /// Admins stay blind too: the trace view shows no one else's annotation.
    #[sqlx(try_from = "Flag")]
    pub blind_admins: bool,
    /// When an admin archived it (it then leaves the dashboard).
    pub archived_at: Option<i64>,
}

/// A dataset on the dashboard with this user's progress.
#[derive(Debug, Clone, FromRow)]
pub struct DatasetSummary {
    pub slug: String,
    pub name: String,
    pub trace_count: i64,
    #[sqlx(flatten)]
    pub counts: Counts,
    pub archived_at: Option<i64>,
}

impl DatasetSummary {
    pub fn done(&self) -> i64 {
        self.counts.done()
    }
}

const COLUMNS: &str = "id, slug, name, columns, trace_count, blind_admins, archived_at";

/// By slug (unique index on `slug`).
pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<Dataset>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM datasets WHERE slug = $1"))
        .bind(slug)
        .fetch_optional(db.reader())
        .await
}

/// A dataset by slug with how `email` stands towards its assignment, in one statement
/// (every request under `/d/{slug}` reads it): unique index on `slug`, primary keys of
/// `dataset_assignments` and `assignees (dataset_id, email)`.
pub async fn for_viewer(
    db: &Db,
    slug: &str,
    email: &str,
) -> Result<Option<(Dataset, Assignment)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        dataset: Dataset,
        #[sqlx(try_from = "Flag")]
        has_assignment: bool,
        assignee: Option<AssigneeId>,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT d.id, d.slug, d.name, d.columns, d.trace_count, d.blind_admins, d.archived_at,
                CASE WHEN a.dataset_id IS NULL THEN 0 ELSE 1 END AS has_assignment,
                s.id AS assignee
         FROM datasets d
         LEFT JOIN dataset_assignments a ON a.dataset_id = d.id
         LEFT JOIN assignees s ON s.dataset_id = d.id AND s.email = $2 AND $2 <> ''
         WHERE d.slug = $1",
    )
    .bind(slug)
    .bind(email.to_lowercase())
    .fetch_optional(db.reader())
    .await?;
    Ok(row.map(|r| {
        let assignment = if r.has_assignment {
            Assignment::Active(r.assignee)
        } else {
            Assignment::None
        };
        (r.dataset, assignment)
    }))
}

/// Keeps admins blind on the trace view too, or not (primary key).
pub async fn set_blind_admins(db: &Db, dataset: DatasetId, blind: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE datasets SET blind_admins = $1 WHERE id = $2")
        .bind(Flag(blind))
        .bind(dataset)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// The dataset with this name (unique index `datasets_name_key`), or a new one. A new name
/// gets the first free slug of `base`, `base-2`, `base-3`… (unique index on `slug`), so
/// different names never share an address. Returns the dataset and whether it is new.
pub async fn find_or_create(db: &Db, name: &DatasetName) -> Result<(Dataset, bool), sqlx::Error> {
    fill_missing_name_keys(db).await?;
    if let Some(d) = by_name_key(db, name.key()).await? {
        return Ok((d, false));
    }
    let base = name.base_slug();
    let mut n = 1;
    loop {
        let slug = if n == 1 {
            base.clone()
        } else {
            base.numbered(n)
        };
        let taken: Option<DatasetId> =
            sqlx::query_scalar("SELECT id FROM datasets WHERE slug = $1")
                .bind(slug.as_str())
                .fetch_optional(db.writer())
                .await?;
        if taken.is_none() {
            // Either unique index may refuse the row: another process just created this
            // name (then it is ours too) or just took this slug (then try the next one).
            let created = sqlx::query(
                "INSERT INTO datasets (slug, name, name_key, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(slug.as_str())
            .bind(name.as_str())
            .bind(name.key())
            .bind(now())
            .execute(db.writer())
            .await?
            .rows_affected()
                == 1;
            if let Some(d) = by_name_key(db, name.key()).await? {
                return Ok((d, created));
            }
        }
        n += 1;
    }
}

/// By name key (unique index `datasets_name_key`).
async fn by_name_key(db: &Db, key: &str) -> Result<Option<Dataset>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM datasets WHERE name_key = $1"
    ))
    .bind(key)
    .fetch_optional(db.writer())
    .await
}

/// What a command line's `--dataset` names: a dataset's name first (as an import would
/// read it), else its slug (slugs are lowercase, so in any case).
pub async fn by_name_or_slug(db: &Db, given: &str) -> Result<Option<Dataset>, sqlx::Error> {
    fill_missing_name_keys(db).await?;
    match by_name_key(db, &key_of(given)).await? {
        Some(d) => Ok(Some(d)),
        None => by_slug(db, &given.trim().to_ascii_lowercase()).await,
    }
}

/// Gives datasets created before name keys existed their key (a full scan of the few rows
/// without one, then none). Such datasets all have different slugs, and equal keys would
/// have meant equal slugs, so their keys cannot clash; should one anyway, it keeps no key
/// and stays reachable by its slug.
async fn fill_missing_name_keys(db: &Db) -> Result<(), sqlx::Error> {
    let missing: Vec<(DatasetId, String)> =
        sqlx::query_as("SELECT id, name FROM datasets WHERE name_key IS NULL")
            .fetch_all(db.writer())
            .await?;
    for (id, name) in missing {
        let res =
            sqlx::query("UPDATE datasets SET name_key = $1 WHERE id = $2 AND name_key IS NULL")
                .bind(key_of(&name))
                .bind(id)
                .execute(db.writer())
                .await;
        match res {
            Ok(_) => {}
            Err(e) if super::is_unique_violation(&e) => {
                tracing::warn!(
                    dataset = %id,
                    "a dataset name clashes with another; it keeps its slug only"
                )
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Datasets that hold traces, with this user's pass/fail counts: one query, one row per
/// dataset (primary key of `annotation_counts`).
pub async fn summaries(db: &Db, user_id: UserId) -> Result<Vec<DatasetSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.slug, d.name, d.trace_count,
                COALESCE(c.passes, 0) AS passes, COALESCE(c.fails, 0) AS fails, d.archived_at
         FROM datasets d
         LEFT JOIN annotation_counts c ON c.dataset_id = d.id AND c.user_id = $1
         WHERE d.trace_count > 0
         ORDER BY d.name",
    )
    .bind(user_id)
    .fetch_all(db.reader())
    .await
}

/// Every dataset name, for the import form's suggestions (unique index on `slug`).
pub async fn names(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM datasets ORDER BY name LIMIT 1000")
        .fetch_all(db.reader())
        .await
}

/// Why a rename was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameError {
    /// Another dataset has this name (unique index `datasets_name_key`).
    Taken,
}

/// Gives a dataset a new name; its slug, and so every URL, stays (primary key; the unique
/// name key refuses a name another dataset has).
pub async fn rename(
    db: &Db,
    dataset: DatasetId,
    name: &DatasetName,
) -> Result<Result<(), RenameError>, sqlx::Error> {
    let res = sqlx::query("UPDATE datasets SET name = $1, name_key = $2 WHERE id = $3")
        .bind(name.as_str())
        .bind(name.key())
        .bind(dataset)
        .execute(db.writer())
        .await;
    match res {
        Ok(_) => Ok(Ok(())),
        Err(e) if super::is_unique_violation(&e) => Ok(Err(RenameError::Taken)),
        Err(e) => Err(e),
    }
}

/// Archives a dataset (now) or brings it back (primary key).
pub async fn set_archived(db: &Db, dataset: DatasetId, archived: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE datasets SET archived_at = $1 WHERE id = $2")
        .bind(archived.then(now))
        .bind(dataset)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// One person's progress in a dataset, for the dataset page's team table.
#[derive(Debug, Clone, FromRow)]
pub struct Member {
    pub name: String,
    pub email: String,
    #[sqlx(flatten)]
    pub counts: Counts,
}

/// Everyone who has annotated in the dataset, with their counts: a scan of the small
/// `annotation_counts` table (one row per person and dataset), users by primary key.
pub async fn team(db: &Db, dataset: DatasetId) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.name, u.email, c.passes, c.fails
         FROM annotation_counts c JOIN users u ON u.id = c.user_id
         WHERE c.dataset_id = $1 AND c.passes + c.fails > 0
         ORDER BY u.name LIMIT 1000",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await
}
