//! What an annotator decides about one trace: verdict, note, open codes, comments.

use std::fmt;

/// Longest note or comment accepted, in characters. Longer input is refused, never cut.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest single open code, in characters.
pub const MAX_CODE_CHARS: usize = 200;
/// Most open codes on one annotation.
pub const MAX_CODES: usize = 50;

/// Pass or Fail for a whole turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    /// Reads typed input (a form field, a CSV cell): any case, surrounding spaces ignored.
    pub fn parse(raw: &str) -> Option<Verdict> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "pass" => Some(Verdict::Pass),
            "fail" => Some(Verdict::Fail),
            _ => None,
        }
    }

    /// Reads the stored form exactly; anything else is not a verdict.
    pub fn from_stored(raw: &str) -> Option<Verdict> {
        match raw {
            "pass" => Some(Verdict::Pass),
            "fail" => Some(Verdict::Fail),
            _ => None,
        }
    }

    /// The stored form (`pass` / `fail`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }

    /// The exported form (`Pass` / `Fail`).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "Pass",
            Verdict::Fail => "Fail",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The form open codes are counted by: trimmed, inner whitespace collapsed to one space,
/// lowercase ("Wrong  Tool " and "wrong tool" are one code).
pub fn normalize_code(code: &str) -> String {
    code.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Free tags, comma separated in the form; trimmed, inner whitespace collapsed,
/// de-duplicated by their normalized form (first spelling wins), in the order typed.
/// A code never contains a comma or a line break.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenCodes(Vec<String>);

impl OpenCodes {
    pub fn parse(raw: &str) -> Result<OpenCodes, String> {
        let mut codes: Vec<String> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for part in raw.split([',', '\n']) {
            let code = part.split_whitespace().collect::<Vec<_>>().join(" ");
            if code.is_empty() {
                continue;
            }
            if code.chars().count() > MAX_CODE_CHARS {
                return Err(format!(
                    "An open code is longer than {MAX_CODE_CHARS} characters; shorten it or \
                     move the detail to the comments."
                ));
            }
            let normalized = normalize_code(&code);
            if !seen.contains(&normalized) {
                seen.push(normalized);
                codes.push(code);
            }
        }
        if codes.len() > MAX_CODES {
            return Err(format!("At most {MAX_CODES} open codes per trace."));
        }
        Ok(OpenCodes(codes))
    }

    /// Codes as stored (one row each, in typed order): trusted, already parsed once.
    pub fn from_stored(codes: Vec<String>) -> OpenCodes {
        OpenCodes(codes)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored and exported form: `a, b, c`.
    pub fn joined(&self) -> String {
        self.0.join(", ")
    }
}

/// A validated save of an annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationInput {
    pub verdict: Verdict,
    pub first_failure_note: String,
    pub open_codes: OpenCodes,
    pub comments: String,
    /// The version the annotator was looking at (0 when there was none).
    pub base_version: i64,
    /// The annotator confirmed that this verdict replaces a different saved one. Without
    /// it such a save is refused and the annotator asked first (see `db::saves`).
    pub replace: bool,
}

/// Field-level problems with a submitted annotation form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnotationErrors {
    pub verdict: Option<String>,
    pub note: Option<String>,
    pub codes: Option<String>,
    pub comments: Option<String>,
}

impl AnnotationErrors {
    pub fn is_empty(&self) -> bool {
        self.verdict.is_none()
            && self.note.is_none()
            && self.codes.is_none()
            && self.comments.is_none()
    }

