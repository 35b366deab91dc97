//! The chain itself, pure: what an entry is, its hash, and the walk that
//! finds the first entry (and record) that does not match. Used on the live
//! stream, on a JSON-lines dump and inside evidence bundles alike.
//!
//! An entry records many source messages. Each record carries its leaf hash
//! (over the record's canonical JSON); the entry holds the Merkle root over
//! the leaf hashes and their `count` (`crate::merkle`), and its hash covers
//! those, not the records. So a record can be left out of a copy and the
//! entry still verifies: an evidence bundle shows one case's records whole,
//! each with its inclusion proof (`proofs`: its index and the hashes on its
//! way to the root), and nothing of the other cases sharing the entry but
//! their number.
//!
//! Entries written before the Merkle root ("listed") hash the list of leaf
//! hashes itself (`leaves`); a bundle shows their other records as
//! `{"leaf": …}`.
//!
//! Entries written before batching ("legacy": one source each, the hash over
//! every other field) stay in the chain for ever, so the walk reads both.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use xj_config::LedgerHash as HashAlg;

/// The digest of `bytes` in hex, by `alg`.
pub fn digest_hex(alg: HashAlg, bytes: &[u8]) -> String {
    match alg {
        HashAlg::Sha256 => hex::encode(Sha256::digest(bytes)),
        HashAlg::Sm3 => hex::encode(sm3::Sm3::digest(bytes)),
    }
}

/// The `alg` an entry says it was hashed with (absent: SHA-256, which every
/// entry written before the choice existed uses).
pub fn alg_of(entry: &Value) -> Result<HashAlg, String> {
    match entry.get("alg") {
        None => Ok(HashAlg::Sha256),
        Some(Value::String(a)) if a == "sha256" => Ok(HashAlg::Sha256),
        Some(Value::String(a)) if a == "sm3" => Ok(HashAlg::Sm3),
        Some(other) => Err(format!("says it is hashed with {other}, which is neither sha256 nor sm3")),
    }
}

/// The `alg` field an entry of `alg` carries: none for SHA-256, so the
/// chain written before the choice reads the same.
pub fn alg_field(alg: HashAlg) -> Option<&'static str> {
    match alg {
        HashAlg::Sha256 => None,
        HashAlg::Sm3 => Some("sm3"),
    }
}

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// `XJ_EVENTS` (a step a service took) or `XJ_ACCEPTED` (an accepted message).
    pub stream: String,
    pub seq: u64,
    pub subject: String,
}

/// What the ledger records about one source message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `message` (an accepted message: its digest and envelope) or
    /// `event:<step>` (accepted, routed, unplaced, attempt, delivered, dead,
    /// replayed, clock and alert steps…).
    pub kind: String,
    pub source: SourceRef,
    pub case: Option<String>,
    pub msg_id: Option<String>,
    pub sender: Option<String>,
    /// The event as published, or the accepted message's digest and
    /// envelope fields (never its body); resident ID numbers masked.
    pub record: Value,
}

impl Record {
    /// The record's canonical JSON, which its leaf hash is computed over.
    /// Written field by field rather than through a `Value` copy of the
    /// record (the ledger does this for every source message); equal to
    /// `canonical(&to_value(record))`, which the tests check.
    pub fn canonical(&self) -> String {
        let mut out = Vec::with_capacity(512);
        let field = |out: &mut Vec<u8>, first: bool, name: &str| {
            out.extend_from_slice(if first { b"{\"" } else { b",\"" });
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        field(&mut out, true, "case");
        let _ = serde_json::to_writer(&mut out, &self.case);
        field(&mut out, false, "kind");
        let _ = serde_json::to_writer(&mut out, &self.kind);
        field(&mut out, false, "msg_id");
        let _ = serde_json::to_writer(&mut out, &self.msg_id);
        field(&mut out, false, "record");
        write_canonical(&self.record, &mut out);
        field(&mut out, false, "sender");
        let _ = serde_json::to_writer(&mut out, &self.sender);
        field(&mut out, false, "source");
        field(&mut out, true, "seq");
        let _ = serde_json::to_writer(&mut out, &self.source.seq);
        field(&mut out, false, "stream");
        let _ = serde_json::to_writer(&mut out, &self.source.stream);
        field(&mut out, false, "subject");
        let _ = serde_json::to_writer(&mut out, &self.source.subject);
        out.extend_from_slice(b"}}");
        String::from_utf8(out).unwrap_or_default()
    }

    /// SHA-256 (hex) over the record's canonical JSON.
    pub fn leaf(&self) -> String {
        self.leaf_with(HashAlg::Sha256)
    }

    /// The leaf hash by `alg`.
    pub fn leaf_with(&self, alg: HashAlg) -> String {
        digest_hex(alg, self.canonical().as_bytes())
    }
}

/// A record as an entry holds it: its leaf hash, and the record itself —
/// absent only in an evidence bundle, for another case's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    pub leaf: String,
    #[serde(flatten)]
    pub record: Option<Record>,
}

