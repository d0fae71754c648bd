//! CSV rows to traces: header mapping (canonical names and BotDojo aliases) and per-row
//! validation with line numbers.

use crate::domain::order::MAX_TURN;
use crate::domain::{NewTrace, RowError, tool_calls};

/// Longest trace id accepted.
const MAX_TRACE_ID_CHARS: usize = 512;

/// Which column feeds which trace field. Every other column is metadata, in file order.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    pub headers: Vec<String>,
    trace_id: Option<usize>,
    flow_session: usize,
    turn_number: usize,
    total_turns: Option<usize>,
    user_message: usize,
    ai_response: usize,
    ai_message: Option<usize>,
    metadata: Vec<usize>,
}

/// The trace fields a column can feed; every other column is metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceField {
    TraceId,
    FlowSession,
    TurnNumber,
    TotalTurns,
    UserMessage,
    AiResponse,
}

/// A field, its canonical name and the aliases accepted for it.
struct Field {
    canonical: &'static str,
    aliases: &'static [&'static str],
}

const TRACE_ID: Field = Field {
    canonical: "trace_id",
    aliases: &["id"],
};
const FLOW_SESSION: Field = Field {
    canonical: "flow_session",
    aliases: &["Flow Session"],
};
const TURN_NUMBER: Field = Field {
    canonical: "turn_number",
    aliases: &["Turn_Number"],
};
const TOTAL_TURNS: Field = Field {
    canonical: "total_turns",
    aliases: &["Total_Turns_in_Session"],
};
const USER_MESSAGE: Field = Field {
    canonical: "user_message",
    aliases: &["body.user_message"],
};
const AI_RESPONSE: Field = Field {
    canonical: "ai_response",
    aliases: &["response.text_output"],
};
const AI_MESSAGE: &str = "AI Message";

impl Field {
    /// The column for this field: the canonical name wins over an alias.
    fn find(&self, headers: &[String]) -> Option<usize> {
        let norm = |h: &str| h.trim().to_ascii_lowercase();
        headers
            .iter()
            .position(|h| norm(h) == self.canonical)
            .or_else(|| {
                headers.iter().position(|h| {
                    self.aliases
                        .iter()
                        .any(|a| norm(h) == a.to_ascii_lowercase())
                })
            })
    }

    fn describe(&self) -> String {
        format!("{} (or {})", self.canonical, self.aliases.join(", "))
    }
}

