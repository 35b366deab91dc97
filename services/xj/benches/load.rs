//! `just bench-load` (`cargo bench -p xj --bench load`): open-loop load on
//! the hub as deployed — every service its own `xj run` process on one
//! nats-server — beside raw JetStream on the same machine in the same run.
//!
//! * raw: N ~1 KiB messages published (many acks in flight) to a file
//!   stream, relayed by a durable pull consumer to a second stream (publish
//!   ack awaited before the ack), consumed and acked there: the two-hop
//!   pipeline the hub's delivery path is made of, with nothing else.
//! * hub, open loop at fixed rates: referral `i` is sent at `t0 + i/rate`
//!   whatever happened to the ones before (no coordinated omission), by HTTP
//!   to the gateway; the router places it (FOOD-STALL, devolved to 东关镇);
//!   the courier signs it and POSTs it to a webhook in this process, which
//!   notes when each id first arrived. Latency is from the scheduled send to
//!   that arrival. The tracker and the ledger run too: the phase is over
//!   when the ledger has recorded everything (validated, routed, ledgered,
//!   signed, delivered).
//! * hub, maximum: a fixed number of referrals with many requests in flight.
//! * soak (`XJ_LOAD_SOAK_N`, e.g. 1000000): a long open-loop run at
//!   `XJ_LOAD_SOAK_RATE`, sampling each process's resident memory.
//!
//! Peak resident memory (VmHWM) is read per process. Environment:
//! `XJ_LOAD_RATES` (default `1000,2000,5000`), `XJ_LOAD_SECS` (per rate,
//! default 10), `XJ_LOAD_MAX_N` (default 30000), `XJ_LOAD_INFLIGHT` (default
//! 256), `XJ_LOAD_RAW_N` (default 100000), `XJ_LOAD_SOAK_N` (default 0),
//! `XJ_LOAD_SOAK_RATE` (default 2000), `XJ_LOAD_BATCH` (default 100),
//! `XJ_LOAD_ONLY` (`raw`, `hub`, `soak`, `batch`), `XJ_LOAD_HTTP2` (set: the
//! receiver is configured `http2 = true`, deliveries go by h2c).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_nats::jetstream;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use xj_testkit::procs::{ServiceProc, cpu_secs, machine, memory, nats_pid};
use xj_testkit::{TestNats, county_config, sample_clue};

const SENDER: &str = "qh-market";
const RECIPIENT: &str = "qh-town-dg";
const SERVICES: [&str; 5] = ["gateway", "router", "courier", "tracker", "ledger"];

fn main() -> anyhow::Result<()> {
    let opts = Opts::from_env();
    // The services read every XJ_* variable as configuration and refuse
    // unknown keys: the bench's own settings must not reach them.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("XJ_LOAD_")) {
            // SAFETY: no other thread exists yet.
            unsafe { std::env::remove_var(&name) };
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(opts))
}

