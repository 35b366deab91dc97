//! `xj`: the hub's one binary (docs/operations.md).

mod audit;
mod stats;
mod translate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use xj::hub::{self, Service};
use xj_bus::Shutdown;
use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_config::Settings;

/// mimalloc instead of glibc malloc: see docs/performance.md ("before and
/// after") for what it changed.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The sandbox county, used by `xj up` when no configuration is given.
const SANDBOX: &str = include_str!("../../../deploy/sandbox.toml");

#[derive(Parser)]
#[command(name = "xj", version, about = "xianjie 衔接: the enforcement-coordination hub")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Monthly statistics per organisation, from a running hub's NATS.
    Stats {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        /// YYYY-MM; default this month.
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        csv: bool,
    },
    /// The audit ledger: verify the hash chain, export a case's evidence bundle.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCmd,
    },
    /// Print the nats-server accounts: the hub's account (the services'
    /// user, JetStream) and one account per NATS-native organisation that
    /// imports only its intake subject and its outbox consumer.
    NatsConfig {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        /// bcrypt cost of the stored password hashes.
        #[arg(long, default_value_t = 11)]
        cost: u32,
    },
    /// Print an organisation's Standard Webhooks secret (`whsec_…`): its
    /// configured `webhook_secret`, or the one the hub derives from its
    /// signing key, to give to the organisation for verifying deliveries.
    WebhookSecret {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        #[arg(long)]
        org: String,
    },
    /// Try an organisation's webhook receiver before it goes live: a signed
    /// delivery, its repeat, a forged and a replayed one, the time taken
    /// (docs/integration.md). Exits non-zero when a check fails.
    Conformance {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        #[arg(long)]
        org: String,
        /// The receiver to try; default the organisation's configured webhook.
        #[arg(long)]
        url: Option<String>,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The hub's signing keys.
    Keys {
        #[command(subcommand)]
        cmd: audit::KeysCmd,
    },
    /// Everything on one machine: embedded nats-server (when [nats] url is
    /// absent), every service, and the sandbox departments.
    Up {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not start the sandbox departmental systems and demo traffic.
        #[arg(long)]
        no_sandbox: bool,
        /// Seconds between demo referrals (0: none).
        #[arg(long, default_value_t = 5)]
        demo_every: u64,
    },
    /// One service as its own process, against an existing NATS.
    Run {
        service: Service,
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and rule files; every problem with file and line.
    Check {
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
    },
    /// Print where a message would go and which rule decided, without sending it.
    Route {
        /// Print every rule consulted, the winning rule and the version.
        #[arg(long)]
        explain: bool,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
        /// Ask a running hub's NATS for what it knows (penalty history, case
        /// holders); without it the message is judged on its own.
        #[arg(long)]
        nats: Option<String>,
        #[arg(long, default_value = "xianjie.toml")]
        config: PathBuf,
        message: PathBuf,
    },
    /// Try a native format's mapping offline: native → canonical (checked
    /// against the schemas) or canonical → native.
    Translate {
        /// The format's name, e.g. samr-json-v1.
        #[arg(long)]
        format: String,
        #[arg(long, value_enum, default_value = "canonical")]
        to: translate::Direction,
        /// Use the formats of this configuration (built-in plus `[formats] dir`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A folder of <name>/mapping.toml files besides the built-in ones.
        #[arg(long)]
        formats_dir: Option<PathBuf>,
        /// The submitting organisation (the canonical `sender`).
        #[arg(long, default_value = "native-sender")]
        org: String,
        file: PathBuf,
    },
}

fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
    match path {
        Some(p) => Ok(xj_config::load_file(p)?),
        None if Path::new("xianjie.toml").exists() => Ok(xj_config::load_file(Path::new("xianjie.toml"))?),
        None => Ok(xj_config::load_str(SANDBOX, "deploy/sandbox.toml (built in)")?),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xj: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(cli.cmd));
    // Spans still buffered leave before the process does.
    xj_bus::otel::shutdown();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xj: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Cmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        Cmd::Up { config, no_sandbox, demo_every } => up(config, no_sandbox, demo_every).await,
        Cmd::Run { service, config } => run_one(service, &config).await,
        Cmd::Check { config } => Ok(check(&config)),
        Cmd::Stats { config, month, csv } => stats::stats(&config, month, csv).await,
        Cmd::Audit { cmd } => audit::audit(cmd).await,
        Cmd::NatsConfig { config, cost } => audit::nats_config(&config, cost),
        Cmd::Keys { cmd } => audit::keys(cmd),
        Cmd::WebhookSecret { config, org } => audit::webhook_secret(&config, &org),
        Cmd::Conformance { config, org, url, json } => {
            xj::conformance::conformance(&config, &org, url.as_deref(), json).await
        }
        Cmd::Translate { format, to, config, formats_dir, org, file } => {
            translate::run(translate::Args { format, to, config, formats_dir, org, file })
        }
        Cmd::Route { explain, json, nats, config, message } => route(explain, json, nats, &config, &message).await,
    }
}

