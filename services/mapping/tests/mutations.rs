//! Random mutations of every example document: translation never panics,
//! and whatever is wrong is always reported with a place in the native
//! document (a JSON pointer, an XML path or line, a CSV row) — or, for a
//! problem only the canonical schema sees, with the canonical pointer too.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xj_mapping::report::{Detail, inbound_details};
use xj_mapping::{Formats, inbound};
use xj_model::Schemas;

const ROUNDS: usize = 300;

/// Bytes that matter to the parsers.
const NASTY: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"\"",
    b",",
    b"\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"&",
    b"&amp;",
    b"&#0;",
    b"]]>",
    b"\xff",
    "中".as_bytes(),
    b"\r\n",
    b";",
    b"/",
    b"0",
    b"-1",
    b"1e999",
    b"null",
    b"\"\"",
    b"<X/>",
];

fn mutate(rng: &mut StdRng, doc: &[u8]) -> Vec<u8> {
    let mut d = doc.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        if d.is_empty() {
            d.extend_from_slice(NASTY[rng.gen_range(0..NASTY.len())]);
            continue;
        }
        let i = rng.gen_range(0..d.len());
        match rng.gen_range(0..8) {
            0 => d[i] ^= 1 << rng.gen_range(0..8),
            1 => {
                let end = (i + rng.gen_range(1..40)).min(d.len());
                d.drain(i..end);
            }
            2 => {
                let ins = NASTY[rng.gen_range(0..NASTY.len())];
                d.splice(i..i, ins.iter().copied());
            }
            3 => d.truncate(i),
            4 => {
                // Drop a whole line: an element, a JSON member, a CSV row.
                let start = d[..i].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let end = d[i..].iter().position(|b| *b == b'\n').map_or(d.len(), |p| i + p + 1);
                d.drain(start..end);
            }
            5 => {
                // Replace a digit run with letters: dates, amounts, codes.
                if let Some(p) = d[i..].iter().position(u8::is_ascii_digit) {
                    let s = i + p;
                    let e = d[s..].iter().position(|b| !b.is_ascii_digit()).map_or(d.len(), |q| s + q);
                    d.splice(s..e, b"XX".iter().copied());
                }
            }
            6 => {
                let end = (i + rng.gen_range(1..60)).min(d.len());
                let copy = d[i..end].to_vec();
                d.splice(i..i, copy);
            }
            _ => {
                // Blank a value between quotes or tags.
                if let Some(p) = d[i..].iter().position(|b| *b == b'>' || *b == b'"') {
                    let s = i + p + 1;
                    let e = d[s..].iter().position(|b| *b == b'<' || *b == b'"').map_or(s, |q| s + q);
                    d.drain(s..e);
                }
            }
        }
    }
    d
}

fn located(d: &Detail) -> bool {
    d.loc.is_located() || d.canonical.as_deref().is_some_and(|c| !c.is_empty())
}

