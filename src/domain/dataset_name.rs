//! Dataset names: the length limit, which spellings count as the same name, and the slug a
//! name asks for.

use super::Slug;

/// Longest dataset name accepted, in characters (the import form says the same).
pub const MAX_NAME_CHARS: usize = 100;

/// A dataset name as typed, checked and tidied: surrounding whitespace removed, every inner
/// run of whitespace (spaces, tabs, line breaks) made one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetName {
    display: String,
    key: String,
    slug: Slug,
}

/// Why a dataset name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("Name the dataset to import into.")]
    Empty,
    #[error(
        "The dataset name is {0} characters long; the limit is {MAX_NAME_CHARS}. Choose a shorter name."
    )]
    TooLong(usize),
    #[error(
        "The dataset name contains a control character; use letters, digits, spaces and punctuation."
    )]
    Control,
    #[error(
        "The dataset name must contain at least one letter or digit from a to z or 0 to 9, for its address."
    )]
    NoSlug,
}

impl DatasetName {
    pub fn parse(raw: &str) -> Result<DatasetName, NameError> {
        let display = tidy(raw);
        if display.is_empty() {
            return Err(NameError::Empty);
        }
        if display.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        let chars = display.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(NameError::TooLong(chars));
        }
        let slug = Slug::from_name(&display).ok_or(NameError::NoSlug)?;
        Ok(DatasetName {
            key: key_of(&display),
            display,
            slug,
        })
    }

    /// The name as shown and stored.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// What two names must share to be the same dataset (see [`key_of`]).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The slug this name would get if no other dataset had it already.
    pub fn base_slug(&self) -> &Slug {
        &self.slug
    }
}

/// Two names are the same dataset when they are equal after trimming, collapsing inner
/// whitespace and lowercasing: "Support bot" and " support  BOT" are one dataset; "Foo!"
/// and "foo" are two.
pub fn key_of(raw: &str) -> String {
    tidy(raw).to_lowercase()
}

fn tidy(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tidied_and_keyed_case_insensitively() {
        let n = DatasetName::parse("  Support \t bot\n Nov ").unwrap();
        assert_eq!(n.as_str(), "Support bot Nov");
        assert_eq!(n.key(), "support bot nov");
        assert_eq!(n.base_slug().as_str(), "support-bot-nov");
        assert_eq!(key_of("SUPPORT bot  nov"), n.key());
        assert_ne!(key_of("Foo!"), key_of("foo"));
        assert_eq!(
            DatasetName::parse("Foo!").unwrap().base_slug(),
            DatasetName::parse("foo").unwrap().base_slug(),
            "same base slug: the database gives the second one a suffix"
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert_eq!(DatasetName::parse(" \n "), Err(NameError::Empty));
        assert_eq!(DatasetName::parse("a\u{0}b"), Err(NameError::Control));
        assert_eq!(DatasetName::parse("a\u{1b}[31m"), Err(NameError::Control));
        assert_eq!(DatasetName::parse("日本"), Err(NameError::NoSlug));
        assert!(DatasetName::parse(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(
            DatasetName::parse(&"é".repeat(MAX_NAME_CHARS + 1)),
            Err(NameError::TooLong(MAX_NAME_CHARS + 1)),
            "the limit counts characters, not bytes"
        );
    }
}
