//! The hub's services as separate processes (`xj run <service> --config F`),
//! as a deployment runs them: for fault tests that kill one with SIGKILL and
//! start it again, and for the load benchmark's per-service memory. The
//! `xj` binary is given by the caller (`env!("CARGO_BIN_EXE_xj")`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `xj run <service>` process.
pub struct ServiceProc {
    pub service: String,
    name: String,
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Starts so far (1 after the first).
    pub starts: usize,
    exit: Option<String>,
}

impl ServiceProc {
    /// Starts `xj run <service> --config <config>`, its output appended to
    /// `<log_dir>/<name>.log`. `env` adds variables (e.g. `XJ_HTTP__LISTEN`).
    pub fn start(
        bin: &Path,
        service: &str,
        name: &str,
        config: &Path,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut p = Self {
            service: service.to_string(),
            name: name.to_string(),
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            log: log_dir.join(format!("{name}.log")),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            starts: 0,
            exit: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run").arg(&self.service).arg("--config").arg(&self.config);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// The name it was started under (its log is `<name>.log`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown, no drain, whatever was in flight is cut.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to `limit`) for the process to drain and exit;
    /// true when it exited by itself with success.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts it again (after `kill9` or `terminate`).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Still running? (When not, [`log_tail`](Self::log_tail) ends with how
    /// it ended.)
    pub fn alive(&mut self) -> bool {
        let Some(c) = self.child.as_mut() else { return false };
        match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exit = Some(status.to_string());
                false
            }
            Err(_) => false,
        }
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self) -> Option<(u64, u64)> {
        memory(self.pid()?)
    }

    /// The tail of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        match &self.exit {
            Some(status) => format!("{tail}\n(process ended: {status})"),
            None => tail,
        }
    }
}

impl Drop for ServiceProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `VmRSS` and `VmHWM` of a process, in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds (user + system, all threads) a process used so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The nats-server this process started (the newest still running).
pub fn nats_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let comm = s.get(s.find('(')? + 1..s.rfind(')')?)?.to_string();
                    let ppid = s[s.rfind(')')? + 2..].split_whitespace().nth(1)?.to_string();
                    Some(comm == "nats-server" && ppid == me)
                })
                .unwrap_or(false)
        })
        .max()
}

/// One line describing the machine a benchmark ran on.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "machine: {} cores ({model}), {:.1} GiB RAM, nats-server {}, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_kb as f64 / 1048576.0,
        xj_bus::embedded::NATS_SERVER_VERSION,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}
