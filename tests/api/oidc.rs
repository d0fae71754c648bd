//! Acceptance tests for OIDC sign-in against a real provider process (oauth2-mock-server,
//! pinned in `tests/oidc/package.json`), driven over HTTP the way a browser does it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tracecoder::config::{Config, OidcConfig};

const SESSION_COOKIE: &str = "tracecoder_session";

/// A running provider; the process is killed when this is dropped.
struct Provider {
    issuer: String,
    http: reqwest::Client,
    _child: Child,
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("oidc")
}

impl Provider {
    /// Starts the provider, or returns `None` (a loud skip) when Node or its packages are
    /// missing outside CI.
    async fn start() -> Option<Provider> {
        let installed = provider_dir()
            .join("node_modules")
            .join("oauth2-mock-server")
            .join("package.json")
            .is_file();
        if !require_or_skip(
            "Node.js with tests/oidc's packages (run `npm ci` in tests/oidc)",
            program_available("node", "--version") && installed,
        ) {
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the OIDC provider");
        let stdout = child.stdout.take().expect("provider stdout");
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the provider prints its issuer URL")
            .expect("read provider stdout")
            .expect("provider printed its issuer URL");
        assert!(
            issuer.starts_with("http://127.0.0.1:"),
            "issuer URL: {issuer}"
        );
        Some(Provider {
            issuer,
            http: reqwest::Client::new(),
            _child: child,
        })
    }

    async fn control(&self, path: &str, body: serde_json::Value) {
        let res = self
            .http
            .post(format!("{}/_test/{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert_eq!(res.status(), 204, "provider control {path}");
    }

    /// Who signs in from now on (no `email_verified` claim).
    async fn identity(&self, sub: &str, email: &str, name: &str) {
        self.control(
            "identity",
            serde_json::json!({ "sub": sub, "email": email, "name": name }),
        )
        .await;
    }

    /// Overrides claims of the next ID token only.
    async fn next_id_token(&self, body: serde_json::Value) {
        self.control("next-id-token", body).await;
    }
}

async fn spawn_oidc_app(provider: &Provider, adjust: impl FnOnce(&mut Config)) -> TestApp {
    // `PUBLIC_URL` must name the port the app binds, so pick it first.
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let issuer_url = provider.issuer.parse().expect("issuer URL");
    spawn_app_with(move |c| {
        c.bind = addr;
        c.public_url = Some(format!("http://{addr}").parse().expect("public URL"));
        c.oidc = Some(OidcConfig {
            issuer_url,
            client_id: "tracecoder".into(),
            client_secret: Some(SecretString::from("test-secret")),
            assume_email_verified: false,
            provider_name: None,
            straight_to_provider: false,
        });
        adjust(c);
    })
    .await
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{} has no Location", res.url()))
}

/// `/auth/start`: the app answers with a redirect to the provider's authorize endpoint.
async fn start(app: &TestApp, provider: &Provider, c: &reqwest::Client, next: &str) -> String {
    let res = c
        .get(app.url(&format!("/auth/start?next={}", encode(next))))
        .send()
        .await
        .expect("start");
    assert_eq!(res.status(), 303, "start redirects to the provider");
    let to = location(&res);
    assert!(
        to.starts_with(&format!("{}/authorize?", provider.issuer)),
        "redirects to the provider: {to}"
    );
    to
}

/// The provider signs the person in and sends the browser back to the app's callback.
async fn authorize(app: &TestApp, c: &reqwest::Client, authorize_url: &str) -> String {
    let res = c.get(authorize_url).send().await.expect("authorize");
    assert!(
        res.status().is_redirection(),
        "provider redirects back: {}",
        res.status()
    );
    let back = location(&res);
    assert!(
        back.starts_with(&app.url("/auth/callback?")),
        "back to the callback: {back}"
    );
    back
}

/// The whole dance a browser does; returns the app's answer to the callback.
async fn sign_in(
    app: &TestApp,
    provider: &Provider,
    c: &reqwest::Client,
    next: &str,
) -> reqwest::Response {
    let authorize_url = start(app, provider, c, next).await;
    let callback = authorize(app, c, &authorize_url).await;
    c.get(callback).send().await.expect("callback")
}

/// Asserts a refused sign-in: a clear page saying `why`, and nobody signed in afterwards.
async fn assert_refused(app: &TestApp, c: &reqwest::Client, res: reqwest::Response, why: &str) {
    assert_eq!(res.status(), 400, "refused sign-in");
    let page = res.text().await.expect("body");
    assert!(
        Page::parse(&page).text("h1") == "Sign in",
        "the sign-in page again: {page}"
    );
    assert!(page.contains(why), "says why ({why}): {page}");
    assert!(
        Page::parse(&page).has("#oidc-start"),
        "offers to sign in again"
    );
    let res = app.get(c, "/").await;
    assert_eq!(res.status(), 303, "not signed in");
    assert!(location(&res).starts_with("/login"));
}

async fn users_with_subject(app: &TestApp, subject: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM users WHERE subject = '{subject}'"
    ))
    .await
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).expect("URL");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test]
async fn code_flow_signs_in_shows_the_name_and_logout_ends_the_session() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    provider
        .identity("ann-123", "ann@example.com", "Ann Example")
        .await;
    let app = spawn_oidc_app(&provider, |_| {}).await;
    let c = client();

    // A signed-out browser is sent to the sign-in page, which offers the provider only.
    let res = app.get(&c, "/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2F");
    let (status, page) = app.get_text(&c, "/login?next=%2F").await;
    assert_eq!(status, 200);
    assert!(
        Page::parse(&page).has("a[href=\"/auth/start?next=%2F\"]"),
        "{page}"
    );
    let host = url::Url::parse(&provider.issuer)
        .expect("issuer URL")
        .host_str()
        .expect("issuer host")
        .to_string();
    assert_eq!(
        Page::parse(&page).text("#oidc-start"),
        format!("Sign in with {host}"),
        "names the provider (its host, when no name is configured)"
    );
    assert!(
        !Page::parse(&page).has("input[name=name]"),
        "no development sign-in form with OIDC"
    );
    let res = c
        .post(app.url("/login"))
        .form(&[("name", "Mallory"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "the development sign-in does not exist with OIDC"
    );

    // Authorization code with PKCE, state and nonce, to the configured redirect URI.
    let res = c.get(app.url("/auth/start?next=%2F")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let before =
        set_cookie_value(&res, SESSION_COOKIE).expect("pending sign-in lives in a session");
    let authorize_url = location(&res);
    assert_eq!(
        query_param(&authorize_url, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&authorize_url, "client_id").as_deref(),
        Some("tracecoder")
    );
    assert_eq!(
        query_param(&authorize_url, "redirect_uri"),
        Some(app.url("/auth/callback"))
    );
    assert_eq!(
        query_param(&authorize_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&authorize_url, "code_challenge").is_some_and(|v| v.len() >= 43));
    assert!(query_param(&authorize_url, "state").is_some_and(|v| v.len() >= 16));
    assert!(query_param(&authorize_url, "nonce").is_some_and(|v| v.len() >= 16));
    assert!(
        query_param(&authorize_url, "scope").is_some_and(|s| s.split(' ').any(|x| x == "openid"))
    );

    let callback = authorize(&app, &c, &authorize_url).await;
    let res = c.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303, "signed in");
    assert_eq!(location(&res), "/");
    let after = set_cookie_value(&res, SESSION_COOKIE).expect("a session cookie");
    assert_ne!(before, after, "the session id is renewed at sign-in");

    let (status, page) = app.get_text(&c, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Ann Example"),
        "the user's name on the dashboard: {page}"
    );
    assert!(!Page::parse(&page).has(".who .badge"), "not an admin");
    let row: (String, String, String) =
        sqlx::query_as("SELECT issuer, email, name FROM users WHERE subject = 'ann-123'")
            .fetch_one(app.db.reader())
            .await
            .expect("user upserted by (issuer, subject)");
    assert_eq!(
        row,
        (
            provider.issuer.clone(),
            "ann@example.com".to_string(),
            "Ann Example".to_string()
        )
    );

    // Signing in again updates the same user (a user is issuer + subject).
    provider
        .identity("ann-123", "ann@example.com", "Ann E.")
        .await;
    let c2 = client();
    let res = sign_in(&app, &provider, &c2, "/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(users_with_subject(&app, "ann-123").await, 1);
    assert!(app.get_text(&c2, "/").await.1.contains("Ann E."));

    // Logout ends the session on the server, not just in this browser.
    let res = c.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    let res = app.get(&c, "/").await;
    assert_eq!(res.status(), 303, "signed out");
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = replay
        .get(app.url("/"))
        .header("cookie", format!("{SESSION_COOKIE}={after}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the old session cookie no longer works");
}

#[tokio::test]
async fn tampered_state_is_refused_with_a_clear_page_and_no_session() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    provider.identity("eve-1", "eve@example.com", "Eve").await;
    let app = spawn_oidc_app(&provider, |_| {}).await;

    let c = client();
    let authorize_url = start(&app, &provider, &c, "/").await;
    let callback = authorize(&app, &c, &authorize_url).await;
    let tampered = with_query_param(&callback, "state", "tampered-state-value");
    let res = c.get(&tampered).send().await.unwrap();
    assert_refused(&app, &c, res, "not the one we started").await;

    // The pending sign-in was consumed by the refusal: the genuine answer cannot be used now.
    let res = c.get(&callback).send().await.unwrap();
    assert_refused(&app, &c, res, "not the one we started").await;

    // A callback in a browser that never started a sign-in (login CSRF) is refused too.
    let other = client();
    let authorize_url = start(&app, &provider, &c, "/").await;
    let callback = authorize(&app, &c, &authorize_url).await;
    let res = other.get(&callback).send().await.unwrap();
    assert_refused(&app, &other, res, "not the one we started").await;

    // A callback without code or state.
    let res = c.get(app.url("/auth/callback")).send().await.unwrap();
    assert_refused(&app, &c, res, "incomplete").await;
    assert_eq!(
        users_with_subject(&app, "eve-1").await,
        0,
        "no user created"
    );
}

#[tokio::test]
async fn a_replayed_callback_or_code_is_refused() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    provider.identity("bob-1", "bob@example.com", "Bob").await;
    let app = spawn_oidc_app(&provider, |_| {}).await;

    let victim = client();
    let authorize_url = start(&app, &provider, &victim, "/").await;
    let callback = authorize(&app, &victim, &authorize_url).await;
    let res = victim.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303, "the genuine callback signs in");

    // The same callback again, in another browser: nothing pending matches it.
    let attacker = client();
    let res = attacker.get(&callback).send().await.unwrap();
    assert_refused(&app, &attacker, res, "not the one we started").await;

    // The stolen code with the attacker's own, valid state: the provider refuses to redeem it.
    let own = start(&app, &provider, &attacker, "/").await;
    let state = query_param(&own, "state").expect("state");
    let code = query_param(&callback, "code").expect("code");
    let replay = app.url(&format!(
        "/auth/callback?code={}&state={}",
        encode(&code),
        encode(&state)
    ));
    let res = attacker.get(&replay).send().await.unwrap();
    assert_refused(&app, &attacker, res, "identity provider refused").await;
    let res = attacker.get(&replay).send().await.unwrap();
    let page = res.text().await.unwrap();
    assert!(
        !page.contains("invalid_grant"),
        "the provider's own error text is logged, not shown: {page}"
    );

    // The same browser replaying its own callback after signing in gets the refusal page too.
    let res = victim.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    provider
        .identity("nina-1", "nina@example.com", "Nina")
        .await;
    let app = spawn_oidc_app(&provider, |_| {}).await;

    provider
        .next_id_token(serde_json::json!({ "claims": { "nonce": "not-the-nonce-we-sent" } }))
        .await;
    let c = client();
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_refused(&app, &c, res, "could not be verified (Invalid nonce").await;
    assert_eq!(
        users_with_subject(&app, "nina-1").await,
        0,
        "no user created"
    );

    // The next, untouched sign-in works: the refusal was about the nonce.
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_eq!(res.status(), 303);
    assert!(app.get_text(&c, "/").await.1.contains("Nina"));
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    provider
        .identity("oscar-1", "oscar@example.com", "Oscar")
        .await;
    let app = spawn_oidc_app(&provider, |_| {}).await;

    // Signed with the right key but naming another issuer.
    provider
        .next_id_token(serde_json::json!({ "claims": { "iss": "https://id.other.example" } }))
        .await;
    let c = client();
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_refused(&app, &c, res, "could not be verified (Invalid issuer").await;

    // Issued and signed by another provider altogether (its own key under the same key id).
    provider
        .next_id_token(serde_json::json!({ "foreign": true }))
        .await;
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_refused(&app, &c, res, "could not be verified (Invalid issuer").await;

    // Naming this provider, but signed with a key it never published (even after the app
    // fetches the provider's keys again).
    provider
        .next_id_token(serde_json::json!({ "forged": true }))
        .await;
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_refused(
        &app,
        &c,
        res,
        "could not be verified (Signature verification failed",
    )
    .await;

    // An ID token for another client (audience).
    provider
        .next_id_token(serde_json::json!({ "claims": { "aud": "some-other-client" } }))
        .await;
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_refused(&app, &c, res, "could not be verified (Invalid audiences").await;

    // An expired ID token.
    provider
        .next_id_token(serde_json::json!({ "claims": { "exp": 1_000_000_000 } }))
        .await;
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_refused(&app, &c, res, "could not be verified (Expired").await;
    assert_eq!(
        users_with_subject(&app, "oscar-1").await,
        0,
        "no user created"
    );
}

