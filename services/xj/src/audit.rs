//! `xj audit …`, `xj nats-config`, `xj keys rotate`: the operator's trust
//! commands (docs/security.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use xj_bus::signing::HubKey;
use xj_config::Settings;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Walk the ledger's hash chain and name the first entry (and record in
    /// it) that does not match; with --file, check a dump or an evidence
    /// bundle offline.
    Verify {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        /// NATS URL (default `[nats] url`, else the embedded server's 127.0.0.1:4222).
        #[arg(long)]
        nats: Option<String>,
        /// An evidence bundle (`xj audit export`) or a ledger dump (`xj audit dump`).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write the entries holding one case's records — or one message's, with
    /// --message — (its records with inclusion proofs, no other record), the chain links,
    /// the messages, the recipients' signed receipts and their keys as a
    /// signed evidence bundle that verifies offline.
    Export {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        #[arg(long)]
        nats: Option<String>,
        #[arg(long, required_unless_present = "message", conflicts_with = "message")]
        case: Option<String>,
        /// One message's package: its id (with --sender, the organisation that sent it).
        #[arg(long, requires = "sender")]
        message: Option<String>,
        #[arg(long)]
        sender: Option<String>,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an evidence package (`xj audit export`) offline, with no hub:
    /// the hub's signature, every record and entry, the chain links, the
    /// messages against their digests, the recipients' signed receipts.
    VerifyPackage { file: PathBuf },
    /// Write the whole ledger as JSON lines (an offline copy `verify --file` checks).
    Dump {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        #[arg(long)]
        nats: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Start signing with a new hub key; the old key's public part must go to
    /// `[hub] previous_public_keys` so its signatures stay verifiable.
    Rotate {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
    },
}

fn settings(config: &Path) -> anyhow::Result<Settings> {
    Ok(xj_config::load_file(config)?)
}

/// Connects as the services' user: `[nats]`, or what `xj up` generated.
/// Fails within seconds when NATS does not answer (a command, not a
/// service that waits for it).
pub(crate) async fn connect(s: &Settings, nats: Option<String>) -> anyhow::Result<async_nats::jetstream::Context> {
    let s = if s.nats.password.is_none() && crate_nats::services_password_file(s).exists() {
        crate_nats::with_service_credentials(s)?
    } else {
        s.clone()
    };
    let url = nats.or_else(|| s.nats.url.clone()).unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let mut opts = async_nats::ConnectOptions::new().name("xj audit");
    if let (Some(u), Some(p)) = (&s.nats.user, &s.nats.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    let client = tokio::time::timeout(std::time::Duration::from_secs(10), opts.connect(&url))
        .await
        .with_context(|| format!("timed out connecting to {url}"))?
        // The client's error already says its cause; as a chain it would
        // print it twice.
        .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
    Ok(async_nats::jetstream::new(client))
}

use xj::nats_auth as crate_nats;

pub async fn audit(cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::Verify { file: Some(file), .. } => verify_file(&file),
        AuditCmd::Verify { config, nats, file: None } => {
            let s = settings(&config)?;
            let js = connect(&s, nats).await?;
            match xj_ledger::verify_live(&js).await? {
                Ok(s) => {
                    println!("ledger ok: {}", summary(&s));
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    println!("ledger broken: {b}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCmd::Export { config, nats, case, message, sender, out } => {
            use xj_ledger::bundle::Scope;
            let s = settings(&config)?;
            let js = connect(&s, nats).await?;
            let key = HubKey::load_or_create_as(&xj::hub::key_path(&s), s.hub.signature)?
                .with_previous(&s.hub.previous_public_keys)?;
            let scope = match (case, message, sender) {
                (Some(c), _, _) => Scope::Case(c),
                (None, Some(id), Some(sender)) => Scope::Message { sender, id },
                _ => anyhow::bail!("name --case, or --message with --sender"),
            };
            // The keys a receipt in the package is checked with, as registered.
            let keys = |org: &str| {
                let o = s.org(org)?;
                Some((o.key_alg.as_str().to_string(), o.public_key.clone()?))
            };
            let bundle = xj_ledger::bundle::export(&js, &scope, &keys, &key).await?;
            write_out(out.as_deref(), &xj_ledger::bundle::layout(&bundle))?;
            let entries = bundle["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
            let records: usize = entries.iter().flat_map(xj_ledger::records_of).filter(|r| scope.shows(r)).count();
            let what = match &scope {
                Scope::Case(c) => format!("case {c}"),
                Scope::Message { sender, id } => format!("message {id} of {sender} (case {})", bundle["case"]),
            };
            let head = match bundle.get("signed_head") {
                Some(h) => format!("chained to the signed head of entry {}", h["n"]),
                None => "no signed head covers them yet (one comes within [ledger] head_every_s)".into(),
            };
            eprintln!("{what}: {records} records in {} entries exported, {head}", entries.len());
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::VerifyPackage { file } => verify_file(&file),
        AuditCmd::Dump { config, nats, out } => {
            let s = settings(&config)?;
            let js = connect(&s, nats).await?;
            write_out(out.as_deref(), &xj_ledger::dump(&js).await?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_out(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn verify_file(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    // A package is one JSON document with a format (or, broken, starts as
    // the hub lays one out); a dump is JSON lines.
    let whole = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    if whole.as_ref().is_some_and(|v| v.get("format").is_some()) || bytes.starts_with(b"{\n") {
        let b = whole.unwrap_or_default();
        return Ok(match xj_ledger::bundle::verify_package(&bytes) {
            Ok(v) => {
                let what = match b.get("message") {
                    Some(m) => format!("message {} of {} (case {})", m["id"], m["sender"], v.case),
                    None => format!("case {}", v.case),
                };
                let head = match &v.head {
                    None => "not yet chained to a signed head".to_string(),
                    Some(h) => {
                        let mut s = format!("chained to the hub's signed head of entry {} ({})", h.n, h.at);
                        if let Some(t) = &h.stamped {
                            s += &format!(
                                ", time-stamped {} by {} (certificate SHA-256 {})",
                                t.gen_time, t.tsa, t.cert_sha256
                            );
                        }
                        s
                    }
                };
                println!(
                    "bundle ok: {what}, {} records in {} entries ({} other records left out, proved by hashes only), {} messages ({} signed by their senders), {} signed receipts, signed by hub key {}, {head}",
                    v.records, v.entries, v.others, v.messages, v.submissions, v.receipts, v.kid
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("bundle broken: {e}");
                ExitCode::FAILURE
            }
        });
    }
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", file.display()))?;
    Ok(match xj_ledger::verify_lines(&text) {
        Ok(s) => {
            println!("ledger ok: {}", summary(&s));
            ExitCode::SUCCESS
        }
        Err(b) => {
            println!("ledger broken: {b}");
            ExitCode::FAILURE
        }
    })
}

fn summary(s: &xj_ledger::Summary) -> String {
    format!("{} entries, {} records, chain head {}", s.entries, s.records, s.head)
}

pub fn nats_config(config: &Path, cost: u32) -> anyhow::Result<ExitCode> {
    let s = settings(config)?;
    print!("{}", crate_nats::authorization(&s, cost)?);
    Ok(ExitCode::SUCCESS)
}

pub fn webhook_secret(config: &Path, org: &str) -> anyhow::Result<ExitCode> {
    let s = settings(config)?;
    let Some(o) = s.org(org) else {
        anyhow::bail!("no organisation {org:?} in {}", config.display());
    };
    anyhow::ensure!(o.deliver.webhook.is_some(), "{org} is not delivered by webhook");
    match o.webhook_secrets.first() {
        Some(configured) => println!("{configured}"),
        None => {
            let path = xj::hub::key_path(&s);
            anyhow::ensure!(path.exists(), "no hub key at {} yet: start the hub once first", path.display());
            println!("{}", HubKey::load_or_create_as(&path, s.hub.signature)?.webhook_secret(org));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn keys(cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCmd::Rotate { config } => {
            let s = settings(&config)?;
            let path = xj::hub::key_path(&s);
            // A change of [hub] signature moves the default key file: the
            // old key is the other algorithm's.
            let other = [xj_config::SignatureAlg::Ed25519, xj_config::SignatureAlg::Sm2]
                .into_iter()
                .map(|a| s.data.dir.join(format!("hub_{}.key", a.as_str())))
                .find(|p| *p != path && p.exists());
            let old_path = match (path.exists(), s.hub.signing_key_file.is_none(), other) {
                (false, true, Some(other)) => other,
                _ => path.clone(),
            };
            let (old, new) = HubKey::rotate_from(&old_path, &path, s.hub.signature)?;
            println!("new hub key {} in {}", new.kid(), path.display());
            println!(
                "the old key {} is kept beside it (…{}.retired); publish it so its signatures",
                old.kid(),
                old.kid()
            );
            println!("stay verifiable — add to the configuration and restart every service:");
            let mut previous = s.hub.previous_public_keys.clone();
            previous.insert(0, old.public_key_b64());
            let list: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
            println!("\n[hub]\nprevious_public_keys = [{}]", list.join(", "));
            Ok(ExitCode::SUCCESS)
        }
    }
}
