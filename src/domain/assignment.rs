//! Who codes which trace: a shared overlap every assignee codes, spread evenly over the
//! dataset, and every other trace to `per_trace` assignees, keeping queues balanced. Pure
//! and deterministic, so an assignment is the same whoever computes it, and stable: traces
//! imported later are dealt to whoever has the fewest, never moving an earlier one.

/// The shape of an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// How many assignees (≥ 1).
    pub assignees: usize,
    /// Traces every assignee codes, chosen when the assignment is made.
    pub shared: u64,
    /// Assignees per trace outside the shared sample (1 ≤ per_trace ≤ assignees).
    pub per_trace: usize,
}

impl Plan {
    /// A plan, with `per_trace` clamped to `1..=assignees`. `None` without assignees.
    pub fn new(assignees: usize, shared: u64, per_trace: usize) -> Option<Plan> {
        (assignees > 0).then(|| Plan {
            assignees,
            shared,
            per_trace: per_trace.clamp(1, assignees),
        })
    }
}

/// Whether the trace at reading position `index` (0-based) of `total` is in the shared
/// sample of `shared` traces: the traces at ⌊(2j + 1)·total / (2·shared)⌋ for j < shared,
/// that is the middle of each of `shared` equal stretches of the dataset. With `shared ≥
/// total` every trace is shared.
pub fn is_shared(index: u64, total: u64, shared: u64) -> bool {
    if shared == 0 || total == 0 {
        return false;
    }
    if shared >= total {
        return true;
    }
    // The stretch this index falls in; its middle, or a neighbour's, may be this index.
    let j = (index as u128 * shared as u128 / total as u128) as u64;
    [j.checked_sub(1), Some(j), Some(j + 1)]
        .into_iter()
        .flatten()
        .filter(|&k| k < shared)
        .any(|k| middle_of(k, total, shared) == index)
}

/// The middle trace of stretch `j`: ⌊(2j + 1)·total / (2·shared)⌋.
fn middle_of(j: u64, total: u64, shared: u64) -> u64 {
    ((2 * j as u128 + 1) * total as u128 / (2 * shared as u128)) as u64
}

/// Deals traces outside the shared sample: each to the `per_trace` assignees with the
/// fewest dealt so far (ties to the earlier assignee), so queue sizes never differ by more
/// than one. Start from the counts already dealt to extend an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dealer {
    per_trace: usize,
    dealt: Vec<u64>,
}

impl Dealer {
    /// A dealer for `plan`, continuing from `dealt[i]` traces already dealt to assignee `i`
    /// (shorter or missing counts are zero).
    pub fn new(plan: Plan, dealt: &[u64]) -> Dealer {
        let mut counts = vec![0; plan.assignees];
        for (c, d) in counts.iter_mut().zip(dealt) {
            *c = *d;
        }
        Dealer {
            per_trace: plan.per_trace,
            dealt: counts,
        }
    }

    /// The assignees (indexes, ascending) of the next trace.
    pub fn deal(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dealt.len()).collect();
        order.sort_by_key(|&i| (self.dealt[i], i));
        let mut chosen: Vec<usize> = order.into_iter().take(self.per_trace).collect();
        for &i in &chosen {
            self.dealt[i] += 1;
        }
        chosen.sort_unstable();
        chosen
    }

    /// Traces dealt to each assignee so far.
    pub fn dealt(&self) -> &[u64] {
        &self.dealt
    }
}

/// Most people one assignment names.
pub const MAX_ASSIGNEES: usize = 500;

