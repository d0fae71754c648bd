//! Operations: readiness through a real database outage (a Postgres this test starts and
//! stops), start-up waiting for the database, graceful shutdown of the real binary on SIGTERM
//! with a slow upload in flight, JSON logs, request ids, metrics and compression.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;

// ---------------------------------------------------------------------------------------
// A private PostgreSQL server: initdb in a temp dir, pg_ctl on a free loopback port.
// ---------------------------------------------------------------------------------------

/// Where `initdb` and `pg_ctl` live: `pg_config --bindir`, Debian's per-version directories
/// (newest first), or `PATH`.
fn pg_bindir() -> Option<PathBuf> {
    let usable = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if usable(&dir) {
            return Some(dir);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, d)| usable(d))
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Some(dir);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| usable(d))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster owned by this test. Postgres refuses to run as root, so as root the
/// data directory belongs to the `postgres` user and commands run through `runuser`.
struct TempPostgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl TempPostgres {
    /// Creates the cluster (not started), or skips loudly when the binaries are missing.
    fn init() -> Option<TempPostgres> {
        let bindir = pg_bindir();
        if !require_or_skip(
            "PostgreSQL server binaries (initdb, pg_ctl)",
            bindir.is_some(),
        ) {
            return None;
        }
        let pg = TempPostgres {
            dir: tempfile::tempdir().expect("temp dir"),
            bindir: bindir.expect("checked"),
            port: free_port(),
            as_postgres_user: running_as_root(),
        };
        if pg.as_postgres_user {
            let ok = Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(pg.dir.path())
                .status();
            assert!(
                ok.is_ok_and(|s| s.success()),
                "chown the temp dir to the postgres user"
            );
        }
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server (fast: open connections are cut) and waits until it is down.
    fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"],
        );
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// The real binary as a child process, its stderr read line by line.
// ---------------------------------------------------------------------------------------

/// `tracecoder serve` on a free loopback port, with a clean environment.
struct Serve {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Serve {
    fn spawn(database_url: &str, env: &[(&str, &str)]) -> Serve {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"));
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .envs(env.iter().copied());
        Self::spawn_command(cmd)
    }

