//! The development sign-in: type a name, no password. Only exists while no OIDC issuer is
//! configured and the server listens on loopback (enforced by `Config::validate`).

use crate::db::{Db, users};

/// Issuer recorded for development users, so they never collide with OIDC identities.
pub const DEV_ISSUER: &str = "dev-sign-in";

/// Validates a typed name: 1–100 characters after trimming.
pub fn parse_name(raw: &str) -> Option<String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    (!name.is_empty() && name.chars().count() <= 100).then_some(name)
}

/// The stable subject for a name (case-insensitive), and a local email to export.
fn subject_and_email(name: &str) -> (String, String) {
    let subject = name.to_lowercase();
    let local: String = subject
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '.' })
        .collect();
    (subject, format!("{}@localhost", local.trim_matches('.')))
}

/// The key the per-account sign-in limit counts this name under (names are
/// case-insensitive).
pub fn account_key(name: &str) -> String {
    format!("{DEV_ISSUER} {}", subject_and_email(name).0)
}

/// The local email a development user gets (for `ADMIN_EMAILS` and exports).
pub fn email_of(name: &str) -> String {
    subject_and_email(name).1
}

/// Signs in (or creates) the development user with this name. Its email counts as verified:
/// only someone at this loopback address can sign in at all.
pub async fn user_for(db: &Db, name: &str, admin: bool) -> Result<users::User, sqlx::Error> {
    let (subject, email) = subject_and_email(name);
    let who = users::SignIn {
        issuer: DEV_ISSUER,
        subject: &subject,
        email: &email,
        name,
        email_verified: true,
    };
    users::upsert(db, &who, admin).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Ada   Lovelace "), Some("Ada Lovelace".into()));
        assert_eq!(parse_name("   "), None);
        assert_eq!(parse_name(&"x".repeat(101)), None);
    }

    #[test]
    fn subject_ignores_case_and_email_is_local() {
        assert_eq!(
            subject_and_email("Ada L"),
            ("ada l".into(), "ada.l@localhost".into())
        );
    }
}
