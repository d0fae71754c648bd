//! Durability under write errors: a real full disk (a small tmpfs), a database file that
//! cannot grow (`PRAGMA max_page_count`), a Postgres commit that fails; saves are
//! acknowledged only once committed, the writer recovers by itself, `/readyz` tells.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A small tmpfs mounted for one test (root only), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        if !require_or_skip(
            "root (to mount a small tmpfs as a full disk)",
            running_as_root(),
        ) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !require_or_skip("mount -t tmpfs", ok) {
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0xa5u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // Whatever is left in smaller pieces.
        let small = [0u8; 512];
        while f.write(&small).is_ok_and(|n| n > 0) {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Saves one Fail with a long note on `trace` as `c`, from version 0: `Some(true)` when the
/// server acknowledged it (303), `Some(false)` when it said it was not saved (a 5xx), and
/// `None` for any other answer.
async fn save_fail(app: &TestApp, c: &reqwest::Client, trace: &str, note: &str) -> (u16, String) {
    let res = app
        .annotate(
            c,
            "disk",
            trace,
            &[
                ("verdict", "fail"),
                ("note", note),
                ("codes", "disk full test"),
                ("version", "0"),
            ],
            false,
        )
        .await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// The traces of the dataset, in reading order.
async fn trace_ids(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT trace_id FROM traces ORDER BY sort_key")
        .fetch_all(app.db.reader())
        .await
        .expect("trace ids")
}

async fn ready_status(app: &TestApp) -> (u16, String) {
    let c = client();
    app.get_text(&c, "/readyz").await
}

/// The SQLite file lives on a 24 MB tmpfs. While the disk is full, every save is answered
/// "not saved" (never a 303 for a save that is not on disk), `/readyz` says 503, and once space
/// is back saves succeed again without a restart. After a restart, every acknowledged save is
/// there.
#[tokio::test]
async fn a_full_disk_never_acknowledges_a_save_and_recovers_by_itself() {
    if backend() != "sqlite" {
        return; // a file on a full disk is SQLite's case; Postgres has its own test below
    }
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("tracecoder.db").display()
    );
    let app = spawn_app_on(url.clone(), None, |_| {}).await;
    let admin = app.login("Admin", true).await;
    let (status, _) = app
        .upload(&admin, "disk", "d.csv", simple_csv(100, 5))
        .await;
    assert_eq!(status, 200);
    let traces = trace_ids(&app).await;
    assert_eq!(traces.len(), 500);
    let annotators: Vec<reqwest::Client> = {
        let mut v = Vec::new();
        for i in 0..8 {
            v.push(app.login(&format!("Writer {i}"), false).await);
        }
        v
    };
    let note = "x".repeat(19_000);

    let mut acknowledged: HashSet<(usize, String)> = HashSet::new();
    let mut next = 0usize;
    // A few saves before the disk fills.
    for (i, c) in annotators.iter().enumerate() {
        let (status, _) = save_fail(&app, c, &traces[next], &note).await;
        assert_eq!(status, 303, "a save before the disk fills");
        acknowledged.insert((i, traces[next].clone()));
        next += 1;
    }
    assert_eq!(ready_status(&app).await.0, 200);

    let filler = disk.fill();
    // Concurrent saves with long notes until several were refused: the WAL has to grow.
    let mut refused = 0;
    let mut rounds = 0;
    while refused < 16 && rounds < 40 {
        rounds += 1;
        let mut batch = Vec::new();
        for (i, c) in annotators.iter().enumerate() {
            let trace = traces[next].clone();
            next += 1;
            let note = note.clone();
            let app = &app;
            batch.push(async move {
                let (status, body) = save_fail(app, c, &trace, &note).await;
                (i, trace, status, body)
            });
        }
        for (i, trace, status, body) in futures_util::future::join_all(batch).await {
            match status {
                303 => {
                    acknowledged.insert((i, trace));
                }
                503 => {
                    refused += 1;
                    assert!(
                        body.contains("Not saved"),
                        "a refused save says so in words: {body}"
                    );
                }
                other => panic!("a save on a full disk answered {other}: {body}"),
            }
        }
    }
    assert!(
        refused >= 16,
        "the disk never filled up: {rounds} rounds of saves all succeeded"
    );
    eprintln!(
        "while full: {refused} saves refused, {} acknowledged in all, {rounds} rounds",
        acknowledged.len()
    );
    let (status, body) = ready_status(&app).await;
    assert_eq!(status, 503, "/readyz while writes fail: {body}");
    assert!(
        body.contains("writ"),
        "/readyz names the failing writes: {body}"
    );

    std::fs::remove_file(&filler).expect("free the disk");
    // Saves resume by themselves.
    let c = &annotators[0];
    let mut resumed = false;
    for _ in 0..20 {
        let trace = traces[next].clone();
        next += 1;
        let (status, _) = save_fail(&app, c, &trace, "after the disk was freed").await;
        if status == 303 {
            acknowledged.insert((0, trace));
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(resumed, "saves did not resume after space came back");
    let mut ready = false;
    for _ in 0..50 {
        if ready_status(&app).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "/readyz stayed 503 after writes succeeded again");

    // Restart on the same file: every acknowledged save is there, nothing else is.
    let names: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..8 {
            v.push(format!("Writer {i}"));
        }
        v
    };
    app.stop().await;
    let app = spawn_app_on(url, None, |_| {}).await;
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.name, t.trace_id FROM annotations a
         JOIN users u ON u.id = a.user_id JOIN traces t ON t.id = a.trace_pk",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("stored annotations");
    let stored: HashSet<(usize, String)> = stored
        .into_iter()
        .map(|(name, trace)| {
            let i = names.iter().position(|n| *n == name).expect("a writer");
            (i, trace)
        })
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let ghosts: Vec<_> = stored.difference(&acknowledged).collect();
    assert!(ghosts.is_empty(), "stored but refused: {ghosts:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions").await as usize,
        acknowledged.len(),
        "one revision per acknowledged save"
    );
    drop(app);
    drop(disk);
}

/// Installs a deferred constraint trigger that makes every COMMIT touching
/// `annotation_revisions` or `write_probe` fail while `fail_commits` has a row: the
/// statements succeed, the commit itself fails (Postgres runs deferred triggers at COMMIT).
async fn inject_commit_failures(app: &TestApp) {
    for sql in [
        "CREATE TABLE fail_commits (on_since BIGINT)",
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT 1 FROM fail_commits) THEN
             RAISE EXCEPTION 'injected: could not write to file' USING ERRCODE = '58030';
           END IF;
           RETURN NULL;
         END $$",
        "CREATE CONSTRAINT TRIGGER refuse_revision_commit AFTER INSERT ON annotation_revisions
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
        "CREATE CONSTRAINT TRIGGER refuse_probe_commit AFTER UPDATE ON write_probe
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
    ] {
        sqlx::query(sql)
            .execute(app.db.writer())
            .await
            .expect("install the commit fault");
    }
}

/// Postgres: a COMMIT that fails is never acknowledged; the form comes back as typed; the
/// next save after the fault clears succeeds; `/readyz` follows.
#[tokio::test]
async fn a_failed_commit_on_postgres_is_never_acknowledged() {
    if backend() != "postgres" {
        return; // SQLite's commit failures are the full-disk test above
    }
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, _) = app.upload(&admin, "disk", "d.csv", simple_csv(2, 3)).await;
    assert_eq!(status, 200);
    inject_commit_failures(&app).await;
    let c = app.login("Writer", false).await;
    let (status, _) = save_fail(&app, &c, "c0-t1", "before the fault").await;
    assert_eq!(status, 303);

    sqlx::query("INSERT INTO fail_commits (on_since) VALUES (1)")
        .execute(app.db.writer())
        .await
        .unwrap();
    let (status, body) = save_fail(&app, &c, "c0-t2", "typed during the fault").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Not saved"), "{body}");
    assert!(
        body.contains("typed during the fault"),
        "the note comes back as typed: {body}"
    );
    let (status, body) = ready_status(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations").await,
        1,
        "the refused save left nothing"
    );

    sqlx::query("DELETE FROM fail_commits")
        .execute(app.db.writer())
        .await
        .unwrap();
    let (status, _) = save_fail(&app, &c, "c0-t2", "after the fault").await;
    assert_eq!(status, 303);
    assert_eq!(ready_status(&app).await.0, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions").await,
        2
    );
}

