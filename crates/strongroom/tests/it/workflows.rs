//! More of what people do with kubectl day to day (shared/reference/kubectl-wire.md §3–§6), with
//! the exact output kubectl prints against a real cluster, plus the list/watch protocol details
//! behind them (pagination tokens, single-object watches, bookmarks only on request).

use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::Request;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use strongroom_testkit::{Server, eventually, temp_file};

use crate::server;

/// Runs a prepared kubectl command with a time limit; on failure the message has the command,
/// its output and the server log's tail.
fn run(s: &Server, mut cmd: Command) -> Output {
    let desc = format!("{cmd:?}");
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{desc} did not finish within 120s\n{}", tail(s));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn tail(s: &Server) -> String {
    let log = s.log_text();
    let lines: Vec<&str> = log.lines().collect();
    format!("---- server log (tail) ----\n{}", lines[lines.len().saturating_sub(40)..].join("\n"))
}

#[track_caller]
fn expect_stdout(s: &Server, out: &Output, expected: &str) {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout == expected,
        "expected success with stdout {expected:?}\nstatus: {}\nstdout: {stdout:?}\nstderr: {stderr}\n{}",
        out.status,
        tail(s)
    );
}

/// The whitespace-separated cells of each line.
fn cells(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// A long-running kubectl whose stdout lines are collected as they come.
struct Streaming {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Streaming {
    fn start(s: &Server, args: &[&str]) -> Streaming {
        let mut child =
            s.kubectl_cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start kubectl");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Streaming { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_for_lines(&self, n: usize, what: &str) -> Vec<String> {
        let lines = self.lines.clone();
        eventually(what, Duration::from_secs(30), || {
            let l = lines.lock().unwrap();
            (l.len() >= n).then(|| l.clone())
        })
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many requests the server has logged for exactly `method path` with status `code`.
fn logged(s: &Server, method: &str, path: &str, code: u16) -> usize {
    let needle = format!("method={method} path={path} code={code} ");
    s.log_text().lines().filter(|l| l.contains(&needle)).count()
}

/// `kubectl get secret db -w`: GET, then a watch with `fieldSelector=metadata.name=db` and
/// `resourceVersion=0`. kubectl drops the watch's first event (the synthetic ADDED an RV=0 watch
/// starts with), so without it the first real change would be lost.
#[test]
fn get_single_secret_watch_prints_the_change() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b"]).ok();
    let watches_before = logged(&s, "GET", "/api/v1/namespaces/default/secrets", 200);
    let watch = Streaming::start(&s, &["get", "secret", "db", "-w"]);
    let first = watch.wait_for_lines(2, "the table kubectl prints before watching");
    // The change must come after the watch is open, or it would be part of the synthetic ADDED.
    eventually("kubectl's watch request", Duration::from_secs(30), || {
        (logged(&s, "GET", "/api/v1/namespaces/default/secrets", 200) > watches_before).then_some(())
    });
    s.kubectl(&["patch", "secret", "db", "--type=merge", "-p", r#"{"stringData":{"c":"d"}}"#])
        .stdout_is("secret/db patched\n");
    let seen = watch.wait_for_lines(3, "the change printed by kubectl get -w");
    // Nothing else follows (a replayed ADDED would print the row twice).
    std::thread::sleep(Duration::from_millis(500));
    let seen_later = watch.lines();
    let rows = cells(&seen.join("\n"));
    assert_eq!(rows[0], ["NAME", "TYPE", "DATA", "AGE"], "{first:?}");
    assert_eq!(rows[1][..3], ["db", "Opaque", "1"], "{seen:?}");
    assert_eq!(rows[2][..3], ["db", "Opaque", "2"], "{seen:?}");
    assert_eq!(seen_later.len(), 3, "only the change is printed after the initial row: {seen_later:?}");
}

/// `kubectl edit` with an editor that adds a label: GET, the editor, then a strategic merge patch
/// with `fieldManager=kubectl-edit`.
#[test]
fn edit_with_an_editor_script_adds_a_label() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b"]).ok();
    let (_dir, editor) = temp_file(
        "editor.sh",
        b"#!/bin/sh\nsed -i 's/^metadata:$/metadata:\\n  labels:\\n    edited: \"yes\"/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = s.kubectl_cmd();
    cmd.args(["edit", "secret", "db"]).env("EDITOR", &editor).env_remove("KUBE_EDITOR");
    let out = run(&s, cmd);
    expect_stdout(&s, &out, "secret/db edited\n");
    let label = s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.metadata.labels.edited}"]).ok();
    assert_eq!(label, "yes");
    let managers = s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.metadata.managedFields[*].manager}"]).ok();
    assert_eq!(managers, "kubectl-create kubectl-edit");
    let data = s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data}"]).ok();
    assert_eq!(data, r#"{"a":"Yg=="}"#, "the edit changed nothing but the label");
}

/// `kubectl replace --force -f`: DELETE, wait for the 404, POST.
#[test]
fn replace_force_deletes_and_recreates() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=a=b"]).ok();
    let uid = s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    let m = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\ndata:\n  z: eg==\n";
    s.kubectl_stdin(&["replace", "--force", "-f", "-"], m).stdout_is("secret \"db\" deleted\nsecret/db replaced\n");
    let data = s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.data}"]).ok();
    assert_eq!(data, r#"{"z":"eg=="}"#);
    let new_uid = s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    assert_ne!(uid, new_uid, "replace --force creates a new object");
}

/// `kubectl delete secrets --all -n app`: a list, one DELETE per item, one GET per item to wait.
#[test]
fn delete_all_secrets_in_a_namespace() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    for name in ["c", "a", "b"] {
        s.kubectl(&["create", "secret", "generic", name, "-n", "app", "--from-literal=k=v"]).ok();
    }
    s.kubectl(&["create", "secret", "generic", "keep", "--from-literal=k=v"]).ok();
    s.kubectl(&["delete", "secrets", "--all", "-n", "app"])
        .stdout_is("secret \"a\" deleted\nsecret \"b\" deleted\nsecret \"c\" deleted\n");
    let out = s.kubectl(&["get", "secrets", "-n", "app"]);
    assert_eq!(out.ok(), "");
    assert_eq!(out.stderr(), "No resources found in app namespace.\n");
    s.kubectl(&["get", "secrets", "-o", "name"]).stdout_is("secret/keep\n");
    // Again, with nothing left: kubectl says so (on stdout) and succeeds.
    let out = s.kubectl(&["delete", "secrets", "--all", "-n", "app"]);
    assert_eq!(out.ok(), "No resources found\n");
    assert_eq!(out.stderr(), "");
}

/// `kubectl describe namespace app` as on a real cluster: every namespace carries the
/// `kubernetes.io/metadata.name` label (set by kube-apiserver since 1.21), and with
/// ResourceQuota/LimitRange lists that answer (empty) kubectl prints the two "No …" lines; with
/// a 404 there it leaves those sections out.
#[test]
fn describe_namespace() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).stdout_is("namespace/app created\n");
    let labels = s.kubectl(&["get", "namespace", "app", "-o", "jsonpath={.metadata.labels}"]).ok();
    assert_eq!(labels, r#"{"kubernetes.io/metadata.name":"app"}"#, "the automatic namespace label");
    // ResourceQuota and LimitRange are not served (404), which kubectl tolerates by leaving
    // those sections out, as the wire reference records.
    s.kubectl(&["describe", "namespace", "app"]).stdout_is(
        "Name:         app\nLabels:       kubernetes.io/metadata.name=app\nAnnotations:  <none>\nStatus:       Active\n",
    );
}

