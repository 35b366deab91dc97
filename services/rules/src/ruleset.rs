//! A rule set: one version of the catalogue and org directory, compiled once.

use std::collections::HashMap;
use std::sync::Arc;

use xj_config::condition::{Condition, compile};
use xj_config::{Crime, Settings};

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("matter {matter}: condition does not compile: {message}")]
    Compile { matter: String, message: String },
    #[error("matter {matter}: condition failed: {message}")]
    Eval { matter: String, message: String },
}

pub struct CompiledCrime {
    pub crime: Crime,
    pub condition: Condition,
}

pub struct RuleSet {
    pub settings: Arc<Settings>,
    pub version: String,
    pub(crate) crimes: HashMap<String, CompiledCrime>,
    /// Matter code → index in `settings.matter`: a catalogue has hundreds.
    matters: HashMap<String, usize>,
}

impl RuleSet {
    pub fn matter(&self, code: &str) -> Option<&xj_config::Matter> {
        self.matters.get(code).map(|&i| &self.settings.matter[i])
    }

    /// Compiles every condition. The version is a digest of everything that
    /// decides routing: the catalogue and the organisation directory.
    pub fn compile(settings: Arc<Settings>) -> Result<Self, RuleError> {
        let mut crimes = HashMap::new();
        for m in &settings.matter {
            if let Some(c) = &m.crime {
                let condition =
                    compile(&c.when).map_err(|message| RuleError::Compile { matter: m.code.clone(), message })?;
                crimes.insert(m.code.clone(), CompiledCrime { crime: c.clone(), condition });
            }
        }
        let version = settings.ruleset_version();
        let matters = settings.matter.iter().enumerate().map(|(i, m)| (m.code.clone(), i)).collect();
        Ok(Self { settings, version, crimes, matters })
    }
}
