//! Routing decisions alone, on a realistic catalogue of 500 matters (a third
//! devolved to some of 12 towns, a fifth with a criminal threshold), one
//! core. `cargo bench -p xj-rules --bench decide`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use xj_model::Envelope;
use xj_rules::{Knowledge, PriorPenalty, RuleSet, decide};

const KINDS: [&str; 6] = [
    "market_regulation",
    "ecology_environment",
    "comprehensive_enforcement",
    "natural_resources",
    "health",
    "transport",
];

fn catalogue() -> String {
    let mut s = String::from("[operator]\ntoken = \"operator-token-0123456789\"\n");
    let mut org = |id: &str, kind: &str, region: &str, unit: Option<&str>| {
        s.push_str(&format!(
            "[[org]]\nid = \"{id}\"\nname = \"{id}\"\nkind = \"{kind}\"\nregion = \"{region}\"\ntoken = \"token-{id}-0123456789\"\ndeliver = {{ nats = true }}\n{}\n",
            unit.map(|u| format!("unit = \"{u}\"")).unwrap_or_default()
        ));
    };
    for k in KINDS {
        org(&format!("b-{}", k.replace('_', "-")), k, "990101", None);
    }
    for t in 0..12 {
        org(&format!("town-{t}"), "town_government", &format!("990101{:03}", 101 + t), None);
    }
    org("police-econ", "public_security", "990101", Some("economic"));
    org("pro", "procuratorate", "990101", None);
    org("coord", "coordination_office", "990101", None);
    org("justice", "justice_bureau", "990101", None);
    for i in 0..500 {
        s.push_str(&format!(
            "[[matter]]\ncode = \"M{i:03}\"\nname = \"事项{i}\"\ncompetent = \"{}\"\n",
            KINDS[i % KINDS.len()]
        ));
        if i % 3 == 0 {
            let towns: Vec<String> = (0..(i % 12)).map(|t| format!("\"990101{:03}\"", 101 + t)).collect();
            s.push_str(&format!("devolved_to = [{}]\n", towns.join(", ")));
        }
        if i % 5 == 0 {
            s.push_str(&format!(
                "[matter.crime]\noffence = \"罪{i}\"\npolice_unit = \"economic\"\nwhen = 'facts.sales_amount >= 50000 || facts.sales_amount * 3 + facts.unsold_value >= 150000 || prior_penalties(duration(\"730d\"), \"M{i:03}\") >= 2'\n"
            ));
        }
    }
    s
}

fn main() {
    let settings = xj_config::load_str(&catalogue(), "bench.toml").expect("catalogue loads");
    let rs = RuleSet::compile(Arc::new(settings)).expect("rules compile");
    let n: usize = std::env::var("XJ_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let messages: Vec<Envelope> = (0..1000)
        .map(|i| {
            serde_json::from_value(json!({
                "id": format!("B-{i}"), "type": "clue_referral", "sender": "b-transport",
                "sent_at": "2026-11-20T09:00:00+08:00", "classification": "internal",
                "body": { "matter": format!("M{:03}", (i * 7) % 500), "party": { "name": "x", "uscc": "91990101MA0000007H" },
                          "found_on": "2026-11-18", "location": { "region": format!("990101{:03}", 101 + i % 12) },
                          "facts": { "sales_amount": (i * 97 % 80_000) as f64 } }
            }))
            .expect("envelope")
        })
        .collect();
    let priors: Vec<PriorPenalty> = Vec::new();
    let k = Knowledge { priors, ..Default::default() };
    // Warm up.
    for m in &messages {
        std::hint::black_box(decide(&rs, m, &k));
    }
    let start = Instant::now();
    let mut crimes = 0usize;
    for i in 0..n {
        let d = decide(&rs, &messages[i % messages.len()], &k);
        crimes += usize::from(d.crime.is_some());
        std::hint::black_box(d);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rules engine: 500 matters, {n} decisions in {secs:.2}s = {:.0} decisions/s on one core ({crimes} crime findings); {:.1} µs per decision",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}
