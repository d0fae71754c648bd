//! Judge alignment: importing an LLM judge's verdicts (all or nothing), and measuring them
//! against the team's reference labels — confusion matrix with Pass as the positive class,
//! TPR and TNR with Wilson intervals, the Rogan–Gladen corrected pass rate with a bootstrap
//! interval, per failure mode, and the traces where judge and reference differ.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;

use serde::Serialize;

use crate::db::Db;
use crate::db::judges::{self, JudgeRun, JudgeVerdict, NewVerdict};
use crate::domain::agreement::{BootstrapConfig, Interval};
use crate::domain::judge_stats::{
    self, ConfusionMatrix, PassTally, VerdictPair, check_enough_labels,
    corrected_pass_rate_interval,
};
use crate::domain::{DatasetId, RowError, TracePk, Verdict};
use crate::import::MAX_REPORTED_ERRORS;
use crate::review::{self, ReferenceLabel};

/// Longest judge name.
pub const MAX_JUDGE_NAME: usize = 100;

/// A judge's name as typed, checked: 1–100 characters, no control characters or `/`, and not
/// ending in `.json` (its page's JSON form is `/d/{dataset}/judges/{judge}.json`).
pub fn parse_judge_name(raw: &str) -> Result<String, String> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("Name the judge (for example \"gpt-4o judge v2\").".into());
    }
    if name.chars().count() > MAX_JUDGE_NAME {
        return Err(format!(
            "A judge name has at most {MAX_JUDGE_NAME} characters."
        ));
    }
    if name.chars().any(|c| c.is_control() || c == '/') || name.ends_with(".json") {
        return Err("A judge name cannot hold \"/\" or end in \".json\".".into());
    }
    Ok(name)
}

/// One parsed row of a judge file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeRow {
    pub line: u64,
    pub trace_id: String,
    pub verdict: Verdict,
    pub failure_modes: Vec<String>,
}

/// A judge file read and checked, before any trace is looked up.
#[derive(Debug, Clone)]
pub struct JudgeFile {
    pub rows: Vec<JudgeRow>,
    pub has_modes: bool,
}

/// Why a file was refused: the first problems (with their lines) and how many in all.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub message: String,
    pub errors: Vec<RowError>,
    pub error_count: usize,
}

impl Refusal {
    fn whole(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            errors: Vec::new(),
            error_count: 0,
        }
    }

    fn rows(errors: Vec<RowError>, count: usize) -> Refusal {
        Refusal {
            message: format!(
                "Nothing was imported: {count} row{} {} problems.",
                if count == 1 { "" } else { "s" },
                if count == 1 { "has" } else { "have" }
            ),
            errors,
            error_count: count,
        }
    }
}

/// Failure mode names of a cell: comma separated, spaces collapsed, each once
/// (case-insensitively), sorted.
fn mode_names(cell: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for part in cell.split(',') {
        let name = part.split_whitespace().collect::<Vec<_>>().join(" ");
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    }
    names.sort();
    names
}

/// Reads a judge CSV: a header naming `trace_id`, `verdict` and optionally
/// `failure_modes` (any case, any order, other columns ignored), then one row per trace.
/// A bad verdict, an empty trace id or a trace given twice is an error with its line.
pub fn parse_file(reader: impl Read) -> Result<JudgeFile, Refusal> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers: Vec<String> = match csv.headers() {
        Ok(h) => h
            .iter()
            .map(|c| c.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
            .collect(),
        Err(e) => {
            return Err(Refusal::whole(format!(
                "The header line could not be read: {e}"
            )));
        }
    };
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(trace_col), Some(verdict_col)) = (column("trace_id"), column("verdict")) else {
        return Err(Refusal::whole(format!(
            "The file needs the columns trace_id and verdict (and optionally failure_modes); \
             its header has: {}.",
            headers.join(", ")
        )));
    };
    let modes_col = column("failure_modes");
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut count = 0usize;
    let mut seen: HashSet<String> = HashSet::new();
    let mut note = |e: RowError, errors: &mut Vec<RowError>| {
        count += 1;
        if errors.len() < MAX_REPORTED_ERRORS {
            errors.push(e);
        }
    };
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                note(
                    RowError {
                        line,
                        column: String::new(),
                        reason: format!("the row is not valid CSV ({e})"),
                    },
                    &mut errors,
                );
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let err = |column: &str, reason: String| RowError {
            line,
            column: column.to_string(),
            reason,
        };
        let trace_id = record.get(trace_col).unwrap_or("").trim().to_string();
        let raw_verdict = record.get(verdict_col).unwrap_or("");
        if trace_id.is_empty() {
            note(err("trace_id", "the trace id is empty".into()), &mut errors);
            continue;
        }
        let Some(verdict) = Verdict::parse(raw_verdict) else {
            note(
                err(
                    "verdict",
                    format!("\"{}\" is not Pass or Fail", raw_verdict.trim()),
                ),
                &mut errors,
            );
            continue;
        };
        if !seen.insert(trace_id.clone()) {
            note(
                err(
                    "trace_id",
                    format!("the trace \"{trace_id}\" is judged twice in the file"),
                ),
                &mut errors,
            );
            continue;
        }
        let failure_modes = modes_col
            .and_then(|i| record.get(i))
            .map(mode_names)
            .unwrap_or_default();
        rows.push(JudgeRow {
            line,
            trace_id,
            verdict,
            failure_modes,
        });
    }
    if count > 0 {
        return Err(Refusal::rows(errors, count));
    }
    if rows.is_empty() {
        return Err(Refusal::whole(
            "The file has no rows: there is nothing to import.",
        ));
    }
    Ok(JudgeFile {
        rows,
        has_modes: modes_col.is_some(),
    })
}