/// SQLite without root: the file may not grow (`PRAGMA max_page_count` on the writer
/// connection), so a statement fails half-way through a save. The save is refused, the
/// connection is replaced (the limit goes with it) and the next saves commit.
#[tokio::test]
async fn a_statement_that_fails_mid_save_replaces_the_connection() {
    if backend() != "sqlite" {
        return;
    }
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, _) = app.upload(&admin, "disk", "d.csv", simple_csv(4, 5)).await;
    assert_eq!(status, 200);
    let writers = [
        app.login("Writer 0", false).await,
        app.login("Writer 1", false).await,
        app.login("Writer 2", false).await,
    ];
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(app.db.writer())
        .await
        .unwrap();
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(app.db.writer())
        .await
        .unwrap();
    let note = "n".repeat(19_000);
    let traces = trace_ids(&app).await;
    let saves = writers
        .iter()
        .zip(&traces)
        .map(|(c, t)| save_fail(&app, c, t, &note));
    let answers = futures_util::future::join_all(saves).await;
    let refused = answers.iter().filter(|(s, _)| *s == 503).count();
    let acknowledged = answers.iter().filter(|(s, _)| *s == 303).count();
    assert!(refused >= 1, "the full file refused no save: {answers:?}");
    assert_eq!(refused + acknowledged, answers.len(), "only 303 or 503");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations").await as usize,
        acknowledged,
        "exactly the acknowledged saves are stored"
    );
    // A fresh writer connection: saves work again.
    let (status, _) = save_fail(&app, &writers[0], &traces[10], &note).await;
    assert_eq!(status, 303);
    assert_eq!(ready_status(&app).await.0, 200);
}

