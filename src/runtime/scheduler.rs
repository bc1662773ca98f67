//! The daily closing (R10), run by `serve`: at start it catches up on the
//! days missed while the node was down, then closes each day at its cutoff.
//! Several nodes on one PostgreSQL may all run it: closing is idempotent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::bookings::Clock;
use crate::store::{ClosingOutcome, Store, StoreError};

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

/// Runs forever: closes due days, sleeps until the next cutoff, repeats.
/// A failed closing is logged and retried a minute later.
pub async fn run(store: Store, clock: Arc<dyn Clock>) {
    loop {
        let now = clock.now();
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