impl Leaf {
    pub fn of(record: Record) -> Self {
        Self::of_with(record, HashAlg::Sha256)
    }

    pub fn of_with(record: Record, alg: HashAlg) -> Self {
        Self { leaf: record.leaf_with(alg), record: Some(record) }
    }
}

/// One entry of the ledger. `hash` is SHA-256 (hex) over the canonical JSON
/// of `n`, `at`, `prev`, `count` and `root` (the Merkle root over the
/// records' leaf hashes), so each entry seals its records and, through
/// `prev`, all before it. A listed entry (no `root`) hashes the list of
/// leaf hashes (as `leaves`) instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1; equal to its sequence in `XJ_LEDGER`.
    pub n: u64,
    /// When it was appended (RFC 3339, UTC).
    pub at: String,
    /// The hash of entry `n - 1` ([`GENESIS`] for the first), by whatever
    /// algorithm that entry used.
    pub prev: String,
    /// `sm3` for an entry hashed with SM3 (it and its leaves); absent for
    /// SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// How many records, and the Merkle root over their leaf hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    pub records: Vec<Leaf>,
    pub hash: String,
}

impl Entry {
    /// A sealed SHA-256 entry holding `records`, in order.
    pub fn new(n: u64, at: String, prev: String, records: Vec<Leaf>) -> Self {
        Self::new_with(HashAlg::Sha256, n, at, prev, records)
    }

    /// A sealed entry hashed by `alg` (its records' leaves must be too).
    pub fn new_with(alg: HashAlg, n: u64, at: String, prev: String, records: Vec<Leaf>) -> Self {
        let root = Some(String::new());
        Self { n, at, prev, alg: alg_field(alg).map(str::to_owned), count: None, root, records, hash: String::new() }
            .seal()
    }

    /// A sealed entry as written before the Merkle root: its hash over the
    /// list of leaf hashes.
    pub fn listed(n: u64, at: String, prev: String, records: Vec<Leaf>) -> Self {
        Self { n, at, prev, alg: None, count: None, root: None, records, hash: String::new() }.seal()
    }

    /// Computes and sets the hash (and, for a Merkle entry, count and root).
    pub fn seal(mut self) -> Self {
        let alg = if self.alg.as_deref() == Some("sm3") { HashAlg::Sm3 } else { HashAlg::Sha256 };
        let leaves: Vec<&str> = self.records.iter().map(|l| l.leaf.as_str()).collect();
        self.hash = if self.root.is_some() {
            let root = crate::merkle::root(alg, &leaves);
            let hash = entry_hash_root(alg, self.n, &self.at, &self.prev, leaves.len() as u64, &root);
            self.count = Some(leaves.len() as u64);
            self.root = Some(root);
            hash
        } else {
            entry_hash_with(alg, self.n, &self.at, &self.prev, leaves.into_iter())
        };
        self
    }
}

/// The hash of a Merkle entry by `alg`: over `n`, `at`, `prev`, `count`,
/// `root` and, for SM3, `"alg": "sm3"`.
pub fn entry_hash_root(alg: HashAlg, n: u64, at: &str, prev: &str, count: u64, root: &str) -> String {
    let mut head = serde_json::json!({ "n": n, "at": at, "prev": prev, "count": count, "root": root });
    if let Some(a) = alg_field(alg) {
        head["alg"] = a.into();
    }
    digest_hex(alg, canonical(&head).as_bytes())
}

/// The SHA-256 hash of listed entry `n` written `at` after `prev` and
/// holding records with these leaf hashes, in order.
pub fn entry_hash<'a>(n: u64, at: &str, prev: &str, leaves: impl Iterator<Item = &'a str>) -> String {
    entry_hash_with(HashAlg::Sha256, n, at, prev, leaves)
}

