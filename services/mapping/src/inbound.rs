//! Native → canonical. Every problem is collected (not just the first) and
//! located in the native document; every canonical field written remembers
//! the native place it came from ([`Provenance`]), so a problem the
//! canonical schema finds later can be shown where the sender can fix it.

use serde_json::{Map, Value};
use xj_model::MessageType;

use crate::error::{InboundError, Located};
use crate::format::{Field, Format, List, Message};
use crate::node::{Loc, Node, segments};
use crate::spec::Syntax;
use crate::syntax;
use crate::transform;

/// One native document made canonical.
#[derive(Debug, Clone)]
pub struct Translated {
    pub kind: MessageType,
    /// The discriminator's native value.
    pub native: String,
    /// The canonical envelope (not yet validated against the schemas).
    pub message: Value,
    pub provenance: Provenance,
}

/// Where each canonical field came from in the native document.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    root: Loc,
    entries: Vec<Origin>,
}

#[derive(Debug, Clone)]
struct Origin {
    /// Canonical JSON pointer, e.g. `/body/party/uscc`.
    canonical: String,
    loc: Loc,
}

impl Provenance {
    /// The native place of a canonical pointer: the field it came from, or
    /// the field that would have given it, or the nearest enclosing one.
    pub fn locate(&self, pointer: &str) -> Loc {
        if let Some(o) = self.entries.iter().find(|o| o.canonical == pointer) {
            return o.loc.clone();
        }
        let inside = |outer: &str, inner: &str| inner.strip_prefix(outer).is_some_and(|r| r.starts_with('/'));
        if let Some(o) = self.entries.iter().find(|o| inside(pointer, &o.canonical)) {
            return o.loc.clone();
        }
        self.entries
            .iter()
            .filter(|o| inside(&o.canonical, pointer))
            .max_by_key(|o| o.canonical.len())
            .map_or_else(|| self.root.clone(), |o| o.loc.clone())
    }

    fn record(&mut self, canonical: String, loc: &Loc) {
        self.entries.push(Origin { canonical, loc: loc.clone() });
    }
}

/// The native documents in `raw` (one, except a CSV export with several rows).
pub fn parse(fmt: &Format, raw: &[u8]) -> Result<Vec<Node>, InboundError> {
    let syntax_err = |problem: Located| InboundError::Syntax { syntax: fmt.syntax.as_str(), problem };
    match fmt.syntax {
        Syntax::Json => Ok(vec![syntax::parse_json(raw).map_err(syntax_err)?]),
        Syntax::Csv => syntax::parse_csv(raw, fmt.delimiter).map_err(syntax_err),
        Syntax::Xml => {
            let (name, node) = syntax::parse_xml(raw).map_err(syntax_err)?;
            let root = fmt.root.as_deref().unwrap_or_default();
            if name != root {
                return Err(InboundError::Mapping {
                    format: fmt.name.clone(),
                    problems: vec![Located::new(
                        node.loc().clone(),
                        format!("the document element is <{name}>; format {} documents are <{root}>", fmt.name),
                    )],
                });
            }
            Ok(vec![node])
        }
    }
}

/// Translates a document holding exactly one message, sent by `org`.
pub fn translate(fmt: &Format, raw: &[u8], org: &str) -> Result<Translated, InboundError> {
    let docs = parse(fmt, raw)?;
    let mapping_err = |problems| InboundError::Mapping { format: fmt.name.clone(), problems };
    match docs.as_slice() {
        [one] => document(fmt, one, org).map_err(mapping_err),
        [] => Err(mapping_err(vec![Located::new(
            Loc { row: Some(2), ..Loc::default() },
            "the document has a header but no data row",
        )])),
        [_, second, ..] => Err(mapping_err(vec![Located::new(
            second.loc().clone(),
            format!("one message per document: found {} rows (submit each row on its own)", docs.len()),
        )])),
    }
}

/// Reads a document the hub *delivered* in this format (what a
/// departmental system does with a delivery): the message types the format
/// receives, including those only the hub writes (a supervision alert),
/// which [`translate`] refuses as submissions.
pub fn received(fmt: &Format, raw: &[u8], org: &str) -> Result<Translated, InboundError> {
    let docs = parse(fmt, raw)?;
    let mapping_err = |problems| InboundError::Mapping { format: fmt.name.clone(), problems };
    match docs.as_slice() {
        [one] => read(fmt, one, org, Side::Receives).map_err(mapping_err),
        _ => translate(fmt, raw, org),
    }
}

