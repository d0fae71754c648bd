//! Exporting coded data as CSV or JSONL: one row per (trace × annotator), the trace's
//! original columns first, produced in bounded batches so memory stays flat at any size.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::FromRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::Db;
use crate::db::datasets::Dataset;
use crate::domain::Verdict;
use crate::import::csv_rows::ColumnMap;

/// Traces per page when unannotated traces are exported too.
const PAGE_TRACES: i64 = 500;
/// Annotations per query. Rows are bounded by annotations, not by traces: one trace coded by
/// hundreds of annotators must not make a page hold hundreds of thousands of rows.
const PAGE_ANNOTATIONS: i64 = 1000;

/// The annotation columns appended after the trace's own columns.
pub const ANNOTATION_COLUMNS: [&str; 9] = [
    "annotator_email",
    "annotator_name",
    "holistic_pass_fail",
    "first_failure_note",
    "open_codes",
    "comments_hypotheses",
    "annotation_version",
    "annotation_created_at",
    "annotation_updated_at",
];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: Format,
    /// Only this annotator's annotations (annotators); `None` = everyone's (admins).
    pub only_user: Option<i64>,
    /// Also emit traces nobody (in scope) annotated, with empty annotation columns.
    pub include_unannotated: bool,
    /// CSV: write every cell exactly as stored. Otherwise a cell that a spreadsheet would run
    /// as a formula gets a leading `'` (see [`neutralize`]). JSONL is always exact.
    pub raw: bool,
}

