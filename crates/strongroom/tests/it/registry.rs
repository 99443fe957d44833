//! Registry credentials end to end (issue 4): Debian's `docker-registry` on loopback behind
//! htpasswd (bcrypt) authentication, Debian's `skopeo` pushing a small OCI image the test makes,
//! with a containers auth.json built from a `kubernetes.io/dockerconfigjson` Secret that kubectl
//! created, and inspecting it through `docker-credential-strongroom` (the binary under that name).

use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use strongroom_testkit::{Server, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_strongroom");

/// A tool the tests drive. A missing one fails the test (in CI and by hand alike) and says
/// what to install: nothing is skipped.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()) {
        return found;
    }
    let ci = if std::env::var("CI").as_deref() == Ok("true") { " (CI=true: .ci/run installs them)" } else { "" };
    panic!(
        "{name} is not installed: the registry tests need Debian's docker-registry, skopeo and htpasswd; \
         run `apt-get install docker-registry skopeo apache2-utils`{ci}"
    );
}

/// Runs a command to completion with a bounded wait, so a hung tool fails the test.
fn output(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        panic!("{desc} did not finish within 120s");
    }
    waiter.join().expect("waiter").expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn explain(what: &str, out: &Output) -> String {
    format!(
        "{what}\nstatus: {}\n---- stdout ----\n{}\n---- stderr ----\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A `docker-registry` serving HTTP on a free loopback port, with htpasswd authentication for
/// one user; killed when dropped (its log printed if the test failed).
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(user: &str, password: &str) -> Registry {
        let registry = tool("docker-registry");
        let htpasswd = tool("htpasswd");
        let dir = tempfile::Builder::new().prefix("strongroom-registry-").tempdir().expect("temp dir");
        let mut cmd = Command::new(htpasswd);
        cmd.args(["-Bbn", user, password]);
        let out = output(cmd, None);
        assert!(out.status.success(), "{}", explain("htpasswd failed", &out));
        std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("write htpasswd");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let config = format!(
            "\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {}
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: strongroom-test
    path: {}
",
            dir.path().join("data").display(),
            dir.path().join("htpasswd").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(registry)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start docker-registry");
        let r = Registry { child, port, log, _dir: dir };
        eventually("docker-registry to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        r
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- docker-registry log ----\n{}", self.log_text());
        }
    }
}

/// A one-entry ustar archive holding `name` with `data`.
fn tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let mut field = |at: usize, value: &str| header[at..at + value.len()].copy_from_slice(value.as_bytes());
    field(100, "0000644\0");
    field(108, "0000000\0");
    field(116, "0000000\0");
    field(124, &format!("{:011o}\0", data.len()));
    field(136, "00000000000\0");
    field(148, "        ");
    field(156, "0");
    // The magic `ustar` and its NUL, then the version `00`.
    field(257, "ustar\x0000");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    // Two empty blocks end the archive.
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Writes an OCI image layout with one image tagged `1` (an uncompressed layer holding
/// `hello.txt`).
fn write_oci_image(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| -> (String, usize) {
        let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let (layer, layer_size) = blob(&tar("hello.txt", b"hello from strongroom\n"));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    });
    let (config, config_size) = blob(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = blob(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Where skopeo and the helper run: a private HOME (no user auth files), an accept-anything
/// policy, no system registries.conf, and `docker-credential-strongroom` first on PATH.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::Builder::new().prefix("strongroom-skopeo-").tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        symlink(BIN, dir.path().join("bin/docker-credential-strongroom")).unwrap();
        std::fs::write(dir.path().join("policy.json"), br#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        std::fs::write(dir.path().join("registries.conf"), b"").unwrap();
        Workspace { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn env(&self, cmd: &mut Command) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(std::iter::once(self.path("bin")).chain(std::env::split_paths(&path))).unwrap();
        cmd.env("PATH", path)
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
    }

    fn skopeo(&self, args: &[&str], helper_env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(tool("skopeo"));
        self.env(&mut cmd);
        cmd.arg("--policy").arg(self.path("policy.json")).args(args);
        for (k, v) in helper_env {
            cmd.env(k, v);
        }
        output(cmd, None)
    }

    /// `docker-credential-strongroom ACTION` as docker runs it: the pod and kubeconfig from the
    /// environment only.
    fn helper(&self, action: &str, stdin: &str, pod: &Path, kubeconfig: &Path) -> Output {
        let mut cmd = Command::new(self.path("bin/docker-credential-strongroom"));
        self.env(&mut cmd);
        cmd.arg(action).env("STRONGROOM_POD", pod).env("STRONGROOM_KUBECONFIG", kubeconfig).env_remove("KUBECONFIG");
        output(cmd, Some(stdin.as_bytes()))
    }
}

fn write_pod(dir: &Path, file: &str, manifest: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, manifest).unwrap();
    path
}

fn pod_with_pull_secret(registry: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata: {{name: app, namespace: app}}
spec:
  imagePullSecrets: [{{name: regcred}}]
  containers:
  - {{name: main, image: {registry}/test/img:1}}
"
    )
}

fn server_with_secret(registry: &str, password: &str) -> Server {
    let s = Server::start(BIN);
    s.kubectl(&["create", "namespace", "app"]).ok();
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        "app",
        &format!("--docker-server={registry}"),
        "--docker-username=u",
        &format!("--docker-password={password}"),
    ])
    .ok();
    s
}

/// The containers auth.json for the pod, as the agent builds it from its pull secrets.
fn auth_json(s: &Server, pod: &Path) -> Vec<u8> {
    let manifest = std::fs::read(pod).unwrap();
    let pod = strongroom_agent::agent::parse_pod(&manifest).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = s.client().await;
        let entries = strongroom_agent::credentials::pull_secret_entries(&client, &pod).await.expect("pull secrets");
        strongroom_agent::credentials::containers_auth_json(&entries).expose().to_vec()
    })
}

