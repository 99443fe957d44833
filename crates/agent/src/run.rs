//! `strongroom run -f POD.yaml [-c CONTAINER] [-- COMMAND ARGS…]`: one container of a Pod
//! manifest, run as an ordinary process with its Secrets delivered — volumes on tmpfs (kept up
//! to date while it runs) and environment variables — restarted or signalled when they change.
//!
//! The process inherits this program's environment (a host process needs `PATH` and `HOME`),
//! with the container's variables on top. Signals this program receives (`SIGTERM`, `SIGINT`,
//! `SIGHUP`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2`) are passed on; its exit code is the process's (128 +
//! the signal number when a signal ended it, as shells report it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use rustix::process::Signal;
use strongroom_api::SecretBytes;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::agent::{self, Agent, Readiness};
use crate::env;
use crate::events::{self, EventType, Recorder};
use crate::volume::{self, SecretData};

/// What to do when a Secret the process uses changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Nothing: files still update in place; environment variables keep their old values.
    #[default]
    Nothing,
    /// Stop the process (its stop signal, then `SIGKILL` after the grace period) and start it
    /// again with the new environment.
    Restart,
    /// Send this signal (for processes that re-read their files, such as on `SIGHUP`).
    Signal(Signal),
}

/// How `strongroom run` runs; every field is a flag.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub agent: agent::Config,
    pub pod_file: PathBuf,
    /// `-c`: the container to run (default: the first).
    pub container: Option<String>,
    /// After `--`: the command instead of the container's `command` and `args`.
    pub command: Vec<String>,
    pub on_change: OnChange,
    /// How long a stopping process may take before `SIGKILL` (default: the pod's
    /// `terminationGracePeriodSeconds`, else Kubernetes' 30 s).
    pub grace_period: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}: {1}")]
    Manifest(PathBuf, String),
    #[error("pod {pod} has no container {container:?}")]
    NoContainer { pod: String, container: String },
    #[error("container {0:?} has no command: give one after `--`")]
    NoCommand(String),
    #[error("the pod cannot start: {0}")]
    CannotStart(String),
    #[error("cannot start {program:?}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error(transparent)]
    Root(#[from] agent::StartError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the container until it exits (on its own or because a signal was passed on) and returns
/// its exit code.
pub async fn run(client: kube::Client, config: RunConfig) -> Result<i32, RunError> {
    agent::check_root(&config.agent.root)?;
    let bytes =
        std::fs::read(&config.pod_file).map_err(|e| RunError::Manifest(config.pod_file.clone(), e.to_string()))?;
    let mut pod = agent::parse_pod(&bytes).map_err(|e| RunError::Manifest(config.pod_file.clone(), e))?;
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    pod.metadata.namespace = Some(namespace.clone());
    let name = pod
        .metadata
        .name
        .clone()
        .ok_or_else(|| RunError::Manifest(config.pod_file.clone(), "metadata.name is missing".into()))?;
    volume::validate_pod(&pod).map_err(|e| RunError::Manifest(config.pod_file.clone(), e.to_string()))?;
    let container = pick_container(&pod, config.container.as_deref())?;
    let argv = command_line(&pod, &container, &config.command)?;
    let grace = agent::grace_period(&pod, config.grace_period);

    let (updates, mut incoming) = mpsc::unbounded_channel();
    let recorder = Recorder::new(client.clone(), config.agent.node.clone());
    let mut agent = Agent::new(client, config.agent.clone(), updates);
    agent.apply_pods(vec![(config.pod_file.clone(), pod.clone())]).await;
    // Wait until every Secret has been read once and the volumes are written.
    loop {
        match agent.readiness(&namespace, &name) {
            Readiness::Ready => break,
            Readiness::Failed(why) => {
                cleanup(&mut agent, &namespace, &name);
                return Err(RunError::CannotStart(why));
            }
            Readiness::Waiting => {}
        }
        tokio::select! {
            Some(update) = incoming.recv() => agent.handle_update(update).await,
            _ = agent::sleep_until(agent.next_refresh()) => agent.refresh_due_tokens().await,
        }
    }
    let mut inputs = match Inputs::of(&agent, &pod, &container, &namespace) {
        Ok(i) => i,
        Err(why) => {
            cleanup(&mut agent, &namespace, &name);
            return Err(RunError::CannotStart(why));
        }
    };
    report_invalid_names(&recorder, &namespace, &name, &pod, &inputs.invalid_names);

    let mut signals = Signals::new()?;
    let mut child = match spawn(&argv, &inputs.env) {
        Ok(c) => c,
        Err(e) => {
            cleanup(&mut agent, &namespace, &name);
            return Err(e);
        }
    };
    let code = loop {
        tokio::select! {
            status = child.wait() => break exit_code(status?),
            Some(sig) = signals.next() => {
                tracing::debug!(signal = ?sig, "passing a signal on");
                send(&child, sig);
            }
            Some(update) = incoming.recv() => {
                agent.handle_update(update).await;
                let Ok(now) = Inputs::of(&agent, &pod, &container, &namespace) else { continue };
                if now.versions == inputs.versions {
                    continue;
                }
                tracing::info!(container = %container, "a secret the process uses changed");
                match config.on_change {
                    OnChange::Nothing => {}
                    OnChange::Signal(sig) => send(&child, sig),
                    OnChange::Restart => {
                        stop(&mut child, grace).await;
                        report_invalid_names(&recorder, &namespace, &name, &pod, &now.invalid_names);
                        child = match spawn(&argv, &now.env) {
                            Ok(c) => c,
                            Err(e) => {
                                cleanup(&mut agent, &namespace, &name);
                                return Err(e);
                            }
                        };
                        tracing::info!(container = %container, "process restarted");
                    }
                }
                inputs = now;
            }
            _ = agent::sleep_until(agent.next_refresh()) => agent.refresh_due_tokens().await,
        }
    };
    cleanup(&mut agent, &namespace, &name);
    Ok(code)
}

/// What the process was started with: its environment, and the versions of the Secrets it
/// reads (through env or its mounted volumes), whose change means a restart or a signal.
pub(crate) struct Inputs {
    pub(crate) env: Vec<(String, SecretBytes)>,
    pub(crate) invalid_names: Vec<(String, String)>,
    pub(crate) versions: BTreeMap<String, String>,
}

impl Inputs {
    pub(crate) fn of(agent: &Agent, pod: &Pod, container: &str, namespace: &str) -> Result<Inputs, String> {
        let known: BTreeMap<String, SecretData> = agent.known_secrets(namespace);
        let resolved = env::container_env(pod, container, &agent.config.node, &known).map_err(|e| e.to_string())?;
        let versions = used_secrets(pod, container)
            .into_iter()
            .map(|s| {
                let v = known.get(&s).map(|d| d.resource_version.clone()).unwrap_or_default();
                (s, v)
            })
            .collect();
        Ok(Inputs { env: resolved.vars, invalid_names: resolved.invalid_names, versions })
    }
}

/// The Secrets a container reads: through its env and envFrom, and the volumes it mounts.
fn used_secrets(pod: &Pod, container: &str) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    let Some(c) = spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == container)
    else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for e in c.env.iter().flatten() {
        if let Some(r) = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
            names.push(r.name.clone());
        }
    }
    for e in c.env_from.iter().flatten() {
        if let Some(r) = e.secret_ref.as_ref() {
            names.push(r.name.clone());
        }
    }
    let mounted: Vec<&str> = c.volume_mounts.iter().flatten().map(|m| m.name.as_str()).collect();
    for v in spec.volumes.iter().flatten().filter(|v| mounted.contains(&v.name.as_str())) {
        names.extend(agent::volume_secret_names(v));
    }
    names.sort();
    names.dedup();
    names
}