    /// Runs a prepared `tracecoder serve` command with the rest of the environment cleaned.
    fn spawn_command(mut cmd: tokio::process::Command) -> Serve {
        let keep: Vec<String> = cmd
            .as_std()
            .get_envs()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for var in [
            "REDIS_URL",
            "OIDC_ISSUER_URL",
            "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET",
            "PUBLIC_URL",
            "ADMIN_EMAILS",
            "BIND",
            "LOG_FORMAT",
            "RUST_LOG",
            "TRACECODER_DEMO",
        ] {
            if !keep.iter().any(|k| k == var) {
                cmd.env_remove(var);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start tracecoder serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serve {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line matches (the server writes it; the bound only stops a hung
    /// test), and returns that line.
    async fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "the server exited before logging {what}:\n{}",
                    self.seen.join("\n")
                ),
                Err(_) => panic!("the server never logged {what}:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The base URL, from the "listening" log line (text or JSON).
    async fn wait_listening(&mut self) -> String {
        let line = self
            .wait_for("that it is listening", |l| {
                l.contains("listening") && l.contains("127.0.0.1:")
            })
            .await;
        let start = line.find("127.0.0.1:").expect("address") + "127.0.0.1:".len();
        let port: String = line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        format!("http://127.0.0.1:{port}")
    }

    /// Sends SIGTERM, as systemd or an orchestrator does.
    fn terminate(&self) {
        let pid = self.child.id().expect("the server is running");
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    }

    /// Waits for the process to end; returns its status and every stderr line.
    async fn exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit:\n{}", self.seen.join("\n")))
            .expect("wait for the server");
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        (status, self.seen)
    }
}

/// Signs in through the development form of a server at `base`.
async fn login_at(base: &str, name: &str, admin: bool) -> (reqwest::Client, reqwest::Response) {
    let c = client();
    let mut form = vec![("name", name.to_string()), ("next", "/".to_string())];
    if admin {
        form.push(("admin", "1".to_string()));
    }
    let res = c
        .post(format!("{base}/login"))
        .form(&form)
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303, "dev sign-in redirects");
    (c, res)
}

// ---------------------------------------------------------------------------------------
// Database outage and start-up.
// ---------------------------------------------------------------------------------------

/// Stops the database under a running app and starts it again: `/readyz` and pages follow,
/// and the app recovers by itself. `sessions_in_redis` picks the session store: the
/// database itself (one box on Postgres) or Redis (scale-out).
async fn postgres_outage(sessions_in_redis: bool) {
    let Some(pg) = TempPostgres::init() else {
        return;
    };
    if sessions_in_redis && !require_or_skip("Redis at 127.0.0.1:6379", reachable("127.0.0.1:6379"))
    {
        return;
    }
    pg.start();
    let app = spawn_app_on(pg.url(), None, |c| {
        if sessions_in_redis {
            c.redis_url = Some(secrecy::SecretString::from("redis://127.0.0.1:6379"));
        }
    })
    .await;
    let ann = app.login("Ann", false).await;
    let plain = client();

    let res = plain.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(res.status(), 200, "ready while Postgres runs");
    assert_eq!(
        app.get(&ann, "/").await.status(),
        200,
        "the dashboard works"
    );

    pg.stop();
    let res = plain.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(res.status(), 503, "not ready while Postgres is down");
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("database unreachable")
    );
    let res = plain
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200, "still alive: the process itself is fine");

    // A signed-in person asking for a page gets a clear 503 page: not a 500, and not a
    // request timeout after waiting for a connection that cannot come.
    let res = app.get(&ann, "/").await;
    assert_eq!(res.status(), 503, "a page during the outage");
    assert!(
        res.headers().contains_key("retry-after"),
        "503 says when to retry"
    );
    let page = res.text().await.expect("body");
    assert!(
        page.contains("The database is not reachable right now"),
        "{page}"
    );

    pg.start();
    // The pool reconnects by itself: no restart of the app.
    let mut ready = false;
    for _ in 0..60 {
        let res = plain.get(app.url("/readyz")).send().await.expect("readyz");
        if res.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "ready again after Postgres is back");
    let res = app.get(&ann, "/").await;
    assert_eq!(
        res.status(),
        200,
        "the same session works again after the outage"
    );
}

#[tokio::test]
async fn postgres_outage_with_sessions_in_the_database_gives_503_and_recovers() {
    postgres_outage(false).await;
}

#[tokio::test]
async fn postgres_outage_with_sessions_in_redis_gives_503_and_recovers() {
    postgres_outage(true).await;
}

#[tokio::test]
async fn serve_waits_for_the_database_at_start_up_with_a_clear_log_line() {
    let Some(pg) = TempPostgres::init() else {
        return;
    };
    // The database is not up yet when the server starts.
    let mut serve = Serve::spawn(&pg.url(), &[]);
    let line = serve
        .wait_for("that it waits for the database", |l| {
            l.contains("database not reachable yet")
        })
        .await;
    assert!(
        line.contains("retry_in_ms"),
        "the log line says when it retries: {line}"
    );
    pg.start();
    let base = serve.wait_listening().await;
    let res = client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(res.status(), 200, "ready once the database came up");
    serve.terminate();
    let (status, _) = serve.exit().await;
    assert_eq!(status.code(), Some(0), "a clean exit after SIGTERM");
}

/// A throwaway Redis (no persistence) on a free loopback port.
struct TempRedis {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl TempRedis {
    fn start(port: u16) -> TempRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        // Owned (and killed on drop) before anything can panic.
        let redis = TempRedis { child, _dir: dir };
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if reachable(&addr) {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {addr}");
    }

