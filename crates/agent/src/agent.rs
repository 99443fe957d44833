//! `strongroom agent`: follows a directory of Pod manifests (like the kubelet's static pods) and
//! keeps each pod's secret and projected volumes up to date on tmpfs.
//!
//! One task owns all state and reacts to a closed set of inputs ([`Input`]): the manifests
//! changed, a Secret changed, a token is due for refresh. Each Secret is followed by its own
//! source task ([`crate::secret_source`]); each volume is written only by this task, so writes
//! to one target are serialised as the atomic writer requires.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec as ApiTokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, Volume};
use kube::api::{Api, PostParams};
use strongroom_api::SecretBytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::atomic_writer::{self, AtomicWriter};
use crate::events::{self, EventType, Recorder};
use crate::secret_source::{self, ChangeDetection, SecretKey, SecretUpdate};
use crate::volume::{self, SecretData, TokenRequestSpec};

/// How the agent runs; every field is a flag of `strongroom agent`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory of Pod manifests (`--pods`).
    pub pods_dir: PathBuf,
    /// Where volumes are written (`--root`); must be on tmpfs.
    pub root: PathBuf,
    /// This host's name (`--node`): `spec.nodeName` for the pods, the Events' source.
    pub node: String,
    pub change_detection: ChangeDetection,
    /// How often `Get` and `Cache` read each Secret (the kubelet's sync period: one minute).
    pub sync_period: Duration,
    /// How often the manifests directory is read. One second: manifests change rarely, and the
    /// kubelet checks its static pod directory every twenty.
    pub pods_scan_interval: Duration,
    /// Make each `volumeMounts[].mountPath` a symlink to its volume (`--link-mounts`).
    pub link_mounts: bool,
    /// Run each pod's containers as processes (`--run-processes`), with this reaction to changes.
    pub processes: Option<Processes>,
}

/// How `--run-processes` supervises containers.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    pub on_change: crate::run::OnChange,
    /// Overrides the pods' `terminationGracePeriodSeconds`.
    pub grace_period: Option<Duration>,
}

impl Config {
    pub fn new(pods_dir: PathBuf, root: PathBuf, node: String) -> Self {
        Config {
            pods_dir,
            root,
            node,
            change_detection: ChangeDetection::Watch,
            sync_period: Duration::from_secs(60),
            pods_scan_interval: Duration::from_secs(1),
            link_mounts: false,
            processes: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--root {0}: not on tmpfs; secrets must never reach a disk (use /dev/shm, or mount a tmpfs there)")]
    NotTmpfs(PathBuf),
    #[error("--root {path}: {source}")]
    Root { path: PathBuf, source: std::io::Error },
}

/// Refuses a root that is not on tmpfs (or does not exist).
pub fn check_root(root: &Path) -> Result<(), StartError> {
    match atomic_writer::is_tmpfs(root) {
        Ok(true) => Ok(()),
        Ok(false) => Err(StartError::NotTmpfs(root.to_path_buf())),
        Err(source) => Err(StartError::Root { path: root.to_path_buf(), source }),
    }
}

/// Runs the agent until `shutdown` completes. Volumes stay in place when it stops, as the
/// kubelet leaves them: processes keep reading the last version.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    check_root(&config.root)?;
    let (updates, mut incoming) = mpsc::unbounded_channel();
    let mut agent = Agent::new(client, config, updates);
    tracing::info!(pods = %agent.config.pods_dir.display(), root = %agent.config.root.display(), node = %agent.config.node, "agent started");
    let mut scan = tokio::time::interval(agent.config.pods_scan_interval);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let refresh_at = agent.next_token_refresh();
        let input = tokio::select! {
            _ = &mut shutdown => break,
            _ = scan.tick() => Input::ScanPods,
            Some(update) = incoming.recv() => Input::Secret(update),
            _ = sleep_until(refresh_at) => Input::RefreshTokens,
        };
        agent.handle(input).await;
    }
    agent.stop();
    agent.stop_all_processes().await;
    tracing::info!("agent stopped");
    Ok(())
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the agent reacts to.
#[derive(Debug)]
enum Input {
    ScanPods,
    Secret(SecretUpdate),
    RefreshTokens,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PodKey {
    namespace: String,
    name: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

struct Token {
    value: SecretBytes,
    refresh_at: Instant,
}

struct PodState {
    manifest: PathBuf,
    pod: Pod,
    tokens: BTreeMap<TokenRequestSpec, Token>,
    /// The last failure reported per volume, so a failure is reported once, not every sync.
    failures: BTreeMap<String, String>,
    /// The resourceVersion of each Secret last delivered into each volume.
    delivered: BTreeMap<(String, String), String>,
    /// Symlinks made for `--link-mounts`.
    links: BTreeSet<PathBuf>,
}

struct SecretEntry {
    /// `None` until the source has reported once.
    state: Option<Result<Option<SecretData>, String>>,
    source: tokio::task::JoinHandle<()>,
}

pub(crate) struct Agent {
    client: kube::Client,
    pub(crate) config: Config,
    recorder: Recorder,
    updates: mpsc::UnboundedSender<SecretUpdate>,
    pods: BTreeMap<PodKey, PodState>,
    secrets: BTreeMap<SecretKey, SecretEntry>,
    /// `--run-processes`: one per (pod, container).
    processes: BTreeMap<(PodKey, String), Process>,
    last_retry: Instant,
}

/// The key of a failed registry credentials file among a pod's failures.
const REGISTRY_FAILURE: &str = "(registry credentials)";

/// The key of a failed token request among a pod's failures.
const TOKEN_FAILURE: &str = "(service account token)";

/// How often volumes that failed are tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// A container run as a process by `--run-processes`.
struct Process {
    child: Option<tokio::process::Child>,
    /// The Secret versions it was started with.
    versions: BTreeMap<String, String>,
    /// Consecutive exits, for the restart back-off.
    exits: u32,
    /// When it may be started again after an exit.
    not_before: Option<Instant>,
    /// Set when `restartPolicy` says it stays stopped.
    finished: bool,
}

/// Whether a pod's volumes are in place.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Some Secret has not been read yet.
    Waiting,
    /// Every volume is written.
    Ready,
    /// A volume cannot be set up: why.
    Failed(String),
}

impl Agent {
    pub(crate) fn new(client: kube::Client, config: Config, updates: mpsc::UnboundedSender<SecretUpdate>) -> Self {
        let recorder = Recorder::new(client.clone(), config.node.clone());
        Agent {
            client,
            config,
            recorder,
            updates,
            pods: BTreeMap::new(),
            secrets: BTreeMap::new(),
            processes: BTreeMap::new(),
            last_retry: Instant::now(),
        }
    }