#[test]
fn mutated_documents_never_panic_and_always_locate_their_problems() {
    let formats = Formats::builtin().expect("formats");
    let schemas = Schemas::load().expect("schemas");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/formats");
    let mut rng = StdRng::seed_from_u64(0x5EED_2026);
    let (mut refused, mut accepted, mut tried) = (0, 0, 0);
    for name in formats.names() {
        let f = formats.get(name).expect("format");
        for ex in std::fs::read_dir(dir.join(name).join("examples")).expect("examples") {
            let path = ex.expect("entry").path();
            let doc = std::fs::read(&path).expect("read");
            for _ in 0..ROUNDS {
                let m = mutate(&mut rng, &doc);
                tried += 1;
                let shown = || String::from_utf8_lossy(&m).into_owned();
                match inbound::translate(f, &m, "qh-market") {
                    Err(e) => {
                        refused += 1;
                        let details = inbound_details(&e);
                        assert!(!details.is_empty(), "{}: an error without details\n{}", path.display(), shown());
                        for d in &details {
                            assert!(d.loc.is_located(), "{}: unlocated {d}\n{}", path.display(), shown());
                            assert!(!d.message.is_empty());
                        }
                    }
                    Ok(t) => {
                        accepted += 1;
                        if let Err(problems) = schemas.validate(&t.message) {
                            for p in &problems {
                                let d = Detail::canonical(p, &t.provenance);
                                assert!(located(&d), "{}: unlocated {d}\n{}", path.display(), shown());
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(refused > tried / 3, "mutations should mostly break documents: {refused} of {tried} refused");
    assert!(accepted > 0, "some mutations (inside free text) leave a valid document");
}

#[test]
fn garbage_is_refused_with_a_place() {
    let formats = Formats::builtin().expect("formats");
    for name in formats.names() {
        let f = formats.get(name).expect("format");
        for raw in [&b""[..], b"\x00\x01", b"{}", b"<a/>", b"a,b\n", "中文".as_bytes(), b"[1,2]"] {
            match inbound::translate(f, raw, "qh-market") {
                Ok(t) => panic!("{name}: {raw:?} was accepted as {}", t.message),
                Err(e) => {
                    for d in inbound_details(&e) {
                        assert!(d.loc.is_located() || d.loc.pointer.is_empty(), "{name}: {d}");
                    }
                }
            }
        }
    }
}

/// Replaces, removes or retypes one random leaf of a canonical message.
fn mutate_value(rng: &mut StdRng, v: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let keys: Vec<String> = match v {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => (0..a.len()).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    };
    if keys.is_empty() || rng.gen_bool(0.25) {
        *v = match rng.gen_range(0..7) {
            0 => Value::Null,
            1 => json!(rng.gen_range(-1e9..1e9)),
            2 => json!("2026-13-45"),
            3 => json!(["a", 1, null]),
            4 => json!({ "x": { "y": true } }),
            5 => json!("张三:1;李四/2×3,\"<&>\""),
            _ => json!(true),
        };
        return;
    }
    let k = &keys[rng.gen_range(0..keys.len())];
    match v {
        Value::Object(m) if rng.gen_bool(0.2) => {
            m.remove(k);
        }
        Value::Object(m) => mutate_value(rng, m.get_mut(k).expect("key")),
        Value::Array(a) => mutate_value(rng, &mut a[k.parse::<usize>().expect("index")]),
        _ => {}
    }
}

#[test]
fn mutated_canonical_messages_never_panic_on_the_way_out() {
    use xj_mapping::{OutboundError, outbound};
    let formats = Formats::builtin().expect("formats");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/formats");
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let (mut written, mut refused) = (0, 0);
    for name in formats.names() {
        let f = formats.get(name).expect("format");
        for ex in std::fs::read_dir(dir.join(name).join("examples")).expect("examples") {
            let raw = std::fs::read(ex.expect("entry").path()).expect("read");
            let canonical = inbound::translate(f, &raw, "qh-market").expect("example translates").message;
            for _ in 0..ROUNDS {
                let mut m = canonical.clone();
                for _ in 0..rng.gen_range(1..=3) {
                    mutate_value(&mut rng, &mut m);
                }
                // Every format, not only the example's own: deliveries go anywhere.
                for other in formats.names() {
                    let g = formats.get(other).expect("format");
                    match outbound::translate_value(g, &m) {
                        Ok(native) => {
                            written += 1;
                            // What the hub writes, the department can read (or is told where not).
                            if let Err(e) = inbound::translate(g, &native, "qh-market") {
                                for d in inbound_details(&e) {
                                    assert!(d.loc.is_located(), "{other}: unlocated {d}");
                                }
                            }
                        }
                        Err(OutboundError::NotExpressible { reasons, .. }) => {
                            refused += 1;
                            assert!(reasons.iter().all(|r| !r.is_empty()));
                        }
                        Err(_) => refused += 1,
                    }
                }
            }
        }
    }
    assert!(written > 0 && refused > 0, "{written} written, {refused} refused");
}
