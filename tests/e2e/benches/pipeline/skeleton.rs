//! Part C, the hub's skeleton: the JetStream traffic of one referral through
//! the hub — the same streams, buckets, consumers, publishes, acks and KV
//! operations per referral, each role on its own connection — with none of
//! the hub's own work (no HTTP, no JSON, no schema, no rules, no signing).
//!
//! It answers a question the two other parts cannot: how fast could *any*
//! implementation of this message flow go on this machine? The hub's flow
//! (edge → `XJ_ACCEPTED` → router → `XJ_ROUTED` → courier, with the step
//! events, the tracker's case record and the ledger listening) makes about
//! 19 messages go into nats-server and 20 come out per referral (read from
//! the server's `/connz` under load, docs/performance.md); the raw two-hop
//! pipeline of part A makes about 4 and 4. The skeleton's rate is the
//! ceiling of the flow; the hub's rate divided by it is what the hub's own
//! work costs.
//!
//! Per referral, as the services do it:
//! * edge (gateway): create the receipt claim in a KV bucket (awaited), then
//!   publish the message (with `Nats-Msg-Id`) and its `accepted` event at
//!   once;
//! * router: consume the message; store the route record and publish the
//!   `routed` event at once; publish the copy; ack;
//! * courier: consume the copy; publish the `delivered` event; double ack;
//!   this is the referral's arrival;
//! * tracker: consume each event; for `routed` and `delivered` write the
//!   case record; ack;
//! * ledger: consume the messages and the events; append one entry per
//!   batch of up to 512 (each naming the sequence it follows); ack each.
//!
//! The *lean* flow (`XJ_BENCH_SKELETON=lean`) is the same flow with the
//! redesigns docs/performance.md lists: the message's own subject is its
//! claim (`xj.accepted.<sender>.<id>`, one message per subject, a repeat
//! refused by the server) so there is no claim in a bucket and no
//! `accepted` event; the route record travels in the copy, so there is no
//! route record and no `routed` event; the tracker and the ledger read the
//! copies in `XJ_ROUTED` instead. What is left per referral: the message,
//! its copy, the `delivered` event, two case-record writes, and the ledger.
//!
//! The *kept* flow (part C″) is the lean flow with what the hub cannot
//! drop: the `xj_parties` key the gateway writes before it answers (the
//! case, naming its opener) and the one the router writes before the copy
//! leaves (the recipient referred), which let a party act on a case the
//! tracker has not folded yet; and the case record written once per
//! referral, as the tracker folds a case's steps that come together. It is
//! the ceiling of the flow the hub is heading to, with none of its work.

use super::*;
use xj_bus::headers::Put;

use async_nats::jetstream::kv;

const GATEWAY_INFLIGHT: usize = 256;
const ROUTER_CONCURRENCY: usize = 64;
const COURIER_CONCURRENCY: usize = 256;
const TRACKER_CONCURRENCY: usize = 32;
const LEDGER_BATCH: usize = 512;
/// Sizes of the hub's records for a FOOD-STALL clue referral (bytes).
const MESSAGE: usize = 1_300;
const EVENT: usize = 400;
const ROUTE: usize = 300;
const CASE: usize = 1_500;

/// Which message flow the skeleton replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The hub's flow of 2026-11-21 (part C, the yardstick).
    Old,
    /// The lean redesign (part C′).
    Lean,
    /// The lean redesign with the parties keys and one case-record write
    /// per referral (part C″).
    Kept,
}

pub struct SkeletonResult {
    pub n: usize,
    pub rate: f64,
    pub caught_up: f64,
    pub latency: Histogram<u64>,
    pub msgs: Option<(f64, f64)>,
    pub cpu: CpuUse,
}

impl SkeletonResult {
    pub fn print(&self) {
        println!("end to end (delivered)   {:>9.0} referrals/s  ({} referrals)", self.rate, self.n);
        println!("tracker and ledger too   {:>9.0} referrals/s", self.caught_up);
        println!("latency edge->delivered  {}", pct(&self.latency));
        print_msgs(self.msgs);
        self.cpu.print("bench process", self.n, "referral");
    }
}

