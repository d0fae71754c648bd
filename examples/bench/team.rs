//! The team-review phase: the measuring user's queue under an assignment (entering the
//! dataset and Pass & Next, as in the single-annotator phase) and the agreement page over
//! 100,000 annotations of the shared traces. The assignment is removed at the end, so the
//! phases after it run on an unassigned dataset as before.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use tracecoder::db::Db;
use tracecoder::domain::{DatasetId, UserId};

use crate::load::{self, Bounds, Http, Session};
use crate::procs;
use crate::report::{Team, mib};
use crate::setup;

/// Assignees besides the measuring user (development names; they sign in over HTTP).
const OTHERS: [&str; 3] = ["bench-team-1", "bench-team-2", "bench-team-3"];
/// Shared traces every assignee codes: 4 × 25,000 = 100,000 shared annotations.
const SHARED: u64 = 25_000;
/// The codebook the seeded codes group into: ten codes, five modes.
const CODEBOOK: &str = "failure_mode,open_code\n\
    Ignored tool error,code 0\nIgnored tool error,code 1\n\
    Wrong tool,code 2\nWrong tool,code 3\n\
    Hallucinated fact,code 4\nHallucinated fact,code 5\n\
    Off tone,code 6\nOff tone,code 7\n\
    Incomplete answer,code 8\nIncomplete answer,code 9\n";

/// Everything the phase needs from the run.
pub struct Phase<'a> {
    pub bin: &'a Path,
    pub url: &'a str,
    pub http: &'a Http,
    pub db: &'a Db,
    pub me: &'a Session,
    pub admin: &'a Session,
    pub dataset: DatasetId,
    pub slug: &'a str,
    pub scale: u64,
    pub max_requests: u64,
}

pub async fn run(cx: Phase<'_>) -> anyhow::Result<Team> {
    let shared = SHARED.min(cx.scale / 4);
    let mut users = vec![(
        tracecoder::auth::dev::email_of("bench-annotator"),
        setup::user_id(cx.db, "bench-annotator").await?,
    )];
    for name in OTHERS {
        cx.http.login(name, false).await?;
        users.push((
            tracecoder::auth::dev::email_of(name),
            setup::user_id(cx.db, name).await?,
        ));
    }
    let emails: Vec<&str> = users.iter().map(|(e, _)| e.as_str()).collect();

    // The assignment, dealt by the CLI over every trace.
    let mut cmd = Command::new(cx.bin);
    cmd.args(["assign", "--dataset", cx.slug, "--annotators"])
        .arg(emails.join(","))
        .args(["--shared", &shared.to_string()])
        .env("DATABASE_URL", cx.url);
    let f = procs::run_measured(cmd, Duration::from_secs(3600))?;
    anyhow::ensure!(f.success, "assign failed: {}", procs::tail(&f.stderr));
    let assign_secs = f.wall.as_secs_f64();
    let assign_peak_rss_mib = mib(f.max_rss_kib);
    eprintln!("  assigned {} traces in {assign_secs:.1} s", cx.scale);

    let enter = load::time_enter(cx.http, cx.me, cx.slug, 20, 300).await;
    let start = cx
        .http
        .enter(cx.me, cx.slug)
        .await?
        .context("the assigned queue is empty")?;
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(1);
    let bounds = Bounds {
        max_requests: cx.max_requests,
        deadline: measure_from + Duration::from_secs(60),
    };
    let samples =
        load::annotate_loop(cx.http, cx.me, cx.slug, start, bounds, measure_from, None).await;
    let single = samples.stats(measure_from.elapsed().as_secs_f64());
    crate::print_stats("  ", Some(&single));

    seed_shared(cx.db, cx.dataset, &users).await?;
    tracecoder::codebook::import(cx.db, cx.dataset, "bench", CODEBOOK.as_bytes())
        .await?
        .map_err(|p| anyhow::anyhow!("the bench codebook was refused: {p:?}"))?;
    let shared_annotations: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM annotations a WHERE a.dataset_id = $1 AND a.trace_pk IN
           (SELECT x.trace_pk FROM trace_assignments x WHERE x.dataset_id = $1 AND x.shared = 1)",
    )
    .bind(cx.dataset)
    .fetch_one(cx.db.reader())
    .await?;
    eprintln!("  {shared_annotations} annotations of {shared} shared traces");
    let limit = Duration::from_secs(180);
    let page = format!("/d/{}/agreement", cx.slug);
    let agreement_page =
        load::time_page(cx.http, cx.admin, &page, "Krippendorff", 2, 30, limit).await;
    crate::print_stats("  agreement page: ", Some(&agreement_page));
    let json = format!("/d/{}/agreement.json", cx.slug);
    let agreement_json =
        load::time_page(cx.http, cx.admin, &json, "krippendorff_alpha", 2, 30, limit).await;
    crate::print_stats("  agreement.json: ", Some(&agreement_json));

    let mut cmd = Command::new(cx.bin);
    cmd.args(["assign", "--dataset", cx.slug, "--clear"])
        .env("DATABASE_URL", cx.url);
    let f = procs::run_measured(cmd, Duration::from_secs(600))?;
    anyhow::ensure!(
        f.success,
        "assign --clear failed: {}",
        procs::tail(&f.stderr)
    );
    Ok(Team {
        assignees: users.len(),
        shared,
        assign_secs,
        assign_peak_rss_mib,
        enter,
        single,
        shared_annotations: shared_annotations as u64,
        agreement_page,
        agreement_json,
    })
}

