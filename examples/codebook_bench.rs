//! Benchmark of the codebook's reads at scale: a SQLite dataset of `--traces` traces
//! (default 1,000,000) with `--annotations` current annotations (100,000, by 20 annotators,
//! two thirds Fail) carrying 1–2 open codes each over `--codes` distinct codes (10,000);
//! 20 failure modes group the first 2,000 codes.
//!
//! `cargo run --release --example codebook_bench [-- --traces N --annotations N --codes N]`
//!
//! Traces are imported through the real import path (small rows: the codebook never reads
//! them); annotations and code rows are written with bulk SQL in the same shape saves write.
//! Timed, after one warm-up, over 30 runs each: the codebook page's queries (counts per code,
//! per mode and per annotator, totals, the 300 most used codes' spellings — everything the
//! page shows but the rendering), the export (queries + CSV), the annotators' suggestion
//! list, and the suggested groupings (queries + clustering of the ungrouped codes).
//!
//! Then the server itself on that database (default configuration), over HTTP with
//! rendering: the page with no save since the last view, with an annotator saving before
//! every view (counts kept and refreshed in the background), right after a codebook change
//! (counted before answering), and an annotator's `codes.json`.

use std::time::{Duration, Instant};

use tracecoder::codebook;
use tracecoder::db::{Db, codebook as store, users};
use tracecoder::import;

