//! Benchmark of `domain::code_clusters::suggest_clusters` on generated open codes.
//!
//! `cargo run --release --example cluster_bench`. Codes are generated deterministically:
//! 340 base failure phrases (10 qualifiers × 30 subjects, so most share a word with dozens
//! of others, plus 40 free-form ones), then variants of popular bases (misspellings,
//! reorderings, "is"/"was", plurals, extra words before and after) until the wanted number
//! of distinct codes. Each size is timed over several runs after one warm-up run (input
//! generation not timed); peak memory is the process's VmHWM from /proc/self/status.
//! Quality is pairwise precision / recall against the base phrase each code came from.

use std::time::{Duration, Instant};

use tracecoder::domain::code_clusters::{ClusterParams, CodeCount, suggest_clusters};

const QUALIFIERS: [&str; 10] = [
    "wrong",
    "missing",
    "outdated",
    "duplicated",
    "unrequested",
    "misformatted",
    "contradictory",
    "truncated",
    "unverified",
    "leaked",
];
const SUBJECTS: [&str; 30] = [
    "date",
    "price",
    "tool call",
    "order status",
    "refund policy",
    "shipping address",
    "user name",
    "currency",
    "time zone",
    "product link",
    "tracking number",
    "discount code",
    "account balance",
    "return window",
    "store hours",
    "phone number",
    "email address",
    "delivery estimate",
    "warranty terms",
    "size chart",
    "invoice total",
    "booking reference",
    "flight time",
    "loyalty points",
    "tax amount",
    "stock level",
    "payment method",
    "cancellation fee",
    "opening offer",
    "contact details",
];
const FREE: [&str; 40] = [
    "did not escalate to human",
    "asked for info already given",
    "repeated the same answer",
    "tone too casual",
    "ignored user constraint",
    "answered in wrong language",
    "made up a policy",
    "looped on clarification",
    "refused a valid request",
    "no apology after error",
    "leaked system prompt",
    "followed prompt injection",
    "ended conversation early",
    "gave medical advice",
    "overly long answer",
    "used internal jargon",
    "promised a callback",
    "blamed the user",
    "skipped identity check",
    "asked too many questions",
    "did not confirm cancellation",
    "wrong greeting for returning customer",
    "misread user intent",
    "hallucinated product feature",
    "answered a different question",
    "exposed other customer data",
    "failed to use search tool",
    "tool error not handled",
    "retried tool endlessly",
    "gave legal advice",
    "unsafe content not refused",
    "sarcastic reply",
    "ignored attachment",
    "mixed up two orders",
    "offered unavailable discount",
    "confused units",
    "said it is human",
    "stopped mid sentence",
    "markdown broken in reply",
    "link to competitor",
];
const PREFIXES: [&str; 6] = ["bot", "agent", "the", "gave", "response has", "answer with"];
const SUFFIXES: [&str; 9] = [
    "again",
    "in answer",
    "in reply",
    "given",
    "provided",
    "for user",
    "in summary",
    "error",
    "issue",
];

/// splitmix64: deterministic across platforms and crate versions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn bases() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in SUBJECTS {
        for q in QUALIFIERS {
            out.push(format!("{q} {s}"));
        }
    }
    out.extend(FREE.iter().map(|s| s.to_string()));
    out
}

fn misspell(word: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = 1 + rng.below(chars.len() - 1);
    match rng.below(4) {
        0 => {
            chars.remove(i);
        }
        1 => chars.swap(i - 1, i),
        2 => chars.insert(i, chars[i]),
        _ => chars[i] = (b'a' + rng.below(26) as u8) as char,
    }
    chars.into_iter().collect()
}

/// One variant of `base`: misspellings, a reordering, extra words, a plural.
fn variant(base: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = base.split(' ').map(str::to_string).collect();
    for _ in 0..(1 + rng.below(2)) {
        if rng.chance(50) {
            let long: Vec<usize> = (0..words.len()).filter(|&i| words[i].len() >= 4).collect();
            if !long.is_empty() {
                let i = long[rng.below(long.len())];
                words[i] = misspell(&words[i], rng);
            }
        }
    }
    if words.len() >= 2 && rng.chance(25) {
        let first = words.remove(0);
        if rng.chance(50) {
            words.push(["is", "was"][rng.below(2)].to_string());
        }
        words.push(first);
    }
    if rng.chance(15)
        && let Some(last) = words.last_mut()
        && !last.ends_with('s')
    {
        last.push('s');
    }
    if rng.chance(30) {
        words.insert(0, PREFIXES[rng.below(PREFIXES.len())].to_string());
    }
    if rng.chance(30) {
        words.push(SUFFIXES[rng.below(SUFFIXES.len())].to_string());
    }
    words.join(" ")
}

