//! The sandbox county's departmental systems, for `xj up`: one real HTTP
//! server per organisation whose webhook is on this machine. Each verifies
//! the hub's signature with the key from `GET /v1/keys`, dedupes on
//! `Xj-Sender` and `Xj-Message-Id`, keeps what it received (`GET /` on its port), and answers
//! as the real system would (a town or bureau replies to a referral). A demo
//! generator sends referrals so an operator sees traffic at once.

mod demo;
mod department;
mod speak;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use xj_bus::Shutdown;
use xj_config::Settings;

pub use demo::scenario;

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Base URL of the hub's gateway, e.g. `http://127.0.0.1:8080`.
    pub gateway: String,
    /// Seconds between demo referrals; 0 turns demo traffic off.
    pub demo_every: Duration,
    /// Delay before a department answers a referral.
    pub reply_after: Duration,
}

/// Starts the departments and the demo traffic; returns when `shutdown`.
pub async fn run(settings: Arc<Settings>, opts: SandboxOptions, shutdown: Shutdown) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let key = fetch_key(&http, &opts.gateway, &shutdown).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let procuratorate = settings.org.iter().find(|o| o.kind == xj_config::OrgKind::Procuratorate).map(|o| o.id.clone());
    // The departments run beside the hub (`xj up`): a department without a
    // configured webhook secret knows the one the hub derives from its key.
    let key_file = settings.signing_key_path();
    let hub_key = key_file.exists().then(|| xj_bus::signing::HubKey::load_or_create(&key_file).ok()).flatten();
    for org in settings.org.iter().filter(|o| department::is_local(o)) {
        let secret =
            org.webhook_secrets.first().cloned().or_else(|| hub_key.as_ref().map(|k| k.webhook_secret(&org.id)));
        let dept = department::Department::new(
            org.clone(),
            key.clone(),
            http.clone(),
            opts.clone(),
            settings.mappings.clone(),
            procuratorate.clone(),
        )
        .with_webhook_secret(secret);
        let listener = dept.bind().await.with_context(|| format!("sandbox department {}", org.id))?;
        let shutdown = shutdown.clone();
        tasks.spawn(async move { dept.serve(listener, shutdown).await });
    }
    if !opts.demo_every.is_zero() {
        let (settings, http, opts, shutdown) = (settings.clone(), http.clone(), opts.clone(), shutdown.clone());
        tasks.spawn(async move { demo::run(settings, http, opts, shutdown).await });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// The hub's public key (base64), from `GET /v1/keys`.
async fn fetch_key(http: &reqwest::Client, gateway: &str, shutdown: &Shutdown) -> anyhow::Result<String> {
    for _ in 0..100 {
        if shutdown.is_cancelled() {
            anyhow::bail!("stopped");
        }
        if let Ok(r) = http.get(format!("{gateway}/v1/keys")).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && let Some(k) = v["keys"][0]["public_key"].as_str()
        {
            return Ok(k.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the gateway at {gateway} did not serve /v1/keys")
}
