//! The daily closing (R10), run by `serve`: at start it catches up on the
//! days missed while the node was down, then closes each day at its cutoff.
//! Several nodes on one PostgreSQL may all run it: closing is idempotent.
//! Once a day it also applies the retention of personal data
//! (`store::Retention`, `[privacy]`), idempotent too.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::bookings::Clock;
use crate::store::{ClosingOutcome, Retention, Store, StoreError};

/// Closes every day whose cutoff has passed and that is still open.
pub async fn close_due_days(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<ClosingOutcome>, StoreError> {
    let mut outcomes = Vec::new();
    for date in store.days_to_close(now).await? {
        let outcome = store.close_day(date, now).await?;
        if let ClosingOutcome::Closed {
            meals_charged,
            total_cents,
            ..
        } = &outcome
        {
            tracing::info!(%date, meals_charged, total = %total_cents, "day closed");
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// How often the retention of personal data is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Runs forever: closes due days, sleeps until the next cutoff, repeats;
/// applies `retention` at start and then once a day. A failed closing is
/// logged and retried a minute later.
pub async fn run(store: Store, clock: Arc<dyn Clock>, retention: Retention) {
    let mut retained_at: Option<std::time::Instant> = None;
    loop {
        let now = clock.now();
        if retained_at.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            match store.apply_retention(now, &retention).await {
                Ok(done) => {
                    retained_at = Some(std::time::Instant::now());
                    if done != Default::default() {
                        tracing::info!(
                            calls_deleted = done.calls_deleted,
                            actors_redacted = done.actors_redacted,
                            "personal data past its retention removed"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention of personal data failed; retrying")
                }
            }
        }
        let wait = match close_due_days(&store, now).await {
            Ok(_) => match store.settings().await {
                Ok(settings) => {
                    let today = settings.today(now);
                    let next = [today, today.succ_opt().unwrap_or(today)]
                        .into_iter()
                        .map(|d| settings.cutoff_of(d))
                        .find(|cutoff| *cutoff > now);
                    // A second past the cutoff, so the day is surely closed;
                    // an hour when no cutoff is ahead (a clock at chrono's
                    // end, where adding an hour would overflow).
                    next.and_then(|next| (next - now).to_std().ok())
                        .map_or(Duration::from_secs(3600), |wait| {
                            wait + Duration::from_secs(1)
                        })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot read the settings");
                    Duration::from_secs(60)
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "daily closing failed; retrying in a minute");
                Duration::from_secs(60)
            }
        };
        tokio::time::sleep(wait.min(Duration::from_secs(3600))).await;
    }
}