#[tokio::test]
async fn the_provider_rotating_its_keys_is_followed_by_rediscovery() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    provider
        .identity("rita-1", "rita@example.com", "Rita")
        .await;
    let app = spawn_oidc_app(&provider, |_| {}).await;
    let c = client();
    assert_eq!(sign_in(&app, &provider, &c, "/").await.status(), 303);

    provider.control("rotate-keys", serde_json::json!({})).await;
    let c2 = client();
    let res = sign_in(&app, &provider, &c2, "/").await;
    assert_eq!(res.status(), 303, "signed in with the provider's new key");
    assert!(app.get_text(&c2, "/").await.1.contains("Rita"));
}

#[tokio::test]
async fn next_after_sign_in_is_only_ever_a_local_path() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |_| {}).await;

    for (next, expected) in [
        (
            "/d/support/traces?status=todo",
            "/d/support/traces?status=todo",
        ),
        ("https://evil.example/phish", "/"),
        ("//evil.example/phish", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        // Browsers drop tabs and newlines from URLs: "/\t/evil.example" is "//evil.example".
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\\/evil.example", "/"),
        ("/d/x\r\nSet-Cookie: planted=1", "/"),
    ] {
        let c = client();
        let res = sign_in(&app, &provider, &c, next).await;
        assert_eq!(res.status(), 303, "signed in ({next})");
        assert_eq!(location(&res), expected, "next={next}");
    }

    // The sign-in page keeps only a local `next` in its link too.
    let (_, page) = app
        .get_text(&client(), "/login?next=https%3A%2F%2Fevil.example")
        .await;
    assert!(
        Page::parse(&page).has("a[href=\"/auth/start?next=%2F\"]"),
        "{page}"
    );
}

