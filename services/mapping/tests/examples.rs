//! Every example document of every format translates to a canonical message
//! that passes the schemas and checks; translating it back out and in again
//! gives the same canonical message; every canonical example survives
//! canonical → native → canonical in each format that can carry it, keeping
//! every field the format holds.

use std::path::{Path, PathBuf};

use serde_json::Value;
use xj_mapping::{Format, Formats, inbound, outbound};
use xj_model::{MessageType, Schemas};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// (format name, example path) for every example on disk.
fn examples() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root().join("formats")).expect("schemas/formats") {
        let dir = dir.expect("entry").path();
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for ex in std::fs::read_dir(dir.join("examples")).expect("examples folder") {
            out.push((name.clone(), ex.expect("entry").path()));
        }
    }
    out.sort();
    out
}

/// The organisation each format's examples come from.
fn org_of(format: &str) -> &'static str {
    match format {
        "samr-json-v1" => "qh-market",
        "eco-xml-v1" => "qh-eco",
        "police-xml-v1" => "qh-police-econ",
        "court-json-v1" => "qh-court",
        _ => "qh-town-dg",
    }
}

#[test]
fn every_format_has_examples_of_every_message_it_defines() {
    let formats = Formats::builtin().expect("built-in formats load");
    assert!(formats.names().len() >= 5, "{:?}", formats.names());
    let all = examples();
    for name in formats.names() {
        let f = formats.get(name).expect("format");
        let have: Vec<&PathBuf> = all.iter().filter(|(n, _)| n == name).map(|(_, p)| p).collect();
        for kind in f.inbound_types() {
            assert!(
                have.iter().any(|p| p.file_stem().and_then(|s| s.to_str()) == Some(kind.as_str())),
                "{name} has no example of {kind}"
            );
        }
    }
}

#[test]
fn examples_translate_to_valid_canonical_messages_and_round_trip() {
    let formats = Formats::builtin().expect("built-in formats load");
    let schemas = Schemas::load().expect("schemas");
    let mut seen = 0;
    for (name, path) in examples() {
        let f = formats.get(&name).expect("format of the folder");
        let raw = std::fs::read(&path).expect("example");
        let t = inbound::translate(f, &raw, org_of(&name)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            path.file_stem().and_then(|s| s.to_str()),
            Some(t.kind.as_str()),
            "{}: examples are named after their canonical type",
            path.display()
        );
        if let Err(problems) = schemas.validate(&t.message) {
            let shown: Vec<String> =
                problems.iter().map(|p| format!("{p} (native {})", t.provenance.locate(&p.pointer))).collect();
            panic!("{}: canonical message fails the schemas:\n{}\n{:#}", path.display(), shown.join("\n"), t.message);
        }
        // native → canonical → native → canonical is stable.
        let native = outbound::translate_value(f, &t.message).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = inbound::translate(f, &native, org_of(&name)).unwrap_or_else(|e| {
            panic!("{}: re-reading its own output: {e}\n{}", path.display(), String::from_utf8_lossy(&native))
        });
        assert_eq!(again.message, t.message, "{}: round trip changed the message", path.display());
        seen += 1;
    }
    assert!(seen >= 15, "only {seen} examples");
}

/// Every leaf of a JSON value with its pointer.
fn leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out)),
        Value::Null => {}
        other => out.push((at, other.clone())),
    }
}

/// The canonical leaves a format can hold for a message type: what comes
/// back when every mapped field is filled.
fn held(f: &Format, kind: MessageType, pointer: &str) -> bool {
    let Some(m) = f.outbound_message(kind) else { return false };
    let generic =
        pointer.split('/').map(|s| if s.parse::<usize>().is_ok() { "*" } else { s }).collect::<Vec<_>>().join("/");
    let field_hit = m
        .fields
        .iter()
        .filter(|x| x.from.is_some() && x.direction.inbound() && x.direction.outbound())
        .any(|x| x.to.iter().any(|t| generic == format!("/{t}")));
    let list_hit = m.lists.iter().any(|l| {
        l.fields.iter().any(|x| {
            x.to.iter().any(|t| {
                if t == "." { generic == format!("/{}/*", l.to) } else { generic == format!("/{}/*/{t}", l.to) }
            })
        })
    });
    field_hit || list_hit
}

