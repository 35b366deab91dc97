//! One telemetry set-up for every service: `tracing` to stderr, filtered by
//! `[telemetry] log` or `RUST_LOG`; quiet unless asked in tests.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber once; later calls are no-ops.
pub fn init(filter: Option<&str>, json: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| filter.map(str::to_owned))
        .unwrap_or_else(|| "info,async_nats=warn".into());
    let builder = fmt().with_env_filter(EnvFilter::new(filter)).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
