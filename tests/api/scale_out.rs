//! Scale-out: two app instances on one Postgres database and the shared Redis, behind a
//! round-robin nginx that the test starts on loopback. Proves sign-in, import and the
//! annotation loop work through the proxy, that both instances serve, and that concurrent
//! Pass & Next on both instances neither loses nor duplicates a save.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use secrecy::SecretString;

/// The shared Redis this kind of machine runs (sessions of both instances).
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The nginx binary: on `PATH`, or where Debian installs it (`/usr/sbin` is not on every
/// user's `PATH`).
fn nginx_binary() -> Option<PathBuf> {
    if program_available("nginx", "-v") {
        return Some(PathBuf::from("nginx"));
    }
    let sbin = PathBuf::from("/usr/sbin/nginx");
    program_available(&sbin.display().to_string(), "-v").then_some(sbin)
}

/// An nginx process serving one loopback port, configured only for this test.
struct Nginx {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx in the foreground with everything (config, pid, logs, temp files) in a
    /// temp dir. `master_process off` keeps it one process running as the test's user.
    /// The `x-upstream` response header says which instance answered: it is added by this
    /// test's proxy config only, never by the app.
    fn start(program: &Path, port: u16, upstreams: &[SocketAddr]) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().display();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    upstream tracecoder {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://tracecoder;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
            add_header x-upstream $upstream_addr always;
        }}
    }}
}}
"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(program)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Waits until nginx answers and reaches an instance (bounded; nginx starts in ms).
    async fn wait_ready(&mut self) {
        let c = client();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited with {status}: {}", self.error_log());
            }
            if let Ok(res) = c.get(self.url("/healthz")).send().await
                && res.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "nginx did not answer on {}: {}",
            self.base,
            self.error_log()
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which instance answered, from the test proxy's `x-upstream` header.
fn served_by(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .expect("the test proxy names the upstream")
        .to_string()
}

/// The trace id at the end of a `/d/{slug}/t/{id}` location, or `None` for anything else
/// (the done page pushes `/d/{slug}/next`).
fn trace_of(location: &str) -> Option<String> {
    let (_, id) = location.split_once("/t/")?;
    let bytes = id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8(out).expect("utf-8 trace id"))
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What one annotator's device did.
#[derive(Debug, Default)]
struct Worker {
    saves: usize,
    fails: usize,
    conflicts: usize,
    served_by: BTreeMap<String, usize>,
}

/// The proxy's address, cheap to hand to spawned tasks.
#[derive(Clone)]
struct Proxy(String);

impl Proxy {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }
}

/// Signs in through the proxy as `name`.
async fn login(proxy: &Proxy, name: &str, admin: bool) -> (reqwest::Client, String) {
    let c = client();
    let mut form = vec![("name", name.to_string()), ("next", "/".to_string())];
    if admin {
        form.push(("admin", "1".to_string()));
    }
    let res = c
        .post(proxy.url("/login"))
        .form(&form)
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303, "sign-in through the proxy redirects");
    let by = served_by(&res);
    (c, by)
}

/// Where `/d/{slug}/next` sends this annotator (`None`: nothing left).
async fn next_trace(
    proxy: &Proxy,
    c: &reqwest::Client,
    slug: &str,
    w: &mut Worker,
) -> Option<String> {
    let res = c
        .get(proxy.url(&format!("/d/{slug}/next")))
        .send()
        .await
        .expect("next");
    *w.served_by.entry(served_by(&res)).or_default() += 1;
    match res.status().as_u16() {
        303 => Some(trace_of(&header(&res, "location").expect("location")).expect("a trace url")),
        200 => None,
        s => panic!(
            "/next answered {s}: {}",
            res.text().await.unwrap_or_default()
        ),
    }
}

