//! Evidence bundles: the ledger entries holding one case's records, the
//! chain links that join them, the accepted messages themselves, and the
//! hub's public keys, signed by the hub — one JSON file that verifies
//! offline (`xj audit verify --file`).
//!
//! An entry records many sources, often of several cases. A bundle shows
//! the case's records whole, each with its inclusion proof (its index and
//! the hashes on its way to the entry's Merkle root), and leaves the other
//! cases' records out: the entry's hash still checks (it covers the root
//! and the count, not the records), and the bundle shows nothing of any
//! other case but how many records the entry held. Entries written before
//! the Merkle root show the other records reduced to their leaf hashes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xj_bus::signing::HubKey;

use crate::LedgerError;
use crate::chain::{
    Break, RecordAt, Summary, Walker, alg_of, canonical, check_entry, is_batched, placed_records, records_of,
};
use crate::heads::{HeadChecked, SignedHead};
use crate::store::read_all;

/// Bundles with inclusion proofs (and entries of every earlier kind, which
/// they may hold).
pub const FORMAT: &str = "xianjie-evidence-bundle/3";
/// Bundles exported before inclusion proofs; still verified.
pub const FORMAT_V2: &str = "xianjie-evidence-bundle/2";
/// Bundles exported before batching; still verified.
pub const FORMAT_V1: &str = "xianjie-evidence-bundle/1";

/// What a bundle shows whole: one case's records, or one message's (its
/// acceptance, routing, deliveries and receipts — `xj audit export
/// --message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Case(String),
    Message { sender: String, id: String },
}

impl Scope {
    /// Whether `record` (as JSON) is in the scope.
    pub fn shows(&self, record: &Value) -> bool {
        match self {
            Scope::Case(c) => record["case"] == c.as_str(),
            Scope::Message { sender, id } => record["msg_id"] == id.as_str() && record["sender"] == sender.as_str(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::Case(c) => format!("case {c:?}"),
            Scope::Message { sender, id } => format!("message {id:?} of {sender}"),
        }
    }

    /// The scope a bundle says it shows.
    fn of_bundle(b: &Value) -> Option<Self> {
        match b.get("message") {
            Some(m) => Some(Scope::Message { sender: m["sender"].as_str()?.into(), id: m["id"].as_str()?.into() }),
            None => Some(Scope::Case(b["case"].as_str()?.into())),
        }
    }
}

/// Whether a record (as JSON) is held whole, not reduced to its leaf hash.
fn is_whole(r: &Value) -> bool {
    r.as_object().is_some_and(|m| m.len() > 1 || !m.contains_key("leaf"))
}

/// The entry as `case`'s bundle shows it, or `None` when it holds no record
/// of the case.
pub fn for_case(entry: &Value, case: &str) -> Option<Value> {
    for_scope(entry, &Scope::Case(case.into()))
}

/// The entry as a bundle of `scope` shows it, or `None` when it holds no
/// record in the scope.
pub fn for_scope(entry: &Value, scope: &Scope) -> Option<Value> {
    if !is_batched(entry) {
        return scope.shows(entry).then(|| entry.clone());
    }
    let records = entry["records"].as_array()?;
    if !records.iter().any(|r| scope.shows(r)) {
        return None;
    }
    let mut shown = entry.clone();
    if entry.get("root").is_none() {
        shown["records"] =
            records.iter().map(|r| if scope.shows(r) { r.clone() } else { json!({ "leaf": r["leaf"] }) }).collect();
        return Some(shown);
    }
    // A Merkle entry: the scope's records and their proofs, nothing else.
    let alg = alg_of(entry).ok()?;
    let leaves: Vec<&str> = records.iter().map(|r| r["leaf"].as_str().unwrap_or_default()).collect();
    let (ours, proofs): (Vec<Value>, Vec<Value>) = records
        .iter()
        .enumerate()
        .filter(|(_, r)| scope.shows(r))
        .map(|(i, r)| (r.clone(), json!({ "index": i, "path": crate::merkle::path(alg, &leaves, i) })))
        .unzip();
    shown["records"] = Value::Array(ours);
    shown["proofs"] = Value::Array(proofs);
    Some(shown)
}

/// Reads a chain in order and keeps what `case`'s bundle needs.
struct Collect<'a> {
    scope: &'a Scope,
    walker: Walker,
    broken: Option<Break>,
    /// `n`, `prev`, `hash` of every entry from the case's first on.
    links: Vec<Value>,
    ours: Vec<Value>,
    /// Whether an entry at or after a break may hold a record of the case.
    after_break: bool,
}

impl<'a> Collect<'a> {
    fn new(scope: &'a Scope) -> Self {
        Self { scope, walker: Walker::default(), broken: None, links: Vec::new(), ours: Vec::new(), after_break: false }
    }

