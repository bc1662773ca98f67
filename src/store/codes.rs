//! Cancel codes in the database: stored as keyed hashes, and every code
//! the phone line looks up counted first (docs/security.md, "Cancel codes
//! cannot be guessed in practice").
//!
//! **The key.** The store hashes with the [`CodeKey`] it was given
//! ([`Store::with_code_key`]; the public demo key until then, for the
//! tests). The first time it needs the key on a database it *adopts* it
//! ([`Store::adopt_code_key`]): it records the key's fingerprint and
//! hashes in place the codes still in clear (a database migrated from
//! before 0005). A database that records another fingerprint is refused
//! ([`StoreError::CodeKeyMismatch`]): with a wrong key no code would ever
//! be found, which must not look like "unknown code".
//!
//! **The counts** ([`Store::admit_code`]), one transaction per code typed,
//! before the code is looked up, so that concurrent calls cannot all pass
//! a check before any of them is counted (on SQLite the transaction holds
//! the write lock; on PostgreSQL each count's `INSERT … ON CONFLICT DO
//! UPDATE … WHERE` takes its row's lock):
//!
//! ```text
//! caller's back-off ──refused──► CallerBackoff (nothing counted)
//!        │ counted
//!        ▼
//! code bound to this number? ──yes──► Bound: rolled back, nothing counted
//!        │ no
//!        ▼
//! line's budget ──spent──► Guarded ┐  the caller's count kept only if the
//! trunk's budget ──spent──► Trunk  ┘  number has bindings (it probed them)
//!        │ both counted
//!        ▼
//! Counted: committed; look the code up; right → given back + bound
//! ```
//!
//! Each count is one statement that checks and counts at once (the
//! functions of `bookings::guessing`, in SQL; the contract tests compare
//! the two). The caller's count comes first so that it gates the binding
//! lookup: otherwise a number in back-off could still probe which codes
//! are bound to it, for free.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{CryptoRng, RngCore};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::rows::millis;
use super::{Store, StoreError, begin_write};
use crate::bookings::codes::{Caller, CodeHash, CodeKey, is_clear_code, new_code};
use crate::bookings::guessing::{Backoff, Budget, CodeSpace, DAY_MS, GuardRules};
use crate::bookings::{CancelCode, Channel, PhoneNumber, UserCode};

/// How many caller numbers a code may be bound to: a child's parents,
/// delegates, a grandparent's phone. The oldest go first, so that an
/// attacker calling with their own child's code from ever new numbers
/// cannot grow the table without bound.
pub const BINDINGS_PER_CODE: i64 = 8;

/// A binding unused this long is forgotten (a little over a school year).
pub const BINDING_TTL_MS: i64 = 400 * DAY_MS;

/// The key the store hashes with, and whether this database has adopted
/// it yet.
pub(super) struct KeyState {
    key: CodeKey,
    adopted: tokio::sync::OnceCell<usize>,
}

impl KeyState {
    pub(super) fn new(key: CodeKey) -> Arc<KeyState> {
        Arc::new(KeyState {
            key,
            adopted: tokio::sync::OnceCell::new(),
        })
    }
}

/// What the phone line may do with a code typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// This caller number used this code successfully before: look it up;
    /// nothing was counted.
    Bound,
    /// Counted against the caller, the trunk and the line: look it up, and
    /// if it is right call [`Store::code_was_right`] with this.
    Counted(Counted),
    /// Not to be looked up.
    Refused(GuardRefusal),
}

/// The counts taken for one code, to give back if it was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    caller: String,
    anonymous: bool,
    trunk: String,
    at_ms: i64,
}

/// Why a code was not looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardRefusal {
    /// The caller number's back-off.
    CallerBackoff,
    /// The trunk's budget is spent (the code was not bound to the number).
    TrunkBudget,
    /// The line's budget is spent: the line is guarded.
    Guarded,
}

impl GuardRefusal {
    pub const ALL: [GuardRefusal; 3] = [
        GuardRefusal::CallerBackoff,
        GuardRefusal::TrunkBudget,
        GuardRefusal::Guarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GuardRefusal::CallerBackoff => "caller_backoff",
            GuardRefusal::TrunkBudget => "trunk_budget",
            GuardRefusal::Guarded => "guarded",
        }
    }
}

