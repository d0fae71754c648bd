//! Test harness: spawns the real app on port 0 with a fresh database (a SQLite file, or a
//! new Postgres database when `TEST_BACKEND=postgres`) and drives it over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::redirect::Policy;
use tracecoder::config::Config;
use tracecoder::db::Db;

/// Which backend this test run uses.
pub fn backend() -> &'static str {
    match std::env::var("TEST_BACKEND").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// Base URL of the Postgres server used when `TEST_BACKEND=postgres`.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database for one test. The guard keeps a SQLite file alive.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    if backend() == "postgres" {
        let admin = postgres_admin_url();
        let name = format!("tc_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("TEST_BACKEND=postgres needs a reachable Postgres (TEST_POSTGRES_URL)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        (url.to_string(), None)
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        (url, Some(dir))
    }
}

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The separate `/metrics` address, when `metrics_bind` was set.
    pub metrics_addr: Option<SocketAddr>,
    pub base: String,
    pub db: Db,
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the app after letting the test adjust the configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (database_url, dir) = fresh_database().await;
    spawn_app_on(database_url, dir, adjust).await
}

/// Spawns the app on an existing database (to test restarts or a second instance).
pub async fn spawn_app_on(
    database_url: String,
    dir: Option<tempfile::TempDir>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::local(database_url.clone());
    config.login_burst = 1000;
    config.login_account_burst = 1000;
    config.import_burst = 1000;
    // Every test dataset counts its codebook in milliseconds, but a loaded CI machine could
    // exceed the 50 ms default now and then, and the page would show counts as of an earlier
    // save; the tests of that path set a budget of zero.
    config.codebook_recount_budget = Duration::from_secs(60);
    adjust(&mut config);
    let app = tracecoder::Application::build(config)
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let db = app.state().db.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        metrics_addr,
        base: format!("http://{addr}"),
        db,
        database_url,
        _dir: dir,
        stop: Some(tx),
        handle: Some(handle),
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (tests assert on them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs in through the development form and returns the client holding the session.
    pub async fn login(&self, name: &str, admin: bool) -> reqwest::Client {
        let c = client();
        let mut form = vec![("name", name.to_string()), ("next", "/".to_string())];
        if admin {
            form.push(("admin", "1".to_string()));
        }
        let res = c
            .post(self.url("/login"))
            .form(&form)
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 303, "dev login redirects");
        c
    }

    pub async fn get(&self, c: &reqwest::Client, path: &str) -> reqwest::Response {
        c.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_text(&self, c: &reqwest::Client, path: &str) -> (u16, String) {
        let res = self.get(c, path).await;
        let status = res.status().as_u16();
        (status, res.text().await.expect("body"))
    }

    /// Uploads a CSV through the admin form and returns (status, page).
    pub async fn upload(
        &self,
        c: &reqwest::Client,
        dataset: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> (u16, String) {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str("text/csv")
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("dataset", dataset.to_string())
            .part("file", part);
        let res = c
            .post(self.url("/admin/import"))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let mut status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = res.text().await.unwrap_or_default();
        // A large file answers with its progress page: poll it until the import ends.
        if let Some(loc) = location {
            for _ in 0..600 {
                let (s, b) = self.get_text(c, &loc).await;
                status = s;
                body = b;
                if Page::parse(&body)
                    .attr("#import-status", "data-state")
                    .as_deref()
                    != Some("running")
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        (status, body)
    }

    /// Posts an annotation as HTMX does and returns the response.
    pub async fn annotate(
        &self,
        c: &reqwest::Client,
        dataset: &str,
        trace_id: &str,
        fields: &[(&str, &str)],
        htmx: bool,
    ) -> reqwest::Response {
        let mut req = c
            .post(self.url(&format!("/d/{dataset}/t/{}/annotate", encode(trace_id))))
            .form(fields);
        if htmx {
            req = req.header("HX-Request", "true");
        }
        req.send().await.expect("annotate")
    }

    /// Counts rows with a SQL query (for asserting what the database holds).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.db.reader())
            .await
            .expect("count query")
    }
}

/// Percent-encodes a path segment.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The trace id shown on a trace page (`data-trace-id` of `#trace`).
pub fn shown_trace(page: &str) -> Option<String> {
    Page::parse(page).attr("#trace", "data-trace-id")
}

/// A page (or fragment) parsed as a browser would, to assert on elements, attributes and
/// text rather than on substrings of the markup.
pub struct Page(scraper::Html);

impl Page {
    pub fn parse(html: &str) -> Page {
        Page(scraper::Html::parse_document(html))
    }

    fn selector(css: &str) -> scraper::Selector {
        scraper::Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"))
    }

    /// Elements matching `css`.
    pub fn count(&self, css: &str) -> usize {
        self.0.select(&Self::selector(css)).count()
    }

    /// Whether an element matches `css`.
    pub fn has(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    /// Attribute `name` of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.0
            .select(&Self::selector(css))
            .next()
            .and_then(|e| e.value().attr(name))
            .map(str::to_string)
    }

    /// Attribute `name` of every element matching `css` that has it.
    pub fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        self.0
            .select(&Self::selector(css))
            .filter_map(|e| e.value().attr(name))
            .map(str::to_string)
            .collect()
    }

    /// The text of every element matching `css`, whitespace collapsed.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.0
            .select(&Self::selector(css))
            .map(|e| e.text().collect::<Vec<_>>().join(" "))
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The text of the first element matching `css` (empty when none does).
    pub fn text(&self, css: &str) -> String {
        self.texts(css).into_iter().next().unwrap_or_default()
    }

    /// Whether the page is a whole document (with the top bar), not a fragment.
    pub fn is_whole_page(&self) -> bool {
        self.has("header.top")
    }

    /// The metadata side panel as (name, value) pairs.
    pub fn metadata(&self) -> Vec<(String, String)> {
        self.texts(".metadata dt")
            .into_iter()
            .zip(self.texts(".metadata dd"))
            .collect()
    }
}

/// Undoes askama's HTML escaping for comparisons.
pub fn unescape(s: &str) -> String {
    s.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// A small canonical CSV: `conversations` conversations of `turns` turns each.
pub fn simple_csv(conversations: usize, turns: usize) -> Vec<u8> {
    let mut out = String::from("trace_id,flow_session,turn_number,user_message,ai_response\n");
    for c in 0..conversations {
        for t in 1..=turns {
            out.push_str(&format!(
                "c{c}-t{t},conv-{c},{t},question {c}.{t},answer {c}.{t}\n"
            ));
        }
    }
    out.into_bytes()
}

/// Skips (loudly) a test that needs an external program, unless running under CI.
pub fn require_or_skip(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required under CI=true but is not available");
    }
    eprintln!("\n*** SKIPPED: {what} is not available on this machine ***\n");
    false
}

impl TestApp {
    /// Stops the app, waits until it has finished, and hands back its database (URL and the
    /// guard keeping a SQLite file alive) so a test can start the app again on it.
    pub async fn stop(mut self) -> (String, Option<tempfile::TempDir>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("app task").expect("app stops cleanly");
        }
        (self.database_url.clone(), self._dir.take())
    }
}

/// The value of cookie `name` set by a response, if it sets one.
pub fn set_cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        })
}

