# Recipes for everyday work. Everything here is plain cargo underneath, so
# `just` is a convenience, not a requirement.

# Run the hub with the sandbox county (embedded nats-server).
up:
    cargo run --release --bin xj -- up

# All tests (what CI runs).
test:
    cargo test --workspace

# The end-to-end suites with a hub that signs with SM2 and chains its
# ledger with SM3 (国密, docs/security.md "Algorithms"): the same tests.
test-sm2:
    XJ_HUB__SIGNATURE=sm2 XJ_LEDGER__HASH=sm3 cargo test -p xj-e2e

# Formatting and lints: the project keeps both clean (CI runs only the tests,
# the README's command; run this before committing).
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The crates' API docs, refusing any rustdoc warning (a broken link, a link
# to a private item). Each crate's top-level doc says what it is for.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

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
# XJ_LOAD_MAX_N, XJ_LOAD_INFLIGHT, XJ_LOAD_RAW_N, XJ_LOAD_BATCH (the batched
# edges phase: batch size, default 100, 0 skips it), XJ_LOAD_ONLY=raw|hub|batch|soak.
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

# Fuzz what the hub reads from outside (native XML, CSV and JSON, the
# canonical envelope) with cargo-fuzz and libFuzzer. cargo-fuzz needs nightly
# features; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain. The
# examples under schemas/ seed each corpus; a crash or an input slower than
# 10 s is kept in fuzz/artifacts/<target>/ (replay: `cargo fuzz run <target>
# <file>`). `secs` seconds per target: `just fuzz 600 xml_inbound`.
fuzz secs="60" targets="xml_inbound csv_inbound json_inbound envelope":
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    export RUSTC_BOOTSTRAP=1
    for t in {{targets}}; do
        case "$t" in
            xml_inbound) seeds="schemas/formats/eco-xml-v1/examples schemas/formats/police-xml-v1/examples" ;;
            csv_inbound) seeds="schemas/formats/town-csv-v1/examples" ;;
            json_inbound) seeds="schemas/formats/samr-json-v1/examples schemas/formats/court-json-v1/examples schemas/examples" ;;
            *) seeds="schemas/examples" ;;
        esac
        mkdir -p "fuzz/corpus/$t"
        # The first folder gathers what the run finds; the others only seed it.
        cargo fuzz run "$t" "fuzz/corpus/$t" $seeds -- -max_total_time={{secs}} -timeout=10 -rss_limit_mb=4096
    done
