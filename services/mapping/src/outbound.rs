//! Canonical → native, for deliveries to an organisation whose `format` is a
//! native one. A message the format cannot carry — no native form for its
//! type, a field the format requires that the message lacks, a value with no
//! native code — is refused with every reason, never written half-empty.

use serde_json::Value;
use xj_model::MessageType;

use crate::error::OutboundError;
use crate::format::{Field, Format, List};
use crate::inbound::get;
use crate::node::{Loc, Node};
use crate::spec::Syntax;
use crate::syntax;
use crate::transform;

/// Translates canonical JSON bytes.
pub fn translate(fmt: &Format, canonical: &[u8]) -> Result<Vec<u8>, OutboundError> {
    let v: Value = serde_json::from_slice(canonical).map_err(|e| OutboundError::Canonical(e.to_string()))?;
    translate_value(fmt, &v)
}

/// Translates a canonical message.
pub fn translate_value(fmt: &Format, msg: &Value) -> Result<Vec<u8>, OutboundError> {
    let kind_name = msg.get("type").and_then(Value::as_str).unwrap_or_default();
    let kind = MessageType::parse(kind_name)
        .ok_or_else(|| OutboundError::Canonical(format!("unknown message type {kind_name:?}")))?;
    let rule = fmt
        .outbound_message(kind)
        .ok_or_else(|| OutboundError::NoForm { format: fmt.name.clone(), kind: kind.as_str().into() })?;
    let mut root = Node::empty_map();
    root.set(&fmt.discriminator, scalar(Value::String(rule.native.clone())));
    let mut reasons = Vec::new();
    for f in rule.fields.iter().filter(|f| f.direction.outbound() && f.from.is_some()) {
        field(fmt, f, msg, &mut root, "", &mut reasons);
    }
    for l in rule.lists.iter().filter(|l| l.direction.outbound()) {
        list(fmt, l, msg, &mut root, &mut reasons);
    }
    if !reasons.is_empty() {
        return Err(OutboundError::NotExpressible { format: fmt.name.clone(), reasons });
    }
    Ok(match fmt.syntax {
        Syntax::Json => syntax::write_json(&root),
        Syntax::Xml => syntax::write_xml(fmt.root.as_deref().unwrap_or("Document"), &root),
        Syntax::Csv => syntax::write_csv(&rule.columns(&fmt.discriminator), &root, fmt.delimiter),
    })
}

fn scalar(v: Value) -> Node {
    Node::Scalar(v, Loc::default())
}

fn field(fmt: &Format, f: &Field, msg: &Value, out: &mut Node, at: &str, reasons: &mut Vec<String>) {
    let Some(from) = f.from.as_deref() else { return };
    let values: Vec<Option<&Value>> = f.to.iter().map(|t| get(msg, t)).collect();
    if values.iter().all(Option::is_none) {
        if f.required {
            reasons.push(format!("{at}{} is required by the format and missing", f.to.join(" + ")));
        }
        return;
    }
    let mut natives = Vec::with_capacity(values.len());
    for (t, v) in f.to.iter().zip(&values) {
        if v.is_some_and(|v| v.is_array() || v.is_object()) {
            reasons.push(format!("{at}{t}: the format holds one value here, the message has a list or group"));
            return;
        }
        match v.map(|v| transform::outbound(f, fmt, v)) {
            Some(Ok(n)) => natives.push(n),
            Some(Err(e)) => {
                reasons.push(format!("{at}{t}: {e}"));
                return;
            }
            None => natives.push(Value::String(String::new())),
        }
    }
    let native = match &f.split {
        Some(sep) => {
            let parts: Vec<String> = natives.iter().map(transform::text).collect();
            // All but the last part must be free of the separator to split back the same.
            if parts.iter().rev().skip(1).any(|p| p.contains(sep.as_str())) {
                reasons.push(format!("{at}{}: a value contains the separator {sep:?}", f.to.join(" + ")));
                return;
            }
            Value::String(parts.join(sep))
        }
        None => natives.into_iter().next().unwrap_or(Value::Null),
    };
    if from == "." {
        *out = scalar(native);
    } else {
        out.set(from, scalar(native));
    }
}

fn list(fmt: &Format, l: &List, msg: &Value, out: &mut Node, reasons: &mut Vec<String>) {
    let items = match get(msg, &l.to).and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a,
        _ => {
            if l.required {
                reasons.push(format!("{} is required by the format and missing", l.to));
            }
            return;
        }
    };
    let mut nodes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut node = Node::empty_map();
        let at = format!("{}/{i}/", l.to);
        for f in l.fields.iter().filter(|f| f.direction.outbound()) {
            field(fmt, f, item, &mut node, &at, reasons);
        }
        nodes.push(node);
    }
    match &l.split {
        Some(sep) => {
            let texts: Vec<String> = nodes
                .iter()
                .map(|n| match (&l.parts, n) {
                    (Some(p), Node::Map(entries, _)) => {
                        let mut parts: Vec<(usize, String)> = entries
                            .iter()
                            .filter_map(|(k, v)| Some((k.parse::<usize>().ok()?, transform::text(&v.to_json()))))
                            .collect();
                        parts.sort_by_key(|(k, _)| *k);
                        let width = parts.last().map_or(0, |(k, _)| *k);
                        (1..=width)
                            .map(|k| parts.iter().find(|(j, _)| *j == k).map(|(_, s)| s.as_str()).unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(p)
                    }
                    (_, n) => transform::text(&n.to_json()),
                })
                .collect();
            // A separator inside a value would split it on the way back in.
            for (t, n) in texts.iter().zip(&nodes) {
                let inner = match (&l.parts, n) {
                    (Some(p), Node::Map(entries, _)) => {
                        entries.iter().any(|(_, v)| transform::text(&v.to_json()).contains(p.as_str()))
                    }
                    _ => false,
                };
                if t.contains(sep.as_str()) || inner {
                    reasons.push(format!("{}: item {t:?} contains a separator of the format", l.to));
                }
            }
            out.set(&l.from, scalar(Value::String(texts.join(sep))));
        }
        None => out.set(&l.from, Node::List(nodes, Loc::default())),
    }
}
