//! `just bench` (`cargo bench -p xj-e2e --bench pipeline`): the backbone's
//! end-to-end rate against the same machine's raw JetStream, in one run.
//!
//! * Part A, raw baseline: on its own nats-server, N ~1 KiB messages are
//!   published to a file stream with many publish acks in flight; a durable
//!   pull consumer republishes each to a second stream (waiting for the
//!   publish ack) and acks it; a second durable consumer consumes and acks.
//!   Publish time travels in the payload.
//! * Part B, the hub: `TestHub` (real nats-server, every service of
//!   `xj up` in this process) and N FOOD-STALL referrals from qh-market
//!   POSTed to `/v1/messages` with bounded concurrency over one keep-alive
//!   client; the courier delivers each to qh-town-dg's webhook, a small
//!   receiver in this process that records when each id first arrived.
//!   Afterwards the stored time of every message in `XJ_ACCEPTED` and
//!   `XJ_ROUTED` splits each referral's latency by stage; the consumers off
//!   the delivery path (tracker, ledger) are timed until they catch up; and
//!   CPU is counted for nats-server, this process and everything else.
//! * Part C, the hub's skeleton (`pipeline/skeleton.rs`): the hub's
//!   JetStream traffic per referral — its streams, buckets, consumers,
//!   publishes, acks — with none of its work: the ceiling of the flow on
//!   this machine.
//!
//! Environment: `XJ_BENCH_N` (both parts), `XJ_BENCH_RAW_N` (default 50000),
//! `XJ_BENCH_HUB_N` (default 10000), `XJ_BENCH_INFLIGHT` (HTTP requests in
//! flight, default 64), `XJ_BENCH_COURIER` (courier concurrency, default
//! 256), `XJ_BENCH_SKELETON_N` (default 30000), `XJ_BENCH_ONLY` (`raw`,
//! `skeleton` or `hub`, or several with commas), `XJ_BENCH_SERVICES` (e.g.
//! `gateway,router,courier`; default all). Nothing here asserts on timing.
//! Figures and their reading: docs/performance.md.

/// The hub runs in this process: same allocator as the `xj` binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use axum::extract::State;
use axum::http::{HeaderMap as HttpHeaders, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use xj_bus::headers as h;
use xj_testkit::procs::{clock_ticks, cpu_secs, machine, nats_pid};
use xj_testkit::raw::{histogram, now_ns, rate};
use xj_testkit::{TestHub, TestNats, county_config, sample_clue};

#[path = "pipeline/skeleton.rs"]
mod skeleton;

const SENDER: &str = "qh-market";
const RECIPIENT: &str = "qh-town-dg";
const WARMUP: usize = 200;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a filter argument would be ignored.
    let opts = Opts::from_env();
    // The hub reads every `XJ_*` variable as configuration and refuses
    // unknown keys, so the bench's own settings must not reach it.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("XJ_BENCH_")) {
            // SAFETY: no other thread exists yet (the runtime starts below).
            unsafe { std::env::remove_var(&name) };
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(opts))
}

struct Opts {
    raw_n: usize,
    hub_n: usize,
    inflight: usize,
    courier: usize,
    skeleton_n: usize,
    only: Option<String>,
    services: Vec<xj::hub::Service>,
}

