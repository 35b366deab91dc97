//! Translation at the edges. Departmental systems speak their own formats —
//! a market bureau's JSON with pinyin-initial field names, an environment
//! bureau's XML, a police system's XML, a court's JSON, a town's CSV export.
//! One mapping file per format (`schemas/formats/<name>/mapping.toml`)
//! declares how its fields become canonical fields and back: paths into
//! JSON, XML or CSV, renames, date and time patterns in the +08:00 zone,
//! code tables, units, constants, defaults, joined and split fields and
//! repeated groups. The gateway uses it on the way in (`POST /v1/native`,
//! NATS intake), the courier on the way out, `xj translate` offline. Adding a
//! department is adding a mapping file and its examples, not code.

pub mod error;
pub mod format;
pub mod inbound;
pub mod node;
pub mod outbound;
pub mod report;
pub mod spec;
pub mod syntax;
mod transform;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use error::{Exceeded, InboundError, LoadError, Located, OutboundError, UnknownFormat};
pub use format::Format;
pub use inbound::{Provenance, Translated};
pub use node::Loc;
pub use report::{Detail, Source};
pub use syntax::Limits;

/// The formats every hub knows, embedded at build time.
const BUILTIN: &[(&str, &str)] = &[
    ("samr-json-v1", include_str!("../../../schemas/formats/samr-json-v1/mapping.toml")),
    ("eco-xml-v1", include_str!("../../../schemas/formats/eco-xml-v1/mapping.toml")),
    ("police-xml-v1", include_str!("../../../schemas/formats/police-xml-v1/mapping.toml")),
    ("court-json-v1", include_str!("../../../schemas/formats/court-json-v1/mapping.toml")),
    ("town-csv-v1", include_str!("../../../schemas/formats/town-csv-v1/mapping.toml")),
];

/// The name of the hub's own format.
pub const CANONICAL: &str = "canonical";

/// Every native format a hub can speak, by name.
#[derive(Debug, Clone, Default)]
pub struct Formats {
    formats: BTreeMap<String, Arc<Format>>,
    /// The folder and the mapping files read from it, to watch for changes.
    sources: Vec<std::path::PathBuf>,
}

impl Formats {
    /// The built-in formats.
    pub fn builtin() -> Result<Self, LoadError> {
        let mut formats = BTreeMap::new();
        for (name, text) in BUILTIN {
            let f = Format::parse(text, &format!("schemas/formats/{name}/mapping.toml"))?;
            formats.insert(f.name.clone(), Arc::new(f));
        }
        Ok(Self { formats, sources: Vec::new() })
    }

    /// The built-in formats plus every `<dir>/<name>/mapping.toml` (a format
    /// there replaces a built-in one of the same name).
    pub fn load(dir: Option<&Path>) -> Result<Self, LoadError> {
        let mut all = Self::builtin()?;
        let Some(dir) = dir else { return Ok(all) };
        // The folder itself: its time changes when a format is added.
        all.sources.push(dir.to_path_buf());
        let read_err = |file: &Path, e: std::io::Error| LoadError::Read {
            file: file.display().to_string(),
            message: e.to_string(),
        };
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).map_err(|e| read_err(dir, e))?.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for sub in entries {
            let file = sub.join("mapping.toml");
            if !file.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&file).map_err(|e| read_err(&file, e))?;
            let f = Format::parse(&text, &file.display().to_string())?;
            let folder = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if f.name != folder {
                return Err(LoadError::Invalid {
                    file: file.display().to_string(),
                    message: format!("format.name {:?} must equal its folder's name {folder:?}", f.name),
                });
            }
            all.formats.insert(f.name.clone(), Arc::new(f));
            all.sources.push(file);
        }
        Ok(all)
    }

    /// The files this set was read from (beyond the built-in formats): a
    /// change to any of them is a reason to load it again.
    pub fn sources(&self) -> &[std::path::PathBuf] {
        &self.sources
    }

    pub fn get(&self, name: &str) -> Result<&Arc<Format>, UnknownFormat> {
        self.formats.get(name).ok_or_else(|| UnknownFormat(name.to_string()))
    }

    pub fn names(&self) -> Vec<&str> {
        self.formats.keys().map(String::as_str).collect()
    }

    /// True for `canonical` and every loaded format.
    pub fn knows(&self, name: &str) -> bool {
        name == CANONICAL || self.formats.contains_key(name)
    }
}
