//! Nothing lost, at scale: the hub's services as separate `xj run` processes
//! on real nats-server processes (one, or a three-node cluster on loopback),
//! killed with SIGKILL while referrals flow, and the cases a deployment
//! meets: a receiver down for a while, a full store, a slow receiver, two
//! instances of each service, a graceful restart, a backup restored.
//!
//! Every test counts what each webhook receiver got after deduplicating on
//! `Xj-Message-Id` (as docs/api.md asks of receivers): every referral
//! exactly once. The repeats a receiver dropped are printed (a courier
//! killed between a POST and its ack repeats that POST).
//!
//! Scaled for CI on 2 cores: 2,000 referrals per kill test, a receiver down
//! for 20 seconds rather than minutes (retries every second at most, so the
//! same code path as minutes), ack wait 2 s so a killed instance's messages
//! move on quickly. The tests run one at a time.

mod common;
mod scaling;
mod store;

use std::time::Duration;

use common::*;
use futures::FutureExt;

const N: usize = 2000;
const SERVICES: &[(&str, &str)] = &[("gateway", "gateway"), ("router", "router"), ("courier", "courier")];

/// kill -9 `victims` once a third of the referrals is accepted, start them
/// again a second later; every referral arrives once.
async fn kill_under_load(prefix: &'static str, victims: &[&str]) -> anyhow::Result<usize> {
    let nats = xj_testkit::TestNats::start()?;
    let mut hub = ProcHub::start(&nats.url(), Options::default(), SERVICES).await?;
    let (accepted, task) = load(hub.http.clone(), hub.base.clone(), prefix, N, 32);
    until(&accepted, N / 3, Duration::from_secs(120)).await?;
    for v in victims {
        hub.proc(v).kill9();
    }
    let killed_at = accepted.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for v in victims {
        hub.proc(v).restart()?;
    }
    let sent = task.await??;
    assert_eq!(sent.len(), N);
    let dups = all_delivered(&hub, &sent, Duration::from_secs(120)).await?;
    println!(
        "{prefix}: killed {victims:?} at {killed_at} accepted; {N} delivered once each; {dups} repeats dropped by receivers"
    );
    Ok(dups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_router_under_load() -> anyhow::Result<()> {
    let _g = serial().await;
    let dups = kill_under_load("KR", &["router"]).await?;
    // The router writes no webhook: its redeliveries are dropped by the
    // routed stream's duplicate window before any courier sees them.
    assert_eq!(dups, 0, "a router crash must not repeat a delivery");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_courier_under_load() -> anyhow::Result<()> {
    let _g = serial().await;
    kill_under_load("KC", &["courier"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_router_and_courier_together_under_load() -> anyhow::Result<()> {
    let _g = serial().await;
    kill_under_load("KB", &["router", "courier"]).await?;
    Ok(())
}

/// SIGTERM is a drain, not a crash: router and courier, restarted one after
/// the other mid-flow to take a changed configuration, finish what they
/// hold first, so nothing is dropped and nothing repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_drains_and_repeats_nothing() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let mut hub = ProcHub::start(&nats.url(), Options::default(), SERVICES).await?;
    let (accepted, task) = load(hub.http.clone(), hub.base.clone(), "GR", N, 32);
    until(&accepted, N / 3, Duration::from_secs(120)).await?;
    // A configuration change, taken by restarting each service in turn.
    let text =
        std::fs::read_to_string(&hub.config)?.replace("max_attempts = 10000", "max_attempts = 10000\nconcurrency = 64");
    std::fs::write(&hub.config, text)?;
    for v in ["router", "courier"] {
        let p = hub.proc(v);
        assert!(p.terminate(Duration::from_secs(20)), "{v} did not drain and exit 0 on SIGTERM:\n{}", p.log_tail(20));
        p.restart()?;
    }
    let sent = task.await??;
    let dups = all_delivered(&hub, &sent, Duration::from_secs(120)).await?;
    assert_eq!(dups, 0, "a drained courier must not repeat a delivery");
    Ok(())
}

/// A departmental system down (connection refused) while referrals keep
/// coming: they wait in JetStream, in line behind the first failed copy,
/// which alone is retried; when the receiver is back they all arrive, once
/// each, in the order they were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_a_while_then_everything_arrives_in_order() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let hub = ProcHub::start(&nats.url(), Options::default(), SERVICES).await?;
    let dg = hub.receiver(TOWN_DG).clone();
    dg.go_down();
    let mut sent = std::collections::HashMap::new();
    // One at a time, so the order of acceptance is well defined.
    for i in 0..200 {
        let (id, body, to) = referral("RD", i * 2);
        submit_retrying(&hub.http, &hub.base, SENDER, &body, Duration::from_secs(30)).await?;
        sent.insert(id, to);
    }
    let down_for = Duration::from_secs(20);
    tokio::time::sleep(down_for).await;
    assert_eq!(dg.deliveries().len(), 0);
    assert!(dg.hits() == 0, "the receiver was down: nothing can have reached it");
    dg.come_back().await?;
    let back = std::time::Instant::now();
    let dups = all_delivered(&hub, &sent, Duration::from_secs(60)).await?;
    let got = dg.deliveries();
    let order: Vec<usize> =
        got.iter().filter_map(|d| d.header("xj-message-id")?.strip_prefix("RD-")?.parse().ok()).collect();
    assert_eq!(order.len(), 200, "every referral arrived");
    let inversions = order.windows(2).filter(|w| w[0] > w[1]).count();
    let attempts: Vec<u64> = got.iter().filter_map(|d| d.header("xj-delivery-attempt")?.parse().ok()).collect();
    println!(
        "receiver down {down_for:?}: 200 referrals waited, all arrived {:.1} s after it came back; {inversions} out of order; attempts up to {}; {dups} repeats",
        back.elapsed().as_secs_f64(),
        attempts.iter().max().unwrap_or(&0)
    );
    assert_eq!(inversions, 0, "the backlog arrives in the order it was accepted: {order:?}");
    assert_eq!(dups, 0);
    // The oldest copy was retried through the outage; the rest waited in
    // line instead of each knocking on a receiver that was down. Copies
    // already on their way when the first attempt failed fail once each
    // too (on a busy machine the next referral can be routed before the
    // refused connection is reported): a few at the head, never later ones.
    assert!(attempts[0] > 1, "the first copy was retried: {attempts:?}");
    let in_flight = attempts.iter().take_while(|a| **a > 1).count();
    assert!(in_flight <= 8, "only copies in flight at the first failure were tried more than once: {attempts:?}");
    assert!(
        attempts[in_flight..].iter().all(|a| *a == 1),
        "the copies behind them were tried once, in turn: {attempts:?}"
    );
    Ok(())
}

/// Readiness follows NATS: the gateway (on its API port) and a router (on
/// `[telemetry] metrics_listen`) answer 503 on /healthz while their NATS is
/// away and 200 again when it is back; the hub then accepts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_nats() -> anyhow::Result<()> {
    let _g = serial().await;
    let mut nats = xj_testkit::TestNats::start()?;
    let mut hub = ProcHub::start(&nats.url(), Options::default(), SERVICES).await?;
    let port = xj_bus::embedded::free_port();
    let listen = format!("127.0.0.1:{port}");
    hub.spawn_env("router-metrics", "router", &[("XJ_TELEMETRY__METRICS_LISTEN", &listen)])?;
    let urls = [format!("{}/healthz", hub.base), format!("http://{listen}/healthz")];
    let health = |http: reqwest::Client, url: String| async move {
        http.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    for url in &urls {
        xj_testkit::eventually(Duration::from_secs(30), &format!("{url} ready"), || {
            health(hub.http.clone(), url.clone()).then(|s| async move { (s == 200).then_some(()) })
        })
        .await?;
    }
    nats.server.kill();
    for url in &urls {
        xj_testkit::eventually(Duration::from_secs(15), &format!("{url} unready"), || {
            health(hub.http.clone(), url.clone()).then(|s| async move { (s == 503).then_some(()) })
        })
        .await?;
    }
    nats.server.restart()?;
    for url in &urls {
        xj_testkit::eventually(Duration::from_secs(30), &format!("{url} ready again"), || {
            health(hub.http.clone(), url.clone()).then(|s| async move { (s == 200).then_some(()) })
        })
        .await?;
    }
    let (_, body, to) = referral("RN", 0);
    submit_retrying(&hub.http, &hub.base, SENDER, &body, Duration::from_secs(30)).await?;
    hub.receiver(to).wait_for(1, Duration::from_secs(30)).await?;
    Ok(())
}

/// Two ledger writers append to one chain while 2,000 referrals flow, and
/// one is killed with SIGKILL and started again: the chain verifies from
/// its first entry to its last, and every accepted message and step event
/// is recorded exactly once — what the killed writer had stored but not
/// acknowledged comes back to one of them and is found recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_and_a_kill_keep_one_chain_with_everything_once() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let services = [
        ("gateway", "gateway"),
        ("router", "router"),
        ("courier", "courier"),
        ("ledger-1", "ledger"),
        ("ledger-2", "ledger"),
    ];
    let mut hub = ProcHub::start(&nats.url(), Options::default(), &services).await?;
    let (accepted, task) = load(hub.http.clone(), hub.base.clone(), "LK", N, 32);
    until(&accepted, N / 3, Duration::from_secs(120)).await?;
    hub.proc("ledger-1").kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub.proc("ledger-1").restart()?;
    let sent = task.await??;
    all_delivered(&hub, &sent, Duration::from_secs(120)).await?;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await?);
    let behind = |js: async_nats::jetstream::Context| async move {
        let mut n = 0;
        for s in [xj_bus::subjects::STREAM_ACCEPTED, xj_bus::subjects::STREAM_EVENTS] {
            let i = js.get_stream(s).await.ok()?.consumer_info("ledger").await.ok()?;
            n += i.num_pending + i.num_ack_pending as u64;
        }
        Some(n)
    };
    xj_testkit::eventually(Duration::from_secs(120), "the ledger caught up", || {
        let js = js.clone();
        async move { (behind(js).await == Some(0)).then_some(()) }
    })
    .await?;
    let chain = xj_ledger::verify_live(&js).await?.map_err(anyhow::Error::msg)?;
    let mut sources = 0;
    for s in [xj_bus::subjects::STREAM_ACCEPTED, xj_bus::subjects::STREAM_EVENTS] {
        sources += js.get_stream(s).await?.info().await?.state.messages;
    }
    let dump = xj_ledger::dump(&js).await?;
    let mut seen = std::collections::HashSet::new();
    let mut largest = 0;
    for line in dump.lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        let records = e["records"].as_array().map(Vec::as_slice).unwrap_or_default();
        largest = largest.max(records.len());
        for r in records {
            let key = format!("{}:{}", r["source"]["stream"], r["source"]["seq"]);
            assert!(seen.insert(key.clone()), "source {key} recorded twice");
        }
    }
    assert_eq!(seen.len() as u64, sources, "every accepted message and step event recorded");
    assert_eq!(chain.records, sources);
    assert!(chain.entries < sources, "records share entries: {chain:?}");
    println!(
        "two ledgers, one killed: {} entries (up to {largest} records) for {sources} sources, chain verified",
        chain.entries
    );
    Ok(())
}

