//! Translation alone, one core: documents per second for each format's
//! richest example, native → canonical (parse, map, provenance) and
//! canonical → native (map, write). `cargo bench -p xj-mapping`; the
//! figures are in docs/performance.md.

use std::path::Path;
use std::time::{Duration, Instant};

use xj_mapping::{Formats, inbound, outbound};

fn rate(mut f: impl FnMut()) -> f64 {
    // Warm up, then run for about a second.
    for _ in 0..200 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let formats = Formats::builtin().expect("formats");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/formats");
    println!("| format | document | bytes | native → canonical (docs/s) | canonical → native (docs/s) |");
    println!("|---|---|---:|---:|---:|");
    for name in formats.names() {
        let f = formats.get(name).expect("format");
        // The largest example is the one with the most fields and groups.
        let mut examples: Vec<_> = std::fs::read_dir(dir.join(name).join("examples"))
            .expect("examples")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        examples.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
        let path = &examples[0];
        let raw = std::fs::read(path).expect("read");
        let canonical = inbound::translate(f, &raw, "qh-market").expect("example translates").message;
        let inbound_rate = rate(|| {
            std::hint::black_box(inbound::translate(f, std::hint::black_box(&raw), "qh-market").ok());
        });
        let outbound_rate = rate(|| {
            std::hint::black_box(outbound::translate_value(f, std::hint::black_box(&canonical)).ok());
        });
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} |",
            path.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
            raw.len(),
            inbound_rate,
            outbound_rate
        );
    }
}
