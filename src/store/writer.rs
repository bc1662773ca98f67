//! Group commit for SQLite: one writer runs the changes queued while the
//! previous commit was syncing, in one transaction, and commits once (one
//! fsync for all of them). Call records (`Store::record_call`, one per call
//! that ends) ride the same batches: at the morning peak they are the most
//! frequent write of all.
//!
//! ```text
//!  apply ─┐                    ┌─ BEGIN IMMEDIATE + loads(1)
//!  apply ─┼─► queue ─► writer ─┤  writes(1) + loads(2)  …  writes(n-1) + loads(n)
//!  apply ─┘      ▲             │  writes(n) + COMMIT  (synchronous = FULL: fsync)
//!                └── answers ◄─┘  only now, to every caller of the batch
//! ```
//!
//! Round trips: on SQLite every command to sqlx's connection thread costs
//! two thread switches, more than SQLite's work for these small
//! statements. So a change's loads are one command, and its writes go in
//! the same command as the next change's loads, `BEGIN` with the first
//! and `COMMIT` with the last ([`pipelined`]): a batch of n changes is
//! n + 1 commands (a batch of call records alone, one).
//!
//! Why it keeps the guarantees of one transaction per change:
//! - Durability: nobody is answered before `COMMIT` returned; if the commit
//!   fails (and again when the batch is run step by step), every operation of the batch is answered with an error (a
//!   refusal too: it may have been decided on an earlier change of the
//!   same batch that is now gone).
//! - Isolation: the operations run one after the other on the single write
//!   connection, in arrival order, exactly as they queued for that
//!   connection before, inside a transaction that holds the database's
//!   write lock from its `BEGIN IMMEDIATE`; statements run in order, so
//!   each change reads what the earlier ones of the batch wrote.
//! - Atomicity of each: a refusal writes nothing (the rules decide on what
//!   was read, before any write). A statement that fails may have left
//!   part of an operation written, and in a command shared by two
//!   operations it is not clear whose it was: the writer rolls the whole
//!   transaction back and runs the batch again step by step
//!   ([`stepwise`]: each operation in its own commands); an operation that
//!   fails there is left out, the batch run once more without it, and it is
//!   answered with its error. The others then run on exactly what they ran
//!   on before (the same rows, the same order, the same `now`), so they
//!   decide the same. Errors are rare (a full disk, a corrupt row): the
//!   common path has no savepoints, which were two more round trips per
//!   change.
//! - The closing (and every other writer: import, receipts, sessions)
//!   takes the same single write connection, so it runs between two
//!   batches, never inside one: the closed days a change loads are the
//!   truth for R10 (`changes::Change::decide`).
//! - A caller that stops waiting (its HTTP request timed out, the phone
//!   caller hung up) does not cancel anything: the writer owns the
//!   transaction, and the change commits or fails as a whole batch.
//!
//! The writer is a tokio task started by `Store::open` (the store's only
//! task, like sqlx's own pool maintenance); it ends when the last clone of
//! the store is dropped. (On a thread of its own, with a current-thread
//! runtime, it was slower: 445 µs of CPU per change against 308 µs,
//! docs/benchmarks.md.)

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::changes::{Applied, Change, apply_in};
use super::children::{for_change_from_rows, for_change_statements, why_not_loaded};
use super::operator::{CallRecord, call_id, insert_call, insert_call_statement};
use super::statements::Statements;
use super::{Backend, StoreError, begin_write};
use crate::bookings::Refusal;

/// The most operations one transaction carries: bounds how long the
/// write connection is held away from the closing and the other writers.
const MAX_BATCH: usize = 64;

type Outcome = Result<Result<Applied, Refusal>, StoreError>;

/// What the writer is asked to write.
enum Job {
    /// A change through `Store::apply`.
    Change(Change),
    /// A call's record (R12), stored when a call ends: at a busy hour as
    /// many a second as calls end, so it shares the batches of the changes.
    CallRecord(CallRecord),
}

/// What became of a [`Job`], sent back to its caller.
enum Done {
    Change(Outcome),
    CallRecord(Result<i64, StoreError>),
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

