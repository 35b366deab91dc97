//! Environment overrides: `XJ_<SECTION>__<KEY>` sets a key; other `XJ_`
//! variables (the cache folder, the nats-server path) are not settings.
//! Its own test binary: it changes the process environment.

const MINIMAL: &str = r#"
[operator]
token = "operator-token-0123456789"

[[org]]
id = "qh-coord"
name = "协调"
kind = "coordination_office"
region = "990101"
token = "token-qh-coord-0123456789"
deliver = { nats = true }
"#;

#[test]
fn section_overrides_apply_and_other_xj_variables_are_ignored() {
    // SAFETY: this test binary has one test; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("XJ_CACHE_DIR", "/tmp/somewhere");
        std::env::set_var("XJ_NATS_SERVER", "/usr/bin/nats-server");
        std::env::set_var("XJ_HTTP__LISTEN", "127.0.0.1:18080");
        std::env::set_var("XJ_NATS__URL", "nats://127.0.0.1:14222");
    }
    let s = xj_config::load_str(MINIMAL, "env-test.toml").expect("loads despite unrelated XJ_ variables");
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:18080");
    assert_eq!(s.nats.url.as_deref(), Some("nats://127.0.0.1:14222"));
}
