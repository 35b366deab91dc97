//! Evidence attachments (证据材料, 证据互认): uploaded through the API, kept in
//! the NATS object store `xj_evidence` under their SHA-256, referenced from
//! messages as `{"sha256", "size"}` (e.g. `body.materials[].attachment`),
//! fetched intact by the organisations the message reached.
//!
//! - `POST /v1/attachments` (org token; raw bytes; optional header
//!   `Xj-Content-Sha256`: a body whose digest differs is refused, 422) →
//!   `201 {"sha256","size"}` (`200` when this organisation uploaded it before).
//! - `GET /v1/attachments/{sha256}`: the bytes, for the uploader, any
//!   organisation a message referencing it was routed to, and operators;
//!   signed by the hub (`Xj-Signature`) and checked against the digest
//!   before they leave.
//! - At submission every referenced attachment must be one the sender may
//!   read, with that size; the message is recorded as referencing it only
//!   once it is accepted.

use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::{self, ObjectStore};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use xj_bus::records::RouteEntry;
use xj_bus::{headers as h, subjects};
use xj_model::{Envelope, Problem};

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

pub const BUCKET: &str = "xj_evidence";
/// Who may read an attachment: `<sha256>` → uploaders and referencing messages.
pub const REFS: &str = "xj_evidence_refs";
pub const CONTENT_SHA256: &str = "Xj-Content-Sha256";

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Refs {
    uploaders: Vec<String>,
    /// (sender, message id) of every accepted message that references it.
    messages: Vec<(String, String)>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "evidence store unavailable");
    ApiError::Unavailable("the evidence store is unavailable; retry later".into())
}

async fn store(state: &GatewayState) -> Result<ObjectStore, ApiError> {
    object_store(state, BUCKET, "evidence attachments by SHA-256").await.map_err(unavailable)
}

