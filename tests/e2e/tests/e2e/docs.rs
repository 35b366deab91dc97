//! The architecture page against the running hub: every stream, bucket and
//! object store a hub creates is in docs/architecture.md's tables, and every
//! one those tables name exists. Names are read from the server, not from
//! a list kept beside the code, so a new store cannot be left out.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use xj_testkit::{TestHub, eventually};

/// The first cells of the tables' rows that name a stream (`XJ_…`) or a
/// bucket or object store (`xj_…`).
fn documented(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("XJ_") || n.starts_with("xj_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_store_the_hub_creates_is_in_the_architecture_tables() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // The evidence stores are created by the first upload.
    let r = hub
        .http
        .post(format!("{}/v1/attachments", hub.base))
        .bearer_auth(hub.token("qh-market"))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.4 docs check".to_vec())
        .send()
        .await?;
    assert!(r.status().is_success(), "upload answered {}", r.status());
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let on_server = eventually(Duration::from_secs(20), "the ledger's stream", || async {
        let mut names = js.stream_names();
        let mut out = BTreeSet::new();
        while let Some(n) = names.next().await {
            let n = n.ok()?;
            // A bucket's stream is KV_<bucket>, an object store's OBJ_<store>.
            let n = n.strip_prefix("KV_").or_else(|| n.strip_prefix("OBJ_")).unwrap_or(&n).to_string();
            out.insert(n);
        }
        out.contains("XJ_LEDGER").then_some(out)
    })
    .await?;
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md"))?;
    let docs = documented(&page);
    let missing: Vec<_> = on_server.difference(&docs).collect();
    let stale: Vec<_> = docs.difference(&on_server).collect();
    assert!(missing.is_empty(), "created by the hub but not in docs/architecture.md's tables: {missing:?}");
    assert!(stale.is_empty(), "in docs/architecture.md's tables but not created by the hub: {stale:?}");
    // Each row says who writes it.
    for line in page.lines().filter(|l| l.starts_with("| `XJ_") || l.starts_with("| `xj_")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        assert!(cells.len() >= 4 && cells.iter().all(|c| !c.is_empty()), "an incomplete row: {line}");
    }
    Ok(())
}
