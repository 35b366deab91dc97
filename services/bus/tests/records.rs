//! The hub's one compare-and-set loop for JSON records, on a real
//! nats-server: instances writing the same key at once lose none of each
//! other's changes, whether the key starts missing or present, and a change
//! that changes nothing writes nothing.

use async_nats::jetstream::{self, kv};
use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_bus::records::{Likely, update_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        NatsServer::start(ServerOptions { store_dir: dir.path().join("js"), ..Default::default() }).expect("start");
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connect"));
    let store =
        js.create_key_value(kv::Config { bucket: "T".into(), history: 1, ..Default::default() }).await.expect("kv");
    for likely in [Likely::New, Likely::Existing] {
        let key = format!("k-{likely:?}");
        let writers = (0..24).map(|i| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                update_json(&store, &key, likely, |list: &mut Vec<u32>| {
                    list.push(i);
                    true
                })
                .await
            })
        });
        for w in futures::future::join_all(writers).await {
            w.expect("task").expect("written");
        }
        let mut list: Vec<u32> =
            serde_json::from_slice(&store.get(&key).await.expect("get").expect("value")).expect("json");
        list.sort();
        assert_eq!(list, (0..24).collect::<Vec<_>>(), "every writer's change is kept ({likely:?})");
        let revision = store.entry(&key).await.expect("entry").expect("entry").revision;
        update_json(&store, &key, likely, |_: &mut Vec<u32>| false).await.expect("no change");
        assert_eq!(store.entry(&key).await.expect("entry").expect("entry").revision, revision, "nothing written");
    }
}
