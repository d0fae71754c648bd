//! Users: one per (issuer, subject), with the admin flag and whether the identity provider
//! vouched for the email.

use sqlx::FromRow;

use super::types::Flag;
use super::{Db, now};
use crate::domain::{DatasetId, UserId};

/// A signed-in person.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "Flag")]
    pub is_admin: bool,
    /// Whether the provider said `email_verified: true` at the last sign-in (development
    /// sign-in users count as verified).
    #[sqlx(try_from = "Flag")]
    pub email_verified: bool,
}

impl User {
    pub fn admin(&self) -> bool {
        self.is_admin
    }

    pub fn email_verified(&self) -> bool {
        self.email_verified
    }
}

const COLUMNS: &str = "id, issuer, subject, email, name, is_admin, email_verified";

/// Who signed in, as the identity provider (or the development sign-in) told it.
#[derive(Debug, Clone, Copy)]
pub struct SignIn<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub email_verified: bool,
}

/// Creates or refreshes a user from a sign-in. `make_admin` only ever grants: an admin
/// granted from the CLI stays admin. Served by the unique (issuer, subject) index.
pub async fn upsert(db: &Db, who: &SignIn<'_>, make_admin: bool) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO users (issuer, subject, email, name, is_admin, email_verified, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (issuer, subject) DO UPDATE
           SET email = excluded.email, name = excluded.name,
               email_verified = excluded.email_verified,
               is_admin = CASE WHEN excluded.is_admin = 1 THEN 1 ELSE users.is_admin END
         RETURNING {COLUMNS}"
    ))
    .bind(who.issuer)
    .bind(who.subject)
    .bind(who.email)
    .bind(who.name)
    .bind(Flag(make_admin))
    .bind(Flag(who.email_verified))
    .bind(now())
    .fetch_one(db.writer())
    .await
}

/// Primary-key lookup (every authenticated request).
pub async fn by_id(db: &Db, id: UserId) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await
}

/// Revokes admin from every user with this email (index `users_email`). Returns how many
/// users changed.
pub async fn revoke_admin_by_email(db: &Db, email: &str) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE users SET is_admin = 0 WHERE LOWER(email) = LOWER($1)")
            .bind(email)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}

/// Grants admin to the users with this email whose provider verified it (`users_email`).
/// Returns how many users changed.
pub async fn grant_admin_by_verified_email(db: &Db, email: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE users SET is_admin = 1 WHERE LOWER(email) = LOWER($1) AND email_verified = 1",
    )
    .bind(email)
    .execute(db.writer())
    .await?
    .rows_affected())
}

/// Every user with this email, one per identity (`users_email`), for `admin grant`.
pub async fn all_by_email(db: &Db, email: &str) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE LOWER(email) = LOWER($1) ORDER BY id"
    ))
    .bind(email)
    .fetch_all(db.reader())
    .await
}

/// All admins, for `tracecoder admin list`.
pub async fn admins(db: &Db) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE is_admin = 1 ORDER BY email"
    ))
    .fetch_all(db.reader())
    .await
}

/// Looks a user up by email, for the CLI (`users_email`).
pub async fn by_email(db: &Db, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE LOWER(email) = LOWER($1) ORDER BY id LIMIT 1"
    ))
    .bind(email)
    .fetch_optional(db.reader())
    .await
}

/// Everyone with an annotation in the dataset (or one undone since), by email: the trace
/// list's annotator filter. One row each in `annotation_counts`.
pub async fn annotators_of(db: &Db, dataset: DatasetId) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users
         WHERE id IN (SELECT c.user_id FROM annotation_counts c WHERE c.dataset_id = $1)
         ORDER BY email, id"
    ))
    .bind(dataset)
    .fetch_all(db.reader())
    .await
}
