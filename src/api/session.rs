//! `POST /session`, `DELETE /session`, `GET /me`.
//!
//! Wrong passwords are throttled per login (user code or fiscal code, as
//! typed): the first four cost nothing, the fifth locks the login for a
//! minute, and each further one doubles the lock up to 15 minutes. While
//! locked, even the right password gets 429 with `Retry-After`. Unknown
//! logins are verified against a dummy hash, so the answer takes as long
//! and says the same as for a wrong password.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::auth::{Parent, new_token, token_digest};
use super::{ApiError, AppState, Body, json};
use crate::bookings::{FiscalCode, Password, UserCode};
use crate::store::{Login, Relation};
use axum::extract::State;

/// Failures allowed before the first lock.
const FREE_FAILURES: i64 = 4;
const FIRST_LOCK_MS: i64 = 60_000;
const MAX_LOCK_MS: i64 = 15 * 60_000;

/// How long a login is locked after `failures` consecutive wrong passwords.
pub fn lock_ms(failures: i64) -> i64 {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let doublings = u32::try_from((failures - FREE_FAILURES - 1).min(10)).unwrap_or(10);
    FIRST_LOCK_MS
        .saturating_mul(1 << doublings)
        .min(MAX_LOCK_MS)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    user_code: Option<String>,
    fiscal_code: Option<String>,
    password: Password,
}

#[derive(Serialize)]
struct SessionResponse {
    token: String,
    token_type: &'static str,
    expires_at: chrono::DateTime<chrono::Utc>,
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crate::import::hash_password("not a password").unwrap_or_default())
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub async fn login(
    State(state): State<AppState>,
    Body(request): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    let (user_code, fiscal_code) = match (&request.user_code, &request.fiscal_code) {
        (Some(code), None) => (
            Some(UserCode::parse(code).map_err(|e| ApiError::Invalid(e.to_string()))?),
            None,
        ),
        (None, Some(code)) => (
            None,
            Some(FiscalCode::parse(code).map_err(|e| ApiError::Invalid(e.to_string()))?),
        ),
        _ => {
            return Err(ApiError::Invalid(
                "give either user_code or fiscal_code, with password".into(),
            ));
        }
    };
    let (login, key) = match (&user_code, &fiscal_code) {
        (Some(code), _) => (Login::UserCode(code), format!("user:{code}")),
        (_, Some(code)) => (Login::FiscalCode(code), format!("cf:{}", code.as_str())),
        _ => return Err(ApiError::BadCredentials),
    };
    let now = state.clock.now();
    if let Some(until) = state.store.login_locked_until(&key, now).await? {
        return Err(ApiError::TooManyAttempts {
            retry_after_secs: (until - now).num_seconds().max(1),
        });
    }
    let found = state.store.login_credentials(login).await?;
    let hash = found.as_ref().and_then(|(_, h)| h.clone());
    let password = request.password;
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let right = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify(&hash, password.expose()),
        None => {
            // The same work as a real check, and never a match.
            let _ = verify(dummy_hash(), password.expose());
            false
        }
    })
    .await
    .unwrap_or(false);
    let adult = match found {
        Some((adult, Some(_))) if right => adult,
        _ => {
            let failures = state.store.record_login_failure(&key, now, lock_ms).await?;
            let lock = lock_ms(failures);
            if lock > 0 {
                return Err(ApiError::TooManyAttempts {
                    retry_after_secs: lock / 1000,
                });
            }
            return Err(ApiError::BadCredentials);
        }
    };
    state.store.clear_login_failures(&key).await?;
    let token = new_token();
    let expires_at = now + state.config.session_ttl;
    state
        .store
        .create_session(adult.id, &token_digest(&token), now, expires_at)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &SessionResponse {
            token,
            token_type: "Bearer",
            expires_at,
        },
    ))
}

pub async fn logout(State(state): State<AppState>, parent: Parent) -> Result<StatusCode, ApiError> {
    state.store.delete_session(&parent.token_digest).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct Me {
    fiscal_code: String,
    first_name: String,
    last_name: String,
    children: Vec<ChildSummary>,
}

#[derive(Serialize)]
pub struct ChildSummary {
    pub user_code: String,
    pub first_name: String,
    pub last_name: String,
    pub school: String,
    pub class: String,
    pub diet: String,
    pub relation: Relation,
}

pub async fn me(State(state): State<AppState>, parent: Parent) -> Result<Response, ApiError> {
    let children = state.store.children_of(parent.adult.id).await?;
    let a = &parent.adult;
    Ok(json(
        StatusCode::OK,
        &Me {
            fiscal_code: a.fiscal_code.as_str().to_owned(),
            first_name: a.first_name.clone(),
            last_name: a.last_name.clone(),
            children: children
                .into_iter()
                .map(|(c, relation)| ChildSummary {
                    user_code: c.user_code.to_string(),
                    first_name: c.first_name,
                    last_name: c.last_name,
                    school: c.school.to_string(),
                    class: c.class.to_string(),
                    diet: c.diet.as_str().to_string(),
                    relation,
                })
                .collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_fifth_failure_and_double_up_to_a_cap() {
        assert_eq!(lock_ms(4), 0);
        assert_eq!(lock_ms(5), 60_000);
        assert_eq!(lock_ms(6), 120_000);
        assert_eq!(lock_ms(9), 900_000);
        assert_eq!(lock_ms(1_000), 900_000);
    }
}
