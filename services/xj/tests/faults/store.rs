//! The store's limits and the store itself: a full intake stream refuses
//! with 503 and loses nothing it accepted; a slow receiver leaves the
//! backlog in JetStream, not in the services' memory; a backup of a stopped
//! server's store, restored, is the hub as it was.

use std::time::Duration;

use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_testkit::{TestHub, sample_clue};

use crate::common::*;

/// `[nats] max_msgs = 50`: the 51st submission is refused with 503 and a
/// reason; the 50 accepted are all delivered; with the limit raised (a
/// restart with the new configuration) the refused ones go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_intake_stream_refuses_with_503_and_loses_nothing() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let opts = Options { nats: "ack_wait_ms = 2000\nmax_msgs = 50\n".into(), ..Default::default() };
    let mut hub =
        ProcHub::start(&nats.url(), opts, &[("gateway", "gateway"), ("router", "router"), ("courier", "courier")])
            .await?;
    let mut accepted = std::collections::HashMap::new();
    let mut refused = Vec::new();
    for i in 0..70 {
        let (id, body, to) = referral("FS", i);
        let r = hub
            .http
            .post(format!("{}/v1/messages", hub.base))
            .bearer_auth(ProcHub::token(SENDER))
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let answer: serde_json::Value = r.json().await?;
        match status {
            202 => {
                accepted.insert(id, to);
            }
            503 => {
                assert_eq!(answer["error"], "unavailable", "{answer}");
                let text = answer["message"].as_str().unwrap_or_default();
                assert!(text.contains("store is full") && text.contains("nothing was accepted"), "{answer}");
                refused.push((id, body, to));
            }
            s => panic!("unexpected {s}: {answer}"),
        }
    }
    assert_eq!(accepted.len(), 50, "exactly the stream's capacity is accepted");
    assert_eq!(refused.len(), 20);
    assert_eq!(all_delivered(&hub, &accepted, Duration::from_secs(60)).await?, 0);

    // The operator raises the limit and restarts the gateway with it.
    let text = std::fs::read_to_string(&hub.config)?.replace("max_msgs = 50", "max_msgs = 500");
    std::fs::write(&hub.config, text)?;
    hub.proc("gateway").terminate(Duration::from_secs(10));
    hub.proc("gateway").restart()?;
    hub.wait_ready(Duration::from_secs(30)).await?;
    for (id, body, to) in refused {
        let (status, _) = submit_retrying(&hub.http, &hub.base, SENDER, &body, Duration::from_secs(30)).await?;
        assert!(status == 200 || status == 202, "{id}: {status}");
        accepted.insert(id, to);
    }
    all_delivered(&hub, &accepted, Duration::from_secs(60)).await?;
    Ok(())
}

/// A receiver that takes 50 ms per request and a courier with 8 deliveries
/// in flight: the gateway keeps accepting at its own pace, the backlog
/// waits in JetStream, and no service's memory grows with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_receiver_backlog_stays_in_jetstream_not_in_memory() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let mut opts = Options::default();
    opts.courier.push_str("concurrency = 8\n");
    let services = [("gateway", "gateway"), ("router", "router"), ("courier", "courier")];
    let mut hub = ProcHub::start(&nats.url(), opts, &services).await?;
    for r in hub.receivers.values() {
        r.set_delay(Duration::from_millis(50));
    }
    let n = 2000;
    let (_, task) = load(hub.http.clone(), hub.base.clone(), "SL", n, 32);
    let sent = task.await??;
    let backlog = hub.receivers.values().map(|r| r.deliveries().len()).sum::<usize>();
    assert!(backlog < n / 2, "the receivers are slow: most referrals still wait ({backlog} delivered)");
    all_delivered(&hub, &sent, Duration::from_secs(120)).await?;
    let mut peaks = Vec::new();
    for name in ["gateway", "router", "courier"] {
        let (_, peak) = hub.proc(name).memory().unwrap_or_default();
        peaks.push((name, peak / (1024 * 1024)));
        assert!(peak < 150 * 1024 * 1024, "{name} peaked at {} MiB", peak / (1024 * 1024));
    }
    println!("slow receivers: {n} referrals accepted while {backlog} had been delivered; peak resident MiB {peaks:?}");
    Ok(())
}

