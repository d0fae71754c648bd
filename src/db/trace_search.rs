//! Searching the trace list: words of the messages (SQLite FTS5, Postgres full text) and
//! exact metadata values, keyset-paged in one query a page.
//!
//! With words, the index drives the page and matches come in import order (by trace id):
//! on SQLite FTS5 hands out matching rowids in order, so a page reads about as many traces
//! as it shows whether a word is rare or everywhere; on Postgres the planner chooses between
//! the GIN index (rare words) and the primary-key walk (common ones). A metadata value alone
//! is probed on the reading-order walk of `(dataset_id, sort_key)`: quick for a common value,
//! a scan of the dataset for a value no trace has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::FromRow;

use super::scope::{Scope, Traces};
use super::traces::{CodedFilter, ListRow, PageCursor, StatusFilter, row_columns};
use super::{Backend, Db};
use crate::domain::Metadata;
use crate::domain::search::TraceSearch;

/// A row of a search page with its page key (the trace's id with words, else its sort key).
#[derive(Debug, Clone, FromRow)]
pub struct SearchRow {
    pub pk: i64,
    #[sqlx(flatten)]
    pub row: ListRow,
}

/// The first and the last trace id of dataset `$1` (SQLite: `MIN`/`MAX` of an index prefix).
const IDS_FROM: &str =
    "COALESCE((SELECT MIN((SELECT MIN(x.id) FROM traces x WHERE x.import_id = i.id))
    FROM imports i WHERE i.dataset_id = $1), 0)";
const IDS_TO: &str =
    "COALESCE((SELECT MAX((SELECT MAX(x.id) FROM traces x WHERE x.import_id = i.id))
    FROM imports i WHERE i.dataset_id = $1), 0)";

/// One keyset page of the traces matching `search` (which must not be empty) and having
/// `status` for the viewer (and `coded`, if given), with the viewer's verdicts, notes and
/// codes.
pub async fn search_page(
    db: &Db,
    scope: &Scope,
    search: &TraceSearch,
    status: StatusFilter,
    coded: Option<&CodedFilter>,
    cursor: PageCursor,
    limit: i64,
) -> Result<Vec<SearchRow>, sqlx::Error> {
    let (cmp, order, key) = cursor.keyset();
    let visible = scope.traces("t");
    let columns = row_columns(db);
    let status = status.condition();
    let coded_in = coded.map_or_else(|| "$7 = $7".to_string(), |c| c.condition(scope, "$7"));
    let needle = search.field.as_ref().map(|f| f.needle());
    // The walk: the word index (page key: trace id), or reading order (page key: sort key).
    let words = search.fts5_query();
    let (from, pk, matches) = match (db.backend(), &words) {
        (_, None) => ("traces t", "t.sort_key", "$5 = $5"),
        (Backend::Sqlite, Some(_)) => (
            "traces_fts JOIN traces t ON t.id = traces_fts.rowid",
            "traces_fts.rowid",
            "traces_fts MATCH $5",
        ),
        (Backend::Postgres, Some(_)) => (
            "traces t",
            "t.id",
            "to_tsvector('simple', t.user_message || ' ' || t.ai_response)
                 @@ plainto_tsquery('simple', $5)",
        ),
    };
    // FTS5 hands out the rowids of every dataset: bound the walk to this dataset's trace ids
    // (from each import's first and last id, a probe of `traces_import`), or a search of the
    // first-imported dataset's deepest page walks every later dataset's matches first. One
    // expression per side, as FTS5 takes one bound each way.
    let page_bound = match (db.backend(), &words, cursor) {
        (Backend::Sqlite, Some(_), PageCursor::After(_)) => {
            format!("{pk} > MAX($3, {IDS_FROM} - 1) AND {pk} < {IDS_TO} + 1")
        }
        (Backend::Sqlite, Some(_), PageCursor::Before(_)) => {
            format!("{pk} < MIN($3, {IDS_TO} + 1) AND {pk} > {IDS_FROM} - 1")
        }
        _ => format!("{pk} {cmp} $3"),
    };
    let has_value = match (db.backend(), needle.is_some()) {
        (_, false) => "$6 = $6",
        (Backend::Sqlite, true) => "instr(t.metadata, $6) > 0",
        (Backend::Postgres, true) => "strpos(t.metadata, $6) > 0",
    };
    let sql = format!(
        "SELECT {pk} AS pk, {columns}
         FROM {from}
         LEFT JOIN annotations a ON a.trace_pk = t.id AND a.user_id = $2
         WHERE {matches} AND {page_bound} AND t.dataset_id = $1 AND {visible}
           AND {has_value} AND {status} AND {coded_in}
         ORDER BY {pk} {order} LIMIT $4"
    );
    let terms = match db.backend() {
        Backend::Sqlite => words.unwrap_or_default(),
        Backend::Postgres => search.text(),
    };
    let query = sqlx::query_as(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(key)
        .bind(limit)
        .bind(terms)
        .bind(needle.unwrap_or_default());
    let query = match coded {
        Some(coded) => coded.bind(query),
        None => query.bind(0_i64),
    };
    let mut rows: Vec<SearchRow> = query.fetch_all(db.reader()).await?;
    cursor.in_reading_order(&mut rows);
    Ok(rows)
}

/// Traces whose metadata offer the list's metadata filter its columns and values.
const METADATA_SAMPLE: i64 = 500;
/// Values offered per column; a column with more distinct values in the sample (ids,
/// timestamps, free text) is offered without values.
const VALUES_PER_COLUMN: usize = 25;

/// A metadata column of the dataset and its common values (most frequent first), read from
/// the first traces of the dataset in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumn {
    pub column: String,
    pub values: Vec<String>,
}

