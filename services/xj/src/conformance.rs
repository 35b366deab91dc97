//! `xj conformance --org <id> [--url <receiver>]`: tries an integrating
//! organisation's webhook receiver the way the hub will use it, before it
//! goes live (docs/integration.md). Every test delivery is posted by the
//! courier's own code (`xj_courier::deliver::webhook`) with the hub's key
//! and the organisation's webhook secret, in the organisation's format;
//! the forged one with a key and secret that are not the hub's.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use xj_bus::TraceParent;
use xj_bus::signing::HubKey;
use xj_config::{Org, Settings};
use xj_courier::deliver::{self, Outcome, Parcel};

/// The sender and case every test delivery names, so a receiver can file
/// them apart from real traffic.
pub const SENDER: &str = "xj-conformance";
pub const CASE: &str = "XJ-CONFORMANCE";

/// A test delivery's time is this far in the past for the replay check:
/// beyond the five minutes the Standard Webhooks libraries tolerate.
const STALE_SECONDS: i64 = 3600;

/// What one check found: passed, failed, or not applicable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    NotApplicable,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self { name, verdict, detail: detail.into() }
    }

    fn json(&self) -> Value {
        let verdict = match self.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "not_applicable",
        };
        json!({ "check": self.name, "verdict": verdict, "detail": self.detail })
    }
}

/// The test message: the example clue referral, renamed so it is
/// recognisably a test, addressed to `org`.
fn message(org: &str, id: &str) -> anyhow::Result<Bytes> {
    let mut m: Value = serde_json::from_str(include_str!("../../../schemas/examples/clue_referral.json"))?;
    m["id"] = id.into();
    m["sender"] = SENDER.into();
    m["recipient"] = org.into();
    m["case"] = CASE.into();
    m["sent_at"] = chrono::Utc::now().to_rfc3339().into();
    m["body"]["cause"] = "接口一致性测试（xj conformance），请勿办理".into();
    Ok(Bytes::from(serde_json::to_vec(&m)?))
}

fn answered(o: &Outcome) -> String {
    match o {
        Outcome::Delivered { status, elapsed, .. } => {
            format!("answered {} in {} ms", status.map(|s| s.to_string()).unwrap_or_default(), elapsed.as_millis())
        }
        Outcome::Failed { reason, elapsed, .. } => format!("{reason} (after {} ms)", elapsed.as_millis()),
    }
}

fn elapsed(o: &Outcome) -> Duration {
    match o {
        Outcome::Delivered { elapsed, .. } | Outcome::Failed { elapsed, .. } => *elapsed,
    }
}

/// A refusal the hub reads as "this message is refused" (a 4xx other than
/// 408 and 429): what a receiver must answer to a delivery it cannot trust.
fn refused(o: &Outcome) -> bool {
    matches!(o, Outcome::Failed { status: Some(s), .. } if (400..500).contains(s) && *s != 408 && *s != 429)
}

