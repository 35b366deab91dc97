//! Random mutations of every example document: translation never panics,
//! and whatever is wrong is always reported with a place in the native
//! document (a JSON pointer, an XML path or line, a CSV row) — or, for a
//! problem only the canonical schema sees, with the canonical pointer too.
//!
//! The property tests at the end widen the corpus (every canonical example
//! written in every format that can carry it, and the canonical JSON itself
//! sent to the JSON formats), add edits a byte-level loop cannot make
//! (splices of two documents, swaps, arbitrary bytes) and shrink a failure to
//! a small case. Their seeds are fixed: every run tries the same cases, and
//! `PROPTEST_RNG_SEED` / `PROPTEST_CASES` explore others.

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

// ---- property tests ----------------------------------------------------

mod properties {
    use std::path::Path;
    use std::sync::LazyLock;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::test_runner::{RngAlgorithm, RngSeed};
    use xj_mapping::report::{Detail, inbound_details};
    use xj_mapping::spec::Syntax;
    use xj_mapping::{Format, Formats, InboundError, Limits, inbound, outbound, syntax};
    use xj_model::Schemas;

    use super::{NASTY, located};

    /// Fixed unless `PROPTEST_RNG_SEED` or `PROPTEST_CASES` say otherwise.
    fn config(cases: u32, seed: u64) -> ProptestConfig {
        let base = ProptestConfig::default();
        ProptestConfig {
            cases: if std::env::var_os("PROPTEST_CASES").is_some() { base.cases } else { cases },
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: match base.rng_seed {
                RngSeed::Random => RngSeed::Fixed(seed),
                fixed => fixed,
            },
            // The seed is the record: nothing is written next to the sources.
            failure_persistence: None,
            ..base
        }
    }

    struct Corpus {
        formats: Formats,
        schemas: Schemas,
        /// (format, what it is, document)
        docs: Vec<(String, String, Vec<u8>)>,
    }

    static CORPUS: LazyLock<Corpus> = LazyLock::new(|| {
        let formats = Formats::builtin().expect("formats");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let mut docs = Vec::new();
        for name in formats.names() {
            let mut files: Vec<_> = std::fs::read_dir(root.join("formats").join(name).join("examples"))
                .expect("examples")
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
            for p in files {
                docs.push((name.to_string(), p.display().to_string(), std::fs::read(&p).expect("read")));
            }
        }
        let mut canonical: Vec<_> =
            std::fs::read_dir(root.join("examples")).expect("examples").map(|e| e.expect("entry").path()).collect();
        canonical.sort();
        for p in canonical {
            let raw = std::fs::read(&p).expect("read");
            let msg: serde_json::Value = serde_json::from_slice(&raw).expect("canonical example is JSON");
            for name in formats.names() {
                let f = formats.get(name).expect("format");
                // What the hub would deliver, sent back as a submission.
                if let Ok(native) = outbound::translate_value(f, &msg) {
                    docs.push((name.to_string(), format!("{} as {name}", p.display()), native));
                }
                // A canonical message where a JSON format's document belongs.
                if f.syntax == Syntax::Json {
                    docs.push((name.to_string(), format!("{} sent raw", p.display()), raw.clone()));
                }
            }
        }
        Corpus { formats, schemas: Schemas::load().expect("schemas"), docs }
    });

