//! Team review, as pure functions over annotators' labels: whether a trace's annotators
//! agree, its reference label, and the agreement report (`/d/{dataset}/agreement.json`)
//! computed with `domain::agreement`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::agreement::{self, Item, Rating, Undefined};
use super::{TracePk, UserId, Verdict};

/// What one annotator decided about a trace: the verdict and the failure modes their open
/// codes belong to (names; empty when their codes are ungrouped or they wrote none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub verdict: Verdict,
    pub modes: BTreeSet<String>,
}

/// Every current label of one trace, one per annotator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLabels {
    pub trace: TracePk,
    pub labels: Vec<(UserId, Label)>,
}

impl TraceLabels {
    /// Coded by at least two people.
    pub fn is_shared(&self) -> bool {
        self.labels.len() >= 2
    }

    /// Coded by two or more people who differ in verdict or in failure modes.
    pub fn disagrees(&self) -> bool {
        self.is_shared() && self.labels.windows(2).any(|w| w[0].1 != w[1].1)
    }

    /// The label every one of at least two annotators gave, if they all agree.
    pub fn unanimous(&self) -> Option<&Label> {
        (self.is_shared() && !self.disagrees()).then(|| &self.labels[0].1)
    }
}

/// Agreement on the verdict, as the JSON contract names its fields.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerdictAgreement {
    /// Traces with current verdicts from at least two annotators.
    pub items: usize,
    /// Distinct annotators among them.
    pub annotators: usize,
    pub percent_agreement: Option<f64>,
    /// Over the traces coded by every one of `annotators`; null when there are none.
    pub fleiss_kappa: Option<f64>,
    pub krippendorff_alpha: Option<f64>,
    pub pairs: Vec<PairAgreement>,
}

/// Two annotators on the traces they both coded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PairAgreement {
    /// Their emails.
    pub a: String,
    pub b: String,
    pub items: usize,
    pub percent_agreement: Option<f64>,
    pub cohen_kappa: Option<f64>,
}

/// Agreement on one failure mode: its presence in each annotation as the label.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModeAgreement {
    pub name: String,
    pub items: usize,
    pub percent_agreement: Option<f64>,
    pub krippendorff_alpha: Option<f64>,
}

/// The whole report of `/d/{dataset}/agreement.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgreementReport {
    pub verdict: VerdictAgreement,
    pub failure_modes: Vec<ModeAgreement>,
}

/// The rated items of the report: the shared traces, with their verdicts as categories
/// (Pass 0, Fail 1) and, per failure mode, its presence (1) or absence (0).
pub struct Items {
    pub verdict: Vec<Item>,
    /// Traces coded by every annotator of the report (Fleiss' kappa needs them).
    pub complete: Vec<Item>,
    pub modes: Vec<(String, Vec<Item>)>,
    pub annotators: BTreeSet<UserId>,
}

fn verdict_category(v: Verdict) -> u32 {
    match v {
        Verdict::Pass => 0,
        Verdict::Fail => 1,
    }
}

/// Builds the items from the traces (only shared traces count) and the dataset's failure
/// modes.
pub fn items(traces: &[TraceLabels], modes: &[String]) -> Items {
    let shared: Vec<&TraceLabels> = traces.iter().filter(|t| t.is_shared()).collect();
    let annotators: BTreeSet<UserId> = shared
        .iter()
        .flat_map(|t| t.labels.iter().map(|(u, _)| *u))
        .collect();
    let item = |t: &TraceLabels, category: &dyn Fn(&Label) -> u32| {
        Item::new(t.labels.iter().map(|(u, l)| Rating {
            annotator: u.0,
            category: category(l),
        }))
    };
    // One label per annotator per trace is how the rows come: a duplicate is a bug upstream,
    // and such a trace is left out rather than miscounted.
    let verdict: Vec<Item> = shared
        .iter()
        .filter_map(|t| item(t, &|l| verdict_category(l.verdict)).ok())
        .collect();
    let complete = verdict
        .iter()
        .filter(|i| i.ratings().len() == annotators.len())
        .cloned()
        .collect();
    let modes = modes
        .iter()
        .map(|name| {
            let present = |l: &Label| u32::from(l.modes.contains(name));
            let items = shared
                .iter()
                .filter_map(|t| item(t, &present).ok())
                .collect();
            (name.clone(), items)
        })
        .collect();
    Items {
        verdict,
        complete,
        modes,
        annotators,
    }
}

