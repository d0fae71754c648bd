//! Acceptance tests for CSV import through the admin form and the CLI: files, trace ids,
//! dataset names, and what becomes of an import whose process stops (SIGTERM, kill -9).

use crate::helpers::*;

const BOTDOJO_HEADER: &str = "id,Flow Session,Turn_Number,Total_Turns_in_Session,body.user_message,response.text_output,AI Message,Model";

/// A BotDojo export with a BOM, CRLF line ends, quoted newlines, emoji and hostile markup.
fn hostile_botdojo() -> Vec<u8> {
    let ai = r#"{""steps"":[{""type"":""thinking"",""stepLabel"":""Thinking"",""content"":""hmm""},{""type"":""tool"",""stepLabel"":""lookup_order"",""arguments"":{""order"":""<b>A1</b>""},""content"":""{\""status\"":\""shipped\""}"",""startTime"":1000,""endTime"":1450},{""type"":""output"",""stepLabel"":""Output"",""content"":""done""}]}"#;
    let rows = [
        // second conversation appears first in the file: it must come first in order
        format!("z-2,sess-B,2,2,\"And <script>alert(1)</script> now?\",\"Sure 😀\r\nline two\",\"{ai}\",gpt"),
        format!("z-1,sess-B,1,2,\"hi <img src=x onerror=alert(2)>\",\"hello\",\"{ai}\",gpt"),
        "a-1,sess-A,1,1,\"multi\nline \"\"quoted\"\" message\",\"<a href=javascript:alert(3)>click</a>\",,claude".to_string(),
    ];
    let mut s = String::from("\u{feff}");
    s.push_str(BOTDOJO_HEADER);
    s.push_str("\r\n");
    for r in rows {
        s.push_str(&r);
        s.push_str("\r\n");
    }
    s.into_bytes()
}

#[tokio::test]
async fn botdojo_file_imports_in_order_with_tool_cards_and_escaped_markup() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Hostile", "hostile.csv", hostile_botdojo())
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Imported 3 traces"), "{page}");

    // Conversations in file order (sess-B first), turns by turn_number.
    let (_, list) = app.get_text(&admin, "/d/hostile/traces").await;
    let b1 = list.find("data-trace-id=\"z-1\"").expect("z-1 listed");
    let b2 = list.find("data-trace-id=\"z-2\"").expect("z-2 listed");
    let a1 = list.find("data-trace-id=\"a-1\"").expect("a-1 listed");
    assert!(
        b1 < b2 && b2 < a1,
        "order is sess-B turn 1, turn 2, then sess-A"
    );

    let (status, trace) = app.get_text(&admin, "/d/hostile/t/z-2").await;
    assert_eq!(status, 200);
    // Earlier turn collapsed above, tool-call card, metadata, total turns.
    assert!(
        trace.contains("Earlier in this conversation (1 turn)"),
        "earlier turn shown"
    );
    assert!(trace.contains("lookup_order"), "tool card");
    assert!(trace.contains("450 ms"), "tool duration");
    assert!(trace.contains("turn 2 of 2"));
    assert!(
        Page::parse(&trace)
            .metadata()
            .contains(&("Model".into(), "gpt".into())),
        "metadata in side panel"
    );
    assert!(
        trace.contains("Sure 😀\r\nline two") || trace.contains("Sure 😀\nline two"),
        "emoji and quoted newline kept"
    );
    // The markup is shown as text, never as markup.
    for page in [&trace, &list] {
        assert!(!page.contains("<script>alert"), "no unescaped script");
        assert!(!page.contains("<img src=x"), "no unescaped img");
        assert!(!page.contains("<a href=javascript"), "no unescaped link");
    }
    assert!(trace.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    let (_, a1_page) = app.get_text(&admin, "/d/hostile/t/a-1").await;
    assert!(
        a1_page.contains("multi\nline &#34;quoted&#34; message"),
        "quoted newline and quotes kept"
    );
    assert!(!a1_page.contains("<a href=javascript"));
    assert!(
        !a1_page.contains("tool-card"),
        "no AI Message, no tool cards"
    );
}

