//! Results: one JSON file per (backend, scale) run, and the table printed and written to
//! docs/benchmarks.md beside the project's targets ([`TARGETS`]). Text after the notes marker in an
//! existing report is kept, so the written analysis survives a re-run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::load::Stats;
use crate::procs::{CpuUse, Machine};

/// The performance targets the figures are checked against (the product's design), written
/// at the top of the report so it stands on its own.
const TARGETS: &str =
    "At 1,000,000 traces in one dataset and 100,000 annotations by the measuring \
user, SQLite, on a 2-core machine:

- Pass & Next (save + next trace rendered) p99 under 5 ms for one annotator on loopback.
- Entering a dataset (`/d/{dataset}/next`) as fast as the in-flow step, even after 100,000 \
annotations in order.
- 100 concurrent annotators looping Pass & Next: at least 2,000 saves/s, p99 under 50 ms, no \
errors.
- Any trace-list page p99 under 5 ms, first page or deepest.
- CSV import at least 50,000 BotDojo rows/s from the CLI; memory flat whatever the file size.
- Export at least 100,000 rows/s, streaming, memory flat.
- Server memory: idle under 30 MB; under the 100-annotator load under 150 MiB, and back under \
60 MiB after a minute idle (the budget is a 1 GB VM).
- Five concurrent form imports: none times out, annotators are not blocked.
- Under an assignment (team review), the same Pass & Next and entering targets for an \
assigned annotator; the agreement page over 100,000 shared annotations is measured.

The same suite runs on Postgres (100,000 traces) and its figures are reported beside SQLite's; each runs on the light rows (~0.9 KB, one tool step) and on heavy rows shaped like real BotDojo exports (~2.35 KB, 1–4 tool steps, a few 50 KB cells).
";

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// "SQLite" or "Postgres".
    pub backend: String,
    /// Engine and version, e.g. "SQLite 3.46.0".
    pub engine: String,
    pub scale: u64,
    /// "" for the light rows, "heavy" for the heavy ones.
    #[serde(default)]
    pub rows: String,
    /// Average bytes a row of the imported file.
    #[serde(default)]
    pub row_bytes: u64,
    pub annotations: u64,
    pub upload_rows: u64,
    /// RFC 3339, UTC.
    pub started: String,
    pub minutes: f64,
    pub machine: Option<Machine>,
    /// 1-minute load average and idle-machine CPU use just before the run.
    pub load_before: f64,
    pub cpu_before: CpuUse,
    pub imports: Vec<ProcFigure>,
    pub enter: Option<Stats>,
    pub single: Option<Stats>,
    pub single_cpu: CpuUse,
    pub lists: Vec<(String, Stats)>,
    pub concurrent: Vec<Concurrent>,
    pub uploads: Option<Uploads>,
    pub exports: Vec<ProcFigure>,
    pub http_export: Option<ProcFigure>,
    /// The team-review phase (queue under an assignment, agreement page).
    #[serde(default)]
    pub team: Option<Team>,
    pub rss: ServerRss,
    /// Phases that failed, with why.
    pub problems: Vec<String>,
}