    fn step(&mut self, seq: u64, raw: &[u8]) -> bool {
        if self.broken.is_some() {
            // Past a break nothing verifies, but the case may still have
            // records there: then its bundle would leave them out.
            let maybe_ours = serde_json::from_slice::<Value>(raw).map_or(true, |e| for_scope(&e, self.scope).is_some());
            self.after_break |= maybe_ours;
            return true;
        }
        match self.walker.step(seq, raw) {
            Ok(e) => {
                let shown = for_scope(&e, self.scope);
                if shown.is_some() || !self.ours.is_empty() {
                    self.links.push(json!({ "n": e["n"], "prev": e["prev"], "hash": e["hash"] }));
                }
                self.ours.extend(shown);
                true
            }
            Err(b) => {
                self.broken = Some(b);
                self.step(seq, raw)
            }
        }
    }

    /// The case's entries and the links from its first to its last;
    /// refuses a chain broken before the last (or where it cannot tell).
    fn finish(mut self) -> Result<(Vec<Value>, Vec<Value>, Summary), LedgerError> {
        let Some(last_n) = self.ours.last().and_then(|e| e["n"].as_u64()) else {
            return Err(LedgerError::Bundle(format!("the ledger has no record of {}", self.scope.describe())));
        };
        if let Some(b) = &self.broken
            && (b.n <= last_n || self.after_break)
        {
            return Err(LedgerError::Bundle(format!("the ledger is broken ({b}); not exporting from a broken chain")));
        }
        // Links past the scope's last entry are kept (until a break): a
        // signed head further on may be what they lead to.
        if let Some(b) = &self.broken {
            self.links.retain(|l| l["n"].as_u64().is_some_and(|n| n < b.n));
        }
        Ok((self.ours, self.links, self.walker.summary()))
    }
}

/// The links up to entry `upto`.
fn links_to(mut links: Vec<Value>, upto: u64) -> Vec<Value> {
    links.retain(|l| l["n"].as_u64().is_some_and(|n| n <= upto));
    links
}

/// The last entry number in `ours`.
fn last_n(ours: &[Value]) -> u64 {
    ours.last().and_then(|e| e["n"].as_u64()).unwrap_or_default()
}

/// An accepted message a bundle's entries record.
struct MessageRef {
    n: u64,
    /// The record's index in its entry, from 1.
    index: usize,
    /// Its sequence in `XJ_ACCEPTED`.
    seq: u64,
    sha256: Value,
    /// The digest of the bytes its sender signed, when it signed them.
    submitted: Option<String>,
}

/// The accepted messages the case's entries record.
fn message_refs(ours: &[Value], scope: &Scope) -> Vec<MessageRef> {
    let mut refs = Vec::new();
    for e in ours {
        for (index, r) in placed_records(e) {
            if r["kind"] == "message" && scope.shows(r) && r["source"]["stream"] == xj_bus::subjects::STREAM_ACCEPTED {
                refs.push(MessageRef {
                    n: e["n"].as_u64().unwrap_or_default(),
                    index,
                    seq: r["source"]["seq"].as_u64().unwrap_or_default(),
                    sha256: r["record"]["sha256"].clone(),
                    submitted: r["record"]["submitted"]["sha256"].as_str().map(str::to_owned),
                });
            }
        }
    }
    refs
}

/// The keys of the organisations whose receipts a bundle holds, as the
/// hub's configuration registered them: `{org: {"alg", "public_key"}}`.
pub type PartyKeys = serde_json::Map<String, Value>;

