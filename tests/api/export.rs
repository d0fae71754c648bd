//! Acceptance tests for export: columns, one row per trace × annotator, per-user scoping,
//! hostile content byte for byte, and the export → import round trip.

use crate::helpers::*;

const HEADER: &str = "id,Flow Session,Turn_Number,body.user_message,response.text_output,Channel";

fn hostile_csv() -> Vec<u8> {
    let mut s = String::from(HEADER);
    s.push('\n');
    s.push_str("x1,s1,1,\"He said \"\"hi, there\"\"\nand left 😀\",\"a,b,c\r\nd\",web\n");
    s.push_str("x2,s1,2,\"<script>alert(1)</script>\",\"  padded  \",ios\n");
    s.push_str("x3,s2,1,plain,plain,\n");
    s.into_bytes()
}

async fn setup() -> (TestApp, reqwest::Client, reqwest::Client, reqwest::Client) {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app.upload(&admin, "Exp", "exp.csv", hostile_csv()).await;
    assert_eq!(status, 200, "{page}");
    let ann = app.login("Ann", false).await;
    let bob = app.login("Bob", false).await;
    app.annotate(
        &ann,
        "exp",
        "x1",
        &[
            ("verdict", "fail"),
            ("note", "quote \"this\", please\nline 2"),
            ("codes", "tone, facts"),
            ("comments", "c,1"),
            ("version", "0"),
        ],
        true,
    )
    .await;
    app.annotate(
        &ann,
        "exp",
        "x2",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    app.annotate(
        &bob,
        "exp",
        "x1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    (app, admin, ann, bob)
}

fn read_csv(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let headers = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (headers, rows)
}

#[tokio::test]
async fn csv_export_has_original_columns_then_annotation_columns_one_row_per_annotator() {
    let (app, admin, ann, _bob) = setup().await;
    let res = app.get(&admin, "/d/exp/export.csv").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("exp-annotations.csv")
    );
    let (headers, rows) = read_csv(&res.text().await.unwrap());
    let expected: Vec<&str> = HEADER
        .split(',')
        .chain([
            "annotator_email",
            "annotator_name",
            "holistic_pass_fail",
            "first_failure_note",
            "open_codes",
            "failure_modes",
            "comments_hypotheses",
            "annotation_version",
            "annotation_created_at",
            "annotation_updated_at",
        ])
        .collect();
    assert_eq!(headers, expected);
    assert_eq!(rows.len(), 3, "x1 × Ann, x1 × Bob, x2 × Ann");
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let ann_x1 = rows
        .iter()
        .find(|r| r[0] == "x1" && r[col("annotator_name")] == "Ann")
        .unwrap();
    // Hostile content byte for byte.
    assert_eq!(
        ann_x1[col("body.user_message")],
        "He said \"hi, there\"\nand left 😀"
    );
    assert_eq!(ann_x1[col("response.text_output")], "a,b,c\r\nd");
    assert_eq!(ann_x1[col("holistic_pass_fail")], "Fail");
    assert_eq!(
        ann_x1[col("first_failure_note")],
        "quote \"this\", please\nline 2"
    );
    assert_eq!(ann_x1[col("open_codes")], "tone, facts");
    assert_eq!(ann_x1[col("comments_hypotheses")], "c,1");
    assert_eq!(ann_x1[col("annotation_version")], "1");
    assert_eq!(ann_x1[col("annotator_email")], "ann@localhost");
    let created = &ann_x1[col("annotation_created_at")];
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{created}"
    );
    assert!(created.ends_with('Z'), "UTC");
    let x2 = rows.iter().find(|r| r[0] == "x2").unwrap();
    assert_eq!(x2[col("body.user_message")], "<script>alert(1)</script>");
    assert_eq!(x2[col("response.text_output")], "  padded  ", "spaces kept");
    assert_eq!(x2[col("Channel")], "ios");

    // The annotator exports only their own rows.
    let (_, rows) = read_csv(
        &app.get(&ann, "/d/exp/export.csv")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r[col("annotator_name")] == "Ann"));
}