/// `tracecoder serve` as a child process on a free port.
struct Child {
    process: tokio::process::Child,
    base: String,
}

impl Child {
    async fn serve(database_url: &str) -> Child {
        use tokio::io::AsyncBufReadExt;
        let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env_remove("REDIS_URL")
            .env_remove("OIDC_ISSUER_URL")
            .env_remove("PUBLIC_URL")
            .env("LOG_FORMAT", "text")
            .env("LOGIN_RATE_BURST", "1000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start tracecoder serve");
        let mut lines = tokio::io::BufReader::new(process.stderr.take().expect("stderr")).lines();
        let find = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("listening on http://") {
                    return line[at + "listening on ".len()..].trim().to_string();
                }
            }
            panic!("the server exited before listening");
        };
        let base = tokio::time::timeout(Duration::from_secs(120), find)
            .await
            .expect("the server starts listening");
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Child { process, base }
    }

    async fn login(&self, name: &str) -> reqwest::Client {
        let c = client();
        let res = c
            .post(format!("{}/login", self.base))
            .form(&[("name", name), ("next", "/")])
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 303);
        c
    }
}

/// Imports a file with the command line (a second process beside any server).
fn cli_import(database_url: &str, file: &Path, dataset: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args(["import", "--quiet", "--dataset", dataset])
        .arg(file)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run tracecoder import")
}