#[test]
fn canonical_examples_keep_every_field_the_format_holds() {
    let formats = Formats::builtin().expect("built-in formats load");
    let mut docs: Vec<(String, Value)> = Vec::new();
    for e in std::fs::read_dir(root().join("examples")).expect("schemas/examples") {
        let p = e.expect("entry").path();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("example is JSON");
        docs.push((p.display().to_string(), v));
    }
    // And the canonical form of every native example, seen by the other formats.
    for (name, path) in examples() {
        let f = formats.get(&name).expect("format");
        let t = inbound::translate(f, &std::fs::read(&path).expect("read"), org_of(&name)).expect("translates");
        docs.push((path.display().to_string(), t.message));
    }
    let mut pairs = 0;
    for (what, doc) in &docs {
        let kind = MessageType::parse(doc["type"].as_str().unwrap_or_default()).expect("type");
        for name in formats.names() {
            let f = formats.get(name).expect("format");
            if f.outbound_message(kind).is_none() {
                continue;
            }
            let sender = doc["sender"].as_str().unwrap_or_default();
            let native = match outbound::translate_value(f, doc) {
                Ok(n) => n,
                // A matter or code the format has no code for: refused, never half-written.
                Err(xj_mapping::OutboundError::NotExpressible { .. }) => continue,
                Err(e) => panic!("{what} → {name}: {e}"),
            };
            let back = inbound::translate(f, &native, sender)
                .unwrap_or_else(|e| panic!("{what} → {name} → canonical: {e}\n{}", String::from_utf8_lossy(&native)));
            let mut want = Vec::new();
            leaves(doc, String::new(), &mut want);
            let mut got = Vec::new();
            leaves(&back.message, String::new(), &mut got);
            for (p, v) in &want {
                if held(f, kind, p) {
                    assert!(
                        got.contains(&(p.clone(), v.clone())),
                        "{what} → {name}: {p} = {v} was lost or changed\n{:#}",
                        back.message
                    );
                }
            }
            pairs += 1;
        }
    }
    assert!(pairs >= 20, "only {pairs} canonical → native → canonical trips");
}

#[test]
fn hub_alerts_reach_every_format_that_sends_referrals() {
    let formats = Formats::builtin().expect("built-in formats load");
    let alert = serde_json::json!({
        "id": "hub-alert-1", "type": "supervision_alert", "sender": "hub", "recipient": "qh-market",
        "case": "XJ-20261121-00AA11BB22", "sent_at": "2026-11-21T09:00:00+08:00", "classification": "internal",
        "body": {
            "kind": "crime_suspected", "about": "SJ-XS-2026-0031", "case": "XJ-20261121-00AA11BB22",
            "text": "销售金额达到刑事立案追诉标准，应当移送公安机关",
            "clock": { "name": "transfer_approval", "due": "2026-11-24T09:00:00+08:00" },
            "rule": { "id": "crime:PRODUCT-FAKE", "version": "m-0123456789ab" }
        }
    });
    for name in ["samr-json-v1", "eco-xml-v1", "police-xml-v1", "town-csv-v1", "court-json-v1"] {
        let f = formats.get(name).expect("format");
        let native = outbound::translate_value(f, &alert).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = String::from_utf8_lossy(&native);
        assert!(text.contains("应当移送公安机关") && text.contains("SJ-XS-2026-0031"), "{name}: {text}");
        assert!(text.contains("2026") && text.contains("09:00:00"), "{name}: the clock's due time: {text}");
        // The department's system reads the alert it received; it cannot
        // submit one (only the hub writes alerts).
        let read = inbound::received(f, &native, "hub").unwrap_or_else(|e| panic!("{name} reading the alert: {e}"));
        assert_eq!(read.kind, MessageType::SupervisionAlert, "{name}");
        assert_eq!(read.message["body"]["about"], "SJ-XS-2026-0031", "{name}: {}", read.message);
        assert!(inbound::translate(f, &native, "qh-market").is_err(), "{name}: an alert is not a submission");
    }
}

#[test]
fn a_list_where_the_format_holds_one_value_is_not_expressible() {
    let formats = Formats::builtin().expect("built-in formats load");
    let f = formats.get("police-xml-v1").expect("format");
    let raw = std::fs::read(root().join("formats/police-xml-v1/examples/police_decision.xml")).expect("example");
    let mut msg = inbound::translate(f, &raw, "qh-police-econ").expect("translates").message;
    msg["recipient"] = serde_json::json!(["qh-procuratorate", "qh-justice"]);
    match outbound::translate_value(f, &msg) {
        Err(xj_mapping::OutboundError::NotExpressible { reasons, .. }) => {
            assert!(reasons.iter().any(|r| r.contains("recipient")), "{reasons:?}")
        }
        other => panic!("expected not expressible, got {other:?}"),
    }
}