/// `kubectl get ns`: the four namespaces a cluster starts with, plus ours, in name order.
#[test]
fn get_namespaces() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    let out = s.kubectl(&["get", "ns"]).ok();
    let rows = cells(&out);
    assert_eq!(rows[0], ["NAME", "STATUS", "AGE"], "{out}");
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["app", "default", "kube-node-lease", "kube-public", "kube-system"], "{out}");
    for r in &rows[1..] {
        assert_eq!(r.len(), 3, "{out}");
        assert_eq!(r[1], "Active", "{out}");
    }
    s.kubectl(&["get", "ns", "app", "-o", "name"]).stdout_is("namespace/app\n");
}

/// `-o wide`: Secrets have no priority > 0 columns, so the wide table is the default one.
#[test]
fn get_secrets_wide_is_the_default_table() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b", "--from-literal=c=d"]).ok();
    let wide = s.kubectl(&["get", "secrets", "-o", "wide"]).ok();
    let rows = cells(&wide);
    assert_eq!(rows.len(), 2, "{wide}");
    assert_eq!(rows[0], ["NAME", "TYPE", "DATA", "AGE"], "{wide}");
    assert_eq!(rows[1][..3], ["db", "Opaque", "2"], "{wide}");
    assert_eq!(rows[1].len(), 4, "{wide}");
}

