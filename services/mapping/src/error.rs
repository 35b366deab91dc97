//! What can go wrong, by whose fault: the native document cannot be read
//! (the sender's syntax), it can be read but the mapping cannot make a
//! canonical message of it (the sender's content, told in the mapping's
//! terms), a canonical message cannot be written in a receiver's format, or
//! a mapping file itself is wrong (the deployer's).

use serde::Serialize;

use crate::node::Loc;

/// One problem, located in the native document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    #[serde(flatten)]
    pub loc: Loc,
    pub message: String,
}

impl Located {
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        Self { loc, message: message.into() }
    }
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

fn list(p: &[Located]) -> String {
    p.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// A document that asks more of the reader than any real submission needs
/// ([`crate::syntax::Limits`]). Refused before the work or memory it would
/// cost is spent, so one hostile sender cannot stall a worker for everyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("the document is {size} bytes; at most {max} are read")]
    Size { size: usize, max: usize },
    #[error("nested deeper than {max} levels")]
    Depth { max: usize },
    #[error("more than {max} {what} in one document")]
    Nodes { max: usize, what: &'static str },
    #[error("the path to {name:?} is {len} bytes long; at most {max} are read")]
    Path { name: String, len: usize, max: usize },
}

impl Exceeded {
    /// A path refusal that quotes only the start of a name: echoing a
    /// megabyte-long name back would be the same problem again.
    pub fn path(name: &str, len: usize, max: usize) -> Self {
        const SHOWN: usize = 40;
        let name = match name.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("{}…", &name[..cut]),
            None => name.to_string(),
        };
        Self::Path { name, len, max }
    }
}

/// Native → canonical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// The document is not well-formed in its syntax (HTTP 400).
    #[error("the document is not well-formed {syntax}: {problem}")]
    Syntax { syntax: &'static str, problem: Located },
    /// Well-formed, but the mapping cannot make a canonical message of it
    /// (HTTP 422, `source: "mapping"`): every problem at once.
    #[error("the document does not fit format {format}:\n{}", list(.problems))]
    Mapping { format: String, problems: Vec<Located> },
}

/// Canonical → native: the message cannot be expressed in the receiver's
/// format. Permanent: the courier dead-letters it with this reason rather
/// than send it half-empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("the canonical message cannot be read: {0}")]
    Canonical(String),
    #[error("format {format} has no native form for a {kind} message")]
    NoForm { format: String, kind: String },
    #[error("cannot be expressed in format {format}: {}", .reasons.join("; "))]
    NotExpressible { format: String, reasons: Vec<String> },
}

/// A mapping file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: not a valid mapping file: {message}")]
    Toml { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
}

/// The mapping has no format of this name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}")]
pub struct UnknownFormat(pub String);
