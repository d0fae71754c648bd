//! The benchmark suite: measures the release binary against the targets in report.rs and writes
//! docs/benchmarks.md. Run it with
//! `cargo run --release --example bench -- --scale 1000000 --backend sqlite`.

mod load;
mod procs;
mod report;
mod setup;
mod team;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use tracecoder::db::{Backend, Db, datasets};
use tracecoder::demo::RowShape;

use load::{Bounds, Http, Samples, Session};
use procs::{CpuWindow, Machine, RssSampler, Server};
use report::{Concurrent, ProcFigure, RunResult, Uploads, mib};

/// The dataset every measurement reads.
const DATASET: &str = "bench";
/// The second, 100,000-trace dataset (import and export memory at another size).
const SIDE_DATASET: &str = "bench-100k";
/// Datasets of the concurrent form uploads: `bench-upload-1` …
const UPLOAD_PREFIX: &str = "bench-upload-";

#[derive(Parser, Debug)]
#[command(
    about = "Tracecoder benchmarks: generate data, run the release binary, report against the targets."
)]
struct Args {
    /// Traces in the measured dataset.
    #[arg(long, default_value_t = 1_000_000)]
    scale: u64,
    #[arg(long, value_enum, default_value_t = BackendArg::Sqlite)]
    backend: BackendArg,
    /// Rows of the generated files: `light` (~1 KB, one tool step) or `heavy` (~2.3 KB like
    /// real BotDojo exports: 1–4 tool steps, a few 50 KB cells).
    #[arg(long, value_enum, default_value_t = RowShape::Light)]
    rows: RowShape,
    /// Annotations prepared for the measuring user [default: 100,000, at most 80% of the scale].
    #[arg(long)]
    annotations: Option<u64>,
    /// Rows of each of the five concurrent form uploads.
    #[arg(long, default_value_t = 100_000)]
    upload_rows: u64,
    /// Seconds of each concurrent-annotator run (after a 3 s warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Generated files, databases, logs and saved figures (relative to the crate).
    #[arg(long, default_value = "bench-data")]
    data_dir: PathBuf,
    /// The report to rewrite (relative to the crate).
    #[arg(long, default_value = "docs/benchmarks.md")]
    report: PathBuf,
    /// Only print the figures; leave the report alone.
    #[arg(long)]
    no_report: bool,
    /// Run nothing: rewrite the report from the figures saved by earlier runs.
    #[arg(long, conflicts_with = "no_report")]
    report_only: bool,
    /// A Postgres server reachable with this URL (its database part is replaced).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// The database created (dropped first!) for each Postgres run.
    #[arg(long, default_value = "tracecoder_bench")]
    postgres_db: String,
    /// The `tracecoder` binary [default: built by cargo next to this program].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Phases to leave out while developing (comma separated): single, lists, team,
    /// concurrent, uploads, export, idle (the minute of memory sampling at the end).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

impl Args {
    fn runs(&self, phase: &str) -> bool {
        !self.skip.iter().any(|s| s == phase)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    All,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let data_dir = root.join(&args.data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let results_dir = data_dir.join("results");
    if !args.report_only {
        let bin = match &args.bin {
            Some(b) => b.clone(),
            None => build_binary(&root)?,
        };
        let backends = match args.backend {
            BackendArg::Sqlite => vec![Backend::Sqlite],
            BackendArg::Postgres => vec![Backend::Postgres],
            BackendArg::All => vec![Backend::Sqlite, Backend::Postgres],
        };
        for backend in backends {
            let result = run_backend(&args, backend, &bin, &data_dir).await?;
            report::save(&results_dir, &result)?;
            println!("\n{}", report::tables(std::slice::from_ref(&result)));
        }
    }
    if !args.no_report {
        let runs = report::load_all(&results_dir)?;
        let command = "cargo run --release --example bench -- --scale 1000000 --backend sqlite\n\
                       cargo run --release --example bench -- --scale 1000000 --backend sqlite --rows heavy\n\
                       cargo run --release --example bench -- --scale 100000 --backend postgres\n\
                       cargo run --release --example bench -- --scale 100000 --backend postgres --rows heavy";
        let path = root.join(&args.report);
        report::write(&path, &runs, command)?;
        println!("wrote {} ({} runs)", path.display(), runs.len());
    }
    Ok(())
}

/// Builds the release `tracecoder` binary with the cargo that runs this program, and
/// returns its path (next to `examples/`). Refuses a debug build: figures would mislead.
fn build_binary(root: &Path) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    if profile_dir.file_name().is_none_or(|n| n != "release") {
        bail!("run the benchmark on a release build: cargo run --release --example bench -- …");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release binary…");
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--bin", "tracecoder"])
        .current_dir(root);
    // `cargo run` gives this program the package's variables (CARGO_PKG_NAME, …). Some build
    // scripts (ring, cc) rerun when those change, so passing them on would rebuild half the
    // dependency tree on every run, and again on the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            build.env_remove(name.as_ref());
        }
    }
    let status = build.status().context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build --release failed");
    let bin = profile_dir.join("tracecoder");
    anyhow::ensure!(bin.exists(), "{} is missing after the build", bin.display());
    Ok(bin)
}

fn step(msg: &str) {
    let now = time::OffsetDateTime::now_utc();
    eprintln!(
        "[{:02}:{:02}:{:02}] {msg}",
        now.hour(),
        now.minute(),
        now.second()
    );
}

/// Keeps a failed phase from ending the run: its error goes into the report.
fn note<T>(problems: &mut Vec<String>, phase: &str, res: anyhow::Result<T>) -> Option<T> {
    match res {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("  {phase} failed: {e:#}");
            problems.push(format!("{phase}: {e:#}"));
            None
        }
    }
}

