//! The hub as a deployment runs it: each service its own `xj run` process on
//! a real nats-server (or a three-node cluster), real webhook receivers, and
//! a load generator that retries as a departmental system should (503 and
//! connection failures are retried; the receipt makes a retry harmless).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use xj_testkit::procs::ServiceProc;
use xj_testkit::{Receiver, county_config, sample_clue};

pub const SENDER: &str = "qh-market";
pub const TOWN_DG: &str = "qh-town-dg";
pub const TOWN_XS: &str = "qh-town-xs";

/// One at a time: each test runs several processes on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// What a background load gives back: each referral's id and receiver.
pub type Sent = HashMap<String, &'static str>;
pub type LoadTask = tokio::task::JoinHandle<anyhow::Result<Sent>>;

/// A private copy of the `xj` binary: other builds sharing the target
/// directory may replace `target/debug/xj` while these tests run.
pub fn xj_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_xj"));
        // One copy per build (named by its size and time), reused by later runs.
        let Ok(meta) = std::fs::metadata(&built) else { return built };
        let stamp = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
        let dir = std::env::temp_dir().join("xj-faults-bin");
        let copy = dir.join(format!("xj-{}-{}", meta.len(), stamp.as_nanos()));
        if std::fs::metadata(&copy).is_ok_and(|m| m.len() == meta.len()) {
            return copy;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let partial = dir.join(format!("partial-{}", std::process::id()));
        match std::fs::copy(&built, &partial).and_then(|_| std::fs::rename(&partial, &copy)) {
            Ok(()) => copy,
            Err(_) => built,
        }
    })
}

pub struct Options {
    /// Lines for the `[nats]` table besides `url`.
    pub nats: String,
    /// `[courier]` table lines.
    pub courier: String,
    /// Appended to the configuration.
    pub extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // A crashed instance's messages go to the next one after 2 s.
            nats: "ack_wait_ms = 2000\n".into(),
            // Short timeouts and retries: a receiver that is down is tried
            // every second at most, never given up on within a test.
            courier: "timeout_ms = 1000\nbackoff_initial_ms = 200\nbackoff_max_ms = 1000\nmax_attempts = 10000\n"
                .into(),
            extra: String::new(),
        }
    }
}

pub struct ProcHub {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    pub receivers: HashMap<String, Receiver>,
    pub procs: Vec<ServiceProc>,
    pub http: reqwest::Client,
}

impl ProcHub {
    /// Writes the county's configuration for `nats_url` and starts
    /// `services` (`(name, service)`, e.g. `("router-2", "router")`).
    pub async fn start(nats_url: &str, opts: Options, services: &[(&str, &str)]) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let (receivers, urls) = xj_testkit::county_receivers().await?;
        let port = xj_bus::embedded::free_port();
        let text = format!(
            "{}\n[nats]\nurl = \"{nats_url}\"\n{}\n[data]\ndir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[http.rate_limit]\nper_second = 1000000.0\nburst = 1000000\n\n[courier]\n{}\n{}",
            county_config(&urls),
            opts.nats,
            dir.path().join("data").display(),
            opts.courier,
            opts.extra
        );
        let config = dir.path().join("xianjie.toml");
        std::fs::write(&config, text)?;
        // The processes share one signing key, made before any starts.
        let settings = xj_config::load_file(&config)?;
        xj_bus::signing::HubKey::load_or_create(&xj::hub::key_path(&settings))?;
        let mut hub = Self {
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
            receivers,
            procs: Vec::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        };
        for (name, svc) in services {
            hub.spawn(name, svc)?;
        }
        hub.wait_ready(Duration::from_secs(60)).await?;
        Ok(hub)
    }

    pub fn spawn(&mut self, name: &str, service: &str) -> anyhow::Result<()> {
        self.spawn_env(name, service, &[])
    }

    /// Starts one more process with extra environment (configuration
    /// overrides such as `XJ_TELEMETRY__METRICS_LISTEN`).
    pub fn spawn_env(&mut self, name: &str, service: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
        let p = ServiceProc::start(xj_bin(), service, name, &self.config, self.dir.path(), env)?;
        self.procs.push(p);
        Ok(())
    }

    pub fn proc(&mut self, name: &str) -> &mut ServiceProc {
        let i = self.procs.iter().position(|p| p.name() == name).unwrap_or_else(|| panic!("no process {name}"));
        &mut self.procs[i]
    }

    /// The gateway answers health, and each consumer of the delivery path
    /// exists (the router and courier have bound their durables).
    pub async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let ok = matches!(self.http.get(format!("{}/healthz", self.base)).send().await, Ok(r) if r.status() == 200);
            if ok {
                return Ok(());
            }
            for p in &mut self.procs {
                if !p.alive() {
                    anyhow::bail!("{} exited:\n{}", p.name(), p.log_tail(30));
                }
            }
            if start.elapsed() > limit {
                anyhow::bail!("the gateway was not healthy after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn token(org: &str) -> String {
        format!("token-{org}-0123456789")
    }

    pub fn receiver(&self, org: &str) -> &Receiver {
        &self.receivers[org]
    }

    /// Logs of every process, for a failure message.
    pub fn logs(&self) -> String {
        self.procs.iter().map(|p| format!("--- {}\n{}", p.name(), p.log_tail(15))).collect::<Vec<_>>().join("\n")
    }
}

