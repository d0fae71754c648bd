//! The codebook: counts against a hand count (spelling variants, a revision), grouping,
//! rename, merge, split and archive, import (all or nothing, idempotent) and export, the
//! chart without scripts, the trace list filters, suggestions, and 403s for annotators.

use serde_json::Value;

use crate::helpers::*;

/// Ten traces `c{0..5}-t{1,2}` in dataset "Codes"; fails with codes by Ann, Bob and Cid:
///
/// | trace | Ann                     | Bob                         | Cid          |
/// |-------|-------------------------|-----------------------------|--------------|
/// | c0-t1 | Fail `Wrong Tool, tone` | Fail `WRONG  TOOL`          |              |
/// | c0-t2 | Fail `wrong tool`       | Fail `hallucination` → `tone` (revised) |  |
/// | c1-t1 | Pass                    |                             | Fail `wrong tool` |
///
/// By hand: `wrong tool` is on 3 traces (c0-t1, c0-t2, c1-t1), 4 annotations, 3
/// annotators, 3 failed traces; `tone` on 2 traces, 2 annotations, 2 annotators, 2 failed;
/// `hallucination` was revised away and counts nowhere.
async fn coded_app() -> (TestApp, reqwest::Client) {
    coded_app_with(|_| {}).await
}

async fn coded_app_with(
    adjust: impl FnOnce(&mut tracecoder::Config),
) -> (TestApp, reqwest::Client) {
    let app = spawn_app_with(adjust).await;
    let admin = app.login("Lead", true).await;
    let (status, page) = app.upload(&admin, "Codes", "c.csv", simple_csv(5, 2)).await;
    assert_eq!(status, 200, "{page}");
    let ann = app.login("Ann", false).await;
    let bob = app.login("Bob", false).await;
    let cid = app.login("Cid", false).await;
    for (c, trace, fields) in [
        (&ann, "c0-t1", fail("Wrong Tool, tone", "0")),
        (&ann, "c0-t2", fail("wrong tool", "0")),
        (&ann, "c1-t1", vec![("verdict", "pass"), ("version", "0")]),
        (&bob, "c0-t1", fail("WRONG  TOOL", "0")),
        (&bob, "c0-t2", fail("hallucination", "0")),
        (&bob, "c0-t2", fail("tone", "1")),
        (&cid, "c1-t1", fail("wrong tool", "0")),
    ] {
        let res = app.annotate(c, "codes", trace, &fields, false).await;
        assert_eq!(res.status(), 303, "{trace}: {}", res.text().await.unwrap());
    }
    (app, admin)
}

/// A Fail with `codes`, saved over `version` of the annotation.
fn fail<'a>(codes: &'a str, version: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("verdict", "fail"),
        ("note", "the note"),
        ("codes", codes),
        ("version", version),
    ]
}

/// Saves a Fail with `codes` on `trace` of dataset "Codes" as `c` (a redirect: saved).
async fn save_fail(app: &TestApp, c: &reqwest::Client, trace: &str, codes: &str, version: &str) {
    let res = app
        .annotate(c, "codes", trace, &fail(codes, version), false)
        .await;
    assert_eq!(res.status(), 303, "{trace}: {}", res.text().await.unwrap());
}

