//! The operator console in a real browser: the hub with a manual clock,
//! traffic through real webhooks (one organisation failing, so a dead
//! letter waits), then `console.mjs` drives Debian's headless Chromium with
//! playwright-core and checks what an operator sees — the live list
//! updating, a trace with its hops, a case with who acts next, statistics,
//! search, replay of the dead letter, health, the overdue board after the
//! clock advances, English labels.
//!
//! Nothing is skipped: a missing Chromium or Node.js is installed with
//! apt-get when this runs as root, `npm ci` installs playwright-core from
//! the committed lock file, and otherwise the test fails saying what to
//! install. Screenshots go to the target folder, or to docs/screenshots
//! with `UPDATE_SCREENSHOTS=1` (not `XJ_`: that prefix is the hub's configuration).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use xj_testkit::{TestHub, eventually, sample_clue, sample_uscc};

const CHROMIUM: &str = "/usr/bin/chromium";

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn found(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Chromium, Node.js and playwright-core, installed if missing.
fn tools() -> anyhow::Result<PathBuf> {
    let chromium = std::env::var("CHROMIUM_PATH").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(CHROMIUM));
    let mut missing = Vec::new();
    if !chromium.exists() {
        missing.extend(["chromium", "fonts-noto-cjk"]);
    }
    if !found("node", "--version") || !found("npm", "--version") {
        missing.extend(["nodejs", "npm"]);
    }
    if !missing.is_empty() {
        anyhow::ensure!(
            is_root() && found("apt-get", "--version"),
            "the console's browser test needs {} (Debian: apt-get install -y {}); install them and run again",
            missing.join(", "),
            missing.join(" ")
        );
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    anyhow::ensure!(chromium.exists(), "no Chromium at {} (set CHROMIUM_PATH)", chromium.display());
    if !here().join("node_modules/playwright-core/package.json").exists() {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(here()))?;
    }
    Ok(chromium)
}

fn shots_dir() -> anyhow::Result<PathBuf> {
    let dir = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        here().join("../../docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_hub_at_work() -> anyhow::Result<()> {
    let chromium = tools()?;
    let extra = "[clock]\nmode = \"manual\"\n\n[courier]\nmax_attempts = 1\nbackoff_initial_ms = 100\n";
    let hub = TestHub::start_services(extra, &xj::hub::Service::UP).await?;
    let market = hub.token("qh-market");

    // Traffic before the operator arrives: a referral placed by the matter
    // catalogue, and one to an organisation whose system is down.
    let (s, r) = hub.submit("qh-market", &sample_clue("EARLY-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{r}");
    hub.receiver("qh-enforce").set_failing(true);
    let mut dead = sample_clue("DEAD-1", "qh-market", "FOOD-STALL", "990101101");
    dead["recipient"] = json!("qh-enforce");
    let (s, r) = hub.submit("qh-market", &dead).await?;
    assert_eq!(s, 202, "{r}");
    let operator = hub.operator_token();
    eventually(Duration::from_secs(20), "the dead letter", || {
        let hub = &hub;
        let operator = operator.clone();
        async move {
            let (_, d) = hub.get("/v1/admin/dead-letters", &operator).await.ok()?;
            d["dead_letters"].as_array()?.iter().any(|x| x["id"] == "DEAD-1").then_some(())
        }
    })
    .await?;
    // The system is back: a replay will get through.
    hub.receiver("qh-enforce").set_failing(false);

    let profile = tempfile::tempdir()?;
    let shots = shots_dir()?;
    let base = hub.base.clone();
    let out = tokio::time::timeout(
        Duration::from_secs(100),
        tokio::process::Command::new("node")
            .arg(here().join("console.mjs"))
            .current_dir(here())
            .env("XJ_BASE", &base)
            .env("XJ_OPERATOR_TOKEN", &operator)
            .env("XJ_ORG_TOKEN", &market)
            .env("XJ_CHROMIUM", &chromium)
            .env("XJ_SHOTS", &shots)
            .env("XJ_PROFILE", profile.path())
            .env("XJ_DEAD_ID", "DEAD-1")
            .env("XJ_USCC", sample_uscc("92990101MA0000002"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the browser run took more than 100 s"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success() && stdout.contains("ALL OK"), "browser checks failed:\n{stdout}\n{stderr}");
    for what in ["live list updates", "trace shows its hops", "overdue item appears", "replay delivers it"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("ok ") && l.contains(what)),
            "no passing check for {what:?}:\n{stdout}"
        );
    }
    println!("screenshots in {}", shots.display());
    Ok(())
}
