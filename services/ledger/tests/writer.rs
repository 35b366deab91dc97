//! The ledger writer on a real nats-server: sources an entry already holds
//! are acknowledged, not recorded again — whether that entry was stored
//! before the writer started (its writer died before acknowledging) or by
//! another writer while this one was running — and two writers keep one
//! chain with every source once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use xj_bus::headers::Put;

use async_nats::HeaderMap;
use async_nats::jetstream;
use serde_json::{Value, json};
use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_bus::{Bus, Shutdown};
use xj_ledger::{Entry, GENESIS, Leaf, Record, SourceRef};

// A source taken by a writer that died comes back after one second.
const CONFIG: &str = "[nats]\nack_wait_ms = 1000\n[operator]\ntoken = \"operator-token-0123456789\"\n";

struct Setup {
    _dir: tempfile::TempDir,
    _server: NatsServer,
    settings: Arc<xj_config::Settings>,
    bus: Bus,
}

async fn setup() -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join("js");
    let server =
        tokio::task::spawn_blocking(move || NatsServer::start(ServerOptions { store_dir, ..Default::default() }))
            .await??;
    let settings = Arc::new(xj_config::load_str(CONFIG, "ledger-test.toml")?);
    let bus = Bus::connect(&settings, &server.url()).await?;
    xj_ledger::declare(&bus.js, 1).await?;
    Ok(Setup { _dir: dir, _server: server, settings, bus })
}

/// Publishes step events `from..=to` (sequences in `XJ_EVENTS` on a fresh store).
async fn events(js: &jetstream::Context, from: u64, to: u64) -> anyhow::Result<()> {
    let mut acks = Vec::new();
    for i in from..=to {
        let ev = json!({
            "step": "routed", "service": "router", "msg_id": format!("M{i}"), "sender": "qh-market",
            "case": format!("XJ-{}", i % 7), "at": "2026-11-21T01:00:00Z",
            "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "detail": {}
        });
        acks.push(js.publish(format!("xj.evt.qh-market.M{i}.routed"), serde_json::to_vec(&ev)?.into()).await?);
    }
    for a in acks {
        let seq = a.await?.sequence;
        anyhow::ensure!((from..=to).contains(&seq), "event stored at {seq}: not a fresh store");
    }
    Ok(())
}

/// Appends an entry recording `seqs` of `XJ_EVENTS`, as another writer would.
async fn append(
    js: &jetstream::Context,
    n: u64,
    prev: &str,
    seqs: impl Iterator<Item = u64>,
) -> anyhow::Result<String> {
    let records = seqs
        .map(|seq| {
            Leaf::of(Record {
                kind: "event:routed".into(),
                source: SourceRef {
                    stream: "XJ_EVENTS".into(),
                    seq,
                    subject: format!("xj.evt.qh-market.M{seq}.routed"),
                },
                case: None,
                msg_id: Some(format!("M{seq}")),
                sender: Some("qh-market".into()),
                record: json!({ "by": "another writer" }),
            })
        })
        .collect();
    let e = Entry::new(n, "2026-11-21T01:00:00.000Z".into(), prev.into(), records);
    let mut h = HeaderMap::new();
    h.put("Nats-Expected-Last-Sequence", (n - 1).to_string().as_str());
    js.publish_with_headers(xj_ledger::SUBJECT_LEDGER, h, serde_json::to_vec(&e)?.into()).await?.await?;
    Ok(e.hash)
}

fn start(s: &Setup) -> (Shutdown, tokio::task::JoinHandle<Result<(), xj_ledger::LedgerError>>) {
    let shutdown = Shutdown::new();
    let task = tokio::spawn(xj_ledger::run(s.settings.clone(), s.bus.clone(), test_key(), shutdown.clone()));
    (shutdown, task)
}

