//! The codebook's storage: open codes counted from their one store (`annotation_codes`,
//! current annotations only, since a save rewrites its code rows), failure modes, the
//! mapping of codes into them, aliases left by renames and merges, and the change log.
//!
//! Counting reads the covering index `annotation_codes_counting`; grouping is a mapping
//! (`failure_mode_codes`) and never touches an annotation.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow};

use super::{Backend, Db, now};
use crate::domain::codebook::{FileProblem, ImportedMode, mode_key};
use crate::domain::{AnnotationId, DatasetId, ModeId, UserId};

/// What the codebook's counts were computed from: the dataset's annotation change
/// counters summed (bumped by a trigger on every write to an annotation, migration 0016) and
/// its last codebook change. Equal versions mean equal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountsVersion {
    pub annotations: i64,
    pub codebook: i64,
}

/// The dataset's [`CountsVersion`]: index `annotation_counts_dataset` (one row per
/// annotator) and one probe of `codebook_changes_dataset`.
pub async fn counts_version(db: &Db, dataset: DatasetId) -> Result<CountsVersion, sqlx::Error> {
    let (annotations, codebook): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE((SELECT CAST(SUM(changes) AS BIGINT) FROM annotation_counts
                          WHERE dataset_id = $1), 0),
                COALESCE((SELECT CAST(MAX(id) AS BIGINT) FROM codebook_changes
                          WHERE dataset_id = $1), 0)",
    )
    .bind(dataset)
    .fetch_one(db.reader())
    .await?;
    Ok(CountsVersion {
        annotations,
        codebook,
    })
}

/// One normalized open code in use, with its counts over current annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeCount {
    /// The normalized form (what is counted and grouped).
    pub code: String,
    /// Distinct traces whose current annotation carries it.
    pub traces: i64,
    /// Current annotations carrying it.
    pub annotations: i64,
    /// Distinct annotators who used it.
    pub annotators: i64,
    /// Distinct traces with a Fail annotation carrying it.
    pub fail_traces: i64,
}

/// Counts per normalized code, most traces first (ties by code). Two index-ordered walks of
/// `annotation_codes_counting`: per code and trace (sort key) then per code; and distinct
/// annotators per code.
pub async fn code_counts(db: &Db, dataset: DatasetId) -> Result<Vec<CodeCount>, sqlx::Error> {
    let per_trace: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT g.normalized, COUNT(*), CAST(SUM(g.n) AS BIGINT), CAST(SUM(g.f) AS BIGINT)
         FROM (SELECT c.normalized, c.sort_key, COUNT(*) AS n, MAX(c.fail) AS f
               FROM annotation_codes c WHERE c.dataset_id = $1
               GROUP BY c.normalized, c.sort_key) g
         GROUP BY g.normalized",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    let annotators: HashMap<String, i64> = sqlx::query_as(
        "SELECT c.normalized, COUNT(DISTINCT c.user_id) FROM annotation_codes c
         WHERE c.dataset_id = $1 GROUP BY c.normalized",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?
    .into_iter()
    .collect();
    let mut counts: Vec<CodeCount> = per_trace
        .into_iter()
        .map(|(code, traces, annotations, fail_traces)| CodeCount {
            annotators: annotators.get(&code).copied().unwrap_or(0),
            code,
            traces,
            annotations,
            fail_traces,
        })
        .collect();
    counts.sort_by(|a, b| b.traces.cmp(&a.traces).then_with(|| a.code.cmp(&b.code)));
    Ok(counts)
}

/// The most common spelling of each of `codes` (normalized) as annotators typed it (ties:
/// the alphabetically first). Index prefix `(dataset_id, normalized)`.
pub async fn spellings(
    db: &Db,
    dataset: DatasetId,
    codes: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut best: HashMap<String, (i64, String)> = HashMap::with_capacity(codes.len());
    for chunk in codes.chunks(400) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT c.normalized, c.code, COUNT(*) FROM annotation_codes c
             WHERE c.dataset_id = $1 AND c.normalized IN ({}) GROUP BY c.normalized, c.code",
            marks.join(",")
        );
        let mut query = sqlx::query_as::<_, (String, String, i64)>(&sql).bind(dataset);
        for code in chunk {
            query = query.bind(*code);
        }
        for (normalized, code, uses) in query.fetch_all(db.reader()).await? {
            let entry = best.entry(normalized).or_insert((0, String::new()));
            if uses > entry.0 || (uses == entry.0 && code < entry.1) {
                *entry = (uses, code);
            }
        }
    }
    Ok(best.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// A failure mode.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Mode {
    pub id: ModeId,
    pub name: String,
    pub description: String,
    pub archived_at: Option<i64>,
    pub created_at: i64,
}

