//! `POST /v1/admin/clock/advance` (docs/clocks.md) and `GET /v1/stats`
//! (monthly statistics, 《县行政执法协调监督工作方案》二).

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
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // Outside manual mode the endpoint does not exist.
    if state.clock.mode() != ClockMode::Manual {
        return Err(ApiError::NotFound("no such endpoint (the clock is not in manual mode)".into()));
    }
    operator(&state, &headers)?;
    let Advance { by } = serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Invalid(vec![Problem::new("/by", e.to_string())]),
        _ => ApiError::syntax(&e),
    })?;
    let invalid = |m: String| ApiError::Invalid(vec![Problem::new("/by", m)]);
    within_bounds(&by).map_err(invalid)?;
    let d = xj_bus::clock::parse_iso_duration(&by).map_err(invalid)?;
    if d <= chrono::Duration::zero() {
        return Err(invalid("time only moves forward".into()));
    }
    if state.clock.now().checked_add_signed(d).is_none() {
        return Err(invalid(format!("{by:?} would move the clock past the end of the calendar")));
    }
    let now = state.clock.advance(d).await.map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "now": now.to_rfc3339(), "advanced_by": by })))
}

/// The longest advance at once: ten years, more than any drill needs.
const MAX_ADVANCE_SECONDS: u64 = 3660 * 86_400;

/// Refuses a duration too long to be meant before it is turned into time
/// (where numbers of that size overflow): every number of `by` times its
/// unit, summed without overflowing, at most [`MAX_ADVANCE_SECONDS`].
fn within_bounds(by: &str) -> Result<(), String> {
    let too_long = || format!("{:?} is longer than the clock moves at once (at most P3660D)", crate::error::clip(by));
    if by.len() > 40 {
        return Err(too_long());
    }
    let mut total: u64 = 0;
    let mut number: u64 = 0;
    let mut in_time = false;
    for c in by.chars() {
        if let Some(d) = c.to_digit(10) {
            number = number.checked_mul(10).and_then(|n| n.checked_add(u64::from(d))).ok_or_else(too_long)?;
            continue;
        }
        let unit: u64 = match (c, in_time) {
            ('T', _) => {
                in_time = true;
                0
            }
            ('W', false) => 7 * 86_400,
            ('D', false) => 86_400,
            ('H', true) => 3_600,
            ('M', true) => 60,
            _ => 1,
        };
        total = number.checked_mul(unit).and_then(|n| total.checked_add(n)).ok_or_else(too_long)?;
        number = 0;
    }
    if total > MAX_ADVANCE_SECONDS { Err(too_long()) } else { Ok(()) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_durations_are_refused_before_they_overflow() {
        assert!(within_bounds("P3D").is_ok());
        assert!(within_bounds("P1WT12H30M").is_ok());
        assert!(within_bounds("P3660D").is_ok());
        assert!(within_bounds("P3661D").is_err());
        assert!(within_bounds("P9999999999999999D").is_err());
        assert!(within_bounds("PT99999999999999999999999S").is_err());
        assert!(within_bounds(&format!("P{}D", "1".repeat(100))).is_err());
    }
}
