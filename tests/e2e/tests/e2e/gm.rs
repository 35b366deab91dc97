//! National cryptography (docs/security.md, "Algorithms") against an
//! implementation that is not the hub's: PyPI's `gmssl`, unmodified,
//! installed by the test. A hub with `[hub] signature = "sm2"` signs its
//! deliveries so that gmssl verifies them (and refuses a changed body); an
//! organisation with an SM2 key (`key_alg = "sm2"`) signs its submission
//! with gmssl and the hub accepts it — and refuses it changed, or passed
//! off as Ed25519. A ledger with `[ledger] hash = "sm3"` chains entries
//! whose hashes gmssl's SM3 computes alike.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use xj_bus::signing::{Alg, HubKey};
use xj_testkit::{TestHub, eventually, sample_clue};

const GMSSL: &str = "gmssl==3.2.2";

/// gmssl under the tool cache (`pip install --target`), once.
fn gmssl() -> anyhow::Result<PathBuf> {
    let cache = std::env::var_os("XJ_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/xianjie")
    });
    let dir = cache.join("py-gmssl-3.2.2");
    if !dir.join("gmssl").exists() {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&dir)
            .arg(GMSSL)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pip install {GMSSL} (PyPI must be reachable; the test is not skipped): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(dir)
}

/// gmssl's SM3 Merkle root over leaf hashes (RFC 9162: `0x00` before a
/// leaf, `0x01` before two nodes, split at the largest power of two below
/// the count).
fn gm_root(leaves: &[Vec<u8>]) -> anyhow::Result<Vec<u8>> {
    let node = |prefix: u8, parts: &[&[u8]]| -> anyhow::Result<Vec<u8>> {
        let data: Vec<u8> = std::iter::once(prefix).chain(parts.iter().flat_map(|p| p.iter().copied())).collect();
        Ok(hex::decode(gm(&["sm3"], &data)?)?)
    };
    match leaves {
        [] => anyhow::bail!("an entry without records"),
        [one] => node(0, &[one]),
        _ => {
            let mut k = 1;
            while k * 2 < leaves.len() {
                k *= 2;
            }
            node(1, &[&gm_root(&leaves[..k])?, &gm_root(&leaves[k..])?])
        }
    }
}

