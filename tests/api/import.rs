//! Acceptance tests for CSV import through the admin form and the CLI.

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
        trace.contains("<dt>Model</dt><dd>gpt</dd>"),
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
