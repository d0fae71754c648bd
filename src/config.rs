//! Typed configuration for `serve`, read from flags and environment and validated once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tracecoder.db?mode=rwc";

/// The codebook page's target is 50 ms: counts that cost more are kept between saves.
pub const DEFAULT_CODEBOOK_RECOUNT_BUDGET: Duration = Duration::from_millis(50);

/// Everything `serve` needs, validated. Secrets are `SecretString` so they never reach logs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Sessions go to Redis when set, else to the database.
    pub redis_url: Option<SecretString>,
    /// OIDC sign-in; `None` means the development sign-in (loopback only).
    pub oidc: Option<OidcConfig>,
    /// The URL people use to reach the app (scheme, host, port). Drives redirect URIs,
    /// the trusted origin for CSRF checks and the `Secure` cookie flag.
    pub public_url: Option<Url>,
    /// Emails that are admins whenever they sign in.
    pub admin_emails: Vec<String>,
    /// Where to listen.
    pub bind: SocketAddr,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// Read the client IP from `X-Forwarded-For`/`Forwarded` (only behind a proxy you run).
    pub trust_proxy_headers: bool,
    /// Largest CSV upload accepted through the form.
    pub max_upload_bytes: u64,
    /// Sign-in attempts allowed in a burst per client IP (one more every `login_ip_period`).
    /// Generous, so an office behind one address is not locked out; `login_account_burst`
    /// is the tight limit.
    pub login_burst: u32,
    /// How long a client IP waits for one more sign-in attempt.
    pub login_ip_period: Duration,
    /// Sign-in attempts allowed in a burst per account (the typed development name, or the
    /// OIDC issuer and subject), one more every `rate_limit_period`.
    pub login_account_burst: u32,
    /// Imports allowed in a burst per client IP.
    pub import_burst: u32,
    /// How long an account (sign-in) or a client IP (imports) waits for one more attempt.
    pub rate_limit_period: Duration,
    /// Load the generated demo dataset into an empty database at start.
    pub demo: bool,
    /// Server-side request timeout.
    pub request_timeout: Duration,
    /// Pause after each 2,000-row batch a form import writes: throttles imports on a busy box
    /// (and lets tests watch an import's progress).
    pub import_pause: Duration,
    /// A dataset whose codebook counts take longer than this to compute shows them as last
    /// computed while annotators save, and counts again in the background
    /// (`codebook_cache`); within it, every view after a save counts again.
    pub codebook_recount_budget: Duration,
    /// On shutdown, how long running imports may take to finish before they are stopped,
    /// cleaned up and marked failed.
    pub import_grace: Duration,
    /// An import whose heartbeat is older than this is taken for dead and cleaned up (its
    /// runner beats five times as often). Give every process on one database the same value.
    pub import_stale_after: Duration,
    /// A connection that has not sent a whole request head this long after connecting, or
    /// after its previous response (keep-alive), is closed.
    pub header_read_timeout: Duration,
    /// A response the client stops reading (nothing of it accepted by the socket) for this
    /// long is abandoned and its connection closed.
    pub response_stall_timeout: Duration,
    /// Most connections served at once; more are answered 503 and closed. Lowered at start
    /// to fit under the open-file limit.
    pub max_connections: usize,
    /// An upload that delivers fewer bytes per second than this, measured over each
    /// `upload_rate_window`, is cut off (0: no minimum).
    pub upload_min_bytes_per_second: u64,
    /// The window over which the upload rate is measured.
    pub upload_rate_window: Duration,
    /// `/metrics` answers only requests carrying `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// Serve `/metrics` on this separate address only (not on `bind`).
    pub metrics_bind: Option<SocketAddr>,
}

/// OIDC client settings.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer_url: Url,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// Treat an email as verified when the ID token has no `email_verified` claim (for a
    /// provider that only issues addresses it controls). An explicit `false` never is.
    pub assume_email_verified: bool,
    /// The provider's name on the sign-in button ("Sign in with Okta"); the issuer's host
    /// when not set.
    pub provider_name: Option<String>,
    /// `/login` goes straight to the provider instead of showing the sign-in button (the
    /// page still shows when the provider sent the person back with an error).
    pub straight_to_provider: bool,
}