/// kill -9 of the server under concurrent annotators loses no acknowledged save: every 303
/// answered before the kill is in the database after a restart.
#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_save() {
    let (url, _dir) = fresh_database().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("traces.csv");
    std::fs::write(&file, simple_csv(400, 5)).unwrap();
    let out = cli_import(&url, &file, "kill");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Child::serve(&url).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for i in 0..20 {
        let c = server.login(&format!("Loop {i}")).await;
        let base = server.base.clone();
        let stop = stop.clone();
        loops.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let Ok(res) = c.get(format!("{base}/d/kill/next")).send().await else {
                return acknowledged;
            };
            let mut at = location(&res);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(trace) = at.strip_prefix("/d/kill/t/").map(str::to_string) else {
                    break;
                };
                let res = c
                    .post(format!("{base}/d/kill/t/{trace}/annotate"))
                    .form(&[("verdict", "pass"), ("version", "0")])
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 303 => {
                        acknowledged.push(trace);
                        at = location(&r);
                    }
                    _ => break, // the server was killed mid-request: not acknowledged
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut process = server.process;
    process.start_kill().expect("kill -9");
    process.wait().await.expect("the server is gone");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = HashSet::new();
    for (i, task) in loops.into_iter().enumerate() {
        for trace in task.await.unwrap() {
            acknowledged.insert((format!("Loop {i}"), trace));
        }
    }
    assert!(
        acknowledged.len() >= 20,
        "the load saved too little to test anything: {}",
        acknowledged.len()
    );

    let app = spawn_app_on(url, None, |_| {}).await;
    let stored: HashSet<(String, String)> = sqlx::query_as(
        "SELECT u.name, t.trace_id FROM annotations a
         JOIN users u ON u.id = a.user_id JOIN traces t ON t.id = a.trace_pk",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged saves lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Normal work on the embedded default is free of lock errors: 20 annotators save and
/// re-save, others sign in and out, and a command-line import (a second process) runs at
/// the same time. No request answers 5xx, every save succeeds, and the import completes.
#[tokio::test]
async fn saves_sign_ins_and_a_cli_import_together_never_fail() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, _) = app.upload(&admin, "work", "w.csv", simple_csv(60, 5)).await;
    assert_eq!(status, 200);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bulk.csv");
    let mut bulk = String::from("trace_id,flow_session,turn_number,user_message,ai_response\n");
    for c in 0..8_000 {
        for t in 1..=5 {
            bulk.push_str(&format!(
                "b{c}-{t},bulk-{c},{t},{},answer\n",
                "q".repeat(200)
            ));
        }
    }
    std::fs::write(&file, bulk).unwrap();

    let traces = trace_ids(&app).await;
    let database_url = app.database_url.clone();
    let import = tokio::task::spawn_blocking(move || cli_import(&database_url, &file, "bulk"));

    let mut annotators = Vec::new();
    for i in 0..20 {
        let c = app.login(&format!("Annotator {i}"), false).await;
        let mine: Vec<String> = traces.iter().skip(i * 15).take(15).cloned().collect();
        let app = &app;
        annotators.push(async move {
            let mut answers = Vec::new();
            for trace in &mine {
                for (version, verdict, note) in [
                    ("0", "pass", ""),
                    ("1", "fail", "changed my mind"),
                    ("2", "pass", ""),
                ] {
                    let res = app
                        .annotate(
                            &c,
                            "work",
                            trace,
                            // Changing the verdict is confirmed (`replace`), as the
                            // second press of the key would.
                            &[
                                ("verdict", verdict),
                                ("note", note),
                                ("version", version),
                                ("replace", "1"),
                            ],
                            true,
                        )
                        .await;
                    answers.push(res.status().as_u16());
                }
            }
            answers
        });
    }
    let sign_ins = async {
        let mut answers = Vec::new();
        for round in 0..40 {
            let c = client();
            let res = c
                .post(app.url("/login"))
                .form(&[("name", format!("Visitor {round}")), ("next", "/".into())])
                .send()
                .await
                .expect("login");
            answers.push(res.status().as_u16());
            let res = c.post(app.url("/logout")).send().await.expect("logout");
            answers.push(res.status().as_u16());
        }
        answers
    };
    let (saves, sign_ins) = tokio::join!(futures_util::future::join_all(annotators), sign_ins);
    let import = import.await.unwrap();

    let saves: Vec<u16> = saves.into_iter().flatten().collect();
    assert_eq!(saves.len(), 20 * 15 * 3);
    let failed: Vec<&u16> = saves.iter().filter(|s| **s != 200).collect();
    assert!(failed.is_empty(), "saves not answered 200: {failed:?}");
    assert!(
        sign_ins.iter().all(|s| *s == 303),
        "sign-ins and sign-outs: {sign_ins:?}"
    );
    assert!(
        import.status.success(),
        "the CLI import failed: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM traces t JOIN datasets d ON d.id = t.dataset_id
             WHERE d.slug = 'bulk'"
        )
        .await,
        40_000
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions").await,
        20 * 15 * 3
    );
}

