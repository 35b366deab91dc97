//! What the browser tests share: Chromium, Node.js, playwright-core and
//! poppler-utils installed when missing (apt-get as root, `npm ci` from the
//! committed lock file), the screenshot folder, and running a driver
//! script. Nothing is skipped: without the tools a test fails saying what
//! to install.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
const CJK_FONT: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

pub fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn found(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).output().is_ok_and(|o| o.status.success())
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Chromium, Node.js and playwright-core, installed if missing.
pub fn tools() -> anyhow::Result<PathBuf> {
    let chromium = std::env::var("CHROMIUM_PATH").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(CHROMIUM));
    let mut missing = Vec::new();
    if !chromium.exists() {
        missing.push("chromium");
    }
    // The pages are Chinese, and so are the letters the workspace prints.
    if !Path::new(CJK_FONT).exists() {
        missing.push("fonts-noto-cjk");
    }
    if !found("pdftotext", "-v") {
        missing.push("poppler-utils");
    }
    if !found("node", "--version") || !found("npm", "--version") {
        missing.extend(["nodejs", "npm"]);
    }
    if !missing.is_empty() {
        anyhow::ensure!(
            is_root() && found("apt-get", "--version"),
            "the browser tests need {} (Debian: apt-get install -y {}); install them and run again",
            missing.join(", "),
            missing.join(" ")
        );
        // Another test may be installing too: wait for its lock.
        let lock = ["-o", "DPkg::Lock::Timeout=600"];
        run(Command::new("apt-get").args(lock).args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(lock)
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

pub fn shots_dir() -> anyhow::Result<PathBuf> {
    let dir = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        here().join("../../docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs the driver `script` (next to this crate's Cargo.toml) with `env`,
/// at most `limit`, and gives its output once it printed `ALL OK`; a
/// failure shows everything it printed.
pub async fn drive(script: &str, env: &[(&str, String)], limit: std::time::Duration) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(here().join(script)).current_dir(here()).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("the browser run of {script} took more than {limit:?}"))??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    anyhow::ensure!(out.status.success() && stdout.contains("ALL OK"), "browser checks failed:\n{stdout}\n{stderr}");
    Ok(stdout)
}

/// Fails unless `stdout` has a passing check (`ok …`) naming each of `what`.
pub fn passed(stdout: &str, what: &[&str]) {
    for w in what {
        assert!(stdout.lines().any(|l| l.starts_with("ok ") && l.contains(w)), "no passing check for {w:?}:\n{stdout}");
    }
}
