//! Fail closed on bad bytes at rest (reliability items 56 and 57, promise X6): a record that
//! cannot be decrypted or decoded is reported as a corrupt object (500 InternalError naming it),
//! never served as empty data, as ciphertext or as another object's value; the other objects keep
//! working; and nothing the server does afterwards overwrites or silently drops it.
//!
//! The store is edited with the server stopped, through the embedded backend's own API
//! (`raw_objects`, `corrupt_for_test`), as Kubernetes' `bitflip_transformation_test.go` edits etcd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Request;
use strongroom_storage::backend::{KeyValue, ObjectKey};
use strongroom_storage::embedded::{EmbeddedBackend, EmbeddedConfig};
use strongroom_testkit::{Server, eventually};

use crate::server;

/// Where the binary keeps its store (`store_path` in crates/strongroom/src/main.rs).
fn store_dir(s: &Server) -> PathBuf {
    s.data_dir().join("store")
}

/// Opens the stopped server's store, runs `f` on it and closes it again, waiting until the
/// store's lock is free so the server can open it next.
fn with_store<T>(s: &Server, f: impl FnOnce(&EmbeddedBackend) -> T) -> T {
    let dir = store_dir(s);
    let backend = EmbeddedBackend::open(EmbeddedConfig::new(&dir))
        .unwrap_or_else(|e| panic!("cannot open the store {} (is the server stopped?): {e}", dir.display()));
    let out = f(&backend);
    drop(backend);
    wait_unlocked(&dir);
    out
}

/// The embedded store holds an flock on `lock` while open, released when its last thread ends.
fn wait_unlocked(dir: &Path) {
    let lock = dir.join("lock");
    if !lock.exists() {
        return;
    }
    eventually("the store's lock to be released after closing it", Duration::from_secs(10), || {
        let status = Command::new("flock")
            .arg("--nonblock")
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock(1) is installed (Debian: util-linux)");
        status.success().then_some(())
    });
}

fn secret_key(name: &str) -> ObjectKey {
    ObjectKey::namespaced("secrets", "default", name).unwrap()
}

fn raw_record(b: &EmbeddedBackend, key: &ObjectKey) -> KeyValue {
    let all = b.raw_objects().expect("raw objects");
    all.into_iter().find(|kv| kv.key == *key).unwrap_or_else(|| panic!("no record at {key} in the store"))
}

/// The message the server gives for an object it cannot decrypt or decode.
/// A server whose secret `name` (holding `value`) has one bit flipped on disk, restarted.
fn server_with_corrupt_secret(name: &str, value: &str) -> Server {
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", name, &format!("--from-literal=v={value}")]).ok();
    s.terminate();
    with_store(&s, |b| {
        let key = secret_key(name);
        let mut stored = raw_record(b, &key).value;
        *stored.last_mut().expect("a non-empty record") ^= 0x80;
        b.corrupt_for_test(&key, &stored).expect("corrupt the record");
    });
    s.restart();
    s
}

fn corrupt_message(name: &str) -> String {
    format!("the object stored at /registry/secrets/default/{name} is corrupt: it cannot be decrypted or decoded")
}