/// Signs in as this identity (`verified`: the `email_verified` claim, if any) and returns the
/// browser holding the session.
async fn signed_in(
    app: &TestApp,
    provider: &Provider,
    sub: &str,
    email: &str,
    name: &str,
    verified: Option<bool>,
) -> reqwest::Client {
    let mut identity = serde_json::json!({ "sub": sub, "email": email, "name": name });
    if let Some(v) = verified {
        identity["email_verified"] = v.into();
    }
    provider.control("identity", identity).await;
    let c = client();
    assert_eq!(
        sign_in(app, provider, &c, "/").await.status(),
        303,
        "{sub} signs in"
    );
    c
}

/// Whether the signed-in `c` may open the import page (admins only).
async fn is_admin(app: &TestApp, c: &reqwest::Client) -> bool {
    match app.get_text(c, "/admin/import").await {
        (200, _) => true,
        (403, page) => {
            assert!(page.contains("for admins"), "{page}");
            false
        }
        (status, page) => panic!("/admin/import answered {status}: {page}"),
    }
}

async fn stored_email_verified(app: &TestApp, subject: &str) -> i64 {
    app.count(&format!(
        "SELECT email_verified FROM users WHERE subject = '{subject}'"
    ))
    .await
}

#[tokio::test]
async fn admins_come_from_admin_emails_only_when_the_provider_verified_the_email() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |c| {
        c.admin_emails = tracecoder::config::parse_admin_emails(
            "Lead@Example.com, other@example.com, silent@example.com",
        );
    })
    .await;

    let lead = signed_in(
        &app,
        &provider,
        "lead-1",
        "lead@example.com",
        "Lead Person",
        Some(true),
    )
    .await;
    assert!(
        is_admin(&app, &lead).await,
        "a verified ADMIN_EMAILS address is an admin"
    );
    assert_eq!(
        stored_email_verified(&app, "lead-1").await,
        1,
        "what the provider said is kept"
    );

    let ann = signed_in(
        &app,
        &provider,
        "ann-1",
        "ann@example.com",
        "Ann",
        Some(true),
    )
    .await;
    assert!(!is_admin(&app, &ann).await, "anyone else is an annotator");

    // An address the provider says is unverified does not make an admin.
    let fake = signed_in(
        &app,
        &provider,
        "fake-1",
        "other@example.com",
        "Fake",
        Some(false),
    )
    .await;
    assert!(
        !is_admin(&app, &fake).await,
        "unverified email is not trusted"
    );
    assert_eq!(stored_email_verified(&app, "fake-1").await, 0);

    // Nor does one the provider says nothing about.
    let silent = signed_in(
        &app,
        &provider,
        "silent-1",
        "silent@example.com",
        "Silent",
        None,
    )
    .await;
    assert!(
        !is_admin(&app, &silent).await,
        "no email_verified claim: not trusted"
    );

    // Once the provider has verified the address, the next sign-in makes the admin.
    let again = signed_in(
        &app,
        &provider,
        "fake-1",
        "other@example.com",
        "Fake",
        Some(true),
    )
    .await;
    assert!(is_admin(&app, &again).await);
    assert_eq!(stored_email_verified(&app, "fake-1").await, 1);
}