/// The organisations whose signatures `ours` holds — recipients' receipts,
/// senders' signed submissions — with their keys.
fn receipt_keys(ours: &[Value], keys: &dyn Fn(&str) -> Option<(String, String)>) -> PartyKeys {
    let mut out = PartyKeys::new();
    for e in ours {
        for r in records_of(e).into_iter().filter(|r| is_whole(r)) {
            let d = &r["record"]["detail"];
            let signer = if d.get("receipt").is_some() {
                d["recipient"].as_str()
            } else if r["record"].get("submitted").is_some() {
                r["sender"].as_str()
            } else {
                None
            };
            if let Some(org) = signer
                && let Some((alg, key)) = keys(org)
            {
                out.insert(org.into(), json!({ "alg": alg, "public_key": key }));
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    scope: &Scope,
    ours: Vec<Value>,
    links: Vec<Value>,
    messages: Vec<Value>,
    chain: Summary,
    party_keys: PartyKeys,
    signed_head: Option<SignedHead>,
    key: &HubKey,
) -> Value {
    // A message's case, as its records say.
    let case = match scope {
        Scope::Case(c) => c.clone(),
        Scope::Message { .. } => ours
            .iter()
            .flat_map(records_of)
            .find_map(|r| scope.shows(r).then(|| r["case"].as_str().map(str::to_owned)).flatten())
            .unwrap_or_default(),
    };
    let mut bundle = json!({
        "format": FORMAT,
        "case": case,
        "exported_at": chrono::Utc::now().to_rfc3339(),
        "ledger": { "entries": chain.entries, "records": chain.records, "head": chain.head },
        "entries": ours,
        "links": links,
        "messages": messages,
        "keys": key.jwks(),
        "party_keys": party_keys,
    });
    if let Scope::Message { sender, id } = scope {
        bundle["message"] = json!({ "sender": sender, "id": id });
    }
    if let Some(h) = signed_head {
        bundle["signed_head"] = serde_json::to_value(h).unwrap_or_default();
    }
    let sig = key.sign_header(canonical(&bundle).as_bytes());
    bundle["signature"] = json!(sig);
    bundle
}

fn message(n: u64, index: usize, seq: u64, sha256: Value, body: Option<&[u8]>) -> Value {
    let mut m = json!({ "n": n, "record": index, "seq": seq, "sha256": sha256 });
    match body {
        Some(raw) => m["body_b64"] = json!(B64.encode(raw)),
        None => m["missing"] = json!("no longer kept in XJ_ACCEPTED"),
    }
    m
}

/// Builds the bundle of `case` from the live ledger; refuses when the chain
/// is broken before the case's last entry.
pub async fn export_case(js: &async_nats::jetstream::Context, case: &str, key: &HubKey) -> Result<Value, LedgerError> {
    export(js, &Scope::Case(case.into()), &|_| None, key).await
}

/// Builds the bundle of `scope` from the live ledger, with the keys
/// (`keys(org)` → algorithm and base64 public key) of the recipients whose
/// signed receipts it holds; refuses when the chain is broken before the
/// scope's last entry.
pub async fn export(
    js: &async_nats::jetstream::Context,
    scope: &Scope,
    keys: &dyn Fn(&str) -> Option<(String, String)>,
    key: &HubKey,
) -> Result<Value, LedgerError> {
    let mut c = Collect::new(scope);
    read_all(js, |seq, raw| c.step(seq, raw)).await?;
    let (ours, links, chain) = c.finish()?;
    // The first signed head at or after the scope's last entry, within
    // what was read; without one yet, the links end at that entry.
    let read_to = links.last().and_then(|l| l["n"].as_u64()).unwrap_or_default();
    let head = crate::heads::covering(js, last_n(&ours), read_to).await?;
    let head = match head {
        Some(h) => {
            let at_head = links.iter().find(|l| l["n"] == h.n).map(|l| l["hash"].clone());
            if at_head != Some(json!(h.hash)) {
                return Err(LedgerError::Bundle(format!(
                    "the signed head of entry {} does not match the chain's entry {}; not exporting",
                    h.n, h.n
                )));
            }
            Some(h)
        }
        None => None,
    };
    let links = links_to(links, head.as_ref().map_or(last_n(&ours), |h| h.n));
    let accepted = js.get_stream(xj_bus::subjects::STREAM_ACCEPTED).await.map_err(LedgerError::bus)?;
    let submissions = js.get_object_store(xj_bus::subjects::BUCKET_SUBMISSIONS).await.ok();
    let mut messages = Vec::new();
    for r in message_refs(&ours, scope) {
        let body = accepted.get_raw_message(r.seq).await.ok().map(|m| m.payload);
        let mut m = message(r.n, r.index, r.seq, r.sha256, body.as_deref());
        if let Some(sha) = &r.submitted {
            match submitted_bytes(submissions.as_ref(), sha).await {
                Some(raw) => m["submitted_b64"] = json!(B64.encode(raw)),
                None => m["submitted_missing"] = json!("not in the object store xj_submissions"),
            }
        }
        messages.push(m);
    }
    let party_keys = receipt_keys(&ours, keys);
    Ok(assemble(scope, ours, links, messages, chain, party_keys, head, key))
}

/// The bytes a sender signed, from the object store, when they are there
/// whole.
async fn submitted_bytes(
    store: Option<&async_nats::jetstream::object_store::ObjectStore>,
    sha: &str,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut obj = store?.get(sha).await.ok()?;
    let mut raw = Vec::new();
    obj.read_to_end(&mut raw).await.ok()?;
    (hex::encode(Sha256::digest(&raw)) == sha).then_some(raw)
}

/// Builds the bundle of `case` from a ledger dump (JSON lines) and the
/// accepted messages by their sequence: the same bundle, offline.
pub fn export_from_dump(
    dump: &str,
    case: &str,
    accepted: &dyn Fn(u64) -> Option<Vec<u8>>,
    key: &HubKey,
) -> Result<Value, LedgerError> {
    let scope = Scope::Case(case.into());
    let mut c = Collect::new(&scope);
    for (i, line) in dump.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        c.step(i as u64 + 1, line.as_bytes());
    }
    let (ours, links, chain) = c.finish()?;
    let links = links_to(links, last_n(&ours));
    let messages = message_refs(&ours, &scope)
        .into_iter()
        .map(|r| message(r.n, r.index, r.seq, r.sha256, accepted(r.seq).as_deref()))
        .collect();
    Ok(assemble(&scope, ours, links, messages, chain, PartyKeys::new(), None, key))
}

/// What an offline check of a bundle found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle: {0}")]
    Bundle(String),
    #[error("{0}")]
    Entry(Break),
}

/// A verified bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    pub case: String,
    pub entries: usize,
    /// The case's records.
    pub records: usize,
    /// Other cases' records, shown only by their leaf hashes.
    pub others: usize,
    pub messages: usize,
    /// Recipients' signed receipts checked against their keys.
    pub receipts: usize,
    /// Senders' signatures over what they submitted, checked against
    /// their keys.
    pub submissions: usize,
    pub kid: String,
    /// The signed head the links lead to, when the package has one.
    pub head: Option<HeadChecked>,
}