fn arg(name: &str, default: i64) -> i64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<34} n={:<3} p50 {:>8.1} ms  p95 {:>8.1} ms  p99 {:>8.1} ms",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99))
    );
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let traces = arg("--traces", 1_000_000);
    let annotations = arg("--annotations", 100_000);
    let codes = arg("--codes", 10_000);
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let db = Db::connect(&url, Duration::from_secs(10)).await?;

    let started = Instant::now();
    let mut csv = String::from("trace_id,flow_session,turn_number,user_message,ai_response\n");
    for i in 0..traces {
        csv.push_str(&format!(
            "t{i},c{},{},question {i},answer {i}\n",
            i / 4,
            i % 4 + 1
        ));
    }
    let pending = import::register(&db, "Bench", "bench.csv", None, csv.len() as i64).await?;
    import::run(&db, &pending, std::io::Cursor::new(csv.into_bytes()), None).await?;
    let dataset = pending.dataset_id;
    let mut user_ids = Vec::new();
    for n in 0..20 {
        let (name, email) = (format!("A{n}"), format!("a{n}@bench"));
        let who = users::SignIn {
            issuer: "bench",
            subject: &name,
            email: &email,
            name: &name,
            email_verified: true,
        };
        user_ids.push(users::upsert(&db, &who, false).await?.id.0);
    }
    let first_user = user_ids[0];
    let mut tx = db.begin_write().await?;
    // Each trace annotated once, by one of 20 annotators; two thirds Fail.
    sqlx::query(&format!(
        "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict,
             first_failure_note, comments, version, created_at, updated_at)
         SELECT t.id, t.dataset_id, {first_user} + (t.id % 20), t.sort_key,
                CASE WHEN t.id % 3 = 0 THEN 'pass' ELSE 'fail' END, 'note ' || t.id, '', 1, t.id, t.id
         FROM traces t WHERE t.dataset_id = $1 ORDER BY t.sort_key LIMIT $2"
    ))
    .bind(dataset)
    .bind(annotations)
    .execute(&mut *tx)
    .await?;
    // Codes on the Fail annotations: one, and a second on every other; skewed towards low
    // numbers (a few codes are common, most are rare), `codes` distinct in all.
    for (position, multiplier, filter) in [(0, 7919, ""), (1, 104_729, "AND a.id % 2 = 0")] {
        sqlx::query(&format!(
            "INSERT INTO annotation_codes (annotation_id, dataset_id, trace_pk, user_id, sort_key,
                 fail, position, code, normalized)
             SELECT a.id, a.dataset_id, a.trace_pk, a.user_id, a.sort_key, 1, {position},
                    'code ' || ((a.id * {multiplier}) % ((a.id % 97) * {codes} / 96 + 1)),
                    'code ' || ((a.id * {multiplier}) % ((a.id % 97) * {codes} / 96 + 1))
             FROM annotations a WHERE a.dataset_id = $1 AND a.verdict = 'fail' {filter}
             ON CONFLICT DO NOTHING"
        ))
        .bind(dataset)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    // 20 modes over the first 2,000 codes.
    let mut file = String::from("failure_mode,open_code\n");
    for c in 0..2000 {
        file.push_str(&format!("Mode {},code {c}\n", c % 20));
    }
    codebook::import(&db, dataset, "bench", file.as_bytes())
        .await?
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    sqlx::query("ANALYZE").execute(db.writer()).await?;
    let distinct: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT normalized) FROM annotation_codes WHERE dataset_id = $1",
    )
    .bind(dataset)
    .fetch_one(db.reader())
    .await?;
    let uses: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM annotation_codes")
        .fetch_one(db.reader())
        .await?;
    println!(
        "seeded {traces} traces, {annotations} annotations, {uses} code uses, {distinct} distinct codes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let runs = 30;
    let mut page = Vec::new();
    let mut export = Vec::new();
    let mut suggest = Vec::new();
    let mut grouping = Vec::new();
    for run in 0..=runs {
        let t = Instant::now();
        let overview = codebook::overview(&db, dataset).await?;
        let top: Vec<&str> = overview
            .codes
            .iter()
            .take(300)
            .map(|c| c.counts.code.as_str())
            .collect();
        store::spellings(&db, dataset, &top).await?;
        let page_time = t.elapsed();
        let t = Instant::now();
        let overview = codebook::overview(&db, dataset).await?;
        let bytes = codebook::export_csv(&codebook::export_rows(&overview), false)?;
        let export_time = t.elapsed();
        let scope =
            tracecoder::db::scope::Scope::everyone(dataset, tracecoder::domain::UserId(first_user));
        let t = Instant::now();
        codebook::suggestions_for(&db, &scope, &overview).await?;
        let suggest_time = t.elapsed();
        if run > 0 {
            page.push(page_time);
            export.push(export_time);
            suggest.push(suggest_time);
        }
        if run == 0 {
            println!(
                "export: {} bytes, {} rows",
                bytes.len(),
                codebook::export_rows(&overview).len()
            );
        }
        if run < 4 {
            let t = Instant::now();
            let (clusters, ungrouped) = codebook::suggestions(&db, dataset).await?;
            if run > 0 {
                grouping.push(t.elapsed());
            } else {
                println!(
                    "suggested groupings: {} clusters over {} ungrouped codes",
                    clusters.len(),
                    ungrouped
                );
            }
        }
    }
    // Where the page's time goes: each of its queries alone.
    let mut parts: Vec<(&str, Vec<Duration>)> = [
        "  counts per code",
        "  failure modes + grouping",
        "  fail traces per mode / annotator",
        "  totals (annotated, failed)",
        "  spellings of 300 codes",
    ]
    .into_iter()
    .map(|l| (l, Vec::new()))
    .collect();
    let top: Vec<String> = store::code_counts(&db, dataset)
        .await?
        .into_iter()
        .take(300)
        .map(|c| c.code)
        .collect();
    let top: Vec<&str> = top.iter().map(String::as_str).collect();
    for _ in 0..10 {
        let t = Instant::now();
        store::code_counts(&db, dataset).await?;
        parts[0].1.push(t.elapsed());
        let t = Instant::now();
        store::modes(&db, dataset).await?;
        store::grouping(&db, dataset).await?;
        parts[1].1.push(t.elapsed());
        let t = Instant::now();
        store::mode_counts(&db, dataset).await?;
        parts[2].1.push(t.elapsed());
        let t = Instant::now();
        store::totals(&db, dataset).await?;
        parts[3].1.push(t.elapsed());
        let t = Instant::now();
        store::spellings(&db, dataset, &top).await?;
        parts[4].1.push(t.elapsed());
    }
    summary("counting (the page's queries, no cache)", page);
    for (label, samples) in parts {
        summary(label, samples);
    }
    summary("codebook export (CSV)", export);
    summary("annotator suggestions (from counts)", suggest);
    summary("suggested groupings", grouping);
    http_phase(&url, first_user).await?;
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

/// The page as a lead gets it: the server on this database (default configuration: counts
/// costing over 50 ms are kept between saves), an admin's browser-like client, HTTP and
/// rendering included. Three situations: nobody saved since the last view; an annotator saves
/// between every two views (for 20 s, a view every 100 ms, the counts refreshed in the
/// background meanwhile); the lead changed the codebook just before (counted before
/// answering).
async fn http_phase(url: &str, first_user: i64) -> anyhow::Result<()> {
    let app = tracecoder::Application::build(tracecoder::Config::local(url)).await?;
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let login = |name: &'static str, admin: bool| {
        let base = base.clone();
        async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let mut form = vec![("name", name), ("next", "/")];
            if admin {
                form.push(("admin", "1"));
            }
            client
                .post(format!("{base}/login"))
                .form(&form)
                .send()
                .await?;
            anyhow::Ok(client)
        }
    };
    let lead = login("Lead", true).await?;
    let annotator = login("A0", false).await?;
    let page_url = format!("{base}/d/bench/codebook");
    let view = |client: &reqwest::Client| {
        let (client, page_url) = (client.clone(), page_url.clone());
        async move {
            let t = Instant::now();
            let res = client.get(&page_url).send().await?;
            anyhow::ensure!(res.status() == 200, "codebook page: {}", res.status());
            let body = res.text().await?;
            // How many annotation changes the counts shown miss (0: current).
            let behind = body
                .split_once("id=\"counts-as-of\">")
                .and_then(|(_, note)| note.split_once(" s ago: "))
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<usize>().ok())
                .unwrap_or(0);
            anyhow::Ok((t.elapsed(), behind))
        }
    };
    view(&lead).await?; // counts once
    let mut quiet = Vec::new();
    for _ in 0..30 {
        quiet.push(view(&lead).await?.0);
    }
    summary("page, no save since the last view", quiet);

    let (mut busy, mut trace) = (Vec::new(), 200_000 + first_user);
    let (mut behind, mut most_behind) = (0, 0);
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        trace += 1;
        let res = annotator
            .post(format!("{base}/d/bench/t/t{trace}/annotate"))
            .form(&[
                ("verdict", "fail"),
                ("note", "n"),
                ("codes", "code 5"),
                ("version", "0"),
            ])
            .send()
            .await?;
        anyhow::ensure!(res.status() == 303, "save: {}", res.status());
        let (time, missed) = view(&lead).await?;
        busy.push(time);
        behind += usize::from(missed > 0);
        most_behind = most_behind.max(missed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "while an annotator saves: {} views, {behind} of them as of an earlier count, \
         missing at most {most_behind} saves",
        busy.len(),
    );
    summary("page, a save before every view", busy);

    let mut edited = Vec::new();
    for n in 0..10 {
        let name = format!("Bench mode {n}");
        let res = lead
            .post(format!("{base}/d/bench/codebook/modes"))
            .form(&[("name", name.as_str()), ("description", "")])
            .send()
            .await?;
        anyhow::ensure!(res.status() == 303, "create mode: {}", res.status());
        edited.push(view(&lead).await?.0);
    }
    summary("page, after a codebook change", edited);
    let mut codes_json = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let res = annotator
            .get(format!("{base}/d/bench/codes.json"))
            .send()
            .await?;
        anyhow::ensure!(res.status() == 200, "codes.json: {}", res.status());
        res.bytes().await?;
        codes_json.push(t.elapsed());
    }
    summary("annotator suggestions (codes.json)", codes_json);
    let _ = stop.send(());
    server.await??;
    Ok(())
}
