//! Reading native documents into [`Node`] trees with locations, and writing
//! trees back, with real parsers: serde_json, quick-xml and csv.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;

use crate::error::{Exceeded, Located};
use crate::node::{Loc, Node, escape_token};

/// What one native document may make the reader do. Real submissions are a
/// few kilobytes with a few hundred fields; the defaults leave two orders of
/// magnitude of room and still bound the time and memory a hostile document
/// can cost (a tree holds about `max_nodes × max_path` bytes of places at
/// worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the whole document.
    pub max_bytes: usize,
    /// Levels of nesting: elements (XML), values (JSON, where `{"a": 1}`
    /// is two deep like `<d><a>1</a></d>`).
    pub max_depth: usize,
    /// Elements and attributes (XML), values (JSON), cells (CSV) and items
    /// split out of one cell.
    pub max_nodes: usize,
    /// Bytes of one place's path (`/GAXX/YSS/ZFRY/RY[2]/ZJH`, a JSON
    /// pointer, `/` and a CSV header): every node keeps its own copy.
    pub max_path: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 4 << 20, max_depth: 64, max_nodes: 100_000, max_path: 512 }
    }
}

/// Strips a UTF-8 byte-order mark (spreadsheet exports start with one).
fn strip_bom(raw: &[u8]) -> &[u8] {
    raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
}

/// Line and column (1-based, column in bytes) of byte `pos`.
fn line_col(raw: &[u8], pos: usize) -> (u64, u64) {
    let before = &raw[..pos.min(raw.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let column = before.rsplit(|b| *b == b'\n').next().map_or(0, |l| l.len()) as u64 + 1;
    (line, column)
}

/// The text of a document, or where it stops being UTF-8.
fn utf8(raw: &[u8]) -> Result<&str, Located> {
    std::str::from_utf8(raw).map_err(|e| {
        let (line, column) = line_col(raw, e.valid_up_to());
        Located::new(
            Loc { line: Some(line), column: Some(column), ..Loc::default() },
            "not UTF-8 text (the hub reads native documents in UTF-8)",
        )
    })
}

/// Refuses a document over `max_bytes` before reading any of it, placed at
/// the line where the limit falls.
fn check_size(raw: &[u8], limits: &Limits) -> Result<(), Located> {
    if raw.len() <= limits.max_bytes {
        return Ok(());
    }
    let (line, _) = line_col(raw, limits.max_bytes);
    let e = Exceeded::Size { size: raw.len(), max: limits.max_bytes };
    Err(Located::new(Loc { line: Some(line), ..Loc::default() }, e.to_string()))
}

// ---- JSON -------------------------------------------------------------

pub fn parse_json(raw: &[u8]) -> Result<Node, Located> {
    parse_json_with(raw, &Limits::default())
}

pub fn parse_json_with(raw: &[u8], limits: &Limits) -> Result<Node, Located> {
    check_size(raw, limits)?;
    let value: Value = serde_json::from_slice(strip_bom(raw)).map_err(|e| {
        Located::new(
            Loc { line: Some(e.line() as u64), column: Some(e.column() as u64), ..Loc::default() },
            e.to_string(),
        )
    })?;
    if !value.is_object() {
        let start = Loc { line: Some(1), column: Some(1), ..Loc::default() };
        return Err(Located::new(start, "the document must be a JSON object"));
    }
    let body = strip_bom(raw);
    let (line, column) = line_col(body, leading_ws(body));
    let mut tree = JsonTree { limits, nodes: 0, start: (line, column) };
    tree.node(value, String::new(), 1)
}

/// Counts what a JSON document becomes while it becomes it.
struct JsonTree<'a> {
    limits: &'a Limits,
    nodes: usize,
    /// Where the document object begins: the place of a problem with the
    /// object itself, whose pointer is empty.
    start: (u64, u64),
}

impl JsonTree<'_> {
    fn node(&mut self, v: Value, pointer: String, depth: usize) -> Result<Node, Located> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            let e = Exceeded::Nodes { max: self.limits.max_nodes, what: "values" };
            return Err(Located::new(self.at(&pointer), e.to_string()));
        }
        if depth > self.limits.max_depth {
            let e = Exceeded::Depth { max: self.limits.max_depth };
            return Err(Located::new(self.at(&pointer), e.to_string()));
        }
        match v {
            Value::Object(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let p = self.child_pointer(&pointer, &escape_token(&k), &k)?;
                    let child = self.node(v, p, depth + 1)?;
                    entries.push((k, child));
                }
                Ok(Node::Map(entries, Loc::at(pointer)))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.into_iter().enumerate() {
                    let token = i.to_string();
                    let p = self.child_pointer(&pointer, &token, &token)?;
                    out.push(self.node(v, p, depth + 1)?);
                }
                Ok(Node::List(out, Loc::at(pointer)))
            }
            scalar => Ok(Node::Scalar(scalar, Loc::at(pointer))),
        }
    }

    /// The pointer of a member, or a refusal placed at its parent (whose
    /// pointer is still short enough to show).
    fn child_pointer(&self, parent: &str, token: &str, name: &str) -> Result<String, Located> {
        let len = parent.len() + 1 + token.len();
        if len > self.limits.max_path {
            let e = Exceeded::path(name, len, self.limits.max_path);
            return Err(Located::new(self.at(parent), e.to_string()));
        }
        Ok(format!("{parent}/{token}"))
    }

    fn at(&self, pointer: &str) -> Loc {
        if pointer.is_empty() {
            let (line, column) = self.start;
            Loc { line: Some(line), column: Some(column), ..Loc::default() }
        } else {
            Loc::at(pointer)
        }
    }
}