    /// Stops following every Secret.
    pub(crate) fn stop(&mut self) {
        for entry in self.secrets.values() {
            entry.source.abort();
        }
        self.secrets.clear();
    }

    /// The Secrets of `namespace` known now (existing ones only).
    pub(crate) fn known_secrets(&self, namespace: &str) -> BTreeMap<String, SecretData> {
        self.secrets
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .filter_map(|(k, e)| match &e.state {
                Some(Ok(Some(data))) => Some((k.name.clone(), data.clone())),
                _ => None,
            })
            .collect()
    }

    /// Whether every Secret `pod` references has been read, and its volumes written.
    pub(crate) fn readiness(&self, namespace: &str, name: &str) -> Readiness {
        let key = PodKey { namespace: namespace.to_string(), name: name.to_string() };
        let Some(state) = self.pods.get(&key) else { return Readiness::Waiting };
        if let Some((volume, why)) = state.failures.iter().next() {
            return Readiness::Failed(format!("volume {volume:?}: {why}"));
        }
        let all_read = volume::referenced_secrets(&state.pod).into_iter().all(|name| {
            self.secrets.get(&SecretKey { namespace: namespace.to_string(), name }).is_some_and(|e| e.state.is_some())
        });
        if all_read { Readiness::Ready } else { Readiness::Waiting }
    }

    pub(crate) async fn handle_update(&mut self, update: SecretUpdate) {
        self.handle(Input::Secret(update)).await
    }

    pub(crate) fn pod_dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.config.root.join("pods").join(namespace).join(name)
    }

    pub(crate) async fn refresh_due_tokens(&mut self) {
        self.handle(Input::RefreshTokens).await
    }

