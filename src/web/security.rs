//! Security middleware: the `Host` check, response headers, the cross-site (CSRF) check,
//! per-IP and per-account rate limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::QuantaInstant;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::{KeyExtractor, PeerIpKeyExtractor};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;
use crate::web::pages::ErrorPage;

/// Scripts and styles from this origin only; no framing; no plugins.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

/// The headers every response carries (unless a handler set its own). `no-store`: pages show
/// a signed-in person's work, and nothing but the static assets (which set their own
/// `Cache-Control`) is worth keeping in a shared or a browser cache.
pub fn header_layers() -> [SetResponseHeaderLayer<HeaderValue>; 5] {
    let h = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    [
        h("content-security-policy", CSP),
        h("x-content-type-options", "nosniff"),
        h("referrer-policy", "same-origin"),
        h("x-frame-options", "DENY"),
        h("cache-control", "no-store"),
    ]
}

/// Paths a load balancer or a scraper asks for by IP address (`Host: 10.0.0.11:3000`): they
/// are answered whatever the `Host`. They change nothing and show no one's data.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// One name the app answers to: scheme, host (lower case, IPv6 in brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    scheme: String,
    host: String,
    port: u16,
}

/// The names this server answers to, and the origins its own pages are sent from: the
/// `PUBLIC_URL`, or, for the development sign-in without one, the loopback names with the
/// bound port. Every other `Host` is refused (a DNS-rebinding page reaches the loopback
/// server under its own name), and a cross-site check compares `Origin` with these, never
/// with the `Host` the request claims.
#[derive(Debug, Clone)]
pub struct Site {
    names: Vec<Endpoint>,
    /// Where people should go instead, for the refusal page.
    canonical: String,
}

impl Site {
    /// The site for `config`, serving on `local` (the bound address: its port is the one to
    /// expect when no `PUBLIC_URL` is set).
    pub fn new(config: &Config, local: SocketAddr) -> Site {
        if let Some(url) = &config.public_url
            && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
        {
            let name = Endpoint {
                scheme: url.scheme().to_string(),
                host: host.to_ascii_lowercase(),
                port,
            };
            return Site {
                canonical: url.origin().ascii_serialization(),
                names: vec![name],
            };
        }
        let port = local.port();
        let mut hosts = vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "[::1]".to_string(),
        ];
        let bound = match local.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if local.ip().is_loopback() && !hosts.contains(&bound) {
            hosts.push(bound);
        }
        Site {
            canonical: format!("http://127.0.0.1:{port}"),
            names: hosts
                .into_iter()
                .map(|host| Endpoint {
                    scheme: "http".into(),
                    host,
                    port,
                })
                .collect(),
        }
    }

    /// Whether an authority (`Host`, or the authority of an absolute request target) is
    /// one of ours. A port-less name means the scheme's default port.
    fn knows_authority(&self, authority: &str) -> bool {
        let Ok(parsed) = authority.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        if authority.contains('@') {
            return false;
        }
        let host = parsed.host().to_ascii_lowercase();
        self.names.iter().any(|n| {
            let default = if n.scheme == "https" { 443 } else { 80 };
            n.host == host && n.port == parsed.port_u16().unwrap_or(default)
        })
    }

    /// Whether an `Origin` header names one of our own origins.
    fn knows_origin(&self, origin: &str) -> bool {
        let Ok(url) = url::Url::parse(origin) else {
            return false;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.names
            .iter()
            .any(|n| n.scheme == url.scheme() && n.host == host && n.port == port)
    }

    /// Whether a request names this site: `Ok` when its `Host` (and the authority of an
    /// absolute request target, if any) is ours, else the name it used (`None`: it named no
    /// host at all).
    fn names_us(&self, request: &Request<axum::body::Body>) -> Result<(), Option<String>> {
        let host = request
            .headers()
            .get(axum::http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        let target = request.uri().authority().map(|a| a.as_str().to_string());
        if host.is_none() && target.is_none() {
            return Err(None);
        }
        match [host, target]
            .into_iter()
            .flatten()
            .find(|name| !self.knows_authority(name))
        {
            Some(other) => Err(Some(other)),
            None => Ok(()),
        }
    }
}

/// Middleware: refuses a request whose `Host` is not one of the site's names with `421
/// Misdirected Request` (RFC 9110 §15.5.20: this server does not serve that authority), and
/// one without any `Host` with `400` (RFC 9112 §3.2), before it reaches sessions or
/// handlers. Probes are answered under any name.
pub async fn check_host(
    axum::extract::State(site): axum::extract::State<Arc<Site>>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    if is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let (status, message) = match site.names_us(&request) {
        Ok(()) => return next.run(request).await,
        Err(None) => (
            StatusCode::BAD_REQUEST,
            format!(
                "The request did not say which site it is for (no Host header). Open {}.",
                site.canonical
            ),
        ),
        Err(Some(name)) => {
            tracing::warn!(host = %name, "refused a request for another host name");
            (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "This server does not answer to the name \"{name}\". Open {} instead. If a \
                     link or another site brought you here, it may be trying to reach this \
                     server under its own name, so nothing was done.",
                    site.canonical
                ),
            )
        }
    };
    let page = ErrorPage {
        title: "Wrong address".into(),
        status: status.as_u16(),
        message,
        nav: None,
    };
    page.into_error_response(status)
}

