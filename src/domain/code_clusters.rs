//! Offline suggestions of open codes that look alike, for a lead grouping codes into modes.
//!
//! A suggestion, never an automatic grouping: it catches misspellings ("wrng tool"), extra
//! words ("wrong tool call") and reordered words ("date wrong"), and by design not synonyms
//! without shared words ("missed escalation" / "did not escalate").
//!
//! # Similarity
//! Codes are compared word by word: a *soft token Jaccard* `m / (|A| + |B| − m)` over the
//! two codes' word sets, where `m` counts matched word pairs — equal words, or words whose
//! `strsim::normalized_levenshtein` is at least [`WORD_MATCH`] (0.7: one typo in a word of
//! four letters or more, two from seven). So it combines Levenshtein (inside words, for
//! misspellings) with token Jaccard (across words, for reordering and extra words). Words
//! are runs of letters and digits (apostrophes dropped: "didn't" is "didnt"); a few English
//! function words ([`STOP_WORDS`]: articles, "is", "was", prepositions; never "not" or "no")
//! are ignored unless a code has nothing else. Left-over words are paired greedily, most
//! similar first.
//!
//! Measured before choosing (generated codes: 340 base failure phrases, most sharing a word
//! with dozens of others, × misspellings, reorderings and extra words; dense average
//! linkage; pairwise precision / recall against the base phrase, n = 1,000 and 3,000):
//! 1 − normalized_levenshtein on whole codes peaked at F1 0.36–0.41 (P 0.55, R 0.27–0.33,
//! cut 0.6–0.7 similarity), since long shared words make "wrong date" and "wrong name" 0.8
//! alike; token Jaccard peaked at 0.22–0.28; their max at 0.36–0.42; their mean at
//! 0.29–0.36. The soft token Jaccard reached 0.65 without stop words and 0.80–0.86 with
//! them (P 0.99–1.00, R 0.67–0.76) at a cut of 0.525. Merging at exactly 1/2 lets two
//! codes sharing half their words merge ("leaked phone number" / "missing phone number":
//! 2/4); hence [`DEFAULT_MIN_SIMILARITY`] = 0.52. The figures come from our own generator,
//! so they rank the measures rather than promise a precision on real codes.
//!
//! Example notes are not used: they are long free text whose shared topic words ("order",
//! "refund") would join codes by subject rather than by failure, and they would cost time.
//!
//! # Staying interactive at 10,000 codes
//! No n × n matrix. (1) Every distinct word gets its fuzzy neighbours (words within
//! [`WORD_MATCH`]) from a character-trigram index of the vocabulary, filtered exactly by
//! length and the q-gram lemma before any Levenshtein. (2) An inverted index from words to
//! codes yields candidate pairs: codes sharing a word or a fuzzy neighbour, with enough such
//! words to reach the cut (the count bounds `m` from above, so the filter loses nothing).
//! Words in more than [`MAX_WORD_CODES`] codes are not used to find candidates (they still
//! count in the similarity): pairs whose only shared words are that common are not
//! suggested. (3) Connected components over the pairs at or above the cut. Average-linkage
//! clusters at that cut never cross components (an average at or above the cut needs one
//! pair at or above it), so (4) exact average linkage (kodama) inside each component gives
//! the same clusters as over all codes. A component over `max_component` codes is split by
//! raising the threshold of its pairs in steps of 0.05; a part still too large at
//! similarity 1 is cut into chunks of `max_component` codes in code order.
//!
//! Checked against dense average linkage over all pairs at the same cut (generated codes,
//! pairwise precision / recall of our clusters taking the dense ones as truth): 0.995 /
//! 0.999 at 1,000 codes, 0.98 / 0.99 at 3,000 (differences are ties broken in another
//! order), 0.96 / 0.96 at 10,000, where one chained component of 7,809 codes is split;
//! against the generator's base phrases both score alike (P 0.99, R 0.68). The dense run
//! at 10,000 took 197 s and 517 MB; this one takes about a third of a second and 30 MB
//! (`examples/cluster_bench.rs`). One thread: on a two-core server a second one bought
//! 20 % and would take a core from the annotators' requests.

use std::collections::HashMap;

/// Two words match when their normalized Levenshtein similarity is at least this.
pub const WORD_MATCH: f64 = 0.7;

