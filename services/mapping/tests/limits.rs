//! What a hostile document can make the readers do is bounded: the work is
//! linear in the document (each test below reads a document large enough
//! that a quadratic reader would hold the test for minutes, so a return of
//! one shows as a test that never finishes, without asserting on time), and
//! depth, size, the number of nodes and the length of a path all have limits
//! whose refusals say what was exceeded and where.

use std::path::Path;

use xj_mapping::syntax::{self, Limits};
use xj_mapping::{Formats, InboundError, inbound};

fn example(format: &str, file: &str) -> Vec<u8> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/formats").join(format).join("examples").join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Room for the documents that show a reader is linear.
fn roomy() -> Limits {
    Limits { max_nodes: 1_000_000, max_bytes: 16 << 20, ..Limits::default() }
}

#[test]
fn a_flat_xml_document_is_read_in_one_pass() {
    // Counting earlier siblings for every element took minutes here.
    let n = 250_000;
    let doc = format!("<r>\n{}</r>\n", "<c/>\n".repeat(n));
    let (name, root) = syntax::parse_xml_with(doc.as_bytes(), &roomy()).expect("a flat document reads");
    assert_eq!(name, "r");
    let items = root.items("c").expect("children");
    assert_eq!(items.len(), n);
    assert_eq!(items[0].loc().pointer, "/r/c");
    let last = items[n - 1].loc();
    assert_eq!((last.pointer.as_str(), last.line), ("/r/c[250000]", Some(n as u64 + 1)));
}

#[test]
fn a_flat_xml_document_past_the_node_limit_is_refused_at_its_line() {
    let limits = Limits::default();
    let doc = format!("<r>\n{}</r>\n", "<c/>\n".repeat(250_000));
    let e = syntax::parse_xml(doc.as_bytes()).expect_err("more elements than the limit");
    // The document element is node 1 on line 1; child k is node k + 1 on line k + 1.
    assert_eq!(e.loc.line, Some(limits.max_nodes as u64 + 1), "{e}");
    assert!(e.message.contains(&format!("more than {} elements and attributes", limits.max_nodes)), "{e}");
}

#[test]
fn many_attributes_on_one_tag_are_checked_for_repeats_in_one_pass() {
    // quick-xml's own check compares each attribute with all earlier ones.
    let n = 300_000;
    let attrs: String = (0..n).map(|i| format!(" a{i:06}=\"\"")).collect();
    let doc = format!("<r{attrs}/>");
    let (_, root) = syntax::parse_xml_with(doc.as_bytes(), &roomy()).expect("distinct attributes read");
    assert_eq!(root.child("@a299999").map(|a| a.loc().pointer.as_str()), Some("/r/@a299999"));

    let doc = format!("<r{attrs} a000000=\"again\"/>");
    let e = syntax::parse_xml_with(doc.as_bytes(), &roomy()).expect_err("a repeated attribute");
    assert!(e.message.contains("\"a000000\" appears twice in <r>"), "{e}");
    assert_eq!(e.loc.line, Some(1));
}

#[test]
fn a_wide_csv_header_is_checked_for_repeats_in_one_pass() {
    // Comparing each column with every earlier one took minutes here.
    let n = 200_000;
    let mut header: Vec<String> = (0..n).map(|i| format!("列{i:07}")).collect();
    let csv = format!("{}\n", header.join(","));
    let rows = syntax::parse_csv(csv.as_bytes(), b',').expect("distinct columns read");
    assert!(rows.is_empty());

    header.push("列0000000".into());
    let csv = format!("{}\n", header.join(","));
    let e = syntax::parse_csv(csv.as_bytes(), b',').expect_err("a repeated column");
    assert_eq!((e.loc.row, e.loc.column), (Some(1), Some(n as u64 + 1)), "{e}");
    assert_eq!(e.loc.pointer, "/列0000000");
    assert!(e.message.contains("appears twice"), "{e}");
}