pub fn write_json(node: &Node) -> Vec<u8> {
    serde_json::to_vec(&node.to_json()).unwrap_or_default()
}

// ---- XML --------------------------------------------------------------

struct Frame {
    name: String,
    entries: Vec<(String, Node)>,
    /// Children opened so far, by name: the `[n]` of the next one. Counting
    /// earlier siblings instead is quadratic in a flat document.
    seen: HashMap<String, usize>,
    text: String,
    loc: Loc,
}

/// Counts lines incrementally: positions only move forward.
struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, pos: usize) -> u64 {
        let pos = pos.min(self.text.len());
        if pos > self.pos {
            self.line += self.text[self.pos..pos].iter().filter(|b| **b == b'\n').count() as u64;
            self.pos = pos;
        }
        self.line
    }
}

/// Parses an XML document; returns its document element's name and node.
pub fn parse_xml(raw: &[u8]) -> Result<(String, Node), Located> {
    parse_xml_with(raw, &Limits::default())
}

pub fn parse_xml_with(raw: &[u8], limits: &Limits) -> Result<(String, Node), Located> {
    check_size(raw, limits)?;
    let text = utf8(strip_bom(raw))?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut lines = Lines { text: text.as_bytes(), pos: 0, line: 1 };
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Node)> = None;
    let mut nodes = 0usize;
    let err = |line: u64, message: String| Located::new(Loc { line: Some(line), ..Loc::default() }, message);
    loop {
        let start = reader.buffer_position() as usize;
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let line = lines.at(reader.error_position() as usize);
                return Err(err(line, e.to_string()));
            }
        };
        // The event itself may begin after whitespace the reader skipped.
        let line = lines.at(start + leading_ws(&text.as_bytes()[start.min(text.len())..]));
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(err(line, "content after the document element".into()));
            }
            Event::Start(_) | Event::Empty(_) if stack.len() >= limits.max_depth => {
                // Trees are dropped and walked recursively: a hostile
                // document must not get deep enough to exhaust the stack.
                return Err(err(line, Exceeded::Depth { max: limits.max_depth }.to_string()));
            }
            Event::Start(e) => {
                let frame = open(&e, &mut stack, line, limits, &mut nodes).map_err(|m| err(line, m))?;
                stack.push(frame);
            }
            Event::Empty(e) => {
                let frame = open(&e, &mut stack, line, limits, &mut nodes).map_err(|m| err(line, m))?;
                close(frame, &mut stack, &mut root);
            }
            Event::End(_) => {
                let Some(frame) = stack.pop() else {
                    return Err(err(line, "an end tag without a start tag".into()));
                };
                close(frame, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| err(line, e.to_string()))?;
                match stack.last_mut() {
                    Some(f) => f.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(err(line, "text outside the document element".into())),
                }
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| err(line, e.to_string()))?;
                match stack.last_mut() {
                    Some(f) => f.text.push_str(&s),
                    None => return Err(err(line, "CDATA outside the document element".into())),
                }
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| err(line, e.to_string()))?;
                let resolved: Cow<str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => Cow::Borrowed(s),
                        None => return Err(err(line, format!("unknown entity &{name};"))),
                    },
                    Err(e) => return Err(err(line, e.to_string())),
                };
                match stack.last_mut() {
                    Some(f) => f.text.push_str(&resolved),
                    None => return Err(err(line, "a reference outside the document element".into())),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        let line = lines.at(text.len());
        return Err(err(line, format!("the document ends inside <{}>", open.name)));
    }
    root.ok_or_else(|| err(1, "no document element".into()))
}

fn leading_ws(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_whitespace()).count()
}

