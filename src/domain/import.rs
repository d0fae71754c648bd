//! What an import is and reports: its state, and what is wrong with a row.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an import stands. Traces of an import that is not `Done` are invisible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportState {
    Running,
    Done,
    Failed,
}

impl ImportState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Running => "running",
            ImportState::Done => "done",
            ImportState::Failed => "failed",
        }
    }

    /// Reads the stored form; anything else is not a state.
    pub fn from_stored(raw: &str) -> Option<ImportState> {
        match raw {
            "running" => Some(ImportState::Running),
            "done" => Some(ImportState::Done),
            "failed" => Some(ImportState::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for ImportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with one row: the file line it starts on, the column, the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_nothing_else_parses() {
        for s in [ImportState::Running, ImportState::Done, ImportState::Failed] {
            assert_eq!(ImportState::from_stored(s.as_str()), Some(s));
        }
        assert_eq!(ImportState::from_stored("Done"), None);
        assert_eq!(ImportState::from_stored(""), None);
    }
}