struct Opts {
    rates: Vec<u64>,
    secs: u64,
    max_n: usize,
    inflight: usize,
    raw_n: usize,
    soak_n: usize,
    soak_rate: u64,
    /// Messages a batch at the batched edges (`POST /v1/messages/batch` in,
    /// `deliver = { webhook, batch }` out); 0 skips that phase.
    batch: usize,
    only: Option<String>,
    /// The receiver configured `http2 = true` (deliveries by h2c).
    http2: bool,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Opts {
    fn from_env() -> Self {
        let rates = std::env::var("XJ_LOAD_RATES")
            .ok()
            .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1000, 2000, 5000]);
        Self {
            rates,
            secs: env("XJ_LOAD_SECS").unwrap_or(10),
            max_n: env("XJ_LOAD_MAX_N").unwrap_or(30_000),
            inflight: env("XJ_LOAD_INFLIGHT").unwrap_or(256),
            raw_n: env("XJ_LOAD_RAW_N").unwrap_or(100_000),
            soak_n: env("XJ_LOAD_SOAK_N").unwrap_or(0),
            soak_rate: env("XJ_LOAD_SOAK_RATE").unwrap_or(2000),
            batch: env("XJ_LOAD_BATCH").unwrap_or(100),
            only: std::env::var("XJ_LOAD_ONLY").ok().filter(|s| !s.is_empty()),
            http2: std::env::var_os("XJ_LOAD_HTTP2").is_some(),
        }
    }
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let want = |p: &str| opts.only.as_deref().is_none_or(|o| o == p);
    println!("{}", machine());
    let raw_rate = if want("raw") {
        println!("\n== raw JetStream: publish -> consume -> republish -> consume, {} x 1 KiB ==", opts.raw_n);
        let r = raw(opts.raw_n).await?;
        Some(r)
    } else {
        None
    };
    let mut summary = Vec::new();
    if want("hub") || want("soak") {
        let hub = Hub::start(opts.inflight.max(256), None, opts.http2).await?;
        hub.warm().await?;
        if want("hub") {
            for &rate in &opts.rates {
                println!("\n== hub, open loop at {rate}/s for {} s ==", opts.secs);
                let r = hub.open_loop(&format!("R{rate}"), rate, (rate * opts.secs) as usize).await?;
                r.print();
                summary.push(r);
            }
            println!("\n== hub, maximum: {} referrals, {} requests in flight ==", opts.max_n, opts.inflight);
            let r = hub.closed_loop("MAX", opts.max_n, opts.inflight).await?;
            r.print();
            // The latency target is set at half the maximum the hub records.
            let half = (r.recorded_rate() / 2.0) as u64;
            summary.push(r);
            if half > 0 {
                println!("\n== hub, open loop at half the recorded maximum: {half}/s for {} s ==", opts.secs);
                let r = hub.open_loop("HALF", half, (half * opts.secs) as usize).await?;
                r.print();
                summary.push(r);
            }
        }
        if want("soak") && opts.soak_n > 0 {
            println!("\n== soak: {} referrals at {}/s ==", opts.soak_n, opts.soak_rate);
            let r = hub.soak(opts.soak_n, opts.soak_rate).await?;
            r.print();
            summary.push(r);
        }
        println!("\n== peak resident memory per process (VmHWM) ==");
        for (name, peak) in hub.peaks() {
            println!("  {name:<12} {:>7.1} MiB", peak as f64 / 1048576.0);
        }
    }
    // The batched edges on a hub of their own (the receiver takes batches).
    if want("batch") && opts.batch > 1 {
        let hub = Hub::start(opts.inflight.max(256), Some(opts.batch), opts.http2).await?;
        hub.warm().await?;
        let batches = (opts.inflight / 8).max(4);
        println!(
            "\n== hub, maximum with batched edges: {} referrals in POST /v1/messages/batch of {}, {batches} batches in flight, delivered in webhook batches of up to {} ==",
            opts.max_n, opts.batch, opts.batch
        );
        let r = hub.closed_loop_batched("MAXB", opts.max_n, batches, opts.batch).await?;
        r.print();
        summary.push(r);
    }
    println!("\n== summary ==");
    if let Some(raw) = raw_rate {
        println!("raw JetStream two hops                {raw:>9.0} msg/s");
        for r in &summary {
            println!(
                "hub {:<10} offered {:>7} delivered {:>7.0}/s  ledgered {:>7.0}/s  p50 {:>7} p99 {:>7} p99.9 {:>7}  = {:>5.1} % of raw",
                r.label,
                r.offered.map(|o| format!("{o}/s")).unwrap_or_else(|| "max".into()),
                r.delivered_rate,
                r.ledgered_rate,
                ms(r.e2e.value_at_quantile(0.5)),
                ms(r.e2e.value_at_quantile(0.99)),
                ms(r.e2e.value_at_quantile(0.999)),
                100.0 * r.delivered_rate / raw
            );
        }
        targets(raw, &summary);
    } else {
        for r in &summary {
            r.print_line();
        }
    }
    Ok(())
}

/// The lean flow's targets (docs/performance.md), against this run.
fn targets(raw: f64, summary: &[Phase]) {
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\n== targets ==");
    for label in ["MAX", "MAXB"] {
        if let Some(r) = summary.iter().find(|r| r.label == label) {
            let share = 100.0 * r.recorded_rate() / raw;
            let what = if label == "MAX" { "single requests" } else { "batched edges" };
            println!(
                "maximum delivered and recorded, {what:<15} >= 30 % of raw: {:>7.0}/s = {share:>5.1} %  {}",
                r.recorded_rate(),
                verdict(share >= 30.0)
            );
        }
    }
    if let Some(r) = summary.iter().find(|r| r.label == "HALF") {
        let (p99, p999) = (r.e2e.value_at_quantile(0.99), r.e2e.value_at_quantile(0.999));
        println!(
            "open loop at half the maximum ({}/s): p99 {} <= 50 ms {}, p99.9 {} <= 100 ms {}",
            r.offered.unwrap_or_default(),
            ms(p99),
            verdict(p99 <= 50_000),
            ms(p999),
            verdict(p999 <= 100_000)
        );
    }
}

