//! Acceptance tests for the annotation loop: Pass & Next, Fail, Skip, conflicts, progress,
//! and per-annotator separation.

use crate::helpers::*;

/// An app with one dataset "loop" of `convs` conversations × `turns` turns.
async fn app_with_dataset(convs: usize, turns: usize) -> TestApp {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Loop", "loop.csv", simple_csv(convs, turns))
        .await;
    assert_eq!(status, 200, "{page}");
    app
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn push_url(res: &reqwest::Response) -> String {
    res.headers()
        .get("hx-push-url")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn pass_and_next_answers_with_the_next_trace_in_one_request() {
    let app = app_with_dataset(2, 2).await;
    let ann = app.login("Ann", false).await;
    let first = app.get(&ann, "/d/loop/next").await;
    assert_eq!(first.status(), 303);
    assert_eq!(location(&first), "/d/loop/t/c0-t1");

    // HTMX: the next trace, rendered, in the same response, with its URL pushed.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(push_url(&res), "/d/loop/t/c0-t2");
    let body = res.text().await.unwrap();
    assert_eq!(shown_trace(&body).as_deref(), Some("c0-t2"));
    assert!(body.contains("Saved Pass for c0-t1."), "save announced");
    assert!(
        !Page::parse(&body).is_whole_page(),
        "a fragment, not a whole page"
    );

    // Without JavaScript: a 303 to the next trace.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t2",
            &[("verdict", "pass"), ("version", "0")],
            false,
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/d/loop/t/c1-t1");
}

#[tokio::test]
async fn passing_through_a_dataset_ends_on_all_done_and_others_start_at_the_beginning() {
    let app = app_with_dataset(3, 3).await;
    let ann = app.login("Ann", false).await;
    let mut current = "c0-t1".to_string();
    let mut seen = vec![];
    loop {
        seen.push(current.clone());
        let res = app
            .annotate(
                &ann,
                "loop",
                &current,
                &[("verdict", "pass"), ("version", "0")],
                true,
            )
            .await;
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        match shown_trace(&body) {
            Some(next) => current = next,
            None => {
                assert!(
                    Page::parse(&body).has("#all-done"),
                    "ends on the all-done page"
                );
                assert!(body.contains("/d/loop/export.csv"), "offers export");
                break;
            }
        }
        assert!(seen.len() <= 9, "no trace twice");
    }
    assert_eq!(seen.len(), 9);
    let (_, done) = app.get_text(&ann, "/d/loop/next").await;
    assert!(done.contains("All done in Loop"));

    let bob = app.login("Bob", false).await;
    let res = app.get(&bob, "/d/loop/next").await;
    assert_eq!(
        location(&res),
        "/d/loop/t/c0-t1",
        "a second annotator starts at the first trace"
    );
}

#[tokio::test]
async fn fail_needs_a_note_and_keeps_codes_and_comments_and_revisions() {
    let app = app_with_dataset(1, 3).await;
    let ann = app.login("Ann", false).await;

    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[
                ("verdict", "fail"),
                ("note", "  "),
                ("codes", "tone"),
                ("version", "0"),
            ],
            true,
        )
        .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("A Fail needs a first-failure note"),
        "refused inline"
    );
    assert_eq!(
        shown_trace(&body).as_deref(),
        Some("c0-t1"),
        "stays on the trace"
    );
    assert_eq!(
        Page::parse(&body).attr("#codes", "value").as_deref(),
        Some("tone"),
        "what was typed is kept"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations").await,
        0,
        "nothing saved"
    );

    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[
                ("verdict", "fail"),
                ("note", "wrong order id"),
                ("codes", "lookup, hallucination, lookup"),
                ("comments", "maybe the tool"),
                ("version", "0"),
            ],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, page) = app.get_text(&ann, "/d/loop/t/c0-t1").await;
    assert!(page.contains("status-fail"));
    assert!(page.contains("wrong order id"));
    assert_eq!(
        Page::parse(&page).attr("#codes", "value").as_deref(),
        Some("lookup, hallucination"),
        "codes de-duplicated and kept"
    );
    assert!(page.contains("maybe the tool"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_codes").await,
        2,
        "codes kept as rows"
    );

    // Fail → Pass (confirmed: it replaces a different verdict) keeps the earlier revision.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[("verdict", "pass"), ("version", "1"), ("replace", "1")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 1);
    assert_eq!(app.count("SELECT version FROM annotations").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions").await,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions WHERE verdict = 'fail' AND first_failure_note = 'wrong order id'").await,
        1,
        "the Fail revision is still there"
    );
    let (_, list) = app.get_text(&ann, "/d/loop/traces").await;
    let filters = Page::parse(&list).texts(".filters a");
    assert!(
        filters.contains(&"Fail 0".to_string()),
        "counts moved from fail to pass: {filters:?}"
    );
    assert!(filters.contains(&"Pass 1".to_string()), "{filters:?}");
}