/// What kubectl prints for that error.
fn corrupt_stderr(name: &str) -> String {
    format!("Error from server (InternalError): {}\n", corrupt_message(name))
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

async fn raw(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    accept: &str,
    body: &str,
) -> (u16, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let resp = client.send(req.map(kube::client::Body::from)).await.unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// Asserts the raw answer for a corrupt object: a 500 Status naming it, and nothing of any
/// value — no ciphertext, no data, no other object's value.
#[track_caller]
fn assert_corrupt_answer(what: &str, (code, body): &(u16, String), name: &str, values: &[&str]) {
    assert_eq!(*code, 500, "{what}: expected 500 for a corrupt object, got {code}: {body}");
    let status: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: the answer is not JSON ({e}): {body}"));
    assert_eq!(status["kind"], "Status", "{what}: {body}");
    assert_eq!(status["reason"], "InternalError", "{what}: {body}");
    assert_eq!(status["code"], 500, "{what}: {body}");
    assert_eq!(status["message"], corrupt_message(name), "{what}: {body}");
    for bad in ["k8s:enc:", "\"data\"", "\"items\""] {
        assert!(!body.contains(bad), "{what}: the error carries {bad:?}: {body}");
    }
    for v in values {
        assert!(!body.contains(v) && !body.contains(&b64(v)), "{what}: the error carries a value: {body}");
    }
}

/// One flipped bit (the last byte of the AES-GCM tag) in one record.
#[test]
fn a_corrupt_record_is_a_500_for_that_object_only_and_is_never_overwritten() {
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", "victim", "--from-literal=v=victim-value-4417"]).ok();
    s.kubectl(&["create", "secret", "generic", "bystander", "--from-literal=v=bystander-value-9021"]).ok();
    s.terminate();
    let corrupted = with_store(&s, |b| {
        let key = secret_key("victim");
        let mut value = raw_record(b, &key).value;
        *value.last_mut().expect("a non-empty record") ^= 0x01;
        b.corrupt_for_test(&key, &value).expect("corrupt the record");
        value
    });
    s.restart();

    // kubectl: the exact error, for the table and the JSON paths alike.
    s.kubectl(&["get", "secret", "victim"]).stderr_is(&corrupt_stderr("victim"));
    s.kubectl(&["get", "secret", "victim", "-o", "yaml"]).stderr_is(&corrupt_stderr("victim"));
    s.kubectl(&["get", "secret", "victim", "-o", "jsonpath={.data.v}"]).stderr_is(&corrupt_stderr("victim"));
    s.kubectl(&["describe", "secret", "victim"]).stderr_is(&corrupt_stderr("victim"));
    // Other objects are unaffected.
    let v = s.kubectl(&["get", "secret", "bystander", "-o", "jsonpath={.data.v}"]).ok();
    assert_eq!(v, b64("bystander-value-9021"));
    s.kubectl(&["create", "secret", "generic", "newcomer", "--from-literal=v=n"])
        .stdout_is("secret/newcomer created\n");
    // A list that includes the corrupt object fails as a whole rather than leaving it out or
    // showing it empty (kube-apiserver answers such a list with an internal error too).
    s.kubectl(&["get", "secrets"]).stderr_is(&corrupt_stderr("victim"));
    s.kubectl(&["get", "secrets", "-o", "json"]).stderr_is(&corrupt_stderr("victim"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = s.client().await;
        let c = &client;
        let values = ["victim-value-4417"];
        let uri = "/api/v1/namespaces/default/secrets/victim";
        let get = raw(c, "GET", uri, "application/json", "application/json", "").await;
        assert_corrupt_answer("GET", &get, "victim", &values);
        let table = raw(c, "GET", uri, "application/json", TABLE, "").await;
        assert_corrupt_answer("GET as Table", &table, "victim", &values);
        let list =
            raw(c, "GET", "/api/v1/namespaces/default/secrets", "application/json", "application/json", "").await;
        assert_corrupt_answer("LIST", &list, "victim", &values);
        let list_all = raw(c, "GET", "/api/v1/secrets", "application/json", TABLE, "").await;
        assert_corrupt_answer("LIST all namespaces as Table", &list_all, "victim", &values);
        // Writes never replace the value they cannot read (item 57: "never an overwrite").
        let put = raw(
            c,
            "PUT",
            uri,
            "application/json",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"victim"},"data":{"v":"b3ZlcndyaXR0ZW4="}}"#,
        )
        .await;
        assert_corrupt_answer("PUT", &put, "victim", &values);
        let merge = raw(
            c,
            "PATCH",
            uri,
            "application/merge-patch+json",
            "application/json",
            r#"{"metadata":{"labels":{"k":"v"}}}"#,
        )
        .await;
        assert_corrupt_answer("merge PATCH", &merge, "victim", &values);
        let apply = raw(
            c,
            "PATCH",
            &format!("{uri}?fieldManager=test&force=true"),
            "application/apply-patch+yaml",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"victim"},"data":{"v":"b3ZlcndyaXR0ZW4="}}"#,
        )
        .await;
        assert_corrupt_answer("server-side apply", &apply, "victim", &values);
        let create = raw(
            c,
            "POST",
            "/api/v1/namespaces/default/secrets",
            "application/json",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"victim"},"data":{"v":"b3ZlcndyaXR0ZW4="}}"#,
        )
        .await;
        assert_eq!(create.0, 409, "a create over a corrupt object must not replace it: {}", create.1);
    });
    let log = s.log_text();
    assert!(
        log.contains("corrupt object in store") && log.contains("/registry/secrets/default/victim"),
        "the server logs which object is corrupt:\n{log}"
    );
    assert!(!log.contains("victim-value-4417") && !log.contains(&b64("victim-value-4417")), "{log}");

    // Still corrupt, byte for byte, after all of that and a restart: nothing rewrote it.
    s.restart();
    s.kubectl(&["get", "secret", "victim"]).stderr_is(&corrupt_stderr("victim"));
    s.terminate();
    with_store(&s, |b| {
        assert_eq!(raw_record(b, &secret_key("victim")).value, corrupted, "the corrupt record was rewritten");
    });
}

