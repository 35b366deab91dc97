//! Rule sets (and the format mappings, read with the configuration) reload
//! without a restart: when a rule or mapping file changes, or on an
//! operator's request on `xj.ctl.reload`. The swap is atomic: a message is
//! decided wholly by the version it read at the start.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use xj_bus::Shutdown;
use xj_bus::subjects::CTL_RELOAD;

use crate::RuleSet;

#[derive(Clone)]
pub struct RulesHandle(Arc<RwLock<Arc<RuleSet>>>);

impl RulesHandle {
    pub fn new(rs: RuleSet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(rs))))
    }

    /// The rule set in force now; hold it for the whole decision.
    pub fn current(&self) -> Arc<RuleSet> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, rs: RuleSet) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rs);
    }

    /// Reads the files again; keeps the old version if the new one is broken.
    pub fn reload(&self) -> Result<String, String> {
        let current = self.current();
        let Some(path) = current.settings.files.first().cloned() else {
            return Err("the configuration was not read from a file".into());
        };
        let settings = xj_config::load_file(&path).map_err(|e| e.to_string())?;
        let rs = RuleSet::compile(Arc::new(settings)).map_err(|e| e.to_string())?;
        let version = rs.version.clone();
        if version != current.version {
            tracing::info!(from = %current.version, to = %version, "rule set reloaded");
        }
        self.replace(rs);
        Ok(version)
    }

    /// Watches the rule files and the control subject until `shutdown`.
    /// `service` names the answerer in replies to reload requests.
    pub fn spawn_watcher(&self, client: async_nats::Client, shutdown: Shutdown, service: &'static str) {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut sub = match client.subscribe(CTL_RELOAD).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to reload requests");
                    None
                }
            };
            let mut seen = stamps(&watched(&handle.current()));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        let now = stamps(&watched(&handle.current()));
                        if now != seen {
                            seen = now;
                            if let Err(e) = handle.reload() {
                                tracing::error!(error = %e, "rule or mapping files changed but do not load; keeping the old version");
                            }
                        }
                    }
                    Some(msg) = async { match sub.as_mut() { Some(s) => s.next().await, None => None } } => {
                        let answer = match handle.reload() {
                            Ok(v) => serde_json::json!({ "service": service, "ok": true, "version": v }),
                            Err(e) => serde_json::json!({ "service": service, "ok": false, "error": e, "version": handle.current().version }),
                        };
                        if let Some(reply) = msg.reply {
                            let _ = client.publish(reply, answer.to_string().into()).await;
                        }
                    }
                }
            }
        });
    }
}

/// The configuration files and the mapping files (with their folder).
fn watched(rs: &RuleSet) -> Vec<PathBuf> {
    rs.settings.files.iter().chain(rs.settings.mappings.sources()).cloned().collect()
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
}
