//! Streaming CSV import: parse on a blocking thread, insert in short batches, all-or-nothing
//! visibility, progress in the database (for the page) and through a callback (for the CLI).

pub mod csv_rows;
pub mod tasks;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::db::{self, Db, imports};
use crate::domain::{DatasetId, DatasetName, ImportId, NameError, NewTrace, RowError, UserId};
use csv_rows::{ColumnMap, describe_csv_error};

/// Rows per insert batch (one short write transaction each).
const BATCH_ROWS: usize = 2_000;
/// Row errors kept for the report; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// The outcome of an import, as both the page and the CLI report it.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub import_id: ImportId,
    pub dataset_slug: String,
    pub ok: bool,
    pub rows_read: i64,
    pub inserted: i64,
    pub duplicates: i64,
    pub message: String,
    pub errors: Vec<RowError>,
    pub error_count: i64,
}

/// Why an import could not even start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("Another import into \"{0}\" is still running. Wait for it to finish, then try again.")]
    Busy(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Why a running import stopped before its end (the error [`run`] returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    /// Its process is shutting down (SIGTERM, Ctrl-C): its rows were removed.
    #[error("the import was stopped because its process is shutting down")]
    Shutdown,
    /// Its heartbeat was late enough that another process reaped it.
    #[error("the import's heartbeat stopped for too long and another process cleaned it up")]
    TakenOver,
}

/// A registered import, ready to run.
#[derive(Debug, Clone)]
pub struct PendingImport {
    pub import_id: ImportId,
    pub dataset_id: DatasetId,
    pub dataset_slug: String,
    pub dataset_name: String,
    /// The import created its dataset.
    pub new_dataset: bool,
    /// This run's ownership token of the import row (see `imports::start`).
    pub owner: String,
    /// Pause after each parsed batch of rows is written (zero: none).
    pub pause_between_batches: Duration,
    /// How often the running import tells the database it is alive.
    pub heartbeat_every: Duration,
    /// Cancelled when the process shuts down: the import stops and removes its rows.
    pub shutdown: CancellationToken,
}

/// How long an import may go without a heartbeat before any process reaps it, unless
/// configured otherwise (`IMPORT_STALE_SECONDS`).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15);

/// The heartbeat period for a staleness threshold: five beats per threshold, so a few late
/// beats (a busy database) never make a live import look dead.
pub fn heartbeat_every(stale_after: Duration) -> Duration {
    (stale_after / 5).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Finds or creates the dataset and registers the import as running.
pub async fn register(
    db: &Db,
    dataset_name: &str,
    file_name: &str,
    user_id: Option<UserId>,
    bytes_total: i64,
) -> Result<PendingImport, StartError> {
    let name = DatasetName::parse(dataset_name)?;
    let (dataset, new_dataset) = db::datasets::find_or_create(db, &name).await?;
    let owner = uuid::Uuid::new_v4().simple().to_string();
    match imports::start(db, dataset.id, user_id, file_name, bytes_total, &owner).await? {
        Ok(import_id) => Ok(PendingImport {
            import_id,
            dataset_id: dataset.id,
            dataset_slug: dataset.slug,
            dataset_name: dataset.name,
            new_dataset,
            owner,
            pause_between_batches: Duration::ZERO,
            heartbeat_every: heartbeat_every(DEFAULT_STALE_AFTER),
            shutdown: CancellationToken::new(),
        }),
        Err(imports::AlreadyRunning) => Err(StartError::Busy(dataset.name)),
    }
}

/// Progress as rows and bytes read so far.
pub type ProgressFn = Box<dyn Fn(u64, u64) + Send + Sync>;

enum Parsed {
    /// The column names, and how many of them are kept as metadata.
    Header(Vec<String>, usize),
    Rows(Vec<NewTrace>, i64),
    /// The whole file could not be read as a dataset (no header, missing columns…).
    Refused(String),
    Done {
        rows: i64,
        errors: Vec<RowError>,
        error_count: i64,
    },
}

/// Runs a registered import to the end. Never leaves half an import visible: traces become
/// visible in the final transaction, and a refused, failed or stopped import removes its
/// rows. A heartbeat runs beside it, so a process that dies is noticed (`imports::reap_stale`).
pub async fn run(
    db: &Db,
    pending: &PendingImport,
    reader: impl Read + Send + 'static,
    progress: Option<ProgressFn>,
) -> anyhow::Result<ImportReport> {
    let stop = pending.shutdown.child_token();
    let lost = Arc::new(AtomicBool::new(false));
    let _heartbeat = AbortOnDropHandle::new(tokio::spawn(heartbeat(
        db.clone(),
        pending.clone(),
        stop.clone(),
        lost.clone(),
    )));
    let result = run_inner(db, pending, reader, progress, &stop).await;
    let err = match result {
        Ok(report) => return Ok(report),
        Err(err) => err,
    };
    let message = match err.downcast_ref::<Stopped>() {
        _ if lost.load(Ordering::SeqCst) => {
            tracing::warn!(
                import_id = %pending.import_id,
                "import taken over by a reaper"
            );
            return Err(Stopped::TakenOver.into());
        }
        Some(Stopped::TakenOver) => return Err(err),
        Some(Stopped::Shutdown) => {
            tracing::warn!(import_id = %pending.import_id, "import stopped by shutdown");
            "The import was stopped before it finished because the server (or the command \
             running it) was shut down. Nothing from it was kept; please import the file again."
        }
        None => {
            tracing::error!(error = ?err, import_id = %pending.import_id, "import failed");
            "The import stopped because of a server or database error. Nothing from it was \
             kept; please try again."
        }
    };
    // Best effort: if the database is away, the import's heartbeat stops with this process
    // and a reaper finishes the clean-up.
    let _ = imports::finish_failed(db, pending.import_id, &pending.owner, message, &[], 0, 0).await;
    Err(err)
}

/// Refreshes the import's heartbeat until the import ends. When the row is no longer this
/// run's (a reaper took it over), flags it and stops the run.
async fn heartbeat(db: Db, pending: PendingImport, stop: CancellationToken, lost: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(pending.heartbeat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match imports::heartbeat(&db, pending.import_id, &pending.owner).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            Err(e) => tracing::debug!(error = %e, "import heartbeat failed; retrying"),
        }
    }
}

async fn run_inner(
    db: &Db,
    pending: &PendingImport,
    reader: impl Read + Send + 'static,
    progress: Option<ProgressFn>,
    stop: &CancellationToken,
) -> anyhow::Result<ImportReport> {
    let bytes = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel::<Parsed>(4);
    let counting = CountingReader {
        inner: reader,
        count: bytes.clone(),
    };
    let parser = tokio::task::spawn_blocking(move || parse_all(counting, tx));

    let mut cursor =
        imports::Cursor::new(db, pending.import_id, pending.dataset_id, &pending.owner).await?;
    let mut columns = Vec::new();
    let mut metadata_columns = 0;
    let mut tool_calls = 0i64;
    let mut failure: Option<(String, Vec<RowError>, i64, i64)> = None;
    let mut rows_read = 0;
    let mut slot_errors: Vec<RowError> = Vec::new();
    let mut slot_error_count = 0i64;
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.cancelled() => return Err(Stopped::Shutdown.into()),
            msg = rx.recv() => msg,
        };
        let Some(msg) = msg else { break };
        match msg {
            Parsed::Header(h, m) => {
                columns = h;
                metadata_columns = m;
            }
            Parsed::Rows(batch, read) => {
                rows_read = read;
                if failure.is_some() || slot_error_count > 0 {
                    continue;
                }
                tool_calls += batch.iter().map(|t| t.tool_call_count).sum::<i64>();
                let bytes_read = bytes.load(Ordering::Relaxed) as i64;
                let res = imports::insert_batch(db, &mut cursor, &batch, read, bytes_read).await?;
                if res.lost {
                    return Err(Stopped::TakenOver.into());
                }
                for i in res.slot_taken {
                    slot_error_count += 1;
                    if slot_errors.len() < MAX_REPORTED_ERRORS {
                        let row = &batch[i];
                        slot_errors.push(RowError {
                            line: row.line,
                            column: "turn_number".into(),
                            reason: format!(
                                "conversation \"{}\" already has a turn {} with another trace id",
                                row.flow_session, row.turn_number
                            ),
                        });
                    }
                }
                if let Some(p) = &progress {
                    p(read as u64, bytes_read as u64);
                }
                if !pending.pause_between_batches.is_zero() {
                    tokio::select! {
                        _ = stop.cancelled() => return Err(Stopped::Shutdown.into()),
                        _ = tokio::time::sleep(pending.pause_between_batches) => {}
                    }
                }
            }
            Parsed::Refused(message) => failure = Some((message, Vec::new(), 0, 0)),
            Parsed::Done {
                rows,
                errors,
                error_count,
            } => {
                rows_read = rows;
                if failure.is_none() && error_count > 0 {
                    failure = Some((String::new(), errors, error_count, rows));
                }
            }
        }
    }
    parser.await?;
    if slot_error_count > 0 && failure.is_none() {
        failure = Some((String::new(), slot_errors, slot_error_count, rows_read));
    }

    let report = |ok, message: String, errors, error_count, inserted, duplicates| ImportReport {
        import_id: pending.import_id,
        dataset_slug: pending.dataset_slug.clone(),
        ok,
        rows_read,
        inserted,
        duplicates,
        message,
        errors,
        error_count,
    };
    if let Some((message, errors, error_count, _)) = failure {
        let message = if message.is_empty() {
            format!(
                "Nothing was imported: {error_count} row{} {} problems. Fix {} and import the file again.",
                if error_count == 1 { "" } else { "s" },
                if error_count == 1 { "has" } else { "have" },
                if error_count == 1 { "it" } else { "them" },
            )
        } else {
            message
        };
        imports::finish_failed(
            db,
            pending.import_id,
            &pending.owner,
            &message,
            &errors,
            error_count,
            rows_read,
        )
        .await?;
        return Ok(report(false, message, errors, error_count, 0, 0));
    }

    let record = imports::by_id(db, pending.import_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("import vanished"))?;
    let (inserted, duplicates) = (record.rows_inserted, record.rows_duplicate);
    let found = Found {
        conversations: imports::new_conversations(db, pending.dataset_id, pending.import_id)
            .await?,
        tool_calls,
        metadata_columns: metadata_columns as i64,
    };
    let message = format!("{} {}", summary(inserted, duplicates), found.sentence());
    let bytes_read = bytes.load(Ordering::Relaxed) as i64;
    imports::merge_search_index(db).await?;
    if !imports::finish_done(db, &cursor, &columns, rows_read, bytes_read, &message).await? {
        return Err(Stopped::TakenOver.into());
    }
    // New traces of an assigned dataset go to whoever has the fewest. If this fails the
    // import stands; the next start-up deals what is left.
    if let Err(e) =
        db::assignments::assign_pending(db, pending.dataset_id, Some(pending.import_id)).await
    {
        tracing::error!(error = %e, import_id = %pending.import_id, "could not assign the new traces");
    }
    metrics::counter!("tracecoder_import_rows_total", "result" => "inserted")
        .increment(inserted as u64);
    metrics::counter!("tracecoder_import_rows_total", "result" => "duplicate")
        .increment(duplicates as u64);
    Ok(report(true, message, Vec::new(), 0, inserted, duplicates))
}

