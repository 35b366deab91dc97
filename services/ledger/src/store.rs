//! The ledger's stream: declaring it, reading it back, verifying it live.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::{self, stream};
use futures::StreamExt;

use crate::LedgerError;
use crate::chain::{Break, Summary, Walker};

pub const STREAM_LEDGER: &str = "XJ_LEDGER";
pub const SUBJECT_LEDGER: &str = "xj.ledger";

/// Declares `XJ_LEDGER` (idempotent): kept for ever, no deletes, no purges,
/// full refuses new entries rather than dropping old ones.
pub async fn declare(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream, LedgerError> {
    let s = js
        .get_or_create_stream(stream::Config {
            name: STREAM_LEDGER.into(),
            subjects: vec![SUBJECT_LEDGER.into()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(600),
            deny_delete: true,
            deny_purge: true,
            description: Some("xianjie audit ledger: append-only hash chain".into()),
            ..Default::default()
        })
        .await
        .map_err(LedgerError::bus)?;
    // A hub moved onto a cluster keeps its chain, now on `replicas` nodes.
    xj_bus::streams::scale(js, STREAM_LEDGER, replicas).await.map_err(LedgerError::bus)?;
    Ok(s)
}

/// Reads every stored entry in order and gives each (sequence, raw bytes)
/// to `f`; stops early when `f` returns false.
pub async fn read_all<F>(js: &jetstream::Context, f: F) -> Result<u64, LedgerError>
where
    F: FnMut(u64, &[u8]) -> bool,
{
    read_from(js, DeliverPolicy::All, f).await
}

/// Reads the stored entries from `start` to the last one stored when the
/// read began, in order; gives back that last sequence (0: the ledger is empty).
pub async fn read_from<F>(js: &jetstream::Context, start: DeliverPolicy, mut f: F) -> Result<u64, LedgerError>
where
    F: FnMut(u64, &[u8]) -> bool,
{
    let mut s = js.get_stream(STREAM_LEDGER).await.map_err(LedgerError::bus)?;
    let last = s.info().await.map_err(LedgerError::bus)?.state.last_sequence;
    if last == 0 {
        return Ok(0);
    }
    let consumer = s
        .create_consumer(OrderedConfig { deliver_policy: start, ..Default::default() })
        .await
        .map_err(LedgerError::bus)?;
    let mut msgs = consumer.messages().await.map_err(LedgerError::bus)?;
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(LedgerError::bus(e)),
            Ok(None) | Err(_) => return Err(LedgerError::Bus(format!("the ledger stopped before entry {last}"))),
        };
        let seq = m.info().map(|i| i.stream_sequence).map_err(LedgerError::bus)?;
        if !f(seq, &m.payload) || seq >= last {
            return Ok(last);
        }
    }
}

/// Walks the live chain: `Ok(Ok(summary))`, or the first break.
pub async fn verify_live(js: &jetstream::Context) -> Result<Result<Summary, Break>, LedgerError> {
    let mut w = Walker::default();
    let mut broken = None;
    let last = read_all(js, |seq, raw| match w.step(seq, raw) {
        Ok(_) => true,
        Err(b) => {
            broken = Some(b);
            false
        }
    })
    .await?;
    if let Some(b) = broken {
        return Ok(Err(b));
    }
    if w.count() != last {
        return Ok(Err(Break::entry(w.count() + 1, format!("is missing (the ledger ends at {last})"))));
    }
    Ok(Ok(w.summary()))
}

/// Every entry as one JSON line, for an offline copy (`xj audit dump`).
pub async fn dump(js: &jetstream::Context) -> Result<String, LedgerError> {
    let mut out = String::new();
    read_all(js, |_, raw| {
        out.push_str(&String::from_utf8_lossy(raw));
        out.push('\n');
        true
    })
    .await?;
    Ok(out)
}