/// A child given a new code by [`Store::reissue_codes`]: what the letter
/// says. The only place the new code exists in clear.
#[derive(Debug, Clone)]
pub struct Reissued {
    pub user_code: UserCode,
    pub first_name: String,
    pub last_name: String,
    pub code: CancelCode,
    /// The length of the code it replaces.
    pub old_digits: u8,
}

/// Which children [`Store::reissue_codes`] gives new codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReissueWhich {
    /// Every child whose code has fewer digits.
    ShorterThan(u8),
    /// These children, whatever their codes (a lost letter, a code told
    /// to the wrong person).
    Children(Vec<UserCode>),
}

/// Why a reissue did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReissueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no child with user code {0}")]
    UnknownChild(UserCode),
    #[error("new codes need at least {min} digits (the ente's minimum), not {asked}")]
    TooShort { asked: u8, min: u8 },
    #[error("no free code of {0} digits found: use more digits")]
    SpaceFull(u8),
    /// The letters could not be written: nothing was changed.
    #[error("the letters could not be written; no code was changed")]
    Letters(#[source] std::io::Error),
}

/// The caller's count: [`Backoff`] as one statement. Counts and returns a
/// row only when the back-off allows one more at `$2`. $1 subject, $2 now,
/// $3 forgive, $4 free tolerance, $5 free, $6 cap shift, $7 max wait, $8
/// first wait. `level` is `ceil((tat - now) / forgive)`.
const COUNT_CALLER: &str = "\
INSERT INTO code_guards (scope, subject, tat_ms, last_ms, prev_ms) \
VALUES ('caller', $1, $2 + $3, $2, $2) \
ON CONFLICT (scope, subject) DO UPDATE SET \
    tat_ms = CASE WHEN code_guards.tat_ms > $2 THEN code_guards.tat_ms ELSE $2 END + $3, \
    prev_ms = code_guards.last_ms, \
    last_ms = $2 \
WHERE code_guards.tat_ms <= $2 + $4 \
   OR $2 >= code_guards.last_ms + CASE \
        WHEN (code_guards.tat_ms - $2 + $3 - 1) / $3 - $5 < 0 THEN 0 \
        WHEN (code_guards.tat_ms - $2 + $3 - 1) / $3 - $5 >= $6 THEN $7 \
        ELSE $8 * (CAST(1 AS BIGINT) << \
                   CAST((code_guards.tat_ms - $2 + $3 - 1) / $3 - $5 AS INTEGER)) \
      END \
RETURNING tat_ms";

/// A trunk's or the line's count: [`Budget`] (GCRA) as one statement.
/// $1 scope, $2 subject, $3 now, $4 interval, $5 tolerance.
const COUNT_BUDGET: &str = "\
INSERT INTO code_guards (scope, subject, tat_ms, last_ms, prev_ms) \
VALUES ($1, $2, $3 + $4, $3, $3) \
ON CONFLICT (scope, subject) DO UPDATE SET \
    tat_ms = CASE WHEN code_guards.tat_ms > $3 THEN code_guards.tat_ms ELSE $3 END + $4, \
    prev_ms = code_guards.last_ms, \
    last_ms = $3 \
WHERE code_guards.tat_ms <= $3 + $5 \
RETURNING tat_ms";

/// Gives back one count taken at `$4`: exactly the inverse of the count
/// ([`Backoff::refunded`], [`Budget::refunded`]). $1 scope, $2 subject,
/// $3 the count's step (forgive or interval), $4 when it was counted.
const GIVE_BACK: &str = "\
UPDATE code_guards SET tat_ms = tat_ms - $3, \
    last_ms = CASE WHEN last_ms = $4 THEN prev_ms ELSE last_ms END \
WHERE scope = $1 AND subject = $2";

/// The line's row: one for the whole line.
const LINE: (&str, &str) = ("line", "*");

impl Store {
    /// The same store hashing codes with `key` (the CLI gives the one of
    /// `--code-key-file` or `MENSA_CODE_KEY`; docs/deployment.md).
    pub fn with_code_key(mut self, key: CodeKey) -> Store {
        self.codes = KeyState::new(key);
        self
    }

