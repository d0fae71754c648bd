//! Team review: assignment queues (shared overlap, balance, stability), blind coding, the
//! agreement figures, disagreements and adjudication, reference labels, history, and what
//! annotators may not reach.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::*;

/// The dev sign-in gives "Name" the email "name@localhost".
fn email(name: &str) -> String {
    format!("{}@localhost", name.to_lowercase())
}

/// Saves a verdict with a note on `trace` from version 0; the status.
async fn code(app: &TestApp, c: &reqwest::Client, trace: &str, verdict: &str, note: &str) -> u16 {
    app.annotate(
        c,
        "team",
        trace,
        &[("verdict", verdict), ("note", note), ("version", "0")],
        false,
    )
    .await
    .status()
    .as_u16()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// An app with dataset "team" of `convs` conversations × 3 turns, and its admin.
async fn app_with_team(convs: usize) -> (TestApp, reqwest::Client) {
    let app = spawn_app().await;
    let admin = app.login("Lead", true).await;
    let (status, page) = app
        .upload(&admin, "Team", "team.csv", simple_csv(convs, 3))
        .await;
    assert_eq!(status, 200, "{page}");
    (app, admin)
}

async fn assign(
    app: &TestApp,
    admin: &reqwest::Client,
    names: &[&str],
    shared: u64,
    per_trace: u64,
) -> (u16, String) {
    let annotators = names
        .iter()
        .map(|n| email(n))
        .collect::<Vec<_>>()
        .join("\n");
    let res = admin
        .post(app.url("/d/team/assignment"))
        .form(&[
            ("annotators", annotators),
            ("shared", shared.to_string()),
            ("per_trace", per_trace.to_string()),
        ])
        .send()
        .await
        .expect("assign");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// Passes through `c`'s whole queue; returns the traces it was given, in order.
async fn work_through(app: &TestApp, c: &reqwest::Client) -> Vec<String> {
    let mut seen = Vec::new();
    let res = app.get(c, "/d/team/next").await;
    let mut at = location(&res);
    while let Some(trace) = at.strip_prefix("/d/team/t/").map(str::to_string) {
        assert!(!seen.contains(&trace), "{trace} offered twice");
        let res = app
            .annotate(
                c,
                "team",
                &trace,
                &[("verdict", "pass"), ("version", "0")],
                false,
            )
            .await;
        seen.push(trace.clone());
        if res.status() == 200 {
            // The last one: the answer is the all-done page itself.
            let page = res.text().await.unwrap_or_default();
            assert!(
                Page::parse(&page).has("#all-done"),
                "after saving {trace}: {page}"
            );
            break;
        }
        assert_eq!(res.status(), 303, "saving {trace}");
        at = location(&res);
        if at == "/d/team/next" {
            let res = app.get(c, &at).await;
            at = location(&res);
        }
    }
    seen
}

async fn assigned_traces(app: &TestApp, who: &str) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT t.trace_id FROM trace_assignments x JOIN assignees s ON s.id = x.assignee
         JOIN traces t ON t.id = x.trace_pk WHERE s.email = $1",
    )
    .bind(email(who))
    .fetch_all(app.db.reader())
    .await
    .expect("assigned traces")
    .into_iter()
    .collect()
}