/// The default cut: codes (and clusters, on average) at least this similar are grouped.
pub const DEFAULT_MIN_SIMILARITY: f64 = 0.52;

/// The default largest group of connected codes clustered exactly (memory is
/// `max_component²` f64s: 8 MB at 1,000).
pub const DEFAULT_MAX_COMPONENT: usize = 1_000;

/// Words in more codes than this are not used to find candidate pairs.
pub const MAX_WORD_CODES: usize = 2_000;

/// Function words ignored in a code that has other words.
pub const STOP_WORDS: [&str; 20] = [
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "to", "of", "in", "on", "for",
    "with", "at", "by", "it", "its", "and",
];

/// How much the threshold of an over-large component rises per split.
const SPLIT_STEP: f64 = 0.05;
/// Tolerance when comparing a similarity with the cut.
const EPS: f64 = 1e-9;

/// One distinct normalized code and how many times it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeCount {
    pub code: String,
    pub uses: u64,
}

/// A code in a suggested cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub code: String,
    pub uses: u64,
}

/// A suggested group of at least two similar codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// The proposed name: the most-used member (ties: alphabetically first).
    pub name: String,
    /// Members, most used first, ties alphabetically.
    pub members: Vec<Member>,
    /// Uses of all members.
    pub total_uses: u64,
    /// Mean [`similarity`] over all pairs of members: at least the cut, at most 1.
    pub cohesion: f64,
}

/// Tuning of [`suggest_clusters`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterParams {
    /// The cut, in similarity: clusters merge while their average similarity is at least
    /// this. Clamped to [0.05, 1].
    pub min_similarity: f64,
    /// Largest component clustered exactly; larger ones are split (see the module doc).
    /// At least 2.
    pub max_component: usize,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            min_similarity: DEFAULT_MIN_SIMILARITY,
            max_component: DEFAULT_MAX_COMPONENT,
        }
    }
}

/// The similarity of two codes in [0, 1] (see the module doc), the one the clustering uses.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (x, y) = (words(a), words(b));
    let x: Vec<&str> = x.iter().map(String::as_str).collect();
    let y: Vec<&str> = y.iter().map(String::as_str).collect();
    let fuzzy = |p: &str, q: &str| {
        let s = strsim::normalized_levenshtein(p, q);
        (s >= WORD_MATCH).then_some(s)
    };
    soft_jaccard(&x, &y, fuzzy, &mut Scratch::new())
}

/// Suggested clusters of similar codes, largest total use first (ties by name).
///
/// `codes` should be distinct; a code given twice has its uses added, and empty codes are
/// ignored. The result does not depend on the order of `codes`.
pub fn suggest_clusters(codes: &[CodeCount], params: &ClusterParams) -> Vec<Cluster> {
    let cut = params.min_similarity.clamp(0.05, 1.0);
    let max_component = params.max_component.max(2);
    let codes = distinct_sorted(codes);
    if codes.len() < 2 {
        return Vec::new();
    }
    let vocab = Vocabulary::build(&codes);
    let edges = candidate_edges(&vocab, cut);

    let all: Vec<u32> = (0..codes.len() as u32).collect();
    let tasks = components(&all, &edges);
    let run = Clustering {
        vocab: &vocab,
        cut,
        max_component,
    };
    let mut found = Vec::new();
    for (members, edges) in &tasks {
        run.component(members, edges, cut, &mut found);
    }
    // Names are distinct, so this order is total.
    let mut clusters: Vec<Cluster> = found.iter().map(|f| to_cluster(&codes, f)).collect();
    clusters.sort_by(|a, b| {
        b.total_uses
            .cmp(&a.total_uses)
            .then_with(|| a.name.cmp(&b.name))
    });
    clusters
}

/// A cluster found, as code indices and the cohesion.
struct Found {
    members: Vec<u32>,
    cohesion: f64,
}

fn to_cluster(codes: &[(&str, u64)], found: &Found) -> Cluster {
    let mut members: Vec<Member> = found
        .members
        .iter()
        .map(|&i| {
            let (code, uses) = codes[i as usize];
            Member {
                code: code.to_owned(),
                uses,
            }
        })
        .collect();
    members.sort_by(|a, b| b.uses.cmp(&a.uses).then_with(|| a.code.cmp(&b.code)));
    Cluster {
        name: members[0].code.clone(),
        total_uses: members.iter().fold(0u64, |t, m| t.saturating_add(m.uses)),
        members,
        cohesion: found.cohesion,
    }
}