/// The metadata columns a list page offers, read once per dataset and set of visible
/// traces: a sample of 500 traces is a few milliseconds of reading that every page would
/// otherwise repeat. The key holds the dataset's trace count, so an import that adds traces
/// reads them again; it is only a hint for the form (any column and value can be typed).
#[derive(Default)]
pub struct MetadataCache {
    entries: Mutex<HintsByScope>,
}

/// The columns by (dataset, its trace count, the traces the viewer sees).
type HintsByScope = HashMap<(i64, i64, Traces), Arc<Vec<MetadataColumn>>>;

/// Entries kept before the cache starts over (one per dataset and assignee).
const CACHED_SCOPES: usize = 512;

impl MetadataCache {
    /// The columns for `scope` in a dataset of `trace_count` traces.
    pub async fn columns(
        &self,
        db: &Db,
        scope: &Scope,
        trace_count: i64,
    ) -> Result<Arc<Vec<MetadataColumn>>, sqlx::Error> {
        let key = (scope.dataset.0, trace_count, scope.traces);
        if let Some(hit) = self.lock().get(&key) {
            return Ok(hit.clone());
        }
        let columns = Arc::new(metadata_columns(db, scope).await?);
        let mut entries = self.lock();
        if entries.len() >= CACHED_SCOPES {
            entries.clear();
        }
        entries.insert(key, columns.clone());
        Ok(columns)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HintsByScope> {
        // A panic while holding it cannot leave the map half-changed: take it as it is.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The metadata columns of the first [`METADATA_SAMPLE`] visible traces, in file order,
/// each with its values when it has few (at most [`VALUES_PER_COLUMN`], each short).
pub async fn metadata_columns(db: &Db, scope: &Scope) -> Result<Vec<MetadataColumn>, sqlx::Error> {
    let sql = format!(
        "SELECT t.metadata FROM traces t WHERE t.dataset_id = $1 AND $2 = $2 AND {}
         ORDER BY t.sort_key LIMIT $3",
        scope.traces("t")
    );
    let sample: Vec<String> = sqlx::query_scalar(&sql)
        .bind(scope.dataset)
        .bind(scope.viewer)
        .bind(METADATA_SAMPLE)
        .fetch_all(db.reader())
        .await?;
    // Per column in order of first appearance: its value counts, or `None` once it has
    // shown too many or too long values to offer.
    let mut columns: Vec<(String, Option<HashMap<String, usize>>)> = Vec::new();
    for text in sample {
        let Ok(metadata) = serde_json::from_str::<Metadata>(&text) else {
            continue;
        };
        for (column, value) in metadata.iter() {
            let at = match columns.iter().position(|(c, _)| c == column) {
                Some(at) => at,
                None => {
                    columns.push((column.to_string(), Some(HashMap::new())));
                    columns.len() - 1
                }
            };
            let entry = &mut columns[at].1;
            if let Some(counts) = entry {
                *counts.entry(value.to_string()).or_default() += 1;
                if counts.len() > VALUES_PER_COLUMN || value.chars().count() > 80 {
                    *entry = None;
                }
            }
        }
    }
    Ok(columns
        .into_iter()
        .map(|(column, counts)| {
            let mut values: Vec<(String, usize)> = counts.unwrap_or_default().into_iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            MetadataColumn {
                column,
                values: values.into_iter().map(|(v, _)| v).collect(),
            }
        })
        .collect())
}
