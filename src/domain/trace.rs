//! A trace as imported: the row the CSV parser produces, and its metadata columns.

use serde::{Deserialize, Serialize};

/// A trace ready to insert. The JSON fields are serialised already (on the parser's thread,
/// so the database side only binds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrace {
    /// The file line the row starts on, for error reports.
    pub line: u64,
    pub trace_id: String,
    pub flow_session: String,
    pub turn_number: i64,
    pub total_turns: Option<i64>,
    pub user_message: String,
    pub ai_response: String,
    /// JSON array of [`super::ToolCall`].
    pub tool_calls: String,
    /// How many tool calls `tool_calls` holds (for the import's summary).
    pub tool_call_count: i64,
    /// JSON of [`Metadata`].
    pub metadata: String,
}

/// The columns of a trace that are not trace fields: `(column name, value)` in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(pub Vec<(String, String)>);

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of column `name`, if the trace has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Takes the value of column `name` out (export hands each value on once).
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::mem::take(v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_as_pairs_in_order() {
        let m = Metadata(vec![
            ("model".into(), "gpt".into()),
            ("cost".into(), "1".into()),
        ]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"[["model","gpt"],["cost","1"]]"#);
        let mut back: Metadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get("cost"), Some("1"));
        assert_eq!(back.take("model").as_deref(), Some("gpt"));
        assert_eq!(back.get("model"), Some(""));
        assert_eq!(back.get("nope"), None);
    }
}