/// Non-empty codes, sorted, duplicates merged: the index order everything else follows,
/// which makes the result independent of the input order.
fn distinct_sorted(codes: &[CodeCount]) -> Vec<(&str, u64)> {
    let mut sorted: Vec<(&str, u64)> = codes
        .iter()
        .filter(|c| !c.code.trim().is_empty())
        .map(|c| (c.code.as_str(), c.uses))
        .collect();
    sorted.sort_unstable();
    let mut out: Vec<(&str, u64)> = Vec::with_capacity(sorted.len());
    for (code, uses) in sorted {
        match out.last_mut() {
            Some((last, total)) if *last == code => *total = total.saturating_add(uses),
            _ => out.push((code, uses)),
        }
    }
    out
}

/// The distinct words of a code, sorted, stop words left out unless nothing else is left.
fn words(code: &str) -> Vec<String> {
    let mut all: Vec<String> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    all.sort_unstable();
    all.dedup();
    let content: Vec<String> = all
        .iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    if content.is_empty() { all } else { content }
}

/// Buffers [`soft_jaccard`] reuses: it runs millions of times per suggestion.
struct Scratch<T> {
    rest_x: Vec<T>,
    rest_y: Vec<T>,
    pairs: Vec<(f64, usize, usize)>,
    used_x: Vec<bool>,
    used_y: Vec<bool>,
}

impl<T> Scratch<T> {
    fn new() -> Scratch<T> {
        Scratch {
            rest_x: Vec::new(),
            rest_y: Vec::new(),
            pairs: Vec::new(),
            used_x: Vec::new(),
            used_y: Vec::new(),
        }
    }
}

/// `m / (|x| + |y| − m)` where `m` counts equal words plus fuzzy matches among the rest,
/// paired greedily by similarity (ties by the words' order). `x` and `y` are sorted and
/// distinct; `fuzzy` gives the similarity of two different words when it reaches
/// [`WORD_MATCH`].
fn soft_jaccard<T: Ord + Copy>(
    x: &[T],
    y: &[T],
    fuzzy: impl Fn(T, T) -> Option<f64>,
    scratch: &mut Scratch<T>,
) -> f64 {
    if x.is_empty() && y.is_empty() {
        return 0.0;
    }
    let Scratch {
        rest_x,
        rest_y,
        pairs,
        used_x,
        used_y,
    } = scratch;
    rest_x.clear();
    rest_y.clear();
    let (mut i, mut j, mut matched) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Equal => {
                matched += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                rest_x.push(x[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                rest_y.push(y[j]);
                j += 1;
            }
        }
    }
    rest_x.extend_from_slice(&x[i..]);
    rest_y.extend_from_slice(&y[j..]);

    pairs.clear();
    for (a, &p) in rest_x.iter().enumerate() {
        for (b, &q) in rest_y.iter().enumerate() {
            if let Some(s) = fuzzy(p, q) {
                pairs.push((s, a, b));
            }
        }
    }
    if !pairs.is_empty() {
        pairs.sort_by(|p, q| q.0.total_cmp(&p.0).then((p.1, p.2).cmp(&(q.1, q.2))));
        used_x.clear();
        used_x.resize(rest_x.len(), false);
        used_y.clear();
        used_y.resize(rest_y.len(), false);
        for &(_, a, b) in pairs.iter() {
            if !used_x[a] && !used_y[b] {
                used_x[a] = true;
                used_y[b] = true;
                matched += 1;
            }
        }
    }
    matched as f64 / (x.len() + y.len() - matched) as f64
}

/// The fewest matched words two codes of `a` and `b` words need to reach `cut`.
fn min_matches(a: usize, b: usize, cut: f64) -> usize {
    ((cut * (a + b) as f64 / (1.0 + cut)) - EPS).ceil().max(1.0) as usize
}

