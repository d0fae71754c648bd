//! Templates shared by every area: the navigation bar, the progress line, the error page,
//! the sign-in notice.

use askama::Template;
use askama_web::WebTemplate;

use crate::db::progress::Counts;
use crate::db::users::User;

/// Done / total and the split, for the progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
    pub passes: i64,
    pub fails: i64,
}

impl Progress {
    /// This annotator's counts in a dataset of `total` traces.
    pub fn of(counts: Counts, total: i64) -> Progress {
        Progress {
            done: counts.done(),
            total,
            passes: counts.passes,
            fails: counts.fails,
        }
    }
}

/// What the top bar shows about the signed-in person.
#[derive(Debug, Clone)]
pub struct Nav {
    pub user_name: String,
    pub is_admin: bool,
}

impl Nav {
    pub fn of(user: &User) -> Option<Nav> {
        Some(Nav {
            user_name: user.name.clone(),
            is_admin: user.admin(),
        })
    }
}

/// A count as templates hand it over: by value or behind references (askama borrows
/// arguments, loops add another level).
pub trait Count {
    fn count(&self) -> i64;
}

impl Count for i64 {
    fn count(&self) -> i64 {
        *self
    }
}

impl<T: Count + ?Sized> Count for &T {
    fn count(&self) -> i64 {
        (**self).count()
    }
}

/// A count with thousands separators (`1,234,567`), as pages show numbers.
pub fn thousands(n: impl Count) -> String {
    let n = n.count();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn counts_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-45000), "-45,000");
    }
}

/// Any 4xx/5xx as a page.
#[derive(Template, WebTemplate)]
#[template(path = "error.html", blocks = ["main"])]
pub struct ErrorPage {
    pub title: String,
    pub status: u16,
    pub message: String,
    pub nav: Option<Nav>,
}

/// Swapped into `#flash` when an HTMX request arrives after the session ended.
#[derive(Template, WebTemplate)]
#[template(path = "session_expired.html")]
pub struct SessionExpired {
    pub next: String,
    /// A form post was refused: tell the person it was not saved.
    pub unsaved: bool,
}

/// The fragment of an error page, kept on the response so an HTMX request gets only the
/// message swapped into `#main` (see `htmx::error_fragments`), not a page inside the page.
#[derive(Debug, Clone)]
pub struct ErrorFragment(pub String);

/// What an error page says, kept on its response so `errors::with_nav` can render it again
/// with the signed-in person's top bar (the error itself has no access to the session).
#[derive(Debug, Clone)]
pub struct ShownError {
    pub title: String,
    pub status: u16,
    pub message: String,
}

impl ErrorPage {
    /// The full error page with `status`, carrying its fragment for HTMX requests.
    pub fn into_error_response(self, status: axum::http::StatusCode) -> axum::response::Response {
        use axum::response::IntoResponse;
        let fragment = self.as_main().render().ok();
        let shown = ShownError {
            title: self.title.clone(),
            status: self.status,
            message: self.message.clone(),
        };
        let mut response = (status, self).into_response();
        if let Some(f) = fragment {
            response.extensions_mut().insert(ErrorFragment(f));
        }
        response.extensions_mut().insert(shown);
        response
    }
}
