//! Reading native documents into [`Node`] trees with locations, and writing
//! trees back, with real parsers: serde_json, quick-xml and csv.

use std::borrow::Cow;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;

use crate::error::Located;
use crate::node::{Loc, Node, escape_token};

/// Strips a UTF-8 byte-order mark (spreadsheet exports start with one).
fn strip_bom(raw: &[u8]) -> &[u8] {
    raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
}

/// The text of a document, or where it stops being UTF-8.
fn utf8(raw: &[u8]) -> Result<&str, Located> {
    std::str::from_utf8(raw).map_err(|e| {
        let before = &raw[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = before.rsplit(|b| *b == b'\n').next().map_or(0, |l| l.len()) as u64 + 1;
        Located::new(
            Loc { line: Some(line), column: Some(column), ..Loc::default() },
            "not UTF-8 text (the hub reads native documents in UTF-8)",
        )
    })
}

// ---- JSON -------------------------------------------------------------

pub fn parse_json(raw: &[u8]) -> Result<Node, Located> {
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
    Ok(json_node(value, String::new()))
}

fn json_node(v: Value, pointer: String) -> Node {
    match v {
        Value::Object(map) => {
            let entries = map
                .into_iter()
                .map(|(k, v)| {
                    let p = format!("{pointer}/{}", escape_token(&k));
                    (k, json_node(v, p))
                })
                .collect();
            Node::Map(entries, Loc::at(pointer))
        }
        Value::Array(items) => {
            let items = items.into_iter().enumerate().map(|(i, v)| json_node(v, format!("{pointer}/{i}"))).collect();
            Node::List(items, Loc::at(pointer))
        }
        scalar => Node::Scalar(scalar, Loc::at(pointer)),
    }
}

pub fn write_json(node: &Node) -> Vec<u8> {
    serde_json::to_vec(&node.to_json()).unwrap_or_default()
}

// ---- XML --------------------------------------------------------------

/// Deepest XML nesting accepted (JSON's parser stops at 128 by itself).
const MAX_DEPTH: usize = 64;

struct Frame {
    name: String,
    entries: Vec<(String, Node)>,
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
    let text = utf8(strip_bom(raw))?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut lines = Lines { text: text.as_bytes(), pos: 0, line: 1 };
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Node)> = None;
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
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(err(line, "content after the document element".into()));
            }
            Event::Start(e) => {
                // Trees are dropped and walked recursively: a hostile
                // document must not get deep enough to exhaust the stack.
                if stack.len() >= MAX_DEPTH {
                    return Err(err(line, format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
                let frame = open(&e, &stack, line).map_err(|m| err(line, m))?;
                stack.push(frame);
            }
            Event::Empty(e) => {
                let frame = open(&e, &stack, line).map_err(|m| err(line, m))?;
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

fn open(e: &BytesStart<'_>, stack: &[Frame], line: u64) -> Result<Frame, String> {
    let name = std::str::from_utf8(e.name().as_ref()).map_err(|_| "element name is not UTF-8".to_string())?.to_string();
    let pointer = match stack.last() {
        None => format!("/{name}"),
        Some(parent) => {
            let n = parent.entries.iter().filter(|(k, _)| k == &name).count();
            if n == 0 {
                format!("{}/{name}", parent.loc.pointer)
            } else {
                format!("{}/{name}[{}]", parent.loc.pointer, n + 1)
            }
        }
    };
    let loc = Loc { pointer, line: Some(line), ..Loc::default() };
    let mut entries = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| "attribute name is not UTF-8".to_string())?;
        let value = a.unescape_value().map_err(|e| e.to_string())?;
        let aloc = Loc { pointer: format!("{}/@{key}", loc.pointer), line: Some(line), ..Loc::default() };
        entries.push((format!("@{key}"), Node::Scalar(Value::String(value.into_owned()), aloc)));
    }
    Ok(Frame { name, entries, text: String::new(), loc })
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
    for (i, h) in headers.iter().enumerate() {
        if headers[..i].contains(h) {
            return Err(Located::new(
                Loc { pointer: format!("/{}", escape_token(h)), row: Some(1), column: Some(i as u64 + 1), line: None },
                format!("column {h:?} appears twice in the header"),
            ));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let row = record.position().map_or(0, |p| p.line());
        let entries = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .map(|(i, (h, cell))| {
                let loc = Loc {
                    pointer: format!("/{}", escape_token(h)),
                    row: Some(row),
                    column: Some(i as u64 + 1),
                    line: None,
                };
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
