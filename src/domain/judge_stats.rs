//! An LLM judge measured against reference labels, with Pass as the positive class:
//! confusion matrix, TPR/TNR with Wilson intervals, the Rogan–Gladen corrected pass rate
//! and its bootstrap interval, the minimum-labels rule, and a stable train/dev/test split.
//!
//! Pure functions: the web layer only formats what they return.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::agreement::{
    BootstrapConfig, BootstrapInterval, Interval, binomial, percentile_interval,
};
use super::annotation::Verdict;

/// The judge's verdict and the reference label on one labeled trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictPair {
    pub judge: Verdict,
    pub reference: Verdict,
}

/// Counts of (judge, reference) outcomes on the labeled traces. Pass is the positive class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// Judge Pass, reference Pass.
    pub true_pos: u64,
    /// Judge Fail, reference Pass.
    pub false_neg: u64,
    /// Judge Pass, reference Fail.
    pub false_pos: u64,
    /// Judge Fail, reference Fail.
    pub true_neg: u64,
}

impl ConfusionMatrix {
    /// The matrix of some (judge, reference) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = VerdictPair>) -> ConfusionMatrix {
        let mut matrix = ConfusionMatrix::default();
        for pair in pairs {
            matrix.record(pair);
        }
        matrix
    }

    /// Counts one more labeled trace.
    pub fn record(&mut self, pair: VerdictPair) {
        let cell = match (pair.judge, pair.reference) {
            (Verdict::Pass, Verdict::Pass) => &mut self.true_pos,
            (Verdict::Fail, Verdict::Pass) => &mut self.false_neg,
            (Verdict::Pass, Verdict::Fail) => &mut self.false_pos,
            (Verdict::Fail, Verdict::Fail) => &mut self.true_neg,
        };
        *cell += 1;
    }

    /// Labeled traces counted.
    pub fn labeled(&self) -> u64 {
        self.true_pos + self.false_neg + self.false_pos + self.true_neg
    }

    /// Labeled traces whose reference label is Pass.
    pub fn reference_pass(&self) -> u64 {
        self.true_pos + self.false_neg
    }

    /// Labeled traces whose reference label is Fail.
    pub fn reference_fail(&self) -> u64 {
        self.false_pos + self.true_neg
    }

    /// True positive rate (sensitivity): tp / (tp + fn), the share of reference-Pass traces
    /// the judge passes. `None` with no reference-Pass trace.
    pub fn tpr(&self) -> Option<f64> {
        ratio(self.true_pos, self.reference_pass())
    }

    /// True negative rate (specificity): tn / (tn + fp), the share of reference-Fail traces
    /// the judge fails. `None` with no reference-Fail trace.
    pub fn tnr(&self) -> Option<f64> {
        ratio(self.true_neg, self.reference_fail())
    }

    /// 95% Wilson interval for the TPR.
    pub fn tpr_interval(&self) -> Option<Interval> {
        wilson_interval(self.true_pos, self.reference_pass())
    }

    /// 95% Wilson interval for the TNR.
    pub fn tnr_interval(&self) -> Option<Interval> {
        wilson_interval(self.true_neg, self.reference_fail())
    }
}

/// How many of some judged traces the judge passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassTally {
    pub pass: u64,
    pub total: u64,
}

impl PassTally {
    /// The tally of some verdicts.
    pub fn from_verdicts(verdicts: impl IntoIterator<Item = Verdict>) -> PassTally {
        verdicts
            .into_iter()
            .fold(PassTally::default(), |tally, verdict| PassTally {
                pass: tally.pass + u64::from(verdict == Verdict::Pass),
                total: tally.total + 1,
            })
    }

