//! Signing in with the operator token. The page posts the token once and
//! gets an HttpOnly, SameSite=Strict session cookie (so the live stream, an
//! `EventSource`, is authenticated without the token in a URL); scripts may
//! send `Authorization: Bearer <operator token>` instead.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ConsoleError;
use crate::state::{ConsoleState, Session};

const COOKIE: &str = "xj_console";
const HOURS: i64 = 12;

/// The operator behind a request.
pub struct Operator {
    pub name: String,
}

fn is_operator_token(state: &ConsoleState, token: &str) -> bool {
    // Digests compared, so the time taken says nothing about the token.
    state.settings.operator_token().is_some_and(|t| Sha256::digest(t.as_bytes()) == Sha256::digest(token.as_bytes()))
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

impl FromRequestParts<ConsoleState> for Operator {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let bearer = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Some(token) = bearer.and_then(|v| v.strip_prefix("Bearer ")) {
            if is_operator_token(state, token.trim()) {
                let name = parts.headers.get("x-operator").and_then(|v| v.to_str().ok()).unwrap_or("operator");
                return Ok(Operator { name: name.to_string() });
            }
            return Err(ConsoleError::Unauthorized);
        }
        let id = cookie(&parts.headers).ok_or(ConsoleError::Unauthorized)?;
        let mut sessions = state.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.get(id).map(|s| Operator { name: s.name.clone() }).ok_or(ConsoleError::Unauthorized)
    }
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    #[serde(default)]
    name: Option<String>,
}

pub async fn sign_in(State(state): State<ConsoleState>, Json(form): Json<SignIn>) -> Response {
    if !is_operator_token(&state, form.token.trim()) {
        metrics::counter!("xj_console_sign_ins_total", "outcome" => "refused").increment(1);
        return ConsoleError::Unauthorized.into_response();
    }
    let name: String = form
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("operator")
        .chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect();
    let mut raw = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut raw);
    let id = hex::encode(raw);
    let session = Session { name: name.clone(), expires: Utc::now() + Duration::hours(HOURS) };
    state.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), session);
    metrics::counter!("xj_console_sign_ins_total", "outcome" => "ok").increment(1);
    let set = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", HOURS * 3600);
    ([(header::SET_COOKIE, set)], Json(json!({ "name": name }))).into_response()
}

pub async fn who(op: Operator) -> Json<serde_json::Value> {
    Json(json!({ "name": op.name }))
}

pub async fn sign_out(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        state.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Json(json!({ "signed_out": true }))).into_response()
}
