//! Login attempts, counted before the password is verified (issue 13):
//! each attempt is *reserved* in one atomic statement that checks the lock
//! and counts the attempt together, so of any number of concurrent guesses
//! only those the count admits are ever verified, on every node sharing the
//! database. Two counts:
//!
//! - per adult for clients without a valid device token
//!   ([`Store::reserve_login_attempt`], table `login_attempts`), and
//! - per device token for the adult's own devices
//!   ([`Store::reserve_device_attempt`], table `login_devices`);
//!
//! both locked by the same [`LockPolicy`]. A right password ends the
//! count it was judged by ([`Store::login_succeeded`]).
//!
//! ```text
//!  attempts:  1 .. n-1 admitted  │ n admitted, locks for `first`  │ locked: refused, not counted
//!            (n = attempts_before_lock)   after the lock: n+1 admitted, locks for 2·first … up to `max`
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::rows::{from_millis, millis};
use super::{AdultId, Store, StoreError};

/// Attempts a day apart start a new count.
const FORGET_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

/// Devices kept per adult; logging in from an eleventh forgets the oldest.
pub const MAX_DEVICES_PER_ADULT: i64 = 10;

/// When a count locks and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// The attempt that locks (admitted and verified itself): the
    /// attempts admitted per lock window.
    pub attempts_before_lock: u32,
    /// The first lock; each attempt admitted after a lock doubles it...
    pub first_lock: Duration,
    /// ... up to this, so no lock lasts longer.
    pub max_lock: Duration,
}

impl Default for LockPolicy {
    /// Five attempts, then one minute, doubling up to 15 minutes: about a
    /// hundred guesses a day on one account, and a parent who mistypes
    /// waits a minute.
    fn default() -> LockPolicy {
        LockPolicy {
            attempts_before_lock: 5,
            first_lock: Duration::from_secs(60),
            max_lock: Duration::from_secs(15 * 60),
        }
    }
}

impl LockPolicy {
    /// How long the `attempts`-th counted attempt locks (0: not at all).
    pub fn lock_ms(&self, attempts: i64) -> i64 {
        let threshold = i64::from(self.attempts_before_lock.max(1));
        if attempts < threshold {
            return 0;
        }
        let doublings = u32::try_from((attempts - threshold).min(62)).unwrap_or(62);
        self.first_ms()
            .saturating_mul(1i64.checked_shl(doublings).unwrap_or(i64::MAX))
            .min(self.max_ms())
    }

    fn first_ms(&self) -> i64 {
        i64::try_from(self.first_lock.as_millis()).unwrap_or(i64::MAX)
    }

    fn max_ms(&self) -> i64 {
        i64::try_from(self.max_lock.as_millis())
            .unwrap_or(i64::MAX)
            .max(self.first_ms())
    }

    /// [`LockPolicy::lock_ms`] as a SQL expression of `attempts` (itself an
    /// expression), so that the statement that counts also locks. Only
    /// our own integers go into the text; the steps stop at `max_lock`
    /// (at most 63 of them).
    fn sql_lock_ms(&self, attempts: &str) -> String {
        let threshold = i64::from(self.attempts_before_lock.max(1));
        let mut sql = format!("CASE WHEN {attempts} < {threshold} THEN 0");
        let mut n = threshold;
        loop {
            let lock = self.lock_ms(n);
            if lock >= self.max_ms() || n - threshold >= 62 {
                break;
            }
            sql.push_str(&format!(" WHEN {attempts} = {n} THEN {lock}"));
            n += 1;
        }
        sql.push_str(&format!(" ELSE {} END", self.max_ms()));
        sql
    }
}

/// Whose count judges an attempt from a client without a valid device
/// token: the adult's, whichever of their codes was typed (the user code
/// of any of their children, or their fiscal code), or, for a login that
/// names nobody, one of 65,536 buckets (so spraying invented logins adds
/// no rows past that; an invented login locks like a real one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptKey(String);

impl AttemptKey {
    pub fn adult(adult: AdultId) -> AttemptKey {
        AttemptKey(format!("adult:{}", adult.0))
    }

