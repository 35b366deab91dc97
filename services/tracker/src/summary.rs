//! What of a message's body a case record keeps. The router copies body
//! fields into each `routed` event's summary, and a sender controls how
//! long they are: copied whole, a few large messages on one case would push
//! its record past what NATS stores in one message, and the case would stop
//! changing. So a record keeps a bounded summary of each message: the
//! fields the state machine reads come first, texts are cut (with a marker
//! saying how long they were), long lists and deep nesting are left out
//! (with a marker saying how much). The message itself stays whole in
//! `XJ_ACCEPTED`; the record says where (`seq`).

use serde_json::{Map, Value};

/// Body fields the state machine and the console read (a decision, a kind,
/// dates, the penalty): kept before any free text takes the budget.
const STATE_FIELDS: &[&str] = &[
    "decision",
    "kind",
    "due_basis",
    "decided_on",
    "approved_on",
    "reported_on",
    "inspection_on",
    "received_at",
    "designated",
    "transferred_to",
    "penalty",
    "sent_at",
    "classification",
    "complaint",
    "hearing",
    "month",
];

/// Bytes kept of one text (a title, a matter): enough to recognise it.
pub const TEXT_MAX: usize = 256;
/// Bytes kept of one field name.
const NAME_MAX: usize = 64;
/// Entries kept of one list or object.
pub const ITEMS_MAX: usize = 16;
/// Levels of nesting kept below the summary itself.
const DEPTH_MAX: usize = 4;
/// What one summary may take in all: texts, names, values, markers and
/// the JSON between them, give or take the last entry's marker.
pub const SUMMARY_MAX: usize = 4096;

/// Bytes charged for a number, a boolean or null.
const SCALAR: usize = 8;
/// Bytes charged for the quotes, colon and comma around each entry.
const SYNTAX: usize = 4;

/// The bounded copy of `summary` a case record keeps (see the module).
pub fn bounded(summary: &Value) -> Value {
    let mut left = SUMMARY_MAX;
    let Value::Object(fields) = summary else {
        return cut(summary, 0, &mut left);
    };
    let mut out = Map::new();
    let rest = fields.iter().filter(|(k, _)| !STATE_FIELDS.contains(&k.as_str()));
    let ordered = STATE_FIELDS.iter().filter_map(|k| fields.get_key_value(*k)).chain(rest);
    put_fields(&mut out, ordered, fields.len(), 0, &mut left);
    Value::Object(out)
}

fn cut(v: &Value, depth: usize, left: &mut usize) -> Value {
    match v {
        Value::String(s) => Value::String(text(s, TEXT_MAX, left)),
        Value::Array(items) => {
            if depth >= DEPTH_MAX {
                return left_out(items.len(), "entries");
            }
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if i >= ITEMS_MAX || *left == 0 {
                    out.push(left_out(items.len() - i, "more entries"));
                    break;
                }
                *left = left.saturating_sub(SYNTAX);
                out.push(cut(item, depth + 1, left));
            }
            Value::Array(out)
        }
        Value::Object(fields) => {
            if depth >= DEPTH_MAX {
                return left_out(fields.len(), "fields");
            }
            let mut out = Map::new();
            put_fields(&mut out, fields.iter(), fields.len(), depth, left);
            Value::Object(out)
        }
        scalar => {
            *left = left.saturating_sub(SCALAR);
            scalar.clone()
        }
    }
}

fn put_fields<'a>(
    out: &mut Map<String, Value>,
    fields: impl Iterator<Item = (&'a String, &'a Value)>,
    total: usize,
    depth: usize,
    left: &mut usize,
) {
    for (i, (name, v)) in fields.enumerate() {
        if i >= ITEMS_MAX || *left == 0 {
            out.insert("…".into(), left_out(total - i, "more fields"));
            return;
        }
        *left = left.saturating_sub(SYNTAX);
        let name = text(name, NAME_MAX, left);
        let v = cut(v, depth + 1, left);
        out.insert(name, v);
    }
}

/// `s` whole if it fits in `max` and the budget, else cut on a character
/// boundary and marked with its full length.
fn text(s: &str, max: usize, left: &mut usize) -> String {
    let room = max.min(*left);
    if s.len() <= room {
        *left -= s.len();
        return s.to_string();
    }
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let marked = format!("{}…[truncated, {} bytes in all]", &s[..end], s.len());
    *left = left.saturating_sub(marked.len());
    marked
}

fn left_out(n: usize, what: &str) -> Value {
    Value::String(format!("…[{n} {what} left out]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn size(v: &Value) -> usize {
        serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
    }

    #[test]
    fn small_summaries_are_kept_as_they_are() {
        let s = json!({ "decision": "accepted", "decided_on": "2026-11-21", "sent_at": "2026-11-21T10:00:00+08:00",
                        "penalty": { "kind": "fine", "amount": 5000 }, "title": "行政处罚决定书",
                        "items": [{ "name": "冻肉", "quantity": 3 }] });
        assert_eq!(bounded(&s), s);
    }

    #[test]
    fn a_huge_text_is_cut_and_marked() {
        let s =
            json!({ "due_basis": "joint_inspection", "inspection_on": "2026-12-01", "matter": "事".repeat(350_000) });
        let b = bounded(&s);
        assert_eq!(b["due_basis"], "joint_inspection");
        assert_eq!(b["inspection_on"], "2026-12-01");
        let matter = b["matter"].as_str().unwrap_or_default();
        assert!(matter.starts_with("事事事"), "{matter}");
        assert!(matter.ends_with("…[truncated, 1050000 bytes in all]"), "{matter}");
        assert!(size(&b) < 1024, "{}", size(&b));
    }

    #[test]
    fn the_state_fields_survive_whatever_else_comes() {
        // Names sorting before `decision` would take the budget first if
        // the fields were kept in their order.
        let mut s = json!({ "decision": "filed", "penalty": { "kind": "closure", "amount": 300000 } });
        for i in 0..40 {
            s[format!("a{i:02}")] = json!("x".repeat(10_000));
        }
        let b = bounded(&s);
        assert_eq!(b["decision"], "filed");
        assert_eq!(b["penalty"], json!({ "kind": "closure", "amount": 300000 }));
        assert!(b["…"].as_str().is_some_and(|m| m.contains("more fields left out")), "{b}");
    }

    #[test]
    fn any_shape_stays_within_the_budget() {
        let mut leaf = json!({ "n": 1 });
        leaf["k".repeat(1000)] = json!("v".repeat(1000));
        let mut deep = leaf.clone();
        for _ in 0..10 {
            deep = json!([deep.clone(), deep.clone(), "t".repeat(5000)]);
        }
        let wide: Vec<Value> = (0..1000).map(|_| leaf.clone()).collect();
        for s in [json!({ "items": wide, "title": deep.clone() }), deep, json!("z".repeat(1 << 20))] {
            let b = bounded(&s);
            assert!(size(&b) <= SUMMARY_MAX + 1024, "{} bytes: {b}", size(&b));
        }
    }
}