/// A configuration that cannot run, with a message that says what to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// A config for tests and local runs: dev sign-in on loopback, port 0.
    pub fn local(database_url: impl Into<String>) -> Self {
        Config {
            database_url: database_url.into(),
            redis_url: None,
            oidc: None,
            public_url: None,
            admin_emails: Vec::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            session_idle: Duration::from_secs(8 * 3600),
            trust_proxy_headers: false,
            max_upload_bytes: 512 * 1024 * 1024,
            login_burst: 100,
            login_ip_period: Duration::from_secs(1),
            login_account_burst: 10,
            import_burst: 10,
            rate_limit_period: Duration::from_secs(6),
            demo: false,
            request_timeout: Duration::from_secs(30),
            import_pause: Duration::ZERO,
            codebook_recount_budget: DEFAULT_CODEBOOK_RECOUNT_BUDGET,
            import_grace: Duration::from_secs(20),
            import_stale_after: crate::import::DEFAULT_STALE_AFTER,
            header_read_timeout: Duration::from_secs(30),
            response_stall_timeout: Duration::from_secs(60),
            max_connections: 4096,
            upload_min_bytes_per_second: 8 * 1024,
            upload_rate_window: Duration::from_secs(30),
            metrics_token: None,
            metrics_bind: None,
        }
    }

    /// Checks the combination of settings. Without OIDC the app only serves loopback.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "DATABASE_URL must start with sqlite: or postgres://".into(),
            ));
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(ConfigError("PUBLIC_URL must be an http(s) URL".into()));
        }
        match &self.oidc {
            None => {
                if !self.bind.ip().is_loopback() {
                    return Err(ConfigError(format!(
                        "refusing to listen on {} without OIDC: the development sign-in only \
                         serves loopback. Configure OIDC_ISSUER_URL, OIDC_CLIENT_ID and \
                         OIDC_CLIENT_SECRET (and PUBLIC_URL), or bind to 127.0.0.1.",
                        self.bind
                    )));
                }
                if let Some(url) = &self.public_url
                    && !is_loopback_url(url)
                {
                    return Err(ConfigError(format!(
                        "PUBLIC_URL {url} is not a loopback URL, but OIDC is not configured: \
                         a reverse proxy would expose the development sign-in. Configure \
                         OIDC_ISSUER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET."
                    )));
                }
            }
            Some(_) => {
                if self.public_url.is_none() {
                    return Err(ConfigError(
                        "OIDC needs PUBLIC_URL (for example https://tracecoder.example.com) to \
                         build its redirect URI ${PUBLIC_URL}/auth/callback"
                            .into(),
                    ));
                }
            }
        }
        if self.login_burst == 0 || self.import_burst == 0 || self.login_account_burst == 0 {
            return Err(ConfigError("rate limit bursts must be at least 1".into()));
        }
        if self.max_connections == 0 {
            return Err(ConfigError("MAX_CONNECTIONS must be at least 1".into()));
        }
        if self.header_read_timeout.is_zero()
            || self.upload_rate_window.is_zero()
            || self.response_stall_timeout.is_zero()
        {
            return Err(ConfigError(
                "HEADER_READ_TIMEOUT_SECONDS, RESPONSE_STALL_TIMEOUT_SECONDS and UPLOAD_RATE_WINDOW_SECONDS must be at least 1"
                    .into(),
            ));
        }
        if self
            .metrics_bind
            .is_some_and(|m| m == self.bind && m.port() != 0)
        {
            return Err(ConfigError(format!(
                "METRICS_BIND {} is the same address as BIND: give the metrics their own port",
                self.bind
            )));
        }
        Ok(())
    }

    /// Whether the session cookie must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }

    /// Whether `email` is an admin by configuration.
    pub fn is_admin_email(&self, email: &str) -> bool {
        !email.is_empty()
            && self
                .admin_emails
                .iter()
                .any(|a| a.eq_ignore_ascii_case(email))
    }
}

/// Parses `ADMIN_EMAILS` (comma or whitespace separated).
pub fn parse_admin_emails(raw: &str) -> Vec<String> {
    raw.split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_sign_in_refuses_a_public_bind() {
        let mut c = Config::local("sqlite::memory:");
        c.bind = "0.0.0.0:3000".parse().unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("OIDC"), "{err}");
    }

    #[test]
    fn dev_sign_in_refuses_a_public_url() {
        let mut c = Config::local("sqlite::memory:");
        c.public_url = Some("https://example.com".parse().unwrap());
        assert!(c.validate().is_err());
        c.public_url = Some("http://localhost:3000".parse().unwrap());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn oidc_needs_a_public_url() {
        let mut c = Config::local("sqlite::memory:");
        c.oidc = Some(OidcConfig {
            issuer_url: "https://id.example.com".parse().unwrap(),
            client_id: "tc".into(),
            client_secret: None,
            assume_email_verified: false,
            provider_name: None,
            straight_to_provider: false,
        });
        c.bind = "0.0.0.0:3000".parse().unwrap();
        assert!(c.validate().is_err());
        c.public_url = Some("https://tc.example.com".parse().unwrap());
        assert!(c.validate().is_ok());
        assert!(c.secure_cookies());
    }

    #[test]
    fn admin_emails_parse_and_match_case_insensitively() {
        let mut c = Config::local("sqlite::memory:");
        c.admin_emails = parse_admin_emails("Ann@x.org, bob@y.org\ncy@z.org");
        assert_eq!(c.admin_emails.len(), 3);
        assert!(c.is_admin_email("ann@X.org"));
        assert!(!c.is_admin_email(""));
        assert!(!c.is_admin_email("dan@x.org"));
    }

    #[test]
    fn unknown_database_schemes_are_refused() {
        let c = Config::local("mysql://x");
        assert!(c.validate().is_err());
    }
}
