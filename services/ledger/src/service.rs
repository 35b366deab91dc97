//! The ledger service: one writer appending what the hub's streams record,
//! many source messages to an entry.
//!
//! Per source an entry would be one JetStream append, an acknowledgement
//! round and a stored message for every accepted message and step event —
//! a third of everything the hub stored. Gathering what has arrived while
//! the previous append is in flight makes the batches as large as the load
//! needs: one record per entry when idle, hundreds under load.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use xj_bus::headers::Put;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, AckKind, Message, stream};
use chrono::{SecondsFormat, Utc};
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::{Bus, Shutdown, TraceParent, headers as h};
use xj_config::Settings;

use crate::LedgerError;
use crate::chain::{GENESIS, HashAlg, Record, SourceRef, alg_field, canonical, digest_hex, entry_hash_root};
use crate::recorded::{Key, Recorded, Stream};
use crate::store::{SUBJECT_LEDGER, declare, read_from};

const CONSUMER: &str = "ledger";

/// Records in one entry at most: large enough that an entry's fixed costs
/// (an append, its acknowledgement, a stored message, a hash) vanish under
/// load; small enough that an evidence bundle, which carries every entry
/// holding a record of its case, stays readable.
const MAX_RECORDS: usize = 512;

/// Bytes of one entry at most, unless the server allows less.
const MAX_BYTES: usize = 512 * 1024;

/// An entry's bytes besides its records (`n`, `at`, `prev`, `hash`, keys).
const ENTRY_OVERHEAD: usize = 512;

/// A record's bytes in an entry besides its canonical JSON (its leaf hash).
const LEAF_OVERHEAD: usize = 80;

/// Sources each consumer hands out before it waits for acknowledgements:
/// a full entry in flight and the next one gathering, twice over.
const MAX_ACK_PENDING: i64 = 4 * MAX_RECORDS as i64;

/// How often the consumers' acknowledgement floors are read (see
/// [`Recorded`]): only memory depends on it.
const FLOOR_EVERY: Duration = Duration::from_secs(2);

/// The end of the chain as this writer knows it.
struct Tail {
    n: u64,
    hash: String,
}

/// What a writer needs from a stored entry: where it is, its hash, when it
/// was written and which sources it records.
#[derive(Deserialize)]
struct Light {
    n: u64,
    #[serde(default)]
    at: String,
    hash: String,
    /// Batched entries.
    #[serde(default)]
    records: Option<Vec<LightRecord>>,
    /// Legacy entries (one source each).
    #[serde(default)]
    source: Option<LightSource>,
}

#[derive(Deserialize)]
struct LightRecord {
    #[serde(default)]
    source: Option<LightSource>,
}

#[derive(Deserialize)]
struct LightSource {
    stream: String,
    seq: u64,
}

impl Light {
    fn read(seq: u64, raw: &[u8]) -> Result<Self, LedgerError> {
        serde_json::from_slice(raw).map_err(|e| LedgerError::Bus(format!("ledger entry {seq} cannot be read: {e}")))
    }

    fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        let batched = self.records.iter().flatten().filter_map(|r| r.source.as_ref());
        batched.chain(self.source.as_ref()).filter_map(|s| Some(Key { stream: Stream::named(&s.stream)?, seq: s.seq }))
    }
}

/// A source message held until the entry recording it is stored.
struct Held {
    msg: Message,
    key: Key,
    /// Its bytes in an entry.
    size: usize,
    hop: Hop,
}

type Append = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// A record ready for an entry: its leaf hash and its canonical JSON, kept
/// rather than the record so an entry is written from the very bytes the
/// leaf hash covers, without walking the record again.
struct Prepared {
    leaf: String,
    body: String,
}

/// The one append in flight.
struct InFlight {
    n: u64,
    hash: String,
    held: Vec<Held>,
    records: Vec<Prepared>,
    ack: Append,
}

