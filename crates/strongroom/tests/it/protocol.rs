//! HTTP-level behaviour: authentication, health, limits, watch expiry, shutdown.

use std::time::Duration;

use http::Request;

use crate::server;

async fn raw(client: &kube::Client, req: Request<Vec<u8>>) -> (u16, String) {
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("send");
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn anonymous_requests_are_unauthorized_but_health_is_open() {
    let s = server();
    let anon = s.anonymous_client().await;
    let (code, body) = raw(&anon, Request::get("/api/v1/namespaces/default/secrets").body(vec![]).unwrap()).await;
    assert_eq!(code, 401);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
    );
    let (code, _) = raw(&anon, Request::get("/version").body(vec![]).unwrap()).await;
    assert_eq!(code, 401);
    for p in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = raw(&anon, Request::get(p).body(vec![]).unwrap()).await;
        assert_eq!((code, body.as_str()), (200, "ok"), "{p}");
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_while_reading() {
    let s = server();
    let body = vec![b' '; 3 * 1024 * 1024 + 1];
    let ct = [("Content-Type", "application/json")];
    // The server answers 413 as soon as it sees the length, without reading the body; a client
    // still sending may see that answer or a reset, so the server log is the witness.
    let r = s.raw("POST", "/api/v1/namespaces/default/secrets", &ct, &body, true).await;
    assert!(r.status == 413 || r.status == 0, "{r:?}");
    assert!(s.log_text().contains("code=413"), "{}", s.log_text());
    let r = s.raw("GET", "/api/v1/namespaces/default/secrets", &[], b"", true).await;
    assert_eq!(r.status, 200, "the server keeps serving");
}

#[tokio::test]
async fn duplicate_keys_and_bad_base64_are_rejected_without_echo() {
    let s = server();
    let client = s.client().await;
    let post = |body: &str| {
        Request::post("/api/v1/namespaces/default/secrets?fieldValidation=Strict")
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let (code, body) = raw(
        &client,
        post(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"d"},"data":{"a":"Yg=="},"data":{"a":"Yw=="}}"#),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("duplicate field"), "{body}");
    let (code, body) = raw(
        &client,
        post(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"data":{"a":"canary!!value"}}"#),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(!body.contains("canary"), "the error echoes the value: {body}");
    let (code, _) = raw(&client, Request::get("/api/v1/namespaces/default/secrets/b").body(vec![]).unwrap()).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_expired() {
    let s = crate::server_with(&["--watch-history", "0s"]);
    let client = s.client().await;
    // min_history keeps the last 1000 events whatever the window, so push past it.
    for i in 0..1100 {
        let body = format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"e{i}"}}}}"#);
        let req = Request::post("/api/v1/namespaces/default/secrets")
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap();
        let (code, _) = raw(&client, req).await;
        assert_eq!(code, 201);
    }
    let (code, body) = raw(
        &client,
        Request::get("/api/v1/namespaces/default/secrets?watch=true&resourceVersion=2").body(vec![]).unwrap(),
    )
    .await;
    assert_eq!(code, 410, "{body}");
    assert!(body.contains("\"reason\":\"Expired\"") && body.contains("too old resource version: 2 ("), "{body}");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", "x", "--from-literal=a=b"]).ok();
    // A long-lived watch must not keep the server from stopping.
    let mut watch = s.kubectl_cmd().args(["get", "secrets", "-w"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[tokio::test]
async fn beyond_the_watch_limit_clients_get_429_with_retry_after() {
    let s = crate::server_with(&["--max-watches", "1"]);
    let watch = |timeout: u32| format!("/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds={timeout}");
    // The first watch holds the only slot for two seconds; a second one meanwhile is refused.
    let (long, short) = (watch(2), watch(1));
    let (first, second) = tokio::join!(s.raw("GET", &long, &[], b"", true), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        s.raw("GET", &short, &[], b"", true).await
    });
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(second.status, 429, "{second:?}");
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(
        second.body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","code":429}"#
    );
    // The first watch ended at its timeout and freed its slot.
    let third = s.raw("GET", &watch(1), &[], b"", true).await;
    assert_eq!(third.status, 200, "{third:?}");
}

#[tokio::test]
async fn generate_name_yaml_bodies_deletecollection_and_include_object() {
    let s = server();
    // generateName: the server picks a unique name from the prefix.
    let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"generateName":"gen-","labels":{"batch":"x"}}}"#;
    let ct = [("Content-Type", "application/json")];
    let mut names = Vec::new();
    for _ in 0..3 {
        let r = s.raw("POST", "/api/v1/namespaces/default/secrets", &ct, body, true).await;
        assert_eq!(r.status, 201, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
        assert_eq!(v["type"], "Opaque");
        names.push(name);
    }
    names.dedup();
    assert_eq!(names.len(), 3);

    // A YAML body (application/yaml) works like JSON.
    let yaml =
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: from-yaml\n  labels:\n    batch: x\nstringData:\n  a: b\n";
    let r =
        s.raw("POST", "/api/v1/namespaces/default/secrets", &[("Content-Type", "application/yaml")], yaml, true).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.body.contains(r#""data":{"a":"Yg=="}"#) && !r.body.contains("stringData"), "{}", r.body);

    // An unknown content type is 415.
    let r = s.raw("POST", "/api/v1/namespaces/default/secrets", &[("Content-Type", "text/plain")], b"x", true).await;
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.body.contains(r#""reason":"UnsupportedMediaType""#), "{}", r.body);

    // includeObject=None: rows without objects; Object: full objects.
    let table = [("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")];
    let r = s.raw("GET", "/api/v1/namespaces/default/secrets?includeObject=None", &table, b"", true).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["kind"], "Table");
    assert_eq!(v["rows"].as_array().unwrap().len(), 4);
    assert!(v["rows"][0].get("object").is_none(), "{}", r.body);
    let r = s.raw("GET", "/api/v1/namespaces/default/secrets?includeObject=Object", &table, b"", true).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["rows"][0]["object"]["kind"], "Secret");

    // deletecollection with a label selector, dry run first.
    let path = "/api/v1/namespaces/default/secrets?labelSelector=batch%3Dx";
    let r = s.raw("DELETE", &format!("{path}&dryRun=All"), &[], b"", true).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.raw("GET", path, &[], b"", true).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 4, "dry run deleted nothing");
    let r = s.raw("DELETE", path, &[], b"", true).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["kind"], "SecretList");
    assert_eq!(v["items"].as_array().unwrap().len(), 4);
    let r = s.raw("GET", path, &[], b"", true).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0);

    // An unsupported dryRun value is a 400 naming it.
    let r = s.raw("DELETE", "/api/v1/namespaces/default/secrets/x?dryRun=Some", &[], b"", true).await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test]
