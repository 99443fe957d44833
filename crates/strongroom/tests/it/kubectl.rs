//! The commands people type from Kubernetes' docs, with the output kubectl prints against a real
//! cluster (see shared/reference/kubectl-wire.md).

use std::time::Duration;

use base64::Engine;
use strongroom_testkit::{eventually, temp_file};

use crate::server;

fn b64d(s: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s.trim()).expect("base64")).expect("utf8")
}

#[test]
fn create_generic_get_describe_delete() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).stdout_is("namespace/app created\n");
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "app",
        "--from-literal=username=u",
        "--from-literal=password=S!B\\*d$zDsb=",
    ])
    .stdout_is("secret/db created\n");
    let pw = s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.data.password}"]).ok();
    assert_eq!(b64d(&pw), "S!B\\*d$zDsb=");

    let (_d, file) = temp_file("pw.txt", b"hunter2");
    let (_d2, cfg) = temp_file("cfg.ini", b"line1\nline2\n");
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "fromfile",
        "-n",
        "app",
        &format!("--from-file={}", file.display()),
        &format!("--from-file=config={}", cfg.display()),
    ])
    .stdout_is("secret/fromfile created\n");
    let out = s.kubectl(&["get", "secret", "fromfile", "-n", "app", "-o", "jsonpath={.data}"]).ok();
    assert_eq!(out, r#"{"config":"bGluZTEKbGluZTIK","pw.txt":"aHVudGVyMg=="}"#);

    let table = s.kubectl(&["get", "secrets", "-n", "app"]).ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"]);
    let db: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&db[..3], ["db", "Opaque", "2"]);
    assert!(db[3].ends_with('s'), "{table}");
    let ff: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&ff[..3], ["fromfile", "Opaque", "2"]);

    let described = s.kubectl(&["describe", "secret", "db", "-n", "app"]).ok();
    assert!(described.contains("Name:         db"), "{described}");
    assert!(described.contains("Type:  Opaque"), "{described}");
    assert!(described.contains("password:  12 bytes"), "{described}");
    assert!(described.contains("username:  1 bytes"), "{described}");
    assert!(!described.contains("S!B"), "{described}");

    s.kubectl(&["delete", "secret", "fromfile", "-n", "app"]).stdout_is("secret \"fromfile\" deleted\n");
    s.kubectl(&["get", "secret", "fromfile", "-n", "app"])
        .stderr_is("Error from server (NotFound): secrets \"fromfile\" not found\n");
    s.kubectl(&["delete", "secret", "nope", "-n", "app"])
        .stderr_is("Error from server (NotFound): secrets \"nope\" not found\n");
    s.kubectl(&["delete", "secret", "nope", "-n", "app", "--ignore-not-found"]).stdout_is("");
}

