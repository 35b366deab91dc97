//! A mapping file checked and compiled for use: groups expanded, date
//! patterns turned into chrono formats, constants into JSON, every reference
//! (code table, group, message type) resolved, so translating never meets a
//! mistake of the mapping's author.

use std::collections::{BTreeMap, HashSet};

use chrono::FixedOffset;
use serde_json::Value;
use xj_model::MessageType;

use crate::error::LoadError;
use crate::spec::{Direction, FieldRule, ListRule, MappingFile, Syntax, ValueType};

/// Envelope fields a rule may write (docs/api.md); anything else lives under `body/`.
const ENVELOPE: [&str; 9] =
    ["id", "type", "sender", "recipient", "case", "reply_to", "sent_at", "classification", "body"];

#[derive(Debug, Clone)]
pub struct Field {
    pub to: Vec<String>,
    pub from: Option<String>,
    pub required: bool,
    pub direction: Direction,
    pub kind: Option<ValueType>,
    pub native_type: Option<ValueType>,
    /// chrono format of a native date.
    pub date: Option<String>,
    /// chrono format of a native local date-time.
    pub datetime: Option<String>,
    pub codes: Option<String>,
    pub scale: Option<f64>,
    pub split: Option<String>,
    pub value: Option<Value>,
    pub default: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct List {
    pub to: String,
    pub from: String,
    pub required: bool,
    pub direction: Direction,
    pub split: Option<String>,
    pub parts: Option<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub kind: MessageType,
    pub native: String,
    pub direction: Direction,
    pub fields: Vec<Field>,
    pub lists: Vec<List>,
}

impl Message {
    /// Native columns in rule order (the CSV header of this message).
    pub fn columns(&self, discriminator: &str) -> Vec<String> {
        let mut out = vec![discriminator.to_string()];
        let froms = self
            .fields
            .iter()
            .filter(|f| f.direction.outbound())
            .filter_map(|f| f.from.clone())
            .chain(self.lists.iter().filter(|l| l.direction.outbound()).map(|l| l.from.clone()));
        for f in froms {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }
}

/// One native format, ready to translate.
#[derive(Debug, Clone)]
pub struct Format {
    pub name: String,
    pub title: String,
    pub syntax: Syntax,
    pub root: Option<String>,
    pub discriminator: String,
    pub delimiter: u8,
    pub zone: FixedOffset,
    pub codes: BTreeMap<String, BTreeMap<String, Value>>,
    pub messages: Vec<Message>,
    /// Where it was loaded from, for messages.
    pub source: String,
}

impl Format {
    /// Parses and checks a mapping file's text.
    pub fn parse(text: &str, source: &str) -> Result<Self, LoadError> {
        let file: MappingFile =
            toml::from_str(text).map_err(|e| LoadError::Toml { file: source.into(), message: e.to_string() })?;
        compile(file, source)
    }

    /// The message rule for an inbound document whose discriminator is `native`.
    pub fn inbound_message(&self, native: &str) -> Option<&Message> {
        self.messages.iter().find(|m| m.direction.inbound() && m.native == native)
    }

    /// The message rule writing a canonical message of type `kind`.
    pub fn outbound_message(&self, kind: MessageType) -> Option<&Message> {
        self.messages.iter().find(|m| m.direction.outbound() && m.kind == kind)
    }

    /// Canonical types this format can receive.
    pub fn outbound_types(&self) -> Vec<MessageType> {
        self.messages.iter().filter(|m| m.direction.outbound()).map(|m| m.kind).collect()
    }

    /// Canonical types this format can send.
    pub fn inbound_types(&self) -> Vec<MessageType> {
        self.messages.iter().filter(|m| m.direction.inbound()).map(|m| m.kind).collect()
    }

    pub fn content_type(&self) -> &'static str {
        self.syntax.content_type()
    }
}

struct Ctx<'a> {
    file: &'a MappingFile,
    problems: Vec<String>,
}

