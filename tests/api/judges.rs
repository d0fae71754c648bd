//! Judge alignment: imports (all or nothing, versioned), the figures on a fixture with a
//! known confusion matrix, several judges side by side, the split column, and 403s.

use crate::helpers::*;

/// 60 traces (`c{0..30}-t{1,2}`); Ann and Bob code the first 40 identically — 25 Pass, then
/// 15 Fail — so those 40 have unanimous reference labels; the last 20 have none.
async fn labeled_app() -> (TestApp, reqwest::Client, Vec<String>) {
    let app = spawn_app().await;
    let admin = app.login("Lead", true).await;
    let (status, page) = app
        .upload(&admin, "Judged", "j.csv", simple_csv(30, 2))
        .await;
    assert_eq!(status, 200, "{page}");
    let traces: Vec<String> = sqlx::query_scalar("SELECT trace_id FROM traces ORDER BY sort_key")
        .fetch_all(app.db.reader())
        .await
        .unwrap();
    for name in ["Ann", "Bob"] {
        let c = app.login(name, false).await;
        for (i, trace) in traces.iter().take(40).enumerate() {
            let verdict = if i < 25 { "pass" } else { "fail" };
            let res = app
                .annotate(
                    &c,
                    "judged",
                    trace,
                    &[("verdict", verdict), ("note", "n"), ("version", "0")],
                    false,
                )
                .await;
            assert!(matches!(res.status().as_u16(), 200 | 303));
        }
    }
    (app, admin, traces)
}

/// The judge's file for the fixture: on the 25 reference-Pass traces 20 Pass and 5 Fail, on
/// the 15 reference-Fail traces 3 Pass and 12 Fail, on the 20 unlabeled traces 10 Pass.
fn fixture_file(traces: &[String]) -> String {
    let mut csv = String::from("trace_id,verdict\n");
    for (i, t) in traces.iter().enumerate() {
        let pass = match i {
            0..25 => i < 20,
            25..40 => i < 28,
            _ => i < 50,
        };
        csv.push_str(&format!("{t},{}\n", if pass { "Pass" } else { "FAIL" }));
    }
    csv
}

async fn upload_judge(
    app: &TestApp,
    c: &reqwest::Client,
    judge: &str,
    csv: String,
) -> (u16, String, String) {
    let part = reqwest::multipart::Part::bytes(csv.into_bytes())
        .file_name("judge.csv")
        .mime_str("text/csv")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("judge", judge.to_string())
        .part("file", part);
    let res = c
        .post(app.url("/d/judged/judges"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_figures_equal_the_hand_computation_on_a_known_matrix() {
    let (app, admin, traces) = labeled_app().await;
    let (status, location, body) =
        upload_judge(&app, &admin, "gpt judge", fixture_file(&traces)).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location, "/d/judged/judges/gpt%20judge");
    let res = app.get(&admin, "/d/judged/judges/gpt%20judge.json").await;
    assert_eq!(res.status(), 200);
    let j: serde_json::Value = res.json().await.unwrap();
    assert_eq!(j["judge"], "gpt judge");
    assert_eq!(j["judged"], 60);
    assert_eq!(j["labeled"], 40);
    assert_eq!(
        (&j["tp"], &j["fn"], &j["fp"], &j["tn"]),
        (&20.into(), &5.into(), &3.into(), &12.into())
    );
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&j["tpr"], 0.8), "{j}");
    assert!(close(&j["tnr"], 0.8), "{j}");
    assert!(close(&j["observed_pass_rate"], 33.0 / 60.0), "{j}");
    // (0.55 + 0.8 − 1) / (0.8 + 0.8 − 1) = 0.35 / 0.6
    let corrected = j["corrected_pass_rate"].as_f64().unwrap();
    assert!((corrected - 0.35 / 0.6).abs() < 1e-9, "{j}");
    let ci = j["corrected_pass_rate_ci95"].as_array().unwrap();
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= corrected && corrected <= hi, "{lo} {corrected} {hi}");
    assert!(lo < hi);

    // The page: the matrix, the rates with Wilson intervals, the 8 misses, the method.
    let (status, page) = app.get_text(&admin, "/d/judged/judges/gpt%20judge").await;
    assert_eq!(status, 200);
    let page = Page::parse(&page);
    assert!(page.text("#tp").starts_with("20"));
    assert!(page.text("#rate-tpr").contains("80.0%"));
    assert!(page.text("#rate-tpr").contains("Wilson"));
    assert_eq!(page.count("#misses li"), 8);
    assert!(
        page.text("#method-title")
            .contains("How these numbers are computed")
    );
}