/// The hash of a listed entry by `alg`: over `n`, `at`, `prev`, the leaves and,
/// for SM3, `"alg": "sm3"` — so the algorithm cannot be changed without
/// breaking the entry.
pub fn entry_hash_with<'a>(
    alg: HashAlg,
    n: u64,
    at: &str,
    prev: &str,
    leaves: impl Iterator<Item = &'a str>,
) -> String {
    let leaves: Vec<Value> = leaves.map(|l| Value::String(l.to_string())).collect();
    let mut head = serde_json::json!({ "n": n, "at": at, "prev": prev, "leaves": leaves });
    if let Some(a) = alg_field(alg) {
        head["alg"] = a.into();
    }
    digest_hex(alg, canonical(&head).as_bytes())
}

/// JSON with object keys sorted at every level and no whitespace: the bytes
/// leaf and entry hashes are computed over.
pub fn canonical(v: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(v, &mut out);
    // Only JSON text was written, and serde_json writes valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Strings and numbers are written as serde_json writes them
                // (the bytes every hash so far was computed over).
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// The SHA-256 leaf hash of a record given as JSON: over everything but
/// `leaf`.
pub fn leaf_of(record: &Value) -> String {
    leaf_of_with(HashAlg::Sha256, record)
}

/// The leaf hash by `alg` (its entry's).
pub fn leaf_of_with(alg: HashAlg, record: &Value) -> String {
    match record {
        Value::Object(m) if m.contains_key("leaf") => {
            let mut m = m.clone();
            m.remove("leaf");
            digest_hex(alg, canonical(&Value::Object(m)).as_bytes())
        }
        other => digest_hex(alg, canonical(other).as_bytes()),
    }
}

/// The hash of an entry given as JSON. For a Merkle entry (with `root`):
/// over every field but `hash`, `records` and `proofs`. For a listed entry:
/// over every field but `hash` with `records` replaced by the list of their
/// stored leaf hashes (`leaves`). For a legacy entry: over every field but
/// `hash`.
pub fn hash_of(entry: &Value) -> String {
    // An algorithm the hub does not know hashes as SHA-256: the check
    // names it first anyway.
    let alg = alg_of(entry).unwrap_or_default();
    let Value::Object(m) = entry else { return digest_hex(alg, canonical(entry).as_bytes()) };
    if m.contains_key("root") {
        let head: Map<String, Value> = m
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "hash" | "records" | "proofs"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return digest_hex(alg, canonical(&Value::Object(head)).as_bytes());
    }
    let mut head: Map<String, Value> =
        m.iter().filter(|(k, _)| *k != "hash" && *k != "records").map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(records) = m.get("records") {
        let leaves = match records {
            Value::Array(a) => a.iter().map(|r| r.get("leaf").cloned().unwrap_or(Value::Null)).collect(),
            _ => Vec::new(),
        };
        head.insert("leaves".into(), Value::Array(leaves));
    }
    digest_hex(alg, canonical(&Value::Object(head)).as_bytes())
}

/// The records of an entry given as JSON, whole or reduced to their leaf:
/// a batched entry's `records`, or a legacy entry itself.
pub fn records_of(entry: &Value) -> Vec<&Value> {
    match entry.get("records") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => Vec::new(),
        None => vec![entry],
    }
}

/// Whether an entry given as JSON is a batched one (not legacy).
pub fn is_batched(entry: &Value) -> bool {
    entry.get("records").is_some()
}

/// The records an entry given as JSON shows, each with its place in the
/// entry (from 1): in a bundle's Merkle entry the place its proof names,
/// elsewhere its position in `records`.
pub fn placed_records(entry: &Value) -> Vec<(usize, &Value)> {
    let records = records_of(entry);
    match entry.get("proofs").and_then(Value::as_array) {
        Some(proofs) => records
            .into_iter()
            .zip(proofs)
            .map(|(r, p)| {
                (p["index"].as_u64().map_or(0, |i| usize::try_from(i).unwrap_or(usize::MAX).saturating_add(1)), r)
            })
            .collect(),
        None => records.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect(),
    }
}

/// The record of a [`Break`]: its position in the entry (from 1) and the
/// source it says it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAt {
    pub index: usize,
    pub stream: Option<String>,
    pub seq: Option<u64>,
}