/// Every assignee's annotation of every shared trace they have not annotated yet, written
/// in bulk: a trace's "true" verdict is Fail for one in four, and each annotator departs
/// from it on about one in ten traces (so kappa and alpha land near 0.57: 82% agreement where
/// 58% is expected by chance); a Fail carries one of the codebook's ten codes, chosen per
/// trace with a per-annotator twist on every other trace. Agreement reads only the
/// annotations and their code rows.
async fn seed_shared(
    db: &Db,
    dataset: DatasetId,
    users: &[(String, UserId)],
) -> anyhow::Result<()> {
    let ts = tracecoder::db::now();
    let mut tx = db.begin_write().await?;
    for (index, (email, user)) in users.iter().enumerate() {
        let assignee: i64 =
            sqlx::query_scalar("SELECT id FROM assignees WHERE dataset_id = $1 AND email = $2")
                .bind(dataset)
                .bind(email)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict,
                 first_failure_note, comments, version, created_at, updated_at)
             SELECT x.trace_pk, x.dataset_id, $1, x.sort_key,
                    CASE WHEN (x.trace_pk % 4 = 0) = ((x.trace_pk * 31 + $2 * 17) % 10 <> 0)
                         THEN 'fail' ELSE 'pass' END,
                    '', '', 1, $3, $3
             FROM trace_assignments x
             WHERE x.dataset_id = $4 AND x.assignee = $5 AND x.shared = 1
               AND NOT EXISTS (SELECT 1 FROM annotations a
                               WHERE a.trace_pk = x.trace_pk AND a.user_id = $1)",
        )
        .bind(*user)
        .bind(index as i64)
        .bind(ts)
        .bind(dataset)
        .bind(assignee)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO annotation_codes (annotation_id, dataset_id, trace_pk, user_id, sort_key,
                 fail, position, code, normalized)
             SELECT c.id, c.dataset_id, c.trace_pk, c.user_id, c.sort_key, 1, 0, c.code, c.code
             FROM (SELECT a.id, a.dataset_id, a.trace_pk, a.user_id, a.sort_key,
                          'code ' || ((a.trace_pk / 4 + $2 * (a.trace_pk % 2)) % 10) AS code
                   FROM annotations a
                   JOIN trace_assignments x ON x.trace_pk = a.trace_pk AND x.assignee = $3
                        AND x.shared = 1
                   WHERE a.dataset_id = $4 AND a.user_id = $1 AND a.verdict = 'fail'
                     AND NOT EXISTS (SELECT 1 FROM annotation_codes o WHERE o.annotation_id = a.id)) c",
        )
        .bind(*user)
        .bind(index as i64)
        .bind(assignee)
        .bind(dataset)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if db.backend() == tracecoder::db::Backend::Postgres {
        sqlx::query("ANALYZE").execute(db.writer()).await?;
    }
    Ok(())
}