    pub(crate) fn next_refresh(&self) -> Option<Instant> {
        self.next_token_refresh()
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::ScanPods => {
                self.scan_pods().await;
                self.retry_failures().await;
                self.reap_processes().await;
            }
            Input::Secret(update) => {
                let key = update.key.clone();
                let Some(entry) = self.secrets.get_mut(&key) else { return };
                match &update.secret {
                    Ok(Some(s)) => {
                        tracing::debug!(secret = %key, resource_version = %s.resource_version, "secret changed")
                    }
                    Ok(None) => tracing::debug!(secret = %key, "secret does not exist"),
                    Err(reason) => tracing::debug!(secret = %key, %reason, "secret cannot be read"),
                }
                entry.state = Some(update.secret);
                let users: Vec<PodKey> = self
                    .pods
                    .iter()
                    .filter(|(k, p)| {
                        k.namespace == key.namespace && volume::referenced_secrets(&p.pod).contains(&key.name)
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for pod in users {
                    self.sync_pod(&pod).await;
                }
            }
            Input::RefreshTokens => {
                let now = Instant::now();
                let due: Vec<PodKey> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| p.tokens.values().any(|t| t.refresh_at <= now))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in due {
                    if let Some(pod) = self.pods.get_mut(&key) {
                        pod.tokens.retain(|_, t| t.refresh_at > now);
                    }
                    self.sync_pod(&key).await;
                }
            }
        }
    }

    /// Syncs again, every [`RETRY_INTERVAL`], the pods a volume of which could not be set up
    /// (a full tmpfs, a token request that failed), as the kubelet retries a failed mount.
    async fn retry_failures(&mut self) {
        if self.last_retry.elapsed() < RETRY_INTERVAL {
            return;
        }
        self.last_retry = Instant::now();
        let failing: Vec<PodKey> =
            self.pods.iter().filter(|(_, p)| !p.failures.is_empty()).map(|(k, _)| k.clone()).collect();
        for key in failing {
            self.sync_pod(&key).await;
        }
    }

    fn next_token_refresh(&self) -> Option<Instant> {
        self.pods.values().flat_map(|p| p.tokens.values().map(|t| t.refresh_at)).min()
    }

    /// Reads the manifests directory and applies what changed: new pods are set up, changed ones
    /// re-synced, removed ones deleted from tmpfs.
    async fn scan_pods(&mut self) {
        match read_manifests(&self.config.pods_dir) {
            Ok(manifests) => self.apply_pods(manifests).await,
            Err(e) => {
                tracing::warn!(dir = %self.config.pods_dir.display(), error = %e, "cannot read the pods directory")
            }
        }
    }

    /// Makes `manifests` the set of pods: new ones set up, changed ones re-synced, missing ones
    /// removed.
    pub(crate) async fn apply_pods(&mut self, manifests: Vec<(PathBuf, Pod)>) {
        let mut seen: BTreeMap<PodKey, (PathBuf, Pod)> = BTreeMap::new();
        for (path, pod) in manifests {
            let Some(name) = pod.metadata.name.clone() else {
                tracing::warn!(file = %path.display(), "a pod manifest without metadata.name is ignored");
                continue;
            };
            let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
            let key = PodKey { namespace, name };
            if let Err(e) = volume::validate_pod(&pod) {
                tracing::warn!(file = %path.display(), pod = %key, error = %e, "invalid pod manifest ignored");
                continue;
            }
            if let Some((other, _)) = seen.get(&key) {
                tracing::warn!(file = %path.display(), other = %other.display(), pod = %key, "two manifests for one pod: the first is used");
                continue;
            }
            seen.insert(key, (path, pod));
        }
        let removed: Vec<PodKey> = self.pods.keys().filter(|k| !seen.contains_key(k)).cloned().collect();
        for key in removed {
            self.remove_pod(&key);
        }
        let mut changed = Vec::new();
        for (key, (path, mut pod)) in seen {
            pod.metadata.namespace = Some(key.namespace.clone());
            match self.pods.get_mut(&key) {
                Some(state) if state.pod == pod => continue,
                Some(state) => {
                    tracing::info!(pod = %key, "pod manifest changed");
                    let old_volumes: BTreeSet<String> = volume::secret_volumes(&state.pod).into_iter().collect();
                    let new_volumes: BTreeSet<String> = volume::secret_volumes(&pod).into_iter().collect();
                    for gone in old_volumes.difference(&new_volumes) {
                        let rel = ["pods", key.namespace.as_str(), key.name.as_str(), "volumes", gone.as_str()];
                        if let Err(e) = atomic_writer::remove_beneath(&self.config.root, &rel) {
                            tracing::warn!(pod = %key, volume = %gone, error = %e, "cannot remove a volume");
                        }
                    }
                    remove_links(&state.links, &self.config.root);
                    state.links.clear();
                    stop_processes_of(&mut self.processes, &key, &state.pod, self.config.processes.as_ref());
                    state.pod = pod;
                    state.manifest = path;
                    state.tokens.clear();
                    state.failures.clear();
                }
                None => {
                    tracing::info!(pod = %key, file = %path.display(), "pod added");
                    self.pods.insert(
                        key.clone(),
                        PodState {
                            manifest: path,
                            pod,
                            tokens: BTreeMap::new(),
                            failures: BTreeMap::new(),
                            delivered: BTreeMap::new(),
                            links: BTreeSet::new(),
                        },
                    );
                }
            }
            changed.push(key);
        }
        self.follow_needed_secrets();
        for key in changed {
            self.sync_pod(&key).await;
        }
    }

