//! Bearer-token authentication.

use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::state::{Caller, GatewayState, digest};

const AUTHORIZATION: &str = "Authorization";

pub fn caller(state: &GatewayState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers)?;
    find(state.callers.iter(), &digest(token)).ok_or_else(|| ApiError::unauthorized_by(AUTHORIZATION, "unknown token"))
}

/// The token of `Authorization: Bearer <token>`. The scheme is
/// case-insensitive (as HTTP's authentication schemes are), so "bearer"
/// works too.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| ApiError::unauthorized_by(AUTHORIZATION, "missing Authorization: Bearer <token>"))?;
    // Two credentials are one too many: which one would be meant?
    if values.next().is_some() {
        return Err(ApiError::unauthorized_by(AUTHORIZATION, "Authorization is given more than once"));
    }
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::unauthorized_by(AUTHORIZATION, "Authorization must be \"Bearer <token>\" in visible ASCII")
        })
}

/// Looks a token's digest up in constant time: every known digest is
/// compared, each comparison in constant time, and nothing branches on
/// where (or whether) it matched, so timing says nothing about any token.
fn find<'a, I>(callers: I, wanted: &[u8; 32]) -> Option<Caller>
where
    I: IntoIterator<Item = (&'a [u8; 32], &'a Caller)>,
{
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    let mut all = Vec::new();
    for (i, (d, c)) in callers.into_iter().enumerate() {
        let hit = d.ct_eq(wanted);
        index.conditional_assign(&(i as u32), hit);
        found |= hit;
        all.push(c);
    }
    bool::from(found).then(|| all[index as usize].clone())
}

pub fn operator(state: &GatewayState, headers: &HeaderMap) -> Result<(), ApiError> {
    match caller(state, headers)? {
        Caller::Operator => Ok(()),
        Caller::Org(_) => Err(ApiError::Forbidden("this endpoint needs the operator token".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_the_token_is_not() {
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, v.parse().expect("header"));
            h
        };
        let scheme = |v: &str| bearer(&header(v)).ok().map(str::to_owned);
        assert_eq!(scheme("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(scheme("bearer abc").as_deref(), Some("abc"));
        assert_eq!(scheme("BEARER abc").as_deref(), Some("abc"));
        assert_eq!(scheme("Basic abc"), None);
        assert_eq!(scheme("Bearerabc"), None);
    }

    #[test]
    fn finds_exactly_the_matching_digest() {
        let map: std::collections::HashMap<[u8; 32], Caller> =
            [(digest("token-a-0123456789"), Caller::Org("a".into())), (digest("token-b-0123456789"), Caller::Operator)]
                .into();
        assert_eq!(find(&map, &digest("token-a-0123456789")), Some(Caller::Org("a".into())));
        assert_eq!(find(&map, &digest("token-b-0123456789")), Some(Caller::Operator));
        assert_eq!(find(&map, &digest("token-c-0123456789")), None);
    }
}