/// Three annotators (two of them not signed in yet when assigned), 6 shared traces of 60:
/// everyone's queue is the shared traces plus their own share, every other trace goes to
/// exactly one of them, queues differ by at most one; someone not named is told so; a second
/// import adds traces without moving any earlier one.
#[tokio::test]
async fn queues_under_an_assignment_hold_exactly_each_annotators_traces() {
    let (app, admin) = app_with_team(20).await;
    let ann = app.login("Ann", false).await;
    let (status, page) = assign(&app, &admin, &["Ann", "Bob", "Cy"], 6, 1).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        Page::parse(&page)
            .text("#assignment-summary")
            .contains("3 annotators"),
        "{page}"
    );
    let bob = app.login("Bob", false).await;
    let cy = app.login("Cy", false).await;

    let all: BTreeSet<String> = sqlx::query_scalar::<_, String>("SELECT trace_id FROM traces")
        .fetch_all(app.db.reader())
        .await
        .unwrap()
        .into_iter()
        .collect();
    let sets: Vec<BTreeSet<String>> = vec![
        assigned_traces(&app, "Ann").await,
        assigned_traces(&app, "Bob").await,
        assigned_traces(&app, "Cy").await,
    ];
    let shared: BTreeSet<String> = sets[0]
        .intersection(&sets[1])
        .filter(|t| sets[2].contains(*t))
        .cloned()
        .collect();
    assert_eq!(shared.len(), 6, "the shared overlap");
    // Spread across the dataset: not all in the first conversations.
    let convs: BTreeSet<&str> = shared.iter().filter_map(|t| t.split('-').next()).collect();
    assert!(convs.len() >= 5, "spread over conversations: {shared:?}");
    for t in &all {
        let holders = sets.iter().filter(|s| s.contains(t)).count();
        assert_eq!(holders, if shared.contains(t) { 3 } else { 1 }, "{t}");
    }
    let sizes: Vec<usize> = sets.iter().map(|s| s.len() - 6).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 54);
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{sizes:?}"
    );

    // Each one's queue is exactly their traces.
    for (c, set) in [(&ann, &sets[0]), (&bob, &sets[1]), (&cy, &sets[2])] {
        let worked: BTreeSet<String> = work_through(&app, c).await.into_iter().collect();
        assert_eq!(&worked, set);
    }
    // Progress on the team page: done / assigned per person.
    let (_, team) = app.get_text(&admin, "/d/team/team").await;
    let rows = Page::parse(&team).texts("#team-progress tbody tr");
    assert!(
        rows.iter().any(
            |r| r.contains("ann@localhost") && r.contains(&format!("{0} / {0}", sets[0].len()))
        ),
        "{rows:?}"
    );

    // Someone not named: told so, and cannot open an assigned trace; the admin can.
    let dan = app.login("Dan", false).await;
    let (status, page) = app.get_text(&dan, "/d/team/next").await;
    assert_eq!(status, 200);
    assert!(Page::parse(&page).has("#not-assigned"), "{page}");
    let some = sets[0].iter().next().unwrap();
    assert_eq!(
        app.get_text(&dan, &format!("/d/team/t/{some}")).await.0,
        403
    );
    assert_eq!(
        app.get_text(&admin, &format!("/d/team/t/{some}")).await.0,
        200
    );
    // Ann cannot open Bob's own traces either.
    let bobs = sets[1].difference(&shared).next().unwrap();
    assert_eq!(
        app.get_text(&ann, &format!("/d/team/t/{bobs}")).await.0,
        403
    );

    // A second import: old assignments unchanged, new traces dealt, still balanced.
    let before: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.email, t.trace_id FROM trace_assignments x JOIN assignees s ON s.id = x.assignee
         JOIN traces t ON t.id = x.trace_pk ORDER BY 1, 2",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    let mut more = String::from("trace_id,flow_session,turn_number,user_message,ai_response\n");
    for c in 100..110 {
        for t in 1..=3 {
            more.push_str(&format!("n{c}-t{t},new-{c},{t},q,a\n"));
        }
    }
    let (status, page) = app
        .upload(&admin, "Team", "more.csv", more.into_bytes())
        .await;
    assert_eq!(status, 200, "{page}");
    let after: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.email, t.trace_id FROM trace_assignments x JOIN assignees s ON s.id = x.assignee
         JOIN traces t ON t.id = x.trace_pk ORDER BY 1, 2",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    let kept: Vec<&(String, String)> = after.iter().filter(|r| !r.1.starts_with('n')).collect();
    assert_eq!(kept.len(), before.len());
    assert!(
        before.iter().all(|r| after.contains(r)),
        "no earlier assignment moved"
    );
    let new_rows: Vec<&(String, String)> = after.iter().filter(|r| r.1.starts_with('n')).collect();
    assert_eq!(new_rows.len(), 30, "each new trace to exactly one");
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for (e, _) in after.iter().filter(|r| !shared.contains(&r.1)) {
        *per.entry(e.as_str()).or_default() += 1;
    }
    let counts: Vec<usize> = per.values().copied().collect();
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{per:?}"
    );
    // The new traces show up in the queues.
    let new_for_ann: BTreeSet<String> = work_through(&app, &ann).await.into_iter().collect();
    assert!(!new_for_ann.is_empty() && new_for_ann.iter().all(|t| t.starts_with('n')));

    // Clearing the assignment: everyone may code everything again.
    let res = admin
        .post(app.url("/d/team/assignment/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get_text(&ann, &format!("/d/team/t/{bobs}")).await.0,
        200
    );
    let res = app.get(&dan, "/d/team/next").await;
    assert!(
        location(&res).starts_with("/d/team/t/"),
        "Dan gets a trace now"
    );
}

