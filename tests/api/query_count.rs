//! The list page issues a constant number of SQL statements whatever its size, and never
//! uses OFFSET; a Pass & Next issues a known handful. Counted from sqlx's statement log
//! through a tracing layer, keeping only the statements run inside the request the test
//! sent (its `x-request-id`), so other tests running in this binary do not count.

use std::sync::{Mutex, Once};

use crate::helpers::*;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The request ids being counted, and the statements seen inside each.
static COUNTED: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());

/// A span's `request_id` field, kept in its extensions.
struct RequestId(String);

struct StatementLog;

impl<S> tracing_subscriber::Layer<S> for StatementLog
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Field(Option<String>);
        impl tracing::field::Visit for Field {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "request_id" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut field = Field(None);
        attrs.record(&mut field);
        if let (Some(value), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(value));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let Some(request) = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        }) else {
            return;
        };
        struct Summary(String);
        impl tracing::field::Visit for Summary {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "db.statement" || field.name() == "summary" {
                    self.0.push_str(&format!("{value:?} "));
                }
            }
        }
        let mut s = Summary(String::new());
        event.record(&mut s);
        // A new pooled connection's set-up, not the request's own work.
        if s.0.contains("PRAGMA ") {
            return;
        }
        let mut counted = COUNTED.lock().unwrap();
        if let Some((_, statements)) = counted.iter_mut().find(|(id, _)| *id == request) {
            statements.push(s.0);
        }
    }
}

fn install_statement_log() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sqlx::query", tracing::Level::TRACE)
                    .with_target("tracecoder", tracing::Level::INFO),
            )
            .with(StatementLog)
            .init();
    });
}

/// Sends `request` with a fresh request id and returns (status, statements it ran).
async fn statements_of(request: reqwest::RequestBuilder) -> (u16, Vec<String>) {
    let id = uuid::Uuid::new_v4().to_string();
    COUNTED.lock().unwrap().push((id.clone(), Vec::new()));
    let res = request
        .header("x-request-id", &id)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let _ = res.bytes().await;
    let mut counted = COUNTED.lock().unwrap();
    let at = counted.iter().position(|(i, _)| *i == id).unwrap();
    (status, counted.remove(at).1)
}

async fn statements_for(app: &TestApp, c: &reqwest::Client, path: &str) -> Vec<String> {
    let (status, statements) = statements_of(c.get(app.url(path))).await;
    assert_eq!(status, 200);
    statements
}

#[tokio::test]
async fn list_pages_issue_a_constant_number_of_queries_without_offset() {
    install_statement_log();
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Q", "q.csv", simple_csv(60, 5)).await; // 300 traces
    let ann = app.login("Ann", false).await;
    for id in ["c0-t1", "c3-t2", "c40-t5"] {
        app.annotate(
            &ann,
            "q",
            id,
            &[("verdict", "pass"), ("version", "0")],
            true,
        )
        .await;
    }
    // The first page reads the metadata filter's hints once (then kept per dataset).
    let first = statements_for(&app, &ann, "/d/q/traces?per=10").await;
    assert!(
        first.iter().any(|s| s.contains("SELECT t.metadata")),
        "{first:#?}"
    );
    let small = statements_for(&app, &ann, "/d/q/traces?per=10").await;
    assert!(
        !small.iter().any(|s| s.contains("SELECT t.metadata")),
        "{small:#?}"
    );
    let large = statements_for(&app, &ann, "/d/q/traces?per=300").await;
    let deep = statements_for(&app, &ann, "/d/q/traces?per=10&before=last").await;
    let filtered = statements_for(&app, &ann, "/d/q/traces?per=300&status=todo").await;
    let searched = statements_for(&app, &ann, "/d/q/traces?per=300&q=question").await;
    let searched_small = statements_for(&app, &ann, "/d/q/traces?per=10&q=question").await;
    assert!(!small.is_empty(), "statements are being counted");
    assert!(
        large.iter().any(|s| s.contains("FROM traces t")),
        "the SQL text is captured: {large:#?}"
    );
    assert_eq!(
        small.len(),
        large.len(),
        "same number of statements for 10 and 300 rows"
    );
    assert_eq!(small.len(), deep.len());
    assert_eq!(small.len(), filtered.len());
    assert_eq!(
        small.len(),
        searched.len(),
        "a search page is as many: {searched:#?}"
    );
    assert_eq!(searched.len(), searched_small.len());
    assert!(
        small.len() <= 6,
        "a handful of statements per page: {small:#?}"
    );
    for s in small
        .iter()
        .chain(&large)
        .chain(&deep)
        .chain(&filtered)
        .chain(&searched)
    {
        assert!(!s.to_uppercase().contains("OFFSET"), "no OFFSET: {s}");
    }
}

/// A Pass & Next (save, then the next trace rendered, one HTMX request) runs a bounded
/// number of statements; printed for the benchmark report.
#[tokio::test]
async fn pass_and_next_issues_a_bounded_number_of_statements() {
    install_statement_log();
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    app.upload(&admin, "Q", "q.csv", simple_csv(10, 3)).await;
    let ann = app.login("Ann", false).await;
    let pass = |trace: &str| {
        ann.post(app.url(&format!("/d/q/t/{trace}/annotate")))
            .header("HX-Request", "true")
            .form(&[("verdict", "pass"), ("version", "0")])
    };
    // The first save of a dataset creates the counters; measure a later one.
    let (status, _) = statements_of(pass("c0-t1")).await;
    assert_eq!(status, 200);
    let (status, statements) = statements_of(pass("c0-t2")).await;
    assert_eq!(status, 200);
    eprintln!(
        "Pass & Next: {} statements\n{}",
        statements.len(),
        statements.join("\n")
    );
    assert!(
        statements
            .iter()
            .any(|s| s.contains("INSERT INTO annotations")),
        "the save is counted: {statements:#?}"
    );
    assert!(
        statements.iter().any(|s| s.contains("FROM traces t")),
        "the next trace's reads are counted: {statements:#?}"
    );
    // The pass/fail counters move by trigger inside the annotation's own statement, the
    // low-water mark in one upsert, and the next trace is read once, whole (18 statements
    // before issue 16, 15 after).
    assert!(
        !statements
            .iter()
            .any(|s| s.contains("INSERT INTO annotation_counts")),
        "no statement of its own for the counters: {statements:#?}"
    );
    assert_eq!(
        statements
            .iter()
            .filter(|s| s.contains("resume_points"))
            .count(),
        1,
        "the low-water mark moves in one statement: {statements:#?}"
    );
    assert_eq!(
        statements
            .iter()
            .filter(|s| s.contains("t.trace_id = $3"))
            .count(),
        1,
        "only the trace saved is read by id; the next one comes whole from the walk: \
         {statements:#?}"
    );
    assert!(
        statements.len() <= 15,
        "a Pass & Next stays a handful of statements: {statements:#?}"
    );
}