    pub(super) async fn apply(&self, change: Change) -> Outcome {
        match self.submit(Job::Change(change)).await? {
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
    match pipelined(write, backend, batch).await {
        Ok(Some(outcomes)) => return outcomes,
        Ok(None) => {
            tracing::warn!(
                operations = batch.len(),
                "a statement of the group commit failed; running the batch step by step"
            );
        }
        Err(e) => return failed_batch(batch, vec![], &e),
    }
    stepwise(write, backend, batch).await
}

/// The fast path: each change's loads go in one command with the
/// previous change's writes (and the call records queued before it); the
/// transaction's `BEGIN IMMEDIATE` goes with the first command and its
/// `COMMIT` with the last (an [`OwnTransaction`]). A batch of n changes is
/// n + 1 round trips to the connection thread, where one command per
/// statement, a savepoint each and sqlx's own `BEGIN` and `COMMIT` made
/// it 7n + 2. Statements run in order, so a change's loads see every
/// write before them.
///
/// `Ok(None)` when a statement failed and the transaction was still open:
/// it is rolled back, nothing of the batch holds, and [`stepwise`] runs
/// the batch again (the command held several operations' statements, so
/// the failure is not attributed here). `Err` when the transaction itself
/// failed: its `BEGIN` or `COMMIT`, or a failure after which it was no
/// longer open to roll back.
async fn pipelined(
    write: &AnyPool,
    backend: Backend,
    batch: &[(Job, oneshot::Sender<Done>)],
) -> Result<Option<Vec<Done>>, StoreError> {
    let mut tx = OwnTransaction {
        conn: write.acquire().await?,
        open: true,
    };
    let mut outcomes: Vec<Option<Done>> = batch.iter().map(|_| None).collect();
    // Statements not sent yet, and the call records among them by index.
    let mut unsent = Statements::new();
    unsent.push("BEGIN IMMEDIATE", vec![]);
    let mut records: Vec<usize> = Vec::new();
    for (index, (job, _)) in batch.iter().enumerate() {
        match job {
            Job::CallRecord(call) => match insert_call_statement(call) {
                Ok(insert) => {
                    unsent.append(insert);
                    records.push(index);
                }
                Err(e) => outcomes[index] = Some(Done::CallRecord(Err(e))),
            },
            Job::Change(change) => {
                let loads = match for_change_statements(change.child, change.loads_from()) {
                    Ok(loads) => loads,
                    Err(e) => {
                        outcomes[index] = Some(Done::Change(Err(e)));
                        continue;
                    }
                };
                let mut command = std::mem::take(&mut unsent);
                command.append(loads);
                let rows = match command.run(&mut tx.conn, backend).await {
                    Ok(rows) => rows,
                    Err(e) => return tx.abandon(e).await,
                };
                let loads = give_call_ids(&rows, &mut records, &mut outcomes);
                let decided = decide(&mut tx.conn, change, loads).await;
                outcomes[index] = Some(Done::Change(decided.map(|d| {
                    d.map(|(applied, writes)| {
                        unsent = writes;
                        applied
                    })
                })));
            }
        }
    }
    unsent.push("COMMIT", vec![]);
    match unsent.run(&mut tx.conn, backend).await {
        Ok(rows) => {
            tx.open = false;
            give_call_ids(&rows, &mut records, &mut outcomes);
        }
        Err(e) => return tx.abandon(e).await,
    }
    Ok(Some(
        outcomes
            .into_iter()
            .map(|done| {
                done.unwrap_or_else(|| {
                    Done::CallRecord(Err(StoreError::Corrupt(
                        "a call insert returned no id".into(),
                    )))
                })
            })
            .collect(),
    ))
}

/// The write connection inside a transaction the writer opens and ends
/// with statements of its own, sent with others. sqlx does not know a
/// transaction is open on it, so none may outlive the batch: dropped while
/// `open` (a failed rollback, a cancelled writer), the connection is
/// closed instead of going back to the pool, and SQLite rolls back.
struct OwnTransaction {
    conn: PoolConnection<Any>,
    /// From before `BEGIN` is sent until `COMMIT` or `ROLLBACK` returned.
    open: bool,
}

impl OwnTransaction {
    /// After `failure`: rolls back. `Ok(None)` if the transaction was
    /// still open (now nothing of it holds: safe to run the batch again);
    /// `Err(failure)` if it was not (its `BEGIN` failed, or SQLite ended it
    /// on the error): then the batch fails.
    async fn abandon(mut self, failure: StoreError) -> Result<Option<Vec<Done>>, StoreError> {
        match sqlx::query("ROLLBACK").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                Ok(None)
            }
            Err(_) => Err(failure),
        }
    }
}

impl Drop for OwnTransaction {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// The ids of the call records `rows` begins with (one `call_id` row
/// each, in the order they were queued) go to their outcomes; the rest
/// of `rows` is returned.
fn give_call_ids<'r>(
    rows: &'r [AnyRow],
    records: &mut Vec<usize>,
    outcomes: &mut [Option<Done>],
) -> &'r [AnyRow] {
    let ids = rows
        .iter()
        .take_while(|r| r.try_column("call_id").is_ok())
        .count();
    for (index, row) in records.drain(..).zip(&rows[..ids]) {
        outcomes[index] = Some(Done::CallRecord(call_id(Some(row))));
    }
    &rows[ids..]
}

/// A change's rules on its loaded rows: what it writes, or a refusal. An
/// error here (a missing child, a corrupt row) has written nothing.
async fn decide(
    conn: &mut AnyConnection,
    change: &Change,
    loads: &[AnyRow],
) -> Result<Result<(Applied, Statements), Refusal>, StoreError> {
    match for_change_from_rows(loads)? {
        Some(loaded) => change.decide(&loaded),
        None => Err(why_not_loaded(conn, change.child).await),
    }
}

/// The careful path, after a statement failed in [`pipelined`]: each
/// operation in its own commands ([`apply_in`], [`insert_call`]). One
/// that fails with an error may have written part of itself, so the
/// transaction is rolled back and the batch run again without it; it is
/// answered with its error.
async fn stepwise(
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
            Err(e) => return failed_batch(batch, left_out, &e),
        }
    }
}

/// Every job not already answered fails with the transaction's error.
fn failed_batch(
    batch: &[(Job, oneshot::Sender<Done>)],
    mut answered: Vec<Option<Done>>,
    e: &dyn std::fmt::Display,
) -> Vec<Done> {
    tracing::error!(error = %e, operations = batch.len(), "group commit failed");
    answered.resize_with(batch.len(), || None);
    let text = e.to_string();
    batch
        .iter()
        .zip(answered)
        .map(|((job, _), done)| {
            done.unwrap_or_else(|| {
                let failed = StoreError::BatchFailed(text.clone());
                match job {
                    Job::Change(_) => Done::Change(Err(failed)),
                    Job::CallRecord(_) => Done::CallRecord(Err(failed)),
                }
            })
        })
        .collect()
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
            Job::Change(change) => Done::Change(apply_in(&mut tx, backend, change).await),
            Job::CallRecord(call) => Done::CallRecord(insert_call(&mut tx, backend, call).await),
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
