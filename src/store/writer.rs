//! Group commit for SQLite: one writer runs the changes queued while the
//! previous commit was syncing, in one transaction, each in its own
//! savepoint, and commits once (one fsync for all of them). Call records
//! (`Store::record_call`, one per call that ends) ride the same batches:
//! at the morning peak they are the most frequent write of all.
//!
//! ```text
//!  apply ─┐                    ┌─ BEGIN
//!  apply ─┼─► queue ─► writer ─┤  SAVEPOINT; apply_in; RELEASE | ROLLBACK TO   (each)
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
//!   connection before; each still begins by bumping the child's version
//!   and reads what the earlier ones of the batch wrote. A refusal or an
//!   error rolls back its own savepoint only.
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
use sqlx::{Acquire, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::changes::{Applied, Operation, apply_in};
use super::operator::{CallRecord, insert_call};

use super::{Backend, ChildId, StoreError};
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

/// One transaction for the whole batch; one outcome per job, in order.
async fn run_batch(
    write: &AnyPool,
    backend: Backend,
    batch: &[(Job, oneshot::Sender<Done>)],
) -> Vec<Done> {
    match try_batch(write, backend, batch).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(error = %e, operations = batch.len(), "group commit failed");
            let text = e.to_string();
            batch
                .iter()
                .map(|(job, _)| {
                    let failed = StoreError::BatchFailed(text.clone());
                    match job {
                        Job::Change(_) => Done::Change(Err(failed)),
                        Job::CallRecord(_) => Done::CallRecord(Err(failed)),
                    }
                })
                .collect()
        }
    }
}

/// `Err` when the transaction itself failed (begin, a savepoint's
/// release or rollback, the commit): then nothing of the batch holds.
async fn try_batch(
    write: &AnyPool,
    backend: Backend,
    batch: &[(Job, oneshot::Sender<Done>)],
) -> Result<Vec<Done>, sqlx::Error> {
    let mut tx = write.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (job, _) in batch {
        let mut savepoint = tx.begin().await?;
        let (done, keep) = match job {
            Job::Change(p) => {
                let outcome = apply_in(
                    &mut savepoint,
                    backend,
                    p.child,
                    p.operation,
                    &p.actor,
                    p.channel,
                    p.now,
                )
                .await;
                let keep = matches!(outcome, Ok(Ok(_)));
                (Done::Change(outcome), keep)
            }
            Job::CallRecord(call) => {
                let id = insert_call(&mut savepoint, call).await;
                let keep = id.is_ok();
                (Done::CallRecord(id), keep)
            }
        };
        if keep {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        outcomes.push(done);
    }
    tx.commit().await?;
    Ok(outcomes)
}
