//! The list page issues a constant number of SQL statements whatever its size, and never
//! uses OFFSET. Counted from sqlx's statement log through a tracing layer; this file holds
//! one test so the process-wide count is not shared with other tests.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static RECORDING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct StatementLog;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" || !RECORDING.load(Ordering::SeqCst) {
            return;
        }
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
        STATEMENTS.lock().unwrap().push(s.0);
    }
}

async fn statements_for(app: &TestApp, c: &reqwest::Client, path: &str) -> Vec<String> {
    STATEMENTS.lock().unwrap().clear();
    RECORDING.store(true, Ordering::SeqCst);
    let (status, _) = app.get_text(c, path).await;
    RECORDING.store(false, Ordering::SeqCst);
    assert_eq!(status, 200);
    STATEMENTS.lock().unwrap().clone()
}

#[tokio::test]
async fn list_pages_issue_a_constant_number_of_queries_without_offset() {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::TRACE),
        )
        .with(StatementLog)
        .init();
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
    let small = statements_for(&app, &ann, "/d/q/traces?per=10").await;
    let large = statements_for(&app, &ann, "/d/q/traces?per=300").await;
    let deep = statements_for(&app, &ann, "/d/q/traces?per=10&before=last").await;
    let filtered = statements_for(&app, &ann, "/d/q/traces?per=300&status=todo").await;
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
    assert!(
        small.len() <= 6,
        "a handful of statements per page: {small:#?}"
    );
    for s in small.iter().chain(&large).chain(&deep).chain(&filtered) {
        assert!(!s.to_uppercase().contains("OFFSET"), "no OFFSET: {s}");
    }
}