/// Backup = a copy of a stopped server's store; restore = a server started
/// on the copy. Streams, buckets and the ledger come back whole, and a
/// message submitted before the backup is still recognised as a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_stopped_store_restores_the_hub() -> anyhow::Result<()> {
    let _g = serial().await;
    let mut hub = TestHub::start("").await?;
    let mut receipts = Vec::new();
    for i in 0..20 {
        let msg = sample_clue(&format!("BK-{i:03}"), SENDER, "FOOD-STALL", "990101101");
        let (s, receipt) = hub.submit(SENDER, &msg).await?;
        assert_eq!(s, 202, "{receipt}");
        receipts.push((msg, receipt));
    }
    hub.receiver(TOWN_DG).wait_for(20, Duration::from_secs(30)).await?;
    // The ledger records 20 messages and their events (routed, delivered)
    // before the stop.
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    xj_testkit::eventually(Duration::from_secs(30), "ledger caught up", || async {
        let chain = xj_ledger::verify_live(&js).await.ok()?.ok()?;
        (chain.records >= 60).then_some(())
    })
    .await?;
    hub.stop().await?;
    hub.nats.server.stop();

    // Backup: copy the store directory of the stopped server.
    let backup = tempfile::tempdir()?;
    copy_dir(&hub.nats.dir.path().join("js").join("jetstream"), &backup.path().join("jetstream"))?;
    drop(hub);

    // Restore: a new server on the copy.
    let restored = tokio::task::spawn_blocking({
        let dir = backup.path().to_path_buf();
        move || NatsServer::start(ServerOptions { store_dir: dir, ..Default::default() })
    })
    .await??;
    let js = async_nats::jetstream::new(async_nats::connect(restored.url()).await?);
    let mut accepted = js.get_stream(xj_bus::subjects::STREAM_ACCEPTED).await?;
    assert_eq!(accepted.info().await?.state.messages, 20);
    accepted.get_last_raw_message_by_subject(&xj_bus::subjects::accepted(SENDER, "BK-007")).await?;
    // The restored ledger verifies from its first entry to its last.
    let verified = xj_ledger::verify_live(&js).await?;
    assert!(verified.is_ok(), "{verified:?}");

    // The hub on the restored store knows what it accepted.
    let nats = xj_testkit::TestNats { server: restored, dir: backup };
    let settings = {
        let urls = std::collections::HashMap::new();
        let text = format!(
            "{}\n[data]\ndir = \"{}\"\n",
            xj_testkit::county_config(&urls),
            nats.dir.path().join("data").display()
        );
        std::sync::Arc::new(xj_config::load_str(&text, "restore test")?)
    };
    let hub = TestHub::start_with(nats, settings, Default::default()).await?;
    let (msg, first) = &receipts[7];
    let (s, again) = hub.submit(SENDER, msg).await?;
    assert_eq!(s, 200, "a message accepted before the backup is a repeat after the restore: {again}");
    assert_eq!(&again["case"], &first["case"]);
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// More requests at once than `[http] max_in_flight`: the surplus is
/// answered 503 with `Retry-After` at once (nothing accepted), the rest
/// accepted and delivered; a client that retries gets everything through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_retry_after() -> anyhow::Result<()> {
    let _g = serial().await;
    let hub =
        TestHub::start("[http]\nmax_in_flight = 4\n[http.rate_limit]\nper_second = 100000.0\nburst = 100000\n").await?;
    let answers = futures::future::join_all((0..64).map(|i| {
        let msg = sample_clue(&format!("OV-{i:03}"), SENDER, "FOOD-STALL", "990101101");
        let (http, url, token) = (hub.http.clone(), format!("{}/v1/messages", hub.base), hub.token(SENDER));
        async move {
            let r = http.post(url).bearer_auth(token).json(&msg).send().await?;
            let retry = r.headers().get("retry-after").is_some();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await?;
            anyhow::Ok((i, status, retry, body))
        }
    }))
    .await;
    let mut shed = Vec::new();
    for a in answers {
        let (i, status, retry, body) = a?;
        match status {
            202 => {}
            503 => {
                assert!(retry, "a shed request says when to retry");
                assert!(body["message"].as_str().unwrap_or_default().contains("at capacity"), "{body}");
                shed.push(i);
            }
            s => panic!("unexpected {s}: {body}"),
        }
    }
    assert!(!shed.is_empty(), "64 requests at once against a limit of 4 must shed some");
    for i in &shed {
        let msg = sample_clue(&format!("OV-{i:03}"), SENDER, "FOOD-STALL", "990101101");
        let (s, _) = submit_retrying(&hub.http, &hub.base, SENDER, &msg, Duration::from_secs(30)).await?;
        assert_eq!(s, 202, "nothing of a shed request was accepted before");
    }
    hub.receiver(TOWN_DG).wait_for(64, Duration::from_secs(60)).await?;
    assert_eq!(hub.receiver(TOWN_DG).duplicates(), 0);
    println!("overload: {} of 64 shed with 503, all 64 delivered once after retrying", shed.len());
    Ok(())
}