/// The object store `bucket`, made (file-backed, on `[nats] replicas`) if
/// it is not there yet.
pub(crate) async fn object_store(state: &GatewayState, bucket: &str, description: &str) -> Result<ObjectStore, String> {
    let js = &state.bus.js;
    if let Ok(s) = js.get_object_store(bucket).await {
        return Ok(s);
    }
    js.create_object_store(object_store::Config {
        bucket: bucket.into(),
        description: Some(description.into()),
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: state.settings.nats.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

async fn refs_bucket(state: &GatewayState) -> Result<kv::Store, ApiError> {
    let js = &state.bus.js;
    if let Ok(s) = js.get_key_value(REFS).await {
        return Ok(s);
    }
    js.create_key_value(kv::Config {
        bucket: REFS.into(),
        history: 1,
        num_replicas: state.settings.nats.replicas,
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(unavailable)
}

/// Adds to the refs of `sha` (compare-and-set).
async fn add_ref(state: &GatewayState, sha: &str, change: impl FnMut(&mut Refs) -> bool) -> Result<(), ApiError> {
    let kv = refs_bucket(state).await?;
    xj_bus::records::update_json(&kv, sha, xj_bus::records::Likely::Existing, change).await.map_err(unavailable)
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub async fn upload(State(state): State<GatewayState>, headers: HeaderMap, body: Bytes) -> Response {
    match upload_inner(&state, &headers, body).await {
        Ok((status, v)) => (status, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn upload_inner(state: &GatewayState, headers: &HeaderMap, body: Bytes) -> Result<(StatusCode, Value), ApiError> {
    let org = match caller(state, headers)? {
        Caller::Org(o) => o,
        Caller::Operator => return Err(ApiError::Forbidden("attachments are uploaded by organisations".into())),
    };
    let sha = hex::encode(Sha256::digest(&body));
    let claimed = headers.get(CONTENT_SHA256).map(|v| v.to_str().unwrap_or("(not text)"));
    if let Some(claimed) = claimed
        && claimed.to_ascii_lowercase() != sha
    {
        return Err(ApiError::Header {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            header: CONTENT_SHA256,
            message: format!(
                "digest mismatch: the body's SHA-256 is {sha}, {CONTENT_SHA256} says {claimed}; nothing was stored"
            ),
        });
    }
    let store = store(state).await?;
    let existing = store.info(&sha).await.ok().filter(|i| i.size == body.len());
    if existing.is_none() {
        let mut reader: &[u8] = &body;
        store.put(sha.as_str(), &mut reader).await.map_err(unavailable)?;
    }
    let mut again = false;
    add_ref(state, &sha, |r| {
        again = r.uploaders.contains(&org);
        if again {
            return false;
        }
        r.uploaders.push(org.clone());
        true
    })
    .await?;
    metrics::counter!("xj_attachments_total", "outcome" => if existing.is_some() { "known" } else { "stored" })
        .increment(1);
    // 200 only to an organisation that uploaded these bytes before: that
    // someone else did is not the uploader's to learn.
    let status = if again { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, json!({ "sha256": sha, "size": body.len() })))
}

pub async fn fetch(State(state): State<GatewayState>, headers: HeaderMap, Path(sha): Path<String>) -> Response {
    match fetch_inner(&state, &headers, &sha).await {
        Ok(bytes) => {
            let sig = state.key.sign_header(&bytes);
            (
                StatusCode::OK,
                [
                    ("content-type", "application/octet-stream"),
                    (CONTENT_SHA256, sha.as_str()),
                    (h::SIGNATURE, sig.as_str()),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn fetch_inner(state: &GatewayState, headers: &HeaderMap, sha: &str) -> Result<Bytes, ApiError> {
    let who = caller(state, headers)?;
    let not_found = || ApiError::NotFound(format!("no attachment {sha:?} visible to you"));
    if !is_digest(sha) {
        return Err(not_found());
    }
    if let Caller::Org(org) = &who
        && !may_read(state, org, sha).await?
    {
        return Err(not_found());
    }
    let store = store(state).await?;
    let mut obj = store.get(sha).await.map_err(|_| not_found())?;
    let mut data = Vec::new();
    obj.read_to_end(&mut data).await.map_err(unavailable)?;
    let actual = hex::encode(Sha256::digest(&data));
    if actual != sha {
        tracing::error!(%sha, %actual, "stored attachment does not match its digest");
        metrics::counter!("xj_attachments_total", "outcome" => "corrupt").increment(1);
        return Err(ApiError::Unavailable(
            "the stored attachment does not match its digest and is withheld; an operator must restore it".into(),
        ));
    }
    Ok(data.into())
}

/// The uploader, or an organisation that received a message referencing it.
async fn may_read(state: &GatewayState, org: &str, sha: &str) -> Result<bool, ApiError> {
    let kv = refs_bucket(state).await?;
    let Some(raw) = kv.get(sha).await.map_err(unavailable)? else { return Ok(false) };
    let refs: Refs = serde_json::from_slice(&raw).unwrap_or_default();
    if refs.uploaders.iter().any(|u| u == org) || refs.messages.iter().any(|(s, _)| s == org) {
        return Ok(true);
    }
    for (sender, id) in &refs.messages {
        if let Some(b) = state.bus.routes.get(subjects::key(org, id)).await.map_err(unavailable)? {
            let entries: Vec<RouteEntry> = serde_json::from_slice(&b).unwrap_or_default();
            if entries.iter().any(|e| &e.sender == sender) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Every `attachment` object in a body, with its JSON pointer.
fn references(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                if k == "attachment" && x.is_object() {
                    out.push((p, x.clone()));
                } else {
                    references(x, p, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                references(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// At submission: every attachment the message references must be one its
/// sender may read (it uploaded it, or received it with a message) and
/// have the size named; 422 otherwise. An attachment the sender may not
/// read is refused exactly as one that does not exist — same pointer, same
/// words, and no store lookup to time — so a digest alone reveals nothing.
/// Returns the digests, to be recorded by [`record_references`] once the
/// message is accepted.
pub async fn check_references(state: &GatewayState, env: &Envelope) -> Result<Vec<String>, ApiError> {
    let mut refs = Vec::new();
    references(&env.body, "/body".into(), &mut refs);
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let store = store(state).await?;
    let mut problems = Vec::new();
    let mut digests = Vec::new();
    for (at, a) in &refs {
        let Some(sha) = a["sha256"].as_str().filter(|s| is_digest(s)) else { continue };
        let unknown = || {
            Problem::new(
                format!("{at}/sha256"),
                "no attachment with this digest that you uploaded or received (POST /v1/attachments first)",
            )
        };
        if !may_read(state, &env.sender, sha).await? {
            problems.push(unknown());
            continue;
        }
        match store.info(sha).await {
            Ok(info) if a["size"].as_u64() == Some(info.size as u64) => digests.push(sha.to_string()),
            // The sender may read it, so the size is no secret to it; the
            // answer still does not carry it (it may be quoted onwards).
            Ok(_) => problems
                .push(Problem::new(format!("{at}/size"), "does not match the size of the attachment with this digest")),
            Err(_) => problems.push(unknown()),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    digests.sort();
    digests.dedup();
    Ok(digests)
}

/// After a message is accepted (and again for each repeat, so a failure
/// here is mended by the sender's retry): the message is recorded as
/// referencing each digest, so its recipients may fetch them. Never before:
/// a message refused at the edge gives nobody a right to read anything.
pub async fn record_references(
    state: &GatewayState,
    sender: &str,
    id: &str,
    digests: &[String],
) -> Result<(), ApiError> {
    for sha in digests {
        let key = (sender.to_string(), id.to_string());
        add_ref(state, sha, |r| {
            if r.messages.contains(&key) {
                return false;
            }
            r.messages.push(key.clone());
            true
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_attachments_anywhere_in_a_body() {
        let body = json!({ "materials": [ { "title": "a" }, { "title": "b", "attachment": { "sha256": "x", "size": 1 } } ],
                           "reports": [ { "attachment": { "sha256": "y", "size": 2 } } ] });
        let mut out = Vec::new();
        references(&body, "/body".into(), &mut out);
        let pointers: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/body/materials/1/attachment", "/body/reports/0/attachment"]);
    }
}