async fn run_backend(
    args: &Args,
    backend: Backend,
    bin: &Path,
    data_dir: &Path,
) -> anyhow::Result<RunResult> {
    let name = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "Postgres",
    };
    let dir = data_dir.join(name.to_lowercase());
    std::fs::create_dir_all(&dir)?;
    let began = Instant::now();
    let mut r = RunResult {
        backend: name.into(),
        scale: args.scale,
        rows: args.rows.suffix().into(),
        upload_rows: args.upload_rows,
        annotations: args
            .annotations
            .unwrap_or(100_000.min(args.scale * 4 / 5))
            .min(args.scale),
        started: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        machine: Some(Machine::read()),
        load_before: procs::loadavg(),
        ..RunResult::default()
    };
    let idle = CpuWindow::start(None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.cpu_before = idle.finish(0.0);
    step(&format!(
        "{name}, {} traces (load average {:.2}, {:.2} cores busy before the run)",
        args.scale, r.load_before, r.cpu_before.machine_cores
    ));

    step("generating data (once; reused afterwards)");
    let big = setup::botdojo_file(data_dir, args.scale, args.rows)?;
    let side = setup::botdojo_file(data_dir, args.upload_rows, args.rows)?;
    let file_bytes = std::fs::metadata(&big)?.len();
    r.row_bytes = file_bytes / args.scale;
    eprintln!(
        "  {} ({:.0} MiB, {} bytes a row)",
        big.display(),
        file_bytes as f64 / (1 << 20) as f64,
        r.row_bytes
    );
    let url = setup::fresh_database(backend, &dir, &args.postgres_url, &args.postgres_db).await?;

    step("CLI import");
    let imp = cli_import(bin, &url, &big, DATASET, args.scale)?;
    eprintln!(
        "  {:.0} rows/s, peak RSS {:.0} MiB",
        imp.rows_per_sec, imp.peak_rss_mib
    );
    r.imports.push(imp);
    if args.upload_rows * 3 <= args.scale {
        let res = cli_import(bin, &url, &side, SIDE_DATASET, args.upload_rows);
        if let Some(imp) = note(&mut r.problems, "second CLI import", res) {
            eprintln!(
                "  {:.0} rows/s, peak RSS {:.0} MiB",
                imp.rows_per_sec, imp.peak_rss_mib
            );
            r.imports.push(imp);
        }
    }

    step("starting the server");
    let server = Server::start(bin, &url, dir.join("server.log")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.rss.idle_start_mib = mib(server.rss().now);
    let http = Http::new(&server.base)?;
    let me = http.login("bench-annotator", false).await?;
    let admin = http.login("bench-admin", true).await?;
    let db = setup::connect(&url).await?;
    r.engine = setup::engine_version(&db).await;
    let dataset = datasets::by_slug(&db, DATASET)
        .await?
        .context("the bench dataset is missing")?;

    step(&format!(
        "setup: {} annotations for the measuring user",
        r.annotations
    ));
    let user = setup::user_id(&db, "bench-annotator").await?;
    setup::seed_annotations(&db, dataset.id, user, r.annotations).await?;

    let (mut loaded_max, mut loaded_anon) = (0u64, 0u64);

    step("entering the dataset");
    r.enter = Some(load::time_enter(&http, &me, DATASET, 20, 300).await);

    if args.runs("single") {
        step("Pass & Next, one annotator");
        let start = http
            .enter(&me, DATASET)
            .await?
            .context("nothing left to annotate")?;
        let cpu = CpuWindow::start(Some(server.pid()));
        let t0 = Instant::now();
        let measure_from = t0 + Duration::from_secs(1);
        // Bounded so that small development runs keep traces to annotate for later phases.
        let max_requests = 5_000.min((args.scale - r.annotations) / 4);
        let bounds = Bounds {
            max_requests,
            deadline: measure_from + Duration::from_secs(60),
        };
        let samples =
            load::annotate_loop(&http, &me, DATASET, start, bounds, measure_from, None).await;
        r.single = Some(samples.stats(measure_from.elapsed().as_secs_f64()));
        r.single_cpu = cpu.finish(0.0);
        print_stats("  ", r.single.as_ref());
    }

    if args.runs("lists") {
        step("list pages");
        r.lists = list_pages(&http, &me, &db, dataset.id, args.scale).await;
    }

    if args.runs("team") {
        step("team review: the queue under an assignment, the agreement page");
        let res = team::run(team::Phase {
            bin,
            url: &url,
            http: &http,
            db: &db,
            me: &me,
            admin: &admin,
            dataset: dataset.id,
            slug: DATASET,
            scale: args.scale,
            max_requests: 5_000.min((args.scale - r.annotations) / 8),
        })
        .await;
        r.team = note(&mut r.problems, "team review", res);
    }

    for n in [100usize, 500] {
        if !args.runs("concurrent") {
            break;
        }
        step(&format!("{n} concurrent annotators"));
        let res = concurrent(&http, &server, n, args.duration).await;
        if let Some(c) = note(&mut r.problems, &format!("{n} annotators"), res) {
            print_stats("  ", Some(&c.stats));
            loaded_max = loaded_max.max((c.server_rss_max_mib * 1024.0) as u64);
            loaded_anon = loaded_anon.max((c.server_anon_max_mib * 1024.0) as u64);
            r.concurrent.push(c);
        }
    }

    let res = if args.runs("uploads") {
        step("5 concurrent form imports while one annotator works");
        uploads(&http, &admin, &me, &server, &db, &side, args.upload_rows)
            .await
            .map(Some)
    } else {
        Ok(None)
    };
    if let Some(u) = note(&mut r.problems, "form imports", res).flatten() {
        eprintln!(
            "  all done after {:.0} s; annotator meanwhile:",
            u.all_done_secs
        );
        print_stats("  ", Some(&u.annotator));
        loaded_max = loaded_max.max((u.server_rss_max_mib * 1024.0) as u64);
        loaded_anon = loaded_anon.max((u.server_anon_max_mib * 1024.0) as u64);
        r.uploads = Some(u);
    }

    step("export");
    let out = dir.join("export");
    for (what, dataset, format, rows_hint) in [
        ("CLI export CSV, all traces", DATASET, "csv", args.scale),
        ("CLI export JSONL, all traces", DATASET, "jsonl", args.scale),
        (
            "CLI export CSV, 100,000-trace dataset",
            SIDE_DATASET,
            "csv",
            args.upload_rows,
        ),
    ] {
        if !args.runs("export") || (dataset == SIDE_DATASET && r.imports.len() < 2) {
            continue;
        }
        let res = cli_export(bin, &url, dataset, format, &out, what);
        if let Some(f) = note(&mut r.problems, what, res) {
            eprintln!(
                "  {what}: {} rows (≥ {rows_hint}), {:.0} rows/s, peak RSS {:.0} MiB",
                f.rows, f.rows_per_sec, f.peak_rss_mib
            );
            r.exports.push(f);
        }
    }
    if args.runs("export") {
        let res = http_export(&http, &admin, &out).await;
        r.http_export = note(&mut r.problems, "HTTP export", res);
    }

    r.rss.loaded_max_mib = mib(loaded_max);
    r.rss.loaded_max_anon_mib = mib(loaded_anon);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = server.rss();
    r.rss.idle_after_mib = mib(after.now);
    r.rss.idle_after_anon_mib = mib(after.anon);
    r.rss.peak_mib = mib(after.peak);
    if args.runs("idle") {
        step("a minute idle");
        for second in 6..=60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = mib(server.rss().now);
            if now < 60.0 && r.rss.under_60_after_secs.is_none() {
                r.rss.under_60_after_secs = Some(second);
            }
            r.rss.idle_minute_mib = now;
        }
        eprintln!(
            "  {:.0} MiB after 5 s, {:.0} MiB after 60 s",
            r.rss.idle_after_mib, r.rss.idle_minute_mib
        );
    }
    db.close().await;
    server.stop();
    let _ = std::fs::remove_file(&out);
    r.minutes = began.elapsed().as_secs_f64() / 60.0;
    step(&format!("{name} done in {:.0} min", r.minutes));
    Ok(r)
}