/// Words as ids (their rank in the sorted vocabulary), each word's fuzzy neighbours, and
/// the codes each word appears in.
struct Vocabulary {
    /// Each code's word ids, sorted.
    code_words: Vec<Vec<u32>>,
    /// Per word id: the other words within [`WORD_MATCH`], with the similarity, by id.
    fuzzy: Vec<Vec<(u32, f64)>>,
    /// Per word id: the codes using it, ascending.
    codes_with: Vec<Vec<u32>>,
}

impl Vocabulary {
    fn build(codes: &[(&str, u64)]) -> Vocabulary {
        let code_words_text: Vec<Vec<String>> = codes.iter().map(|(c, _)| words(c)).collect();
        let mut words_sorted: Vec<&str> = code_words_text
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        words_sorted.sort_unstable();
        words_sorted.dedup();
        let id: HashMap<&str, u32> = words_sorted
            .iter()
            .enumerate()
            .map(|(i, w)| (*w, i as u32))
            .collect();
        let mut codes_with = vec![Vec::new(); words_sorted.len()];
        let code_words: Vec<Vec<u32>> = code_words_text
            .iter()
            .enumerate()
            .map(|(c, ws)| {
                // Sorted text gives sorted ids: ids are ranks in the same order.
                ws.iter()
                    .map(|w| {
                        let i = id[w.as_str()];
                        codes_with[i as usize].push(c as u32);
                        i
                    })
                    .collect()
            })
            .collect();
        Vocabulary {
            fuzzy: fuzzy_neighbours(&words_sorted),
            code_words,
            codes_with,
        }
    }

    fn similarity(&self, i: usize, j: usize, scratch: &mut Scratch<u32>) -> f64 {
        let fuzzy = |p: u32, q: u32| {
            let near = &self.fuzzy[p as usize];
            near.binary_search_by_key(&q, |&(w, _)| w)
                .ok()
                .map(|k| near[k].1)
        };
        soft_jaccard(&self.code_words[i], &self.code_words[j], fuzzy, scratch)
    }
}

/// For each word, the words within [`WORD_MATCH`]. Candidates come from a trigram index
/// (words padded with two blanks each side) and must pass two exact filters first: the
/// length difference is at most the edit distance allowed, and (q-gram lemma) words within
/// edit distance `d` share at least `max_len + 2 − 3d` padded trigrams.
fn fuzzy_neighbours(words: &[&str]) -> Vec<Vec<(u32, f64)>> {
    let lens: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
    let grams: Vec<Vec<u64>> = words.iter().map(|w| trigrams(w)).collect();
    let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
    for (w, gs) in grams.iter().enumerate() {
        for &g in gs {
            index.entry(g).or_default().push(w as u32);
        }
    }
    let mut near: Vec<Vec<(u32, f64)>> = vec![Vec::new(); words.len()];
    let mut shared = vec![0u32; words.len()];
    let mut touched: Vec<u32> = Vec::new();
    for a in 0..words.len() {
        for g in &grams[a] {
            // Postings hold a word once per occurrence of the trigram, so `shared`
            // over-counts repeated trigrams: an upper bound, safe for a filter.
            let postings = &index[g];
            let start = postings.partition_point(|&b| b as usize <= a);
            for &b in &postings[start..] {
                if shared[b as usize] == 0 {
                    touched.push(b);
                }
                shared[b as usize] += 1;
            }
        }
        for &b in &touched {
            let b = b as usize;
            let longest = lens[a].max(lens[b]);
            let max_edits = ((1.0 - WORD_MATCH) * longest as f64 + EPS).floor() as usize;
            let needed = (longest + 2).saturating_sub(3 * max_edits);
            if lens[a].abs_diff(lens[b]) <= max_edits && shared[b] as usize >= needed {
                let s = strsim::normalized_levenshtein(words[a], words[b]);
                if s >= WORD_MATCH {
                    near[a].push((b as u32, s));
                    near[b].push((a as u32, s));
                }
            }
            shared[b] = 0;
        }
        touched.clear();
    }
    for list in &mut near {
        list.sort_by_key(|&(w, _)| w);
    }
    near
}

/// Trigrams of `"  word  "`, each packed into a u64 (three 21-bit chars: no collisions).
fn trigrams(word: &str) -> Vec<u64> {
    let padded: Vec<char> = "  "
        .chars()
        .chain(word.chars())
        .chain("  ".chars())
        .collect();
    padded
        .windows(3)
        .map(|w| (u64::from(w[0]) << 42) | (u64::from(w[1]) << 21) | u64::from(w[2]))
        .collect()
}

