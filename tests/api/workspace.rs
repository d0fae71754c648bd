//! The annotator's workspace over HTTP: a verdict that replaces another asks first, undo,
//! skips recorded as their own status, "Continue" resuming, Markdown and metadata links.

use crate::helpers::*;

/// An app with one dataset "ws" of `convs` conversations × `turns` turns.
async fn app_with_dataset(convs: usize, turns: usize) -> TestApp {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "WS", "ws.csv", simple_csv(convs, turns))
        .await;
    assert_eq!(status, 200, "{page}");
    app
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// (verdict, note, version) of Ann's annotation of `trace`, if any.
async fn saved(app: &TestApp, trace: &str) -> Option<(String, String, i64)> {
    sqlx::query_as(
        "SELECT a.verdict, a.first_failure_note, a.version FROM annotations a
         JOIN traces t ON t.id = a.trace_pk JOIN users u ON u.id = a.user_id
         WHERE t.trace_id = $1 AND u.name = 'Ann'",
    )
    .bind(trace)
    .fetch_optional(app.db.reader())
    .await
    .expect("annotation query")
}

/// How many skips of this trace are recorded (anyone's).
async fn skips_of(app: &TestApp, trace: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM skips s JOIN traces t ON t.id = s.trace_pk WHERE t.trace_id = $1",
    )
    .bind(trace)
    .fetch_one(app.db.reader())
    .await
    .expect("skips")
}

async fn post_htmx(app: &TestApp, c: &reqwest::Client, path: &str) -> reqwest::Response {
    c.post(app.url(path))
        .header("HX-Request", "true")
        .form(&[("x", "")])
        .send()
        .await
        .expect("POST")
}

async fn fail(app: &TestApp, c: &reqwest::Client, trace: &str, note: &str, version: &str) {
    let res = app
        .annotate(
            c,
            "ws",
            trace,
            &[
                ("verdict", "fail"),
                ("note", note),
                ("codes", "wrong date, tone"),
                ("comments", "see the refund policy"),
                ("version", version),
            ],
            true,
        )
        .await;
    assert_eq!(res.status(), 200, "fail saved");
}

#[tokio::test]
async fn a_verdict_that_replaces_another_asks_first_and_keeps_the_old_one_in_history() {
    let app = app_with_dataset(1, 3).await;
    let ann = app.login("Ann", false).await;
    fail(&app, &ann, "c0-t1", "promised a refund", "0").await;

    // `p` on the trace saved as Fail: refused, the same trace, asking to confirm.
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t1",
            &[("verdict", "pass"), ("version", "1")],
            true,
        )
        .await;
    assert_eq!(res.status(), 409);
    let body = res.text().await.unwrap();
    let page = Page::parse(&body);
    assert_eq!(shown_trace(&body).as_deref(), Some("c0-t1"));
    assert!(page.has("#confirm-replace"), "asks to confirm: {body}");
    assert!(
        page.text("#confirm-replace").contains("promised a refund"),
        "says what would be replaced"
    );
    assert_eq!(
        page.attr("#pass-form input[name=replace]", "value")
            .as_deref(),
        Some("1"),
        "pressing p again confirms"
    );
    assert_eq!(
        page.attr("#confirm-replace-btn", "form").as_deref(),
        Some("pass-form"),
        "a clear button confirms too"
    );
    assert_eq!(
        saved(&app, "c0-t1").await,
        Some(("fail".into(), "promised a refund".into(), 1)),
        "nothing was replaced yet"
    );
    // The fail form keeps showing what is saved, not an empty note.
    assert_eq!(page.text("#note"), "promised a refund");

    // Confirmed: replaced, and the earlier note, codes and comments are in the history.
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t1",
            &[("verdict", "pass"), ("version", "1"), ("replace", "1")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t2");
    assert_eq!(
        saved(&app, "c0-t1").await,
        Some(("pass".into(), "".into(), 2))
    );
    let (status, history) = app.get_text(&ann, "/d/ws/t/c0-t1/history").await;
    assert_eq!(status, 200);
    let rows = Page::parse(&history).texts("#revisions tbody tr");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("fail")
            && rows[0].contains("promised a refund")
            && rows[0].contains("wrong date, tone")
            && rows[0].contains("see the refund policy"),
        "{rows:?}"
    );
    assert!(rows[1].contains("pass"), "{rows:?}");

    // The same verdict again needs no confirmation.
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t1",
            &[("verdict", "pass"), ("version", "2")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);

    // Fail over a Pass asks too, and keeps what was typed.
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t1",
            &[
                ("verdict", "fail"),
                ("note", "typed again"),
                ("version", "3"),
            ],
            true,
        )
        .await;
    assert_eq!(res.status(), 409);
    let body = res.text().await.unwrap();
    let page = Page::parse(&body);
    assert!(page.has("#confirm-replace"));
    assert_eq!(page.text("#note"), "typed again");
    assert_eq!(
        page.attr("#fail-form input[name=replace]", "value")
            .as_deref(),
        Some("1")
    );
    assert_eq!(page.attr("#fail-form", "hidden"), None, "fail form open");
}