impl std::fmt::Display for RecordAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.index)?;
        match (&self.stream, self.seq) {
            (Some(s), Some(q)) => write!(f, " ({s} seq {q})"),
            _ => Ok(()),
        }
    }
}

/// The first entry that does not match, which record in it if one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Break {
    pub n: u64,
    pub record: Option<RecordAt>,
    pub reason: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.record {
            Some(r) => write!(f, "entry {}, {r}: {}", self.n, self.reason),
            None => write!(f, "entry {}: {}", self.n, self.reason),
        }
    }
}

impl Break {
    pub fn entry(n: u64, reason: impl Into<String>) -> Self {
        Self { n, record: None, reason: reason.into() }
    }
}

/// What a checked entry says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub n: u64,
    pub prev: String,
    pub hash: String,
    /// Records held whole.
    pub records: usize,
    /// Records reduced to their leaf hash (only in an evidence bundle).
    pub leaves_only: usize,
}

/// Checks one entry on its own, as stored at position `at_n`: every whole
/// record against its leaf hash, then the entry against its hash. Records
/// reduced to their leaf hash are accepted only when `leaves_only_ok`
/// (evidence bundles; the ledger itself keeps every record whole).
pub fn check_entry(v: &Value, at_n: u64, leaves_only_ok: bool) -> Result<Checked, Break> {
    let brk = |reason: String| Break::entry(at_n, reason);
    let Value::Object(m) = v else { return Err(brk("is not a JSON object".into())) };
    let alg = alg_of(v).map_err(brk)?;
    let (mut whole, mut leaves_only) = (0, 0);
    if let Some(records) = m.get("records") {
        if m.contains_key("leaves") {
            return Err(brk("has a field `leaves`, which its hash would not cover".into()));
        }
        let Value::Array(records) = records else { return Err(brk("its records are not a list".into())) };
        if records.is_empty() {
            return Err(brk("records nothing".into()));
        }
        let merkle = match (m.get("count").map(Value::as_u64), m.get("root").map(Value::as_str)) {
            (None, None) => None,
            (Some(Some(count)), Some(Some(root))) => Some((count, root)),
            _ => return Err(brk("its record count or Merkle root is missing or not a count and a hash".into())),
        };
        let proofs = match m.get("proofs") {
            None => None,
            Some(_) if !leaves_only_ok => {
                return Err(brk("carries inclusion proofs; the ledger keeps every record whole".into()));
            }
            Some(_) if merkle.is_none() => return Err(brk("carries inclusion proofs but has no Merkle root".into())),
            Some(Value::Array(p)) if p.len() == records.len() => Some(p),
            Some(_) => {
                return Err(brk(format!(
                    "its inclusion proofs are not a list of one per record shown ({})",
                    records.len()
                )));
            }
        };
        let mut leaves = Vec::with_capacity(records.len());
        let mut last_index: Option<u64> = None;
        for (i, r) in records.iter().enumerate() {
            let index = proofs.map_or(Some(i as u64), |p| p[i]["index"].as_u64());
            let at = || RecordAt {
                index: index.map_or(i + 1, |x| usize::try_from(x).unwrap_or(usize::MAX).saturating_add(1)),
                stream: r.pointer("/source/stream").and_then(Value::as_str).map(str::to_owned),
                seq: r.pointer("/source/seq").and_then(Value::as_u64),
            };
            let rbrk = |reason: &str| Break { n: at_n, record: Some(at()), reason: reason.into() };
            let Value::Object(fields) = r else { return Err(rbrk("is not a JSON object")) };
            let Some(stored) = fields.get("leaf").and_then(Value::as_str) else {
                return Err(rbrk("has no leaf hash"));
            };
            if fields.len() == 1 {
                if !leaves_only_ok || proofs.is_some() {
                    return Err(rbrk("has only its leaf hash; the ledger keeps every record whole"));
                }
                leaves_only += 1;
                leaves.push(stored);
                continue;
            }
            if leaf_of_with(alg, r) != stored {
                return Err(rbrk("leaf hash does not match the record"));
            }
            whole += 1;
            leaves.push(stored);
            let (Some(p), Some((count, root))) = (proofs, merkle) else { continue };
            let Some(index) = index else { return Err(rbrk("its inclusion proof names no index")) };
            if last_index.is_some_and(|l| index <= l) {
                return Err(rbrk("is shown twice, or out of order"));
            }
            last_index = Some(index);
            let path: Option<Vec<String>> =
                p[i]["path"].as_array().and_then(|a| a.iter().map(|h| h.as_str().map(str::to_owned)).collect());
            let Some(path) = path else { return Err(rbrk("its inclusion proof has no path of hashes")) };
            if crate::merkle::root_from_path(alg, stored, index, count, &path).as_deref() != Some(root) {
                return Err(rbrk("its inclusion proof does not lead to the entry's Merkle root"));
            }
        }
        match (merkle, proofs) {
            (Some((count, _)), Some(_)) => {
                leaves_only = usize::try_from(count).unwrap_or(usize::MAX).saturating_sub(whole);
            }
            (Some((count, root)), None) => {
                if leaves.len() as u64 != count {
                    return Err(brk(format!("holds {} records; its count says {count}", leaves.len())));
                }
                if crate::merkle::root(alg, &leaves) != root {
                    return Err(brk("its records' leaf hashes do not give its Merkle root".into()));
                }
            }
            (None, _) => {}
        }
    } else if m.contains_key("root") {
        return Err(brk("has a Merkle root but no records".into()));
    } else {
        whole = 1;
    }
    let stored = m.get("hash").and_then(Value::as_str).unwrap_or_default();
    let computed = hash_of(v);
    if stored != computed {
        return Err(brk(format!("its content does not match its hash (stored {stored}, computed {computed})")));
    }
    let n = m.get("n").and_then(Value::as_u64).ok_or_else(|| brk("has no position `n`".into()))?;
    let prev = m.get("prev").and_then(Value::as_str).ok_or_else(|| brk("has no `prev`".into()))?;
    if !m.get("at").is_some_and(Value::is_string) {
        return Err(brk("has no time `at`".into()));
    }
    Ok(Checked { n, prev: prev.to_string(), hash: stored.to_string(), records: whole, leaves_only })
}

