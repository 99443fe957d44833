//! A running `strongroom agent` for end-to-end tests: a pods directory, a root on tmpfs
//! (`/dev/shm`), its log, killed when dropped (the log is printed if the test failed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A `strongroom agent` process and its directories.
pub struct Agent {
    bin: PathBuf,
    kubeconfig: PathBuf,
    extra_args: Vec<String>,
    pods: tempfile::TempDir,
    root: tempfile::TempDir,
    /// `--root`, when not the temporary directory above.
    root_override: Option<PathBuf>,
    log: PathBuf,
    child: Option<Child>,
}

/// A directory on tmpfs for the agent's root; fails with what to do where /dev/shm is missing.
pub fn tmpfs_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .expect("a directory on /dev/shm (tmpfs): the agent's tests need a tmpfs mounted there")
}

impl Agent {
    /// Starts `bin agent` against the server of `kubeconfig`, node `node`.
    pub fn start(bin: impl Into<PathBuf>, kubeconfig: &Path, extra_args: &[&str]) -> Agent {
        Self::start_inner(bin.into(), kubeconfig, None, extra_args)
    }

    /// Starts with `--root root` (a tmpfs the test made).
    pub fn start_with_root(bin: impl Into<PathBuf>, kubeconfig: &Path, root: &Path, extra_args: &[&str]) -> Agent {
        Self::start_inner(bin.into(), kubeconfig, Some(root.to_path_buf()), extra_args)
    }

    fn start_inner(bin: PathBuf, kubeconfig: &Path, root_override: Option<PathBuf>, extra_args: &[&str]) -> Agent {
        let pods = tempfile::Builder::new().prefix("strongroom-pods-").tempdir().expect("temp dir");
        let root = tmpfs_dir("strongroom-agent-");
        let log = pods
            .path()
            .join("..")
            .join(format!("{}.agent.log", pods.path().file_name().and_then(|n| n.to_str()).unwrap_or("agent")));
        let mut a = Agent {
            bin,
            root_override,
            kubeconfig: kubeconfig.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            pods,
            root,
            log,
            child: None,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(&self.bin)
            .arg("agent")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--pods")
            .arg(self.pods.path())
            .arg("--root")
            .arg(self.root())
            .args(["--node", "node-1"])
            .args(&self.extra_args)
            .env("STRONGROOM_LOG", "info,strongroom_agent=debug")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn pods_dir(&self) -> &Path {
        self.pods.path()
    }

    pub fn root(&self) -> &Path {
        self.root_override.as_deref().unwrap_or(self.root.path())
    }

    /// `ROOT/pods/<namespace>/<pod>/volumes/<volume>`.
    pub fn volume(&self, namespace: &str, pod: &str, volume: &str) -> PathBuf {
        self.root().join("pods").join(namespace).join(pod).join("volumes").join(volume)
    }

    /// Writes a manifest file into the pods directory (atomically: written aside, then renamed,
    /// so the agent never reads half a file).
    pub fn write_pod(&self, file: &str, manifest: &str) {
        let tmp = self.pods.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, manifest).expect("write manifest");
        std::fs::rename(&tmp, self.pods.path().join(file)).expect("rename manifest");
    }

    pub fn remove_pod(&self, file: &str) {
        std::fs::remove_file(self.pods.path().join(file)).expect("remove manifest");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9, with no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again on the same directories.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- agent log ({}) ----\n{}", self.log.display(), self.log_text());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
