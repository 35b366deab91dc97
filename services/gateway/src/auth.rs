//! Bearer-token authentication.

use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::state::{Caller, GatewayState, digest};

pub fn caller(state: &GatewayState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer <token>".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("Authorization must be \"Bearer <token>\"".into()))?;
    state.callers.get(&digest(token)).cloned().ok_or_else(|| ApiError::Unauthorized("unknown token".into()))
}

pub fn operator(state: &GatewayState, headers: &HeaderMap) -> Result<(), ApiError> {
    match caller(state, headers)? {
        Caller::Operator => Ok(()),
        Caller::Org(_) => Err(ApiError::Forbidden("this endpoint needs the operator token".into())),
    }
}