#[tokio::test]
async fn an_option_includes_traces_nobody_annotated() {
    let (app, admin, _ann, bob) = setup().await;
    let (headers, rows) = read_csv(
        &app.get(&admin, "/d/exp/export.csv?all=1")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(rows.len(), 4);
    let x3 = rows.iter().find(|r| r[0] == "x3").unwrap();
    let verdict = headers
        .iter()
        .position(|h| h == "holistic_pass_fail")
        .unwrap();
    assert_eq!(x3[verdict], "");
    // For an annotator, "all" means every trace with their annotation where they have one.
    let (_, rows) = read_csv(
        &app.get(&bob, "/d/exp/export.csv?all=1")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(rows.len(), 3, "x1 with Bob's verdict, x2 and x3 without");
}

#[tokio::test]
async fn jsonl_export_has_the_same_fields_in_order() {
    let (app, admin, _ann, _bob) = setup().await;
    let res = app.get(&admin, "/d/exp/export.jsonl").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        lines[0].starts_with("{\"id\":\"x1\",\"Flow Session\":\"s1\""),
        "original column order: {}",
        lines[0]
    );
    assert_eq!(
        first["body.user_message"],
        "He said \"hi, there\"\nand left 😀"
    );
    assert!(first["annotation_version"].is_number());
    let x2 = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == "x2")
        .unwrap();
    assert_eq!(x2["holistic_pass_fail"], "Pass");
    assert_eq!(x2["first_failure_note"], "");
}

#[tokio::test]
async fn export_then_import_gives_back_the_same_traces() {
    let (app, admin, _ann, _bob) = setup().await;
    let exported = app
        .get(&admin, "/d/exp/export.csv?all=1")
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let (status, page) = app.upload(&admin, "Exp copy", "export.csv", exported).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Imported 3 traces; skipped 1 duplicate row"),
        "{page}"
    );
    let rows = |slug: &'static str| {
        let db = app.db.clone();
        async move {
            let r: Vec<(String, String, i64, String, String, i64)> = sqlx::query_as(
                "SELECT t.trace_id, t.flow_session, t.turn_number, t.user_message, t.ai_response, t.sort_key
                 FROM traces t JOIN datasets d ON d.id = t.dataset_id WHERE d.slug = $1 ORDER BY t.sort_key",
            )
            .bind(slug)
            .fetch_all(db.reader())
            .await
            .unwrap();
            r.into_iter()
                .map(|(a, b, c, d, e, _)| (a, b, c, d, e))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        rows("exp").await,
        rows("exp-copy").await,
        "same traces, same order, same text"
    );
    // The annotation columns came along as metadata, the original metadata too.
    let (_, page) = app.get_text(&admin, "/d/exp-copy/t/x2").await;
    let metadata = Page::parse(&page).metadata();
    assert!(
        metadata.contains(&("Channel".into(), "ios".into())),
        "{metadata:?}"
    );
    assert!(
        metadata.contains(&("holistic_pass_fail".into(), "Pass".into())),
        "{metadata:?}"
    );
}

