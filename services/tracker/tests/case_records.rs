//! The tracker on a real nats-server, fed the events the router and the
//! courier write: a case record stays small whatever its messages carry,
//! and a record that would still outgrow one NATS message is refused once,
//! loudly, instead of being retried for ever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use chrono::Utc;
use serde_json::{Value, json};
use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_bus::events::{self, Event, Step};
use xj_bus::records::CaseRecord;
use xj_bus::{Bus, Shutdown};

const CONFIG: &str = r#"
[nats]
ack_wait_ms = 1000

[operator]
token = "operator-token-0123456789"

[[org]]
id = "qh-market"
name = "清河县市场监督管理局"
kind = "market_regulation"
region = "990101"
token = "token-qh-market-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }

[[org]]
id = "qh-eco"
name = "清河县生态环境分局"
kind = "ecology_environment"
region = "990101"
token = "token-qh-eco-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }

[[org]]
id = "qh-coord"
name = "清河县行政执法协调办公室"
kind = "coordination_office"
region = "990101"
token = "token-qh-coord-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
"#;

const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    _dir: tempfile::TempDir,
    _server: NatsServer,
    bus: Bus,
    shutdown: Shutdown,
    tracker: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A nats-server (`extra` appended to its configuration) and the tracker.
async fn setup(extra: Option<&str>) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let store_dir = dir.path().join("js");
    let extra_config = extra.map(str::to_owned);
    let server = tokio::task::spawn_blocking(move || {
        NatsServer::start(ServerOptions { store_dir, extra_config, ..Default::default() })
    })
    .await??;
    let settings = Arc::new(xj_config::load_str(CONFIG, "tracker-test.toml")?);
    let bus = Bus::connect(&settings, &server.url()).await?;
    let shutdown = Shutdown::new();
    let tracker = tokio::spawn(xj_tracker::run(settings, bus.clone(), shutdown.clone()));
    Ok(Setup { _dir: dir, _server: server, bus, shutdown, tracker })
}

/// An event as it is on the wire (which is what the tracker reads).
fn event(step: &str, case: &str, id: &str, detail: Value) -> Event {
    serde_json::from_value(json!({
        "step": step, "service": "test", "msg_id": id, "sender": "qh-market", "case": case,
        "msg_type": "assistance_request", "at": Utc::now(),
        "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "detail": detail,
    }))
    .expect("a valid event")
}

/// The `routed` event of an assistance request whose `matter` is `size`
/// bytes, as the router writes it (the summary copies body fields).
fn routed(case: &str, id: &str, seq: u64, size: usize) -> Event {
    let summary =
        json!({ "due_basis": "assistance", "matter": "M".repeat(size), "sent_at": "2026-11-20T09:00:00+08:00" });
    let detail = json!({
        "rule": "explicit", "rule_version": "r-test", "recipients": ["qh-eco"],
        "targets": [{ "org": "qh-eco", "role": "to" }], "seq": seq, "summary": summary,
    });
    event("routed", case, id, detail)
}

fn delivered(case: &str, id: &str) -> Event {
    event("delivered", case, id, json!({ "recipient": "qh-eco", "recipients": ["qh-eco"], "attempt": 1 }))
}

async fn record(bus: &Bus, case: &str) -> anyhow::Result<Option<(CaseRecord, usize)>> {
    let Some(v) = bus.cases.get(case).await? else {
        return Ok(None);
    };
    Ok(Some((serde_json::from_slice(&v)?, v.len())))
}

