//! What stands between a login request and a password verification
//! (docs/security.md, "Login: guesses are counted before the work"), in
//! the order a request meets it:
//!
//! 1. **per client address** ([`LoginGate`], in memory): a token bucket
//!    per address, before the body is read, the database asked or
//!    anything hashed: `429 too-many-requests`;
//! 2. **the hashing bound** ([`crate::password::Hashing`]): no place in the
//!    untrusted queue: `503 busy`, nothing counted, nothing hashed;
//! 3. **the count** (store `reserve_*_attempt`): the attempt is counted in
//!    the same statement that checks the lock, per device token for the
//!    adult's own devices, else per adult: `429 too-many-attempts`;
//! 4. only then the verification, on a hashing worker.
//!
//! Each refusal is counted in `/metrics` by its reason.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::address_limit::AddressLimiter;
use super::{ApiError, AppState};
use crate::password::{Admission, Hashing, HashingCounters, HashingLimits, Lane};
use crate::store::LockPolicy;

/// The client's address, as `runtime::http` judged it: the TCP peer, or
/// behind a trusted reverse proxy the address it forwarded. A request
/// without one (the router called in-process, in tests) counts as
/// `0.0.0.0`: every such request shares one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The login limits (the `login_*` settings of `[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub hashing: HashingLimits,
    /// Login attempts one address may make at once...
    pub per_address_burst: u32,
    /// ... and per minute after that (0: no per-address limit).
    pub per_address_per_minute: u32,
    /// When a count locks, and for how long.
    pub lock: LockPolicy,
}

impl Default for LoginLimits {
    /// 20 attempts at once, then 10 a minute per address: a family
    /// mistyping or a school's shared address is never stopped; a guesser
    /// behind one address makes 14,400 attempts a day at most, over every
    /// account it tries.
    fn default() -> LoginLimits {
        LoginLimits {
            hashing: HashingLimits::default(),
            per_address_burst: 20,
            per_address_per_minute: 10,
            lock: LockPolicy::default(),
        }
    }
}

/// Why a login was refused before any work, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The per-address limit.
    Address,
    /// The hashing queue was full.
    Busy,
    /// The count (the adult's, or the device's) was locked.
    Locked,
}

impl Refused {
    pub const ALL: [Refused; 3] = [Refused::Address, Refused::Busy, Refused::Locked];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Address => "address",
            Refused::Busy => "busy",
            Refused::Locked => "locked",
        }
    }
}

/// The login limits at work: the address buckets and the hashing workers.
pub struct LoginGuard {
    limits: LoginLimits,
    addresses: Mutex<AddressLimiter>,
    hashing: Hashing,
}

impl LoginGuard {
    pub fn new(limits: LoginLimits, counters: Arc<HashingCounters>) -> LoginGuard {
        LoginGuard {
            limits,
            addresses: Mutex::new(AddressLimiter::new(
                limits.per_address_burst,
                limits.per_address_per_minute,
            )),
            hashing: Hashing::new(limits.hashing, counters),
        }
    }

    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    pub fn lock_policy(&self) -> &LockPolicy {
        &self.limits.lock
    }

    /// A place to verify a password in `lane`, or `503 busy`.
    pub fn admit(&self, state: &AppState, lane: Lane) -> Result<Admission, ApiError> {
        self.hashing.admit(lane).map_err(|_| {
            state.metrics.count_login_refused(Refused::Busy);
            ApiError::Busy {
                retry_after_secs: 1,
            }
        })
    }

    fn check_address(&self, ip: IpAddr, now: Instant) -> Result<(), std::time::Duration> {
        // The limiter never panics while holding the lock, so a poisoned
        // lock still holds whole buckets.
        let mut addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        addresses.check(ip, now)
    }
}

/// The per-address limit as an extractor, so that it runs before the
/// login's body is read.
pub struct LoginGate;

impl FromRequestParts<AppState> for LoginGate {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        state
            .login
            .check_address(ip, Instant::now())
            .map(|()| LoginGate)
            .map_err(|wait| {
                state.metrics.count_login_refused(Refused::Address);
                ApiError::RateLimited {
                    retry_after_secs: i64::try_from(wait.as_secs())
                        .unwrap_or(i64::MAX)
                        .saturating_add(1),
                }
            })
    }
}
