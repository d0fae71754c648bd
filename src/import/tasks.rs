//! The imports this server runs in the background: tracked, so that shutdown can let them
//! finish within a grace period and then stop the rest cleanly, and reaped, so that imports
//! of processes that died are cleaned up by whoever runs next.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::db::{Db, imports};

/// Background imports of one server process. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ImportTasks {
    tracker: TaskTracker,
    /// Cancelled when the grace period is over: imports still running stop and clean up.
    stop: CancellationToken,
    /// Cancelled when shutdown begins: the reaper stops.
    closing: CancellationToken,
}

impl ImportTasks {
    /// Runs an import in the background, tracked until it ends.
    pub fn spawn<F>(&self, import: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(import)
    }

    /// The token a tracked import watches (`PendingImport::shutdown`).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Reaps imports of dead processes now, then every third of `stale_after` until
    /// shutdown begins.
    pub async fn start_reaper(&self, db: Db, stale_after: Duration) {
        reap(&db, stale_after).await;
        let closing = self.closing.clone();
        let period = (stale_after / 3).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = closing.cancelled() => return,
                    _ = tick.tick() => reap(&db, stale_after).await,
                }
            }
        });
    }

    /// Lets running imports finish for up to `grace`, then stops the others, which remove
    /// their rows and are marked failed, and waits for that. Returns when none is left
    /// running in this process. New imports cannot start once this is called.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.cancel();
        self.tracker.close();
        if self.tracker.is_empty() {
            return;
        }
        tracing::info!(
            running = self.tracker.len(),
            grace_seconds = grace.as_secs(),
            "waiting for running imports to finish"
        );
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.tracker.len(),
                "grace period over: stopping the imports still running; they are marked failed"
            );
            self.stop.cancel();
            self.tracker.wait().await;
        }
        tracing::info!("no import is running any more");
    }
}

async fn reap(db: &Db, stale_after: Duration) {
    match imports::reap_stale(db, stale_after.as_secs().max(1) as i64).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(count = n, "cleaned up imports whose process had stopped"),
        Err(e) => tracing::debug!(error = %e, "import reaper could not run"),
    }
}