impl ColumnMap {
    /// Maps a header row. Refuses missing required columns and repeated column names.
    pub fn from_headers(mut headers: Vec<String>) -> Result<ColumnMap, String> {
        if let Some(first) = headers.first_mut() {
            *first = first.trim_start_matches('\u{feff}').to_string();
        }
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err("The first line has no column names.".into());
        }
        for (i, h) in headers.iter().enumerate() {
            if headers[..i]
                .iter()
                .any(|earlier| earlier.trim() == h.trim())
            {
                return Err(format!(
                    "The column \"{}\" appears twice in the header.",
                    h.trim()
                ));
            }
        }
        let required = [&FLOW_SESSION, &TURN_NUMBER, &USER_MESSAGE, &AI_RESPONSE];
        let missing: Vec<String> = required
            .iter()
            .filter(|f| f.find(&headers).is_none())
            .map(|f| f.describe())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Missing required column{}: {}. The header has: {}.",
                if missing.len() > 1 { "s" } else { "" },
                missing.join("; "),
                headers
                    .iter()
                    .map(|h| format!("\"{}\"", h.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let (flow_session, turn_number, user_message, ai_response) = (
            FLOW_SESSION.find(&headers).unwrap_or_default(),
            TURN_NUMBER.find(&headers).unwrap_or_default(),
            USER_MESSAGE.find(&headers).unwrap_or_default(),
            AI_RESPONSE.find(&headers).unwrap_or_default(),
        );
        let trace_id = TRACE_ID.find(&headers);
        let total_turns = TOTAL_TURNS.find(&headers);
        let ai_message = headers.iter().position(|h| h.trim() == AI_MESSAGE);
        let mapped = [
            Some(flow_session),
            Some(turn_number),
            Some(user_message),
            Some(ai_response),
            trace_id,
            total_turns,
        ];
        let metadata = (0..headers.len())
            .filter(|i| !mapped.contains(&Some(*i)))
            .collect();
        Ok(ColumnMap {
            headers,
            trace_id,
            flow_session,
            turn_number,
            total_turns,
            user_message,
            ai_response,
            ai_message,
            metadata,
        })
    }

    /// How many columns are kept as metadata (everything that is not a trace field).
    pub fn metadata_count(&self) -> usize {
        self.metadata.len()
    }

    /// The header names, trimmed, in file order (stored on the dataset for export).
    pub fn column_names(&self) -> Vec<String> {
        self.headers.iter().map(|h| h.trim().to_string()).collect()
    }

    /// Which trace field an original column feeds (for export); `None` for metadata.
    pub fn field_of(&self, index: usize) -> Option<TraceField> {
        [
            (Some(self.flow_session), TraceField::FlowSession),
            (Some(self.turn_number), TraceField::TurnNumber),
            (Some(self.user_message), TraceField::UserMessage),
            (Some(self.ai_response), TraceField::AiResponse),
            (self.trace_id, TraceField::TraceId),
            (self.total_turns, TraceField::TotalTurns),
        ]
        .into_iter()
        .find(|(i, _)| *i == Some(index))
        .map(|(_, field)| field)
    }

    /// Turns one record into a trace, or says what is wrong with it.
    pub fn parse(&self, record: &csv::ByteRecord, line: u64) -> Result<NewTrace, RowError> {
        // Postgres cannot store a NUL character in text, and SQLite's text functions stop at
        // one: refused on both, so a file imports the same everywhere.
        if record.as_slice().contains(&0) {
            let i = record.iter().position(|f| f.contains(&0)).unwrap_or(0);
            return Err(RowError {
                line,
                column: self.headers[i].trim().to_string(),
                reason: "the text contains a NUL character (byte 0), which cannot be stored; \
                         remove it from the file"
                    .into(),
            });
        }
        let text = |i: usize| -> Result<&str, RowError> {
            std::str::from_utf8(record.get(i).unwrap_or_default()).map_err(|e| RowError {
                line,
                column: self.headers[i].trim().to_string(),
                reason: format!(
                    "the text is not valid UTF-8 (bad byte at position {}); save the file as UTF-8",
                    e.valid_up_to() + 1
                ),
            })
        };
        let err = |i: usize, reason: String| RowError {
            line,
            column: self.headers[i].trim().to_string(),
            reason,
        };

        let flow_session = text(self.flow_session)?.trim().to_string();
        if flow_session.is_empty() {
            return Err(err(
                self.flow_session,
                "the conversation id is empty".into(),
            ));
        }
        let turn_raw = text(self.turn_number)?.trim();
        let turn_number = parse_whole_number(turn_raw).ok_or_else(|| {
            err(
                self.turn_number,
                format!("\"{}\" is not a whole number", clip(turn_raw)),
            )
        })?;
        if !(0..=MAX_TURN).contains(&turn_number) {
            return Err(err(
                self.turn_number,
                format!("{turn_number} is outside 0..={MAX_TURN}"),
            ));
        }
        let total_turns = match self.total_turns {
            None => None,
            Some(i) => {
                let raw = text(i)?.trim();
                if raw.is_empty() {
                    None
                } else {
                    Some(parse_whole_number(raw).filter(|n| *n >= 0).ok_or_else(|| {
                        err(i, format!("\"{}\" is not a whole number", clip(raw)))
                    })?)
                }
            }
        };
        let trace_id = match self.trace_id {
            Some(i) => {
                let raw = text(i)?.trim();
                if raw.is_empty() {
                    format!("{flow_session}_{turn_number}")
                } else {
                    raw.to_string()
                }
            }
            None => format!("{flow_session}_{turn_number}"),
        };
        if let Some(reason) = unaddressable(&trace_id) {
            let column = self
                .trace_id
                .map(|i| self.headers[i].trim().to_string())
                .unwrap_or_else(|| "trace_id".into());
            return Err(RowError {
                line,
                column,
                reason,
            });
        }
        let user_message = text(self.user_message)?.to_string();
        let ai_response = text(self.ai_response)?.to_string();
        // Borrowed pairs serialise to the same JSON as `Metadata` without a copy per cell.
        let mut metadata: Vec<(&str, &str)> = Vec::with_capacity(self.metadata.len());
        for &i in &self.metadata {
            metadata.push((self.headers[i].trim(), text(i)?));
        }
        let tool_calls = match self.ai_message {
            Some(i) => tool_calls::parse_ai_message(text(i)?),
            None => Vec::new(),
        };
        Ok(NewTrace {
            line,
            trace_id,
            flow_session,
            turn_number,
            total_turns,
            user_message,
            ai_response,
            tool_call_count: tool_calls.len() as i64,
            tool_calls: serde_json::to_string(&tool_calls).unwrap_or_else(|_| "[]".into()),
            metadata: serde_json::to_string(&metadata).unwrap_or_else(|_| "[]".into()),
        })
    }
}

/// Why a trace id cannot be a trace's address (`/d/{dataset}/t/{trace_id}`), if it cannot.
/// Browsers resolve `.` and `..` as path steps (encoded or not, per the URL standard), so
/// such a trace could never be opened; control characters (line breaks, tabs, escapes) would
/// be invisible in the list and in links.
fn unaddressable(trace_id: &str) -> Option<String> {
    if trace_id == "." || trace_id == ".." {
        return Some(format!(
            "\"{trace_id}\" cannot be a trace id: browsers read it as a step in the address, so \
             the trace could never be opened; rename it"
        ));
    }
    if let Some(c) = trace_id.chars().find(|c| c.is_control()) {
        return Some(format!(
            "the trace id contains the control character U+{:04X}; trace ids must be visible text",
            c as u32
        ));
    }
    if trace_id.chars().count() > MAX_TRACE_ID_CHARS {
        return Some(format!(
            "the trace id is longer than {MAX_TRACE_ID_CHARS} characters"
        ));
    }
    None
}

/// Accepts `7`, ` 7 `, `7.0` (spreadsheets write whole numbers that way).
fn parse_whole_number(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().or_else(|| {
        let f = raw.parse::<f64>().ok()?;
        (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
    })
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Describes a CSV syntax error for a person.
pub fn describe_csv_error(err: &csv::Error, expected_fields: usize) -> RowError {
    let line = err.position().map(|p| p.line()).unwrap_or(0);
    let reason = match err.kind() {
        csv::ErrorKind::UnequalLengths { len, .. } => format!(
            "this row has {len} fields but the header has {expected_fields}; a quote that is \
             never closed, or an unquoted comma, usually causes this"
        ),
        csv::ErrorKind::Utf8 { err, .. } => format!("the text is not valid UTF-8 ({err})"),
        csv::ErrorKind::Io(e) => format!("the file could not be read: {e}"),
        _ => "the row is not valid CSV".to_string(),
    };
    RowError {
        line,
        column: String::new(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn canonical_columns_map_and_the_rest_is_metadata_in_order() {
        let map = ColumnMap::from_headers(headers(&[
            "\u{feff}trace_id",
            "model",
            "flow_session",
            "turn_number",
            "user_message",
            "ai_response",
            "cost",
        ]))
        .unwrap();
        let rec = csv::ByteRecord::from(vec!["t1", "gpt", "s1", "2", "hi", "hello", "0.1"]);
        let t = map.parse(&rec, 2).unwrap();
        assert_eq!(t.trace_id, "t1");
        assert_eq!(t.turn_number, 2);
        assert_eq!(t.total_turns, None);
        assert_eq!(t.metadata, r#"[["model","gpt"],["cost","0.1"]]"#);
        assert_eq!(map.field_of(0), Some(TraceField::TraceId));
        assert_eq!(map.field_of(1), None);
    }

    #[test]
    fn botdojo_aliases_map() {
        let map = ColumnMap::from_headers(headers(&[
            "id",
            "Flow Session",
            "Turn_Number",
            "Total_Turns_in_Session",
            "body.user_message",
            "response.text_output",
            "AI Message",
        ]))
        .unwrap();
        let ai =
            r#"{"steps":[{"type":"tool","stepLabel":"lookup","arguments":{},"content":"ok"}]}"#;
        let rec = csv::ByteRecord::from(vec!["x9", "sess", "1", "3", "q", "a", ai]);
        let t = map.parse(&rec, 2).unwrap();
        assert_eq!((t.trace_id.as_str(), t.total_turns), ("x9", Some(3)));
        assert!(t.tool_calls.contains("lookup"));
        assert!(t.metadata.contains("AI Message"));
    }

    #[test]
    fn missing_trace_id_is_derived() {
        let map = ColumnMap::from_headers(headers(&[
            "flow_session",
            "turn_number",
            "user_message",
            "ai_response",
        ]))
        .unwrap();
        let t = map
            .parse(&csv::ByteRecord::from(vec!["s", "4.0", "", ""]), 2)
            .unwrap();
        assert_eq!(t.trace_id, "s_4");
    }

    #[test]
    fn missing_columns_are_named() {
        let err = ColumnMap::from_headers(headers(&["flow_session", "user_message"])).unwrap_err();
        assert!(
            err.contains("turn_number") && err.contains("ai_response"),
            "{err}"
        );
    }

    #[test]
    fn repeated_columns_are_refused() {
        assert!(ColumnMap::from_headers(headers(&["a", "a"])).is_err());
    }

    #[test]
    fn trace_ids_that_cannot_be_addresses_are_refused() {
        let map = ColumnMap::from_headers(headers(&[
            "trace_id",
            "flow_session",
            "turn_number",
            "user_message",
            "ai_response",
        ]))
        .unwrap();
        for bad in [
            ".",
            "..",
            " .. ",
            "a\tb",
            "a\nb",
            "\u{1b}[2J",
            "x\u{85}y",
            "\u{7f}",
        ] {
            let e = map
                .parse(&csv::ByteRecord::from(vec![bad, "s", "1", "", ""]), 3)
                .unwrap_err();
            assert_eq!((e.line, e.column.as_str()), (3, "trace_id"), "{bad:?}");
        }
        for ok in ["...", ".a", "a.", "%2e", "%2E%2E", "a/b", "a\\b", "?#"] {
            let t = map.parse(&csv::ByteRecord::from(vec![ok, "s", "1", "", ""]), 3);
            assert_eq!(t.map(|t| t.trace_id), Ok(ok.to_string()), "{ok:?}");
        }
        // A derived id inherits a control character from the conversation id.
        let e = map
            .parse(&csv::ByteRecord::from(vec!["", "s\u{7}", "1", "", ""]), 4)
            .unwrap_err();
        assert!(e.reason.contains("U+0007"), "{e:?}");
    }

    #[test]
    fn nul_characters_are_refused_in_any_column() {
        let map = ColumnMap::from_headers(headers(&[
            "flow_session",
            "turn_number",
            "user_message",
            "ai_response",
            "extra",
        ]))
        .unwrap();
        let e = map
            .parse(&csv::ByteRecord::from(vec!["s", "1", "a", "b", "x\0y"]), 5)
            .unwrap_err();
        assert_eq!((e.line, e.column.as_str()), (5, "extra"));
        assert!(e.reason.contains("NUL"));
    }

    #[test]
    fn bad_rows_name_line_column_and_reason() {
        let map = ColumnMap::from_headers(headers(&[
            "flow_session",
            "turn_number",
            "user_message",
            "ai_response",
        ]))
        .unwrap();
        let e = map
            .parse(&csv::ByteRecord::from(vec!["s", "three", "", ""]), 7)
            .unwrap_err();
        assert_eq!((e.line, e.column.as_str()), (7, "turn_number"));
        assert!(e.reason.contains("three"));
        let bad = csv::ByteRecord::from(vec![&b"s"[..], b"1", b"\xff\xfe", b""]);
        let e = map.parse(&bad, 9).unwrap_err();
        assert_eq!(e.column, "user_message");
        assert!(e.reason.contains("UTF-8"));
    }
}