    /// The observed pass rate, pass / total; `None` with no verdict.
    pub fn rate(&self) -> Option<f64> {
        ratio(self.pass, self.total)
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The normal quantile for a two-sided 95% interval.
pub const Z_95: f64 = 1.959964;

/// The 95% Wilson score interval (Wilson 1927) for `successes` out of `trials`; `None`
/// with no trial.
///
/// With p = successes / trials, n = trials and z = 1.959964, the interval is
/// (p + z²/2n ± z·√(p(1 − p)/n + z²/4n²)) / (1 + z²/n): the proportions a score test
/// would not reject. Unlike p ± z·√(p(1 − p)/n) it stays within 0–1 and does not collapse
/// to a point at 0/n or n/n.
pub fn wilson_interval(successes: u64, trials: u64) -> Option<Interval> {
    let p = ratio(successes, trials)?;
    let n = trials as f64;
    let z2 = Z_95 * Z_95;
    let centre = p + z2 / (2.0 * n);
    let half_width = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let scale = 1.0 + z2 / n;
    Some(Interval {
        low: ((centre - half_width) / scale).max(0.0),
        high: ((centre + half_width) / scale).min(1.0),
    })
}

/// A pass rate corrected for the judge's errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectedRate {
    /// The estimate, within 0–1.
    pub value: f64,
    /// The formula's value before clipping to 0–1.
    pub unclipped: f64,
    /// Whether `unclipped` fell outside 0–1 and was clipped. This happens when the observed
    /// rate is beyond what the measured TPR and TNR can produce (sampling noise, or a judge
    /// that behaves differently on the judged traces than on the labeled ones).
    pub clipped: bool,
}

/// Why no corrected pass rate can be given.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Uncorrectable {
    #[error("the judge has judged no trace")]
    NoJudgedTraces,
    #[error("no labeled trace has reference Pass, so the judge's TPR is unknown")]
    NoReferencePass,
    #[error("no labeled trace has reference Fail, so the judge's TNR is unknown")]
    NoReferenceFail,
    /// TPR + TNR ≤ 1: the judge passes reference-Fail traces at least as often as
    /// reference-Pass ones, so its verdicts carry no information to correct from.
    #[error(
        "TPR + TNR is {sum:.3}, not above 1: the judge tells Pass from Fail no better than \
         chance, so its pass rate cannot be corrected"
    )]
    NoBetterThanChance { sum: f64 },
}

/// The Rogan–Gladen (1978) estimate of the true pass rate from the judge's observed pass
/// rate and its TPR and TNR (all shares in 0–1):
///
/// (observed + TNR − 1) / (TPR + TNR − 1), clipped to 0–1 (see [`CorrectedRate`]).
///
/// Undefined when TPR + TNR ≤ 1 (Youden's J ≤ 0).
pub fn rogan_gladen(observed: f64, tpr: f64, tnr: f64) -> Result<CorrectedRate, Uncorrectable> {
    let sum = tpr + tnr;
    if sum.is_nan() || sum <= 1.0 {
        return Err(Uncorrectable::NoBetterThanChance { sum });
    }
    let unclipped = (observed + tnr - 1.0) / (sum - 1.0);
    let value = unclipped.clamp(0.0, 1.0);
    Ok(CorrectedRate {
        value,
        unclipped,
        clipped: value != unclipped,
    })
}

/// The corrected pass rate of `judged` (the judge's verdicts on the traces whose pass rate
/// is wanted, usually all traces) given the judge's TPR and TNR on the `labeled` traces.
pub fn corrected_pass_rate(
    labeled: &ConfusionMatrix,
    judged: PassTally,
) -> Result<CorrectedRate, Uncorrectable> {
    let tpr = labeled.tpr().ok_or(Uncorrectable::NoReferencePass)?;
    let tnr = labeled.tnr().ok_or(Uncorrectable::NoReferenceFail)?;
    let observed = judged.rate().ok_or(Uncorrectable::NoJudgedTraces)?;
    rogan_gladen(observed, tpr, tnr)
}

