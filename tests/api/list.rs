//! Acceptance tests for the trace list: keyset pages, per-annotator status, filters.

use crate::helpers::*;

fn attr_after<'a>(page: &'a str, marker: &str) -> Option<&'a str> {
    let start = page.find(marker)? + marker.len();
    let rest = &page[start..];
    let href_start = rest.find("href=\"")? + 6;
    let href_end = rest[href_start..].find('"')?;
    Some(&rest[href_start..href_start + href_end])
}

fn listed_ids(page: &str) -> Vec<String> {
    page.match_indices("<tr data-trace-id=\"")
        .map(|(i, m)| {
            let rest = &page[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// The ids of every page from `path` on, following the "Next" links.
async fn ids_of_every_page(app: &TestApp, c: &reqwest::Client, path: &str) -> Vec<String> {
    let mut path = path.to_string();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let (_, page) = app.get_text(c, &path).await;
        seen.extend(listed_ids(&page));
        match attr_after(&page, "id=\"next-page\"") {
            Some(n) => path = unescape(n),
            None => return seen,
        }
    }
    panic!("more than 100 pages from {path}");
}

#[tokio::test]
async fn keyset_pages_cover_every_trace_once_in_order_both_ways() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Paged", "p.csv", simple_csv(7, 5)).await; // 35 traces
    let ann = app.login("Ann", false).await;

    let mut path = "/d/paged/traces?per=10".to_string();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = app.get_text(&ann, &path).await;
        assert_eq!(status, 200);
        let ids = listed_ids(&page);
        assert!(ids.len() <= 10);
        all.extend(ids);
        pages += 1;
        match attr_after(&page, "id=\"next-page\"") {
            Some(next) => {
                let next = unescape(next);
                assert!(
                    next.contains("after="),
                    "keyset link, not an offset: {next}"
                );
                assert!(!next.contains("offset") && !next.contains("page="));
                path = next;
            }
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 4);
    let expected: Vec<String> = (0..7)
        .flat_map(|c| (1..=5).map(move |t| format!("c{c}-t{t}")))
        .collect();
    assert_eq!(all, expected, "every trace once, in reading order");

    // The deepest page, then backwards.
    let (_, last) = app
        .get_text(&ann, "/d/paged/traces?per=10&before=last")
        .await;
    assert_eq!(listed_ids(&last), expected[25..].to_vec());
    let prev = unescape(attr_after(&last, "id=\"prev-page\"").expect("a previous page"));
    let (_, before) = app.get_text(&ann, &prev).await;
    assert_eq!(listed_ids(&before), expected[15..25].to_vec());
    assert!(
        attr_after(&last, "id=\"next-page\"").is_none(),
        "nothing after the last page"
    );
}

#[tokio::test]
async fn rows_show_this_annotators_status_and_filters_work() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Status", "s.csv", simple_csv(2, 3))
        .await;
    let ann = app.login("Ann", false).await;
    app.annotate(
        &ann,
        "status",
        "c0-t2",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    app.annotate(
        &ann,
        "status",
        "c1-t1",
        &[("verdict", "fail"), ("note", "x"), ("version", "0")],
        true,
    )
    .await;
    let bob = app.login("Bob", false).await;
    app.annotate(
        &bob,
        "status",
        "c0-t1",
        &[("verdict", "fail"), ("note", "y"), ("version", "0")],
        true,
    )
    .await;

    let (_, page) = app.get_text(&ann, "/d/status/traces").await;
    let row = |id: &str| {
        let i = page.find(&format!("<tr data-trace-id=\"{id}\">")).unwrap();
        page[i..i + 300].to_string()
    };
    assert!(
        row("c0-t1").contains("status-todo"),
        "Bob's verdict is not Ann's"
    );
    assert!(row("c0-t2").contains("status-pass"));
    assert!(row("c1-t1").contains("status-fail"));

    let ids = |p: &str| listed_ids(p);
    let (_, todo) = app.get_text(&ann, "/d/status/traces?status=todo").await;
    assert_eq!(ids(&todo), ["c0-t1", "c0-t3", "c1-t2", "c1-t3"]);
    let (_, pass) = app.get_text(&ann, "/d/status/traces?status=pass").await;
    assert_eq!(ids(&pass), ["c0-t2"]);
    let (_, fail) = app.get_text(&ann, "/d/status/traces?status=fail").await;
    assert_eq!(ids(&fail), ["c1-t1"]);
    let filters = Page::parse(&todo).texts(".filters a");
    assert!(filters.contains(&"To do 4".to_string()), "{filters:?}");
}

#[tokio::test]
async fn filtered_pages_are_keyset_pages_too() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Fp", "f.csv", simple_csv(5, 5)).await;
    let ann = app.login("Ann", false).await;
    let mut passed = Vec::new();
    for c in 0..5 {
        for t in [1, 3, 5] {
            let id = format!("c{c}-t{t}");
            app.annotate(
                &ann,
                "fp",
                &id,
                &[("verdict", "pass"), ("version", "0")],
                true,
            )
            .await;
            passed.push(id);
        }
    }
    let seen = ids_of_every_page(&app, &ann, "/d/fp/traces?status=pass&per=10").await;
    assert_eq!(seen, passed);
}

/// 30 traces in 3 conversations, written turn-first so import order (file order) is not
/// reading order; every third mentions a refund (one in capitals), one answer has an accent,
/// personas alternate, and one persona value holds another as its prefix.
fn searchable_csv() -> Vec<u8> {
    let mut out =
        String::from("trace_id,flow_session,turn_number,user_message,ai_response,persona\n");
    for t in 1..=10 {
        for c in 0..3 {
            let i = (t - 1) * 3 + c;
            let user = match i % 3 {
                0 if i == 9 => "Where is my REFUND for order 9".to_string(),
                0 => format!("where is my refund for order {i}"),
                _ => format!("question {i} about shipping"),
            };
            let ai = if i == 13 {
                "the café is open"
            } else {
                "an answer"
            };
            let persona = match i % 4 {
                0 => "power user",
                1 => "power user plus",
                _ => "newcomer",
            };
            out.push_str(&format!("s{i},conv-{c},{t},{user},{ai},{persona}\n"));
        }
    }
    out.into_bytes()
}

#[tokio::test]
async fn search_finds_whole_words_of_the_messages_in_import_order_keyset_paged() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Search", "s.csv", searchable_csv())
        .await;
    // Another dataset's refunds are not this one's.
    app.upload(&admin, "Other", "o.csv", searchable_csv()).await;
    let ann = app.login("Ann", false).await;

    let refunds: Vec<String> = (0..30)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("s{i}"))
        .collect();
    let (status, page) = app.get_text(&ann, "/d/search/traces?q=Refund").await;
    assert_eq!(status, 200);
    assert_eq!(
        listed_ids(&page),
        refunds,
        "every refund, case ignored, file order"
    );
    assert!(Page::parse(&page).has("#search-notice"));
    for other in [
        "/d/other/traces?q=refund",
        "/d/other/traces?q=refund&before=last",
    ] {
        let (_, page) = app.get_text(&ann, other).await;
        assert_eq!(
            listed_ids(&page),
            refunds,
            "the later dataset's own: {other}"
        );
    }
    let (_, page) = app
        .get_text(&ann, "/d/search/traces?q=refund+order+9")
        .await;
    assert_eq!(listed_ids(&page), ["s9"], "all the words, in any message");
    let (_, page) = app.get_text(&ann, "/d/search/traces?q=refun").await;
    assert!(listed_ids(&page).is_empty(), "whole words");
    assert!(Page::parse(&page).has("#empty-list"));
    if backend() == "sqlite" {
        let (_, page) = app.get_text(&ann, "/d/search/traces?q=CAFE").await;
        assert_eq!(listed_ids(&page), ["s13"], "accents ignored on SQLite");
    }
    let (_, page) = app.get_text(&ann, "/d/search/traces?q=caf%C3%A9").await;
    assert_eq!(listed_ids(&page), ["s13"]);
    // Query syntax typed by a user is words, not an error.
    for hostile in ["%22NEAR(", "AND+OR", "*", "%27%3B--", "a%22b"] {
        let (status, _) = app
            .get_text(&ann, &format!("/d/search/traces?q={hostile}"))
            .await;
        assert_eq!(status, 200, "{hostile}");
    }

    // Pages of 10 cover the 30 shipping/refund traces once each, forwards and back.
    let (_, page) = app.get_text(&ann, "/d/search/traces?q=order&per=10").await;
    assert_eq!(listed_ids(&page), refunds, "10 fit on one page");
    let all: Vec<String> = (0..30).map(|i| format!("s{i}")).collect();
    let (_, page) = app
        .get_text(&ann, "/d/search/traces?q=answer+OR&per=10")
        .await;
    assert!(listed_ids(&page).is_empty(), "OR is a word here too");
    let seen = ids_of_every_page(&app, &ann, "/d/search/traces?q=answer&per=10").await;
    let answers: Vec<String> = all.iter().filter(|id| *id != "s13").cloned().collect();
    assert_eq!(seen, answers);
    let (_, last) = app
        .get_text(&ann, "/d/search/traces?q=answer&per=10&before=last")
        .await;
    assert_eq!(listed_ids(&last), answers[19..].to_vec());
    let prev = unescape(attr_after(&last, "id=\"prev-page\"").expect("a previous page"));
    assert!(
        prev.contains("q=answer"),
        "the pager keeps the search: {prev}"
    );
    let (_, before) = app.get_text(&ann, &prev).await;
    assert_eq!(listed_ids(&before), answers[9..19].to_vec());

    // The search combines with the viewer's status.
    app.annotate(
        &ann,
        "search",
        "s3",
        &[("verdict", "fail"), ("note", "late"), ("version", "0")],
        true,
    )
    .await;
    app.annotate(
        &ann,
        "search",
        "s4",
        &[("verdict", "fail"), ("note", "x"), ("version", "0")],
        true,
    )
    .await;
    let (_, page) = app
        .get_text(&ann, "/d/search/traces?q=refund&status=fail")
        .await;
    assert_eq!(listed_ids(&page), ["s3"]);
    let (_, page) = app
        .get_text(&ann, "/d/search/traces?q=refund&status=todo")
        .await;
    assert_eq!(listed_ids(&page).len(), refunds.len() - 1);
    let tabs = Page::parse(&page).attrs(".filters a", "href");
    assert!(
        tabs.iter().all(|h| h.contains("q=refund")),
        "status tabs keep the search: {tabs:?}"
    );
}

