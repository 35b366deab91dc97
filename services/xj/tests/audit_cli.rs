//! The operator's trust commands as a person runs them: `xj audit verify
//! --file` on a ledger copy with one flipped byte and on an evidence bundle,
//! `xj nats-config`, `xj keys rotate`.

use std::process::Command;

use serde_json::json;
use xj_ledger::{Entry, GENESIS, Leaf, Record, SourceRef};

fn xj() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xj"))
}

/// `k` entries of 4 records each; cases XJ-1 and XJ-2 share every entry.
fn chain(k: u64) -> Vec<String> {
    let mut prev = GENESIS.to_string();
    (1..=k)
        .map(|n| {
            let records = (1..=4)
                .map(|i| {
                    let seq = (n - 1) * 4 + i;
                    Leaf::of(Record {
                        kind: "event:delivered".into(),
                        source: SourceRef {
                            stream: "XJ_EVENTS".into(),
                            seq,
                            subject: format!("xj.evt.a.M{seq}.delivered"),
                        },
                        case: Some(format!("XJ-{}", 1 + seq % 2)),
                        msg_id: Some(format!("M{seq}")),
                        sender: Some("qh-market".into()),
                        record: json!({ "step": "delivered", "detail": { "attempt": seq } }),
                    })
                })
                .collect();
            let e = Entry::new(n, "2026-11-21T01:00:00.000Z".into(), prev.clone(), records);
            prev = e.hash.clone();
            serde_json::to_string(&e).unwrap()
        })
        .collect()
}

fn verify(path: &std::path::Path) -> (bool, String) {
    let out = xj().args(["audit", "verify", "--file"]).arg(path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn audit_verify_names_the_entry_and_record_with_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let lines = chain(5);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let (ok, text) = verify(&path);
    assert!(ok, "{text}");
    assert!(text.contains("ledger ok: 5 entries, 20 records"), "{text}");

    // Entry 4 holds sources 13..=16: its third record is XJ_EVENTS seq 15.
    let mut bad = lines.clone();
    bad[3] = bad[3].replacen("\"attempt\":15", "\"attempt\":14", 1);
    assert_ne!(bad[3], lines[3]);
    std::fs::write(&path, bad.join("\n")).unwrap();
    let (ok, text) = verify(&path);
    assert!(!ok);
    assert!(text.contains("ledger broken: entry 4, record 3 (XJ_EVENTS seq 15): leaf hash does not match"), "{text}");
}

#[test]
fn audit_verify_checks_a_bundle_offline_that_shows_only_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let key = xj_bus::signing::HubKey::load_or_create(&dir.path().join("hub.key")).unwrap();
    let bundle = xj_ledger::bundle::export_from_dump(&chain(3).join("\n"), "XJ-1", &|_| None, &key).unwrap();
    let text = bundle.to_string();
    assert!(!text.contains("XJ-2") && !text.contains("\"M1\""), "another case's records show: {text}");
    let path = dir.path().join("XJ-1.json");
    std::fs::write(&path, xj_ledger::bundle::layout(&bundle)).unwrap();
    let (ok, out) = verify(&path);
    assert!(ok, "{out}");
    assert!(
        out.contains("bundle ok: case XJ-1, 6 records in 3 entries (6 other records left out, proved by hashes only)"),
        "{out}"
    );
    // `verify-package` is the same check by the name evidence packages use.
    let o = xj().args(["audit", "verify-package"]).arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && said.contains("bundle ok: case XJ-1") && said.contains("0 signed receipts"),
        "{said}"
    );

    // One changed byte in a record: that record is named.
    let original = std::fs::read_to_string(&path).unwrap();
    let changed = original.replacen("\"attempt\": 4", "\"attempt\": 5", 1);
    assert_ne!(changed, original);
    std::fs::write(&path, changed).unwrap();
    let (ok, out) = verify(&path);
    assert!(!ok);
    assert!(out.contains("bundle broken: entry") && out.contains("leaf hash does not match the record"), "{out}");
    // White space changed: the bytes are not the hub's.
    std::fs::write(&path, original.replacen("\n  ", "\n   ", 1)).unwrap();
    let (ok, out) = verify(&path);
    assert!(!ok);
    assert!(out.contains("bundle broken: bundle: line 2: the package's bytes are not as the hub wrote them"), "{out}");
}

const CONFIG: &str = r#"
[nats]
user = "xj-services"
password_env = "TRUST_TEST_NATS_PASSWORD"
[operator]
token = "operator-token-0123456789"
[hub]
signing_key_file = "hub.key"
[[org]]
id = "qh-agri"
name = "农业农村局"
kind = "agriculture"
region = "990101"
token_env = "TRUST_TEST_AGRI_TOKEN"
deliver = { nats = true }
[[org]]
id = "qh-coord"
name = "指挥中心"
kind = "coordination_office"
region = "990101"
token = "token-qh-coord-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
"#;

