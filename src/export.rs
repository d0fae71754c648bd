//! Exporting coded data as CSV or JSONL: one row per (trace × annotator), the trace's
//! original columns first, then the annotation columns. The rows come from `db::export` in
//! bounded batches, so memory stays flat at any size; this module only formats them.

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::task::AbortOnDropHandle;

use crate::db::Db;
use crate::db::datasets::Dataset;
use crate::db::export::{self as rows, AnnotatedRow, AnnotationKey, ExportAnnotation, ExportTrace};
use crate::db::scope::Scope;
use crate::domain::AnnotationId;
use crate::import::csv_rows::{ColumnMap, TraceField};

/// Traces per page when unannotated traces are exported too.
const PAGE_TRACES: i64 = 500;
/// Annotations per query. Rows are bounded by annotations, not by traces: one trace coded by
/// hundreds of annotators must not make a page hold hundreds of thousands of rows.
const PAGE_ANNOTATIONS: i64 = 1000;

/// One output value: text, a number (a JSON number in JSONL), or nothing.
enum Cell<'a> {
    Text(Cow<'a, str>),
    Number(i64),
    Empty,
}

/// An annotation column: its name in the header, and its value for one annotation.
struct AnnotationColumn {
    name: &'static str,
    value: fn(&ExportAnnotation) -> Cell<'_>,
}

/// The annotation columns appended after the trace's own columns, in order: the one place
/// they are described.
const ANNOTATION_COLUMNS: &[AnnotationColumn] = &[
    AnnotationColumn {
        name: "annotator_email",
        value: |a| Cell::Text(Cow::Borrowed(&a.email)),
    },
    AnnotationColumn {
        name: "annotator_name",
        value: |a| Cell::Text(Cow::Borrowed(&a.name)),
    },
    AnnotationColumn {
        name: "holistic_pass_fail",
        value: |a| Cell::Text(Cow::Borrowed(a.verdict.label())),
    },
    AnnotationColumn {
        name: "first_failure_note",
        value: |a| Cell::Text(Cow::Borrowed(&a.first_failure_note)),
    },
    AnnotationColumn {
        name: "open_codes",
        value: |a| Cell::Text(Cow::Owned(a.open_codes.joined())),
    },
    AnnotationColumn {
        name: "failure_modes",
        value: |a| {
            let mut names = a.failure_modes.as_slice().to_vec();
            names.sort_by_key(|n| n.to_lowercase());
            Cell::Text(Cow::Owned(names.join(", ")))
        },
    },
    AnnotationColumn {
        name: "comments_hypotheses",
        value: |a| Cell::Text(Cow::Borrowed(&a.comments)),
    },
    AnnotationColumn {
        name: "annotation_version",
        value: |a| Cell::Number(a.version),
    },
    AnnotationColumn {
        name: "annotation_created_at",
        value: |a| timestamp(a.created_at),
    },
    AnnotationColumn {
        name: "annotation_updated_at",
        value: |a| timestamp(a.updated_at),
    },
];

/// The names of the annotation columns, in order.
pub fn annotation_column_names<'a>() -> impl Iterator<Item = &'a str> {
    ANNOTATION_COLUMNS.iter().map(|c| c.name)
}

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
    /// Whose annotations (the viewer's own, or everyone's) and which traces.
    pub scope: Scope,
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
    let mut taken: std::collections::HashSet<String> = annotation_column_names()
        .map(str::to_string)
        .chain(written.iter().cloned())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(written.len());
    for name in written {
        if !annotation_column_names().any(|c| c == name) && seen.insert(name.clone()) {
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
    /// The last annotation written.
    annotations_after: AnnotationKey,
}

/// A page being read by another task; dropped (an export given up midway), the read stops.
type ReadAhead<T> = AbortOnDropHandle<Result<Vec<T>, sqlx::Error>>;

/// The page read ahead into `slot`, or else `read` now.
async fn next_page<T>(
    slot: &mut Option<ReadAhead<T>>,
    read: impl Future<Output = Result<Vec<T>, sqlx::Error>>,
) -> anyhow::Result<Vec<T>> {
    Ok(match slot.take() {
        Some(reading) => reading.await??,
        None => read.await?,
    })
}

/// Starts reading a page on another task, while the current one is written out: the
/// reading and the writing each take about half of an export's time.
fn read_ahead<T: Send + 'static>(
    read: impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send + 'static,
) -> Option<ReadAhead<T>> {
    Some(AbortOnDropHandle::new(tokio::spawn(read)))
}