/// A 95% percentile-bootstrap interval for [`corrected_pass_rate`].
///
/// In plain words: each resample redraws the labeled traces at random with replacement (as
/// many as there are) and recomputes TPR and TNR from them; independently, it redraws the
/// judged traces the same way and recomputes the observed pass rate; then it applies the
/// Rogan–Gladen formula, clipped to 0–1. The interval runs from the 2.5th to the 97.5th
/// percentile of those estimates. Resamples where the estimate is undefined (no
/// reference-Pass or reference-Fail trace drawn, or TPR + TNR ≤ 1) are skipped and
/// counted in `skipped`; if more than 10% are
/// ([`MAX_UNDEFINED_SHARE`](super::agreement::MAX_UNDEFINED_SHARE)), or there is nothing to
/// resample, the result is `None`. Drawing from the counts is the same as drawing
/// individual traces. Deterministic: `StdRng` seeded with `config.seed`.
///
/// The two redraws are independent even when the labeled traces are among the judged ones;
/// that treats the two samples as separate, a mild simplification. Cost: one random draw
/// per labeled and per judged trace per resample.
pub fn corrected_pass_rate_interval(
    labeled: &ConfusionMatrix,
    judged: PassTally,
    config: BootstrapConfig,
) -> Option<BootstrapInterval> {
    if labeled.labeled() == 0 || judged.total == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let estimates = (0..config.resamples)
        .filter_map(|_| {
            let labeled = resample_matrix(labeled, &mut rng);
            let judged = resample_tally(judged, &mut rng);
            corrected_pass_rate(&labeled, judged).ok().map(|c| c.value)
        })
        .collect();
    percentile_interval(estimates, config.resamples)
}

/// As many labeled traces as `matrix` holds, drawn from it with replacement: a
/// multinomial draw over the four cells, made as successive binomial draws (the same
/// distribution as drawing trace by trace, at a cost that does not grow with the count).
fn resample_matrix(matrix: &ConfusionMatrix, rng: &mut StdRng) -> ConfusionMatrix {
    let cells = [
        matrix.true_pos,
        matrix.false_neg,
        matrix.false_pos,
        matrix.true_neg,
    ];
    let mut drawn = [0u64; 4];
    let mut left_n = matrix.labeled();
    let mut left_weight = matrix.labeled();
    for (cell, &count) in drawn.iter_mut().zip(&cells) {
        if left_n == 0 || left_weight == 0 {
            break;
        }
        *cell = binomial(left_n, count as f64 / left_weight as f64, rng);
        left_n -= *cell;
        left_weight -= count;
    }
    let [true_pos, false_neg, false_pos, true_neg] = drawn;
    ConfusionMatrix {
        true_pos,
        false_neg,
        false_pos,
        true_neg,
    }
}

/// As many verdicts as `tally` counts, drawn from it with replacement (one binomial draw).
fn resample_tally(tally: PassTally, rng: &mut StdRng) -> PassTally {
    PassTally {
        pass: binomial(tally.total, tally.pass as f64 / tally.total as f64, rng),
        total: tally.total,
    }
}

/// Fewest labeled traces for which the judge's numbers are shown.
pub const MIN_LABELED: u64 = 10;

/// Fewest labeled traces of each reference class (Pass, Fail). Below 3, TPR or TNR can only
/// be 0, ½ or 1 and one trace moves it by at least a third.
pub const MIN_PER_REFERENCE_CLASS: u64 = 3;

/// Why the labels are too few to show the judge's TPR, TNR and corrected pass rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooFewLabels {
    #[error("{have} labeled traces; at least {MIN_LABELED} are needed")]
    Total { have: u64 },
    #[error(
        "{have} labeled traces have reference {}; at least {MIN_PER_REFERENCE_CLASS} are needed",
        .class.label()
    )]
    Class { class: Verdict, have: u64 },
}

/// The minimum-labels rule: at least [`MIN_LABELED`] labeled traces, and at least
/// [`MIN_PER_REFERENCE_CLASS`] with each reference verdict. Below it, callers show
/// "too few labels" and the reason instead of numbers. Checks the total first, then Pass,
/// then Fail, and reports the first shortfall.
pub fn check_enough_labels(labeled: &ConfusionMatrix) -> Result<(), TooFewLabels> {
    if labeled.labeled() < MIN_LABELED {
        return Err(TooFewLabels::Total {
            have: labeled.labeled(),
        });
    }
    for (class, have) in [
        (Verdict::Pass, labeled.reference_pass()),
        (Verdict::Fail, labeled.reference_fail()),
    ] {
        if have < MIN_PER_REFERENCE_CLASS {
            return Err(TooFewLabels::Class { class, have });
        }
    }
    Ok(())
}

/// Where a labeled trace goes when a judge prompt is developed against labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// Examples that may be quoted in the judge prompt.
    Train,
    /// Used while iterating on the prompt.
    Dev,
    /// Held out for the final TPR/TNR.
    Test,
}

