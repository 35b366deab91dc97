//! `GET /v1/me`: who a token is — so a client (the organisation's
//! workspace, an integration checking its configuration) can tell whether
//! it collects by pull, which county it supervises, before it asks.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};
use crate::supervision::supervised_county;

pub async fn get_me(State(state): State<GatewayState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let id = match caller(&state, &headers)? {
        Caller::Operator => return Ok(Json(json!({ "operator": true }))),
        Caller::Org(id) => id,
    };
    // A token is only issued to a configured organisation.
    let org = state.settings.org(&id).ok_or_else(|| ApiError::Internal(format!("no organisation {id}")))?;
    Ok(Json(json!({
        "operator": false,
        "org": org.id,
        "name": org.name,
        "kind": org.kind,
        "region": org.region,
        "deliver": org.deliver.channel(),
        "signs": org.public_key.is_some(),
        "supervises": supervised_county(&state.settings, &id),
    })))
}