/// What a file held, for the summary after the counts.
struct Found {
    /// Conversations the import added to the dataset.
    conversations: i64,
    /// Tool calls in the file's `AI Message` cells.
    tool_calls: i64,
    /// Columns kept as metadata.
    metadata_columns: i64,
}

impl Found {
    fn sentence(&self) -> String {
        let n = |count: i64, one: &str, many: &str| {
            format!(
                "{} {}",
                crate::web::pages::thousands(count),
                if count == 1 { one } else { many }
            )
        };
        format!(
            "Found {}, {} and {}.",
            n(self.conversations, "new conversation", "new conversations"),
            n(self.tool_calls, "tool call", "tool calls"),
            n(self.metadata_columns, "metadata column", "metadata columns"),
        )
    }
}

fn summary(inserted: i64, duplicates: i64) -> String {
    let traces = |n: i64| format!("{n} trace{}", if n == 1 { "" } else { "s" });
    match (inserted, duplicates) {
        (0, 1) => {
            "Nothing new: the row was already in the dataset (skipped as a duplicate).".into()
        }
        (0, d) => format!(
            "Nothing new: all {d} rows were already in the dataset (skipped as duplicates)."
        ),
        (i, 0) => format!("Imported {}.", traces(i)),
        (i, d) => format!(
            "Imported {}; skipped {d} duplicate row{} already in the dataset or repeated in the file.",
            traces(i),
            if d == 1 { "" } else { "s" }
        ),
    }
}