impl Mode {
    pub fn archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

const MODE_COLUMNS: &str = "id, name, description, archived_at, created_at";

/// The dataset's failure modes, by name (archived ones too).
pub async fn modes(db: &Db, dataset: DatasetId) -> Result<Vec<Mode>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MODE_COLUMNS} FROM failure_modes WHERE dataset_id = $1 ORDER BY name_key"
    ))
    .bind(dataset)
    .fetch_all(db.reader())
    .await
}

/// The grouping: each grouped code (normalized) and its mode.
pub async fn grouping(db: &Db, dataset: DatasetId) -> Result<HashMap<String, ModeId>, sqlx::Error> {
    Ok(sqlx::query_as::<_, (String, ModeId)>(
        "SELECT code, mode_id FROM failure_mode_codes WHERE dataset_id = $1",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?
    .into_iter()
    .collect())
}

/// A mode by its name or one of its former names (aliases), in any case and spacing.
pub async fn mode_by_name(
    db: &Db,
    dataset: DatasetId,
    name: &str,
) -> Result<Option<Mode>, sqlx::Error> {
    mode_by_name_on(&mut *db.reader().acquire().await?, dataset, name).await
}

async fn mode_by_name_on(
    conn: &mut AnyConnection,
    dataset: DatasetId,
    name: &str,
) -> Result<Option<Mode>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MODE_COLUMNS} FROM failure_modes WHERE dataset_id = $1 AND (name_key = $2
           OR id = (SELECT mode_id FROM failure_mode_aliases WHERE dataset_id = $1 AND name_key = $2))"
    ))
    .bind(dataset)
    .bind(mode_key(name))
    .fetch_optional(&mut *conn)
    .await
}

/// Per failure mode (`None`: codes in no active mode), the distinct Fail traces carrying
/// at least one of its codes, overall and per annotator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeCounts {
    pub fail_traces: HashMap<Option<ModeId>, i64>,
    pub by_annotator: HashMap<(Option<ModeId>, UserId), i64>,
}

/// The active modes' codes, as a relation `g (code, mode_id)` to join codes with.
const ACTIVE_GROUPING: &str = "(SELECT fc.code, fc.mode_id FROM failure_mode_codes fc
     JOIN failure_modes f ON f.id = fc.mode_id AND f.archived_at IS NULL
     WHERE fc.dataset_id = $1)";

/// Fail traces per mode and per (mode, annotator); codes outside active modes count as
/// ungrouped (mode `None`, stored as 0).
pub async fn mode_counts(db: &Db, dataset: DatasetId) -> Result<ModeCounts, sqlx::Error> {
    let overall: Vec<(ModeId, i64)> = sqlx::query_as(&format!(
        "SELECT COALESCE(g.mode_id, 0), COUNT(DISTINCT c.sort_key) FROM annotation_codes c
         LEFT JOIN {ACTIVE_GROUPING} g ON g.code = c.normalized
         WHERE c.dataset_id = $1 AND c.fail = 1 GROUP BY COALESCE(g.mode_id, 0)"
    ))
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    let per_user: Vec<(ModeId, UserId, i64)> = sqlx::query_as(&format!(
        "SELECT COALESCE(g.mode_id, 0), c.user_id, COUNT(DISTINCT c.sort_key) FROM annotation_codes c
         LEFT JOIN {ACTIVE_GROUPING} g ON g.code = c.normalized
         WHERE c.dataset_id = $1 AND c.fail = 1 GROUP BY COALESCE(g.mode_id, 0), c.user_id"
    ))
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    let key = |m: ModeId| (m.0 != 0).then_some(m);
    Ok(ModeCounts {
        fail_traces: overall.into_iter().map(|(m, n)| (key(m), n)).collect(),
        by_annotator: per_user
            .into_iter()
            .map(|(m, u, n)| ((key(m), u), n))
            .collect(),
    })
}

/// What the shares are of: distinct annotated traces and distinct Fail traces, overall and
/// per annotator (with their email). Index `annotations_dataset_verdict`.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub annotated_traces: i64,
    pub fail_traces: i64,
    /// (annotator, email, annotated, fails), by email.
    pub annotators: Vec<(UserId, String, i64, i64)>,
}