pub(crate) fn print_stats(indent: &str, s: Option<&load::Stats>) {
    if let Some(s) = s {
        eprintln!(
            "{indent}{} ok, {} errors, {:.0}/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.1} ms{}",
            s.count,
            s.errors,
            s.per_sec,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.max_ms,
            s.first_error
                .as_deref()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
}

fn cli_import(
    bin: &Path,
    url: &str,
    file: &Path,
    dataset: &str,
    rows: u64,
) -> anyhow::Result<ProcFigure> {
    let mut cmd = Command::new(bin);
    cmd.arg("import")
        .arg(file)
        .args(["--dataset", dataset, "--quiet"])
        .env("DATABASE_URL", url);
    let f = procs::run_measured(cmd, Duration::from_secs(4 * 3600))?;
    anyhow::ensure!(f.success, "import failed: {}", procs::tail(&f.stderr));
    let secs = f.wall.as_secs_f64();
    Ok(ProcFigure {
        what: format!("CLI import into {dataset}"),
        rows,
        secs,
        rows_per_sec: rows as f64 / secs,
        peak_rss_mib: mib(f.max_rss_kib),
        cpu_secs: f.cpu_secs,
    })
}

fn cli_export(
    bin: &Path,
    url: &str,
    dataset: &str,
    format: &str,
    out: &Path,
    what: &str,
) -> anyhow::Result<ProcFigure> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "export",
        "--dataset",
        dataset,
        "--format",
        format,
        "--all-traces",
        "--out",
    ])
    .arg(out)
    .env("DATABASE_URL", url);
    let f = procs::run_measured(cmd, Duration::from_secs(3600))?;
    anyhow::ensure!(f.success, "export failed: {}", procs::tail(&f.stderr));
    // The CLI reports "exported N rows" on stderr.
    let rows = f
        .stderr
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("exported ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .context("the export did not say how many rows it wrote")?;
    let secs = f.wall.as_secs_f64();
    Ok(ProcFigure {
        what: what.into(),
        rows,
        secs,
        rows_per_sec: rows as f64 / secs,
        peak_rss_mib: mib(f.max_rss_kib),
        cpu_secs: f.cpu_secs,
    })
}