/// Pairs `(i, j, similarity)` with `i < j` and similarity at least `cut`, from the
/// word → codes index. For each code, `hits[j]` counts (word of i, word of j) pairs that
/// are equal or fuzzy neighbours: an upper bound on the matched words, so a pair below
/// [`min_matches`] is skipped without computing its similarity.
fn candidate_edges(vocab: &Vocabulary, cut: f64) -> Vec<Edge> {
    let n = vocab.code_words.len();
    let mut hits = vec![0u32; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut scratch = Scratch::new();
    let mut edges = Vec::new();
    for i in 0..n {
        for &w in &vocab.code_words[i] {
            let probes = std::iter::once(w).chain(vocab.fuzzy[w as usize].iter().map(|&(v, _)| v));
            for v in probes {
                let codes = &vocab.codes_with[v as usize];
                if codes.len() > MAX_WORD_CODES {
                    continue;
                }
                let start = codes.partition_point(|&j| j as usize <= i);
                for &j in &codes[start..] {
                    if hits[j as usize] == 0 {
                        touched.push(j);
                    }
                    hits[j as usize] += 1;
                }
            }
        }
        let len_i = vocab.code_words[i].len();
        for &j in &touched {
            let j = j as usize;
            let needed = min_matches(len_i, vocab.code_words[j].len(), cut);
            if hits[j] as usize >= needed {
                let s = vocab.similarity(i, j, &mut scratch);
                if s >= cut - EPS {
                    edges.push((i as u32, j as u32, s));
                }
            }
            hits[j] = 0;
        }
        touched.clear();
    }
    edges
}

/// `(i, j, similarity)` between codes `i < j`.
type Edge = (u32, u32, f64);

/// Connected components of two or more codes among `members` (ascending) over `edges`
/// (pairs of members), each with its members ascending and its edges, in the order of
/// their smallest member.
fn components(members: &[u32], edges: &[Edge]) -> Vec<(Vec<u32>, Vec<Edge>)> {
    let local = |code: u32| members.binary_search(&code).ok();
    let mut sets = UnionFind::new(members.len());
    for &(i, j, _) in edges {
        if let (Some(a), Some(b)) = (local(i), local(j)) {
            sets.union(a, b);
        }
    }
    let mut slot_of_root = vec![usize::MAX; members.len()];
    let mut slot_of = vec![0; members.len()];
    let mut groups: Vec<(Vec<u32>, Vec<Edge>)> = Vec::new();
    for (a, &code) in members.iter().enumerate() {
        let root = sets.find(a);
        if slot_of_root[root] == usize::MAX {
            slot_of_root[root] = groups.len();
            groups.push((Vec::new(), Vec::new()));
        }
        slot_of[a] = slot_of_root[root];
        groups[slot_of[a]].0.push(code);
    }
    for &edge in edges {
        if let Some(a) = local(edge.0) {
            groups[slot_of[a]].1.push(edge);
        }
    }
    groups.retain(|(members, _)| members.len() >= 2);
    groups
}

/// What every component is clustered with.
struct Clustering<'a> {
    vocab: &'a Vocabulary,
    cut: f64,
    max_component: usize,
}