/// Several annotators per trace: each non-shared trace to exactly two.
#[tokio::test]
async fn per_trace_puts_each_trace_in_several_queues() {
    let (app, admin) = app_with_team(4).await;
    let (status, page) = assign(&app, &admin, &["Ann", "Bob", "Cy"], 0, 2).await;
    assert_eq!(status, 200, "{page}");
    let per_trace: Vec<i64> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM trace_assignments GROUP BY trace_pk ORDER BY trace_pk",
    )
    .fetch_all(app.db.reader())
    .await
    .unwrap();
    assert_eq!(per_trace.len(), 12);
    assert!(per_trace.iter().all(|n| *n == 2), "{per_trace:?}");
    // Bad forms say what is wrong and change nothing.
    let res = admin
        .post(app.url("/d/team/assignment"))
        .form(&[
            ("annotators", "not-an-email"),
            ("shared", "0"),
            ("per_trace", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(Page::parse(&page).has("#assign-error"));
    assert_eq!(app.count("SELECT COUNT(*) FROM assignees").await, 3);
}

/// Others' annotations on the trace view, for annotators, assigned and unassigned leads,
/// and with admins kept blind.
#[tokio::test]
async fn nobody_sees_another_annotation_before_saving_their_own() {
    let (app, admin) = app_with_team(2).await;
    let ann = app.login("Ann", false).await;
    let bob = app.login("Bob", false).await;
    let coding_lead = app.login("Coder", true).await;
    // Everyone codes c0-t1 (all shared); Lead (the uploader) is not named.
    let (status, _) = assign(&app, &admin, &["Ann", "Bob", "Coder"], 6, 1).await;
    assert_eq!(status, 200);
    assert_eq!(
        code(&app, &ann, "c0-t1", "fail", "ann saw a wrong date").await,
        303
    );
    let others = |page: &str| Page::parse(page).texts(".others li");

    // Bob, before and after saving: never anyone else's.
    let (_, page) = app.get_text(&bob, "/d/team/t/c0-t1").await;
    assert!(others(&page).is_empty() && !page.contains("ann saw a wrong date"));
    assert_eq!(code(&app, &bob, "c0-t1", "fail", "bob's note").await, 303);
    let (_, page) = app.get_text(&bob, "/d/team/t/c0-t1").await;
    assert!(others(&page).is_empty() && !page.contains("ann saw a wrong date"));

    // A lead who codes this trace: blind until their own save.
    let (_, page) = app.get_text(&coding_lead, "/d/team/t/c0-t1").await;
    assert!(others(&page).is_empty(), "{:?}", others(&page));
    assert_eq!(
        code(&app, &coding_lead, "c0-t1", "fail", "coder's note").await,
        303
    );
    let (_, page) = app.get_text(&coding_lead, "/d/team/t/c0-t1").await;
    assert_eq!(others(&page).len(), 2, "{page}");
    assert!(page.contains("ann saw a wrong date"));

    // A lead outside the assignment codes nothing here: sees everyone's at once.
    let (_, page) = app.get_text(&admin, "/d/team/t/c0-t1").await;
    assert_eq!(others(&page).len(), 3);

    // Admins kept blind: nobody else's, for any lead.
    let res = admin
        .post(app.url("/d/team/blind"))
        .form(&[("blind", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    for lead in [&admin, &coding_lead] {
        let (_, page) = app.get_text(lead, "/d/team/t/c0-t1").await;
        assert!(others(&page).is_empty());
    }
    // History: Bob sees his own revisions only.
    let (status, page) = app.get_text(&bob, "/d/team/t/c0-t1/history").await;
    assert_eq!(status, 200);
    let rows = Page::parse(&page).texts("#revisions tbody tr");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("bob's note"));
}

/// The agreement figures over HTTP equal the hand computation of the fixture in
/// `domain::review`'s unit test: three annotators, t1 P P P, t2 P F P, t3 F F (Ann, Bob),
/// t4 P F (Bob, Cy), t5 P (Ann alone).
#[tokio::test]
async fn agreement_figures_equal_the_hand_computation() {
    let (app, admin) = app_with_team(2).await;
    let [ann, bob, cy] = [
        app.login("Ann", false).await,
        app.login("Bob", false).await,
        app.login("Cy", false).await,
    ];
    let codings: [(&reqwest::Client, &str, &str); 11] = [
        (&ann, "c0-t1", "pass"),
        (&bob, "c0-t1", "pass"),
        (&cy, "c0-t1", "pass"),
        (&ann, "c0-t2", "pass"),
        (&bob, "c0-t2", "fail"),
        (&cy, "c0-t2", "pass"),
        (&ann, "c0-t3", "fail"),
        (&bob, "c0-t3", "fail"),
        (&bob, "c1-t1", "pass"),
        (&cy, "c1-t1", "fail"),
        (&ann, "c1-t2", "pass"),
    ];
    for (c, trace, verdict) in codings {
        assert_eq!(code(&app, c, trace, verdict, "n").await, 303);
    }
    let res = app.get(&admin, "/d/team/agreement.json").await;
    assert_eq!(res.status(), 200);
    let json: serde_json::Value = res.json().await.unwrap();
    let v = &json["verdict"];
    assert_eq!(v["items"], 4);
    assert_eq!(v["annotators"], 3);
    let close = |x: &serde_json::Value, want: f64| (x.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&v["percent_agreement"], (7.0 / 3.0) / 4.0), "{v}");
    assert!(close(&v["fleiss_kappa"], -0.2), "{v}");
    assert!(v["krippendorff_alpha"].is_number());
    let pair = v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["a"] == "ann@localhost" && p["b"] == "bob@localhost")
        .expect("the Ann–Bob pair")
        .clone();
    assert_eq!(pair["items"], 3);
    assert!(close(&pair["percent_agreement"], 2.0 / 3.0));
    assert!(close(&pair["cohen_kappa"], 0.4), "{pair}");
    assert!(json["failure_modes"].is_array());
    // The page shows the same figures, the intervals and the readings.
    let (status, page) = app.get_text(&admin, "/d/team/agreement").await;
    assert_eq!(status, 200);
    let page = Page::parse(&page);
    assert!(
        page.text("#stat-fleiss").contains("-0.200"),
        "{}",
        page.text("#stat-fleiss")
    );
    assert!(page.text("#stat-fleiss").contains("poor"));
    assert!(page.has("#pair-matrix"));
    assert!(
        page.text("#method-title")
            .contains("How these numbers are computed")
    );
}

/// Disagreements are listed; a lead settles one; the reference labels hold adjudicated and
/// unanimous traces, never one still in disagreement or coded by one person.
#[tokio::test]
async fn disagreements_are_settled_into_reference_labels() {
    let (app, admin) = app_with_team(2).await;
    let ann = app.login("Ann", false).await;
    let bob = app.login("Bob", false).await;
    for (c, trace, verdict) in [
        (&ann, "c0-t1", "pass"),
        (&bob, "c0-t1", "pass"), // unanimous
        (&ann, "c0-t2", "pass"),
        (&bob, "c0-t2", "fail"), // disagreement, to settle
        (&ann, "c0-t3", "fail"),
        (&bob, "c0-t3", "pass"), // disagreement, left open
        (&ann, "c1-t1", "fail"), // one annotator only
    ] {
        assert_eq!(code(&app, c, trace, verdict, "why").await, 303);
    }
    let (status, page) = app.get_text(&admin, "/d/team/review").await;
    assert_eq!(status, 200);
    let listed: Vec<String> = Page::parse(&page)
        .texts("#disagreements h2")
        .into_iter()
        .collect();
    assert_eq!(listed, ["c0-t2", "c0-t3"]);
    let (status, page) = app.get_text(&admin, "/d/team/review/c0-t2").await;
    assert_eq!(status, 200);
    let page = Page::parse(&page);
    assert_eq!(page.count("#codings .coding"), 2, "side by side");
    // A reason is required.
    let settle = |reason: &'static str| {
        admin
            .post(app.url("/d/team/t/c0-t2/adjudicate"))
            .form(&[
                ("verdict", "fail"),
                ("failure_modes", ""),
                ("reason", reason),
            ])
            .send()
    };
    let res = settle("  ").await.unwrap();
    assert_eq!(res.status(), 422);
    let res = settle("the date was wrong").await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        "/d/team/review/c0-t3",
        "on to the next open one"
    );
    let (_, page) = app.get_text(&admin, "/d/team/review").await;
    assert_eq!(Page::parse(&page).texts("#disagreements h2"), ["c0-t3"]);

    let res = app.get(&admin, "/d/team/reference.csv").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "trace_id",
            "verdict",
            "failure_modes",
            "source",
            "annotators",
            "adjudicated_by",
            "reason",
            "split"
        ]
    );
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    // The split (last column) is checked by its own test; here the labels themselves.
    let rows: Vec<Vec<String>> = records.iter().map(|r| r[..7].to_vec()).collect();
    assert!(
        records
            .iter()
            .all(|r| ["train", "dev", "test"].contains(&r[7].as_str()))
    );
    assert_eq!(
        rows,
        [
            vec![
                "c0-t1",
                "Pass",
                "",
                "unanimous",
                "ann@localhost, bob@localhost",
                "",
                ""
            ],
            vec![
                "c0-t2",
                "Fail",
                "",
                "adjudicated",
                "ann@localhost, bob@localhost",
                "lead@localhost",
                "the date was wrong"
            ],
        ]
    );
    // The trace's history shows the decision to leads.
    let (_, page) = app.get_text(&admin, "/d/team/t/c0-t2/history").await;
    assert!(
        Page::parse(&page)
            .text("#decisions")
            .contains("the date was wrong")
    );
    // The command line lists the same labels.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args(["reference", "--dataset", "Team"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
}