struct Writer {
    js: jetstream::Context,
    ledger: stream::Stream,
    sources: Vec<(Stream, stream::Stream)>,
    tail: Tail,
    recorded: Recorded,
    /// Waiting for an entry, in arrival order, with their records.
    pending: VecDeque<(Held, Prepared)>,
    /// Every key in `pending` or in flight.
    held: HashSet<Key>,
    /// A later delivery of a held source: acknowledged with it, so the
    /// acknowledgement reaches the server whichever delivery it counts.
    again: HashMap<Key, Vec<Message>>,
    max_bytes: usize,
    failures: u32,
    /// What new entries are hashed with (`[ledger] hash`).
    alg: HashAlg,
}

/// How far back a starting writer reads the chain for sources recorded but
/// perhaps not acknowledged: one `ack_wait` for the redelivery of what a
/// writer killed between storing and acknowledging had taken, a second for
/// a writer that took such a source and died too, and a minute for clocks
/// (the window is measured from the last entry's `at`, the start time
/// against the server's clock). Measured from the last entry, not from
/// now, so a ledger stopped for a week still covers what it left unfinished.
fn window(ack_wait: Duration) -> Duration {
    2 * ack_wait + Duration::from_secs(60)
}

/// Runs until `shutdown`: consumes `XJ_EVENTS` and `XJ_ACCEPTED` with
/// durable consumers named `ledger` and appends their messages as records,
/// many to an entry.
pub async fn run(
    settings: Arc<Settings>,
    bus: Bus,
    key: xj_bus::signing::HubKey,
    shutdown: Shutdown,
) -> Result<(), LedgerError> {
    // Asked again for a while, like the hub's other streams.
    let ledger =
        xj_bus::streams::patiently("the ledger stream", Some(&shutdown), || declare(&bus.js, settings.nats.replicas))
            .await?;
    let ack_wait = Duration::from_millis(settings.nats.ack_wait_ms);
    let mut consumers = Vec::new();
    let mut sources = Vec::new();
    for stream in [Stream::Accepted, Stream::Events] {
        let durable =
            xj_bus::consume::Durable::new(stream.name(), CONSUMER).ack_wait(ack_wait).max_ack_pending(MAX_ACK_PENDING);
        consumers.push(durable.messages(&bus.js).await.map_err(LedgerError::bus)?);
        sources.push((stream, bus.js.get_stream(stream.name()).await.map_err(LedgerError::bus)?));
    }
    let mut w = Writer::start(bus.js.clone(), ledger, sources, ack_wait, settings.ledger.hash).await?;
    let heads = tokio::spawn(crate::heads::run(settings.clone(), bus.js.clone(), key, shutdown.clone()));
    tracing::info!(entries = w.tail.n, recorded_runs = w.recorded.runs(), "ledger running");

    // Its own loop (it batches across two streams), counted like the
    // others for readiness.
    let _running = xj_bus::consume::health::running("ledger");
    let messages = futures::stream::select_all(consumers);
    let mut messages = std::pin::pin!(messages.take_until(shutdown.cancelled_owned()));
    let mut floors = tokio::time::interval(FLOOR_EVERY);
    floors.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: Option<InFlight> = None;
    let mut open = true;
    loop {
        // Stopping, what is pending is still appended — unless appends are
        // failing, when it is left to another writer.
        if in_flight.is_none() && (open || w.failures == 0) {
            in_flight = w.start_append();
        }
        if !open && in_flight.is_none() {
            break;
        }
        tokio::select! {
            stored = async {
                match in_flight.as_mut() {
                    Some(f) => (&mut f.ack).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(f) = in_flight.take() {
                    w.finish(f, stored).await;
                }
            }
            m = messages.next(), if open => {
                let Some(m) = m else {
                    open = false;
                    continue;
                };
                // Whatever else has already arrived joins it, so an append
                // after a quiet spell takes all that is waiting.
                let mut next = Some(m);
                while let Some(m) = next.take() {
                    match m {
                        Ok(m) => w.take(m).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "ledger pull failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    if w.pending.len() < MAX_ACK_PENDING as usize {
                        next = messages.next().now_or_never().flatten();
                    }
                }
            }
            _ = floors.tick() => w.refresh_floors().await,
        }
    }
    w.release().await;
    let _ = heads.await;
    tracing::info!(entries = w.tail.n, "ledger stopped");
    Ok(())
}

impl Writer {
    /// Finds the end of the chain and what it recorded lately.
    async fn start(
        js: jetstream::Context,
        mut ledger: stream::Stream,
        sources: Vec<(Stream, stream::Stream)>,
        ack_wait: Duration,
        alg: HashAlg,
    ) -> Result<Self, LedgerError> {
        let server_max = js.client().server_info().max_payload;
        let stream_max = usize::try_from(ledger.cached_info().config.max_message_size).ok().filter(|&m| m > 0);
        // Headers and the subject travel with the payload: leave them room.
        let max_bytes =
            [MAX_BYTES, server_max.saturating_sub(4096), stream_max.map_or(usize::MAX, |m| m.saturating_sub(1024))]
                .into_iter()
                .min()
                .unwrap_or(MAX_BYTES)
                .max(ENTRY_OVERHEAD + 1024);
        let state = ledger.info().await.map_err(LedgerError::bus)?.state.clone();
        let mut w = Self {
            js,
            ledger,
            sources,
            tail: Tail { n: 0, hash: GENESIS.into() },
            recorded: Recorded::default(),
            pending: VecDeque::new(),
            held: HashSet::new(),
            again: HashMap::new(),
            max_bytes,
            failures: 0,
            alg,
        };
        // Floors first: what the window holds at or below them is not kept.
        w.refresh_floors().await;
        if state.last_sequence == 0 {
            return Ok(w);
        }
        let last = w.ledger.get_raw_message(state.last_sequence).await.map_err(LedgerError::bus)?;
        let head = Light::read(state.last_sequence, &last.payload)?;
        let at = chrono::DateTime::parse_from_rfc3339(&head.at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| Utc::now());
        let since =
            chrono::Duration::from_std(window(ack_wait)).ok().and_then(|w| at.min(Utc::now()).checked_sub_signed(w));
        let start = match since.map(|t| async_nats::datetime::parse_rfc3339(&t.to_rfc3339())) {
            // A writer's clock ahead of the server's must not start the read after its end.
            Some(Ok(t)) => DeliverPolicy::ByStartTime { start_time: t.min(last.time) },
            _ => DeliverPolicy::All,
        };
        w.tail = Tail { n: head.n, hash: head.hash };
        w.read_entries(start).await?;
        Ok(w)
    }

    /// Reads stored entries from `start` to the last, taking what they
    /// record into the set; the tail follows.
    async fn read_entries(&mut self, start: DeliverPolicy) -> Result<(), LedgerError> {
        let mut last = 0;
        let mut unreadable = None;
        read_from(&self.js.clone(), start, |seq, raw| {
            last = seq;
            if let Err(e) = self.absorb(seq, raw) {
                unreadable = Some(e);
            }
            true
        })
        .await?;
        self.tail_readable(last, unreadable)
    }

    /// Reads what other writers appended since this one's tail.
    async fn catch_up(&mut self) -> Result<(), LedgerError> {
        let last = self.ledger.info().await.map_err(LedgerError::bus)?.state.last_sequence;
        if last <= self.tail.n {
            return Ok(());
        }
        // A consumer costs a few round trips, a direct get one per entry.
        if last - self.tail.n > 32 {
            return self.read_entries(DeliverPolicy::ByStartSequence { start_sequence: self.tail.n + 1 }).await;
        }
        let mut unreadable = None;
        for seq in self.tail.n + 1..=last {
            let m = self.ledger.get_raw_message(seq).await.map_err(LedgerError::bus)?;
            if let Err(e) = self.absorb(seq, &m.payload) {
                unreadable = Some(e);
            }
        }
        self.tail_readable(last, unreadable)
    }

    /// Takes a stored entry's sources into the set and moves the tail to it.
    /// An entry that cannot be read is passed over (its sources might be
    /// recorded again if they come back; `xj audit verify` names it): the
    /// ledger goes on recording rather than stop at a damaged entry.
    fn absorb(&mut self, seq: u64, raw: &[u8]) -> Result<(), LedgerError> {
        let e = Light::read(seq, raw)?;
        e.keys().for_each(|k| self.recorded.insert(k));
        if seq > self.tail.n {
            self.tail = Tail { n: seq, hash: e.hash };
        }
        Ok(())
    }

    /// Only the last entry must be readable: the next one names its hash.
    fn tail_readable(&self, last: u64, unreadable: Option<LedgerError>) -> Result<(), LedgerError> {
        match unreadable {
            Some(e) if last > self.tail.n => Err(e),
            Some(e) => {
                tracing::error!(error = %e, "a ledger entry cannot be read; continuing after it");
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn refresh_floors(&mut self) {
        for (stream, s) in &self.sources {
            match s.consumer_info(CONSUMER).await {
                Ok(i) => self.recorded.floor(*stream, i.ack_floor.stream_sequence),
                Err(e) => {
                    tracing::debug!(error = %e, stream = stream.name(), "cannot read the ledger consumer's floor")
                }
            }
        }
    }

    /// A delivered source: recorded already (acknowledged at once), held
    /// already (kept beside it), or waiting for the next entry.
    async fn take(&mut self, m: Message) {
        let Some(key) = Key::of(&m) else {
            tracing::warn!(subject = %m.subject, "ledger: a message from no source stream; left unacknowledged");
            return;
        };
        if self.recorded.contains(key) {
            tracing::debug!(stream = key.stream.name(), seq = key.seq, "redelivered source already recorded");
            let _ = m.ack().await;
            return;
        }
        if self.held.contains(&key) {
            self.again.entry(key).or_default().push(m);
            return;
        }
        let hop = hop_of(&m);
        let record = record_of(&m, key);
        let prepared = prepare(record, self.max_bytes, self.alg);
        let size = prepared.body.len() + LEAF_OVERHEAD;
        self.held.insert(key);
        self.pending.push_back((Held { msg: m, key, size, hop }, prepared));
    }

    /// Builds the next entry from the oldest pending records and sends it.
    fn start_append(&mut self) -> Option<InFlight> {
        let mut bytes = ENTRY_OVERHEAD;
        let mut held = Vec::new();
        let mut records = Vec::new();
        while let Some((h, _)) = self.pending.front() {
            if !held.is_empty() && (held.len() >= MAX_RECORDS || bytes + h.size > self.max_bytes) {
                break;
            }
            let Some((h, r)) = self.pending.pop_front() else { break };
            bytes += h.size;
            held.push(h);
            records.push(r);
        }
        if held.is_empty() {
            return None;
        }
        let n = self.tail.n + 1;
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let (hash, root) = seal(self.alg, n, &at, &self.tail.hash, &records);
        let payload = entry_json(self.alg, n, &at, &self.tail.hash, (&root, &hash), &records, bytes);
        let mut hd = HeaderMap::new();
        // Stored only right after the entry it names: two writers never fork the chain.
        hd.put("Nats-Expected-Last-Sequence", self.tail.n.to_string().as_str());
        let js = self.js.clone();
        let ack: Append =
            Box::pin(async move { js.publish_with_headers(SUBJECT_LEDGER, hd, payload.into()).await?.await });
        Some(InFlight { n, hash, held, records, ack })
    }

    /// Returns an entry's sources to the front of the queue, in order.
    fn put_back(&mut self, held: Vec<Held>, records: Vec<Prepared>) {
        for (h, r) in held.into_iter().zip(records).rev() {
            self.pending.push_front((h, r));
        }
    }

    /// The append's outcome: stored, its sources are acknowledged; refused
    /// or lost, the writer reads what was stored meanwhile, acknowledges the
    /// sources found there and tries again with the rest.
    async fn finish(&mut self, f: InFlight, stored: Result<PublishAck, PublishError>) {
        let n = f.n;
        match stored {
            Ok(ack) if ack.sequence == n && !ack.duplicate => {
                self.failures = 0;
                self.tail = Tail { n, hash: f.hash };
                metrics::counter!("xj_ledger_entries_total").increment(1);
                metrics::counter!("xj_ledger_records_total").increment(f.held.len() as u64);
                for h in &f.held {
                    self.recorded.insert(h.key);
                }
                self.acknowledge(f.held).await;
                return;
            }
            Ok(ack) => {
                self.failures += 1;
                tracing::warn!(expected = n, stored = ack.sequence, "ledger entry stored elsewhere than expected");
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
            Err(e) => {
                self.failures += 1;
                tracing::warn!(error = %e, records = f.held.len(), "ledger append failed; will retry");
            }
        }
        self.put_back(f.held, f.records);
        if self.failures > 0 {
            // The append may still have been stored: catching up finds it.
            let pause = Duration::from_millis(100 << self.failures.min(5));
            tokio::time::sleep(pause).await;
        }
        let before = self.tail.n;
        if let Err(e) = self.catch_up().await {
            self.failures += 1;
            tracing::warn!(error = %e, "cannot read what the ledger stored; will retry");
            return;
        }
        if self.tail.n == before {
            // Refused, yet nothing new is stored: do not spin on it.
            self.failures += 1;
        }
        let (done, wait): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|(h, _)| self.recorded.contains(h.key));
        self.pending = wait.into();
        if !done.is_empty() {
            tracing::debug!(sources = done.len(), "recorded by another ledger writer");
            self.acknowledge(done.into_iter().map(|(h, _)| h).collect()).await;
        }
    }

    /// Acknowledges recorded sources (every delivery of each).
    async fn acknowledge(&mut self, held: Vec<Held>) {
        let mut acks = Vec::with_capacity(held.len());
        for h in held {
            self.held.remove(&h.key);
            acks.extend(self.again.remove(&h.key).into_iter().flatten());
            acks.push(h.msg);
            h.hop.finish();
        }
        // Lost acknowledgements are harmless: a redelivered source is found
        // recorded and acknowledged again.
        futures::future::join_all(acks.iter().map(|m| m.ack())).await;
    }

    /// On shutdown: what no entry holds goes back to the server at once,
    /// for another writer.
    async fn release(&mut self) {
        let left: Vec<(Held, Prepared)> = self.pending.drain(..).collect();
        let mut naks = Vec::new();
        for (h, _) in left {
            naks.extend(self.again.remove(&h.key).into_iter().flatten());
            naks.push(h.msg);
            h.hop.fail("ledger stopping; left for redelivery");
        }
        self.held.clear();
        futures::future::join_all(naks.iter().map(|m| m.ack_with(AckKind::Nak(None)))).await;
    }
}

/// The ledger's span for one source message: a child of the hop that wrote
/// it (the `traceparent` of an accepted message, the ids of a step event).
fn hop_of(m: &Message) -> Hop {
    if !xj_bus::otel::enabled() {
        return Hop::start("ledger", "ledger.append", None, TraceParent::new_root());
    }
    let event: Option<Value> =
        m.subject.as_str().starts_with("xj.evt.").then(|| serde_json::from_slice(&m.payload).ok()).flatten();
    let received = match &event {
        Some(ev) => TraceParent::from_hex(ev["trace_id"].as_str().unwrap_or(""), ev["span_id"].as_str().unwrap_or("")),
        None => TraceParent::received(m.headers.as_ref()),
    };
    let own = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut hop = Hop::start("ledger", "ledger.append", received, own).kind(SpanKind::Consumer);
    hop.attr("xj.source", m.subject.to_string());
    if let Some(ev) = &event {
        hop.attr_opt("xj.message_id", ev["msg_id"].as_str().map(str::to_owned))
            .attr_opt("xj.case", ev["case"].as_str().map(str::to_owned))
            .attr_opt("xj.sender", ev["sender"].as_str().map(str::to_owned))
            .attr_opt("xj.step", ev["step"].as_str().map(str::to_owned));
    } else if let Ok(msg) = serde_json::from_slice::<Value>(&m.payload) {
        // An accepted message: its ids are in it.
        hop.attr_opt("xj.message_id", msg["id"].as_str().map(str::to_owned))
            .attr_opt("xj.case", msg["case"].as_str().map(str::to_owned))
            .attr_opt("xj.sender", msg["sender"].as_str().map(str::to_owned));
    }
    hop
}

/// What the ledger records about a source message.
fn record_of(m: &Message, key: Key) -> Record {
    let source = SourceRef { stream: key.stream.name().to_string(), seq: key.seq, subject: m.subject.to_string() };
    if key.stream == Stream::Accepted {
        let env: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        let s = |k: &str| env.get(k).and_then(Value::as_str).map(str::to_owned);
        let record = json!({
            "sha256": hex::encode(Sha256::digest(&m.payload)),
            "size": m.payload.len(),
            "type": env.get("type"),
            "classification": env.get("classification"),
            "recipient": env.get("recipient"),
            "reply_to": env.get("reply_to"),
            "sent_at": env.get("sent_at"),
            "accepted_at": h::get(m.headers.as_ref(), h::ACCEPTED_AT),
        });
        let mut record = record;
        if let Some(s) = submitted(m.headers.as_ref()) {
            record["submitted"] = s;
        }
        return Record {
            kind: "message".into(),
            source,
            case: s("case"),
            msg_id: s("id"),
            sender: s("sender"),
            record,
        };
    }
    let mut ev: Value = serde_json::from_slice(&m.payload).unwrap_or_else(|_| json!({ "undecodable": true }));
    xj_model::mask_id_numbers_in(&mut ev);
    let s = |k: &str| ev.get(k).and_then(Value::as_str).map(str::to_owned);
    let step = s("step").unwrap_or_else(|| m.subject.as_str().rsplit('.').next().unwrap_or("event").to_string());
    Record {
        kind: format!("event:{step}"),
        source,
        case: s("case"),
        msg_id: s("msg_id"),
        sender: s("sender"),
        record: ev,
    }
}

/// What an accepted message's headers say of its sender's signature
/// (`Xj-Submitted-Sha256`, `Xj-Submitted-Signature`): the digest of the bytes
/// it signed and the signature's parts, each its own field.
fn submitted(hd: Option<&HeaderMap>) -> Option<Value> {
    let sha256 = h::get(hd, h::SUBMITTED_SHA256)?;
    let sig = h::get(hd, h::SUBMITTED_SIGNATURE)?;
    let part = |name: &str| sig.split(',').find_map(|p| p.trim().strip_prefix(name)).map(str::to_owned);
    Some(json!({
        "sha256": sha256,
        "alg": part("alg=").unwrap_or_else(|| "ed25519".into()),
        "keyid": part("keyid=").unwrap_or_default(),
        "sig": part("sig=").unwrap_or_default(),
    }))
}

/// The record, prepared for an entry of at most `max_bytes`. A record that
/// could never fit is recorded by the digest and size of its content
/// instead: recorded, if not whole, rather than blocking the ledger.
fn prepare(mut record: Record, max_bytes: usize, alg: HashAlg) -> Prepared {
    let mut body = record.canonical();
    if body.len() + LEAF_OVERHEAD + ENTRY_OVERHEAD > max_bytes {
        let inner = canonical(&record.record);
        record.record = json!({
            "too_large": true,
            "size": inner.len(),
            "sha256": hex::encode(Sha256::digest(inner.as_bytes())),
        });
        body = record.canonical();
    }
    Prepared { leaf: digest_hex(alg, body.as_bytes()), body }
}

/// The hash and the Merkle root of entry `n` holding `records`.
fn seal(alg: HashAlg, n: u64, at: &str, prev: &str, records: &[Prepared]) -> (String, String) {
    let leaves: Vec<&str> = records.iter().map(|r| r.leaf.as_str()).collect();
    let root = crate::merkle::root(alg, &leaves);
    (entry_hash_root(alg, n, at, prev, leaves.len() as u64, &root), root)
}

/// An entry's JSON (as [`crate::Entry`] reads it), each record written as
/// `{"leaf":…,` followed by its canonical JSON without the opening brace.
fn entry_json(
    alg: HashAlg,
    n: u64,
    at: &str,
    prev: &str,
    (root, hash): (&str, &str),
    records: &[Prepared],
    size: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(format!("{{\"n\":{n},\"at\":\"{at}\",\"prev\":\"{prev}\",").as_bytes());
    if let Some(a) = alg_field(alg) {
        out.extend_from_slice(format!("\"alg\":\"{a}\",").as_bytes());
    }
    out.extend_from_slice(format!("\"count\":{},\"root\":\"{root}\",", records.len()).as_bytes());
    out.extend_from_slice(b"\"records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"leaf\":\"");
        out.extend_from_slice(r.leaf.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(r.body.as_bytes().get(1..).unwrap_or_default());
    }
    out.extend_from_slice(format!("],\"hash\":\"{hash}\"}}").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(detail: &str) -> Record {
        Record {
            kind: "event:routed".into(),
            source: SourceRef { stream: "XJ_EVENTS".into(), seq: 1, subject: "xj.evt.a.M1.routed".into() },
            case: Some("XJ-1".into()),
            msg_id: Some("M1".into()),
            sender: Some("a".into()),
            record: json!({ "detail": detail }),
        }
    }

    #[test]
    fn a_record_too_large_for_any_entry_is_recorded_by_its_digest() {
        let p = prepare(record("small"), 64 * 1024, HashAlg::Sha256);
        let small: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(small["record"]["detail"], "small");
        assert_eq!(p.leaf, record("small").leaf());

        let big = "x".repeat(70 * 1024);
        let p = prepare(record(&big), 64 * 1024, HashAlg::Sha256);
        assert!(p.body.len() < 1024);
        let r: Record = serde_json::from_str(&p.body).unwrap();
        assert_eq!(r.record["too_large"], true);
        assert_eq!(r.record["sha256"], hex::encode(Sha256::digest(canonical(&json!({ "detail": big })).as_bytes())));
        assert_eq!((r.msg_id.as_deref(), r.source.seq), (Some("M1"), 1), "still says what it records");
        assert_eq!(p.leaf, r.leaf());
    }

    #[test]
    fn an_entry_written_from_prepared_records_is_the_entry_they_make() {
        for alg in [HashAlg::Sha256, HashAlg::Sm3] {
            let records: Vec<Record> = ["a", "b\"\n中文", "c"].iter().map(|d| record(d)).collect();
            let prepared: Vec<Prepared> = records.iter().map(|r| prepare(r.clone(), 64 * 1024, alg)).collect();
            let at = "2026-11-21T01:00:00.000Z";
            let (hash, root) = seal(alg, 7, at, GENESIS, &prepared);
            let raw = entry_json(alg, 7, at, GENESIS, (&root, &hash), &prepared, 0);
            let written: crate::Entry = serde_json::from_slice(&raw).unwrap();
            let expected = crate::Entry::new_with(
                alg,
                7,
                at.into(),
                GENESIS.into(),
                records.into_iter().map(|r| crate::Leaf::of_with(r, alg)).collect(),
            );
            assert_eq!(written, expected, "{alg:?}");
            let v: Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(v.get("alg").and_then(Value::as_str), alg_field(alg), "{alg:?}");
            let c = crate::check_entry(&v, 7, false).unwrap();
            assert_eq!((c.records, c.hash.clone()), (3, hash), "{alg:?}");
        }
    }
}