/// Referral `i`: even ones are a food-stall matter for 东关镇 (qh-town-dg),
/// odd ones waste dumping for 西山镇 (qh-town-xs).
pub fn referral(prefix: &str, i: usize) -> (String, Value, &'static str) {
    let id = format!("{prefix}-{i:05}");
    if i.is_multiple_of(2) {
        (id.clone(), sample_clue(&id, SENDER, "FOOD-STALL", "990101101"), TOWN_DG)
    } else {
        (id.clone(), sample_clue(&id, SENDER, "WASTE-DUMP", "990101102"), TOWN_XS)
    }
}

/// POSTs `body` as `org` until the hub accepts it (202, or 200 for a
/// repeat), retrying 503, 429 and connection failures for up to `limit`.
pub async fn submit_retrying(
    http: &reqwest::Client,
    base: &str,
    org: &str,
    body: &Value,
    limit: Duration,
) -> anyhow::Result<(u16, Value)> {
    let start = Instant::now();
    let bytes = serde_json::to_vec(body)?;
    let mut last = String::new();
    while start.elapsed() < limit {
        let r = http
            .post(format!("{base}/v1/messages"))
            .bearer_auth(ProcHub::token(org))
            .header("content-type", "application/json")
            .body(bytes.clone())
            .send()
            .await;
        match r {
            Ok(r) if matches!(r.status().as_u16(), 200 | 202) => {
                let s = r.status().as_u16();
                return Ok((s, r.json().await.unwrap_or(Value::Null)));
            }
            Ok(r) if matches!(r.status().as_u16(), 503 | 429 | 502) => {
                last = format!("{} {}", r.status(), r.text().await.unwrap_or_default());
            }
            Ok(r) => {
                let s = r.status();
                anyhow::bail!("refused: {s} {}", r.text().await.unwrap_or_default());
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("not accepted within {limit:?}: {last}")
}

/// Submits `n` referrals with `inflight` at once in the background; the
/// counter says how many were accepted so far.
pub fn load(
    http: reqwest::Client,
    base: String,
    prefix: &'static str,
    n: usize,
    inflight: usize,
) -> (Arc<AtomicUsize>, LoadTask) {
    use futures::StreamExt;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let results: Vec<anyhow::Result<(String, &'static str)>> = futures::stream::iter(0..n)
            .map(|i| {
                let (http, base, counter) = (http.clone(), base.clone(), counter.clone());
                async move {
                    let (id, body, to) = referral(prefix, i);
                    submit_retrying(&http, &base, SENDER, &body, Duration::from_secs(120)).await?;
                    counter.fetch_add(1, Ordering::Relaxed);
                    Ok((id, to))
                }
            })
            .buffer_unordered(inflight)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Sent>>()
    });
    (accepted, task)
}

/// Every id in `sent` reached its receiver exactly once after deduplication;
/// returns the HTTP-level repeats the receivers dropped.
pub async fn all_delivered(
    hub: &ProcHub,
    sent: &HashMap<String, &'static str>,
    limit: Duration,
) -> anyhow::Result<usize> {
    let mut want: HashMap<&str, usize> = HashMap::new();
    for to in sent.values() {
        *want.entry(*to).or_default() += 1;
    }
    for (org, n) in &want {
        if let Err(e) = hub.receiver(org).wait_for(*n, limit).await {
            anyhow::bail!("{org}: {e}; {} of {n} arrived\n{}", hub.receiver(org).deliveries().len(), hub.logs());
        }
    }
    let mut duplicates = 0;
    for (org, n) in &want {
        let got = hub.receiver(org).deliveries();
        let ids: std::collections::HashSet<String> =
            got.iter().filter_map(|d| d.header("xj-message-id").map(str::to_owned)).collect();
        assert_eq!(got.len(), *n, "{org}: more unique deliveries than sent");
        assert_eq!(ids.len(), *n, "{org}: ids repeated after deduplication");
        for (id, to) in sent {
            if to == org {
                assert!(ids.contains(id), "{org} never got {id}");
            }
        }
        duplicates += hub.receiver(org).duplicates();
    }
    Ok(duplicates)
}

/// Waits until `counter` reaches `n`.
pub async fn until(counter: &AtomicUsize, n: usize, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) < n {
        if start.elapsed() > limit {
            anyhow::bail!("only {} of {n} after {limit:?}", counter.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
