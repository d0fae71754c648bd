//! Inter-annotator agreement on nominal labels: percent agreement, Cohen's κ, Fleiss' κ,
//! Krippendorff's α, percentile-bootstrap intervals and the Landis & Koch reading.
//!
//! Everything here is a pure function of the ratings. Categories are plain numbers
//! ([`Category`]); callers map their labels to them (Pass/Fail, a failure mode present or
//! absent). Only equality of categories matters: the numbers carry no order or distance.
//!
//! Every statistic returns `Err(Undefined)` instead of a number when the formula is 0/0 or
//! its preconditions do not hold, so a page can say why there is no number.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

/// Who gave a rating (a user id).
pub type AnnotatorId = i64;

/// A nominal category. Only equality matters; the numbers carry no order.
pub type Category = u32;

/// One annotator's category for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rating {
    pub annotator: AnnotatorId,
    pub category: Category,
}

/// One rated item (a trace): at most one rating per annotator. Annotators who did not rate
/// the item are simply absent (missing data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// Sorted by annotator, no annotator twice.
    ratings: Vec<Rating>,
}

/// An item was given two ratings by the same annotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("annotator {annotator} rated the same item twice")]
pub struct DuplicateRating {
    pub annotator: AnnotatorId,
}

impl Item {
    /// An item from its ratings, in any order; refuses two ratings by one annotator.
    pub fn new(ratings: impl IntoIterator<Item = Rating>) -> Result<Item, DuplicateRating> {
        let mut ratings: Vec<Rating> = ratings.into_iter().collect();
        ratings.sort_by_key(|r| r.annotator);
        if let Some(pair) = ratings
            .windows(2)
            .find(|w| w[0].annotator == w[1].annotator)
        {
            return Err(DuplicateRating {
                annotator: pair[0].annotator,
            });
        }
        Ok(Item { ratings })
    }

    /// The ratings, ordered by annotator id.
    pub fn ratings(&self) -> &[Rating] {
        &self.ratings
    }

    /// The category `annotator` gave this item, if they rated it.
    pub fn category_by(&self, annotator: AnnotatorId) -> Option<Category> {
        self.ratings
            .binary_search_by_key(&annotator, |r| r.annotator)
            .ok()
            .map(|i| self.ratings[i].category)
    }

    /// How many ratings fall in each category used on this item.
    fn category_counts(&self) -> BTreeMap<Category, u64> {
        let mut counts = BTreeMap::new();
        for r in &self.ratings {
            *counts.entry(r.category).or_insert(0) += 1;
        }
        counts
    }
}

/// Why a statistic has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Undefined {
    /// No item has the ratings the statistic compares (two ratings on one item; for a
    /// pair of annotators, an item both rated).
    #[error("no item has two ratings to compare")]
    NoPairableItems,
    /// Every rating that counts is the same category. Agreement expected by chance is then
    /// 100%, and chance-corrected agreement is 0/0.
    #[error("every rating is the same category, so chance agreement is already 100%")]
    SingleCategory,
    /// Fleiss' κ needs the same number of ratings on every item.
    #[error("the items do not all have the same number of ratings")]
    UnequalRatingCounts,
}

/// Share of agreeing pairs among all pairs of ratings on one item.
///
/// With m ratings on the item, n_c of them in category c, that is
/// Σ_c n_c(n_c − 1) / (m(m − 1)). (Fleiss 1971 calls it P_i.) Undefined below two ratings.
pub fn item_agreement(item: &Item) -> Result<f64, Undefined> {
    let m = item.ratings.len() as f64;
    if m < 2.0 {
        return Err(Undefined::NoPairableItems);
    }
    let agreeing: f64 = item
        .category_counts()
        .values()
        .map(|&n| (n * n.saturating_sub(1)) as f64)
        .sum();
    Ok(agreeing / (m * (m - 1.0)))
}

/// Percent agreement over many annotators: [`item_agreement`] averaged over the items with
/// at least two ratings, each such item weighing the same. Items with fewer ratings are
/// left out. A share in 0–1, not multiplied by 100.
pub fn percent_agreement(items: &[Item]) -> Result<f64, Undefined> {
    mean(items.iter().filter_map(|item| item_agreement(item).ok()))
        .ok_or(Undefined::NoPairableItems)
}

/// The (a, b) category pairs on the items both annotators rated, in item order.
fn shared_ratings(items: &[Item], a: AnnotatorId, b: AnnotatorId) -> Vec<(Category, Category)> {
    items
        .iter()
        .filter_map(|item| Some((item.category_by(a)?, item.category_by(b)?)))
        .collect()
}

/// How many items both `a` and `b` rated: the n behind their pairwise statistics.
pub fn items_rated_by_both(items: &[Item], a: AnnotatorId, b: AnnotatorId) -> usize {
    shared_ratings(items, a, b).len()
}

/// Percent agreement of two annotators: the share of the items both rated on which they
/// chose the same category. Items only one of them rated are left out.
pub fn pair_percent_agreement(
    items: &[Item],
    a: AnnotatorId,
    b: AnnotatorId,
) -> Result<f64, Undefined> {
    let pairs = shared_ratings(items, a, b);
    mean(pairs.iter().map(|(x, y)| if x == y { 1.0 } else { 0.0 }))
        .ok_or(Undefined::NoPairableItems)
}

/// Cohen's κ (Cohen 1960) for annotators `a` and `b` over the items both rated.
///
/// See [`cohen_kappa_pairs`] for the formula and when it is undefined.
pub fn cohen_kappa(items: &[Item], a: AnnotatorId, b: AnnotatorId) -> Result<f64, Undefined> {
    cohen_kappa_pairs(&shared_ratings(items, a, b))
}

