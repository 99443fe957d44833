//! "No leaks, anywhere" (issue 3; reliability.md 2.1: CVE-2019-11250, CVE-2020-8565,
//! CVE-2020-8564, CVE-2025-4166, CVE-2024-8365, kubernetes#23564).
//!
//! Unique canaries go into every place a secret can enter the server — secret values through
//! `--from-literal`, `stringData` through client-side apply (which also writes the
//! last-applied annotation), a docker-registry password, a static token, ServiceAccount tokens
//! from `kubectl create token`, garbage bearer tokens, invalid and oversized bodies — while the
//! server runs at its most verbose logging (`STRONGROOM_LOG=trace`) with an audit policy that
//! records every request at `RequestResponse`. Every endpoint and error path is then driven, and
//! the canaries, plain and base64-encoded, must appear in none of: the server log, the audit
//! log, any error body (raw or as kubectl prints it), any view that never carries values (Tables,
//! PartialObjectMetadata, `-o name`, reviews), `/metrics`, and the data directory.
//!
//! Successful authorized reads of a secret (and the write responses that echo the object, and
//! the TokenRequest that hands out a token) legitimately carry the values: those are not
//! searched. The sweep collects every finding before failing, so one run names every leak.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Value, json};
use strongroom_testkit::{Run, Server, contains, read_tree};

use crate::token_attacks::{Answer, WHOAMI, WHOAMI_BODY, https};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const JSON: &[u8] = b"application/json";
const MERGE: &[u8] = b"application/merge-patch+json";
const STRATEGIC: &[u8] = b"application/strategic-merge-patch+json";
const JSON_PATCH: &[u8] = b"application/json-patch+json";
const APPLY: &[u8] = b"application/apply-patch+yaml";
const PARTIAL: &[u8] = b"application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const PARTIAL_LIST: &[u8] = b"application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const TABLE: &[u8] = b"application/json;as=Table;g=meta.k8s.io;v=v1";
const MIB: usize = 1024 * 1024;

/// A fresh marker: `canary` and 32 hex digits.
fn canary() -> String {
    format!("canary{}", uuid::Uuid::new_v4().simple())
}

fn b64(s: impl AsRef<[u8]>) -> String {
    STANDARD.encode(s)
}

/// The forms a value can escape in: as is, and base64 (standard and URL-safe) at each of the
/// three alignments it can have inside a longer encoded text (so a canary inside an encoded
/// docker config or an encoded token is found too).
fn needles(value: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("plaintext".to_string(), value.as_bytes().to_vec())];
    for (alphabet, engine) in [("base64", &STANDARD), ("base64url", &URL_SAFE)] {
        for off in 0..3usize {
            let mut buf = vec![b'#'; off];
            buf.extend_from_slice(value.as_bytes());
            let enc = engine.encode(&buf);
            // Only the characters made of the value's bits alone, whatever surrounds it.
            let first = (8 * off).div_ceil(6);
            let last = 8 * (off + value.len()) / 6;
            let needle = enc.as_bytes()[first..last].to_vec();
            if !out.iter().any(|(_, n)| *n == needle) {
                out.push((format!("{alphabet} at offset {off}"), needle));
            }
        }
    }
    out
}

/// What the sweep found. Nothing panics before [`Sweep::finish`].
struct Sweep {
    /// (which canary, in which form, the bytes)
    needles: Vec<(String, String, Vec<u8>)>,
    /// Every canary value, to mask them in reports.
    values: Vec<String>,
    problems: Vec<String>,
    /// Error bodies and kubectl error outputs checked, for the report's sanity line.
    errors_checked: usize,
}

impl Sweep {
    fn new() -> Sweep {
        Sweep { needles: Vec::new(), values: Vec::new(), problems: Vec::new(), errors_checked: 0 }
    }

    /// Adds `value` (named `label`) to what must never leak.
    fn watch_for(&mut self, label: &str, value: &str) {
        for (form, bytes) in needles(value) {
            self.needles.push((label.to_string(), form, bytes));
        }
        self.values.push(value.to_string());
    }

    /// A new canary, watched for.
    fn canary(&mut self, label: &str) -> String {
        let c = canary();
        self.watch_for(label, &c);
        c
    }

    fn mask(&self, text: &str) -> String {
        let mut t = text.to_string();
        for v in &self.values {
            t = t.replace(v.as_str(), "<CANARY>");
        }
        t
    }

    /// `bytes` (from `site`) must hold no form of any canary.
    fn check(&mut self, site: &str, bytes: &[u8]) {
        // Every needle is ASCII, so searching the lossy text finds exactly the byte matches; and
        // `str::find` (the standard library's optimized searcher) keeps a multi-megabyte trace
        // log quick to sweep in a debug build.
        let text = String::from_utf8_lossy(bytes);
        let mut found = Vec::new();
        for (label, form, needle) in &self.needles {
            let needle = std::str::from_utf8(needle).expect("needles are ASCII");
            if let Some(at) = text.find(needle) {
                let from = text.floor_char_boundary(at.saturating_sub(150));
                let to = text.ceil_char_boundary((at + needle.len() + 150).min(text.len()));
                let excerpt = text[from..to].replace(needle, &format!("<<{label} as {form}>>"));
                found.push(format!("LEAK in {site}: {label} as {form}: …{}…", self.mask(&excerpt)));
            }
        }
        self.problems.extend(found);
    }

