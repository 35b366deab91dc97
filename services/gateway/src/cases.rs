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
    let org = match &who {
        Caller::Org(org) => Some(org.as_str()),
        Caller::Operator => None,
    };
    let record: CaseRecord = match raw {
        Some(b) => {
            let record: CaseRecord = serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(org) = org
                && !record.is_party(org)
                && !known(&state, &case, Some(org)).await?
            {
                return Err(not_found());
            }
            record
        }
        // Accepted, not yet folded in: the case exists, its record follows.
        None if known(&state, &case, org).await? => {
            CaseRecord { case: case.clone(), status: "opening".into(), ..Default::default() }
        }
        None => return Err(not_found()),
    };
    Ok(Json(serde_json::to_value(record).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// What the gateway and router recorded before answering and delivering
/// (xj_bus::parties): whether `org` is party to `case` (for an operator,
/// whether the case exists), while the tracker, which writes the record,
/// has not caught up.
async fn known(state: &GatewayState, case: &str, org: Option<&str>) -> Result<bool, ApiError> {
    let parties = &state.bus.parties;
    match org {
        Some(org) => xj_bus::parties::is_party(parties, case, org).await,
        None => xj_bus::parties::is_open(parties, case).await,
    }
    .map_err(ApiError::unavailable)
}