#[tokio::test]
async fn a_provider_without_the_claim_can_be_trusted_by_configuration_but_false_never_is() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |c| {
        c.admin_emails = tracecoder::config::parse_admin_emails("a@example.com, b@example.com");
        if let Some(oidc) = &mut c.oidc {
            oidc.assume_email_verified = true;
        }
    })
    .await;
    let a = signed_in(&app, &provider, "a-1", "a@example.com", "A", None).await;
    assert!(
        is_admin(&app, &a).await,
        "OIDC_ASSUME_EMAIL_VERIFIED covers a missing claim"
    );
    let b = signed_in(&app, &provider, "b-1", "b@example.com", "B", Some(false)).await;
    assert!(
        !is_admin(&app, &b).await,
        "an explicit email_verified: false is never trusted"
    );
}

/// Runs `tracecoder admin ARGS` on the app's database; returns (success, stdout, stderr).
async fn admin_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracecoder"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run tracecoder admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_grant_refuses_an_email_the_provider_did_not_verify() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |_| {}).await;

    let una = signed_in(
        &app,
        &provider,
        "uv-1",
        "unverified@example.com",
        "Una",
        Some(false),
    )
    .await;
    let (ok, _, stderr) = admin_cli(&app, &["grant", "unverified@example.com"]).await;
    assert!(!ok, "refused: {stderr}");
    assert!(
        stderr.contains("did not mark unverified@example.com as verified")
            && stderr.contains(&provider.issuer),
        "says why, naming the provider: {stderr}"
    );
    assert!(!is_admin(&app, &una).await, "still an annotator");

    let sil = signed_in(
        &app,
        &provider,
        "silent-2",
        "silent@example.com",
        "Sil",
        None,
    )
    .await;
    let (ok, _, stderr) = admin_cli(&app, &["grant", "silent@example.com"]).await;
    assert!(!ok, "no claim is not verified either: {stderr}");
    assert!(!is_admin(&app, &sil).await, "still an annotator");

    let vera = signed_in(
        &app,
        &provider,
        "v-1",
        "verified@example.com",
        "Vera",
        Some(true),
    )
    .await;
    assert!(!is_admin(&app, &vera).await);
    let (ok, stdout, stderr) = admin_cli(&app, &["grant", "verified@example.com"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("granted admin to verified@example.com"));
    assert!(is_admin(&app, &vera).await, "granted");
    let (ok, stdout, _) = admin_cli(&app, &["list"]).await;
    assert!(ok);
    assert!(
        stdout.contains("verified@example.com\tVera") && stdout.contains("\tverified"),
        "{stdout}"
    );
}

