//! Every clock the tracker runs is described in docs/clocks.md (its table)
//! and in docs/domain.md (with its legal basis), and those pages describe no
//! clock the tracker does not run; every basis text users see names the law
//! or the county document it comes from, never an outside reference.

use std::collections::BTreeSet;

use xj_tracker::clocks::{self, ClockName};

fn page(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The clock names in the first cell of a page's table rows.
fn rows(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn clocks_md_and_domain_md_describe_exactly_the_clocks_the_tracker_runs() {
    let code: BTreeSet<String> = ClockName::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    assert_eq!(code.len(), ClockName::ALL.len(), "two clocks share a name");
    let table = rows(&page("clocks.md"));
    let missing: Vec<_> = code.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&code).collect();
    assert!(missing.is_empty(), "clocks the tracker runs that docs/clocks.md's table does not list: {missing:?}");
    assert!(unknown.is_empty(), "docs/clocks.md lists clocks the tracker does not run: {unknown:?}");
    let domain = page("domain.md");
    let unexplained: Vec<_> = code.iter().filter(|n| !domain.contains(&format!("`{n}`"))).collect();
    assert!(unexplained.is_empty(), "clocks docs/domain.md does not explain: {unexplained:?}");
}

#[test]
fn every_name_reads_back_and_every_basis_cites_a_source_users_can_find() {
    let settings = xj_config::load_str(include_str!("../../../deploy/sandbox.toml"), "sandbox").expect("sandbox");
    for &name in ClockName::ALL {
        assert_eq!(ClockName::parse(name.as_str()), Some(name));
        let basis = clocks::def(name, &settings).basis;
        assert!(basis.contains('《') && basis.contains('》'), "{name}: the basis names no law or document: {basis}");
        for outside in ["seed", "§", "DOMAIN", "CONTRACT"] {
            assert!(!basis.contains(outside), "{name}: the basis cites {outside:?}: {basis}");
        }
    }
    assert_eq!(ClockName::parse("no_such_clock"), None);
}