// ---------------------------------------------------------------- helpers --

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default()
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

fn ms(us: u64) -> String {
    format!("{:.1}ms", us as f64 / 1000.0)
}

// -------------------------------------------------------------------- raw --

async fn raw(n: usize) -> anyhow::Result<f64> {
    let run = xj_testkit::raw::run(n).await?;
    println!("published (acked)    {:>9.0} msg/s", run.publish_rate);
    println!("through both hops    {:>9.0} msg/s", run.rate);
    Ok(run.rate)
}

// ---------------------------------------------------------------- the hub --

/// The webhook: first arrival of each id.
#[derive(Clone, Default)]
struct Inbox {
    first: Arc<Mutex<HashMap<Box<str>, u64>>>,
    hits: Arc<AtomicUsize>,
}

async fn inbox_handler(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = now_ns();
    // A batched delivery: the ids are in the body.
    let ids: Vec<String> = if headers.contains_key("xj-batch-size") {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["messages"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect()
    } else {
        vec![headers.get("xj-message-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()]
    };
    inbox.hits.fetch_add(ids.len(), Ordering::Relaxed);
    if let Ok(mut m) = inbox.first.lock() {
        for id in ids {
            m.entry(id.into()).or_insert(at);
        }
    }
    StatusCode::OK
}

impl Inbox {
    fn unique(&self) -> usize {
        self.first.lock().map(|m| m.len()).unwrap_or_default()
    }
}

struct Hub {
    _nats: TestNats,
    nats_url: String,
    procs: Vec<ServiceProc>,
    inbox: Inbox,
    base: String,
    http: reqwest::Client,
    template: Vec<u8>,
    js: jetstream::Context,
    delivered_before: AtomicUsize,
    /// (request start, answer, status) of each submission of the phase.
    results: Mutex<Vec<(u64, u64, u16)>>,
}

struct Phase {
    label: String,
    offered: Option<u64>,
    n: usize,
    /// Submissions not accepted, by HTTP status (0: no answer).
    refused: BTreeMap<u16, usize>,
    accept_rate: f64,
    delivered_rate: f64,
    ledgered_rate: f64,
    /// Case records up to date too (the tracker, off the delivery path).
    tracked_rate: Option<f64>,
    e2e: Histogram<u64>,
    accept: Histogram<u64>,
    duplicates: usize,
    cpu: Vec<(String, f64)>,
    rss: Vec<(String, u64)>,
    wall: f64,
}

impl Phase {
    fn refused_total(&self) -> usize {
        self.refused.values().sum()
    }

    fn refused_by_status(&self) -> String {
        let name = |s: u16| if s == 0 { "no answer".to_string() } else { format!("HTTP {s}") };
        self.refused.iter().map(|(s, k)| format!("{}: {k}", name(*s))).collect::<Vec<_>>().join(", ")
    }

    fn print(&self) {
        if self.refused_total() > 0 {
            println!("!! {} submissions not accepted ({})", self.refused_total(), self.refused_by_status());
        }
        println!("accepted (HTTP 202)          {:>9.0}/s", self.accept_rate);
        println!("delivered (webhook)          {:>9.0}/s  ({} referrals)", self.delivered_rate, self.n);
        println!("ledgered too (all recorded)  {:>9.0}/s", self.ledgered_rate);
        match self.tracked_rate {
            Some(r) => println!("case records up to date       {r:>9.0}/s"),
            None => println!("case records up to date      not within the wait"),
        }
        let p = |h: &Histogram<u64>| {
            format!(
                "p50 {:>8} p99 {:>8} p99.9 {:>8} max {:>8}",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.max())
            )
        };
        println!("latency send -> webhook      {}", p(&self.e2e));
        println!("latency send -> HTTP 202     {}", p(&self.accept));
        if self.duplicates > 0 {
            println!("webhook repeats (deduped)    {}", self.duplicates);
        }
        let cpu: Vec<String> = self.cpu.iter().map(|(n, s)| format!("{n} {:.2}", s / self.wall.max(1e-9))).collect();
        println!("CPU cores used               {}", cpu.join(", "));
        let rss: Vec<String> = self.rss.iter().map(|(n, b)| format!("{n} {:.0}", *b as f64 / 1048576.0)).collect();
        println!("resident MiB at the end      {}", rss.join(", "));
    }

    /// Delivered and fully recorded: ledger and case records caught up.
    fn recorded_rate(&self) -> f64 {
        self.delivered_rate.min(self.ledgered_rate).min(self.tracked_rate.unwrap_or(0.0))
    }

    fn print_line(&self) {
        println!(
            "hub {:<10} delivered {:>7.0}/s ledgered {:>7.0}/s p50 {} p99 {} p99.9 {}",
            self.label,
            self.delivered_rate,
            self.ledgered_rate,
            ms(self.e2e.value_at_quantile(0.5)),
            ms(self.e2e.value_at_quantile(0.99)),
            ms(self.e2e.value_at_quantile(0.999))
        );
    }
}

impl Hub {
    async fn start(courier_concurrency: usize, batch: Option<usize>, http2: bool) -> anyhow::Result<Self> {
        let nats = TestNats::start()?;
        let inbox = Inbox::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let webhook = format!("http://{}/inbox", listener.local_addr()?);
        let app = axum::Router::new().route("/inbox", post(inbox_handler)).with_state(inbox.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = nats.dir.path().to_path_buf();
        let port = xj_bus::embedded::free_port();
        let urls = HashMap::from([(RECIPIENT.to_string(), webhook.clone())]);
        let mut county = county_config(&urls);
        let mut deliver = Vec::new();
        if let Some(n) = batch {
            deliver.push(format!("batch = {n}"));
        }
        // The receiver is axum: it speaks HTTP/2 without TLS too.
        if http2 {
            deliver.push("http2 = true".into());
        }
        if !deliver.is_empty() {
            county = county.replacen(
                &format!("deliver = {{ webhook = \"{webhook}\" }}"),
                &format!("deliver = {{ webhook = \"{webhook}\", {} }}", deliver.join(", ")),
                1,
            );
        }
        let text = format!(
            "{}\n[nats]\nurl = \"{}\"\n\n[data]\ndir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n# the load generator is one address with many connections\nmax_connections_per_client = 100000\n\n[http.rate_limit]\nper_second = 1000000.0\nburst = 1000000\n\n[courier]\nconcurrency = {courier_concurrency}\n\n[telemetry]\nlog = \"warn\"\n",
            county,
            nats.url(),
            dir.join("data").display()
        );
        let config = dir.join("xianjie.toml");
        std::fs::write(&config, text)?;
        let settings = xj_config::load_file(&config)?;
        xj_bus::signing::HubKey::load_or_create(&xj::hub::key_path(&settings))?;
        let bin = Path::new(env!("CARGO_BIN_EXE_xj"));
        let mut procs = Vec::new();
        for s in SERVICES {
            procs.push(ServiceProc::start(bin, s, s, &config, &dir, &[])?);
        }
        let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while !matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status() == 200) {
            if start.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("gateway not up: {}", procs[0].log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let template = serde_json::to_vec(&sample_clue("ID-XXXXXXXXXXXX", SENDER, "FOOD-STALL", "990101101"))?;
        let js = jetstream::new(async_nats::connect(nats.url()).await?);
        Ok(Self {
            nats_url: nats.url(),
            _nats: nats,
            procs,
            inbox,
            base,
            http,
            template,
            js,
            delivered_before: AtomicUsize::new(0),
            results: Mutex::default(),
        })
    }

    /// The body of referral `id` (15 characters, see [`Self::id`]).
    fn body(&self, id: &str) -> Bytes {
        let mut b = self.template.clone();
        let pos = b.windows(15).position(|w| w == b"ID-XXXXXXXXXXXX").unwrap_or(0);
        b[pos..pos + 15].copy_from_slice(&id.as_bytes()[..15]);
        b.into()
    }

    /// `<prefix>-<i>` padded with dashes to 15 characters.
    fn id(prefix: &str, i: usize) -> String {
        let id = format!("{prefix}-{i}");
        format!("{id:-<15}")
    }

    async fn warm(&self) -> anyhow::Result<()> {
        let r = self.closed_loop("WARM", 1000, 64).await?;
        println!("warm-up: {} referrals, {:.0}/s", r.n, r.delivered_rate);
        Ok(())
    }

    async fn submit(&self, body: Bytes) -> (u64, u64, u16) {
        let start = now_ns();
        let status = match self
            .http
            .post(format!("{}/v1/messages", self.base))
            .header("authorization", format!("Bearer token-{SENDER}-0123456789"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        };
        (start, now_ns(), status)
    }

    /// Peak resident memory (`VmHWM`) of every process.
    fn peaks(&self) -> Vec<(String, u64)> {
        self.memory(|(_, peak)| peak)
    }

    /// Resident memory now (`VmRSS`) of every process.
    fn rss(&self) -> Vec<(String, u64)> {
        self.memory(|(now, _)| now)
    }

    fn memory(&self, pick: fn((u64, u64)) -> u64) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> =
            self.procs.iter().map(|p| (p.name().to_string(), p.memory().map(pick).unwrap_or(0))).collect();
        if let Some(pid) = nats_pid() {
            out.push(("nats-server".into(), memory(pid).map(pick).unwrap_or(0)));
        }
        out
    }

    fn cpu(&self) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> =
            self.procs.iter().map(|p| (p.name().to_string(), p.pid().and_then(cpu_secs).unwrap_or(0.0))).collect();
        out.push(("nats-server".into(), nats_pid().and_then(cpu_secs).unwrap_or(0.0)));
        out.push(("bench".into(), cpu_secs(std::process::id()).unwrap_or(0.0)));
        out
    }

    /// Messages the ledger still has to record (both its consumers).
    async fn ledger_behind(&self) -> u64 {
        let mut behind = 0;
        for s in [xj_bus::subjects::STREAM_ACCEPTED, xj_bus::subjects::STREAM_EVENTS] {
            behind += self.behind(s, "ledger").await;
        }
        behind
    }

    async fn behind(&self, stream: &str, consumer: &str) -> u64 {
        match self.js.get_stream(stream).await {
            Ok(s) => match s.consumer_info(consumer).await {
                Ok(i) => i.num_pending + i.num_ack_pending as u64,
                Err(_) => 0,
            },
            Err(_) => 0,
        }
    }

    /// Waits until the tracker has folded every event into the case records.
    async fn wait_tracked(&self, limit: Duration) -> Option<u64> {
        let start = Instant::now();
        while self.behind(xj_bus::subjects::STREAM_EVENTS, "tracker").await > 0 {
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(now_ns())
    }

    async fn wait_delivered(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let want = self.delivered_before.load(Ordering::Relaxed) + n;
        while self.inbox.unique() < want {
            if start.elapsed() > limit {
                anyhow::bail!("only {} of {n} delivered after {limit:?}", self.inbox.unique() - (want - n));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    async fn wait_ledgered(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.ledger_behind().await > 0 {
            if start.elapsed() > limit {
                anyhow::bail!("the ledger is still {} behind after {limit:?}", self.ledger_behind().await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Sends referral `i` of `n` at `t0 + i/rate`.
    async fn open_loop(&self, prefix: &str, rate: u64, n: usize) -> anyhow::Result<Phase> {
        let bodies: Vec<(String, Bytes)> = (0..n)
            .map(|i| {
                let id = Self::id(prefix, i);
                let b = self.body(&id);
                (id, b)
            })
            .collect();
        let cpu0 = self.cpu();
        let t0_ns = now_ns();
        let t0 = tokio::time::Instant::now();
        let mut tasks = FuturesUnordered::new();
        let mut sched = Vec::with_capacity(n);
        for (i, (id, body)) in bodies.into_iter().enumerate() {
            let offset = Duration::from_nanos((i as u128 * 1_000_000_000 / rate as u128) as u64);
            tokio::time::sleep_until(t0 + offset).await;
            sched.push((id, t0_ns + offset.as_nanos() as u64));
            tasks.push(self.submit(body));
            // Collect finished requests without blocking the schedule.
            while let Some(Some(r)) = futures::FutureExt::now_or_never(tasks.next()) {
                self.results_push(r);
            }
        }
        self.finish(prefix, Some(rate), sched, tasks, cpu0, t0_ns).await
    }

    fn results_push(&self, r: (u64, u64, u16)) {
        self.results.lock().map(|mut v| v.push(r)).ok();
    }

    /// `n` referrals in `POST /v1/messages/batch` of `size`, `inflight`
    /// batches at once; each message's answer is its own in the 207.
    async fn closed_loop_batched(&self, prefix: &str, n: usize, inflight: usize, size: usize) -> anyhow::Result<Phase> {
        let ids: Vec<String> = (0..n).map(|i| Self::id(prefix, i)).collect();
        let cpu0 = self.cpu();
        let t0_ns = now_ns();
        let mut tasks = FuturesUnordered::new();
        let mut sched = Vec::with_capacity(n);
        for chunk in ids.chunks(size) {
            while tasks.len() >= inflight {
                if let Some(rs) = tasks.next().await {
                    for r in rs {
                        self.results_push(r);
                    }
                }
            }
            let mut body = b"{\"messages\":[".to_vec();
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&self.body(id));
                sched.push((id.clone(), now_ns()));
            }
            body.extend_from_slice(b"]}");
            tasks.push(self.submit_batch(body.into(), chunk.len()));
        }
        while let Some(rs) = tasks.next().await {
            for r in rs {
                self.results_push(r);
            }
        }
        self.finish(prefix, None, sched, FuturesUnordered::<std::future::Ready<(u64, u64, u16)>>::new(), cpu0, t0_ns)
            .await
    }

    /// One batch: (start, answer, status) of each of its `n` messages.
    async fn submit_batch(&self, body: Bytes, n: usize) -> Vec<(u64, u64, u16)> {
        let start = now_ns();
        let answer = self
            .http
            .post(format!("{}/v1/messages/batch", self.base))
            .header("authorization", format!("Bearer token-{SENDER}-0123456789"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let statuses: Vec<u16> = match answer {
            Ok(r) if r.status().as_u16() == 207 => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                v["results"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x["status"].as_u64().unwrap_or(0) as u16).collect())
                    .unwrap_or_default()
            }
            Ok(r) => vec![r.status().as_u16(); n],
            Err(_) => vec![0; n],
        };
        let end = now_ns();
        let mut out: Vec<(u64, u64, u16)> = statuses.into_iter().map(|s| (start, end, s)).collect();
        out.resize(n, (start, end, 0));
        out
    }

    async fn closed_loop(&self, prefix: &str, n: usize, inflight: usize) -> anyhow::Result<Phase> {
        let bodies: Vec<(String, Bytes)> = (0..n)
            .map(|i| {
                let id = Self::id(prefix, i);
                let b = self.body(&id);
                (id, b)
            })
            .collect();
        let cpu0 = self.cpu();
        let t0_ns = now_ns();
        let mut tasks = FuturesUnordered::new();
        let mut sched = Vec::with_capacity(n);
        for (id, body) in bodies {
            while tasks.len() >= inflight {
                if let Some(r) = tasks.next().await {
                    self.results_push(r);
                }
            }
            sched.push((id, now_ns()));
            tasks.push(self.submit(body));
        }
        self.finish(prefix, None, sched, tasks, cpu0, t0_ns).await
    }

    async fn finish<F>(
        &self,
        prefix: &str,
        offered: Option<u64>,
        sched: Vec<(String, u64)>,
        mut tasks: FuturesUnordered<F>,
        cpu0: Vec<(String, f64)>,
        t0_ns: u64,
    ) -> anyhow::Result<Phase>
    where
        F: std::future::Future<Output = (u64, u64, u16)>,
    {
        while let Some(r) = tasks.next().await {
            self.results_push(r);
        }
        let results = self.results.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        let n = sched.len();
        let mut refused_by = BTreeMap::new();
        for r in results.iter().filter(|r| r.2 != 202) {
            *refused_by.entry(r.2).or_insert(0) += 1;
        }
        let refused: usize = refused_by.values().sum();
        let mut accept = hist();
        let mut last_accept = t0_ns;
        for (s, e, status) in &results {
            if *status == 202 {
                accept.saturating_record(((e - s) / 1000).max(1));
                last_accept = last_accept.max(*e);
            }
        }
        let limit = Duration::from_secs(120 + n as u64 / 200);
        self.wait_delivered(n - refused, limit).await?;
        let delivered_at = now_ns();
        self.wait_ledgered(limit).await?;
        let ledgered_at = now_ns();
        let tracked_at = self.wait_tracked(limit).await;
        self.delivered_before.fetch_add(n - refused, Ordering::Relaxed);
        let cpu1 = self.cpu();
        let wall = (now_ns() - t0_ns) as f64 / 1e9;
        let arrivals = self.inbox.first.lock().map(|m| m.clone()).unwrap_or_default();
        let mut e2e = hist();
        let mut last_arrival = t0_ns;
        for (id, at) in &sched {
            if let Some(arrived) = arrivals.get(id.as_str()) {
                e2e.saturating_record((arrived.saturating_sub(*at) / 1000).max(1));
                last_arrival = last_arrival.max(*arrived);
            }
        }
        let _ = delivered_at;
        let rate = |until: u64| (n - refused) as f64 / ((until - t0_ns) as f64 / 1e9);
        let hits = self.inbox.hits.load(Ordering::Relaxed);
        Ok(Phase {
            label: prefix.to_string(),
            offered,
            n: n - refused,
            refused: refused_by,
            accept_rate: rate(last_accept),
            delivered_rate: rate(last_arrival),
            ledgered_rate: rate(ledgered_at),
            tracked_rate: tracked_at.map(rate),
            e2e,
            accept,
            duplicates: hits.saturating_sub(self.inbox.unique()),
            cpu: cpu1.iter().zip(&cpu0).map(|((n, b), (_, a))| (n.clone(), b - a)).collect(),
            rss: self.rss(),
            wall,
        })
    }

    /// A long open-loop run, memory sampled every 10 s.
    async fn soak(&self, n: usize, rate: u64) -> anyhow::Result<Phase> {
        let samples = Arc::new(Mutex::new(Vec::<(f64, Vec<(String, u64)>)>::new()));
        let done = Arc::new(tokio::sync::Notify::new());
        let sampler = {
            let (samples, done) = (samples.clone(), done.clone());
            let pids: Vec<(String, Option<u32>)> = self
                .procs
                .iter()
                .map(|p| (p.name().to_string(), p.pid()))
                .chain(std::iter::once(("nats-server".to_string(), nats_pid())))
                .collect();
            tokio::spawn(async move {
                let start = Instant::now();
                loop {
                    let row = pids
                        .iter()
                        .map(|(name, pid)| (name.clone(), pid.and_then(memory).map(|m| m.0).unwrap_or(0)))
                        .collect();
                    samples.lock().map(|mut s| s.push((start.elapsed().as_secs_f64(), row))).ok();
                    tokio::select! {
                        _ = done.notified() => return,
                        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    }
                }
            })
        };
        // In chunks, so the bench itself does not hold a million bodies.
        let chunk = (rate as usize * 60).max(1);
        let mut phases = Vec::new();
        let mut sent = 0;
        while sent < n {
            let k = chunk.min(n - sent);
            let p = self.open_loop(&format!("S{}", sent / chunk), rate, k).await?;
            println!(
                "  soak {:>8} / {n}: delivered {:>6.0}/s ({} refused) p99 {} resident MiB {}",
                sent + k,
                p.delivered_rate,
                p.refused_total(),
                ms(p.e2e.value_at_quantile(0.99)),
                p.rss.iter().map(|(n, b)| format!("{n} {}", b / 1048576)).collect::<Vec<_>>().join(", ")
            );
            phases.push(p);
            sent += k;
            self.inbox.first.lock().map(|mut m| m.clear()).ok();
            self.delivered_before.store(0, Ordering::Relaxed);
            self.inbox.hits.store(0, Ordering::Relaxed);
        }
        done.notify_one();
        let _ = sampler.await;
        let mut total = phases.pop().context("no soak phase")?;
        for p in &phases {
            total.e2e.add(&p.e2e).ok();
            total.accept.add(&p.accept).ok();
            total.n += p.n;
            for (status, k) in &p.refused {
                *total.refused.entry(*status).or_insert(0) += k;
            }
        }
        total.label = "SOAK".into();
        total.offered = Some(rate);
        let s = samples.lock().map(|s| s.clone()).unwrap_or_default();
        println!("  resident MiB over time (every 10 s):");
        for (t, row) in s.iter().step_by((s.len() / 20).max(1)) {
            println!(
                "  {t:>7.0} s  {}",
                row.iter().map(|(n, b)| format!("{n} {}", b / 1048576)).collect::<Vec<_>>().join(", ")
            );
        }
        let _ = &self.nats_url;
        Ok(total)
    }
}
