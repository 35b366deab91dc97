//! The mapping file (`schemas/formats/<name>/mapping.toml`): how one native
//! format's fields become canonical fields and back. See
//! docs/writing-a-mapping.md for the guide; the doc comments here are the
//! reference of each key.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    pub format: Header,
    /// Code tables: `[codes.<table>]` with `"<native code>" = <canonical value>`.
    /// Outbound uses the table backwards (the first native code, in key
    /// order, whose value matches).
    #[serde(default)]
    pub codes: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Named sets of rules that several messages share (`use = [...]`).
    #[serde(default)]
    pub group: BTreeMap<String, Group>,
    /// One entry per kind of native document.
    #[serde(default)]
    pub message: Vec<MessageRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The name an organisation's `format` uses, e.g. `samr-json-v1`.
    pub name: String,
    pub syntax: Syntax,
    /// Who speaks it, in words.
    #[serde(default)]
    pub title: String,
    /// XML only: the document element every document has.
    pub root: Option<String>,
    /// Path of the native field that says which message a document is.
    pub discriminator: String,
    /// CSV only: the field delimiter (default `,`).
    pub delimiter: Option<char>,
    /// Time zone of native local times (default `+08:00`, China Standard Time).
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    Json,
    Xml,
    Csv,
}

impl Syntax {
    pub fn as_str(self) -> &'static str {
        match self {
            Syntax::Json => "JSON",
            Syntax::Xml => "XML",
            Syntax::Csv => "CSV",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Syntax::Json => "application/json; charset=utf-8",
            Syntax::Xml => "application/xml; charset=utf-8",
            Syntax::Csv => "text/csv; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Native → canonical only (what the department sends).
    In,
    /// Canonical → native only (what the department receives).
    Out,
    #[default]
    Both,
}

impl Direction {
    pub fn inbound(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }
    pub fn outbound(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default)]
    pub field: Vec<FieldRule>,
    #[serde(default)]
    pub list: Vec<ListRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRule {
    /// The canonical message type (docs/api.md).
    #[serde(rename = "type")]
    pub kind: String,
    /// The discriminator's native value for this message.
    pub native: String,
    #[serde(default)]
    pub direction: Direction,
    /// Groups whose rules apply before this message's own.
    #[serde(default, rename = "use")]
    pub uses: Vec<String>,
    #[serde(default)]
    pub field: Vec<FieldRule>,
    #[serde(default)]
    pub list: Vec<ListRule>,
}

/// One field: a native path and one canonical path (or several, with
/// `split`), and how the value changes on the way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Canonical path (`body/party/uscc`, `id`, `.` for a list item itself),
    /// or several with `split`.
    pub to: Targets,
    /// Native path (`ajxx/dsr/mc`, `ZTXX/DSR/MC`, `@attr`, a CSV column,
    /// `1`, `2`… for the parts of a split list item, `.` for the item itself).
    pub from: Option<String>,
    /// Inbound: the native document must have it. Outbound: the canonical
    /// message must have it, or it cannot be expressed.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub direction: Direction,
    /// Canonical type: `string` (default), `number`, `integer`, `bool`.
    #[serde(rename = "type")]
    pub kind: Option<ValueType>,
    /// JSON formats only: the native type when it differs from the canonical.
    pub native_type: Option<ValueType>,
    /// Native date pattern, e.g. `yyyyMMdd`, `yyyy年MM月dd日` (canonical: ISO date).
    pub date: Option<String>,
    /// Native local date-time pattern, e.g. `yyyy-MM-dd HH:mm:ss`, in the
    /// format's zone (canonical: RFC 3339 with offset).
    pub datetime: Option<String>,
    /// Code table translating native codes to canonical values.
    pub codes: Option<String>,
    /// canonical = native × scale (万元 → yuan: 10000).
    pub scale: Option<f64>,
    /// Separator joining several canonical fields into one native field.
    pub split: Option<String>,
    /// Inbound constant: the canonical value, whatever the document says.
    pub value: Option<toml::Value>,
    /// Inbound: the canonical value when the native field is absent.
    pub default: Option<toml::Value>,
    /// Free text for readers of the mapping.
    pub note: Option<String>,
}

/// A repeated group: a JSON array, repeated XML elements, or one native
/// string split into items (`split`) and each item into parts (`parts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRule {
    /// Canonical array path, e.g. `body/officers`.
    pub to: String,
    /// Native path of the array, the repeated element, or the string.
    pub from: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub direction: Direction,
    /// Item separator for a list held in one string (CSV).
    pub split: Option<String>,
    /// Part separator inside one item; item fields then read `from = "1"`, `"2"`…
    pub parts: Option<String>,
    /// Rules of one item, paths relative to the item.
    #[serde(default)]
    pub field: Vec<FieldRule>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    One(String),
    Many(Vec<String>),
}

impl Targets {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Targets::One(s) => vec![s.as_str()],
            Targets::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Number,
    Integer,
    Bool,
}