impl Clustering<'_> {
    /// Clusters one component exactly, or first splits it while it is over
    /// `max_component`: into the components of its pairs at least `threshold + 0.05`
    /// alike, then `+ 0.10`, …; a part still too large at similarity 1 is cut into chunks
    /// in code order.
    fn component(&self, members: &[u32], edges: &[Edge], threshold: f64, out: &mut Vec<Found>) {
        if members.len() <= self.max_component {
            self.average_linkage(members, out);
        } else if threshold >= 1.0 {
            for chunk in members.chunks(self.max_component) {
                self.average_linkage(chunk, out);
            }
        } else {
            let raised = (threshold + SPLIT_STEP).min(1.0);
            let kept: Vec<Edge> = edges
                .iter()
                .copied()
                .filter(|e| e.2 >= raised - EPS)
                .collect();
            for (part, part_edges) in components(members, &kept) {
                self.component(&part, &part_edges, raised, out);
            }
        }
    }

    /// Exact average linkage over `members` (kodama), cut at `cut`: every merge at a
    /// dissimilarity of at most `1 − cut` is applied (average linkage is monotone, so they
    /// come first).
    fn average_linkage(&self, members: &[u32], out: &mut Vec<Found>) {
        let m = members.len();
        if m < 2 {
            return;
        }
        // Condensed upper triangle, row by row: (0,1), (0,2) … (0,m−1), (1,2) …
        let mut scratch = Scratch::new();
        let mut similarities = Vec::with_capacity(m * (m - 1) / 2);
        for a in 0..m {
            for b in a + 1..m {
                let (i, j) = (members[a] as usize, members[b] as usize);
                similarities.push(self.vocab.similarity(i, j, &mut scratch));
            }
        }
        // kodama overwrites its matrix; keep the similarities for the cohesion.
        let mut dissimilarities: Vec<f64> = similarities.iter().map(|s| 1.0 - s).collect();
        let dendrogram = kodama::linkage(&mut dissimilarities, m, kodama::Method::Average);

        // Step k creates cluster m + k from cluster1 and cluster2.
        let mut merged = UnionFind::new(2 * m - 1);
        for (k, step) in dendrogram.steps().iter().enumerate() {
            if step.dissimilarity > 1.0 - self.cut + EPS {
                break;
            }
            merged.union(step.cluster1, m + k);
            merged.union(step.cluster2, m + k);
        }
        let mut by_root: Vec<(usize, usize)> = (0..m).map(|a| (merged.find(a), a)).collect();
        by_root.sort_unstable();
        for run in by_root.chunk_by(|p, q| p.0 == q.0) {
            if run.len() < 2 {
                continue;
            }
            let local: Vec<usize> = run.iter().map(|&(_, a)| a).collect();
            let mut total = 0.0;
            let mut pairs = 0usize;
            for (x, &a) in local.iter().enumerate() {
                for &b in &local[x + 1..] {
                    total += similarities[condensed_index(m, a, b)];
                    pairs += 1;
                }
            }
            out.push(Found {
                members: local.iter().map(|&a| members[a]).collect(),
                cohesion: total / pairs as f64,
            });
        }
    }
}

/// Position of `(a, b)`, `a < b`, in a condensed matrix over `m` observations.
fn condensed_index(m: usize, a: usize, b: usize) -> usize {
    a * m - a * (a + 1) / 2 + (b - a - 1)
}

