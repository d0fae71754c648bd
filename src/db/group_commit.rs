//! Group commit on SQLite: saves that arrive together share one transaction and one fsync.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL (~0.5–1 ms on this kind of machine, plus checkpoints). One transaction per save
//! therefore capped a server at 500–1,000 saves/s however many cores it had. Here saves queue for a single writer task;
//! it takes every save that is waiting (up to [`MAX_BATCH`]), runs each in a savepoint of
//! one transaction, commits once, and only then answers each annotator. A save that is alone
//! in the queue — one annotator — runs in its own transaction as before, with no wait added.
//!
//! Each save keeps its own outcome: a stale version rolls back to its savepoint and answers
//! with a conflict while the others commit. Any error — in one save's statements, the
//! commit, the connection — abandons the whole shared transaction (its connection is closed,
//! see [`super::write`]: after a failed statement SQLite may already have rolled everything
//! back, so nothing after it could be trusted), and every save in it is retried in a
//! transaction of its own on a fresh connection, so each annotator gets their own answer and
//! no one is told "saved" before their own commit succeeded.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::decisions::SessionTag;
use super::saves::{SaveOutcome, TraceRef, save_alone, save_in};
use super::scope::Scope;
use super::write::Writer;
use crate::domain::AnnotationInput;

/// The most saves one transaction takes. Bounds how long a save waits behind a batch
/// (about 0.1 ms of statements per save, plus one fsync).
pub const MAX_BATCH: usize = 64;

/// Saves waiting beyond this make senders wait (backpressure instead of unbounded memory).
const QUEUE_CAPACITY: usize = 4096;

type Answer = Result<SaveOutcome, sqlx::Error>;

struct SaveJob {
    trace: TraceRef,
    scope: Scope,
    input: AnnotationInput,
    by: SessionTag,
    reply: oneshot::Sender<Answer>,
    /// The request's span: the save's statements are logged (and counted) as its own.
    span: tracing::Span,
}

/// The handle through which requests hand their saves to the writer task.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<SaveJob>,
}

impl GroupCommit {
    /// Starts the writer task on `writer` (the one-connection SQLite write pool). The task
    /// ends when the last handle is dropped.
    pub fn start(writer: Writer) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(writer, queue));
        GroupCommit { jobs }
    }

    /// Queues a save and waits until it is committed (or refused). The save happens even if
    /// the caller stops waiting: once queued it is not abandoned half-way.
    pub async fn save(
        &self,
        trace: TraceRef,
        scope: Scope,
        input: AnnotationInput,
        by: SessionTag,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = SaveJob {
            trace,
            scope,
            input,
            by,
            reply,
            span: tracing::Span::current(),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn run(writer: Writer, mut queue: mpsc::Receiver<SaveJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("tracecoder_save_batch_size").record(batch.len() as f64);
        // A panic must not end the task, or no save would ever succeed again until a
        // restart: the batch's annotators get an error (their answers are dropped, the
        // transaction rolls back) and the next batch starts afresh.
        let outcome = AssertUnwindSafe(commit_batch(&writer, &mut batch))
            .catch_unwind()
            .await;
        if outcome.is_err() {
            tracing::error!(
                saves = batch.len(),
                "a save batch panicked; its unanswered saves failed"
            );
            batch.clear();
        }
    }
}

/// Commits the batch and answers every save in it; leaves `batch` empty.
async fn commit_batch(writer: &Writer, batch: &mut Vec<SaveJob>) {
    if batch.len() > 1 {
        match save_together(writer, batch).await {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.reply.send(answer);
                }
                return;
            }
            Err(err) => tracing::warn!(
                error = %err,
                saves = batch.len(),
                "a shared save transaction failed; retrying each save alone"
            ),
        }
    }
    for job in batch.drain(..) {
        let answer = save_alone(writer, job.trace, &job.scope, &job.input, job.by)
            .instrument(job.span.clone())
            .await;
        let _ = job.reply.send(answer);
    }
}

/// Runs every save in a savepoint of one transaction and commits it. `Err` means the
/// transaction failed as a whole (a save's statement, a savepoint or the commit) and nothing
/// was written: the connection is closed on the way out.
async fn save_together(writer: &Writer, batch: &[SaveJob]) -> Result<Vec<Answer>, sqlx::Error> {
    const SAVEPOINT: &str = "one_save";
    let mut tx = writer.begin().await?;
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        tx.savepoint(SAVEPOINT).await?;
        let outcome = save_in(
            &mut tx,
            writer.backend(),
            job.trace,
            &job.scope,
            &job.input,
            job.by,
        )
        .instrument(job.span.clone())
        .await?;
        match outcome {
            SaveOutcome::Saved { .. } => tx.release(SAVEPOINT).await?,
            SaveOutcome::Conflict { .. } | SaveOutcome::NeedsConfirm { .. } => {
                tx.rollback_to(SAVEPOINT).await?
            }
        }
        answers.push(Ok(outcome));
    }
    tx.commit().await?;
    Ok(answers)
}