/// Part A's file stream with the hub's duplicate window.
fn file_stream(name: &str, subject: &str) -> stream::Config {
    stream::Config { duplicate_window: Duration::from_secs(600), ..xj_testkit::raw::stream_config(name, subject) }
}

fn bucket(name: &str) -> kv::Config {
    kv::Config { bucket: name.into(), history: 1, storage: stream::StorageType::File, ..Default::default() }
}

fn pad(prefix: &[u8], size: usize) -> Bytes {
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(prefix);
    v.resize(size.max(prefix.len()), b'x');
    v.into()
}

/// The publish time travels in the first 8 bytes of the message and its copy.
fn stamp(at: u64, size: usize) -> Bytes {
    pad(&at.to_le_bytes(), size)
}

async fn connect(url: &str) -> anyhow::Result<jetstream::Context> {
    Ok(jetstream::new(async_nats::connect(url).await?))
}

pub async fn skeleton(n: usize, flow: Flow) -> anyhow::Result<SkeletonResult> {
    let lean = flow != Flow::Old;
    let kept = flow == Flow::Kept;
    let nats = TestNats::start()?;
    let url = nats.url();
    let admin = connect(&url).await?;
    for (name, subject) in [
        ("SK_ACCEPTED", "sk.accepted.>"),
        ("SK_ROUTED", "sk.routed.>"),
        ("SK_EVENTS", "sk.evt.>"),
        ("SK_LEDGER", "sk.ledger"),
    ] {
        let mut config = file_stream(name, subject);
        if lean && name == "SK_ACCEPTED" {
            // The claim: one message per id, a second one refused.
            config.max_messages_per_subject = 1;
            config.discard = stream::DiscardPolicy::New;
            config.discard_new_per_subject = true;
        }
        admin.create_stream(config).await?;
    }
    let receipts = admin.create_key_value(bucket("sk_receipts")).await?;
    let routes = admin.create_key_value(bucket("sk_routes")).await?;
    let cases = admin.create_key_value(bucket("sk_cases")).await?;
    let parties = admin.create_key_value(bucket("sk_parties")).await?;
    let pull = |name: &str, max_ack_pending: i64| consumer::pull::Config {
        durable_name: Some(name.into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending,
        ..Default::default()
    };
    let consumer = |stream: &'static str, name: &'static str, pending: i64| {
        let admin = admin.clone();
        async move { anyhow::Ok(admin.get_stream(stream).await?.create_consumer(pull(name, pending)).await?) }
    };
    let router_in = consumer("SK_ACCEPTED", "router", 1024).await?;
    let courier_in = consumer("SK_ROUTED", "courier", 1024).await?;
    let tracker_in = consumer("SK_EVENTS", "tracker", 1024).await?;
    let ledger_msgs = consumer("SK_ACCEPTED", "ledger", 4096).await?;
    let ledger_events = consumer("SK_EVENTS", "ledger-events", 4096).await?;
    // The lean flow's tracker and ledger read the copies too.
    let tracker_copies = consumer("SK_ROUTED", "tracker-copies", 1024).await?;
    let ledger_copies = consumer("SK_ROUTED", "ledger-copies", 4096).await?;

    let mut tasks = Vec::new();

    // Router.
    let js = connect(&url).await?;
    let routes_r = js.get_key_value("sk_routes").await?;
    let parties_r = js.get_key_value("sk_parties").await?;
    drop(routes);
    tasks.push(tokio::spawn(async move {
        router_in
            .messages()
            .await?
            .for_each_concurrent(ROUTER_CONCURRENCY, |m| {
                let (js, routes, parties) = (js.clone(), routes_r.clone(), parties_r.clone());
                async move {
                    let Ok(m) = m else { return };
                    let id = m.subject.rsplit('.').next().unwrap_or_default().to_string();
                    let mut payload = m.payload.clone();
                    if lean {
                        // The route record rides in the copy.
                        let mut with_route = payload.to_vec();
                        with_route.resize(payload.len() + ROUTE, b'r');
                        payload = with_route.into();
                    } else {
                        let route = routes.put(format!("qh-market.{id}"), pad(b"", ROUTE));
                        let event = async {
                            js.publish(format!("sk.evt.qh-market.{id}.routed"), pad(id.as_bytes(), EVENT)).await?.await
                        };
                        let (a, b) = tokio::join!(route, event);
                        if a.is_err() || b.is_err() {
                            return;
                        }
                    }
                    // The recipient is party before its copy leaves.
                    if kept && parties.put(format!("XJ-{id}.referred.qh-town-dg"), pad(b"", 2)).await.is_err() {
                        return;
                    }
                    let copy = async { js.publish(format!("sk.routed.qh-town-dg.{id}"), payload).await?.await };
                    if copy.await.is_ok() {
                        let _ = m.ack().await;
                    }
                }
            })
            .await;
        anyhow::Ok(())
    }));

    // Courier: the arrival is when the copy is consumed and confirmed.
    let js = connect(&url).await?;
    let delivered = Arc::new(AtomicUsize::new(0));
    let latency = Arc::new(Mutex::new(histogram()));
    let last_delivery = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (delivered, latency, last) = (delivered.clone(), latency.clone(), last_delivery.clone());
        tasks.push(tokio::spawn(async move {
            courier_in
                .messages()
                .await?
                .for_each_concurrent(COURIER_CONCURRENCY, |m| {
                    let (js, delivered, latency, last) = (js.clone(), delivered.clone(), latency.clone(), last.clone());
                    async move {
                        let Ok(m) = m else { return };
                        let id = m.subject.rsplit('.').next().unwrap_or_default().to_string();
                        let event = async {
                            js.publish(format!("sk.evt.qh-market.{id}.delivered"), pad(id.as_bytes(), EVENT))
                                .await?
                                .await
                        };
                        if event.await.is_err() || m.double_ack().await.is_err() {
                            return;
                        }
                        let at = now_ns();
                        let sent = m.payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
                        if let (Some(sent), Ok(mut h)) = (sent, latency.lock()) {
                            rec(&mut h, sent, at);
                        }
                        last.fetch_max(at, Ordering::Relaxed);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .await;
            anyhow::Ok(())
        }));
    }

    // Tracker: the case record is written for the steps that change it.
    let js = connect(&url).await?;
    let cases_t = js.get_key_value("sk_cases").await?;
    drop(cases);
    let tracked = Arc::new(AtomicUsize::new(0));
    {
        let tracked = tracked.clone();
        tasks.push(tokio::spawn(async move {
            let (events, copies) = (tracker_in.messages().await?, tracker_copies.messages().await?);
            let input = if lean { futures::stream::select(events, copies).boxed() } else { events.boxed() };
            input
                .for_each_concurrent(TRACKER_CONCURRENCY, |m| {
                    let (cases, tracked) = (cases_t.clone(), tracked.clone());
                    async move {
                        let Ok(m) = m else { return };
                        // sk.evt.<org>.<id>.<step>, or a copy sk.routed.<org>.<id>
                        let mut parts = m.subject.rsplit('.');
                        let (step, id) = if m.subject.starts_with("sk.routed.") {
                            ("routed".to_string(), parts.next().unwrap_or_default().to_string())
                        } else {
                            let step = parts.next().unwrap_or_default().to_string();
                            (step, parts.next().unwrap_or_default().to_string())
                        };
                        // Kept: a referral's two steps come together and are
                        // folded in one write.
                        let writes = if kept { step == "delivered" } else { step != "accepted" };
                        if writes && cases.put(format!("XJ-{id}"), pad(b"", CASE)).await.is_err() {
                            return;
                        }
                        if m.ack().await.is_ok() {
                            tracked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .await;
            anyhow::Ok(())
        }));
    }

    // Ledger: both sources into one chain of batch entries.
    let js = connect(&url).await?;
    let ledgered = Arc::new(AtomicUsize::new(0));
    {
        let ledgered = ledgered.clone();
        tasks.push(tokio::spawn(async move {
            let msgs = ledger_msgs.messages().await?;
            let events = ledger_events.messages().await?;
            let both = futures::stream::select(msgs, events);
            let mut both = if lean {
                futures::stream::select(both, ledger_copies.messages().await?).boxed()
            } else {
                both.boxed()
            }
            .ready_chunks(LEDGER_BATCH);
            let mut last_seq = 0u64;
            while let Some(batch) = both.next().await {
                let batch: Vec<_> = batch.into_iter().filter_map(Result::ok).collect();
                let mut headers = async_nats::HeaderMap::new();
                headers.put("Nats-Expected-Last-Sequence", last_seq.to_string().as_str());
                let entry = pad(b"", 64 + 96 * batch.len());
                let ack = js.publish_with_headers("sk.ledger", headers, entry).await?.await?;
                last_seq = ack.sequence;
                for m in &batch {
                    let _ = m.ack().await;
                }
                ledgered.fetch_add(batch.len(), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }

    // Edge: claim, then the message and its event.
    let js = connect(&url).await?;
    let receipts_g = js.get_key_value("sk_receipts").await?;
    let parties_g = js.get_key_value("sk_parties").await?;
    drop((receipts, parties));
    let cpu = CpuMeter::start();
    let msgs = MsgMeter::start(nats.server.monitor_port);
    let t0 = now_ns();
    let mut inflight = FuturesUnordered::new();
    for i in 0..n {
        let (js, receipts, parties) = (js.clone(), receipts_g.clone(), parties_g.clone());
        inflight.push(async move {
            let id = format!("M{i:08}");
            let sent = now_ns();
            if lean {
                let mut headers = async_nats::HeaderMap::new();
                headers.put("Nats-Msg-Id", id.as_str());
                let subject = format!("sk.accepted.qh-market.{id}");
                let message = async { js.publish_with_headers(subject, headers, stamp(sent, MESSAGE)).await?.await };
                if kept {
                    // The case's key, naming its opener, beside the message.
                    let (a, b) = tokio::join!(message, parties.put(format!("XJ-{id}"), pad(b"qh-market", 64)));
                    a?;
                    b?;
                } else {
                    message.await?;
                }
                return anyhow::Ok(());
            }
            receipts.create(format!("qh-market.{id}"), pad(b"", ROUTE)).await?;
            let mut headers = async_nats::HeaderMap::new();
            headers.put("Nats-Msg-Id", id.as_str());
            let message = async {
                js.publish_with_headers(format!("sk.accepted.qh-market.{id}"), headers, stamp(sent, MESSAGE))
                    .await?
                    .await
            };
            let event =
                async { js.publish(format!("sk.evt.qh-market.{id}.accepted"), pad(id.as_bytes(), EVENT)).await?.await };
            let (a, b) = tokio::join!(message, event);
            a?;
            b?;
            anyhow::Ok(())
        });
        while inflight.len() >= GATEWAY_INFLIGHT {
            inflight.next().await.context("edge")??;
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
    }

    let limit = Instant::now() + Duration::from_secs(120);
    while delivered.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            Instant::now() < limit,
            "skeleton: only {} of {n} delivered in 120 s",
            delivered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Tracker: three events per referral (lean: a copy and an event);
    // ledger: the message and three events (lean: the message, its copy and an event).
    let (tracks, ledgers) = if lean { (2 * n, 3 * n) } else { (3 * n, 4 * n) };
    while tracked.load(Ordering::Relaxed) < tracks || ledgered.load(Ordering::Relaxed) < ledgers {
        anyhow::ensure!(Instant::now() < limit, "skeleton: tracker or ledger did not catch up in 120 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let caught_up = now_ns();
    let cpu = cpu.stop();
    let msgs = msgs.per(n);
    for t in tasks {
        t.abort();
    }
    let last = last_delivery.load(Ordering::Relaxed);
    let latency = latency.lock().map(|h| h.clone()).unwrap_or_else(|_| histogram());
    drop(nats);
    Ok(SkeletonResult { n, rate: rate(n, t0, last), caught_up: rate(n, t0, caught_up), latency, msgs, cpu })
}