    /// An error answer: its status is one of `want`, and neither its head nor its body holds a
    /// canary.
    fn error(&mut self, case: &str, a: &Answer, want: &[u16]) {
        self.errors_checked += 1;
        if !want.contains(&a.status) {
            let body = self.mask(&a.body.chars().take(400).collect::<String>());
            self.problems.push(format!("{case}: expected HTTP {want:?}, got {}: {body}", a.status));
        }
        self.check(&format!("{case}: error response head"), a.head.as_bytes());
        self.check(&format!("{case}: error response body"), a.body.as_bytes());
    }

    /// A success whose answer never carries values (Tables, PartialObjectMetadata, reviews).
    fn value_free(&mut self, case: &str, a: &Answer, want: u16) {
        if a.status != want {
            let body = self.mask(&a.body.chars().take(400).collect::<String>());
            self.problems.push(format!("{case}: expected HTTP {want}, got {}: {body}", a.status));
        }
        self.check(&format!("{case}: response head"), a.head.as_bytes());
        self.check(&format!("{case}: response body (a view without values)"), a.body.as_bytes());
    }

    /// A success that may carry values in its body (an authorized read or a write's echo); its
    /// head may not.
    fn success(&mut self, case: &str, a: &Answer, want: u16) {
        if a.status != want {
            let body = self.mask(&a.body.chars().take(400).collect::<String>());
            self.problems.push(format!("{case}: expected HTTP {want}, got {}: {body}", a.status));
        }
        self.check(&format!("{case}: response head"), a.head.as_bytes());
    }

    /// kubectl: whether it should succeed, and whether its stdout may hold a value. Its stderr
    /// (where kubectl prints the server's error messages) never may.
    fn kubectl(&mut self, case: &str, run: &Run, expect_success: Option<bool>, stdout_may_hold_values: bool) {
        let ok = run.output.status.success();
        if let Some(want) = expect_success
            && ok != want
        {
            let what = if want { "succeed" } else { "fail" };
            let (out, err) = (self.mask(&run.stdout()), self.mask(&run.stderr()));
            self.problems.push(format!("{case}: kubectl should {what}\n  stdout: {out}\n  stderr: {err}"));
        }
        if !ok {
            self.errors_checked += 1;
        }
        self.check(&format!("{case}: kubectl stderr"), &run.output.stderr);
        if !stdout_may_hold_values {
            self.check(&format!("{case}: kubectl stdout (a view without values)"), &run.output.stdout);
        }
    }

    /// The positive control: a successful read returns the value, or the needles are wrong.
    fn must_hold(&mut self, case: &str, bytes: &[u8], value: &str) {
        if !contains(bytes, value.as_bytes()) {
            let shown = self.mask(&String::from_utf8_lossy(bytes));
            self.problems.push(format!("{case}: the successful read does not return the value: {shown}"));
        }
    }
}

fn manifest(name: &str, body: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{body}")
}

fn secret_json(name: &str, rest: &str) -> Vec<u8> {
    let sep = if rest.is_empty() { "" } else { "," };
    format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}"}}{sep}{rest}}}"#).into_bytes()
}

/// The signature segment of a compact JWS: the part of a token that cannot be recomputed, so a
/// log that printed only part of a token is still caught.
fn signature_segment(token: &str) -> &str {
    token.rsplit('.').next().unwrap_or(token)
}