#[tokio::test]
async fn metadata_filters_match_exact_values() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Meta", "m.csv", searchable_csv()).await;
    let ann = app.login("Ann", false).await;
    // A metadata value alone lists in reading order (conversation by conversation)…
    let ids = |pick: fn(usize) -> bool| -> Vec<String> {
        (0..3)
            .flat_map(|c| (0..10).map(move |t| t * 3 + c))
            .filter(|i| pick(*i))
            .map(|i| format!("s{i}"))
            .collect()
    };
    // …with words, in import order.
    let found = |pick: fn(usize) -> bool| -> Vec<String> {
        (0..30)
            .filter(|i| pick(*i))
            .map(|i| format!("s{i}"))
            .collect()
    };

    let (_, page) = app
        .get_text(&ann, "/d/meta/traces?field=persona&value=power+user")
        .await;
    assert_eq!(
        listed_ids(&page),
        ids(|i| i % 4 == 0),
        "not “power user plus”"
    );
    let (_, page) = app
        .get_text(&ann, "/d/meta/traces?field=persona&value=power+user+plus")
        .await;
    assert_eq!(listed_ids(&page), ids(|i| i % 4 == 1));
    let (_, page) = app
        .get_text(&ann, "/d/meta/traces?field=persona&value=newcomer&q=refund")
        .await;
    assert_eq!(
        listed_ids(&page),
        found(|i| i % 4 >= 2 && i % 3 == 0),
        "with a search"
    );
    let (_, page) = app
        .get_text(&ann, "/d/meta/traces?field=persona&value=power")
        .await;
    assert!(listed_ids(&page).is_empty(), "a value matches exactly");
    let (_, page) = app
        .get_text(&ann, "/d/meta/traces?field=nope&value=newcomer")
        .await;
    assert!(listed_ids(&page).is_empty(), "a column the traces lack");

    // The form offers the columns and their values.
    let (_, page) = app.get_text(&ann, "/d/meta/traces").await;
    let doc = Page::parse(&page);
    assert_eq!(doc.texts("#search-field option"), ["any column", "persona"]);
    let mut offered = doc.attrs("#metadata-values option", "value");
    offered.sort();
    assert_eq!(offered, ["newcomer", "power user", "power user plus"]);
}

