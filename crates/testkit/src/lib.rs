//! Test support for strongroom: start the real binary in a temporary data directory on a free
//! loopback port, drive it with the real `kubectl` and kube-rs, and explain failures (the command,
//! its output and the server's log) the way ripgrep's `tests/util.rs` does.

mod agent;

pub use agent::{Agent, tmpfs_dir};

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `strongroom server`, killed when dropped.
pub struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Where kubectl keeps its discovery cache for this server (a fresh `HOME`).
    home: tempfile::TempDir,
    port: u16,
    extra_args: Vec<String>,
    /// `STRONGROOM_LOG` for the server.
    log_filter: String,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

impl Server {
    /// Starts the binary at `bin` with a new data directory and waits until it is ready.
    pub fn start(bin: impl Into<PathBuf>) -> Server {
        Self::start_with(bin, &[])
    }

    pub fn start_with(bin: impl Into<PathBuf>, extra_args: &[&str]) -> Server {
        Self::start_with_log(bin, extra_args, "info,strongroom_server=debug")
    }

    /// Starts with `STRONGROOM_LOG=log_filter` (e.g. `trace` for the most verbose log).
    pub fn start_with_log(bin: impl Into<PathBuf>, extra_args: &[&str], log_filter: &str) -> Server {
        let dir = tempfile::Builder::new().prefix("strongroom-it-").tempdir().expect("temp dir");
        let home = tempfile::Builder::new().prefix("strongroom-home-").tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let mut s = Server {
            bin: bin.into(),
            port: free_port(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_filter: log_filter.to_string(),
            child: None,
            log,
            dir,
            home,
            starts: 0,
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(&self.bin)
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.extra_args)
            .env("STRONGROOM_LOG", &self.log_filter)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the server exited during start-up ({status})\n{}", self.log_text());
            }
            let ready = self.log_text().lines().filter(|l| l.contains("ready: export KUBECONFIG=")).count();
            if ready >= self.starts {
                return;
            }
            if Instant::now() > deadline {
                panic!("the server did not become ready within 60s\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
            let pid = c.id() as i32;
            #[allow(unsafe_code, reason = "sending a signal to our own child process")]
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server did not exit within 40s of SIGTERM\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data directory and port.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(status.success(), "the server exited with {status} on SIGTERM\n{}", self.log_text());
        }
        self.spawn();
    }

    /// Starts the server again on the same data directory and port, with other extra flags.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// A `kubectl` command against this server (its own kubeconfig and discovery cache).
    pub fn kubectl_cmd(&self) -> Command {
        let mut cmd = Command::new(kubectl_path());
        cmd.env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.home.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        let mut cmd = self.kubectl_cmd();
        cmd.args(args);
        Run::new(cmd, self, None)
    }

    /// Runs kubectl with `args`, feeding `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut cmd = self.kubectl_cmd();
        cmd.args(args);
        Run::new(cmd, self, Some(stdin))
    }

    /// Writes a kubeconfig for `user` in `groups` made by `strongroom admin kubeconfig` (a client
    /// certificate from the server's CA) and returns its path.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["admin", "kubeconfig", "--data-dir"]).arg(self.data_dir()).args(["--user", user]);
        for g in groups {
            cmd.args(["--group", g]);
        }
        let out = cmd.output().expect("run strongroom admin kubeconfig");
        assert!(out.status.success(), "admin kubeconfig failed: {}", String::from_utf8_lossy(&out.stderr));
        let path = self.dir.path().join(format!("{}.kubeconfig", user.replace([':', '/'], "_")));
        std::fs::write(&path, &out.stdout).expect("write kubeconfig");
        path
    }

    /// Writes a kubeconfig that trusts this server and authenticates with a bearer `token` only.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let admin = std::fs::read_to_string(self.kubeconfig()).expect("admin kubeconfig");
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .expect("CA data in the admin kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: s\n    user: u\n    namespace: default\ncurrent-context: c\n",
            self.url()
        );
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, config).expect("write kubeconfig");
        path
    }

    /// Runs kubectl with `args` using another kubeconfig (another identity).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let mut cmd = self.kubectl_cmd();
        cmd.env("KUBECONFIG", kubeconfig).args(args);
        Run::new(cmd, self, None)
    }

    /// A kube-rs client authenticated as the admin.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube config");
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// A kube-rs client that trusts the server but presents no credentials.
    pub async fn anonymous_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube config");
        cfg.auth_info = Default::default();
        kube::Client::try_from(cfg).expect("kube client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- server log ({}) ----\n{}", self.log.display(), self.log_text());
        }
    }
}