    /// Starts a source for every Secret a pod needs and stops those no pod needs any more.
    fn follow_needed_secrets(&mut self) {
        let needed: BTreeSet<SecretKey> = self
            .pods
            .iter()
            .flat_map(|(k, p)| {
                volume::referenced_secrets(&p.pod)
                    .into_iter()
                    .map(|name| SecretKey { namespace: k.namespace.clone(), name })
            })
            .collect();
        self.secrets.retain(|key, entry| {
            let keep = needed.contains(key);
            if !keep {
                tracing::debug!(secret = %key, "no longer followed");
                entry.source.abort();
            }
            keep
        });
        for key in needed {
            if !self.secrets.contains_key(&key) {
                tracing::debug!(secret = %key, strategy = ?self.config.change_detection, "following");
                let source = secret_source::spawn(
                    self.client.clone(),
                    key.clone(),
                    self.config.change_detection,
                    self.config.sync_period,
                    self.updates.clone(),
                );
                self.secrets.insert(key, SecretEntry { state: None, source });
            }
        }
    }

    fn remove_pod(&mut self, key: &PodKey) {
        self.stop_processes(key);
        let Some(state) = self.pods.remove(key) else { return };
        remove_links(&state.links, &self.config.root);
        let rel = ["pods", key.namespace.as_str(), key.name.as_str()];
        match atomic_writer::remove_beneath(&self.config.root, &rel) {
            Ok(()) => tracing::info!(pod = %key, "pod removed: its volumes are deleted"),
            Err(e) => tracing::warn!(pod = %key, error = %e, "cannot remove the pod's directory"),
        }
        self.follow_needed_secrets();
    }

    /// Writes every volume of a pod whose Secrets are all known.
    async fn sync_pod(&mut self, key: &PodKey) {
        let Some(state) = self.pods.get(key) else { return };
        let pod = state.pod.clone();
        let namespace = key.namespace.clone();
        let mut known: BTreeMap<String, SecretData> = BTreeMap::new();
        let mut unreadable: BTreeMap<String, String> = BTreeMap::new();
        for name in volume::referenced_secrets(&pod) {
            match self.secrets.get(&SecretKey { namespace: namespace.clone(), name: name.clone() }).map(|e| &e.state) {
                Some(Some(Ok(Some(data)))) => {
                    known.insert(name, data.clone());
                }
                Some(Some(Ok(None))) => {}
                Some(Some(Err(reason))) => {
                    unreadable.insert(name, reason.clone());
                }
                // Not heard of yet: its first answer syncs the pod again.
                Some(None) | None => return,
            }
        }
        if let Err(e) = self.ensure_tokens(key, &pod).await {
            self.report_failure(key, TOKEN_FAILURE, format!("cannot request a service account token: {e}"));
            return;
        }
        if let Some(state) = self.pods.get_mut(key) {
            state.failures.remove(TOKEN_FAILURE);
        }
        let Some(state) = self.pods.get(key) else { return };
        let tokens: BTreeMap<TokenRequestSpec, SecretBytes> =
            state.tokens.iter().map(|(spec, t)| (spec.clone(), t.value.clone())).collect();
        for volume_name in volume::secret_volumes(&pod) {
            let spec = pod
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .and_then(|v| v.iter().find(|v| v.name == volume_name));
            let refused =
                spec.map(volume_secret_names).unwrap_or_default().into_iter().find_map(|n| unreadable.get(&n).cloned());
            if let Some(reason) = refused {
                self.report_failure(key, &volume_name, reason);
                continue;
            }
            let payload = match volume::volume_payload(&pod, &volume_name, &known, &tokens) {
                Ok(p) => p,
                Err(e) => {
                    self.report_failure(key, &volume_name, e.to_string());
                    continue;
                }
            };
            let rel = ["pods", key.namespace.as_str(), key.name.as_str(), "volumes", volume_name.as_str()];
            let written = AtomicWriter::open_beneath(&self.config.root, &rel).and_then(|w| w.write(&payload));
            match written {
                Ok(outcome) => {
                    if outcome.changed {
                        tracing::info!(pod = %key, volume = %volume_name, files = payload.len(), "volume updated");
                    }
                    if outcome.owner_skipped {
                        tracing::warn!(pod = %key, volume = %volume_name, "file owners were not set: the agent does not run as root");
                    }
                    self.delivered(key, &volume_name, spec, &known);
                }
                Err(e) => self.report_failure(key, &volume_name, format!("cannot write the volume: {e}")),
            }
        }
        self.write_registry_auth(key, &pod, &known);
        if self.config.link_mounts {
            self.link_mounts(key);
        }
        if self.config.processes.is_some() {
            self.supervise(key).await;
        }
    }