/// Cohen's κ from (first annotator, second annotator) category pairs, one per item.
///
/// κ = (p_o − p_e) / (1 − p_e): p_o is the share of items where the two agree; p_e is the
/// agreement expected if each had labelled independently at their own rates,
/// Σ_c (share of items the first put in c) × (share the second put in c).
///
/// Undefined with no pairs, and when both annotators used one single, identical category
/// for every item (`Undefined::SingleCategory`): then p_o = p_e = 1 and κ is 0/0 — they
/// agree fully, but κ cannot show it; report the percent agreement (100%) instead.
/// If each used a single but different category, κ = 0.
pub fn cohen_kappa_pairs(pairs: &[(Category, Category)]) -> Result<f64, Undefined> {
    if pairs.is_empty() {
        return Err(Undefined::NoPairableItems);
    }
    let mut first: BTreeMap<Category, f64> = BTreeMap::new();
    let mut second: BTreeMap<Category, f64> = BTreeMap::new();
    let mut agreeing = 0.0;
    for &(x, y) in pairs {
        *first.entry(x).or_insert(0.0) += 1.0;
        *second.entry(y).or_insert(0.0) += 1.0;
        if x == y {
            agreeing += 1.0;
        }
    }
    if first.len() == 1 && first.keys().eq(second.keys()) {
        return Err(Undefined::SingleCategory);
    }
    let n = pairs.len() as f64;
    let expected: f64 = first
        .iter()
        .map(|(c, nx)| nx / n * second.get(c).copied().unwrap_or(0.0) / n)
        .sum();
    Ok((agreeing / n - expected) / (1.0 - expected))
}

/// Fleiss' κ (Fleiss 1971) for items that each carry the same number m ≥ 2 of ratings.
///
/// Builds the count table (items × categories used) and applies [`fleiss_kappa_counts`].
/// Who rated an item does not enter; pass only the items coded by the full set of
/// annotators.
pub fn fleiss_kappa(items: &[Item]) -> Result<f64, Undefined> {
    let categories: BTreeMap<Category, usize> = {
        let mut used: Vec<Category> = items
            .iter()
            .flat_map(|item| item.ratings.iter().map(|r| r.category))
            .collect();
        used.sort_unstable();
        used.dedup();
        used.into_iter().enumerate().map(|(i, c)| (c, i)).collect()
    };
    let table: Vec<Vec<u64>> = items
        .iter()
        .map(|item| {
            let mut row = vec![0; categories.len()];
            for (c, n) in item.category_counts() {
                if let Some(&column) = categories.get(&c) {
                    row[column] = n;
                }
            }
            row
        })
        .collect();
    fleiss_kappa_counts(&table)
}

/// Fleiss' κ from a count table: `table[i][j]` is how many of item i's m ratings are
/// category j (a missing trailing column counts as 0).
///
/// κ = (P̄ − P̄_e) / (1 − P̄_e), where P̄ is the mean over items of [`item_agreement`]
/// and P̄_e = Σ_j p_j², p_j being category j's share of all ratings.
///
/// Refuses rows with different totals (`UnequalRatingCounts`); undefined with no items or
/// m < 2 (`NoPairableItems`) and when all ratings are one category (`SingleCategory`).
pub fn fleiss_kappa_counts(table: &[Vec<u64>]) -> Result<f64, Undefined> {
    let m: u64 = table
        .first()
        .map(|row| row.iter().sum())
        .ok_or(Undefined::NoPairableItems)?;
    if table.iter().any(|row| row.iter().sum::<u64>() != m) {
        return Err(Undefined::UnequalRatingCounts);
    }
    if m < 2 {
        return Err(Undefined::NoPairableItems);
    }
    let width = table.iter().map(Vec::len).max().unwrap_or(0);
    let totals: Vec<u64> = (0..width)
        .map(|j| table.iter().filter_map(|row| row.get(j)).sum())
        .collect();
    if totals.iter().filter(|&&t| t > 0).count() < 2 {
        return Err(Undefined::SingleCategory);
    }
    let m = m as f64;
    let all = m * table.len() as f64;
    let observed = mean(table.iter().map(|row| {
        let squares: f64 = row.iter().map(|&n| (n * n) as f64).sum();
        (squares - m) / (m * (m - 1.0))
    }))
    .ok_or(Undefined::NoPairableItems)?;
    let expected: f64 = totals.iter().map(|&t| (t as f64 / all).powi(2)).sum();
    Ok((observed - expected) / (1.0 - expected))
}

/// Krippendorff's α for nominal data, missing ratings allowed (Krippendorff 2011,
/// "Computing Krippendorff's Alpha-Reliability").
///
/// Each item with m_u ≥ 2 ratings ("pairable" values) adds every ordered pair of its
/// ratings to a coincidence matrix, weighted 1/(m_u − 1); items with fewer than two ratings
/// are ignored. With o_cc the matrix diagonal, n_c the total for category c and n the number
/// of pairable values:
///
/// α = ((n − 1) Σ_c o_cc − Σ_c n_c(n_c − 1)) / (n(n − 1) − Σ_c n_c(n_c − 1)),
///
/// i.e. 1 − observed disagreement / disagreement expected by chance. Undefined with no
/// pairable values, and when all of them are one category.
pub fn krippendorff_alpha(items: &[Item]) -> Result<f64, Undefined> {
    let mut diagonal = 0.0;
    let mut totals: BTreeMap<Category, f64> = BTreeMap::new();
    for item in items.iter().filter(|item| item.ratings.len() >= 2) {
        let weight = 1.0 / (item.ratings.len() - 1) as f64;
        for (c, n) in item.category_counts() {
            let n = n as f64;
            diagonal += n * (n - 1.0) * weight;
            *totals.entry(c).or_insert(0.0) += n;
        }
    }
    if totals.is_empty() {
        return Err(Undefined::NoPairableItems);
    }
    if totals.len() == 1 {
        return Err(Undefined::SingleCategory);
    }
    let n: f64 = totals.values().sum();
    let by_chance: f64 = totals.values().map(|nc| nc * (nc - 1.0)).sum();
    Ok(((n - 1.0) * diagonal - by_chance) / (n * (n - 1.0) - by_chance))
}

/// The mean of some values; `None` when there are none.
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    (count > 0).then(|| sum / count as f64)
}

/// Resamples drawn by default for a bootstrap interval.
pub const DEFAULT_RESAMPLES: usize = 1_000;

/// The seed used by default, so the same data always give the same interval.
pub const DEFAULT_SEED: u64 = 0x7472_6163_6563_6f64;

/// Largest share of resamples on which the statistic may be undefined; beyond it the
/// interval is withheld, because the remaining resamples no longer describe the data.
pub const MAX_UNDEFINED_SHARE: f64 = 0.10;