/// The list pages: every status filter at its first and deepest page, and one page in the
/// middle of the dataset.
async fn list_pages(
    http: &Http,
    me: &Session,
    db: &Db,
    dataset_id: tracecoder::domain::DatasetId,
    scale: u64,
) -> Vec<(String, load::Stats)> {
    let middle: Option<i64> = sqlx::query_scalar(
        "SELECT sort_key FROM traces WHERE dataset_id = $1 ORDER BY sort_key LIMIT 1 OFFSET $2",
    )
    .bind(dataset_id)
    .bind((scale / 2) as i64)
    .fetch_optional(db.reader())
    .await
    .ok()
    .flatten();
    let base = format!("/d/{DATASET}/traces");
    // (name, path, what the page must hold to count as answered)
    const ROWS: &str = "data-trace-id=";
    let mut pages = vec![];
    for status in ["all", "todo", "pass", "fail"] {
        pages.push((
            format!("{status}, first page"),
            format!("{base}?status={status}"),
            ROWS,
        ));
        pages.push((
            format!("{status}, deepest page"),
            format!("{base}?status={status}&before=last"),
            ROWS,
        ));
    }
    if let Some(k) = middle {
        pages.insert(
            2,
            (
                "all, middle page".into(),
                format!("{base}?status=all&after={k}"),
                ROWS,
            ),
        );
    }
    // Searches (issue 15): a word in most traces, its deepest page, a metadata value held
    // by about one trace in 5,000, a word in none, and a word with a metadata value.
    for (name, query, marker) in [
        ("search, common word", "q=order", ROWS),
        (
            "search, common word, deepest page",
            "q=order&before=last",
            ROWS,
        ),
        (
            "search, rare metadata value",
            "field=User%20Id&value=user-1234",
            ROWS,
        ),
        ("search, word in no trace", "q=zebra", "empty-list"),
        (
            "search, word and metadata value",
            "q=refund&field=Channel&value=web",
            ROWS,
        ),
    ] {
        pages.push((name.into(), format!("{base}?{query}"), marker));
    }
    let mut out = Vec::new();
    for (name, path, marker) in pages {
        let s = load::time_page(http, me, &path, marker, 20, 300, Duration::from_secs(60)).await;
        eprintln!(
            "  {name}: p50 {:.2} ms, p99 {:.2} ms, errors {}",
            s.p50_ms, s.p99_ms, s.errors
        );
        out.push((name, s));
    }
    out
}

