//! Browser tests: the Node scripts in `tests/browser/` drive Debian's headless Chromium
//! (through npm `playwright-core`, never a downloaded browser) against the real app, and
//! these tests assert on the JSON they print and on what the database holds afterwards.
//!
//! Needs `node`, `npm ci` in `tests/browser` and `chromium` on PATH (or `CHROMIUM_PATH`);
//! without them the tests skip loudly, except under `CI=true`, where they fail.
//! `SCREENSHOT_DIR=docs/screenshots` keeps the screenshots (otherwise they go to a temp dir).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;
use serde_json::Value;

/// One browser at a time: the machine has two cores, and parallel browsers make every
/// timeout and every latency figure meaningless.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long one script may run before it is killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Node, the npm packages and a Chromium binary, or a loud skip (a failure under CI).
fn browser_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = ["playwright-core", "axe-core"]
        .iter()
        .all(|m| browser_dir().join("node_modules").join(m).is_dir());
    let chromium = std::env::var_os("CHROMIUM_PATH").is_some_and(|p| Path::new(&p).is_file())
        || on_path("chromium")
        || on_path("chromium-browser");
    require_or_skip("node", node)
        && require_or_skip(
            "the npm packages of tests/browser (run `npm ci` there)",
            modules,
        )
        && require_or_skip(
            "chromium (Debian package) on PATH or CHROMIUM_PATH",
            chromium,
        )
}

/// Where screenshots go: `SCREENSHOT_DIR` (relative to the crate) or a temp dir.
fn screenshot_dir(tmp: &Path) -> PathBuf {
    match std::env::var("SCREENSHOT_DIR") {
        Ok(d) if !d.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR")).join(d),
        _ => tmp.join("screenshots"),
    }
}

/// Runs `node tests/browser/{script} args…` and returns its JSON report, its exit status and
/// its stderr. Output goes through files, so a chatty script cannot fill a pipe and stall.
async fn run_script(script: &str, args: Vec<String>) -> (Value, bool, String) {
    let script = script.to_string();
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().expect("temp dir");
        let out_path = tmp.path().join("stdout.json");
        let err_path = tmp.path().join("stderr.txt");
        let mut child = Command::new("node")
            .arg(&script)
            .args(&args)
            .current_dir(browser_dir())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("node starts");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                break Some(status);
            }
            if started.elapsed() > SCRIPT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        assert!(
            status.is_some(),
            "{script} ran longer than {SCRIPT_TIMEOUT:?}; stderr:\n{stderr}"
        );
        let report: Value = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!("{script} printed no JSON report.\nstdout:\n{stdout}\nstderr:\n{stderr}")
            });
        (report, status.is_some_and(|s| s.success()), stderr)
    })
    .await
    .expect("script runner")
}

/// Fails the test with every failed check named, unless the script passed.
fn assert_passed(report: &Value, success: bool, stderr: &str) {
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["ok"] != true).collect())
        .unwrap_or_default();
    assert!(
        success && report["ok"] == true && failed.is_empty(),
        "browser checks failed:\n{}\n\nstderr:\n{stderr}",
        serde_json::to_string_pretty(&failed).unwrap_or_default()
    );
    let checks = report["checks"].as_array().map_or(0, Vec::len);
    assert!(
        checks >= 3,
        "a report with {checks} checks proves nothing: {report}"
    );
}

/// A generated BotDojo export of `conversations` conversations (1–6 turns each).
fn botdojo_file(dir: &Path, name: &str, conversations: u64, seed: u64) -> (PathBuf, u64) {
    let path = dir.join(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("csv file"));
    let rows = tracecoder::demo::write_botdojo(file, conversations, seed).expect("write csv");
    (path, rows)
}

