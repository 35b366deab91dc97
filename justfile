# Recipes for everyday work. Everything here is plain cargo underneath, so
# `just` is a convenience, not a requirement.

# Run the hub with the sandbox county (embedded nats-server).
up:
    cargo run --release --bin xj -- up

# All tests (what CI runs).
test:
    cargo test --workspace

# Formatting and lints as CI expects them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Validate a configuration file.
check config="deploy/sandbox.toml":
    cargo run --bin xj -- check --config {{config}}