/// Polls the case record until `done` holds.
async fn wait_record(bus: &Bus, case: &str, done: impl Fn(&CaseRecord) -> bool) -> anyhow::Result<(CaseRecord, usize)> {
    let start = Instant::now();
    loop {
        if let Some((rec, size)) = record(bus, case).await?
            && done(&rec)
        {
            return Ok((rec, size));
        }
        anyhow::ensure!(start.elapsed() < WAIT, "case {case} never got there: {:?}", record(bus, case).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events on `XJ_EVENTS` matching `filter`.
async fn stored_events(bus: &Bus, filter: &str) -> anyhow::Result<Vec<Event>> {
    let stream = bus.js.get_stream("XJ_EVENTS").await?;
    let mut consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter.into(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let pending = consumer.info().await?.num_pending as usize;
    let mut out = Vec::new();
    if pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await?;
    while out.len() < pending {
        use futures::StreamExt;
        let m = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("events ended"))?
            .map_err(anyhow::Error::msg)?;
        out.push(serde_json::from_slice(&m.payload)?);
    }
    Ok(out)
}

/// Waits until the tracker's consumer has nothing pending or unacknowledged.
async fn drained(bus: &Bus) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let stream = bus.js.get_stream("XJ_EVENTS").await?;
        let mut c: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer("tracker").await.map_err(anyhow::Error::msg)?;
        let info = c.info().await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < WAIT, "the tracker never caught up: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nine requests of 1 MiB each on one case would make a 9 MiB record, past
/// the 8 MB a NATS message may hold: the case would freeze at the eighth.
/// Each message is kept with a bounded summary, so the ninth and the
/// deliveries after it are folded in like the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_one_mib_messages_on_one_case_are_all_folded_in() -> anyhow::Result<()> {
    let s = setup(None).await?;
    let case = "XJ-BIG-1";
    for i in 1..=9 {
        events::publish(&s.bus.js, &routed(case, &format!("BIG-{i}"), i, 1 << 20)).await?;
    }
    let (rec, _) = wait_record(&s.bus, case, |r| r.messages.len() == 9).await?;
    for i in 1..=9 {
        events::publish(&s.bus.js, &delivered(case, &format!("BIG-{i}"))).await?;
    }
    let (rec_after, size) = wait_record(&s.bus, case, |r| r.messages.iter().all(|m| !m.delivered.is_empty())).await?;
    assert_eq!(rec.messages.len(), 9);
    assert!(size < 128 * 1024, "a record of nine messages takes {size} bytes");
    for m in &rec_after.messages {
        assert_eq!(m.summary["due_basis"], "assistance", "{}", m.id);
        let matter = m.summary["matter"].as_str().unwrap_or_default();
        assert!(matter.len() < 512 && matter.ends_with("…[truncated, 1048576 bytes in all]"), "{}: {matter}", m.id);
        assert_eq!(m.delivered.len(), 1, "{}", m.id);
    }
    // The deliveries started each request's reply clock, the last one's too.
    let clocks: Vec<&str> =
        rec_after.clocks.iter().filter(|c| c.name == "assistance_reply").map(|c| c.about.as_str()).collect();
    assert_eq!(clocks.len(), 9, "{clocks:?}");
    assert!(clocks.contains(&"BIG-9"), "{clocks:?}");
    drained(&s.bus).await?;
    assert!(stored_events(&s.bus, "xj.evt.*.*.case_record_full").await?.is_empty());
    assert!(!s.tracker.is_finished(), "the tracker is still running");
    Ok(())
}

/// On a server that holds at most 64 KiB in a message, a case with many
/// messages outgrows its record even with bounded summaries. Each event
/// that cannot be stored is refused once — a `case_record_full` step in its
/// trace, the event terminated — never redelivered, and other cases go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_cannot_fit_is_refused_once_not_retried_for_ever() -> anyhow::Result<()> {
    let s = setup(Some("max_payload: 64KB\n")).await?;
    let case = "XJ-FULL-1";
    let total = 160u64;
    for i in 1..=total {
        events::publish(&s.bus.js, &routed(case, &format!("FULL-{i}"), i, 40_000)).await?;
    }
    drained(&s.bus).await?;
    let (rec, size) = record(&s.bus, case).await?.ok_or_else(|| anyhow::anyhow!("no record"))?;
    let kept = rec.messages.len() as u64;
    assert!(kept > 1 && kept < total, "{kept} of {total} messages kept in {size} bytes");
    assert!(size <= 64 * 1024, "{size}");
    // Every message left out, and only those, is in the refusals, once.
    let refused = || async {
        let mut ids: Vec<String> =
            stored_events(&s.bus, "xj.evt.*.*.case_record_full").await?.into_iter().map(|e| e.msg_id).collect();
        ids.sort();
        anyhow::Ok(ids)
    };
    let mut missing: Vec<String> =
        (1..=total).map(|i| format!("FULL-{i}")).filter(|id| !rec.messages.iter().any(|m| &m.id == id)).collect();
    missing.sort();
    assert_eq!(refused().await?, missing);
    let first = stored_events(&s.bus, "xj.evt.*.*.case_record_full").await?;
    let Step::CaseRecordFull(full) = &first[0].step else { panic!("a case_record_full step: {:?}", first[0]) };
    let reason = &full.error;
    assert!(reason.contains(case) && reason.contains("bytes"), "{reason}");
    // Redelivery would have happened after ack_wait (1 s): nothing came back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drained(&s.bus).await?;
    assert_eq!(refused().await?, missing, "each refusal said once");
    assert_eq!(record(&s.bus, case).await?.map(|(r, _)| r.messages.len() as u64), Some(kept));

    // The tracker goes on with other cases.
    events::publish(&s.bus.js, &routed("XJ-SMALL-1", "SMALL-1", total + 1, 100)).await?;
    wait_record(&s.bus, "XJ-SMALL-1", |r| r.messages.len() == 1).await?;
    assert!(!s.tracker.is_finished(), "the tracker is still running");
    Ok(())
}