#[tokio::test]
async fn without_javascript_the_confirmation_is_a_page_with_a_button() {
    let app = app_with_dataset(1, 2).await;
    let ann = app.login("Ann", false).await;
    fail(&app, &ann, "c0-t1", "wrong", "0").await;
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t1",
            &[("verdict", "pass"), ("version", "1")],
            false,
        )
        .await;
    assert_eq!(res.status(), 409);
    let page = Page::parse(&res.text().await.unwrap());
    assert!(page.is_whole_page());
    assert!(page.has("#confirm-replace-btn"));
}

#[tokio::test]
async fn undo_takes_back_the_last_decisions_of_this_session_one_by_one() {
    let app = app_with_dataset(1, 4).await;
    let ann = app.login("Ann", false).await;
    fail(&app, &ann, "c0-t1", "first", "0").await;
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t2",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    // Replace t1's Fail with a Pass (confirmed).
    app.annotate(
        &ann,
        "ws",
        "c0-t1",
        &[("verdict", "pass"), ("version", "1"), ("replace", "1")],
        true,
    )
    .await;
    let progress = |body: &str| Page::parse(body).text(".progress");

    // Undo 1: the replacement — Fail is back (a new version), the Pass stays in the history.
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t1");
    let body = res.text().await.unwrap();
    assert_eq!(shown_trace(&body).as_deref(), Some("c0-t1"));
    assert!(body.contains("your earlier Fail is back"), "{body}");
    assert_eq!(
        saved(&app, "c0-t1").await,
        Some(("fail".into(), "first".into(), 3))
    );
    assert!(
        progress(&body).starts_with("2 of 4 done"),
        "{}",
        progress(&body)
    );
    // The counters follow every write by trigger: t1 back to Fail, t2 a Pass.
    assert_eq!(pass_fail_counts(&app).await, (1, 1));

    // Undo 2: the Pass of t2 — t2 is to do again, its save kept in the history.
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t2");
    let body = res.text().await.unwrap();
    assert!(body.contains("It is to do again"), "{body}");
    assert_eq!(saved(&app, "c0-t2").await, None);
    assert!(
        progress(&body).starts_with("1 of 4 done"),
        "{}",
        progress(&body)
    );
    assert!(
        Page::parse(&body)
            .text("#annotate-title ~ .current")
            .contains("todo"),
        "shown as to do"
    );
    let (_, history) = app.get_text(&ann, "/d/ws/t/c0-t2/history").await;
    let rows = Page::parse(&history).texts("#revisions tbody tr");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("pass") && rows[0].contains("undone"),
        "{rows:?}"
    );
    // Next unannotated finds t2 again, and the list counts it as to do.
    let res = app.get(&ann, "/d/ws/next").await;
    assert_eq!(header(&res, "location"), "/d/ws/t/c0-t2");
    let (_, list) = app.get_text(&ann, "/d/ws/traces?status=todo").await;
    let todo: Vec<String> = Page::parse(&list)
        .texts(".trace-list tbody tr td:nth-child(2)")
        .into_iter()
        .collect();
    assert_eq!(todo, ["c0-t2", "c0-t3", "c0-t4"]);

    // Undo 3: t1's Fail — the chain of undos reaches the first save.
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t1");
    assert_eq!(saved(&app, "c0-t1").await, None);
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM annotation_codes").await, 0);
    assert_eq!(pass_fail_counts(&app).await, (0, 0));

    // Nothing left: said in the flash area, nothing else changes.
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "hx-retarget"), "#flash");
    assert!(Page::parse(&res.text().await.unwrap()).has("#nothing-to-undo"));

    // Saving t1 again after the undo starts afresh (version 1), the undone ones still listed.
    fail(&app, &ann, "c0-t1", "second try", "0").await;
    assert_eq!(
        saved(&app, "c0-t1").await,
        Some(("fail".into(), "second try".into(), 1))
    );
    let (_, history) = app.get_text(&ann, "/d/ws/t/c0-t1/history").await;
    let rows = Page::parse(&history).texts("#revisions tbody tr");
    assert_eq!(
        rows.len(),
        4,
        "3 undone revisions and the new save: {rows:?}"
    );
}