/// The assignees typed in a form or on the command line: emails separated by commas, spaces
/// or lines, lowercased, each once, in the order given.
pub fn parse_emails(raw: &str) -> Result<Vec<String>, String> {
    let mut emails: Vec<String> = Vec::new();
    for part in raw.split([',', ';', ' ', '\n', '\r', '\t']) {
        let email = part.trim().to_lowercase();
        if email.is_empty() {
            continue;
        }
        let valid = email.len() <= 254
            && email.split('@').count() == 2
            && email.split('@').all(|side| !side.is_empty());
        if !valid {
            return Err(format!("\"{part}\" is not an email address."));
        }
        if !emails.contains(&email) {
            emails.push(email);
        }
    }
    if emails.is_empty() {
        return Err("Name at least one annotator by email.".into());
    }
    if emails.len() > MAX_ASSIGNEES {
        return Err(format!(
            "At most {MAX_ASSIGNEES} annotators per assignment."
        ));
    }
    Ok(emails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_deduplicated_and_checked() {
        assert_eq!(
            parse_emails(" Ann@X.org, bob@y.org\nann@x.org;cy@z.org ").unwrap(),
            ["ann@x.org", "bob@y.org", "cy@z.org"]
        );
        assert!(parse_emails("ann").is_err());
        assert!(parse_emails("a@b@c").is_err());
        assert!(parse_emails("@x.org").is_err());
        assert!(parse_emails(" , ").is_err());
    }

    fn shared_indexes(total: u64, shared: u64) -> Vec<u64> {
        (0..total)
            .filter(|&i| is_shared(i, total, shared))
            .collect()
    }

    #[test]
    fn the_shared_sample_has_the_asked_size_and_is_spread_evenly() {
        assert_eq!(shared_indexes(10, 2), [2, 7]);
        assert_eq!(shared_indexes(100, 4), [12, 37, 62, 87]);
        assert_eq!(shared_indexes(7, 7), (0..7).collect::<Vec<_>>());
        assert_eq!(shared_indexes(5, 9), (0..5).collect::<Vec<_>>());
        assert!(shared_indexes(10, 0).is_empty());
        for (total, shared) in [(1000, 37), (999, 1), (1_000_001, 500), (50, 49), (3, 2)] {
            let picked = shared_indexes(total, shared);
            assert_eq!(picked.len() as u64, shared.min(total), "{total}/{shared}");
            // No two picks closer than the stretch length rounded down, minus one.
            let stretch = total / shared;
            for w in picked.windows(2) {
                assert!(w[1] - w[0] + 1 >= stretch, "{total}/{shared}: {w:?}");
            }
        }
    }

    #[test]
    fn dealing_balances_queues_to_within_one() {
        let plan = Plan::new(3, 0, 1).unwrap();
        let mut dealer = Dealer::new(plan, &[]);
        let dealt: Vec<Vec<usize>> = (0..7).map(|_| dealer.deal()).collect();
        assert_eq!(dealt, [[0], [1], [2], [0], [1], [2], [0]]);
        assert_eq!(dealer.dealt(), [3, 2, 2]);
    }

    #[test]
    fn several_assignees_per_trace_stay_balanced() {
        let plan = Plan::new(4, 0, 2).unwrap();
        let mut dealer = Dealer::new(plan, &[]);
        for _ in 0..9 {
            let who = dealer.deal();
            assert_eq!(who.len(), 2);
            assert_ne!(who[0], who[1]);
        }
        let counts = dealer.dealt();
        assert_eq!(counts.iter().sum::<u64>(), 18);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    }

    #[test]
    fn extending_continues_from_the_counts_and_stays_balanced() {
        let plan = Plan::new(3, 0, 1).unwrap();
        // One assignee joined late: the newcomer catches up first.
        let mut dealer = Dealer::new(plan, &[5, 5, 0]);
        let next: Vec<Vec<usize>> = (0..6).map(|_| dealer.deal()).collect();
        assert_eq!(next, [[2], [2], [2], [2], [2], [0]]);
        // Dealing in two runs equals dealing in one.
        let mut once = Dealer::new(plan, &[]);
        let all: Vec<_> = (0..10).map(|_| once.deal()).collect();
        let mut first = Dealer::new(plan, &[]);
        let mut split: Vec<_> = (0..4).map(|_| first.deal()).collect();
        let mut second = Dealer::new(plan, first.dealt());
        split.extend((0..6).map(|_| second.deal()));
        assert_eq!(all, split);
    }

    #[test]
    fn per_trace_is_clamped_and_no_assignees_is_no_plan() {
        assert_eq!(Plan::new(2, 0, 5).unwrap().per_trace, 2);
        assert_eq!(Plan::new(2, 0, 0).unwrap().per_trace, 1);
        assert!(Plan::new(0, 3, 1).is_none());
    }
}
