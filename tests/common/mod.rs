//! Helpers shared by the integration tests: fresh stores on SQLite and
//! PostgreSQL, local times of the ente, the reference import data.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use mensa::bookings::EnteSettings;
use mensa::store::Store;

/// The reference import file: the contract of the import's shape.
pub const EXAMPLE: &str = include_str!("../data/import-example.toml");

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A local time of the ente (Europe/Rome), "YYYY-MM-DD HH:MM[:SS[.f]]".
pub fn at(local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M"))
        .unwrap();
    EnteSettings::with_name("test").instant(naive)
}

/// A fresh SQLite database in a temporary folder (kept alive by the dir).
pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mensa.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

/// The URL of the PostgreSQL server the tests may create databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("MENSA_TEST_POSTGRES_URL").expect(
        "MENSA_TEST_POSTGRES_URL must point at a PostgreSQL server \
         (e.g. postgres://postgres@127.0.0.1/postgres); .ci/run starts one",
    )
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database on the test server.
pub async fn postgres() -> Store {
    Store::open(&postgres_url().await).await.unwrap()
}

/// The URL of a fresh PostgreSQL database on the test server.
pub async fn postgres_url() -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let name = format!(
        "mensa_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
    format!("{base}/{name}")
}

/// Imports the reference example into `store`.
pub async fn import_example(store: &Store) {
    import_text(store, EXAMPLE).await;
}

pub async fn import_text(store: &Store, text: &str) {
    let data = mensa::import::parse(text).unwrap();
    store
        .import(&data, at("2026-11-26 10:00"))
        .await
        .unwrap()
        .unwrap();
}
