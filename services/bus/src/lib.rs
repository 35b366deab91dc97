//! What every service shares to meet on the bus: subject and stream names,
//! the NATS connection and stream set-up, W3C trace context in headers, the
//! hub's signing key, telemetry, metrics, and the embedded nats-server.
//!
//! Services never call each other; they publish and consume the subjects
//! defined in [`subjects`] (drawn in docs/architecture.md).

pub mod alerts;
pub mod clock;
pub mod consume;
pub mod dead;
pub mod embedded;
pub mod events;
pub mod headers;
pub mod metrics;
pub mod otel;
pub mod parties;
pub mod records;
pub mod signing;
pub mod stats;
pub mod streams;
pub mod subjects;
pub mod telemetry;
pub mod trace;
pub mod webhooks;

pub use streams::Bus;
pub use tokio_util::sync::CancellationToken as Shutdown;
pub use trace::TraceParent;