/// skopeo pushes with the auth.json made from the Secret kubectl created, then reads the image
/// back through the credential helper, for a pod naming the Secret and for one whose
/// ServiceAccount does; the helper answers the protocol exactly.
#[test]
fn skopeo_pushes_and_inspects_with_the_pull_secret() {
    let registry = Registry::start("u", "p");
    let host = registry.host();
    let s = server_with_secret(&host, "p");
    let ws = Workspace::new();
    let pod = write_pod(ws.dir.path(), "pod.yaml", &pod_with_pull_secret(&host));

    let auth = auth_json(&s, &pod);
    let expected_auth = format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"dTpw\"}}}}}}\n");
    assert_eq!(text(&auth), expected_auth);
    std::fs::write(ws.path("auth.json"), &auth).unwrap();

    let image = ws.path("image");
    write_oci_image(&image);
    let source = format!("oci:{}:1", image.display());
    let destination = format!("docker://{host}/test/img:1");
    let auth_file = ws.path("auth.json");
    // skopeo compresses the layer on the way: the pushed manifest's digest is the one it reports.
    let digest_file = ws.path("digest");
    let out = ws.skopeo(
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-authfile",
            auth_file.to_str().unwrap(),
            "--digestfile",
            digest_file.to_str().unwrap(),
            &source,
            &destination,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}\n---- registry ----\n{}",
        explain("skopeo copy failed", &out),
        registry.log_text()
    );
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");

    // Reading it back: the auth file names only the credential helper.
    let helpers = ws.path("helpers.json");
    std::fs::write(&helpers, format!("{{\"credHelpers\":{{\"{host}\":\"strongroom\"}}}}")).unwrap();
    let kubeconfig = s.kubeconfig();
    let inspect = |pod: &Path| {
        ws.skopeo(
            &["inspect", "--tls-verify=false", "--authfile", helpers.to_str().unwrap(), &destination],
            &[("STRONGROOM_POD", pod), ("STRONGROOM_KUBECONFIG", &kubeconfig)],
        )
    };
    let out = inspect(&pod);
    assert!(
        out.status.success(),
        "{}\n---- registry ----\n{}",
        explain("skopeo inspect failed", &out),
        registry.log_text()
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect prints JSON");
    assert_eq!(inspected["Name"], format!("{host}/test/img"));
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["RepoTags"], serde_json::json!(["1"]));

    // The protocol, exactly.
    let out = ws.helper("get", &format!("{host}\n"), &pod, &kubeconfig);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        (format!("{{\"ServerURL\":\"{host}\",\"Username\":\"u\",\"Secret\":\"p\"}}\n"), Some(0)),
        "{}",
        explain("get", &out)
    );
    let out = ws.helper("get", "127.0.0.1:1", &pod, &kubeconfig);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        ("credentials not found in native keychain\n".to_string(), Some(1)),
        "{}",
        explain("get of another registry", &out)
    );
    let out = ws.helper("list", "", &pod, &kubeconfig);
    assert_eq!((text(&out.stdout), out.status.code()), (format!("{{\"{host}\":\"u\"}}\n"), Some(0)));
    let out = ws.helper("store", r#"{"ServerURL":"x","Username":"u","Secret":"s"}"#, &pod, &kubeconfig);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        (
            "strongroom: store is not supported: registry credentials are the pod's imagePullSecrets; \
             change those Secrets through the Kubernetes API\n"
                .to_string(),
            Some(1)
        )
    );
    // The subcommand form with flags answers the same.
    let mut cmd = Command::new(BIN);
    cmd.args(["credential-helper", "--kubeconfig"]).arg(&kubeconfig).arg("-f").arg(&pod).arg("get");
    cmd.env_remove("STRONGROOM_POD").env_remove("STRONGROOM_KUBECONFIG");
    let out = output(cmd, Some(host.as_bytes()));
    assert_eq!(text(&out.stdout), format!("{{\"ServerURL\":\"{host}\",\"Username\":\"u\",\"Secret\":\"p\"}}\n"));

    // A pod without imagePullSecrets gets its ServiceAccount's, as admission gives them.
    s.kubectl(&["create", "serviceaccount", "builder", "-n", "app"]).ok();
    s.kubectl(&[
        "patch",
        "serviceaccount",
        "builder",
        "-n",
        "app",
        "-p",
        r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
    ])
    .ok();
    let sa_pod = write_pod(
        ws.dir.path(),
        "sa-pod.yaml",
        &format!(
            "\
apiVersion: v1
kind: Pod
metadata: {{name: built, namespace: app}}
spec:
  serviceAccountName: builder
  containers:
  - {{name: main, image: {host}/test/img:1}}
"
        ),
    );
    let out = inspect(&sa_pod);
    assert!(out.status.success(), "{}", explain("skopeo inspect with the ServiceAccount's pull secret failed", &out));
}

