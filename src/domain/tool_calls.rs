//! Tool calls recovered from a BotDojo `AI Message` cell (`steps[]` with `"type": "tool"`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One tool call as shown on a card: name, arguments, result, duration, outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// Arguments as pretty JSON (or the raw text when they were not JSON).
    pub arguments: String,
    /// The tool's result as text (pretty JSON when it was JSON).
    pub result: String,
    /// Wall time between `startTime` and `endTime`, when both parse.
    pub duration_ms: Option<i64>,
    /// False when the step carries an error or a failed status.
    pub ok: bool,
}

/// Extracts the tool calls of an `AI Message` cell. Anything that is not JSON, or has no
/// `steps`, yields no tool calls: the cell stays in the metadata as it was.
pub fn parse_ai_message(cell: &str) -> Vec<ToolCall> {
    let trimmed = cell.trim();
    if !trimmed.starts_with('{') {
        return Vec::new();
    }
    let Ok(root) = serde_json::from_str::<Value>(trimmed) else {
        return Vec::new();
    };
    let Some(steps) = root.get("steps").and_then(Value::as_array) else {
        return Vec::new();
    };
    steps
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("tool"))
        .map(tool_call_from_step)
        .collect()
}

fn tool_call_from_step(step: &Value) -> ToolCall {
    let name = step
        .get("stepLabel")
        .or_else(|| step.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("tool")
        .to_string();
    let failed_status = step.get("status").and_then(Value::as_str).is_some_and(|s| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "error" | "failed" | "failure"
        )
    });
    let has_error = step
        .get("error")
        .is_some_and(|e| !e.is_null() && e != &Value::Bool(false) && e.as_str() != Some(""));
    ToolCall {
        name,
        arguments: display_json(step.get("arguments")),
        result: display_json(step.get("content").or_else(|| step.get("result"))),
        duration_ms: duration_ms(step.get("startTime"), step.get("endTime")),
        ok: !(failed_status || has_error),
    }
}

/// Longest `AI Message` cell read for its thinking steps at view time, in bytes (the cell
/// stays in the metadata whatever its size).
pub const MAX_THINKING_CELL: usize = 1_000_000;

/// The text of the "thinking" steps of an `AI Message` cell (`"type": "thinking"`, or a
/// `stepLabel` of Thinking), in order, empty ones left out: shown collapsed on the trace.
pub fn thinking_steps(cell: &str) -> Vec<String> {
    let trimmed = cell.trim();
    if !trimmed.starts_with('{') || trimmed.len() > MAX_THINKING_CELL {
        return Vec::new();
    }
    let Ok(root) = serde_json::from_str::<Value>(trimmed) else {
        return Vec::new();
    };
    let Some(steps) = root.get("steps").and_then(Value::as_array) else {
        return Vec::new();
    };
    steps
        .iter()
        .filter(|s| {
            let is = |key: &str| {
                s.get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case("thinking"))
            };
            is("type") || is("stepLabel")
        })
        .map(|s| display_json(s.get("content")))
        .filter(|text| !text.trim().is_empty())
        .collect()
}

/// Strings that hold JSON are shown pretty-printed; other strings as they are.
fn display_json(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => {
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| s.clone())
            }
            _ => s.clone(),
        },
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
    }
}

/// Accepts RFC 3339 strings or epoch milliseconds (number or numeric string).
fn timestamp_ms(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
            time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        }),
        _ => None,
    }
}

fn duration_ms(start: Option<&Value>, end: Option<&Value>) -> Option<i64> {
    let (s, e) = (timestamp_ms(start)?, timestamp_ms(end)?);
    (e >= s).then_some(e - s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tool_steps_and_skips_thinking_and_output() {
        let cell = r#"{"steps":[
            {"type":"thinking","stepLabel":"Thinking","content":"hmm"},
            {"type":"tool","stepLabel":"search_orders","arguments":{"order":"A1"},
             "content":"{\"status\":\"shipped\"}","startTime":"2026-01-01T10:00:00Z",
             "endTime":"2026-01-01T10:00:01.250Z"},
            {"type":"tool","stepLabel":"refund","arguments":"{\"amount\":5}","content":"boom",
             "error":"timeout","startTime":1000,"endTime":1300},
            {"type":"output","stepLabel":"Output","content":"done"}]}"#;
        let calls = parse_ai_message(cell);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "search_orders");
        assert!(calls[0].arguments.contains("\"order\": \"A1\""));
        assert!(calls[0].result.contains("\"status\": \"shipped\""));
        assert_eq!(calls[0].duration_ms, Some(1250));
        assert!(calls[0].ok);
        assert_eq!(calls[1].name, "refund");
        assert_eq!(calls[1].duration_ms, Some(300));
        assert!(!calls[1].ok);
    }

    #[test]
    fn thinking_steps_are_found_in_order() {
        let cell = r#"{"steps":[
            {"type":"thinking","stepLabel":"Thinking","content":"first"},
            {"type":"tool","stepLabel":"x","content":"r"},
            {"type":"step","stepLabel":"THINKING","content":"second"},
            {"type":"thinking","content":"  "},
            {"type":"output","stepLabel":"Output","content":"done"}]}"#;
        assert_eq!(thinking_steps(cell), ["first", "second"]);
        assert!(thinking_steps("plain").is_empty());
    }

    #[test]
    fn non_json_cells_have_no_tool_calls() {
        assert!(parse_ai_message("just text").is_empty());
        assert!(parse_ai_message("{not json").is_empty());
        assert!(parse_ai_message(r#"{"other":1}"#).is_empty());
    }
}