/// Produces the export in chunks: the header with the first rows, then one chunk per batch.
pub struct Exporter {
    db: Db,
    columns: Vec<String>,
    /// For each original column, the trace field it came from (None = metadata).
    fields: Vec<Option<TraceField>>,
    /// The CSV header: the columns' output names, then the annotation columns.
    csv_header: Vec<String>,
    /// JSONL keys (the columns' output names, then the annotation columns), JSON-encoded
    /// with a colon.
    json_keys: Vec<String>,
    options: ExportOptions,
    /// Keyset of the walk: the last trace sort key paged (trace walk) or the last
    /// annotation written (annotation walk).
    after: AnnotationKey,
    page: Option<TracePage>,
    /// The trace walk's next page, read while the current one is written out.
    next_traces: Option<ReadAhead<ExportTrace>>,
    /// The annotation walk's next page, the same way.
    next_annotated: Option<ReadAhead<AnnotatedRow>>,
    started: bool,
    finished: bool,
    pub rows_written: u64,
}

impl Exporter {
    pub fn new(db: Db, dataset: &Dataset, options: ExportOptions) -> Exporter {
        let columns = dataset.columns.clone();
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
        .chain(annotation_column_names().map(String::from))
        .collect();
        let json_keys = output_columns(&columns, Cow::Borrowed)
            .iter()
            .map(String::as_str)
            .chain(annotation_column_names())
            .map(|key| format!("{}:", serde_json::Value::from(key)))
            .collect();
        Exporter {
            db,
            columns,
            fields,
            csv_header,
            json_keys,
            options,
            after: (0, AnnotationId(0)),
            page: None,
            next_traces: None,
            next_annotated: None,
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
        let mut sink = Sink::new(self.options.format, out);
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
                let reading =
                    rows::trace_page(&self.db, &self.options.scope, self.after.0, PAGE_TRACES);
                let traces = next_page(&mut self.next_traces, reading).await?;
                let Some(last) = traces.last() else {
                    self.finished = true;
                    return Ok(());
                };
                self.after = (last.sort_key.0, AnnotationId(0));
                if traces.len() as i64 == PAGE_TRACES {
                    let (db, scope, after) = (self.db.clone(), self.options.scope, self.after.0);
                    self.next_traces = read_ahead(async move {
                        rows::trace_page(&db, &scope, after, PAGE_TRACES).await
                    });
                }
                let first = traces[0].sort_key.0;
                TracePage {
                    traces: traces.into_iter().map(|t| self.resolve(t)).collect(),
                    cursor: 0,
                    cursor_annotated: false,
                    annotations_after: (first - 1, AnnotationId(i64::MAX)),
                }
            }
        };
        let last_key = page.traces.last().map_or(0, |t| t.sort_key);
        let annotations = rows::annotations_in_range(
            &self.db,
            &self.options.scope,
            page.annotations_after,
            last_key,
            PAGE_ANNOTATIONS,
        )
        .await?;
        for annotation in &annotations {
            let key = annotation.sort_key.0;
            while page.cursor < page.traces.len() && page.traces[page.cursor].sort_key < key {
                if !page.cursor_annotated {
                    sink.row(self, &page.traces[page.cursor].values, None)?;
                }
                page.cursor += 1;
                page.cursor_annotated = false;
            }
            if let Some(trace) = page.traces.get(page.cursor)
                && trace.sort_key == key
            {
                sink.row(self, &trace.values, Some(annotation))?;
                page.cursor_annotated = true;
            }
            page.annotations_after = (key, annotation.annotation_id);
        }
        if annotations.len() as i64 == PAGE_ANNOTATIONS {
            self.page = Some(page); // more annotations inside this page
            return Ok(());
        }
        for trace in &page.traces[page.cursor..] {
            if !page.cursor_annotated {
                sink.row(self, &trace.values, None)?;
            }
            page.cursor_annotated = false;
        }
        Ok(())
    }

    /// Annotated rows only: a keyset walk of the annotations in scope, each with its trace.
    async fn annotation_walk_step(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        let reading =
            rows::annotated_page(&self.db, &self.options.scope, self.after, PAGE_ANNOTATIONS);
        let page = next_page(&mut self.next_annotated, reading).await?;
        match page.last() {
            Some(last) if page.len() as i64 == PAGE_ANNOTATIONS => {
                let after = (last.annotation.sort_key.0, last.annotation.annotation_id);
                let (db, scope) = (self.db.clone(), self.options.scope);
                self.next_annotated = read_ahead(async move {
                    rows::annotated_page(&db, &scope, after, PAGE_ANNOTATIONS).await
                });
            }
            _ => self.finished = true,
        }
        // Consecutive rows of one trace share its resolved values.
        let mut current: Option<ResolvedTrace> = None;
        for row in page {
            let trace = match current.take() {
                Some(trace) if trace.sort_key == row.trace.sort_key.0 => trace,
                _ => self.resolve(row.trace),
            };
            sink.row(self, &trace.values, Some(&row.annotation))?;
            current = Some(trace);
            self.after = (row.annotation.sort_key.0, row.annotation.annotation_id);
        }
        Ok(())
    }

    /// The trace's values under the dataset's original columns.
    fn resolve(&self, row: ExportTrace) -> ResolvedTrace {
        let ExportTrace {
            sort_key,
            trace_id,
            flow_session,
            turn_number,
            total_turns,
            user_message,
            ai_response,
            mut metadata,
        } = row;
        let mut trace_id = Some(trace_id);
        let mut flow_session = Some(flow_session);
        let mut user_message = Some(user_message);
        let mut ai_response = Some(ai_response);
        let values = self
            .fields
            .iter()
            .zip(&self.columns)
            .map(|(field, name)| match field {
                Some(TraceField::TraceId) => trace_id.take(),
                Some(TraceField::FlowSession) => flow_session.take(),
                Some(TraceField::TurnNumber) => Some(turn_number.to_string()),
                Some(TraceField::TotalTurns) => total_turns.map(|n| n.to_string()),
                Some(TraceField::UserMessage) => user_message.take(),
                Some(TraceField::AiResponse) => ai_response.take(),
                None => metadata.take(name),
            })
            .collect();
        ResolvedTrace {
            sort_key: sort_key.0,
            values,
        }
    }
}