    /// `login`: the login as typed after normalization (`user:<code>`,
    /// `cf:<fiscal code>`); only a 16-bit digest of it is kept.
    pub fn unknown(login: &str) -> AttemptKey {
        let digest = Sha256::digest(login.as_bytes());
        AttemptKey(format!("unknown:{:02x}{:02x}", digest[0], digest[1]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the reservation of an attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted: verify the password. `locked_until`: this attempt locked
    /// the count (it was the last one admitted before the lock).
    Admitted {
        attempts: i64,
        locked_until: Option<DateTime<Utc>>,
    },
    /// Locked until then: nothing was counted, verify nothing.
    Locked { until: DateTime<Utc> },
}

/// What the reservation of an attempt with a device token decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceReservation {
    /// A device of this adult, counted: verify the password.
    Admitted(Reservation),
    /// A device of this adult, locked by its own failures until then.
    Locked { until: DateTime<Utc> },
    /// Not a device of this adult (unknown, expired, another adult's):
    /// judge the attempt as from any untrusted client.
    NotTrusted,
}

/// A right password: what [`Store::login_succeeded`] writes.
#[derive(Debug, Clone, Copy)]
pub struct LoginSuccess<'a> {
    pub adult: AdultId,
    /// The new session's token digest and expiry.
    pub session_sha256: &'a str,
    pub session_expires: DateTime<Utc>,
    /// The new device token's digest and expiry.
    pub device_sha256: &'a str,
    pub device_expires: DateTime<Utc>,
    /// The device token the client logged in with, replaced by the new
    /// one (OWASP: a new device token after each login).
    pub replaces_device: Option<&'a str>,
    /// The untrusted count the attempt was judged by, cleared (None: it
    /// came from a trusted device, and an attacker's count on the adult
    /// stays as it is).
    pub clears: Option<&'a AttemptKey>,
}

impl Store {
    /// Counts an attempt on `key` at `now` unless the key is locked, in
    /// one statement: concurrent attempts are admitted one by one, and
    /// those past the lock are refused without being counted (so an
    /// attacker cannot make a lock last longer than `policy.max_lock`).
    pub async fn reserve_login_attempt(
        &self,
        key: &AttemptKey,
        now: DateTime<Utc>,
        policy: &LockPolicy,
    ) -> Result<Reservation, StoreError> {
        let attempts = "CASE WHEN login_attempts.last_attempt_ms < $3 THEN 1 \
                        ELSE login_attempts.attempts + 1 END";
        let sql = format!(
            "INSERT INTO login_attempts (login_key, attempts, locked_until_ms, last_attempt_ms) \
             VALUES ($1, 1, $2 + $4, $2) \
             ON CONFLICT (login_key) DO UPDATE SET attempts = {attempts}, \
             locked_until_ms = $2 + {lock}, last_attempt_ms = $2 \
             WHERE login_attempts.locked_until_ms <= $2 \
             RETURNING attempts, locked_until_ms",
            lock = policy.sql_lock_ms(attempts),
        );
        let now_ms = millis(now);
        let row = sqlx::query(&sql)
            .bind(key.as_str())
            .bind(now_ms)
            .bind(now_ms.saturating_sub(FORGET_AFTER_MS))
            .bind(policy.lock_ms(1))
            .fetch_optional(&self.write)
            .await?;
        if let Some(row) = row {
            return admitted(&row, now_ms);
        }
        // Locked: until when, for Retry-After (not part of the decision).
        let until: Option<i64> =
            sqlx::query("SELECT locked_until_ms FROM login_attempts WHERE login_key = $1")
                .bind(key.as_str())
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get("locked_until_ms"))
                .transpose()?;
        Ok(Reservation::Locked {
            until: from_millis(until.unwrap_or(now_ms).max(now_ms))?,
        })
    }

    /// Counts an attempt against the device whose token digest is
    /// `token_sha256`, if it is an unexpired device of `adult` and not
    /// locked; the count is one statement, like
    /// [`Store::reserve_login_attempt`]. A token that is no device of the
    /// adult costs a read only (anyone can send one).
    pub async fn reserve_device_attempt(
        &self,
        token_sha256: &str,
        adult: AdultId,
        now: DateTime<Utc>,
        policy: &LockPolicy,
    ) -> Result<DeviceReservation, StoreError> {
        let now_ms = millis(now);
        let Some(until) = self
            .device_locked_until(token_sha256, adult, now_ms)
            .await?
        else {
            return Ok(DeviceReservation::NotTrusted);
        };
        if until > now_ms {
            return Ok(DeviceReservation::Locked {
                until: from_millis(until)?,
            });
        }
        let attempts = "CASE WHEN last_attempt_ms < $4 THEN 1 ELSE attempts + 1 END";
        let sql = format!(
            "UPDATE login_devices SET attempts = {attempts}, \
             locked_until_ms = $3 + {lock}, last_attempt_ms = $3 \
             WHERE token_sha256 = $1 AND adult_id = $2 AND expires_at_ms > $3 \
             AND locked_until_ms <= $3 \
             RETURNING attempts, locked_until_ms",
            lock = policy.sql_lock_ms(attempts),
        );
        let row = sqlx::query(&sql)
            .bind(token_sha256)
            .bind(adult.0)
            .bind(now_ms)
            .bind(now_ms.saturating_sub(FORGET_AFTER_MS))
            .fetch_optional(&self.write)
            .await?;
        if let Some(row) = row {
            return Ok(DeviceReservation::Admitted(admitted(&row, now_ms)?));
        }
        // A concurrent attempt locked it (or a login replaced it) between
        // the read and the count.
        Ok(
            match self
                .device_locked_until(token_sha256, adult, now_ms)
                .await?
            {
                Some(until) => DeviceReservation::Locked {
                    until: from_millis(until.max(now_ms))?,
                },
                None => DeviceReservation::NotTrusted,
            },
        )
    }

