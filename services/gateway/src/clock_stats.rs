//! `POST /v1/admin/clock/advance` (CONTRACT §5) and `GET /v1/stats`
//! (monthly statistics, seed 001 §二).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use xj_config::{ClockMode, OrgKind};
use xj_model::Problem;

use crate::auth::{caller, operator};
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

#[derive(Deserialize)]
pub struct Advance {
    by: String,
}

pub async fn advance(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Result<Json<Advance>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    // Outside manual mode the endpoint does not exist.
    if state.clock.mode() != ClockMode::Manual {
        return Err(ApiError::NotFound("no such endpoint (the clock is not in manual mode)".into()));
    }
    operator(&state, &headers)?;
    let Json(Advance { by }) = body.map_err(|e| ApiError::Malformed(e.body_text()))?;
    let d = xj_bus::clock::parse_iso_duration(&by).map_err(|m| ApiError::Invalid(vec![Problem::new("/by", m)]))?;
    if d <= chrono::Duration::zero() {
        return Err(ApiError::Invalid(vec![Problem::new("/by", "time only moves forward")]));
    }
    let now = state.clock.advance(d).await.map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "now": now.to_rfc3339(), "advanced_by": by })))
}

#[derive(Deserialize)]
pub struct StatsQuery {
    month: Option<String>,
    format: Option<String>,
}

pub async fn stats(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(q): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let month = match q.month {
        Some(m) => {
            chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").map_err(|_| {
                ApiError::Invalid(vec![Problem::new("/month", format!("{m:?} is not a month (YYYY-MM)"))])
            })?;
            m
        }
        None => {
            let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
            state.clock.now().with_timezone(&china).format("%Y-%m").to_string()
        }
    };
    let mut table = xj_bus::stats::month(&state.bus.stats, &month).await.map_err(ApiError::unavailable)?;
    // The justice bureau supervises everyone; any other org sees its own row.
    if let Caller::Org(org) = &who
        && state.settings.org(org).is_none_or(|o| o.kind != OrgKind::JusticeBureau)
    {
        table.retain(|k, _| k == org);
    }
    let csv = q.format.as_deref() == Some("csv")
        || headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    if csv {
        return Ok(([("content-type", "text/csv; charset=utf-8")], xj_bus::stats::csv(&month, &table)).into_response());
    }
    Ok(Json(json!({ "month": month, "fields": xj_bus::stats::FIELDS, "orgs": table })).into_response())
}