/// Checks a bundle offline: the hub's signature, each record against its
/// leaf hash, each entry's hash, the chain links between them, that every
/// record shown is the case's, and each message against its digest.
pub fn verify_bundle(b: &Value) -> Result<Verified, BundleError> {
    let bad = |s: String| BundleError::Bundle(s);
    if b["format"] != FORMAT && b["format"] != FORMAT_V2 && b["format"] != FORMAT_V1 {
        return Err(bad(format!("not a {FORMAT} document")));
    }
    let sig = b["signature"].as_str().ok_or_else(|| bad("no signature".into()))?;
    let kid = xj_bus::signing::header_kid(sig).unwrap_or_default().to_string();
    let case = b["case"].as_str().ok_or_else(|| bad("no case".into()))?;
    let scope = Scope::of_bundle(b).ok_or_else(|| bad("no case or message it shows".into()))?;
    let links = b["links"].as_array().ok_or_else(|| bad("no links".into()))?;
    let mut prev: Option<(u64, String)> = None;
    for l in links {
        let n = l["n"].as_u64().ok_or_else(|| bad("a link without n".into()))?;
        let (lp, lh) = (l["prev"].as_str().unwrap_or_default(), l["hash"].as_str().unwrap_or_default());
        if let Some((pn, ph)) = &prev {
            if n != pn + 1 {
                return Err(BundleError::Entry(Break::entry(pn + 1, "is missing from the links")));
            }
            if lp != ph {
                return Err(BundleError::Entry(Break::entry(n, format!("does not follow entry {pn}"))));
            }
        }
        prev = Some((n, lh.to_string()));
    }
    let entries = b["entries"].as_array().ok_or_else(|| bad("no entries".into()))?;
    let (mut records, mut others, mut receipts, mut submissions) = (0, 0, 0, 0);
    for e in entries {
        let n = e["n"].as_u64().ok_or_else(|| bad("an entry without n".into()))?;
        let entry_err = |reason: &str| BundleError::Entry(Break::entry(n, reason));
        let checked = check_entry(e, n, true).map_err(BundleError::Entry)?;
        for (index, r) in placed_records(e).into_iter().filter(|(_, r)| is_whole(r)) {
            let at = || RecordAt {
                index,
                stream: r["source"]["stream"].as_str().map(str::to_owned),
                seq: r["source"]["seq"].as_u64(),
            };
            if !scope.shows(r) {
                let reason = match scope {
                    Scope::Case(_) => "belongs to another case, whose records a bundle does not show",
                    Scope::Message { .. } => "belongs to another message, whose records a bundle does not show",
                };
                return Err(BundleError::Entry(Break { n, record: Some(at()), reason: reason.into() }));
            }
            if check_receipt(b, r).map_err(|reason| BundleError::Entry(Break { n, record: Some(at()), reason }))? {
                receipts += 1;
            }
        }
        if checked.records == 0 {
            return Err(entry_err("holds no record of the case"));
        }
        records += checked.records;
        others += checked.leaves_only;
        let link = links.iter().find(|l| l["n"] == n).ok_or_else(|| entry_err("has no chain link"))?;
        if link["hash"] != e["hash"] || link["prev"] != e["prev"] {
            return Err(entry_err("does not match its chain link"));
        }
    }
    let messages = b["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    for m in messages {
        let n = m["n"].as_u64().unwrap_or_default();
        let entry_err = |reason: &str| BundleError::Entry(Break::entry(n, reason));
        let entry = entries.iter().find(|e| e["n"] == n).ok_or_else(|| entry_err("message without entry"))?;
        let held = placed_records(entry);
        // Formats 2 and 3 name the record; format 1 had one record per entry.
        let index = m["record"].as_u64().map_or(1, |i| usize::try_from(i).unwrap_or(0));
        let record = held.iter().find(|(at, _)| *at == index).map(|(_, r)| *r);
        let at = RecordAt { index, stream: Some(xj_bus::subjects::STREAM_ACCEPTED.into()), seq: m["seq"].as_u64() };
        let record_err =
            |reason: &str| BundleError::Entry(Break { n, record: Some(at.clone()), reason: reason.into() });
        let record = record.filter(|r| r["kind"] == "message" && r["source"]["seq"] == m["seq"]);
        let Some(record) = record else { return Err(record_err("is not the message's record")) };
        if record["record"]["sha256"] != m["sha256"] {
            return Err(record_err("the message's digest is not the one the ledger recorded"));
        }
        let accepted_body = match m["body_b64"].as_str() {
            Some(body) => {
                let raw = B64.decode(body).map_err(|_| record_err("the message is not base64"))?;
                if hex::encode(Sha256::digest(&raw)) != m["sha256"].as_str().unwrap_or_default() {
                    return Err(record_err("the message does not match the digest the ledger recorded"));
                }
                Some(raw)
            }
            None => None,
        };
        if record["record"].get("submitted").is_some() {
            check_submission(b, record, m, accepted_body.as_deref()).map_err(|e| record_err(&e))?;
            submissions += 1;
        }
    }
    let head = match b.get("signed_head").filter(|h| !h.is_null()) {
        None => None,
        Some(h) => {
            let n = h["n"].as_u64().unwrap_or_default();
            let checked =
                crate::heads::verify(h, &b["keys"]).map_err(|e| bad(format!("the signed head of entry {n}: {e}")))?;
            let last = links.last().filter(|l| l["n"] == checked.n && l["hash"] == h["hash"]);
            if last.is_none() {
                return Err(bad(format!("the links do not lead to the signed head of entry {n}")));
            }
            Some(checked)
        }
    };
    // The hub's signature last: a change to any part above is named by
    // that part's own check, not only as a broken signature.
    let mut unsigned = b.clone();
    if let Value::Object(m) = &mut unsigned {
        m.remove("signature");
    }
    xj_bus::signing::verify_with_keys(&b["keys"], sig, canonical(&unsigned).as_bytes())
        .map_err(|e| bad(format!("the hub's signature over the package does not verify: {e}")))?;
    Ok(Verified {
        case: case.to_string(),
        entries: entries.len(),
        records,
        others,
        messages: messages.len(),
        receipts,
        submissions,
        kid,
        head,
    })
}