/// Middleware: refuses cross-site state-changing requests (every method but GET, HEAD and
/// OPTIONS) with 403. An `Origin` must be one of the site's own origins (compared with the
/// configuration, not with the `Host` the request claims); `Origin: null` is refused. Without
/// `Origin`, a `Sec-Fetch-Site` other than `same-origin`/`none` is refused. A request with
/// neither header is not from a browser form (curl, scripts), and passes.
pub async fn check_origin(
    axum::extract::State(site): axum::extract::State<Arc<Site>>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let allowed = match origin {
        Some(o) if !o.is_empty() => site.knows_origin(o),
        _ => matches!(fetch_site, None | Some(b"same-origin" | b"none")),
    };
    if allowed {
        next.run(request).await
    } else {
        csrf_rejected()
    }
}

fn csrf_rejected() -> Response {
    let page = ErrorPage {
        title: "Request refused".into(),
        status: 403,
        message:
            "This form was sent from another site, so it was refused to protect your account. \
                  Reload the page and try again."
                .into(),
        nav: None,
    };
    page.into_error_response(StatusCode::FORBIDDEN)
}

/// Compares secrets without stopping at the first difference (no timing oracle).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client IP for rate limiting: the peer address, or the proxy headers when the operator
/// said a trusted proxy sets them (`TRUST_PROXY_HEADERS`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp {
    pub trust_proxy: bool,
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        if self.trust_proxy
            && let Some(ip) = forwarded_client(req.headers())
        {
            return Ok(ip);
        }
        PeerIpKeyExtractor.extract(req)
    }
}

/// The client address as the trusted proxy in front of us saw it: the *last* entry of
/// `X-Forwarded-For` (a proxy appends the address it saw; every earlier entry came from the
/// client and can be anything, so reading the first one, as `SmartIpKeyExtractor` does, would
/// let anyone pick their own rate-limit bucket), else `X-Real-IP`.
fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let last_forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|s| !s.is_empty());
    let real_ip = || {
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    last_forwarded.or_else(real_ip).and_then(parse_ip)
}

/// An IP address, also when a proxy wrote it with a port (`1.2.3.4:5678`, `[::1]:5678`).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// A per-IP limiter: `burst` requests at once, one more every `period`.
pub fn limiter(
    config: &Config,
    burst: u32,
    period: Duration,
) -> Arc<GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>> {
    let conf = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst)
        .key_extractor(ClientIp {
            trust_proxy: config.trust_proxy_headers,
        })
        .finish()
        .expect("burst and period are validated to be non-zero");
    let conf = Arc::new(conf);
    let limiter = conf.limiter().clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            limiter.retain_recent();
        }
    });
    conf
}

/// The friendly 429 page for the per-IP limits.
pub fn too_many_requests(err: GovernorError) -> Response<axum::body::Body> {
    match &err {
        GovernorError::TooManyRequests { wait_time, .. } => rate_limited(
            "Too many attempts from your address. Please wait {wait} seconds and try again.",
            *wait_time,
        ),
        _ => {
            tracing::error!(error = ?err, "rate limiter could not identify the client");
            crate::error::AppError::Internal(anyhow::anyhow!("rate limiter: {err:?}"))
                .into_response()
        }
    }
}

/// A 429 page saying `message` (`{wait}` becomes the seconds to wait), with `Retry-After`.
fn rate_limited(message: &str, wait: u64) -> Response {
    let page = ErrorPage {
        title: "Too many attempts".into(),
        status: 429,
        message: message.replace("{wait}", &wait.to_string()),
        nav: None,
    };
    let mut res = page.into_error_response(StatusCode::TOO_MANY_REQUESTS);
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert("retry-after", v);
    }
    res
}

