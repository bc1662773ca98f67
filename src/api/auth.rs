//! Who is asking: a parent or delegate with a session token, or an
//! operator with the operator token; and through which channel.
//!
//! Tokens are 32 random bytes from the operating system, hex-encoded
//! (64 characters); the store keeps only their SHA-256, so a copy of the
//! database opens no session.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::bookings::{Actor, Channel, UserCode};
use crate::store::{Adult, Child, Relation};

/// The header that says a change comes from the app (`app`) rather than
/// the portal (`portal`, the default).
pub const CHANNEL_HEADER: &str = "x-mensa-channel";

/// A new session token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The SHA-256 of a token, hex: what the store keeps.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A parent or delegate with a valid session.
pub struct Parent {
    pub adult: Adult,
    pub token_digest: String,
    /// On a route about a child (`/children/{user_code}/...`): that user
    /// code and the child if this adult may act for it, read with the
    /// session in one query, the one every such request needs.
    route_child: Option<(String, Option<(Child, Relation)>)>,
}

impl FromRequestParts<AppState> for Parent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let digest = token_digest(token);
        let now = state.clock.now();
        let route_code = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "user_code")
                    .map(|(_, code)| code.to_string())
            });
        let parsed = route_code.as_deref().map(UserCode::parse);
        if let (Some(code), Some(Ok(parsed))) = (route_code, parsed) {
            let (adult, child) = state
                .store
                .session_child(&digest, now, &parsed)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            return Ok(Parent {
                adult,
                token_digest: digest,
                route_child: Some((code, child)),
            });
        }
        let adult = state
            .store
            .session_adult(&digest, now)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Parent {
            adult,
            token_digest: digest,
            route_child: None,
        })
    }
}

impl Parent {
    /// The child with `code` if this adult may act for it; 404 otherwise,
    /// whether the child does not exist or belongs to another family.
    pub async fn child(&self, state: &AppState, code: &str) -> Result<(Child, Relation), ApiError> {
        if let Some((route_code, found)) = &self.route_child
            && route_code == code
        {
            return found.clone().ok_or(ApiError::NotFound("child"));
        }
        let code = UserCode::parse(code).map_err(|_| ApiError::NotFound("child"))?;
        state
            .store
            .child_of(self.adult.id, &code)
            .await?
            .ok_or(ApiError::NotFound("child"))
    }

    /// Like [`Parent::child`], for what only the paying parent may do.
    pub async fn paid_child(&self, state: &AppState, code: &str) -> Result<Child, ApiError> {
        match self.child(state, code).await? {
            (child, Relation::Parent) => Ok(child),
            (_, Relation::Delegate) => Err(ApiError::NotThePayer),
        }
    }

    pub fn actor(&self, relation: Relation) -> Actor {
        match relation {
            Relation::Parent => Actor::Parent(self.adult.fiscal_code.clone()),
            Relation::Delegate => Actor::Delegate(self.adult.fiscal_code.clone()),
        }
    }
}

/// An operator of the catering company.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let expected = state
            .config
            .operator_token
            .as_deref()
            .ok_or(ApiError::Unauthorized)?;
        // Comparing digests keeps the comparison's time independent of
        // how much of the secret a guess gets right.
        if Sha256::digest(token.as_bytes()) == Sha256::digest(expected.as_bytes()) {
            Ok(Operator)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

impl Operator {
    pub fn actor(&self) -> Actor {
        Actor::Operator("api".into())
    }
}

/// The channel of a change: `X-Mensa-Channel: app` or `portal` (default).
pub struct ChannelOf(pub Channel);

impl<S: Send + Sync> FromRequestParts<S> for ChannelOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.headers.get(CHANNEL_HEADER).map(|v| v.to_str()) {
            None => Ok(ChannelOf(Channel::Portal)),
            Some(Ok(v)) if v.eq_ignore_ascii_case("portal") => Ok(ChannelOf(Channel::Portal)),
            Some(Ok(v)) if v.eq_ignore_ascii_case("app") => Ok(ChannelOf(Channel::App)),
            Some(_) => Err(ApiError::BadRequest(
                "X-Mensa-Channel must be \"portal\" or \"app\"".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_as_digests() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
