//! Signed heads: every `[ledger] head_every_s` the ledger signs its last
//! entry (`n`, `hash`, the time) with the hub's key and, when
//! `[ledger] timestamp_url` names an RFC 3161 authority, has the signed
//! head time-stamped; both are kept in `XJ_LEDGER_HEADS`, append-only like
//! the chain.
//!
//! An evidence package links its records, entry by entry, to the first
//! signed head at or after them: a verifier then holds the hub's signed
//! word — and the authority's, with its time — that those entries were in
//! the chain by then, whatever the hub signs later. Heads are made on their
//! own timer, never on a message's path.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xj_bus::Shutdown;
use xj_bus::signing::HubKey;
use xj_config::Settings;

use crate::LedgerError;
use crate::chain::canonical;
use crate::store::STREAM_LEDGER;
use crate::tsa::{self, Stamped};

pub const STREAM_HEADS: &str = "XJ_LEDGER_HEADS";
pub const SUBJECT_HEADS: &str = "xj.ledger.head";
pub const FORMAT: &str = "xianjie-signed-head/1";

/// A signed head as stored and as packages carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    pub format: String,
    /// The entry signed: its number and hash.
    pub n: u64,
    pub hash: String,
    /// When the hub signed it (its own clock).
    pub at: String,
    /// `Xj-Signature` form, by the hub's key, over [`SignedHead::statement`].
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

/// An RFC 3161 token over [`SignedHead::imprint`], and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// The token (a DER CMS `ContentInfo`), base64.
    pub token_b64: String,
    pub gen_time: String,
    pub tsa: String,
    pub tsa_cert_sha256: String,
}

impl SignedHead {
    /// The bytes the hub signs: the head without its signature.
    pub fn statement(format: &str, n: u64, hash: &str, at: &str) -> String {
        canonical(&json!({ "format": format, "n": n, "hash": hash, "at": at }))
    }

    /// What the time-stamping authority stamps: SHA-256 of the head with
    /// the hub's signature, so the token dates the signature too.
    pub fn imprint(&self) -> [u8; 32] {
        let signed = json!({
            "format": self.format, "n": self.n, "hash": self.hash, "at": self.at, "signature": self.signature,
        });
        Sha256::digest(canonical(&signed).as_bytes()).into()
    }

    fn sign(key: &HubKey, n: u64, hash: &str) -> Self {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let signature = key.sign_header(Self::statement(FORMAT, n, hash, &at).as_bytes());
        Self { format: FORMAT.into(), n, hash: hash.into(), at, signature, timestamp: None }
    }
}

/// What checking a signed head found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadChecked {
    pub n: u64,
    pub at: String,
    pub stamped: Option<Stamped>,
}

/// Checks a signed head offline against the hub's keys (a JWKS, as
/// bundles carry) and its token, if any, against its imprint.
pub fn verify(head: &Value, keys: &Value) -> Result<HeadChecked, String> {
    let h: SignedHead = serde_json::from_value(head.clone()).map_err(|e| format!("it cannot be read: {e}"))?;
    if h.format != FORMAT {
        return Err(format!("it is not a {FORMAT}"));
    }
    let statement = SignedHead::statement(&h.format, h.n, &h.hash, &h.at);
    xj_bus::signing::verify_with_keys(keys, &h.signature, statement.as_bytes())
        .map_err(|e| format!("the hub's signature on it does not verify: {e}"))?;
    let stamped = match &h.timestamp {
        None => None,
        Some(t) => {
            let token = B64.decode(&t.token_b64).map_err(|_| "its time-stamp token is not base64".to_string())?;
            let s = tsa::verify(&token, &h.imprint(), None)?;
            if s.gen_time != t.gen_time || s.tsa != t.tsa || s.cert_sha256 != t.tsa_cert_sha256 {
                return Err("its time-stamp token says another time or authority than the head states".into());
            }
            Some(s)
        }
    };
    Ok(HeadChecked { n: h.n, at: h.at, stamped })
}