async fn scope_mismatches_and_traversal_are_not_found() {
    let s = server();
    for path in [
        "/api/v1/namespaces/default/namespaces/default",
        "/api/v1/secrets/x",
        "/api/v1/namespaces/default/secrets/x/status",
        "/api/v1/namespaces/default/nosuchresource",
        "/apis/nosuch.group/v1/things",
    ] {
        let r = s.raw("GET", path, &[], b"", true).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    for path in
        ["/api/v1/namespaces/%2e%2e/secrets", "/api/v1/namespaces/a%2fb/secrets", "/api/v1/namespaces/x%00/secrets"]
    {
        let r = s.raw("GET", path, &[], b"", true).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
}

/// Regressions from review: a delete must not hand back values, metadata-only clients never get
/// values, delete preconditions hold, and server-side apply creates go through normalization.
#[tokio::test]
async fn deletes_and_metadata_views_never_carry_values() {
    let s = server();
    let ct = [("Content-Type", "application/json")];
    let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"m"},"data":{"pw":"Q0FOQVJZLTk5MjE="}}"#;
    assert_eq!(s.raw("POST", "/api/v1/namespaces/default/secrets", &ct, body, true).await.status, 201);

    // client-go's metadata client Accept headers: PartialObjectMetadata(List), no values.
    let list_accept = [(
        "Accept",
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
    )];
    let r = s.raw("GET", "/api/v1/namespaces/default/secrets", &list_accept, b"", true).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["kind"], "PartialObjectMetadataList");
    assert_eq!(v["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(v["items"][0]["metadata"]["name"], "m");
    assert!(!r.body.contains("Q0FOQVJZLTk5MjE="), "{}", r.body);
    let one = [("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")];
    let r = s.raw("GET", "/api/v1/namespaces/default/secrets/m", &one, b"", true).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with(r#"{"kind":"PartialObjectMetadata""#) && !r.body.contains("Q0FOQVJZ"), "{}", r.body);

    // A stale resourceVersion precondition on delete is a conflict, and nothing is deleted.
    let opts = br#"{"preconditions":{"resourceVersion":"1"}}"#;
    let r = s.raw("DELETE", "/api/v1/namespaces/default/secrets/m", &ct, opts, true).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(s.raw("GET", "/api/v1/namespaces/default/secrets/m", &[], b"", true).await.status, 200);

    // Dry-run and real deletes answer a Status, never the values.
    for path in ["/api/v1/namespaces/default/secrets/m?dryRun=All", "/api/v1/namespaces/default/secrets/m"] {
        let r = s.raw("DELETE", path, &[], b"", true).await;
        assert_eq!(r.status, 200, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((v["kind"].as_str(), v["status"].as_str()), (Some("Status"), Some("Success")), "{}", r.body);
        assert_eq!(v["details"]["name"], "m");
        assert!(!r.body.contains("Q0FOQVJZ"), "{}", r.body);
    }

    // Server-side apply of a missing Secret folds stringData and validates like any create.
    let apply = [("Content-Type", "application/apply-patch+yaml")];
    let manifest = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ssa"},"stringData":{"pw":"x"}}"#;
    let r = s.raw("PATCH", "/api/v1/namespaces/default/secrets/ssa?fieldManager=t", &apply, manifest, true).await;
    assert_eq!(r.status, 201, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["data"]["pw"], "eA==", "{}", r.body);
    assert_eq!(v["type"], "Opaque");
    assert!(v.get("stringData").is_none(), "{}", r.body);
    let bad = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ssa-bad"},"stringData":{"bad/key":"x"}}"#;
    let r = s.raw("PATCH", "/api/v1/namespaces/default/secrets/ssa-bad?fieldManager=t", &apply, bad, true).await;
    assert_eq!(r.status, 422, "{r:?}");
}

/// An update that makes an object leave a watch's selector is DELETED carrying the previous
/// state at the update's resourceVersion (kube-apiserver's cacher); entering it is ADDED.
#[tokio::test]
async fn selector_transitions_are_added_and_deleted_with_the_previous_state() {
    let s = server();
    let ct = [("Content-Type", "application/json")];
    let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t","labels":{"k":"v"}}}"#;
    let created = s.raw("POST", "/api/v1/namespaces/default/secrets", &ct, body, true).await;
    let rv: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    let rv = rv["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let watch = format!(
        "/api/v1/namespaces/default/secrets?watch=true&labelSelector=k%3Dv&resourceVersion={rv}&timeoutSeconds=2"
    );
    let merge = [("Content-Type", "application/merge-patch+json")];
    let (events, ()) = tokio::join!(s.raw("GET", &watch, &[], b"", true), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let leave = br#"{"metadata":{"labels":{"k":"w"}}}"#;
        assert_eq!(s.raw("PATCH", "/api/v1/namespaces/default/secrets/t", &merge, leave, true).await.status, 200);
        let back = br#"{"metadata":{"labels":{"k":"v"}}}"#;
        assert_eq!(s.raw("PATCH", "/api/v1/namespaces/default/secrets/t", &merge, back, true).await.status, 200);
    });
    let events: Vec<serde_json::Value> = events.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["type"], "DELETED");
    assert_eq!(events[0]["object"]["metadata"]["labels"]["k"], "v", "DELETED carries the previous state");
    let left_at: u64 = events[0]["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(left_at > rv.parse::<u64>().unwrap(), "at the update's resourceVersion");
    assert_eq!(events[1]["type"], "ADDED");
    assert_eq!(events[1]["object"]["metadata"]["labels"]["k"], "v");
}