/// A wrong password in the Secret reaches the registry, which refuses it with 401: skopeo fails
/// both with the auth.json and through the credential helper.
#[test]
fn a_wrong_password_in_the_secret_is_refused_with_401() {
    let registry = Registry::start("u", "p");
    let host = registry.host();
    let s = server_with_secret(&host, "wrong");
    let ws = Workspace::new();
    let pod = write_pod(ws.dir.path(), "pod.yaml", &pod_with_pull_secret(&host));
    std::fs::write(ws.path("auth.json"), auth_json(&s, &pod)).unwrap();
    let image = ws.path("image");
    write_oci_image(&image);
    let source = format!("oci:{}:1", image.display());
    let destination = format!("docker://{host}/test/img:1");
    let auth_file = ws.path("auth.json");

    let out = ws.skopeo(
        &["copy", "--dest-tls-verify=false", "--dest-authfile", auth_file.to_str().unwrap(), &source, &destination],
        &[],
    );
    assert!(!out.status.success(), "{}", explain("skopeo copy with a wrong password succeeded", &out));
    assert!(text(&out.stderr).contains("unauthorized: authentication required"), "{}", explain("copy", &out));

    let helpers = ws.path("helpers.json");
    std::fs::write(&helpers, format!("{{\"credHelpers\":{{\"{host}\":\"strongroom\"}}}}")).unwrap();
    let kubeconfig = s.kubeconfig();
    let out = ws.skopeo(
        &["inspect", "--tls-verify=false", "--authfile", helpers.to_str().unwrap(), &destination],
        &[("STRONGROOM_POD", &pod), ("STRONGROOM_KUBECONFIG", &kubeconfig)],
    );
    assert!(!out.status.success(), "{}", explain("skopeo inspect with a wrong password succeeded", &out));
    assert!(text(&out.stderr).contains("unauthorized: authentication required"), "{}", explain("inspect", &out));

    // The registry saw user u with a bad password and answered 401, both times.
    let log = registry.log_text();
    // The registry's log quotes the user name with escaped quotes.
    assert!(log.contains(r#"error authenticating user \"u\": authentication failure"#), "{log}");
    let refused = log.lines().filter(|l| l.contains("HTTP/1.1\" 401") && l.contains("/v2/test/img/")).count();
    assert!(refused >= 2, "expected 401 answers on /v2/test/img/ for the copy and the inspect\n{log}");
    assert!(!log.contains("HTTP/1.1\" 201"), "nothing may be written with a wrong password\n{log}");
}