/// Where one chunk's rows are written: a CSV writer, or JSON lines.
struct Sink {
    out: SinkOut,
    rows: u64,
}

enum SinkOut {
    Csv(Box<csv::Writer<Vec<u8>>>),
    Jsonl(Vec<u8>),
}

impl Sink {
    fn new(format: Format, out: Vec<u8>) -> Sink {
        let out = match format {
            Format::Csv => SinkOut::Csv(Box::new(csv::Writer::from_writer(out))),
            Format::Jsonl => SinkOut::Jsonl(out),
        };
        Sink { out, rows: 0 }
    }

    /// One output row: the trace's values, then the annotation's (empty without one).
    fn row(
        &mut self,
        exporter: &Exporter,
        trace: &[Option<String>],
        annotation: Option<&ExportAnnotation>,
    ) -> anyhow::Result<()> {
        let cells = trace
            .iter()
            .map(|v| match v {
                Some(text) => Cell::Text(Cow::Borrowed(text.as_str())),
                None => Cell::Empty,
            })
            .chain(
                ANNOTATION_COLUMNS
                    .iter()
                    .map(|column| annotation.map_or(Cell::Empty, column.value)),
            );
        match &mut self.out {
            SinkOut::Csv(w) => {
                for cell in cells {
                    match cell {
                        Cell::Text(text) if !exporter.options.raw => {
                            w.write_field(neutralize(&text).as_bytes())?
                        }
                        Cell::Text(text) => w.write_field(text.as_bytes())?,
                        Cell::Number(n) => w.write_field(n.to_string())?,
                        Cell::Empty => w.write_field("")?,
                    }
                }
                w.write_record(None::<&[u8]>)?;
            }
            SinkOut::Jsonl(out) => write_json_line(out, &exporter.json_keys, cells)?,
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

/// One JSON object per line, keys in column order.
fn write_json_line<'v>(
    out: &mut Vec<u8>,
    keys: &[String],
    cells: impl Iterator<Item = Cell<'v>>,
) -> anyhow::Result<()> {
    out.push(b'{');
    for (i, (key, cell)) in keys.iter().zip(cells).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        match cell {
            Cell::Text(text) => serde_json::to_writer(&mut *out, text.as_ref())?,
            Cell::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Cell::Empty => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// RFC 3339 (UTC) of a stored unix time; a time out of range is an error in the data.
fn timestamp(secs: i64) -> Cell<'static> {
    match OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
    {
        Some(text) => Cell::Text(Cow::Owned(text)),
        None => {
            tracing::error!(secs, "a stored timestamp cannot be formatted");
            Cell::Empty
        }
    }
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
