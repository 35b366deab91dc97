//! The native document as a tree, whatever its syntax: JSON objects, XML
//! elements and CSV rows all become [`Node`]s, each remembering where in the
//! native document it stood ([`Loc`]), so every problem found later can be
//! shown to the sender in terms of its own document.

use serde::Serialize;
use serde_json::Value;

/// Where something is in a native document: a JSON pointer, an XPath-like
/// path (`/HBXX/ZTXX/DSR[2]/MC`, attributes as `/@name`) with its line, or a
/// CSV row and column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Loc {
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
}

impl Loc {
    pub fn at(pointer: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), ..Self::default() }
    }

    /// True when a reader can find the place: a path, a line or a row.
    pub fn is_located(&self) -> bool {
        !self.pointer.is_empty() || self.line.is_some() || self.row.is_some()
    }
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.pointer.is_empty() { "/" } else { &self.pointer })?;
        match (self.line, self.row, self.column) {
            (Some(l), _, Some(c)) => write!(f, " (line {l}, column {c})"),
            (Some(l), _, None) => write!(f, " (line {l})"),
            (None, Some(r), Some(c)) => write!(f, " (row {r}, column {c})"),
            (None, Some(r), None) => write!(f, " (row {r})"),
            _ => Ok(()),
        }
    }
}

/// One node of a native document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A value: string, number or boolean (`null` reads as absent).
    Scalar(Value, Loc),
    /// Named children in document order; a name may repeat (XML siblings).
    Map(Vec<(String, Node)>, Loc),
    /// A JSON array.
    List(Vec<Node>, Loc),
}

impl Node {
    pub fn empty_map() -> Self {
        Node::Map(Vec::new(), Loc::default())
    }

    pub fn loc(&self) -> &Loc {
        match self {
            Node::Scalar(_, l) | Node::Map(_, l) | Node::List(_, l) => l,
        }
    }

    /// An absent value: `null`, an empty string (an empty XML element or CSV
    /// cell) or a string of blanks.
    pub fn is_blank(&self) -> bool {
        match self {
            Node::Scalar(Value::Null, _) => true,
            Node::Scalar(Value::String(s), _) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The first child called `name` (or the item at a numeric index of a list).
    pub fn child(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Map(entries, _) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            Node::List(items, _) => name.parse::<usize>().ok().and_then(|i| items.get(i)),
            // An element with text only is a scalar; its text is also `#text`.
            Node::Scalar(..) if name == "#text" => Some(self),
            Node::Scalar(..) => None,
        }
    }

    /// The node at `path` (segments separated by `/`, `.` for this node).
    /// When absent: where it should have been, located from the deepest node
    /// on the way.
    pub fn lookup<'a>(&'a self, path: &str) -> Result<&'a Node, Loc> {
        let mut cur = self;
        let segs: Vec<&str> = segments(path).filter(|s| *s != ".").collect();
        for (i, seg) in segs.iter().enumerate() {
            match cur.child(seg) {
                Some(n) => cur = n,
                None => return Err(missing(cur.loc(), &segs[i..])),
            }
        }
        Ok(cur)
    }

    /// The items of a repeated group at `path`: every sibling with the last
    /// segment's name (XML), or the elements of the array there (JSON).
    pub fn items<'a>(&'a self, path: &str) -> Result<Vec<&'a Node>, Loc> {
        let segs: Vec<&str> = segments(path).collect();
        let Some((last, parents)) = segs.split_last() else {
            return Err(self.loc().clone());
        };
        let mut cur = self;
        for (i, seg) in parents.iter().enumerate() {
            match cur.child(seg) {
                Some(n) => cur = n,
                None => return Err(missing(cur.loc(), &segs[i..])),
            }
        }
        let Node::Map(entries, _) = cur else { return Err(missing(cur.loc(), &[last])) };
        let found: Vec<&Node> = entries.iter().filter(|(k, _)| k == last).map(|(_, v)| v).collect();
        match found.as_slice() {
            [] => Err(missing(cur.loc(), &[last])),
            [Node::List(items, _)] => Ok(items.iter().collect()),
            _ => Ok(found),
        }
    }

    /// Sets `path` to `value`, creating groups on the way (outbound).
    pub fn set(&mut self, path: &str, value: Node) {
        let segs: Vec<&str> = segments(path).collect();
        let Some((last, parents)) = segs.split_last() else {
            return;
        };
        let mut cur = self;
        for seg in parents {
            cur.make_map();
            let Node::Map(entries, _) = cur else { return };
            let idx = match entries.iter().position(|(k, _)| k == seg) {
                Some(i) => i,
                None => {
                    entries.push((seg.to_string(), Node::empty_map()));
                    entries.len() - 1
                }
            };
            cur = &mut entries[idx].1;
        }
        cur.make_map();
        if let Node::Map(entries, _) = cur {
            match entries.iter_mut().find(|(k, _)| k == last) {
                // An element that already has attributes gets its text as `#text`.
                Some((_, slot @ Node::Map(..))) if matches!(value, Node::Scalar(..)) => slot.set("#text", value),
                Some(slot) => slot.1 = value,
                None => entries.push((last.to_string(), value)),
            }
        }
    }

    /// Turns a scalar into a group holding it as `#text` (an element that
    /// gets attributes or children after its text).
    fn make_map(&mut self) {
        if let Node::Scalar(v, loc) = self {
            let text = std::mem::take(v);
            let loc = std::mem::take(loc);
            let entries =
                if text.is_null() { Vec::new() } else { vec![("#text".to_string(), Node::Scalar(text, loc.clone()))] };
            *self = Node::Map(entries, loc);
        }
    }

    /// The value of a scalar, or the `#text` of an element with attributes.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Node::Scalar(v, _) => Some(v),
            Node::Map(..) => match self.child("#text") {
                Some(Node::Scalar(v, _)) => Some(v),
                _ => None,
            },
            Node::List(..) => None,
        }
    }

    /// The tree as plain JSON (a JSON native document, or for display).
    pub fn to_json(&self) -> Value {
        match self {
            Node::Scalar(v, _) => v.clone(),
            Node::List(items, _) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Map(entries, _) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// The place of an absent node: its would-be path, the line or row of the
/// deepest node that is there.
fn missing(at: &Loc, rest: &[&str]) -> Loc {
    let mut pointer = at.pointer.clone();
    for seg in rest {
        pointer.push('/');
        pointer.push_str(&escape_token(seg));
    }
    Loc { pointer, line: at.line, row: at.row, column: None }
}

/// The segments of a mapping path: `a/b/c`.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// RFC 6901 escaping of one pointer token.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
