//! Axial coding: a dataset's open codes counted, grouped into failure modes, ranked; the
//! codebook export (CSV/JSON) and import, and the suggestions annotators see while coding.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::db::codebook::{self, CodeCount, ImportSummary, Mode, Totals};
use crate::db::scope::{Annotations, Scope};
use crate::db::{Db, codes};
use crate::domain::code_clusters::{self, Cluster, ClusterParams};
use crate::domain::codebook::{FileProblem, parse_codebook};
use crate::domain::saturation::{self, Block};
use crate::domain::{DatasetId, ModeId, UserId};

/// A failure mode with its counts.
#[derive(Debug, Clone)]
pub struct ModeRow {
    pub mode: Mode,
    /// Its codes in use (normalized), most traces first.
    pub codes: Vec<String>,
    /// Distinct Fail traces carrying at least one of its codes.
    pub fail_traces: i64,
    /// Of all Fail traces.
    pub share_of_failures: Option<f64>,
    /// Of all annotated traces.
    pub share_of_annotated: Option<f64>,
    /// Per annotator (in [`Overview::annotators`] order): their Fail traces with it.
    pub per_annotator: Vec<i64>,
}

/// A code in use with its counts and its mode.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub counts: CodeCount,
    pub mode: Option<ModeId>,
}

/// Everything the codebook page and the export show, from one set of counting queries.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Active modes, most Fail traces first (ties by name).
    pub modes: Vec<ModeRow>,
    pub archived: Vec<ModeRow>,
    /// The codes in no active mode, as one entry.
    pub ungrouped: ModeRow,
    /// Every code in use, most traces first.
    pub codes: Vec<CodeRow>,
    pub totals: Totals,
    /// (id, email) of the annotators, by email.
    pub annotators: Vec<(UserId, String)>,
}

/// The ids of the modes that are not archived.
fn active_modes(modes: &[Mode]) -> HashSet<ModeId> {
    modes
        .iter()
        .filter(|m| !m.archived())
        .map(|m| m.id)
        .collect()
}

fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub async fn overview(db: &Db, dataset: DatasetId) -> Result<Overview, sqlx::Error> {
    let counts = codebook::code_counts(db, dataset).await?;
    let grouping = codebook::grouping(db, dataset).await?;
    let modes = codebook::modes(db, dataset).await?;
    let mode_counts = codebook::mode_counts(db, dataset).await?;
    let totals = codebook::totals(db, dataset).await?;
    let annotators: Vec<(UserId, String)> = totals
        .annotators
        .iter()
        .map(|(id, email, _, _)| (*id, email.clone()))
        .collect();
    let active = active_modes(&modes);
    let codes: Vec<CodeRow> = counts
        .into_iter()
        .map(|c| CodeRow {
            mode: grouping.get(&c.code).copied(),
            counts: c,
        })
        .collect();
    // Each mode's codes in use, most traces first; codes of no active mode under `None`
    // (an archived mode also lists its own, for the archive section).
    let mut codes_of: HashMap<Option<ModeId>, Vec<String>> = HashMap::new();
    for c in &codes {
        let code = c.counts.code.clone();
        match c.mode {
            Some(m) if active.contains(&m) => codes_of.entry(Some(m)).or_default().push(code),
            Some(m) => {
                codes_of.entry(Some(m)).or_default().push(code.clone());
                codes_of.entry(None).or_default().push(code);
            }
            None => codes_of.entry(None).or_default().push(code),
        }
    }
    let row = |mode: Mode, key: Option<ModeId>| {
        let fail_traces = mode_counts.fail_traces.get(&key).copied().unwrap_or(0);
        ModeRow {
            codes: codes_of.get(&key).cloned().unwrap_or_default(),
            fail_traces,
            share_of_failures: share(fail_traces, totals.fail_traces),
            share_of_annotated: share(fail_traces, totals.annotated_traces),
            per_annotator: annotators
                .iter()
                .map(|(u, _)| {
                    mode_counts
                        .by_annotator
                        .get(&(key, *u))
                        .copied()
                        .unwrap_or(0)
                })
                .collect(),
            mode,
        }
    };
    let (mut active_rows, mut archived) = (Vec::new(), Vec::new());
    for mode in modes {
        let archived_mode = mode.archived();
        let id = mode.id;
        if archived_mode {
            // Archived: its codes are listed, its counts are not (they count as ungrouped).
            let mut r = row(mode, Some(id));
            r.fail_traces = 0;
            r.share_of_failures = None;
            r.share_of_annotated = None;
            r.per_annotator.iter_mut().for_each(|n| *n = 0);
            archived.push(r);
        } else {
            active_rows.push(row(mode, Some(id)));
        }
    }
    active_rows.sort_by(|a, b| {
        b.fail_traces
            .cmp(&a.fail_traces)
            .then_with(|| a.mode.name.to_lowercase().cmp(&b.mode.name.to_lowercase()))
    });
    let ungrouped = row(
        Mode {
            id: ModeId(0),
            name: "Ungrouped codes".into(),
            description: String::new(),
            archived_at: None,
            created_at: 0,
        },
        None,
    );
    Ok(Overview {
        modes: active_rows,
        archived,
        ungrouped,
        codes,
        totals,
        annotators,
    })
}

