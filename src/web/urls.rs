//! The app's own URLs, built in one place (trace ids percent-encoded).

/// A trace's own URL.
pub fn trace(slug: &str, trace_id: &str) -> String {
    format!("/d/{slug}/t/{}", path_segment(trace_id))
}

/// A dataset's trace list.
pub fn list(slug: &str) -> String {
    format!("/d/{slug}/traces")
}

/// Skip: the next unannotated trace after this one.
pub fn skip(slug: &str, trace_id: &str) -> String {
    format!("/d/{slug}/next?after={}", path_segment(trace_id))
}

/// Undo the viewer's last decision in a dataset.
pub fn undo(slug: &str) -> String {
    format!("/d/{slug}/undo")
}

/// The viewer's skipped traces, to review them.
pub fn skipped(slug: &str) -> String {
    format!("/d/{slug}/skipped")
}

/// Where entering a dataset starts.
pub fn next(slug: &str) -> String {
    format!("/d/{slug}/next")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_urls_encode_reserved_characters() {
        assert_eq!(trace("ds", "a b/c?d"), "/d/ds/t/a%20b%2Fc%3Fd");
        assert_eq!(trace("ds", "conv_1-2.x~"), "/d/ds/t/conv_1-2.x~");
        assert_eq!(skip("ds", "a&b"), "/d/ds/next?after=a%26b");
    }
}
