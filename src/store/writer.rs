//! Group commit for SQLite: one writer runs the changes queued while the
//! previous commit was syncing, in one transaction, and commits once (one
//! fsync for all of them). Call records (`Store::record_call`, one per call
//! that ends) ride the same batches: at the morning peak they are the most
//! frequent write of all.
//!
//! ```text
//!  apply ─┐                    ┌─ BEGIN IMMEDIATE
//!  apply ─┼─► queue ─► writer ─┤  apply_in  (each, in arrival order)
//!  apply ─┘      ▲             │  COMMIT  (synchronous = FULL: fsync)
//!                └── answers ◄─┘  only now, to every caller of the batch
//! ```
//!
//! Why it keeps the guarantees of one transaction per change:
//! - Durability: nobody is answered before `COMMIT` returned; if the commit
//!   fails, every operation of the batch is answered with an error (a
//!   refusal too: it may have been decided on an earlier change of the
//!   same batch that is now gone).
//! - Isolation: the operations run one after the other on the single write
//!   connection, in arrival order, exactly as they queued for that
//!   connection before, inside a transaction that holds the database's
//!   write lock from its `BEGIN IMMEDIATE`; each reads what the earlier
//!   ones of the batch wrote.
//! - Atomicity of each: a refusal writes nothing (the rules decide on what
//!   was read, before any write). An operation that fails with an error
//!   may have written part of itself, so the writer rolls the whole
//!   transaction back and runs the batch again without it, and answers it
//!   with its error. The others then run on exactly what they ran on
//!   before (the same rows, the same order, the same `now`), so they
//!   decide the same. Errors are rare (a full disk, a corrupt row): the
//!   common path has no savepoints, which were two of a change's round
//!   trips to the connection thread.
//! - The closing (and every other writer: import, receipts, sessions)
//!   takes the same single write connection, so it runs between two
//!   batches, never inside one: the day-row check of R10 is unchanged.
//! - A caller that stops waiting (its HTTP request timed out, the phone
//!   caller hung up) does not cancel anything: the writer owns the
//!   transaction, and the change commits or fails as a whole batch.
//!
//! The writer is a tokio task started by `Store::open` (the store's only
//! task, like sqlx's own pool maintenance); it ends when the last clone of
//! the store is dropped.

use chrono::{DateTime, Utc};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::changes::{Applied, Operation, apply_in};
use super::operator::{CallRecord, insert_call};

use super::{Backend, ChildId, StoreError, begin_write};
use crate::bookings::{Actor, Channel, Refusal};

/// The most operations one transaction carries: bounds how long the
/// write connection is held away from the closing and the other writers.
const MAX_BATCH: usize = 64;

type Outcome = Result<Result<Applied, Refusal>, StoreError>;

/// What the writer is asked to write.
enum Job {
    /// A change through `Store::apply`.
    Change(Pending),
    /// A call's record (R12), stored when a call ends: at a busy hour as
    /// many a second as calls end, so it shares the batches of the changes.
    CallRecord(CallRecord),
}

/// What became of a [`Job`], sent back to its caller.
enum Done {
    Change(Outcome),
    CallRecord(Result<i64, StoreError>),
}

/// An operation waiting for the writer.
pub(super) struct Pending {
    pub child: ChildId,
    pub operation: Operation,
    pub actor: Actor,
    pub channel: Channel,
    pub now: DateTime<Utc>,
}

/// The handle every clone of the store holds.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::UnboundedSender<(Job, oneshot::Sender<Done>)>,
}