/// `n` distinct codes as (code, uses, index of its base phrase), deterministic in `seed`.
fn generate(n: usize, seed: u64) -> Vec<(String, u64, usize)> {
    let bases = bases();
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    // Base order shuffled once so popularity does not follow the grid.
    let mut order: Vec<usize> = (0..bases.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    for (rank, &b) in order.iter().enumerate() {
        if out.len() == n {
            break;
        }
        if seen.insert(bases[b].clone()) {
            out.push((bases[b].clone(), 1 + 300 / (rank as u64 + 1), b));
        }
    }
    let mut misses = 0;
    while out.len() < n && misses < 1_000_000 {
        // Popular bases get more variants: half the picks go to the top fifth.
        let rank = if rng.chance(50) {
            rng.below(order.len())
        } else {
            rng.below(order.len() / 5)
        };
        let b = order[rank];
        let code = variant(&bases[b], &mut rng);
        if seen.insert(code.clone()) {
            out.push((code, 1 + rng.below(3) as u64, b));
        } else {
            misses += 1;
        }
    }
    out
}

/// Pairwise precision and recall of `clusters` (lists of indices into `labels`; codes in no
/// cluster are singletons) against the true labels.
fn pair_scores(clusters: &[Vec<usize>], labels: &[usize]) -> (f64, f64) {
    use std::collections::HashMap;
    let pairs = |k: u64| k * k.saturating_sub(1) / 2;
    let mut true_sizes: HashMap<usize, u64> = HashMap::new();
    for &l in labels {
        *true_sizes.entry(l).or_default() += 1;
    }
    let true_pairs: u64 = true_sizes.values().map(|&k| pairs(k)).sum();
    let mut predicted = 0;
    let mut correct = 0;
    for c in clusters {
        predicted += pairs(c.len() as u64);
        let mut by_label: HashMap<usize, u64> = HashMap::new();
        for &i in c {
            *by_label.entry(labels[i]).or_default() += 1;
        }
        correct += by_label.values().map(|&k| pairs(k)).sum::<u64>();
    }
    let p = if predicted == 0 {
        1.0
    } else {
        correct as f64 / predicted as f64
    };
    let r = if true_pairs == 0 {
        1.0
    } else {
        correct as f64 / true_pairs as f64
    };
    (p, r)
}

fn main() {
    println!("VmHWM at start: {}", vm_hwm());
    for (n, runs) in [(1_000, 30), (10_000, 15)] {
        let data = generate(n, 7);
        let input: Vec<CodeCount> = data
            .iter()
            .map(|(code, uses, _)| CodeCount {
                code: code.clone(),
                uses: *uses,
            })
            .collect();
        let params = ClusterParams::default();
        let clusters = suggest_clusters(&input, &params);
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let again = suggest_clusters(&input, &params);
            times.push(start.elapsed());
            assert_eq!(again, clusters, "not deterministic");
        }
        times.sort();
        let pct = |p: f64| times[((p * runs as f64).ceil() as usize).clamp(1, runs) - 1];

        // Pairwise quality against the base phrase each code was generated from.
        let index: std::collections::HashMap<&str, usize> = data
            .iter()
            .enumerate()
            .map(|(i, (code, _, _))| (code.as_str(), i))
            .collect();
        let groups: Vec<Vec<usize>> = clusters
            .iter()
            .map(|c| c.members.iter().map(|m| index[m.code.as_str()]).collect())
            .collect();
        let labels: Vec<usize> = data.iter().map(|d| d.2).collect();
        let (precision, recall) = pair_scores(&groups, &labels);
        let clustered: usize = groups.iter().map(Vec::len).sum();
        let largest = groups.iter().map(Vec::len).max().unwrap_or(0);

        println!(
            "n = {n:>6} codes ({} base phrases used): {runs} runs, p50 {:.1} ms, p95 {:.1} ms, \
             max {:.1} ms",
            labels
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            ms(pct(0.50)),
            ms(pct(0.95)),
            ms(times[runs - 1]),
        );
        println!(
            "    {} clusters, {clustered} codes clustered, largest {largest}; \
             pairwise precision {precision:.3}, recall {recall:.3}; VmHWM {}",
            clusters.len(),
            vm_hwm()
        );
        for c in clusters.iter().take(3) {
            let sample: Vec<&str> = c.members.iter().take(5).map(|m| m.code.as_str()).collect();
            println!(
                "    e.g. {:?} ({} codes, {} uses, cohesion {:.2}): {sample:?}",
                c.name,
                c.members.len(),
                c.total_uses,
                c.cohesion
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Peak resident memory of this process so far, as /proc/self/status reports it.
fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "n/a".to_string())
}