#[test]
fn typed_secrets_docker_registry_and_tls() {
    let s = server();
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=registry.example.test",
        "--docker-username=bob",
        "--docker-password=p@ss",
        "--docker-email=bob@example.test",
    ])
    .stdout_is("secret/regcred created\n");
    let raw = s.kubectl(&["get", "secret", "regcred", "-o", "jsonpath={.data.\\.dockerconfigjson}"]).ok();
    let cfg: serde_json::Value = serde_json::from_str(&b64d(&raw)).expect("json");
    assert_eq!(cfg["auths"]["registry.example.test"]["auth"], "Ym9iOnBAc3M=");
    assert_eq!(b64d(cfg["auths"]["registry.example.test"]["auth"].as_str().unwrap()), "bob:p@ss");
    let t = s.kubectl(&["get", "secret", "regcred", "-o", "jsonpath={.type}"]).ok();
    assert_eq!(t, "kubernetes.io/dockerconfigjson");

    let dir = tempfile_dir();
    let key = dir.join("tls.key");
    let crt = dir.join("tls.crt");
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=example.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl is installed (Debian: apt-get install openssl)");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    s.kubectl(&[
        "create",
        "secret",
        "tls",
        "web",
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ])
    .stdout_is("secret/web created\n");
    let got = s.kubectl(&["get", "secret", "web", "-o", "jsonpath={.data.tls\\.crt}"]).ok();
    assert_eq!(b64d(&got), std::fs::read_to_string(&crt).unwrap());
    let table = s.kubectl(&["get", "secret", "web"]).ok();
    assert!(table.lines().nth(1).unwrap().contains("kubernetes.io/tls"), "{table}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("strongroom-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn errors_print_as_against_kubernetes() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "nosuchns", "--from-literal=a=b"])
        .stderr_is("error: failed to create secret namespaces \"nosuchns\" not found\n");
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b"])
        .stderr_is("error: failed to create secret secrets \"db\" already exists\n");
    s.kubectl(&["create", "namespace", "default"])
        .stderr_is("Error from server (AlreadyExists): namespaces \"default\" already exists\n");
    let err = s.kubectl(&["create", "secret", "generic", "Bad_Name", "--from-literal=a=b"]).fails();
    assert!(
        err.starts_with("error: failed to create secret Secret \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"),
        "{err}"
    );
    s.kubectl(&["get", "secret", "Bad_Name"])
        .stderr_is("Error from server (NotFound): secrets \"Bad_Name\" not found\n");

    // Strict field validation: an unknown field is refused and nothing is written.
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: unknown\nspec: {}\ndata:\n  a: Yg==\n";
    let err = s.kubectl_stdin(&["create", "-f", "-"], manifest).fails();
    assert_eq!(
        err,
        "Error from server (BadRequest): error when creating \"STDIN\": Secret in version \"v1\" cannot be handled as a Secret: strict decoding error: unknown field \"spec\"\n"
    );
    s.kubectl(&["get", "secret", "unknown"]).fails();
    // Warn: created, with the warning printed.
    let run = s.kubectl_stdin(&["create", "-f", "-", "--validate=warn"], manifest);
    assert_eq!(run.ok(), "secret/unknown created\n");
    assert!(run.stderr().contains("Warning: unknown field \"spec\""), "{}", run.stderr());
}

#[test]
fn apply_client_side_with_string_data_and_no_plaintext_annotation() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    let v1 = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  namespace: app\n  labels:\n    tier: db\ntype: Opaque\ndata:\n  password: UyFCXCpkJHpEc2I9\nstringData:\n  username: admin-canary-4711\n";
    s.kubectl_stdin(&["apply", "-f", "-"], v1).stdout_is("secret/applied created\n");
    let user = s.kubectl(&["get", "secret", "applied", "-n", "app", "-o", "jsonpath={.data.username}"]).ok();
    assert_eq!(b64d(&user), "admin-canary-4711");
    let yaml = s.kubectl(&["get", "secret", "applied", "-n", "app", "-o", "yaml"]).ok();
    assert!(yaml.contains("last-applied-configuration"), "{yaml}");
    let string_data = s.kubectl(&["get", "secret", "applied", "-n", "app", "-o", "jsonpath={.stringData}"]).ok();
    assert_eq!(string_data, "", "stringData must never be returned");
    assert!(!yaml.contains("admin-canary-4711"), "plaintext leaked into the annotation:\n{yaml}");
    assert!(!yaml.contains("UyFCXCpkJHpEc2I9\\\""), "data value leaked into the annotation:\n{yaml}");

    // Regression: re-saving an applied Secret must not re-digest its annotation, or every patch
    // would be a change.
    let p = r#"{"metadata":{"labels":{"tier":"db"}}}"#;
    s.kubectl(&["patch", "secret", "applied", "-n", "app", "-p", p]).stdout_is("secret/applied patched (no change)\n");
    // Same manifest again: stringData makes it a PATCH ("configured"), as on a real cluster.
    s.kubectl_stdin(&["apply", "-f", "-"], v1).stdout_is("secret/applied configured\n");
    let v2 = v1.replace("tier: db", "tier: database").replace("admin-canary-4711", "root");
    s.kubectl_stdin(&["apply", "-f", "-"], &v2).stdout_is("secret/applied configured\n");
    let labels = s.kubectl(&["get", "secret", "applied", "-n", "app", "-o", "jsonpath={.metadata.labels.tier}"]).ok();
    assert_eq!(labels, "database");
    let user = s.kubectl(&["get", "secret", "applied", "-n", "app", "-o", "jsonpath={.data.username}"]).ok();
    assert_eq!(b64d(&user), "root");
    // A key removed from the manifest is removed from the secret (kubectl's three-way merge
    // still works with digests in the annotation).
    let v3 = v2.replace("\ndata:\n  password: UyFCXCpkJHpEc2I9\n", "\n");
    s.kubectl_stdin(&["apply", "-f", "-"], &v3).stdout_is("secret/applied configured\n");
    let data = s.kubectl(&["get", "secret", "applied", "-n", "app", "-o", "jsonpath={.data}"]).ok();
    assert!(!data.contains("password"), "{data}");
}