    /// `ROOT/pods/<namespace>/<pod>/registry/auth.json`: the credentials of the pod's
    /// `imagePullSecrets`, merged in containers-auth.json form for podman, skopeo and buildah
    /// (`--authfile`), mode 0600. Missing pull secrets are skipped, as the kubelet skips them.
    fn write_registry_auth(&mut self, key: &PodKey, pod: &Pod, known: &BTreeMap<String, SecretData>) {
        let names = crate::credentials::pull_secret_names(pod, None);
        if names.is_empty() {
            return;
        }
        let mut entries = Vec::new();
        for name in &names {
            let Some(secret) = known.get(name) else {
                tracing::warn!(pod = %key, secret = %name, "an image pull secret is missing: skipped");
                continue;
            };
            match crate::credentials::parse_pull_secret(secret) {
                Ok(e) => entries.extend(e),
                Err(e) => {
                    self.report_failure(key, REGISTRY_FAILURE, e.to_string());
                    return;
                }
            }
        }
        let uid =
            pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|c| c.run_as_user).map(|u| u as u32);
        let file = crate::atomic_writer::FileProjection {
            data: crate::credentials::containers_auth_json(&entries),
            mode: 0o600,
            uid,
            gid: None,
        };
        let payload = crate::atomic_writer::Payload::from([("auth.json".to_string(), file)]);
        let rel = ["pods", key.namespace.as_str(), key.name.as_str(), "registry"];
        match AtomicWriter::open_beneath(&self.config.root, &rel).and_then(|w| w.write(&payload)) {
            Ok(outcome) => {
                if outcome.changed {
                    tracing::info!(pod = %key, registries = entries.len(), "registry credentials updated");
                }
                if let Some(state) = self.pods.get_mut(key) {
                    state.failures.remove(REGISTRY_FAILURE);
                }
            }
            Err(e) => self.report_failure(key, REGISTRY_FAILURE, format!("cannot write auth.json: {e}")),
        }
    }