/// How to draw a bootstrap: how many resamples, and the random seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapConfig {
    pub resamples: usize,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
        }
    }
}

/// A closed interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether `value` lies in the interval, ends included.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// A 95% percentile-bootstrap interval, with how it was drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapInterval {
    pub interval: Interval,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples on which the statistic was undefined, left out of the percentiles.
    pub skipped: usize,
}

/// A many-annotator statistic with a fast bootstrap ([`bootstrap_agreement`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    PercentAgreement,
    FleissKappa,
    KrippendorffAlpha,
}

impl Statistic {
    /// The statistic over `items` ([`percent_agreement`], [`fleiss_kappa`] or
    /// [`krippendorff_alpha`]).
    pub fn of(self, items: &[Item]) -> Result<f64, Undefined> {
        match self {
            Statistic::PercentAgreement => percent_agreement(items),
            Statistic::FleissKappa => fleiss_kappa(items),
            Statistic::KrippendorffAlpha => krippendorff_alpha(items),
        }
    }
}

/// Each item reduced to what the three statistics read: its number of ratings and how many
/// fall in each category (dense columns over the categories used anywhere).
struct CountRows {
    width: usize,
    ratings: Vec<u64>,
    counts: Vec<u64>,
}

impl CountRows {
    fn new(items: &[Item]) -> CountRows {
        let mut used: Vec<Category> = items
            .iter()
            .flat_map(|item| item.ratings.iter().map(|r| r.category))
            .collect();
        used.sort_unstable();
        used.dedup();
        let width = used.len();
        let mut counts = vec![0; items.len() * width];
        for (i, item) in items.iter().enumerate() {
            for r in &item.ratings {
                let column = used.binary_search(&r.category).expect("collected above");
                counts[i * width + column] += 1;
            }
        }
        CountRows {
            width,
            ratings: items.iter().map(|item| item.ratings.len() as u64).collect(),
            counts,
        }
    }

    fn row(&self, i: usize) -> &[u64] {
        &self.counts[i * self.width..(i + 1) * self.width]
    }

    /// The statistic over a resample given as how often each item was drawn: the same
    /// value as [`Statistic::of`] on the resample with its items repeated (the formulas are
    /// sums over items), without building it.
    fn weighted(&self, statistic: Statistic, weights: &[u32]) -> Result<f64, Undefined> {
        let drawn = || (0..weights.len()).filter(|&i| weights[i] > 0);
        let mut totals = vec![0.0; self.width];
        match statistic {
            Statistic::PercentAgreement => {
                let (mut sum, mut n) = (0.0, 0.0);
                for i in drawn().filter(|&i| self.ratings[i] >= 2) {
                    let m = self.ratings[i] as f64;
                    let agreeing: u64 = self.row(i).iter().map(|&c| c * c.saturating_sub(1)).sum();
                    let w = f64::from(weights[i]);
                    sum += w * agreeing as f64 / (m * (m - 1.0));
                    n += w;
                }
                if n == 0.0 {
                    return Err(Undefined::NoPairableItems);
                }
                Ok(sum / n)
            }
            Statistic::FleissKappa => {
                let mut m = None;
                let (mut observed, mut n) = (0.0, 0.0);
                for i in drawn() {
                    let mi = self.ratings[i];
                    if *m.get_or_insert(mi) != mi {
                        return Err(Undefined::UnequalRatingCounts);
                    }
                    let w = f64::from(weights[i]);
                    let squares: u64 = self.row(i).iter().map(|&c| c * c).sum();
                    let mf = mi as f64;
                    if mi >= 2 {
                        observed += w * (squares as f64 - mf) / (mf * (mf - 1.0));
                    }
                    for (t, &c) in totals.iter_mut().zip(self.row(i)) {
                        *t += w * c as f64;
                    }
                    n += w;
                }
                let m = m.ok_or(Undefined::NoPairableItems)? as f64;
                if m < 2.0 {
                    return Err(Undefined::NoPairableItems);
                }
                if totals.iter().filter(|&&t| t > 0.0).count() < 2 {
                    return Err(Undefined::SingleCategory);
                }
                let all = m * n;
                let expected: f64 = totals.iter().map(|&t| (t / all).powi(2)).sum();
                Ok((observed / n - expected) / (1.0 - expected))
            }
            Statistic::KrippendorffAlpha => {
                let mut diagonal = 0.0;
                for i in drawn().filter(|&i| self.ratings[i] >= 2) {
                    let w = f64::from(weights[i]);
                    let pair_weight = 1.0 / (self.ratings[i] - 1) as f64;
                    for (t, &c) in totals.iter_mut().zip(self.row(i)) {
                        let c = c as f64;
                        diagonal += w * c * (c - 1.0) * pair_weight;
                        *t += w * c;
                    }
                }
                let present: Vec<f64> = totals.into_iter().filter(|&t| t > 0.0).collect();
                match present.len() {
                    0 => return Err(Undefined::NoPairableItems),
                    1 => return Err(Undefined::SingleCategory),
                    _ => {}
                }
                let n: f64 = present.iter().sum();
                let by_chance: f64 = present.iter().map(|nc| nc * (nc - 1.0)).sum();
                Ok(((n - 1.0) * diagonal - by_chance) / (n * (n - 1.0) - by_chance))
            }
        }
    }
}

impl CountRows {
    /// The distinct rows, each once, with how many items have it. The statistics depend on
    /// an item only through its row, so items with the same row are interchangeable.
    fn distinct(&self) -> (CountRows, Vec<u64>) {
        let mut seen: BTreeMap<(u64, &[u64]), u64> = BTreeMap::new();
        for i in 0..self.ratings.len() {
            *seen.entry((self.ratings[i], self.row(i))).or_insert(0) += 1;
        }
        let mut rows = CountRows {
            width: self.width,
            ratings: Vec::with_capacity(seen.len()),
            counts: Vec::with_capacity(seen.len() * self.width),
        };
        let mut frequency = Vec::with_capacity(seen.len());
        for ((ratings, counts), n) in seen {
            rows.ratings.push(ratings);
            rows.counts.extend_from_slice(counts);
            frequency.push(n);
        }
        (rows, frequency)
    }
}

