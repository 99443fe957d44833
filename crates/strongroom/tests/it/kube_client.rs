//! kube-rs as a second real client: create, list, watch.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};

use crate::server;

fn secret(name: &str, value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(BTreeMap::from([("v".to_string(), ByteString(value.as_bytes().to_vec()))])),
        ..Default::default()
    }
}

#[tokio::test]
async fn kube_rs_create_list_watch() {
    let s = server();
    let client = s.client().await;
    let api: Api<Secret> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &secret("k1", "one")).await.expect("create");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let rv = created.metadata.resource_version.clone().expect("resourceVersion");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].data.as_ref().unwrap()["v"].0, b"one");

    let mut stream = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
    api.create(&PostParams::default(), &secret("k2", "two")).await.expect("create k2");
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("an event in time");
    match event {
        Some(Ok(WatchEvent::Added(s))) => assert_eq!(s.metadata.name.as_deref(), Some("k2")),
        other => panic!("expected ADDED k2, got {other:?}"),
    }
    api.delete("k2", &Default::default()).await.expect("delete");
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("an event in time");
    match event {
        Some(Ok(WatchEvent::Deleted(s))) => assert_eq!(s.metadata.name.as_deref(), Some("k2")),
        other => panic!("expected DELETED k2, got {other:?}"),
    }
    let err = api.create(&PostParams::default(), &secret("k1", "again")).await.expect_err("duplicate");
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
            assert_eq!(s.message, "secrets \"k1\" already exists");
        }
        other => panic!("{other:?}"),
    }
}
