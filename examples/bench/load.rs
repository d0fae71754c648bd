//! The HTTP side: browser-like sessions on 127.0.0.1, Pass & Next loops bounded in count
//! and time, page timings, and latency statistics.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// Every request gives up after this long (and counts as an error).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One client for the whole run: a keep-alive connection pool to the server, like many
/// browser tabs. Sessions are carried per annotator in the `Cookie` header.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    pub base: String,
}

/// A signed-in browser: its session cookie.
#[derive(Clone)]
pub struct Session {
    cookie: HeaderValue,
}

impl Http {
    pub fn new(base: &str) -> anyhow::Result<Http> {
        anyhow::ensure!(
            base.starts_with("http://127.0.0.1:"),
            "the benchmark only talks to 127.0.0.1"
        );
        let mut headers = HeaderMap::new();
        // What a browser's same-site form post carries; compressed like a browser's
        // (`Accept-Encoding: gzip, br`, so the server answers with brotli).
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .default_headers(headers)
            .gzip(true)
            .brotli(true)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(120))
            .build()?;
        Ok(Http {
            client,
            base: base.to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs in through the development form and returns the session.
    pub async fn login(&self, name: &str, admin: bool) -> anyhow::Result<Session> {
        let mut form = vec![("name", name), ("next", "/")];
        if admin {
            form.push(("admin", "1"));
        }
        let res = self
            .client
            .post(self.url("/login"))
            .form(&form)
            .send()
            .await?;
        if res.status() != StatusCode::SEE_OTHER {
            bail!("sign-in as {name} answered {}", res.status());
        }
        let cookie = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("tracecoder_session="))
            .and_then(|v| v.split(';').next())
            .context("sign-in set no session cookie")?;
        Ok(Session {
            cookie: HeaderValue::from_str(cookie)?,
        })
    }

    pub fn get(&self, session: &Session, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header(header::COOKIE, session.cookie.clone())
    }

    pub fn post(&self, session: &Session, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header(header::COOKIE, session.cookie.clone())
    }

    /// `GET /d/{slug}/next`: the redirect to this annotator's first unannotated trace
    /// (what entering a dataset costs). `None` when everything is annotated.
    pub async fn enter(&self, session: &Session, slug: &str) -> anyhow::Result<Option<String>> {
        let res = self.get(session, &format!("/d/{slug}/next")).send().await?;
        match res.status() {
            StatusCode::SEE_OTHER => {
                let location = res
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let prefix = format!("/d/{slug}/t/");
                let id = location
                    .strip_prefix(&prefix)
                    .context("next redirected elsewhere")?;
                Ok(Some(percent_decode(id)))
            }
            StatusCode::OK => Ok(None),
            s => bail!("/next answered {s}"),
        }
    }

    /// Pass & Next as the keyboard shortcut sends it (HTMX): saves `pass` on `trace_id` and
    /// returns the id of the next trace the server rendered, or `None` when all are done.
    pub async fn pass_next(
        &self,
        session: &Session,
        slug: &str,
        trace_id: &str,
    ) -> anyhow::Result<Option<String>> {
        let res = self
            .post(
                session,
                &format!("/d/{slug}/t/{}/annotate", percent_encode(trace_id)),
            )
            .header("hx-request", "true")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("verdict=pass&version=0")
            .send()
            .await?;
        let status = res.status();
        let pushed = res.headers().contains_key("hx-push-url");
        let body = res.text().await?;
        if status != StatusCode::OK {
            bail!("Pass & Next answered {status}");
        }
        if !pushed {
            bail!("Pass & Next answered without HX-Push-Url");
        }
        Ok(trace_id_in(&body))
    }
}

/// The id of the rendered trace (`id="trace" data-trace-id="…"`), HTML-unescaped.
pub fn trace_id_in(html: &str) -> Option<String> {
    const MARK: &str = "id=\"trace\" data-trace-id=\"";
    let start = html.find(MARK)? + MARK.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Percent-encodes all but RFC 3986 unreserved characters (as the app's trace URLs do).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Latency samples (microseconds) and errors of one measurement.
#[derive(Debug, Default)]
pub struct Samples {
    pub micros: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Samples {
    pub fn record(&mut self, started: Instant) {
        self.micros
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Percentiles over the successful requests; `secs` is the measured window.
    pub fn stats(mut self, secs: f64) -> Stats {
        self.micros.sort_unstable();
        let n = self.micros.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            // Nearest rank.
            let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
            self.micros[rank.min(n) - 1] as f64 / 1000.0
        };
        Stats {
            count: n as u64,
            errors: self.errors,
            first_error: self.first_error.clone(),
            secs,
            per_sec: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            p50_ms: pct(50.0),
            p95_ms: pct(95.0),
            p99_ms: pct(99.0),
            max_ms: self.micros.last().map_or(0.0, |m| *m as f64 / 1000.0),
        }
    }
}

/// Summary of one measurement: successful requests, errors, rate, latency percentiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Bounds of a loop: it stops at whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_requests: u64,
    pub deadline: Instant,
}

/// One annotator looping Pass & Next from `start` until the bounds, or until `stop` says
/// so. Only requests started after `measure_from` are recorded (the rest is warm-up). After an error it enters
/// the dataset again (like a person reloading the page).
pub async fn annotate_loop(
    http: &Http,
    session: &Session,
    slug: &str,
    start: String,
    bounds: Bounds,
    measure_from: Instant,
    stop: Option<&tokio::sync::watch::Receiver<bool>>,
) -> Samples {
    let mut samples = Samples::default();
    let mut current = Some(start);
    let mut done = 0u64;
    while done < bounds.max_requests && Instant::now() < bounds.deadline {
        if stop.is_some_and(|s| *s.borrow()) {
            break;
        }
        let Some(id) = current.take() else { break };
        let started = Instant::now();
        let measured = started >= measure_from;
        match http.pass_next(session, slug, &id).await {
            Ok(next) => {
                if measured {
                    samples.record(started);
                }
                current = next;
            }
            Err(e) => {
                if measured {
                    samples.error(format!("{e:#}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                current = http.enter(session, slug).await.ok().flatten();
            }
        }
        done += 1;
    }
    samples
}

/// Times `count` sequential GETs of one page (after `warmup` unrecorded ones); a page
/// counts as an error unless it answers 200 with the marker text.
pub async fn time_page(
    http: &Http,
    session: &Session,
    path: &str,
    marker: &str,
    warmup: u64,
    count: u64,
    limit: Duration,
) -> Stats {
    let mut samples = Samples::default();
    let began = Instant::now();
    let mut measured_since = None;
    for i in 0..warmup + count {
        if began.elapsed() > limit {
            break;
        }
        if i == warmup {
            measured_since = Some(Instant::now());
        }
        let started = Instant::now();
        let res = http.get(session, path).send().await;
        let ok = match res {
            Ok(r) if r.status() == StatusCode::OK => match r.text().await {
                Ok(body) if body.contains(marker) => Ok(()),
                Ok(_) => Err(format!("{path}: the page lacks {marker:?}")),
                Err(e) => Err(format!("{path}: {e}")),
            },
            Ok(r) => Err(format!("{path} answered {}", r.status())),
            Err(e) => Err(format!("{path}: {e}")),
        };
        if i >= warmup {
            match ok {
                Ok(()) => samples.record(started),
                Err(e) => samples.error(e),
            }
        }
    }
    samples.stats(measured_since.map_or(0.0, |t| t.elapsed().as_secs_f64()))
}

/// Times `count` sequential entries into a dataset (`/d/{slug}/next` → 303).
pub async fn time_enter(
    http: &Http,
    session: &Session,
    slug: &str,
    warmup: u64,
    count: u64,
) -> Stats {
    let mut samples = Samples::default();
    let mut measured_since = Instant::now();
    for i in 0..warmup + count {
        if i == warmup {
            measured_since = Instant::now();
        }
        let started = Instant::now();
        let res = http.enter(session, slug).await;
        if i >= warmup {
            match res {
                Ok(Some(_)) => samples.record(started),
                Ok(None) => samples.error("nothing left to annotate"),
                Err(e) => samples.error(format!("{e:#}")),
            }
        }
    }
    samples.stats(measured_since.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rendered_trace_id() {
        let html = r#"<div class="trace-layout" id="trace" data-trace-id="a&amp;b-t1">"#;
        assert_eq!(trace_id_in(html).as_deref(), Some("a&b-t1"));
        assert_eq!(percent_decode(&percent_encode("a b/c")), "a b/c");
    }
}