/// One row of the codebook export, with the contract's column names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExportRow {
    pub failure_mode: String,
    pub description: String,
    pub open_code: String,
    pub traces: i64,
    pub annotations: i64,
    pub annotators: i64,
    pub fail_traces: i64,
}

/// The CSV columns, in order.
pub const EXPORT_COLUMNS: [&str; 7] = [
    "failure_mode",
    "description",
    "open_code",
    "traces",
    "annotations",
    "annotators",
    "fail_traces",
];

/// The export's rows: per active mode (most Fail traces first) its codes in use, or one
/// row with an empty `open_code` when it has none; then the ungrouped codes (codes of
/// archived modes among them). Codes in their normalized form, most traces first.
pub fn export_rows(overview: &Overview) -> Vec<ExportRow> {
    let by_code: HashMap<&str, &CodeCount> = overview
        .codes
        .iter()
        .map(|c| (c.counts.code.as_str(), &c.counts))
        .collect();
    let mut rows = Vec::new();
    let groups = overview.modes.iter().map(|m| (Some(m), &m.codes));
    for (mode, codes) in groups.chain([(None, &overview.ungrouped.codes)]) {
        let (name, description) = match mode {
            Some(m) => (m.mode.name.clone(), m.mode.description.clone()),
            None => (String::new(), String::new()),
        };
        if codes.is_empty() && mode.is_some() {
            rows.push(ExportRow {
                failure_mode: name.clone(),
                description: description.clone(),
                open_code: String::new(),
                traces: 0,
                annotations: 0,
                annotators: 0,
                fail_traces: 0,
            });
        }
        for code in codes {
            let c = by_code[code.as_str()];
            rows.push(ExportRow {
                failure_mode: name.clone(),
                description: description.clone(),
                open_code: c.code.clone(),
                traces: c.traces,
                annotations: c.annotations,
                annotators: c.annotators,
                fail_traces: c.fail_traces,
            });
        }
    }
    rows
}