/// `XJ_BENCH_SERVICES=gateway,router,courier` runs only those (to see what
/// the others cost); gateway, router and courier always run, the delivery
/// path needs them. Default: every service, as `xj up` runs them.
fn services_from_env() -> Vec<xj::hub::Service> {
    use xj::hub::Service;
    let Ok(list) = std::env::var("XJ_BENCH_SERVICES") else { return Service::ALL.to_vec() };
    Service::ALL
        .into_iter()
        .filter(|s| {
            matches!(s, Service::Gateway | Service::Router | Service::Courier)
                || list.split(',').any(|n| n.trim().eq_ignore_ascii_case(&format!("{s:?}")))
        })
        .collect()
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Opts {
    fn from_env() -> Self {
        let both = env_usize("XJ_BENCH_N");
        Self {
            raw_n: env_usize("XJ_BENCH_RAW_N").or(both).unwrap_or(50_000).max(1),
            hub_n: env_usize("XJ_BENCH_HUB_N").or(both).unwrap_or(10_000).max(1),
            skeleton_n: env_usize("XJ_BENCH_SKELETON_N").or(both).unwrap_or(30_000).max(1),
            inflight: env_usize("XJ_BENCH_INFLIGHT").unwrap_or(64).max(1),
            courier: env_usize("XJ_BENCH_COURIER").unwrap_or(256).max(1),
            only: std::env::var("XJ_BENCH_ONLY").ok().filter(|s| !s.is_empty()),
            services: services_from_env(),
        }
    }
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let want = |part: &str| opts.only.as_deref().is_none_or(|o| o.split(',').any(|p| p.trim() == part));
    println!("{}", machine());
    let raw = if want("raw") {
        println!(
            "\n== A. raw JetStream: publish -> consume -> republish -> consume, {} x {} B ==",
            opts.raw_n,
            xj_testkit::raw::PAYLOAD
        );
        let r = raw(opts.raw_n).await?;
        r.print();
        Some(r)
    } else {
        None
    };
    let (skel, lean, kept) = if want("skeleton") {
        println!(
            "\n== C. the hub's skeleton: its JetStream traffic per referral, none of its work, {} referrals ==",
            opts.skeleton_n
        );
        let r = skeleton::skeleton(opts.skeleton_n, skeleton::Flow::Old).await?;
        r.print();
        println!(
            "\n== C'. the lean skeleton: the same flow with the claim in the subject and the route in the copy, {} referrals ==",
            opts.skeleton_n
        );
        let l = skeleton::skeleton(opts.skeleton_n, skeleton::Flow::Lean).await?;
        l.print();
        println!(
            "\n== C\". the kept skeleton: the lean flow with the parties keys and one case-record write a referral, {} referrals ==",
            opts.skeleton_n
        );
        let k = skeleton::skeleton(opts.skeleton_n, skeleton::Flow::Kept).await?;
        k.print();
        (Some(r), Some(l), Some(k))
    } else {
        (None, None, None)
    };
    let hub = if want("hub") {
        println!(
            "\n== B. hub: HTTP POST -> gateway -> router -> courier -> webhook, {} referrals, {} in flight, courier concurrency {} ==",
            opts.hub_n, opts.inflight, opts.courier
        );
        println!("services: {:?}", opts.services);
        let r = hub(opts.hub_n, opts.inflight, opts.courier, &opts.services).await?;
        r.print();
        Some(r)
    } else {
        None
    };
    summary(raw.as_ref(), skel.as_ref(), lean.as_ref(), kept.as_ref(), hub.as_ref());
    Ok(())
}

// ---------------------------------------------------------------- clocks --

fn rec(h: &mut Histogram<u64>, from_ns: u64, to_ns: u64) {
    let us = (to_ns.saturating_sub(from_ns) / 1_000).max(1);
    h.saturating_record(us);
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

fn pct(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!(
        "p50 {:>9}  p99 {:>9}  max {:>9}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

// ---------------------------------------------------- CPU accounting ----

/// Busy CPU seconds of the whole machine (every process, every core).
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: f64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy / clock_ticks()
}

/// Messages into and out of a nats-server, read from its monitoring port.
fn server_msgs(monitor: u16) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(&xj_testkit::http_get(monitor, "/varz")?).ok()?;
    Some((v["in_msgs"].as_u64()?, v["out_msgs"].as_u64()?))
}

/// NATS protocol messages per referral (publishes, acks, deliveries, KV
/// requests and replies) over a measured window.
struct MsgMeter {
    monitor: u16,
    start: Option<(u64, u64)>,
}

impl MsgMeter {
    fn start(monitor: u16) -> Self {
        Self { monitor, start: server_msgs(monitor) }
    }

    fn per(&self, items: usize) -> Option<(f64, f64)> {
        let ((i0, o0), (i1, o1)) = (self.start?, server_msgs(self.monitor)?);
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / items.max(1) as f64;
        Some((per(i0, i1), per(o0, o1)))
    }
}

fn print_msgs(msgs: Option<(f64, f64)>) {
    if let Some((i, o)) = msgs {
        println!("NATS messages per referral: {i:.1} into nats-server, {o:.1} out of it");
    }
}

/// CPU used over a measured window by this process (hub, load generator
/// and receiver), by nats-server, and by everything else on the machine.
struct CpuMeter {
    nats: Option<u32>,
    start_self: f64,
    start_nats: f64,
    start_all: f64,
    start: Instant,
}

#[derive(Clone, Copy)]
struct CpuUse {
    wall: f64,
    own: f64,
    nats: f64,
    others: f64,
}

impl CpuMeter {
    fn start() -> Self {
        let nats = nats_pid();
        Self {
            nats,
            start_self: cpu_secs(std::process::id()).unwrap_or_default(),
            start_nats: nats.and_then(cpu_secs).unwrap_or_default(),
            start_all: machine_busy_secs(),
            start: Instant::now(),
        }
    }

    fn stop(&self) -> CpuUse {
        let own = cpu_secs(std::process::id()).unwrap_or_default() - self.start_self;
        let nats = self.nats.and_then(cpu_secs).unwrap_or_default() - self.start_nats;
        let all = machine_busy_secs() - self.start_all;
        CpuUse { wall: self.start.elapsed().as_secs_f64(), own, nats, others: (all - own - nats).max(0.0) }
    }
}

impl CpuUse {
    fn cores(&self, secs: f64) -> f64 {
        if self.wall > 0.0 { secs / self.wall } else { 0.0 }
    }

    /// CPU per item, and a warning when other processes took a share.
    fn print(&self, own: &str, items: usize, unit: &str) {
        let per = |secs: f64| secs * 1e6 / items.max(1) as f64;
        println!(
            "CPU over {:.2} s: nats-server {:.2} cores, {own} {:.2} cores, other processes {:.2} cores (of {})",
            self.wall,
            self.cores(self.nats),
            self.cores(self.own),
            self.cores(self.others),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("CPU per {unit}: nats-server {:.0} µs, {own} {:.0} µs", per(self.nats), per(self.own));
        if self.cores(self.others) > 0.15 {
            println!(
                "!! other processes used {:.2} cores during this part: its figures are low; run again on a quiet machine",
                self.cores(self.others)
            );
        }
    }
}

// ------------------------------------------------------------ A. raw ----

struct RawResult {
    n: usize,
    publish_rate: f64,
    rate: f64,
    latency: Histogram<u64>,
    cpu: CpuUse,
}

impl RawResult {
    fn print(&self) {
        println!("published (acked)        {:>9.0} msg/s", self.publish_rate);
        println!("end to end (2 hops)      {:>9.0} msg/s  ({} messages)", self.rate, self.n);
        println!("latency publish->final   {}", pct(&self.latency));
        self.cpu.print("bench process", self.n, "message");
    }
}

async fn raw(n: usize) -> anyhow::Result<RawResult> {
    let (run, cpu) = xj_testkit::raw::run_metered(n, CpuMeter::start, |m| m.stop()).await?;
    Ok(RawResult { n, publish_rate: run.publish_rate, rate: run.rate, latency: run.latency, cpu })
}

// ------------------------------------------------------------ B. hub ----

/// qh-town-dg's webhook: first arrival time of each message id.
#[derive(Clone, Default)]
struct Inbox {
    first: Arc<Mutex<HashMap<String, u64>>>,
    hits: Arc<AtomicUsize>,
}

impl Inbox {
    async fn start(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route("/inbox", post(inbox)).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}/inbox"))
    }

    fn unique(&self) -> usize {
        self.first.lock().map(|m| m.len()).unwrap_or_default()
    }

    fn arrivals(&self) -> HashMap<String, u64> {
        self.first.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

async fn inbox(State(inbox): State<Inbox>, headers: HttpHeaders, _body: Bytes) -> StatusCode {
    let at = now_ns();
    inbox.hits.fetch_add(1, Ordering::Relaxed);
    let id = headers.get("xj-message-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if let Ok(mut m) = inbox.first.lock() {
        m.entry(id).or_insert(at);
    }
    StatusCode::OK
}

struct HubResult {
    n: usize,
    inflight: usize,
    rejected: usize,
    accept_rate: f64,
    rate: f64,
    e2e: Histogram<u64>,
    accept: Histogram<u64>,
    /// submit start -> stored in XJ_ACCEPTED (HTTP, auth, schema, claim, publish)
    gateway: Histogram<u64>,
    /// stored in XJ_ACCEPTED -> stored in XJ_ROUTED (queue, decide, route record, publish)
    router: Histogram<u64>,
    /// stored in XJ_ROUTED -> webhook arrival (queue, sign, HTTP POST)
    courier: Histogram<u64>,
    /// when the last message cleared each stage, from the first submit
    cleared: [(&'static str, f64); 4],
    duplicates: usize,
    /// consumers off the delivery path: backlog when the last webhook
    /// arrived, and when (from the first submit) it was worked off
    side: Vec<SideConsumer>,
    /// messages each stream holds after the run (warm-up included)
    stored: Vec<(String, u64)>,
    /// NATS messages into and out of the server per referral, until the
    /// consumers off the delivery path caught up
    msgs: Option<(f64, f64)>,
    cpu: CpuUse,
}

impl HubResult {
    /// Referrals a second delivered *and* recorded: until the last consumer
    /// off the delivery path (tracker, ledger) caught up, or the last
    /// delivery if they kept up. None when one never caught up.
    fn recorded_rate(&self) -> Option<f64> {
        let mut t = self.n as f64 / self.rate.max(1e-9);
        for c in &self.side {
            t = t.max(c.caught_up?);
        }
        Some(self.n as f64 / t.max(1e-9))
    }

    fn print(&self) {
        if self.rejected > 0 {
            println!("!! {} submissions were not accepted (non-202)", self.rejected);
        }
        println!("accepted (HTTP 202)      {:>9.0} referrals/s  ({} in flight)", self.accept_rate, self.inflight);
        println!("end to end (webhook)     {:>9.0} referrals/s  ({} referrals)", self.rate, self.n);
        println!("latency HTTP accept      {}", pct(&self.accept));
        println!("latency submit->webhook  {}", pct(&self.e2e));
        println!("where the time goes, per referral:");
        println!("  gateway  submit -> stored in XJ_ACCEPTED  {}", pct(&self.gateway));
        println!("  router   XJ_ACCEPTED -> XJ_ROUTED         {}", pct(&self.router));
        println!("  courier  XJ_ROUTED -> webhook arrival     {}", pct(&self.courier));
        let cleared: Vec<String> = self.cleared.iter().map(|(s, t)| format!("{s} {t:.2} s")).collect();
        println!("last referral cleared:   {}", cleared.join(", "));
        let total: u64 = self.stored.iter().map(|(_, n)| n).sum();
        let per = |n: u64| n as f64 / (self.n + WARMUP) as f64;
        let by: Vec<String> =
            self.stored.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{s} {:.1}", per(*n))).collect();
        println!("JetStream messages stored per referral: {:.1} ({})", per(total), by.join(", "));
        print_msgs(self.msgs);
        for c in &self.side {
            match c.caught_up {
                Some(t) => println!(
                    "off the delivery path: {:<22} {:>6} behind at the last delivery, caught up at {t:.2} s ({:.0} referrals/s sustained)",
                    c.name,
                    c.behind,
                    self.n as f64 / t.max(1e-9)
                ),
                None => println!(
                    "off the delivery path: {:<22} {:>6} behind at the last delivery, still {} behind {SIDE_WAIT:?} later",
                    c.name, c.behind, c.left
                ),
            }
        }
        if self.duplicates > 0 {
            println!("webhook duplicates (redeliveries): {}", self.duplicates);
        }
        self.cpu.print("hub+load generator", self.n, "referral");
    }
}

/// The test county with qh-town-dg's webhook at `webhook`. The bench is
/// one sender at full speed, so the per-organisation request limit
/// (`[http] rate_limit`, 50/s by default) is lifted; everything else is as
/// deployed.
fn bench_config(webhook: &str, data: &std::path::Path, courier: usize) -> String {
    let urls = HashMap::from([(RECIPIENT.to_string(), webhook.to_string())]);
    format!(
        "{}\n[data]\ndir = \"{}\"\n\n[http.rate_limit]\nper_second = 1000000.0\nburst = 1000000\n\n[courier]\nconcurrency = {courier}\ntimeout_ms = 10000\n",
        county_config(&urls),
        data.display()
    )
}

async fn hub(n: usize, inflight: usize, courier: usize, services: &[xj::hub::Service]) -> anyhow::Result<HubResult> {
    // A scraped hub records its metrics; so does this one.
    let _ = xj_bus::metrics::handle();
    let nats = TestNats::start()?;
    let inbox = Inbox::default();
    let webhook = inbox.start().await?;
    let text = bench_config(&webhook, &nats.dir.path().join("data"), courier);
    // From a file, as a deployment (and the test harness) has it.
    let path = nats.dir.path().join("xianjie.toml");
    std::fs::write(&path, &text)?;
    let settings = Arc::new(xj_config::load_file(&path)?);
    let hub = TestHub::start_with_services(nats, settings, HashMap::new(), services).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(inflight).build()?;
    let url = format!("{}/v1/messages", hub.base);
    let auth = format!("Bearer {}", hub.token(SENDER));

    let body = |id: &str| -> anyhow::Result<Bytes> {
        Ok(serde_json::to_vec(&sample_clue(id, SENDER, "FOOD-STALL", "990101101"))?.into())
    };
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let submit = |body: Bytes| {
        let (http, url, auth, first_error) = (http.clone(), url.clone(), auth.clone(), first_error.clone());
        async move {
            let start = now_ns();
            let status = match http
                .post(&url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    if s != 202 {
                        first_error.lock().map(|mut e| e.get_or_insert(format!("HTTP {s}: {text}")).len()).ok();
                    }
                    s
                }
                Err(e) => {
                    first_error.lock().map(|mut f| f.get_or_insert(format!("request failed: {e}")).len()).ok();
                    0
                }
            };
            (start, now_ns(), status)
        }
    };

    // Warm-up: connections, consumers, caches; not measured.
    let warm: Vec<Bytes> = (0..WARMUP).map(|i| body(&format!("WARM-{i:05}"))).collect::<anyhow::Result<_>>()?;
    futures::stream::iter(warm).map(submit).buffer_unordered(inflight).collect::<Vec<_>>().await;
    wait_for(&inbox, WARMUP, Duration::from_secs(30)).await?;

    let ids: Vec<String> = (0..n).map(|i| format!("BENCH-{i:06}")).collect();
    let bodies: Vec<Bytes> = ids.iter().map(|id| body(id)).collect::<anyhow::Result<_>>()?;
    let cpu = CpuMeter::start();
    let msgs = MsgMeter::start(hub.nats.server.monitor_port);
    let t0 = now_ns();
    let results: Vec<(usize, (u64, u64, u16))> = futures::stream::iter(bodies.into_iter().enumerate())
        .map(|(i, b)| {
            let fut = submit(b);
            async move { (i, fut.await) }
        })
        .buffer_unordered(inflight)
        .collect()
        .await;
    let rejected = results.iter().filter(|(_, (_, _, s))| *s != 202).count();
    if let Some(e) = first_error.lock().ok().and_then(|e| e.clone()) {
        let text: String = e.chars().take(400).collect();
        println!("!! first refused submission: {text}");
    }
    let accepted_n = n - rejected;
    let limit = Duration::from_secs(60 + n as u64 / 100);
    wait_for(&inbox, WARMUP + accepted_n, limit).await?;
    let cpu = cpu.stop();
    let side = side_consumers(&hub.nats.url(), t0).await?;
    let msgs = msgs.per(accepted_n);
    let stored = stored_per_stream(&hub.nats.url()).await?;

    let arrivals = inbox.arrivals();
    let mut submitted = vec![(0u64, 0u64); n];
    let mut accept = histogram();
    let mut last_accept = t0;
    for (i, (s, e, status)) in &results {
        submitted[*i] = (*s, *e);
        if *status == 202 {
            rec(&mut accept, *s, *e);
            last_accept = last_accept.max(*e);
        }
    }
    // An accepted message's subject names its sender and id.
    let stored_accepted = stored_times(&hub.nats.url(), xj_bus::subjects::STREAM_ACCEPTED, |m| {
        let id = serde_json::from_slice::<serde_json::Value>(&m.payload).ok()?["id"].as_str()?.to_string();
        (m.subject.as_str() == xj_bus::subjects::accepted(SENDER, &id)).then_some(id)
    })
    .await?;
    let stored_routed = stored_times(&hub.nats.url(), xj_bus::subjects::STREAM_ROUTED, |m| {
        h::get(m.headers.as_ref(), h::MESSAGE_ID).map(str::to_string)
    })
    .await?;

    let (mut e2e, mut gateway, mut router, mut courier) = (histogram(), histogram(), histogram(), histogram());
    let (mut last_arrival, mut last_acc, mut last_routed) = (t0, t0, t0);
    for (i, id) in ids.iter().enumerate() {
        let (start, _) = submitted[i];
        let Some(&arrived) = arrivals.get(id) else {
            continue;
        };
        rec(&mut e2e, start, arrived);
        last_arrival = last_arrival.max(arrived);
        if let (Some(&a), Some(&r)) = (stored_accepted.get(id), stored_routed.get(id)) {
            rec(&mut gateway, start, a);
            rec(&mut router, a, r);
            rec(&mut courier, r, arrived);
            last_acc = last_acc.max(a);
            last_routed = last_routed.max(r);
        }
    }
    let secs = |t: u64| t.saturating_sub(t0) as f64 / 1e9;
    let duplicates = inbox.hits.load(Ordering::Relaxed).saturating_sub(inbox.unique());
    drop(hub);
    Ok(HubResult {
        n: accepted_n,
        inflight,
        rejected,
        accept_rate: rate(accepted_n, t0, last_accept),
        rate: rate(accepted_n, t0, last_arrival),
        e2e,
        accept,
        gateway,
        router,
        courier,
        cleared: [
            ("HTTP 202", secs(last_accept)),
            ("XJ_ACCEPTED", secs(last_acc)),
            ("XJ_ROUTED", secs(last_routed)),
            ("webhook", secs(last_arrival)),
        ],
        duplicates,
        side,
        stored,
        msgs,
        cpu,
    })
}

/// Messages in every stream (KV buckets are streams too), by name.
async fn stored_per_stream(url: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let mut out = Vec::new();
    let mut streams = js.streams();
    while let Some(info) = streams.next().await {
        let info = info.map_err(|e| anyhow::anyhow!(e))?;
        out.push((info.config.name.clone(), info.state.messages));
    }
    out.sort();
    Ok(out)
}

/// How long to wait for consumers off the delivery path to catch up.
const SIDE_WAIT: Duration = Duration::from_secs(45);

struct SideConsumer {
    name: String,
    behind: u64,
    left: u64,
    caught_up: Option<f64>,
}

/// The hub's durable consumers other than router and courier (tracker,
/// ledger, …): how far behind they are now, and when they catch up.
async fn side_consumers(url: &str, t0: u64) -> anyhow::Result<Vec<SideConsumer>> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let mut found = Vec::new();
    for name in [xj_bus::subjects::STREAM_ACCEPTED, xj_bus::subjects::STREAM_ROUTED, xj_bus::subjects::STREAM_EVENTS] {
        let stream = js.get_stream(name).await?;
        let mut names = stream.consumer_names();
        while let Some(c) = names.next().await {
            let c = c.map_err(|e| anyhow::anyhow!(e))?;
            if c != "router" && c != "courier" {
                found.push((stream.clone(), name, c));
            }
        }
    }
    let backlog = |stream: &stream::Stream, c: &str| {
        let (stream, c) = (stream.clone(), c.to_string());
        async move {
            let i = stream.consumer_info(&c).await?;
            anyhow::Ok(i.num_pending + i.num_ack_pending as u64)
        }
    };
    let mut out = Vec::new();
    for (stream, sname, c) in &found {
        let behind = backlog(stream, c).await?;
        out.push(SideConsumer { name: format!("{c} on {sname}"), behind, left: behind, caught_up: None });
    }
    let start = Instant::now();
    while start.elapsed() < SIDE_WAIT && out.iter().any(|c| c.caught_up.is_none()) {
        for (i, (stream, _, c)) in found.iter().enumerate() {
            if out[i].caught_up.is_none() {
                out[i].left = backlog(stream, c).await?;
                if out[i].left == 0 {
                    out[i].caught_up = Some(now_ns().saturating_sub(t0) as f64 / 1e9);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(out)
}

async fn wait_for(inbox: &Inbox, n: usize, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while inbox.unique() < n {
        if start.elapsed() > limit {
            anyhow::bail!("only {} of {n} deliveries after {limit:?}", inbox.unique());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The time the server stored each message of `stream`, by message id.
async fn stored_times(
    url: &str,
    stream: &str,
    id_of: impl Fn(&jetstream::Message) -> Option<String>,
) -> anyhow::Result<HashMap<String, u64>> {
    let js = jetstream::new(async_nats::connect(url).await?);
    let mut s = js.get_stream(stream).await?;
    let count = s.info().await?.state.messages as usize;
    let mut messages = s.create_consumer(consumer::pull::OrderedConfig::default()).await?.messages().await?;
    let mut out = HashMap::with_capacity(count);
    for _ in 0..count {
        let Some(m) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.ok().flatten() else {
            break;
        };
        let m = m.map_err(|e| anyhow::anyhow!(e))?;
        let at = m.info().map_err(|e| anyhow::anyhow!(e))?.published;
        if let Some(id) = id_of(&m) {
            out.entry(id).or_insert(at.unix_timestamp_nanos() as u64);
        }
    }
    Ok(out)
}

// -------------------------------------------------------------- summary --

fn summary(
    raw: Option<&RawResult>,
    skel: Option<&skeleton::SkeletonResult>,
    lean: Option<&skeleton::SkeletonResult>,
    kept: Option<&skeleton::SkeletonResult>,
    hub: Option<&HubResult>,
) {
    println!("\n== summary ==");
    println!("{:<44} {:>14}", "measure", "value");
    if let Some(r) = raw {
        println!("{:<44} {:>10.0} /s", "raw JetStream 2-hop, 1 KiB msgs", r.rate);
        println!(
            "{:<44} {:>14}",
            "raw latency p50 / p99",
            format!(
                "{:.1} / {:.1} ms",
                r.latency.value_at_quantile(0.5) as f64 / 1e3,
                r.latency.value_at_quantile(0.99) as f64 / 1e3
            )
        );
    }
    if let Some(k) = skel {
        println!("{:<44} {:>10.0} /s", "skeleton (the hub's traffic, no work)", k.rate);
        println!("{:<44} {:>10.0} /s", "skeleton, tracker and ledger caught up", k.caught_up);
    }
    if let Some(k) = lean {
        println!("{:<44} {:>10.0} /s", "lean skeleton (the flow redesigned)", k.rate);
        println!("{:<44} {:>10.0} /s", "lean skeleton, tracker and ledger caught up", k.caught_up);
    }
    if let Some(k) = kept {
        println!("{:<44} {:>10.0} /s", "kept skeleton (lean + parties, folded case)", k.rate);
        println!("{:<44} {:>10.0} /s", "kept skeleton, tracker and ledger caught up", k.caught_up);
    }
    if let Some(h) = hub {
        println!("{:<44} {:>10.0} /s", "hub end to end (HTTP in -> webhook out)", h.rate);
        if let Some(r) = h.recorded_rate() {
            println!("{:<44} {:>10.0} /s", "hub delivered and recorded", r);
        }
        println!("{:<44} {:>10.0} /s", "hub HTTP accept", h.accept_rate);
        let p = |x: &Histogram<u64>| {
            format!("{:.1} / {:.1} ms", x.value_at_quantile(0.5) as f64 / 1e3, x.value_at_quantile(0.99) as f64 / 1e3)
        };
        println!("{:<44} {:>14}", "hub end-to-end latency p50 / p99", p(&h.e2e));
        println!("{:<44} {:>14}", "hub HTTP accept latency p50 / p99", p(&h.accept));
    }
    let ratio = |label: &str, part: Option<f64>, whole: Option<f64>| {
        if let (Some(p), Some(w)) = (part, whole)
            && w > 0.0
        {
            println!("{label:<44} {:>13.1}%", 100.0 * p / w);
        }
    };
    let recorded = |k: &skeleton::SkeletonResult| k.caught_up;
    let (lean_rec, kept_rec) = (lean.map(recorded), kept.map(recorded));
    let kept = kept.map(|k| k.rate);
    let hub_rec = hub.and_then(HubResult::recorded_rate);
    let (raw, skel, lean, hub) = (raw.map(|r| r.rate), skel.map(|k| k.rate), lean.map(|k| k.rate), hub.map(|h| h.rate));
    ratio("ratio hub / raw", hub, raw);
    ratio("ratio hub delivered and recorded / raw", hub_rec, raw);
    ratio("ratio skeleton / raw (the flow's ceiling)", skel, raw);
    ratio("ratio lean skeleton / raw", lean, raw);
    ratio("ratio lean skeleton recorded / raw", lean_rec, raw);
    ratio("ratio kept skeleton / raw", kept, raw);
    ratio("ratio kept skeleton recorded / raw", kept_rec, raw);
    if let (Some(k), Some(r)) = (kept_rec, raw)
        && r > 0.0
    {
        // The target docs/performance.md sets, beside the flow's own ceiling.
        println!(
            "target: hub delivered and recorded >= 30 % of raw; the kept flow with none of the hub's work reaches {:.1} %",
            100.0 * k / r
        );
    }
    ratio("ratio hub recorded / kept skeleton recorded", hub_rec, kept_rec);
    ratio("ratio hub / skeleton (the hub's own work)", hub, skel);
}