#[test]
fn csv_cells_past_the_node_limit_are_refused_at_their_row() {
    let limits = Limits { max_nodes: 10, ..Limits::default() };
    let csv = "a,b,c\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n";
    let e = syntax::parse_csv_with(csv.as_bytes(), b',', &limits).expect_err("12 cells, 10 allowed");
    assert_eq!(e.loc.row, Some(5), "{e}");
    assert!(e.message.contains("more than 10 cells"), "{e}");
    assert!(syntax::parse_csv_with(&csv.as_bytes()[..csv.len() - 10], b',', &limits).is_ok());
}

#[test]
fn documents_over_the_size_limit_are_refused_before_they_are_read() {
    let limits = Limits { max_bytes: 64, ..Limits::default() };
    let xml = format!("<r>\n{}</r>\n", "<c>x</c>\n".repeat(20));
    let e = syntax::parse_xml_with(xml.as_bytes(), &limits).expect_err("too large");
    assert!(e.message.contains(&format!("the document is {} bytes; at most 64 are read", xml.len())), "{e}");
    // Byte 64 falls on line 8: 4 bytes of `<r>\n`, then 9 per child.
    assert_eq!(e.loc.line, Some(8), "{e}");

    let json = format!("{{\n{}\"z\": 1\n}}", "\"k\": 1,\n".repeat(20));
    let e = syntax::parse_json_with(json.as_bytes(), &limits).expect_err("too large");
    assert!(e.loc.line.is_some() && e.message.contains("at most 64"), "{e}");

    let csv = format!("a,b\n{}", "1,2\n".repeat(40));
    let e = syntax::parse_csv_with(csv.as_bytes(), b',', &limits).expect_err("too large");
    // Byte 64 begins line 17: 16 lines of 4 bytes before it.
    assert_eq!(e.loc.row, Some(17), "{e}");
}

#[test]
fn deep_json_is_refused_with_a_pointer() {
    // Levels count as in XML: `{"a": 1}` is `<doc><a>1</a></doc>`, two deep.
    let limits = Limits::default();
    let nest = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let e = syntax::parse_json(nest(limits.max_depth).as_bytes()).expect_err("too deep");
    assert!(e.message.contains("nested deeper than 64 levels"), "{e}");
    assert_eq!(e.loc.pointer, "/a".repeat(limits.max_depth), "{e}");
    assert!(syntax::parse_json(nest(limits.max_depth - 1).as_bytes()).is_ok());
    // Far deeper than serde_json's own limit: refused there, with a line.
    let e = syntax::parse_json(nest(100_000).as_bytes()).expect_err("too deep");
    assert!(e.loc.line.is_some(), "{e}");
}

#[test]
fn a_json_array_past_the_node_limit_is_refused_at_its_index() {
    let limits = Limits::default();
    let json = format!("{{\"a\":[{}0]}}", "0,".repeat(limits.max_nodes));
    let e = syntax::parse_json(json.as_bytes()).expect_err("too many values");
    // The object and the array are two values; item i is value i + 3.
    assert_eq!(e.loc.pointer, format!("/a/{}", limits.max_nodes - 2), "{e}");
    assert!(e.message.contains("more than 100000 values"), "{e}");
}