#[tokio::test]
async fn canaries_never_reach_logs_audit_error_bodies_or_metrics() {
    let mut sw = Sweep::new();
    let files = tempfile::tempdir().expect("temp dir");
    let static_token = sw.canary("the static token");
    let token_file = files.path().join("tokens.csv");
    std::fs::write(&token_file, format!("{static_token},canary-user,canary-uid,\"canary-devs\"\n")).expect("write");
    let policy = files.path().join("audit-policy.yaml");
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n")
        .expect("write");
    let s = Server::start_with_log(
        env!("CARGO_BIN_EXE_strongroom"),
        &[
            "--token-auth-file",
            token_file.to_str().expect("UTF-8"),
            "--audit-policy-file",
            policy.to_str().expect("UTF-8"),
        ],
        "trace",
    );
    let admin = s.kubeconfig();
    let admin = admin.as_path();

    // ---- Values in: secrets through kubectl, as users write them --------------------------------
    let literal = sw.canary("a --from-literal value");
    let run = s.kubectl(&["create", "secret", "generic", "lit", &format!("--from-literal=pw={literal}")]);
    sw.kubectl("create secret generic --from-literal", &run, Some(true), false);
    let string_data = sw.canary("a stringData value (client-side apply)");
    let applied_data = sw.canary("a data value (client-side apply)");
    let m = manifest("applied", &format!("stringData:\n  user: {string_data}\ndata:\n  pw: {}\n", b64(&applied_data)));
    let run = s.kubectl_stdin(&["apply", "-f", "-"], &m);
    sw.kubectl("apply -f (client-side, stringData)", &run, Some(true), false);
    let docker = sw.canary("a docker-registry password");
    let run = s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=r.example",
        "--docker-username=u",
        &format!("--docker-password={docker}"),
    ]);
    sw.kubectl("create secret docker-registry", &run, Some(true), false);

    // Positive controls: the values are really stored and served (or the needles are wrong).
    let run = s.kubectl(&["get", "secret", "lit", "-o", "jsonpath={.data.pw}"]);
    sw.must_hold("get lit", &run.output.stdout, &b64(&literal));
    let run = s.kubectl(&["get", "secret", "applied", "-o", "jsonpath={.data.user}"]);
    sw.must_hold("get applied", &run.output.stdout, &b64(&string_data));
    let run = s.kubectl(&["get", "secret", "reg", "-o", "jsonpath={.data.\\.dockerconfigjson}"]);
    let wire = run.ok();
    let config = STANDARD.decode(wire.trim()).unwrap_or_default();
    sw.must_hold("get reg (decoded)", &config, &docker);
    // The config's own base64 (holding the password twice encoded, in `auth`) as it is on the wire.
    sw.watch_for("the docker config's wire value", wire.trim());

    // ---- Tokens in ------------------------------------------------------------------------------
    s.kubectl(&["create", "serviceaccount", "app"]).ok();
    let mut tokens = Vec::new();
    for (label, args) in [
        ("a token of default", vec!["create", "token", "default"]),
        ("an audience-scoped token", vec!["create", "token", "app", "--audience=vault", "--duration=10m"]),
        (
            "a secret-bound token",
            vec!["create", "token", "app", "--bound-object-kind=Secret", "--bound-object-name=lit"],
        ),
    ] {
        let run = s.kubectl(&args);
        // The TokenRequest's answer is where a token is meant to be: stdout is not searched.
        sw.kubectl(label, &run, Some(true), true);
        let token = run.stdout().trim().to_string();
        assert_eq!(token.split('.').count(), 3, "{label}: {token:?}");
        sw.watch_for(label, &token);
        sw.watch_for(&format!("the signature of {label}"), signature_segment(&token));
        tokens.push(token);
    }
    let (sa_token, vault_token, bound_token) = (tokens[0].clone(), tokens[1].clone(), tokens[2].clone());
    let sa_kc = s.token_kubeconfig("sa", &sa_token);
    let static_kc = s.token_kubeconfig("static", &static_token);
    let bound_kc = s.token_kubeconfig("bound", &bound_token);
    let mallory = s.user_kubeconfig("mallory", &[]);

    // ---- Reads by the admin: values allowed in the answer, never in stderr ----------------------
    for args in [
        &["get", "secret", "lit", "-o", "json"][..],
        &["get", "secret", "applied", "-o", "yaml"],
        &["get", "secrets", "-A", "-o", "json"],
        &["get", "secret", "reg", "-o", "jsonpath={.data}"],
    ] {
        let run = s.kubectl(args);
        sw.kubectl(&format!("kubectl {}", args.join(" ")), &run, Some(true), true);
    }
    // Views that never carry a value.
    for args in [
        &["get", "secrets"][..],
        &["get", "secrets", "-A", "-o", "wide", "--show-labels"],
        &["get", "secret", "lit", "-o", "name"],
        &["get", "secrets", "-o", "name"],
        &["describe", "secret", "lit", "applied", "reg"],
        &["get", "serviceaccounts", "-o", "yaml"],
        &["apply", "view-last-applied", "secret", "applied"],
        &["get", "secret", "applied", "-o", "jsonpath={.metadata}"],
    ] {
        let run = s.kubectl(args);
        sw.kubectl(&format!("kubectl {}", args.join(" ")), &run, Some(true), false);
    }
    // A table watch ends at its request timeout; whatever its exit status, it shows no value.
    let run = s.kubectl(&["get", "secrets", "-w", "--request-timeout=2s"]);
    sw.kubectl("kubectl get secrets -w (table)", &run, None, false);
    let run = s.kubectl(&["get", "secrets", "-w", "-o", "json", "--request-timeout=2s"]);
    sw.kubectl("kubectl get secrets -w -o json", &run, None, true);

    let get = |path: String, accept: &'static [u8]| {
        let s = &s;
        async move { https(s, Some(admin), "GET", &path, &[("Accept", accept)], b"").await }
    };
    let a = get(format!("{SECRETS}/lit"), JSON).await;
    sw.success("raw GET lit", &a, 200);
    sw.must_hold("raw GET lit", a.body.as_bytes(), &b64(&literal));
    let a = get(format!("{SECRETS}?watch=true&timeoutSeconds=1"), JSON).await;
    sw.success("raw watch (JSON)", &a, 200);
    sw.must_hold("raw watch (JSON)", a.body.as_bytes(), &b64(&literal));
    for (case, path, accept) in [
        ("PartialObjectMetadata of lit", format!("{SECRETS}/lit"), PARTIAL),
        ("PartialObjectMetadata of applied", format!("{SECRETS}/applied"), PARTIAL),
        ("PartialObjectMetadataList", SECRETS.to_string(), PARTIAL_LIST),
        ("Table of secrets", SECRETS.to_string(), TABLE),
        ("Table of applied", format!("{SECRETS}/applied"), TABLE),
        ("Table watch", format!("{SECRETS}?watch=true&timeoutSeconds=1"), TABLE),
        ("PartialObjectMetadata watch", format!("{SECRETS}?watch=true&timeoutSeconds=1"), PARTIAL),
    ] {
        let a = get(path, accept).await;
        sw.value_free(case, &a, 200);
    }
    // A delete-collection (dry run) answers the deleted Secrets without their values, as a single
    // delete answers a Status: permission to delete is not permission to read.
    let a = https(&s, Some(admin), "DELETE", &format!("{SECRETS}?dryRun=All"), &[("Accept", JSON)], b"").await;
    sw.value_free("delete-collection of secrets (dry run)", &a, 200);
    sw.must_hold("delete-collection of secrets (dry run)", a.body.as_bytes(), "\"name\":\"lit\"");

    // ---- Writes, and every way they can fail ----------------------------------------------------
    let patched = sw.canary("a patched value");
    for (case, args) in [
        (
            "patch --type=merge",
            vec!["--type=merge".to_string(), format!(r#"{{"data":{{"pw2":"{}"}}}}"#, b64(&patched))],
        ),
        (
            "patch --type=json",
            vec![
                "--type=json".to_string(),
                format!(r#"[{{"op":"add","path":"/data/pw3","value":"{}"}}]"#, b64(&patched)),
            ],
        ),
        (
            "patch (strategic)",
            vec!["--type=strategic".to_string(), format!(r#"{{"stringData":{{"pw4":"{patched}"}}}}"#)],
        ),
    ] {
        let run = s.kubectl(&[&["patch", "secret", "lit", "-p", &args[1]][..], &[args[0].as_str()]].concat());
        sw.kubectl(case, &run, Some(true), false);
    }
    let bad = sw.canary("a value in a refused body");
    let b_bad = b64(&bad);
    let raw = |method: &'static str, path: String, ct: &'static [u8], body: Vec<u8>| {
        let s = &s;
        async move { https(s, Some(admin), method, &path, &[("Content-Type", ct), ("Accept", JSON)], &body).await }
    };
    let lit = || format!("{SECRETS}/lit");
    let patches: Vec<(&str, &'static [u8], String, &[u16])> = vec![
        ("merge patch that is not JSON", MERGE, format!(r#"{{"data":{{"pw":"{b_bad}""#), &[400]),
        ("merge patch with invalid base64", MERGE, format!(r#"{{"data":{{"pw":"{bad}!*"}}}}"#), &[400, 422]),
        ("merge patch with a bad key", MERGE, format!(r#"{{"data":{{"bad key!":"{b_bad}"}}}}"#), &[422]),
        ("merge patch with a wrong type", MERGE, format!(r#"{{"data":{{"pw":["{bad}"]}}}}"#), &[400, 422]),
        (
            "JSON patch with a failing test op",
            JSON_PATCH,
            format!(r#"[{{"op":"test","path":"/data/pw","value":"{b_bad}"}}]"#),
            &[400, 409, 422],
        ),
        (
            "JSON patch with an unknown op",
            JSON_PATCH,
            format!(r#"[{{"op":"frobnicate","path":"/data/pw","value":"{b_bad}"}}]"#),
            &[400, 422],
        ),
        (
            "JSON patch that is not an array",
            JSON_PATCH,
            format!(r#"{{"op":"add","path":"/data/x","value":"{b_bad}"}}"#),
            &[400, 422],
        ),
        (
            "JSON patch to a missing path",
            JSON_PATCH,
            format!(r#"[{{"op":"replace","path":"/nope/x","value":"{b_bad}"}}]"#),
            &[400, 422],
        ),
        ("strategic patch that is not JSON", STRATEGIC, format!(r#"{{"stringData":{{"pw":"{bad}"#), &[400]),
        (
            "strategic patch with a wrong type",
            STRATEGIC,
            format!(r#"{{"stringData":{{"pw":{{"x":"{bad}"}}}}}}"#),
            &[400, 422],
        ),
        (
            "strategic patch with a bad $patch directive",
            STRATEGIC,
            format!(r#"{{"$patch":"{bad}","data":{{"pw":"{b_bad}"}}}}"#),
            &[400, 422],
        ),
        (
            "apply patch without a field manager",
            APPLY,
            manifest("lit", &format!("data:\n  pw: {b_bad}\n")),
            &[400, 422],
        ),
    ];
    // A JSON patch can carry a stored value (`copy`/`move` from `/data/pw`) into a field that a
    // later check quotes in its error: name, apiVersion, kind, uid, type, a label. None may.
    let carried = [
        ("/metadata/name", "the name"),
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/uid", "the uid"),
        ("/type", "the immutable type"),
        ("/metadata/labels/x", "a label"),
        ("/metadata/annotations/x", "an annotation"),
    ];
    let mut patches = patches;
    for (path, what) in carried {
        for (op, from) in [("copy", "/data/pw"), ("move", "/data/pw"), ("copy", "x/data/pw")] {
            let case: &'static str = format!("JSON patch that {op}s {from} into {what}").leak();
            let body = format!(r#"[{{"op":"{op}","from":"{from}","path":"{path}"}}]"#);
            patches.push((case, JSON_PATCH, body, &[400, 409, 422]));
        }
    }
    for (case, ct, body, want) in patches {
        let a = raw("PATCH", lit(), ct, body.into_bytes()).await;
        sw.error(case, &a, want);
    }
    let a = raw(
        "PATCH",
        format!("{}?fieldManager=raw", lit()),
        APPLY,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: lit\ndata: {{pw: [{bad}, \"{bad}\n").into_bytes(),
    )
    .await;
    sw.error("malformed apply patch YAML", &a, &[400]);
    let a = raw(
        "PUT",
        lit(),
        JSON,
        format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"lit","resourceVersion":"1"}},"data":{{"pw":"{b_bad}"}}}}"#)
            .into_bytes(),
    )
    .await;
    sw.error("update with a stale resourceVersion (conflict)", &a, &[409]);
    let run = s.kubectl_stdin(
        &["replace", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: lit\n  resourceVersion: \"1\"\ndata:\n  pw: {b_bad}\n"
        ),
    );
    sw.kubectl("kubectl replace with a stale resourceVersion", &run, Some(false), false);
    let a = raw("PUT", lit(), JSON, secret_json("other", &format!(r#""data":{{"pw":"{b_bad}"}}"#))).await;
    sw.error("update whose body names another object", &a, &[400, 422]);

    let post = |body: Vec<u8>| raw("POST", format!("{SECRETS}?fieldValidation=Strict"), JSON, body);
    let invalid: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("a bad key name", secret_json("e1", &format!(r#""data":{{"bad key!":"{b_bad}"}}"#)), &[422]),
        ("a bad stringData key", secret_json("e2", &format!(r#""stringData":{{"a/b":"{bad}"}}"#)), &[422]),
        (
            "an oversized value",
            secret_json("e3", &format!(r#""stringData":{{"v":"{bad}{}"}}"#, "x".repeat(MIB + 1))),
            &[413, 422],
        ),
        ("duplicate keys", secret_json("e4", &format!(r#""data":{{"v":"{b_bad}","v":"{b_bad}"}}"#)), &[400]),
        ("duplicate data", secret_json("e5", &format!(r#""data":{{"v":"{b_bad}"}},"data":{{"w":"{b_bad}"}}"#)), &[400]),
        ("bad base64", secret_json("e6", &format!(r#""data":{{"v":"{bad}!*"}}"#)), &[400]),
        (
            "base64 without padding",
            secret_json("e7", &format!(r#""data":{{"v":"{}"}}"#, b_bad.trim_end_matches('='))),
            &[400],
        ),
        ("data is a string", secret_json("e8", &format!(r#""data":"{bad}""#)), &[400]),
        ("stringData value is an array", secret_json("e9", &format!(r#""stringData":{{"v":["{bad}"]}}"#)), &[400]),
        ("immutable is a string", secret_json("e10", &format!(r#""immutable":"{bad}""#)), &[400]),
        ("type is an object", secret_json("e11", &format!(r#""type":{{"t":"{bad}"}}"#)), &[400]),
        ("unknown field (Strict)", secret_json("e12", &format!(r#""spec":{{"v":"{bad}"}}"#)), &[400]),
        (
            "malformed .dockerconfigjson",
            secret_json(
                "e13",
                &format!(
                    r#""type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{}"}}"#,
                    b64(format!(r#"{{"auths":{{"r.example":{{"password":"{bad}""#))
                ),
            ),
            &[422],
        ),
        (
            "tls without tls.key",
            secret_json("e14", &format!(r#""type":"kubernetes.io/tls","data":{{"tls.crt":"{b_bad}"}}"#)),
            &[422],
        ),
        ("truncated JSON", secret_json("e15", &format!(r#""stringData":{{"v":"{bad}"#)), &[400]),
        ("invalid name", secret_json("Bad_Name", &format!(r#""data":{{"v":"{b_bad}"}}"#)), &[422]),
        ("already exists", secret_json("lit", &format!(r#""data":{{"v":"{b_bad}"}}"#)), &[409]),
    ];
    for (case, body, want) in invalid {
        let a = post(body).await;
        sw.error(&format!("create with {case}"), &a, want);
    }
    let a = raw(
        "POST",
        format!("{SECRETS}?dryRun=All"),
        JSON,
        secret_json("dry", &format!(r#""data":{{"bad key!":"{b_bad}"}}"#)),
    )
    .await;
    sw.error("dry-run create with a bad key", &a, &[422]);
    let a = raw("POST", SECRETS.to_string(), b"text/plain", bad.clone().into_bytes()).await;
    sw.error("a text/plain body", &a, &[415]);
    for (case, m) in [
        ("kubectl create -f with a bad key", manifest("k1", &format!("data:\n  \"bad key!\": {b_bad}\n"))),
        ("kubectl create -f with bad base64", manifest("k2", &format!("data:\n  v: \"{bad}!*\"\n"))),
        ("kubectl apply -f with a bad stringData key", manifest("k3", &format!("stringData:\n  \"a/b\": {bad}\n"))),
    ] {
        let verb = if case.contains("apply") { "apply" } else { "create" };
        let run = s.kubectl_stdin(&[verb, "-f", "-"], &m);
        sw.kubectl(case, &run, Some(false), false);
    }
    let run = s.kubectl_stdin(
        &["create", "-f", "-"],
        &manifest("frozen", &format!("immutable: true\ndata:\n  v: {}\n", b64(&literal))),
    );
    sw.kubectl("create an immutable secret", &run, Some(true), false);
    let run =
        s.kubectl(&["patch", "secret", "frozen", "--type=merge", "-p", &format!(r#"{{"data":{{"v":"{b_bad}"}}}}"#)]);
    sw.kubectl("patch an immutable secret", &run, Some(false), false);
    let dry = sw.canary("a dry-run value");
    let run = s.kubectl(&[
        "create",
        "secret",
        "generic",
        "dry",
        &format!("--from-literal=v={dry}"),
        "--dry-run=server",
        "-o",
        "name",
    ]);
    sw.kubectl("create --dry-run=server -o name", &run, Some(true), false);

    // Server-side apply and its conflict.
    let ssa = sw.canary("a server-side applied value");
    let run = s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &manifest("ssa", &format!("data:\n  p: {}\n", b64(&ssa))),
    );
    sw.kubectl("apply --server-side", &run, Some(true), false);
    let run = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &manifest("ssa", &format!("data:\n  p: {b_bad}\n")),
    );
    sw.kubectl("apply --server-side: conflict", &run, Some(false), false);
    let a = raw(
        "PATCH",
        format!("{SECRETS}/ssa?fieldManager=raw&force=false"),
        APPLY,
        manifest("ssa", &format!("data:\n  p: {b_bad}\n")).into_bytes(),
    )
    .await;
    sw.error("raw server-side apply conflict", &a, &[409]);

    // ---- Forbidden ------------------------------------------------------------------------------
    let forbidden = sw.canary("a value sent without permission");
    let b_forbidden = b64(&forbidden);
    for (who, kc) in
        [("mallory (certificate)", &mallory), ("the static token user", &static_kc), ("a ServiceAccount token", &sa_kc)]
    {
        for args in [
            &["get", "secret", "lit"][..],
            &["get", "secrets", "-o", "yaml"],
            &["create", "secret", "generic", "m", &format!("--from-literal=v={forbidden}")],
            &["create", "token", "default"],
            &["delete", "secret", "lit"],
        ] {
            let run = s.kubectl_as(kc, args);
            sw.kubectl(&format!("{who}: kubectl {}", args[..2].join(" ")), &run, Some(false), false);
        }
        // A value that must not be echoed back by a Forbidden answer.
        let run =
            s.kubectl_as(kc, &["patch", "secret", "lit", "-p", &format!(r#"{{"stringData":{{"pw":"{forbidden}"}}}}"#)]);
        sw.kubectl(&format!("{who}: patch"), &run, Some(false), false);
        for args in [
            &["auth", "whoami"][..],
            &["auth", "whoami", "-o", "json"],
            &["auth", "can-i", "--list"],
            &["auth", "can-i", "get", "secrets"],
        ] {
            let run = s.kubectl_as(kc, args);
            sw.kubectl(&format!("{who}: kubectl {}", args.join(" ")), &run, None, false);
        }
    }
    let as_mallory = |method: &'static str, path: String, extra: Vec<(&'static str, Vec<u8>)>, body: Vec<u8>| {
        let (s, mallory) = (&s, &mallory);
        async move {
            let mut headers: Vec<(&str, &[u8])> = vec![("Content-Type", JSON), ("Accept", JSON)];
            headers.extend(extra.iter().map(|(k, v)| (*k, v.as_slice())));
            https(s, Some(mallory), method, &path, &headers, &body).await
        }
    };
    let forbidden_body =
        secret_json("m", &format!(r#""data":{{"v":"{b_forbidden}"}},"stringData":{{"w":"{forbidden}"}}"#));
    for (case, method, path, body) in [
        ("create", "POST", SECRETS.to_string(), forbidden_body.clone()),
        ("update", "PUT", lit(), forbidden_body.clone()),
        ("get", "GET", lit(), Vec::new()),
        ("list", "GET", SECRETS.to_string(), Vec::new()),
        ("watch", "GET", format!("{SECRETS}?watch=true&timeoutSeconds=1"), Vec::new()),
        ("delete", "DELETE", lit(), Vec::new()),
        (
            "TokenRequest",
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/default/token".to_string(),
            br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#.to_vec(),
        ),
        (
            "TokenReview",
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews".to_string(),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": forbidden}})
                .to_string()
                .into_bytes(),
        ),
    ] {
        let a = as_mallory(method, path, Vec::new(), body).await;
        sw.error(&format!("mallory: raw {case}"), &a, &[403]);
    }
    let a = as_mallory("GET", lit(), vec![("Impersonate-User", b"strongroom-admin".to_vec())], Vec::new()).await;
    sw.error("mallory impersonating the admin", &a, &[403]);
    let a = as_mallory(
        "PATCH",
        lit(),
        vec![("Content-Type", MERGE.to_vec())],
        format!(r#"{{"data":{{"pw":"{b_forbidden}"}}}}"#).into_bytes(),
    )
    .await;
    sw.error("mallory: raw merge patch", &a, &[403, 415]);
    let run = s.kubectl(&["get", "secret", "lit", "--as=mallory"]);
    sw.kubectl("the admin impersonating mallory", &run, Some(false), false);
    for args in [
        &["auth", "can-i", "get", "secret", "lit", "--as=mallory"][..],
        &["auth", "can-i", "--list", "--as=system:serviceaccount:default:app"],
        &["auth", "whoami"],
        &["auth", "can-i", "--list"],
    ] {
        let run = s.kubectl(args);
        sw.kubectl(&format!("kubectl {}", args.join(" ")), &run, None, false);
    }

    // ---- 401: bad and malformed credentials -----------------------------------------------------
    let bearer_canary = sw.canary("a garbage bearer token");
    let jwt_shaped = format!("{bearer_canary}.{bearer_canary}.{bearer_canary}");
    let basic = format!("Basic {}", b64(format!("admin:{bearer_canary}")));
    let one = format!("Bearer {bearer_canary}").into_bytes();
    let unauthorized: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("a garbage bearer token", vec![one.clone()]),
        ("a JWT-shaped garbage token", vec![format!("Bearer {jwt_shaped}").into_bytes()]),
        ("two tokens in one header", vec![format!("Bearer {bearer_canary} {bearer_canary}").into_bytes()]),
        ("a token without a scheme", vec![bearer_canary.clone().into_bytes()]),
        ("Basic credentials", vec![basic.into_bytes()]),
        ("two Authorization headers", vec![one.clone(), one.clone()]),
        ("a lowercase scheme", vec![format!("bearer {bearer_canary}").into_bytes()]),
        ("the static token with a trailing byte", vec![format!("Bearer {static_token}x").into_bytes()]),
        ("the SA token with trailing garbage", vec![format!("Bearer {sa_token}{bearer_canary}").into_bytes()]),
        ("a canary after non-UTF-8 bytes", vec![[&b"Bearer \xff"[..], bearer_canary.as_bytes()].concat()]),
    ];
    for (case, values) in &unauthorized {
        for (what, path, method, body) in
            [("list secrets", SECRETS, "GET", &b""[..]), ("whoami", WHOAMI, "POST", WHOAMI_BODY)]
        {
            let mut headers: Vec<(&str, &[u8])> = vec![("Content-Type", JSON)];
            headers.extend(values.iter().map(|v| ("Authorization", v.as_slice())));
            let a = https(&s, None, method, path, &headers, body).await;
            sw.error(&format!("401 for {case} ({what})"), &a, &[401]);
        }
    }
    let bad_kc = s.token_kubeconfig("garbage", &bearer_canary);
    for args in [
        &["get", "secrets"][..],
        &["auth", "whoami"],
        &["create", "secret", "generic", "x", &format!("--from-literal=v={bad}")],
    ] {
        let run = s.kubectl_as(&bad_kc, args);
        sw.kubectl(&format!("kubectl with a garbage token: {}", args[..2].join(" ")), &run, Some(false), false);
    }

    // ---- TokenReview, SelfSubjectReview, access reviews -----------------------------------------
    let review_canary = sw.canary("a garbage token in a TokenReview");
    let review = |token: Value, audiences: Option<Value>| {
        let mut spec = json!({"token": token});
        if let Some(a) = audiences {
            spec["audiences"] = a;
        }
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}).to_string().into_bytes()
    };
    let reviews = "/apis/authentication.k8s.io/v1/tokenreviews".to_string();
    for (case, body, want) in [
        ("TokenReview of a garbage token", review(json!(review_canary), None), 201),
        (
            "TokenReview of a JWT-shaped garbage token",
            review(json!(format!("{review_canary}.e30.{review_canary}")), None),
            201,
        ),
        ("TokenReview of a valid token", review(json!(sa_token), None), 201),
        ("TokenReview of the static token", review(json!(static_token), None), 201),
        ("TokenReview of an audience-scoped token", review(json!(vault_token), Some(json!(["vault"]))), 201),
        ("TokenReview of an audience-scoped token for the API", review(json!(vault_token), None), 201),
    ] {
        let a = raw("POST", reviews.clone(), JSON, body).await;
        // TokenReview answers never echo the token (documented), whatever the verdict.
        sw.value_free(case, &a, want);
    }
    for (case, body) in [
        ("TokenReview with audiences of the wrong type", review(json!(review_canary), Some(json!(review_canary)))),
        ("TokenReview with a token of the wrong type", review(json!([review_canary]), None)),
        (
            "TokenReview with an unknown field",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": review_canary, "tok": review_canary}}).to_string().into_bytes(),
        ),
        ("TokenReview that is not JSON", format!(r#"{{"spec":{{"token":"{review_canary}""#).into_bytes()),
    ] {
        let a = raw("POST", reviews.clone(), JSON, body).await;
        sw.check(&format!("{case}: response (status {})", a.status), a.body.as_bytes());
        sw.check(&format!("{case}: response head"), a.head.as_bytes());
        sw.errors_checked += 1;
    }
    // `--validate=false`: kubectl validates create-only kinds against /openapi/v2, which is not
    // served (README).
    let run = s.kubectl_stdin(
        &["create", "-f", "-", "-o", "json", "--validate=false"],
        &format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {sa_token}\n"),
    );
    sw.kubectl("kubectl create -f TokenReview", &run, Some(true), false);
    for kc in [&sa_kc, &static_kc] {
        let run = s.kubectl_as(kc, &["auth", "whoami", "-o", "yaml"]);
        sw.kubectl("kubectl auth whoami with a token", &run, Some(true), false);
    }
    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "name": "lit", "namespace": "default"}}});
    let a = https(
        &s,
        None,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[("Content-Type", JSON), ("Authorization", format!("Bearer {sa_token}").as_bytes())],
        ssar.to_string().as_bytes(),
    )
    .await;
    sw.value_free("SelfSubjectAccessReview with a token", &a, 201);
    let ssrr = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}});
    let a = https(
        &s,
        None,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        &[("Content-Type", JSON), ("Authorization", format!("Bearer {static_token}").as_bytes())],
        ssrr.to_string().as_bytes(),
    )
    .await;
    sw.value_free("SelfSubjectRulesReview with the static token", &a, 201);

    // ---- TokenRequest errors --------------------------------------------------------------------
    for (case, args) in [
        ("create token --duration=5m", &["create", "token", "default", "--duration=5m"][..]),
        ("create token for a missing account", &["create", "token", "nobody"]),
        (
            "create token bound to a missing secret",
            &["create", "token", "app", "--bound-object-kind=Secret", "--bound-object-name=nope"],
        ),
        (
            "create token bound to a pod",
            &["create", "token", "app", "--bound-object-kind=Pod", "--bound-object-name=p"],
        ),
    ] {
        let run = s.kubectl(args);
        sw.kubectl(case, &run, Some(false), false);
    }

    // ---- Deletes, and the tokens they revoke ----------------------------------------------------
    let a = raw(
        "DELETE",
        lit(),
        JSON,
        br#"{"apiVersion":"v1","kind":"DeleteOptions","preconditions":{"uid":"00000000-0000-0000-0000-000000000000"}}"#
            .to_vec(),
    )
    .await;
    sw.error("delete with a failing uid precondition", &a, &[409]);
    let a = raw("DELETE", format!("{SECRETS}/nope"), JSON, Vec::new()).await;
    sw.error("delete of a missing secret", &a, &[404]);
    let run = s.kubectl_as(&bound_kc, &["auth", "whoami"]);
    sw.kubectl("the bound token before its secret is deleted", &run, Some(true), false);
    for args in [&["delete", "secret", "reg"][..], &["delete", "secret", "lit"], &["delete", "serviceaccount", "app"]] {
        let run = s.kubectl(args);
        sw.kubectl(&format!("kubectl {}", args.join(" ")), &run, Some(true), false);
    }
    let run = s.kubectl_as(&bound_kc, &["get", "secrets"]);
    sw.kubectl("the bound token after its secret is deleted", &run, Some(false), false);
    let a = raw("POST", reviews.clone(), JSON, review(json!(vault_token), Some(json!(["vault"])))).await;
    sw.value_free("TokenReview of a token of a deleted account", &a, 201);
    if a.body.contains(r#""authenticated":true"#) {
        sw.problems.push(format!("a token of a deleted ServiceAccount still authenticates: {}", sw.mask(&a.body)));
    }

    // ---- The audit query ------------------------------------------------------------------------
    let audit_log = s.data_dir().join("audit.log");
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["audit", "reads", "--log"])
        .arg(&audit_log)
        .args(["--namespace", "default", "--secret", "lit"])
        .output()
        .expect("run strongroom audit reads");
    if !out.status.success() || out.stdout.is_empty() {
        sw.problems.push(format!("strongroom audit reads failed: {}", sw.mask(&String::from_utf8_lossy(&out.stderr))));
    }
    sw.check("strongroom audit reads: stdout", &out.stdout);
    sw.check("strongroom audit reads: stderr", &out.stderr);

    // ---- /metrics -------------------------------------------------------------------------------
    let metrics = https(&s, Some(admin), "GET", "/metrics", &[], b"").await;
    match metrics.status {
        200 => sw.value_free("GET /metrics", &metrics, 200),
        // Not served (yet): nothing to search. Any other answer is checked as an error body.
        404 => eprintln!("/metrics answers 404: not searched"),
        _ => sw.error("GET /metrics", &metrics, &[200]),
    }

    finish(sw, s);
}

/// Stops the server (SIGTERM flushes everything), searches its log, every audit file and the data
/// directory, and fails with every finding.
fn finish(mut sw: Sweep, mut s: Server) {
    let status = s.terminate();
    if !status.success() {
        sw.problems.push(format!("the server exited with {status} on SIGTERM"));
    }
    let log = s.log_text();
    sw.check("the server log", log.as_bytes());
    if !log.contains(" TRACE ") {
        sw.problems.push("the server log has no TRACE lines: the sweep did not run at trace level".into());
    }
    let mut audit = Vec::new();
    for entry in std::fs::read_dir(s.data_dir()).expect("read the data directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("audit") {
            let bytes = std::fs::read(entry.path()).expect("read an audit file");
            sw.check(&format!("the audit log {name}"), &bytes);
            audit.extend(bytes);
        }
    }
    // The policy really recorded bodies, redacted: otherwise the audit search proves nothing.
    let audit_text = String::from_utf8_lossy(&audit);
    for (what, needle) in [
        ("RequestResponse events", r#""level":"RequestResponse""#),
        ("request bodies", r#""requestObject""#),
        ("response bodies", r#""responseObject""#),
        ("redacted values", "<redacted>"),
    ] {
        if !audit_text.contains(needle) {
            sw.problems.push(format!("the audit log has no {what} ({needle}): the policy was not applied"));
        }
    }
    sw.check("the data directory", &read_tree(&s.data_dir()));
    assert!(sw.errors_checked > 100, "only {} error answers were checked", sw.errors_checked);
    if !sw.problems.is_empty() {
        panic!("{} finding(s) in the canary sweep:\n\n{}", sw.problems.len(), sw.problems.join("\n\n"));
    }
}
