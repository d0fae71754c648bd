//! A minimum rate for upload bodies. A CSV upload streams to disk and may take many minutes
//! for hundreds of MB, so it has no request timeout; instead it must deliver at least
//! `upload_min_bytes_per_second` in every `upload_rate_window`. A client that trickles bytes
//! (or stops sending) is answered `408` and its connection closed, instead of holding a
//! connection, a task and a spooled file forever.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::state::AppState;
use crate::web::pages::ErrorPage;

/// Middleware for the upload route: wraps the body in [`MinRate`] and, when the body was cut
/// off for being too slow, answers with a page that says so (whatever the handler made of
/// the broken body).
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let min = state.config.upload_min_bytes_per_second;
    if min == 0 {
        return next.run(request).await;
    }
    let window = state.config.upload_rate_window;
    let tripped = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::from_stream(MinRate {
        inner: body.into_data_stream(),
        window,
        min_per_window: min.saturating_mul(window.as_secs().max(1)),
        received: 0,
        deadline: Box::pin(tokio::time::sleep(window)),
        tripped: tripped.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if !tripped.load(Ordering::Relaxed) {
        return response;
    }
    let page = ErrorPage {
        title: "Upload too slow".into(),
        status: 408,
        message: format!(
            "The upload was stopped: less than {} KB arrived in {} seconds. Nothing was imported. \
             Check the connection and try again, or import the file from the command line with \
             `tracecoder import FILE --dataset NAME`.",
            min * window.as_secs().max(1) / 1024,
            window.as_secs()
        ),
        nav: None,
    };
    let mut res = page.into_error_response(StatusCode::REQUEST_TIMEOUT);
    // The rest of the body will not be read: end the connection after this answer.
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// A body that fails once a window passes with fewer than `min_per_window` bytes received.
struct MinRate {
    inner: BodyDataStream,
    window: Duration,
    min_per_window: u64,
    /// Bytes received in the current window.
    received: u64,
    deadline: Pin<Box<Sleep>>,
    tripped: Arc<AtomicBool>,
}

impl Stream for MinRate {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => return Poll::Ready(other),
            Poll::Pending => {}
        }
        // Nothing to hand on: check the window (polling the timer registers its wake-up).
        while this.deadline.as_mut().poll(cx).is_ready() {
            if this.received < this.min_per_window {
                this.tripped.store(true, Ordering::Relaxed);
                tracing::warn!(
                    received = this.received,
                    window_s = this.window.as_secs(),
                    "upload too slow: cut off"
                );
                return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "upload below the minimum rate",
                )))));
            }
            this.received = 0;
            let next = Instant::now() + this.window;
            this.deadline.as_mut().reset(next);
        }
        Poll::Pending
    }
}
