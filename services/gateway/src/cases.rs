//! `GET /v1/cases/{case}`: the case as the tracker keeps it, for its parties
//! and operators only (anyone else gets the same 404 as for no case).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use xj_bus::records::CaseRecord;

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

pub async fn get_case(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(case): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let not_found = || ApiError::NotFound(format!("no case {:?} visible to you", crate::error::clip(&case)));
    if case.is_empty() || case.len() > 40 || !case.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(not_found());
    }
    let raw = state.bus.cases.get(&case).await.map_err(ApiError::unavailable)?;
    let record: CaseRecord = match raw {
        Some(b) => serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?,
        None => return Err(not_found()),
    };
    if let Caller::Org(org) = &who
        && !record.is_party(org)
    {
        return Err(not_found());
    }
    Ok(Json(serde_json::to_value(record).map_err(|e| ApiError::Internal(e.to_string()))?))
}
