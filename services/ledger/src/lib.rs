//! The audit ledger (`xj run ledger`): every accepted message, routing
//! decision, delivery attempt, alert and state change the hub records on
//! its buses is appended, in order, to an append-only hash chain kept in
//! the JetStream stream `XJ_LEDGER` (subject `xj.ledger`).
//!
//! - Each entry records many source messages, each with its leaf hash, and
//!   carries the previous entry's hash, a timestamp and its own hash over
//!   those and the leaf hashes ([`chain`]); `xj audit verify` walks the
//!   chain and names the first entry, and record in it, that does not match.
//! - The stream refuses deletes and purges, and every append is published
//!   with `Nats-Expected-Last-Sequence`: two ledger instances cannot fork
//!   the chain, and a restarted one continues from the last entry stored.
//! - `xj audit export --case` writes the entries holding a case's records
//!   (other cases' records reduced to their leaf hashes), the chain links
//!   between them and the accepted messages themselves as an evidence
//!   bundle signed by the hub, which verifies offline ([`bundle`]).
//! - Every `[ledger] head_every_s` the hub signs the chain's head, and has
//!   it time-stamped when `[ledger] timestamp_url` names an RFC 3161
//!   authority ([`heads`], [`tsa`]); packages chain to such a head.

pub mod bundle;
pub mod chain;
pub mod heads;
pub mod merkle;
mod recorded;
mod service;
mod store;
pub mod tsa;

pub use chain::{
    Break, Checked, Entry, GENESIS, HashAlg, Leaf, Record, RecordAt, SourceRef, Summary, Walker, alg_of, canonical,
    check_entry, digest_hex, hash_of, leaf_of, leaf_of_with, records_of, verify_lines,
};
pub use service::run;
pub use store::{STREAM_LEDGER, SUBJECT_LEDGER, declare, dump, verify_live};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the ledger store: {0}")]
    Bus(String),
    #[error("{0}")]
    Bundle(String),
}

impl LedgerError {
    pub(crate) fn bus(e: impl std::fmt::Display) -> Self {
        Self::Bus(e.to_string())
    }
}
