//! The codebook's counts kept between views: computed again only when the dataset's
//! annotations or codebook changed, and for a large dataset served as last computed while
//! annotators save, refreshed in the background.
//!
//! Counting a dataset's codes walks every code row (about 350 ms at 100,000 annotations).
//! Each view first reads the dataset's [`CountsVersion`] (one cheap statement): the same
//! version means the stored counts are exact. When it moved:
//! - after a codebook change, and for an export ([`Need::Exact`]), the counts are computed
//!   again before answering: a lead sees their own edit, a file is never behind;
//! - when counting took at most the budget (`CODEBOOK_RECOUNT_BUDGET_MS`, 50 ms: every
//!   small dataset), likewise;
//! - otherwise annotators' saves moved it: the page shows the stored counts, says how old
//!   they are and how many annotation changes they miss, and one background task counts
//!   again, at most once per ten times the counting took (at least a second apart), so
//!   counting takes at most a tenth of one database connection however often people look.
//!
//! Per process: another instance keeps its own, and the version read from the database keeps
//! every instance right. At most [`DATASETS_KEPT`] datasets are kept (the least recently
//! viewed goes first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::codebook::{self, Overview};
use crate::db::Db;
use crate::db::codebook::{self as store, CountsVersion};
use crate::domain::DatasetId;

/// Datasets whose counts are kept at once (each a few MB at 10,000 codes).
pub const DATASETS_KEPT: usize = 8;

/// How current the counts must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Exactly the database's (exports).
    Exact,
    /// The page: exact when cheap, else at most a refresh behind annotators' saves.
    Recent,
}

/// Counts as computed once, with what they were computed from.
pub struct Counted {
    pub overview: Arc<Overview>,
    pub version: CountsVersion,
    /// When they were computed (Unix seconds), for the page.
    pub computed_unix: i64,
    computed: Instant,
    /// How long computing them took.
    pub cost: Duration,
    /// The most common spelling of codes looked up so far.
    spellings: Mutex<HashMap<String, String>>,
}

/// The counts a view gets, and whether they are the database's.
pub struct View {
    pub counted: Arc<Counted>,
    /// Annotation changes since the counts were computed (0: they are current).
    pub changes_since: i64,
}

impl View {
    pub fn overview(&self) -> &Arc<Overview> {
        &self.counted.overview
    }
}

/// What a view does with the stored counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Use,
    UseAndRefresh,
    Compute,
}

/// Stored counts are refreshed in the background at most this often, relative to what
/// computing them costs (a tenth of one connection), within these bounds.
fn refresh_after(cost: Duration) -> Duration {
    (cost * 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The rule in the module's doc, as a pure function of the stored counts (their version,
/// cost and age), the database's version, the need and the budget.
pub(crate) fn plan(
    stored: Option<(CountsVersion, Duration, Duration)>,
    current: CountsVersion,
    need: Need,
    budget: Duration,
) -> Plan {
    let Some((version, cost, age)) = stored else {
        return Plan::Compute;
    };
    if covers(version, current) {
        Plan::Use
    } else if need == Need::Exact || version.codebook < current.codebook || cost <= budget {
        Plan::Compute
    } else if age >= refresh_after(cost) {
        Plan::UseAndRefresh
    } else {
        Plan::Use
    }
}

/// Counts computed at `stored` are at least as new as `wanted` (both parts only grow).
fn covers(stored: CountsVersion, wanted: CountsVersion) -> bool {
    stored.annotations >= wanted.annotations && stored.codebook >= wanted.codebook
}

/// One dataset's stored counts, and the lock that lets one computation run at a time.
#[derive(Default)]
struct Slot {
    stored: Mutex<Option<Arc<Counted>>>,
    computing: Arc<tokio::sync::Mutex<()>>,
    used: Mutex<Option<Instant>>,
}

impl Slot {
    fn stored(&self) -> Option<Arc<Counted>> {
        lock(&self.stored).clone()
    }
}

/// A panic while holding one of these cannot leave it half-changed: take it as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The counts per dataset (see the module's doc).
pub struct OverviewCache {
    budget: Duration,
    slots: Mutex<HashMap<DatasetId, Arc<Slot>>>,
}

impl OverviewCache {
    /// Counts that take at most `budget` to compute are always computed again when the
    /// dataset changed.
    pub fn new(budget: Duration) -> Self {
        OverviewCache {
            budget,
            slots: Mutex::default(),
        }
    }

    /// The dataset's counts, as current as `need` asks.
    pub async fn get(&self, db: &Db, dataset: DatasetId, need: Need) -> Result<View, sqlx::Error> {
        let slot = self.slot(dataset);
        let current = store::counts_version(db, dataset).await?;
        let stored = slot.stored();
        let facts = stored
            .as_ref()
            .map(|c| (c.version, c.cost, c.computed.elapsed()));
        match (plan(facts, current, need, self.budget), stored) {
            (Plan::Use, Some(counted)) => return Ok(view(counted, current)),
            (Plan::UseAndRefresh, Some(counted)) => {
                refresh_in_background(db.clone(), dataset, slot);
                return Ok(view(counted, current));
            }
            _ => {}
        }
        let _one_at_a_time = slot.computing.lock().await;
        // Another view may have computed them while this one waited.
        if let Some(counted) = slot.stored().filter(|c| covers(c.version, current)) {
            return Ok(view(counted, current));
        }
        let counted = compute(db, dataset, current).await?;
        *lock(&slot.stored) = Some(counted.clone());
        Ok(view(counted, current))
    }

    /// The dataset's slot, made on first use; the least recently used goes when full.
    fn slot(&self, dataset: DatasetId) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if !slots.contains_key(&dataset) && slots.len() >= DATASETS_KEPT {
            let oldest = slots
                .iter()
                .min_by_key(|(_, slot)| *lock(&slot.used))
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                slots.remove(&id);
            }
        }
        let slot = slots.entry(dataset).or_default().clone();
        *lock(&slot.used) = Some(Instant::now());
        slot
    }
}