/// A measured run of the binary (CLI import or export), or the HTTP export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcFigure {
    pub what: String,
    pub rows: u64,
    pub secs: f64,
    pub rows_per_sec: f64,
    pub peak_rss_mib: f64,
    pub cpu_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Concurrent {
    pub annotators: usize,
    pub stats: Stats,
    pub cpu: CpuUse,
    pub server_rss_max_mib: f64,
    #[serde(default)]
    pub server_anon_max_mib: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Uploads {
    pub count: usize,
    pub rows_each: u64,
    /// How long each upload request took to answer (the file is sent, then a progress page).
    pub request_secs_max: f64,
    /// From the first byte sent to the last import done.
    pub all_done_secs: f64,
    pub rows_per_sec: f64,
    pub done: i64,
    pub failed: i64,
    pub timed_out: i64,
    /// The annotator's Pass & Next while the imports ran.
    pub annotator: Stats,
    pub cpu: CpuUse,
    pub server_rss_max_mib: f64,
    #[serde(default)]
    pub server_anon_max_mib: f64,
}

/// The server's resident memory (MiB). `*_anon` leaves out pages of the memory-mapped
/// SQLite file, which the kernel can drop at any time.
/// The team-review phase: the measuring user's queue under an assignment and the agreement
/// page over the shared traces.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Team {
    pub assignees: usize,
    pub shared: u64,
    /// `tracecoder assign` over every trace: wall time and peak RSS.
    pub assign_secs: f64,
    pub assign_peak_rss_mib: f64,
    pub enter: Stats,
    pub single: Stats,
    /// Annotations of the shared traces when the agreement page was timed.
    pub shared_annotations: u64,
    pub agreement_page: Stats,
    pub agreement_json: Stats,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerRss {
    pub idle_start_mib: f64,
    pub loaded_max_mib: f64,
    pub peak_mib: f64,
    pub idle_after_mib: f64,
    #[serde(default)]
    pub loaded_max_anon_mib: f64,
    #[serde(default)]
    pub idle_after_anon_mib: f64,
    /// VmRSS after a minute without requests.
    #[serde(default)]
    pub idle_minute_mib: f64,
    /// The first whole second of that minute at which VmRSS was under 60 MiB.
    #[serde(default)]
    pub under_60_after_secs: Option<u64>,
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Saves one run's figures as `{backend}-{scale}.json` (`{backend}-{scale}-heavy.json` for
/// the heavy rows).
pub fn save(dir: &Path, run: &RunResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let suffix = if run.rows.is_empty() {
        String::new()
    } else {
        format!("-{}", run.rows)
    };
    let path = dir.join(format!(
        "{}-{}{suffix}.json",
        run.backend.to_lowercase(),
        run.scale
    ));
    std::fs::write(&path, serde_json::to_vec_pretty(run)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Every saved run: SQLite first, larger scales first.
pub fn load_all(dir: &Path) -> anyhow::Result<Vec<RunResult>> {
    let mut runs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(e.path())?;
                match serde_json::from_slice::<RunResult>(&bytes) {
                    Ok(r) => runs.push(r),
                    Err(err) => eprintln!("skipping {}: {err}", e.path().display()),
                }
            }
        }
    }
    runs.sort_by(|a, b| {
        (a.backend != "SQLite", std::cmp::Reverse(a.scale), &a.rows).cmp(&(
            b.backend != "SQLite",
            std::cmp::Reverse(b.scale),
            &b.rows,
        ))
    });
    Ok(runs)
}

/// The line after which the report is written by hand.
pub const NOTES_MARKER: &str =
    "<!-- Written by hand below this line: the benchmark keeps it when it rewrites the report. -->";

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn rate(v: f64) -> String {
    thousands(v.round() as u64)
}

fn lat(s: &Stats) -> String {
    format!("{} / {} / {}", ms(s.p50_ms), ms(s.p95_ms), ms(s.p99_ms))
}

fn errors(s: &Stats) -> String {
    if s.errors == 0 {
        "0".into()
    } else {
        format!(
            "{} ({})",
            s.errors,
            s.first_error.clone().unwrap_or_default()
        )
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn column_title(r: &RunResult) -> String {
    let rows = match (r.rows.as_str(), r.row_bytes) {
        ("", 0) => String::new(),
        ("", b) => format!(" · {} B rows", thousands(b)),
        (kind, 0) => format!(" · {kind} rows"),
        (kind, b) => format!(" · {kind} rows ({} B)", thousands(b)),
    };
    format!("{} · {} traces{rows}", r.backend, thousands(r.scale))
}

/// One target (see [`TARGETS`]) checked against a run: the figure and whether it is met.
type Check = fn(&RunResult) -> (String, Option<bool>);

fn targets() -> Vec<(&'static str, Check)> {
    vec![
        ("Pass & Next p99 < 5 ms, one annotator", |r| {
            match &r.single {
                Some(s) => (ms(s.p99_ms), Some(s.p99_ms < 5.0 && s.errors == 0)),
                None => ("—".into(), None),
            }
        }),
        (
            "Entering a dataset (`/next`) as fast as the in-flow step",
            |r| match (&r.enter, &r.single) {
                (Some(e), Some(s)) => (
                    format!("p99 {}", ms(e.p99_ms)),
                    Some(e.p99_ms <= s.p99_ms.max(5.0)),
                ),
                _ => ("—".into(), None),
            },
        ),
        (
            "Under an assignment: Pass & Next p99 < 5 ms, one annotator",
            |r| match &r.team {
                Some(t) => (
                    ms(t.single.p99_ms),
                    Some(t.single.p99_ms < 5.0 && t.single.errors == 0),
                ),
                None => ("—".into(), None),
            },
        ),
        (
            "Under an assignment: entering as fast as the in-flow step",
            |r| match &r.team {
                Some(t) => (
                    format!("p99 {}", ms(t.enter.p99_ms)),
                    Some(t.enter.p99_ms <= t.single.p99_ms.max(5.0) && t.enter.errors == 0),
                ),
                None => ("—".into(), None),
            },
        ),
        ("100 annotators: ≥ 2,000 saves/s", |r| {
            match r.concurrent.iter().find(|c| c.annotators == 100) {
                Some(c) => (
                    format!("{}/s", rate(c.stats.per_sec)),
                    Some(c.stats.per_sec >= 2000.0),
                ),
                None => ("—".into(), None),
            }
        }),
        ("100 annotators: p99 < 50 ms, no errors", |r| {
            match r.concurrent.iter().find(|c| c.annotators == 100) {
                Some(c) => (
                    format!("{}, {} errors", ms(c.stats.p99_ms), c.stats.errors),
                    Some(c.stats.p99_ms < 50.0 && c.stats.errors == 0),
                ),
                None => ("—".into(), None),
            }
        }),
        ("Every list page p99 < 5 ms, first or deepest", |r| {
            worst_page(r, false, 5.0)
        }),
        (
            "Every search page p99 < 20 ms (words, metadata, deepest)",
            |r| worst_page(r, true, 20.0),
        ),
        ("CLI import ≥ 50,000 rows/s", |r| {
            match r.imports.first() {
                Some(i) => (
                    format!("{}/s", rate(i.rows_per_sec)),
                    Some(i.rows_per_sec >= 50_000.0),
                ),
                None => ("—".into(), None),
            }
        }),
        ("Import memory flat whatever the file size", |r| {
            flat(&r.imports)
        }),
        ("Export ≥ 100,000 rows/s", |r| match r.exports.first() {
            Some(e) => (
                format!("{}/s", rate(e.rows_per_sec)),
                Some(e.rows_per_sec >= 100_000.0),
            ),
            None => ("—".into(), None),
        }),
        ("Export streams: memory flat", |r| flat(&r.exports)),
        ("Server idle memory < 30 MB", |r| {
            if r.rss.idle_start_mib == 0.0 {
                return ("—".into(), None);
            }
            (
                format!("{:.1} MiB", r.rss.idle_start_mib),
                Some(r.rss.idle_start_mib * 1.048_576 < 30.0),
            )
        }),
        ("Server memory under 100 annotators < 150 MiB", |r| match r
            .concurrent
            .iter()
            .find(|c| c.annotators == 100)
        {
            Some(c) if c.server_rss_max_mib > 0.0 => (
                format!("{:.0} MiB", c.server_rss_max_mib),
                Some(c.server_rss_max_mib < 150.0),
            ),
            _ => ("—".into(), None),
        }),
        ("Server memory back < 60 MiB within a minute idle", |r| {
            if r.rss.idle_minute_mib == 0.0 {
                return ("—".into(), None);
            }
            match r.rss.under_60_after_secs {
                Some(s) => (
                    format!("after {s} s ({:.0} MiB at 60 s)", r.rss.idle_minute_mib),
                    Some(true),
                ),
                None => (
                    format!("{:.0} MiB at 60 s", r.rss.idle_minute_mib),
                    Some(false),
                ),
            }
        }),
        (
            "5 form imports: none times out or blocks annotators",
            |r| match &r.uploads {
                Some(u) => (
                    format!(
                        "{}/{} done, annotator p99 {}",
                        u.done,
                        u.count,
                        ms(u.annotator.p99_ms)
                    ),
                    Some(
                        u.done == u.count as i64
                            && u.timed_out == 0
                            && u.annotator.errors == 0
                            && u.annotator.p99_ms < 50.0,
                    ),
                ),
                None => ("—".into(), None),
            },
        ),
    ]
}

/// Peak RSS of the largest run against the smallest: flat when it grew by less than a
/// quarter while the input grew several times.
fn flat(figs: &[ProcFigure]) -> (String, Option<bool>) {
    let (Some(big), Some(small)) = (
        figs.iter().max_by_key(|f| f.rows),
        figs.iter().min_by_key(|f| f.rows),
    ) else {
        return ("—".into(), None);
    };
    if big.rows < small.rows * 3 {
        return (
            format!("peak {:.0} MiB (one size only)", big.peak_rss_mib),
            None,
        );
    }
    (
        format!(
            "peak {:.0} MiB at {} rows, {:.0} MiB at {}",
            big.peak_rss_mib,
            thousands(big.rows),
            small.peak_rss_mib,
            thousands(small.rows)
        ),
        Some(big.peak_rss_mib <= small.peak_rss_mib * 1.25),
    )
}

/// The figure rows: label, then one cell per run.
fn figures(runs: &[RunResult]) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |label: String, f: &dyn Fn(&RunResult) -> String| {
        rows.push((label, runs.iter().map(f).collect()));
    };
    let max_imports = runs.iter().map(|r| r.imports.len()).max().unwrap_or(0);
    for i in 0..max_imports {
        add(
            format!("CLI import #{} — rows, rows/s, peak RSS", i + 1),
            &|r| match r.imports.get(i) {
                Some(f) => format!(
                    "{}: {}/s, {:.0} MiB",
                    thousands(f.rows),
                    rate(f.rows_per_sec),
                    f.peak_rss_mib
                ),
                None => "—".into(),
            },
        );
    }
    add("Annotations by the measuring user (setup)".into(), &|r| {
        thousands(r.annotations)
    });
    add(
        "Enter dataset `/next` → 303, p50 / p95 / p99".into(),
        &|r| r.enter.as_ref().map_or("—".into(), lat),
    );
    add("Pass & Next, 1 annotator, p50 / p95 / p99".into(), &|r| {
        r.single.as_ref().map_or("—".into(), lat)
    });
    add(
        "Pass & Next, 1 annotator: requests, errors, saves/s".into(),
        &|r| {
            r.single.as_ref().map_or("—".into(), |s| {
                format!("{}, {}, {}/s", s.count, errors(s), rate(s.per_sec))
            })
        },
    );
    let names: Vec<String> = runs
        .first()
        .map(|r| r.lists.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    for name in names {
        let label = format!("List: {name}, p50 / p99");
        rows.push((
            label,
            runs.iter()
                .map(|r| match r.lists.iter().find(|(n, _)| *n == name) {
                    Some((_, s)) if s.errors == 0 => format!("{} / {}", ms(s.p50_ms), ms(s.p99_ms)),
                    Some((_, s)) => {
                        format!("{} / {}, errors {}", ms(s.p50_ms), ms(s.p99_ms), errors(s))
                    }
                    None => "—".into(),
                })
                .collect(),
        ));
    }
    let mut team = |label: &str, f: &dyn Fn(&Team) -> String| {
        rows.push((
            label.to_string(),
            runs.iter()
                .map(|r| r.team.as_ref().map_or("—".into(), f))
                .collect(),
        ));
    };
    team("Assignment: assignees, shared traces", &|t| {
        format!("{}, {}", t.assignees, thousands(t.shared))
    });
    team(
        "`tracecoder assign` over every trace: wall time, peak RSS",
        &|t| format!("{:.1} s, {:.0} MiB", t.assign_secs, t.assign_peak_rss_mib),
    );
    team(
        "Under an assignment: enter `/next`, p50 / p95 / p99",
        &|t| lat(&t.enter),
    );
    team("Under an assignment: Pass & Next, p50 / p95 / p99", &|t| {
        lat(&t.single)
    });
    team(
        "Under an assignment: Pass & Next requests, errors, saves/s",
        &|t| {
            format!(
                "{}, {}, {}/s",
                t.single.count,
                errors(&t.single),
                rate(t.single.per_sec)
            )
        },
    );
    team(
        "Agreement page (`/agreement`) over shared annotations, p50 / p95 / p99",
        &|t| {
            format!(
                "{}: {}",
                thousands(t.shared_annotations),
                lat(&t.agreement_page)
            )
        },
    );
    team("`agreement.json`, p50 / p95 / p99 (errors)", &|t| {
        format!("{} ({})", lat(&t.agreement_json), errors(&t.agreement_json))
    });
    for n in [100usize, 500] {
        let mut add = |label: String, f: &dyn Fn(&Concurrent) -> String| {
            rows.push((
                label,
                runs.iter()
                    .map(|r| {
                        r.concurrent
                            .iter()
                            .find(|c| c.annotators == n)
                            .map_or("—".into(), f)
                    })
                    .collect(),
            ));
        };
        add(format!("{n} annotators: saves/s"), &|c| {
            format!("{}/s", rate(c.stats.per_sec))
        });
        add(format!("{n} annotators: p50 / p95 / p99"), &|c| {
            lat(&c.stats)
        });
        add(format!("{n} annotators: max, saves, errors"), &|c| {
            format!(
                "{}, {}, {}",
                ms(c.stats.max_ms),
                thousands(c.stats.count),
                errors(&c.stats)
            )
        });
        add(
            format!(
                "{n} annotators: CPU cores used by server / load generator / database / others"
            ),
            &|c| {
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2}",
                    c.cpu.server_cores, c.cpu.client_cores, c.cpu.postgres_cores, c.cpu.other_cores
                )
            },
        );
    }
    let up = |f: &dyn Fn(&Uploads) -> String| -> Vec<String> {
        runs.iter()
            .map(|r| r.uploads.as_ref().map_or("—".into(), f))
            .collect()
    };
    rows.push((
        "5 concurrent form imports: done / failed / timed out".into(),
        up(&|u| {
            format!(
                "{} / {} / {} (of {} × {} rows)",
                u.done,
                u.failed,
                u.timed_out,
                u.count,
                thousands(u.rows_each)
            )
        }),
    ));
    rows.push((
        "5 concurrent form imports: all done after, rows/s together".into(),
        up(&|u| {
            format!(
                "{:.0} s, {}/s (upload requests answered within {:.1} s)",
                u.all_done_secs,
                rate(u.rows_per_sec),
                u.request_secs_max
            )
        }),
    ));
    rows.push((
        "… meanwhile Pass & Next, p50 / p95 / p99".into(),
        up(&|u| lat(&u.annotator)),
    ));
    rows.push((
        "… meanwhile Pass & Next: max, requests, errors".into(),
        up(&|u| {
            format!(
                "{}, {}, {}",
                ms(u.annotator.max_ms),
                u.annotator.count,
                errors(&u.annotator)
            )
        }),
    ));
    let max_exports = runs.iter().map(|r| r.exports.len()).max().unwrap_or(0);
    for i in 0..max_exports {
        let label = runs
            .iter()
            .find_map(|r| r.exports.get(i).map(|e| e.what.clone()))
            .unwrap_or_default();
        rows.push((
            format!("{label} — rows, rows/s, peak RSS"),
            runs.iter()
                .map(|r| match r.exports.get(i) {
                    Some(f) => format!(
                        "{}: {}/s, {:.0} MiB",
                        thousands(f.rows),
                        rate(f.rows_per_sec),
                        f.peak_rss_mib
                    ),
                    None => "—".into(),
                })
                .collect(),
        ));
    }
    rows.push((
        "HTTP export (admin, CSV) — rows, rows/s".into(),
        runs.iter()
            .map(|r| {
                r.http_export.as_ref().map_or("—".into(), |f| {
                    format!("{}: {}/s", thousands(f.rows), rate(f.rows_per_sec))
                })
            })
            .collect(),
    ));
    rows.push((
        "Server RSS: idle at start / loaded (max) / peak / idle after 5 s / after 60 s".into(),
        runs.iter()
            .map(|r| {
                format!(
                    "{:.1} / {:.0} / {:.0} / {:.0} / {:.0} MiB",
                    r.rss.idle_start_mib,
                    r.rss.loaded_max_mib,
                    r.rss.peak_mib,
                    r.rss.idle_after_mib,
                    r.rss.idle_minute_mib
                )
            })
            .collect(),
    ));
    rows.push((
        "Server RSS without file pages (RssAnon): loaded (max) / idle after".into(),
        runs.iter()
            .map(|r| {
                format!(
                    "{:.0} / {:.0} MiB",
                    r.rss.loaded_max_anon_mib, r.rss.idle_after_anon_mib
                )
            })
            .collect(),
    ));
    rows
}

fn table(header: &[String], rows: &[(String, Vec<String>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for (label, cells) in rows {
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {label} | {} |", cells.join(" | "));
    }
    s
}

/// The targets table and the figures table (Markdown; also printed on the terminal).
pub fn tables(runs: &[RunResult]) -> String {
    let mut header = vec!["Target".to_string()];
    header.extend(runs.iter().map(column_title));
    let rows: Vec<(String, Vec<String>)> = targets()
        .into_iter()
        .map(|(name, check)| {
            let cells = runs
                .iter()
                .map(|r| {
                    let (fig, met) = check(r);
                    format!("{fig} — {}", verdict(met))
                })
                .collect();
            (name.to_string(), cells)
        })
        .collect();
    let mut out = table(&header, &rows);
    out.push('\n');
    header[0] = "Measure".into();
    out.push_str(&table(&header, &figures(runs)));
    out
}

/// Writes the report: generated part, then the hand-written notes kept from the old file.
pub fn write(path: &Path, runs: &[RunResult], command: &str) -> anyhow::Result<()> {
    let kept = std::fs::read_to_string(path)
        .ok()
        .and_then(|old| {
            old.split_once(NOTES_MARKER)
                .map(|(_, notes)| notes.to_string())
        })
        .unwrap_or_else(|| "\n\n## Analysis\n\n(Nothing written yet.)\n".into());
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Figures produced by the benchmark suite in `examples/bench/` against the project's \
         targets below. The tables are generated; the analysis after them is written by hand.\n"
    );
    let _ = writeln!(s, "## Targets\n\n{TARGETS}");
    let _ = writeln!(s, "## How to reproduce\n");
    let _ = writeln!(
        s,
        "```sh\n{command}\n```\n\nOne command builds the release binary, generates the data \
         (deterministic, seed {seed}, under `bench-data/`, git-ignored), runs every measurement on a \
         fresh database, saves the figures as `bench-data/results/{{backend}}-{{scale}}.json` (`…-heavy.json` for heavy rows) and \
         rewrites this file from every saved run. `--backend postgres` (or `all`) uses a fresh \
         database `tracecoder_bench` on `--postgres-url` (default `postgres://postgres@127.0.0.1:5432/postgres`), \
         dropped and created again on each run. `--help` lists the knobs (scale, annotations, \
         durations, `--rows heavy`, `--skip` phases, `--report-only` to rewrite this file from the saved \
         figures). A 1,000,000-trace SQLite run takes about seven minutes here, nine with heavy rows, a \
         100,000-trace Postgres run about eight (a first release build about ten more).\n",
        seed = crate::setup::SEED
    );
    let _ = writeln!(s, "## Runs\n");
    for r in runs {
        let m = r.machine.clone().unwrap_or_else(Machine::read);
        let _ = writeln!(
            s,
            "- **{}**: {} (UTC), {:.0} min, {}; machine: {} CPUs ({}), {:.1} GiB RAM, Linux {}. \
             Before the run: load average {:.2}, {:.2} cores busy with other work.",
            column_title(r),
            r.started,
            r.minutes,
            r.engine,
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            r.load_before,
            r.cpu_before.machine_cores,
        );
        for p in &r.problems {
            let _ = writeln!(s, "  - problem: {p}");
        }
    }
    let _ = writeln!(s, "\n## Results\n");
    s.push_str(&tables(runs));
    let _ = writeln!(s, "\n## Method\n");
    s.push_str(METHOD);
    let _ = writeln!(s, "\n{NOTES_MARKER}");
    s.push_str(kept.trim_start_matches('\n').trim_end());
    s.push('\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

const METHOD: &str = "\
Everything runs on one machine: the release binary as a child process, the load generator \
(this program, a Tokio client over one keep-alive connection pool, asking for gzip or brotli like a browser) in \
another, the database in the same process (SQLite) or the local Postgres server. The load \
generator takes CPU from the same two cores as the server; the CPU rows show how it was shared. \
All requests go to 127.0.0.1; every loop is bounded both in requests and in time, and every \
request gives up after 30 s (counted as an error).

1. **Data.** `tracecoder::demo::write_botdojo_rows` writes BotDojo CSV files (28 columns, tool \
   calls in `AI Message`, 1–6 turns per conversation) of exactly 100,000 and N rows. `--rows light` \
   (the default): one tool step, ~1 KB a row. `--rows heavy`, shaped like real BotDojo exports: \
   longer messages, an `AI Message` of 1–2 KB with 1–4 tool steps, one row in 2,000 with a 50 KB \
   tool result; ~2.3 KB a row. The column title gives each file's average bytes a row.
2. **CLI import.** `tracecoder import FILE --dataset bench --quiet` into an empty database; \
   rows/s is rows over the wall time of the whole process (start-up and migrations included). \
   Peak RSS is `ru_maxrss` from `wait4`, exact for the whole life of the process. A second import \
   of the 100,000-row file into another dataset shows whether memory depends on the file size.
3. **Setup (not measured).** `tracecoder serve` starts on a fresh port; the measuring user \
   signs in through the development form (a real session cookie). Their annotations of the first \
   100,000 traces in reading order (one in seven a fail with a note) are written in one SQL \
   transaction, with revisions, counters and the low-water mark, as Pass & Next would have left \
   them. On Postgres an `ANALYZE` follows, as autovacuum would do.
4. **Enter a dataset.** `GET /d/bench/next` (303 to the first unannotated trace), 300 times.
5. **Pass & Next, one annotator.** The HTMX request the `p` key sends \
   (`POST /d/bench/t/{id}/annotate`, `verdict=pass&version=0`, `HX-Request: true`); the response \
   is the next trace rendered, whose id the next request uses. 1 s warm-up, then up to 5,000 \
   requests or 60 s. Latency is from sending the request to having read the whole body.
6. **List pages.** `/d/bench/traces` for each status filter (`all`, `todo`, `pass`, `fail`), first \
   page and deepest page (`before=last`), plus one page in the middle; 20 warm-up then 300 requests each.
7. **Concurrent annotators.** 100, then 500 new users, each signed in with its own session, \
   all loop Pass & Next from their first unannotated trace: 3 s warm-up, then the measured window \
   (20 s by default). Throughput is successful saves per second of the window; any non-200 \
   answer, missing `HX-Push-Url` or timeout is an error.
8. **Five form imports.** An admin uploads the 100,000-row file five times at once through \
   `POST /admin/import` (multipart, streamed), each into its own dataset, while the measuring \
   user loops Pass & Next until all five imports are done (at most 30 min).
9. **Export.** `tracecoder export --dataset bench --format csv|jsonl --all-traces` (every trace, \
   with every annotation), rows/s over the process wall time, peak RSS from `wait4`; the same for \
   the 100,000-trace dataset to compare memory; and `GET /d/bench/export.csv` as admin.
10. **Team review.** After the list pages, `tracecoder assign` deals every trace to the \
    measuring user and three more (25,000 shared traces, or a quarter of a smaller dataset; \
    wall time and peak RSS of the process). The measuring user then enters the dataset and \
    loops Pass & Next through their assigned queue exactly as in 4 and 5. Then every assignee's \
    annotation of every shared trace is written in bulk (a Fail for about one trace in four, each \
    annotator departing from the others on about one in ten; Fails carry one of ten codes grouped \
    into five failure modes by an imported codebook), and an admin fetches `/d/bench/agreement` \
    and `/d/bench/agreement.json` 30 times each (2 warm-up). `tracecoder assign --clear` then \
    removes the assignment before the concurrent phases.
11. **Server memory.** VmRSS from `/proc/PID/status`: 2 s after start-up (idle), sampled every \
    200 ms under load (loaded; the 100-annotator phase on its own for its target), VmHWM at the \
    end (peak), 5 s after the load stopped, and every second of the minute after that (the first \
    second under 60 MiB, and the figure at 60 s).
";

/// The slowest list page (or search page, names starting with "search") against a p99 target.
fn worst_page(r: &RunResult, searches: bool, target_ms: f64) -> (String, Option<bool>) {
    let pages: Vec<&(String, Stats)> = r
        .lists
        .iter()
        .filter(|(name, _)| name.starts_with("search") == searches)
        .collect();
    let Some((name, s)) = pages
        .iter()
        .max_by(|a, b| a.1.p99_ms.total_cmp(&b.1.p99_ms))
    else {
        return ("—".into(), None);
    };
    let errs: u64 = pages.iter().map(|(_, s)| s.errors).sum();
    (
        format!("worst {} ({name})", ms(s.p99_ms)),
        Some(s.p99_ms < target_ms && errs == 0),
    )
}