impl Split {
    /// All splits, in assignment order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    pub fn label(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// Whole-number percentages for train, dev and test, adding up to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPercents {
    percents: [u32; 3],
}

impl SplitPercents {
    pub fn new(train: u32, dev: u32, test: u32) -> Result<SplitPercents, SplitError> {
        let sum = train.saturating_add(dev).saturating_add(test);
        if sum != 100 {
            return Err(SplitError::NotHundred(sum));
        }
        Ok(SplitPercents {
            percents: [train, dev, test],
        })
    }

    /// The percentage for `split`.
    pub fn of(&self, split: Split) -> u32 {
        self.percents[split as usize]
    }
}

impl Default for SplitPercents {
    /// 15% train, 45% dev, 40% test.
    fn default() -> Self {
        SplitPercents {
            percents: [15, 45, 40],
        }
    }
}

/// Why a split could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the split percentages add up to {0}, not 100")]
    NotHundred(u32),
    #[error("the key {0:?} appears more than once")]
    DuplicateKey(String),
}

/// How many of `n` items each split gets, by largest remainder: each split first gets the
/// whole part of its quota n·percent/100, then the items left over go one each to the
/// splits with the largest fractional parts (ties to the earlier split: train, dev, test).
/// Each count is within one of its quota, and they add up to `n`. Exact integer arithmetic.
pub fn split_counts(n: usize, percents: SplitPercents) -> [usize; 3] {
    let quotas = percents.percents.map(|p| p as usize * n);
    let mut counts = quotas.map(|q| q / 100);
    let left_over = n - counts.iter().sum::<usize>();
    let mut by_remainder = [0, 1, 2];
    // Stable sort: equal remainders keep train, dev, test order.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(quotas[i] % 100));
    for &i in by_remainder.iter().take(left_over) {
        counts[i] += 1;
    }
    counts
}

/// A deterministic, stratified train/dev/test split: `items` are (stable key, stratum) —
/// e.g. (trace key, reference verdict). Returns each item's split, in input order.
///
/// Within each stratum, items are ordered by [`split_hash`] of their key (then by key), and
/// the first [`split_counts`] go to train, the next to dev, the rest to test. So each
/// stratum matches the percentages as closely as whole items allow, and an item's split
/// depends only on the keys in its stratum — never on input order.
///
/// Adding items leaves most assignments alone: a new item takes its place in hash order,
/// the counts are recomputed, and only items next to a train/dev or dev/test boundary can
/// cross it. Adding one item to a stratum moved at most three existing items of that
/// stratum, 0.8 on average, at every stratum size up to 2,000 (checked offline; the unit
/// test covers 300); removing one is
/// the mirror image. Largest remainder can even shrink a split by one as a stratum grows
/// (16 → 17 items: train 3 → 2), which is one of those moves. Keys must be unique across
/// all strata.
pub fn stratified_split<K: AsRef<str>, S: Eq>(
    items: &[(K, S)],
    percents: SplitPercents,
) -> Result<Vec<Split>, SplitError> {
    let mut seen = HashSet::with_capacity(items.len());
    if let Some((key, _)) = items.iter().find(|(key, _)| !seen.insert(key.as_ref())) {
        return Err(SplitError::DuplicateKey(key.as_ref().to_owned()));
    }
    let mut splits = vec![Split::Test; items.len()];
    for mut members in strata(items) {
        members.sort_unstable();
        let counts = split_counts(members.len(), percents);
        let labels = Split::ALL
            .iter()
            .zip(counts)
            .flat_map(|(&split, count)| std::iter::repeat_n(split, count));
        for (&(_, _, index), split) in members.iter().zip(labels) {
            splits[index] = split;
        }
    }
    Ok(splits)
}

/// A split item as (split hash, key, input index): sorting these gives the split order.
type Member<'a> = (u64, &'a str, usize);