/// A small union-find with path halving.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The larger root wins, so a new dendrogram label absorbs its children.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[lo] = hi;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[(&str, u64)]) -> Vec<CodeCount> {
        list.iter()
            .map(|&(code, uses)| CodeCount {
                code: code.to_owned(),
                uses,
            })
            .collect()
    }

    fn suggest(list: &[(&str, u64)]) -> Vec<Cluster> {
        suggest_clusters(&codes(list), &ClusterParams::default())
    }

    fn member_codes(cluster: &Cluster) -> Vec<&str> {
        cluster.members.iter().map(|m| m.code.as_str()).collect()
    }

    #[test]
    fn similarity_by_hand() {
        // {wrong, tool} vs {tool, wrong, call}: 2 equal words, 2 / (2 + 3 − 2) = 2/3.
        assert!((similarity("wrong tool", "wrong tool call") - 2.0 / 3.0).abs() < 1e-12);
        // wrng ~ wrong (1 edit in 5 letters: 0.8 ≥ 0.7) and tool = tool: 2 / (2 + 2 − 2) = 1.
        assert_eq!(similarity("wrng tool", "wrong tool"), 1.0);
        // Same words, other order; "is" is a stop word.
        assert_eq!(similarity("date wrong", "wrong date"), 1.0);
        assert_eq!(similarity("date is wrong", "wrong date"), 1.0);
        // date vs price share nothing: 1 / (2 + 2 − 1) = 1/3.
        assert!((similarity("wrong date", "wrong price") - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(similarity("hallucinated price", "missed escalation"), 0.0);
        // A negation is a word, not a stop word.
        assert!(similarity("did escalate", "did not escalate") < 1.0);
    }

    #[test]
    fn misspellings_and_extra_words_cluster() {
        let clusters = suggest(&[
            ("wrong tool", 9),
            ("wrong tool call", 4),
            ("wrng tool", 1),
            ("missed escalation", 3),
        ]);
        assert_eq!(clusters.len(), 1, "{clusters:?}");
        let c = &clusters[0];
        assert_eq!(
            member_codes(c),
            ["wrong tool", "wrong tool call", "wrng tool"]
        );
        assert_eq!(c.name, "wrong tool");
        assert_eq!(c.total_uses, 14);
        // Pairs: 2/3 (wrong tool, wrong tool call), 1 (wrong tool, wrng tool),
        // 2/3 (wrng tool ~ wrong tool call: wrng~wrong, tool): mean (2/3 + 1 + 2/3) / 3 = 7/9.
        assert!((c.cohesion - 7.0 / 9.0).abs() < 1e-12, "{}", c.cohesion);
    }

    #[test]
    fn reordered_words_cluster() {
        let clusters = suggest(&[("date wrong", 2), ("wrong date", 5)]);
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].name, "wrong date");
        assert_eq!(clusters[0].cohesion, 1.0);
    }

    #[test]
    fn unrelated_codes_stay_apart() {
        let clusters = suggest(&[
            ("hallucinated price", 5),
            ("missed escalation", 5),
            ("wrong date", 3),
            ("wrong price", 3),
            ("leaked phone number", 2),
            ("missing phone number", 2),
        ]);
        assert!(clusters.is_empty(), "{clusters:?}");
    }

    #[test]
    fn synonyms_without_shared_words_are_not_expected_to_cluster() {
        let clusters = suggest(&[("missed escalation", 4), ("did not hand over to human", 2)]);
        assert!(clusters.is_empty(), "{clusters:?}");
    }

    #[test]
    fn clusters_are_sorted_by_total_uses_then_name_and_named_by_most_used() {
        let clusters = suggest(&[
            ("date wrong", 3),
            ("wrong date", 3),
            ("tool call failed", 10),
            ("tool call failled", 1),
            ("ignored user constraint", 2),
            ("ignored the user constraint", 2),
        ]);
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        // 11 uses, then 6 ("date wrong" wins the 3–3 tie alphabetically), then 4.
        assert_eq!(
            names,
            [
                "tool call failed",
                "date wrong",
                "ignored the user constraint"
            ]
        );
        assert_eq!(member_codes(&clusters[1]), ["date wrong", "wrong date"]);
    }

    #[test]
    fn same_output_for_shuffled_input() {
        let list = [
            ("wrong tool", 9),
            ("wrong tool call", 4),
            ("wrng tool", 1),
            ("date wrong", 2),
            ("wrong date", 5),
            ("wrong dates", 1),
            ("missed escalation", 3),
            ("missed escalations", 1),
            ("hallucinated price", 2),
            ("hallucinated prices", 2),
            ("tone too casual", 1),
        ];
        let expected = suggest(&list);
        assert!(expected.len() >= 4, "{expected:?}");
        let mut shuffled = list.to_vec();
        // A fixed permutation, then a reversal: no randomness in tests.
        for i in 0..shuffled.len() {
            shuffled.swap(i, (i * 7 + 3) % list.len());
        }
        assert_eq!(suggest(&shuffled), expected);
        shuffled.reverse();
        assert_eq!(suggest(&shuffled), expected);
    }

    #[test]
    fn empty_single_and_blank_input_give_nothing() {
        assert!(suggest(&[]).is_empty());
        assert!(suggest(&[("wrong tool", 3)]).is_empty());
        assert!(suggest(&[("", 3), ("  ", 1), ("wrong tool", 2)]).is_empty());
    }

    #[test]
    fn a_code_given_twice_has_its_uses_added() {
        let clusters = suggest(&[("wrong date", 2), ("wrong date", 3), ("date wrong", 4)]);
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].members.len(), 2);
        assert_eq!(clusters[0].name, "wrong date");
        assert_eq!(clusters[0].total_uses, 9);
    }

    fn sizes(clusters: &[Cluster]) -> Vec<usize> {
        clusters.iter().map(|c| c.members.len()).collect()
    }

    #[test]
    fn over_large_components_are_split_by_raising_the_threshold() {
        // A: three orders of {wrong, tool, call}, pairwise 1. B: the same for
        // {wrong, date, given}. A–B pairs: 1/5. The bridge shares 3 of 5 words with each
        // (3/5 = 0.6), so all seven codes are one component.
        let list = [
            ("wrong tool call", 5),
            ("tool call wrong", 1),
            ("call wrong tool", 1),
            ("wrong date given", 4),
            ("date given wrong", 1),
            ("given wrong date", 1),
            ("wrong tool call date given", 1),
        ];
        // Uncapped: the bridge joins A at average distance 0.4 ≤ 0.48; B stays apart
        // (average distance to A + bridge: (9 × 0.8 + 3 × 0.4) / 12 = 0.7).
        let whole = suggest(&list);
        assert_eq!(sizes(&whole), [4, 3], "{whole:?}");
        assert!(member_codes(&whole[0]).contains(&"wrong tool call date given"));
        // Capped at 4: 7 > 4, so the threshold rises; at 0.62 the 0.6 bridge edges go and
        // A and B are clustered on their own; the bridge is left out.
        let capped = ClusterParams {
            max_component: 4,
            ..ClusterParams::default()
        };
        let split = suggest_clusters(&codes(&list), &capped);
        assert_eq!(sizes(&split), [3, 3], "{split:?}");
        assert!(split.iter().all(|c| c.cohesion == 1.0));
    }

    #[test]
    fn components_too_large_even_at_similarity_one_are_chunked() {
        // Six orders of the same three words: pairwise 1, so no threshold splits them.
        let list = [
            ("wrong tool call", 1),
            ("wrong call tool", 1),
            ("tool wrong call", 1),
            ("tool call wrong", 1),
            ("call wrong tool", 1),
            ("call tool wrong", 1),
        ];
        let capped = ClusterParams {
            max_component: 4,
            ..ClusterParams::default()
        };
        let chunks = suggest_clusters(&codes(&list), &capped);
        // Chunks of 4 and 2 in code order: call…, call…, tool…, tool… | wrong…, wrong….
        assert_eq!(sizes(&chunks), [4, 2], "{chunks:?}");
        assert_eq!(
            member_codes(&chunks[1]),
            ["wrong call tool", "wrong tool call"]
        );
    }

    #[test]
    fn the_index_finds_what_the_plain_similarity_finds() {
        // Every pair the public similarity puts at or above the cut is an edge.
        let list = [
            "wrong tool",
            "wrng tool",
            "tool wrng",
            "wrong tool call",
            "wrong tol call",
            "date wrong",
            "wrong date",
            "bot gave wrong date again",
            "missed escalation",
            "escalation missed",
            "mised escalation",
        ];
        let input = codes(&list.iter().map(|c| (*c, 1)).collect::<Vec<_>>());
        let sorted = distinct_sorted(&input);
        let vocab = Vocabulary::build(&sorted);
        let cut = DEFAULT_MIN_SIMILARITY;
        let edges = candidate_edges(&vocab, cut);
        for i in 0..sorted.len() {
            for j in i + 1..sorted.len() {
                let plain = similarity(sorted[i].0, sorted[j].0);
                let indexed = vocab.similarity(i, j, &mut Scratch::new());
                assert!((indexed - plain).abs() < 1e-12);
                let found = edges.iter().any(|e| (e.0 as usize, e.1 as usize) == (i, j));
                assert_eq!(found, plain >= cut, "{} / {}", sorted[i].0, sorted[j].0);
            }
        }
    }

    #[test]
    fn condensed_index_follows_kodama_layout() {
        // m = 4: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3).
        let order = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
        for (k, &(a, b)) in order.iter().enumerate() {
            assert_eq!(condensed_index(4, a, b), k);
        }
    }

    #[test]
    fn min_matches_is_the_exact_bound() {
        // m / (a + b − m) ≥ 0.52 ⇔ m ≥ 0.52 (a + b) / 1.52.
        assert_eq!(min_matches(2, 2, 0.52), 2); // 1.37 → 2
        assert_eq!(min_matches(1, 1, 0.52), 1); // 0.68 → 1
        assert_eq!(min_matches(3, 5, 0.52), 3); // 2.74 → 3
        assert_eq!(min_matches(2, 2, 0.5), 2); // 1.33 → 2
        assert_eq!(min_matches(1, 3, 0.5), 2); // exactly 4/3 → 2
        assert_eq!(min_matches(1, 2, 0.5), 1); // exactly 1 → 1
    }
}
