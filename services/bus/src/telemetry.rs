//! One telemetry set-up for every service: `tracing` to stderr, filtered by
//! `[telemetry] log` or `RUST_LOG`, installed by the `xj` binary (so tests
//! that start services in-process log nothing; the fault tests' `xj run`
//! processes do, to their stderr). Resident
//! ID numbers are masked in every line written (docs/security.md, "Personal data").

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber once; later calls are no-ops.
pub fn init(filter: Option<&str>, json: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| filter.map(str::to_owned))
        .unwrap_or_else(|| "info,async_nats=warn".into());
    // Colours only for a person at a terminal: a log file, journald or a
    // container's log collector would keep the escape codes as text.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = fmt().with_env_filter(EnvFilter::new(filter)).with_writer(Masking).with_ansi(ansi);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Writes each log line to stderr with resident ID numbers masked.
struct Masking;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Masking {
    type Writer = MaskingLine;
    fn make_writer(&'a self) -> Self::Writer {
        MaskingLine(Vec::with_capacity(256))
    }
}

/// One formatted event, masked and written when dropped.
pub struct MaskingLine(Vec<u8>);

impl std::io::Write for MaskingLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MaskingLine {
    fn drop(&mut self) {
        use std::io::Write;
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(xj_model::mask_id_numbers(&text).as_bytes());
    }
}