/// Which of a format's message rules a document may match.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// What the department sends (a submission).
    Sends,
    /// What the department receives (a delivery).
    Receives,
}

/// Translates one parsed document.
pub fn document(fmt: &Format, doc: &Node, org: &str) -> Result<Translated, Vec<Located>> {
    read(fmt, doc, org, Side::Sends)
}

fn read(fmt: &Format, doc: &Node, org: &str, side: Side) -> Result<Translated, Vec<Located>> {
    let disc = match doc.lookup(&fmt.discriminator) {
        Ok(n) if !n.is_blank() => n,
        Ok(n) => return Err(vec![Located::new(n.loc().clone(), which(fmt, "is empty"))]),
        Err(loc) => return Err(vec![Located::new(loc, which(fmt, "is missing"))]),
    };
    let native = transform::text(&scalar(disc).unwrap_or(Value::Null));
    let found = match side {
        Side::Sends => fmt.inbound_message(&native),
        Side::Receives => fmt.messages.iter().find(|m| m.direction.outbound() && m.native == native),
    };
    let Some(msg) = found else {
        return Err(vec![Located::new(
            disc.loc().clone(),
            format!(
                "{native:?} is not a message format {} sends (known: {})",
                fmt.name,
                fmt.messages
                    .iter()
                    .filter(|m| m.direction.inbound())
                    .map(|m| m.native.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]);
    };
    let mut run = Run { fmt, problems: Vec::new(), prov: Provenance { root: doc.loc().clone(), entries: Vec::new() } };
    let mut message = Value::Object(Map::new());
    run.message(msg, doc, &mut message);
    if message.get("sender").is_none_or(Value::is_null) {
        message["sender"] = Value::String(org.to_string());
    }
    if run.problems.is_empty() {
        Ok(Translated { kind: msg.kind, native, message, provenance: run.prov })
    } else {
        Err(run.problems)
    }
}

fn which(fmt: &Format, what: &str) -> String {
    format!("{} {what}: it says which message this is", fmt.discriminator)
}

fn scalar(n: &Node) -> Option<Value> {
    n.value().cloned()
}

struct Run<'a> {
    fmt: &'a Format,
    problems: Vec<Located>,
    prov: Provenance,
}

impl Run<'_> {
    fn message(&mut self, msg: &Message, doc: &Node, out: &mut Value) {
        out["type"] = Value::String(msg.kind.as_str().into());
        for f in msg.fields.iter().filter(|f| f.direction.inbound()) {
            self.field(f, doc, out, "");
        }
        for l in msg.lists.iter().filter(|l| l.direction.inbound()) {
            self.list(l, doc, out);
        }
    }

    fn field(&mut self, f: &Field, node: &Node, out: &mut Value, prefix: &str) {
        let pointers: Vec<String> = f.to.iter().map(|t| pointer(prefix, t)).collect();
        if let Some(v) = &f.value {
            for t in &f.to {
                set(out, t, v.clone());
            }
            return;
        }
        let from = f.from.as_deref().unwrap_or(".");
        let found = node.lookup(from);
        let n = match found {
            Ok(n) if !n.is_blank() => n,
            Ok(n) => return self.absent(f, n.loc().clone(), &pointers, out),
            Err(loc) => return self.absent(f, loc, &pointers, out),
        };
        let Some(raw) = scalar(n) else {
            self.problems.push(Located::new(n.loc().clone(), format!("{from}: expected a value, found a group")));
            return;
        };
        for p in &pointers {
            self.prov.record(p.clone(), n.loc());
        }
        match &f.split {
            Some(sep) => {
                let s = transform::text(&raw);
                for (t, part) in f.to.iter().zip(s.splitn(f.to.len(), sep.as_str())) {
                    if !part.trim().is_empty() {
                        self.convert(f, &Value::String(part.trim().into()), n, out, t);
                    }
                }
            }
            None => self.convert(f, &raw, n, out, &f.to[0]),
        }
    }

    fn convert(&mut self, f: &Field, raw: &Value, n: &Node, out: &mut Value, to: &str) {
        match transform::inbound(f, self.fmt, raw) {
            Ok(v) => set(out, to, v),
            Err(e) => {
                let from = f.from.as_deref().unwrap_or(".");
                self.problems.push(Located::new(n.loc().clone(), format!("{from}: {e}")));
            }
        }
    }

    fn absent(&mut self, f: &Field, loc: Loc, pointers: &[String], out: &mut Value) {
        for p in pointers {
            self.prov.record(p.clone(), &loc);
        }
        if let Some(d) = &f.default {
            for t in &f.to {
                set(out, t, d.clone());
            }
        } else if f.required {
            let from = f.from.as_deref().unwrap_or(".");
            self.problems.push(Located::new(loc, format!("{from} is required and missing")));
        }
    }

    fn list(&mut self, l: &List, doc: &Node, out: &mut Value) {
        let list_ptr = pointer("", &l.to);
        // Items split out of one string are made here; repeated elements
        // and arrays are read where they are.
        let split: Vec<Node>;
        let items: Vec<&Node> = match &l.split {
            Some(sep) => match doc.lookup(&l.from) {
                Ok(cell) if !cell.is_blank() => match scalar(cell) {
                    Some(v) => {
                        split = split_items(&transform::text(&v), sep, l.parts.as_deref(), cell.loc());
                        split.iter().collect()
                    }
                    None => {
                        self.problems.push(Located::new(cell.loc().clone(), format!("{}: expected text", l.from)));
                        return;
                    }
                },
                Ok(cell) => return self.absent_list(l, cell.loc().clone(), list_ptr),
                Err(loc) => return self.absent_list(l, loc, list_ptr),
            },
            None => match doc.items(&l.from) {
                Ok(items) => items,
                Err(loc) => return self.absent_list(l, loc, list_ptr),
            },
        };
        if let Some(first) = items.first() {
            self.prov.record(list_ptr.clone(), first.loc());
        }
        let mut array = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut obj = Value::Object(Map::new());
            let prefix = format!("{list_ptr}/{i}");
            for f in l.fields.iter().filter(|f| f.direction.inbound()) {
                self.field(f, item, &mut obj, &prefix);
            }
            array.push(obj);
        }
        set(out, &l.to, Value::Array(array));
    }

    fn absent_list(&mut self, l: &List, loc: Loc, list_ptr: String) {
        self.prov.record(list_ptr, &loc);
        if l.required {
            self.problems.push(Located::new(loc, format!("{} is required and missing", l.from)));
        }
    }
}

