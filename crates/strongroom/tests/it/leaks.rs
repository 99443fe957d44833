//! The canary sweep (reliability item 18; CVE-2025-4166, CVE-2020-8564, kubernetes#23564): a
//! random marker goes into secret values, every success and error path is driven through kubectl
//! and raw requests, and the marker must then appear in no error body, no response header, no
//! kubectl stderr, no server log line (the harness logs `strongroom_server` at debug) and nowhere
//! on disk. The one place it may appear is a successful read of the secret's own value (and the
//! write response that echoes the object, as Kubernetes does).
//!
//! Each test collects every finding before failing, so one run names every leaking path.

use std::hash::{BuildHasher, Hasher};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use http::Request;
use strongroom_testkit::{Run, Server, contains, read_tree};

use crate::server;

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const MIB: usize = 1024 * 1024;

/// A fresh random marker: `CANARY` and 32 hex digits, unique per call.
fn canary() -> String {
    let mut out = String::from("CANARY");
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn b64(s: impl AsRef<[u8]>) -> String {
    STANDARD.encode(s)
}

/// Every form in which a value could escape: as is, base64 (standard and URL-safe) at each of the
/// three alignments it can have inside a longer value, hex, and Rust's `Debug` of its bytes.
fn needles(canary: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("plaintext".to_string(), canary.as_bytes().to_vec())];
    for (alphabet, engine) in [("base64", &STANDARD), ("base64url", &URL_SAFE)] {
        for off in 0..3usize {
            let mut buf = vec![b'#'; off];
            buf.extend_from_slice(canary.as_bytes());
            let enc = engine.encode(&buf);
            // Only the characters made of canary bits alone, whatever surrounds it.
            let first = (8 * off).div_ceil(6);
            let last = 8 * (off + canary.len()) / 6;
            let needle = enc.as_bytes()[first..last].to_vec();
            if !out.iter().any(|(_, n)| *n == needle) {
                out.push((format!("{alphabet} at offset {off}"), needle));
            }
        }
    }
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    out.push(("hex".to_string(), hex.into_bytes()));
    let debug: Vec<String> = canary.bytes().skip(6).take(12).map(|b| b.to_string()).collect();
    out.push(("Debug byte list".to_string(), debug.join(", ").into_bytes()));
    out
}

/// An HTTP answer, headers flattened to text so a canary in any header is found too.
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

