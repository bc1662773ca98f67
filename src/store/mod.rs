//! The store: one contract, SQLite and PostgreSQL behind it.
//!
//! [`Store`] is the only code with SQL. It runs on sqlx's `Any` driver so
//! that one implementation, with the same SQL text, serves both databases;
//! the differences (auto-increment keys, row locks, pragmas) are in the
//! migrations of each backend and in [`Backend`]. Dates are stored as ISO
//! 8601 text and instants as milliseconds since the epoch, identical on
//! both (docs/decisions.md explains why).
//!
//! Every operation is one transaction (on SQLite, changes to children share
//! one with the changes queued beside them: group commit, `writer.rs`). A
//! change takes its lock before it reads: on SQLite its transaction begins
//! `BEGIN IMMEDIATE` (the database's write lock), on PostgreSQL it bumps
//! the child's `version` (the row lock). Two channels changing the same
//! child at once are serialized and neither update is lost. The rules themselves are in [`crate::bookings`]: the store loads
//! the child's exceptions, asks the rules what to write, and writes it.

mod cache;
mod changes;
mod children;
mod closing;
mod codes;
mod import;
mod ledger;
mod logins;
mod operator;
mod payments;
mod retention;
mod rows;
mod sessions;
mod statements;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::bookings::ClockKind;
use crate::bookings::codes::CodeKey;

pub use cache::TTL as CACHE_TTL;
pub use changes::{Applied, Operation};
pub use children::{CalendarDay, Child, ChildId};
pub use closing::{ClosingClocks, ClosingOutcome};
pub use codes::{
    Admission, BINDING_TTL_MS, BINDINGS_PER_CODE, Counted, GuardRefusal, ReissueError,
    ReissueWhich, Reissued,
};
pub use import::ImportSummary;
pub use logins::{
    AttemptKey, DeviceReservation, LockPolicy, LoginSuccess, MAX_DEVICES_PER_ADULT, Reservation,
};
pub use operator::{CallRecord, ClosureRow, CodeAttempt, News, OperatorClosure};
pub use payments::{Payment, PaymentStatus, Receipt};
pub use retention::{Retained, Retention};
pub use sessions::{Adult, AdultId, Login, Relation};

/// Infrastructure failures. Business refusals are not errors: they are
/// [`crate::bookings::Refusal`] values inside an `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    #[error("no data imported yet: run `mensa import FILE.toml` first")]
    NotImported,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    /// The group commit's transaction failed: no operation of the batch
    /// was committed (the cause is logged once by the writer).
    #[error("the group commit failed: {0}")]
    BatchFailed(String),
    /// Caller misuse: a date whose ISO text would not sort as a date (a
    /// year before 0000 or after 9999), refused at the store's edge before
    /// any SQL ran (`rows::date_text`). The boundaries check dates against
    /// the school calendar's reach first, so this means one did not.
    #[error("the date {0} cannot be stored: the store compares dates of years 0000 to 9999 only")]
    UnstorableDate(chrono::NaiveDate),
    /// The group-commit writer has stopped (the runtime is shutting down).
    #[error("the store's writer has stopped")]
    WriterGone,
    /// The cancel codes were hashed with another key than the store's
    /// (`store::codes`): no code would be found.
    #[error(
        "the cancel codes of this database were hashed with another code key: give the key it \
         was set up with (--code-key-file or MENSA_CODE_KEY_FILE, docs/deployment.md)"
    )]
    CodeKeyMismatch,
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store contract used by the rest of the program.
#[derive(Clone)]
pub struct Store {
    /// Reads: several connections.
    read: AnyPool,
    /// Writes. On SQLite a single connection, so writers queue in order in
    /// the process instead of polling the database lock; on PostgreSQL the
    /// same pool as reads.
    write: AnyPool,
    backend: Backend,
    /// Settings and school calendars for reads (`store::cache`).
    cache: Arc<cache::Cache>,
    /// SQLite: the group-commit writer every `apply` goes through
    /// (`store::writer`). PostgreSQL: None, a transaction per change.
    writer: Option<writer::Writer>,
    /// The clock the process runs under, recorded with each closing.
    clock: ClockKind,
    /// The key cancel codes are hashed with (`store::codes`).
    codes: Arc<codes::KeyState>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (and on SQLite creates) the database at `url` and brings its
    /// schema up to date. Cancel codes are hashed with the public demo key
    /// until [`Store::with_code_key`] gives the real one: the CLI always
    /// does, the tests need not (`store::codes`).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let store = match backend {
            Backend::Sqlite => {
                let url = sqlite_url_creating(url);
                let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                let pool = |max| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(Duration::from_secs(30))
                        // A local file does not drop connections; the
                        // default ping before every acquire is a round trip
                        // to the connection's worker thread (a third of a
                        // calendar read's cost, docs/benchmarks.md).
                        .test_before_acquire(false)
                        .after_connect(|conn, _meta| {
                            Box::pin(async move {
                                // WAL: readers never block the writer. FULL sync:
                                // a change the caller was told succeeded survives
                                // a power cut. busy_timeout: other processes
                                // (`mensa close-day` beside `serve`) wait their turn.
                                conn.execute("PRAGMA journal_mode = WAL").await?;
                                conn.execute("PRAGMA synchronous = FULL").await?;
                                conn.execute("PRAGMA busy_timeout = 10000").await?;
                                conn.execute("PRAGMA foreign_keys = ON").await?;
                                Ok(())
                            })
                        })
                        .connect_with(options.clone())
                };
                let write = pool(1).await?;
                SQLITE_MIGRATIONS.run(&write).await?;
                let read = pool(8).await?;
                Store {
                    read,
                    writer: Some(writer::Writer::start(write.clone(), backend)),
                    write,
                    backend,
                    cache: Arc::default(),
                    clock: ClockKind::Real,
                    codes: codes::KeyState::new(CodeKey::demo()),
                }
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Store {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    cache: Arc::default(),
                    writer: None,
                    clock: ClockKind::Real,
                    codes: codes::KeyState::new(CodeKey::demo()),
                }
            }
        };
        Ok(store)
    }

    /// The same store without the group commit or the read cache, for
    /// the benchmark to measure what each gains (`benches/api.rs`
    /// `--no-group-commit`, `--no-cache`). Not for serving.
    #[doc(hidden)]
    pub fn tuned(mut self, group_commit: bool, cache: bool) -> Store {
        if !group_commit {
            self.writer = None;
        }
        if !cache {
            self.cache = Arc::new(cache::Cache::disabled());
        }
        self
    }

    /// The same store for a process whose clock is `clock`: its closings
    /// record it (`serve --now` runs under [`ClockKind::Shifted`]).
    pub fn under_clock(mut self, clock: ClockKind) -> Store {
        self.clock = clock;
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the database answers (for health checks).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }

    /// Forgets the cached settings and school calendars; every method that
    /// writes them calls it after its commit.
    fn settings_changed(&self) {
        self.cache.clear();
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// A transaction for a change. On SQLite `BEGIN IMMEDIATE`: it takes the
/// database's write lock at once, so nothing it reads can be replaced by
/// another process before it writes (a deferred transaction would read
/// first and fail with `SQLITE_BUSY` on its first write if another process
/// wrote in between). On PostgreSQL a plain `BEGIN`: row locks do that.
pub(super) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// `sqlite://mensa.db` → `sqlite://mensa.db?mode=rwc`: created on first use.
fn sqlite_url_creating(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}