#[test]
fn long_names_are_refused_without_being_echoed() {
    // Every node below a long name would carry a copy of it in its place.
    let name = "n".repeat(100_000);
    let json = format!("{{\"a\":{{\"{name}\":[{}0]}}}}", "0,".repeat(1000));
    let e = syntax::parse_json(json.as_bytes()).expect_err("a path too long");
    assert_eq!(e.loc.pointer, "/a", "{e}");
    assert!(e.message.contains("is 100003 bytes long; at most 512 are read"), "{e}");
    assert!(e.message.len() < 200, "the name is not echoed whole: {} bytes", e.message.len());
    // A member of the document object itself: placed where the object begins.
    let json = format!("\n\n  {{\"{name}\": 1}}");
    let e = syntax::parse_json(json.as_bytes()).expect_err("a path too long");
    assert_eq!((e.loc.pointer.as_str(), e.loc.line, e.loc.column), ("", Some(3), Some(3)), "{e}");

    let xml = format!("<r>\n<{name}>\n{}</{name}>\n</r>", "<c/>".repeat(1000));
    let e = syntax::parse_xml(xml.as_bytes()).expect_err("a path too long");
    assert_eq!(e.loc.line, Some(2), "{e}");
    assert!(e.message.contains("at most 512 are read") && e.message.len() < 200, "{e}");

    // Even repeated, which would otherwise be named in full.
    let xml = format!("<r {name}=\"1\" {name}=\"2\"/>");
    let e = syntax::parse_xml(xml.as_bytes()).expect_err("a path too long");
    assert!(e.message.contains("at most 512 are read") && e.message.len() < 200, "{e}");

    let csv = format!("a,{name}\n1,2\n");
    let e = syntax::parse_csv(csv.as_bytes(), b',').expect_err("a header too long");
    assert_eq!((e.loc.row, e.loc.column), (Some(1), Some(2)), "{e}");

    // The same at any depth: a path is refused once it is too long.
    let deep = format!("<r>{}x{}</r>", "<abcdefghij>".repeat(50), "</abcdefghij>".repeat(50));
    let e = syntax::parse_xml(deep.as_bytes()).expect_err("a path too long");
    assert!(e.message.contains("\"abcdefghij\""), "{e}");
}

#[test]
fn a_cell_of_separators_is_refused_as_a_mapping_problem_in_its_place() {
    let formats = Formats::builtin().expect("formats");
    let f = formats.get("town-csv-v1").expect("format");
    let doc = String::from_utf8(example("town-csv-v1", "case_referral.csv")).expect("UTF-8");
    let officers = "张三:99010100001;李四:99010100002";
    assert!(doc.contains(officers));
    // Two nodes per item (the item and its one part): 60,000 items are 120,000.
    let doc = doc.replace(officers, &"x;".repeat(60_000));
    match inbound::translate(f, doc.as_bytes(), "qh-town-dg") {
        Err(InboundError::Mapping { problems, .. }) => {
            let p = problems.iter().find(|p| p.message.contains("more than")).expect("the limit is named");
            assert_eq!(p.loc.pointer, "/执法人员", "{p}");
            assert_eq!(p.loc.row, Some(2), "{p}");
            assert!(p.message.contains("more than 100000 items and parts"), "{p}");
        }
        other => panic!("expected a mapping problem, got {other:?}"),
    }
}

#[test]
fn the_places_of_a_long_list_are_found_in_one_pass() {
    // Finding each canonical pointer by scanning every origin was quadratic
    // in a list whose every item has a problem.
    let formats = Formats::builtin().expect("formats");
    let f = formats.get("police-xml-v1").expect("format");
    let doc = String::from_utf8(example("police-xml-v1", "criminal_handoff.xml")).expect("UTF-8");
    let n = 100_000;
    let officers: String = (0..n).map(|i| format!("<RY><XM>某{i}</XM><ZJH>{i}</ZJH></RY>\n")).collect();
    let start = doc.find("<ZFRY>").expect("officers") + "<ZFRY>".len();
    let end = doc.find("</ZFRY>").expect("officers");
    let doc = format!("{}\n{officers}{}", &doc[..start], &doc[end..]);
    let first = doc[..start].lines().count() as u64 + 1;
    let docs = inbound::parse_with(f, doc.as_bytes(), &roomy()).expect("parses");
    let t = inbound::document(f, &docs[0], "qh-market").expect("translates");
    for i in 0..n {
        let loc = t.provenance.locate(&format!("/body/officers/{i}/cert_no"));
        assert_eq!(loc.line, Some(first + i as u64), "{loc}");
        let suffix = if i == 0 { String::new() } else { format!("[{}]", i + 1) };
        assert_eq!(loc.pointer, format!("/GAXX/YSS/ZFRY/RY{suffix}/ZJH"));
    }
    // Inside a value: the value's place; around values: the first inside.
    assert_eq!(t.provenance.locate("/body/officers/7/cert_no/x").line, Some(first + 7));
    assert_eq!(t.provenance.locate("/body/officers").line, Some(first));
}