/// `n` new annotators, each signed in with its own session, looping Pass & Next at once.
async fn concurrent(
    http: &Http,
    server: &Server,
    n: usize,
    duration: u64,
) -> anyhow::Result<Concurrent> {
    let names: Vec<String> = (0..n).map(|i| format!("bench-c{n}-{i}")).collect();
    let sessions: Vec<anyhow::Result<(Session, String)>> = futures_util::stream::iter(names)
        .map(|name| async move {
            let s = http.login(&name, false).await?;
            let start = http
                .enter(&s, DATASET)
                .await?
                .context("nothing to annotate")?;
            Ok((s, start))
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let sessions: Vec<(Session, String)> = sessions.into_iter().collect::<anyhow::Result<_>>()?;

    let sampler = RssSampler::start(server.pid());
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(3);
    let cpu_at = measure_from;
    let bounds = Bounds {
        max_requests: 200_000,
        deadline: measure_from + Duration::from_secs(duration),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (session, start) in sessions {
        let http = http.clone();
        tasks.spawn(async move {
            load::annotate_loop(&http, &session, DATASET, start, bounds, measure_from, None).await
        });
    }
    tokio::time::sleep_until(cpu_at.into()).await;
    let cpu = CpuWindow::start(Some(server.pid()));
    let mut all = Samples::default();
    while let Some(res) = tasks.join_next().await {
        all.merge(res?);
    }
    let cpu = cpu.finish(0.0);
    let (rss_max, anon_max) = sampler.finish().await;
    let window = measure_from.elapsed().as_secs_f64();
    Ok(Concurrent {
        annotators: n,
        stats: all.stats(window),
        cpu,
        server_rss_max_mib: mib(rss_max),
        server_anon_max_mib: mib(anon_max),
    })
}

/// Five uploads of the same file through the admin form at once, each into its own
/// dataset, while `me` keeps annotating; returns when all five imports have finished.
async fn uploads(
    http: &Http,
    admin: &Session,
    me: &Session,
    server: &Server,
    db: &Db,
    file: &Path,
    rows: u64,
) -> anyhow::Result<Uploads> {
    const COUNT: usize = 5;
    const LIMIT: Duration = Duration::from_secs(30 * 60);
    let start = http
        .enter(me, DATASET)
        .await?
        .context("nothing left to annotate")?;
    let sampler = RssSampler::start(server.pid());
    let cpu = CpuWindow::start(Some(server.pid()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t0 = Instant::now();
    let annotator = {
        let (http, me) = (http.clone(), me.clone());
        tokio::spawn(async move {
            let bounds = Bounds {
                max_requests: 1_000_000,
                deadline: t0 + LIMIT,
            };
            load::annotate_loop(&http, &me, DATASET, start, bounds, t0, Some(&stop_rx)).await
        })
    };
    let mut requests = tokio::task::JoinSet::new();
    for i in 1..=COUNT {
        let (http, admin, file) = (http.clone(), admin.clone(), file.to_path_buf());
        requests.spawn(async move {
            let started = Instant::now();
            let res = upload_one(&http, &admin, &file, &format!("{UPLOAD_PREFIX}{i}")).await;
            (res, started.elapsed().as_secs_f64())
        });
    }
    let mut request_secs_max: f64 = 0.0;
    let mut refused = Vec::new();
    while let Some(res) = requests.join_next().await {
        let (res, secs) = res?;
        request_secs_max = request_secs_max.max(secs);
        if let Err(e) = res {
            refused.push(format!("{e:#}"));
        }
    }
    let (mut done, mut failed, mut running);
    loop {
        (done, failed, running) = setup::upload_states(db, UPLOAD_PREFIX).await?;
        if running == 0 && done + failed + refused.len() as i64 >= COUNT as i64
            || t0.elapsed() > LIMIT
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_done_secs = t0.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let samples = annotator.await?;
    let cpu = cpu.finish(0.0);
    let (rss_max, anon_max) = sampler.finish().await;
    if !refused.is_empty() {
        bail!(
            "{} uploads were refused: {}",
            refused.len(),
            refused.join("; ")
        );
    }
    Ok(Uploads {
        count: COUNT,
        rows_each: rows,
        request_secs_max,
        all_done_secs,
        rows_per_sec: (done as u64 * rows) as f64 / all_done_secs,
        done,
        failed,
        timed_out: running,
        annotator: samples.stats(all_done_secs),
        cpu,
        server_rss_max_mib: mib(rss_max),
        server_anon_max_mib: mib(anon_max),
    })
}

/// One upload through the form, the file streamed from disk. The answer is the progress
/// page (a redirect to it) or, for a quick import, the finished status.
async fn upload_one(
    http: &Http,
    admin: &Session,
    file: &Path,
    dataset: &str,
) -> anyhow::Result<()> {
    let f = tokio::fs::File::open(file).await?;
    let len = f.metadata().await?.len();
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
    let part = reqwest::multipart::Part::stream_with_length(body, len)
        .file_name("botdojo.csv")
        .mime_str("text/csv")?;
    let form = reqwest::multipart::Form::new()
        .text("dataset", dataset.to_string())
        .part("file", part);
    let res = http
        .post(admin, "/admin/import")
        .multipart(form)
        .send()
        .await?;
    let status = res.status();
    anyhow::ensure!(
        status == reqwest::StatusCode::SEE_OTHER || status == reqwest::StatusCode::OK,
        "the upload into {dataset} answered {status}"
    );
    Ok(())
}

/// `GET /d/bench/export.csv` as admin, streamed to a file; rows counted afterwards.
async fn http_export(http: &Http, admin: &Session, out: &Path) -> anyhow::Result<ProcFigure> {
    use tokio::io::AsyncWriteExt;
    let started = Instant::now();
    let res = http
        .get(admin, &format!("/d/{DATASET}/export.csv"))
        .send()
        .await?;
    anyhow::ensure!(
        res.status() == reqwest::StatusCode::OK,
        "the export answered {}",
        res.status()
    );
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(out).await?);
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk?).await?;
    }
    file.flush().await?;
    let secs = started.elapsed().as_secs_f64();
    let mut reader = csv::Reader::from_path(out)?;
    let mut rows = 0u64;
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        rows += 1;
    }
    Ok(ProcFigure {
        what: "HTTP export CSV (admin)".into(),
        rows,
        secs,
        rows_per_sec: rows as f64 / secs,
        peak_rss_mib: 0.0,
        cpu_secs: 0.0,
    })
}
