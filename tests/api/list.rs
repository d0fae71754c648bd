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
    let mut path = "/d/fp/traces?status=pass&per=10".to_string();
    let mut seen = Vec::new();
    loop {
        let (_, page) = app.get_text(&ann, &path).await;
        seen.extend(listed_ids(&page));
        match attr_after(&page, "id=\"next-page\"") {
            Some(n) => path = unescape(n),
            None => break,
        }
    }
    assert_eq!(seen, passed);
}