fn compile(file: MappingFile, source: &str) -> Result<Format, LoadError> {
    let invalid = |message: String| LoadError::Invalid { file: source.into(), message };
    let h = &file.format;
    if h.name.is_empty() || !h.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(invalid(format!("format.name {:?} must match [a-z0-9-]+", h.name)));
    }
    if h.name == "canonical" {
        return Err(invalid("format.name \"canonical\" is the hub's own format".into()));
    }
    if h.syntax == Syntax::Xml && h.root.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("an XML format needs format.root, the document element".into()));
    }
    let zone_text = h.zone.clone().unwrap_or_else(|| "+08:00".into());
    let zone = zone_text
        .parse::<FixedOffset>()
        .map_err(|_| invalid(format!("format.zone {zone_text:?} is not an offset like +08:00")))?;
    let delimiter = match h.delimiter {
        None => b',',
        Some(c) if c.is_ascii() => c as u8,
        Some(c) => return Err(invalid(format!("format.delimiter {c:?} must be one ASCII character"))),
    };
    let mut ctx = Ctx { file: &file, problems: Vec::new() };
    let mut messages = Vec::new();
    let mut inbound_natives = HashSet::new();
    let mut outbound_types = HashSet::new();
    for (i, m) in file.message.iter().enumerate() {
        let at = format!("message[{i}] ({} / {})", m.kind, m.native);
        let Some(kind) = MessageType::parse(&m.kind) else {
            ctx.problems.push(format!("{at}: {:?} is not a canonical message type", m.kind));
            continue;
        };
        if m.direction.inbound() && !inbound_natives.insert(m.native.clone()) {
            ctx.problems.push(format!("{at}: two inbound messages share the native value {:?}", m.native));
        }
        if m.direction.outbound() && !outbound_types.insert(kind) {
            ctx.problems.push(format!("{at}: two outbound messages write {kind}"));
        }
        let mut fields = Vec::new();
        let mut lists = Vec::new();
        for g in &m.uses {
            match file.group.get(g) {
                Some(group) => {
                    fields.extend(group.field.iter().map(|f| ctx.field(f, &at, h.syntax, false)));
                    lists.extend(group.list.iter().map(|l| ctx.list(l, &at, h.syntax)));
                }
                None => ctx.problems.push(format!("{at}: no group {g:?}")),
            }
        }
        fields.extend(m.field.iter().map(|f| ctx.field(f, &at, h.syntax, false)));
        lists.extend(m.list.iter().map(|l| ctx.list(l, &at, h.syntax)));
        messages.push(Message { kind, native: m.native.clone(), direction: m.direction, fields, lists });
    }
    if messages.is_empty() && ctx.problems.is_empty() {
        ctx.problems.push("the mapping defines no message".into());
    }
    if !ctx.problems.is_empty() {
        return Err(invalid(ctx.problems.join("; ")));
    }
    let codes = file
        .codes
        .iter()
        .map(|(name, table)| (name.clone(), table.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()))
        .collect();
    Ok(Format {
        name: h.name.clone(),
        title: h.title.clone(),
        syntax: h.syntax,
        root: h.root.clone(),
        discriminator: h.discriminator.clone(),
        delimiter,
        zone,
        codes,
        messages,
        source: source.into(),
    })
}