/// The generate-then-apply idiom: `kubectl create secret generic x --dry-run=client -o yaml |
/// kubectl apply -f -`.
#[test]
fn dry_run_client_yaml_piped_into_apply() {
    let s = server();
    let yaml =
        s.kubectl(&["create", "secret", "generic", "x", "--from-literal=a=b", "--dry-run=client", "-o", "yaml"]).ok();
    assert_eq!(
        yaml,
        "apiVersion: v1\ndata:\n  a: Yg==\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: x\n"
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &yaml).stdout_is("secret/x created\n");
    let data = s.kubectl(&["get", "secret", "x", "-o", "jsonpath={.data}"]).ok();
    assert_eq!(data, r#"{"a":"Yg=="}"#);
    let rv = s.kubectl(&["get", "secret", "x", "-o", "jsonpath={.metadata.resourceVersion}"]).ok();
    // The same manifest again. On a real cluster kubectl prints "unchanged"; here the annotation
    // holds digests instead of the values, so kubectl's three-way diff always sees the annotation
    // differ and sends a patch ("configured"). That patch must change nothing.
    s.kubectl_stdin(&["apply", "-f", "-"], &yaml).stdout_is("secret/x configured\n");
    let rv2 = s.kubectl(&["get", "secret", "x", "-o", "jsonpath={.metadata.resourceVersion}"]).ok();
    assert_eq!(rv, rv2, "re-applying the same manifest must not write");
    // A changed value goes through.
    let yaml2 =
        s.kubectl(&["create", "secret", "generic", "x", "--from-literal=a=c", "--dry-run=client", "-o", "yaml"]).ok();
    s.kubectl_stdin(&["apply", "-f", "-"], &yaml2).stdout_is("secret/x configured\n");
    let data = s.kubectl(&["get", "secret", "x", "-o", "jsonpath={.data}"]).ok();
    assert_eq!(data, r#"{"a":"Yw=="}"#);
}

/// `kubectl get secret x -o yaml`: apiVersion and kind present, managedFields hidden unless
/// `--show-managed-fields`.
#[test]
fn get_yaml_hides_managed_fields() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "x", "--from-literal=a=b"]).ok();
    let field = |path: &str| s.kubectl(&["get", "secret", "x", "-o", &format!("jsonpath={{{path}}}")]).ok();
    let (ts, rv, uid) =
        (field(".metadata.creationTimestamp"), field(".metadata.resourceVersion"), field(".metadata.uid"));
    s.kubectl(&["get", "secret", "x", "-o", "yaml"]).stdout_is(&format!(
        "apiVersion: v1\ndata:\n  a: Yg==\nkind: Secret\nmetadata:\n  creationTimestamp: \"{ts}\"\n  name: x\n  namespace: default\n  resourceVersion: \"{rv}\"\n  uid: {uid}\ntype: Opaque\n"
    ));
    let shown = s.kubectl(&["get", "secret", "x", "-o", "yaml", "--show-managed-fields"]).ok();
    assert!(shown.contains("  managedFields:\n") && shown.contains("    manager: kubectl-create\n"), "{shown}");
    let json = s.kubectl(&["get", "secret", "x", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((v["apiVersion"].as_str(), v["kind"].as_str()), (Some("v1"), Some("Secret")), "{json}");
    assert!(v["metadata"].get("managedFields").is_none(), "{json}");
}

/// `kubectl apply --server-side` of a Secret that was client-side applied before: the apply, then
/// the `kubectl-last-applied` apply-patch that keeps the annotation, then kubectl's csaupgrade
/// JSON patch moving `kubectl-client-side-apply`'s fields to `kubectl`, then the apply again.
/// Any refused step shows up as a warning on stderr.
#[test]
fn server_side_apply_after_client_side_apply_migrates_ownership() {
    let s = server();
    let m =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  labels:\n    tier: db\ntype: Opaque\ndata:\n  a: Yg==\n";
    s.kubectl_stdin(&["apply", "-f", "-"], m).stdout_is("secret/x created\n");
    let run = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], m);
    assert_eq!(run.ok(), "secret/x serverside-applied\n");
    assert_eq!(run.stderr(), "", "a migration step failed");
    let json = s.kubectl(&["get", "secret", "x", "-o", "json", "--show-managed-fields"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut managers: Vec<(String, String)> = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap_or("").into(), e["operation"].as_str().unwrap_or("").into()))
        .collect();
    managers.sort();
    assert_eq!(
        managers,
        [("kubectl".to_string(), "Apply".to_string()), ("kubectl-last-applied".into(), "Apply".into())],
        "{json}"
    );
    let annotation = &v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"];
    assert!(annotation.is_string(), "the last-applied annotation is kept: {json}");
    assert!(!annotation.as_str().unwrap().contains("Yg=="), "the annotation holds a value: {annotation}");
    assert_eq!(v["data"], serde_json::json!({"a": "Yg=="}), "{json}");
    assert_eq!(v["metadata"]["labels"], serde_json::json!({"tier": "db"}), "{json}");
    // From now on it is an ordinary server-side apply: a changed label goes through.
    s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &m.replace("tier: db", "tier: cache"))
        .stdout_is("secret/x serverside-applied\n");
    let tier = s.kubectl(&["get", "secret", "x", "-o", "jsonpath={.metadata.labels.tier}"]).ok();
    assert_eq!(tier, "cache");
}