/// A fresh database on the shared Postgres server (`TEST_POSTGRES_URL`) whatever
/// `TEST_BACKEND` says, for tests that are about Postgres itself. `None` when no server answers.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin = postgres_admin_url();
    sqlx::any::install_default_drivers();
    let connect = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin);
    let mut conn = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .ok()?
        .ok()?;
    let name = format!("tc_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// A loopback port that was free a moment ago, for a child process (nginx, Postgres) to bind.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Whether `program` can be run (looked up on PATH).
pub fn program_available(program: &str, version_flag: &str) -> bool {
    std::process::Command::new(program)
        .arg(version_flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether something accepts TCP connections at `addr`.
pub fn reachable(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

/// The import form with a file whose bytes are sent as `body` produces them (to send an
/// upload slowly, or never finish it).
pub fn streamed_upload<S>(dataset: &str, file_name: &str, body: S) -> reqwest::multipart::Form
where
    S: futures_util::TryStream + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    bytes::Bytes: From<S::Ok>,
{
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
        .file_name(file_name.to_string())
        .mime_str("text/csv")
        .expect("mime");
    reqwest::multipart::Form::new()
        .text("dataset", dataset.to_string())
        .part("file", part)
}

/// Asks `{base}/healthz` until it answers 200 (bounded: 20 s), for a server that is expected
/// to come back; returns whether it did.
pub async fn healthz_comes_back(base: &str) -> bool {
    let c = client();
    for _ in 0..200 {
        if let Ok(res) = c.get(format!("{base}/healthz")).send().await
            && res.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
