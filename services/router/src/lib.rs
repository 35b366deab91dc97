//! The router: reads accepted messages from `xj.accepted.>`, gathers what the
//! hub knows (penalty history, case holders), asks the rules (`xj-rules`) who
//! receives each one, remembers the route for replies, and publishes one copy
//! per recipient on `xj.routed.<recipient>`. It raises the hub's supervision
//! alerts for what the rules found (a criminal threshold met, a jurisdiction
//! question). Every decision names its rule and the rule-set version.

mod service;

pub use service::run;