async fn assert_refused(app: &TestApp, admin: &reqwest::Client, file: &[u8], expect: &[&str]) {
    let (status, page) = app
        .upload(admin, "Broken", "broken.csv", file.to_vec())
        .await;
    assert_eq!(status, 422, "refused with 422: {page}");
    for e in expect {
        assert!(page.contains(e), "page mentions {e:?}: {page}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM traces").await,
        0,
        "nothing imported"
    );
    let (_, dash) = app.get_text(admin, "/").await;
    assert!(
        !dash.contains("Broken"),
        "no empty dataset on the dashboard"
    );
}

#[tokio::test]
async fn invalid_files_import_nothing_and_name_the_line_and_problem() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let ok_rows =
        "trace_id,flow_session,turn_number,user_message,ai_response\nt1,s1,1,a,b\nt2,s1,2,a,b\n";

    // Missing required column.
    assert_refused(
        &app,
        &admin,
        b"trace_id,flow_session,user_message\nt1,s1,hi\n",
        &["Missing required column", "turn_number", "ai_response"],
    )
    .await;
    // Non-numeric turn_number on line 3 (after valid rows: none of them may stay).
    let bad_turn = format!("{ok_rows}t3,s1,three,a,b\n");
    assert_refused(
        &app,
        &admin,
        bad_turn.as_bytes(),
        &[
            "<td>4</td>",
            "<td>turn_number</td>",
            "&#34;three&#34; is not a whole number",
        ],
    )
    .await;
    // Unterminated quote.
    let unterminated = format!("{ok_rows}t3,s1,3,\"never closed,b\nt4,s1,4,a,b\n");
    assert_refused(
        &app,
        &admin,
        unterminated.as_bytes(),
        &["<td>4</td>", "never closed"],
    )
    .await;
    // Invalid UTF-8.
    let mut bad_utf8 = ok_rows.as_bytes().to_vec();
    bad_utf8.extend_from_slice(b"t3,s1,3,caf\xe9,b\n");
    assert_refused(
        &app,
        &admin,
        &bad_utf8,
        &["<td>4</td>", "<td>user_message</td>", "UTF-8"],
    )
    .await;
    // Empty file and header-only file.
    assert_refused(&app, &admin, b"", &["The file is empty"]).await;
    assert_refused(
        &app,
        &admin,
        b"trace_id,flow_session,turn_number,user_message,ai_response\r\n",
        &["header line but no rows"],
    )
    .await;
}

#[tokio::test]
async fn many_bad_rows_report_the_first_hundred_and_count_the_rest() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let mut csv = String::from("flow_session,turn_number,user_message,ai_response\n");
    for i in 0..150 {
        csv.push_str(&format!("s{i},x{i},a,b\n"));
    }
    let (status, page) = app
        .upload(&admin, "Many", "many.csv", csv.into_bytes())
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("150 rows have problems"), "{page}");
    assert!(page.contains("first 100 of 150"), "{page}");
    assert_eq!(page.matches("is not a whole number").count(), 100);
}

#[tokio::test]
async fn oversized_upload_gets_a_clear_413() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 64 * 1024).await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Big", "big.csv", simple_csv(2000, 3))
        .await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("larger than the 1 MB upload limit") || page.contains("upload limit"),
        "{page}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, 0);
}

#[tokio::test]
async fn reimporting_the_same_file_adds_nothing_and_counts_duplicates() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let csv = simple_csv(3, 4);
    let (status, page) = app.upload(&admin, "Same", "same.csv", csv.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Imported 12 traces"), "{page}");
    let (status, page) = app.upload(&admin, "Same", "same.csv", csv).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Nothing new: all 12 rows were already in the dataset"),
        "{page}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, 12);
    assert_eq!(
        app.count("SELECT trace_count FROM datasets WHERE slug = 'same'")
            .await,
        12
    );
}

#[tokio::test]
async fn rows_repeated_within_a_file_are_skipped_and_counted() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let csv = "trace_id,flow_session,turn_number,user_message,ai_response\nt1,s,1,a,b\nt1,s,1,a,b\nt2,s,2,a,b\n";
    let (status, page) = app
        .upload(&admin, "Rep", "rep.csv", csv.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Imported 2 traces; skipped 1 duplicate row"),
        "{page}"
    );
}

