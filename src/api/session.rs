//! `POST /session`, `DELETE /session`, `GET /me`.
//!
//! A login is judged before its password is verified (`login_guard`: the
//! per-address limit, then a place to hash, then the count), and the count
//! is taken in the store's atomic reservation, so concurrent guesses never
//! all get through. Two counts, after OWASP's "device cookies":
//!
//! - a client sending a `device_token` that an earlier login of the same
//!   adult returned is judged by that device's own count: a lock an
//!   attacker causes does not keep the parent's phone or browser out;
//! - any other client (no token, an unknown or expired one, another
//!   adult's) is judged by the adult's count for untrusted clients,
//!   whichever of their codes was typed. An unknown login is judged by a
//!   shared bucket and verified against a dummy hash, so its answer takes
//!   as long and says the same as for a wrong password.
//!
//! Five attempts are admitted, the fifth locks for a minute, each attempt
//! admitted after a lock doubles it up to 15 minutes (`LockPolicy`); while
//! locked, even the right password gets 429 with `Retry-After`. A right
//! password ends the count it was judged by and returns a new device token
//! (the one sent is replaced).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::auth::{Parent, new_token, token_digest};
use super::login_guard::{LoginGate, Refused};
use super::{ApiError, AppState, Body, json};
use crate::bookings::pii::{Pii, Secret};
use crate::bookings::{FiscalCode, Password, UserCode};
use crate::password::{Admission, Lane};
use crate::store::{
    AdultId, AttemptKey, DeviceReservation, Login, LoginSuccess, Relation, Reservation,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    user_code: Option<String>,
    fiscal_code: Option<String>,
    password: Password,
    /// The device token an earlier login returned to this device.
    device_token: Option<Pii<Secret>>,
}

#[derive(Serialize)]
struct SessionResponse {
    token: String,
    token_type: &'static str,
    expires_at: chrono::DateTime<chrono::Utc>,
    device_token: String,
    device_expires_at: chrono::DateTime<chrono::Utc>,
}

/// Which count judged an attempt.
enum Judged<'a> {
    Device(&'a str),
    Untrusted(&'a AttemptKey),
}

pub async fn login(
    State(state): State<AppState>,
    _gate: LoginGate,
    Body(request): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    let (login, login_text) = match (&request.user_code, &request.fiscal_code) {
        (Some(code), None) => {
            let code = UserCode::parse(code).map_err(|e| ApiError::Invalid(e.to_string()))?;
            let text = format!("user:{code}");
            (LoginOf::User(code), text)
        }
        (None, Some(code)) => {
            let code = FiscalCode::parse(code).map_err(|e| ApiError::Invalid(e.to_string()))?;
            let text = format!("cf:{}", code.as_str());
            (LoginOf::Fiscal(code), text)
        }
        _ => {
            return Err(ApiError::Invalid(
                "give either user_code or fiscal_code, with password".into(),
            ));
        }
    };
    let now = state.clock.now();
    let policy = *state.login.lock_policy();
    let device = request
        .device_token
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(|t| token_digest(t.expose()));
    // Without a device token the attempt can only be untrusted: its place
    // to hash first, so that a busy node answers without a database trip.
    let mut untrusted = match device {
        None => Some(state.login.admit(&state, Lane::Untrusted)?),
        Some(_) => None,
    };
    let found = state.store.login_credentials(login.as_login()).await?;
    let (adult, hash) = match found {
        Some((adult, hash)) => (Some(adult), hash),
        None => (None, None),
    };
    let password = request.password;
    if let (Some(device), Some(adult)) = (&device, &adult) {
        match state
            .store
            .reserve_device_attempt(device, adult.id, now, &policy)
            .await?
        {
            DeviceReservation::Admitted(reservation) => {
                let admission = state.login.admit(&state, Lane::Trusted)?;
                return attempt(
                    &state,
                    admission,
                    Some(adult.id),
                    hash,
                    password,
                    reservation,
                    Judged::Device(device),
                )
                .await;
            }
            DeviceReservation::Locked { until } => return Err(locked(&state, until, now)),
            DeviceReservation::NotTrusted => {}
        }
    }
    let admission = match untrusted.take() {
        Some(admission) => admission,
        None => state.login.admit(&state, Lane::Untrusted)?,
    };
    let key = match &adult {
        Some(adult) => AttemptKey::adult(adult.id),
        None => AttemptKey::unknown(&login_text),
    };
    let reservation = state
        .store
        .reserve_login_attempt(&key, now, &policy)
        .await?;
    if let Reservation::Locked { until } = reservation {
        return Err(locked(&state, until, now));
    }
    // An unknown login is verified (against the dummy hash) like any
    // other, then refused.
    attempt(
        &state,
        admission,
        adult.map(|a| a.id),
        hash,
        password,
        reservation,
        Judged::Untrusted(&key),
    )
    .await
}

/// The login as typed.
enum LoginOf {
    User(UserCode),
    Fiscal(FiscalCode),
}

impl LoginOf {
    fn as_login(&self) -> Login<'_> {
        match self {
            LoginOf::User(code) => Login::UserCode(code),
            LoginOf::Fiscal(code) => Login::FiscalCode(code),
        }
    }
}

fn locked(
    state: &AppState,
    until: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiError {
    state.metrics.count_login_refused(Refused::Locked);
    ApiError::TooManyAttempts {
        retry_after_secs: (until - now).num_seconds().max(1),
    }
}

/// Verifies an attempt its count admitted; a right password opens a
/// session and returns a new device token.
async fn attempt(
    state: &AppState,
    admission: Admission,
    adult: Option<AdultId>,
    hash: Option<String>,
    password: Password,
    reservation: Reservation,
    judged: Judged<'_>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    // No hash: an unknown login or an adult without a portal password,
    // verified against the dummy hash (the same work, never a match).
    let right = admission.verify(hash, password).await;
    state.metrics.count_login_verified(right);
    let adult = match adult {
        Some(adult) if right => adult,
        _ => {
            return Err(match reservation {
                Reservation::Admitted {
                    locked_until: Some(until),
                    ..
                } => ApiError::TooManyAttempts {
                    retry_after_secs: (until - now).num_seconds().max(1),
                },
                _ => ApiError::BadCredentials,
            });
        }
    };
    let token = new_token();
    let device_token = new_token();
    // Saturating: a clock at chrono's end must not panic a login.
    let later = |ttl| {
        now.checked_add_signed(ttl)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    };
    let expires_at = later(state.config.session_ttl);
    let device_expires_at = later(state.config.device_ttl);
    let (session_sha256, device_sha256) = (token_digest(&token), token_digest(&device_token));
    let (replaces_device, clears) = match judged {
        Judged::Device(digest) => (Some(digest), None),
        Judged::Untrusted(key) => (None, Some(key)),
    };
    state
        .store
        .login_succeeded(
            &LoginSuccess {
                adult,
                session_sha256: &session_sha256,
                session_expires: expires_at,
                device_sha256: &device_sha256,
                device_expires: device_expires_at,
                replaces_device,
                clears,
            },
            now,
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &SessionResponse {
            token,
            token_type: "Bearer",
            expires_at,
            device_token,
            device_expires_at,
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
