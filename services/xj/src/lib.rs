//! The `xj` binary's library: starting the hub's services in one process
//! (`xj up`) or one at a time (`xj run <service>`). Tests start the hub
//! through [`hub::start`] exactly as `xj up` does.

pub mod conformance;
pub mod hub;
pub mod nats_auth;