fn view(counted: Arc<Counted>, current: CountsVersion) -> View {
    View {
        changes_since: (current.annotations - counted.version.annotations).max(0),
        counted,
    }
}

/// Counts the dataset as of `version`, read before counting, so counts never claim to be
/// newer than they are.
async fn compute(
    db: &Db,
    dataset: DatasetId,
    version: CountsVersion,
) -> Result<Arc<Counted>, sqlx::Error> {
    let started = Instant::now();
    let overview = codebook::overview(db, dataset).await?;
    let cost = started.elapsed();
    metrics::histogram!("tracecoder_codebook_count_seconds").record(cost.as_secs_f64());
    Ok(Arc::new(Counted {
        overview: Arc::new(overview),
        version,
        computed_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        computed: Instant::now(),
        cost,
        spellings: Mutex::default(),
    }))
}

/// Counts again in a task of its own, unless a computation is already running.
fn refresh_in_background(db: Db, dataset: DatasetId, slot: Arc<Slot>) {
    let Ok(one_at_a_time) = slot.computing.clone().try_lock_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _one_at_a_time = one_at_a_time;
        let counted = match store::counts_version(&db, dataset).await {
            Ok(version) => compute(&db, dataset, version).await,
            Err(err) => Err(err),
        };
        match counted {
            Ok(counted) => *lock(&slot.stored) = Some(counted),
            Err(err) => {
                tracing::warn!(error = %err, dataset = dataset.0, "recounting the codebook failed")
            }
        }
    });
}

impl Counted {
    /// The most common spelling of each of `codes` (normalized), read once per computation.
    pub async fn spellings(
        &self,
        db: &Db,
        dataset: DatasetId,
        codes: &[&str],
    ) -> Result<HashMap<String, String>, sqlx::Error> {
        let missing: Vec<&str> = {
            let known = lock(&self.spellings);
            codes
                .iter()
                .copied()
                .filter(|c| !known.contains_key(*c))
                .collect()
        };
        if !missing.is_empty() {
            let mut found = store::spellings(db, dataset, &missing).await?;
            // A code nobody spells differently is shown as it is; remember that too.
            for code in missing {
                found
                    .entry(code.to_string())
                    .or_insert_with(|| code.to_string());
            }
            lock(&self.spellings).extend(found);
        }
        let known = lock(&self.spellings);
        Ok(codes
            .iter()
            .filter_map(|c| known.get(*c).map(|s| (c.to_string(), s.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(50);

    fn v(annotations: i64, codebook: i64) -> CountsVersion {
        CountsVersion {
            annotations,
            codebook,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_stored_is_computed() {
        assert_eq!(plan(None, v(0, 0), Need::Recent, BUDGET), Plan::Compute);
    }

    #[test]
    fn the_same_version_is_used_whatever_the_need() {
        let stored = Some((v(7, 2), ms(400), Duration::from_secs(3600)));
        assert_eq!(plan(stored, v(7, 2), Need::Recent, BUDGET), Plan::Use);
        assert_eq!(plan(stored, v(7, 2), Need::Exact, BUDGET), Plan::Use);
    }

    #[test]
    fn cheap_counts_are_always_computed_again_after_a_save() {
        let stored = Some((v(7, 2), ms(3), ms(10)));
        assert_eq!(plan(stored, v(8, 2), Need::Recent, BUDGET), Plan::Compute);
    }

    #[test]
    fn costly_counts_are_served_while_annotators_save_and_refreshed_in_time() {
        // 400 ms to compute: refreshed at most every 4 s.
        let young = Some((v(7, 2), ms(400), ms(3_000)));
        assert_eq!(plan(young, v(9, 2), Need::Recent, BUDGET), Plan::Use);
        let old = Some((v(7, 2), ms(400), ms(4_000)));
        assert_eq!(
            plan(old, v(9, 2), Need::Recent, BUDGET),
            Plan::UseAndRefresh
        );
    }

    #[test]
    fn a_codebook_change_or_an_export_computes_them_again_even_when_costly() {
        let stored = Some((v(7, 2), ms(400), ms(10)));
        assert_eq!(plan(stored, v(7, 3), Need::Recent, BUDGET), Plan::Compute);
        assert_eq!(plan(stored, v(8, 2), Need::Exact, BUDGET), Plan::Compute);
    }

    #[test]
    fn refreshes_stay_between_one_second_and_a_minute_apart() {
        assert_eq!(refresh_after(ms(10)), Duration::from_secs(1));
        assert_eq!(refresh_after(ms(350)), ms(3_500));
        assert_eq!(
            refresh_after(Duration::from_secs(30)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn counts_newer_than_wanted_cover_it() {
        assert!(covers(v(9, 3), v(8, 3)));
        assert!(!covers(v(9, 2), v(8, 3)));
        assert!(!covers(v(7, 3), v(8, 3)));
    }
}
