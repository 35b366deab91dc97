//! Problems with a native submission as the API reports them (docs/api.md
//! `details`): each located in the native document, and saying whose rule
//! it broke — the syntax, the mapping, or the canonical schema and checks
//! (then also the canonical pointer).

use serde::Serialize;
use xj_model::Problem;

use crate::error::{InboundError, Located};
use crate::inbound::Provenance;
use crate::node::Loc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The document is not well-formed JSON, XML or CSV.
    Syntax,
    /// The format's mapping cannot read it (missing field, unknown code, bad date…).
    Mapping,
    /// The canonical message made of it breaks a schema or check.
    Canonical,
}

/// One entry of an error's `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub loc: Loc,
    pub source: Source,
    /// For canonical problems: the pointer in the canonical message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    pub message: String,
}

impl Detail {
    pub fn located(l: &Located, source: Source) -> Self {
        Self { loc: l.loc.clone(), source, canonical: None, message: l.message.clone() }
    }

    /// A canonical problem, placed where its value came from.
    pub fn canonical(p: &Problem, prov: &Provenance) -> Self {
        Self {
            loc: prov.locate(&p.pointer),
            source: Source::Canonical,
            canonical: Some(p.pointer.clone()),
            message: p.message.clone(),
        }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match self.source {
            Source::Syntax => "syntax",
            Source::Mapping => "mapping",
            Source::Canonical => "canonical",
        };
        write!(f, "{}: [{source}] ", self.loc)?;
        if let Some(c) = &self.canonical {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The details of an inbound failure.
pub fn inbound_details(e: &InboundError) -> Vec<Detail> {
    match e {
        InboundError::Syntax { problem, .. } => vec![Detail::located(problem, Source::Syntax)],
        InboundError::Mapping { problems, .. } => {
            problems.iter().map(|p| Detail::located(p, Source::Mapping)).collect()
        }
    }
}
