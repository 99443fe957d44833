//! Following one Secret through the API, as the kubelet's secret managers do
//! (`pkg/kubelet/secret/secret_manager.go`): by default a watch narrowed to the Secret's name
//! (`Watch`), or a GET every sync period (`Get`, and `Cache`, whose TTL is the same period).
//!
//! The agent asks only for the Secrets its pods name — a `fieldSelector=metadata.name=` list and
//! watch, or a GET — so a Role granting `get`, `list` and `watch` on those names is enough. An
//! immutable Secret is read once and then no longer followed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use strongroom_api::SecretBytes;
use tokio::sync::mpsc;

use crate::volume::SecretData;

/// How changes to a Secret are noticed (the kubelet's `--config` `configMapAndSecretChangeDetectionStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChangeDetection {
    /// A watch on the Secret's name: changes arrive as they happen.
    #[default]
    Watch,
    /// A GET whenever the cached copy is older than the sync period.
    Cache,
    /// A GET every sync period.
    Get,
}

impl std::str::FromStr for ChangeDetection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Watch" => Ok(ChangeDetection::Watch),
            "Cache" => Ok(ChangeDetection::Cache),
            "Get" => Ok(ChangeDetection::Get),
            other => Err(format!("unknown change detection strategy {other:?} (expected Watch, Cache or Get)")),
        }
    }
}

/// Which Secret, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a source learned: the Secret as it is now, `Ok(None)` when it does not exist, or why it
/// cannot be read (forbidden, for example: a volume then fails to mount, as with the kubelet).
#[derive(Debug)]
pub struct SecretUpdate {
    pub key: SecretKey,
    pub secret: Result<Option<SecretData>, String>,
}

/// Kubernetes' words for an API error (`secrets "db" is forbidden: …`), never a value.
fn api_error_message(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => Some(status.message.clone()),
        _ => None,
    }
}

/// Converts an API Secret into what the agent keeps of it.
pub fn secret_data(secret: &Secret) -> SecretData {
    let data: BTreeMap<String, SecretBytes> =
        secret.data.iter().flatten().map(|(k, v)| (k.clone(), SecretBytes::new(v.0.clone()))).collect();
    SecretData {
        name: secret.metadata.name.clone().unwrap_or_default(),
        resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        type_: secret.type_.clone().unwrap_or_else(|| "Opaque".to_string()),
        immutable: secret.immutable.unwrap_or(false),
        data,
    }
}

/// Follows `key` until the returned task is aborted, sending every change to `updates`.
pub fn spawn(
    client: kube::Client,
    key: SecretKey,
    mode: ChangeDetection,
    sync_period: Duration,
    updates: mpsc::UnboundedSender<SecretUpdate>,
) -> tokio::task::JoinHandle<()> {
    let api: Api<Secret> = Api::namespaced(client, &key.namespace);
    match mode {
        ChangeDetection::Watch => tokio::spawn(watch(api, key, updates)),
        ChangeDetection::Cache | ChangeDetection::Get => tokio::spawn(poll(api, key, sync_period, updates)),
    }
}

async fn watch(api: Api<Secret>, key: SecretKey, updates: mpsc::UnboundedSender<SecretUpdate>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
    // kube-runtime's watcher lists, then watches from the list's resourceVersion, resumes from
    // the last seen one after a disconnect, and lists again after a 410 (its `Init` events).
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listed: Option<Secret> = None;
    while let Some(event) = stream.next().await {
        let found = match event {
            Ok(watcher::Event::Init) => {
                listed = None;
                continue;
            }
            Ok(watcher::Event::InitApply(s)) => {
                listed = Some(s);
                continue;
            }
            Ok(watcher::Event::InitDone) => listed.take(),
            Ok(watcher::Event::Apply(s)) => Some(s),
            Ok(watcher::Event::Delete(_)) => None,
            Err(e) => {
                tracing::warn!(secret = %key, error = %e, "watching the secret failed; retrying");
                let refused = match &e {
                    watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => api_error_message(e),
                    _ => None,
                };
                if let Some(message) = refused
                    && updates.send(SecretUpdate { key: key.clone(), secret: Err(message) }).is_err()
                {
                    return;
                }
                continue;
            }
        };
        let immutable = found.as_ref().is_some_and(|s| s.immutable == Some(true));
        let update = SecretUpdate { key: key.clone(), secret: Ok(found.as_ref().map(secret_data)) };
        if updates.send(update).is_err() {
            return;
        }
        if immutable {
            tracing::debug!(secret = %key, "the secret is immutable: no longer watched");
            return;
        }
    }
}

async fn poll(api: Api<Secret>, key: SecretKey, period: Duration, updates: mpsc::UnboundedSender<SecretUpdate>) {
    let mut last: Option<Result<Option<String>, String>> = None;
    loop {
        let (now, update) = match api.get_opt(&key.name).await {
            Ok(found) => {
                let version = found.as_ref().and_then(|s| s.metadata.resource_version.clone());
                (Ok(version), Some(Ok(found)))
            }
            Err(e) => {
                tracing::warn!(secret = %key, error = %e, "reading the secret failed; retrying");
                match api_error_message(&e) {
                    Some(message) => (Err(message.clone()), Some(Err(message))),
                    None => (Err(String::new()), None),
                }
            }
        };
        if let Some(update) = update
            && last.as_ref() != Some(&now)
        {
            last = Some(now);
            let immutable = matches!(&update, Ok(Some(s)) if s.immutable == Some(true));
            let secret = update.map(|found| found.as_ref().map(secret_data));
            if updates.send(SecretUpdate { key: key.clone(), secret }).is_err() || immutable {
                return;
            }
        }
        tokio::time::sleep(period).await;
    }
}