pub async fn totals(db: &Db, dataset: DatasetId) -> Result<Totals, sqlx::Error> {
    let (annotated_traces, fail_traces): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(DISTINCT a.sort_key),
                COUNT(DISTINCT CASE WHEN a.verdict = 'fail' THEN a.sort_key END)
         FROM annotations a WHERE a.dataset_id = $1",
    )
    .bind(dataset)
    .fetch_one(db.reader())
    .await?;
    let annotators = sqlx::query_as(
        "SELECT a.user_id, u.email, COUNT(*),
                CAST(SUM(CASE WHEN a.verdict = 'fail' THEN 1 ELSE 0 END) AS BIGINT)
         FROM annotations a JOIN users u ON u.id = a.user_id
         WHERE a.dataset_id = $1 GROUP BY a.user_id, u.email ORDER BY u.email",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    Ok(Totals {
        annotated_traces,
        fail_traces,
        annotators,
    })
}

/// A first-failure note written with a code, and its trace.
#[derive(Debug, Clone, FromRow)]
pub struct ExampleNote {
    pub trace_id: String,
    pub note: String,
    pub email: String,
}

/// Up to `limit` notes of annotations carrying `code` (normalized), in reading order.
pub async fn example_notes(
    db: &Db,
    dataset: DatasetId,
    code: &str,
    limit: i64,
) -> Result<Vec<ExampleNote>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.trace_id, a.first_failure_note AS note, u.email
         FROM annotation_codes c JOIN annotations a ON a.id = c.annotation_id
         JOIN traces t ON t.id = c.trace_pk JOIN users u ON u.id = c.user_id
         WHERE c.dataset_id = $1 AND c.normalized = $2 AND a.first_failure_note <> ''
         ORDER BY c.sort_key LIMIT $3",
    )
    .bind(dataset)
    .bind(code)
    .bind(limit)
    .fetch_all(db.reader())
    .await
}

/// Every current annotation's normalized codes, in the order annotations were first done
/// (for the saturation curve); annotations without codes come as an empty list.
pub async fn codes_in_order(db: &Db, dataset: DatasetId) -> Result<Vec<Vec<String>>, sqlx::Error> {
    let rows: Vec<(AnnotationId, Option<String>)> = sqlx::query_as(
        "SELECT a.id, c.normalized FROM annotations a
         LEFT JOIN annotation_codes c ON c.annotation_id = a.id
         WHERE a.dataset_id = $1 ORDER BY a.created_at, a.id",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut last = None;
    for (id, code) in rows {
        if last != Some(id) {
            out.push(Vec::new());
            last = Some(id);
        }
        if let (Some(code), Some(codes)) = (code, out.last_mut()) {
            codes.push(code);
        }
    }
    Ok(out)
}

/// The failure modes each annotation's codes belong to (active modes only), and the active
/// modes' names, sorted. Read by team review and the reference labels.
pub async fn annotation_modes(
    db: &Db,
    dataset: DatasetId,
) -> Result<(Vec<String>, Vec<(AnnotationId, String)>), sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM failure_modes WHERE dataset_id = $1 AND archived_at IS NULL
         ORDER BY name_key",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    if names.is_empty() {
        return Ok((names, Vec::new()));
    }
    let rows = sqlx::query_as(
        "SELECT DISTINCT c.annotation_id, f.name FROM annotation_codes c
         JOIN failure_mode_codes fc ON fc.dataset_id = c.dataset_id AND fc.code = c.normalized
         JOIN failure_modes f ON f.id = fc.mode_id AND f.archived_at IS NULL
         WHERE c.dataset_id = $1",
    )
    .bind(dataset)
    .fetch_all(db.reader())
    .await?;
    Ok((names, rows))
}

/// SQL: the names of the active modes the codes of annotation `annotation_id` (a column
/// expression) belong to, comma-joined, NULL when none — decoded as [`crate::domain::OpenCodes`]
/// and sorted by the caller. For the annotation export's `failure_modes` column.
pub fn modes_of(backend: Backend, annotation_id: &str) -> String {
    let aggregate = match backend {
        Backend::Sqlite => "group_concat(DISTINCT f.name)",
        Backend::Postgres => "string_agg(DISTINCT f.name, ',')",
    };
    format!(
        "(SELECT {aggregate} FROM annotation_codes c
           JOIN failure_mode_codes fc ON fc.dataset_id = c.dataset_id AND fc.code = c.normalized
           JOIN failure_modes f ON f.id = fc.mode_id AND f.archived_at IS NULL
          WHERE c.annotation_id = {annotation_id})"
    )
}

