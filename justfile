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

# Pipeline benchmark (release build): the raw JetStream two-hop baseline,
# the hub's skeleton (its JetStream traffic without its work, as it is and
# redesigned lean) and the hub end to end (HTTP in -> webhook out) in one
# run; rates, ratios, latencies and where the time goes. Tune with
# XJ_BENCH_N, XJ_BENCH_RAW_N, XJ_BENCH_SKELETON_N, XJ_BENCH_HUB_N,
# XJ_BENCH_INFLIGHT, XJ_BENCH_COURIER, XJ_BENCH_ONLY=raw|skeleton|hub,
# XJ_BENCH_SERVICES=gateway,router,courier. See docs/performance.md.
bench:
    cargo bench -p xj-e2e --bench pipeline

# Load benchmark (release build): every service its own process, open-loop
# load at fixed rates (1,000/s, 2,000/s, 5,000/s) and the maximum through
# HTTP in -> route -> webhook out with the tracker and ledger running;
# throughput, p50/p99/p99.9 latency, peak memory per service, beside raw
# JetStream in the same run. Tune with XJ_LOAD_RATES, XJ_LOAD_SECS,
# XJ_LOAD_MAX_N, XJ_LOAD_INFLIGHT, XJ_LOAD_RAW_N, XJ_LOAD_ONLY=raw|hub|soak.
# See docs/performance.md.
bench-load:
    cargo bench -p xj --bench load

# The soak: n referrals (default 1,000,000) at a fixed rate, resident memory
# of each service sampled as it runs.
soak n="1000000" rate="2000":
    XJ_LOAD_ONLY=soak XJ_LOAD_SOAK_N={{n}} XJ_LOAD_SOAK_RATE={{rate}} cargo bench -p xj --bench load

# The fault tests alone (every service its own process; kills, a cluster
# node lost, a receiver down, a full store, backup and restore).
faults:
    cargo test -p xj --test faults -- --nocapture

# Check deploy/ without Docker or Kubernetes: Kubernetes manifests against
# the API schemas, the NATS chart values, compose references, systemd units
# (systemd-analyze), nats-server -t on the cluster nodes, xj check. The
# cluster configuration itself runs in `cargo test -p xj --test deploy`.
validate-deploy:
    cargo build --bin xj
    python3 deploy/validate.py --xj target/debug/xj

# RustSec advisories against Cargo.lock. The advisory database is a Git
# repository on GitHub: this needs a machine that reaches github.com (the
# project's CI machines do not; see docs/security.md).
audit:
    cargo install cargo-audit --locked --quiet
    cargo audit --deny warnings
