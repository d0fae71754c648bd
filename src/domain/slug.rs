//! URL-safe dataset slugs.

use std::fmt;

/// A dataset's name in URLs: lowercase ASCII letters, digits and single dashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    /// Derives a slug from a human name ("Support bot — Nov" → "support-bot-nov").
    pub fn from_name(name: &str) -> Option<Slug> {
        let mut out = String::new();
        for ch in name.trim().chars() {
            if ch.is_ascii_alphanumeric() {
                out.push(ch.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        while out.ends_with('-') {
            out.pop();
        }
        out.truncate(64);
        while out.ends_with('-') {
            out.pop();
        }
        (!out.is_empty()).then_some(Slug(out))
    }

    /// Accepts an existing slug from a URL, exactly.
    pub fn parse(raw: &str) -> Option<Slug> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Slug(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `n`th slug for this base (`n` ≥ 2: "foo" → "foo-2"), shortened to stay within
    /// 64 characters.
    pub fn numbered(&self, n: u32) -> Slug {
        let suffix = format!("-{n}");
        let mut base = self.0.clone();
        base.truncate(64 - suffix.len());
        while base.ends_with('-') {
            base.pop();
        }
        Slug(base + &suffix)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_from_names() {
        assert_eq!(
            Slug::from_name("Support bot — Nov 2026!").unwrap().as_str(),
            "support-bot-nov-2026"
        );
        assert_eq!(Slug::from_name("  ---  "), None);
        assert_eq!(Slug::from_name("日本").map(|s| s.0), None);
    }

    #[test]
    fn numbered_slugs_stay_slugs() {
        let base = Slug::from_name("Foo!").unwrap();
        assert_eq!(base.numbered(2).as_str(), "foo-2");
        let long = Slug::from_name(&format!("{}-b", "a".repeat(62))).unwrap();
        let n = long.numbered(12);
        assert_eq!(n.as_str(), format!("{}-12", "a".repeat(61)));
        assert!(Slug::parse(n.as_str()).is_some());
    }

    #[test]
    fn parse_accepts_only_slugs() {
        assert!(Slug::parse("demo-1").is_some());
        assert!(Slug::parse("Demo").is_none());
        assert!(Slug::parse("../x").is_none());
        assert!(Slug::parse("").is_none());
    }
}