/// Imports a judge file as a new version of `judge`: all or nothing — a file with any bad
/// row or any trace id the dataset does not have imports nothing and says which lines.
pub async fn import(
    db: &Db,
    dataset: DatasetId,
    judge: &str,
    file_name: &str,
    imported_by: &str,
    reader: impl Read,
) -> anyhow::Result<Result<JudgeRun, Refusal>> {
    let judge = match parse_judge_name(judge) {
        Ok(name) => name,
        Err(message) => return Ok(Err(Refusal::whole(message))),
    };
    let file = match parse_file(reader) {
        Ok(f) => f,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let ids: Vec<&str> = file.rows.iter().map(|r| r.trace_id.as_str()).collect();
    let found = judges::resolve_traces(db, dataset, &ids).await?;
    let unknown: Vec<RowError> = file
        .rows
        .iter()
        .filter(|r| !found.contains_key(&r.trace_id))
        .map(|r| RowError {
            line: r.line,
            column: "trace_id".into(),
            reason: format!("the dataset has no trace \"{}\"", r.trace_id),
        })
        .collect();
    if !unknown.is_empty() {
        let count = unknown.len();
        return Ok(Err(Refusal::rows(
            unknown.into_iter().take(MAX_REPORTED_ERRORS).collect(),
            count,
        )));
    }
    let verdicts: Vec<NewVerdict> = file
        .rows
        .into_iter()
        .map(|r| NewVerdict {
            trace: found[&r.trace_id],
            verdict: r.verdict,
            failure_modes: r.failure_modes,
        })
        .collect();
    let run = judges::insert_run(
        db,
        dataset,
        &judge,
        file_name,
        imported_by,
        file.has_modes,
        &verdicts,
    )
    .await?;
    Ok(Ok(run))
}

/// How a judge measures against the reference labels on one question (the verdict, or one
/// failure mode), as the JSON contract names the fields. Pass is the positive class (for a
/// failure mode: its absence, so every rate reads as a pass rate).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alignment {
    pub judge: String,
    pub version: i64,
    /// Traces the judge judged.
    pub judged: u64,
    /// Judged traces with a reference label.
    pub labeled: u64,
    pub tp: u64,
    #[serde(rename = "fn")]
    pub false_neg: u64,
    pub fp: u64,
    pub tn: u64,
    pub tpr: Option<f64>,
    pub tnr: Option<f64>,
    /// The judge's pass rate over all judged traces.
    pub observed_pass_rate: Option<f64>,
    /// Rogan–Gladen, clipped to 0–1; null with `warning` when it cannot be given.
    pub corrected_pass_rate: Option<f64>,
    pub corrected_pass_rate_ci95: Option<[f64; 2]>,
    /// Why a figure is missing (too few labels, or TPR + TNR ≤ 1), for people.
    pub warning: Option<String>,
    #[serde(skip)]
    pub tpr_ci95: Option<Interval>,
    #[serde(skip)]
    pub tnr_ci95: Option<Interval>,
    #[serde(skip)]
    pub clipped: bool,
}