#[tokio::test]
async fn files_without_trace_ids_derive_them_and_total_turns() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let csv =
        "flow_session,turn_number,user_message,ai_response\nconv,1,a,b\nconv,2,c,d\nconv,3,e,f\n";
    let (status, _) = app
        .upload(&admin, "Derived", "d.csv", csv.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200);
    let (status, page) = app.get_text(&admin, "/d/derived/t/conv_2").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("turn 2 of 3"),
        "total turns derived from the conversation"
    );
}

#[tokio::test]
async fn an_annotator_cannot_import() {
    let app = spawn_app().await;
    let annotator = app.login("Ann", false).await;
    let (status, page) = app.upload(&annotator, "X", "x.csv", simple_csv(1, 1)).await;
    assert_eq!(status, 403, "{page}");
    let (status, _) = app.get_text(&annotator, "/admin/import").await;
    assert_eq!(status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, 0);
}

fn cli() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
}

#[tokio::test]
async fn cli_import_reports_refusals_with_a_non_zero_exit() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "trace_id,flow_session,turn_number,user_message,ai_response\nt1,s,1,a,b\nt2,s,two,a,b\n",
    )
    .unwrap();
    let out = cli()
        .args([
            "import",
            bad.to_str().unwrap(),
            "--dataset",
            "Cli",
            "--quiet",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "non-zero exit");
    assert!(
        stderr.contains("line 3, column turn_number: \"two\" is not a whole number"),
        "{stderr}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, 0);

    let good = dir.path().join("good.csv");
    std::fs::write(&good, simple_csv(2, 2)).unwrap();
    let out = cli()
        .args([
            "import",
            good.to_str().unwrap(),
            "--dataset",
            "Cli",
            "--quiet",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Imported 4 traces"));
    let admin = app.login("Admin", true).await;
    let (status, _) = app.get_text(&admin, "/d/cli/t/c1-t2").await;
    assert_eq!(status, 200, "imported traces visible to the running server");

    let missing = cli()
        .args([
            "import",
            "/nonexistent.csv",
            "--dataset",
            "X",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

/// Runs the CLI on the app's database and returns (success, stdout, stderr).
fn run_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = cli()
        .args(args)
        .args(["--database-url", &app.database_url])
        .env_remove("IMPORT_PAUSE_MS")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn trace_ids_a_browser_cannot_open_are_refused_with_their_line() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    // `.` and `..` are path steps to a browser (and `%2e` is `.`); control characters are
    // invisible; a NUL cannot be stored by Postgres. Each is named with its line.
    let csv = "trace_id,flow_session,turn_number,user_message,ai_response,extra\n\
               ok-1,s,1,a,b,\n\
               .,s,2,a,b,\n\
               ..,s,3,a,b,\n\
               \"tab\there\",s,4,a,b,\n\
               ok-5,s,5,a,b,\"x\0y\"\n";
    let (status, page) = app
        .upload(&admin, "Dots", "dots.csv", csv.as_bytes().to_vec())
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("4 rows have problems"), "{page}");
    for (line, column, reason) in [
        (3, "trace_id", "&#34;.&#34; cannot be a trace id"),
        (4, "trace_id", "&#34;..&#34; cannot be a trace id"),
        (
            5,
            "trace_id",
            "the trace id contains the control character U+0009",
        ),
        (6, "extra", "the text contains a NUL character"),
    ] {
        let row = format!("<tr><td>{line}</td><td>{column}</td><td>{reason}");
        assert!(page.contains(&row), "line {line} named: {page}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dots.csv");
    std::fs::write(&file, csv).unwrap();
    let (ok, _, stderr) = run_cli(
        &app,
        &[
            "import",
            file.to_str().unwrap(),
            "--dataset",
            "Dots",
            "--quiet",
        ],
    );
    assert!(!ok, "non-zero exit");
    assert!(
        stderr.contains("line 4, column trace_id: \"..\" cannot be a trace id"),
        "{stderr}"
    );
    assert!(stderr.contains("line 6, column extra:"), "{stderr}");
    assert_eq!(app.count("SELECT COUNT(*) FROM traces").await, 0);

    // Ids that only look like dot segments are ordinary ids, and their pages open.
    let fine = ["...", ".hidden", "%2e", "%2E%2e", "a/../b", "back\\slash"];
    let mut csv = String::from("trace_id,flow_session,turn_number,user_message,ai_response\n");
    for (i, id) in fine.iter().enumerate() {
        csv.push_str(&format!("\"{id}\",s,{},question {i},answer\n", i + 1));
    }
    let (status, page) = app
        .upload(&admin, "Dots", "fine.csv", csv.into_bytes())
        .await;
    assert_eq!(status, 200, "{page}");
    for (i, id) in fine.iter().enumerate() {
        let (status, page) = app
            .get_text(&admin, &format!("/d/dots/t/{}", encode(id)))
            .await;
        assert_eq!(status, 200, "{id} opens");
        assert_eq!(shown_trace(&page).as_deref(), Some(*id));
        assert!(page.contains(&format!("question {i}")));
    }
}

#[tokio::test]
async fn dataset_names_longer_than_the_limit_are_refused_in_the_form_and_the_cli() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let long = "N".repeat(101);
    let (status, page) = app
        .upload(&admin, &long, "long.csv", simple_csv(1, 1))
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("The dataset name is 101 characters long; the limit is 100."),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.csv");
    std::fs::write(&file, simple_csv(1, 1)).unwrap();
    let (ok, _, stderr) = run_cli(
        &app,
        &[
            "import",
            file.to_str().unwrap(),
            "--dataset",
            &long,
            "--quiet",
        ],
    );
    assert!(!ok, "non-zero exit");
    assert!(stderr.contains("101 characters long"), "{stderr}");
    assert_eq!(app.count("SELECT COUNT(*) FROM datasets").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);

    // A control character is refused too; exactly 100 characters is fine.
    let (status, page) = app
        .upload(&admin, "Bad\u{1b}name", "x.csv", simple_csv(1, 1))
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("control character"), "{page}");
    let (status, page) = app
        .upload(&admin, &long[..100], "ok.csv", simple_csv(1, 1))
        .await;
    assert_eq!(status, 200, "{page}");
}

/// The datasets as (slug, name, traces), by slug.
async fn datasets(app: &TestApp) -> Vec<(String, String, i64)> {
    sqlx::query_as("SELECT slug, name, trace_count FROM datasets ORDER BY slug")
        .fetch_all(app.db.reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn different_names_never_share_a_slug_and_the_cli_finds_datasets_by_name_or_slug() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let one = "trace_id,flow_session,turn_number,user_message,ai_response\nbang,s,1,from Foo!,a\n";
    let two = "trace_id,flow_session,turn_number,user_message,ai_response\nplain,s,1,from foo,a\n";
    let (status, page) = app
        .upload(&admin, "Foo!", "one.csv", one.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = app
        .upload(&admin, "foo", "two.csv", two.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    // The same name in another case and spacing is the same dataset.
    let (status, page) = app
        .upload(&admin, "  FOO! ", "again.csv", one.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Nothing new"), "{page}");
    assert_eq!(
        datasets(&app).await,
        vec![
            ("foo".to_string(), "Foo!".to_string(), 1),
            ("foo-2".to_string(), "foo".to_string(), 1)
        ]
    );
    let (status, page) = app.get_text(&admin, "/d/foo-2/t/plain").await;
    assert_eq!(status, 200);
    assert!(page.contains("from foo"));
    let (status, _) = app.get_text(&admin, "/d/foo/t/plain").await;
    assert_eq!(status, 404, "the other dataset does not have it");
    let (_, dash) = app.get_text(&admin, "/").await;
    assert!(
        dash.contains("/d/foo/") && dash.contains("/d/foo-2/"),
        "{dash}"
    );

    // The CLI imports by name, like the form: "foo" is the second dataset.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.csv");
    std::fs::write(
        &file,
        "trace_id,flow_session,turn_number,user_message,ai_response\nthird,s,2,cli,a\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run_cli(
        &app,
        &[
            "import",
            file.to_str().unwrap(),
            "--dataset",
            "foo",
            "--quiet",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Dataset: foo (/d/foo-2)"), "{stdout}");
    // A new name whose slug is taken gets the next one, and the CLI says where it went.
    let (ok, stdout, stderr) = run_cli(
        &app,
        &[
            "import",
            file.to_str().unwrap(),
            "--dataset",
            "FOO?",
            "--quiet",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("New dataset \"FOO?\" at /d/foo-3"),
        "{stderr}"
    );
    assert!(stdout.contains("(/d/foo-3)"), "{stdout}");

    // Export looks a dataset up by its name first, then by its slug.
    let exported = |dataset: &str| {
        let (ok, stdout, stderr) = run_cli(&app, &["export", "--dataset", dataset, "--all-traces"]);
        assert!(ok, "{stderr}");
        let mut ids: Vec<String> = csv::Reader::from_reader(stdout.as_bytes())
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(exported("Foo!"), ["bang"]);
    assert_eq!(exported("foo!"), ["bang"], "names match in any case");
    assert_eq!(
        exported("foo"),
        ["plain", "third"],
        "a name wins over a slug"
    );
    assert_eq!(exported("foo-2"), ["plain", "third"], "by slug");
    assert_eq!(
        exported("FOO-2"),
        ["plain", "third"],
        "by slug, in any case"
    );
    assert_eq!(exported("foo-3"), ["third"]);
    let (ok, _, stderr) = run_cli(&app, &["export", "--dataset", "foo-4"]);
    assert!(!ok && stderr.contains("no dataset"), "{stderr}");

    // A dataset from before name keys existed is still found by its name.
    sqlx::query("UPDATE datasets SET name_key = NULL WHERE slug = 'foo'")
        .execute(app.db.writer())
        .await
        .unwrap();
    let (status, page) = app
        .upload(&admin, "foo!", "again.csv", one.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Nothing new"), "{page}");
    assert_eq!(app.count("SELECT COUNT(*) FROM datasets").await, 3);
}

/// (state, message) of every import, and how many traces and conversations are left.
async fn import_rows(db: &tracecoder::db::Db) -> (Vec<(String, String)>, i64, i64) {
    let imports = sqlx::query_as("SELECT state, message FROM imports ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap();
    let traces = sqlx::query_scalar("SELECT COUNT(*) FROM traces")
        .fetch_one(db.reader())
        .await
        .unwrap();
    let conversations = sqlx::query_scalar("SELECT COUNT(*) FROM conversations")
        .fetch_one(db.reader())
        .await
        .unwrap();
    (imports, traces, conversations)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn an_import_left_running_by_a_dead_process_is_reaped_when_the_next_server_starts() {
    // A process registered an import, wrote some of it, and died: no server was running
    // meanwhile, so only the next start can notice.
    let (database_url, dir) = fresh_database().await;
    let db = tracecoder::db::Db::connect(&database_url, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let pending = tracecoder::import::register(&db, "Ghost", "ghost.csv", None, 0)
        .await
        .unwrap();
    for sql in [
        format!(
            "INSERT INTO conversations (dataset_id, flow_session, position, import_id)
             VALUES ({}, 's', 1, {})",
            pending.dataset_id, pending.import_id
        ),
        format!(
            "INSERT INTO traces (dataset_id, import_id, trace_id, sort_key, flow_session,
                 turn_number, user_message, ai_response)
             VALUES ({}, {}, 'g1', 1048577, 's', 1, 'q', 'a')",
            pending.dataset_id, pending.import_id
        ),
        // Its last heartbeat, a minute ago.
        "UPDATE imports SET heartbeat_at = heartbeat_at - 60".to_string(),
    ] {
        sqlx::query(&sql).execute(db.writer()).await.unwrap();
    }
    db.close().await;

    let app = spawn_app_on(database_url, dir, |_| {}).await;
    let (imports, traces, conversations) = import_rows(&app.db).await;
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0].0, "failed", "reaped before the server serves");
    assert!(imports[0].1.contains("interrupted"), "{:?}", imports[0]);
    assert_eq!((traces, conversations), (0, 0), "its rows are gone");
    if backend() == "sqlite" {
        let indexed = app
            .count("SELECT COUNT(*) FROM traces_fts WHERE traces_fts MATCH 'q'")
            .await;
        assert_eq!(indexed, 0, "and their words left the search index");
    }
    // The dataset is free for a new import.
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Ghost", "again.csv", simple_csv(1, 2))
        .await;
    assert_eq!(status, 200, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_import_of_another_live_instance_is_never_reaped() {
    // Instance A runs a paced import (2 batches, each followed by a 4 s pause) while
    // instance B starts on the same database. Both take an import for dead after 2 s without
    // a heartbeat (3 s at most, counting in whole seconds): every pause outlasts that, so only
    // the import's own heartbeat, not its progress, keeps it alive.
    let stale = |c: &mut tracecoder::Config| {
        c.import_stale_after = std::time::Duration::from_secs(2);
    };
    let a = spawn_app_with(|c| {
        stale(c);
        c.import_pause = std::time::Duration::from_millis(4000);
    })
    .await;
    let admin = a.login("Admin", true).await;
    let part = reqwest::multipart::Part::bytes(simple_csv(1000, 4))
        .file_name("slow.csv")
        .mime_str("text/csv")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("dataset", "Slow")
        .part("file", part);
    let res = admin
        .post(a.url("/admin/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let running = || a.count("SELECT COUNT(*) FROM imports WHERE state = 'running'");
    assert_eq!(
        running().await,
        1,
        "still running after the upload answered"
    );

    let b = spawn_app_on(a.database_url.clone(), None, stale).await;
    assert_eq!(
        running().await,
        1,
        "B's start-up reap left A's import alone"
    );

    // Wait for the end (bounded: the test fails rather than hangs).
    for _ in 0..600 {
        if running().await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, page) = a.get_text(&admin, &location).await;
    assert!(page.contains("Imported 4000 traces"), "{page}");
    assert_eq!(b.count("SELECT COUNT(*) FROM traces").await, 4_000);
}

/// A paced CLI import (24,000 rows, 0.5 s after each 2,000) into `dataset`, returned once it
/// has written rows (bounded: the test fails rather than hangs), with the file's directory.
async fn slow_cli_import(
    db: &tracecoder::db::Db,
    database_url: &str,
    dataset: &str,
) -> (std::process::Child, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.csv");
    std::fs::write(&file, simple_csv(6000, 4)).unwrap();
    let mut child = cli()
        .args([
            "import",
            file.to_str().unwrap(),
            "--dataset",
            dataset,
            "--quiet",
        ])
        .args(["--database-url", database_url])
        .env("IMPORT_PAUSE_MS", "500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        let written: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(rows_inserted), 0) FROM imports WHERE state = 'running'",
        )
        .fetch_one(db.reader())
        .await
        .unwrap();
        if written > 0 {
            return (child, tmp);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the CLI import never got under way");
}

#[tokio::test]
async fn a_killed_cli_import_is_cleaned_up_when_the_next_server_starts() {
    let (database_url, dir) = fresh_database().await;
    let db = tracecoder::db::Db::connect(&database_url, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let (mut child, _file) = slow_cli_import(&db, &database_url, "Killed").await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let (imports, traces, _) = import_rows(&db).await;
    assert_eq!(imports[0].0, "running", "the dead import is left running");
    assert!(traces > 0, "with its rows");
    // Its heartbeat has stopped: wait until it is older than the server's threshold.
    let heartbeat: i64 = sqlx::query_scalar("SELECT heartbeat_at FROM imports")
        .fetch_one(db.reader())
        .await
        .unwrap();
    while unix_now() <= heartbeat + 4 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    db.close().await;

    let app = spawn_app_on(database_url, dir, |c| {
        c.import_stale_after = std::time::Duration::from_secs(3);
    })
    .await;
    let (imports, traces, conversations) = import_rows(&app.db).await;
    assert_eq!(imports[0].0, "failed", "reaped at start: {imports:?}");
    assert_eq!((traces, conversations), (0, 0), "nothing of it is left");
}

#[tokio::test]
async fn sigterm_stops_a_cli_import_cleanly_with_a_non_zero_exit() {
    let app = spawn_app().await;
    let (child, _file) = slow_cli_import(&app.db, &app.database_url, "Stopped").await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "non-zero exit: {stderr}");
    assert!(stderr.contains("nothing from it was kept"), "{stderr}");
    let (imports, traces, conversations) = import_rows(&app.db).await;
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0].0, "failed", "{imports:?}");
    assert!(imports[0].1.contains("shut down"), "{imports:?}");
    assert_eq!((traces, conversations), (0, 0));
}
