//! Acceptance tests for the security hardening: CSRF refusal of cross-site writes, the `Host`
//! check against DNS rebinding, security and cache headers on every page, framework errors as
//! our pages, per-IP and per-account rate limits (and when proxy headers count), admin-only
//! routes, and `serve` refusing a public address without OIDC.

use crate::helpers::*;

/// A signed-in admin and annotator on an app holding one small dataset (`support`).
async fn app_with_dataset(
    adjust: impl FnOnce(&mut tracecoder::config::Config),
) -> (TestApp, reqwest::Client, reqwest::Client) {
    let app = spawn_app_with(adjust).await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Support", "s.csv", simple_csv(2, 2))
        .await;
    assert_eq!(status, 200, "{page}");
    let annotator = app.login("Ann", false).await;
    (app, admin, annotator)
}

fn pass_form() -> [(&'static str, &'static str); 2] {
    [("verdict", "pass"), ("version", "0")]
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_same_origin_htmx_posts_work() {
    let (app, _admin, ann) = app_with_dataset(|_| {}).await;
    let annotate = app.url("/d/support/t/c0-t1/annotate");

    // A form on another site posting into the app, as a browser would send it.
    let res = ann
        .post(&annotate)
        .header("Sec-Fetch-Site", "cross-site")
        .header("Origin", "https://evil.example")
        .form(&pass_form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("sent from another site"),
        "a clear page: {page}"
    );

    // An older browser without Sec-Fetch-Site: the Origin of another host is enough.
    let res = ann
        .post(&annotate)
        .header("Origin", "https://evil.example")
        .form(&pass_form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A sibling site (same-site, other origin) is not this app either.
    let res = ann
        .post(&annotate)
        .header("Sec-Fetch-Site", "same-site")
        .form(&pass_form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations").await,
        0,
        "nothing saved"
    );

    // Signing someone out (or in) from another site is refused too.
    let res = ann
        .post(app.url("/logout"))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = client()
        .post(app.url("/login"))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("name", "Planted"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no login CSRF");
    assert_eq!(app.get(&ann, "/").await.status(), 200, "still signed in");

    // The same Pass from the app's own page, through HTMX.
    let res = ann
        .post(&annotate)
        .header("HX-Request", "true")
        .header("Sec-Fetch-Site", "same-origin")
        .header("Origin", &app.base)
        .form(&pass_form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "same-origin HTMX save works");
    assert!(
        res.headers().contains_key("hx-push-url"),
        "answers with the next trace"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations WHERE verdict = 'pass'")
            .await,
        1
    );
}

#[tokio::test]
async fn every_html_response_carries_the_security_headers() {
    let (app, admin, ann) = app_with_dataset(|c| {
        c.login_burst = 4;
        c.login_ip_period = std::time::Duration::from_secs(60);
    })
    .await;
    let anonymous = client();
    let mut responses = vec![
        (
            "sign-in page",
            anonymous.get(app.url("/login")).send().await.unwrap(),
        ),
        ("dashboard", ann.get(app.url("/")).send().await.unwrap()),
        (
            "trace list",
            ann.get(app.url("/d/support/traces")).send().await.unwrap(),
        ),
        (
            "trace",
            ann.get(app.url("/d/support/t/c0-t1")).send().await.unwrap(),
        ),
        (
            "HTMX fragment",
            ann.get(app.url("/d/support/traces"))
                .header("HX-Request", "true")
                .send()
                .await
                .unwrap(),
        ),
        (
            "import form",
            admin.get(app.url("/admin/import")).send().await.unwrap(),
        ),
        (
            "403",
            ann.get(app.url("/admin/import")).send().await.unwrap(),
        ),
        (
            "404",
            ann.get(app.url("/no/such/page")).send().await.unwrap(),
        ),
        (
            "HTMX save",
            ann.post(app.url("/d/support/t/c0-t1/annotate"))
                .header("HX-Request", "true")
                .form(&pass_form())
                .send()
                .await
                .unwrap(),
        ),
        (
            "session notice",
            anonymous
                .post(app.url("/d/support/t/c0-t1/annotate"))
                .header("HX-Request", "true")
                .form(&pass_form())
                .send()
                .await
                .unwrap(),
        ),
        (
            "CSRF refusal",
            ann.post(app.url("/logout"))
                .header("Sec-Fetch-Site", "cross-site")
                .send()
                .await
                .unwrap(),
        ),
        (
            "invalid sign-in",
            anonymous
                .post(app.url("/login"))
                .form(&[("name", " "), ("next", "/")])
                .send()
                .await
                .unwrap(),
        ),
    ];
    let mut limited = None;
    for _ in 0..10 {
        let res = anonymous
            .post(app.url("/login"))
            .form(&[("name", " "), ("next", "/")])
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            limited = Some(res);
            break;
        }
    }
    responses.push(("429", limited.expect("the sign-in limit is reached")));

    let mut seen = Vec::new();
    for (what, res) in responses {
        let h = res.headers().clone();
        let content_type = h
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            content_type.starts_with("text/html"),
            "{what} is HTML ({content_type})"
        );
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: CSP"));
        assert!(
            csp.contains("script-src 'self'"),
            "{what}: scripts from self only: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{what}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{what}"
        );
        assert!(h.contains_key("referrer-policy"), "{what}: Referrer-Policy");
        let body = res.text().await.unwrap();
        assert!(!body.contains("<script>"), "{what}: no inline script");
        seen.push(what);
    }
    assert_eq!(seen.len(), 13);
}

async fn login_attempt(app: &TestApp, forwarded_for: Option<&str>) -> u16 {
    let mut req = client()
        .post(app.url("/login"))
        .form(&[("name", "Guess"), ("next", "/")]);
    if let Some(ip) = forwarded_for {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().await.expect("login attempt").status().as_u16()
}

#[tokio::test]
async fn rapid_login_attempts_from_one_address_hit_a_friendly_429() {
    let app = spawn_app_with(|c| {
        c.login_burst = 10;
        c.login_ip_period = std::time::Duration::from_secs(60);
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(login_attempt(&app, None).await);
    }
    assert!(
        statuses[..10].iter().all(|s| *s == 303),
        "the burst is allowed: {statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "20 rapid attempts are limited: {statuses:?}"
    );

    let res = client()
        .post(app.url("/login"))
        .form(&[("name", "Guess"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Too many attempts") && page.contains("try again"),
        "a friendly page: {page}"
    );

    // Other pages are not limited.
    assert_eq!(
        client()
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_changes_nothing_unless_proxies_are_trusted() {
    let app = spawn_app_with(|c| {
        c.login_burst = 3;
        c.login_ip_period = std::time::Duration::from_secs(60);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(login_attempt(&app, Some("198.51.100.1")).await, 303);
    }
    assert_eq!(login_attempt(&app, Some("198.51.100.1")).await, 429);
    // Another claimed address is still the same client.
    assert_eq!(
        login_attempt(&app, Some("198.51.100.2")).await,
        429,
        "X-Forwarded-For is ignored"
    );
    assert_eq!(login_attempt(&app, None).await, 429);

    let app = spawn_app_with(|c| {
        c.login_burst = 3;
        c.login_ip_period = std::time::Duration::from_secs(60);
        c.trust_proxy_headers = true;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(login_attempt(&app, Some("198.51.100.1")).await, 303);
    }
    assert_eq!(login_attempt(&app, Some("198.51.100.1")).await, 429);
    // Behind a trusted proxy, the address it appended is the client: separate buckets.
    assert_eq!(
        login_attempt(&app, Some("198.51.100.2")).await,
        303,
        "another client behind the proxy"
    );
    // A client cannot pick its bucket by sending its own X-Forwarded-For through the proxy:
    // the proxy appends the real address, and that last entry is what counts.
    assert_eq!(
        login_attempt(&app, Some("203.0.113.99, 198.51.100.1")).await,
        429
    );
}

#[tokio::test]
async fn annotators_get_403_on_admin_routes() {
    let (app, admin, ann) = app_with_dataset(|_| {}).await;
    let (status, page) = app.get_text(&ann, "/admin/import").await;
    assert_eq!(status, 403);
    assert!(page.contains("for admins"), "{page}");
    let (status, _) = app.upload(&ann, "Sneaky", "x.csv", simple_csv(1, 1)).await;
    assert_eq!(status, 403, "an annotator cannot import");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM datasets WHERE slug = 'sneaky'")
            .await,
        0
    );
    let import_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM imports")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(
        app.get_text(&ann, &format!("/admin/imports/{import_id}"))
            .await
            .0,
        403
    );
    assert_eq!(
        app.get_text(&ann, &format!("/admin/imports/{import_id}/status"))
            .await
            .0,
        403
    );
    assert_eq!(
        app.get_text(&admin, &format!("/admin/imports/{import_id}"))
            .await
            .0,
        200
    );
    // Signed out, admin routes send to sign in like every other page.
    let res = client().get(app.url("/admin/import")).send().await.unwrap();
    assert_eq!(res.status(), 303);
}

#[test]
fn serve_on_a_public_address_without_oidc_exits_naming_oidc() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        )
        .env_remove("OIDC_ISSUER_URL")
        .env_remove("OIDC_CLIENT_ID")
        .env_remove("OIDC_CLIENT_SECRET")
        .env_remove("PUBLIC_URL")
        .env_remove("BIND")
        .output()
        .expect("run tracecoder");
    assert!(!out.status.success(), "refuses to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OIDC_ISSUER_URL"), "names OIDC: {stderr}");
    assert!(stderr.contains("0.0.0.0"), "names the address: {stderr}");

    // A public PUBLIC_URL in front of a loopback bind is refused the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--public-url",
            "https://tracecoder.example.com",
        ])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        )
        .env_remove("OIDC_ISSUER_URL")
        .env_remove("OIDC_CLIENT_ID")
        .output()
        .expect("run tracecoder");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OIDC"));
}

// ---------------------------------------------------------------------------------------
// The Host header and DNS rebinding.
// ---------------------------------------------------------------------------------------

/// Sends one raw HTTP/1.1 request (`Connection: close`) and returns the whole answer.
async fn raw_request(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), s.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// A client whose every request for `name` goes to the app's loopback address, as a browser's
/// does once an attacker's DNS answers `127.0.0.1` for their own domain.
fn rebinding_client(app: &TestApp, name: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(name, app.addr)
        .build()
        .expect("client")
}

#[tokio::test]
async fn requests_for_another_host_name_are_refused_and_loopback_names_work() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = raw_request(
            &app,
            &format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "127.0.0.1".to_string(),
    ] {
        let answer = raw_request(
            &app,
            &format!("GET /login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 421"),
            "{host} is refused: {answer}"
        );
        assert!(
            answer.contains("text/html") && answer.contains("does not answer to the name"),
            "a clear page: {answer}"
        );
    }
    // An absolute request target naming another host is refused whatever the Host says.
    let answer = raw_request(
        &app,
        &format!(
            "GET http://evil.example/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    // No Host at all (HTTP/1.0).
    let answer = raw_request(&app, "GET /login HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    // Probes answer under any name: load balancers ask by IP address.
    let answer = raw_request(
        &app,
        "GET /healthz HTTP/1.1\r\nHost: 10.0.0.11:3000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn dns_rebinding_cannot_sign_in_or_read_through_the_loopback_server() {
    let (app, _admin, _ann) = app_with_dataset(|_| {}).await;
    let port = app.addr.port();
    // evil.example now resolves to 127.0.0.1: to the browser, the attacker's page and the
    // app are one origin, so it sends Sec-Fetch-Site: same-origin and its own Origin.
    let evil = rebinding_client(&app, "evil.example");
    let origin = format!("http://evil.example:{port}");
    let res = evil
        .post(format!("{origin}/login"))
        .header("Origin", &origin)
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("name", "Rebinder"), ("next", "/"), ("admin", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        421,
        "no development sign-in under another name"
    );
    assert!(res.headers().get("set-cookie").is_none(), "no session");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE name = 'Rebinder'")
            .await,
        0
    );
    let res = evil
        .get(format!("{origin}/d/support/export.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421, "nothing to read either");
    let body = res.text().await.unwrap();
    assert!(!body.contains("question 0.1"), "{body}");

    // The same browser at the real address works.
    let res = client()
        .post(app.url("/login"))
        .header("Origin", &app.base)
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("name", "Real"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn with_a_public_url_only_its_name_is_served() {
    let app =
        spawn_app_with(|c| c.public_url = Some("http://localhost:8080".parse().unwrap())).await;
    let port = app.addr.port();
    // As a proxy at that address would pass it on.
    let answer = raw_request(
        &app,
        "GET /login HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_request(
        &app,
        &format!("GET /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 421") && answer.contains("http://localhost:8080"),
        "names the address to use: {answer}"
    );
}

#[tokio::test]
async fn the_cross_site_check_compares_origin_with_the_configured_site_not_the_host() {
    let (app, _admin, ann) = app_with_dataset(|_| {}).await;
    let port = app.addr.port();
    let annotate = app.url("/d/support/t/c0-t1/annotate");
    let save = |host: String, origin: String| {
        ann.post(&annotate)
            .header("host", host)
            .header("Origin", origin)
            .header("HX-Request", "true")
            .form(&pass_form())
            .send()
    };
    // A forged Host that matches the forged Origin (all tower-http's check compared when the
    // browser sent no Sec-Fetch-Site) is refused before anything else.
    let res = save("evil.example".into(), "http://evil.example".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
    // Our Host, with another site's Origin, another scheme, another port, or `null`.
    for origin in [
        "http://evil.example".to_string(),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "null".to_string(),
    ] {
        let res = save(format!("127.0.0.1:{port}"), origin.clone())
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "Origin {origin}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 0);
    // One of the configured origins, though not the Host this request named: accepted.
    let res = save(
        format!("127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 1);
}

// ---------------------------------------------------------------------------------------
// Caching, framework errors as pages, per-account sign-in limits.
// ---------------------------------------------------------------------------------------

fn cache_control(res: &reqwest::Response) -> String {
    res.headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn signed_in_pages_are_never_stored_and_static_assets_are_cached() {
    let (app, admin, ann) = app_with_dataset(|_| {}).await;
    for (what, res) in [
        ("dashboard", ann.get(app.url("/")).send().await.unwrap()),
        (
            "trace",
            ann.get(app.url("/d/support/t/c0-t1")).send().await.unwrap(),
        ),
        (
            "fragment",
            ann.get(app.url("/d/support/traces"))
                .header("HX-Request", "true")
                .send()
                .await
                .unwrap(),
        ),
        (
            "export",
            admin
                .get(app.url("/d/support/export.csv"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "error",
            ann.get(app.url("/admin/import")).send().await.unwrap(),
        ),
        (
            "sign-in page",
            client().get(app.url("/login")).send().await.unwrap(),
        ),
    ] {
        assert!(res.status().is_success() || res.status() == 403, "{what}");
        assert_eq!(cache_control(&res), "no-store", "{what}");
    }
    let res = ann.get(app.url("/static/app.css")).send().await.unwrap();
    assert!(
        cache_control(&res).contains("max-age"),
        "{}",
        cache_control(&res)
    );
}

#[tokio::test]
async fn broken_forms_oversized_bodies_and_wrong_methods_get_our_error_pages() {
    let (app, _admin, ann) = app_with_dataset(|_| {}).await;
    let annotate = app.url("/d/support/t/c0-t1/annotate");
    let is_page = |page: &str| {
        let page = Page::parse(page);
        page.is_whole_page() && page.has(".error-card")
    };
    let is_fragment = |page: &str| {
        let page = Page::parse(page);
        !page.is_whole_page() && page.has(".error-card")
    };

    // Fields the form extractor cannot read (the version is a number).
    for form in [
        vec![("verdict", "pass"), ("version", "not-a-number")],
        vec![("verdict", "pass"), ("version", "")],
    ] {
        let res = ann.post(&annotate).form(&form).send().await.unwrap();
        assert_eq!(res.status(), 422);
        let page = res.text().await.unwrap();
        assert!(is_page(&page), "{page}");
        assert!(page.contains("The form was incomplete"), "{page}");
        assert!(
            !page.contains("Failed to deserialize"),
            "no framework text: {page}"
        );

        let res = ann
            .post(&annotate)
            .header("HX-Request", "true")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let page = res.text().await.unwrap();
        assert!(is_fragment(&page), "HTMX gets the fragment: {page}");
    }

    // Not a form at all.
    let res = ann
        .post(&annotate)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert!(is_page(&res.text().await.unwrap()));

    // Over the 2 MB limit of ordinary forms.
    let huge = "x".repeat(3 * 1024 * 1024);
    for htmx in [false, true] {
        let mut req = ann.post(&annotate).form(&[
            ("verdict", "fail"),
            ("version", "0"),
            ("note", huge.as_str()),
        ]);
        if htmx {
            req = req.header("HX-Request", "true");
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 413);
        let page = res.text().await.unwrap();
        assert!(page.contains("larger than this form accepts"), "{page}");
        assert_eq!(is_fragment(&page), htmx, "{page}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM annotations").await, 0);

    // A method the address does not take.
    let res = ann.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let page = res.text().await.unwrap();
    assert!(
        is_page(&page) && page.contains("does not take that kind of request"),
        "{page}"
    );
}

#[tokio::test]
async fn sign_in_limits_count_per_account_and_do_not_lock_out_an_office() {
    let app = spawn_app_with(|c| {
        c.login_burst = 60;
        c.login_ip_period = std::time::Duration::from_secs(3600);
        c.login_account_burst = 3;
        c.rate_limit_period = std::time::Duration::from_secs(3600);
        c.trust_proxy_headers = true;
    })
    .await;
    // Forty colleagues behind the office's one address sign in at nine o'clock.
    for i in 0..40 {
        let name = format!("Colleague {i}");
        assert_eq!(
            login_attempt_as(&app, &name, "203.0.113.10").await,
            303,
            "{name}"
        );
    }
    // One account tried over and over (from anywhere) is limited on its own...
    for _ in 0..3 {
        assert_eq!(login_attempt_as(&app, "Target", "198.51.100.1").await, 303);
    }
    let res = login_response(&app, "target", "198.51.100.2").await;
    assert_eq!(
        res.status(),
        429,
        "names are one account whatever their case"
    );
    assert!(res.headers().contains_key("retry-after"));
    let page = res.text().await.unwrap();
    assert!(page.contains("for this account"), "{page}");
    // ...while the office goes on signing in.
    assert_eq!(
        login_attempt_as(&app, "Latecomer", "203.0.113.10").await,
        303
    );
}

#[tokio::test]
async fn a_form_that_never_finishes_arriving_gets_the_timeout_page() {
    let app = spawn_app_with(|c| c.request_timeout = std::time::Duration::from_secs(1)).await;
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(b"name=Slow".to_vec())]),
        futures_util::stream::pending(),
    );
    let res = client()
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("an answer before the body ends");
    assert_eq!(res.status(), 408);
    let page = res.text().await.unwrap_or_default();
    assert!(
        page.contains("error-card") && page.contains("took too long"),
        "{page}"
    );
}

async fn login_response(app: &TestApp, name: &str, ip: &str) -> reqwest::Response {
    client()
        .post(app.url("/login"))
        .header("X-Forwarded-For", ip)
        .form(&[("name", name), ("next", "/")])
        .send()
        .await
        .expect("login attempt")
}

async fn login_attempt_as(app: &TestApp, name: &str, ip: &str) -> u16 {
    login_response(app, name, ip).await.status().as_u16()
}
