//! Nothing acknowledged is lost: kill -9 under concurrent writes, then restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_concurrent_writes_loses_no_acknowledged_write() {
    let mut s = server();
    let client = s.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..16 {
        let api: Api<Secret> = Api::namespaced(client.clone(), "default");
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{w}-{i}");
                let sec = Secret {
                    metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
                    data: Some(BTreeMap::from([("v".to_string(), ByteString(name.clone().into_bytes()))])),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &sec).await {
                    Ok(_) => acked.push(name),
                    // The server died mid-request: the outcome is unknown, which is allowed.
                    Err(_) => break,
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer task"));
    }
    assert!(acked.len() > 50, "too few writes before the kill to mean anything: {}", acked.len());
    s.restart();
    let api: Api<Secret> = Api::namespaced(s.client().await, "default");
    let list = api.list(&Default::default()).await.expect("list after restart");
    let present: std::collections::HashSet<String> =
        list.items.iter().filter_map(|s| s.metadata.name.clone()).collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost after kill -9, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Values survived intact too.
    for sec in &list.items {
        let name = sec.metadata.name.clone().unwrap();
        assert_eq!(sec.data.as_ref().unwrap()["v"].0, name.as_bytes());
    }
}