pub(crate) fn report_invalid_names(
    recorder: &Recorder,
    namespace: &str,
    name: &str,
    pod: &Pod,
    invalid: &[(String, String)],
) {
    if invalid.is_empty() {
        return;
    }
    let keys: Vec<String> = invalid.iter().map(|(secret, key)| format!("{secret}[{key}]")).collect();
    let message = format!(
        "Keys [{}] from the EnvFrom secret were skipped since they are considered invalid environment variable names.",
        keys.join(", ")
    );
    tracing::warn!(pod = %format!("{namespace}/{name}"), reason = %message, "invalid environment variable names");
    recorder.record(
        events::pod_reference(namespace, name, pod.metadata.uid.as_deref()),
        EventType::Warning,
        "InvalidEnvironmentVariableNames",
        message,
    );
}

fn pick_container(pod: &Pod, wanted: Option<&str>) -> Result<String, RunError> {
    let names: Vec<&str> = pod.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.as_str())).collect();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    match wanted {
        Some(w) if names.contains(&w) => Ok(w.to_string()),
        Some(w) => Err(RunError::NoContainer { pod: pod_name, container: w.to_string() }),
        None => names
            .first()
            .map(|n| n.to_string())
            .ok_or(RunError::NoContainer { pod: pod_name, container: String::new() }),
    }
}

