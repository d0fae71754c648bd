//! Team review over the stored annotations: the agreement report, the disagreements a lead
//! settles, and the reference labels (the golden set) — read in bounded batches from
//! `db::review` and computed by `domain::review`.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::db::Db;
use crate::db::review::{self, Adjudication, Coded};
use crate::domain::agreement::{self, BootstrapConfig, BootstrapInterval, Statistic, Strength};
use crate::domain::judge_stats::{Split, SplitPercents, stratified_split};
use crate::domain::review::{AgreementReport, Items, Label, TraceLabels};
use crate::domain::{AnnotationId, DatasetId, SortKey, TracePk, UserId, Verdict};

/// Annotations read per batch.
const BATCH: i64 = 1000;

/// One trace with every current annotation of it.
#[derive(Debug, Clone)]
pub struct CodedTrace {
    pub trace: TracePk,
    pub trace_id: String,
    pub sort_key: SortKey,
    pub coded: Vec<Coded>,
    /// The failure modes of each annotation's codes, parallel to `coded`.
    pub modes: Vec<BTreeSet<String>>,
}

impl CodedTrace {
    pub fn labels(&self) -> TraceLabels {
        TraceLabels {
            trace: self.trace,
            labels: self
                .coded
                .iter()
                .zip(&self.modes)
                .map(|(c, m)| {
                    (
                        c.user_id,
                        Label {
                            verdict: c.verdict,
                            modes: m.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Which failure modes each annotation's open codes belong to, and the dataset's modes.
/// The codebook (failure modes) decides; without one every set is empty.
pub struct Modes {
    pub names: Vec<String>,
    pub of_annotation: HashMap<AnnotationId, BTreeSet<String>>,
}

impl Modes {
    pub async fn load(db: &Db, dataset: DatasetId) -> Result<Modes, sqlx::Error> {
        let (names, of_annotation) = review::failure_modes(db, dataset).await?;
        Ok(Modes {
            names,
            of_annotation,
        })
    }

    fn of(&self, annotation: AnnotationId) -> BTreeSet<String> {
        self.of_annotation
            .get(&annotation)
            .cloned()
            .unwrap_or_default()
    }
}

/// Walks the dataset's annotations in reading order, a trace at a time, calling `each` with
/// every complete trace until it returns `false`.
pub async fn walk_traces(
    db: &Db,
    dataset: DatasetId,
    modes: &Modes,
    mut each: impl FnMut(CodedTrace) -> bool,
) -> Result<(), sqlx::Error> {
    let mut key = (0, AnnotationId(i64::MAX));
    let mut current: Option<CodedTrace> = None;
    loop {
        let page = review::coded_page(db, dataset, key, BATCH).await?;
        let last_page = (page.len() as i64) < BATCH;
        for coded in page {
            key = (coded.sort_key.0, coded.annotation_id);
            if current.as_ref().is_some_and(|t| t.trace != coded.trace_pk) {
                let done = current.take().expect("checked");
                if !each(done) {
                    return Ok(());
                }
            }
            let trace = current.get_or_insert_with(|| CodedTrace {
                trace: coded.trace_pk,
                trace_id: coded.trace_id.clone(),
                sort_key: coded.sort_key,
                coded: Vec::new(),
                modes: Vec::new(),
            });
            trace.modes.push(modes.of(coded.annotation_id));
            trace.coded.push(coded);
        }
        if last_page {
            if let Some(done) = current.take() {
                each(done);
            }
            return Ok(());
        }
    }
}

/// The agreement report and, for the page, its 95% intervals and readings.
pub struct Agreement {
    pub report: AgreementReport,
    pub percent_interval: Option<BootstrapInterval>,
    pub fleiss_interval: Option<BootstrapInterval>,
    pub alpha_interval: Option<BootstrapInterval>,
}

impl Agreement {
    /// The Landis–Koch reading of a kappa or alpha.
    pub fn reading(value: Option<f64>) -> &'static str {
        value.map_or("not defined", |v| Strength::of(v).label())
    }
}

/// Annotations read per batch by [`walk_shared_labels`] (small rows).
const RATED_BATCH: i64 = 5000;

/// Walks the traces at least two people coded, in reading order from `after` (a sort key),
/// as their annotators' labels (verdict and failure modes), calling `each` until it returns
/// `false`: what agreement and finding disagreements need, read without notes and codes.
pub async fn walk_shared_labels(
    db: &Db,
    dataset: DatasetId,
    after: i64,
    modes: &Modes,
    mut each: impl FnMut(TraceLabels) -> bool,
) -> Result<(), sqlx::Error> {
    let mut key = (after, AnnotationId(i64::MAX));
    let mut current: Option<TraceLabels> = None;
    loop {
        let page = review::rated_page(db, dataset, key, RATED_BATCH).await?;
        let last_page = (page.len() as i64) < RATED_BATCH;
        for rated in page {
            key = (rated.sort_key.0, rated.annotation_id);
            if current.as_ref().is_some_and(|t| t.trace != rated.trace_pk) {
                let done = current.take().expect("checked");
                if !each(done) {
                    return Ok(());
                }
            }
            current
                .get_or_insert_with(|| TraceLabels {
                    trace: rated.trace_pk,
                    labels: Vec::new(),
                })
                .labels
                .push((
                    rated.user_id,
                    Label {
                        verdict: rated.verdict,
                        modes: modes.of(rated.annotation_id),
                    },
                ));
        }
        if last_page {
            if let Some(done) = current.take() {
                each(done);
            }
            return Ok(());
        }
    }
}

/// Computes the agreement report over the traces at least two people coded.
pub async fn agreement(db: &Db, dataset: DatasetId) -> Result<Agreement, sqlx::Error> {
    let modes = Modes::load(db, dataset).await?;
    let mut traces = Vec::new();
    walk_shared_labels(db, dataset, 0, &modes, |t| {
        traces.push(t);
        true
    })
    .await?;
    let users: BTreeSet<UserId> = traces
        .iter()
        .flat_map(|t| t.labels.iter().map(|(u, _)| *u))
        .collect();
    let emails = review::emails_of(db, &users.into_iter().collect::<Vec<_>>()).await?;
    let items: Items = crate::domain::review::items(&traces, &modes.names);
    let report = crate::domain::review::report(&items, &emails);
    let config = BootstrapConfig::default();
    Ok(Agreement {
        percent_interval: agreement::bootstrap_agreement(
            &items.verdict,
            config,
            Statistic::PercentAgreement,
        ),
        fleiss_interval: agreement::bootstrap_agreement(
            &items.complete,
            config,
            Statistic::FleissKappa,
        ),
        alpha_interval: agreement::bootstrap_agreement(
            &items.verdict,
            config,
            Statistic::KrippendorffAlpha,
        ),
        report,
    })
}

/// A trace whose annotators differ, with the lead's latest decision if any.
pub struct Disagreement {
    pub coded: CodedTrace,
    pub settled: Option<Adjudication>,
}

/// Up to `limit` disagreements after sort key `after`, in reading order; settled ones only
/// when `include_settled`. Also whether more follow.
pub async fn disagreements(
    db: &Db,
    dataset: DatasetId,
    after: i64,
    limit: usize,
    include_settled: bool,
) -> Result<(Vec<Disagreement>, bool), sqlx::Error> {
    let modes = Modes::load(db, dataset).await?;
    let mut settled = review::latest_adjudications(db, dataset).await?;
    let mut open = Vec::new();
    let mut more = false;
    walk_shared_labels(db, dataset, after, &modes, |t| {
        if !t.disagrees() {
            return true;
        }
        let decision = settled.remove(&t.trace);
        if decision.is_some() && !include_settled {
            return true;
        }
        if open.len() == limit {
            more = true;
            return false;
        }
        open.push((t.trace, decision));
        true
    })
    .await?;
    // Only the traces shown are read in full, in one statement.
    let shown: Vec<TracePk> = open.iter().map(|(trace, _)| *trace).collect();
    let mut by_trace: HashMap<TracePk, Vec<Coded>> = HashMap::new();
    for coded in review::coded_traces(db, &shown).await? {
        by_trace.entry(coded.trace_pk).or_default().push(coded);
    }
    let mut found = Vec::with_capacity(open.len());
    for (trace, settled) in open {
        let Some(coded) = by_trace.remove(&trace) else {
            continue; // its annotations went away between the two reads
        };
        let first = &coded[0];
        found.push(Disagreement {
            coded: CodedTrace {
                trace,
                trace_id: first.trace_id.clone(),
                sort_key: first.sort_key,
                modes: coded.iter().map(|c| modes.of(c.annotation_id)).collect(),
                coded,
            },
            settled,
        });
    }
    Ok((found, more))
}

/// The first open disagreement after `after` (or before, walking from the start, when
/// there is none after), for "save and next".
pub async fn next_open(
    db: &Db,
    dataset: DatasetId,
    after: i64,
) -> Result<Option<Disagreement>, sqlx::Error> {
    let (mut found, _) = disagreements(db, dataset, after, 1, false).await?;
    if found.is_empty() && after > 0 {
        (found, _) = disagreements(db, dataset, 0, 1, false).await?;
    }
    Ok(found.pop())
}

/// Where a reference label comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Adjudicated,
    Unanimous,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Adjudicated => "adjudicated",
            Source::Unanimous => "unanimous",
        }
    }
}

/// A trace's reference label: its adjudicated decision, or else the verdict and failure
/// modes all of its (at least two) annotators agree on.
#[derive(Debug, Clone)]
pub struct ReferenceLabel {
    pub trace: TracePk,
    pub trace_id: String,
    pub sort_key: SortKey,
    pub verdict: Verdict,
    /// Sorted names.
    pub failure_modes: Vec<String>,
    pub source: Source,
    /// The emails of the trace's annotators, sorted.
    pub annotators: Vec<String>,
    pub adjudicated_by: Option<String>,
    pub reason: String,
    /// Where the label goes when a judge prompt is developed against the labels.
    pub split: Split,
}

/// Every reference label of the dataset, in reading order. Traces still in disagreement
/// (and traces one person coded, unless adjudicated) are not in it.
pub async fn reference_labels(
    db: &Db,
    dataset: DatasetId,
) -> Result<Vec<ReferenceLabel>, sqlx::Error> {
    let modes = Modes::load(db, dataset).await?;
    let mut decisions = review::latest_adjudications(db, dataset).await?;
    let mut labels = Vec::new();
    walk_traces(db, dataset, &modes, |t| {
        let mut annotators: Vec<String> = t.coded.iter().map(|c| c.email.clone()).collect();
        annotators.sort();
        if let Some(d) = decisions.remove(&t.trace) {
            labels.push(adjudicated(&t, d, annotators));
        } else if let Some(agreed) = t.labels().unanimous() {
            labels.push(ReferenceLabel {
                trace: t.trace,
                trace_id: t.trace_id.clone(),
                sort_key: t.sort_key,
                verdict: agreed.verdict,
                failure_modes: agreed.modes.iter().cloned().collect(),
                source: Source::Unanimous,
                annotators,
                adjudicated_by: None,
                reason: String::new(),
                split: Split::Test,
            });
        }
        true
    })
    .await?;
    // Adjudicated traces nobody has an annotation of any more are labels too.
    for (trace, d) in decisions {
        if let Some(trace_id) = review::trace_id_of(db, trace).await? {
            let t = CodedTrace {
                trace,
                trace_id,
                sort_key: SortKey(i64::MAX),
                coded: Vec::new(),
                modes: Vec::new(),
            };
            labels.push(adjudicated(&t, d, Vec::new()));
        }
    }
    assign_splits(&mut labels);
    Ok(labels)
}

fn adjudicated(t: &CodedTrace, d: Adjudication, annotators: Vec<String>) -> ReferenceLabel {
    ReferenceLabel {
        trace: t.trace,
        trace_id: t.trace_id.clone(),
        sort_key: t.sort_key,
        verdict: d.verdict,
        failure_modes: d.failure_modes,
        source: Source::Adjudicated,
        annotators,
        adjudicated_by: Some(d.email),
        reason: d.reason,
        split: Split::Test,
    }
}

/// Assigns each label its split: deterministic (a hash of the trace id), stratified by
/// the reference verdict, 15% train / 45% dev / 40% test, so the examples a judge prompt
/// quotes (train) never come from the labels it is finally measured on (test).
fn assign_splits(labels: &mut [ReferenceLabel]) {
    let keys: Vec<(&str, Verdict)> = labels
        .iter()
        .map(|l| (l.trace_id.as_str(), l.verdict))
        .collect();
    // Trace ids are unique in a dataset, so the split cannot fail on a repeated key.
    if let Ok(splits) = stratified_split(&keys, SplitPercents::default()) {
        for (label, split) in labels.iter_mut().zip(splits) {
            label.split = split;
        }
    }
}

/// The reference labels as CSV: `trace_id, verdict, failure_modes, source, annotators,
/// adjudicated_by, reason, split` (verdict `Pass`/`Fail`, lists joined with ", ", split
/// `train`/`dev`/`test`). Unless `raw`,
/// cells a spreadsheet would run as a formula get a leading `'`, as in the annotation export.
pub fn reference_csv(labels: &[ReferenceLabel], raw: bool) -> anyhow::Result<Vec<u8>> {
    let cell = |text: &str| -> String {
        if raw {
            text.to_string()
        } else {
            crate::export::neutralize(text).into_owned()
        }
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "trace_id",
        "verdict",
        "failure_modes",
        "source",
        "annotators",
        "adjudicated_by",
        "reason",
        "split",
    ])?;
    for l in labels {
        w.write_record([
            cell(&l.trace_id),
            l.verdict.label().to_string(),
            cell(&l.failure_modes.join(", ")),
            l.source.as_str().to_string(),
            cell(&l.annotators.join(", ")),
            cell(l.adjudicated_by.as_deref().unwrap_or("")),
            cell(&l.reason),
            l.split.label().to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
}