/// Computes one alignment from the (judge, reference) pairs of the labeled traces and the
/// judge's verdicts on every judged trace.
pub fn align(
    judge: &str,
    version: i64,
    pairs: &[VerdictPair],
    judged: PassTally,
    config: BootstrapConfig,
) -> Alignment {
    let m = ConfusionMatrix::from_pairs(pairs.iter().copied());
    let mut warning = check_enough_labels(&m)
        .err()
        .map(|e| format!("Too few reference labels to correct the pass rate: {e}."));
    let (corrected, ci, clipped) = if warning.is_some() {
        (None, None, false)
    } else {
        match judge_stats::corrected_pass_rate(&m, judged) {
            Ok(c) => {
                let ci = corrected_pass_rate_interval(&m, judged, config)
                    .map(|b| [b.interval.low, b.interval.high]);
                if ci.is_none() {
                    warning = Some(
                        "The 95% interval is withheld: too many resamples had no defined \
                         estimate (the labels are too few or too lopsided)."
                            .into(),
                    );
                }
                (Some(c.value), ci, c.clipped)
            }
            Err(e) => {
                warning = Some(format!("No corrected pass rate: {e}."));
                (None, None, false)
            }
        }
    };
    Alignment {
        judge: judge.to_string(),
        version,
        judged: judged.total,
        labeled: m.labeled(),
        tp: m.true_pos,
        false_neg: m.false_neg,
        fp: m.false_pos,
        tn: m.true_neg,
        tpr: m.tpr(),
        tnr: m.tnr(),
        observed_pass_rate: judged.rate(),
        corrected_pass_rate: corrected,
        corrected_pass_rate_ci95: ci,
        warning,
        tpr_ci95: m.tpr_interval(),
        tnr_ci95: m.tnr_interval(),
        clipped,
    }
}

/// A labeled trace where the judge and the reference differ.
#[derive(Debug, Clone)]
pub struct Miss {
    pub trace_id: String,
    pub judge: Verdict,
    pub reference: Verdict,
    pub judge_modes: Vec<String>,
    pub reference_modes: Vec<String>,
    pub reason: String,
}

/// A run measured: the verdict, each failure mode (when the file had them), the misses.
pub struct Report {
    pub run: JudgeRun,
    pub verdict: Alignment,
    pub modes: Vec<(String, Alignment)>,
    pub misses: Vec<Miss>,
}

/// Measures `run` against the dataset's reference labels.
pub fn report(
    run: JudgeRun,
    verdicts: &[JudgeVerdict],
    labels: &HashMap<TracePk, &ReferenceLabel>,
    config: BootstrapConfig,
) -> Report {
    let pass_of = |v: &JudgeVerdict| v.verdict;
    let pairs: Vec<VerdictPair> = verdicts
        .iter()
        .filter_map(|v| {
            labels.get(&v.trace_pk).map(|l| VerdictPair {
                judge: pass_of(v),
                reference: l.verdict,
            })
        })
        .collect();
    let verdict = align(
        &run.judge,
        run.version,
        &pairs,
        PassTally::from_verdicts(verdicts.iter().map(pass_of)),
        config,
    );
    let mut modes = Vec::new();
    if run.has_modes {
        let names: BTreeSet<&str> = verdicts
            .iter()
            .flat_map(|v| v.failure_modes.iter().map(String::as_str))
            .chain(
                labels
                    .values()
                    .flat_map(|l| l.failure_modes.iter().map(String::as_str)),
            )
            .collect();
        for name in names {
            let absent = |list: &[String]| {
                if list.iter().any(|m| m.eq_ignore_ascii_case(name)) {
                    Verdict::Fail
                } else {
                    Verdict::Pass
                }
            };
            let pairs: Vec<VerdictPair> = verdicts
                .iter()
                .filter_map(|v| {
                    labels.get(&v.trace_pk).map(|l| VerdictPair {
                        judge: absent(&v.failure_modes),
                        reference: absent(&l.failure_modes),
                    })
                })
                .collect();
            let judged =
                PassTally::from_verdicts(verdicts.iter().map(|v| absent(&v.failure_modes)));
            modes.push((
                name.to_string(),
                align(&run.judge, run.version, &pairs, judged, config),
            ));
        }
    }
    let misses = verdicts
        .iter()
        .filter_map(|v| {
            let l = labels.get(&v.trace_pk)?;
            (l.verdict != v.verdict).then(|| Miss {
                trace_id: v.trace_id.clone(),
                judge: v.verdict,
                reference: l.verdict,
                judge_modes: v.failure_modes.clone(),
                reference_modes: l.failure_modes.clone(),
                reason: l.reason.clone(),
            })
        })
        .collect();
    Report {
        run,
        verdict,
        modes,
        misses,
    }
}

/// The reference labels by trace.
pub fn labels_by_trace(labels: &[ReferenceLabel]) -> HashMap<TracePk, &ReferenceLabel> {
    labels.iter().map(|l| (l.trace, l)).collect()
}

