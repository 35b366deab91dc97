//! Evidence bundles: one case's ledger entries, the chain links that join
//! them, the accepted messages themselves, and the hub's public keys, signed
//! by the hub — one JSON file that verifies offline (`xj audit verify
//! --file`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xj_bus::signing::HubKey;

use crate::LedgerError;
use crate::chain::{Walker, canonical, hash_of};
use crate::store::read_all;

pub const FORMAT: &str = "xianjie-evidence-bundle/1";

/// Builds the bundle of `case` from the live ledger; refuses when the chain
/// is broken before the case's last entry.
pub async fn export_case(js: &async_nats::jetstream::Context, case: &str, key: &HubKey) -> Result<Value, LedgerError> {
    let mut walker = Walker::default();
    let mut broken = None;
    let mut all: Vec<Value> = Vec::new();
    read_all(js, |seq, raw| match walker.step(seq, raw) {
        Ok(_) => {
            all.push(serde_json::from_slice(raw).unwrap_or(Value::Null));
            true
        }
        Err(b) => {
            broken = Some(b);
            false
        }
    })
    .await?;
    let ours: Vec<&Value> = all.iter().filter(|e| e["case"] == case).collect();
    let (Some(first), Some(last)) = (ours.first(), ours.last()) else {
        return Err(LedgerError::Bundle(format!("the ledger has no entry for case {case:?}")));
    };
    let (first_n, last_n) = (first["n"].as_u64().unwrap_or(1), last["n"].as_u64().unwrap_or(1));
    if let Some(b) = broken
        && b.n <= last_n
    {
        return Err(LedgerError::Bundle(format!("the ledger is broken ({b}); not exporting from a broken chain")));
    }
    let links: Vec<Value> = all
        .iter()
        .filter(|e| e["n"].as_u64().is_some_and(|n| (first_n..=last_n).contains(&n)))
        .map(|e| json!({ "n": e["n"], "prev": e["prev"], "hash": e["hash"] }))
        .collect();
    let accepted = js.get_stream(xj_bus::subjects::STREAM_ACCEPTED).await.map_err(LedgerError::bus)?;
    let mut messages = Vec::new();
    for e in ours.iter().filter(|e| e["kind"] == "message") {
        let seq = e["source"]["seq"].as_u64().unwrap_or_default();
        let mut m = json!({ "n": e["n"], "seq": seq, "sha256": e["record"]["sha256"] });
        match accepted.get_raw_message(seq).await {
            Ok(raw) => m["body_b64"] = json!(B64.encode(&raw.payload)),
            Err(_) => m["missing"] = json!("no longer kept in XJ_ACCEPTED"),
        }
        messages.push(m);
    }
    let mut bundle = json!({
        "format": FORMAT,
        "case": case,
        "exported_at": chrono::Utc::now().to_rfc3339(),
        "ledger": { "entries": walker.count(), "head": walker.head() },
        "entries": ours,
        "links": links,
        "messages": messages,
        "keys": key.jwks(),
    });
    let sig = key.sign_header(canonical(&bundle).as_bytes());
    bundle["signature"] = json!(sig);
    Ok(bundle)
}

/// What an offline check of a bundle found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle: {0}")]
    Bundle(String),
    #[error("entry {n}: {reason}")]
    Entry { n: u64, reason: String },
}

/// A verified bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    pub case: String,
    pub entries: usize,
    pub messages: usize,
    pub kid: String,
}

/// Checks a bundle offline: the hub's signature, each entry's hash, the
/// chain links between them, and each message against its digest.
pub fn verify_bundle(b: &Value) -> Result<Verified, BundleError> {
    let bad = |s: String| BundleError::Bundle(s);
    if b["format"] != FORMAT {
        return Err(bad(format!("not a {FORMAT} document")));
    }
    let sig = b["signature"].as_str().ok_or_else(|| bad("no signature".into()))?;
    let mut unsigned = b.clone();
    if let Value::Object(m) = &mut unsigned {
        m.remove("signature");
    }
    xj_bus::signing::verify_with_keys(&b["keys"], sig, canonical(&unsigned).as_bytes())
        .map_err(|e| bad(format!("the hub's signature does not verify: {e}")))?;
    let kid = xj_bus::signing::header_kid(sig).unwrap_or_default().to_string();
    let links = b["links"].as_array().ok_or_else(|| bad("no links".into()))?;
    let mut prev: Option<(u64, String)> = None;
    for l in links {
        let n = l["n"].as_u64().ok_or_else(|| bad("a link without n".into()))?;
        let (lp, lh) = (l["prev"].as_str().unwrap_or_default(), l["hash"].as_str().unwrap_or_default());
        if let Some((pn, ph)) = &prev {
            if n != pn + 1 {
                return Err(BundleError::Entry { n: pn + 1, reason: "is missing from the links".into() });
            }
            if lp != ph {
                return Err(BundleError::Entry { n, reason: format!("does not follow entry {pn}") });
            }
        }
        prev = Some((n, lh.to_string()));
    }
    let entries = b["entries"].as_array().ok_or_else(|| bad("no entries".into()))?;
    for e in entries {
        let n = e["n"].as_u64().unwrap_or_default();
        let entry_err = |reason: String| BundleError::Entry { n, reason };
        if e["case"] != b["case"] {
            return Err(entry_err("belongs to another case".into()));
        }
        if hash_of(e) != e["hash"].as_str().unwrap_or_default() {
            return Err(entry_err("its content does not match its hash".into()));
        }
        let link = links.iter().find(|l| l["n"] == n).ok_or_else(|| entry_err("has no chain link".into()))?;
        if link["hash"] != e["hash"] || link["prev"] != e["prev"] {
            return Err(entry_err("does not match its chain link".into()));
        }
    }
    let messages = b["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    for m in messages {
        let n = m["n"].as_u64().unwrap_or_default();
        let entry_err = |reason: String| BundleError::Entry { n, reason };
        let entry = entries.iter().find(|e| e["n"] == n).ok_or_else(|| entry_err("message without entry".into()))?;
        if entry["record"]["sha256"] != m["sha256"] {
            return Err(entry_err("the message's digest is not the one the ledger recorded".into()));
        }
        if let Some(body) = m["body_b64"].as_str() {
            let raw = B64.decode(body).map_err(|_| entry_err("the message is not base64".into()))?;
            if hex::encode(Sha256::digest(&raw)) != m["sha256"].as_str().unwrap_or_default() {
                return Err(entry_err("the message does not match the digest the ledger recorded".into()));
            }
        }
    }
    Ok(Verified {
        case: b["case"].as_str().unwrap_or_default().to_string(),
        entries: entries.len(),
        messages: messages.len(),
        kid,
    })
}