    /// The fingerprint of the key this database's codes are hashed with,
    /// if any was recorded yet.
    pub async fn code_key_fingerprint(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT fingerprint FROM code_key WHERE id = 1")
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get("fingerprint")).transpose()?)
    }

    /// Adopts the store's key on this database (once per store): refuses a
    /// database hashed with another key; else records the key's
    /// fingerprint and hashes the codes still in clear. Returns how many
    /// it hashed (0 after the first time). Every method that hashes a code
    /// adopts first; `serve` and the CLI call it at start to fail early.
    pub async fn adopt_code_key(&self) -> Result<usize, StoreError> {
        let state = self.codes.clone();
        state
            .adopted
            .get_or_try_init(|| adopt(self, &state.key))
            .await
            .copied()
    }

    /// The key, adopted.
    pub(super) async fn code_key(&self) -> Result<&CodeKey, StoreError> {
        self.adopt_code_key().await?;
        Ok(&self.codes.key)
    }

    /// How many children hold a code of each length.
    pub async fn code_space(&self) -> Result<CodeSpace, StoreError> {
        let rows = sqlx::query(
            "SELECT cancel_code_digits AS digits, COUNT(*) AS n FROM children \
             GROUP BY cancel_code_digits",
        )
        .fetch_all(&self.read)
        .await?;
        let mut counts = Vec::new();
        for row in rows {
            let digits: i64 = row.try_get("digits")?;
            let n: i64 = row.try_get("n")?;
            let digits = u8::try_from(digits)
                .map_err(|_| StoreError::Corrupt(format!("a code of {digits} digits")))?;
            counts.push((digits, u64::try_from(n).unwrap_or(0)));
        }
        Ok(CodeSpace::new(counts))
    }

    /// Counts a code typed by `caller` through `trunk` before it is looked
    /// up (see the module doc). One transaction; nothing is counted when
    /// the answer is [`Admission::Bound`], or a refusal of a number
    /// without bindings.
    pub async fn admit_code(
        &self,
        caller: &PhoneNumber,
        trunk: &str,
        code: &CancelCode,
        now: DateTime<Utc>,
        rules: &GuardRules,
    ) -> Result<Admission, StoreError> {
        let key = self.code_key().await?;
        let hash = key.hash(code);
        let who = Caller::from_number(caller.expose());
        let anonymous = who == Caller::Anonymous;
        let subject = key.caller_tag(&who);
        let now = millis(now);
        let mut tx = begin_write(&self.write, self.backend).await?;
        if !count_caller(&mut tx, &subject, now, &rules.caller).await? {
            tx.rollback().await?;
            return Ok(Admission::Refused(GuardRefusal::CallerBackoff));
        }
        let (bindings, bound) = if anonymous {
            // Anonymous calls share one name: a code bound to it would be
            // bound to every anonymous caller.
            (0, false)
        } else {
            let row = sqlx::query(
                "SELECT COUNT(*) AS bindings, \
                 COALESCE(SUM(CASE WHEN b.code_hash = $2 THEN 1 ELSE 0 END), 0) AS bound \
                 FROM code_bindings b JOIN children c ON c.cancel_code = b.code_hash \
                 WHERE b.caller = $1",
            )
            .bind(&subject)
            .bind(hash.as_str())
            .fetch_one(&mut *tx)
            .await?;
            (
                row.try_get::<i64, _>("bindings")?,
                row.try_get::<i64, _>("bound")? > 0,
            )
        };
        if bound {
            // No guess: nothing counted. A rollback costs no fsync.
            tx.rollback().await?;
            self.touch_binding(&subject, &hash, now).await?;
            return Ok(Admission::Bound);
        }
        let refusal = if !count_budget(&mut tx, LINE.0, LINE.1, now, rules.line).await? {
            Some(GuardRefusal::Guarded)
        } else if !count_budget(&mut tx, "trunk", trunk, now, rules.trunk).await? {
            give_back(&mut tx, LINE.0, LINE.1, rules.line.interval_ms, now).await?;
            Some(GuardRefusal::TrunkBudget)
        } else {
            None
        };
        match refusal {
            None => {
                tx.commit().await?;
                Ok(Admission::Counted(Counted {
                    caller: subject,
                    anonymous,
                    trunk: trunk.to_string(),
                    at_ms: now,
                }))
            }
            Some(refusal) => {
                // The answer told this number that the code is not bound to
                // it: a guess at its bindings, counted. A number without
                // bindings learned nothing, and leaves no row behind (an
                // attacker's many numbers would fill the table).
                if bindings > 0 {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(Admission::Refused(refusal))
            }
        }
    }

    /// The code admitted by `counted` was right: its counts are given back
    /// and the code is bound to the caller's number.
    pub async fn code_was_right(
        &self,
        counted: &Counted,
        code: &CancelCode,
        now: DateTime<Utc>,
        rules: &GuardRules,
    ) -> Result<(), StoreError> {
        let hash = self.code_key().await?.hash(code);
        let now = millis(now);
        let mut tx = begin_write(&self.write, self.backend).await?;
        let at = counted.at_ms;
        give_back(
            &mut tx,
            "caller",
            &counted.caller,
            rules.caller.forgive_ms,
            at,
        )
        .await?;
        give_back(
            &mut tx,
            "trunk",
            &counted.trunk,
            rules.trunk.interval_ms,
            at,
        )
        .await?;
        give_back(&mut tx, LINE.0, LINE.1, rules.line.interval_ms, at).await?;
        if !counted.anonymous {
            sqlx::query(
                "INSERT INTO code_bindings (caller, code_hash, used_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (caller, code_hash) DO UPDATE SET used_ms = excluded.used_ms",
            )
            .bind(&counted.caller)
            .bind(hash.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM code_bindings WHERE code_hash = $1 AND caller NOT IN \
                 (SELECT caller FROM code_bindings WHERE code_hash = $1 \
                  ORDER BY used_ms DESC, caller LIMIT $2)",
            )
            .bind(hash.as_str())
            .bind(BINDINGS_PER_CODE)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A binding used again is kept (written at most once a day, so that
    /// a bound call costs no write in the common case).
    async fn touch_binding(
        &self,
        caller: &str,
        hash: &CodeHash,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE code_bindings SET used_ms = $3 \
             WHERE caller = $1 AND code_hash = $2 AND used_ms < $4",
        )
        .bind(caller)
        .bind(hash.as_str())
        .bind(now)
        .bind(now.saturating_sub(DAY_MS))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Whether the line's budget is spent at `now` (the alert of
    /// `/metrics`).
    pub async fn line_guarded(&self, now: DateTime<Utc>, line: Budget) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT tat_ms FROM code_guards WHERE scope = $1 AND subject = $2")
            .bind(LINE.0)
            .bind(LINE.1)
            .fetch_optional(&self.read)
            .await?;
        let tat = row.map(|r| r.try_get::<i64, _>("tat_ms")).transpose()?;
        Ok(!line.allows(tat, millis(now)))
    }

    /// Forgets the counts that count nothing any more (their `tat` has
    /// passed) and the bindings unused for [`BINDING_TTL_MS`]. Returns the
    /// rows removed. `serve` runs it every minute.
    pub async fn sweep_code_guards(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = millis(now);
        let guards = sqlx::query("DELETE FROM code_guards WHERE tat_ms <= $1")
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected();
        let bindings = sqlx::query("DELETE FROM code_bindings WHERE used_ms < $1")
            .bind(now.saturating_sub(BINDING_TTL_MS))
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(guards + bindings)
    }

    /// Rows of the counts and the bindings (for the contract tests and the
    /// operators: the table stays bounded).
    pub async fn code_guard_rows(&self) -> Result<(u64, u64), StoreError> {
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql).fetch_one(&self.read).await?;
            Ok::<u64, StoreError>(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
        };
        Ok((
            count("SELECT COUNT(*) AS n FROM code_guards").await?,
            count("SELECT COUNT(*) AS n FROM code_bindings").await?,
        ))
    }

    /// What the `cancel_code` column holds, by user code: for the contract
    /// tests, which check that no code is stored in clear.
    #[doc(hidden)]
    pub async fn stored_cancel_codes(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        sqlx::query(
            "SELECT user_code, cancel_code, cancel_code_digits FROM children ORDER BY user_code",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("user_code")?,
                r.try_get("cancel_code")?,
                r.try_get("cancel_code_digits")?,
            ))
        })
        .collect()
    }

    /// New random codes of `digits` digits (at least the ente's minimum)
    /// for the children `which` names, unique and never equal to a user
    /// code; each change audited by `operator`. `letters` gets the new
    /// codes before anything is committed: if it fails (the file the
    /// office prints from could not be written), nothing changes. Returns
    /// the children given a code (none when none has a shorter one: run
    /// twice, the second run does nothing).
    pub async fn reissue_codes(
        &self,
        which: &ReissueWhich,
        digits: u8,
        operator: &str,
        now: DateTime<Utc>,
        rng: &mut (impl RngCore + CryptoRng),
        letters: &mut dyn FnMut(&[Reissued]) -> std::io::Result<()>,
    ) -> Result<Vec<Reissued>, ReissueError> {
        let key = self.code_key().await?.clone();
        let min = self.settings().await?.cancel_code_min_digits;
        if digits < min {
            return Err(ReissueError::TooShort { asked: digits, min });
        }
        let mut tx = begin_write(&self.write, self.backend)
            .await
            .map_err(StoreError::from)?;
        let targets = reissue_targets(&mut tx, which).await?;
        let mut taken: HashSet<CodeHash> = HashSet::new();
        let mut issued = Vec::new();
        let mut rebound = Vec::new();
        for (id, user_code, first_name, last_name, old_digits) in targets {
            let code = free_code(&mut tx, &key, rng, digits, &taken).await?;
            let hash = key.hash(&code);
            taken.insert(hash.clone());
            rebound.push((id, hash.clone()));
            sqlx::query(
                "UPDATE children SET cancel_code = $1, cancel_code_digits = $2 WHERE id = $3",
            )
            .bind(hash.as_str())
            .bind(i64::from(digits))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            sqlx::query(
                "INSERT INTO audit (at_ms, actor, channel, child_id, action, detail) \
                 VALUES ($1, $2, $3, $4, 'reissue_cancel_code', $5)",
            )
            .bind(millis(now))
            .bind(format!("operator:{operator}"))
            .bind(Channel::Operator.as_str())
            .bind(id)
            .bind(
                serde_json::json!({"digits_before": old_digits, "digits_after": digits})
                    .to_string(),
            )
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            issued.push(Reissued {
                user_code,
                first_name,
                last_name,
                code,
                old_digits,
            });
        }
        if issued.is_empty() {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(issued);
        }
        // The old codes' bindings go with them; the family's registered
        // numbers are bound to the new ones.
        sqlx::query(
            "DELETE FROM code_bindings WHERE code_hash NOT IN (SELECT cancel_code FROM children)",
        )
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        for (child, issued) in &rebound {
            for phone in registered_numbers(&mut tx, *child).await? {
                bind_registered_number(&mut tx, &key, issued, &phone, now).await?;
            }
        }
        if let Err(e) = letters(&issued) {
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(ReissueError::Letters(e));
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(issued)
    }
}

