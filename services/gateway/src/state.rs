use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use xj_bus::Bus;
use xj_bus::clock::HubClock;
use xj_bus::signing::HubKey;
use xj_config::Settings;
use xj_model::Schemas;
use xj_rules::RulesHandle;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Org(String),
    Operator,
}

/// What every request handler reads. One reference count to clone: axum
/// clones the state for every extractor and middleware of every request,
/// and a copy of each field's own counts was measurable under load.
#[derive(Clone)]
pub struct GatewayState(Arc<GatewayInner>);

impl std::ops::Deref for GatewayState {
    type Target = GatewayInner;
    fn deref(&self) -> &GatewayInner {
        &self.0
    }
}

pub struct GatewayInner {
    pub settings: Arc<Settings>,
    pub bus: Bus,
    pub schemas: Arc<Schemas>,
    pub key: HubKey,
    /// The rules, for edge checks and the routing preview in receipts.
    pub rules: RulesHandle,
    /// The hub's time (manual in drills).
    pub clock: HubClock,
    /// SHA-256 of each credential → caller: the lookup never compares the
    /// secret itself byte by byte.
    pub(crate) callers: HashMap<[u8; 32], Caller>,
    /// Requests per caller: HTTP and NATS submissions spend the same bucket.
    pub(crate) limiter: crate::trust::Limiter,
    /// The CJK font letters are printed with, read on the first letter
    /// asked for (`[print] font`): tens of megabytes no other request needs.
    /// Only a font that loaded is kept, so installing one needs no restart.
    pub(crate) printer: tokio::sync::OnceCell<xj_print::Printer>,
}

impl GatewayState {
    pub fn new(
        settings: Arc<Settings>,
        bus: Bus,
        schemas: Arc<Schemas>,
        key: HubKey,
        rules: RulesHandle,
        clock: HubClock,
    ) -> Self {
        let mut callers = HashMap::new();
        for org in &settings.org {
            callers.insert(digest(&org.secret), Caller::Org(org.id.clone()));
        }
        if let Some(t) = settings.operator_token() {
            callers.insert(digest(t), Caller::Operator);
        }
        Self(Arc::new(GatewayInner {
            settings,
            bus,
            schemas,
            key,
            rules,
            clock,
            callers,
            limiter: Default::default(),
            printer: Default::default(),
        }))
    }
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