async fn send(client: &kube::Client, method: &str, uri: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("accept", JSON)
        .body(body.into())
        .unwrap();
    let resp = client.send(req.map(kube::client::Body::from)).await.unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect::<String>();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// What the sweep found. Nothing panics before `finish`, so one run reports every finding.
struct Sweep {
    needles: Vec<(String, Vec<u8>)>,
    canaries: Vec<String>,
    problems: Vec<String>,
}

impl Sweep {
    fn new(canaries: &[&str]) -> Sweep {
        let needles = canaries.iter().flat_map(|c| needles(c)).collect();
        Sweep { needles, canaries: canaries.iter().map(|c| c.to_string()).collect(), problems: Vec::new() }
    }

    /// Text shortened and with every canary masked, for readable reports.
    fn show(&self, text: &str) -> String {
        let mut t: String = text.chars().take(400).collect();
        for c in &self.canaries {
            t = t.replace(c.as_str(), "<CANARY>");
        }
        t
    }

    /// `bytes` must not contain any form of any canary.
    fn check(&mut self, site: &str, bytes: &[u8]) {
        for (form, needle) in &self.needles {
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle.as_slice()) {
                let from = at.saturating_sub(120);
                let to = (at + needle.len() + 120).min(bytes.len());
                let excerpt = String::from_utf8_lossy(&bytes[from..to])
                    .replace(String::from_utf8_lossy(needle).as_ref(), &format!("<<CANARY as {form}>>"));
                self.problems.push(format!("LEAK in {site} (canary as {form}): …{}…", self.show(&excerpt)));
                return;
            }
        }
    }

    /// An error path: the status must be one of `want`, and neither headers nor body may carry
    /// the canary.
    fn error(&mut self, case: &str, r: &Reply, want: &[u16]) {
        if !want.contains(&r.status) {
            let shown = self.show(&r.body);
            self.problems.push(format!("{case}: expected HTTP {want:?}, got {}: {shown}", r.status));
        }
        self.check(&format!("{case}: response headers"), r.headers.as_bytes());
        self.check(&format!("{case}: response body"), r.body.as_bytes());
    }

    /// A write that must succeed; its body echoes the object (allowed), its headers may not.
    fn success(&mut self, case: &str, r: &Reply, want: u16) {
        if r.status != want {
            let shown = self.show(&r.body);
            self.problems.push(format!("{case}: expected HTTP {want}, got {}: {shown}", r.status));
        }
        self.check(&format!("{case}: response headers"), r.headers.as_bytes());
    }

    /// kubectl: stderr never carries the canary; stdout only when `stdout_may_hold_value`.
    fn kubectl(&mut self, case: &str, run: &Run, expect_success: bool, stdout_may_hold_value: bool) {
        if run.output.status.success() != expect_success {
            let what = if expect_success { "succeed" } else { "fail" };
            let (out, err) = (self.show(&run.stdout()), self.show(&run.stderr()));
            self.problems.push(format!("{case}: kubectl should {what}\nstdout: {out}\nstderr: {err}"));
        }
        self.check(&format!("{case}: kubectl stderr"), &run.output.stderr);
        if !stdout_may_hold_value {
            self.check(&format!("{case}: kubectl stdout"), &run.output.stdout);
        }
    }

    /// The positive control: the successful read must hold the value, or the needles are wrong.
    fn must_hold(&mut self, case: &str, bytes: &[u8], value: &str) {
        if !contains(bytes, value.as_bytes()) {
            let shown = self.show(&String::from_utf8_lossy(bytes));
            self.problems.push(format!("{case}: the successful read does not return the value: {shown}"));
        }
    }

    /// Stops the server (SIGTERM, so everything is flushed), sweeps its log and data directory,
    /// and fails with every finding.
    fn finish(mut self, mut s: Server) {
        let status = s.terminate();
        if !status.success() {
            self.problems.push(format!("the server exited with {status} on SIGTERM"));
        }
        let log = s.log_text();
        self.check("the server log", log.as_bytes());
        if !log.contains("DEBUG strongroom_server") {
            self.problems.push("the server log has no debug lines: the sweep did not run at debug level".into());
        }
        let disk = read_tree(&s.data_dir());
        self.check(&format!("the data directory {}", s.data_dir().display()), &disk);
        if !self.problems.is_empty() {
            panic!("{} finding(s):\n\n{}", self.problems.len(), self.problems.join("\n\n"));
        }
    }
}

fn secret_json(name: &str, rest: &str) -> String {
    let sep = if rest.is_empty() { "" } else { "," };
    format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}"}}{sep}{rest}}}"#)
}