/// Annotators get 403 on every lead route; the lead gets the pages.
#[tokio::test]
async fn annotators_cannot_reach_review_routes() {
    let (app, admin) = app_with_team(1).await;
    let ann = app.login("Ann", false).await;
    for path in [
        "/d/team/team",
        "/d/team/agreement",
        "/d/team/agreement.json",
        "/d/team/review",
        "/d/team/review/c0-t1",
        "/d/team/reference.csv",
    ] {
        assert_eq!(app.get_text(&ann, path).await.0, 403, "{path}");
        assert_eq!(app.get_text(&admin, path).await.0, 200, "{path}");
    }
    for path in [
        "/d/team/t/c0-t1/adjudicate",
        "/d/team/assignment",
        "/d/team/assignment/clear",
        "/d/team/blind",
    ] {
        let res = ann
            .post(app.url(path))
            .form(&[
                ("verdict", "pass"),
                ("reason", "x"),
                ("annotators", "ann@localhost"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM adjudications").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM assignees").await, 0);
}

/// The command line assigns and clears.
#[tokio::test]
async fn the_command_line_assigns_and_clears() {
    let (app, _admin) = app_with_team(3).await;
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "assign",
        "--dataset",
        "Team",
        "--annotators",
        "ann@localhost,bob@localhost",
        "--shared",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 shared traces"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM trace_assignments").await,
        3 * 2 + 6
    );
    if backend() == "postgres" {
        // The planner's statistics know the new rows at once (not after autovacuum).
        assert_eq!(
            app.count(
                "SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE relname = 'trace_assignments'"
            )
            .await,
            3 * 2 + 6,
            "trace_assignments analyzed after the deal"
        );
    }
    let out = cli(&["assign", "--dataset", "Team", "--annotators", "nope"]);
    assert!(!out.status.success());
    let out = cli(&["assign", "--dataset", "Team", "--clear"]);
    assert!(out.status.success());
    assert_eq!(app.count("SELECT COUNT(*) FROM trace_assignments").await, 0);
}