    /// All messages, for a summary line.
    pub fn messages(&self) -> Vec<&str> {
        [&self.verdict, &self.note, &self.codes, &self.comments]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

impl AnnotationInput {
    /// Parses raw form fields. A Fail needs a first-failure note.
    pub fn parse(
        verdict: &str,
        note: &str,
        codes: &str,
        comments: &str,
        base_version: i64,
    ) -> Result<AnnotationInput, AnnotationErrors> {
        let mut errors = AnnotationErrors::default();
        let verdict = Verdict::parse(verdict);
        if verdict.is_none() {
            errors.verdict = Some("Choose Pass or Fail.".into());
        }
        let note = note.trim().to_string();
        if verdict == Some(Verdict::Fail) && note.is_empty() {
            errors.note = Some("A Fail needs a first-failure note: what went wrong first?".into());
        } else if note.chars().count() > MAX_TEXT_CHARS {
            errors.note = Some(format!(
                "The note is longer than {MAX_TEXT_CHARS} characters."
            ));
        }
        let open_codes = OpenCodes::parse(codes).unwrap_or_else(|e| {
            errors.codes = Some(e);
            OpenCodes::default()
        });
        let comments = comments.trim().to_string();
        if comments.chars().count() > MAX_TEXT_CHARS {
            errors.comments = Some(format!(
                "The comments are longer than {MAX_TEXT_CHARS} characters."
            ));
        }
        match verdict {
            Some(verdict) if errors.is_empty() => Ok(AnnotationInput {
                verdict,
                first_failure_note: note,
                open_codes,
                comments,
                base_version: base_version.max(0),
                replace: false,
            }),
            _ => Err(errors),
        }
    }

    /// The same save, confirmed (or not) to replace a different saved verdict.
    pub fn replacing(self, replace: bool) -> AnnotationInput {
        AnnotationInput { replace, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_round_trips() {
        assert_eq!(Verdict::parse(" PASS "), Some(Verdict::Pass));
        assert_eq!(Verdict::parse("fail"), Some(Verdict::Fail));
        assert_eq!(Verdict::parse("maybe"), None);
        assert_eq!(Verdict::Fail.label(), "Fail");
    }

    #[test]
    fn open_codes_trim_dedupe_and_keep_order() {
        let c = OpenCodes::parse(" wrong tool ,hallucination,, Wrong  Tool\nlate").unwrap();
        assert_eq!(c.as_slice(), ["wrong tool", "hallucination", "late"]);
        assert_eq!(c.joined(), "wrong tool, hallucination, late");
    }

    #[test]
    fn normalized_codes_ignore_case_and_spacing_beyond_ascii() {
        assert_eq!(normalize_code("  Wrong \t Tool "), "wrong tool");
        assert_eq!(normalize_code("ÉCHEC  Outil"), "échec outil");
        let c = OpenCodes::parse("Échec, échec ,ÉCHEC").unwrap();
        assert_eq!(c.as_slice(), ["Échec"]);
    }

    #[test]
    fn stored_verdicts_are_exact() {
        assert_eq!(Verdict::from_stored("pass"), Some(Verdict::Pass));
        assert_eq!(Verdict::from_stored("Pass"), None);
        assert_eq!(Verdict::from_stored(""), None);
    }

    #[test]
    fn open_codes_refuse_too_long_input() {
        assert!(OpenCodes::parse(&"x".repeat(MAX_CODE_CHARS + 1)).is_err());
        let many = (0..=MAX_CODES)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(OpenCodes::parse(&many).is_err());
    }

    #[test]
    fn fail_needs_a_note() {
        let err = AnnotationInput::parse("fail", "  ", "", "", 0).unwrap_err();
        assert!(err.note.is_some());
        let ok = AnnotationInput::parse("fail", "wrong date", "dates", "why?", 3).unwrap();
        assert_eq!(ok.first_failure_note, "wrong date");
        assert_eq!(ok.base_version, 3);
    }

    #[test]
    fn pass_needs_no_note_and_unknown_verdicts_are_refused() {
        assert!(AnnotationInput::parse("pass", "", "", "", 0).is_ok());
        assert!(
            AnnotationInput::parse("", "", "", "", 0)
                .unwrap_err()
                .verdict
                .is_some()
        );
    }
}
