//! The hub's HTTP edge, one crate for the two services that face browsers
//! and departmental systems (the gateway and the console), so that neither
//! reaches into the other: the hardened server and its layers ([`serve`]),
//! the JSON error every refusal is ([`error`]), and the masking of texts an
//! operator or another organisation sees ([`redact`]). docs/security.md,
//! "HTTP hardening", says what each guarantees.

pub mod error;
pub mod redact;
pub mod serve;

pub use error::{ApiError, clip};