    /// Requests the tokens a pod's projected volumes need and does not hold yet.
    async fn ensure_tokens(&mut self, key: &PodKey, pod: &Pod) -> Result<(), kube::Error> {
        let wanted = volume::token_requests(pod);
        if wanted.is_empty() {
            return Ok(());
        }
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &key.namespace);
        for spec in wanted {
            if self.pods.get(key).is_some_and(|p| p.tokens.contains_key(&spec)) {
                continue;
            }
            let request = TokenRequest {
                spec: ApiTokenRequestSpec {
                    audiences: spec.audience.iter().cloned().collect(),
                    expiration_seconds: Some(spec.expiration_seconds),
                    bound_object_ref: None,
                },
                ..Default::default()
            };
            let issued = api.create_token_request(&service_account, &PostParams::default(), &request).await?;
            let Some(status) = issued.status else {
                return Err(kube::Error::Service("the TokenRequest answer has no status".into()));
            };
            let lifetime = status.expiration_timestamp.0.duration_since(jiff::Timestamp::now());
            let lifetime = Duration::try_from(lifetime).unwrap_or(Duration::ZERO);
            // Refreshed at 80% of its lifetime, as the kubelet's token manager does.
            let refresh_at = Instant::now() + lifetime.mul_f64(0.8);
            tracing::info!(pod = %key, service_account = %service_account, lifetime_s = lifetime.as_secs(), "service account token issued");
            if let Some(state) = self.pods.get_mut(key) {
                state.tokens.insert(spec, Token { value: SecretBytes::new(status.token.into_bytes()), refresh_at });
            }
        }
        Ok(())
    }

    fn report_failure(&mut self, key: &PodKey, volume: &str, message: String) {
        let Some(state) = self.pods.get_mut(key) else { return };
        if state.failures.get(volume) == Some(&message) {
            return;
        }
        tracing::warn!(pod = %key, volume, reason = %message, "volume cannot be set up");
        state.failures.insert(volume.to_string(), message.clone());
        let uid = state.pod.metadata.uid.as_deref();
        self.recorder.record(
            events::pod_reference(&key.namespace, &key.name, uid),
            EventType::Warning,
            "FailedMount",
            format!("MountVolume.SetUp failed for volume \"{volume}\" : {message}"),
        );
    }

    /// Records which version of each Secret a volume now holds, with a `SecretUpdated` Event
    /// when it is a new one.
    fn delivered(
        &mut self,
        key: &PodKey,
        volume_name: &str,
        spec: Option<&Volume>,
        known: &BTreeMap<String, SecretData>,
    ) {
        let Some(state) = self.pods.get_mut(key) else { return };
        state.failures.remove(volume_name);
        for secret in spec.map(volume_secret_names).unwrap_or_default() {
            let Some(data) = known.get(&secret) else { continue };
            let slot = (volume_name.to_string(), secret.clone());
            if state.delivered.get(&slot) == Some(&data.resource_version) {
                continue;
            }
            state.delivered.insert(slot, data.resource_version.clone());
            self.recorder.record(
                events::secret_reference(&key.namespace, &secret, &data.resource_version),
                EventType::Normal,
                "SecretUpdated",
                format!(
                    "resourceVersion {} delivered to pod {} volume {volume_name} on node {}",
                    data.resource_version, key, self.config.node
                ),
            );
        }
    }

    /// `--link-mounts`: each mount's path becomes a symlink to its volume (or, with `subPath`,
    /// to the file through the volume's visible name, so it follows updates).
    fn link_mounts(&mut self, key: &PodKey) {
        let Some(state) = self.pods.get_mut(key) else { return };
        let volumes: BTreeSet<String> = volume::secret_volumes(&state.pod).into_iter().collect();
        let containers =
            state.pod.spec.iter().flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()));
        let mut wanted: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for mount in containers.flat_map(|c| c.volume_mounts.iter().flatten()) {
            if !volumes.contains(&mount.name) {
                continue;
            }
            let mut target =
                self.config.root.join("pods").join(&key.namespace).join(&key.name).join("volumes").join(&mount.name);
            if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                target = target.join(sub);
            }
            wanted.insert(PathBuf::from(&mount.mount_path), target);
        }
        for (path, target) in wanted {
            match link(&path, &target, &self.config.root) {
                Ok(()) => {
                    state.links.insert(path);
                }
                Err(e) => tracing::warn!(pod = %key, mount = %path.display(), error = %e, "cannot link the mount path"),
            }
        }
    }
}