/// X6: removing a corrupt object needs an explicit, separately authorised unsafe delete
/// (kube-apiserver: `ignoreStoreReadErrorWithClusterBreakingPotential`); a plain delete fails
/// with the same internal error and leaves the record in place.
#[test]
fn a_plain_delete_of_a_corrupt_object_fails_and_deletes_nothing() {
    let mut s = server_with_corrupt_secret("victim", "victim-value-7310");
    s.kubectl(&["delete", "secret", "victim"]).stderr_is(&corrupt_stderr("victim"));
    // Still there, still corrupt: not deleted behind the error.
    s.kubectl(&["get", "secret", "victim"]).stderr_is(&corrupt_stderr("victim"));
    s.terminate();
    with_store(&s, |b| {
        let present = b.raw_objects().expect("raw objects").iter().any(|kv| kv.key == secret_key("victim"));
        assert!(present, "a plain DELETE removed the corrupt record");
    });
}

/// A different key under the same key name (an operator restored the wrong backup of
/// `encryption-config.yaml`): the server starts, and every object written with the old key is a
/// 500 — never ciphertext, never empty — including the namespaces, so nothing can be written
/// into them either. With the right key back, everything reads again, unchanged.
#[test]
fn a_changed_key_under_the_same_name_fails_closed_and_loses_nothing() {
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", "alpha", "--from-literal=v=alpha-value-5521"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=v=db-value-6632"]).ok();
    s.terminate();
    let path = s.data_dir().join("encryption-config.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let wrong = STANDARD.encode([0x42u8; 32]);
    let mut replaced = 0;
    let changed: String = original
        .lines()
        .map(|l| match l.split_once("secret: ") {
            Some((indent, _)) => {
                replaced += 1;
                format!("{indent}secret: {wrong}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_eq!(replaced, 1, "the generated configuration holds exactly one key:\n{original}");
    std::fs::write(&path, &changed).unwrap();

    // It starts (`restart` fails the test if it does not) ...
    s.restart();
    // ... says clearly, once, that the configured keys do not read the store ...
    assert!(
        s.log_text().contains("stored objects cannot be decrypted or decoded with the configured encryption keys"),
        "{}",
        s.log_text()
    );
    // ... and fails closed on every object the old key wrote.
    s.kubectl(&["get", "secret", "db"]).stderr_is(&corrupt_stderr("db"));
    s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data}"]).stderr_is(&corrupt_stderr("db"));
    s.kubectl(&["get", "secrets"]).stderr_is(&corrupt_stderr("alpha"));
    s.kubectl(&["get", "namespace", "default"]).stderr_is(
        "Error from server (InternalError): the object stored at /registry/namespaces/default is corrupt: it cannot be decrypted or decoded\n",
    );
    // Writing into a namespace the server cannot read is refused, not done blindly.
    let err = s.kubectl(&["create", "secret", "generic", "new", "--from-literal=v=n"]).fails();
    assert_eq!(
        err,
        "error: failed to create secret the object stored at /registry/namespaces/default is corrupt: it cannot be decrypted or decoded\n"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = s.client().await;
        let values = ["db-value-6632", "alpha-value-5521"];
        let get =
            raw(&client, "GET", "/api/v1/namespaces/default/secrets/db", "application/json", "application/json", "")
                .await;
        assert_corrupt_answer("GET with the wrong key", &get, "db", &values);
    });
    let log = s.log_text();
    assert!(log.contains("cannot decrypt a stored object"), "the server logs the decryption failures:\n{log}");

    // The right key back: everything reads, unchanged, and the refused write left nothing.
    s.terminate();
    std::fs::write(&path, &original).unwrap();
    s.restart();
    let v = s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.v}"]).ok();
    assert_eq!(v, b64("db-value-6632"));
    let v = s.kubectl(&["get", "secret", "alpha", "-o", "jsonpath={.data.v}"]).ok();
    assert_eq!(v, b64("alpha-value-5521"));
    s.kubectl(&["get", "secret", "new"]).stderr_is("Error from server (NotFound): secrets \"new\" not found\n");
}

/// AAD binding (X4): a valid ciphertext copied from one object's storage key to another's does
/// not decrypt there, so one object can never be served with another's value.
#[test]
fn a_value_copied_to_another_key_does_not_decrypt() {
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", "source", "--from-literal=v=source-value-8842"]).ok();
    s.kubectl(&["create", "secret", "generic", "target", "--from-literal=v=target-value-1173"]).ok();
    s.terminate();
    with_store(&s, |b| {
        let source = raw_record(b, &secret_key("source"));
        assert!(source.value.starts_with(b"k8s:enc:aesgcm:v1:"), "the source is aesgcm-encrypted");
        b.corrupt_for_test(&secret_key("target"), &source.value).expect("copy the record");
    });
    s.restart();
    s.kubectl(&["get", "secret", "target"]).stderr_is(&corrupt_stderr("target"));
    s.kubectl(&["get", "secret", "target", "-o", "yaml"]).stderr_is(&corrupt_stderr("target"));
    let v = s.kubectl(&["get", "secret", "source", "-o", "jsonpath={.data.v}"]).ok();
    assert_eq!(v, b64("source-value-8842"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = s.client().await;
        let get = raw(
            &client,
            "GET",
            "/api/v1/namespaces/default/secrets/target",
            "application/json",
            "application/json",
            "",
        )
        .await;
        assert_corrupt_answer("GET of the target", &get, "target", &["source-value-8842", "target-value-1173"]);
    });
}

/// A watch never hides a corrupt object (which would tell an informer it does not exist): it
/// ends with an ERROR event carrying the 500 Status.
#[test]
fn a_watch_meeting_a_corrupt_object_ends_with_an_error_event() {
    let s = server_with_corrupt_secret("victim", "victim-value-8842");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r =
        rt.block_on(s.raw("GET", "/api/v1/namespaces/default/secrets?watch=true&resourceVersion=0", &[], b"", true));
    assert_eq!(r.status, 200, "{r:?}");
    let first = r.body.lines().next().expect("one event");
    let ev: serde_json::Value = serde_json::from_str(first).expect("JSON event");
    assert_eq!(ev["type"], "ERROR", "{first}");
    assert_eq!(ev["object"]["code"], 500, "{first}");
    assert_eq!(ev["object"]["message"], corrupt_message("victim"), "{first}");
    assert!(!r.body.contains("victim-value-8842"));
}
