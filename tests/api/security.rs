//! Acceptance tests for the security hardening: CSRF refusal of cross-site writes, security
//! headers on every page, per-IP rate limits (and when proxy headers count), admin-only
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
    let (app, admin, ann) = app_with_dataset(|c| c.login_burst = 4).await;
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
    let app = spawn_app_with(|c| c.login_burst = 10).await;
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
    let app = spawn_app_with(|c| c.login_burst = 3).await;
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