#[tokio::test]
async fn a_stale_save_is_refused_and_the_newer_annotation_is_unchanged() {
    let app = app_with_dataset(1, 2).await;
    let ann = app.login("Ann", false).await;
    // Tab A and tab B both open the trace at version 0; A saves first.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[
                ("verdict", "fail"),
                ("note", "from tab A"),
                ("version", "0"),
            ],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(res.status(), 409);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Not saved: this annotation changed elsewhere"),
        "{body}"
    );
    assert!(body.contains("from tab A"), "shows the saved version");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations WHERE verdict = 'fail'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT version FROM annotations").await, 1);

    // An edit of version 1 then succeeds; editing version 1 again is stale.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[("verdict", "fail"), ("note", "edited"), ("version", "1")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t1",
            &[("verdict", "fail"), ("note", "stale"), ("version", "1")],
            false,
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions").await,
        2
    );
    let note: String = sqlx::query_scalar("SELECT first_failure_note FROM annotations")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(note, "edited");
}

#[tokio::test]
async fn next_unannotated_skips_annotated_traces_and_wraps_to_skipped_ones() {
    let app = app_with_dataset(1, 5).await;
    let ann = app.login("Ann", false).await;
    // Annotate t3 out of order, then skip t1.
    app.annotate(
        &ann,
        "loop",
        "c0-t3",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    let res = ann
        .get(app.url("/d/loop/next?after=c0-t1"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        push_url(&res),
        "/d/loop/t/c0-t2",
        "skip goes to the next unannotated"
    );
    // Pass t2: t3 is annotated, so next is t4.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t2",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(push_url(&res), "/d/loop/t/c0-t4");
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t4",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(push_url(&res), "/d/loop/t/c0-t5");
    // After the last trace it wraps around to the skipped t1.
    let res = app
        .annotate(
            &ann,
            "loop",
            "c0-t5",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(push_url(&res), "/d/loop/t/c0-t1");
    // Skipping the only trace left stays on it and says so.
    let res = ann
        .get(app.url("/d/loop/next?after=c0-t1"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert_eq!(shown_trace(&body).as_deref(), Some("c0-t1"));
    assert!(body.contains("only trace you have not annotated"));
    // Entering the dataset goes straight to t1 (the low-water mark never passes it).
    let res = app.get(&ann, "/d/loop/next").await;
    assert_eq!(location(&res), "/d/loop/t/c0-t1");
}

#[tokio::test]
async fn new_traces_imported_into_an_annotated_conversation_are_found() {
    let app = app_with_dataset(1, 2).await;
    let ann = app.login("Ann", false).await;
    app.annotate(
        &ann,
        "loop",
        "c0-t1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    app.annotate(
        &ann,
        "loop",
        "c0-t2",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    let (_, done) = app.get_text(&ann, "/d/loop/next").await;
    assert!(done.contains("All done"));
    // A later file adds turn 3 of the same conversation.
    let admin = app.login("Admin", true).await;
    let more = b"trace_id,flow_session,turn_number,user_message,ai_response\nc0-t3,conv-0,3,q,a\n"
        .to_vec();
    let (status, _) = app.upload(&admin, "Loop", "more.csv", more).await;
    assert_eq!(status, 200);
    let res = app.get(&ann, "/d/loop/next").await;
    assert_eq!(location(&res), "/d/loop/t/c0-t3");
}

#[tokio::test]
async fn progress_counts_equal_the_annotations() {
    let app = app_with_dataset(2, 3).await;
    let ann = app.login("Ann", false).await;
    for (id, verdict) in [
        ("c0-t1", "pass"),
        ("c0-t2", "fail"),
        ("c1-t1", "pass"),
        ("c1-t3", "pass"),
    ] {
        let mut f = vec![("verdict", verdict), ("version", "0")];
        if verdict == "fail" {
            f.push(("note", "bad"));
        }
        let res = app.annotate(&ann, "loop", id, &f, true).await;
        assert_eq!(res.status(), 200);
    }
    let (_, dash) = app.get_text(&ann, "/").await;
    let progress = Page::parse(&dash).text(".progress strong");
    assert_eq!(progress, "4", "{dash}");
    assert!(dash.contains("3 pass") && dash.contains("1 fail"));
    assert!(dash.contains("pass rate 75%"));
    let passes = app
        .count("SELECT COUNT(*) FROM annotations WHERE verdict = 'pass'")
        .await;
    let fails = app
        .count("SELECT COUNT(*) FROM annotations WHERE verdict = 'fail'")
        .await;
    assert_eq!((passes, fails), (3, 1));
    // Another annotator's progress is separate.
    let bob = app.login("Bob", false).await;
    let (_, dash) = app.get_text(&bob, "/").await;
    assert_eq!(Page::parse(&dash).text(".progress strong"), "0");
}

#[tokio::test]
async fn annotators_see_and_change_only_their_own_annotations() {
    let app = app_with_dataset(1, 2).await;
    let ann = app.login("Ann", false).await;
    let bob = app.login("Bob", false).await;
    app.annotate(
        &ann,
        "loop",
        "c0-t1",
        &[
            ("verdict", "fail"),
            ("note", "ann's secret note"),
            ("version", "0"),
        ],
        true,
    )
    .await;

    // Bob sees the trace as not annotated, without Ann's note, in the page and the list.
    let (_, page) = app.get_text(&bob, "/d/loop/t/c0-t1").await;
    assert!(!page.contains("ann&#39;s secret note") && !page.contains("ann's secret note"));
    assert!(page.contains("not annotated yet"));
    let (_, list) = app.get_text(&bob, "/d/loop/traces?status=fail").await;
    assert!(Page::parse(&list).has("#empty-list"));

    // Bob's save (even claiming Ann's version) creates his own annotation; Ann's is untouched.
    let res = app
        .annotate(
            &bob,
            "loop",
            "c0-t1",
            &[("verdict", "pass"), ("version", "1")],
            true,
        )
        .await;
    assert_eq!(res.status(), 409, "Bob has no version 1 to edit");
    let res = app
        .annotate(
            &bob,
            "loop",
            "c0-t1",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations WHERE verdict = 'fail' AND version = 1")
            .await,
        1
    );

    // Bob's export holds only his row; an admin sees both annotations on the trace page
    // once they have saved their own (blind coding: not before).
    let export = app
        .get(&bob, "/d/loop/export.csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(!export.contains("ann's secret note"));
    let admin = app.login("Admin", true).await;
    let (_, page) = app.get_text(&admin, "/d/loop/t/c0-t1").await;
    assert!(
        !page.contains("Other annotators"),
        "blind before their own save"
    );
    assert!(!page.contains("ann&#39;s secret note"));
    let res = app
        .annotate(
            &admin,
            "loop",
            "c0-t1",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, page) = app.get_text(&admin, "/d/loop/t/c0-t1").await;
    assert!(page.contains("Other annotators"));
    assert!(
        page.contains("ann&#39;s secret note"),
        "admins see everyone's work"
    );
}

#[tokio::test]
async fn unknown_datasets_and_traces_are_404_pages() {
    let app = app_with_dataset(1, 1).await;
    let ann = app.login("Ann", false).await;
    let (status, page) = app.get_text(&ann, "/d/nope/next").await;
    assert_eq!(status, 404);
    assert!(page.contains("There is no dataset"));
    let (status, page) = app.get_text(&ann, "/d/loop/t/missing").await;
    assert_eq!(status, 404);
    assert!(page.contains("There is no trace"));
    let res = app
        .annotate(
            &ann,
            "loop",
            "missing",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(res.status(), 404);
    // To HTMX, an error is a fragment for #main, not a page nested inside the page.
    let body = res.text().await.unwrap();
    assert!(body.contains("There is no trace"), "{body}");
    assert!(
        !Page::parse(&body).is_whole_page() && !body.contains("<header"),
        "{body}"
    );
}

#[tokio::test]
async fn a_signed_out_form_post_saves_nothing_and_returns_to_its_page_after_sign_in() {
    let app = app_with_dataset(1, 2).await;
    let anon = client();
    let res = anon
        .post(app.url("/d/loop/t/c0-t1/annotate"))
        .header("Referer", app.url("/d/loop/t/c0-t1"))
        .form(&[("verdict", "pass"), ("version", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        "/login?next=%2Fd%2Floop%2Ft%2Fc0-t1",
        "back to the trace, not to the POST-only URL"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 0);
    // A GET keeps its query string.
    let res = anon
        .get(app.url("/d/loop/traces?status=todo"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&res),
        "/login?next=%2Fd%2Floop%2Ftraces%3Fstatus%3Dtodo"
    );
}

/// Saves that reach the database together — on SQLite one shared transaction with a
/// savepoint each (group commit), on Postgres parallel transactions — keep their own
/// outcomes: every save is stored once with its revision, counters and resume point; of two
/// saves of the same annotation from version 0 exactly one wins and the other is a conflict;
/// a save that fails (a trace that does not exist) fails alone.
#[tokio::test]
async fn saves_arriving_together_keep_their_own_outcomes() {
    use tracecoder::db::decisions::SessionTag;
    use tracecoder::db::saves::{self as annotations, SaveOutcome, TraceRef};
    use tracecoder::db::scope::Scope;
    use tracecoder::domain::{AnnotationInput, DatasetId, SortKey, TracePk, UserId};

    let app = app_with_dataset(3, 2).await;
    for i in 0..8 {
        app.login(&format!("Annotator {i}"), false).await;
    }
    let users: Vec<UserId> =
        sqlx::query_scalar("SELECT id FROM users WHERE name LIKE 'Annotator %' ORDER BY id")
            .fetch_all(app.db.reader())
            .await
            .unwrap();
    let traces: Vec<(TracePk, DatasetId, SortKey)> =
        sqlx::query_as("SELECT id, dataset_id, sort_key FROM traces ORDER BY sort_key")
            .fetch_all(app.db.reader())
            .await
            .unwrap();
    assert_eq!((users.len(), traces.len()), (8, 6));
    let target = |&(pk, dataset_id, sort_key): &(TracePk, DatasetId, SortKey)| TraceRef {
        pk,
        dataset_id,
        sort_key,
    };
    let pass = AnnotationInput::parse("pass", "", "", "", 0).unwrap();
    let late_fail = AnnotationInput::parse("fail", "late", "tone", "", 0).unwrap();

    let scopes: Vec<Scope> = users.iter().map(|&u| Scope::own(traces[0].1, u)).collect();
    let mut saves = Vec::new();
    for scope in &scopes {
        for trace in &traces {
            saves.push(annotations::save(
                &app.db,
                target(trace),
                scope,
                &pass,
                SessionTag(1),
            ));
        }
    }
    // The first annotator's first trace again, also from version 0.
    saves.push(annotations::save(
        &app.db,
        target(&traces[0]),
        &scopes[0],
        &late_fail,
        SessionTag(1),
    ));
    // A trace that does not exist.
    let missing = TraceRef {
        pk: TracePk(999_999),
        ..target(&traces[0])
    };
    saves.push(annotations::save(
        &app.db,
        missing,
        &scopes[1],
        &pass,
        SessionTag(1),
    ));
    let answers = futures_util::future::join_all(saves).await;

    let saved = |i: usize| matches!(answers[i], Ok(SaveOutcome::Saved { version: 1 }));
    let conflict = |i: usize| matches!(answers[i], Ok(SaveOutcome::Conflict { .. }));
    let (first, twin) = (0, users.len() * traces.len());
    assert!(
        (saved(first) && conflict(twin)) || (conflict(first) && saved(twin)),
        "exactly one of two version-0 saves wins: {:?} / {:?}",
        answers[first],
        answers[twin]
    );
    let others_saved = (1..twin).filter(|&i| saved(i)).count();
    assert_eq!(others_saved, twin - 1, "{answers:?}");
    assert!(answers[twin + 1].is_err(), "{:?}", answers[twin + 1]);

    let stored = users.len() * traces.len();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations").await as usize,
        stored
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_revisions").await as usize,
        stored
    );
    assert_eq!(
        app.count("SELECT CAST(SUM(passes + fails) AS BIGINT) FROM annotation_counts")
            .await as usize,
        stored
    );
    let fail_won = saved(twin);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations WHERE verdict = 'fail'")
            .await,
        i64::from(fail_won)
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotation_codes").await,
        i64::from(fail_won),
        "open codes only of the winning save"
    );
    assert_eq!(
        app.count("SELECT CAST(SUM(fails) AS BIGINT) FROM annotation_counts")
            .await,
        i64::from(fail_won)
    );
    // Every annotator is done: each save saw the ones before it when moving its resume point.
    for (i, name) in (0..8).map(|i| (i, format!("Annotator {i}"))) {
        let c = app.login(&name, false).await;
        let (status, page) = app.get_text(&c, "/d/loop/next").await;
        assert_eq!(status, 200, "annotator {i} is not sent to a trace");
        assert!(Page::parse(&page).has("#all-done"), "annotator {i}: {page}");
    }
}