impl Agent {
    /// Starts the pod's containers that are not running, and applies `--restart-on-change` or
    /// `--signal-on-change` to those whose Secrets changed.
    async fn supervise(&mut self, key: &PodKey) {
        let Some(settings) = self.config.processes.clone() else { return };
        if self.readiness(&key.namespace, &key.name) != Readiness::Ready {
            return;
        }
        let Some(pod) = self.pods.get(key).map(|p| p.pod.clone()) else { return };
        let grace = grace_period(&pod, settings.grace_period);
        for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let slot = (key.clone(), container.name.clone());
            let inputs = match crate::run::Inputs::of(self, &pod, &container.name, &key.namespace) {
                Ok(i) => i,
                Err(why) => {
                    tracing::warn!(pod = %key, container = %container.name, reason = %why, "the container cannot start");
                    continue;
                }
            };
            let process = self.processes.entry(slot).or_insert(Process {
                child: None,
                versions: BTreeMap::new(),
                exits: 0,
                not_before: None,
                finished: false,
            });
            if let Some(child) = process.child.as_mut() {
                if process.versions == inputs.versions {
                    continue;
                }
                tracing::info!(pod = %key, container = %container.name, "a secret the process uses changed");
                match settings.on_change {
                    crate::run::OnChange::Nothing => {
                        process.versions = inputs.versions;
                        continue;
                    }
                    crate::run::OnChange::Signal(sig) => {
                        crate::run::send(child, sig);
                        process.versions = inputs.versions;
                        continue;
                    }
                    crate::run::OnChange::Restart => crate::run::stop(child, grace).await,
                }
            } else if process.finished || process.not_before.is_some_and(|t| t > Instant::now()) {
                continue;
            }
            let argv = match crate::run::command_line(&pod, &container.name, &[]) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(pod = %key, container = %container.name, error = %e, "the container cannot start");
                    process.finished = true;
                    continue;
                }
            };
            crate::run::report_invalid_names(&self.recorder, &key.namespace, &key.name, &pod, &inputs.invalid_names);
            match crate::run::spawn(&argv, &inputs.env) {
                Ok(child) => {
                    process.child = Some(child);
                    process.versions = inputs.versions;
                }
                Err(e) => {
                    tracing::warn!(pod = %key, container = %container.name, error = %e, "the container cannot start");
                    process.exits += 1;
                    process.not_before = Some(Instant::now() + back_off(process.exits));
                }
            }
        }
    }

    /// Notices processes that exited and restarts them as the pod's `restartPolicy` says
    /// (`Always` by default; `OnFailure`; `Never`), with the kubelet's doubling back-off.
    async fn reap_processes(&mut self) {
        if self.config.processes.is_none() {
            return;
        }
        let mut to_sync = BTreeSet::new();
        for ((key, container), process) in self.processes.iter_mut() {
            let Some(child) = process.child.as_mut() else {
                if process.not_before.is_some_and(|t| t <= Instant::now()) && !process.finished {
                    to_sync.insert(key.clone());
                }
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else { continue };
            let code = crate::run::exit_code(status);
            process.child = None;
            process.exits += 1;
            let policy = self
                .pods
                .get(key)
                .and_then(|p| p.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()))
                .unwrap_or_else(|| "Always".to_string());
            process.finished = policy == "Never" || (policy == "OnFailure" && code == 0);
            let delay = back_off(process.exits);
            process.not_before = Some(Instant::now() + delay);
            tracing::info!(pod = %key, container = %container, code, restart = !process.finished, delay_s = delay.as_secs(), "process exited");
        }
        for key in to_sync {
            self.supervise(&key).await;
        }
    }

    fn stop_processes(&mut self, key: &PodKey) {
        if let Some(state) = self.pods.get(key) {
            let pod = state.pod.clone();
            stop_processes_of(&mut self.processes, key, &pod, self.config.processes.as_ref());
        }
    }

    /// Stops every process (at shutdown), each within its grace period.
    async fn stop_all_processes(&mut self) {
        let settings = self.config.processes.clone().unwrap_or_default();
        let mut stopping = Vec::new();
        for ((key, _), mut process) in std::mem::take(&mut self.processes) {
            let Some(mut child) = process.child.take() else { continue };
            let grace = self
                .pods
                .get(&key)
                .map(|p| grace_period(&p.pod, settings.grace_period))
                .unwrap_or(Duration::from_secs(30));
            stopping.push(async move { crate::run::stop(&mut child, grace).await });
        }
        futures::future::join_all(stopping).await;
    }
}

/// Stops a pod's processes in the background (SIGTERM, then SIGKILL after the grace period).
fn stop_processes_of(
    processes: &mut BTreeMap<(PodKey, String), Process>,
    key: &PodKey,
    pod: &Pod,
    settings: Option<&Processes>,
) {
    let grace = grace_period(pod, settings.and_then(|s| s.grace_period));
    let slots: Vec<(PodKey, String)> = processes.keys().filter(|(k, _)| k == key).cloned().collect();
    for slot in slots {
        if let Some(mut child) = processes.remove(&slot).and_then(|p| p.child) {
            tracing::info!(pod = %key, container = %slot.1, "stopping the process");
            tokio::spawn(async move { crate::run::stop(&mut child, grace).await });
        }
    }
}

/// The pod's `terminationGracePeriodSeconds` (Kubernetes' default: 30 s), unless overridden.
pub(crate) fn grace_period(pod: &Pod, overridden: Option<Duration>) -> Duration {
    overridden.unwrap_or_else(|| {
        let secs = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    })
}

/// The kubelet's crash back-off: 10 s doubling to 5 min; the first restart is immediate here
/// (one second), so a process that exits once comes back at once.
fn back_off(exits: u32) -> Duration {
    match exits {
        0 | 1 => Duration::from_secs(1),
        n => Duration::from_secs((10u64 << (n - 2).min(5)).min(300)),
    }
}

/// The Secrets a volume reads.
pub(crate) fn volume_secret_names(v: &Volume) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
        names.push(s);
    }
    for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
        if let Some(s) = source.secret.as_ref() {
            names.push(s.name.clone());
        }
    }
    names
}

