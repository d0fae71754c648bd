//! Security middleware: response headers, CSRF checks, per-IP rate limits.

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
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;
use crate::web::pages::ErrorPage;

/// Scripts and styles from this origin only; no framing; no plugins.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

/// The headers every response carries (unless a handler set its own).
pub fn header_layers() -> [SetResponseHeaderLayer<HeaderValue>; 4] {
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
    ]
}

/// Refuses cross-site state-changing requests (`Sec-Fetch-Site` / `Origin` checks), with
/// `PUBLIC_URL` as a trusted origin behind proxies that rewrite `Host`.
/// The CSRF rejection responder: a plain function, so the layer type can be named.
pub type CsrfRejection = fn(tower_http::csrf::ProtectionError) -> Response<axum::body::Body>;

pub fn csrf_layer(config: &Config) -> anyhow::Result<CsrfLayer<CsrfRejection>> {
    let mut layer = CsrfLayer::new();
    if let Some(url) = &config.public_url {
        layer = layer
            .add_trusted_origin(url.origin().ascii_serialization())
            .map_err(|e| anyhow::anyhow!("PUBLIC_URL cannot be a trusted origin: {e}"))?;
    }
    Ok(layer.with_rejection_response(csrf_rejected as CsrfRejection))
}

fn csrf_rejected(_: tower_http::csrf::ProtectionError) -> Response<axum::body::Body> {
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

/// A limiter: `burst` requests at once, one more every `period`.
pub fn limiter(
    config: &Config,
    burst: u32,
) -> Arc<GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>> {
    let conf = GovernorConfigBuilder::default()
        .period(config.rate_limit_period)
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

/// The friendly 429 page.
pub fn too_many_requests(err: GovernorError) -> Response<axum::body::Body> {
    let (status, wait) = match &err {
        GovernorError::TooManyRequests { wait_time, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, *wait_time)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 0),
    };
    if status != StatusCode::TOO_MANY_REQUESTS {
        tracing::error!(error = ?err, "rate limiter could not identify the client");
        return crate::error::AppError::Internal(anyhow::anyhow!("rate limiter: {err:?}"))
            .into_response();
    }
    let page = ErrorPage {
        title: "Too many attempts".into(),
        status: 429,
        message: format!(
            "Too many attempts from your address. Please wait {wait} seconds and try again."
        ),
        nav: None,
    };
    let mut res = page.into_error_response(status);
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert("retry-after", v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

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