/// Runs every check against `url` as `org` would be delivered to.
pub async fn run_checks(settings: &Settings, key: &HubKey, org: &Org, url: &str) -> anyhow::Result<Vec<Check>> {
    // reqwest's TLS needs the process's crypto provider (https receivers).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = deliver::Clients::new(&settings.courier)?.of(org).clone();
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let id = |n: u32| format!("XJ-CONFORMANCE-{stamp}-{n}");
    let native = |canonical: Bytes| -> anyhow::Result<(Bytes, &'static str)> {
        deliver::native_form(&settings.mappings, org, &canonical).map_err(anyhow::Error::msg)
    };
    let now = || chrono::Utc::now().timestamp();
    let send =
        |org: &Org, key: &HubKey, msg_id: String, body: Bytes, content_type: &'static str, attempt: u64, at: i64| {
            let (http, org, key) = (http.clone(), org.clone(), key.clone());
            async move {
                let delivery = deliver::delivery_id(None, SENDER, &msg_id, &org.id);
                let parcel = Parcel {
                    org: &org,
                    sender: SENDER,
                    msg_id: &msg_id,
                    case: CASE,
                    delivery: &delivery,
                    attempt,
                    trace: TraceParent::new_root(),
                    body,
                    content_type,
                };
                // An organisation that takes batches gets everything as one.
                if org.deliver.batch.is_some() {
                    deliver::webhook_batch(&http, &key, std::slice::from_ref(&parcel), url, at).await
                } else {
                    deliver::webhook(&http, &key, &parcel, url, at).await
                }
            }
        };
    let mut checks = Vec::new();
    let mut slowest = Duration::ZERO;

    // 1. A delivery as the hub sends it.
    let (body, ct) = native(message(&org.id, &id(1))?)?;
    let first = send(org, key, id(1), body.clone(), ct, 1, now()).await;
    slowest = slowest.max(elapsed(&first));
    let ok = matches!(first, Outcome::Delivered { .. });
    checks.push(Check::new(
        "accepts a signed delivery",
        if ok { Verdict::Pass } else { Verdict::Fail },
        if ok {
            answered(&first)
        } else {
            format!("{}: the hub would retry it and then dead-letter it", answered(&first))
        },
    ));

    // 2. The same copy again, as after a lost acknowledgement.
    let again = send(org, key, id(1), body, ct, 2, now()).await;
    slowest = slowest.max(elapsed(&again));
    let ok = matches!(again, Outcome::Delivered { .. });
    let hook_id = xj_bus::webhooks::delivery_id(SENDER, &id(1), &org.id);
    checks.push(Check::new(
        "acknowledges a repeat (dedupe)",
        if ok { Verdict::Pass } else { Verdict::Fail },
        if ok {
            format!(
                "{}; it must keep one copy: {hook_id} (webhook-id) should be in your system once",
                answered(&again)
            )
        } else {
            format!(
                "{}: a repeat must be acknowledged with 2xx (and not stored twice), or the hub retries it until it is a dead letter",
                answered(&again)
            )
        },
    ));

    // 3. Signed by someone else: another Ed25519 key, and the webhook
    //    secret derived from it, which is not the organisation's.
    let forger = HubKey::generate(key.alg());
    let mut forged_org = org.clone();
    forged_org.webhook_secrets.clear();
    let (body, ct) = native(message(&org.id, &id(3))?)?;
    let forged = send(&forged_org, &forger, id(3), body, ct, 1, now()).await;
    slowest = slowest.max(elapsed(&forged));
    checks.push(Check::new(
        "refuses a forged signature",
        if refused(&forged) { Verdict::Pass } else { Verdict::Fail },
        match &forged {
            Outcome::Delivered { .. } => {
                format!("{}: it accepted a delivery the hub did not sign (verify webhook-signature)", answered(&forged))
            }
            o if refused(o) => answered(o),
            o => format!("{}: answer a delivery that does not verify with 400, 401 or 403", answered(o)),
        },
    ));

    // 4. Signed by the hub, but an hour old: a replay.
    let (body, ct) = native(message(&org.id, &id(4))?)?;
    let stale = send(org, key, id(4), body, ct, 1, now() - STALE_SECONDS).await;
    slowest = slowest.max(elapsed(&stale));
    checks.push(Check::new(
        "refuses a replayed (stale) delivery",
        if refused(&stale) { Verdict::Pass } else { Verdict::Fail },
        match &stale {
            Outcome::Delivered { .. } => format!(
                "{}: it accepted a delivery whose webhook-timestamp is an hour old (check the timestamp, 5 minutes' tolerance)",
                answered(&stale)
            ),
            o if refused(o) => answered(o),
            o => format!("{}: answer a stale delivery with 400, 401 or 403", answered(o)),
        },
    ));

    // 5. Time: every answer within the courier's timeout.
    let limit = Duration::from_millis(settings.courier.timeout_ms);
    let timed_out = checks.iter().any(|c| c.detail.contains("timed out")) || slowest >= limit;
    checks.push(Check::new(
        "answers within the timeout",
        if timed_out { Verdict::Fail } else { Verdict::Pass },
        format!("slowest answer {} ms; [courier] timeout_ms = {}", slowest.as_millis(), limit.as_millis()),
    ));

    // 6. Batches: two messages in one POST, for an organisation that takes them.
    match org.deliver.batch {
        Some(n) if n > 1 => {
            let (a, b) = (message(&org.id, &id(6))?, message(&org.id, &id(7))?);
            let ids = [id(6), id(7)];
            let deliveries: Vec<String> = ids.iter().map(|i| deliver::delivery_id(None, SENDER, i, &org.id)).collect();
            let parcels: Vec<Parcel<'_>> = [(a, 0), (b, 1)]
                .into_iter()
                .map(|(body, i)| Parcel {
                    org,
                    sender: SENDER,
                    msg_id: &ids[i],
                    case: CASE,
                    delivery: &deliveries[i],
                    attempt: 1,
                    trace: TraceParent::new_root(),
                    body,
                    content_type: "application/json",
                })
                .collect();
            let batch = deliver::webhook_batch(&http, key, &parcels, url, now()).await;
            let ok = matches!(batch, Outcome::Delivered { .. });
            checks.push(Check::new(
                "handles a batch",
                if ok { Verdict::Pass } else { Verdict::Fail },
                if ok {
                    format!("{}; {} and {} should each be in your system once", answered(&batch), ids[0], ids[1])
                } else {
                    format!(
                        "{}: a batch's 2xx acknowledges all its messages; anything else retries them",
                        answered(&batch)
                    )
                },
            ));
        }
        _ => checks.push(Check::new(
            "handles a batch",
            Verdict::NotApplicable,
            "the organisation receives one message a POST ([[org]] deliver has no batch)",
        )),
    }
    Ok(checks)
}

/// `xj conformance`: prints the checks (or JSON) and fails when one failed.
pub async fn conformance(config: &Path, org_id: &str, url: Option<&str>, as_json: bool) -> anyhow::Result<ExitCode> {
    let settings = xj_config::load_file(config)?;
    let org =
        settings.org(org_id).ok_or_else(|| anyhow::anyhow!("no organisation {org_id:?} in {}", config.display()))?;
    let url = match (url, org.deliver.webhook.as_deref()) {
        (Some(u), _) => u.to_owned(),
        (None, Some(w)) => w.to_owned(),
        (None, None) => anyhow::bail!(
            "{org_id} has no webhook (deliver = {{ {} = true }}): name the receiver to try with --url",
            org.deliver.channel()
        ),
    };
    let path = crate::hub::key_path(&settings);
    anyhow::ensure!(
        path.exists(),
        "no hub key at {} yet: start the hub once (its key signs the test deliveries)",
        path.display()
    );
    let key = HubKey::load_or_create_as(&path, settings.hub.signature)?;
    let checks = run_checks(&settings, &key, org, &url).await?;
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    if as_json {
        let all: Vec<Value> = checks.iter().map(Check::json).collect();
        println!("{}", json!({ "org": org_id, "url": url, "checks": all, "failed": failed }));
    } else {
        println!("xj conformance: {org_id} at {url} (format {})", org.format);
        for c in &checks {
            let tag = match c.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::NotApplicable => "N/A ",
            };
            println!("{tag}  {:<38} {}", c.name, c.detail);
        }
        println!("{}", if failed == 0 { "conformant".to_owned() } else { format!("{failed} check(s) failed") });
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