/// A CSV cell a spreadsheet will not run as a formula: one starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return gets a leading `'` (OWASP's advice on CSV injection). Spreadsheets
/// show the text; tools reading the file see the `'`, so exports meant for re-import or
/// scripts use the raw option.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// The output names of the dataset's own columns, as `cell` writes them, made unique: a name
/// already taken by an annotation column (a re-imported export has `open_codes` of its own)
/// or by an earlier column becomes `source_{name}`, or `source_{name}_2`, `_3`… if that is
/// taken too. Columns that clash with nothing keep their names.
pub fn output_columns<'a>(
    columns: &'a [String],
    cell: impl Fn(&'a str) -> Cow<'a, str>,
) -> Vec<String> {
    let written: Vec<String> = columns.iter().map(|c| cell(c).into_owned()).collect();
    let mut taken: std::collections::HashSet<String> = ANNOTATION_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(written.iter().cloned())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(written.len());
    for name in written {
        if !ANNOTATION_COLUMNS.contains(&name.as_str()) && seen.insert(name.clone()) {
            out.push(name);
            continue;
        }
        let mut candidate = format!("source_{name}");
        let mut n = 2;
        while taken.contains(&candidate) {
            candidate = format!("source_{name}_{n}");
            n += 1;
        }
        taken.insert(candidate.clone());
        seen.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

/// A trace's stored fields.
#[derive(Debug, FromRow)]
struct TraceRow {
    sort_key: i64,
    trace_id: String,
    flow_session: String,
    turn_number: i64,
    total_turns: Option<i64>,
    user_message: String,
    ai_response: String,
    metadata: String,
}

/// An annotation in scope, with its annotator.
#[derive(Debug, FromRow)]
struct AnnotationRow {
    #[sqlx(rename = "annotation_sort_key")]
    sort_key: i64,
    annotation_id: i64,
    email: String,
    name: String,
    verdict: String,
    first_failure_note: String,
    open_codes: String,
    comments: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// An annotation walk's row: the annotation joined with its trace.
#[derive(Debug, FromRow)]
struct JoinedRow {
    #[sqlx(flatten)]
    trace: TraceRow,
    #[sqlx(flatten)]
    annotation: AnnotationRow,
}

/// A trace's original column values, in the dataset's column order, resolved once per trace.
struct ResolvedTrace {
    sort_key: i64,
    values: Vec<Option<String>>,
}

/// The walk over traces (`include_unannotated`): a page of traces, and how far the
/// annotations inside its sort-key range have been written.
struct TracePage {
    traces: Vec<ResolvedTrace>,
    /// The first trace not yet finished.
    cursor: usize,
    /// Whether the trace at `cursor` has had an annotation row written.
    cursor_annotated: bool,
    /// Keyset of the last annotation written: (sort_key, id).
    annotations_after: (i64, i64),
}

/// Produces the export in chunks: the header with the first rows, then one chunk per batch.
pub struct Exporter {
    db: Db,
    dataset_id: i64,
    columns: Vec<String>,
    /// For each original column, the trace field it came from (None = metadata).
    fields: Vec<Option<&'static str>>,
    /// The CSV header: the columns' output names, then the annotation columns.
    csv_header: Vec<String>,
    /// JSONL keys (the columns' output names, then the annotation columns), JSON-encoded
    /// with a colon.
    json_keys: Arc<[String]>,
    options: ExportOptions,
    /// Keyset of the walk: the last trace sort key paged (trace walk) or the last
    /// annotation written (annotation walk).
    after: (i64, i64),
    page: Option<TracePage>,
    started: bool,
    finished: bool,
    pub rows_written: u64,
}

/// The SQL condition keeping traces of imports still running (or failed) out of the export.
const VISIBLE: &str = "t.import_id NOT IN \
    (SELECT i.id FROM imports i WHERE i.dataset_id = $1 AND i.state <> 'done')";

const TRACE_COLUMNS: &str = "t.sort_key, t.trace_id, t.flow_session, t.turn_number, \
    t.total_turns, t.user_message, t.ai_response, t.metadata";

const ANNOTATION_SELECT: &str = "a.sort_key AS annotation_sort_key, a.id AS annotation_id, u.email, u.name, \
    a.verdict, a.first_failure_note, a.open_codes, a.comments, a.version, a.created_at, \
    a.updated_at";

impl Exporter {
    pub fn new(db: Db, dataset: &Dataset, options: ExportOptions) -> Exporter {
        let columns = dataset.column_names();
        let fields = match ColumnMap::from_headers(columns.clone()) {
            Ok(map) => (0..columns.len()).map(|i| map.field_of(i)).collect(),
            Err(_) => vec![None; columns.len()],
        };
        let csv_header = if options.raw {
            output_columns(&columns, Cow::Borrowed)
        } else {
            output_columns(&columns, neutralize)
        }
        .into_iter()
        .chain(ANNOTATION_COLUMNS.map(String::from))
        .collect();
        let json_keys = output_columns(&columns, Cow::Borrowed)
            .iter()
            .map(String::as_str)
            .chain(ANNOTATION_COLUMNS)
            .map(|key| format!("{}:", serde_json::Value::from(key)))
            .collect();
        Exporter {
            db,
            dataset_id: dataset.id,
            columns,
            fields,
            csv_header,
            json_keys,
            options,
            after: (0, 0),
            page: None,
            started: false,
            finished: false,
            rows_written: 0,
        }
    }

    /// The next chunk of output, or `None` at the end. The first chunk holds the CSV header
    /// and the first rows, so a database error surfaces before any byte is sent.
    pub async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity(64 * 1024);
        if !self.started {
            self.started = true;
            if self.options.format == Format::Csv {
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(&self.csv_header)?;
                w.flush()?;
            }
        }
        let mut sink = Sink::new(
            self.options.format,
            !self.options.raw,
            self.json_keys.clone(),
            out,
        );
        while !self.finished && sink.rows == 0 {
            if self.options.include_unannotated {
                self.trace_walk_step(&mut sink).await?;
            } else {
                self.annotation_walk_step(&mut sink).await?;
            }
        }
        self.rows_written += sink.rows;
        let out = sink.finish()?;
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    /// Every trace, with each of its annotations in scope or one row with empty annotation
    /// columns: a keyset page of traces, then its annotations in bounded batches.
    async fn trace_walk_step(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        let mut page = match self.page.take() {
            Some(page) => page,
            None => {
                let traces = self.trace_page().await?;
                let Some(last) = traces.last() else {
                    self.finished = true;
                    return Ok(());
                };
                self.after = (last.sort_key, 0);
                let first = traces[0].sort_key;
                TracePage {
                    traces: traces.iter().map(|t| self.resolve(t)).collect(),
                    cursor: 0,
                    cursor_annotated: false,
                    annotations_after: (first - 1, i64::MAX),
                }
            }
        };
        let last_key = page.traces.last().map_or(0, |t| t.sort_key);
        let annotations = self
            .annotations_in_range(page.annotations_after, last_key)
            .await?;
        for annotation in &annotations {
            while page.cursor < page.traces.len()
                && page.traces[page.cursor].sort_key < annotation.sort_key
            {
                if !page.cursor_annotated {
                    sink.row(&page.traces[page.cursor].values, None)?;
                }
                page.cursor += 1;
                page.cursor_annotated = false;
            }
            if let Some(trace) = page.traces.get(page.cursor)
                && trace.sort_key == annotation.sort_key
            {
                sink.row(&trace.values, Some(annotation))?;
                page.cursor_annotated = true;
            }
            page.annotations_after = (annotation.sort_key, annotation.annotation_id);
        }
        if annotations.len() as i64 == PAGE_ANNOTATIONS {
            self.page = Some(page); // more annotations inside this page
            return Ok(());
        }
        for trace in &page.traces[page.cursor..] {
            if !page.cursor_annotated {
                sink.row(&trace.values, None)?;
            }
            page.cursor_annotated = false;
        }
        Ok(())
    }

    /// Annotated rows only: a keyset walk of the annotations in scope, each joined with its
    /// trace (by the `(dataset_id, sort_key)` or `(user_id, dataset_id, sort_key)` index).
    async fn annotation_walk_step(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        let user_filter = self.user_filter();
        let sql = format!(
            "SELECT {TRACE_COLUMNS}, {ANNOTATION_SELECT}
             FROM annotations a
             JOIN traces t ON t.id = a.trace_pk
             JOIN users u ON u.id = a.user_id
             WHERE a.dataset_id = $1 AND a.sort_key >= $2 AND (a.sort_key > $2 OR a.id > $3)
               {user_filter} AND {VISIBLE}
             ORDER BY a.sort_key, a.id
             LIMIT {PAGE_ANNOTATIONS}"
        );
        let rows: Vec<JoinedRow> = sqlx::query_as(&sql)
            .bind(self.dataset_id)
            .bind(self.after.0)
            .bind(self.after.1)
            .bind(self.options.only_user.unwrap_or(0))
            .fetch_all(self.db.reader())
            .await?;
        if (rows.len() as i64) < PAGE_ANNOTATIONS {
            self.finished = true;
        }
        // Consecutive rows of one trace share its resolved values.
        let mut current: Option<ResolvedTrace> = None;
        for row in &rows {
            let trace = match current.take() {
                Some(trace) if trace.sort_key == row.trace.sort_key => trace,
                _ => self.resolve(&row.trace),
            };
            sink.row(&trace.values, Some(&row.annotation))?;
            current = Some(trace);
            self.after = (row.annotation.sort_key, row.annotation.annotation_id);
        }
        Ok(())
    }

    /// The scope condition (bound as `$4`; a tautology for admins so the statement text and
    /// its parameters stay the same).
    fn user_filter(&self) -> &'static str {
        if self.options.only_user.is_some() {
            "AND a.user_id = $4"
        } else {
            "AND $4 = $4"
        }
    }

    /// The next keyset page of visible traces.
    async fn trace_page(&self) -> Result<Vec<TraceRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {TRACE_COLUMNS} FROM traces t
             WHERE t.dataset_id = $1 AND t.sort_key > $2 AND {VISIBLE}
             ORDER BY t.sort_key LIMIT {PAGE_TRACES}"
        );
        sqlx::query_as(&sql)
            .bind(self.dataset_id)
            .bind(self.after.0)
            .fetch_all(self.db.reader())
            .await
    }

    /// Annotations in scope after `after` (sort_key, id) up to sort key `last`, in order.
    async fn annotations_in_range(
        &self,
        after: (i64, i64),
        last: i64,
    ) -> Result<Vec<AnnotationRow>, sqlx::Error> {
        let user_filter = self.user_filter();
        let sql = format!(
            "SELECT {ANNOTATION_SELECT}
             FROM annotations a JOIN users u ON u.id = a.user_id
             WHERE a.dataset_id = $1 AND a.sort_key >= $2 AND (a.sort_key > $2 OR a.id > $3)
               AND a.sort_key <= $5 {user_filter}
             ORDER BY a.sort_key, a.id
             LIMIT {PAGE_ANNOTATIONS}"
        );
        sqlx::query_as(&sql)
            .bind(self.dataset_id)
            .bind(after.0)
            .bind(after.1)
            .bind(self.options.only_user.unwrap_or(0))
            .bind(last)
            .fetch_all(self.db.reader())
            .await
    }

    /// The trace's values under the dataset's original columns.
    fn resolve(&self, row: &TraceRow) -> ResolvedTrace {
        let mut metadata: Vec<(String, String)> =
            serde_json::from_str(&row.metadata).unwrap_or_default();
        let values = self
            .fields
            .iter()
            .zip(&self.columns)
            .map(|(field, name)| match field {
                Some("trace_id") => Some(row.trace_id.clone()),
                Some("flow_session") => Some(row.flow_session.clone()),
                Some("turn_number") => Some(row.turn_number.to_string()),
                Some("total_turns") => row.total_turns.map(|n| n.to_string()),
                Some("user_message") => Some(row.user_message.clone()),
                Some("ai_response") => Some(row.ai_response.clone()),
                _ => metadata
                    .iter_mut()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| std::mem::take(v)),
            })
            .collect();
        ResolvedTrace {
            sort_key: row.sort_key,
            values,
        }
    }
}