    /// Kills it, as a crash would.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TempRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_outage_gives_503_and_the_app_reconnects_when_it_is_back() {
    if !require_or_skip(
        "redis-server",
        program_available("redis-server", "--version"),
    ) {
        return;
    }
    let port = free_port();
    let redis = TempRedis::start(port);
    let redis_url = format!("redis://127.0.0.1:{port}");
    let app =
        spawn_app_with(|c| c.redis_url = Some(secrecy::SecretString::from(redis_url.as_str())))
            .await;
    let ann = app.login("Ann", false).await;
    let plain = client();
    assert_eq!(
        plain
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    assert_eq!(app.get(&ann, "/").await.status(), 200);

    redis.kill();
    let res = plain.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(res.status(), 503, "not ready without the session store");
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("redis unreachable")
    );
    let res = app.get(&ann, "/").await;
    assert_eq!(
        res.status(),
        503,
        "a page without the session store is a clear 503"
    );
    let page = res.text().await.expect("body");
    assert!(
        page.contains("Redis, which keeps sign-in sessions, is not reachable"),
        "names Redis, not the database: {page}"
    );
    // Signing in needs a session saved: the same page, not a bare 500.
    let res = client()
        .post(app.url("/login"))
        .form(&[("name", "Newcomer"), ("next", "/")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 503);
    let page = res.text().await.expect("body");
    assert!(page.contains("Redis"), "{page}");

    let _redis = TempRedis::start(port);
    let mut ready = false;
    for _ in 0..60 {
        if plain
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        ready,
        "ready again once Redis is back, without restarting the app"
    );
    // This Redis kept nothing, so the old session is gone: signing in again works.
    let res = app.get(&ann, "/").await;
    assert_eq!(res.status(), 303, "asked to sign in again");
    let ann = app.login("Ann", false).await;
    assert_eq!(app.get(&ann, "/").await.status(), 200, "signed in again");
}

#[tokio::test]
async fn serve_waits_for_redis_at_start_up_with_a_clear_log_line() {
    if !require_or_skip(
        "redis-server",
        program_available("redis-server", "--version"),
    ) {
        return;
    }
    let (database_url, _guard) = fresh_database().await;
    let port = free_port();
    let redis_url = format!("redis://127.0.0.1:{port}");
    // Redis is not up yet when the server starts.
    let mut serve = Serve::spawn(&database_url, &[("REDIS_URL", &redis_url)]);
    let line = serve
        .wait_for("that it waits for Redis", |l| {
            l.contains("Redis not reachable yet")
        })
        .await;
    assert!(
        line.contains("retry_in_ms") && line.contains("REDIS_URL"),
        "the log line names the setting and when it retries: {line}"
    );
    let _redis = TempRedis::start(port);
    let base = serve.wait_listening().await;
    let res = client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(res.status(), 200, "ready once Redis came up");
    let (c, _) = login_at(&base, "Ann", false).await;
    let res = c.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(res.status(), 200, "sessions work in Redis");
    serve.terminate();
    let (status, _) = serve.exit().await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn serve_keeps_its_connections_under_the_open_file_limit() {
    let (database_url, _guard) = fresh_database().await;
    // Started with a soft limit of 256 and a hard limit of 700 open files: the server raises
    // the soft limit to 700 and keeps its connection cap below that.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"));
    // The header-read timeout is long enough that the half-open connections below are all
    // still held when the cap is reached, however slowly a busy machine opens them.
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", &database_url)
        .env("HEADER_READ_TIMEOUT_SECONDS", "60");
    // SAFETY: setrlimit is async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 700,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut serve = Serve::spawn_command(cmd);
    let line = serve
        .wait_for("the connection cap", |l| {
            l.contains("MAX_CONNECTIONS lowered")
        })
        .await;
    assert!(
        line.contains("used=444") && line.contains("700"),
        "the soft limit was raised to the hard one, the cap fits under it: {line}"
    );
    let base = serve.wait_listening().await;
    let addr = base.trim_start_matches("http://").to_string();

    // Far more half-open connections than the process could hold.
    let mut held = Vec::new();
    for _ in 0..1500 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut s,
                b"GET / HTTP/1.1
Host: x",
            )
            .await;
            held.push(s);
        }
    }
    drop(held);
    // Once they are gone (or timed out), the server answers as before.
    assert!(
        healthz_comes_back(&base).await,
        "/healthz answers after the flood"
    );
    serve.terminate();
    let (status, lines) = serve.exit().await;
    let all = lines.join("\n");
    assert_eq!(status.code(), Some(0), "{all}");
    assert!(
        !all.contains("Too many open files") && !all.contains("accepting a connection failed"),
        "never out of file descriptors:\n{all}"
    );
    assert!(
        all.contains("connection limit reached"),
        "the excess was refused at the cap:\n{all}"
    );
}

#[tokio::test]
async fn serve_stops_at_once_on_a_database_error_that_waiting_cannot_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("no-such-dir").join("t.db").display()
    );
    let serve = Serve::spawn(&url, &[]);
    let (status, lines) = serve.exit().await;
    let all = lines.join("\n");
    assert_ne!(
        status.code(),
        Some(0),
        "a failed start exits non-zero:\n{all}"
    );
    assert!(
        all.contains("unable to open database file"),
        "says why:\n{all}"
    );
    assert!(!all.contains("retrying"), "no pointless retries:\n{all}");
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown and logs (the real binary).
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_lets_a_slow_upload_finish_and_exits_zero() {
    let (database_url, _guard) = fresh_database().await;
    // Debug request logs show when the upload reached the server.
    let mut serve = Serve::spawn(&database_url, &[("RUST_LOG", "info,tower_http=debug")]);
    let base = serve.wait_listening().await;
    let (admin, _) = login_at(&base, "Admin", true).await;

    // A CSV sent in two halves: the second only after the server was told to stop.
    let csv = simple_csv(50, 4);
    let mid = csv[..csv.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("a line end")
        + 1;
    let (first, rest) = (csv[..mid].to_vec(), csv[mid..].to_vec());
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(first)]).chain(
        futures_util::stream::once(async move {
            let _ = released.await;
            Ok(rest)
        }),
    );
    let form = streamed_upload("Slow", "slow.csv", body);
    let upload = tokio::spawn(
        admin
            .post(format!("{base}/admin/import"))
            .multipart(form)
            .send(),
    );

