//! The connection loop: accepts TCP connections up to a cap, serves each over HTTP/1.1 with a
//! header-read timeout, and drains in-flight requests on shutdown.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a client that opens
//! connections and never finishes a request head holds a file descriptor each, forever. Here
//! hyper closes a connection that has not sent a whole request head within
//! `header_read_timeout` after connecting or after its previous response (so the same bound
//! is the keep-alive idle time), and at most `max_connections` are served at once: one more is
//! answered `503` and closed at once, so the process never runs out of file descriptors.
//! A client that stops reading a response (its socket accepts nothing for
//! `response_stall_timeout`) has its connection closed too, so slow readers cannot hold the
//! connection slots either; a slow but moving download is never cut.
//! HTTP/2 is not served: browsers reach the app through a TLS proxy, which speaks HTTP/1.1 to
//! it, and cleartext HTTP/2 would add a second protocol to guard.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Descriptors kept free for everything but client connections: database and Redis pools,
/// SQLite's files, spooled uploads, logs.
const RESERVED_FDS: u64 = 256;

/// What every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long a write may wait for a client that does not read.
    pub response_stall_timeout: Duration,
}

/// The answer to a connection over the cap, written without waiting and followed by close.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 47\r\n\
\r\n\
The server is at its connection limit; retry.\r\n";

/// Raises the soft open-file limit to the hard limit (once per process is enough; later
/// calls change nothing) and returns the soft limit now in force, if it can be read.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read or write the struct passed to them.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = lim.rlim_max;
            // macOS refuses a soft limit above OPEN_MAX even when the hard limit is unlimited.
            #[cfg(target_os = "macos")]
            let wanted = wanted.min(10_240);
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = wanted;
            }
        }
        Some(lim.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap actually used: the configured one, lowered to fit under the open-file
/// limit with room for everything else the process opens.
pub fn connection_cap(configured: usize, open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        Some(limit) => {
            let room = limit.saturating_sub(RESERVED_FDS).max(16);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets every
/// request in flight finish (idle keep-alive connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut warned_full: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream);
            if warned_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached: answering 503 to new connections"
                );
                warned_full = Some(Instant::now());
            }
            continue;
        };
        let app = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            // What `into_make_service_with_connect_info` provides: the peer for rate limits.
            req.extensions_mut().insert(ConnectInfo(remote));
            crate::memory::request_seen();
            app.clone().oneshot(req)
        });
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.response_stall_timeout));
        let io = TokioIo::new(Box::pin(stream));
        let connection = graceful.watch(http.serve_connection(io, service));
        metrics::gauge!("tracecoder_connections_open").increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
            metrics::gauge!("tracecoder_connections_open").decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Over the cap: a short 503 if the socket takes it right away, then close. Never waits, so
/// refusing costs no task and holds the descriptor for no time.
fn refuse(stream: TcpStream) {
    metrics::counter!("tracecoder_connections_refused_total").increment(1);
    let _ = stream.try_write(OVER_CAPACITY);
}

/// An accept error. Per-connection errors (the client reset before we accepted) are nothing;
/// others (out of descriptors) would repeat at once, so wait a moment first.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_under_the_open_file_limit() {
        assert_eq!(connection_cap(4096, Some(1024)), 768);
        assert_eq!(connection_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_cap(100, None), 100);
        assert_eq!(connection_cap(4096, Some(100)), 16, "never zero");
    }

    #[test]
    fn the_over_capacity_answer_has_the_length_it_declares() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body.len(), 47);
    }
}