/// One entry of the change log.
#[derive(Debug, Clone, FromRow)]
pub struct Change {
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub created_at: i64,
}

/// The latest `limit` changes, newest first.
pub async fn changes(db: &Db, dataset: DatasetId, limit: i64) -> Result<Vec<Change>, sqlx::Error> {
    sqlx::query_as(
        "SELECT actor, action, detail, created_at FROM codebook_changes
         WHERE dataset_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(dataset)
    .bind(limit)
    .fetch_all(db.reader())
    .await
}

/// Suggested groupings dismissed, by their key (sorted codes, joined by a line break).
pub async fn dismissed(db: &Db, dataset: DatasetId) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT codes FROM dismissed_suggestions WHERE dataset_id = $1")
        .bind(dataset)
        .fetch_all(db.reader())
        .await
}

/// Why a change to the codebook was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Another mode has this name or had it (an alias).
    NameTaken(String),
    /// The mode is not in this dataset.
    NoSuchMode,
    /// Nothing to do with (no codes selected, merging a mode into itself…).
    Nothing(String),
}

impl Refused {
    pub fn message(&self) -> String {
        match self {
            Refused::NameTaken(name) => format!(
                "A failure mode named \"{name}\" exists already (or had that name before); \
                 choose another name or merge into it."
            ),
            Refused::NoSuchMode => "That failure mode is not in this dataset.".into(),
            Refused::Nothing(why) => why.clone(),
        }
    }
}

/// A change to the codebook, by a lead.
#[derive(Debug, Clone)]
pub enum Edit {
    Create {
        name: String,
        description: String,
    },
    /// Rename and/or redescribe: the old name stays an alias.
    Update {
        mode: ModeId,
        name: String,
        description: String,
    },
    Archive(ModeId),
    Restore(ModeId),
    /// Put codes (normalized) into a mode, moving them from wherever they were.
    Group {
        codes: Vec<String>,
        mode: ModeId,
    },
    /// Take codes out of their modes (split them out).
    Ungroup(Vec<String>),
    /// All of `from`'s codes and names go to `into`; `from` is gone.
    Merge {
        from: ModeId,
        into: ModeId,
    },
    /// A suggested grouping that is not wanted.
    Dismiss(Vec<String>),
}

/// Applies one edit in one transaction with its change-log entry. Returns the mode created
/// or changed (for redirects), or why nothing was done.
pub async fn apply(
    db: &Db,
    dataset: DatasetId,
    actor: &str,
    edit: Edit,
) -> Result<Result<Option<ModeId>, Refused>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let outcome = apply_on(&mut tx, dataset, actor, edit).await?;
    match outcome {
        Ok(_) => tx.commit().await?,
        Err(_) => tx.rollback().await?,
    }
    Ok(outcome)
}