    serve
        .wait_for("the upload arriving", |l| {
            l.contains("started processing request") && l.contains("/admin/import")
        })
        .await;
    serve.terminate();
    serve
        .wait_for("that it is shutting down", |l| l.contains("shutting down"))
        .await;
    release.send(()).expect("the upload is still sending");

    let res = upload
        .await
        .expect("upload task")
        .expect("the in-flight upload got a response");
    assert_eq!(
        res.status(),
        303,
        "the upload completed and redirects to its import"
    );
    let (status, lines) = serve.exit().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after draining:\n{}",
        lines.join("\n")
    );

    // The whole file was imported: the request really finished, not just answered.
    let db = tracecoder::db::Db::connect(&database_url, Duration::from_secs(10))
        .await
        .expect("reopen database");
    let traces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM traces")
        .fetch_one(db.reader())
        .await
        .expect("count");
    assert_eq!(traces, 200, "every row of the slow upload");
    let state: String = sqlx::query_scalar("SELECT state FROM imports")
        .fetch_one(db.reader())
        .await
        .expect("import");
    assert_eq!(state, "done");
    db.close().await;
}

/// Sends SIGTERM to a real server in the middle of a paced web import (24,000 rows written
/// in 12 batches, each followed by `IMPORT_PAUSE_MS`; the upload answers after its 3 s inline
/// wait with the import still running), waits for the log line `expect` and a clean exit,
/// and returns what the database holds then: each import's (state, message), the traces
/// and the conversations.
async fn sigterm_during_a_slow_web_import(
    grace_seconds: &str,
    expect: &str,
) -> (Vec<(String, String)>, i64, i64) {
    let (database_url, _guard) = fresh_database().await;
    let mut serve = Serve::spawn(
        &database_url,
        &[
            ("IMPORT_PAUSE_MS", "500"),
            ("IMPORT_SHUTDOWN_GRACE_SECONDS", grace_seconds),
        ],
    );
    let base = serve.wait_listening().await;
    let (admin, _) = login_at(&base, "Admin", true).await;
    let part = reqwest::multipart::Part::bytes(simple_csv(6000, 4))
        .file_name("slow.csv")
        .mime_str("text/csv")
        .expect("mime");
    let form = reqwest::multipart::Form::new()
        .text("dataset", "Slow")
        .part("file", part);
    let res = admin
        .post(format!("{base}/admin/import"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(
        res.status(),
        303,
        "the upload answers with the import's page"
    );
    let (imports, _, _) = database_holds(&database_url).await;
    assert_eq!(imports[0].0, "running", "still running when SIGTERM comes");

    serve.terminate();
    serve.wait_for(expect, |l| l.contains(expect)).await;
    let (status, lines) = serve.exit().await;
    assert_eq!(status.code(), Some(0), "exit 0:\n{}", lines.join("\n"));
    database_holds(&database_url).await
}

/// Each import's (state, message), and the number of traces and conversations.
async fn database_holds(database_url: &str) -> (Vec<(String, String)>, i64, i64) {
    let db = tracecoder::db::Db::connect(database_url, Duration::from_secs(10))
        .await
        .expect("reopen database");
    let imports = sqlx::query_as("SELECT state, message FROM imports ORDER BY id")
        .fetch_all(db.reader())
        .await
        .expect("imports");
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(db.reader())
                .await
                .expect("count")
        }
    };
    let traces = count("SELECT COUNT(*) FROM traces").await;
    let conversations = count("SELECT COUNT(*) FROM conversations").await;
    db.close().await;
    (imports, traces, conversations)
}