async fn annotations_of(app: &TestApp, user: &str, verdict: Option<&str>) -> i64 {
    let filter = verdict
        .map(|v| format!(" AND a.verdict = '{v}'"))
        .unwrap_or_default();
    app.count(&format!(
        "SELECT COUNT(*) FROM annotations a JOIN users u ON u.id = a.user_id WHERE u.name = '{user}'{filter}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_annotation_after_an_import_watched_in_the_browser() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    // Paced (13 batches, 0.5 s apart) so the import outlives the upload's 3 s inline wait
    // whatever the build, and the page has to show progress and poll.
    let app = spawn_app_with(|c| c.import_pause = Duration::from_millis(500)).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let (csv, rows) = botdojo_file(tmp.path(), "support-bot.csv", 7_000, 6);
    let shots = screenshot_dir(tmp.path());
    let (report, ok, stderr) = run_script(
        "annotate.mjs",
        vec![
            "--base".into(),
            app.base.clone(),
            "--csv".into(),
            csv.display().to_string(),
            "--dataset".into(),
            "Support bot".into(),
            "--annotate".into(),
            "30".into(),
            "--shots".into(),
            shots.display().to_string(),
        ],
    )
    .await;
    eprintln!("import: {}\naxe: {}", report["import"], report["axe"]);
    assert_passed(&report, ok, &stderr);

    // What the browser did is what the database holds.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM traces").await,
        rows as i64,
        "the whole file was imported"
    );
    let passes = report["passes"].as_i64().expect("passes");
    let fails = report["fails"].as_i64().expect("fails");
    assert_eq!(passes + fails, 30);
    assert!(fails >= 5, "the run failed traces too: {fails}");
    assert_eq!(
        annotations_of(&app, "Annie Admin", None).await,
        30,
        "30 annotations saved"
    );
    assert_eq!(
        annotations_of(&app, "Annie Admin", Some("pass")).await,
        passes
    );
    assert_eq!(
        annotations_of(&app, "Annie Admin", Some("fail")).await,
        fails
    );
    let typed_p = app
        .count("SELECT COUNT(*) FROM annotations WHERE verdict = 'fail' AND first_failure_note LIKE '%p should not pass%'")
        .await;
    assert!(
        typed_p >= 4,
        "notes typed with the letter p were saved as fails: {typed_p}"
    );
    for name in [
        "trace-view",
        "fail-form",
        "trace-list",
        "import-progress",
        "import-result",
    ] {
        let png = shots.join(format!("{name}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "screenshot {} was taken ({size} bytes)",
            png.display()
        );
    }
}

/// A BotDojo file whose every field is hostile markup: messages, tool calls, metadata,
/// trace ids, conversation ids.
fn hostile_csv(dir: &Path) -> PathBuf {
    let script = "<script>alert(1)</script>";
    let img = "<img src=x onerror=alert(2)>";
    let ai_message = |n: u32| {
        let step = serde_json::json!({"steps": [
            {"type": "thinking", "stepLabel": "Thinking", "content": format!("{script} think")},
            {"type": "tool", "stepLabel": format!("lookup<svg onload=alert({n})>"),
             "arguments": {"q": img, "html": "<iframe src=javascript:alert(3)></iframe>"},
             "content": format!("{{\"result\": \"{img}\"}}"), "startTime": 1000, "endTime": 1200},
        ]});
        step.to_string().replace('"', "\"\"")
    };
    let rows = [
        (
            "h-1",
            "sess-1",
            1,
            format!("Hi {script}"),
            format!("Hello {img}"),
        ),
        (
            "h-2",
            "sess-1",
            2,
            format!("{img} and [click](javascript:alert(4))"),
            format!("**bold** {script} <b onmouseover=alert(5)>x</b>"),
        ),
        (
            "h\"><img src=x onerror=alert(6)>",
            "sess-2<script>alert(7)</script>",
            1,
            "plain question".into(),
            format!("<style>body{{display:none}}</style>{img}"),
        ),
        (
            "h-4",
            "sess-3",
            1,
            "</textarea><script>alert(8)</script>".into(),
            "<a href=\"javascript:alert(9)\">x</a>".into(),
        ),
    ];
    let mut s = String::from(
        "\u{feff}id,Flow Session,Turn_Number,Total_Turns_in_Session,body.user_message,response.text_output,AI Message,Model,<b>Note</b>\r\n",
    );
    for (i, (id, session, turn, user, ai)) in rows.iter().enumerate() {
        let q = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
        s.push_str(&format!(
            "{},{},{turn},,{},{},\"{}\",{},{}\r\n",
            q(id),
            q(session),
            q(user),
            q(ai),
            ai_message(10 + i as u32),
            q(&format!("gpt{img}")),
            q(&format!("{script}{img}"))
        ));
    }
    let path = dir.join("hostile.csv");
    std::fs::write(&path, s).expect("write hostile csv");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_markup_in_traces_never_runs() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let csv = hostile_csv(tmp.path());
    let (report, ok, stderr) = run_script(
        "hostile.mjs",
        vec![
            "--base".into(),
            app.base.clone(),
            "--csv".into(),
            csv.display().to_string(),
            "--traces".into(),
            "4".into(),
        ],
    )
    .await;
    eprintln!("pages visited: {}", report["visited"]);
    assert_passed(&report, ok, &stderr);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM traces").await,
        4,
        "every hostile row was imported"
    );
    assert!(
        report["visited"].as_i64().unwrap_or(0) >= 10,
        "the script looked at enough pages: {report}"
    );
    let hostile_note = app
        .count("SELECT COUNT(*) FROM annotations WHERE first_failure_note LIKE '%<img src=x%'")
        .await;
    assert_eq!(hostile_note, 1, "the hostile note was saved as typed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_forms_post_and_redirect() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let (csv, rows) = botdojo_file(tmp.path(), "no-js.csv", 7_000, 7);
    let (report, ok, stderr) = run_script(
        "nojs.mjs",
        vec![
            "--base".into(),
            app.base.clone(),
            "--csv".into(),
            csv.display().to_string(),
        ],
    )
    .await;
    eprintln!("import states: {}", report["import_states"]);
    assert_passed(&report, ok, &stderr);
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, rows as i64);
    assert_eq!(
        annotations_of(&app, "Nora No-Script", Some("pass")).await,
        1
    );
    assert_eq!(
        annotations_of(&app, "Nora No-Script", Some("fail")).await,
        1
    );
    assert_eq!(
        annotations_of(&app, "Nora No-Script", None).await,
        2,
        "the refused save stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_to_next_trace_latency_is_measured() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let (csv, _) = botdojo_file(tmp.path(), "latency.csv", 40, 8);
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(
            &admin,
            "Latency",
            "latency.csv",
            std::fs::read(&csv).expect("csv"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let steps = 60;
    let (report, ok, stderr) = run_script(
        "latency.mjs",
        vec![
            "--base".into(),
            app.base.clone(),
            "--slug".into(),
            "latency".into(),
            "--steps".into(),
            steps.to_string(),
        ],
    )
    .await;
    assert_passed(&report, ok, &stderr);
    // Figures are reported, never asserted: timing on a shared 2-core box is not a test.
    eprintln!(
        "key → next trace painted over {steps} steps: {}",
        report["latency_ms"]
    );
    assert_eq!(report["latency_ms"]["samples"].as_u64(), Some(steps as u64));
    assert_eq!(
        annotations_of(&app, "Lena Latency", Some("pass")).await,
        steps
    );
}

/// The fragment an HTMX request gets for `err`, exactly as the server renders it.
fn error_fragment(err: tracecoder::error::AppError) -> (String, String) {
    use axum::response::IntoResponse;
    let message = err.public_message();
    let response = err.into_response();
    let fragment = response
        .extensions()
        .get::<tracecoder::web::pages::ErrorFragment>()
        .expect("error responses carry their fragment")
        .0
        .clone();
    (fragment, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_fails_on_the_way_keeps_what_was_typed() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Save errors", "errors.csv", simple_csv(3, 2))
        .await;
    assert_eq!(status, 200, "{page}");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut args = vec![
        "--base".to_string(),
        app.base.clone(),
        "--slug".into(),
        "save-errors".into(),
    ];
    for (code, err) in [
        (
            500,
            tracecoder::error::AppError::Internal(anyhow::anyhow!("disk on fire")),
        ),
        (
            503,
            tracecoder::error::AppError::Unavailable(anyhow::anyhow!("database away")),
        ),
    ] {
        let (fragment, message) = error_fragment(err);
        let path = tmp.path().join(format!("{code}.html"));
        std::fs::write(&path, fragment).expect("fragment file");
        args.extend([
            format!("--fragment-{code}"),
            path.display().to_string(),
            format!("--message-{code}"),
            message,
        ]);
    }
    let (report, ok, stderr) = run_script("save-errors.mjs", args).await;
    assert_passed(&report, ok, &stderr);

    // None of the failed attempts stored anything; the real save stored what was typed.
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT a.id, t.trace_id, a.verdict, a.first_failure_note
         FROM annotations a JOIN users u ON u.id = a.user_id JOIN traces t ON t.id = a.trace_pk
         WHERE u.name = 'Sam Saver'",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("annotations");
    let mut saved = Vec::new();
    for (id, trace, verdict, note) in rows {
        let codes: Vec<String> = sqlx::query_scalar(
            "SELECT code FROM annotation_codes WHERE annotation_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(app.db.reader())
        .await
        .expect("codes");
        saved.push((trace, verdict, note, codes.join(", ")));
    }
    assert_eq!(
        saved,
        vec![(
            report["saved_trace"]
                .as_str()
                .expect("saved trace")
                .to_string(),
            "fail".to_string(),
            report["note"].as_str().expect("note").to_string(),
            report["codes"].as_str().expect("codes").to_string(),
        )]
    );
}

/// The workspace's dataset, BotDojo-shaped: a conversation whose turns have three tool calls
/// each (the second with a long Markdown answer holding hostile parts), an Arabic turn, and
/// four plain turns for the keys.
fn workspace_csv(dir: &Path) -> PathBuf {
    let steps = |turn: u32| {
        let big = "x".repeat(600);
        serde_json::json!({"steps": [
            {"type": "thinking", "stepLabel": "Thinking", "content": "Let me look the order up."},
            {"type": "tool", "stepLabel": "lookup_order", "arguments": {"order": "A-1", "pad": big},
             "content": format!("{{\"status\": \"shipped\", \"turn\": {turn}, \"pad\": \"{big}\"}}"),
             "startTime": 1000, "endTime": 1120},
            {"type": "tool", "stepLabel": "refund_policy", "arguments": {"region": "EU"},
             "content": "timeout", "status": "error", "startTime": 2000, "endTime": 2950},
            {"type": "tool", "stepLabel": "send_email", "arguments": {"to": "ana@example.com", "body": big},
             "content": "{\"sent\": true}", "startTime": 3000, "endTime": 3040},
            {"type": "output", "stepLabel": "Output", "content": "done"},
        ]})
        .to_string()
    };
    let long_answer = {
        let mut s = String::from(
            "## Your refund\n\nYou **refund** is *approved*:\n\n| item | price |\n|:--|--:|\n| tea | 3 |\n\n\
             See [the policy](https://shop.example/refunds) or [this](javascript:window.__owned=1).\n\n\
             <img src=x onerror=\"window.__owned=1\"> ![pixel](https://tracker.example/p.png)\n\n",
        );
        for i in 0..60 {
            s.push_str(&format!(
                "{i}. Step {i} of the refund: the money goes back to the card you paid with.\n"
            ));
        }
        s
    };
    let rows: Vec<[String; 7]> = vec![
        [
            "o-1".into(),
            "order".into(),
            "1".into(),
            "Where is my order A-1?".into(),
            "It **shipped** yesterday.".into(),
            steps(1),
            "https://crm.example/c/1".into(),
        ],
        [
            "o-2".into(),
            "order".into(),
            "2".into(),
            "Can I get a refund instead? I waited two weeks.".into(),
            long_answer,
            steps(2),
            String::new(),
        ],
        [
            "ar-1".into(),
            "arabic".into(),
            "1".into(),
            "مرحبا، أين طلبي؟".into(),
            "طلبك في الطريق وسيصل غدا.".into(),
            String::new(),
            String::new(),
        ],
    ];
    let mut out = String::from(
        "id,Flow Session,Turn_Number,body.user_message,response.text_output,AI Message,CRM link\n",
    );
    let q = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
    for r in rows.iter() {
        out.push_str(&r.iter().map(|v| q(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    for t in 1..=4 {
        out.push_str(&format!(
            "p-{t},plain,{t},Plain question {t},Plain answer {t},,\n"
        ));
    }
    let path = dir.join("workspace.csv");
    std::fs::write(&path, out).expect("write workspace csv");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_annotators_workspace_in_the_browser() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let csv = workspace_csv(tmp.path());
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(
            &admin,
            "Workspace",
            "workspace.csv",
            std::fs::read(&csv).expect("csv"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let shots = screenshot_dir(tmp.path());
    let (report, ok, stderr) = run_script(
        "workspace.mjs",
        vec![
            "--base".into(),
            app.base.clone(),
            "--slug".into(),
            "workspace".into(),
            "--shots".into(),
            shots.display().to_string(),
        ],
    )
    .await;
    eprintln!(
        "first screen: {}\naxe: {}",
        report["first_screen"], report["axe"]
    );
    assert_passed(&report, ok, &stderr);

    // What the browser did is what the database holds.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT t.trace_id, a.verdict, a.version FROM annotations a
         JOIN traces t ON t.id = a.trace_pk JOIN users u ON u.id = a.user_id
         WHERE u.name = 'Wanda Workspace' ORDER BY t.sort_key",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("annotations");
    assert_eq!(
        rows,
        vec![
            // Fail, replaced by a Pass (confirmed), then undone: the Fail is back as v3.
            ("o-1".to_string(), "fail".to_string(), 3),
            ("p-1".to_string(), "pass".to_string(), 1),
            ("p-2".to_string(), "pass".to_string(), 1),
            ("p-3".to_string(), "pass".to_string(), 1),
        ]
    );
    let skipped: Vec<String> = sqlx::query_scalar(
        "SELECT t.trace_id FROM skips s JOIN traces t ON t.id = s.trace_pk
         JOIN users u ON u.id = s.user_id WHERE u.name = 'Wanda Workspace'",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("skips");
    assert_eq!(skipped, ["o-2"]);
    for name in [
        "workspace-light",
        "workspace-dark",
        "workspace-phone",
        "confirm-replace",
    ] {
        let png = shots.join(format!("{name}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} ({size} bytes)", png.display());
    }
}

#[tokio::test]
async fn open_code_suggestions_are_offered_and_taken_by_keyboard() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Suggest", "suggest.csv", simple_csv(3, 2))
        .await;
    assert_eq!(status, 200, "{page}");
    let res = admin
        .post(app.url("/d/suggest/codebook/modes"))
        .form(&[
            ("name", "Tool misuse"),
            ("description", "The wrong tool, or none."),
        ])
        .send()
        .await
        .expect("create mode");
    assert_eq!(res.status(), 303);
    // A colleague's code, to be offered as "most used".
    let ann = app.login("Ann", false).await;
    let fields = [
        ("verdict", "fail"),
        ("note", "n"),
        ("codes", "wrong tool"),
        ("version", "0"),
    ];
    let res = app.annotate(&ann, "suggest", "c2-t2", &fields, false).await;
    assert_eq!(res.status(), 303);

    let (report, ok, stderr) = run_script(
        "codes.mjs",
        vec![
            "--base".into(),
            app.base.clone(),
            "--slug".into(),
            "suggest".into(),
        ],
    )
    .await;
    assert_passed(&report, ok, &stderr);
    let trace = report["saved_on"].as_str().expect("saved_on");
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT c.code FROM annotation_codes c JOIN annotations a ON a.id = c.annotation_id
         JOIN traces t ON t.id = a.trace_pk JOIN users u ON u.id = a.user_id
         WHERE u.name = 'Kim Keys' AND t.trace_id = $1 ORDER BY c.position",
    )
    .bind(trace)
    .fetch_all(app.db.reader())
    .await
    .expect("codes");
    assert_eq!(codes, vec!["wrong tool", "Tool misuse"]);
}