/// Checks a package file as the hub wrote it (`xj audit export`): its
/// content as [`verify_bundle`] does, then its bytes, which must be exactly
/// the hub's layout of that content — so a changed byte anywhere, even in
/// white space, is a failure that says where.
pub fn verify_package(bytes: &[u8]) -> Result<Verified, BundleError> {
    let bad = |s: String| BundleError::Bundle(s);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&c| c == b'\n').count() + 1;
        bad(format!("line {line}: the package is not UTF-8 text"))
    })?;
    let b: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("line {}, column {}: the package is not JSON: {e}", e.line(), e.column())))?;
    let v = verify_bundle(&b)?;
    let laid_out = layout(&b);
    if text != laid_out {
        let line = text
            .lines()
            .zip(laid_out.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| text.lines().count().min(laid_out.lines().count()) + 1, |i| i + 1);
        return Err(bad(format!("line {line}: the package's bytes are not as the hub wrote them")));
    }
    Ok(v)
}

/// The bytes `xj audit export` writes a package as.
pub fn layout(b: &Value) -> String {
    let mut text = serde_json::to_string_pretty(b).unwrap_or_default();
    text.push('\n');
    text
}

/// Checks a signed submission: the bytes the sender signed are in the
/// package and match the digest the ledger recorded, the sender's signature
/// over them verifies with its key in `party_keys`, and the message the hub
/// accepted is that submission with (only) the case the hub gave it.
fn check_submission(b: &Value, record: &Value, m: &Value, accepted: Option<&[u8]>) -> Result<(), String> {
    let s = &record["record"]["submitted"];
    let sender = record["sender"].as_str().unwrap_or_default();
    let Some(b64) = m["submitted_b64"].as_str() else {
        return Err(format!("the bytes {sender} signed are not in the package"));
    };
    let raw = B64.decode(b64).map_err(|_| "the submission is not base64".to_string())?;
    if hex::encode(Sha256::digest(&raw)) != s["sha256"].as_str().unwrap_or_default() {
        return Err(format!("the submission does not match the digest of what {sender} signed"));
    }
    let key = &b["party_keys"][sender];
    let alg = match key["alg"].as_str() {
        Some("sm2") => xj_bus::signing::Alg::Sm2,
        Some("ed25519") => xj_bus::signing::Alg::Ed25519,
        _ => return Err(format!("holds a submission signed by {sender}, whose key the package does not give")),
    };
    let alg_part = if s["alg"] == "sm2" { "alg=sm2," } else { "" };
    let header = format!(
        "{alg_part}keyid={},sig={}",
        s["keyid"].as_str().unwrap_or_default(),
        s["sig"].as_str().unwrap_or_default()
    );
    xj_bus::signing::verify_header_as(alg, key["public_key"].as_str().unwrap_or_default(), &header, &raw)
        .map_err(|e| format!("{sender}'s signature over its submission does not verify: {e}"))?;
    if let Some(accepted) = accepted {
        let mut sent: Value = serde_json::from_slice(&raw)
            .map_err(|_| format!("what {sender} signed is not JSON (a native document)"))?;
        let mut got: Value =
            serde_json::from_slice(accepted).map_err(|_| "the accepted message is not JSON".to_string())?;
        // A message that named no case was given one by the hub.
        if sent.get("case").is_none_or(Value::is_null) {
            for v in [&mut sent, &mut got] {
                if let Some(o) = v.as_object_mut() {
                    o.remove("case");
                }
            }
        }
        if let Some(at) = first_difference(&sent, &got, String::new()) {
            return Err(format!(
                "the accepted message is not what {sender} signed with the case the hub gave it (at {at:?})"
            ));
        }
    }
    Ok(())
}