#[tokio::test]
async fn undo_is_per_session_and_never_overwrites_a_later_save() {
    let app = app_with_dataset(1, 3).await;
    let ann = app.login("Ann", false).await;
    app.annotate(
        &ann,
        "ws",
        "c0-t1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    // A new sign-in is a new session: it has nothing to undo.
    let later = app.login("Ann", false).await;
    let res = post_htmx(&app, &later, "/d/ws/undo").await;
    assert_eq!(header(&res, "hx-retarget"), "#flash");
    assert!(saved(&app, "c0-t1").await.is_some());

    // Saved again in the second session, then undone from the first: the later save wins.
    app.annotate(
        &later,
        "ws",
        "c0-t1",
        &[
            ("verdict", "pass"),
            ("note", ""),
            ("comments", "x"),
            ("version", "1"),
        ],
        true,
    )
    .await;
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    let body = res.text().await.unwrap();
    assert!(body.contains("Not undone"), "{body}");
    assert_eq!(
        saved(&app, "c0-t1").await.map(|s| s.2),
        Some(2),
        "the later save stands"
    );
}

#[tokio::test]
async fn skips_are_recorded_passed_over_and_offered_at_the_end() {
    let app = app_with_dataset(1, 4).await;
    let ann = app.login("Ann", false).await;
    // Skip t1 and t2, pass t3.
    let res = post_htmx(&app, &ann, "/d/ws/t/c0-t1/skip").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t2");
    post_htmx(&app, &ann, "/d/ws/t/c0-t2/skip").await;
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t3",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t4");
    // Entering the dataset ("Continue") resumes after the latest decision, not at t1 —
    // after signing in again too.
    let res = app.get(&ann, "/d/ws/next").await;
    assert_eq!(header(&res, "location"), "/d/ws/t/c0-t4");
    let again = app.login("Ann", false).await;
    let res = app.get(&again, "/d/ws/next").await;
    assert_eq!(header(&res, "location"), "/d/ws/t/c0-t4");

    // The list: skipped is a status of its own, filterable, not counted as done.
    let (_, list) = app.get_text(&ann, "/d/ws/traces").await;
    let page = Page::parse(&list);
    let statuses = page.texts(".trace-list tbody tr td:first-child");
    assert_eq!(statuses, ["skipped", "skipped", "pass", "todo"]);
    assert!(page.text(".progress").starts_with("1 of 4 done"));
    let (_, skipped) = app.get_text(&ann, "/d/ws/traces?status=skipped").await;
    let ids = Page::parse(&skipped).texts(".trace-list tbody tr td:nth-child(2)");
    assert_eq!(ids, ["c0-t1", "c0-t2"]);
    let (_, todo) = app.get_text(&ann, "/d/ws/traces?status=todo").await;
    let ids = Page::parse(&todo).texts(".trace-list tbody tr td:nth-child(2)");
    assert_eq!(ids, ["c0-t4"]);

    // The last one done: the done page offers the two skipped traces.
    let res = app
        .annotate(
            &ann,
            "ws",
            "c0-t4",
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    let body = res.text().await.unwrap();
    let page = Page::parse(&body);
    assert!(page.text("#skipped-offer").contains("2 skipped"), "{body}");
    assert_eq!(
        page.attr("#review-skipped", "href").as_deref(),
        Some("/d/ws/skipped")
    );
    let res = app.get(&ann, "/d/ws/skipped").await;
    assert_eq!(header(&res, "location"), "/d/ws/t/c0-t1");
    // The trace itself says it is skipped (not "todo"); Bob, who did not skip it, sees to do.
    let (_, view) = app.get_text(&ann, "/d/ws/t/c0-t1").await;
    assert!(
        Page::parse(&view)
            .text("#skipped-status")
            .starts_with("skipped"),
        "{view}"
    );
    let bob = app.login("Bob", false).await;
    let (_, view) = app.get_text(&bob, "/d/ws/t/c0-t1").await;
    assert!(!Page::parse(&view).has("#skipped-status"));
    // Annotating a skipped trace makes it done (no longer skipped).
    app.annotate(
        &ann,
        "ws",
        "c0-t1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM skips").await, 1);
    let (_, view) = app.get_text(&ann, "/d/ws/t/c0-t1").await;
    assert!(
        !Page::parse(&view).has("#skipped-status"),
        "saved: no longer skipped"
    );
    // Another annotator's queue knows nothing of Ann's skips.
    let res = app.get(&bob, "/d/ws/next").await;
    assert_eq!(header(&res, "location"), "/d/ws/t/c0-t1");
    // Undo of the save of a skipped trace: it is skipped again, as before the save.
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(
        header(&res, "hx-push-url"),
        "/d/ws/t/c0-t1",
        "undoes the save first"
    );
    let said = res.text().await.unwrap();
    assert!(
        said.contains("It is skipped again"),
        "the notice says where the trace stands: {said}"
    );
    assert_eq!(
        skips_of(&app, "c0-t1").await,
        1,
        "c0-t1 is back among the skipped"
    );
    let (_, skipped) = app.get_text(&ann, "/d/ws/traces?status=skipped").await;
    let ids = Page::parse(&skipped).texts(".trace-list tbody tr td:nth-child(2)");
    assert_eq!(ids, ["c0-t1", "c0-t2"], "{skipped}");
    // Undo of a skip: t2 is to do again.
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t4");
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t3");
    let res = post_htmx(&app, &ann, "/d/ws/undo").await;
    assert_eq!(header(&res, "hx-push-url"), "/d/ws/t/c0-t2");
    assert_eq!(skips_of(&app, "c0-t2").await, 0, "t2's skip undone");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM skips").await,
        1,
        "t1 stays skipped: its save was undone"
    );
    // A skip without JavaScript redirects to the next trace.
    let res = ann
        .post(app.url("/d/ws/t/c0-t2/skip"))
        .form(&[("x", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location"), "/d/ws/t/c0-t3");
}

/// A one-trace dataset whose AI response is Markdown with hostile parts, with metadata.
fn markdown_csv() -> Vec<u8> {
    let ai = "# Refund\\n\\n**Yes**, you *can*:\\n\\n| item | price |\\n|---|---|\\n| tea | 3 |\\n\\n\
              [policy](https://shop.example/refunds) [bad](javascript:alert(1))\\n\\n<script>alert(2)</script>";
    let ai = ai.replace("\\n", "\n");
    format!(
        "trace_id,flow_session,turn_number,user_message,ai_response,Persona,Empty,Link,Bad link\n\
         m-1,s-1,1,\"مرحبا، أريد استرداد المبلغ\",\"{}\",angry,,https://crm.example/c/42,javascript:alert(3)\n",
        ai.replace('"', "\"\"")
    )
    .into_bytes()
}

#[tokio::test]
async fn markdown_renders_through_the_sanitizer_with_raw_text_and_direction() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app.upload(&admin, "MD", "md.csv", markdown_csv()).await;
    assert_eq!(status, 200, "{page}");
    let (_, body) = app.get_text(&admin, "/d/md/t/m-1").await;
    let page = Page::parse(&body);
    assert!(page.has("#ai-response .md h1"), "heading rendered");
    assert_eq!(page.text("#ai-response .md strong"), "Yes");
    assert!(page.has("#ai-response .md table td"), "table rendered");
    assert_eq!(
        page.attr("#ai-response .md a[href]", "href").as_deref(),
        Some("https://shop.example/refunds")
    );
    assert_eq!(
        page.count("#ai-response .md a[href]"),
        1,
        "javascript: link inert"
    );
    assert!(!page.has("#ai-response script"), "no live script");
    assert!(
        page.text("#ai-response .md")
            .contains("<script>alert(2)</script>")
    );
    // The raw text is there for the toggle, as text.
    assert!(page.text("#ai-response .raw").contains("**Yes**"));
    // Every message reads in its own direction.
    assert_eq!(
        page.attr("#user-message .text", "dir").as_deref(),
        Some("auto")
    );
    assert_eq!(
        page.attr("#ai-response .md", "dir").as_deref(),
        Some("auto")
    );
    // Metadata: filled fields first, safe URLs as links, others as text.
    let names = page.texts(".metadata dt");
    assert_eq!(names, ["Persona", "Link", "Bad link", "Empty"]);
    assert_eq!(
        page.attr(".metadata dd a", "href").as_deref(),
        Some("https://crm.example/c/42")
    );
    assert_eq!(page.count(".metadata dd a"), 1);
}

#[tokio::test]
async fn a_404_keeps_the_top_bar_and_the_site_has_a_favicon() {
    let app = app_with_dataset(1, 1).await;
    let ann = app.login("Ann", false).await;
    for path in ["/no/such/page", "/d/ws/t/no-such-trace", "/d/nope/traces"] {
        let (status, body) = app.get_text(&ann, path).await;
        assert_eq!(status, 404, "{path}");
        let page = Page::parse(&body);
        assert!(page.is_whole_page(), "{path}");
        assert_eq!(page.text(".top .user-name"), "Ann", "{path}: {body}");
        assert!(page.has(".top nav a[href='/']"), "{path}");
    }
    // Signed out: the same page without a user.
    let (status, body) = app.get_text(&client(), "/no/such/page").await;
    assert_eq!(status, 404);
    assert!(!Page::parse(&body).has(".top .user-name"));
    // An HTMX request still gets only the fragment.
    let res = ann
        .get(app.url("/d/ws/t/no-such-trace"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert!(!Page::parse(&res.text().await.unwrap()).is_whole_page());

    for path in ["/favicon.ico", "/static/favicon.svg"] {
        let res = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(header(&res, "content-type"), "image/svg+xml");
        assert!(res.text().await.unwrap().starts_with("<svg"));
    }
    let (_, body) = app.get_text(&ann, "/").await;
    assert_eq!(
        Page::parse(&body).attr("link[rel=icon]", "href").as_deref(),
        Some("/static/favicon.svg")
    );
}

#[tokio::test]
async fn a_dataset_has_its_own_page_which_admins_rename_and_archive() {
    let app = app_with_dataset(1, 3).await;
    let admin = app.login("Admin", true).await;
    let ann = app.login("Ann", false).await;
    app.annotate(
        &ann,
        "ws",
        "c0-t1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    // The dashboard's dataset name leads to the dataset page.
    let (_, dash) = app.get_text(&ann, "/").await;
    assert_eq!(
        Page::parse(&dash).attr(".datasets h2 a", "href").as_deref(),
        Some("/d/ws")
    );
    let (status, body) = app.get_text(&ann, "/d/ws").await;
    assert_eq!(status, 200);
    let page = Page::parse(&body);
    assert_eq!(page.text("#dataset-name"), "WS");
    assert!(page.text(".progress").starts_with("1 of 3 done"), "{body}");
    assert_eq!(
        page.attr("#continue", "href").as_deref(),
        Some("/d/ws/next")
    );
    assert!(!page.has("#team"), "annotators see no team table");
    assert!(!page.has("#rename-form"), "nor the admin forms");
    // An annotator cannot rename or archive.
    let res = ann
        .post(app.url("/d/ws/rename"))
        .form(&[("name", "Mine now")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // The admin sees the team and renames: the address stays.
    let (_, body) = app.get_text(&admin, "/d/ws").await;
    let page = Page::parse(&body);
    assert_eq!(page.texts("#team tbody tr").len(), 1);
    assert!(
        page.text("#team tbody tr")
            .starts_with("Ann ann@localhost 1 1 0")
    );
    let res = admin
        .post(app.url("/d/ws/rename"))
        .form(&[("name", "  Support   bot ")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location"), "/d/ws");
    let (_, body) = app.get_text(&ann, "/d/ws/traces").await;
    assert_eq!(Page::parse(&body).text("h1"), "Support bot");
    // A name another dataset has is refused, with the form as typed.
    let (status, page) = app
        .upload(&admin, "Other", "other.csv", simple_csv(1, 1))
        .await;
    assert_eq!(status, 200, "{page}");
    let res = admin
        .post(app.url("/d/ws/rename"))
        .form(&[("name", "other")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let page = Page::parse(&res.text().await.unwrap());
    assert!(page.text("#rename-error").contains("already called"));
    assert_eq!(page.attr("#rename", "value").as_deref(), Some("other"));

    // Archived: off the dashboard (admins find it under Archived), its links still work.
    let res = admin
        .post(app.url("/d/ws/archive"))
        .form(&[("archive", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, dash) = app.get_text(&ann, "/").await;
    let names = Page::parse(&dash).texts(".datasets h2");
    assert_eq!(names, ["Other"]);
    let (_, dash) = app.get_text(&admin, "/").await;
    assert!(Page::parse(&dash).text("#archived").contains("Support bot"));
    let (status, body) = app.get_text(&ann, "/d/ws").await;
    assert_eq!(status, 200);
    assert!(Page::parse(&body).has("#archived-badge"));
    admin
        .post(app.url("/d/ws/archive"))
        .form(&[("archive", "0")])
        .send()
        .await
        .unwrap();
    let (_, dash) = app.get_text(&ann, "/").await;
    assert_eq!(Page::parse(&dash).texts(".datasets h2").len(), 2);
}

#[tokio::test]
async fn an_import_sums_up_what_the_file_held() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let steps = |tools: usize| {
        let steps: Vec<serde_json::Value> = (0..tools)
            .map(|i| serde_json::json!({"type": "tool", "stepLabel": format!("t{i}"), "content": "ok"}))
            .collect();
        serde_json::json!({ "steps": steps })
            .to_string()
            .replace('"', "\"\"")
    };
    let csv = format!(
        "id,Flow Session,Turn_Number,body.user_message,response.text_output,AI Message,Persona\n\
         a-1,s-a,1,hi,hello,\"{}\",calm\n\
         a-2,s-a,2,and?,so,\"{}\",calm\n\
         b-1,s-b,1,yo,hey,,angry\n",
        steps(2),
        steps(1)
    );
    let (status, page) = app.upload(&admin, "Sum", "sum.csv", csv.into_bytes()).await;
    assert_eq!(status, 200, "{page}");
    let result = Page::parse(&page).text("#import-result");
    assert_eq!(
        result,
        "Imported 3 traces. Found 2 new conversations, 3 tool calls and 2 metadata columns."
    );
}

#[tokio::test]
async fn the_list_shows_each_rows_own_note_and_codes() {
    let app = app_with_dataset(1, 3).await;
    let ann = app.login("Ann", false).await;
    fail(&app, &ann, "c0-t2", "wrong refund window", "0").await;
    let bob = app.login("Bob", false).await;
    let res = app
        .annotate(
            &bob,
            "ws",
            "c0-t2",
            &[
                ("verdict", "fail"),
                ("note", "bob's own"),
                ("codes", "bob code"),
                ("version", "0"),
            ],
            true,
        )
        .await;
    assert_eq!(res.status(), 200);
    for path in ["/d/ws/traces", "/d/ws/traces?status=fail"] {
        let (_, body) = app.get_text(&ann, path).await;
        let page = Page::parse(&body);
        let note = page.text("tr[data-trace-id=c0-t2] .row-note");
        assert!(note.contains("wrong refund window"), "{path}: {note}");
        assert_eq!(
            page.texts("tr[data-trace-id=c0-t2] .row-note .code-chip"),
            ["wrong date", "tone"],
            "{path}"
        );
        assert!(
            !body.contains("bob's own") && !body.contains("bob code"),
            "only Ann's own"
        );
    }
    let (_, body) = app.get_text(&ann, "/d/ws/traces").await;
    assert_eq!(
        Page::parse(&body).text("tr[data-trace-id=c0-t1] .row-note"),
        "",
        "a row without an annotation has none"
    );
}

/// The pass and fail counters summed over every annotator and dataset.
async fn pass_fail_counts(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT CAST(COALESCE(SUM(passes), 0) AS BIGINT) FROM annotation_counts")
            .await,
        app.count("SELECT CAST(COALESCE(SUM(fails), 0) AS BIGINT) FROM annotation_counts")
            .await,
    )
}