/// Successes in `n` trials of probability `p` (exact binomial, BTPE).
pub(crate) fn binomial(n: u64, p: f64, rng: &mut StdRng) -> u64 {
    if p >= 1.0 {
        return n;
    }
    match rand_distr::Binomial::new(n, p.max(0.0)) {
        Ok(d) => rand_distr::Distribution::sample(&d, rng),
        Err(_) => 0,
    }
}

/// A 95% confidence interval for one of the many-annotator statistics by the percentile
/// bootstrap over items, in a time that does not grow with the number of items.
///
/// In plain words: draw as many items as there are, at random with replacement (some items
/// come twice, some not at all), and compute the statistic on that resample; repeat
/// `config.resamples` times (1,000 by default). The interval runs from the 2.5th to the
/// 97.5th percentile of those values (linear interpolation between neighbouring values, as
/// R's default `quantile`). Resamples on which the statistic is undefined are skipped and
/// counted; if more than [`MAX_UNDEFINED_SHARE`] of them are, or there are no items or no
/// resamples, the result is `None`. The random draws come from `StdRng` seeded with
/// `config.seed`, so the same items and seed give the same interval (for a given version
/// of the `rand` crate).
///
/// How it is drawn: a resample is fully described, for these statistics, by how many of
/// its items have each distinct count row (see [`CountRows::distinct`]), and those numbers
/// follow a multinomial law over the rows' frequencies. Each resample draws that
/// multinomial directly (one binomial draw per distinct row, conditioned on the rows
/// before) instead of n single items: with Pass/Fail from a few annotators there are a
/// dozen distinct rows, so 1,000 resamples cost microseconds whether there are 100 traces
/// or 100,000. The tests check it against copying the resampled items.
pub fn bootstrap_agreement(
    items: &[Item],
    config: BootstrapConfig,
    statistic: Statistic,
) -> Option<BootstrapInterval> {
    if items.is_empty() {
        return None;
    }
    let (rows, frequency) = CountRows::new(items).distinct();
    let n = items.len() as u64;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut weights = vec![0u32; frequency.len()];
    let estimates = (0..config.resamples)
        .filter_map(|_| {
            let (mut left, mut left_frequency) = (n, n);
            for (w, &f) in weights.iter_mut().zip(&frequency) {
                let drawn = binomial(left, f as f64 / left_frequency as f64, &mut rng);
                *w = drawn as u32;
                left -= drawn;
                left_frequency -= f;
            }
            rows.weighted(statistic, &weights).ok()
        })
        .collect();
    percentile_interval(estimates, config.resamples)
}

/// The 2.5th–97.5th percentile interval of bootstrap `estimates` out of `resamples` drawn
/// (the rest were undefined); `None` when more than [`MAX_UNDEFINED_SHARE`] were undefined
/// or none is left.
pub fn percentile_interval(mut estimates: Vec<f64>, resamples: usize) -> Option<BootstrapInterval> {
    let skipped = resamples.saturating_sub(estimates.len());
    if estimates.is_empty() || skipped as f64 > MAX_UNDEFINED_SHARE * resamples as f64 {
        return None;
    }
    estimates.sort_by(f64::total_cmp);
    Some(BootstrapInterval {
        interval: Interval {
            low: quantile(&estimates, 0.025),
            high: quantile(&estimates, 0.975),
        },
        resamples,
        skipped,
    })
}

/// The q-quantile of sorted, non-empty values, interpolating linearly (R's type 7).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = (sorted.len() - 1) as f64 * q;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (position - below as f64) * (sorted[above] - sorted[below])
}

/// Landis & Koch (1977)'s reading of a κ or α: their "strength of agreement" bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// Below 0.00.
    Poor,
    /// 0.00–0.20.
    Slight,
    /// 0.21–0.40.
    Fair,
    /// 0.41–0.60.
    Moderate,
    /// 0.61–0.80.
    Substantial,
    /// 0.81–1.00.
    AlmostPerfect,
}

impl Strength {
    /// The band of `value`, read at two decimals as pages show it: the value is rounded to
    /// two decimals first, so 0.204 reads 0.20 "slight" and 0.205 reads 0.21 "fair" (upper
    /// ends inclusive: 0.20, 0.40, 0.60, 0.80 belong to the lower band). A value that rounds
    /// to 0.00 — even from below — is "slight"; NaN reads "poor".
    pub fn of(value: f64) -> Strength {
        let v = (value * 100.0).round() / 100.0;
        if v.is_nan() || v < 0.0 {
            Strength::Poor
        } else if v <= 0.20 {
            Strength::Slight
        } else if v <= 0.40 {
            Strength::Fair
        } else if v <= 0.60 {
            Strength::Moderate
        } else if v <= 0.80 {
            Strength::Substantial
        } else {
            Strength::AlmostPerfect
        }
    }