fn check(config: &Path) -> std::process::ExitCode {
    match xj_config::load_file(config) {
        Ok(s) => {
            println!(
                "{}: ok — {} organisations, {} matters, rule set {}",
                config.display(),
                s.org.len(),
                s.matter.len(),
                s.ruleset_version()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            for p in e.problems() {
                println!("{p}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn route(
    explain: bool,
    json: bool,
    nats: Option<String>,
    config: &Path,
    message: &Path,
) -> anyhow::Result<std::process::ExitCode> {
    let settings = Arc::new(xj_config::load_file(config)?);
    let text = std::fs::read_to_string(message).with_context(|| format!("cannot read {}", message.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", message.display()))?;
    let schemas = xj_model::Schemas::load()?;
    let env = match schemas.validate(&doc) {
        Ok(v) => v.envelope,
        Err(problems) => {
            for p in problems {
                println!("{}: {p}", message.display());
            }
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    let rules = xj_rules::RuleSet::compile(settings.clone())?;
    let knowledge = match nats {
        Some(url) => {
            let bus = xj_bus::Bus::connect(&settings, &url).await?;
            xj_rules::knowledge::gather(&rules, &bus, &env, None).await?
        }
        None => xj_rules::Knowledge::default(),
    };
    let d = xj_rules::decide(&rules, &env, &knowledge);
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else if explain {
        println!("message   {} ({}) from {}", env.id, env.kind, env.sender);
        println!("rule set  {}", d.version);
        println!("consulted");
        for c in &d.consulted {
            println!("  {:<40} {}", c.rule, c.outcome);
        }
        println!("decided   {}", d.rule);
        for t in &d.targets {
            println!("  {} {}", if t.role == "to" { "to  " } else { "copy" }, t.org);
        }
        for r in &d.reasons {
            println!("because   {r}");
        }
        if d.question {
            println!("=> jurisdiction question for the coordination office");
        }
        if let Some(r) = &d.reroute {
            println!(
                "reroute   {} by {}: the case's {} goes on to {}",
                r.why,
                env.sender,
                r.original.join(" or "),
                r.to
            );
        }
        if let Some(dispute) = &d.dispute {
            println!("dispute   between {} and {}: {}", dispute.between[0], dispute.between[1], dispute.describe());
        }
        if let Some(c) = &d.crime {
            println!(
                "crime     {} — {} ({}, {})",
                c.rule,
                c.offence,
                c.source.as_deref().unwrap_or("-"),
                c.effective.as_deref().unwrap_or("-")
            );
            println!("          condition: {}", c.condition);
            println!("          facts: {:?}; prior penalties: {}", c.facts, c.prior_penalties);
        }
        for e in &d.rule_errors {
            println!("error     {e}");
        }
    } else {
        println!("{}", d.recipients().join(" "));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run_one(service: Service, config: &Path) -> anyhow::Result<std::process::ExitCode> {
    let settings = Arc::new(xj_config::load_file(config)?);
    init_telemetry(&settings);
    let Some(url) = settings.nats.url.clone() else {
        bail!("`xj run` needs [nats] url (use `xj up` for the embedded server)");
    };
    let shutdown = Shutdown::new();
    let mut hub = hub::start(settings, &url, &[service], None, shutdown.clone()).await?;
    // SIGTERM drains: no new work is taken, work in flight finishes and is
    // acknowledged, then the process exits. A service that ends by itself
    // has failed; the process exits non-zero so a supervisor restarts it.
    tokio::select! {
        _ = wait_for_signal(&shutdown) => {}
        ended = hub.any_ended() => {
            if let Some((svc, res)) = ended {
                shutdown.cancel();
                let e = res.err().unwrap_or_else(|| anyhow::anyhow!("ended unexpectedly"));
                hub.join().await.ok();
                return Err(e.context(format!("{svc:?}")));
            }
        }
    }
    shutdown.cancel();
    hub.join().await?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn up(config: Option<PathBuf>, no_sandbox: bool, demo_every: u64) -> anyhow::Result<std::process::ExitCode> {
    let mut settings = Arc::new(load(config.as_deref())?);
    init_telemetry(&settings);
    let mut embedded = None;
    let url = match settings.nats.url.clone() {
        Some(u) => u,
        None => {
            // The embedded server enforces the generated authorization: the
            // services' own user, one user per NATS-native organisation.
            let secured = xj::nats_auth::with_service_credentials(&settings)?;
            let authorization = xj::nats_auth::authorization(&secured, 10)?;
            settings = Arc::new(secured);
            let store = settings.data.dir.join("nats");
            let adopted =
                xj_bus::embedded::adopt_global_account(&store, xj::nats_auth::HUB_ACCOUNT).with_context(|| {
                    format!(
                        "cannot move the hub's streams in {} into the account {}",
                        store.display(),
                        xj::nats_auth::HUB_ACCOUNT
                    )
                })?;
            if adopted {
                println!("xianjie: the hub's streams moved into the account {}", xj::nats_auth::HUB_ACCOUNT);
            }
            let port = if std::net::TcpListener::bind("127.0.0.1:4222").is_ok() { 4222 } else { 0 };
            let server = tokio::task::spawn_blocking(move || {
                let opts =
                    ServerOptions { store_dir: store, port, extra_config: Some(authorization), ..Default::default() };
                NatsServer::start(opts)
            })
            .await??;
            let url = server.url();
            embedded = Some(server);
            url
        }
    };
    let shutdown = Shutdown::new();
    let mut hub = hub::start(settings.clone(), &url, &Service::UP, None, shutdown.clone()).await?;
    let http = hub.http_addr.context("gateway did not start")?;
    let base = format!("http://{http}");
    println!("xianjie hub is up");
    println!("  console    {base}/   (sign in with the operator token)");
    println!("  API        {base}/v1   (health: {base}/healthz, metrics: {base}/metrics)");
    println!("  NATS       {url}{}", if embedded.is_some() { " (embedded)" } else { "" });
    println!("  config     {}", settings.source);
    println!("  rule set   {}", settings.ruleset_version());
    let sandbox = if no_sandbox {
        None
    } else {
        let opts = xj_sandbox::SandboxOptions {
            gateway: base.clone(),
            demo_every: Duration::from_secs(demo_every),
            reply_after: Duration::from_secs(2),
        };
        println!("  sandbox    departments on their webhook ports; demo referral every {demo_every}s");
        let (s, sd) = (settings.clone(), shutdown.clone());
        Some(tokio::spawn(async move { xj_sandbox::run(s, opts, sd).await }))
    };
    println!("Ctrl-C stops the hub; accepted messages stay in {}.", settings.data.dir.display());
    // Services end only when told to: one that ends before a signal has
    // failed (an error or a panic), and `xj up` says so with its exit status.
    let mut early: Option<anyhow::Error> = None;
    tokio::select! {
        _ = wait_for_signal(&shutdown) => {}
        ended = hub.any_ended() => {
            if let Some((svc, res)) = ended {
                let e = res.err().unwrap_or_else(|| anyhow::anyhow!("ended unexpectedly"));
                eprintln!("xj: {svc:?} failed: {e:#}");
                early = Some(e.context(format!("{svc:?}")));
            }
        }
    }
    shutdown.cancel();
    let result = hub.join().await.and(early.map_or(Ok(()), Err));
    if let Some(s) = sandbox
        && let Ok(Err(e)) = s.await
    {
        eprintln!("xj: sandbox: {e:#}");
    }
    if let Some(mut server) = embedded {
        tokio::task::spawn_blocking(move || server.stop()).await?;
    }
    result?;
    println!("xianjie hub stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

fn init_telemetry(settings: &Settings) {
    let t = &settings.telemetry;
    xj_bus::telemetry::init(t.log.as_deref(), t.log_format.as_deref() == Some("json"));
}

/// Ctrl-C or SIGTERM (or an internal cancel).
async fn wait_for_signal(shutdown: &Shutdown) {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = shutdown.cancelled() => {}
    }
    tracing::info!("shutting down: finishing work in flight");
}