#[tokio::test]
async fn refused_imports_leave_nothing_and_name_the_line() {
    let (app, admin, traces) = labeled_app().await;
    for (csv, expect_line) in [
        (
            format!("trace_id,verdict\n{},Pass\nno-such-trace,Fail\n", traces[0]),
            3,
        ),
        (
            format!(
                "trace_id,verdict\n{},Pass\n{},maybe\n",
                traces[0], traces[1]
            ),
            3,
        ),
        (
            format!("trace_id,verdict\n{0},Pass\n{0},Fail\n", traces[0]),
            3,
        ),
    ] {
        let (status, _, body) = upload_judge(&app, &admin, "broken", csv).await;
        assert_eq!(status, 422, "{body}");
        let page = Page::parse(&body);
        assert!(page.has("#judge-refused"));
        let first_line = page.text("#judge-refused tbody td");
        assert_eq!(first_line, expect_line.to_string(), "{body}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM judge_runs").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM judge_verdicts").await, 0);
    // The command line refuses the same way, with a non-zero exit.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, "trace_id,verdict\nnope,Pass\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args(["judge", "import"])
        .arg(&file)
        .args(["--dataset", "Judged", "--judge", "cli"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    assert_eq!(app.count("SELECT COUNT(*) FROM judge_runs").await, 0);
}

#[tokio::test]
async fn judges_are_versioned_and_shown_side_by_side() {
    let (app, admin, traces) = labeled_app().await;
    let (status, _, _) = upload_judge(&app, &admin, "judge a", fixture_file(&traces)).await;
    assert_eq!(status, 303);
    // Version 2 of "judge a" passes everything; "judge b" from the command line.
    let all_pass: String = std::iter::once("trace_id,verdict\n".to_string())
        .chain(traces.iter().map(|t| format!("{t},pass\n")))
        .collect();
    let (status, _, _) = upload_judge(&app, &admin, "judge a", all_pass).await;
    assert_eq!(status, 303);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.csv");
    std::fs::write(&file, fixture_file(&traces)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args(["judge", "import"])
        .arg(&file)
        .args(["--dataset", "Judged", "--judge", "judge b"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let j: serde_json::Value = app
        .get(&admin, "/d/judged/judges/judge%20a.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(j["tp"], 25, "the latest version passes everything");
    assert_eq!(j["tnr"], 0.0);
    assert!(
        j["corrected_pass_rate"].is_null(),
        "TPR + TNR = 1: no estimate"
    );
    assert!(j["warning"].as_str().unwrap().contains("chance"));
    // The earlier version stays viewable.
    let (status, page) = app
        .get_text(&admin, "/d/judged/judges/judge%20a?version=1")
        .await;
    assert_eq!(status, 200);
    assert!(Page::parse(&page).text("#tp").starts_with("20"));
    assert_eq!(Page::parse(&page).count("#versions li"), 2);
    // Side by side.
    let (_, page) = app.get_text(&admin, "/d/judged/judges").await;
    let rows = Page::parse(&page).texts("#judges tbody tr");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("judge a 2"), "{rows:?}");
    assert!(
        rows[1].starts_with("judge b 1") && rows[1].contains("80.0%"),
        "{rows:?}"
    );
}

/// The reference labels carry a deterministic, stratified train / dev / test split.
#[tokio::test]
async fn reference_labels_carry_a_stratified_split() {
    let (app, admin, _) = labeled_app().await;
    let csv = |body: String| -> Vec<(String, String, String)> {
        let mut r = csv::Reader::from_reader(body.as_bytes());
        r.records()
            .map(|rec| {
                let rec = rec.unwrap();
                (rec[0].to_string(), rec[1].to_string(), rec[7].to_string())
            })
            .collect()
    };
    let first = csv(app
        .get(&admin, "/d/judged/reference.csv")
        .await
        .text()
        .await
        .unwrap());
    let again = csv(app
        .get(&admin, "/d/judged/reference.csv")
        .await
        .text()
        .await
        .unwrap());
    assert_eq!(first, again, "deterministic");
    assert_eq!(first.len(), 40);
    let count = |verdict: &str, split: &str| {
        first
            .iter()
            .filter(|(_, v, s)| v == verdict && s == split)
            .count()
    };
    // Largest remainder per verdict: 25 Pass → 4 / 11 / 10; 15 Fail → 2 / 7 / 6.
    assert_eq!(
        (
            count("Pass", "train"),
            count("Pass", "dev"),
            count("Pass", "test")
        ),
        (4, 11, 10)
    );
    assert_eq!(
        (
            count("Fail", "train"),
            count("Fail", "dev"),
            count("Fail", "test")
        ),
        (2, 7, 6)
    );
}

#[tokio::test]
async fn annotators_cannot_reach_judges() {
    let (app, admin, traces) = labeled_app().await;
    let (status, _, _) = upload_judge(&app, &admin, "j", fixture_file(&traces)).await;
    assert_eq!(status, 303);
    let ann = app.login("Ann", false).await;
    for path in [
        "/d/judged/judges",
        "/d/judged/judges/j",
        "/d/judged/judges/j.json",
    ] {
        assert_eq!(app.get_text(&ann, path).await.0, 403, "{path}");
    }
    let (status, _, _) = upload_judge(&app, &ann, "sneaky", fixture_file(&traces)).await;
    assert_eq!(status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM judge_runs").await, 1);
}