/// One departmental system down does not hold up deliveries to the others:
/// its copies wait on the server for their retries, not in the courier's
/// share of unacknowledged messages (courier concurrency 8 here, so the old
/// limit of 4 × concurrency would have been full after 32).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_down_does_not_hold_up_the_others() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let mut opts = Options::default();
    opts.courier.push_str("concurrency = 8\n");
    let hub = ProcHub::start(&nats.url(), opts, SERVICES).await?;
    hub.receiver(TOWN_DG).go_down();
    // 200 referrals for the town that is down (even numbers go there)…
    for i in 0..200 {
        let (_, body, _) = referral("HD", i * 2);
        submit_retrying(&hub.http, &hub.base, SENDER, &body, Duration::from_secs(30)).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // …then 20 for the other town: they arrive while the first still waits.
    let started = std::time::Instant::now();
    for i in 0..20 {
        let (_, body, _) = referral("HU", i * 2 + 1);
        submit_retrying(&hub.http, &hub.base, SENDER, &body, Duration::from_secs(30)).await?;
    }
    hub.receiver(TOWN_XS).wait_for(20, Duration::from_secs(20)).await?;
    println!("one receiver down with 200 waiting: 20 for another arrived in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(hub.receiver(TOWN_DG).deliveries().len(), 0);
    hub.receiver(TOWN_DG).come_back().await?;
    hub.receiver(TOWN_DG).wait_for(200, Duration::from_secs(60)).await?;
    Ok(())
}

/// A durable consumer made by an earlier version (other acknowledgement
/// settings) keeps its position and takes the new settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_consumers_take_new_acknowledgement_settings() -> anyhow::Result<()> {
    use xj_bus::consume::Durable;
    let nats = xj_testkit::TestNats::start()?;
    let settings = xj_config::load_str(
        &format!("{}\n[nats]\nurl = \"{}\"\n", xj_testkit::county_config(&Default::default()), nats.url()),
        "consumer test",
    )?;
    let bus = xj_bus::Bus::connect(&settings, &nats.url()).await?;
    let stream = xj_bus::subjects::STREAM_ROUTED;
    drop(Durable::new(stream, "courier").max_ack_pending(32).messages(&bus.js).await?);
    drop(
        Durable::new(stream, "courier")
            .max_ack_pending(100_000)
            .ack_wait(Duration::from_secs(12))
            .messages(&bus.js)
            .await?,
    );
    let info = bus.js.get_stream(stream).await?.consumer_info("courier").await?;
    assert_eq!(info.config.max_ack_pending, 100_000);
    assert_eq!(info.config.ack_wait, Duration::from_secs(12));
    Ok(())
}
