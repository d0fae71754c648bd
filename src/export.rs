//! Exporting coded data as CSV or JSONL: one row per (trace × annotator), the trace's
//! original columns first, produced page by page so memory stays flat at any size.

use sqlx::FromRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::Db;
use crate::db::datasets::Dataset;
use crate::domain::Verdict;
use crate::import::csv_rows::ColumnMap;

/// Traces per page of the export walk.
const PAGE_TRACES: i64 = 500;

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
}

#[derive(Debug, FromRow)]
struct Row {
    sort_key: i64,
    trace_id: String,
    flow_session: String,
    turn_number: i64,
    total_turns: Option<i64>,
    user_message: String,
    ai_response: String,
    metadata: String,
    annotation_id: Option<i64>,
    email: Option<String>,
    name: Option<String>,
    verdict: Option<String>,
    first_failure_note: Option<String>,
    open_codes: Option<String>,
    comments: Option<String>,
    version: Option<i64>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

/// Produces the export in chunks: the header, then one chunk per page of traces.
pub struct Exporter {
    db: Db,
    dataset_id: i64,
    columns: Vec<String>,
    /// For each original column, the trace field it came from (None = metadata).
    fields: Vec<Option<&'static str>>,
    options: ExportOptions,
    after: i64,
    started: bool,
    finished: bool,
    pub rows_written: u64,
}

impl Exporter {
    pub fn new(db: Db, dataset: &Dataset, options: ExportOptions) -> Exporter {
        let columns = dataset.column_names();
        let fields = match ColumnMap::from_headers(columns.clone()) {
            Ok(map) => (0..columns.len()).map(|i| map.field_of(i)).collect(),
            Err(_) => vec![None; columns.len()],
        };
        Exporter {
            db,
            dataset_id: dataset.id,
            columns,
            fields,
            options,
            after: 0,
            started: false,
            finished: false,
            rows_written: 0,
        }
    }

    /// The next chunk of output, or `None` at the end.
    pub async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        if self.finished {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(64 * 1024);
        if !self.started {
            self.started = true;
            if self.options.format == Format::Csv {
                let mut w = csv::Writer::from_writer(&mut out);
                let header: Vec<&str> = self
                    .columns
                    .iter()
                    .map(String::as_str)
                    .chain(ANNOTATION_COLUMNS)
                    .collect();
                w.write_record(&header)?;
                w.flush()?;
            }
        }
        let rows = self.page().await?;
        if rows.is_empty() {
            self.finished = true;
            return Ok(if out.is_empty() { None } else { Some(out) });
        }
        self.after = rows.last().map(|r| r.sort_key).unwrap_or(self.after);
        let mut csv_writer = csv::Writer::from_writer(Vec::new());
        for row in &rows {
            if row.annotation_id.is_none() && !self.options.include_unannotated {
                continue;
            }
            let values = self.values(row);
            match self.options.format {
                Format::Csv => {
                    csv_writer.write_record(values.iter().map(|v| v.as_deref().unwrap_or("")))?
                }
                Format::Jsonl => {
                    out.extend_from_slice(self.json_line(&values, row.version).as_bytes())
                }
            }
            self.rows_written += 1;
        }
        out.extend_from_slice(
            &csv_writer
                .into_inner()
                .map_err(|e| anyhow::anyhow!("csv: {e}"))?,
        );
        Ok(Some(out))
    }

    /// One page of traces with their annotations in scope: a keyset walk of
    /// `(dataset_id, sort_key)`, annotations by the unique `(trace_pk, user_id)` index.
    async fn page(&self) -> Result<Vec<Row>, sqlx::Error> {
        let user_filter = if self.options.only_user.is_some() {
            "AND a.user_id = $3"
        } else {
            "AND $3 = $3"
        };
        let sql = format!(
            "SELECT t.sort_key, t.trace_id, t.flow_session, t.turn_number, t.total_turns,
                    t.user_message, t.ai_response, t.metadata,
                    a.id AS annotation_id, u.email, u.name, a.verdict, a.first_failure_note,
                    a.open_codes, a.comments, a.version, a.created_at, a.updated_at
             FROM (SELECT * FROM traces t WHERE t.dataset_id = $1 AND t.sort_key > $2
                     AND t.import_id NOT IN (SELECT i.id FROM imports i WHERE i.dataset_id = $1 AND i.state <> 'done')
                   ORDER BY t.sort_key LIMIT {PAGE_TRACES}) t
             LEFT JOIN annotations a ON a.trace_pk = t.id {user_filter}
             LEFT JOIN users u ON u.id = a.user_id
             ORDER BY t.sort_key, a.id"
        );
        sqlx::query_as(&sql)
            .bind(self.dataset_id)
            .bind(self.after)
            .bind(self.options.only_user.unwrap_or(0))
            .fetch_all(self.db.reader())
            .await
    }

    fn values(&self, row: &Row) -> Vec<Option<String>> {
        let metadata: Vec<(String, String)> =
            serde_json::from_str(&row.metadata).unwrap_or_default();
        let mut values: Vec<Option<String>> = self
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
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone()),
            })
            .collect();
        let verdict = row
            .verdict
            .as_deref()
            .and_then(Verdict::parse)
            .map(|v| v.label().to_string());
        values.extend([
            row.email.clone(),
            row.name.clone(),
            verdict,
            row.first_failure_note.clone(),
            row.open_codes.clone(),
            row.comments.clone(),
            row.version.map(|v| v.to_string()),
            row.created_at.map(rfc3339),
            row.updated_at.map(rfc3339),
        ]);
        values
    }

    fn json_line(&self, values: &[Option<String>], version: Option<i64>) -> String {
        let mut line = String::from("{");
        let keys = self
            .columns
            .iter()
            .map(String::as_str)
            .chain(ANNOTATION_COLUMNS);
        for (i, (key, value)) in keys.zip(values).enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&serde_json::Value::from(key).to_string());
            line.push(':');
            let json = match (key, value) {
                ("annotation_version", _) => {
                    version.map_or(serde_json::Value::Null, serde_json::Value::from)
                }
                (_, Some(v)) => serde_json::Value::from(v.as_str()),
                (_, None) => serde_json::Value::Null,
            };
            line.push_str(&json.to_string());
        }
        line.push_str("}\n");
        line
    }
}

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
