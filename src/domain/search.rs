//! A trace-list search as typed: words to find in the messages and an exact metadata value,
//! and the SQLite FTS5 query that finds their candidates.

/// What the trace list is searched for. Empty when nothing searchable was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceSearch {
    /// Words the user message or the AI response must all hold (any order, whole words,
    /// case and accents ignored). Words without a letter or digit are dropped: they hold no
    /// word to find.
    pub words: Vec<String>,
    /// A metadata column and the exact value it must hold.
    pub field: Option<MetadataValue>,
}

/// A metadata column (trimmed, as imported) and its exact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataValue {
    pub column: String,
    pub value: String,
}

impl MetadataValue {
    /// The pair exactly as the `metadata` JSON of a trace holds it (`["column","value"]`):
    /// a trace has the value exactly when its metadata text contains this. Inside a JSON
    /// string every quote is escaped, so the unescaped `["…","…"]` can only be an element of
    /// the array, never part of a longer value.
    pub fn needle(&self) -> String {
        serde_json::to_string(&(&self.column, &self.value)).unwrap_or_default()
    }
}

impl TraceSearch {
    /// Reads the list's `q`, `field` and `value` parameters. A value without a column is
    /// ignored; a column with an empty value finds the traces where it is empty.
    pub fn parse(q: Option<&str>, field: Option<&str>, value: Option<&str>) -> TraceSearch {
        let words = q
            .unwrap_or_default()
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .map(str::to_string)
            .collect();
        let field = field
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|column| MetadataValue {
                column: column.to_string(),
                value: value.unwrap_or_default().trim().to_string(),
            });
        TraceSearch { words, field }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.field.is_none()
    }

    /// The words as one line (Postgres' `plainto_tsquery` takes them so).
    pub fn text(&self) -> String {
        self.words.join(" ")
    }

    /// The FTS5 query for the candidates: every word as a quoted string (so `AND`, `NEAR`,
    /// `*` or quotes typed by a user are words, not syntax) within the two message columns,
    /// and the metadata column and value as one phrase of the `metadata` column (its JSON
    /// text tokenizes to column, value, column, value…). A phrase can match more than the
    /// exact value (a longer value, or a value followed by the next column), so the caller
    /// checks [`MetadataValue::needle`] too. `None` when there is nothing to match in the
    /// index (no words, and a metadata phrase without a word): the caller walks instead.
    pub fn fts5_query(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.words.is_empty() {
            let words: Vec<String> = self.words.iter().map(|w| quoted(w)).collect();
            parts.push(format!(
                "{{user_message ai_response}} : ({})",
                words.join(" AND ")
            ));
        }
        if let Some(field) = &self.field {
            let phrase = format!("{} {}", field.column, field.value);
            if phrase.chars().any(char::is_alphanumeric) {
                parts.push(format!("metadata : {}", quoted(&phrase)));
            }
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }
}

/// An FTS5 string: in double quotes, inner quotes doubled.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_on_whitespace_and_punctuation_only_words_are_dropped() {
        let s = TraceSearch::parse(Some("  refund  -  order#12 "), None, None);
        assert_eq!(s.words, vec!["refund", "order#12"]);
        assert!(TraceSearch::parse(Some(" - ; "), None, None).is_empty());
        assert!(TraceSearch::parse(None, Some("  "), Some("x")).is_empty());
    }

    #[test]
    fn typed_syntax_stays_words() {
        let s = TraceSearch::parse(Some("NEAR(a b) \"quoted\" star*"), None, None);
        assert_eq!(
            s.fts5_query().unwrap(),
            r#"{user_message ai_response} : ("NEAR(a" AND "b)" AND """quoted""" AND "star*")"#
        );
    }

    #[test]
    fn a_metadata_value_is_a_phrase_and_an_exact_needle() {
        let s = TraceSearch::parse(Some("late"), Some(" persona "), Some(" Power user "));
        let field = s.field.clone().unwrap();
        assert_eq!(field.column, "persona");
        assert_eq!(field.value, "Power user");
        assert_eq!(field.needle(), r#"["persona","Power user"]"#);
        assert_eq!(
            s.fts5_query().unwrap(),
            r#"{user_message ai_response} : ("late") AND metadata : "persona Power user""#
        );
    }

    #[test]
    fn the_needle_escapes_as_the_import_does() {
        let field = MetadataValue {
            column: "note".into(),
            value: "say \"hi\"\\".into(),
        };
        let stored = serde_json::to_string(&vec![("a", "b"), ("note", "say \"hi\"\\")]).unwrap();
        assert!(stored.contains(&field.needle()));
    }

    #[test]
    fn a_value_without_words_leaves_nothing_to_match_in_the_index() {
        let s = TraceSearch::parse(None, Some("--"), Some("?"));
        assert!(!s.is_empty());
        assert_eq!(s.fts5_query(), None);
    }
}