#[tokio::test]
async fn sign_ins_are_limited_per_account_not_only_per_address() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |c| {
        c.login_account_burst = 2;
        c.rate_limit_period = Duration::from_secs(3600);
    })
    .await;
    provider
        .identity("busy-1", "busy@example.com", "Busy")
        .await;
    for _ in 0..2 {
        assert_eq!(sign_in(&app, &provider, &client(), "/").await.status(), 303);
    }
    let c = client();
    let res = sign_in(&app, &provider, &c, "/").await;
    assert_eq!(res.status(), 429, "the third sign-in of one account");
    assert!(res.text().await.unwrap().contains("for this account"));
    assert_eq!(app.get(&c, "/").await.status(), 303, "not signed in");

    // Someone else, from the same address, is not affected.
    provider
        .identity("calm-1", "calm@example.com", "Calm")
        .await;
    assert_eq!(sign_in(&app, &provider, &client(), "/").await.status(), 303);
}

#[tokio::test]
async fn the_providers_error_text_is_logged_never_shown() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |_| {}).await;
    let c = client();
    let authorize_url = start(&app, &provider, &c, "/").await;
    let state = query_param(&authorize_url, "state").expect("state");
    // What a phishing link (or a provider) can put in the redirect back.
    let res = c
        .get(app.url(&format!(
            "/auth/callback?error=access_denied&error_description={}&state={}",
            encode("Your account is locked. Call +1-555-0100 to unlock it."),
            encode(&state)
        )))
        .send()
        .await
        .unwrap();
    assert_refused(
        &app,
        &c,
        res,
        "cancelled or not allowed at the identity provider",
    )
    .await;
    let res = c
        .get(app.url(&format!(
            "/auth/callback?error=access_denied&error_description={}",
            encode("Call +1-555-0100")
        )))
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(!page.contains("555"), "{page}");

    // An error code we do not know is not echoed either.
    let res = c
        .get(app.url(&format!(
            "/auth/callback?error={}",
            encode("Visit evil.example to continue")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(!page.contains("evil.example"), "{page}");
    assert!(
        page.contains("The identity provider refused the sign-in"),
        "{page}"
    );
}

#[tokio::test]
async fn the_sign_in_button_names_the_configured_provider_or_goes_straight_to_it() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let app = spawn_oidc_app(&provider, |c| {
        if let Some(o) = c.oidc.as_mut() {
            o.provider_name = Some("Acme SSO".into());
        }
    })
    .await;
    let (status, page) = app.get_text(&client(), "/login?next=%2Fd%2Fx").await;
    assert_eq!(status, 200);
    assert_eq!(
        Page::parse(&page).text("#oidc-start"),
        "Sign in with Acme SSO"
    );

    let straight = spawn_oidc_app(&provider, |c| {
        if let Some(o) = c.oidc.as_mut() {
            o.straight_to_provider = true;
        }
    })
    .await;
    let c = client();
    let res = straight.get(&c, "/login?next=%2Fd%2Fx").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/auth/start?next=%2Fd%2Fx");
    // …which goes on to the provider's authorize endpoint.
    let res = straight.get(&c, "/auth/start?next=%2Fd%2Fx").await;
    assert!(
        location(&res).starts_with(&provider.issuer),
        "{}",
        location(&res)
    );
}