/// Items of a list held in one string: `张三:990101;李四:990102` with
/// `split = ";"`, `parts = ":"` gives maps `{"1": "张三", "2": "990101"}`.
fn split_items(s: &str, sep: &str, parts: Option<&str>, loc: &Loc) -> Vec<Node> {
    s.split(sep)
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|item| match parts {
            Some(p) => Node::Map(
                item.split(p)
                    .enumerate()
                    .map(|(k, part)| {
                        ((k + 1).to_string(), Node::Scalar(Value::String(part.trim().into()), loc.clone()))
                    })
                    .collect(),
                loc.clone(),
            ),
            None => Node::Scalar(Value::String(item.into()), loc.clone()),
        })
        .collect()
}

/// Canonical pointer of a mapping path under `prefix`.
fn pointer(prefix: &str, path: &str) -> String {
    if path == "." {
        return prefix.to_string();
    }
    let mut p = prefix.to_string();
    for seg in segments(path) {
        p.push('/');
        p.push_str(seg);
    }
    p
}

/// Sets a canonical path (`body/party/name`; `.` replaces `out` itself).
pub(crate) fn set(out: &mut Value, path: &str, v: Value) {
    if path == "." {
        *out = v;
        return;
    }
    let segs: Vec<&str> = segments(path).collect();
    let Some((last, parents)) = segs.split_last() else { return };
    let mut cur = out;
    for seg in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        map.insert(last.to_string(), v);
    }
}

/// Reads a canonical path (`.` is the value itself).
pub(crate) fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in segments(path).filter(|s| *s != ".") {
        cur = cur.get(seg)?;
    }
    (!cur.is_null()).then_some(cur)
}
