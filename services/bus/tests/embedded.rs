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
