//! Signed submissions kept as evidence (docs/security.md, "Evidence
//! packages"). The hub accepts a message with its case added, so the bytes
//! it stores are not the bytes the organisation signed; those are kept here,
//! in the object store `xj_submissions` under their SHA-256, and the accepted
//! message names them (`Xj-Submitted-Sha256`, `Xj-Submitted-Signature`). The
//! ledger records both with the message, and a package carries the bytes:
//! a third party checks the sender's own signature over what it sent, and
//! that what the hub accepted is that message with the case it assigned.

use async_nats::jetstream::object_store::ObjectStore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::GatewayState;

pub const BUCKET: &str = xj_bus::subjects::BUCKET_SUBMISSIONS;

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "submission store unavailable");
    ApiError::Unavailable("the store of signed submissions is unavailable; retry later".into())
}

async fn store(state: &GatewayState) -> Result<ObjectStore, ApiError> {
    let what = "signed submissions as their organisations sent them, by SHA-256";
    crate::attachments::object_store(state, BUCKET, what).await.map_err(unavailable)
}

/// Makes the store, if it is not there yet.
pub async fn ready(state: &GatewayState) -> Result<(), ApiError> {
    store(state).await.map(|_| ())
}

/// Stores `raw` under its SHA-256 (once: the same bytes again are already
/// there) and gives the digest.
pub async fn keep(state: &GatewayState, raw: &[u8]) -> Result<String, ApiError> {
    let sha256 = hex::encode(Sha256::digest(raw));
    let store = store(state).await?;
    if store.info(&sha256).await.is_ok_and(|i| !i.deleted && i.size == raw.len()) {
        return Ok(sha256);
    }
    let mut reader = raw;
    store.put(sha256.as_str(), &mut reader).await.map_err(unavailable)?;
    Ok(sha256)
}