/// Sign-in attempts per account: the typed development name, or the OIDC issuer and
/// subject. Tighter than the per-IP limit, which must let a whole office behind one address
/// sign in at nine o'clock.
pub struct AccountLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
}

impl AccountLimiter {
    /// `burst` attempts at once, one more every `period`; forgotten accounts are dropped
    /// every minute.
    pub fn new(burst: u32, period: Duration) -> Arc<AccountLimiter> {
        let quota = governor::Quota::with_period(period.max(Duration::from_millis(1)))
            .expect("a non-zero period")
            .allow_burst(std::num::NonZeroU32::new(burst.max(1)).expect("at least 1"));
        let limiter = Arc::new(AccountLimiter {
            limiter: governor::RateLimiter::keyed(quota),
        });
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(l) = weak.upgrade() else { break };
                l.limiter.retain_recent();
            }
        });
        limiter
    }

    /// Counts one attempt for `account`; refused when it has had too many.
    pub fn attempt(&self, account: &str) -> Result<(), AccountLimited> {
        use governor::clock::{Clock, DefaultClock};
        self.limiter
            .check_key(&account.to_string())
            .map_err(|not_until| {
                tracing::warn!(account, "sign-in attempts limited for an account");
                AccountLimited {
                    wait: not_until
                        .wait_time_from(DefaultClock::default().now())
                        .as_secs()
                        .max(1),
                }
            })
    }
}

/// An account had too many sign-in attempts: a 429 page saying how long to wait.
#[derive(Debug)]
pub struct AccountLimited {
    wait: u64,
}

impl IntoResponse for AccountLimited {
    fn into_response(self) -> Response {
        rate_limited(
            "Too many sign-in attempts for this account. Please wait {wait} seconds and try \
             again.",
            self.wait,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_site(port: u16) -> Site {
        Site::new(
            &Config::local("sqlite::memory:"),
            SocketAddr::from(([127, 0, 0, 1], port)),
        )
    }

    #[test]
    fn the_development_site_answers_to_loopback_names_on_its_port_only() {
        let site = dev_site(3000);
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LocalHost:3000",
            "[::1]:3000",
        ] {
            assert!(site.knows_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "evil.example",
            "127.0.0.1:3001",
            "127.0.0.1",
            "localhost.:3000",
            "127.0.0.2:3000",
            "user@127.0.0.1:3000",
            "",
        ] {
            assert!(!site.knows_authority(bad), "{bad}");
        }
        assert!(site.knows_origin("http://localhost:3000"));
        assert!(site.knows_origin("http://[::1]:3000"));
        assert!(
            !site.knows_origin("https://localhost:3000"),
            "another scheme"
        );
        assert!(!site.knows_origin("http://localhost:3001"));
        assert!(!site.knows_origin("http://evil.example:3000"));
        assert!(!site.knows_origin("null"));
        // Port 80 may be left out, as a browser does.
        assert!(dev_site(80).knows_authority("localhost"));
        assert!(dev_site(80).knows_origin("http://localhost"));
    }

    #[test]
    fn with_a_public_url_only_its_name_counts() {
        let mut config = Config::local("sqlite::memory:");
        config.public_url = Some("https://Tracecoder.example.com".parse().unwrap());
        let site = Site::new(&config, SocketAddr::from(([10, 0, 0, 11], 3000)));
        assert!(site.knows_authority("tracecoder.example.com"));
        assert!(site.knows_authority("tracecoder.example.com:443"));
        assert!(!site.knows_authority("tracecoder.example.com:80"));
        assert!(!site.knows_authority("10.0.0.11:3000"));
        assert!(!site.knows_authority("localhost:3000"));
        assert!(site.knows_origin("https://tracecoder.example.com"));
        assert!(!site.knows_origin("http://tracecoder.example.com"));
        assert!(!site.knows_origin("https://evil.example"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_client_is_what_the_nearest_proxy_appended() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            forwarded_client(&headers(&[("x-forwarded-for", "203.0.113.7")])),
            ip("203.0.113.7")
        );
        // A client-supplied entry before the proxy's own is ignored.
        assert_eq!(
            forwarded_client(&headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7")])),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&headers(&[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "203.0.113.7")
            ])),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&headers(&[("x-forwarded-for", "[2001:db8::1]:4711")])),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&headers(&[("x-real-ip", "198.51.100.2")])),
            ip("198.51.100.2")
        );
        assert_eq!(
            forwarded_client(&headers(&[("x-forwarded-for", "unknown")])),
            None
        );
        assert_eq!(forwarded_client(&headers(&[])), None);
    }
}