/// Binds `code` to a number the office registered for the child's family
/// (`adults.phone`), as if the number had used it: the family's calls from
/// it are taken on a guarded line, the first included (the number and the
/// code came together from the office: no guess). Import and reissue call
/// it; an empty or anonymous number binds nothing.
pub(super) async fn bind_registered_number(
    conn: &mut AnyConnection,
    key: &CodeKey,
    code: &CodeHash,
    phone: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let caller = Caller::from_number(phone);
    if caller == Caller::Anonymous {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO code_bindings (caller, code_hash, used_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (caller, code_hash) DO UPDATE SET used_ms = excluded.used_ms",
    )
    .bind(key.caller_tag(&caller))
    .bind(code.as_str())
    .bind(millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The numbers registered for a child's parent and delegates.
async fn registered_numbers(
    conn: &mut AnyConnection,
    child: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT a.phone FROM adults a JOIN children c ON c.parent_id = a.id \
         WHERE c.id = $1 AND a.phone IS NOT NULL \
         UNION SELECT a.phone FROM adults a JOIN child_delegates d ON d.adult_id = a.id \
         WHERE d.child_id = $1 AND a.phone IS NOT NULL",
    )
    .bind(child)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("phone")?))
        .collect()
}

/// One count of the caller's back-off; false when it refused.
async fn count_caller(
    conn: &mut AnyConnection,
    subject: &str,
    now: i64,
    b: &Backoff,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(COUNT_CALLER)
        .bind(subject)
        .bind(now)
        .bind(b.forgive_ms.max(1))
        .bind(b.free_tolerance_ms())
        .bind(i64::from(b.free))
        .bind(i64::from(b.cap_shift()))
        .bind(b.max_ms)
        .bind(b.first_ms)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// One count of a budget; false when it is spent.
async fn count_budget(
    conn: &mut AnyConnection,
    scope: &str,
    subject: &str,
    now: i64,
    budget: Budget,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(COUNT_BUDGET)
        .bind(scope)
        .bind(subject)
        .bind(now)
        .bind(budget.interval_ms)
        .bind(budget.tolerance_ms())
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

async fn give_back(
    conn: &mut AnyConnection,
    scope: &str,
    subject: &str,
    step_ms: i64,
    counted_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(GIVE_BACK)
        .bind(scope)
        .bind(subject)
        .bind(step_ms)
        .bind(counted_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the key's fingerprint and hashes the clear codes, or refuses a
/// database hashed with another key. One transaction, so that two nodes
/// starting at once hash each code once.
async fn adopt(store: &Store, key: &CodeKey) -> Result<usize, StoreError> {
    let mut tx = begin_write(&store.write, store.backend).await?;
    let fingerprint = key.fingerprint();
    sqlx::query(
        "INSERT INTO code_key (id, fingerprint) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&fingerprint)
    .execute(&mut *tx)
    .await?;
    let recorded: String = sqlx::query("SELECT fingerprint FROM code_key WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get("fingerprint")?;
    if recorded != fingerprint {
        tx.rollback().await?;
        return Err(StoreError::CodeKeyMismatch);
    }
    let clear = sqlx::query("SELECT id, cancel_code FROM children WHERE LENGTH(cancel_code) <= 12")
        .fetch_all(&mut *tx)
        .await?;
    let mut hashed = 0;
    for row in clear {
        let id: i64 = row.try_get("id")?;
        let stored: String = row.try_get("cancel_code")?;
        if !is_clear_code(&stored) {
            continue;
        }
        let code = CancelCode::parse(&stored)
            .map_err(|_| StoreError::Corrupt(format!("the cancel code of child {id}")))?;
        sqlx::query(
            "UPDATE children SET cancel_code = $1, cancel_code_digits = $2 \
             WHERE id = $3 AND cancel_code = $4",
        )
        .bind(key.hash(&code).as_str())
        .bind(i64::try_from(stored.len()).unwrap_or(0))
        .bind(id)
        .bind(&stored)
        .execute(&mut *tx)
        .await?;
        hashed += 1;
    }
    tx.commit().await?;
    if hashed > 0 {
        tracing::warn!(
            hashed,
            "cancel codes stored in clear were hashed with the code key"
        );
    }
    Ok(hashed)
}

type Target = (i64, UserCode, String, String, u8);

async fn reissue_targets(
    conn: &mut AnyConnection,
    which: &ReissueWhich,
) -> Result<Vec<Target>, ReissueError> {
    let read = |row: &sqlx::any::AnyRow| -> Result<Target, StoreError> {
        let user: String = row.try_get("user_code")?;
        Ok((
            row.try_get("id")?,
            UserCode::parse(&user).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            row.try_get("first_name")?,
            row.try_get("last_name")?,
            u8::try_from(row.try_get::<i64, _>("cancel_code_digits")?).unwrap_or(0),
        ))
    };
    const COLUMNS: &str = "id, user_code, first_name, last_name, cancel_code_digits";
    match which {
        ReissueWhich::ShorterThan(digits) => {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM children WHERE cancel_code_digits < $1 ORDER BY user_code"
            ))
            .bind(i64::from(*digits))
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            Ok(rows.iter().map(read).collect::<Result<_, _>>()?)
        }
        ReissueWhich::Children(codes) => {
            let mut out = Vec::new();
            for user_code in codes {
                let row = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM children WHERE user_code = $1"
                ))
                .bind(user_code.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::from)?
                .ok_or_else(|| ReissueError::UnknownChild(user_code.clone()))?;
                out.push(read(&row)?);
            }
            Ok(out)
        }
    }
}

/// A random code no child holds, no user code equals, and not among
/// `taken` (this run's).
async fn free_code(
    conn: &mut AnyConnection,
    key: &CodeKey,
    rng: &mut (impl RngCore + CryptoRng),
    digits: u8,
    taken: &HashSet<CodeHash>,
) -> Result<CancelCode, ReissueError> {
    for _ in 0..100 {
        let code = new_code(rng, digits).map_err(|_| ReissueError::SpaceFull(digits))?;
        let hash = key.hash(&code);
        if taken.contains(&hash) {
            continue;
        }
        let clash =
            sqlx::query("SELECT 1 AS x FROM children WHERE cancel_code = $1 OR user_code = $2")
                .bind(hash.as_str())
                .bind(code.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::from)?;
        if clash.is_none() {
            return Ok(code);
        }
    }
    Err(ReissueError::SpaceFull(digits))
}
