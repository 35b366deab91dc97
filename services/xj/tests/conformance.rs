//! `xj conformance` (docs/integration.md) against the two receivers the
//! integration guide ships — Python's standard library and the JDK, run as
//! an integrating department would run them — and against a sloppy one
//! that answers 200 to everything, which the kit must fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use xj::conformance::{Verdict, run_checks};
use xj_bus::signing::HubKey;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A configuration whose `qh-town-dg` is delivered to `url`, with a hub key
/// in its data folder (as a hub that ran once has).
fn county(dir: &Path, url: &str) -> anyhow::Result<(PathBuf, HubKey)> {
    let urls = [("qh-town-dg".to_string(), url.to_string())].into_iter().collect();
    let text = format!(
        "{}\n[data]\ndir = \"{}\"\n\n[courier]\ntimeout_ms = 5000\n",
        xj_testkit::county_config(&urls),
        dir.join("data").display()
    );
    let path = dir.join("xianjie.toml");
    std::fs::write(&path, text)?;
    let settings = xj_config::load_file(&path)?;
    let key_path = xj::hub::key_path(&settings);
    if let Some(parent) = key_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok((path, HubKey::load_or_create(&key_path)?))
}

/// A receiver started from the guide, and the URL it printed.
struct Started {
    child: Child,
    url: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mut cmd: Command) -> anyhow::Result<Started> {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep reading so the receiver never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| anyhow::anyhow!("the receiver did not start"))?;
    let url = line
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("the receiver said {line:?}"))?
        .trim()
        .to_string();
    Ok(Started { child, url })
}

/// Every check passes (batches are not applicable); the receiver stored
/// the test delivery once and neither the forged nor the replayed one.
async fn conformant(receiver: &Started, config: &Path, key: &HubKey) -> anyhow::Result<()> {
    let settings = xj_config::load_file(config)?;
    let org = settings.org("qh-town-dg").ok_or_else(|| anyhow::anyhow!("no qh-town-dg"))?;
    let checks = run_checks(&settings, key, org, &receiver.url).await?;
    for c in &checks {
        println!("{:?} {} — {}", c.verdict, c.name, c.detail);
    }
    let failed: Vec<_> = checks.iter().filter(|c| c.verdict == Verdict::Fail).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(checks.iter().filter(|c| c.verdict == Verdict::Pass).count(), 5, "{checks:?}");
    let stored: Vec<Value> = reqwest::get(&receiver.url).await?.json().await?;
    let ids: Vec<&str> = stored.iter().filter_map(|d| d["message_id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one delivery stored once, not the forged or stale ones: {ids:?}");
    assert!(ids[0].starts_with("XJ-CONFORMANCE-") && ids[0].ends_with("-1"), "{ids:?}");
    assert_eq!(stored[0]["sender"], xj::conformance::SENDER);
    let body: Value = serde_json::from_str(stored[0]["body"].as_str().unwrap_or_default())?;
    assert_eq!(body["recipient"], "qh-town-dg");
    Ok(())
}

#[tokio::test]
async fn the_guides_python_receiver_is_conformant() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The receiver's port is not known before it starts: configure a
    // placeholder, then try the URL it printed (--url does the same).
    let (config, key) = county(dir.path(), "http://127.0.0.1:9/inbox")?;
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("docs/integration/python/receiver.py"))
        .arg("0")
        .env("XJ_WEBHOOK_SECRET", key.webhook_secret("qh-town-dg"));
    let receiver = start(cmd)?;
    conformant(&receiver, &config, &key).await?;

    // The command line says the same, and exits 0.
    let out = Command::new(env!("CARGO_BIN_EXE_xj"))
        .args(["conformance", "--org", "qh-town-dg", "--json", "--url", &receiver.url, "--config"])
        .arg(&config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.trim())?;
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(6), "{report}");
    Ok(())
}

#[tokio::test]
async fn the_guides_java_receiver_is_conformant() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, key) = county(dir.path(), "http://127.0.0.1:9/inbox")?;
    // Source-file mode (JDK 11+): the guide's file as it is, compiled on start.
    let mut cmd = Command::new("java");
    cmd.arg(repo().join("docs/integration/java/Receiver.java"))
        .arg("0")
        .env("XJ_WEBHOOK_SECRET", key.webhook_secret("qh-town-dg"))
        .env("XJ_HUB_PUBLIC_KEY", key.public_key_b64());
    let receiver = start(cmd).map_err(|e| anyhow::anyhow!("java Receiver.java (a JDK 17 must be installed): {e}"))?;
    conformant(&receiver, &config, &key).await
}

/// A receiver that checks nothing and answers 200: the kit fails it, names
/// what it accepted, and the command exits non-zero.
#[tokio::test]
async fn a_receiver_that_checks_nothing_fails() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/inbox", listener.local_addr()?);
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir()?;
    let (config, key) = county(dir.path(), &url)?;
    let settings = xj_config::load_file(&config)?;
    let org = settings.org("qh-town-dg").ok_or_else(|| anyhow::anyhow!("no qh-town-dg"))?;
    let checks = run_checks(&settings, &key, org, &url).await?;
    let verdict = |name: &str| checks.iter().find(|c| c.name == name).map(|c| (c.verdict.clone(), c.detail.clone()));
    let (v, detail) = verdict("refuses a forged signature").ok_or_else(|| anyhow::anyhow!("no forgery check"))?;
    assert_eq!(v, Verdict::Fail, "{detail}");
    assert!(detail.contains("did not sign"), "{detail}");
    assert_eq!(verdict("refuses a replayed (stale) delivery").map(|v| v.0), Some(Verdict::Fail));
    assert_eq!(verdict("accepts a signed delivery").map(|v| v.0), Some(Verdict::Pass));
    // Its configured webhook is tried when no --url is given.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xj"))
        .args(["conformance", "--org", "qh-town-dg", "--config"])
        .arg(&config)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL  refuses a forged signature"), "{stdout}");
    assert!(stdout.contains("2 check(s) failed"), "{stdout}");
    Ok(())
}