/// Set-based label selectors beyond `=` and `in`: `!=`, `notin`, exists, does-not-exist.
#[test]
fn label_selector_operators() {
    let s = server();
    for (name, labels) in [("a", "env=prod,tier=db"), ("b", "env=dev"), ("c", "env=staging,tier=web"), ("d", "")] {
        s.kubectl(&["create", "secret", "generic", name, "--from-literal=k=v"]).ok();
        for l in labels.split(',').filter(|l| !l.is_empty()) {
            s.kubectl(&["label", "secret", name, l]).ok();
        }
    }
    let names = |selector: &str| s.kubectl(&["get", "secrets", "-l", selector, "-o", "name"]).ok();
    // `!=` and `notin` also match objects without the label.
    assert_eq!(names("env!=prod"), "secret/b\nsecret/c\nsecret/d\n");
    assert_eq!(names("env notin (prod,dev)"), "secret/c\nsecret/d\n");
    assert_eq!(names("tier"), "secret/a\nsecret/c\n");
    assert_eq!(names("!tier"), "secret/b\nsecret/d\n");
    assert_eq!(names("tier,env!=prod"), "secret/c\n");
    assert_eq!(names("env in (dev,staging),tier notin (web)"), "secret/b\n");
    let out = s.kubectl(&["get", "secrets", "-l", "env=nope"]);
    assert_eq!(out.ok(), "");
    assert_eq!(out.stderr(), "No resources found in default namespace.\n");
}