/// The JSON pointer of the first place `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, format!("{at}/{k}")),
                _ => Some(format!("{at}/{k}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, format!("{at}/{i}")))
        }
        _ => (a != b).then_some(at),
    }
}

/// Checks the signed receipt a delivery record holds, if any, against the
/// recipient's key in the bundle's `party_keys`: whether there was one.
fn check_receipt(b: &Value, record: &Value) -> Result<bool, String> {
    let d = &record["record"]["detail"];
    let Some(receipt) = d.get("receipt") else { return Ok(false) };
    let receipt: xj_bus::signing::SignedReceipt =
        serde_json::from_value(receipt.clone()).map_err(|e| format!("its receipt cannot be read: {e}"))?;
    let recipient = d["recipient"].as_str().unwrap_or_default();
    let key = &b["party_keys"][recipient];
    let alg = match key["alg"].as_str() {
        Some("sm2") => xj_bus::signing::Alg::Sm2,
        Some("ed25519") => xj_bus::signing::Alg::Ed25519,
        _ => return Err(format!("holds a receipt of {recipient}, whose key the bundle does not give")),
    };
    let (sender, id) = (record["sender"].as_str().unwrap_or_default(), record["msg_id"].as_str().unwrap_or_default());
    let text = xj_bus::signing::receipt_text(sender, id, recipient, &receipt.sha256, &receipt.at);
    xj_bus::signing::verify_header_as(
        alg,
        key["public_key"].as_str().unwrap_or_default(),
        &receipt.header(),
        text.as_bytes(),
    )
    .map_err(|e| format!("{recipient}'s signed receipt does not verify: {e}"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Entry, GENESIS, HashAlg, Leaf, Record, SourceRef};

    /// A message accepted in `XJ_ACCEPTED` at `seq`, of `case`.
    fn accepted(seq: u64, case: &str) -> (Vec<u8>, Record) {
        let body = format!(r#"{{"id":"M{seq}","case":"{case}","body":{{"secret":"content of M{seq}"}}}}"#).into_bytes();
        let record = Record {
            kind: "message".into(),
            source: SourceRef { stream: "XJ_ACCEPTED".into(), seq, subject: "xj.accepted.qh-market".into() },
            case: Some(case.into()),
            msg_id: Some(format!("M{seq}")),
            sender: Some("qh-market".into()),
            record: json!({ "sha256": hex::encode(Sha256::digest(&body)), "size": body.len() }),
        };
        (body, record)
    }

    fn event(seq: u64, case: &str) -> Record {
        Record {
            kind: "event:routed".into(),
            source: SourceRef { stream: "XJ_EVENTS".into(), seq, subject: format!("xj.evt.qh-market.E{seq}.routed") },
            case: Some(case.into()),
            msg_id: Some(format!("E{seq}")),
            sender: Some("qh-market".into()),
            record: json!({ "step": "routed", "detail": { "party": format!("party of E{seq}") } }),
        }
    }

    /// Four entries; cases A and B share entries 2 and 3, entry 4 is B's alone.
    fn ledger() -> (String, std::collections::HashMap<u64, Vec<u8>>) {
        ledger_listed_to(0)
    }

    /// The same, entries up to `listed` written as before the Merkle root.
    fn ledger_listed_to(listed: u64) -> (String, std::collections::HashMap<u64, Vec<u8>>) {
        let mut bodies = std::collections::HashMap::new();
        let mut msg = |seq, case| {
            let (body, r) = accepted(seq, case);
            bodies.insert(seq, body);
            r
        };
        let batches = vec![
            vec![msg(1, "A"), event(1, "A")],
            vec![msg(2, "B"), event(2, "A"), event(3, "B"), msg(3, "A")],
            vec![event(4, "B"), event(5, "A")],
            vec![event(6, "B")],
        ];
        let mut prev = GENESIS.to_string();
        let mut lines = Vec::new();
        for (i, records) in batches.into_iter().enumerate() {
            let (n, at, leaves) =
                (i as u64 + 1, "2026-11-21T01:00:00.000Z".to_string(), records.into_iter().map(Leaf::of));
            let e = if n <= listed {
                Entry::listed(n, at, prev, leaves.collect())
            } else {
                Entry::new(n, at, prev, leaves.collect())
            };
            prev = e.hash.clone();
            lines.push(serde_json::to_string(&e).unwrap());
        }
        (lines.join("\n"), bodies)
    }

    fn key() -> (tempfile::TempDir, HubKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = HubKey::load_or_create(&dir.path().join("hub.key")).unwrap();
        (dir, key)
    }

    #[test]
    fn a_bundle_verifies_offline_and_shows_no_other_case() {
        let (dump, bodies) = ledger();
        let (_dir, key) = key();
        let b = export_from_dump(&dump, "A", &|seq| bodies.get(&seq).cloned(), &key).unwrap();
        let v = verify_bundle(&b).unwrap();
        assert_eq!((v.entries, v.records, v.others, v.messages), (3, 5, 3, 2), "{v:?}");
        assert_eq!(b["links"].as_array().unwrap().len(), 3, "entries 1 to 3");
        // The signature and the hub's public key are random base64: they may
        // spell "E4" by chance, so only the bundle's content is searched.
        let mut content = b.clone();
        if let Value::Object(m) = &mut content {
            m.remove("signature");
            m.remove("keys");
        }
        let text = content.to_string();
        for other in ["M2", "E3", "E4", "E6", "party of E3", "content of M2", "\"B\""] {
            assert!(!text.contains(other), "case B's {other} shows in A's bundle");
        }
        // Its messages are the exact bytes, and only A's.
        assert!(text.contains(&B64.encode(&bodies[&3])) && !text.contains(&B64.encode(&bodies[&2])));
    }

    /// Re-signs a changed bundle, as someone holding the hub's key could:
    /// what is left to catch the change is the chain.
    fn resign(mut b: Value, key: &HubKey) -> Value {
        if let Value::Object(m) = &mut b {
            m.remove("signature");
        }
        let sig = key.sign_header(canonical(&b).as_bytes());
        b["signature"] = json!(sig);
        b
    }

    #[test]
    fn entries_written_before_the_merkle_root_show_other_cases_by_their_leaves() {
        let (dump, bodies) = ledger_listed_to(2);
        let (_dir, key) = key();
        let b = export_from_dump(&dump, "A", &|seq| bodies.get(&seq).cloned(), &key).unwrap();
        let v = verify_bundle(&b).unwrap();
        assert_eq!((v.entries, v.records, v.others, v.messages), (3, 5, 3, 2), "{v:?}");
        // Entry 2 is listed: four records, two of them leaves; entry 3 has
        // a root: A's one record and its proof.
        assert_eq!(b["entries"][1]["records"].as_array().unwrap().len(), 4);
        assert!(b["entries"][1].get("proofs").is_none() && b["entries"][1].get("root").is_none());
        assert_eq!(b["entries"][2]["records"].as_array().unwrap().len(), 1);
        assert_eq!(b["entries"][2]["proofs"][0]["index"], 1);
        let mut leaf = b.clone();
        leaf["entries"][1]["records"][0]["leaf"] = json!(GENESIS);
        let err = verify_bundle(&resign(leaf, &key)).unwrap_err();
        assert!(err.to_string().starts_with("entry 2: its content does not match its hash"), "{err}");
    }

    #[test]
    fn a_changed_bundle_is_refused_and_the_record_named() {
        let (dump, bodies) = ledger();
        let (_dir, key) = key();
        let b = export_from_dump(&dump, "A", &|seq| bodies.get(&seq).cloned(), &key).unwrap();

        let mut forged = b.clone();
        forged["entries"][1]["records"][0]["record"]["step"] = json!("forged");
        // Named by the part that broke, signed again or not.
        for forged in [forged.clone(), resign(forged, &key)] {
            let err = verify_bundle(&forged).unwrap_err();
            assert_eq!(err.to_string(), "entry 2, record 2 (XJ_EVENTS seq 2): leaf hash does not match the record");
        }
        // What only the hub's signature covers.
        let mut when = b.clone();
        when["exported_at"] = json!("2020-01-01T00:00:00Z");
        let err = verify_bundle(&when).unwrap_err().to_string();
        assert!(err.starts_with("bundle: the hub's signature over the package does not verify"), "{err}");

        // Another case's record shown whole, with its true proof: the
        // entry checks, the scope does not.
        let mut shown = b.clone();
        let whole: Value = serde_json::from_str(dump.lines().nth(1).unwrap()).unwrap();
        let leaves: Vec<&str> =
            whole["records"].as_array().unwrap().iter().map(|r| r["leaf"].as_str().unwrap()).collect();
        let proof = json!({ "index": 0, "path": crate::merkle::path(HashAlg::Sha256, &leaves, 0) });
        shown["entries"][1]["records"].as_array_mut().unwrap().insert(0, whole["records"][0].clone());
        shown["entries"][1]["proofs"].as_array_mut().unwrap().insert(0, proof);
        let err = verify_bundle(&resign(shown, &key)).unwrap_err();
        assert!(err.to_string().starts_with("entry 2, record 1 (XJ_ACCEPTED seq 2): belongs to another case"), "{err}");
        // A leaf, a hash of a proof, its index, the root or the count changed.
        let cases: [(&str, Value, &str); 5] = [
            (
                "/entries/1/records/0/leaf",
                json!(GENESIS),
                "entry 2, record 2 (XJ_EVENTS seq 2): leaf hash does not match",
            ),
            (
                "/entries/1/proofs/0/path/0",
                json!(GENESIS),
                "entry 2, record 2 (XJ_EVENTS seq 2): its inclusion proof does not lead",
            ),
            (
                "/entries/1/proofs/0/index",
                json!(0),
                "entry 2, record 1 (XJ_EVENTS seq 2): its inclusion proof does not lead",
            ),
            (
                "/entries/1/root",
                json!(GENESIS),
                "entry 2, record 2 (XJ_EVENTS seq 2): its inclusion proof does not lead",
            ),
            ("/entries/1/count", json!(5), "entry 2, record 2 (XJ_EVENTS seq 2): its inclusion proof does not lead"),
        ];
        // An index no entry could have is refused, not a panic.
        let mut huge = b.clone();
        huge["entries"][1]["proofs"][0]["index"] = json!(u64::MAX);
        let err = verify_bundle(&resign(huge, &key)).unwrap_err().to_string();
        assert!(err.contains("its inclusion proof does not lead"), "{err}");
        for (at, value, expected) in cases {
            let mut changed = b.clone();
            *changed.pointer_mut(at).unwrap() = value;
            let err = verify_bundle(&resign(changed, &key)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{at}: {err}");
        }

        // A message that is not the one recorded.
        let mut body = b.clone();
        body["messages"][1]["body_b64"] = json!(B64.encode(b"{}"));
        let err = verify_bundle(&resign(body, &key)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 2, record 4 (XJ_ACCEPTED seq 3): the message does not match the digest the ledger recorded"
        );
    }

    #[test]
    fn a_package_file_fails_at_any_changed_byte() {
        let (dump, bodies) = ledger();
        let (_dir, key) = key();
        let b = export_from_dump(&dump, "A", &|seq| bodies.get(&seq).cloned(), &key).unwrap();
        let file = layout(&b).into_bytes();
        assert!(verify_package(&file).is_ok());
        for i in 0..file.len() {
            let mut changed = file.clone();
            // A byte that stays ASCII keeps the text UTF-8 where it can.
            changed[i] = if file[i] == b' ' {
                b'\t'
            } else if file[i].is_ascii_alphanumeric() {
                file[i] ^ 0x01
            } else {
                b' '
            };
            if changed[i] == file[i] {
                changed[i] = b'x';
            }
            assert!(verify_package(&changed).is_err(), "byte {i} ({:?}) changed and still verified", file[i] as char);
        }
        let mut spaced = file.clone();
        spaced.insert(2, b' ');
        let err = verify_package(&spaced).unwrap_err().to_string();
        assert_eq!(err, "bundle: line 2: the package's bytes are not as the hub wrote them");
        let err = verify_package(b"{\n  \"format\": ").unwrap_err().to_string();
        assert!(err.starts_with("bundle: line 2, column"), "{err}");
    }

    #[test]
    fn no_bundle_for_an_unknown_case_or_from_a_broken_chain() {
        let (dump, _) = ledger();
        let (_dir, key) = key();
        assert!(export_from_dump(&dump, "C", &|_| None, &key).is_err());
        let broken = dump.replacen("party of E6", "party of E9", 1);
        let err = export_from_dump(&broken, "B", &|_| None, &key).unwrap_err();
        assert!(err.to_string().contains("entry 4, record 1 (XJ_EVENTS seq 6)"), "{err}");
        // A's last entry is before the break: still exported.
        assert!(export_from_dump(&broken, "A", &|_| None, &key).is_ok());
    }
}
