//! Signing in with the operator token. The page posts the token once and
//! gets an HttpOnly, SameSite=Strict session cookie — Secure when the
//! console is reached over https — so the live stream, an `EventSource`, is
//! authenticated without the token in a URL; scripts may send
//! `Authorization: Bearer <operator token>` instead. Failed sign-ins are
//! limited per client address (see `guard`).

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ConsoleError;
use crate::guard;
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
                let name = parts.headers.get("x-operator").and_then(|v| v.to_str().ok());
                return Ok(Operator { name: display_name(name) });
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

/// An operator's name as the page or a script gives it: trimmed, no control
/// characters, at most 40 characters (it ends up in traces and headers).
fn display_name(given: Option<&str>) -> String {
    let name: String = given.map(str::trim).unwrap_or("").chars().filter(|c| !c.is_control()).take(40).collect();
    if name.trim().is_empty() { "operator".into() } else { name }
}

/// `; Secure` when the browser reached the console over https (or the
/// configuration says so), so the cookie never travels in clear text.
fn secure_attr(state: &ConsoleState, peer: Option<std::net::IpAddr>, headers: &HeaderMap) -> &'static str {
    let secure = state.settings.console.secure_cookie.unwrap_or_else(|| guard::https(state, peer, headers));
    if secure { "; Secure" } else { "" }
}

pub async fn sign_in(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: axum::body::Bytes,
) -> Response {
    let peer = guard::peer(&extensions);
    let client = guard::client(&state, peer, &headers);
    let limit = state.settings.console.sign_in_failures;
    if let Err(retry_after) = state.sign_ins.attempt(client, limit) {
        metrics::counter!("xj_console_sign_ins_total", "outcome" => "rate_limited").increment(1);
        tracing::warn!(%client, "console sign-in refused: too many failed attempts from this address");
        return ConsoleError::RateLimited {
            message: format!("too many failed sign-ins from your address; retry in {retry_after} s"),
            retry_after,
        }
        .into_response();
    }
    // Read as JSON whatever the content type says: the page sends JSON, and
    // a refusal should say where the body went wrong, not what it was called.
    let form: SignIn = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            let (line, column) = (e.line(), e.column());
            let message = format!("the sign-in is not {{\"token\": \"…\"}}: {e}");
            return ConsoleError::BadBody { message, line, column }.into_response();
        }
    };
    if !is_operator_token(&state, form.token.trim()) {
        metrics::counter!("xj_console_sign_ins_total", "outcome" => "refused").increment(1);
        return ConsoleError::Unauthorized.into_response();
    }
    state.sign_ins.succeeded(client, limit);
    let name = display_name(form.name.as_deref());
    let mut raw = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut raw);
    let id = hex::encode(raw);
    let session = Session { name: name.clone(), expires: Utc::now() + Duration::hours(HOURS) };
    state.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), session);
    metrics::counter!("xj_console_sign_ins_total", "outcome" => "ok").increment(1);
    let secure = secure_attr(&state, peer, &headers);
    let set = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", HOURS * 3600);
    ([(header::SET_COOKIE, set)], Json(json!({ "name": name }))).into_response()
}

pub async fn who(op: Operator) -> Json<serde_json::Value> {
    Json(json!({ "name": op.name }))
}

pub async fn sign_out(State(state): State<ConsoleState>, headers: HeaderMap, extensions: Extensions) -> Response {
    if let Some(id) = cookie(&headers) {
        state.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
    let secure = secure_attr(&state, guard::peer(&extensions), &headers);
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}");
    ([(header::SET_COOKIE, clear)], Json(json!({ "signed_out": true }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_printable() {
        assert_eq!(display_name(Some("  值班员\r\nX-Evil: 1 ")), "值班员X-Evil: 1");
        assert_eq!(display_name(Some(&"a".repeat(100))).len(), 40);
        assert_eq!(display_name(None), "operator");
        assert_eq!(display_name(Some("\u{1b}")), "operator");
    }
}