async fn apply_on(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    actor: &str,
    edit: Edit,
) -> Result<Result<Option<ModeId>, Refused>, sqlx::Error> {
    let mut changed = None;
    let (action, detail) = match edit {
        Edit::Create { name, description } => {
            let id = match create_on(tx, dataset, &name, &description).await? {
                Ok(id) => id,
                Err(refused) => return Ok(Err(refused)),
            };
            changed = Some(id);
            ("create", format!("created \"{name}\""))
        }
        Edit::Update {
            mode,
            name,
            description,
        } => {
            let Some(old) = mode_on(tx, dataset, mode).await? else {
                return Ok(Err(Refused::NoSuchMode));
            };
            changed = Some(mode);
            let mut parts = Vec::new();
            if old.name != name {
                if let Some(other) = mode_by_name_on(tx, dataset, &name).await?
                    && other.id != mode
                {
                    return Ok(Err(Refused::NameTaken(name)));
                }
                rename_on(tx, dataset, &old, &name).await?;
                parts.push(format!("renamed \"{}\" to \"{name}\"", old.name));
            }
            if old.description != description {
                sqlx::query("UPDATE failure_modes SET description = $1 WHERE id = $2")
                    .bind(&description)
                    .bind(mode)
                    .execute(&mut *tx)
                    .await?;
                parts.push(format!("changed the description of \"{name}\""));
            }
            if parts.is_empty() {
                return Ok(Ok(changed));
            }
            ("edit", parts.join("; "))
        }
        Edit::Archive(mode) | Edit::Restore(mode) => {
            let archive = matches!(edit, Edit::Archive(_));
            let Some(old) = mode_on(tx, dataset, mode).await? else {
                return Ok(Err(Refused::NoSuchMode));
            };
            if old.archived() == archive {
                return Ok(Ok(Some(mode)));
            }
            sqlx::query("UPDATE failure_modes SET archived_at = $1 WHERE id = $2")
                .bind(archive.then(now))
                .bind(mode)
                .execute(&mut *tx)
                .await?;
            changed = Some(mode);
            if archive {
                ("archive", format!("archived \"{}\"", old.name))
            } else {
                ("restore", format!("restored \"{}\"", old.name))
            }
        }
        Edit::Group { codes, mode } => {
            let Some(target) = mode_on(tx, dataset, mode).await? else {
                return Ok(Err(Refused::NoSuchMode));
            };
            if codes.is_empty() {
                return Ok(Err(Refused::Nothing(
                    "Select the codes to group first.".into(),
                )));
            }
            let moved = group_on(tx, dataset, &codes, mode).await?;
            changed = Some(mode);
            if moved == 0 {
                return Ok(Ok(changed));
            }
            (
                "group",
                format!("put {} into \"{}\"", quoted_list(&codes), target.name),
            )
        }
        Edit::Ungroup(codes) => {
            if codes.is_empty() {
                return Ok(Err(Refused::Nothing(
                    "Select the codes to take out first.".into(),
                )));
            }
            let mut removed = 0;
            for code in &codes {
                removed += sqlx::query(
                    "DELETE FROM failure_mode_codes WHERE dataset_id = $1 AND code = $2",
                )
                .bind(dataset)
                .bind(code)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if removed == 0 {
                return Ok(Ok(None));
            }
            (
                "ungroup",
                format!("took {} out of their modes", quoted_list(&codes)),
            )
        }
        Edit::Merge { from, into } => {
            if from == into {
                return Ok(Err(Refused::Nothing(
                    "Choose another mode to merge into.".into(),
                )));
            }
            let (Some(a), Some(b)) = (
                mode_on(tx, dataset, from).await?,
                mode_on(tx, dataset, into).await?,
            ) else {
                return Ok(Err(Refused::NoSuchMode));
            };
            for sql in [
                "UPDATE failure_mode_codes SET mode_id = $2 WHERE mode_id = $1",
                "UPDATE failure_mode_aliases SET mode_id = $2 WHERE mode_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(from)
                    .bind(into)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM failure_modes WHERE id = $1")
                .bind(from)
                .execute(&mut *tx)
                .await?;
            add_alias(tx, dataset, &a.name, into).await?;
            changed = Some(into);
            (
                "merge",
                format!("merged \"{}\" into \"{}\"", a.name, b.name),
            )
        }
        Edit::Dismiss(mut codes) => {
            codes.sort();
            codes.dedup();
            let key = codes.join("\n");
            sqlx::query(
                "INSERT INTO dismissed_suggestions (dataset_id, codes) VALUES ($1, $2)
                 ON CONFLICT (dataset_id, codes) DO NOTHING",
            )
            .bind(dataset)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
            (
                "dismiss",
                format!("dismissed the suggestion {}", quoted_list(&codes)),
            )
        }
    };
    log_change(tx, dataset, actor, action, &detail).await?;
    Ok(Ok(changed))
}

fn quoted_list(codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn log_change(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO codebook_changes (dataset_id, actor, action, detail, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(dataset)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn mode_on(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    mode: ModeId,
) -> Result<Option<Mode>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MODE_COLUMNS} FROM failure_modes WHERE dataset_id = $1 AND id = $2"
    ))
    .bind(dataset)
    .bind(mode)
    .fetch_optional(&mut *tx)
    .await
}

/// Creates a mode; its own name (normalized) becomes one of its codes when no mode has that
/// code yet, so an annotator who types the mode's name is counted in it.
async fn create_on(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    name: &str,
    description: &str,
) -> Result<Result<ModeId, Refused>, sqlx::Error> {
    if mode_by_name_on(tx, dataset, name).await?.is_some() {
        return Ok(Err(Refused::NameTaken(name.to_string())));
    }
    let id: ModeId = sqlx::query_scalar(
        "INSERT INTO failure_modes (dataset_id, name, name_key, description, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(dataset)
    .bind(name)
    .bind(mode_key(name))
    .bind(description)
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    claim_own_name(tx, dataset, name, id).await?;
    Ok(Ok(id))
}

async fn claim_own_name(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    name: &str,
    mode: ModeId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO failure_mode_codes (dataset_id, code, mode_id) VALUES ($1, $2, $3)
         ON CONFLICT (dataset_id, code) DO NOTHING",
    )
    .bind(dataset)
    .bind(mode_key(name))
    .bind(mode)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn add_alias(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    name: &str,
    mode: ModeId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO failure_mode_aliases (dataset_id, name_key, name, mode_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dataset_id, name_key) DO UPDATE SET mode_id = $4, name = $3",
    )
    .bind(dataset)
    .bind(mode_key(name))
    .bind(name)
    .bind(mode)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Renames `old` to `name`: the old name becomes an alias (an alias equal to the new name
/// goes), and the new name is claimed as a code when free.
async fn rename_on(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    old: &Mode,
    name: &str,
) -> Result<(), sqlx::Error> {
    if mode_key(&old.name) != mode_key(name) {
        add_alias(tx, dataset, &old.name, old.id).await?;
        sqlx::query("DELETE FROM failure_mode_aliases WHERE dataset_id = $1 AND name_key = $2")
            .bind(dataset)
            .bind(mode_key(name))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE failure_modes SET name = $1, name_key = $2 WHERE id = $3")
        .bind(name)
        .bind(mode_key(name))
        .bind(old.id)
        .execute(&mut *tx)
        .await?;
    claim_own_name(tx, dataset, name, old.id).await
}

/// Puts `codes` into `mode` (moving them); returns how many rows changed.
async fn group_on(
    tx: &mut AnyConnection,
    dataset: DatasetId,
    codes: &[String],
    mode: ModeId,
) -> Result<u64, sqlx::Error> {
    let mut changed = 0;
    for code in codes {
        changed += sqlx::query(
            "INSERT INTO failure_mode_codes (dataset_id, code, mode_id) VALUES ($1, $2, $3)
             ON CONFLICT (dataset_id, code) DO UPDATE SET mode_id = $3
             WHERE failure_mode_codes.mode_id <> $3",
        )
        .bind(dataset)
        .bind(code)
        .bind(mode)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    Ok(changed)
}

/// What a codebook import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub modes_created: usize,
    pub descriptions_set: usize,
    pub codes_grouped: usize,
}

impl ImportSummary {
    pub fn changed_nothing(&self) -> bool {
        *self == ImportSummary::default()
    }
}

/// Imports a parsed codebook in one transaction: modes found by name or alias (created
/// otherwise), descriptions set where the file gives one, codes put into their modes (moved
/// from another mode if need be). Importing the same file again changes nothing and logs
/// nothing. A mode of the file that is archived here is refused (restore it first), so an
/// import never silently revives one.
pub async fn import(
    db: &Db,
    dataset: DatasetId,
    actor: &str,
    file: &[ImportedMode],
) -> Result<Result<ImportSummary, Vec<FileProblem>>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let mut summary = ImportSummary::default();
    let mut problems = Vec::new();
    for mode in file {
        let id = match mode_by_name_on(&mut tx, dataset, &mode.name).await? {
            Some(existing) if existing.archived() => {
                problems.push(FileProblem {
                    line: 0,
                    reason: format!(
                        "\"{}\" is archived in this dataset; restore it before importing into it",
                        existing.name
                    ),
                });
                continue;
            }
            Some(existing) => {
                if !mode.description.is_empty() && existing.description != mode.description {
                    sqlx::query("UPDATE failure_modes SET description = $1 WHERE id = $2")
                        .bind(&mode.description)
                        .bind(existing.id)
                        .execute(&mut *tx)
                        .await?;
                    summary.descriptions_set += 1;
                }
                existing.id
            }
            None => match create_on(&mut tx, dataset, &mode.name, &mode.description).await? {
                Ok(id) => {
                    summary.modes_created += 1;
                    id
                }
                Err(refused) => {
                    problems.push(FileProblem {
                        line: 0,
                        reason: refused.message(),
                    });
                    continue;
                }
            },
        };
        summary.codes_grouped += group_on(&mut tx, dataset, &mode.codes, id).await? as usize;
    }
    if !problems.is_empty() {
        tx.rollback().await?;
        return Ok(Err(problems));
    }
    if !summary.changed_nothing() {
        let detail = format!(
            "imported a codebook: {} modes created, {} descriptions set, {} codes grouped",
            summary.modes_created, summary.descriptions_set, summary.codes_grouped
        );
        log_change(&mut tx, dataset, actor, "import", &detail).await?;
    }
    tx.commit().await?;
    Ok(Ok(summary))
}