#[test]
fn nats_config_prints_a_user_per_nats_org_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xianjie.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let out = xj()
        .args(["nats-config", "--cost", "4", "--config"])
        .arg(&path)
        .env("TRUST_TEST_NATS_PASSWORD", "service-secret-0123456789")
        .env("TRUST_TEST_AGRI_TOKEN", "agri-secret-0123456789")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("# Generated by `xj nats-config`"), "{text}");
    assert!(text.contains("user: \"xj-services\"") && text.contains("user: \"qh-agri\""), "{text}");
    assert!(!text.contains("qh-coord"), "{text}");
    assert!(!text.contains("service-secret") && !text.contains("agri-secret"), "{text}");
}

#[test]
fn keys_rotate_prints_the_previous_key_to_publish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xianjie.toml");
    let key = dir.path().join("hub.key");
    std::fs::write(&path, CONFIG.replace("\"hub.key\"", &format!("{:?}", key.display().to_string()))).unwrap();
    let run = || {
        xj().args(["keys", "rotate", "--config"])
            .arg(&path)
            .env("TRUST_TEST_NATS_PASSWORD", "service-secret-0123456789")
            .env("TRUST_TEST_AGRI_TOKEN", "agri-secret-0123456789")
            .output()
            .unwrap()
    };
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("previous_public_keys = [\""), "{text}");
    assert!(dir.path().join("hub.key").exists());
    let retired = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".retired"));
    assert_eq!(retired.count(), 1);
}

/// `[hub] signature = "sm2"` with the default key files: rotating retires
/// the Ed25519 key (`hub_ed25519.key`) and writes `hub_sm2.key`.
#[test]
fn keys_rotate_moves_a_hub_from_ed25519_to_sm2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xianjie.toml");
    let data = format!("[data]\ndir = {:?}\n", dir.path().display().to_string());
    let ed = CONFIG.replace("signing_key_file = \"hub.key\"\n", "") + &data;
    let rotate = |config: &str| {
        std::fs::write(&path, config).unwrap();
        let out = xj()
            .args(["keys", "rotate", "--config"])
            .arg(&path)
            .env("TRUST_TEST_NATS_PASSWORD", "service-secret-0123456789")
            .env("TRUST_TEST_AGRI_TOKEN", "agri-secret-0123456789")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    rotate(&ed);
    let first = std::fs::read_to_string(dir.path().join("hub_ed25519.key")).unwrap();
    assert!(!first.starts_with("sm2:"));
    let text = rotate(&ed.replace("[hub]\n", "[hub]\nsignature = \"sm2\"\n"));
    assert!(text.contains("previous_public_keys = [\""), "{text}");
    let sm2 = std::fs::read_to_string(dir.path().join("hub_sm2.key")).unwrap();
    assert!(sm2.starts_with("sm2:"), "{sm2}");
    assert!(!dir.path().join("hub_ed25519.key").exists(), "the Ed25519 key is retired");
    let retired: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hub_ed25519.key.") && n.ends_with(".retired"))
        .collect();
    assert_eq!(retired.len(), 2, "the first rotation's and the switch's: {retired:?}");
}

#[test]
fn webhook_secret_prints_the_configured_or_the_derived_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xianjie.toml");
    let configured = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let key_file = dir.path().join("hub.key");
    let config = CONFIG.replace("\"hub.key\"", &format!("{:?}", key_file.display().to_string()));
    let with_secret = config.replace(
        "token = \"token-qh-coord-0123456789\"",
        &format!("token = \"token-qh-coord-0123456789\"\nwebhook_secret = \"{configured}\""),
    );
    let run = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let out = xj()
            .args(["webhook-secret", "--org", "qh-coord", "--config"])
            .arg(&path)
            .env("TRUST_TEST_NATS_PASSWORD", "service-secret-0123456789")
            .env("TRUST_TEST_AGRI_TOKEN", "agri-secret-0123456789")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&with_secret).1, configured);
    // None configured and no hub key yet: said plainly.
    let (ok, _, err) = run(&config);
    assert!(!ok && err.contains("start the hub once first"), "{err}");
    let key = xj_bus::signing::HubKey::load_or_create(&key_file).unwrap();
    let (ok, out, err) = run(&config);
    assert!(ok, "{err}");
    assert_eq!(out, key.webhook_secret("qh-coord"));
    assert!(out.starts_with("whsec_"));
    // A secret that is not one is refused with its place.
    let (ok, _, err) = run(&with_secret.replace(configured, "not-a-secret"));
    assert!(!ok && err.contains("webhook_secret") && err.contains("whsec_"), "{err}");
}