#[tokio::test]
async fn sigterm_lets_a_running_web_import_finish_within_the_grace_period() {
    let (imports, traces, conversations) =
        sigterm_during_a_slow_web_import("120", "waiting for running imports to finish").await;
    let states: Vec<&str> = imports.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["done"], "finished before the server stopped");
    assert_eq!((traces, conversations), (24_000, 6_000), "every row");
}

#[tokio::test]
async fn sigterm_after_the_grace_period_fails_a_web_import_and_leaves_no_rows() {
    let (imports, traces, conversations) =
        sigterm_during_a_slow_web_import("0", "stopping the imports still running").await;
    let states: Vec<&str> = imports.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["failed"], "marked failed, never left running");
    assert!(imports[0].1.contains("shut down"), "says why: {imports:?}");
    assert_eq!((traces, conversations), (0, 0), "nothing of it kept");
}

#[tokio::test]
async fn json_logs_are_json_lines_with_request_ids_and_never_cookies() {
    let (database_url, _guard) = fresh_database().await;
    let mut serve = Serve::spawn(&database_url, &[("LOG_FORMAT", "json")]);
    let base = serve.wait_listening().await;
    let (ann, login) = login_at(&base, "Ann", false).await;
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("tracecoder_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    assert!(cookie.len() >= 16, "a real session id");
    let res = ann
        .get(format!("{base}/"))
        .header("x-request-id", "ops-test-7f3a")
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), 200);
    let res = ann
        .get(format!("{base}/d/nothing-here/traces"))
        .send()
        .await
        .expect("404 page");
    assert_eq!(res.status(), 404);
    serve.terminate();
    let (status, lines) = serve.exit().await;
    assert_eq!(status.code(), Some(0));

    let all = lines.join("\n");
    assert!(
        !all.contains(&cookie),
        "the session cookie value is never logged"
    );
    assert!(
        !all.contains("tracecoder_session"),
        "no cookie header is logged"
    );
    let mut finished = Vec::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "finished processing request" {
            finished.push(v);
        }
    }
    assert!(finished.len() >= 3, "one access line per request:\n{all}");
    for v in &finished {
        let id = v["span"]["request_id"].as_str().unwrap_or_default();
        assert!(
            !id.is_empty(),
            "every request line carries its request id: {v}"
        );
    }
    assert!(
        finished
            .iter()
            .any(|v| v["span"]["request_id"] == "ops-test-7f3a" && v["status"] == 200),
        "the incoming request id is the one logged:\n{all}"
    );
    assert!(
        finished
            .iter()
            .any(|v| v["status"] == 404 && v["span"]["path"] == "/d/nothing-here/traces")
    );
}