    #[derive(Debug, Clone)]
    enum Edit {
        Flip(Index, u8),
        Delete(Index, usize),
        Insert(Index, Vec<u8>),
        Truncate(Index),
        Duplicate(Index, usize),
        DropLine(Index),
        Swap(Index, Index),
        /// The start of this document, the rest of another one.
        Splice(Index, Index, Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let nasty = proptest::sample::select(NASTY).prop_map(<[u8]>::to_vec);
        prop_oneof![
            (any::<Index>(), 0..8u8).prop_map(|(i, b)| Edit::Flip(i, b)),
            (any::<Index>(), 1..64usize).prop_map(|(i, n)| Edit::Delete(i, n)),
            (any::<Index>(), prop_oneof![nasty, vec(any::<u8>(), 1..8)]).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<Index>().prop_map(Edit::Truncate),
            (any::<Index>(), 1..200usize).prop_map(|(i, n)| Edit::Duplicate(i, n)),
            any::<Index>().prop_map(Edit::DropLine),
            (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
            (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(a, b, c)| Edit::Splice(a, b, c)),
        ]
    }

    fn apply(d: &mut Vec<u8>, e: &Edit, docs: &[(String, String, Vec<u8>)]) {
        if d.is_empty() {
            d.extend_from_slice(b"<");
        }
        let at = |i: &Index, d: &Vec<u8>| i.index(d.len());
        match e {
            Edit::Flip(i, b) => {
                let i = at(i, d);
                d[i] ^= 1 << b;
            }
            Edit::Delete(i, n) => {
                let i = at(i, d);
                let end = (i + n).min(d.len());
                d.drain(i..end);
            }
            Edit::Insert(i, b) => {
                let i = at(i, d);
                d.splice(i..i, b.iter().copied());
            }
            Edit::Truncate(i) => d.truncate(at(i, d)),
            Edit::Duplicate(i, n) => {
                let i = at(i, d);
                let copy = d[i..(i + n).min(d.len())].to_vec();
                d.splice(i..i, copy);
            }
            Edit::DropLine(i) => {
                let i = at(i, d);
                let start = d[..i].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let end = d[i..].iter().position(|b| *b == b'\n').map_or(d.len(), |p| i + p + 1);
                d.drain(start..end);
            }
            Edit::Swap(a, b) => {
                let (a, b) = (at(a, d), at(b, d));
                d.swap(a, b);
            }
            Edit::Splice(cut, other, from) => {
                let other = &other.get(docs).2;
                let cut = at(cut, d);
                d.truncate(cut);
                if !other.is_empty() {
                    d.extend_from_slice(&other[from.index(other.len())..]);
                }
            }
        }
    }

    /// Every problem of a refusal is placed in the native document.
    fn check_refusal(e: &InboundError, what: &str) -> Result<(), TestCaseError> {
        let details = inbound_details(e);
        prop_assert!(!details.is_empty(), "{what}: an error without details");
        for d in &details {
            prop_assert!(d.loc.is_located(), "{what}: unlocated {d}");
            prop_assert!(!d.message.is_empty(), "{what}: {d} says nothing");
        }
        Ok(())
    }

    /// A translation that worked: whatever the schemas find is placed.
    fn check_translated(t: &inbound::Translated, what: &str) -> Result<(), TestCaseError> {
        if let Err(problems) = CORPUS.schemas.validate(&t.message) {
            for p in &problems {
                let d = Detail::canonical(p, &t.provenance);
                prop_assert!(located(&d), "{what}: unlocated {d}");
            }
        }
        Ok(())
    }

    fn format(name: &str) -> &'static Format {
        CORPUS.formats.get(name).expect("format")
    }

    proptest! {
        #![proptest_config(config(8000, 0x7869_616E_6A69_6501))]

        #[test]
        fn edited_documents_translate_or_are_refused_with_a_place(
            which in any::<Index>(),
            edits in vec(edit(), 1..6),
        ) {
            let (name, label, doc) = which.get(&CORPUS.docs);
            let mut m = doc.clone();
            for e in &edits {
                apply(&mut m, e, &CORPUS.docs);
            }
            let f = format(name);
            let what = format!("{label} edited by {edits:?}:\n{}", String::from_utf8_lossy(&m));
            match inbound::translate(f, &m, "qh-market") {
                Ok(t) => check_translated(&t, &what)?,
                Err(e) => check_refusal(&e, &what)?,
            }
            // The reader of deliveries takes the same documents.
            match inbound::received(f, &m, "hub") {
                Ok(t) => check_translated(&t, &what)?,
                Err(e) => check_refusal(&e, &what)?,
            }
        }
    }

    proptest! {
        #![proptest_config(config(3000, 0x7869_616E_6A69_6502))]

        #[test]
        fn arbitrary_bytes_are_read_or_refused_with_a_place(
            raw in vec(any::<u8>(), 0..512),
            which in any::<Index>(),
        ) {
            let (name, _, _) = which.get(&CORPUS.docs);
            let shown = String::from_utf8_lossy(&raw).into_owned();
            match inbound::translate(format(name), &raw, "qh-market") {
                Ok(t) => check_translated(&t, &shown)?,
                Err(e) => check_refusal(&e, &shown)?,
            }
            // The readers alone, under limits small enough to be reached.
            let small = Limits { max_bytes: 256, max_depth: 4, max_nodes: 16, max_path: 24 };
            for limits in [Limits::default(), small] {
                let results = [
                    syntax::parse_json_with(&raw, &limits).err(),
                    syntax::parse_xml_with(&raw, &limits).err(),
                    syntax::parse_csv_with(&raw, b',', &limits).err(),
                    syntax::parse_csv_with(&raw, b';', &limits).err(),
                ];
                for e in results.into_iter().flatten() {
                    prop_assert!(e.loc.is_located() && !e.message.is_empty(), "{shown:?}: {e}");
                }
            }
        }

        #[test]
        fn examples_under_tight_limits_are_refused_with_a_place(
            which in any::<Index>(),
            max_bytes in 16..4096usize,
            max_depth in 1..8usize,
            max_nodes in 1..200usize,
            max_path in 1..64usize,
        ) {
            let (name, label, doc) = which.get(&CORPUS.docs);
            let limits = Limits { max_bytes, max_depth, max_nodes, max_path };
            match inbound::parse_with(format(name), doc, &limits) {
                Ok(docs) => prop_assert!(!docs.is_empty() || format(name).syntax == Syntax::Csv),
                Err(e) => check_refusal(&e, &format!("{label} under {limits:?}"))?,
            }
        }
    }
}
