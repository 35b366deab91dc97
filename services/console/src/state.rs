//! What every console handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xj_bus::clock::HubClock;
use xj_bus::{Bus, Shutdown};
use xj_config::Settings;

use crate::feed::Feed;
use crate::index::PartyIndex;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    pub name: String,
    pub expires: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
pub struct ConsoleState {
    pub settings: Arc<Settings>,
    pub bus: Bus,
    /// The hub's time (manual in drills): lateness is measured on it.
    pub clock: HubClock,
    pub feed: Arc<Feed>,
    pub index: Arc<PartyIndex>,
    /// Session id (the cookie) → operator.
    pub sessions: Arc<Mutex<HashMap<String, Session>>>,
    /// Live streams end when the process stops.
    pub shutdown: Shutdown,
    /// Failed sign-ins per client address.
    pub sign_ins: Arc<crate::guard::SignInLimiter>,
}

impl ConsoleState {
    pub fn new(settings: Arc<Settings>, bus: Bus, clock: HubClock, shutdown: Shutdown) -> Self {
        Self {
            settings,
            bus,
            clock,
            feed: Arc::new(Feed::default()),
            index: Arc::new(PartyIndex::default()),
            sessions: Arc::default(),
            shutdown,
            sign_ins: Arc::default(),
        }
    }

    /// An organisation's display name.
    pub fn org_name(&self, id: &str) -> String {
        match id {
            "hub" => "衔接平台".into(),
            _ => self.settings.org(id).map(|o| o.name.clone()).unwrap_or_else(|| id.to_string()),
        }
    }
}
