//! The courier: takes routed messages from `xj.routed.>` and delivers each to
//! its organisation: a signed webhook POST (docs/api.md, "Delivery") retried with
//! exponential backoff, or a publish on `xj.out.<org>` for NATS-native orgs.
//! After the configured attempts a delivery goes to `xj.dead.<org>` for an
//! operator to inspect and replay. At least once; receivers dedupe on
//! `Xj-Message-Id`.

/// One delivery attempt, public so `xj conformance` tries a receiver with
/// exactly what the courier sends.
pub mod deliver;
mod service;

pub use service::run;