    /// Landis & Koch's wording, lower case.
    pub fn label(self) -> &'static str {
        match self {
            Strength::Poor => "poor",
            Strength::Slight => "slight",
            Strength::Fair => "fair",
            Strength::Moderate => "moderate",
            Strength::Substantial => "substantial",
            Strength::AlmostPerfect => "almost perfect",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The reference bootstrap for any statistic: each resample copies the drawn items, as the
    /// textbook describes it. [`bootstrap_agreement`] must agree with it.
    fn bootstrap_interval<F>(
        items: &[Item],
        config: BootstrapConfig,
        statistic: F,
    ) -> Option<BootstrapInterval>
    where
        F: Fn(&[Item]) -> Result<f64, Undefined>,
    {
        if items.is_empty() {
            return None;
        }
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut resample: Vec<Item> = Vec::with_capacity(items.len());
        let estimates = (0..config.resamples)
            .filter_map(|_| {
                resample.clear();
                resample.extend(
                    (0..items.len()).map(|_| items[rng.random_range(0..items.len())].clone()),
                );
                statistic(&resample).ok()
            })
            .collect();
        percentile_interval(estimates, config.resamples)
    }

    /// Published figures are given to three or four decimals.
    const PUBLISHED: f64 = 1e-3;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    /// Items from a wide table: one row per item, one column per annotator (ids 1, 2, …),
    /// `None` for a missing rating.
    fn wide(rows: &[Vec<Option<Category>>]) -> Vec<Item> {
        rows.iter()
            .map(|row| {
                Item::new(row.iter().zip(1..).filter_map(|(c, annotator)| {
                    c.map(|category| Rating {
                        annotator,
                        category,
                    })
                }))
                .unwrap()
            })
            .collect()
    }

    /// Items where every annotator rated every item.
    fn complete(rows: &[&[Category]]) -> Vec<Item> {
        wide(
            &rows
                .iter()
                .map(|row| row.iter().map(|&c| Some(c)).collect())
                .collect::<Vec<_>>(),
        )
    }

    /// Two annotators' items from a square agreement table: `table[i][j]` items that
    /// annotator 1 put in category i and annotator 2 in category j.
    fn from_agreement_table<const K: usize>(table: [[usize; K]; K]) -> Vec<Item> {
        let rows: Vec<[Category; 2]> = (0..K)
            .flat_map(|i| (0..K).map(move |j| (i, j)))
            .flat_map(|(i, j)| std::iter::repeat_n([i as Category, j as Category], table[i][j]))
            .collect();
        complete(&rows.iter().map(|row| &row[..]).collect::<Vec<_>>())
    }

    /// Columns (one per annotator) turned into rows (one per item).
    fn by_item(columns: &[&[Category]]) -> Vec<Vec<Category>> {
        (0..columns[0].len())
            .map(|i| columns.iter().map(|column| column[i]).collect())
            .collect()
    }

    // Cohen's κ ------------------------------------------------------------------------

    #[test]
    fn cohen_kappa_of_the_fifty_proposals_example() {
        // Wikipedia, "Cohen's kappa", worked example: two readers, 50 proposals, yes/no.
        // Both yes 20, A yes B no 5, A no B yes 10, both no 15: p_o = 0.70, p_e = 0.50,
        // κ = 0.40.
        let items = from_agreement_table([[20, 5], [10, 15]]);
        assert!(close(cohen_kappa(&items, 1, 2).unwrap(), 0.40, 1e-12));
        assert!(close(
            pair_percent_agreement(&items, 1, 2).unwrap(),
            0.70,
            1e-12
        ));
        assert_eq!(items_rated_by_both(&items, 1, 2), 50);
    }

    #[test]
    fn cohen_kappa_of_the_sas_three_category_example() {
        // SAS PROC FREQ "Simple Kappa Coefficient" printout reproduced in statsmodels'
        // stats/tests/test_inter_rater.py (table10): κ = 0.4842.
        let items = from_agreement_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]]);
        assert!(close(cohen_kappa(&items, 1, 2).unwrap(), 0.4842, 1e-4));
    }

    #[test]
    fn cohen_kappa_of_irr_anxiety_raters_two_and_three() {
        // R package irr, dataset `anxiety` (20 subjects, ratings 1–6); statsmodels'
        // test_inter_rater.py records `kappa2(anxiety[,2:3])` = -0.006289308.
        let rater2: &[Category] = &[3, 6, 4, 6, 2, 4, 2, 4, 3, 3, 2, 3, 3, 3, 2, 2, 1, 3, 3, 4];
        let rater3: &[Category] = &[2, 1, 4, 4, 3, 2, 1, 6, 1, 1, 1, 2, 3, 3, 1, 1, 3, 3, 2, 2];
        let rows = by_item(&[rater2, rater3]);
        let items = complete(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(close(
            cohen_kappa(&items, 1, 2).unwrap(),
            -0.006289308,
            1e-8
        ));
    }

    #[test]
    fn cohen_kappa_uses_only_items_both_rated() {
        let items = wide(&[
            vec![Some(0), Some(0)],
            vec![Some(1), Some(1)],
            vec![Some(0), Some(1)],
            vec![Some(1), None],
            vec![None, Some(0)],
        ]);
        assert_eq!(items_rated_by_both(&items, 1, 2), 3);
        assert!(close(
            pair_percent_agreement(&items, 1, 2).unwrap(),
            2.0 / 3.0,
            1e-12
        ));
        // p_o = 2/3; p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9; κ = (2/9)/(5/9) = 0.4.
        assert!(close(cohen_kappa(&items, 1, 2).unwrap(), 0.4, 1e-12));
    }

    #[test]
    fn cohen_kappa_edge_cases() {
        let same = complete(&[&[1, 1], &[1, 1], &[1, 1]]);
        assert_eq!(cohen_kappa(&same, 1, 2), Err(Undefined::SingleCategory));
        assert_eq!(pair_percent_agreement(&same, 1, 2), Ok(1.0));

        let opposite_constants = complete(&[&[0, 1], &[0, 1]]);
        assert_eq!(cohen_kappa(&opposite_constants, 1, 2), Ok(0.0));

        let perfect = complete(&[&[0, 0], &[1, 1], &[2, 2], &[1, 1]]);
        assert!(close(cohen_kappa(&perfect, 1, 2).unwrap(), 1.0, 1e-12));

        let disjoint = wide(&[vec![Some(0), None], vec![None, Some(0)]]);
        assert_eq!(
            cohen_kappa(&disjoint, 1, 2),
            Err(Undefined::NoPairableItems)
        );
        assert_eq!(
            pair_percent_agreement(&disjoint, 1, 2),
            Err(Undefined::NoPairableItems)
        );
        assert_eq!(cohen_kappa(&[], 1, 2), Err(Undefined::NoPairableItems));
    }

    // Fleiss' κ ------------------------------------------------------------------------

    /// Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories
    /// (also statsmodels' test_inter_rater.py `table0`), with its published P_i column.
    const FOURTEEN_RATERS: [([u64; 5], f64); 10] = [
        ([0, 0, 0, 0, 14], 1.000),
        ([0, 2, 6, 4, 2], 0.253),
        ([0, 0, 3, 5, 6], 0.308),
        ([0, 3, 9, 2, 0], 0.440),
        ([2, 2, 8, 1, 1], 0.330),
        ([7, 7, 0, 0, 0], 0.462),
        ([3, 2, 6, 3, 0], 0.242),
        ([2, 5, 3, 2, 2], 0.176),
        ([6, 5, 2, 1, 0], 0.286),
        ([0, 2, 2, 3, 7], 0.286),
    ];

    /// Items with anonymous raters from a count table (who rated what does not matter).
    fn items_from_counts(table: &[Vec<u64>]) -> Vec<Item> {
        table
            .iter()
            .map(|row| {
                let categories = row
                    .iter()
                    .zip(0..)
                    .flat_map(|(&n, c)| std::iter::repeat_n(c, n as usize));
                Item::new(categories.zip(1..).map(|(category, annotator)| Rating {
                    annotator,
                    category,
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn fleiss_kappa_of_the_fourteen_rater_example() {
        // Published: P̄ = 0.378, P̄_e = 0.213, κ = 0.210.
        let table: Vec<Vec<u64>> = FOURTEEN_RATERS.iter().map(|(r, _)| r.to_vec()).collect();
        assert!(close(
            fleiss_kappa_counts(&table).unwrap(),
            0.210,
            PUBLISHED
        ));

        let items = items_from_counts(&table);
        assert!(close(fleiss_kappa(&items).unwrap(), 0.210, PUBLISHED));
        for (item, (_, p_i)) in items.iter().zip(FOURTEEN_RATERS) {
            assert!(close(item_agreement(item).unwrap(), p_i, 5e-4));
        }
        assert!(close(percent_agreement(&items).unwrap(), 0.378, PUBLISHED));
    }

    /// Fleiss (1971), Table 1: psychiatric diagnoses of 30 patients by 6 raters each
    /// (1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other), as R
    /// package irr's `diagnoses` (copied in statsmodels' test_inter_rater.py and pyirr's
    /// tests/diagnoses.csv; the three copies agree).
    const FLEISS_1971: [[Category; 6]; 30] = [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ];

    /// The same data as a count table, transcribed separately from the paper in R
    /// package quadagree (data_raw/fleiss1971.csv).
    const FLEISS_1971_COUNTS: [[u64; 5]; 30] = [
        [0, 0, 0, 6, 0],
        [0, 3, 0, 0, 3],
        [0, 1, 4, 0, 1],
        [0, 0, 0, 0, 6],
        [0, 3, 0, 3, 0],
        [2, 0, 4, 0, 0],
        [0, 0, 4, 0, 2],
        [2, 0, 3, 1, 0],
        [2, 0, 0, 4, 0],
        [0, 0, 0, 0, 6],
        [1, 0, 0, 5, 0],
        [1, 1, 0, 4, 0],
        [0, 3, 3, 0, 0],
        [1, 0, 0, 5, 0],
        [0, 2, 0, 3, 1],
        [0, 0, 5, 0, 1],
        [3, 0, 0, 1, 2],
        [5, 1, 0, 0, 0],
        [0, 2, 0, 4, 0],
        [1, 0, 2, 0, 3],
        [0, 0, 0, 0, 6],
        [0, 1, 0, 5, 0],
        [0, 2, 0, 1, 3],
        [2, 0, 0, 4, 0],
        [1, 0, 0, 4, 1],
        [0, 5, 0, 1, 0],
        [4, 0, 0, 0, 2],
        [0, 2, 0, 4, 0],
        [1, 0, 5, 0, 0],
        [0, 0, 0, 0, 6],
    ];

    fn fleiss_1971_items() -> Vec<Item> {
        complete(&FLEISS_1971.iter().map(|row| &row[..]).collect::<Vec<_>>())
    }

    #[test]
    fn fleiss_kappa_of_fleiss_1971() {
        // Fleiss (1971): κ = .430; irr's kappam.fleiss(diagnoses) = 0.4302445.
        let items = fleiss_1971_items();
        let kappa = fleiss_kappa(&items).unwrap();
        assert!(close(kappa, 0.430, PUBLISHED));
        assert!(close(kappa, 0.4302445, 1e-7));

        // statsmodels checks the category totals of this table: 26, 26, 30, 55, 43.
        let mut totals = [0u64; 5];
        for row in FLEISS_1971 {
            for c in row {
                totals[c as usize - 1] += 1;
            }
        }
        assert_eq!(totals, [26, 26, 30, 55, 43]);

        let counts: Vec<Vec<u64>> = FLEISS_1971_COUNTS.iter().map(|r| r.to_vec()).collect();
        assert!(close(fleiss_kappa_counts(&counts).unwrap(), kappa, 1e-12));
    }

    #[test]
    fn fleiss_kappa_edge_cases() {
        assert_eq!(fleiss_kappa(&[]), Err(Undefined::NoPairableItems));
        let unequal = complete(&[&[0, 1, 1], &[0, 1]]);
        assert_eq!(fleiss_kappa(&unequal), Err(Undefined::UnequalRatingCounts));
        let single_ratings = complete(&[&[0], &[1]]);
        assert_eq!(
            fleiss_kappa(&single_ratings),
            Err(Undefined::NoPairableItems)
        );
        let one_category = complete(&[&[3, 3, 3], &[3, 3, 3]]);
        assert_eq!(fleiss_kappa(&one_category), Err(Undefined::SingleCategory));
        let perfect = complete(&[&[0, 0, 0], &[1, 1, 1], &[0, 0, 0]]);
        assert!(close(fleiss_kappa(&perfect).unwrap(), 1.0, 1e-12));
        // A shorter row only lacks trailing zero columns.
        assert_eq!(
            fleiss_kappa_counts(&[vec![2, 0, 1], vec![3]]),
            fleiss_kappa_counts(&[vec![2, 0, 1], vec![3, 0, 0]])
        );
    }

    // Krippendorff's α -----------------------------------------------------------------

    #[test]
    fn krippendorff_alpha_of_the_2011_paper() {
        // Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", reliability
        // data with missing values: 4 observers × 12 units, nominal α = 0.743. (Same table
        // in the Python `krippendorff` package's doctest.)
        let a = [1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0];
        let b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3];
        let c = [0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0];
        let d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0];
        let items = missing_as_zero(&[&a, &b, &c, &d]);
        assert!(close(krippendorff_alpha(&items).unwrap(), 0.743, PUBLISHED));
    }

    #[test]
    fn krippendorff_alpha_of_the_wikipedia_example() {
        // Wikipedia, "Krippendorff's alpha", computational example: 3 coders × 15 units
        // with missing values, nominal α = 0.691 (data as in dallascard/krippendorff_alpha
        // example.jsonlist). Unit 1 has a single value and units 2 and 14 none: ignored.
        let a = [0, 0, 0, 0, 0, 3, 4, 1, 2, 1, 1, 3, 3, 0, 3];
        let b = [1, 0, 2, 1, 3, 3, 4, 3, 0, 0, 0, 0, 0, 0, 0];
        let c = [0, 0, 2, 1, 3, 4, 4, 0, 2, 1, 1, 3, 3, 0, 4];
        let items = missing_as_zero(&[&a, &b, &c]);
        assert!(close(krippendorff_alpha(&items).unwrap(), 0.691, PUBLISHED));
    }

    /// Items from per-annotator columns where 0 stands for a missing rating.
    fn missing_as_zero(columns: &[&[Category]]) -> Vec<Item> {
        let rows: Vec<Vec<Option<Category>>> = by_item(columns)
            .into_iter()
            .map(|row| row.into_iter().map(|c| (c != 0).then_some(c)).collect())
            .collect();
        wide(&rows)
    }

    #[test]
    fn krippendorff_alpha_edge_cases() {
        assert_eq!(krippendorff_alpha(&[]), Err(Undefined::NoPairableItems));
        let unpairable = wide(&[vec![Some(1), None], vec![None, Some(2)]]);
        assert_eq!(
            krippendorff_alpha(&unpairable),
            Err(Undefined::NoPairableItems)
        );
        let one_category = wide(&[vec![Some(1), Some(1)], vec![Some(1), None, Some(1)]]);
        assert_eq!(
            krippendorff_alpha(&one_category),
            Err(Undefined::SingleCategory)
        );
        let perfect = wide(&[
            vec![Some(1), Some(1), None],
            vec![Some(2), None, Some(2)],
            vec![None, Some(1), Some(1)],
        ]);
        assert!(close(krippendorff_alpha(&perfect).unwrap(), 1.0, 1e-12));
    }

    #[test]
    fn krippendorff_alpha_matches_fleiss_kappa_up_to_sample_size() {
        // With complete data (n items × m ratings), the two differ only by α's small-sample
        // factor: α = 1 − (1 − κ_Fleiss)·(nm − 1)/nm. A check through a second formula.
        let items = fleiss_1971_items();
        let kappa = fleiss_kappa(&items).unwrap();
        let nm = 30.0 * 6.0;
        let expected = 1.0 - (1.0 - kappa) * (nm - 1.0) / nm;
        let alpha = krippendorff_alpha(&items).unwrap();
        assert!(close(alpha, expected, 1e-9), "{alpha} vs {expected}");
    }

    // Percent agreement ----------------------------------------------------------------

    #[test]
    fn percent_agreement_averages_items_with_two_or_more_ratings() {
        let items = wide(&[
            vec![Some(0), Some(0), Some(0)], // 3 of 3 pairs agree
            vec![Some(0), Some(0), Some(1)], // 1 of 3
            vec![Some(1), None, None],       // unpairable: ignored
            vec![Some(0), None, Some(1)],    // 0 of 1
        ]);
        let expected = (1.0 + 1.0 / 3.0 + 0.0) / 3.0;
        assert!(close(percent_agreement(&items).unwrap(), expected, 1e-12));
        assert_eq!(
            percent_agreement(&items[2..3]),
            Err(Undefined::NoPairableItems)
        );
        assert_eq!(percent_agreement(&[]), Err(Undefined::NoPairableItems));
    }

    #[test]
    fn item_refuses_a_second_rating_by_the_same_annotator() {
        let twice = Item::new([
            Rating {
                annotator: 7,
                category: 0,
            },
            Rating {
                annotator: 7,
                category: 1,
            },
        ]);
        assert_eq!(twice, Err(DuplicateRating { annotator: 7 }));
    }

    // Bootstrap ------------------------------------------------------------------------

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_estimate() {
        let items = fleiss_1971_items();
        let config = BootstrapConfig::default();
        let first = bootstrap_interval(&items, config, fleiss_kappa).unwrap();
        let again = bootstrap_interval(&items, config, fleiss_kappa).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.resamples, DEFAULT_RESAMPLES);
        assert!(first.interval.contains(fleiss_kappa(&items).unwrap()));
        assert!(first.interval.low < first.interval.high);

        let other_seed = BootstrapConfig { seed: 1, ..config };
        let other = bootstrap_interval(&items, other_seed, fleiss_kappa).unwrap();
        assert_ne!(first.interval, other.interval);
    }

    #[test]
    fn bootstrap_works_for_every_statistic() {
        let items = fleiss_1971_items();
        let config = BootstrapConfig {
            resamples: 200,
            ..BootstrapConfig::default()
        };
        type Statistic = fn(&[Item]) -> Result<f64, Undefined>;
        let statistics: [(&str, Statistic); 4] = [
            ("percent", percent_agreement),
            ("fleiss", fleiss_kappa),
            ("alpha", krippendorff_alpha),
            ("cohen", |items| cohen_kappa(items, 1, 2)),
        ];
        for (name, statistic) in statistics {
            let estimate = statistic(&items).unwrap();
            let interval = bootstrap_interval(&items, config, statistic).unwrap();
            assert!(interval.interval.contains(estimate), "{name}: {interval:?}");
        }
    }

    #[test]
    fn bootstrap_counts_undefined_resamples_and_gives_up_when_too_many() {
        // 1 disagreement in 30 items: about a third of resamples miss it and are undefined.
        let mut rows: Vec<&[Category]> = vec![&[0, 0]; 29];
        rows.push(&[0, 1]);
        let rare = complete(&rows);
        let alpha = |items: &[Item]| krippendorff_alpha(items);
        assert_eq!(
            bootstrap_interval(&rare, BootstrapConfig::default(), alpha),
            None
        );

        // A statistic that is undefined when one marked item is drawn twice (about 26% of
        // resamples) or three times or more (about 8%).
        let mut items = fleiss_1971_items();
        items.extend(complete(&[&[99, 99, 99, 99, 99, 99]]));
        let marked = |items: &[Item]| items.iter().filter(|i| i.ratings[0].category == 99).count();
        let twice = |items: &[Item]| match marked(items) {
            0 | 1 => fleiss_kappa(items),
            _ => Err(Undefined::NoPairableItems),
        };
        let thrice = |items: &[Item]| match marked(items) {
            0..=2 => fleiss_kappa(items),
            _ => Err(Undefined::NoPairableItems),
        };
        let config = BootstrapConfig::default();
        assert_eq!(bootstrap_interval(&items, config, twice), None);
        let kept = bootstrap_interval(&items, config, thrice).unwrap();
        assert!(kept.skipped > 0 && kept.skipped <= 100, "{kept:?}");
        assert_eq!(bootstrap_interval(&[], config, percent_agreement), None);
    }

    /// Items of every shape the statistics meet: Fleiss' table, an uneven set with missing
    /// ratings and three categories, and a set with one rare disagreement.
    fn bootstrap_fixtures() -> Vec<Vec<Item>> {
        let uneven: Vec<Item> = (0..60u32)
            .map(|i| {
                let raters = 2 + (i % 3) as i64;
                Item::new((0..raters).map(|a| Rating {
                    annotator: a,
                    category: (i * 7 + a as u32 * (i % 5)) % 3,
                }))
                .unwrap()
            })
            .collect();
        let mut rows: Vec<&[Category]> = vec![&[0, 0]; 29];
        rows.push(&[0, 1]);
        vec![fleiss_1971_items(), uneven, complete(&rows)]
    }

    const STATISTICS: [Statistic; 3] = [
        Statistic::PercentAgreement,
        Statistic::FleissKappa,
        Statistic::KrippendorffAlpha,
    ];

    /// The same value (to rounding) or the same reason for having none.
    fn assert_same(statistic: Statistic, a: Result<f64, Undefined>, b: Result<f64, Undefined>) {
        match (a, b) {
            (Ok(a), Ok(b)) => assert!(close(a, b, 1e-12), "{statistic:?}: {a} {b}"),
            (a, b) => assert_eq!(a, b, "{statistic:?}"),
        }
    }

    #[test]
    fn a_weighted_resample_has_the_statistic_of_its_items_repeated() {
        let mut rng = StdRng::seed_from_u64(7);
        for items in bootstrap_fixtures() {
            let rows = CountRows::new(&items);
            for _ in 0..50 {
                let mut weights = vec![0u32; items.len()];
                let mut resample = Vec::new();
                for _ in 0..items.len() {
                    let i = rng.random_range(0..items.len());
                    weights[i] += 1;
                    resample.push(items[i].clone());
                }
                for statistic in STATISTICS {
                    assert_same(
                        statistic,
                        statistic.of(&resample),
                        rows.weighted(statistic, &weights),
                    );
                }
            }
        }
    }

    #[test]
    fn distinct_rows_keep_every_item() {
        for items in bootstrap_fixtures() {
            let (rows, frequency) = CountRows::new(&items).distinct();
            assert_eq!(frequency.iter().sum::<u64>(), items.len() as u64);
            assert!(rows.ratings.len() < items.len(), "some rows repeat");
            // The whole set, as weights over its distinct rows, has the same statistics.
            let weights: Vec<u32> = frequency.iter().map(|&f| f as u32).collect();
            for statistic in STATISTICS {
                assert_same(
                    statistic,
                    statistic.of(&items),
                    rows.weighted(statistic, &weights),
                );
            }
        }
    }

    #[test]
    fn the_multinomial_bootstrap_agrees_with_copying_resamples() {
        let config = BootstrapConfig {
            resamples: 4000,
            ..BootstrapConfig::default()
        };
        for items in bootstrap_fixtures() {
            for statistic in STATISTICS {
                let copying = bootstrap_interval(&items, config, |r| statistic.of(r));
                let fast = bootstrap_agreement(&items, config, statistic);
                assert_eq!(fast, bootstrap_agreement(&items, config, statistic));
                match (copying, fast) {
                    (None, None) => {}
                    (Some(c), Some(f)) => {
                        // Two independent draws of the same bootstrap distribution.
                        let tolerance = 0.1 * (c.interval.high - c.interval.low) + 1e-9;
                        assert!(
                            (c.interval.low - f.interval.low).abs() <= tolerance
                                && (c.interval.high - f.interval.high).abs() <= tolerance,
                            "{statistic:?}: {c:?} vs {f:?}"
                        );
                        let share = |i: BootstrapInterval| i.skipped as f64 / i.resamples as f64;
                        assert!((share(c) - share(f)).abs() < 0.03, "{statistic:?}");
                        assert!(f.interval.contains(statistic.of(&items).unwrap()));
                    }
                    other => panic!("{statistic:?}: {other:?}"),
                }
            }
        }
        assert_eq!(
            bootstrap_agreement(&[], config, Statistic::PercentAgreement),
            None
        );
    }

    #[test]
    fn percentile_interval_reports_skipped_resamples() {
        let estimates: Vec<f64> = (0..95).map(f64::from).collect();
        let interval = percentile_interval(estimates.clone(), 100).unwrap();
        assert_eq!(interval.skipped, 5);
        // Type-7 quantiles of 0..=94: 0.025·94 = 2.35 and 0.975·94 = 91.65.
        assert!(close(interval.interval.low, 2.35, 1e-12));
        assert!(close(interval.interval.high, 91.65, 1e-12));
        assert_eq!(percentile_interval(estimates, 106), None);
        assert_eq!(percentile_interval(Vec::new(), 0), None);
    }

    // Landis & Koch --------------------------------------------------------------------

    #[test]
    fn landis_koch_bands_and_boundaries() {
        let cases = [
            (-0.30, Strength::Poor),
            (-0.006, Strength::Poor),
            (-0.004, Strength::Slight),
            (0.0, Strength::Slight),
            (0.20, Strength::Slight),
            (0.204, Strength::Slight),
            (0.206, Strength::Fair),
            (0.21, Strength::Fair),
            (0.40, Strength::Fair),
            (0.41, Strength::Moderate),
            (0.60, Strength::Moderate),
            (0.61, Strength::Substantial),
            (0.80, Strength::Substantial),
            (0.81, Strength::AlmostPerfect),
            (1.0, Strength::AlmostPerfect),
            (f64::NAN, Strength::Poor),
        ];
        for (value, band) in cases {
            assert_eq!(Strength::of(value), band, "{value}");
        }
        assert_eq!(Strength::of(0.430).label(), "moderate");
        assert_eq!(Strength::AlmostPerfect.label(), "almost perfect");
    }
}
