//! Acceptance tests for sessions: they survive restarts (database store), are shared by
//! instances through Redis, carry safe cookie flags, are renewed at sign-in, expire when idle,
//! and a signed-out request is sent to sign in without losing what the person typed.

use std::time::Duration;

use crate::helpers::*;
use secrecy::SecretString;

const SESSION_COOKIE: &str = "tracecoder_session";

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis_available() -> bool {
    let Ok(url) = url::Url::parse(&redis_url()) else {
        return false;
    };
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port().unwrap_or(6379);
    tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .is_ok()
}

/// A client that sends exactly the cookie it is given (no cookie store of its own).
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in through the development form and returns the session cookie value.
async fn dev_sign_in(app: &TestApp, c: &reqwest::Client, name: &str) -> String {
    let res = c
        .post(app.url("/login"))
        .form(&[("name", name), ("next", "/")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303, "signed in");
    set_cookie_value(&res, SESSION_COOKIE).expect("session cookie")
}

async fn page_with_cookie(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let res = bare_client()
        .get(app.url(path))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .expect("GET");
    (res.status().as_u16(), res.text().await.expect("body"))
}

#[tokio::test]
async fn a_session_survives_an_app_restart() {
    let app = spawn_app().await;
    let c = client();
    dev_sign_in(&app, &c, "Restart Rita").await;
    assert!(app.get_text(&c, "/").await.1.contains("Restart Rita"));

    let (database_url, dir) = app.stop().await;
    let app = spawn_app_on(database_url, dir, |_| {}).await;
    let (status, page) = app.get_text(&c, "/").await;
    assert_eq!(status, 200, "still signed in after the restart: {page}");
    assert!(page.contains("Restart Rita"));
}

#[tokio::test]
async fn two_instances_sharing_redis_accept_each_others_sessions() {
    if !require_or_skip(
        "Redis at TEST_REDIS_URL (default 127.0.0.1:6379)",
        redis_available().await,
    ) {
        return;
    }
    let a = spawn_app_with(|c| c.redis_url = Some(SecretString::from(redis_url()))).await;
    let b = spawn_app_on(a.database_url.clone(), None, |c| {
        c.redis_url = Some(SecretString::from(redis_url()))
    })
    .await;

    let c = client();
    let cookie = dev_sign_in(&a, &c, "Shared Sam").await;
    let (status, page) = page_with_cookie(&b, &cookie, "/").await;
    assert_eq!(
        status, 200,
        "instance B knows the session made on A: {page}"
    );
    assert!(page.contains("Shared Sam"));

    // The session is in Redis, not in either instance's database.
    if backend() == "sqlite" {
        assert_eq!(
            a.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tower_sessions'")
                .await,
            0
        );
    }

    // Signing out on B ends the session on A too.
    let res = bare_client()
        .post(b.url("/logout"))
        .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (status, _) = page_with_cookie(&a, &cookie, "/").await;
    assert_eq!(status, 303, "signed out everywhere");
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_lax_and_secure_behind_https() {
    let app = spawn_app().await;
    let res = client()
        .post(app.url("/login"))
        .form(&[("name", "Cookie Cat"), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_string();
    assert!(
        cookie.starts_with(&format!("{SESSION_COOKIE}=")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "no Secure flag on plain http: {cookie}"
    );

    let app =
        spawn_app_with(|c| c.public_url = Some("https://localhost:8443".parse().unwrap())).await;
    // As a TLS proxy at that address would pass it on.
    let res = client()
        .post(app.url("/login"))
        .header("host", "localhost:8443")
        .form(&[("name", "Cookie Cat"), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_string();
    assert!(
        cookie.contains("; Secure"),
        "Secure when PUBLIC_URL is https: {cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in() {
    let app = spawn_app().await;
    let c = client();
    let first = dev_sign_in(&app, &c, "Fixie").await;
    // Signing in again from the same browser (or a planted cookie) gets a fresh id...
    let second = dev_sign_in(&app, &c, "Fixie").await;
    assert_ne!(first, second, "a new session id at sign-in");
    // ...and the old id is gone from the store.
    assert_eq!(
        page_with_cookie(&app, &first, "/").await.0,
        303,
        "the old id no longer signs anyone in"
    );
    assert_eq!(page_with_cookie(&app, &second, "/").await.0, 200);

    // An id the store never issued is not adopted.
    let res = bare_client()
        .post(app.url("/login"))
        .header("cookie", format!("{SESSION_COOKIE}=attacker-chosen-id"))
        .form(&[("name", "Fixie"), ("next", "/")])
        .send()
        .await
        .unwrap();
    let issued = set_cookie_value(&res, SESSION_COOKIE).expect("cookie");
    assert_ne!(issued, "attacker-chosen-id");
}

#[tokio::test]
async fn an_idle_session_expires_after_the_configured_time() {
    let app = spawn_app_with(|c| c.session_idle = Duration::from_secs(3)).await;
    let cookie = dev_sign_in(&app, &client(), "Idle Ida").await;
    assert_eq!(page_with_cookie(&app, &cookie, "/").await.0, 200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, _) = page_with_cookie(&app, &cookie, "/").await;
    assert_eq!(status, 303, "sent to sign in after the idle time");
}

#[tokio::test]
async fn a_signed_out_browser_is_sent_to_sign_in_and_htmx_keeps_what_was_typed() {
    let app = spawn_app().await;
    let admin = app.login("Admin", true).await;
    let (status, page) = app
        .upload(&admin, "Support", "s.csv", simple_csv(1, 2))
        .await;
    assert_eq!(status, 200, "{page}");

    // A full page: redirected to the sign-in page, coming back afterwards.
    let c = client();
    let res = app.get(&c, "/d/support/t/c0-t1").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Fd%2Fsupport%2Ft%2Fc0-t1"
    );
    let (status, page) = app
        .get_text(&c, "/login?next=%2Fd%2Fsupport%2Ft%2Fc0-t1")
        .await;
    assert_eq!(status, 200);
    assert!(
        Page::parse(&page)
            .attr("input[name=next]", "value")
            .as_deref()
            == Some("/d/support/t/c0-t1"),
        "the form keeps where to go back: {page}"
    );

    // Signing in goes back there.
    let res = c
        .post(app.url("/login"))
        .form(&[("name", "Ann"), ("next", "/d/support/t/c0-t1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/d/support/t/c0-t1");

    // An HTMX save after the session ended: a notice in #flash instead of the swap, so the
    // form (and what the person typed in it) stays on the page. Nothing is saved.
    let res = client()
        .post(app.url("/d/support/t/c0-t1/annotate"))
        .header("HX-Request", "true")
        .header("HX-Current-URL", app.url("/d/support/t/c0-t1"))
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[
            ("verdict", "fail"),
            ("note", "a long note the annotator typed"),
            ("version", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["hx-retarget"], "#flash");
    assert_eq!(res.headers()["hx-reswap"], "innerHTML");
    assert!(
        res.headers().get("location").is_none(),
        "not a redirect away from the form"
    );
    let body = res.text().await.unwrap();
    assert!(body.contains("Sign in again"), "{body}");
    assert!(
        body.contains("/login?next=%2Fd%2Fsupport%2Ft%2Fc0-t1"),
        "links back to the same trace: {body}"
    );
    assert!(body.contains("what you typed is still here"), "{body}");
    assert!(
        !Page::parse(&body).is_whole_page(),
        "a fragment, not a page"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM annotations").await,
        0,
        "nothing saved"
    );
}