/// `--chunk-size=2` over 7 secrets: four pages, one table, each secret exactly once.
#[test]
fn chunked_get_prints_every_secret_once() {
    let s = server();
    let names: Vec<String> = (1..=7).map(|i| format!("s{i}")).collect();
    for n in &names {
        s.kubectl(&["create", "secret", "generic", n, "--from-literal=k=v"]).ok();
    }
    let before = logged(&s, "GET", "/api/v1/namespaces/default/secrets", 200);
    let out = s.kubectl(&["get", "secrets", "--chunk-size=2"]).ok();
    let pages = logged(&s, "GET", "/api/v1/namespaces/default/secrets", 200) - before;
    let rows = cells(&out);
    assert_eq!(rows[0], ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    let printed: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(printed, names, "{out}");
    assert_eq!(pages, 4, "7 secrets in pages of 2 take 4 list requests");
    let out = s.kubectl(&["get", "secrets", "--chunk-size=2", "-o", "name"]).ok();
    let expected: String = names.iter().map(|n| format!("secret/{n}\n")).collect();
    assert_eq!(out, expected);
}

/// kube-rs paging: valid continue tokens walk the list exactly once; an altered or foreign token
/// is a 400, never another list's page.
#[tokio::test]
async fn paginated_list_with_a_tampered_continue_token_is_a_bad_request() {
    let s = server();
    let client = s.client().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        let sec: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": format!("p{i}")}})).unwrap();
        api.create(&Default::default(), &sec).await.expect("create");
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut first_token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(2);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("a page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().filter_map(|s| s.metadata.name.clone()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if first_token.is_none() {
            first_token = token.clone();
        }
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4"]);

    let valid = first_token.expect("a first page with more to come");
    // Change one character in the middle of the token.
    let mut chars: Vec<char> = valid.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    for (what, t) in [("a tampered token", tampered.as_str()), ("garbage", "not-a-continue-token")] {
        match api.list(&ListParams::default().limit(2).continue_token(t)).await {
            Err(kube::Error::Api(st)) => {
                assert_eq!((st.code, st.reason.as_str()), (400, "BadRequest"), "{what}: {st:?}");
                assert!(st.message.starts_with("continue key is not valid"), "{what}: {}", st.message);
            }
            other => panic!("{what}: expected 400 BadRequest, got {other:?}"),
        }
    }
    // A token from the default namespace's list is not valid for another namespace's list.
    let other: Api<Secret> = Api::namespaced(client, "kube-system");
    match other.list(&ListParams::default().limit(2).continue_token(&valid)).await {
        Err(kube::Error::Api(st)) => assert_eq!((st.code, st.reason.as_str()), (400, "BadRequest"), "{st:?}"),
        other => panic!("a foreign continue token: expected 400 BadRequest, got {other:?}"),
    }
}

/// Reads newline-delimited watch events from a raw response until `n` arrived (or 20 s passed).
async fn read_events(resp: http::Response<kube::client::Body>, n: usize) -> Vec<serde_json::Value> {
    let mut body = http_body_util::BodyDataStream::new(resp.into_body());
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < n {
        let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(Some(Err(e))) => panic!("the watch stream failed: {e}"),
            Ok(None) => panic!("the watch stream ended after {events:?}"),
            Err(_) => panic!("timed out waiting for {n} watch events; got {events:?}"),
        };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            events.push(serde_json::from_slice(&line).expect("a JSON watch event per line"));
        }
    }
    events
}

fn summary(events: &[serde_json::Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("?").to_string(),
                e["object"]["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Watches without `allowWatchBookmarks` never carry BOOKMARK events (kubectl prints them as
/// rows), and a single-object watch from RV 0 starts with the object as a synthetic ADDED.
#[tokio::test]
async fn watches_without_allow_watch_bookmarks_carry_no_bookmarks() {
    let s = server();
    let client = s.client().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret =
        |name: &str| -> Secret { serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap() };
    api.create(&Default::default(), &secret("db")).await.expect("create db");
    let rv = api.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("a list RV");

    let open = |uri: String| {
        let client = client.clone();
        async move {
            let resp = client
                .send(Request::get(uri.as_str()).body(Vec::<u8>::new()).unwrap().map(kube::client::Body::from))
                .await
                .expect("watch");
            assert_eq!(resp.status().as_u16(), 200, "{uri}");
            resp
        }
    };
    let from_rv = open(format!("/api/v1/namespaces/default/secrets?watch=true&resourceVersion={rv}")).await;
    let from_zero = open("/api/v1/namespaces/default/secrets?watch=true&resourceVersion=0".to_string()).await;
    let single = open(
        "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ddb&resourceVersion=0&watch=true".to_string(),
    )
    .await;
    for name in ["w1", "w2", "w3"] {
        api.create(&Default::default(), &secret(name)).await.expect("create");
    }
    api.delete("w1", &Default::default()).await.expect("delete");
    let patch = serde_json::json!({"metadata": {"labels": {"k": "v"}}});
    api.patch("db", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("label db");

    let events = summary(&read_events(from_rv, 5).await);
    let want = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        events,
        want(&[("ADDED", "w1"), ("ADDED", "w2"), ("ADDED", "w3"), ("DELETED", "w1"), ("MODIFIED", "db")]),
        "a watch from the list RV: no replay, no bookmarks"
    );
    let events = summary(&read_events(from_zero, 6).await);
    assert_eq!(
        events,
        want(&[
            ("ADDED", "db"),
            ("ADDED", "w1"),
            ("ADDED", "w2"),
            ("ADDED", "w3"),
            ("DELETED", "w1"),
            ("MODIFIED", "db")
        ]),
        "a watch from RV 0: the current objects as ADDED first, no bookmarks"
    );
    let events = summary(&read_events(single, 2).await);
    assert_eq!(events, want(&[("ADDED", "db"), ("MODIFIED", "db")]), "a single-object watch from RV 0");
}