#[test]
fn raw_error_paths_never_echo_the_canary() {
    let s = server();
    let c = canary();
    let c2 = canary();
    let mut sweep = Sweep::new(&[&c, &c2]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(raw_sweep(&s, &c, &c2, &mut sweep));
    sweep.finish(s);
}

async fn raw_sweep(s: &Server, c: &str, c2: &str, sweep: &mut Sweep) {
    let client = s.client().await;
    let cl = &client;
    let post =
        |body: String| async move { send(cl, "POST", &format!("{SECRETS}?fieldValidation=Strict"), JSON, body).await };
    let (b, b2) = (b64(c), b64(c2));

    // Successes the error paths below run against.
    let r = post(secret_json("ok", &format!(r#""data":{{"v":"{b}"}}"#))).await;
    sweep.success("create ok", &r, 201);
    let r = send(cl, "GET", &format!("{SECRETS}/ok"), JSON, vec![]).await;
    sweep.must_hold("GET ok", r.body.as_bytes(), &b);
    let r = post(secret_json("frozen", &format!(r#""immutable":true,"data":{{"v":"{b}"}}"#))).await;
    sweep.success("create immutable frozen", &r, 201);
    let ssa = |manager: &str, value: &str| {
        (
            format!("{SECRETS}/ssa?fieldManager={manager}&fieldValidation=Strict&force=false"),
            secret_json("ssa", &format!(r#""data":{{"p":"{value}"}}"#)),
        )
    };
    let (uri, body) = ssa("alpha", &b);
    sweep.success("server-side apply creates ssa", &send(cl, "PATCH", &uri, APPLY, body).await, 201);

    // Request bodies the decoder refuses (400).
    let bad_b64 = [
        ("invalid base64 character", format!("{c}!*")),
        ("URL-safe base64 alphabet", format!("{c}-_-_")),
        // The canary is 38 bytes long, so its base64 ends in one `=`.
        ("base64 without padding", b.trim_end_matches('=').to_string()),
    ];
    for (case, value) in bad_b64 {
        let r = post(secret_json("e", &format!(r#""data":{{"v":"{value}"}}"#))).await;
        sweep.error(case, &r, &[400]);
    }
    let wrong_types = [
        ("data is a string", format!(r#""data":"{c}""#)),
        ("stringData is a string", format!(r#""stringData":"{c}""#)),
        ("stringData value is an array", format!(r#""stringData":{{"v":["{c}"]}}"#)),
        ("stringData value is an object", format!(r#""stringData":{{"v":{{"x":"{c}"}}}}"#)),
        ("data value is a number next to the canary", format!(r#""data":{{"v":"{b}","w":12}}"#)),
        ("immutable is a string", format!(r#""immutable":"{c}""#)),
        ("type is an object", format!(r#""type":{{"t":"{c}"}}"#)),
    ];
    for (case, rest) in wrong_types {
        sweep.error(case, &post(secret_json("e", &rest)).await, &[400]);
    }
    let duplicates = [
        ("duplicate data", format!(r#""data":{{"v":"{b}"}},"data":{{"v":"{b2}"}}"#)),
        ("duplicate key inside data", format!(r#""data":{{"v":"{b}","v":"{b2}"}}"#)),
        ("duplicate key inside stringData", format!(r#""stringData":{{"p":"{c}","p":"{c2}"}}"#)),
    ];
    for (case, rest) in duplicates {
        sweep.error(case, &post(secret_json("e", &rest)).await, &[400]);
    }
    let unknown = [("unknown top-level field (Strict)", format!(r#""spec":{{"v":"{c}"}},"data":{{"v":"{b}"}}"#))];
    for (case, rest) in unknown {
        sweep.error(case, &post(secret_json("e", &rest)).await, &[400]);
    }
    let r = post(format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"e","bogus":"{c}"}},"data":{{"v":"{b}"}}}}"#
    ))
    .await;
    sweep.error("unknown field in metadata (Strict)", &r, &[400]);
    let r = send(
        cl,
        "POST",
        &format!("{SECRETS}?fieldValidation=Warn"),
        JSON,
        secret_json("warned", &format!(r#""extra":"{c}","data":{{"v":"{b}"}}"#)),
    )
    .await;
    sweep.success("unknown field (Warn)", &r, 201);
    if !r.headers.to_ascii_lowercase().contains("warning: 299") {
        sweep.problems.push(format!("unknown field (Warn): no Warning header in\n{}", r.headers));
    }
    let malformed: [(&str, Vec<u8>); 4] = [
        (
            "truncated JSON",
            format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"e"}},"stringData":{{"v":"{c}"#).into(),
        ),
        ("trailing garbage after the object", format!("{} {c}", secret_json("e", r#""stringData":{"v":"x"}"#)).into()),
        ("invalid UTF-8 in a value", {
            let mut v = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"e"},"stringData":{"v":""#.to_vec();
            v.push(0xff);
            v.extend_from_slice(c.as_bytes());
            v.extend_from_slice(br#""}}"#);
            v
        }),
        ("deeply nested value", {
            let depth = 2000;
            format!(
                r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"e"}},"stringData":{{"v":{}"{c}"{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into()
        }),
    ];
    for (case, body) in malformed {
        sweep.error(case, &post_bytes(cl, JSON, body).await, &[400]);
    }
    // An unclosed flow sequence and an unterminated quoted scalar, each holding the canary.
    let yaml = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: e\nstringData: {{v: [{c}, \"{c}\n");
    sweep.error("malformed YAML body", &post_bytes(cl, "application/yaml", yaml.into()).await, &[400]);
    sweep.error("text/plain body", &post_bytes(cl, "text/plain", c.as_bytes().to_vec()).await, &[415]);
    let mut proto = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x06Secret\x12\xff\x01".to_vec();
    proto.extend_from_slice(c.as_bytes());
    sweep.error("malformed protobuf body", &post_bytes(cl, "application/vnd.kubernetes.protobuf", proto).await, &[400]);

    // The same validation behind a well-formed protobuf body, as kubectl's typed commands send.
    let pb_secret = |meta_name: &str, type_: &str, data: &[(&str, &[u8])], string_data: &[(&str, &str)]| {
        let mut secret = pb(1, &pb(1, meta_name.as_bytes()));
        for (k, v) in data {
            secret.extend(pb(2, &[pb(1, k.as_bytes()), pb(2, v)].concat()));
        }
        secret.extend(pb(3, type_.as_bytes()));
        for (k, v) in string_data {
            secret.extend(pb(4, &[pb(1, k.as_bytes()), pb(2, v.as_bytes())].concat()));
        }
        let unknown = [pb(1, &[pb(1, b"v1"), pb(2, b"Secret")].concat()), pb(2, &secret)].concat();
        [b"k8s\0".to_vec(), unknown].concat()
    };
    let docker = format!(r#"{{"auths":{{"r.example":{{"password":"{c}""#);
    let protobufs = [
        ("protobuf: invalid stringData key", pb_secret("e", "", &[], &[("bad key!", c)])),
        ("protobuf: invalid name", pb_secret("Bad_Name", "", &[("v", c.as_bytes())], &[])),
        (
            "protobuf: malformed .dockerconfigjson",
            pb_secret("e", "kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", docker.as_bytes())], &[]),
        ),
        ("protobuf: tls without tls.key", pb_secret("e", "kubernetes.io/tls", &[("tls.crt", c.as_bytes())], &[])),
    ];
    for (case, body) in protobufs {
        sweep.error(case, &post_bytes(cl, "application/vnd.kubernetes.protobuf", body).await, &[422]);
    }

    // Objects validation refuses (422), each with the canary in a value (CVE-2020-8564).
    let dockerjson = b64(format!(r#"{{"auths":{{"r.example":{{"password":"{c}""#));
    let dockercfg = b64(format!(r#"{{"r.example":{{"password":"{c}"}},"#));
    let big = b64(format!("{c}{}", "x".repeat(MIB + 1 - c.len())));
    let invalid = [
        (
            "malformed .dockerconfigjson (data)",
            format!(r#""type":"kubernetes.io/dockerconfigjson","data":{{".dockerconfigjson":"{dockerjson}"}}"#),
        ),
        (
            "malformed .dockerconfigjson (stringData)",
            format!(
                r#""type":"kubernetes.io/dockerconfigjson","stringData":{{".dockerconfigjson":"{{\"auths\": {c}"}}"#
            ),
        ),
        ("malformed .dockercfg", format!(r#""type":"kubernetes.io/dockercfg","data":{{".dockercfg":"{dockercfg}"}}"#)),
        ("kubernetes.io/tls without tls.key", format!(r#""type":"kubernetes.io/tls","data":{{"tls.crt":"{b}"}}"#)),
        ("invalid data key", format!(r#""data":{{"bad key!":"{b}","v":"{b}"}}"#)),
        ("invalid stringData key", format!(r#""stringData":{{"../x":"{c}"}}"#)),
        ("empty data key", format!(r#""data":{{"":"{b}"}}"#)),
        ("1 MiB + 1 in data", format!(r#""data":{{"v":"{big}"}}"#)),
        ("1 MiB + 1 in stringData", format!(r#""stringData":{{"v":"{c}{}"}}"#, "x".repeat(MIB + 1 - c.len()))),
    ];
    for (case, rest) in invalid {
        sweep.error(case, &post(secret_json("e", &rest)).await, &[422]);
    }
    let r = send(
        cl,
        "POST",
        &format!("{SECRETS}?dryRun=All&fieldValidation=Strict"),
        JSON,
        secret_json("e", &format!(r#""type":"kubernetes.io/tls","data":{{"tls.crt":"{b}"}}"#)),
    )
    .await;
    sweep.error("dry-run create of an invalid secret", &r, &[422]);

    // Conflicts and mismatches.
    sweep.error(
        "create an existing secret",
        &post(secret_json("ok", &format!(r#""data":{{"v":"{b2}"}}"#))).await,
        &[409],
    );
    let r = send(
        cl,
        "POST",
        "/api/v1/namespaces/nosuchns/secrets",
        JSON,
        secret_json("e", &format!(r#""data":{{"v":"{b}"}}"#)),
    )
    .await;
    sweep.error("create in a missing namespace", &r, &[404]);
    let put = |body: String| async move {
        send(cl, "PUT", &format!("{SECRETS}/ok?fieldValidation=Strict"), JSON, body).await
    };
    let stale = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"ok","resourceVersion":"1"}},"data":{{"v":"{b2}"}}}}"#
    );
    sweep.error("PUT with a stale resourceVersion", &put(stale).await, &[409]);
    let retype =
        secret_json("ok", &format!(r#""type":"kubernetes.io/tls","data":{{"tls.crt":"{b2}","tls.key":"{b2}"}}"#));
    sweep.error("PUT changing the type", &put(retype).await, &[422]);
    sweep.error(
        "PUT with another name",
        &put(secret_json("other", &format!(r#""data":{{"v":"{b2}"}}"#))).await,
        &[400],
    );
    sweep.error(
        "PUT with invalid base64",
        &put(secret_json("ok", &format!(r#""data":{{"v":"{c2}!"}}"#))).await,
        &[400],
    );
    let elsewhere = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"e","namespace":"elsewhere"}},"data":{{"v":"{b2}"}}}}"#
    );
    sweep.error("POST with another namespace in the body", &post(elsewhere).await, &[400]);
    let r = send(
        cl,
        "PUT",
        &format!("{SECRETS}/frozen"),
        JSON,
        secret_json("frozen", &format!(r#""immutable":true,"data":{{"v":"{b2}"}}"#)),
    )
    .await;
    sweep.error("PUT changing an immutable secret's data", &r, &[422]);

    // Patches.
    let patch = |ct: &'static str, name: &'static str, body: String| async move {
        send(cl, "PATCH", &format!("{SECRETS}/{name}"), ct, body).await
    };
    let r = patch(JSON_PATCH, "ok", format!(r#"[{{"op":"test","path":"/data/v","value":"{c}"}}]"#)).await;
    sweep.error("JSON patch whose test op holds the canary", &r, &[422]);
    let r = patch(JSON_PATCH, "ok", format!(r#"[{{"op":"test","path":"/data/v","value":"{b2}"}}]"#)).await;
    sweep.error("JSON patch whose test op holds the canary in base64", &r, &[422]);
    let r = patch(JSON_PATCH, "ok", format!(r#"[{{"op":"replace","path":"/data/missing/x","value":"{b2}"}}]"#)).await;
    sweep.error("JSON patch on a missing path", &r, &[422]);
    let r = patch(JSON_PATCH, "ok", format!(r#"[{{"op":"add","path":"/data/v","value":"{c}"#)).await;
    sweep.error("malformed JSON patch", &r, &[400]);
    // Kubernetes answers a patch whose result cannot be decoded with 400 or 422 depending on the
    // patch type; either is right here, echoing the value is not.
    let r = patch(JSON_PATCH, "ok", format!(r#"[{{"op":"replace","path":"/data/v","value":"{c2}!"}}]"#)).await;
    sweep.error("JSON patch leaving invalid base64", &r, &[400, 422]);
    let r = patch(MERGE, "ok", format!(r#"{{"data":{{"v":"{c2}!"}}}}"#)).await;
    sweep.error("merge patch with invalid base64", &r, &[400, 422]);
    let r = patch(MERGE, "ok", format!(r#"{{"data":{{"bad key!":"{b2}"}}}}"#)).await;
    sweep.error("merge patch adding an invalid key", &r, &[422]);
    let r = patch(MERGE, "ok", format!(r#"{{"data":{{"v":"{c}"#)).await;
    sweep.error("malformed merge patch", &r, &[400]);
    let r = patch(MERGE, "frozen", format!(r#"{{"data":{{"v":"{b2}"}}}}"#)).await;
    sweep.error("merge patch of an immutable secret's data", &r, &[422]);
    let r = patch(MERGE, "frozen", format!(r#"{{"stringData":{{"v":"{c2}"}}}}"#)).await;
    sweep.error("merge patch of an immutable secret's stringData", &r, &[422]);
    let r = patch(STRATEGIC, "frozen", format!(r#"{{"data":{{"w":"{b2}"}}}}"#)).await;
    sweep.error("strategic merge patch of an immutable secret", &r, &[422]);

    // Server-side apply.
    let (uri, body) = ssa("beta", &b2);
    sweep.error("server-side apply conflict", &send(cl, "PATCH", &uri, APPLY, body).await, &[409]);
    let (uri, _) = ssa("alpha", &b);
    let unknown = secret_json("ssa", &format!(r#""spec":{{"x":"{c}"}},"data":{{"p":"{b}"}}"#));
    sweep.error("server-side apply with an unknown field", &send(cl, "PATCH", &uri, APPLY, unknown).await, &[400]);
    let yaml = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\nstringData: {{p: [{c}, \"{c}\n");
    sweep.error("server-side apply of malformed YAML", &send(cl, "PATCH", &uri, APPLY, yaml).await, &[400]);
    let bad_key = secret_json("ssa", &format!(r#""data":{{"bad key!":"{b}"}}"#));
    let r = send(cl, "PATCH", &format!("{uri}&dryRun=All"), APPLY, bad_key).await;
    sweep.error("server-side apply (dry run) with an invalid key", &r, &[422]);

    // Bad input changed nothing: the values are what was first written.
    for (name, key, want) in [("ok", "v", &b), ("frozen", "v", &b), ("ssa", "p", &b)] {
        let r = send(cl, "GET", &format!("{SECRETS}/{name}"), JSON, vec![]).await;
        let got: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        if got["data"][key].as_str() != Some(want.as_str()) || got["data"].as_object().map(|m| m.len()) != Some(1) {
            let shown = sweep.show(&r.body);
            sweep.problems.push(format!("{name} was changed by rejected requests: {shown}"));
        }
    }
}

/// One length-delimited protobuf field.
fn pb(field: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2];
    let mut len = bytes.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(bytes);
    out
}

async fn post_bytes(client: &kube::Client, content_type: &str, body: Vec<u8>) -> Reply {
    send(client, "POST", &format!("{SECRETS}?fieldValidation=Strict"), content_type, body).await
}

#[test]
fn kubectl_error_paths_never_echo_the_canary() {
    let s = server();
    let c = canary();
    let c2 = canary();
    let (b, b2) = (b64(&c), b64(&c2));
    let mut sweep = Sweep::new(&[&c, &c2]);
    let dir = tempfile::tempdir().unwrap();

    let run = s.kubectl(&["create", "secret", "generic", "kc", &format!("--from-literal=pw={c}")]);
    sweep.kubectl("create secret generic (protobuf)", &run, true, false);
    let run = s.kubectl(&["get", "secret", "kc", "-o", "jsonpath={.data.pw}"]);
    sweep.kubectl("get the value", &run, true, true);
    sweep.must_hold("get the value", &run.output.stdout, &b);
    let run = s.kubectl(&["create", "secret", "generic", "kc", &format!("--from-literal=pw={c2}")]);
    sweep.kubectl("create secret generic: already exists", &run, false, false);
    let run = s.kubectl(&["create", "secret", "generic", "Bad_Name", &format!("--from-literal=pw={c}")]);
    sweep.kubectl("create secret generic: invalid name (protobuf, 422)", &run, false, false);
    let big = dir.path().join("big");
    std::fs::write(&big, format!("{c}{}", "x".repeat(MIB + 1 - c.len()))).unwrap();
    let run = s.kubectl(&["create", "secret", "generic", "big", &format!("--from-file=v={}", big.display())]);
    sweep.kubectl("create secret generic: 1 MiB + 1 (protobuf, 422)", &run, false, false);
    let run = s.kubectl(&["create", "secret", "generic", "x", "-n", "nosuchns", &format!("--from-literal=pw={c}")]);
    sweep.kubectl("create secret generic: missing namespace", &run, false, false);
    let run = s.kubectl(&["create", "secret", "generic", "dry", &format!("--from-literal=pw={c}"), "--dry-run=server"]);
    sweep.kubectl("create secret generic --dry-run=server", &run, true, false);
    let reg = ["create", "secret", "docker-registry", "reg", "--docker-server=r.example", "--docker-username=u"];
    let pass = format!("--docker-password={c}");
    let run = s.kubectl(&[&reg[..], &[pass.as_str()]].concat());
    sweep.kubectl("create secret docker-registry", &run, true, false);
    let run = s.kubectl(&[&reg[..], &[pass.as_str()]].concat());
    sweep.kubectl("create secret docker-registry: already exists", &run, false, false);

    let manifest = |name: &str, body: &str| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{body}");
    let dockerjson = b64(format!(r#"{{"auths":{{"r.example":{{"password":"{c}""#));
    let creates = [
        (
            "create -f: malformed .dockerconfigjson",
            manifest(
                "e1",
                &format!("type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {dockerjson}\n"),
            ),
        ),
        (
            "create -f: tls without tls.key",
            manifest("e2", &format!("type: kubernetes.io/tls\ndata:\n  tls.crt: {b}\n")),
        ),
        ("create -f: invalid key", manifest("e3", &format!("data:\n  \"bad key!\": {b}\n"))),
        ("create -f: invalid base64", manifest("e4", &format!("data:\n  v: \"{c}!*\"\n"))),
        ("create -f: unknown field", manifest("e5", &format!("spec:\n  v: {c}\ndata:\n  v: {b}\n"))),
        ("create -f: stringData with an invalid key", manifest("e6", &format!("stringData:\n  \"a/b\": {c}\n"))),
        (
            "create -f: 1 MiB + 1",
            format!(
                r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"e7"}},"stringData":{{"v":"{c}{}"}}}}"#,
                "x".repeat(MIB + 1 - c.len())
            ),
        ),
    ];
    for (case, m) in &creates {
        sweep.kubectl(case, &s.kubectl_stdin(&["create", "-f", "-"], m), false, false);
    }
    let run = s.kubectl_stdin(&["apply", "-f", "-"], &manifest("e8", &format!("stringData:\n  \"bad key!\": {c}\n")));
    sweep.kubectl("apply -f: invalid key", &run, false, false);

    let run = s.kubectl(&[
        "patch",
        "secret",
        "kc",
        "--type=json",
        "-p",
        &format!(r#"[{{"op":"test","path":"/data/pw","value":"{c2}"}}]"#),
    ]);
    sweep.kubectl("patch --type=json: failing test op", &run, false, false);
    let run = s.kubectl(&["patch", "secret", "kc", "--type=merge", "-p", &format!(r#"{{"data":{{"pw":"{c2}!"}}}}"#)]);
    sweep.kubectl("patch --type=merge: invalid base64", &run, false, false);
    let run =
        s.kubectl_stdin(&["create", "-f", "-"], &manifest("frozen", &format!("immutable: true\ndata:\n  v: {b}\n")));
    sweep.kubectl("create an immutable secret", &run, true, false);
    let run = s.kubectl(&["patch", "secret", "frozen", "--type=merge", "-p", &format!(r#"{{"data":{{"v":"{b2}"}}}}"#)]);
    sweep.kubectl("patch an immutable secret's data", &run, false, false);
    let run = s.kubectl(&["patch", "secret", "frozen", "-p", &format!(r#"{{"stringData":{{"v":"{c2}"}}}}"#)]);
    sweep.kubectl("strategic patch of an immutable secret's stringData", &run, false, false);

    let ssa = manifest("ssa", &format!("data:\n  p: {b}\n"));
    let run = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &ssa);
    sweep.kubectl("apply --server-side", &run, true, false);
    let run = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &manifest("ssa", &format!("data:\n  p: {b2}\n")),
    );
    sweep.kubectl("apply --server-side: conflict", &run, false, false);
    let run = s.kubectl_stdin(
        &["replace", "-f", "-"],
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: kc\n  resourceVersion: \"1\"\ndata:\n  pw: {b2}\n"),
    );
    sweep.kubectl("replace with a stale resourceVersion", &run, false, false);

    // Reads that never show values.
    for args in [
        &["describe", "secret", "kc"][..],
        &["describe", "secrets"],
        &["get", "secrets"],
        &["get", "secrets", "-o", "wide", "--show-labels"],
        &["get", "secret", "kc", "-o", "name"],
    ] {
        let run = s.kubectl(args);
        sweep.kubectl(&format!("kubectl {}", args.join(" ")), &run, true, false);
    }
    sweep.finish(s);
}

/// The annotation kubectl's client-side apply writes must never carry a value (kubernetes#23564),
/// whichever way it gets there: create, update, and the `kubectl-last-applied` patch that
/// `apply --server-side` sends for an object that was client-side applied before.
#[test]
fn last_applied_configuration_never_holds_the_canary() {
    let s = server();
    let (c, c2, c3) = (canary(), canary(), canary());
    let mut sweep = Sweep::new(&[&c, &c2, &c3]);
    let annotation = |s: &Server| {
        s.kubectl(&[
            "get",
            "secret",
            "applied",
            "-o",
            r"jsonpath={.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}",
        ])
    };
    let manifest = |data: &str, string_data: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\ntype: Opaque\ndata:\n  pw: {}\nstringData:\n  user: u-{string_data}\n",
            b64(data)
        )
    };

    let steps = [
        (
            "apply (create) with data and stringData",
            vec!["apply", "-f", "-"],
            manifest(&c, &c2),
            "secret/applied created\n",
        ),
        (
            "apply (update) with new stringData",
            vec!["apply", "-f", "-"],
            manifest(&c, &c3),
            "secret/applied configured\n",
        ),
        ("apply (update) with new data", vec!["apply", "-f", "-"], manifest(&c3, &c3), "secret/applied configured\n"),
        (
            "apply --server-side after client-side apply",
            vec!["apply", "--server-side", "-f", "-"],
            // The same values as the last client-side apply: other values would conflict with
            // the kubectl-client-side-apply manager, as on a real cluster.
            manifest(&c3, &c3),
            "secret/applied serverside-applied\n",
        ),
    ];
    for (case, args, m, want) in &steps {
        let run = s.kubectl_stdin(args, m);
        sweep.kubectl(case, &run, true, false);
        if run.stdout() != *want {
            let got = run.stdout();
            sweep.problems.push(format!("{case}: expected stdout {want:?}, got {got:?}"));
        }
        let got = annotation(&s);
        sweep.kubectl(&format!("{case}: read the annotation"), &got, true, false);
        if got.stdout().is_empty() {
            sweep.problems.push(format!("{case}: the last-applied-configuration annotation is missing"));
        }
    }
    let run = s.kubectl(&["apply", "view-last-applied", "secret", "applied"]);
    sweep.kubectl("apply view-last-applied", &run, true, false);
    let run = s.kubectl(&["get", "secret", "applied", "-o", "jsonpath={.metadata}"]);
    sweep.kubectl("the whole metadata", &run, true, false);
    // The value itself is still served (positive control).
    let run = s.kubectl(&["get", "secret", "applied", "-o", "jsonpath={.data.pw}"]);
    sweep.must_hold("get the applied value", &run.output.stdout, &b64(&c3));
    sweep.finish(s);
}