#[test]
fn apply_server_side_creates_updates_and_reports_conflicts() {
    let s = server();
    let m = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\n  labels:\n    tier: database\ndata:\n  password: UyFCXCpkJHpEc2I9\ntype: Opaque\n";
    s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], m).stdout_is("secret/ssa serverside-applied\n");
    s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], m).stdout_is("secret/ssa serverside-applied\n");
    let mf = s.kubectl(&["get", "secret", "ssa", "-o", "jsonpath={.metadata.managedFields[*].manager}"]).ok();
    assert_eq!(mf, "kubectl");
    // Another manager changes the password; re-applying the old value conflicts.
    s.kubectl(&["patch", "secret", "ssa", "--type=merge", "-p", r#"{"data":{"password":"b3RoZXI="}}"#]).ok();
    let err = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], m).fails();
    assert!(
        err.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.password"
        ),
        "{err}"
    );
    s.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], m)
        .stdout_is("secret/ssa serverside-applied\n");
    let pw = s.kubectl(&["get", "secret", "ssa", "-o", "jsonpath={.data.password}"]).ok();
    assert_eq!(pw, "UyFCXCpkJHpEc2I9");
    s.kubectl_stdin(&["apply", "--server-side", "--dry-run=server", "-f", "-"], &m.replace("ssa", "ssa-dry"))
        .stdout_is("secret/ssa-dry serverside-applied (server dry run)\n");
    s.kubectl(&["get", "secret", "ssa-dry"]).fails();
}

