//! The embedded nats-server's ports: a test run starts hundreds of servers
//! and HTTP listeners while other tests open connections, so a port must
//! not be handed to anything else between being picked and being bound.

use std::collections::HashSet;
use std::net::TcpListener;

use xj_bus::embedded::{EmbeddedError, NatsServer, ServerOptions, free_port};

#[test]
fn picked_ports_are_below_the_ephemeral_range_and_never_repeat() {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let mut seen = HashSet::new();
    for _ in 0..500 {
        let p = free_port();
        assert!(p != 0 && p < low, "port {p} is in the ephemeral range from {low}");
        assert!(seen.insert(p), "port {p} handed out twice");
    }
}

#[test]
fn a_taken_port_is_named_as_such() {
    // Held from the start (picking a free port and binding it after would
    // leave a moment in which another process could take it).
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = holder.local_addr().expect("its address").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let err = NatsServer::start(ServerOptions { store_dir: dir.path().to_path_buf(), port, ..Default::default() })
        .err()
        .expect("a server on a taken port must not start");
    assert!(matches!(err, EmbeddedError::PortTaken(_)), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[test]
fn a_server_on_picked_ports_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        NatsServer::start(ServerOptions { store_dir: dir.path().to_path_buf(), ..Default::default() }).expect("start");
    assert!(TcpListener::bind(("127.0.0.1", server.port)).is_err(), "the server holds its client port");
    assert!(TcpListener::bind(("127.0.0.1", server.monitor_port)).is_err(), "and its monitoring port");
}

/// A hub upgraded in place: its streams were stored in the server's global
/// account; once the server runs with accounts they are the hub account's,
/// with every message, and nothing is left behind in the old place.
#[tokio::test]
async fn streams_of_the_global_account_move_into_the_hub_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("js");
    let mut before =
        NatsServer::start(ServerOptions { store_dir: store.clone(), ..Default::default() }).expect("start");
    let js = async_nats::jetstream::new(async_nats::connect(before.url()).await.expect("connect"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "XJ_ACCEPTED".into(),
        subjects: vec!["xj.accepted.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    for i in 0..3 {
        js.publish("xj.accepted.qh-market", format!("m{i}").into()).await.expect("publish").await.expect("stored");
    }
    before.stop();
    assert!(xj_bus::embedded::adopt_global_account(&store, "XJ_HUB").expect("move"));
    assert!(!xj_bus::embedded::adopt_global_account(&store, "XJ_HUB").expect("idempotent"), "moved once only");
    let accounts =
        "accounts {\n  XJ_HUB: { jetstream: enabled, users: [ { user: \"svc\", password: \"pw-0123456789\" } ] }\n}\n";
    let after = NatsServer::start(ServerOptions {
        store_dir: store,
        extra_config: Some(accounts.into()),
        ..Default::default()
    })
    .expect("restart with accounts");
    let client = async_nats::ConnectOptions::with_user_and_password("svc".into(), "pw-0123456789".into())
        .connect(after.url())
        .await
        .expect("connect as the hub");
    let mut s = async_nats::jetstream::new(client).get_stream("XJ_ACCEPTED").await.expect("the stream is the hub's");
    assert_eq!(s.info().await.expect("info").state.messages, 3);
}