    /// Until when the device is locked (a past instant: it is not), if
    /// `token_sha256` is an unexpired device of `adult`.
    async fn device_locked_until(
        &self,
        token_sha256: &str,
        adult: AdultId,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query(
            "SELECT locked_until_ms FROM login_devices \
             WHERE token_sha256 = $1 AND adult_id = $2 AND expires_at_ms > $3",
        )
        .bind(token_sha256)
        .bind(adult.0)
        .bind(now_ms)
        .fetch_optional(&self.read)
        .await?
        .map(|r| r.try_get("locked_until_ms"))
        .transpose()?)
    }

    /// A right password: in one transaction, the session, the new device
    /// (replacing the one logged in with; the adult's oldest beyond
    /// [`MAX_DEVICES_PER_ADULT`] and every expired one forgotten), and the
    /// untrusted count cleared if the attempt was judged by it. Expired
    /// sessions of anyone are swept here too.
    pub async fn login_succeeded(
        &self,
        success: &LoginSuccess<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_ms = millis(now);
        let adult = success.adult.0;
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_sha256, adult_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(success.session_sha256)
        .bind(adult)
        .bind(now_ms)
        .bind(millis(success.session_expires))
        .execute(&mut *tx)
        .await?;
        if let Some(old) = success.replaces_device {
            sqlx::query("DELETE FROM login_devices WHERE token_sha256 = $1 AND adult_id = $2")
                .bind(old)
                .bind(adult)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM login_devices WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO login_devices (token_sha256, adult_id, attempts, locked_until_ms, \
             last_attempt_ms, created_at_ms, expires_at_ms) VALUES ($1, $2, 0, 0, $3, $3, $4)",
        )
        .bind(success.device_sha256)
        .bind(adult)
        .bind(now_ms)
        .bind(millis(success.device_expires))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM login_devices WHERE adult_id = $1 AND token_sha256 NOT IN \
             (SELECT token_sha256 FROM login_devices WHERE adult_id = $1 \
              ORDER BY created_at_ms DESC, token_sha256 LIMIT $2)",
        )
        .bind(adult)
        .bind(MAX_DEVICES_PER_ADULT)
        .execute(&mut *tx)
        .await?;
        if let Some(key) = success.clears {
            sqlx::query("DELETE FROM login_attempts WHERE login_key = $1")
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many devices `adult` may log in from at `now`.
    pub async fn device_count(
        &self,
        adult: AdultId,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM login_devices WHERE adult_id = $1 AND expires_at_ms > $2",
        )
        .bind(adult.0)
        .bind(millis(now))
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get("n")?)
    }
}

fn admitted(row: &sqlx::any::AnyRow, now_ms: i64) -> Result<Reservation, StoreError> {
    let until: i64 = row.try_get("locked_until_ms")?;
    Ok(Reservation::Admitted {
        attempts: row.try_get("attempts")?,
        locked_until: if until > now_ms {
            Some(from_millis(until)?)
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_attempt_locks_a_minute_doubling_up_to_a_cap() {
        let p = LockPolicy::default();
        assert_eq!(p.lock_ms(4), 0);
        assert_eq!(p.lock_ms(5), 60_000);
        assert_eq!(p.lock_ms(6), 120_000);
        assert_eq!(p.lock_ms(9), 900_000);
        assert_eq!(p.lock_ms(i64::MAX), 900_000);
        assert_eq!(
            p.sql_lock_ms("n"),
            "CASE WHEN n < 5 THEN 0 WHEN n = 5 THEN 60000 WHEN n = 6 THEN 120000 \
             WHEN n = 7 THEN 240000 WHEN n = 8 THEN 480000 ELSE 900000 END"
        );
        // A cap below the first lock is the first lock; one attempt may lock.
        let odd = LockPolicy {
            attempts_before_lock: 1,
            first_lock: Duration::from_secs(10),
            max_lock: Duration::from_secs(1),
        };
        assert_eq!(odd.lock_ms(1), 10_000);
        assert_eq!(
            odd.sql_lock_ms("n"),
            "CASE WHEN n < 1 THEN 0 ELSE 10000 END"
        );
    }

    #[test]
    fn unknown_logins_share_a_bounded_set_of_keys() {
        let a = AttemptKey::unknown("user:999999");
        assert_eq!(a, AttemptKey::unknown("user:999999"));
        assert_eq!(a.as_str().len(), "unknown:".len() + 4);
        assert_eq!(AttemptKey::adult(AdultId(7)).as_str(), "adult:7");
    }
}