#[test]
fn patch_types_label_and_no_op() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b"]).ok();
    s.kubectl(&["patch", "secret", "db", "--type=merge", "-p", r#"{"stringData":{"extra":"v1"}}"#])
        .stdout_is("secret/db patched\n");
    let extra = s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.extra}"]).ok();
    assert_eq!(b64d(&extra), "v1");
    s.kubectl(&["patch", "secret", "db", "--type=json", "-p", r#"[{"op":"remove","path":"/data/extra"}]"#])
        .stdout_is("secret/db patched\n");
    s.kubectl(&["patch", "secret", "db", "-p", r#"{"metadata":{"labels":{"s":"1"}}}"#])
        .stdout_is("secret/db patched\n");
    s.kubectl(&["patch", "secret", "db", "-p", r#"{"metadata":{"labels":{"s":"1"}}}"#])
        .stdout_is("secret/db patched (no change)\n");
    s.kubectl(&["label", "secret", "db", "team=a"]).stdout_is("secret/db labeled\n");
    s.kubectl(&["annotate", "secret", "db", "owner=team-a"]).stdout_is("secret/db annotated\n");
    let l = s.kubectl(&["get", "secrets", "-l", "team=a", "-o", "name"]).ok();
    assert_eq!(l, "secret/db\n");
    s.kubectl(&["label", "secret", "db", "team-"]).stdout_is("secret/db unlabeled\n");
    s.kubectl(&["label", "secret", "db", "k=v2", "--resource-version=1"])
        .stderr_is("Error from server (Conflict): Operation cannot be fulfilled on secrets \"db\": the object has been modified; please apply your changes to the latest version and try again\n");
    s.kubectl(&["patch", "secret", "db", "--type=json", "-p", r#"[{"op":"test","path":"/data/a","value":"eA=="}]"#])
        .stderr_is("The request is invalid: the server rejected our request due to an error in our request\n");
    // A key can be renamed or duplicated with move and copy inside data ...
    s.kubectl(&[
        "patch",
        "secret",
        "db",
        "--type=json",
        "-p",
        r#"[{"op":"move","from":"/data/a","path":"/data/renamed"}]"#,
    ])
    .stdout_is("secret/db patched\n");
    s.kubectl(&[
        "patch",
        "secret",
        "db",
        "--type=json",
        "-p",
        r#"[{"op":"copy","from":"/data/renamed","path":"/data/twin"}]"#,
    ])
    .stdout_is("secret/db patched\n");
    assert_eq!(b64d(&s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.renamed}"]).ok()), "b");
    // ... but a value is never carried into a field whose error could quote it.
    s.kubectl(&["patch", "secret", "db", "--type=json", "-p", r#"[{"op":"copy","from":"/data/renamed","path":"/metadata/name"}]"#])
        .stderr_is("Error from server (BadRequest): the JSON patch may not copy or move \"/data/renamed\" to \"/metadata/name\": the values of a Secret may only be moved or copied between keys of data and stringData\n");
    s.kubectl(&[
        "patch",
        "secret",
        "db",
        "--type=json",
        "-p",
        r#"[{"op":"move","from":"/data","path":"/metadata/labels"}]"#,
    ])
    .stderr_is("Error from server (BadRequest): the JSON patch may not copy or move \"/data\" to \"/metadata/labels\": the values of a Secret may only be moved or copied between keys of data and stringData\n");
}

#[test]
fn replace_with_stale_resource_version_conflicts() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=a=b"]).ok();
    let rv = s.kubectl(&["get", "secret", "db", "-o", "jsonpath={.metadata.resourceVersion}"]).ok();
    let m =
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  resourceVersion: \"{rv}\"\ndata:\n  a: Yw==\n");
    s.kubectl_stdin(&["replace", "-f", "-"], &m).stdout_is("secret/db replaced\n");
    s.kubectl_stdin(&["replace", "-f", "-"], &m).stderr_is(
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on secrets \"db\": the object has been modified; please apply your changes to the latest version and try again\n",
    );
}

#[test]
fn immutable_secrets_refuse_data_changes() {
    let s = server();
    let m = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  a: Yg==\n";
    s.kubectl_stdin(&["create", "-f", "-"], m).stdout_is("secret/frozen created\n");
    s.kubectl(&["patch", "secret", "frozen", "--type=merge", "-p", r#"{"data":{"a":"Yw=="}}"#])
        .stderr_is("The Secret \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set\n");
    let err = s.kubectl(&["patch", "secret", "frozen", "--type=merge", "-p", r#"{"immutable":false}"#]).fails();
    assert!(
        err.starts_with(
            "The Secret \"frozen\" is invalid: immutable: Forbidden: field is immutable when `immutable` is set"
        ),
        "{err}"
    );
    s.kubectl(&["label", "secret", "frozen", "k=v"]).stdout_is("secret/frozen labeled\n");
    s.kubectl(&["delete", "secret", "frozen"]).stdout_is("secret \"frozen\" deleted\n");
}

#[test]
fn one_mebibyte_is_the_limit() {
    let s = server();
    let dir = tempfile_dir();
    let exact = dir.join("exact");
    std::fs::write(&exact, vec![b'x'; 1024 * 1024]).unwrap();
    let over = dir.join("over");
    std::fs::write(&over, vec![b'x'; 1024 * 1024 + 1]).unwrap();
    s.kubectl(&["create", "secret", "generic", "exact", &format!("--from-file=v={}", exact.display())])
        .stdout_is("secret/exact created\n");
    let err = s.kubectl(&["create", "secret", "generic", "over", &format!("--from-file=v={}", over.display())]).fails();
    assert!(err.starts_with("error: failed to create secret Secret \"over\" is invalid: data: Too long: "), "{err}");
    assert!(err.contains("1048576"), "{err}");
    s.kubectl(&["get", "secret", "over"]).fails();
}

#[test]
fn get_watch_sees_added_modified_deleted() {
    let s = server();
    let mut watch = s
        .kubectl_cmd()
        .args(["get", "secrets", "-w", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    // Give kubectl time to list and start watching.
    std::thread::sleep(Duration::from_millis(1500));
    s.kubectl(&["create", "secret", "generic", "w1", "--from-literal=a=b"]).ok();
    s.kubectl(&["label", "secret", "w1", "k=v"]).ok();
    s.kubectl(&["delete", "secret", "w1"]).ok();
    let seen = eventually("three watch events", Duration::from_secs(20), || {
        let l = lines.lock().unwrap();
        (l.iter().filter(|l| l.contains("w1")).count() >= 3).then(|| l.clone())
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let events: Vec<&str> =
        seen.iter().filter(|l| l.contains("w1")).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"], "{seen:?}");
}

#[test]
fn namespace_deletion_deletes_its_secrets() {
    let s = server();
    s.kubectl(&["create", "namespace", "doomed"]).ok();
    s.kubectl(&["create", "secret", "generic", "x", "-n", "doomed", "--from-literal=a=b"]).ok();
    s.kubectl(&["delete", "namespace", "doomed"]).stdout_is("namespace \"doomed\" deleted\n");
    s.kubectl(&["get", "namespace", "doomed"])
        .stderr_is("Error from server (NotFound): namespaces \"doomed\" not found\n");
    // Recreated, it is empty.
    s.kubectl(&["create", "namespace", "doomed"]).ok();
    let out = s.kubectl(&["get", "secrets", "-n", "doomed"]);
    assert_eq!(out.ok(), "");
    assert_eq!(out.stderr(), "No resources found in doomed namespace.\n");
    s.kubectl(&["delete", "namespace", "default"]).stderr_is(
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n",
    );
}

#[test]
fn selectors_pagination_and_all_namespaces() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    for (i, ns) in ["default", "app", "app"].iter().enumerate() {
        s.kubectl(&["create", "secret", "generic", &format!("s{i}"), "-n", ns, "--from-literal=a=b"]).ok();
        s.kubectl(&["label", "secret", &format!("s{i}"), "-n", ns, &format!("k=v{i}")]).ok();
    }
    let all = s.kubectl(&["get", "secrets", "-A", "-o", "name", "--chunk-size=1"]).ok();
    assert_eq!(all, "secret/s1\nsecret/s2\nsecret/s0\n");
    let sel = s.kubectl(&["get", "secrets", "-A", "-l", "k in (v0,v2),!x", "-o", "name"]).ok();
    assert_eq!(sel, "secret/s2\nsecret/s0\n");
    let table = s.kubectl(&["get", "secrets", "-A", "--show-labels"]).ok();
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("app") && l.contains("s1") && l.contains("k=v1")), "{table}");
    let by_type = s
        .kubectl(&["get", "secrets", "-n", "app", "--field-selector", "type=Opaque,metadata.name!=s1", "-o", "name"])
        .ok();
    assert_eq!(by_type, "secret/s2\n");
    let err = s.kubectl(&["get", "secrets", "--field-selector", "foo=bar"]).fails();
    assert!(err.starts_with("Error from server (BadRequest): Unable to find \"/v1, Resource=secrets\" that match label selector \"\", field selector \"foo=bar\": "), "{err}");
    let sorted = s.kubectl(&["get", "secrets", "-A", "--sort-by=.metadata.name", "-o", "name"]).ok();
    assert_eq!(sorted, "secret/s0\nsecret/s1\nsecret/s2\n");
}

#[test]
fn dry_run_server_writes_nothing() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db3", "--from-literal=a=b", "--dry-run=server"])
        .stdout_is("secret/db3 created (server dry run)\n");
    s.kubectl(&["get", "secret", "db3"]).fails();
    s.kubectl(&["create", "secret", "generic", "db4", "--from-literal=a=b"]).ok();
    s.kubectl(&["delete", "secret", "db4", "--dry-run=server"]).stdout_is("secret \"db4\" deleted (server dry run)\n");
    s.kubectl(&["get", "secret", "db4"]).ok();
}

#[test]
fn explain_and_version() {
    let s = server();
    let out = s.kubectl(&["explain", "secret.data"]).ok();
    assert!(out.contains("KIND:       Secret"), "{out}");
    assert!(out.contains("FIELD: data <map[string]string>"), "{out}");
    let v = s.kubectl(&["version", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "32");
}

#[test]
fn restart_keeps_everything() {
    let mut s = server();
    s.kubectl(&["create", "namespace", "keep"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "keep", "--from-literal=a=kept"]).ok();
    let rv = s.kubectl(&["get", "secret", "db", "-n", "keep", "-o", "jsonpath={.metadata.resourceVersion}"]).ok();
    s.restart();
    let a = s.kubectl(&["get", "secret", "db", "-n", "keep", "-o", "jsonpath={.data.a}"]).ok();
    assert_eq!(b64d(&a), "kept");
    let rv2 = s.kubectl(&["get", "secret", "db", "-n", "keep", "-o", "jsonpath={.metadata.resourceVersion}"]).ok();
    assert_eq!(rv, rv2);
    // The admin kubeconfig and certificates were reused, not regenerated.
    s.kubectl(&["get", "namespaces", "-o", "name"]).ok();
}