/// The blocking half: reads the CSV and sends batches. After the first bad row it stops
/// sending rows but keeps reading, to report up to 100 problems and count the rest.
fn parse_all(reader: impl Read, tx: mpsc::Sender<Parsed>) {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(256 * 1024)
        .from_reader(reader);
    let headers = match csv.byte_headers() {
        Ok(h)
            if h.is_empty()
                || (h.len() == 1
                    && h.get(0)
                        .is_some_and(|f| strip_bom(f).trim_ascii().is_empty())) =>
        {
            let _ = tx.blocking_send(Parsed::Refused(
                "The file is empty. Expected a header line naming the columns flow_session, \
                 turn_number, user_message and ai_response (or the BotDojo names), then one \
                 line per turn."
                    .into(),
            ));
            return;
        }
        Ok(h) => h.clone(),
        Err(e) => {
            let _ = tx.blocking_send(Parsed::Refused(format!(
                "The header line could not be read: {}",
                describe_csv_error(&e, 0).reason
            )));
            return;
        }
    };
    let mut names = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        match std::str::from_utf8(if i == 0 { strip_bom(h) } else { h }) {
            Ok(s) => names.push(s.to_string()),
            Err(_) => {
                let _ = tx.blocking_send(Parsed::Refused(format!(
                    "Line 1, column {}: the header is not valid UTF-8; save the file as UTF-8.",
                    i + 1
                )));
                return;
            }
        }
    }
    let map = match ColumnMap::from_headers(names) {
        Ok(m) => m,
        Err(message) => {
            let _ = tx.blocking_send(Parsed::Refused(message));
            return;
        }
    };
    if tx
        .blocking_send(Parsed::Header(map.column_names(), map.metadata_count()))
        .is_err()
    {
        return;
    }
    let expected = map.headers.len();
    let mut record = csv::ByteRecord::new();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut rows = 0i64;
    let mut errors = Vec::new();
    let mut error_count = 0i64;
    let mut note_error = |e: RowError, errors: &mut Vec<RowError>| {
        error_count += 1;
        if errors.len() < MAX_REPORTED_ERRORS {
            errors.push(e);
        }
    };
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                rows += 1;
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                if record.iter().all(|f| f.trim_ascii().is_empty()) {
                    rows -= 1; // blank line
                    continue;
                }
                match map.parse(&record, line) {
                    Ok(t) if errors.is_empty() => {
                        batch.push(t);
                        if batch.len() == BATCH_ROWS {
                            let full =
                                std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                            if tx.blocking_send(Parsed::Rows(full, rows)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => note_error(e, &mut errors),
                }
            }
            Err(e) => {
                rows += 1;
                let unrecoverable = !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. });
                note_error(describe_csv_error(&e, expected), &mut errors);
                if unrecoverable {
                    break;
                }
            }
        }
    }
    if rows == 0 && errors.is_empty() {
        let _ = tx.blocking_send(Parsed::Refused(
            "The file has a header line but no rows: there is nothing to import.".into(),
        ));
        return;
    }
    if !batch.is_empty() && errors.is_empty() {
        let _ = tx.blocking_send(Parsed::Rows(batch, rows));
    }
    let _ = tx.blocking_send(Parsed::Done {
        rows,
        errors,
        error_count,
    });
}

fn strip_bom(field: &[u8]) -> &[u8] {
    field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
}

/// Counts bytes as they are read, for the progress bar.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