/// Makes `path` a symlink to `target`, unless something that is not one of the agent's links
/// is there: a mount path never replaces a user's file or directory.
fn link(path: &Path, target: &Path, root: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let current = std::fs::read_link(path)?;
            if current == target {
                return Ok(());
            }
            if !current.starts_with(root) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a symlink not made by the agent is in the way",
                ));
            }
            let tmp = path.with_extension("strongroom-tmp");
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(target, &tmp)?;
            std::fs::rename(&tmp, path)
        }
        Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a file or directory is in the way")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::os::unix::fs::symlink(target, path)
        }
        Err(e) => Err(e),
    }
}

/// Removes the agent's own mount links (only symlinks that still point beneath `root`).
fn remove_links(links: &BTreeSet<PathBuf>, root: &Path) {
    for path in links {
        if std::fs::read_link(path).is_ok_and(|t| t.starts_with(root)) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The Pod manifests in `dir`: `*.yaml`, `*.yml` and `*.json` files, one Pod each; hidden files
/// (editors' swap files) are skipped and a file that does not parse is logged and skipped.
fn read_manifests(dir: &Path) -> std::io::Result<Vec<(PathBuf, Pod)>> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let manifest = [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext));
        if name.starts_with('.') || !manifest || !path.is_file() {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read a pod manifest");
                continue;
            }
        };
        match parse_pod(&bytes) {
            Ok(pod) => out.push((path, pod)),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "not a valid v1 Pod manifest"),
        }
    }
    Ok(out)
}

/// A v1 Pod from YAML or JSON.
pub fn parse_pod(bytes: &[u8]) -> Result<Pod, String> {
    #[derive(serde::Deserialize)]
    struct TypeMeta {
        #[serde(rename = "apiVersion", default)]
        api_version: String,
        #[serde(default)]
        kind: String,
    }
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())?;
    let meta: TypeMeta = serde_yaml_ng::from_value(doc.clone()).map_err(|e| e.to_string())?;
    if meta.api_version != "v1" || meta.kind != "Pod" {
        return Err(format!("expected apiVersion v1, kind Pod; found {:?}, {:?}", meta.api_version, meta.kind));
    }
    octal_modes(&mut doc);
    serde_yaml_ng::from_value(doc).map_err(|e| e.to_string())
}

/// kubectl reads YAML 1.1, where `defaultMode: 0400` is octal (256); this parser reads YAML
/// 1.2, where it is the string "0400". File modes are the only place manifests write octal, so
/// `mode` and `defaultMode` values of that form are read as YAML 1.1 would.
fn octal_modes(v: &mut serde_yaml_ng::Value) {
    match v {
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let is_mode = matches!(k.as_str(), Some("mode" | "defaultMode"));
                if is_mode
                    && let Some(text) = v.as_str()
                    && let Some(digits) = text.strip_prefix("0o").or_else(|| text.strip_prefix('0'))
                    && !digits.is_empty()
                    && let Ok(n) = u32::from_str_radix(digits, 8)
                {
                    *v = serde_yaml_ng::Value::Number(n.into());
                } else {
                    octal_modes(v);
                }
            }
        }
        serde_yaml_ng::Value::Sequence(s) => s.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Modes written the way kubectl users write them (YAML 1.1 octal) read as octal; decimal
    /// modes and JSON manifests read as they are.
    #[test]
    fn manifests_read_modes_as_kubectl_does() {
        let yaml = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c}]\n  volumes:\n  - name: v\n    secret:\n      secretName: s\n      defaultMode: 0400\n      items: [{key: k, path: k, mode: 0o640}, {key: j, path: j, mode: 420}]\n";
        let pod = parse_pod(yaml).expect("pod");
        let secret = pod.spec.unwrap().volumes.unwrap()[0].secret.clone().unwrap();
        assert_eq!(secret.default_mode, Some(0o400));
        let modes: Vec<Option<i32>> = secret.items.unwrap().iter().map(|i| i.mode).collect();
        assert_eq!(modes, [Some(0o640), Some(420)]);
        let json = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}"#;
        assert_eq!(parse_pod(json).expect("pod").metadata.name.as_deref(), Some("p"));
        assert_eq!(
            parse_pod(b"apiVersion: v1\nkind: Secret\nmetadata: {name: p}\n").unwrap_err(),
            "expected apiVersion v1, kind Pod; found \"v1\", \"Secret\""
        );
    }
}
