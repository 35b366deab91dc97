//! Native → canonical. Every problem is collected (not just the first) and
//! located in the native document; every canonical field written remembers
//! the native place it came from ([`Provenance`]), so a problem the
//! canonical schema finds later can be shown where the sender can fix it.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included};

use serde_json::{Map, Value};
use xj_model::MessageType;

use crate::error::{Exceeded, InboundError, Located};
use crate::format::{Field, Format, List, Message};
use crate::node::{Loc, Node, segments};
use crate::spec::Syntax;
use crate::syntax::{self, Limits};
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
    /// Native places in the order they were recorded.
    places: Vec<Loc>,
    /// Canonical pointer (`/body/party/uscc`) → its first and last index in
    /// `places`. A message with a long list has problems and origins by the
    /// thousand; scanning every origin for every problem would be quadratic.
    index: BTreeMap<String, (usize, usize)>,
}

impl Provenance {
    /// The native place of a canonical pointer: the field it came from, or
    /// the field that would have given it, or the nearest enclosing one.
    pub fn locate(&self, pointer: &str) -> Loc {
        if let Some((first, _)) = self.index.get(pointer) {
            return self.places[*first].clone();
        }
        // The earliest origin inside `pointer`: its keys are exactly those
        // from `pointer/` up to (not including) `pointer0`, as '0' follows '/'.
        let (lo, hi) = (format!("{pointer}/"), format!("{pointer}0"));
        if let Some(first) =
            self.index.range::<str, _>((Included(lo.as_str()), Excluded(hi.as_str()))).map(|(_, i)| i.0).min()
        {
            return self.places[first].clone();
        }
        // The nearest origin enclosing it, the one recorded last if several.
        let mut outer = pointer;
        while let Some(cut) = outer.rfind('/') {
            outer = &outer[..cut];
            if let Some((_, last)) = self.index.get(outer) {
                return self.places[*last].clone();
            }
        }
        self.root.clone()
    }

    fn record(&mut self, canonical: String, loc: &Loc) {
        let i = self.places.len();
        self.index.entry(canonical).and_modify(|e| e.1 = i).or_insert((i, i));
        self.places.push(loc.clone());
    }
}

/// The native documents in `raw` (one, except a CSV export with several rows).
pub fn parse(fmt: &Format, raw: &[u8]) -> Result<Vec<Node>, InboundError> {
    parse_with(fmt, raw, &Limits::default())
}

/// [`parse`] within other limits than the defaults (an offline reader of a
/// large export, a test).
pub fn parse_with(fmt: &Format, raw: &[u8], limits: &Limits) -> Result<Vec<Node>, InboundError> {
    let syntax_err = |problem: Located| InboundError::Syntax { syntax: fmt.syntax.as_str(), problem };
    match fmt.syntax {
        Syntax::Json => Ok(vec![syntax::parse_json_with(raw, limits).map_err(syntax_err)?]),
        Syntax::Csv => syntax::parse_csv_with(raw, fmt.delimiter, limits).map_err(syntax_err),
        Syntax::Xml => {
            let (name, node) = syntax::parse_xml_with(raw, limits).map_err(syntax_err)?;
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
    let prov = Provenance { root: doc.loc().clone(), ..Provenance::default() };
    let mut run = Run { fmt, problems: Vec::new(), prov, limits: Limits::default() };
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
    /// Items split out of one cell are nodes the parser never counted.
    limits: Limits,
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
                        let text = transform::text(&v);
                        match split_items(&text, sep, l.parts.as_deref(), cell.loc(), self.limits.max_nodes) {
                            Ok(items) => split = items,
                            Err(e) => {
                                self.problems.push(Located::new(cell.loc().clone(), format!("{}: {e}", l.from)));
                                return;
                            }
                        }
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
/// Every item and part copies the cell's place, so a cell of separators
/// alone could cost far more memory than it is long: at most `max_nodes`.
fn split_items(s: &str, sep: &str, parts: Option<&str>, loc: &Loc, max_nodes: usize) -> Result<Vec<Node>, Exceeded> {
    let mut made = 0usize;
    let mut count = |n: usize| {
        made += n;
        if made > max_nodes { Err(Exceeded::Nodes { max: max_nodes, what: "items and parts" }) } else { Ok(()) }
    };
    let mut out = Vec::new();
    for item in s.split(sep).map(str::trim).filter(|i| !i.is_empty()) {
        count(1)?;
        let node = match parts {
            Some(p) => {
                let mut entries = Vec::new();
                for (k, part) in item.split(p).enumerate() {
                    count(1)?;
                    entries.push(((k + 1).to_string(), Node::Scalar(Value::String(part.trim().into()), loc.clone())));
                }
                Node::Map(entries, loc.clone())
            }
            None => Node::Scalar(Value::String(item.into()), loc.clone()),
        };
        out.push(node);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u64) -> Loc {
        Loc { pointer: format!("/l{line}"), line: Some(line), ..Loc::default() }
    }

    #[test]
    fn a_pointer_is_placed_where_it_came_from_or_nearest() {
        let mut p = Provenance { root: at(1), ..Provenance::default() };
        p.record("/body/party".into(), &at(2));
        p.record("/body/officers/0/name".into(), &at(3));
        p.record("/body/officers/0/cert_no".into(), &at(4));
        p.record("/body/officers/1/name".into(), &at(5));
        p.record("/body/party".into(), &at(6));
        // Recorded twice: the first place.
        assert_eq!(p.locate("/body/party").line, Some(2));
        // Holding recorded fields: the earliest of them.
        assert_eq!(p.locate("/body/officers").line, Some(3));
        assert_eq!(p.locate("/body/officers/1").line, Some(5));
        // Inside a recorded field: the field, its last place if recorded twice.
        assert_eq!(p.locate("/body/party/uscc").line, Some(6));
        assert_eq!(p.locate("/body/officers/0/cert_no/x").line, Some(4));
        // A sibling whose name only starts like a recorded one is not inside it.
        assert_eq!(p.locate("/body/officers/0/cert").line, Some(1));
        assert_eq!(p.locate("/body/partyx").line, Some(1));
        // Nowhere near: the document.
        assert_eq!(p.locate("/sent_at").line, Some(1));
    }
}