/// Waits until the `ledger` consumer on `XJ_EVENTS` has `events` delivered
/// and nothing unacknowledged.
async fn settled(js: &jetstream::Context, events: u64) -> anyhow::Result<()> {
    let stream = js.get_stream(xj_bus::subjects::STREAM_EVENTS).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(i) = stream.consumer_info("ledger").await
            && i.num_pending == 0
            && i.num_ack_pending == 0
            && i.ack_floor.stream_sequence >= events
        {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the ledger did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times the chain records each `XJ_EVENTS` source, after
/// verifying it; and the entries.
async fn recorded(js: &jetstream::Context) -> anyhow::Result<(HashMap<u64, usize>, Vec<Value>)> {
    xj_ledger::verify_live(js).await?.map_err(anyhow::Error::msg)?;
    let entries: Vec<Value> = xj_ledger::dump(js).await?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let mut times = HashMap::new();
    for e in &entries {
        for r in e["records"].as_array().into_iter().flatten() {
            *times.entry(r["source"]["seq"].as_u64().unwrap_or_default()).or_default() += 1;
        }
    }
    Ok((times, entries))
}

fn each_once(times: &HashMap<u64, usize>, n: u64) {
    let twice: Vec<_> = times.iter().filter(|(_, t)| **t > 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    let missing: Vec<u64> = (1..=n).filter(|s| !times.contains_key(s)).collect();
    assert!(missing.is_empty(), "never recorded: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_dead_writer_stored_but_never_acknowledged_is_not_recorded_again() -> anyhow::Result<()> {
    let s = setup().await?;
    events(&s.bus.js, 1, 300).await?;
    // A writer recorded 1..=120 and died before acknowledging any of them.
    append(&s.bus.js, 1, GENESIS, 1..=120).await?;
    let (shutdown, task) = start(&s);
    settled(&s.bus.js, 300).await?;
    shutdown.cancel();
    task.await??;
    let (times, entries) = recorded(&s.bus.js).await?;
    each_once(&times, 300);
    assert!(entries.len() < 1 + 180, "the 180 sources waiting were batched: {} entries", entries.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_another_writer_appended_meanwhile_is_dropped_from_the_batch() -> anyhow::Result<()> {
    let s = setup().await?;
    let (shutdown, task) = start(&s);
    // The writer is up (its consumers exist) and knows an empty chain…
    let stream = s.bus.js.get_stream(xj_bus::subjects::STREAM_EVENTS).await?;
    for _ in 0..200 {
        if stream.consumer_info("ledger").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …when another writer records 1..=120 first.
    append(&s.bus.js, 1, GENESIS, 1..=120).await?;
    events(&s.bus.js, 1, 300).await?;
    settled(&s.bus.js, 300).await?;
    shutdown.cancel();
    task.await??;
    let (times, entries) = recorded(&s.bus.js).await?;
    each_once(&times, 300);
    assert_eq!(entries[0]["records"][0]["record"]["by"], "another writer");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_keep_one_chain_with_every_source_once() -> anyhow::Result<()> {
    let s = setup().await?;
    let (stop_a, a) = start(&s);
    let (stop_b, b) = start(&s);
    for burst in 0..20 {
        events(&s.bus.js, burst * 150 + 1, burst * 150 + 150).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settled(&s.bus.js, 3000).await?;
    stop_a.cancel();
    stop_b.cancel();
    a.await??;
    b.await??;
    let (times, entries) = recorded(&s.bus.js).await?;
    each_once(&times, 3000);
    println!("two writers: 3000 sources in {} entries", entries.len());
    Ok(())
}

/// A cluster that has just formed may refuse three copies of the ledger for
/// a while; the writer asks again instead of exiting at the first refusal.
/// (A single node refuses three copies for ever: here it stands for the
/// refusal, and the writer is stopped after two seconds of asking.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_cannot_declare_its_stream_yet_keeps_asking() -> anyhow::Result<()> {
    let s = setup().await?;
    let text = "[nats]\nack_wait_ms = 1000\nreplicas = 3\n[operator]\ntoken = \"operator-token-0123456789\"\n";
    let settings = Arc::new(xj_config::load_str(text, "ledger-r3.toml")?);
    let shutdown = Shutdown::new();
    let writer = tokio::spawn(xj_ledger::run(settings, s.bus.clone(), test_key(), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!writer.is_finished(), "the writer gave up at the first refusal: {:?}", writer.await);
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), writer).await??;
    let err = result.expect_err("three copies on one node cannot be declared");
    assert!(err.to_string().to_lowercase().contains("replica"), "the refusal is named: {err}");
    Ok(())
}

/// A hub key for the writer's signed heads.
fn test_key() -> xj_bus::signing::HubKey {
    xj_bus::signing::HubKey::from_bytes(&[9u8; 32])
}