/// Declares `XJ_LEDGER_HEADS` (idempotent): kept for ever, no deletes.
pub async fn declare(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream, LedgerError> {
    let s = js
        .get_or_create_stream(stream::Config {
            name: STREAM_HEADS.into(),
            subjects: vec![SUBJECT_HEADS.into()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::New,
            deny_delete: true,
            deny_purge: true,
            description: Some("xianjie audit ledger: the hub's signed (and time-stamped) heads".into()),
            ..Default::default()
        })
        .await
        .map_err(LedgerError::bus)?;
    xj_bus::streams::scale(js, STREAM_HEADS, replicas).await.map_err(LedgerError::bus)?;
    Ok(s)
}

/// The stored head at `seq` in `XJ_LEDGER_HEADS`.
async fn head_at(s: &stream::Stream, seq: u64) -> Option<SignedHead> {
    let m = s.get_raw_message(seq).await.ok()?;
    serde_json::from_slice(&m.payload).ok()
}

/// The first signed head at or after entry `n` and at or before `upto`
/// (heads are stored in increasing `n`: a binary search).
pub async fn covering(js: &jetstream::Context, n: u64, upto: u64) -> Result<Option<SignedHead>, LedgerError> {
    let Ok(mut s) = js.get_stream(STREAM_HEADS).await else { return Ok(None) };
    let state = s.info().await.map_err(LedgerError::bus)?.state.clone();
    if state.messages == 0 {
        return Ok(None);
    }
    let (mut lo, mut hi) = (state.first_sequence, state.last_sequence + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match head_at(&s, mid).await {
            Some(h) if h.n >= n => hi = mid,
            _ => lo = mid + 1,
        }
    }
    if lo > state.last_sequence {
        return Ok(None);
    }
    Ok(head_at(&s, lo).await.filter(|h| h.n <= upto))
}

/// Signs the ledger's head every `[ledger] head_every_s` while it moves,
/// until `shutdown`. A time-stamping authority that fails leaves the head
/// signed and unstamped; the next head asks again.
pub async fn run(settings: Arc<Settings>, js: jetstream::Context, key: HubKey, shutdown: Shutdown) {
    let heads = match xj_bus::streams::patiently("the signed heads stream", Some(&shutdown), || {
        declare(&js, settings.nats.replicas)
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "signed heads stopped");
            return;
        }
    };
    let last = match heads.get_last_raw_message_by_subject(SUBJECT_HEADS).await {
        Ok(m) => serde_json::from_slice::<SignedHead>(&m.payload).ok(),
        Err(_) => None,
    };
    let (mut last_signed, mut last_stamped) = last.map_or((0, false), |h| (h.n, h.timestamp.is_some()));
    let timeout = Duration::from_millis(settings.ledger.timestamp_timeout_ms);
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the time-stamping authority: heads are signed only");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(settings.ledger.head_every_s.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some((n, hash)) = last_entry(&js).await else { continue };
        // A head left unstamped by a failing authority is signed again,
        // stamped, when it answers again.
        let unstamped = settings.ledger.timestamp_url.is_some() && !last_stamped;
        if n < last_signed || (n == last_signed && !unstamped) {
            continue;
        }
        let mut head = SignedHead::sign(&key, n, &hash);
        if let (Some(url), Some(client)) = (&settings.ledger.timestamp_url, &client) {
            match tsa::stamp(client, url, &head.imprint()).await {
                Ok((der, s)) => {
                    head.timestamp = Some(Timestamp {
                        token_b64: B64.encode(der),
                        gen_time: s.gen_time,
                        tsa: s.tsa,
                        tsa_cert_sha256: s.cert_sha256,
                    });
                }
                Err(e) => {
                    metrics::counter!("xj_ledger_timestamp_failures_total").increment(1);
                    tracing::warn!(error = %e, n, "ledger head not time-stamped");
                }
            }
        }
        let Ok(payload) = serde_json::to_vec(&head) else { continue };
        match js.publish(SUBJECT_HEADS, payload.into()).await {
            Ok(ack) => match ack.await {
                Ok(_) => {
                    (last_signed, last_stamped) = (n, head.timestamp.is_some());
                    tracing::debug!(n, stamped = head.timestamp.is_some(), "ledger head signed");
                }
                Err(e) => tracing::warn!(error = %e, n, "signed head not stored"),
            },
            Err(e) => tracing::warn!(error = %e, n, "signed head not stored"),
        }
    }
}

/// The last entry of the chain: its number and hash.
async fn last_entry(js: &jetstream::Context) -> Option<(u64, String)> {
    let mut s = js.get_stream(STREAM_LEDGER).await.ok()?;
    let last = s.info().await.ok()?.state.last_sequence;
    if last == 0 {
        return None;
    }
    let m = s.get_raw_message(last).await.ok()?;
    let e: Value = serde_json::from_slice(&m.payload).ok()?;
    Some((e["n"].as_u64()?, e["hash"].as_str()?.to_string()))
}
