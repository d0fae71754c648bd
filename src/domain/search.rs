//! A trace-list search as typed: words to find in the messages and an exact metadata value,
//! and the SQLite FTS5 query that finds the words.

/// What the trace list is searched for. Empty when nothing searchable was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceSearch {
    /// Words the user message or the AI response must all hold (any order, whole words,
    /// case and accents ignored). Words without a letter or digit are dropped: they hold no
    /// word to find.
    pub words: Vec<String>,
    /// A metadata column and the exact value it must hold (probed on the walk of the list,
    /// see [`MetadataValue::needle`]).
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

    /// The FTS5 query: every letter-and-digit run of the words as a quoted string, all of
    /// them required. Quoted, whatever a user typed (`AND`, `NEAR`, `*`, quotes) is a word,
    /// not syntax; split into runs as the index's tokenizer splits text, so no string holds
    /// two tokens (a phrase, which a `detail=none` index cannot answer): `order#12` is
    /// `"order" AND "12"`. `None` without words.
    pub fn fts5_query(&self) -> Option<String> {
        let tokens: Vec<String> = self
            .words
            .iter()
            .flat_map(|w| w.split(|c: char| !c.is_alphanumeric()))
            .filter(|t| !t.is_empty())
            .map(quoted)
            .collect();
        (!tokens.is_empty()).then(|| tokens.join(" AND "))
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
    fn typed_syntax_stays_words_split_as_the_tokenizer_splits() {
        let s = TraceSearch::parse(Some("NEAR(a b) \"quoted\" star* order#12 café"), None, None);
        assert_eq!(
            s.fts5_query().unwrap(),
            r#""NEAR" AND "a" AND "b" AND "quoted" AND "star" AND "order" AND "12" AND "café""#
        );
        assert_eq!(
            TraceSearch::parse(None, Some("persona"), None).fts5_query(),
            None
        );
    }

    #[test]
    fn a_metadata_value_is_an_exact_needle() {
        let s = TraceSearch::parse(Some("late"), Some(" persona "), Some(" Power user "));
        let field = s.field.clone().unwrap();
        assert_eq!(field.column, "persona");
        assert_eq!(field.value, "Power user");
        assert_eq!(field.needle(), r#"["persona","Power user"]"#);
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
}