/// The frame of an element just opened below the top of `stack`; counts it
/// and its attributes against the limits.
fn open(
    e: &BytesStart<'_>,
    stack: &mut [Frame],
    line: u64,
    limits: &Limits,
    nodes: &mut usize,
) -> Result<Frame, String> {
    let too_many = || Exceeded::Nodes { max: limits.max_nodes, what: "elements and attributes" }.to_string();
    *nodes += 1;
    if *nodes > limits.max_nodes {
        return Err(too_many());
    }
    let name = std::str::from_utf8(e.name().into_inner()).map_err(|_| "element name is not UTF-8".to_string())?;
    let pointer = match stack.last_mut() {
        None => path(String::new(), name, None, limits)?,
        Some(parent) => {
            let n = match parent.seen.get_mut(name) {
                Some(n) => {
                    *n += 1;
                    *n
                }
                None => {
                    parent.seen.insert(name.to_string(), 1);
                    1
                }
            };
            path(parent.loc.pointer.clone(), name, (n > 1).then_some(n), limits)?
        }
    };
    let loc = Loc { pointer, line: Some(line), ..Loc::default() };
    let mut entries = Vec::new();
    let mut keys = HashSet::new();
    // quick-xml's own duplicate check compares each attribute with every
    // earlier one: quadratic in a tag with many of them.
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| e.to_string())?;
        *nodes += 1;
        if *nodes > limits.max_nodes {
            return Err(too_many());
        }
        let key = std::str::from_utf8(a.key.into_inner()).map_err(|_| "attribute name is not UTF-8".to_string())?;
        // Before the repeat check, which names the attribute in full.
        let apointer = path(loc.pointer.clone(), &format!("@{key}"), None, limits)?;
        if !keys.insert(key) {
            return Err(format!("attribute {key:?} appears twice in <{name}>"));
        }
        let value = a.unescape_value().map_err(|e| e.to_string())?;
        let aloc = Loc { pointer: apointer, line: Some(line), ..Loc::default() };
        entries.push((format!("@{key}"), Node::Scalar(Value::String(value.into_owned()), aloc)));
    }
    Ok(Frame { name: name.to_string(), entries, seen: HashMap::new(), text: String::new(), loc })
}

/// `parent/name` or `parent/name[index]`, within `max_path`.
fn path(mut parent: String, name: &str, index: Option<usize>, limits: &Limits) -> Result<String, String> {
    let suffix = index.map(|i| format!("[{i}]")).unwrap_or_default();
    let len = parent.len() + 1 + name.len() + suffix.len();
    if len > limits.max_path {
        return Err(Exceeded::path(name, len, limits.max_path).to_string());
    }
    parent.push('/');
    parent.push_str(name);
    parent.push_str(&suffix);
    Ok(parent)
}

fn close(frame: Frame, stack: &mut [Frame], root: &mut Option<(String, Node)>) {
    let text = frame.text.trim().to_string();
    let node = if frame.entries.is_empty() {
        Node::Scalar(Value::String(text), frame.loc)
    } else {
        let mut entries = frame.entries;
        if !text.is_empty() {
            entries.push(("#text".into(), Node::Scalar(Value::String(text), frame.loc.clone())));
        }
        Node::Map(entries, frame.loc)
    };
    match stack.last_mut() {
        Some(parent) => parent.entries.push((frame.name, node)),
        None => *root = Some((frame.name, node)),
    }
}

