//! What every fuzz target checks: a native document is translated or
//! refused with every problem placed in it, under the default limits and
//! under limits small enough for short inputs to reach.

use std::sync::LazyLock;

use xj_mapping::report::{Detail, inbound_details};
use xj_mapping::syntax::{self, Limits};
use xj_mapping::{Formats, inbound};
use xj_model::Schemas;

pub static FORMATS: LazyLock<Formats> = LazyLock::new(|| Formats::builtin().expect("built-in formats load"));
pub static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas::load().expect("schemas compile"));

/// Limits a few hundred bytes can reach, so their refusals are fuzzed too.
pub const SMALL: Limits = Limits { max_bytes: 2048, max_depth: 4, max_nodes: 24, max_path: 32 };

/// Translates `data` as a submission and as a delivery in format `name`.
pub fn translate(name: &str, data: &[u8]) {
    let f = FORMATS.get(name).expect("a built-in format");
    for result in [inbound::translate(f, data, "qh-market"), inbound::received(f, data, "hub")] {
        match result {
            Ok(t) => {
                if let Err(problems) = SCHEMAS.validate(&t.message) {
                    for p in &problems {
                        let d = Detail::canonical(p, &t.provenance);
                        assert!(d.loc.is_located() || !p.pointer.is_empty(), "unlocated {d}");
                    }
                }
            }
            Err(e) => {
                let details = inbound_details(&e);
                assert!(!details.is_empty(), "a refusal without details: {e}");
                for d in &details {
                    assert!(d.loc.is_located() && !d.message.is_empty(), "unlocated {d}");
                }
            }
        }
    }
    for limits in [Limits::default(), SMALL] {
        if let Err(e) = inbound::parse_with(f, data, &limits) {
            for d in inbound_details(&e) {
                assert!(d.loc.is_located(), "unlocated {d} under {limits:?}");
            }
        }
    }
}

/// The readers alone: whatever they refuse, they place.
pub fn read(data: &[u8], reader: fn(&[u8], &Limits) -> Option<xj_mapping::Located>) {
    for limits in [Limits::default(), SMALL] {
        if let Some(e) = reader(data, &limits) {
            assert!(e.loc.is_located() && !e.message.is_empty(), "unlocated {e} under {limits:?}");
        }
    }
}

pub fn xml(data: &[u8], limits: &Limits) -> Option<xj_mapping::Located> {
    syntax::parse_xml_with(data, limits).err()
}

pub fn json(data: &[u8], limits: &Limits) -> Option<xj_mapping::Located> {
    syntax::parse_json_with(data, limits).err()
}

pub fn csv(data: &[u8], limits: &Limits) -> Option<xj_mapping::Located> {
    syntax::parse_csv_with(data, b',', limits).err().or_else(|| syntax::parse_csv_with(data, b';', limits).err())
}
