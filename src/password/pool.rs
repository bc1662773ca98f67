//! The bounded password verifier: `permits` worker threads, each running
//! one argon2 verification at a time (so at most `permits` × 19 MiB and
//! `permits` cores), and two queues in front of them:
//!
//! - **untrusted** (a login without a valid device token): at most `queue`
//!   jobs may wait; a request that finds no place is told [`Busy`] at once,
//!   before anything is counted or hashed ([`Hashing::admit`]);
//! - **trusted** (a valid device token, already counted against that
//!   device): no place to take, and always served before the untrusted
//!   queue. Its length is bounded by the devices themselves: each is
//!   admitted a few attempts per lock window (store `reserve_device_attempt`),
//!   and only a password's owner holds one.
//!
//! A job whose request has gone (timed out, connection closed) is dropped
//! unrun by the worker that takes it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::bookings::Password;

/// Which queue a verification waits in (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A login from a device token valid for the adult.
    Trusted,
    /// Anything else.
    Untrusted,
}

/// The untrusted queue is full: answer at once, hash nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is busy")]
pub struct Busy;

/// How many verifications run at once, and how many untrusted ones may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Worker threads: verifications running at once.
    pub permits: usize,
    /// Untrusted verifications that may wait for a worker.
    pub queue: usize,
    /// How many steps nicer than the process the workers run (0 to 19,
    /// as `nice -n`): above 0 they yield the cores to the phone line's
    /// threads when both want them.
    pub nice: u8,
}

impl Default for HashingLimits {
    /// Half the cores (at least one): the other half stays with the phone
    /// line and the rest of the API whatever the logins do. A queue of
    /// four per worker: at tens of milliseconds a verification, a login
    /// waits a fraction of a second at most before its turn.
    fn default() -> HashingLimits {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let permits = (cores / 2).max(1);
        HashingLimits {
            permits,
            queue: 4 * permits,
            nice: DEFAULT_NICE,
        }
    }
}

/// The workers' default nice value (docs/benchmarks.md, "Login flood vs
/// the phone line").
pub const DEFAULT_NICE: u8 = 10;

/// What `/metrics` shows of the verifier; shared with `api::Metrics`.
#[derive(Debug, Default)]
pub struct HashingCounters {
    running: AtomicU64,
    queued: AtomicU64,
    verifications: AtomicU64,
}

impl HashingCounters {
    /// Verifications running now (a gauge).
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Verifications waiting for a worker (a gauge).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// argon2 verifications run since start, the dummy ones for unknown
    /// logins included (a counter).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

/// The verifier: see the module doc. Dropping it stops its workers once
/// the jobs already queued are done.
pub struct Hashing {
    shared: Arc<Shared>,
    untrusted_places: Arc<Semaphore>,
    limits: HashingLimits,
}

/// A place to verify one password, taken by [`Hashing::admit`]. Dropped
/// unused (the attempt was refused after all), it frees its place.
pub struct Admission {
    lane: Lane,
    place: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Hashing {
    /// Starts `limits.permits` worker threads (at least one).
    pub fn new(limits: HashingLimits, counters: Arc<HashingCounters>) -> Hashing {
        let limits = HashingLimits {
            permits: limits.permits.max(1),
            ..limits
        };
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            counters,
        });
        for n in 0..limits.permits {
            let worker = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("mensa-hashing-{n}"))
                .spawn(move || {
                    lower_priority(n, limits.nice);
                    worker.work()
                });
            if let Err(e) = spawned {
                // With no worker at all, logins wait until the request
                // timeout answers them 503: degraded, not unsafe.
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Hashing {
            shared,
            // Running and waiting untrusted jobs both hold a place.
            untrusted_places: Arc::new(Semaphore::new(limits.permits + limits.queue)),
            limits,
        }
    }

    pub fn limits(&self) -> HashingLimits {
        self.limits
    }

    /// A place in `lane`'s queue, or [`Busy`] when the untrusted queue is
    /// full. Trusted admissions always succeed (module doc).
    pub fn admit(&self, lane: Lane) -> Result<Admission, Busy> {
        let place = match lane {
            Lane::Trusted => None,
            Lane::Untrusted => Some(
                self.untrusted_places
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| Busy)?,
            ),
        };
        Ok(Admission {
            lane,
            place,
            shared: self.shared.clone(),
        })
    }
}

impl Drop for Hashing {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl Admission {
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// Verifies `password` against `hash` (None: against the dummy hash,
    /// never a match) on a worker, when its turn comes.
    pub async fn verify(mut self, hash: Option<String>, password: Password) -> bool {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            hash,
            password,
            reply,
            _place: self.place.take(),
        };
        {
            let mut queues = self.shared.lock();
            if queues.closed {
                return false;
            }
            match self.lane {
                Lane::Trusted => queues.trusted.push_back(job),
                Lane::Untrusted => queues.untrusted.push_back(job),
            }
            self.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.ready.notify_one();
        // A worker that stopped without answering (the verifier is gone)
        // lets no one in.
        answer.await.unwrap_or(false)
    }
}

/// Makes the calling worker `nice` steps nicer than the process (as
/// `nice -n` does: a node started at nice 5 hashes at 15), at most 19.
/// Raising it needs no privilege; a failure is logged once and the worker
/// runs at the process's priority.
fn lower_priority(worker: usize, nice: u8) {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    if nice == 0 {
        return;
    }
    let target = (current_nice().unwrap_or(0) + i32::from(nice)).min(19);
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    // The crate maps its 0-99 scale onto nice values; find the step that
    // lands on ours rather than repeat its formula.
    let priority = (0..=99u8)
        .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|p| p.to_posix(policy).ok() == Some(target));
    let result = match priority {
        Some(p) => set_thread_priority_and_policy(thread_native_id(), p, policy)
            .map_err(|e| format!("{e:?}")),
        None => Err(format!("no priority maps to nice {target}")),
    };
    match result {
        Ok(()) if worker == 0 => {
            tracing::info!(nice = target, "password hashing threads run niced")
        }
        Err(error) if worker == 0 => {
            tracing::warn!(%error, nice = target, "password hashing threads stay at normal priority")
        }
        _ => {}
    }
}