impl Ctx<'_> {
    fn field(&mut self, f: &FieldRule, at: &str, syntax: Syntax, in_list: bool) -> Field {
        let to: Vec<String> = f.to.paths().into_iter().map(str::to_owned).collect();
        let name = format!("{at}: field {}", to.join(","));
        for t in &to {
            let head = t.split('/').next().unwrap_or_default();
            if !in_list && !ENVELOPE.contains(&head) {
                self.problems.push(format!("{name}: canonical path {t:?} must start with an envelope field or body/"));
            }
        }
        if to.len() > 1 && f.split.is_none() {
            self.problems.push(format!("{name}: several canonical paths need `split`"));
        }
        if f.from.is_none() && f.value.is_none() {
            self.problems.push(format!("{name}: give `from` (a native path) or `value` (a constant)"));
        }
        if let Some(t) = &f.codes
            && !self.file.codes.contains_key(t)
        {
            self.problems.push(format!("{name}: no code table {t:?}"));
        }
        if f.date.is_some() && f.datetime.is_some() {
            self.problems.push(format!("{name}: give `date` or `datetime`, not both"));
        }
        if f.scale == Some(0.0) {
            self.problems.push(format!("{name}: scale cannot be 0"));
        }
        if syntax != Syntax::Json && f.native_type.is_some() {
            self.problems.push(format!("{name}: native_type applies to JSON formats only"));
        }
        let mut pattern = |p: &Option<String>| {
            p.as_ref().map(|p| match chrono_pattern(p) {
                Ok(c) => c,
                Err(e) => {
                    self.problems.push(format!("{name}: {e}"));
                    String::new()
                }
            })
        };
        let date = pattern(&f.date);
        let datetime = pattern(&f.datetime);
        Field {
            to,
            from: f.from.clone(),
            required: f.required,
            direction: f.direction,
            kind: f.kind,
            native_type: f.native_type,
            date,
            datetime,
            codes: f.codes.clone(),
            scale: f.scale,
            split: f.split.clone(),
            value: f.value.as_ref().map(to_json),
            default: f.default.as_ref().map(to_json),
        }
    }

    fn list(&mut self, l: &ListRule, at: &str, syntax: Syntax) -> List {
        let name = format!("{at}: list {}", l.to);
        if syntax == Syntax::Csv && l.split.is_none() {
            self.problems.push(format!("{name}: a CSV cell holds a list only with `split`"));
        }
        if l.parts.is_some() && l.split.is_none() {
            self.problems.push(format!("{name}: `parts` needs `split`"));
        }
        if l.field.is_empty() {
            self.problems.push(format!("{name}: a list needs item fields"));
        }
        let fields = l.field.iter().map(|f| self.field(f, &name, syntax, true)).collect();
        List {
            to: l.to.clone(),
            from: l.from.clone(),
            required: l.required,
            direction: l.direction,
            split: l.split.clone(),
            parts: l.parts.clone(),
            fields,
        }
    }
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `yyyy-MM-dd HH:mm:ss` → `%Y-%m-%d %H:%M:%S`. Letters other than the
/// tokens below are refused, so a typo in a pattern is found when the
/// mapping loads rather than when a document arrives.
pub fn chrono_pattern(p: &str) -> Result<String, String> {
    const TOKENS: [(&str, &str); 6] =
        [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")];
    let mut out = String::new();
    let mut rest = p;
    'outer: while let Some(c) = rest.chars().next() {
        for (tok, fmt) in TOKENS {
            if let Some(r) = rest.strip_prefix(tok) {
                out.push_str(fmt);
                rest = r;
                continue 'outer;
            }
        }
        if c.is_ascii_alphabetic() {
            return Err(format!("pattern {p:?}: {c:?} is not one of yyyy MM dd HH mm ss"));
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    if !out.contains("%Y") || !out.contains("%m") || !out.contains("%d") {
        return Err(format!("pattern {p:?} must contain yyyy, MM and dd"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::chrono_pattern;

    #[test]
    fn patterns() {
        assert_eq!(chrono_pattern("yyyyMMdd").unwrap(), "%Y%m%d");
        assert_eq!(chrono_pattern("yyyy-MM-dd HH:mm:ss").unwrap(), "%Y-%m-%d %H:%M:%S");
        assert_eq!(chrono_pattern("yyyy年MM月dd日").unwrap(), "%Y年%m月%d日");
        assert!(chrono_pattern("yyyy-MM-DD").is_err());
        assert!(chrono_pattern("HH:mm").is_err());
    }
}