#[tokio::test]
async fn cli_exports_to_a_file_in_both_formats() {
    let (app, _admin, _ann, _bob) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    for (format, ext) in [("csv", "csv"), ("jsonl", "jsonl")] {
        let out = dir.path().join(format!("out.{ext}"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
            .args([
                "export",
                "--dataset",
                "Exp",
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
                "--database-url",
                &app.database_url,
            ])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let http = app
            .get(
                &app.login("Admin", true).await,
                &format!("/d/exp/export.{ext}"),
            )
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(text, http, "CLI and download are the same export");
    }
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args([
            "export",
            "--dataset",
            "nope",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dataset"));
}

/// More annotations on one trace than one export query reads (1,000), and more traces than
/// one page (500): every (trace × annotator) row comes out once, in trace order, then
/// annotation order, with and without the unannotated traces, for admins and annotators.
#[tokio::test]
async fn exports_cross_batch_boundaries_without_losing_or_repeating_rows() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Big", "big.csv", simple_csv(400, 3))
        .await;
    assert_eq!(status, 200, "{page}");
    let bob = app.login("Bob", false).await;
    // 1,100 more annotators, all on trace c1-t2; Bob on every third trace.
    let users: Vec<String> = (0..1100)
        .map(|i| format!("('bulk', 'u{i}', 'u{i}@example.com', 'User {i}', 0, 0)"))
        .collect();
    let exec = |sql: String| {
        let db = app.db.clone();
        async move { sqlx::query(&sql).execute(db.writer()).await.unwrap() }
    };
    exec(format!(
        "INSERT INTO users (issuer, subject, email, name, is_admin, created_at) VALUES {}",
        users.join(", ")
    ))
    .await;
    exec(
        "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict, version,
             created_at, updated_at)
         SELECT t.id, t.dataset_id, u.id, t.sort_key, 'fail', 1, 0, 0
         FROM traces t, users u WHERE t.trace_id = 'c1-t2' AND u.issuer = 'bulk'"
            .into(),
    )
    .await;
    exec(
        "INSERT INTO annotations (trace_pk, dataset_id, user_id, sort_key, verdict, version,
             created_at, updated_at)
         SELECT t.id, t.dataset_id, u.id, t.sort_key, 'pass', 1, 0, 0
         FROM traces t, users u WHERE t.sort_key % 3 = 0 AND u.name = 'Bob'"
            .into(),
    )
    .await;
    let bob_count = app
        .count("SELECT COUNT(*) FROM annotations a JOIN users u ON u.id = a.user_id WHERE u.name = 'Bob'")
        .await;
    assert_eq!(bob_count, 400);
    let order: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.trace_id, u.email FROM traces t JOIN annotations a ON a.trace_pk = t.id
         JOIN users u ON u.id = a.user_id ORDER BY t.sort_key, a.id",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    assert_eq!(order.len(), 1500);
    let file_order: Vec<String> = (0..400)
        .flat_map(|c| (1..=3).map(move |t| format!("c{c}-t{t}")))
        .collect();

    let pairs = |rows: &[Vec<String>], headers: &[String]| -> Vec<(String, String)> {
        let email = headers.iter().position(|h| h == "annotator_email").unwrap();
        rows.iter()
            .map(|r| (r[0].clone(), r[email].clone()))
            .collect()
    };
    let export = |c: &reqwest::Client, query: &'static str| {
        let c = c.clone();
        let url = app.url(&format!("/d/big/export.csv{query}"));
        async move { read_csv(&c.get(url).send().await.unwrap().text().await.unwrap()) }
    };

    // Admin, annotated rows only: exactly the database's rows, in its order.
    let (headers, rows) = export(&admin, "").await;
    assert_eq!(pairs(&rows, &headers), order);

    // Admin, every trace: the same rows with each unannotated trace once, in file order.
    let (headers, rows) = export(&admin, "?all=1").await;
    let got = pairs(&rows, &headers);
    let mut expected = Vec::new();
    for trace in &file_order {
        let mine: Vec<_> = order.iter().filter(|(t, _)| t == trace).cloned().collect();
        if mine.is_empty() {
            expected.push((trace.clone(), String::new()));
        }
        expected.extend(mine);
    }
    assert_eq!(got.len(), 1500 + 1200 - 401);
    assert_eq!(got, expected);

    // Bob, every trace: one row per trace, his verdict on every third.
    let (headers, rows) = export(&bob, "?all=1").await;
    let got = pairs(&rows, &headers);
    assert_eq!(
        got.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(),
        file_order
    );
    assert_eq!(
        got.iter().filter(|(_, e)| e == "bob@localhost").count(),
        400
    );
    assert!(
        got.iter()
            .all(|(_, e)| e.is_empty() || e == "bob@localhost")
    );
}