/// A save that cannot finish within the request timeout (another connection holds the write
/// lock) is answered 408 with words that say to check before trying again — never a 303.
/// Once the lock is gone the writer is not stuck: the next saves are acknowledged and on
/// disk, and the timed-out one was either committed whole or not at all.
#[tokio::test]
async fn a_save_slower_than_the_request_timeout_is_not_acknowledged_and_the_writer_recovers() {
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_secs(2)).await;
    let admin = app.login("Admin", true).await;
    let (status, _) = app.upload(&admin, "slow", "s.csv", simple_csv(2, 2)).await;
    assert_eq!(status, 200);
    let traces = trace_ids(&app).await;
    let annotator = app.login("Ann", false).await;

    // An outside connection takes the write lock and keeps it past the request timeout.
    sqlx::any::install_default_drivers();
    let mut blocker = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .expect("outside connection");
    let lock = match backend() {
        "sqlite" => "BEGIN IMMEDIATE",
        _ => "BEGIN; LOCK TABLE annotations IN EXCLUSIVE MODE",
    };
    sqlx::raw_sql(lock)
        .execute(&mut blocker)
        .await
        .expect("lock taken");
    let fields = [
        ("verdict", "fail"),
        ("note", "written while the database was locked"),
        ("codes", "slow save"),
        ("version", "0"),
    ];
    let res = app
        .annotate(&annotator, "slow", &traces[0], &fields, false)
        .await;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, 408, "a save stuck behind the lock: {body}");
    assert!(
        body.contains("took too long") && body.contains("whether it was saved"),
        "the page says what to do: {body}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("lock released");

    // The writer goes on: a save of another trace is acknowledged and on disk.
    let res = app
        .annotate(
            &annotator,
            "slow",
            &traces[1],
            &[("verdict", "pass"), ("version", "0")],
            false,
        )
        .await;
    assert_eq!(res.status(), 303, "a save after the lock is released");
    let saved: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.trace_id, a.verdict, a.first_failure_note FROM annotations a
         JOIN traces t ON t.id = a.trace_pk ORDER BY t.sort_key",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("annotations");
    assert!(
        saved.contains(&(traces[1].clone(), "pass".into(), String::new())),
        "{saved:?}"
    );
    // The timed-out save: whole or absent, and saving it again gets a clear answer.
    let first: Vec<_> = saved.iter().filter(|(t, _, _)| *t == traces[0]).collect();
    assert!(
        first.is_empty()
            || first
                == [&(
                    traces[0].clone(),
                    "fail".to_string(),
                    "written while the database was locked".to_string()
                )],
        "{first:?}"
    );
    let again = app
        .annotate(&annotator, "slow", &traces[0], &fields, false)
        .await;
    let expected = if first.is_empty() { 303 } else { 409 };
    assert_eq!(again.status().as_u16(), expected, "the same save again");
    assert_eq!(ready_status(&app).await.0, 200, "/readyz after the lock");
}
