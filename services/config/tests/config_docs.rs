//! Every key the configuration accepts is documented in
//! docs/configuration.md, under the heading of its section. The keys are
//! read from the configuration types themselves: a probe key nobody
//! declares makes serde list the keys a table accepts (every table refuses
//! unknown keys), so a key added to the code and not to the page fails here.

use std::collections::BTreeMap;

use xj_config::Settings;

const PROBE: &str = "xj_docs_probe";

/// The keys serde says a table accepts, from its "unknown field" refusal;
/// `None` when the value at that place is not a table of known keys.
fn accepted(toml_text: &str) -> Option<Vec<String>> {
    let err = toml::from_str::<Settings>(toml_text).err()?.to_string();
    let at = err.find(&format!("unknown field `{PROBE}`"))?;
    let rest = &err[at..];
    let list = rest.split_once("expected")?.1.lines().next()?;
    Some(list.split('`').skip(1).step_by(2).map(str::to_owned).collect())
}

/// TOML that puts `value` at `path` (`org[]` is an element of an array of tables).
fn at(path: &[String], value: &str) -> String {
    let mut v = value.to_string();
    for part in path.iter().rev() {
        v = match part.strip_suffix("[]") {
            Some(name) => format!("{{ {name} = [{v}] }}"),
            None => format!("{{ {part} = {v} }}"),
        };
    }
    // The outermost braces become the document itself.
    v.strip_prefix("{ ").and_then(|s| s.strip_suffix(" }")).unwrap_or(&v).to_string()
}

/// Every section (as `[a.b]` / `[[org]]`) with the keys it accepts.
fn sections() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let probe = format!("{{ {PROBE} = 1 }}");
        let keys = if path.is_empty() { accepted(&format!("{PROBE} = 1")) } else { accepted(&at(&path, &probe)) };
        let Some(keys) = keys else { continue };
        for k in &keys {
            if k == "include" && path.is_empty() {
                continue;
            }
            // A key whose value is a table, or an array of tables, is a section.
            let mut child = path.clone();
            child.push(k.clone());
            if accepted(&at(&child, &probe)).is_some() {
                todo.push(child);
                continue;
            }
            let last = child.len() - 1;
            child[last] = format!("{k}[]");
            if accepted(&at(&child, &probe)).is_some() {
                todo.push(child);
            }
        }
        out.insert(path.join("."), keys);
    }
    out
}

#[test]
fn the_probe_finds_the_sections_it_should() {
    let s = sections();
    for section in ["", "hub", "nats", "http", "org[]", "matter[]", "clock", "courier"] {
        assert!(s.contains_key(section), "no section {section:?} found; found {:?}", s.keys());
    }
    assert!(s["org[]"].iter().any(|k| k == "webhook_secret"), "{:?}", s["org[]"]);
}

#[test]
fn every_key_is_documented_under_its_section() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md"))
        .expect("docs/configuration.md");
    let mut problems = Vec::new();
    for (section, keys) in sections() {
        if section.is_empty() {
            continue;
        }
        // `org[].deliver` is written [org.deliver] or [[org]] … deliver.
        let plain = section.replace("[]", "");
        let headings = [format!("[{plain}]"), format!("[[{plain}]]")];
        let Some(start) =
            page.lines().position(|l| l.starts_with('#') && headings.iter().any(|h| l.contains(h.as_str())))
        else {
            problems.push(format!("no heading for [{plain}]"));
            continue;
        };
        let body: Vec<&str> = page.lines().skip(start + 1).take_while(|l| !l.starts_with('#')).collect();
        for k in keys {
            let row = format!("| `{k}`");
            if !body.iter().any(|l| l.starts_with(&row)) {
                problems.push(format!("[{plain}] {k}"));
            }
        }
    }
    assert!(problems.is_empty(), "not documented in docs/configuration.md: {problems:#?}");
}
