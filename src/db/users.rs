//! Users: one per (issuer, subject), with the admin flag.

use sqlx::FromRow;

use super::types::Flag;
use super::{Db, now};
use crate::domain::UserId;

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
}

impl User {
    pub fn admin(&self) -> bool {
        self.is_admin
    }
}

const COLUMNS: &str = "id, issuer, subject, email, name, is_admin";

/// Creates or refreshes a user from a sign-in. `make_admin` only ever grants: an admin
/// granted from the CLI stays admin. Served by the unique (issuer, subject) index.
pub async fn upsert(
    db: &Db,
    issuer: &str,
    subject: &str,
    email: &str,
    name: &str,
    make_admin: bool,
) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO users (issuer, subject, email, name, is_admin, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (issuer, subject) DO UPDATE
           SET email = excluded.email, name = excluded.name,
               is_admin = CASE WHEN excluded.is_admin = 1 THEN 1 ELSE users.is_admin END
         RETURNING {COLUMNS}"
    ))
    .bind(issuer)
    .bind(subject)
    .bind(email)
    .bind(name)
    .bind(Flag(make_admin))
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

/// Grants or revokes admin for every user with this email (index `users_email`).
/// Returns how many users changed.
pub async fn set_admin_by_email(db: &Db, email: &str, admin: bool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE users SET is_admin = $1 WHERE LOWER(email) = LOWER($2)")
            .bind(Flag(admin))
            .bind(email)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
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