/// The export as CSV; unless `raw`, formula-like cells get a leading `'`.
pub fn export_csv(rows: &[ExportRow], raw: bool) -> anyhow::Result<Vec<u8>> {
    let cell = |text: &str| -> String {
        if raw {
            text.to_string()
        } else {
            crate::export::neutralize(text).into_owned()
        }
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(EXPORT_COLUMNS)?;
    for r in rows {
        w.write_record([
            cell(&r.failure_mode),
            cell(&r.description),
            cell(&r.open_code),
            r.traces.to_string(),
            r.annotations.to_string(),
            r.annotators.to_string(),
            r.fail_traces.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
}

/// The JSON export: the dataset, the rows (the CSV's columns as fields) and the modes with
/// their shares.
#[derive(Debug, Serialize)]
pub struct ExportJson {
    pub dataset: String,
    pub annotated_traces: i64,
    pub fail_traces: i64,
    pub rows: Vec<ExportRow>,
    pub failure_modes: Vec<ModeJson>,
}

#[derive(Debug, Serialize)]
pub struct ModeJson {
    pub name: String,
    pub description: String,
    pub fail_traces: i64,
    pub share_of_failures: Option<f64>,
    pub share_of_annotated: Option<f64>,
    pub open_codes: Vec<String>,
}

pub fn export_json(dataset: &str, overview: &Overview) -> ExportJson {
    ExportJson {
        dataset: dataset.to_string(),
        annotated_traces: overview.totals.annotated_traces,
        fail_traces: overview.totals.fail_traces,
        rows: export_rows(overview),
        failure_modes: overview
            .modes
            .iter()
            .map(|m| ModeJson {
                name: m.mode.name.clone(),
                description: m.mode.description.clone(),
                fail_traces: m.fail_traces,
                share_of_failures: m.share_of_failures,
                share_of_annotated: m.share_of_annotated,
                open_codes: m.codes.clone(),
            })
            .collect(),
    }
}

/// Reads and applies a codebook file, all or nothing.
pub async fn import(
    db: &Db,
    dataset: DatasetId,
    actor: &str,
    data: &[u8],
) -> Result<Result<ImportSummary, Vec<FileProblem>>, sqlx::Error> {
    match parse_codebook(data) {
        Ok(modes) => codebook::import(db, dataset, actor, &modes).await,
        Err(problems) => Ok(Err(problems)),
    }
}

/// The saturation curve of the dataset's current annotations in about `blocks` blocks (a
/// block size within `range`), and the block size used.
pub async fn saturation_curve(
    db: &Db,
    dataset: DatasetId,
    blocks: usize,
    range: (usize, usize),
) -> Result<(Vec<Block>, usize), sqlx::Error> {
    let annotations = codebook::codes_in_order(db, dataset).await?;
    let block = (annotations.len() / blocks.max(1)).clamp(range.0.max(1), range.1.max(1));
    let size = std::num::NonZeroUsize::new(block).expect("at least 1");
    Ok((saturation::saturation_curve(annotations, size), block))
}

/// Suggested groupings of the codes in no active mode, minus the dismissed ones; and how
/// many codes were ungrouped. Reads only the counts per code and the grouping.
pub async fn suggestions(
    db: &Db,
    dataset: DatasetId,
) -> Result<(Vec<Cluster>, usize), sqlx::Error> {
    let dismissed: HashSet<String> = codebook::dismissed(db, dataset)
        .await?
        .into_iter()
        .collect();
    let grouping = codebook::grouping(db, dataset).await?;
    let active = active_modes(&codebook::modes(db, dataset).await?);
    let input: Vec<code_clusters::CodeCount> = codebook::code_counts(db, dataset)
        .await?
        .into_iter()
        .filter(|c| !grouping.get(&c.code).is_some_and(|m| active.contains(m)))
        .map(|c| code_clusters::CodeCount {
            code: c.code,
            uses: c.annotations as u64,
        })
        .collect();
    let ungrouped = input.len();
    let clusters = tokio::task::spawn_blocking(move || {
        code_clusters::suggest_clusters(&input, &ClusterParams::default())
    })
    .await
    .map_err(|e| sqlx::Error::Protocol(format!("clustering: {e}")))?;
    let clusters = clusters
        .into_iter()
        .filter(|c| !dismissed.contains(&suggestion_key(c)))
        .collect();
    Ok((clusters, ungrouped))
}

/// How a dismissed suggestion is remembered: its codes, sorted, one per line.
pub fn suggestion_key(cluster: &Cluster) -> String {
    let mut codes: Vec<&str> = cluster.members.iter().map(|m| m.code.as_str()).collect();
    codes.sort_unstable();
    codes.join("\n")
}

/// A code offered while annotating.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Suggestion {
    /// What is inserted into the field.
    pub code: String,
    /// The failure mode it belongs to (a mode's own entry names itself).
    pub mode: Option<String>,
    /// The mode's definition, the rubric, for a mode's own entry.
    pub description: Option<String>,
    /// Current annotations carrying it (0 for a mode nobody typed yet).
    pub uses: i64,
}

/// At most this many codes are offered (the field filters them as one types).
pub const MAX_SUGGESTIONS: usize = 500;

/// Codes to offer an annotator: the active failure modes (name and rubric), then the codes
/// grouped into them, then the most used other codes. Under an assignment an annotator
/// codes blind, so the "most used" part is limited to their own codes; the modes and their
/// codes are the lead's rubric and always offered. The uses come from `counted`, the
/// codebook's counts (kept between views, see `codebook_cache`).
pub async fn suggestions_for(
    db: &Db,
    scope: &Scope,
    counted: &Overview,
) -> Result<Vec<Suggestion>, sqlx::Error> {
    let dataset = scope.dataset;
    let modes = codebook::modes(db, dataset).await?;
    let grouping = codebook::grouping(db, dataset).await?;
    let own_only = scope.annotations == Annotations::OwnOnly && scope.under_assignment;
    let counts: Vec<&CodeCount> = counted.codes.iter().map(|c| &c.counts).collect();
    let own: Option<HashSet<String>> = if own_only {
        Some(codes::codes_used_by(db, dataset, scope.viewer).await?)
    } else {
        None
    };
    let active: HashMap<ModeId, &Mode> = modes
        .iter()
        .filter(|m| !m.archived())
        .map(|m| (m.id, m))
        .collect();
    let uses: HashMap<&str, i64> = counts
        .iter()
        .map(|c| (c.code.as_str(), c.annotations))
        .collect();
    let mut out: Vec<Suggestion> = Vec::new();
    let mut offered: HashSet<String> = HashSet::new();
    // `modes` come ordered by name.
    for m in modes.iter().filter(|m| !m.archived()) {
        let key = crate::domain::codebook::mode_key(&m.name);
        offered.insert(key.clone());
        out.push(Suggestion {
            code: m.name.clone(),
            mode: Some(m.name.clone()),
            description: (!m.description.is_empty()).then(|| m.description.clone()),
            uses: uses.get(key.as_str()).copied().unwrap_or(0),
        });
    }
    let mut grouped: Vec<(&String, &Mode)> = grouping
        .iter()
        .filter_map(|(code, id)| active.get(id).map(|m| (code, *m)))
        .collect();
    grouped.sort_by(|a, b| {
        let (ua, ub) = (uses.get(a.0.as_str()), uses.get(b.0.as_str()));
        ub.cmp(&ua).then_with(|| a.0.cmp(b.0))
    });
    for (code, mode) in grouped {
        if offered.insert(code.clone()) {
            out.push(Suggestion {
                code: code.clone(),
                mode: Some(mode.name.clone()),
                description: None,
                uses: uses.get(code.as_str()).copied().unwrap_or(0),
            });
        }
    }
    let mut rest: Vec<&CodeCount> = counts
        .into_iter()
        .filter(|c| !offered.contains(&c.code))
        .filter(|c| own.as_ref().is_none_or(|own| own.contains(&c.code)))
        .collect();
    rest.sort_by(|a, b| {
        b.annotations
            .cmp(&a.annotations)
            .then_with(|| a.code.cmp(&b.code))
    });
    for c in rest {
        out.push(Suggestion {
            code: c.code.clone(),
            mode: None,
            description: None,
            uses: c.annotations,
        });
    }
    out.truncate(MAX_SUGGESTIONS);
    Ok(out)
}

/// What a codebook import did, in words (the page's notice and the command's output).
pub fn import_notice(summary: &ImportSummary) -> String {
    if summary.changed_nothing() {
        "Imported: the codebook already had all of it; nothing changed.".into()
    } else {
        format!(
            "Imported: {} failure modes created, {} descriptions set, {} codes grouped.",
            summary.modes_created, summary.descriptions_set, summary.codes_grouped
        )
    }
}