/// The command line: the one given after `--`, else the container's `command` + `args` (with
/// `$(VAR)` references expanded by the shell-free rules Kubernetes uses is left to a later
/// version: they are passed as written).
pub(crate) fn command_line(pod: &Pod, container: &str, given: &[String]) -> Result<Vec<String>, RunError> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let c = pod.spec.iter().flat_map(|s| s.containers.iter()).find(|c| c.name == container);
    let mut argv: Vec<String> = c.and_then(|c| c.command.clone()).unwrap_or_default();
    argv.extend(c.and_then(|c| c.args.clone()).unwrap_or_default());
    if argv.is_empty() {
        return Err(RunError::NoCommand(container.to_string()));
    }
    Ok(argv)
}

pub(crate) fn spawn(argv: &[String], env: &[(String, SecretBytes)]) -> Result<Child, RunError> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (name, value) in env {
        // Environment values are bytes on Unix; NUL was refused when they were resolved.
        use std::os::unix::ffi::OsStrExt;
        cmd.env(name, std::ffi::OsStr::from_bytes(value.expose()));
    }
    cmd.kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| RunError::Spawn { program: argv[0].clone(), source })?;
    tracing::info!(program = %argv[0], pid = child.id().unwrap_or(0), variables = env.len(), "process started");
    Ok(child)
}

pub(crate) fn send(child: &Child, sig: Signal) {
    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Stops the process: `SIGTERM`, then `SIGKILL` once the grace period is over.
pub(crate) async fn stop(child: &mut Child, grace: Duration) {
    send(child, Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(grace_s = grace.as_secs(), "the process did not stop in its grace period: killed");
        let _ = child.kill().await;
    }
}

pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn cleanup(agent: &mut Agent, namespace: &str, name: &str) {
    agent.stop();
    let dir = agent.pod_dir(namespace, name);
    if let Err(e) = crate::atomic_writer::remove_beneath(&agent.config.root, &["pods", namespace, name]) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the pod's volumes");
    }
}

/// The signals passed on to the process.
struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        let kinds = [
            (Signal::TERM, SignalKind::terminate()),
            (Signal::INT, SignalKind::interrupt()),
            (Signal::HUP, SignalKind::hangup()),
            (Signal::QUIT, SignalKind::quit()),
            (Signal::USR1, SignalKind::user_defined1()),
            (Signal::USR2, SignalKind::user_defined2()),
        ];
        let mut streams = Vec::new();
        for (sig, kind) in kinds {
            streams.push((sig, signal(kind)?));
        }
        Ok(Signals { streams })
    }

    async fn next(&mut self) -> Option<Signal> {
        let futures = self.streams.iter_mut().map(|(sig, s)| {
            let sig = *sig;
            Box::pin(async move { s.recv().await.map(|_| sig) })
        });
        futures::future::select_all(futures).await.0
    }
}