/// The items grouped by stratum. Strata are few (a verdict, a failure mode), so a linear
/// scan per item is enough and asks no more of `S` than equality.
fn strata<K: AsRef<str>, S: Eq>(items: &[(K, S)]) -> Vec<Vec<Member<'_>>> {
    let mut strata: Vec<(&S, Vec<Member<'_>>)> = Vec::new();
    for (index, (key, stratum)) in items.iter().enumerate() {
        let key = key.as_ref();
        let member = (split_hash(key), key, index);
        match strata.iter_mut().find(|(s, _)| *s == stratum) {
            Some((_, members)) => members.push(member),
            None => strata.push((stratum, vec![member])),
        }
    }
    strata.into_iter().map(|(_, members)| members).collect()
}

/// The stable order key of a split item: FNV-1a 64 of the key's UTF-8 bytes, then the
/// MurmurHash3 `fmix64` finalizer. FNV-1a alone leaves keys that differ only in their last
/// characters (`trace-0041`, `trace-0042`…) next to each other in hash order, so
/// consecutive traces would land in the same split; the finalizer spreads them. Both steps
/// are fixed by their specifications, unlike std's `DefaultHasher`.
pub fn split_hash(key: &str) -> u64 {
    fmix64(fnv1a_64(key.as_bytes()))
}