// ---------------------------------------------------------------------------------------
// Request ids, metrics, compression (in-process).
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_response_carries_a_request_id_and_an_incoming_one_is_echoed() {
    let app = spawn_app().await;
    let c = client();
    let id = |res: &reqwest::Response| {
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let first =
        id(&c.get(app.url("/healthz")).send().await.expect("healthz")).expect("a generated id");
    let second =
        id(&c.get(app.url("/nowhere")).send().await.expect("404")).expect("an id on errors too");
    assert_ne!(first, second, "one id per request");
    assert!(
        uuid::Uuid::parse_str(&first).is_ok(),
        "generated ids are UUIDs: {first}"
    );
    let echoed = c
        .get(app.url("/healthz"))
        .header("x-request-id", "from-the-proxy-42")
        .send()
        .await
        .expect("healthz");
    assert_eq!(id(&echoed).as_deref(), Some("from-the-proxy-42"));
}

#[tokio::test]
async fn metrics_hold_latency_by_route_template_pool_gauges_and_import_counters() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Metered", "m.csv", simple_csv(2, 2))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Imported 4 traces"), "{page}");
    for trace in ["c0-t1", "c1-t2"] {
        assert_eq!(
            app.get(&admin, &format!("/d/metered/t/{trace}"))
                .await
                .status(),
            200
        );
    }
    let res = app
        .annotate(
            &admin,
            "metered",
            "c0-t1",
            &[("verdict", "pass"), ("version", "0")],
            false,
        )
        .await;
    assert_eq!(res.status(), 303);

    let res = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = res.text().await.expect("body");
    let has = |parts: &[&str]| text.lines().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&[
            "tracecoder_http_requests_duration_seconds_bucket{",
            "endpoint=\"/d/{slug}/t/{trace_id}\"",
            "method=\"GET\"",
            "status=\"200\"",
            "le=\""
        ]),
        "latency histogram by route template and status:\n{text}"
    );
    assert!(has(&[
        "tracecoder_http_requests_total{",
        "endpoint=\"/d/{slug}/t/{trace_id}/annotate\"",
        "status=\"303\""
    ]));
    assert!(
        !text.contains("/d/metered/t/c0-t1"),
        "concrete paths are not labels (unbounded cardinality)"
    );
    assert!(
        has(&["tracecoder_db_pool_connections "]),
        "pool gauge:\n{text}"
    );
    assert!(
        has(&["tracecoder_db_pool_idle_connections "]),
        "idle pool gauge"
    );
    assert!(
        has(&["tracecoder_import_rows_total{", "result=\"inserted\""]),
        "import counter"
    );
    assert!(
        has(&["tracecoder_annotations_saved_total{", "verdict=\"pass\""]),
        "save counter"
    );
}

#[tokio::test]
async fn metrics_can_require_a_token_or_move_to_their_own_address() {
    let app = spawn_app_with(|c| {
        c.metrics_token = Some(secrecy::SecretString::from("s3cret-scrape"));
    })
    .await;
    let c = client();
    let res = c.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(res.status(), 401, "no token");
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let res = c
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-scrap")
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 401, "a wrong token");
    let res = c
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-scrape")
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("tracecoder_http_requests_total")
    );
    assert_eq!(
        c.get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );

    let app = spawn_app_with(|c| c.metrics_bind = Some("127.0.0.1:0".parse().expect("addr"))).await;
    let metrics_base = format!("http://{}", app.metrics_addr.expect("a metrics address"));
    assert_ne!(metrics_base, app.base);
    let res = c.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(res.status(), 404, "not on the public address");
    let res = c
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200, "on its own address");
    assert!(res.text().await.expect("body").contains("tracecoder_"));
    let res = c
        .get(format!("{metrics_base}/login"))
        .send()
        .await
        .expect("other page");
    assert_eq!(res.status(), 404, "nothing else is served there");
}

#[tokio::test]
async fn pages_are_compressed_when_the_client_accepts_it() {
    let app = spawn_app().await;
    // Raw bytes as they travel: no transparent decompression (another dependency may turn
    // reqwest's gzip feature on).
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .build()
        .expect("client");
    let res = raw
        .get(app.url("/static/app.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("asset");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
}