pub fn write_xml(root: &str, node: &Node) -> Vec<u8> {
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    write_element(&mut w, root, node);
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn write_element(w: &mut quick_xml::Writer<Vec<u8>>, name: &str, node: &Node) {
    match node {
        Node::List(items, _) => {
            for item in items {
                write_element(w, name, item);
            }
        }
        Node::Scalar(v, _) => {
            let text = scalar_text(v);
            if text.is_empty() {
                let _ = w.write_event(Event::Empty(BytesStart::new(name)));
            } else {
                let _ = w.write_event(Event::Start(BytesStart::new(name)));
                let _ = w.write_event(Event::Text(BytesText::new(&text)));
                let _ = w.write_event(Event::End(BytesEnd::new(name)));
            }
        }
        Node::Map(entries, _) => {
            let mut start = BytesStart::new(name);
            for (k, v) in entries {
                if let (Some(attr), Node::Scalar(v, _)) = (k.strip_prefix('@'), v) {
                    start.push_attribute((attr, scalar_text(v).as_str()));
                }
            }
            let children: Vec<&(String, Node)> = entries.iter().filter(|(k, _)| !k.starts_with('@')).collect();
            if children.is_empty() {
                let _ = w.write_event(Event::Empty(start));
                return;
            }
            let _ = w.write_event(Event::Start(start));
            for (k, v) in children {
                if k == "#text" {
                    if let Node::Scalar(v, _) = v {
                        let _ = w.write_event(Event::Text(BytesText::new(&scalar_text(v))));
                    }
                } else {
                    write_element(w, k, v);
                }
            }
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
    }
}

// ---- CSV --------------------------------------------------------------

/// Every data row of a CSV document (a header line, then rows), each as a
/// map from column name to cell.
pub fn parse_csv(raw: &[u8], delimiter: u8) -> Result<Vec<Node>, Located> {
    parse_csv_with(raw, delimiter, &Limits::default())
}

pub fn parse_csv_with(raw: &[u8], delimiter: u8, limits: &Limits) -> Result<Vec<Node>, Located> {
    if let Err(mut e) = check_size(raw, limits) {
        // CSV places are rows; the reader's rows are its line numbers.
        e.loc.row = e.loc.line.take();
        return Err(e);
    }
    let text = utf8(strip_bom(raw))?;
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(false).from_reader(text.as_bytes());
    let csv_err = |e: csv::Error| {
        let (row, column) = match e.position() {
            Some(p) => (Some(p.line()), None),
            None => (None, None),
        };
        let message = match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("this row has {len} fields, the header has {expected_len}")
            }
            _ => e.to_string(),
        };
        Located::new(Loc { row: row.or(Some(1)), column, ..Loc::default() }, message)
    };
    let headers: Vec<String> = reader.headers().map_err(csv_err)?.iter().map(|h| h.trim().to_string()).collect();
    if headers.iter().all(String::is_empty) {
        return Err(Located::new(Loc { row: Some(1), ..Loc::default() }, "no header line"));
    }
    let header_loc = |i: usize, pointer: String| Loc { pointer, row: Some(1), column: Some(i as u64 + 1), line: None };
    let mut pointers = Vec::with_capacity(headers.len());
    let mut seen = HashSet::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let pointer = format!("/{}", escape_token(h));
        if pointer.len() > limits.max_path {
            let e = Exceeded::path(h, pointer.len(), limits.max_path);
            return Err(Located::new(header_loc(i, String::new()), e.to_string()));
        }
        if !seen.insert(h.as_str()) {
            return Err(Located::new(header_loc(i, pointer), format!("column {h:?} appears twice in the header")));
        }
        pointers.push(pointer);
    }
    let mut rows = Vec::new();
    let mut cells = 0usize;
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let row = record.position().map_or(0, |p| p.line());
        cells += headers.len();
        if cells > limits.max_nodes {
            let e = Exceeded::Nodes { max: limits.max_nodes, what: "cells" };
            return Err(Located::new(Loc { row: Some(row), ..Loc::default() }, e.to_string()));
        }
        let entries = headers
            .iter()
            .zip(&pointers)
            .zip(record.iter())
            .enumerate()
            .map(|(i, ((h, pointer), cell))| {
                let loc = Loc { pointer: pointer.clone(), row: Some(row), column: Some(i as u64 + 1), line: None };
                (h.clone(), Node::Scalar(Value::String(cell.to_string()), loc))
            })
            .collect();
        rows.push(Node::Map(entries, Loc { row: Some(row), ..Loc::default() }));
    }
    Ok(rows)
}

pub fn write_csv(columns: &[String], row: &Node, delimiter: u8) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
    let _ = w.write_record(columns);
    let cells: Vec<String> =
        columns.iter().map(|c| row.child(c).map(|n| scalar_text(&n.to_json())).unwrap_or_default()).collect();
    let _ = w.write_record(&cells);
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_locations_and_repeats() {
        let doc =
            "<?xml version=\"1.0\"?>\n<A v=\"1\">\n  <B>x &amp; y</B>\n  <B>z</B>\n  <C><![CDATA[<raw>]]></C>\n</A>\n";
        let (name, node) = parse_xml(doc.as_bytes()).unwrap();
        assert_eq!(name, "A");
        let items = node.items("B").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].to_json(), "x & y");
        assert_eq!(items[1].loc().pointer, "/A/B[2]");
        assert_eq!(items[1].loc().line, Some(4));
        assert_eq!(node.child("@v").unwrap().loc().pointer, "/A/@v");
        assert_eq!(node.child("C").unwrap().to_json(), "<raw>");
    }

    #[test]
    fn xml_errors_have_lines() {
        let e = parse_xml(b"<A>\n<B>\n</A>").unwrap_err();
        assert!(e.loc.line.is_some(), "{e}");
        let e = parse_xml(b"<A></A><B/>").unwrap_err();
        assert!(e.message.contains("after"), "{e}");
    }

    #[test]
    fn deep_xml_is_refused_not_overflowed() {
        let doc = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        let e = parse_xml(doc.as_bytes()).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn csv_rows_and_columns() {
        let rows = parse_csv("\u{feff}a,b\n1,2\n".as_bytes(), b',').unwrap();
        assert_eq!(rows.len(), 1);
        let b = rows[0].child("b").unwrap();
        assert_eq!((b.loc().row, b.loc().column), (Some(2), Some(2)));
        let e = parse_csv(b"a,b\n1,2,3\n", b',').unwrap_err();
        assert_eq!(e.loc.row, Some(2));
    }
}