fn defined(value: Result<f64, Undefined>) -> Option<f64> {
    value.ok()
}

/// The agreement report: percent agreement (agreeing annotator pairs per trace, averaged
/// over traces), Fleiss' kappa over the traces every annotator coded, Krippendorff's alpha
/// (nominal) over all shared traces, Cohen's kappa per pair on the traces both coded, and
/// per failure mode percent agreement and alpha on its presence. `email` names annotators.
pub fn report(items: &Items, email: &BTreeMap<UserId, String>) -> AgreementReport {
    let name = |u: &UserId| email.get(u).cloned().unwrap_or_else(|| format!("user {u}"));
    let people: Vec<&UserId> = items.annotators.iter().collect();
    let mut pairs = Vec::new();
    for (i, a) in people.iter().enumerate() {
        for b in &people[i + 1..] {
            let both: Vec<Item> = items
                .verdict
                .iter()
                .filter(|it| it.category_by(a.0).is_some() && it.category_by(b.0).is_some())
                .cloned()
                .collect();
            if both.is_empty() {
                continue;
            }
            pairs.push(PairAgreement {
                a: name(a),
                b: name(b),
                items: both.len(),
                percent_agreement: defined(agreement::pair_percent_agreement(&both, a.0, b.0)),
                cohen_kappa: defined(agreement::cohen_kappa(&both, a.0, b.0)),
            });
        }
    }
    AgreementReport {
        verdict: VerdictAgreement {
            items: items.verdict.len(),
            annotators: items.annotators.len(),
            percent_agreement: defined(agreement::percent_agreement(&items.verdict)),
            fleiss_kappa: if items.complete.is_empty() {
                None
            } else {
                defined(agreement::fleiss_kappa(&items.complete))
            },
            krippendorff_alpha: defined(agreement::krippendorff_alpha(&items.verdict)),
            pairs,
        },
        failure_modes: items
            .modes
            .iter()
            .map(|(name, mode_items)| ModeAgreement {
                name: name.clone(),
                items: mode_items.len(),
                percent_agreement: defined(agreement::percent_agreement(mode_items)),
                krippendorff_alpha: defined(agreement::krippendorff_alpha(mode_items)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(v: Verdict, modes: &[&str]) -> Label {
        Label {
            verdict: v,
            modes: modes.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn trace(id: i64, labels: &[(i64, Label)]) -> TraceLabels {
        TraceLabels {
            trace: TracePk(id),
            labels: labels
                .iter()
                .map(|(u, l)| (UserId(*u), l.clone()))
                .collect(),
        }
    }

    use Verdict::{Fail, Pass};

    #[test]
    fn agreement_and_unanimity_per_trace() {
        let same = trace(
            1,
            &[(1, label(Fail, &["tone"])), (2, label(Fail, &["tone"]))],
        );
        assert!(!same.disagrees());
        assert_eq!(same.unanimous(), Some(&label(Fail, &["tone"])));
        let modes = trace(2, &[(1, label(Fail, &["tone"])), (2, label(Fail, &[]))]);
        assert!(modes.disagrees(), "same verdict, other modes");
        assert_eq!(modes.unanimous(), None);
        let single = trace(3, &[(1, label(Pass, &[]))]);
        assert!(!single.disagrees());
        assert_eq!(single.unanimous(), None, "one annotator is not a reference");
    }

    /// A hand-computed fixture: three annotators, four shared traces, one single-coded.
    /// Verdicts (P/F): t1 P P P; t2 P F P; t3 F F (only 1 and 2); t4 P F (only 2 and 3);
    /// t5 P (only 1: not an item).
    #[test]
    fn the_report_equals_the_hand_computation() {
        let p = || label(Pass, &[]);
        let f = || label(Fail, &[]);
        let tone = || label(Fail, &["tone"]);
        let traces = vec![
            trace(1, &[(1, p()), (2, p()), (3, p())]),
            trace(2, &[(1, p()), (2, f()), (3, p())]),
            trace(3, &[(1, tone()), (2, tone())]),
            trace(4, &[(2, p()), (3, tone())]),
            trace(5, &[(1, p())]),
        ];
        let emails: BTreeMap<UserId, String> = [(1, "a@x"), (2, "b@x"), (3, "c@x")]
            .map(|(u, e)| (UserId(u), e.to_string()))
            .into();
        let items = items(&traces, &["tone".to_string()]);
        let r = report(&items, &emails);
        assert_eq!(r.verdict.items, 4);
        assert_eq!(r.verdict.annotators, 3);
        // Agreeing pairs per trace: t1 3/3, t2 1/3, t3 1/1, t4 0/1 → (1 + 1/3 + 1 + 0)/4.
        let pa = r.verdict.percent_agreement.unwrap();
        assert!((pa - (7.0 / 3.0) / 4.0).abs() < 1e-12, "{pa}");
        // Fleiss over t1 and t2 only (coded by all three): P̄ = (1 + 1/3)/2 = 2/3;
        // p_pass = 5/6, p_fail = 1/6, P̄e = 26/36; κ = (2/3 − 26/36)/(1 − 26/36) = −0.2.
        let fleiss = r.verdict.fleiss_kappa.unwrap();
        assert!((fleiss + 0.2).abs() < 1e-12, "{fleiss}");
        // Pairs: a–b on t1 t2 t3: agree 2 of 3; a–c on t1 t2: 2 of 2; b–c on t1 t2 t4: 1 of 3.
        let pair = |a: &str, b: &str| {
            r.verdict
                .pairs
                .iter()
                .find(|p| p.a == a && p.b == b)
                .unwrap()
                .clone()
        };
        assert_eq!(pair("a@x", "b@x").items, 3);
        assert!((pair("a@x", "b@x").percent_agreement.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // a–b: a = P P F, b = P F F; p_o = 2/3, p_e = (2/3·1/3) + (1/3·2/3) = 4/9;
        // κ = (2/3 − 4/9)/(1 − 4/9) = 0.4.
        assert!((pair("a@x", "b@x").cohen_kappa.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(pair("a@x", "c@x").percent_agreement, Some(1.0));
        assert_eq!(pair("b@x", "c@x").items, 3);
        // Mode "tone": present t3 (a, b), t4 (c); absent elsewhere. Agreeing pairs:
        // t1 3/3, t2 3/3, t3 1/1, t4 0/1 → 3/4.
        let tone_mode = &r.failure_modes[0];
        assert_eq!((tone_mode.name.as_str(), tone_mode.items), ("tone", 4));
        assert_eq!(tone_mode.percent_agreement, Some(0.75));
        // Alpha matches the agreement module on the same items.
        assert_eq!(
            r.verdict.krippendorff_alpha,
            agreement::krippendorff_alpha(&items.verdict).ok()
        );
    }

    #[test]
    fn no_shared_traces_give_nulls_not_numbers() {
        let traces = vec![trace(1, &[(1, label(Pass, &[]))])];
        let r = report(&items(&traces, &[]), &BTreeMap::new());
        assert_eq!(r.verdict.items, 0);
        assert_eq!(r.verdict.fleiss_kappa, None);
        assert_eq!(r.verdict.percent_agreement, None);
        assert!(r.verdict.pairs.is_empty());
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["verdict"]["fleiss_kappa"].is_null());
        assert!(json["failure_modes"].as_array().unwrap().is_empty());
    }
}