/// One device of one annotator: Pass & Next (every fifth a Fail with a note and codes)
/// until the dataset is done, as HTMX or as a plain form.
async fn annotate_until_done(
    proxy: &Proxy,
    c: reqwest::Client,
    slug: String,
    htmx: bool,
) -> Worker {
    let mut w = Worker::default();
    let mut current = next_trace(proxy, &c, &slug, &mut w).await;
    while let Some(trace_id) = current {
        let fail = (w.saves + w.conflicts) % 5 == 4;
        let mut fields = vec![
            ("verdict", if fail { "fail" } else { "pass" }),
            ("version", "0"),
        ];
        if fail {
            fields.extend([
                ("note", "missed the question"),
                ("codes", "tone, relevance"),
            ]);
        }
        let mut req = c
            .post(proxy.url(&format!("/d/{slug}/t/{}/annotate", encode(&trace_id))))
            .form(&fields);
        if htmx {
            req = req.header("HX-Request", "true");
        }
        let res = req.send().await.expect("annotate");
        *w.served_by.entry(served_by(&res)).or_default() += 1;
        let status = res.status().as_u16();
        current = match status {
            // Plain form: saved, redirected to the next trace.
            303 => {
                w.saves += 1;
                w.fails += usize::from(fail);
                Some(trace_of(&header(&res, "location").expect("location")).expect("a trace url"))
            }
            // HTMX: saved, the next trace (or the done page) rendered with its URL pushed;
            // a plain form gets the done page itself.
            200 => {
                w.saves += 1;
                w.fails += usize::from(fail);
                header(&res, "hx-push-url").and_then(|u| trace_of(&u))
            }
            // The other device saved this trace first: say so, then move on.
            409 => {
                w.conflicts += 1;
                let page = res.text().await.expect("body");
                assert!(
                    page.contains("changed elsewhere"),
                    "a conflict is explained: {page}"
                );
                next_trace(proxy, &c, &slug, &mut w).await
            }
            s => panic!(
                "annotate answered {s}: {}",
                res.text().await.unwrap_or_default()
            ),
        };
    }
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_behind_nginx_share_sessions_and_lose_or_duplicate_nothing() {
    let Some(nginx_bin) = nginx_binary() else {
        require_or_skip("nginx", false);
        return;
    };
    if !require_or_skip("Redis at 127.0.0.1:6379", reachable("127.0.0.1:6379")) {
        return;
    }
    let database_url = fresh_postgres_database().await;
    if !require_or_skip("Postgres at TEST_POSTGRES_URL", database_url.is_some()) {
        return;
    }
    let database_url = database_url.expect("checked");
    let port = free_port();
    let public_url: url::Url = format!("http://127.0.0.1:{port}").parse().expect("url");
    let configure = |c: &mut tracecoder::Config| {
        c.redis_url = Some(SecretString::from(REDIS_URL));
        c.public_url = Some(public_url.clone());
    };
    // Both start at once, as an orchestrator would start them: migrations must not race.
    let (a, b) = tokio::join!(
        spawn_app_on(database_url.clone(), None, configure),
        spawn_app_on(database_url.clone(), None, configure)
    );
    let instances: BTreeSet<String> = [a.addr.to_string(), b.addr.to_string()].into();
    let mut nginx = Nginx::start(&nginx_bin, port, &[a.addr, b.addr]);
    nginx.wait_ready().await;
    let proxy = Proxy(nginx.base.clone());

    // Readiness through the proxy checks Postgres and Redis.
    let res = client()
        .get(nginx.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(res.status(), 200, "ready behind the proxy");

    // Sign in through the proxy; the session is in Redis, so the other instance knows it.
    let (lead, login_by) = login(&proxy, "Lead", true).await;
    let res = lead.get(nginx.url("/")).send().await.expect("dashboard");
    assert_eq!(res.status(), 200, "signed in on the next request");
    assert_ne!(
        served_by(&res),
        login_by,
        "round robin: the next request went to the other instance"
    );
    // Straight to an instance, with the Host nginx passes on (the app answers only to
    // PUBLIC_URL's name).
    let public_host = format!("127.0.0.1:{port}");
    for direct in [&a, &b] {
        let res = lead
            .get(direct.url("/admin/import"))
            .header("host", &public_host)
            .send()
            .await
            .expect("direct");
        assert_eq!(
            res.status(),
            200,
            "the session works on {} directly",
            direct.addr
        );
    }

    // Import a dataset through the proxy.
    let conversations = 20;
    let turns = 3;
    let traces = conversations * turns;
    let part = reqwest::multipart::Part::bytes(simple_csv(conversations, turns))
        .file_name("scale.csv")
        .mime_str("text/csv")
        .expect("mime");
    let form = reqwest::multipart::Form::new()
        .text("dataset", "Scale out")
        .part("file", part);
    let res = lead
        .post(nginx.url("/admin/import"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(
        res.status(),
        303,
        "the upload redirects to the import's page"
    );
    let status_url = nginx.url(&header(&res, "location").expect("location"));
    // The import's page is read from the database, whichever instance ran the import.
    let mut page = String::new();
    for _ in 0..600 {
        let res = lead.get(&status_url).send().await.expect("import page");
        assert_eq!(res.status(), 200);
        page = res.text().await.expect("body");
        if Page::parse(&page)
            .attr("#import-status", "data-state")
            .as_deref()
            != Some("running")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        page.contains(&format!("Imported {traces} traces")),
        "{page}"
    );
    let slug = "scale-out".to_string();

    // Two annotators, each on two devices, all at once through the proxy: the devices of
    // one annotator race for the same traces; different annotators never interfere.
    let mut devices = Vec::new();
    for name in ["Ann", "Bob"] {
        for device in 0..2 {
            let (c, _) = login(&proxy, name, false).await;
            devices.push((name, c, device == 1));
        }
    }
    let mut tasks = Vec::new();
    for (name, c, htmx) in devices {
        let proxy = proxy.clone();
        let slug = slug.clone();
        tasks.push(tokio::spawn(async move {
            (name, annotate_until_done(&proxy, c, slug, htmx).await)
        }));
    }
    let mut saves: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fails = 0;
    let mut conflicts = 0;
    let mut annotate_served_by: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        let (name, w) = t.await.expect("device task");
        *saves.entry(name).or_default() += w.saves;
        fails += w.fails;
        conflicts += w.conflicts;
        for (by, n) in w.served_by {
            *annotate_served_by.entry(by).or_default() += n;
        }
    }
    eprintln!(
        "saves {saves:?}, conflicts {conflicts}, requests per instance {annotate_served_by:?}"
    );

    // Requests landed on both instances, and on nothing else.
    let seen: BTreeSet<String> = annotate_served_by.keys().cloned().collect();
    assert_eq!(
        seen, instances,
        "the annotation loop was served by both instances"
    );

    // Nothing lost, nothing duplicated: every acknowledged save is exactly one row.
    let total_saves: usize = saves.values().sum();
    let rows = a.count("SELECT COUNT(*) FROM annotations").await;
    assert_eq!(
        rows as usize, total_saves,
        "one annotation row per successful save"
    );
    for (name, n) in &saves {
        assert_eq!(
            *n, traces,
            "{name} annotated every trace exactly once across both devices"
        );
        let in_db = a
            .count(&format!(
                "SELECT COUNT(*) FROM annotations a JOIN users u ON u.id = a.user_id WHERE u.name = '{name}'"
            ))
            .await;
        assert_eq!(in_db as usize, traces, "{name}'s rows");
    }
    let doubles = a
        .count("SELECT COUNT(*) FROM (SELECT trace_pk, user_id FROM annotations GROUP BY trace_pk, user_id HAVING COUNT(*) > 1) d")
        .await;
    assert_eq!(doubles, 0, "no (trace, annotator) twice");
    assert_eq!(
        a.count("SELECT COUNT(*) FROM annotation_revisions").await as usize,
        total_saves,
        "one revision per save"
    );
    assert_eq!(
        a.count("SELECT COUNT(*) FROM annotation_codes").await as usize,
        fails * 2,
        "two code rows per fail"
    );
    // The counters kept in the save transaction agree with the rows under concurrency.
    let counted = a
        .count("SELECT CAST(COALESCE(SUM(passes + fails), 0) AS BIGINT) FROM annotation_counts")
        .await;
    assert_eq!(
        counted as usize, total_saves,
        "pass/fail counters match the rows"
    );
    let counted_fails = a
        .count("SELECT CAST(COALESCE(SUM(fails), 0) AS BIGINT) FROM annotation_counts")
        .await;
    assert_eq!(counted_fails as usize, fails, "fail counter matches");

    // What a user sees agrees: the admin export through the proxy has one line per save,
    // no (trace, annotator) twice.
    let res = lead
        .get(nginx.url(&format!("/d/{slug}/export.jsonl")))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("export body");
    let mut pairs = BTreeSet::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let pair = (v["trace_id"].to_string(), v["annotator_email"].to_string());
        assert!(pairs.insert(pair.clone()), "exported twice: {pair:?}");
    }
    assert_eq!(pairs.len(), total_saves, "export lines");

    // Each annotator's own view: nothing left to do, on either instance.
    for (direct, name) in [(&a, "Ann"), (&b, "Bob")] {
        let c = client();
        let res = c
            .post(direct.url("/login"))
            .header("host", &public_host)
            .form(&[("name", name), ("next", "/")])
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 303, "{name} signs in on {}", direct.addr);
        let res = c
            .get(direct.url(&format!("/d/{slug}/next")))
            .header("host", &public_host)
            .send()
            .await
            .expect("next");
        assert_eq!(res.status(), 200, "{name} is done (no redirect to a trace)");
    }
}