impl Writer {
    /// Starts the writer on the current tokio runtime.
    pub(super) fn start(write: AnyPool, backend: Backend) -> Writer {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(write, backend, receiver));
        Writer { queue }
    }

    pub(super) async fn apply(&self, pending: Pending) -> Outcome {
        match self.submit(Job::Change(pending)).await? {
            Done::Change(outcome) => outcome,
            Done::CallRecord(_) => Err(StoreError::WriterGone),
        }
    }

    /// Stores a call record in the next batch; its id once committed.
    pub(super) async fn record_call(&self, call: CallRecord) -> Result<i64, StoreError> {
        match self.submit(Job::CallRecord(call)).await? {
            Done::CallRecord(id) => id,
            Done::Change(_) => Err(StoreError::WriterGone),
        }
    }

    async fn submit(&self, job: Job) -> Result<Done, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send((job, answer))
            .map_err(|_| StoreError::WriterGone)?;
        answered.await.map_err(|_| StoreError::WriterGone)
    }
}

async fn run(
    write: AnyPool,
    backend: Backend,
    mut queue: mpsc::UnboundedReceiver<(Job, oneshot::Sender<Done>)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcomes = run_batch(&write, backend, &batch).await;
        for ((_, answer), outcome) in batch.drain(..).zip(outcomes) {
            // The caller may have stopped waiting; the outcome stands.
            let _ = answer.send(outcome);
        }
    }
}

/// One outcome per job, in order.
async fn run_batch(
    write: &AnyPool,
    backend: Backend,
    batch: &[(Job, oneshot::Sender<Done>)],
) -> Vec<Done> {
    // The answers of the jobs that failed with an error and were left out.
    let mut left_out: Vec<Option<Done>> = batch.iter().map(|_| None).collect();
    loop {
        match attempt(write, backend, batch, &left_out).await {
            Ok(Attempt::Committed(outcomes)) => {
                return left_out
                    .into_iter()
                    .zip(outcomes)
                    .filter_map(|(failed, done)| failed.or(done))
                    .collect();
            }
            Ok(Attempt::Failed(index, done)) => {
                tracing::warn!(
                    operation = index,
                    operations = batch.len(),
                    "an operation of the group commit failed; running the batch again without it"
                );
                left_out[index] = Some(done);
            }
            Err(e) => {
                tracing::error!(error = %e, operations = batch.len(), "group commit failed");
                let text = e.to_string();
                return batch
                    .iter()
                    .zip(left_out)
                    .map(|((job, _), failed)| {
                        failed.unwrap_or_else(|| {
                            let failed = StoreError::BatchFailed(text.clone());
                            match job {
                                Job::Change(_) => Done::Change(Err(failed)),
                                Job::CallRecord(_) => Done::CallRecord(Err(failed)),
                            }
                        })
                    })
                    .collect();
            }
        }
    }
}

enum Attempt {
    /// Committed: the outcome of every job not left out, at its index.
    Committed(Vec<Option<Done>>),
    /// This job failed with an error: the transaction was rolled back.
    Failed(usize, Done),
}

/// One transaction for the jobs of `batch` not `left_out`. `Err` when the
/// transaction itself failed (begin, commit, rollback): then nothing of
/// the batch holds.
async fn attempt(
    write: &AnyPool,
    backend: Backend,
    batch: &[(Job, oneshot::Sender<Done>)],
    left_out: &[Option<Done>],
) -> Result<Attempt, sqlx::Error> {
    let mut tx = begin_write(write, backend).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (index, ((job, _), failed)) in batch.iter().zip(left_out).enumerate() {
        if failed.is_some() {
            outcomes.push(None);
            continue;
        }
        let done = match job {
            Job::Change(p) => Done::Change(
                apply_in(
                    &mut tx,
                    backend,
                    p.child,
                    p.operation,
                    &p.actor,
                    p.channel,
                    p.now,
                )
                .await,
            ),
            Job::CallRecord(call) => Done::CallRecord(insert_call(&mut tx, call).await),
        };
        if matches!(done, Done::Change(Err(_)) | Done::CallRecord(Err(_))) {
            tx.rollback().await?;
            return Ok(Attempt::Failed(index, done));
        }
        outcomes.push(Some(done));
    }
    tx.commit().await?;
    Ok(Attempt::Committed(outcomes))
}