/// The calling thread's nice value (field 19 of its /proc stat line).
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name, in parentheses, may hold spaces: count after it.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

struct Job {
    hash: Option<String>,
    password: Password,
    reply: oneshot::Sender<bool>,
    /// The untrusted queue place, held until the verification is done.
    _place: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Queues {
    trusted: VecDeque<Job>,
    untrusted: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
    counters: Arc<HashingCounters>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A worker never panics while holding the lock (it only moves jobs
        // in and out), so a poisoned lock still holds whole queues.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker's loop: the next job, trusted first; returns once the
    /// verifier is dropped and the queues are empty.
    fn work(&self) {
        loop {
            let job = {
                let mut queues = self.lock();
                loop {
                    if let Some(job) = queues
                        .trusted
                        .pop_front()
                        .or_else(|| queues.untrusted.pop_front())
                    {
                        break job;
                    }
                    if queues.closed {
                        return;
                    }
                    queues = self.ready.wait(queues).unwrap_or_else(|e| e.into_inner());
                }
            };
            let c = &self.counters;
            c.queued.fetch_sub(1, Ordering::Relaxed);
            if job.reply.is_closed() {
                continue; // nobody waits for this answer any more
            }
            c.running.fetch_add(1, Ordering::Relaxed);
            let right = super::verify_or_dummy(job.hash.as_deref(), job.password.expose());
            c.verifications.fetch_add(1, Ordering::Relaxed);
            c.running.fetch_sub(1, Ordering::Relaxed);
            let _ = job.reply.send(right);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(permits: usize, queue: usize) -> (Hashing, Arc<HashingCounters>) {
        let counters = Arc::new(HashingCounters::default());
        let limits = HashingLimits {
            permits,
            queue,
            nice: 0,
        };
        (Hashing::new(limits, counters.clone()), counters)
    }

    #[tokio::test]
    async fn untrusted_places_run_out_and_come_back() {
        let (hashing, counters) = pool(1, 1);
        let hash = super::super::hash("right").unwrap();
        let first = hashing.admit(Lane::Untrusted).unwrap();
        let second = hashing.admit(Lane::Untrusted).unwrap();
        assert_eq!(hashing.admit(Lane::Untrusted).err(), Some(Busy));
        // A trusted login is never busy.
        let trusted = hashing.admit(Lane::Trusted).unwrap();
        assert!(
            trusted
                .verify(Some(hash.clone()), Password::new("right"))
                .await
        );
        // An admission dropped unused gives its place back.
        drop(second);
        let again = hashing.admit(Lane::Untrusted).unwrap();
        assert!(!first.verify(None, Password::new("right")).await);
        assert!(!again.verify(Some(hash), Password::new("wrong")).await);
        assert_eq!(counters.verifications(), 3);
        assert_eq!((counters.running(), counters.queued()), (0, 0));
        assert!(hashing.admit(Lane::Untrusted).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trusted_jobs_go_before_the_untrusted_queue() {
        let (hashing, counters) = pool(1, 8);
        let hash = super::super::hash("right").unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let admission = hashing.admit(Lane::Untrusted).unwrap();
            let (order, hash) = (order.clone(), hash.clone());
            tasks.push(tokio::spawn(async move {
                admission.verify(Some(hash), Password::new("x")).await;
                order.lock().unwrap().push(format!("untrusted {i}"));
            }));
        }
        // Queued behind at least four untrusted jobs, served second at
        // the latest (after the one the worker had already taken).
        while counters.queued() < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let admission = hashing.admit(Lane::Trusted).unwrap();
        assert!(admission.verify(Some(hash), Password::new("right")).await);
        order.lock().unwrap().push("trusted".into());
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let at = order.iter().position(|o| o == "trusted").unwrap();
        assert!(at <= 2, "{order:?}");
    }

    #[test]
    fn workers_run_at_the_nice_value_asked_for() {
        let counters = Arc::new(HashingCounters::default());
        let limits = HashingLimits {
            permits: 1,
            queue: 1,
            nice: 13,
        };
        let hashing = Hashing::new(limits, counters);
        // 13 steps nicer than the test; other tests' workers have the same
        // name: ours is the one at that value.
        let expected = i64::from((current_nice().unwrap_or(0) + 13).min(19));
        let found = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            thread_nices("mensa-hashing-0").contains(&expected)
        });
        assert!(found, "{:?}", thread_nices("mensa-hashing-0"));
        drop(hashing);
    }

    /// The nice values of this process's threads named `name` (field 19
    /// of their /proc stat lines).
    fn thread_nices(name: &str) -> Vec<i64> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                if comm.trim() != name {
                    return None;
                }
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                stat.rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(16)?
                    .parse()
                    .ok()
            })
            .collect()
    }

    #[test]
    fn the_default_leaves_half_the_cores_free() {
        let d = HashingLimits::default();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(d.permits, (cores / 2).max(1));
        assert!(d.queue >= d.permits);
    }
}