fn cli_export(app: &TestApp, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .arg("export")
        .args(args)
        .args(["--database-url", &app.database_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Cells a spreadsheet would run as formulas, in trace columns, metadata, a column name and
/// an annotator's note.
#[tokio::test]
async fn csv_export_neutralizes_formula_cells_unless_raw_is_asked_for() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let file = "trace_id,flow_session,turn_number,user_message,ai_response,=cmd|' /C calc'!A0,score\n\
                -f1,s,1,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",+1 add,@SUM(1),-0.5\n\
                f2,s,2,\"\tTab first\",\"\rCR first\",plain,a=b\n";
    let (status, page) = app
        .upload(&admin, "Formulas", "f.csv", file.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    app.annotate(
        &admin,
        "formulas",
        "-f1",
        &[
            ("verdict", "fail"),
            ("note", "=1+1 is what it said"),
            ("codes", "-minus"),
            ("version", "0"),
        ],
        true,
    )
    .await;
    let text = |path: &'static str| {
        let c = admin.clone();
        let url = app.url(path);
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };

    let safe = text("/d/formulas/export.csv?all=1").await;
    let (headers, rows) = read_csv(&safe);
    assert_eq!(
        headers[5], "'=cmd|' /C calc'!A0",
        "a column name is a cell too"
    );
    let f1 = rows.iter().find(|r| r[0] == "'-f1").expect("f1 row");
    assert_eq!(f1[3], "'=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(f1[4], "'+1 add");
    assert_eq!(f1[5], "'@SUM(1)");
    assert_eq!(f1[6], "'-0.5");
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(f1[col("first_failure_note")], "'=1+1 is what it said");
    assert_eq!(f1[col("open_codes")], "'-minus");
    let f2 = rows.iter().find(|r| r[0] == "f2").expect("f2 row");
    assert_eq!(f2[3], "'\tTab first");
    assert_eq!(f2[4], "'\rCR first");
    assert_eq!(
        (f2[5].as_str(), f2[6].as_str()),
        ("plain", "a=b"),
        "others untouched"
    );

    // Raw: exactly as stored.
    let raw = text("/d/formulas/export.csv?all=1&raw=1").await;
    let (headers, rows) = read_csv(&raw);
    assert_eq!(headers[5], "=cmd|' /C calc'!A0");
    let f1 = rows.iter().find(|r| r[0] == "-f1").expect("f1 row");
    assert_eq!(f1[3], "=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(f1[6], "-0.5");
    assert_eq!(f1[col("first_failure_note")], "=1+1 is what it said");

    // JSONL is never changed.
    let jsonl = text("/d/formulas/export.jsonl?all=1").await;
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["trace_id"], "-f1");
    assert_eq!(first["=cmd|' /C calc'!A0"], "@SUM(1)");
    assert_eq!(first["first_failure_note"], "=1+1 is what it said");

    // The CLI: the same guard by default, `--raw` to turn it off.
    assert_eq!(
        cli_export(&app, &["--dataset", "Formulas", "--all-traces"]),
        safe
    );
    assert_eq!(
        cli_export(&app, &["--dataset", "formulas", "--all-traces", "--raw"]),
        raw
    );
}

/// A source column named like an annotation column: what re-importing an export gives.
#[tokio::test]
async fn export_never_writes_two_columns_with_one_name() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let file = "trace_id,flow_session,turn_number,user_message,ai_response,open_codes,annotator_email,source_open_codes\n\
                t1,s,1,q,a,old codes,old@example.com,older codes\n";
    let (status, page) = app
        .upload(&admin, "Again", "again.csv", file.as_bytes().to_vec())
        .await;
    assert_eq!(status, 200, "{page}");
    app.annotate(
        &admin,
        "again",
        "t1",
        &[
            ("verdict", "fail"),
            ("note", "n"),
            ("codes", "new code"),
            ("version", "0"),
        ],
        true,
    )
    .await;
    let renamed = [
        "trace_id",
        "flow_session",
        "turn_number",
        "user_message",
        "ai_response",
        "source_open_codes_2",
        "source_annotator_email",
        "source_open_codes",
        "annotator_email",
        "annotator_name",
        "holistic_pass_fail",
        "first_failure_note",
        "open_codes",
        "failure_modes",
        "comments_hypotheses",
        "annotation_version",
        "annotation_created_at",
        "annotation_updated_at",
    ];
    let csv_body = app
        .get(&admin, "/d/again/export.csv")
        .await
        .text()
        .await
        .unwrap();
    let (headers, rows) = read_csv(&csv_body);
    assert_eq!(headers, renamed);
    let value = |name: &str| rows[0][headers.iter().position(|h| h == name).unwrap()].clone();
    assert_eq!(value("source_open_codes_2"), "old codes");
    assert_eq!(value("source_open_codes"), "older codes");
    assert_eq!(value("source_annotator_email"), "old@example.com");
    assert_eq!(value("open_codes"), "new code");
    assert_eq!(value("annotator_email"), "admin@localhost");

    let jsonl = app
        .get(&admin, "/d/again/export.jsonl")
        .await
        .text()
        .await
        .unwrap();
    let line = jsonl.lines().next().unwrap();
    for key in renamed {
        assert_eq!(
            line.matches(&format!("\"{key}\":")).count(),
            1,
            "{key} once: {line}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["source_open_codes_2"], "old codes");
    assert_eq!(v["open_codes"], "new code");
    assert_eq!(
        cli_export(&app, &["--dataset", "Again", "--format", "jsonl"]),
        jsonl
    );

    // Round and round: the export imported again exports with unique names too.
    let (status, page) = app
        .upload(&admin, "Again 2", "export.csv", csv_body.into_bytes())
        .await;
    assert_eq!(status, 200, "{page}");
    app.annotate(
        &admin,
        "again-2",
        "t1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    let (headers, _) = read_csv(
        &app.get(&admin, "/d/again-2/export.csv")
            .await
            .text()
            .await
            .unwrap(),
    );
    let unique: std::collections::HashSet<&String> = headers.iter().collect();
    assert_eq!(unique.len(), headers.len(), "{headers:?}");
}