/// Runs tests/e2e/gm/gm.py with gmssl; its one line of output.
fn gm(args: &[&str], data: &[u8]) -> anyhow::Result<String> {
    let lib = gmssl()?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), data)?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gm/gm.py");
    let out = Command::new("python3").arg(script).args(args).arg(file.path()).env("PYTHONPATH", &lib).output()?;
    anyhow::ensure!(out.status.success(), "gm.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An SM2 public key as gmssl takes it: x‖y in hex, without the 04.
fn gm_public(b64: &str) -> anyhow::Result<String> {
    let raw = B64.decode(b64)?;
    anyhow::ensure!(raw.len() == 65 && raw[0] == 4, "not an uncompressed point");
    Ok(hex::encode(&raw[1..]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sm2_hubs_deliveries_verify_with_gmssl() -> anyhow::Result<()> {
    let hub = TestHub::start("[hub]\nsignature = \"sm2\"\n").await?;
    let (_, keys) = hub.get("/v1/keys", &hub.token("qh-market")).await?;
    let current = &keys["keys"][0];
    assert_eq!(current["alg"], "SM2", "{keys}");
    let public = current["public_key"].as_str().unwrap_or_default().to_string();

    let clue = sample_clue("GM-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, receipt) = hub.submit("qh-market", &clue).await?;
    assert_eq!(s, 202, "{receipt}");
    let town = hub.receiver("qh-town-dg");
    let got = eventually(Duration::from_secs(20), "the delivery", || async {
        town.deliveries().into_iter().find(|d| d.json["id"] == "GM-1")
    })
    .await?;
    let header = got.header("xj-signature").unwrap_or_default().to_string();
    assert!(header.starts_with(&format!("alg=sm2,keyid={},sig=", current["kid"].as_str().unwrap_or("?"))), "{header}");
    xj_bus::signing::verify_with_keys(&keys, &header, &got.body).map_err(anyhow::Error::msg)?;
    let sig = header.rsplit("sig=").next().unwrap_or_default();
    let sig_hex = hex::encode(B64.decode(sig)?);
    assert_eq!(
        gm(&["verify", &gm_public(&public)?, &sig_hex], &got.body)?,
        "ok",
        "gmssl verifies the hub's SM2 signature"
    );
    let mut changed = got.body.to_vec();
    changed[10] ^= 1;
    assert_eq!(gm(&["verify", &gm_public(&public)?, &sig_hex], &changed)?, "bad", "gmssl refuses a changed body");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_signing_with_gmssl_is_accepted() -> anyhow::Result<()> {
    // The organisation's key pair: a secret scalar, its public point for
    // the hub's configuration (HubKey here only derives the point).
    let secret: [u8; 32] = rand::random();
    let key = HubKey::from_bytes_as(Alg::Sm2, &secret).ok_or_else(|| anyhow::anyhow!("not an SM2 scalar"))?;
    let public_b64 = key.public_key_b64();
    let extra = format!(
        "[[org]]\nid = \"qh-gm\"\nname = \"国密测试局\"\nkind = \"market_regulation\"\nregion = \"990101\"\n\
         token = \"token-qh-gm-0123456789\"\ndeliver = {{ nats = true }}\npublic_key = \"{public_b64}\"\nkey_alg = \"sm2\"\n"
    );
    let hub = TestHub::start(&extra).await?;
    let post = |body: Vec<u8>, sig: Option<String>| {
        let mut r = hub
            .http
            .post(format!("{}/v1/messages", hub.base))
            .bearer_auth("token-qh-gm-0123456789")
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            r = r.header("Xj-Signature", s);
        }
        async move {
            let r = r.send().await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.json::<Value>().await.unwrap_or_default()))
        }
    };
    let body = serde_json::to_vec(&sample_clue("GM-ORG-1", "qh-gm", "FOOD-STALL", "990101101"))?;
    let sig_hex = gm(&["sign", &hex::encode(secret), &gm_public(&public_b64)?], &body)?;
    let sig = B64.encode(hex::decode(&sig_hex)?);
    let (s, r) = post(body.clone(), Some(format!("alg=sm2,keyid=qh-gm-1,sig={sig}"))).await?;
    assert_eq!(s, 202, "the hub accepts a submission gmssl signed: {r}");

    // Changed after signing, unsigned, or not saying alg=sm2: refused.
    let mut other = body.clone();
    let at = other.len() - 3;
    other[at] = b' ';
    let (s, r) = post(other, Some(format!("alg=sm2,keyid=qh-gm-1,sig={sig}"))).await?;
    assert_eq!(s, 401, "{r}");
    let body2 = serde_json::to_vec(&sample_clue("GM-ORG-2", "qh-gm", "FOOD-STALL", "990101101"))?;
    let (s, r) = post(body2.clone(), None).await?;
    assert_eq!(s, 401, "{r}");
    assert!(r["message"].as_str().is_some_and(|m| m.contains("alg=sm2")), "{r}");
    let sig2 = B64.encode(hex::decode(gm(&["sign", &hex::encode(secret), &gm_public(&public_b64)?], &body2)?)?);
    let (s, r) = post(body2, Some(format!("keyid=qh-gm-1,sig={sig2}"))).await?;
    assert_eq!(s, 401, "an SM2 signature passed off as Ed25519: {r}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sm3_ledger_chains_entries_gmssl_hashes_alike() -> anyhow::Result<()> {
    let hub = TestHub::start("[ledger]\nhash = \"sm3\"\n").await?;
    let clue = sample_clue("GM-LEDGER-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, receipt) = hub.submit("qh-market", &clue).await?;
    assert_eq!(s, 202, "{receipt}");
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let dump = eventually(Duration::from_secs(20), "the message in the ledger", || async {
        let dump = xj_ledger::dump(&js).await.ok()?;
        dump.contains("GM-LEDGER-1").then_some(dump)
    })
    .await?;
    let summary = xj_ledger::verify_lines(&dump).map_err(|b| anyhow::anyhow!("the chain breaks: {b}"))?;
    assert!(summary.entries >= 1);
    let entry: Value = dump
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e.to_string().contains("GM-LEDGER-1"))
        .ok_or_else(|| anyhow::anyhow!("no entry records GM-LEDGER-1"))?;
    assert_eq!(entry["alg"], "sm3", "{entry}");
    // gmssl's SM3 over what the entry hash covers (every field but `hash`
    // and the records: n, at, prev, alg, count and the Merkle root), over
    // the tree of the records' leaves, and over a record gives the stored
    // hashes.
    let mut head = entry.as_object().cloned().unwrap_or_default();
    head.remove("hash");
    let records = head.remove("records").unwrap_or_default();
    let covered = xj_ledger::canonical(&Value::Object(head));
    assert_eq!(gm(&["sm3"], covered.as_bytes())?, entry["hash"].as_str().unwrap_or_default());
    let leaves: Vec<Vec<u8>> = records
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| hex::decode(r["leaf"].as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    assert_eq!(entry["count"], leaves.len());
    assert_eq!(hex::encode(gm_root(&leaves)?), entry["root"].as_str().unwrap_or_default());
    let mut record = records[0].as_object().cloned().unwrap_or_default();
    let leaf = record.remove("leaf").unwrap_or_default();
    let record = xj_ledger::canonical(&Value::Object(record));
    assert_eq!(gm(&["sm3"], record.as_bytes())?, leaf.as_str().unwrap_or_default());
    Ok(())
}