async fn codebook_json(app: &TestApp, c: &reqwest::Client) -> Value {
    let res = app.get(c, "/d/codes/codebook.json").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The rows of the JSON export by open code: (failure_mode, traces, annotations,
/// annotators, fail_traces).
fn rows_by_code(json: &Value) -> std::collections::BTreeMap<String, (String, i64, i64, i64, i64)> {
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["open_code"] != "")
        .map(|r| {
            (
                r["open_code"].as_str().unwrap().to_string(),
                (
                    r["failure_mode"].as_str().unwrap().to_string(),
                    r["traces"].as_i64().unwrap(),
                    r["annotations"].as_i64().unwrap(),
                    r["annotators"].as_i64().unwrap(),
                    r["fail_traces"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

async fn post_form(
    app: &TestApp,
    c: &reqwest::Client,
    path: &str,
    body: &[(&str, &str)],
) -> (u16, String) {
    let res = c.post(app.url(path)).form(body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

async fn mode_id(app: &TestApp, name: &str) -> String {
    let id: i64 = sqlx::query_scalar("SELECT id FROM failure_modes WHERE name = $1")
        .bind(name)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    id.to_string()
}

async fn create_mode(app: &TestApp, c: &reqwest::Client, name: &str) -> String {
    let (status, body) = post_form(
        app,
        c,
        "/d/codes/codebook/modes",
        &[("name", name), ("description", "Pass: … Fail: …")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    mode_id(app, name).await
}

async fn group(app: &TestApp, c: &reqwest::Client, codes: &[&str], mode: &str) -> u16 {
    let mut form: Vec<(&str, &str)> = codes.iter().map(|code| ("code", *code)).collect();
    form.push(("mode", mode));
    form.push(("action", "group"));
    post_form(app, c, "/d/codes/codebook/group", &form).await.0
}

#[tokio::test]
async fn counts_per_code_equal_a_hand_count_over_current_annotations() {
    let (app, admin) = coded_app().await;
    let json = codebook_json(&app, &admin).await;
    let rows = rows_by_code(&json);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows["wrong tool"], (String::new(), 3, 4, 3, 3));
    assert_eq!(rows["tone"], (String::new(), 2, 2, 2, 2));
    assert!(
        !rows.contains_key("hallucination"),
        "a revised code stops counting"
    );
    assert_eq!(json["annotated_traces"], 3);
    assert_eq!(json["fail_traces"], 3);

    // The page: codes by frequency, the most common spelling shown, counts linked.
    let page = Page::parse(&app.get_text(&admin, "/d/codes/codebook").await.1);
    assert_eq!(
        page.texts("#codes tbody tr td:nth-child(2)"),
        vec!["wrong tool", "tone"]
    );
    assert_eq!(
        page.attr("#codes tr[data-code='wrong tool'] a.traces-count", "href")
            .unwrap(),
        "/d/codes/traces?code=wrong%20tool"
    );
    // Searching narrows the list.
    let found = Page::parse(&app.get_text(&admin, "/d/codes/codebook?q=TON").await.1);
    assert_eq!(found.texts("#codes tbody tr td:nth-child(2)"), vec!["tone"]);

    // The example notes are one click away (a page, or its list for HTMX).
    let notes = admin
        .get(app.url("/d/codes/codebook/notes?code=Tone"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let notes = Page::parse(&notes);
    assert_eq!(notes.count(".example-notes li"), 2);
    assert!(!notes.is_whole_page());
}

#[tokio::test]
async fn grouping_rename_merge_split_and_archive_keep_counts_and_lose_no_code() {
    let (app, admin) = coded_app().await;
    let tools = create_mode(&app, &admin, "Tool misuse").await;
    let style = create_mode(&app, &admin, "Style").await;
    assert_eq!(group(&app, &admin, &["Wrong tool"], &tools).await, 303);
    assert_eq!(group(&app, &admin, &["tone"], &style).await, 303);
    let json = codebook_json(&app, &admin).await;
    let rows = rows_by_code(&json);
    assert_eq!(rows["wrong tool"].0, "Tool misuse");
    assert_eq!(rows["tone"].0, "Style");
    let modes: Vec<(String, i64)> = json["failure_modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().into(),
                m["fail_traces"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(modes, vec![("Tool misuse".into(), 3), ("Style".into(), 2)]);

    // The annotation export names each row's modes, sorted.
    let csv = app.get_text(&admin, "/d/codes/export.csv").await.1;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let ann_c0t1 = reader
        .records()
        .map(|r| r.unwrap())
        .find(|r| &r[col("trace_id")] == "c0-t1" && r[col("annotator_email")].starts_with("ann"))
        .unwrap();
    assert_eq!(&ann_c0t1[col("failure_modes")], "Style, Tool misuse");

    // A name in use is refused.
    let (status, _) = post_form(
        &app,
        &admin,
        &format!("/d/codes/codebook/modes/{style}"),
        &[("name", "tool  MISUSE"), ("description", "")],
    )
    .await;
    assert_eq!(status, 409);

    // Rename: counts follow, the old name stays an alias (the list filter still finds it).
    let (status, _) = post_form(
        &app,
        &admin,
        &format!("/d/codes/codebook/modes/{style}"),
        &[
            ("name", "Tone of voice"),
            ("description", "Polite and warm."),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        rows_by_code(&codebook_json(&app, &admin).await)["tone"].0,
        "Tone of voice"
    );
    let by_alias = Page::parse(&app.get_text(&admin, "/d/codes/traces?mode=style").await.1);
    assert_eq!(
        by_alias.texts(".trace-list tbody tr td:nth-child(2)"),
        vec!["c0-t1", "c0-t2"]
    );

    // Merge: both codes in one mode, counted once per trace.
    let (status, _) = post_form(
        &app,
        &admin,
        &format!("/d/codes/codebook/modes/{style}/merge"),
        &[("into", tools.as_str())],
    )
    .await;
    assert_eq!(status, 303);
    let json = codebook_json(&app, &admin).await;
    assert_eq!(json["failure_modes"].as_array().unwrap().len(), 1);
    assert_eq!(json["failure_modes"][0]["fail_traces"], 3);
    let rows = rows_by_code(&json);
    assert_eq!(rows["tone"].0, "Tool misuse");
    assert_eq!(rows["tone"].1, 2, "counts unchanged by grouping");

    // Split: `tone` out again, ungrouped.
    let (status, _) = post_form(
        &app,
        &admin,
        "/d/codes/codebook/group",
        &[("code", "tone"), ("action", "ungroup")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        rows_by_code(&codebook_json(&app, &admin).await)["tone"].0,
        ""
    );

    // Archive: out of counts and export, every code still listed (ungrouped).
    let (status, _) = post_form(
        &app,
        &admin,
        &format!("/d/codes/codebook/modes/{tools}/archive"),
        &[],
    )
    .await;
    assert_eq!(status, 303);
    let json = codebook_json(&app, &admin).await;
    assert!(json["failure_modes"].as_array().unwrap().is_empty());
    let rows = rows_by_code(&json);
    assert_eq!(rows.len(), 2, "no code lost");
    assert_eq!(rows["wrong tool"], (String::new(), 3, 4, 3, 3));
    let page = Page::parse(&app.get_text(&admin, "/d/codes/codebook").await.1);
    assert_eq!(page.count("#archived li"), 1);

    // Restore brings its codes back; no annotation was rewritten along the way.
    post_form(
        &app,
        &admin,
        &format!("/d/codes/codebook/modes/{tools}/restore"),
        &[],
    )
    .await;
    assert_eq!(
        rows_by_code(&codebook_json(&app, &admin).await)["wrong tool"].0,
        "Tool misuse"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_codes WHERE normalized = 'hallucination'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM annotation_codes").await, 6);

    // Every change is in the history: who, when, what.
    let history = Page::parse(&app.get_text(&admin, "/d/codes/codebook/history").await.1);
    let actions = history.texts("#changes tbody tr td:nth-child(3)");
    assert_eq!(actions.len(), 9, "{actions:?}");
    assert!(
        actions
            .iter()
            .any(|a| a.contains("renamed \"Style\" to \"Tone of voice\""))
    );
    assert!(
        actions
            .iter()
            .any(|a| a.contains("merged \"Tone of voice\" into \"Tool misuse\""))
    );
    assert!(
        history
            .text("#changes tbody tr td:nth-child(2)")
            .starts_with("lead")
    );
}

#[tokio::test]
async fn codebook_import_is_all_or_nothing_and_idempotent() {
    let (app, admin) = coded_app().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
            .args(args)
            .args(["--database-url", &app.database_url])
            .output()
            .unwrap()
    };
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "failure_mode,open_code,description\nTool misuse,wrong tool,Wrong tool chosen\nHallucination,,Made up\nStyle,Wrong  Tool,\n",
    )
    .unwrap();
    let out = run(&[
        "codebook",
        "import",
        bad.to_str().unwrap(),
        "--dataset",
        "Codes",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(app.count("SELECT COUNT(*) FROM failure_modes").await, 0);

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "failure_mode,open_code,description\nTool misuse,wrong tool,Wrong tool chosen\nTool misuse,tone,\nHallucination,,Made up\n",
    )
    .unwrap();
    let first = run(&[
        "codebook",
        "import",
        good.to_str().unwrap(),
        "--dataset",
        "Codes",
    ]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let state = || async {
        (
            app.count("SELECT COUNT(*) FROM failure_modes").await,
            app.count("SELECT COUNT(*) FROM failure_mode_codes").await,
            app.count("SELECT COUNT(*) FROM codebook_changes").await,
        )
    };
    let after_first = state().await;
    // Two modes; codes: the two of the file and each mode's own name.
    assert_eq!(after_first, (2, 4, 1));
    let again = run(&[
        "codebook",
        "import",
        good.to_str().unwrap(),
        "--dataset",
        "Codes",
    ]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing changed"));
    assert_eq!(state().await, after_first);

    // The export: the contract's columns, a mode without codes in use as its own row; the
    // CLI writes what the HTTP export serves; and it imports into another dataset.
    let http = app.get_text(&admin, "/d/codes/codebook.csv").await.1;
    let mut lines = http.lines();
    assert_eq!(
        lines.next().unwrap(),
        "failure_mode,description,open_code,traces,annotations,annotators,fail_traces"
    );
    assert!(
        http.contains("\nHallucination,Made up,,0,0,0,0\n"),
        "{http}"
    );
    assert!(
        http.contains("\nTool misuse,Wrong tool chosen,wrong tool,3,4,3,3\n"),
        "{http}"
    );
    let out_file = dir.path().join("out.csv");
    let out = run(&[
        "codebook",
        "export",
        "--dataset",
        "codes",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), http);
    let json = run(&[
        "codebook",
        "export",
        "--dataset",
        "codes",
        "--format",
        "json",
    ]);
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 3);

    let (status, page) = app.upload(&admin, "Other", "o.csv", simple_csv(1, 1)).await;
    assert_eq!(status, 200, "{page}");
    let part = reqwest::multipart::Part::bytes(http.into_bytes()).file_name("codebook.csv");
    let res = admin
        .post(app.url("/d/other/codebook/import"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = Page::parse(&res.text().await.unwrap());
    assert!(
        page.text("#codebook-notice")
            .contains("2 failure modes created")
    );
    let other: Value = app
        .get(&admin, "/d/other/codebook.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["failure_modes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_pareto_chart_is_server_drawn_svg_without_scripts() {
    let (app, admin) = coded_app().await;
    let tools = create_mode(&app, &admin, "Tool misuse").await;
    group(&app, &admin, &["wrong tool"], &tools).await;
    let res = app.get(&admin, "/d/codes/codebook").await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    let html = res.text().await.unwrap();
    let page = Page::parse(&html);
    // Tool misuse (3 failed traces), then the ungrouped codes (tone: 2).
    assert_eq!(page.count("#pareto .bar rect"), 2);
    assert_eq!(page.texts("#pareto .bar .count"), vec!["3", "2"]);
    assert!(page.has("#pareto polyline.cumulative"));
    let svg = &html[html.find("<svg id=\"pareto\"").unwrap()..html.find("</svg>").unwrap()];
    assert!(!svg.contains("<script") && !svg.contains("style=") && !svg.contains(" on"));
    // Every count links to the trace list filtered to it.
    let href = page
        .attr("#modes tr[data-mode='Tool misuse'] a.fail-count", "href")
        .unwrap();
    assert_eq!(href, "/d/codes/traces?mode=Tool%20misuse&verdict=fail");
    let list = Page::parse(&app.get_text(&admin, &href).await.1);
    assert_eq!(
        list.texts(".trace-list tbody tr td:nth-child(2)"),
        vec!["c0-t1", "c0-t2", "c1-t1"]
    );
}

#[tokio::test]
async fn the_trace_list_filters_by_open_code_within_the_viewers_scope() {
    let (app, admin) = coded_app().await;
    let rows = |html: String| Page::parse(&html).texts(".trace-list tbody tr td:nth-child(2)");
    assert_eq!(
        rows(app.get_text(&admin, "/d/codes/traces?code=TONE").await.1),
        vec!["c0-t1", "c0-t2"]
    );
    // An annotator filters their own codes only.
    let bob = app.login("Bob", false).await;
    assert_eq!(
        rows(app.get_text(&bob, "/d/codes/traces?code=tone").await.1),
        vec!["c0-t2"]
    );
    assert_eq!(
        rows(
            app.get_text(&bob, "/d/codes/traces?code=wrong%20tool")
                .await
                .1
        ),
        vec!["c0-t1"]
    );
    let (status, _) = app.get_text(&admin, "/d/codes/traces?mode=nothing").await;
    assert_eq!(status, 404);
    // Keyset pages keep the filter.
    let page = Page::parse(
        &app.get_text(&admin, "/d/codes/traces?code=tone&per=10")
            .await
            .1,
    );
    assert!(
        page.attr(".pager a", "href")
            .unwrap()
            .contains("&code=tone")
    );
}

#[tokio::test]
async fn annotators_cannot_change_the_codebook_but_get_suggestions() {
    let (app, admin) = coded_app().await;
    let tools = create_mode(&app, &admin, "Tool misuse").await;
    group(&app, &admin, &["wrong tool"], &tools).await;
    let ann = app.login("Ann", false).await;
    for path in [
        "/d/codes/codebook",
        "/d/codes/codebook.csv",
        "/d/codes/codebook.json",
    ] {
        assert_eq!(app.get(&ann, path).await.status(), 403, "{path}");
    }
    for path in [
        "/d/codes/codebook/modes".to_string(),
        format!("/d/codes/codebook/modes/{tools}/archive"),
        "/d/codes/codebook/group".to_string(),
    ] {
        let (status, _) = post_form(&app, &ann, &path, &[("name", "x"), ("code", "tone")]).await;
        assert_eq!(status, 403, "{path}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM failure_modes").await, 1);

    // Suggestions: the mode (with its rubric), its grouped code, then the most used others.
    let res = app.get(&ann, "/d/codes/codes.json").await;
    assert_eq!(res.status(), 200);
    let json: Value = res.json().await.unwrap();
    let codes: Vec<(&str, Option<&str>)> = json["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["code"].as_str().unwrap(), s["mode"].as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("Tool misuse", Some("Tool misuse")),
            ("wrong tool", Some("Tool misuse")),
            ("tone", None)
        ]
    );
    assert_eq!(json["suggestions"][0]["description"], "Pass: … Fail: …");
}

#[tokio::test]
async fn suggested_groupings_are_accepted_or_dismissed_in_one_action() {
    let (app, admin) = coded_app().await;
    let ann = app.login("Ann", false).await;
    for (trace, codes) in [("c1-t2", "wrong tools"), ("c2-t1", "tones")] {
        let fields = [
            ("verdict", "fail"),
            ("note", "n"),
            ("codes", codes),
            ("version", "0"),
        ];
        assert_eq!(
            app.annotate(&ann, "codes", trace, &fields, false)
                .await
                .status(),
            303
        );
    }
    let fragment = app
        .get_text(&admin, "/d/codes/codebook/suggestions")
        .await
        .1;
    let page = Page::parse(&fragment);
    let clusters: Vec<String> = page.texts(".suggestion p");
    assert_eq!(clusters.len(), 2, "{clusters:?}");
    assert!(
        clusters
            .iter()
            .any(|c| c.contains("wrong tool") && c.contains("wrong tools"))
    );

    // Dismiss the tone one: not offered again.
    let (status, _) = post_form(
        &app,
        &admin,
        "/d/codes/codebook/suggestions",
        &[("code", "tone"), ("code", "tones"), ("action", "dismiss")],
    )
    .await;
    assert_eq!(status, 303);
    // Accept the other under an edited name.
    let (status, _) = post_form(
        &app,
        &admin,
        "/d/codes/codebook/suggestions",
        &[
            ("code", "wrong tool"),
            ("code", "wrong tools"),
            ("mode", "new"),
            ("new_mode", "Wrong tool called"),
            ("action", "accept"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let rows = rows_by_code(&codebook_json(&app, &admin).await);
    assert_eq!(rows["wrong tools"].0, "Wrong tool called");
    assert_eq!(rows["wrong tool"].0, "Wrong tool called");
    let page = Page::parse(
        &app.get_text(&admin, "/d/codes/codebook/suggestions")
            .await
            .1,
    );
    assert!(page.has("#no-suggestions"), "nothing left to suggest");
}

#[tokio::test]
async fn the_saturation_curve_is_drawn_over_annotations_done() {
    let (app, admin) = coded_app().await;
    let page = Page::parse(&app.get_text(&admin, "/d/codes/codebook/saturation").await.1);
    assert!(page.has("#saturation-chart polyline.coverage"));
    // Six current annotations in one (partial) block: 2 distinct codes, 6 uses... of which
    // `wrong tool` 4 and `tone` 2, so no code is used once: coverage 100%.
    let cells = page.texts("#saturation-table tbody tr td");
    assert_eq!(cells[0], "6 (partial block)");
    assert_eq!(cells[1..], ["2", "2", "6", "0", "100.0%"]);
}

#[tokio::test]
async fn team_review_and_reference_labels_use_the_codebooks_failure_modes() {
    let (app, admin) = coded_app().await;
    let tools = create_mode(&app, &admin, "Tool misuse").await;
    group(&app, &admin, &["wrong tool"], &tools).await;
    // Three traces coded twice. The mode's presence per annotation: c0-t1 Ann 1, Bob 1
    // (agree); c0-t2 Ann 1, Bob 0 (Bob wrote `tone`); c1-t1 Ann 0 (a Pass), Cid 1. By hand:
    // agreement 1/3; Krippendorff's alpha (binary, n = 6 values, n₁ = 4, n₀ = 2, o₀₁ = 2)
    // = 1 − (n − 1)·o₀₁ / (n₀·n₁) = 1 − 5·2/8 = −0.25.
    let json: Value = app
        .get(&admin, "/d/codes/agreement.json")
        .await
        .json()
        .await
        .unwrap();
    let modes = json["failure_modes"].as_array().unwrap();
    assert_eq!(modes.len(), 1, "{json}");
    assert_eq!(modes[0]["name"], "Tool misuse");
    assert_eq!(modes[0]["items"], 3, "{json}");
    assert!((modes[0]["percent_agreement"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!((modes[0]["krippendorff_alpha"].as_f64().unwrap() + 0.25).abs() < 1e-9);
    // The unanimous c0-t1 label carries the mode.
    let csv = app.get_text(&admin, "/d/codes/reference.csv").await.1;
    let line = csv.lines().find(|l| l.starts_with("c0-t1,")).expect(&csv);
    assert!(line.contains("Fail,Tool misuse"), "{line}");
}

/// The dataset's counts version, as the codebook's cache reads it.
async fn counts_version(app: &TestApp) -> tracecoder::db::codebook::CountsVersion {
    let id = app
        .count("SELECT id FROM datasets WHERE slug = 'codes'")
        .await;
    tracecoder::db::codebook::counts_version(&app.db, tracecoder::domain::DatasetId(id))
        .await
        .expect("counts version")
}

/// The codes listed on the codebook page, in order.
async fn listed_codes(app: &TestApp, c: &reqwest::Client) -> (Page, Vec<String>) {
    let page = Page::parse(&app.get_text(c, "/d/codes/codebook").await.1);
    let codes = page.attrs("#codes tbody tr", "data-code");
    (page, codes)
}

#[tokio::test]
async fn every_write_to_an_annotation_moves_the_counts_version() {
    let (app, admin) = coded_app().await;
    let ann = app.login("Ann", false).await;
    let start = counts_version(&app).await;
    // Seven saves by three annotators (one of them a revision).
    assert_eq!(start.annotations, 7, "{start:?}");

    // A revision that keeps the verdict and changes only the codes.
    save_fail(&app, &ann, "c0-t2", "tone", "1").await;
    let revised = counts_version(&app).await;
    assert_eq!(revised.annotations, start.annotations + 1);
    assert_eq!(revised.codebook, start.codebook);

    // A first save, then its undo (the annotation is deleted): both move it.
    save_fail(&app, &ann, "c2-t1", "brand new", "0").await;
    assert_eq!(
        listed_codes(&app, &admin).await.1,
        vec!["tone", "wrong tool", "brand new"]
    );
    let res = ann
        .post(app.url("/d/codes/undo"))
        .header("HX-Request", "true")
        .form(&[("x", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 6);
    let undone = counts_version(&app).await;
    assert_eq!(undone.annotations, revised.annotations + 2);
    // The page counts again: the undone code is gone.
    assert_eq!(
        listed_codes(&app, &admin).await.1,
        vec!["tone", "wrong tool"]
    );

    // A codebook change moves the other part.
    create_mode(&app, &admin, "Style").await;
    let changed = counts_version(&app).await;
    assert_eq!(changed.annotations, undone.annotations);
    assert!(changed.codebook > undone.codebook, "{changed:?}");
}

#[tokio::test]
async fn costly_counts_are_shown_as_of_their_computation_while_annotators_save() {
    // A budget of zero: every dataset counts as costly, as one of 100,000 annotations does.
    let (app, admin) =
        coded_app_with(|c| c.codebook_recount_budget = std::time::Duration::ZERO).await;
    let (page, codes) = listed_codes(&app, &admin).await;
    assert_eq!(codes, vec!["wrong tool", "tone"]);
    assert!(
        !page.has("#counts-as-of"),
        "computed for this view: current"
    );

    // An annotator saves a new code: the page shows the counts as they were, and says so.
    let ann = app.login("Ann", false).await;
    save_fail(&app, &ann, "c2-t1", "brand new", "0").await;
    let (page, codes) = listed_codes(&app, &admin).await;
    assert_eq!(codes, vec!["wrong tool", "tone"]);
    let note = page.text("#counts-as-of");
    assert!(note.contains("1 annotation change since"), "{note}");

    // An export is never behind.
    let rows = rows_by_code(&codebook_json(&app, &admin).await);
    assert_eq!(rows["brand new"], (String::new(), 1, 1, 1, 1));
    // ...and what it counted serves the page too.
    let (page, codes) = listed_codes(&app, &admin).await;
    assert_eq!(codes, vec!["wrong tool", "tone", "brand new"]);
    assert!(!page.has("#counts-as-of"));

    // Another save: once the counts are a second old, a view starts counting again in the
    // background and a later view shows the result.
    save_fail(&app, &ann, "c2-t2", "brand new", "0").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = Page::parse(&app.get_text(&admin, "/d/codes/codebook").await.1);
        let traces = page.text("#codes tr[data-code='brand new'] a.traces-count");
        if traces == "2" {
            assert!(!page.has("#counts-as-of"), "counted again: current");
            break;
        }
        assert_eq!(traces, "1", "the stored counts until then");
        assert!(page.has("#counts-as-of"));
        assert!(std::time::Instant::now() < deadline, "never counted again");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // A codebook change is counted before the lead sees the page, however costly.
    save_fail(&app, &ann, "c3-t1", "brand new", "0").await;
    let novelty = create_mode(&app, &admin, "Novelty").await;
    assert_eq!(group(&app, &admin, &["brand new"], &novelty).await, 303);
    let page = Page::parse(&app.get_text(&admin, "/d/codes/codebook").await.1);
    assert!(!page.has("#counts-as-of"));
    assert_eq!(
        page.text("#modes tr[data-mode='Novelty'] a.fail-count"),
        "3"
    );
}
