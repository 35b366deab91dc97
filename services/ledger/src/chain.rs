//! The chain itself, pure: what an entry is, its hash, and the walk that
//! finds the first entry that does not match. Used on the live stream, on
//! a JSON-lines dump and inside evidence bundles alike.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where an entry's record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// `XJ_EVENTS` (a step a service took) or `XJ_ACCEPTED` (an accepted message).
    pub stream: String,
    pub seq: u64,
    pub subject: String,
}

/// One entry of the ledger. `hash` is SHA-256 (hex) over the canonical JSON
/// of every other field, `prev` included, so each entry seals all before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1; equal to its sequence in `XJ_LEDGER`.
    pub n: u64,
    /// When it was appended (RFC 3339, UTC).
    pub at: String,
    /// The hash of entry `n - 1` ([`GENESIS`] for the first).
    pub prev: String,
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
    pub hash: String,
}

/// JSON with object keys sorted at every level and no whitespace: the bytes
/// an entry's hash is computed over.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
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
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of an entry given as JSON: over everything but `hash`.
pub fn hash_of(entry: &Value) -> String {
    let mut v = entry.clone();
    if let Value::Object(m) = &mut v {
        m.remove("hash");
    }
    hex::encode(Sha256::digest(canonical(&v).as_bytes()))
}

impl Entry {
    /// Seals the entry: computes and sets its hash.
    pub fn seal(mut self) -> Self {
        self.hash = String::new();
        let v = serde_json::to_value(&self).unwrap_or(Value::Null);
        self.hash = hash_of(&v);
        self
    }
}

/// The first entry that does not match, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {n}: {reason}")]
pub struct Break {
    pub n: u64,
    pub reason: String,
}

/// Walks entries in order, each given as the raw bytes stored at position
/// `seq`; `Ok((count, head hash))` or the first break.
pub struct Walker {
    expected_n: u64,
    prev: String,
}

impl Default for Walker {
    fn default() -> Self {
        Self { expected_n: 1, prev: GENESIS.to_string() }
    }
}

impl Walker {
    /// Starts after a known entry (`n`, `hash`).
    pub fn after(n: u64, hash: &str) -> Self {
        Self { expected_n: n + 1, prev: hash.to_string() }
    }

    pub fn count(&self) -> u64 {
        self.expected_n - 1
    }

    pub fn head(&self) -> &str {
        &self.prev
    }

    /// Checks the entry stored at position `seq`.
    pub fn step(&mut self, seq: u64, raw: &[u8]) -> Result<Entry, Break> {
        if seq != self.expected_n {
            return Err(Break { n: self.expected_n, reason: format!("is missing (the next entry stored is {seq})") });
        }
        let brk = |reason: String| Break { n: seq, reason };
        let v: Value = serde_json::from_slice(raw).map_err(|e| brk(format!("cannot be read as an entry: {e}")))?;
        let stored = v.get("hash").and_then(Value::as_str).unwrap_or_default().to_string();
        let computed = hash_of(&v);
        if stored != computed {
            return Err(brk(format!("its content does not match its hash (stored {stored}, computed {computed})")));
        }
        let entry: Entry = serde_json::from_value(v).map_err(|e| brk(format!("is not a ledger entry: {e}")))?;
        if entry.n != seq {
            return Err(brk(format!("says it is entry {}", entry.n)));
        }
        if entry.prev != self.prev {
            return Err(brk(format!(
                "does not follow entry {}: its prev is {}, entry {}'s hash is {}",
                seq - 1,
                entry.prev,
                seq - 1,
                self.prev
            )));
        }
        self.prev = entry.hash.clone();
        self.expected_n += 1;
        Ok(entry)
    }
}

/// Verifies a JSON-lines dump (one entry per line, from entry 1).
pub fn verify_lines(text: &str) -> Result<(u64, String), Break> {
    let mut w = Walker::default();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        w.step(i as u64 + 1, line.as_bytes())?;
    }
    Ok((w.count(), w.head().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(n: u64, prev: &str, what: &str) -> Entry {
        Entry {
            n,
            at: "2026-11-21T01:00:00.000Z".into(),
            prev: prev.into(),
            kind: "event:routed".into(),
            source: SourceRef { stream: "XJ_EVENTS".into(), seq: n, subject: format!("xj.evt.a.{what}.routed") },
            case: Some("XJ-1".into()),
            msg_id: Some(what.into()),
            sender: Some("a".into()),
            record: json!({ "b": 1, "a": [1, { "z": "中文", "y": null }] }),
            hash: String::new(),
        }
        .seal()
    }

    fn chain(k: u64) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=k)
            .map(|n| {
                let e = entry(n, &prev, &format!("M{n}"));
                prev = e.hash.clone();
                serde_json::to_string(&e).unwrap()
            })
            .collect()
    }

    #[test]
    fn canonical_sorts_keys_everywhere() {
        assert_eq!(canonical(&json!({ "b": 1, "a": { "d": [2, 1], "c": "x" } })), r#"{"a":{"c":"x","d":[2,1]},"b":1}"#);
    }

    #[test]
    fn an_intact_chain_verifies_in_any_key_order() {
        let lines = chain(5);
        let (n, head) = verify_lines(&lines.join("\n")).unwrap();
        assert_eq!(n, 5);
        let last: Value = serde_json::from_str(&lines[4]).unwrap();
        assert_eq!(head, last["hash"]);
        // Re-serialised with other key order and spacing: still the same hashes.
        let pretty: Vec<String> =
            lines.iter().map(|l| serde_json::to_string(&serde_json::from_str::<Value>(l).unwrap()).unwrap()).collect();
        assert!(verify_lines(&pretty.join("\n")).is_ok());
    }

    #[test]
    fn flipping_any_byte_names_that_entry() {
        let lines = chain(6);
        for target in 0..6 {
            let raw = lines[target].as_bytes();
            for pos in (0..raw.len()).step_by(7) {
                let mut bad = lines.clone();
                let mut bytes = raw.to_vec();
                bytes[pos] ^= 0x01;
                let Ok(text) = String::from_utf8(bytes) else { continue };
                bad[target] = text;
                let err = verify_lines(&bad.join("\n")).unwrap_err();
                assert_eq!(err.n, target as u64 + 1, "flip at byte {pos} of entry {}: {err}", target + 1);
            }
        }
    }

    #[test]
    fn a_removed_or_reordered_entry_is_named() {
        let mut lines = chain(4);
        lines.remove(2);
        assert_eq!(verify_lines(&lines.join("\n")).unwrap_err().n, 3);
        let mut lines = chain(4);
        lines.swap(1, 2);
        assert_eq!(verify_lines(&lines.join("\n")).unwrap_err().n, 2);
    }
}