/// Where one chunk's rows are written: a CSV writer, or JSON lines.
struct Sink {
    out: SinkOut,
    /// CSV: neutralize formula-like cells.
    neutralize: bool,
    /// JSONL: each column's key, JSON-encoded, with its colon.
    json_keys: Arc<[String]>,
    rows: u64,
}

enum SinkOut {
    Csv(Box<csv::Writer<Vec<u8>>>),
    Jsonl(Vec<u8>),
}

impl Sink {
    fn new(format: Format, neutralize: bool, json_keys: Arc<[String]>, out: Vec<u8>) -> Sink {
        let out = match format {
            Format::Csv => SinkOut::Csv(Box::new(csv::Writer::from_writer(out))),
            Format::Jsonl => SinkOut::Jsonl(out),
        };
        Sink {
            out,
            neutralize,
            json_keys,
            rows: 0,
        }
    }

    /// One output row: the trace's values, then the annotation's (empty without one).
    fn row(
        &mut self,
        trace: &[Option<String>],
        annotation: Option<&AnnotationRow>,
    ) -> anyhow::Result<()> {
        let extra = annotation_values(annotation);
        let values = trace
            .iter()
            .map(Option::as_deref)
            .chain(extra.iter().map(Option::as_deref));
        match &mut self.out {
            SinkOut::Csv(w) => {
                for value in values {
                    let value = value.unwrap_or("");
                    if self.neutralize {
                        w.write_field(neutralize(value).as_bytes())?;
                    } else {
                        w.write_field(value)?;
                    }
                }
                w.write_record(None::<&[u8]>)?;
            }
            SinkOut::Jsonl(out) => {
                write_json_line(out, &self.json_keys, values, trace.len() + VERSION_COLUMN)?
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<Vec<u8>> {
        match self.out {
            SinkOut::Csv(w) => w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}")),
            SinkOut::Jsonl(out) => Ok(out),
        }
    }
}

/// The annotation columns' values, in [`ANNOTATION_COLUMNS`] order: the stored text
/// borrowed, the rest formatted.
fn annotation_values(annotation: Option<&AnnotationRow>) -> [Option<Cow<'_, str>>; 9] {
    let Some(a) = annotation else {
        return Default::default();
    };
    [
        Some(Cow::Borrowed(&a.email)),
        Some(Cow::Borrowed(&a.name)),
        Verdict::parse(&a.verdict).map(|v| Cow::Borrowed(v.label())),
        Some(Cow::Borrowed(&a.first_failure_note)),
        Some(Cow::Borrowed(&a.open_codes)),
        Some(Cow::Borrowed(&a.comments)),
        Some(Cow::Owned(a.version.to_string())),
        Some(Cow::Owned(rfc3339(a.created_at))),
        Some(Cow::Owned(rfc3339(a.updated_at))),
    ]
}

/// Where `annotation_version` sits in [`ANNOTATION_COLUMNS`]: JSONL writes it as a number.
const VERSION_COLUMN: usize = 6;

/// One JSON object per line, keys in column order; the value at `version_at` (decimal digits
/// from [`annotation_values`]) is written as a number.
fn write_json_line<'v>(
    out: &mut Vec<u8>,
    keys: &[String],
    values: impl Iterator<Item = Option<&'v str>>,
    version_at: usize,
) -> serde_json::Result<()> {
    out.push(b'{');
    for (i, (key, value)) in keys.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        match value {
            Some(v) if i == version_at => out.extend_from_slice(v.as_bytes()),
            Some(v) => serde_json::to_writer(&mut *out, v)?,
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_a_quote_and_others_stay() {
        for cell in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralize(cell), format!("'{cell}"), "{cell:?}");
        }
        for cell in ["", "a=b", " =1", "'=1", "1-2", "\nx", "＝1"] {
            assert!(
                matches!(neutralize(cell), Cow::Borrowed(c) if c == cell),
                "{cell:?}"
            );
        }
    }

    #[test]
    fn columns_named_like_annotation_columns_are_renamed_deterministically() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let source = cols(&[
            "id",
            "open_codes",
            "source_open_codes",
            "annotator_email",
            "x",
        ]);
        assert_eq!(
            output_columns(&source, Cow::Borrowed),
            cols(&[
                "id",
                "source_open_codes_2",
                "source_open_codes",
                "source_annotator_email",
                "x"
            ])
        );
        // Two names that neutralize to one are told apart too.
        let source = cols(&["=a", "'=a"]);
        assert_eq!(
            output_columns(&source, neutralize),
            cols(&["'=a", "source_'=a"])
        );
    }
}
