//! The deployer's configuration (docs/configuration.md): one TOML file, optional
//! included files, `XJ_` environment overrides, validated right after loading
//! so that every problem is reported at once with the file, key and line.

pub mod condition;
mod load;
mod model;
mod validate;

pub use load::{ConfigError, ConfigProblem, load_file, load_str};
pub use model::*;