/// Measures a judge's run (its latest, or `version`) against the current reference labels.
pub async fn measure(db: &Db, dataset: DatasetId, run: JudgeRun) -> anyhow::Result<Report> {
    let labels = review::reference_labels(db, dataset).await?;
    let verdicts = judges::verdicts_of(db, run.id).await?;
    Ok(report(
        run,
        &verdicts,
        &labels_by_trace(&labels),
        BootstrapConfig::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<JudgeFile, Refusal> {
        parse_file(text.as_bytes())
    }

    #[test]
    fn a_judge_file_reads_in_any_case_and_column_order() {
        let f = file(
            "Verdict,TRACE_ID,failure_modes,extra\nPASS,t1,,x\nfail,t2,\"tone, Tone ,late\",y\n",
        )
        .unwrap();
        assert!(f.has_modes);
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.rows[0].verdict, Verdict::Pass);
        assert_eq!(f.rows[1].failure_modes, ["late", "tone"]);
        assert_eq!(f.rows[1].line, 3);
        assert!(!file("trace_id,verdict\nt1,Pass\n").unwrap().has_modes);
    }

    #[test]
    fn bad_rows_are_refused_with_their_lines() {
        let r = file("trace_id,verdict\nt1,Pass\nt2,maybe\nt1,Fail\n,Pass\n").unwrap_err();
        assert_eq!(r.error_count, 3);
        let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert!(r.errors[0].reason.contains("maybe"));
        assert!(r.errors[1].reason.contains("twice"));
        assert!(
            file("id,verdict\nt1,Pass\n")
                .unwrap_err()
                .message
                .contains("trace_id")
        );
        assert!(
            file("trace_id,verdict\n")
                .unwrap_err()
                .message
                .contains("no rows")
        );
    }

    #[test]
    fn judge_names_are_checked() {
        assert_eq!(parse_judge_name("  gpt-4o   v2 ").unwrap(), "gpt-4o v2");
        assert!(parse_judge_name("").is_err());
        assert!(parse_judge_name("a/b").is_err());
        assert!(parse_judge_name("x.json").is_err());
        assert!(parse_judge_name(&"j".repeat(101)).is_err());
    }

    /// A known confusion matrix: tp 40, fn 10, fp 5, tn 45 (100 labeled), and 200 judged
    /// traces of which 110 Pass. TPR = 0.8, TNR = 0.9, observed 0.55; Rogan–Gladen
    /// (0.55 + 0.9 − 1) / (0.8 + 0.9 − 1) = 0.45 / 0.7 = 0.642857…
    #[test]
    fn figures_equal_the_hand_computation() {
        let mut pairs = Vec::new();
        for (judge, reference, n) in [
            (Verdict::Pass, Verdict::Pass, 40),
            (Verdict::Fail, Verdict::Pass, 10),
            (Verdict::Pass, Verdict::Fail, 5),
            (Verdict::Fail, Verdict::Fail, 45),
        ] {
            pairs.extend(std::iter::repeat_n(VerdictPair { judge, reference }, n));
        }
        let a = align(
            "j",
            1,
            &pairs,
            PassTally {
                pass: 110,
                total: 200,
            },
            BootstrapConfig::default(),
        );
        assert_eq!(
            (a.tp, a.false_neg, a.fp, a.tn, a.labeled, a.judged),
            (40, 10, 5, 45, 100, 200)
        );
        assert!((a.tpr.unwrap() - 0.8).abs() < 1e-12);
        assert!((a.tnr.unwrap() - 0.9).abs() < 1e-12);
        assert!((a.observed_pass_rate.unwrap() - 0.55).abs() < 1e-12);
        let corrected = a.corrected_pass_rate.unwrap();
        assert!((corrected - 0.45 / 0.7).abs() < 1e-12, "{corrected}");
        let [lo, hi] = a.corrected_pass_rate_ci95.unwrap();
        assert!(lo <= corrected && corrected <= hi, "{lo} {corrected} {hi}");
        assert!(a.warning.is_none());
        let json = serde_json::to_value(&a).unwrap();
        for key in [
            "judge",
            "judged",
            "labeled",
            "tp",
            "fn",
            "fp",
            "tn",
            "tpr",
            "tnr",
            "observed_pass_rate",
            "corrected_pass_rate",
            "corrected_pass_rate_ci95",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn a_judge_no_better_than_chance_gets_a_warning_not_a_number() {
        // TPR 0.5, TNR 0.5 on 20 labels.
        let mut pairs = Vec::new();
        for (judge, reference) in [
            (Verdict::Pass, Verdict::Pass),
            (Verdict::Fail, Verdict::Pass),
            (Verdict::Pass, Verdict::Fail),
            (Verdict::Fail, Verdict::Fail),
        ] {
            pairs.extend(std::iter::repeat_n(VerdictPair { judge, reference }, 5));
        }
        let a = align(
            "j",
            1,
            &pairs,
            PassTally { pass: 5, total: 10 },
            BootstrapConfig::default(),
        );
        assert_eq!(a.corrected_pass_rate, None);
        assert!(
            a.warning.as_deref().unwrap().contains("chance"),
            "{:?}",
            a.warning
        );
        let few = align(
            "j",
            1,
            &pairs[..4],
            PassTally { pass: 5, total: 10 },
            BootstrapConfig::default(),
        );
        assert!(few.warning.as_deref().unwrap().contains("Too few"));
    }
}