/// The kubectl to test with: `$KUBECTL`, or `kubectl` on PATH. A missing kubectl fails the test
/// with what to install: nothing is skipped silently.
pub fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return PathBuf::from(p);
    }
    for dir in std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default() {
        let candidate = dir.join("kubectl");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "kubectl is not installed: these tests drive the real kubectl v1.32. Install it (Debian: \
         `apt-get install kubernetes-client`, or the Kubernetes release binary) or set KUBECTL=/path/to/kubectl"
    );
}

/// The outcome of a command, with assertions that explain themselves.
pub struct Run {
    pub desc: String,
    pub output: Output,
    log: String,
}

impl Run {
    fn new(mut cmd: Command, server: &Server, stdin: Option<&str>) -> Run {
        let desc = format!("{cmd:?}");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
        if let Some(input) = stdin {
            use std::io::Write;
            let mut s = child.stdin.take().expect("stdin");
            s.write_all(input.as_bytes()).expect("write stdin");
        }
        let output = wait_with_timeout(child, Duration::from_secs(120), &desc);
        Run { desc, output, log: server.log_text() }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn explain(&self, what: &str) -> String {
        let tail: Vec<&str> = self.log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{what}\ncommand: {}\nstatus: {}\n---- stdout ----\n{}\n---- stderr ----\n{}\n---- server log (tail) ----\n{}",
            self.desc,
            self.output.status,
            self.stdout(),
            self.stderr(),
            tail.join("\n")
        )
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert!(self.output.status.success(), "{}", self.explain("expected success"));
        self.stdout()
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn fails(&self) -> String {
        assert!(!self.output.status.success(), "{}", self.explain("expected failure"));
        self.stderr()
    }

    /// Asserts success with exactly this stdout.
    #[track_caller]
    pub fn stdout_is(&self, expected: &str) {
        let out = self.ok();
        assert_eq!(out, expected, "{}", self.explain("unexpected stdout"));
    }

    /// Asserts failure with exactly this stderr.
    #[track_caller]
    pub fn stderr_is(&self, expected: &str) {
        let err = self.fails();
        assert_eq!(err, expected, "{}", self.explain("unexpected stderr"));
    }
}

fn wait_with_timeout(mut child: Child, timeout: Duration, desc: &str) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{desc} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut stderr);
    }
    let status = child.wait().expect("wait");
    Output { status, stdout, stderr }
}

/// Writes `contents` to a file in a fresh temp dir and returns (dir guard, path).
pub fn temp_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write temp file");
    (dir, path)
}

/// Polls `f` every 20 ms until it returns Some, or panics after `timeout` naming `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `dir`, read raw, concatenated (for at-rest leak checks).
pub fn read_tree(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

/// True if `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Server {
    /// One HTTP/1.1 request over TLS with nothing in between: no retries (kube-rs and client-go
    /// retry 429 by themselves), no redirects, `Connection: close`. `as_admin` presents the admin
    /// client certificate; otherwise the request is anonymous.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        as_admin: bool,
    ) -> RawResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let kubeconfig = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let field = |name: &str| -> Vec<u8> {
            let line = kubeconfig.lines().find(|l| l.trim_start().starts_with(name)).expect("kubeconfig field");
            let b64 = line.split_once(':').expect("field: value").1.trim();
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("base64 field")
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut field("certificate-authority-data").as_slice()) {
            roots.add(cert.expect("CA")).expect("CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = if as_admin {
            let chain = rustls_pemfile::certs(&mut field("client-certificate-data").as_slice())
                .collect::<Result<Vec<_>, _>>()
                .expect("client certificate");
            let key = rustls_pemfile::private_key(&mut field("client-key-data").as_slice()).expect("key").expect("key");
            builder.with_client_auth_cert(chain, key).expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tls.write_all(req.as_bytes()).await.expect("write request");
        // The server may answer and close before reading a body it refuses.
        let _ = tls.write_all(body).await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let body = if chunked { dechunk(rest) } else { rest.to_string() };
        RawResponse { status, headers, body }
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