/// FNV-1a, 64-bit (Fowler, Noll, Vo).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// MurmurHash3's 64-bit finalizer (Appleby): a bijection that mixes every input bit into
/// every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use std::collections::BTreeMap;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    fn matrix(true_pos: u64, false_neg: u64, false_pos: u64, true_neg: u64) -> ConfusionMatrix {
        ConfusionMatrix {
            true_pos,
            false_neg,
            false_pos,
            true_neg,
        }
    }

    fn tally(pass: u64, total: u64) -> PassTally {
        PassTally { pass, total }
    }

    // Confusion matrix -----------------------------------------------------------------

    #[test]
    fn confusion_matrix_counts_pass_as_positive() {
        use Verdict::{Fail, Pass};
        let pairs = [
            (Pass, Pass),
            (Pass, Pass),
            (Fail, Pass),
            (Pass, Fail),
            (Fail, Fail),
        ]
        .map(|(judge, reference)| VerdictPair { judge, reference });
        let m = ConfusionMatrix::from_pairs(pairs);
        assert_eq!(m, matrix(2, 1, 1, 1));
        assert_eq!(
            (m.labeled(), m.reference_pass(), m.reference_fail()),
            (5, 3, 2)
        );
        assert!(close(m.tpr().unwrap(), 2.0 / 3.0, 1e-12));
        assert!(close(m.tnr().unwrap(), 0.5, 1e-12));
    }

    #[test]
    fn rates_are_none_without_their_class() {
        let only_pass = matrix(3, 1, 0, 0);
        assert_eq!(only_pass.tnr(), None);
        assert_eq!(only_pass.tnr_interval(), None);
        assert!(close(only_pass.tpr().unwrap(), 0.75, 1e-12));
        let only_fail = matrix(0, 0, 2, 2);
        assert_eq!(only_fail.tpr(), None);
        assert_eq!(ConfusionMatrix::default().tpr(), None);
        assert_eq!(PassTally::default().rate(), None);
    }

    #[test]
    fn pass_tally_counts_verdicts() {
        use Verdict::{Fail, Pass};
        let counted = PassTally::from_verdicts([Pass, Fail, Pass, Pass]);
        assert_eq!(counted, tally(3, 4));
        assert_eq!(counted.rate(), Some(0.75));
    }

    // Wilson ---------------------------------------------------------------------------

    #[test]
    fn wilson_interval_matches_newcombe_1998() {
        // Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        // Statistics in Medicine 17:857–872, Table I, method 3 (score, no continuity
        // correction), printed to four decimals.
        let cases = [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ];
        for (x, n, low, high) in cases {
            let interval = wilson_interval(x, n).unwrap();
            assert!(close(interval.low, low, 5e-5), "{x}/{n}: {interval:?}");
            assert!(close(interval.high, high, 5e-5), "{x}/{n}: {interval:?}");
        }
    }

    #[test]
    fn wilson_interval_edges() {
        assert_eq!(wilson_interval(0, 0), None);
        let all = wilson_interval(29, 29).unwrap();
        assert_eq!(all.high, 1.0);
        assert!(all.low > 0.88 && all.low < 0.8831, "{all:?}");
        let none = wilson_interval(0, 5).unwrap();
        assert_eq!(none.low, 0.0);
        assert!(none.high > 0.0);
        // The TPR interval of a matrix is the Wilson interval of tp out of tp + fn.
        assert_eq!(
            matrix(81, 182, 0, 1).tpr_interval(),
            wilson_interval(81, 263)
        );
    }

    // Rogan–Gladen ---------------------------------------------------------------------

    #[test]
    fn rogan_gladen_matches_the_epir_examples() {
        // R package epiR, help page of `epi.prev`: 150 cows, 23 test positive, Se 0.96,
        // Sp 0.89 — "The estimated true prevalence of brucellosis in this herd is 5.1 cases
        // per 100 cows."
        let brucellosis = rogan_gladen(23.0 / 150.0, 0.96, 0.89).unwrap();
        assert!(close(brucellosis.value, 0.051, 5e-4), "{brucellosis:?}");
        assert!(!brucellosis.clipped);

        // Same page: H. pylori, 6 of 151 positive, Se 0.964, Sp 0.927 — "0 cases per 100":
        // the formula goes negative and is clipped to 0.
        let h_pylori = rogan_gladen(6.0 / 151.0, 0.964, 0.927).unwrap();
        assert_eq!(h_pylori.value, 0.0);
        assert!(h_pylori.clipped && h_pylori.unclipped < 0.0, "{h_pylori:?}");
    }

    #[test]
    fn rogan_gladen_hand_computed() {
        // (0.5 + 0.8 − 1) / (0.9 + 0.8 − 1) = 0.3 / 0.7.
        let middle = rogan_gladen(0.5, 0.9, 0.8).unwrap();
        assert!(close(middle.value, 3.0 / 7.0, 1e-12));
        // (0.95 + 0.9 − 1) / (0.8 + 0.9 − 1) = 0.85 / 0.7 > 1: clipped to 1.
        let high = rogan_gladen(0.95, 0.8, 0.9).unwrap();
        assert_eq!(high.value, 1.0);
        assert!(high.clipped && close(high.unclipped, 0.85 / 0.7, 1e-12));
        // A perfect judge needs no correction.
        assert!(close(
            rogan_gladen(0.3, 1.0, 1.0).unwrap().value,
            0.3,
            1e-12
        ));
    }

    #[test]
    fn rogan_gladen_is_undefined_for_a_judge_no_better_than_chance() {
        for (tpr, tnr) in [(0.5, 0.5), (0.3, 0.4), (1.0, 0.0), (f64::NAN, 0.9)] {
            assert!(
                matches!(
                    rogan_gladen(0.5, tpr, tnr),
                    Err(Uncorrectable::NoBetterThanChance { .. })
                ),
                "{tpr} {tnr}"
            );
        }
        let message = rogan_gladen(0.5, 0.5, 0.5).unwrap_err().to_string();
        assert!(message.contains("1.000"), "{message}");
    }

    #[test]
    fn corrected_pass_rate_from_counts() {
        // TPR 18/20 = 0.9, TNR 8/10 = 0.8, observed 50/100: as the hand-computed case.
        let labeled = matrix(18, 2, 2, 8);
        let judged = tally(50, 100);
        let corrected = corrected_pass_rate(&labeled, judged).unwrap();
        assert!(close(corrected.value, 3.0 / 7.0, 1e-12));

        let none = PassTally::default();
        assert_eq!(
            corrected_pass_rate(&labeled, none),
            Err(Uncorrectable::NoJudgedTraces)
        );
        assert_eq!(
            corrected_pass_rate(&matrix(0, 0, 1, 4), judged),
            Err(Uncorrectable::NoReferencePass)
        );
        assert_eq!(
            corrected_pass_rate(&matrix(4, 1, 0, 0), judged),
            Err(Uncorrectable::NoReferenceFail)
        );
    }

    #[test]
    fn bootstrap_interval_is_deterministic_and_contains_the_estimate() {
        let labeled = matrix(36, 4, 6, 24);
        let judged = tally(170, 300);
        let estimate = corrected_pass_rate(&labeled, judged).unwrap().value;
        let config = BootstrapConfig::default();
        let interval = corrected_pass_rate_interval(&labeled, judged, config).unwrap();
        assert!(
            interval.interval.contains(estimate),
            "{estimate} {interval:?}"
        );
        assert!(interval.interval.low < interval.interval.high);
        assert_eq!(interval.skipped, 0);
        assert_eq!(
            corrected_pass_rate_interval(&labeled, judged, config),
            Some(interval)
        );
        let other = BootstrapConfig { seed: 7, ..config };
        assert_ne!(
            corrected_pass_rate_interval(&labeled, judged, other),
            Some(interval)
        );
    }

    #[test]
    fn bootstrap_interval_skips_undefined_resamples() {
        let judged = tally(60, 100);
        // 2 reference-Fail traces in 100: a resample draws neither about 13% of the time.
        let rare_fail = matrix(90, 8, 1, 1);
        assert_eq!(
            corrected_pass_rate_interval(&rare_fail, judged, BootstrapConfig::default()),
            None
        );
        // 4 in 100: about 2% of resamples draw none; they are skipped and counted. The
        // judge's TNR (3/4) is weak enough that some resamples also fall to TPR + TNR ≤ 1.
        let few_fail = matrix(90, 6, 1, 3);
        let kept =
            corrected_pass_rate_interval(&few_fail, judged, BootstrapConfig::default()).unwrap();
        assert!(kept.skipped > 0 && kept.skipped <= 100, "{kept:?}");

        let config = BootstrapConfig::default();
        assert_eq!(
            corrected_pass_rate_interval(&ConfusionMatrix::default(), judged, config),
            None
        );
        let no_judged = PassTally::default();
        assert_eq!(
            corrected_pass_rate_interval(&few_fail, no_judged, config),
            None
        );
    }

    #[test]
    fn resampling_keeps_the_sizes() {
        let mut rng = StdRng::seed_from_u64(3);
        let m = matrix(5, 0, 2, 3);
        let drawn = resample_matrix(&m, &mut rng);
        assert_eq!(drawn.labeled(), 10);
        assert_eq!(drawn.false_neg, 0, "an empty cell is never drawn");
        let redrawn = resample_tally(tally(0, 9), &mut rng);
        assert_eq!(redrawn, tally(0, 9));
    }

    // Minimum labels -------------------------------------------------------------------

    #[test]
    fn minimum_labels_rule() {
        assert_eq!(
            check_enough_labels(&matrix(4, 1, 2, 2)),
            Err(TooFewLabels::Total { have: 9 })
        );
        assert_eq!(
            check_enough_labels(&matrix(1, 1, 4, 4)),
            Err(TooFewLabels::Class {
                class: Verdict::Pass,
                have: 2
            })
        );
        assert_eq!(
            check_enough_labels(&matrix(9, 0, 0, 2)),
            Err(TooFewLabels::Class {
                class: Verdict::Fail,
                have: 2
            })
        );
        assert_eq!(check_enough_labels(&matrix(5, 2, 1, 2)), Ok(()));
        let reason = check_enough_labels(&matrix(9, 0, 0, 2)).unwrap_err();
        assert_eq!(
            reason.to_string(),
            "2 labeled traces have reference Fail; at least 3 are needed"
        );
    }

    // Split ----------------------------------------------------------------------------

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        // FNV test suite (Fowler/Noll/Vo): "", "a", "foobar".
        assert_eq!(fnv1a_64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn split_counts_use_largest_remainder() {
        let default = SplitPercents::default();
        assert_eq!(split_counts(0, default), [0, 0, 0]);
        assert_eq!(split_counts(1, default), [0, 1, 0]);
        // Quotas 0.45 / 1.35 / 1.2: one each.
        assert_eq!(split_counts(3, default), [1, 1, 1]);
        // Quotas 0.6 / 1.8 / 1.6: dev's .8 first, then train's .6 ties test's .6 → train.
        assert_eq!(split_counts(4, default), [1, 2, 1]);
        assert_eq!(split_counts(20, default), [3, 9, 8]);
        assert_eq!(split_counts(7, default), [1, 3, 3]);
        // Growing can shrink a split (the "Alabama paradox" of largest remainder).
        assert_eq!(split_counts(16, default), [3, 7, 6]);
        assert_eq!(split_counts(17, default), [2, 8, 7]);
        for n in 0..500 {
            let counts = split_counts(n, default);
            assert_eq!(counts.iter().sum::<usize>(), n);
            for (count, split) in counts.iter().zip(Split::ALL) {
                let quota = (n * default.of(split) as usize) as f64 / 100.0;
                assert!((*count as f64 - quota).abs() < 1.0, "{n}: {counts:?}");
            }
        }
    }

    #[test]
    fn split_percents_must_add_up_to_100() {
        assert_eq!(
            SplitPercents::new(10, 10, 10),
            Err(SplitError::NotHundred(30))
        );
        assert_eq!(
            SplitPercents::new(u32::MAX, 1, 0),
            Err(SplitError::NotHundred(u32::MAX))
        );
        let even = SplitPercents::new(0, 50, 50).unwrap();
        assert_eq!(split_counts(5, even), [0, 3, 2]);
    }

    fn labeled_keys(pass: usize, fail: usize) -> Vec<(String, Verdict)> {
        (0..pass)
            .map(|i| (format!("trace-{i:04}"), Verdict::Pass))
            .chain((0..fail).map(|i| (format!("trace-{:04}", pass + i), Verdict::Fail)))
            .collect()
    }

    fn split_map(items: &[(String, Verdict)]) -> BTreeMap<String, Split> {
        let splits = stratified_split(items, SplitPercents::default()).unwrap();
        items.iter().map(|(k, _)| k.clone()).zip(splits).collect()
    }

    fn count(items: &[(String, Verdict)], splits: &BTreeMap<String, Split>) -> [[usize; 3]; 2] {
        let mut counts = [[0; 3]; 2];
        for (key, verdict) in items {
            let row = usize::from(*verdict == Verdict::Fail);
            counts[row][splits[key] as usize] += 1;
        }
        counts
    }

    #[test]
    fn split_matches_the_percentages_within_each_stratum() {
        let items = labeled_keys(200, 60);
        let splits = split_map(&items);
        assert_eq!(
            splits.len(),
            items.len(),
            "every item assigned exactly once"
        );
        assert_eq!(count(&items, &splits), [[30, 90, 80], [9, 27, 24]]);
    }

    #[test]
    fn split_ignores_input_order() {
        let items = labeled_keys(137, 41);
        let expected = split_map(&items);
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..5 {
            let mut shuffled = items.clone();
            shuffled.shuffle(&mut rng);
            assert_eq!(split_map(&shuffled), expected);
        }
    }

    #[test]
    fn adding_items_moves_few_existing_ones() {
        let all = labeled_keys(300, 0);
        let mut previous = split_map(&all[..1]);
        let mut worst = 0;
        for n in 2..=all.len() {
            let next = split_map(&all[..n]);
            let moved = previous.iter().filter(|(k, s)| next[*k] != **s).count();
            worst = worst.max(moved);
            previous = next;
        }
        assert!(worst <= 3, "{worst} items moved when one was added");
    }

    #[test]
    fn consecutive_keys_do_not_cluster_in_one_split() {
        // 1,000 keys in one stratum; 150 go to train. Were the order by plain FNV-1a,
        // most consecutive keys would sit side by side and share a split.
        let items = labeled_keys(1000, 0);
        let splits = split_map(&items);
        let both_train = items
            .windows(2)
            .filter(|w| splits[&w[0].0] == Split::Train && splits[&w[1].0] == Split::Train)
            .count();
        // Independent placement gives about 999 × 0.15² ≈ 22.
        assert!(
            both_train < 45,
            "{both_train} consecutive pairs both in train"
        );
    }

    #[test]
    fn split_refuses_duplicate_keys() {
        let items = [
            ("a", Verdict::Pass),
            ("b", Verdict::Fail),
            ("a", Verdict::Fail),
        ];
        assert_eq!(
            stratified_split(&items, SplitPercents::default()),
            Err(SplitError::DuplicateKey("a".into()))
        );
        let empty: [(&str, Verdict); 0] = [];
        assert_eq!(
            stratified_split(&empty, SplitPercents::default()),
            Ok(vec![])
        );
    }
}