/// Walks entries in order, each given as the raw bytes stored at position
/// `seq`, and names the first break.
pub struct Walker {
    expected_n: u64,
    prev: String,
    records: u64,
}

impl Default for Walker {
    fn default() -> Self {
        Self { expected_n: 1, prev: GENESIS.to_string(), records: 0 }
    }
}

/// A chain that verified: how many entries and records, and its head hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub records: u64,
    pub head: String,
}

impl Walker {
    /// Starts after a known entry (`n`, `hash`).
    pub fn after(n: u64, hash: &str) -> Self {
        Self { expected_n: n + 1, prev: hash.to_string(), records: 0 }
    }

    pub fn count(&self) -> u64 {
        self.expected_n - 1
    }

    /// Records seen by this walk.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn head(&self) -> &str {
        &self.prev
    }

    pub fn summary(&self) -> Summary {
        Summary { entries: self.count(), records: self.records, head: self.prev.clone() }
    }

    /// Checks the entry stored at position `seq`; gives it back as JSON.
    pub fn step(&mut self, seq: u64, raw: &[u8]) -> Result<Value, Break> {
        if seq != self.expected_n {
            return Err(Break::entry(self.expected_n, format!("is missing (the next entry stored is {seq})")));
        }
        let v: Value =
            serde_json::from_slice(raw).map_err(|e| Break::entry(seq, format!("cannot be read as an entry: {e}")))?;
        let c = check_entry(&v, seq, false)?;
        if c.n != seq {
            return Err(Break::entry(seq, format!("says it is entry {}", c.n)));
        }
        if c.prev != self.prev {
            return Err(Break::entry(
                seq,
                format!(
                    "does not follow entry {}: its prev is {}, entry {}'s hash is {}",
                    seq - 1,
                    c.prev,
                    seq - 1,
                    self.prev
                ),
            ));
        }
        self.prev = c.hash;
        self.expected_n += 1;
        self.records += c.records as u64;
        Ok(v)
    }
}

