//! The one consumer loop every service uses, on a real nats-server: a
//! handler that panics on one message does not stop the others, the
//! message is redelivered a few times and then terminated, and readiness
//! says when a loop is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use xj_bus::Shutdown;
use xj_bus::consume::{self, Durable, POISON_AFTER, health};
use xj_bus::embedded::{NatsServer, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_ends_its_message_and_the_loop_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        NatsServer::start(ServerOptions { store_dir: dir.path().join("js"), ..Default::default() }).expect("start");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config { name: "T".into(), subjects: vec!["t.>".into()], ..Default::default() })
        .await
        .expect("stream");
    for body in ["ok-1", "poison", "ok-2"] {
        js.publish(format!("t.{body}"), body.into()).await.expect("publish").await.expect("stored");
    }
    let messages = Durable::new("T", "panics").ack_wait(Duration::from_secs(2)).messages(&js).await.expect("consumer");
    let poison_seen = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let shutdown = Shutdown::new();
    let (p, h, sd) = (poison_seen.clone(), handled.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        consume::run(messages, 4, sd, "panics-test", move |m| {
            let (p, h) = (p.clone(), h.clone());
            async move {
                if m.payload.as_ref() == b"poison" {
                    p.fetch_add(1, Ordering::SeqCst);
                    panic!("a handler met data it did not expect\r\n");
                }
                h.lock().expect("lock").push(String::from_utf8_lossy(&m.payload).into_owned());
                m.ack().await.expect("ack");
            }
        })
        .await;
    });
    // The poison is delivered POISON_AFTER times (a nak with a delay after
    // each panic), then terminated; the others are handled once each.
    let start = Instant::now();
    loop {
        let mut c = js
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>("panics", "T")
            .await
            .expect("info");
        let info = c.info().await.expect("info");
        if info.num_ack_pending == 0
            && info.num_pending == 0
            && poison_seen.load(Ordering::SeqCst) >= POISON_AFTER as usize
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the poison was never ended: {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(poison_seen.load(Ordering::SeqCst), POISON_AFTER as usize, "terminated, not redelivered again");
    let mut got = handled.lock().expect("lock").clone();
    got.sort();
    assert_eq!(got, ["ok-1", "ok-2"]);
    // A message after the poison is still handled: the loop is alive.
    js.publish("t.ok-3", "ok-3".into()).await.expect("publish").await.expect("stored");
    let start = Instant::now();
    while !handled.lock().expect("lock").iter().any(|s| s == "ok-3") {
        assert!(start.elapsed() < Duration::from_secs(20), "the loop stopped after the poison");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!health::stopped().contains(&"panics-test"), "running");
    shutdown.cancel();
    task.await.expect("the loop itself did not panic");
    assert!(health::stopped().contains(&"panics-test"), "a loop that ended counts as down");
}

#[test]
fn an_expected_loop_is_down_until_it_runs() {
    health::expect("expected-test");
    assert!(health::stopped().contains(&"expected-test"));
    let running = health::running("expected-test");
    assert!(!health::stopped().contains(&"expected-test"));
    drop(running);
    assert!(health::stopped().contains(&"expected-test"));
}
