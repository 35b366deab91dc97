//! The `xj` binary as an operator uses it: check, route --explain, up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xj() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xj"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn check_accepts_the_sandbox_county() {
    let out = xj().args(["check", "--config"]).arg(repo().join("deploy/sandbox.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("ok") && text.contains("17 organisations"), "{text}");
}

#[test]
fn check_of_a_missing_file_says_so_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let out = xj().args(["check", "--config"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert_eq!(stdout.trim(), format!("cannot read {}: No such file or directory (os error 2)", path.display()));
}

#[test]
fn check_names_file_line_and_key_of_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    let text = r#"[operator]
token = "operator-token-0123456789"

[[org]]
id = "a-bureau"
name = "A"
kind = "market_regulation"
region = "990101"
token = "token-a-0123456789"
deliver = { webhook = "http://127.0.0.1:1/in" }

[[org]]
id = "a-bureau"
name = "B"
kind = "town_government"
region = "99010"
token = "token-b-0123456789"
deliver = { webhook = "http://127.0.0.1:1/in" }

[[matter]]
code = "X"
name = "x"
competent = "market_regulation"
devolved_to = ["990101999"]
"#;
    std::fs::write(&path, text).unwrap();
    let out = xj().args(["check", "--config"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let p = path.display().to_string();
    for expected in [
        format!("{p}:13: org[1].id: duplicate organisation id"),
        format!("{p}:16: org[1].region:"),
        format!("{p}:24: matter[0].devolved_to[0]: matter X: no town government"),
        format!("{p}: org: no coordination_office organisation"),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
}

#[test]
fn route_explain_names_the_rule_and_version() {
    let out = xj()
        .args(["route", "--json", "--config"])
        .arg(repo().join("deploy/sandbox.toml"))
        .arg(repo().join("schemas/examples/clue_referral.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["rule"], "matter:FOOD-STALL/devolved:990101101");
    assert_eq!(v["targets"][0]["org"], "qh-town-dg");
    assert!(v["version"].as_str().unwrap().starts_with("r-"));

    let out = xj()
        .args(["route", "--explain", "--config"])
        .arg(repo().join("deploy/sandbox.toml"))
        .arg(repo().join("schemas/examples/clue_referral.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "rule set  r-",
        "art25:first-opened",
        "matter:FOOD-STALL/devolved",
        "decided   matter:FOOD-STALL/devolved:990101101",
        "to   qh-town-dg",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

/// An objection opens a dispute: `--explain` shows the path it takes and
/// who holds each step — two county bodies go to the justice bureau, a town
/// and a county body to the coordination office, both then to the
/// leadership group.
#[test]
fn route_explain_shows_the_dispute_path() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "qh-eco",
            "county path: negotiation (qh-market, qh-eco, 5 working days) → justice_bureau (qh-justice, 5 working days) → leadership_group (qh-leading, 5 working days)",
        ),
        (
            "qh-town-dg",
            "town_county path: negotiation (qh-market, qh-town-dg, 5 working days) → coordination_office (qh-coord, 5 working days) → leadership_group (qh-leading, 5 working days)",
        ),
    ];
    for (objector, want) in cases {
        let msg = dir.path().join(format!("{objector}.json"));
        let doc = serde_json::json!({
            "id": "OBJ-1", "type": "referral_reply", "sender": objector, "recipient": "qh-market",
            "reply_to": "REF-1", "sent_at": "2026-12-03T09:00:00+08:00", "classification": "internal",
            "body": { "decision": "objected", "reason": "不属于本机关管辖" }
        });
        std::fs::write(&msg, doc.to_string()).unwrap();
        let out = xj()
            .args(["route", "--explain", "--config"])
            .arg(repo().join("deploy/sandbox.toml"))
            .arg(&msg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            text.contains(&format!("dispute   between qh-market and {objector}: {want}")),
            "{want:?} missing from:\n{text}"
        );
    }
}

/// A designation re-routes the case's referral: the rules decide it, so
/// `xj route --explain` shows it.
#[test]
fn route_explain_shows_a_reroute() {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("designation.json");
    let doc = serde_json::json!({
        "id": "DS-1", "type": "jurisdiction_designation", "sender": "qh-coord", "recipient": "qh-market",
        "case": "XJ-20261203-0000000001", "sent_at": "2026-12-03T09:00:00+08:00", "classification": "internal",
        "body": { "designated": "qh-town-dg", "reason": "属地管辖" }
    });
    std::fs::write(&msg, doc.to_string()).unwrap();
    let out = xj()
        .args(["route", "--explain", "--config"])
        .arg(repo().join("deploy/sandbox.toml"))
        .arg(&msg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for want in ["reroute:designation", "reroute   designation by qh-coord", "goes on to qh-town-dg", "to   qh-town-dg"]
    {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn examples_pass_the_schemas() {
    let schemas = xj_model::Schemas::load().unwrap();
    for entry in std::fs::read_dir(repo().join("schemas/examples")).unwrap() {
        let path = entry.unwrap().path();
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Err(p) = schemas.validate(&doc) {
            panic!("{}: {p:?}", path.display());
        }
    }
}

fn get(url: &str) -> Option<String> {
    let out = Command::new("curl").args(["-s", "-f", "-m", "2", url]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The README's run command, on free ports: health answers, a demo referral
/// reaches a sandbox department and is answered, SIGTERM stops it cleanly.
#[test]
fn up_runs_the_sandbox_county_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let free = xj_bus::embedded::free_port;
    let http = free();
    let mut cfg = std::fs::read_to_string(repo().join("deploy/sandbox.toml")).unwrap();
    cfg = cfg.replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"));
    let mut ports = Vec::new();
    for old in 9101..=9116 {
        let new = free();
        cfg = cfg.replace(&format!("127.0.0.1:{old}/"), &format!("127.0.0.1:{new}/"));
        ports.push(new);
    }
    cfg = cfg.replace("dir = \"./data\"", &format!("dir = \"{}\"", dir.path().join("data").display()));
    let path = dir.path().join("xianjie.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = xj()
        .args(["up", "--demo-every", "1", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        if let Some(h) = get(&format!("http://127.0.0.1:{http}/healthz")) {
            break h;
        }
        assert!(Instant::now() < deadline, "no /healthz");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.contains("\"ok\""), "{health}");
    // The first demo referral goes from the environment bureau to 东关镇
    // (ports[3]); the town answers, which reaches the bureau (ports[1]).
    let town = format!("http://127.0.0.1:{}/", ports[3]);
    let eco = format!("http://127.0.0.1:{}/", ports[1]);
    loop {
        let t = get(&town).unwrap_or_default();
        let e = get(&eco).unwrap_or_default();
        if t.contains("FOOD-STALL") && e.contains("referral_reply") {
            assert!(t.contains("\"rejected_signatures\":0"), "{t}");
            break;
        }
        assert!(Instant::now() < deadline, "no demo traffic: town {t} eco {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline + Duration::from_secs(30), "xj up did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("xianjie hub stopped"), "{out}");
}

#[test]
fn check_rejects_broken_rules_with_the_matter_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    let base = std::fs::read_to_string(repo().join("deploy/sandbox.toml")).unwrap();
    let broken = format!(
        "{base}\n[[matter]]\ncode = \"PRODUCT-FAKE\"\nname = \"again\"\ncompetent = \"market_regulation\"\n\n[[matter]]\ncode = \"BAD-EXPR\"\nname = \"x\"\ncompetent = \"no_such_kind\"\n\n[[matter]]\ncode = \"BAD-CEL\"\nname = \"y\"\ncompetent = \"market_regulation\"\n[matter.crime]\noffence = \"z\"\npolice_unit = \"economic\"\nwhen = \"facts.sales_amount >= \"\n"
    );
    // An unknown kind stops deserialisation before validation: it is its own case.
    let with_kind = dir.path().join("kind.toml");
    std::fs::write(&with_kind, &broken).unwrap();
    let out = xj().args(["check", "--config"]).arg(&with_kind).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("no_such_kind"), "{text}");

    std::fs::write(&path, broken.replace("no_such_kind", "health")).unwrap();
    let out = xj().args(["check", "--config"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("duplicate matter code \"PRODUCT-FAKE\""), "{text}");
    assert!(text.contains("matter BAD-CEL: the condition does not compile"), "{text}");
    let line = text.lines().find(|l| l.contains("BAD-CEL")).unwrap();
    let p = path.display().to_string();
    let n: usize =
        line.strip_prefix(&format!("{p}:")).and_then(|r| r.split(':').next()).and_then(|n| n.parse().ok()).unwrap();
    let src = std::fs::read_to_string(&path).unwrap();
    assert!(src.lines().nth(n - 1).unwrap().starts_with("when = "), "line {n} is the condition");
}

#[test]
fn stats_reads_a_running_hubs_counters() {
    let dir = tempfile::tempdir().unwrap();
    let server = xj_bus::embedded::NatsServer::start(xj_bus::embedded::ServerOptions {
        store_dir: dir.path().join("js"),
        ..Default::default()
    })
    .unwrap();
    let cfg = std::fs::read_to_string(repo().join("deploy/sandbox.toml"))
        .unwrap()
        .replace("[http]", &format!("[nats]\nurl = \"{}\"\n\n[http]", server.url()));
    let path = dir.path().join("xianjie.toml");
    std::fs::write(&path, cfg).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let settings = xj_config::load_file(&path).unwrap();
        let bus = xj_bus::Bus::connect(&settings, &server.url()).await.unwrap();
        xj_bus::stats::add(&bus.stats, "2026-11", "qh-market", &["referrals_sent", "referrals_sent", "overdue"])
            .await
            .unwrap();
    });
    let out = xj().args(["stats", "--csv", "--month", "2026-11", "--config"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("month,org,referrals_sent"), "{text}");
    assert!(text.contains("2026-11,qh-market,2,"), "{text}");
    let out = xj().args(["stats", "--month", "2026-13", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn stats_says_plainly_when_there_is_no_hub() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = std::fs::read_to_string(repo().join("deploy/sandbox.toml")).unwrap();
    let path = dir.path().join("xianjie.toml");
    // Nothing listens there.
    let (_held, addr) = xj_testkit::refusing_address().unwrap();
    std::fs::write(&path, sandbox.replace("[http]", &format!("[nats]\nurl = \"nats://{addr}\"\n\n[http]"))).unwrap();
    let out = xj().args(["stats", "--config"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("cannot connect to nats://{addr}")), "{err}");
    // A NATS that is not the hub's.
    let server = xj_bus::embedded::NatsServer::start(xj_bus::embedded::ServerOptions {
        store_dir: dir.path().join("js"),
        ..Default::default()
    })
    .unwrap();
    std::fs::write(&path, sandbox.replace("[http]", &format!("[nats]\nurl = \"{}\"\n\n[http]", server.url()))).unwrap();
    let out = xj().args(["stats", "--config"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no statistics bucket on this NATS"), "{err}");
}

/// The API's socket keeps a deep accept queue (`ss` shows the listen
/// backlog as Send-Q), so a burst of new connections waits to be accepted
/// instead of being dropped and retried by the clients' kernels seconds
/// later.
#[tokio::test]
async fn the_api_listens_with_a_deep_accept_queue() -> anyhow::Result<()> {
    let l = xj::hub::listen("127.0.0.1:0".parse()?)?;
    let port = l.local_addr()?.port();
    let out = std::process::Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let send_q: u32 = text.split_whitespace().nth(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")?.trim().parse()?;
    assert_eq!(send_q, xj::hub::BACKLOG.min(somaxconn), "{text}");
    if somaxconn > 1024 {
        assert!(send_q > 1024, "deeper than tokio's default of 1024: {text}");
    }
    Ok(())
}