/// Verifies a JSON-lines dump (one entry per line, from entry 1).
pub fn verify_lines(text: &str) -> Result<Summary, Break> {
    let mut w = Walker::default();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        w.step(i as u64 + 1, line.as_bytes())?;
    }
    Ok(w.summary())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: u64, case: &str, what: &str) -> Record {
        Record {
            kind: "event:routed".into(),
            source: SourceRef { stream: "XJ_EVENTS".into(), seq, subject: format!("xj.evt.a.{what}.routed") },
            case: Some(case.into()),
            msg_id: Some(what.into()),
            sender: Some("a".into()),
            record: json!({ "b": seq, "a": [1, { "z": "中文", "y": null }], "detail": { "attempt": 1 } }),
        }
    }

    /// `k` entries of `per` records each, cases alternating.
    fn chain(k: u64, per: u64) -> Vec<Entry> {
        let mut prev = GENESIS.to_string();
        (1..=k)
            .map(|n| {
                let records = (0..per)
                    .map(|i| {
                        let seq = (n - 1) * per + i + 1;
                        Leaf::of(record(seq, if seq.is_multiple_of(2) { "XJ-2" } else { "XJ-1" }, &format!("M{seq}")))
                    })
                    .collect();
                let e = Entry::new(n, "2026-11-21T01:00:00.000Z".into(), prev.clone(), records);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn lines(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(|e| serde_json::to_string(e).unwrap()).collect()
    }

    #[test]
    fn canonical_sorts_keys_everywhere() {
        assert_eq!(canonical(&json!({ "b": 1, "a": { "d": [2, 1], "c": "x" } })), r#"{"a":{"c":"x","d":[2,1]},"b":1}"#);
        // Byte for byte what the ledger's first version wrote (hashes
        // already stored depend on it): escapes, non-ASCII, numbers, null.
        fn first_version(v: &Value, out: &mut String) {
            match v {
                Value::Object(m) => {
                    let mut keys: Vec<&String> = m.keys().collect();
                    keys.sort();
                    out.push('{');
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&Value::String((*k).clone()).to_string());
                        out.push(':');
                        first_version(&m[k.as_str()], out);
                    }
                    out.push('}');
                }
                Value::Array(a) => {
                    out.push('[');
                    for (i, x) in a.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        first_version(x, out);
                    }
                    out.push(']');
                }
                other => out.push_str(&other.to_string()),
            }
        }
        let v = json!({ "q\"k": "a\"b\\c\n\u{1}中文/</", "n": [-1.5, 1e300, 0.1, 18446744073709551615u64, -0, null, true],
                        "o": { "z": {}, "y": [] } });
        let mut expected = String::new();
        first_version(&v, &mut expected);
        assert_eq!(canonical(&v), expected);
    }

    #[test]
    fn a_records_canonical_json_is_that_of_its_json() {
        let mut r = record(7, "XJ-1", "M\"7");
        assert_eq!(r.canonical(), canonical(&serde_json::to_value(&r).unwrap()));
        (r.case, r.msg_id, r.sender) = (None, None, None);
        r.record = json!(null);
        assert_eq!(r.canonical(), canonical(&serde_json::to_value(&r).unwrap()));
        let leaf = Leaf::of(r);
        assert_eq!(leaf.leaf, leaf_of(&serde_json::to_value(&leaf).unwrap()));
    }

    #[test]
    fn an_intact_chain_verifies_in_any_key_order() {
        let lines = lines(&chain(5, 3));
        let s = verify_lines(&lines.join("\n")).unwrap();
        assert_eq!((s.entries, s.records), (5, 15));
        let last: Value = serde_json::from_str(&lines[4]).unwrap();
        assert_eq!(s.head, last["hash"]);
        // Re-serialised with other key order and spacing: still the same hashes.
        let pretty: Vec<String> = lines
            .iter()
            .map(|l| {
                serde_json::to_string_pretty(&serde_json::from_str::<Value>(l).unwrap()).unwrap().replace('\n', " ")
            })
            .collect();
        assert!(verify_lines(&pretty.join("\n")).is_ok());
    }

    #[test]
    fn the_entry_hash_covers_leaves_not_record_bodies() {
        let e = chain(1, 3).remove(0);
        let mut v = serde_json::to_value(&e).unwrap();
        // Reduced to its leaf, a record no longer shows, and the entry's hash still holds…
        v["records"][1] = json!({ "leaf": e.records[1].leaf });
        assert_eq!(hash_of(&v), e.hash);
        let c = check_entry(&v, 1, true).unwrap();
        assert_eq!((c.records, c.leaves_only), (2, 1));
        // …but not in the ledger itself, which keeps every record whole.
        let err = check_entry(&v, 1, false).unwrap_err();
        assert_eq!(err.record.map(|r| r.index), Some(2), "{}", check_entry(&v, 1, false).unwrap_err());
        // A changed leaf is a changed entry.
        v["records"][1] = json!({ "leaf": GENESIS });
        assert_eq!(check_entry(&v, 1, true).unwrap_err().record, None);
        // A field beside the records is covered too.
        let mut v = serde_json::to_value(&e).unwrap();
        v["note"] = json!("added");
        assert!(check_entry(&v, 1, false).is_err());
    }

    #[test]
    fn a_changed_record_is_named_with_its_source() {
        let entries = chain(3, 4);
        let mut bad = lines(&entries);
        bad[1] = bad[1].replacen("\"attempt\":1", "\"attempt\":2", 3);
        // Records 5..8 are in entry 2; the first changed is its record 1 (XJ_EVENTS seq 5).
        let err = verify_lines(&bad.join("\n")).unwrap_err();
        assert_eq!(err.to_string(), "entry 2, record 1 (XJ_EVENTS seq 5): leaf hash does not match the record");
    }

    #[test]
    fn flipping_any_byte_names_that_entry_and_that_record() {
        let entries = chain(4, 3);
        let lines = lines(&entries);
        for (target, entry) in entries.iter().enumerate() {
            // Where each record sits in the line.
            let spans: Vec<(usize, usize)> = entry
                .records
                .iter()
                .map(|l| {
                    let s = serde_json::to_string(l).unwrap();
                    let at = lines[target].find(&s).unwrap();
                    (at, at + s.len())
                })
                .collect();
            let raw = lines[target].as_bytes();
            for pos in 0..raw.len() {
                let mut bytes = raw.to_vec();
                bytes[pos] ^= 0x01;
                let Ok(text) = String::from_utf8(bytes) else { continue };
                let mut bad = lines.clone();
                bad[target] = text.clone();
                let err = verify_lines(&bad.join("\n")).unwrap_err();
                assert_eq!(err.n, target as u64 + 1, "flip at byte {pos} of entry {}: {err}", target + 1);
                let inside = spans.iter().position(|(a, b)| (*a + 1..*b - 1).contains(&pos));
                if let Some(i) = inside
                    && serde_json::from_str::<Value>(&text).is_ok()
                {
                    assert_eq!(err.record.as_ref().map(|r| r.index), Some(i + 1), "flip at byte {pos}: {err}");
                }
            }
        }
    }

    #[test]
    fn a_removed_or_reordered_entry_is_named() {
        let mut l = lines(&chain(4, 2));
        l.remove(2);
        assert_eq!(verify_lines(&l.join("\n")).unwrap_err().n, 3);
        let mut l = lines(&chain(4, 2));
        l.swap(1, 2);
        assert_eq!(verify_lines(&l.join("\n")).unwrap_err().n, 2);
    }

    #[test]
    fn a_legacy_chain_and_batched_entries_after_it_verify_together() {
        // Entries as written before batching: one source each, hashed over every field.
        let mut prev = GENESIS.to_string();
        let mut lines = Vec::new();
        for n in 1..=3u64 {
            let r = record(n, "XJ-1", &format!("M{n}"));
            let mut v = serde_json::to_value(&r).unwrap();
            v["n"] = json!(n);
            v["at"] = json!("2026-11-20T01:00:00.000Z");
            v["prev"] = json!(prev);
            let hash = digest_hex(HashAlg::Sha256, canonical(&v).as_bytes());
            v["hash"] = json!(hash);
            prev = hash;
            lines.push(serde_json::to_string(&v).unwrap());
        }
        let e = Entry::new(4, "2026-11-21T01:00:00.000Z".into(), prev, vec![Leaf::of(record(4, "XJ-1", "M4"))]);
        lines.push(serde_json::to_string(&e).unwrap());
        let s = verify_lines(&lines.join("\n")).unwrap();
        assert_eq!((s.entries, s.records), (4, 4));
        let mut bad = lines.clone();
        bad[1] = bad[1].replacen("\"attempt\":1", "\"attempt\":2", 1);
        let err = verify_lines(&bad.join("\n")).unwrap_err();
        assert_eq!((err.n, err.record.clone()), (2, None), "{err}");
        assert!(err.reason.starts_with("its content does not match its hash"), "{err}");
    }

    #[test]
    fn listed_entries_and_merkle_entries_after_them_verify_together() {
        let mut prev = GENESIS.to_string();
        let mut entries = Vec::new();
        for n in 1..=4u64 {
            let records = (0..3).map(|i| Leaf::of(record(n * 10 + i, "XJ-1", &format!("M{n}{i}")))).collect();
            let at = "2026-11-21T01:00:00.000Z".to_string();
            let e = if n <= 2 { Entry::listed(n, at, prev, records) } else { Entry::new(n, at, prev, records) };
            prev = e.hash.clone();
            entries.push(e);
        }
        assert!(entries[1].root.is_none() && entries[2].root.is_some() && entries[2].count == Some(3));
        let lines = lines(&entries);
        let s = verify_lines(&lines.join("\n")).unwrap();
        assert_eq!((s.entries, s.records), (4, 12));
        // A listed entry's leaf, a Merkle entry's root or count changed:
        // each named at its entry.
        for (i, from, to, reason) in [
            (1, entries[1].records[2].leaf.clone(), GENESIS.to_string(), "leaf hash does not match the record"),
            (
                2,
                format!("\"root\":\"{}", entries[2].root.clone().unwrap()),
                format!("\"root\":\"{GENESIS}"),
                "its records' leaf hashes do not give",
            ),
            (3, "\"count\":3".into(), "\"count\":2".into(), "holds 3 records; its count says 2"),
        ] {
            let mut bad = lines.clone();
            bad[i] = bad[i].replacen(&from, &to, 1);
            assert_ne!(bad[i], lines[i]);
            let err = verify_lines(&bad.join("\n")).unwrap_err();
            assert_eq!(err.n, i as u64 + 1, "{err}");
            assert!(err.reason.starts_with(reason), "{err}");
        }
        // Inclusion proofs belong in bundles, not in the ledger.
        let mut v: Value = serde_json::from_str(&lines[2]).unwrap();
        v["proofs"] = json!([]);
        let err = check_entry(&v, 3, false).unwrap_err();
        assert!(err.reason.contains("inclusion proofs"), "{err}");
    }

    /// `[ledger] hash = "sm3"` after SHA-256 entries: the SM3 segment links
    /// to the SHA-256 head, the walk checks each entry by its own `alg`,
    /// and neither the algorithm nor a leaf can be changed unnoticed.
    #[test]
    fn an_sm3_segment_follows_the_sha256_chain() {
        let mut lines = Vec::new();
        let mut prev = GENESIS.to_string();
        for n in 1..=4u64 {
            let alg = if n <= 2 { HashAlg::Sha256 } else { HashAlg::Sm3 };
            let records = vec![Leaf::of_with(record(n, "XJ-1", &format!("M{n}")), alg)];
            let e = Entry::new_with(alg, n, "2026-11-21T01:00:00.000Z".into(), prev.clone(), records);
            prev = e.hash.clone();
            lines.push(serde_json::to_string(&e).unwrap());
        }
        let text = lines.join("\n");
        let s = verify_lines(&text).unwrap();
        assert_eq!((s.entries, s.head.as_str()), (4, prev.as_str()));
        let third: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(third["alg"], "sm3");
        assert_eq!(third["prev"], serde_json::from_str::<Value>(&lines[1]).unwrap()["hash"], "linked to the old head");
        // SM3 is what sealed it: the same fields under SHA-256 do not match.
        assert_ne!(hash_of(&third), {
            let mut t = third.clone();
            t.as_object_mut().unwrap().remove("alg");
            hash_of(&t)
        });
        // Dropping `alg` (to pass the entry off as SHA-256) breaks it.
        let mut stripped = third.clone();
        stripped.as_object_mut().unwrap().remove("alg");
        let mut bad = lines.clone();
        bad[2] = stripped.to_string();
        let b = verify_lines(&bad.join("\n")).unwrap_err();
        assert_eq!(b.n, 3, "{b}");
        // An unknown algorithm is named.
        let mut odd = third.clone();
        odd["alg"] = "md5".into();
        bad[2] = odd.to_string();
        let b = verify_lines(&bad.join("\n")).unwrap_err();
        assert!(b.reason.contains("md5"), "{b}");
        // A changed SM3 record breaks its leaf.
        let mut changed = third;
        changed["records"][0]["msg_id"] = "M9".into();
        bad[2] = changed.to_string();
        let b = verify_lines(&bad.join("\n")).unwrap_err();
        assert_eq!((b.n, b.record.map(|r| r.index)), (3, Some(1)), "leaf hash does not match");
    }
}