#[tokio::test]
async fn admins_see_an_annotators_list_and_annotators_cannot() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Whose", "w.csv", simple_csv(2, 3)).await;
    let ann = app.login("Ann", false).await;
    let bob = app.login("Bob", false).await;
    app.annotate(
        &bob,
        "whose",
        "c0-t2",
        &[
            ("verdict", "fail"),
            ("note", "bob's note"),
            ("version", "0"),
        ],
        true,
    )
    .await;
    app.annotate(
        &ann,
        "whose",
        "c1-t1",
        &[("verdict", "pass"), ("version", "0")],
        true,
    )
    .await;
    let bob_id = app
        .count("SELECT id FROM users WHERE email = 'bob@localhost'")
        .await;

    let (status, page) = app
        .get_text(
            &admin,
            &format!("/d/whose/traces?annotator={bob_id}&status=fail"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&page), ["c0-t2"]);
    let doc = Page::parse(&page);
    assert_eq!(
        doc.text(".row-note"),
        "bob's note",
        "his note, not the viewer's"
    );
    assert!(doc.text("#viewing-as").contains("bob@localhost"));
    let filters = doc.texts(".filters a");
    assert!(
        filters.contains(&"Fail 1".to_string()),
        "Bob's counts: {filters:?}"
    );
    assert!(
        filters.contains(&"Pass 0".to_string()),
        "not Ann's pass: {filters:?}"
    );
    let mut offered = doc.texts("#filter-annotator option");
    offered.sort();
    assert_eq!(offered, ["ann@localhost", "bob@localhost", "you"]);

    let (status, _) = app
        .get_text(&ann, &format!("/d/whose/traces?annotator={bob_id}"))
        .await;
    assert_eq!(status, 403, "an annotator cannot read another's list");
    let (_, own) = app.get_text(&ann, "/d/whose/traces").await;
    assert!(
        !Page::parse(&own).has("#filter-annotator"),
        "nor is offered one"
    );
    let (status, _) = app.get_text(&admin, "/d/whose/traces?annotator=x").await;
    assert_eq!(status, 400);
    let (status, _) = app
        .get_text(&admin, "/d/whose/traces?annotator=999999")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_import_leaves_the_postgres_search_index_merged() {
    if backend() != "postgres" {
        return; // SQLite's FTS5 index merges as it goes; nothing is pending.
    }
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Merged", "m.csv", searchable_csv())
        .await;
    // Pages the import left in the GIN pending list (merging them now returns their number).
    let pending = app
        .count("SELECT gin_clean_pending_list('traces_search'::regclass)")
        .await;
    assert_eq!(
        pending, 0,
        "merged by the import, before its traces became visible"
    );
    let ann = app.login("Ann", false).await;
    let (_, page) = app.get_text(&ann, "/d/merged/traces?q=shipping").await;
    assert_eq!(listed_ids(&page).len(), 20);
}
