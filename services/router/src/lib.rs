//! The router: reads accepted messages from `xj.accepted.>`, decides who
//! receives each one (explicit recipient, the thread of a reply, or the
//! matter catalogue), remembers the route for replies, and publishes one copy
//! per recipient on `xj.routed.<recipient>`. Every decision names its rule
//! and the rule-set version.

pub mod decide;
mod service;

pub use decide::{Decision, Target, decide};
pub use service::run;
