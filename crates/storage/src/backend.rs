//! The backend seam: a revisioned key-value store that holds transformed (encrypted) values.
//!
//! Backends see only ciphertext and know nothing of object kinds. The embedded backend is the
//! default; an etcd v3 backend fits the same trait (revision = etcd's revision, writes = transactions
//! conditioned on `mod_revision`).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

/// A storage key built structurally from validated parts (see docs/design/storage-keys.md).
///
/// Invariant: `resource` and `namespace` are non-empty and contain only `[a-z0-9.-]`; `name` is
/// non-empty, has no `/`, `%` or control character (RBAC objects may be named `system:basic-user`
/// or `MyRole`: Kubernetes' path-segment names); none is `.` or `..`. So a key can never reach
/// outside its prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid storage key segment for {what}")]
pub struct InvalidKey {
    pub what: &'static str,
}

fn check_segment(what: &'static str, s: &str) -> Result<(), InvalidKey> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok { Ok(()) } else { Err(InvalidKey { what }) }
}

/// Object names may be any Kubernetes path segment: everything but `/` and `%` (and `.`/`..`),
/// here also without control characters.
fn check_name(s: &str) -> Result<(), InvalidKey> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 253
        && !s.chars().any(|c| c == '/' || c == '%' || c.is_control());
    if ok { Ok(()) } else { Err(InvalidKey { what: "name" }) }
}

pub const KEY_ROOT: &str = "/registry/";

impl ObjectKey {
    pub fn namespaced(resource: &str, namespace: &str, name: &str) -> Result<Self, InvalidKey> {
        check_segment("resource", resource)?;
        check_segment("namespace", namespace)?;
        check_name(name)?;
        Ok(ObjectKey(format!("{KEY_ROOT}{resource}/{namespace}/{name}")))
    }

    pub fn cluster(resource: &str, name: &str) -> Result<Self, InvalidKey> {
        check_segment("resource", resource)?;
        check_name(name)?;
        Ok(ObjectKey(format!("{KEY_ROOT}{resource}/{name}")))
    }

    /// The list prefix of a resource, optionally within one namespace (with a trailing `/`).
    pub fn prefix(resource: &str, namespace: Option<&str>) -> Result<String, InvalidKey> {
        check_segment("resource", resource)?;
        match namespace {
            Some(ns) => {
                check_segment("namespace", ns)?;
                Ok(format!("{KEY_ROOT}{resource}/{ns}/"))
            }
            None => Ok(format!("{KEY_ROOT}{resource}/")),
        }
    }

    /// Rebuilds a key read back from a backend, re-checking the invariant.
    pub fn from_stored(s: &str) -> Result<Self, InvalidKey> {
        let rest = s.strip_prefix(KEY_ROOT).ok_or(InvalidKey { what: "root" })?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [r, n] => Self::cluster(r, n),
            [r, ns, n] => Self::namespaced(r, ns, n),
            _ => Err(InvalidKey { what: "layout" }),
        }
    }

    /// A bound for range scans; never used to address an object.
    pub(crate) fn unchecked(s: &str) -> Self {
        ObjectKey(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The resource segment (`secrets`).
    pub fn resource(&self) -> &str {
        self.0[KEY_ROOT.len()..].split('/').next().unwrap_or_default()
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored record as a backend returns it: the value is still transformed (ciphertext).
#[derive(Clone)]
pub struct KeyValue {
    pub key: ObjectKey,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
}

impl std::fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// One write. Preconditions are checked atomically with the write.
#[derive(Clone)]
pub enum WriteOp {
    /// Fails with `AlreadyExists` if the key exists.
    Create { key: ObjectKey, value: Vec<u8> },
    /// Fails with `NotFound` if absent, `Conflict` if its `mod_revision` differs.
    Update { key: ObjectKey, value: Vec<u8>, expected_mod_revision: u64 },
    /// Fails with `NotFound` if absent, `Conflict` if a given `mod_revision` differs.
    Delete { key: ObjectKey, expected_mod_revision: Option<u64> },
}

impl WriteOp {
    pub fn key(&self) -> &ObjectKey {
        match self {
            WriteOp::Create { key, .. } | WriteOp::Update { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone)]
pub enum WriteOutcome {
    /// Durable at `revision`. For deletes, `prev` is the record that was removed.
    Done {
        revision: u64,
        prev: Option<KeyValue>,
    },
    AlreadyExists,
    NotFound,
    Conflict {
        current_mod_revision: u64,
    },
}

/// A committed change, delivered to the watch feed in revision order.
#[derive(Debug, Clone)]
pub enum BackendEvent {
    Put { kv: KeyValue },
    Delete { key: ObjectKey, revision: u64, prev: KeyValue },
}

impl BackendEvent {
    pub fn revision(&self) -> u64 {
        match self {
            BackendEvent::Put { kv } => kv.mod_revision,
            BackendEvent::Delete { revision, .. } => *revision,
        }
    }
}

/// What the watch feed delivers: events, or a progress notification that everything up to a
/// revision has been delivered.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Events(Vec<BackendEvent>),
    Progress(u64),
}

/// Everything a cache needs to start: the current objects at `revision` and the retained history.
pub struct Snapshot {
    pub revision: u64,
    pub objects: Vec<KeyValue>,
    /// Retained events in revision order (the watch history window).
    pub history: Vec<BackendEvent>,
    /// The oldest revision from which a watch can resume (`compacted + 1`).
    pub oldest_resumable: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Internal(String),
    #[error("corrupt record at {key}: {detail}")]
    Corrupt { key: String, detail: String },
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A revisioned, durable key-value store.
///
/// Invariant: a write's future resolves only after the write is durable, and the watch feed
/// delivers every committed event exactly once, in revision order, before the write's future
/// resolves.
pub trait Backend: Send + Sync + 'static {
    /// Applies one write; concurrent writes may share a commit.
    fn write(&self, op: WriteOp) -> BoxFuture<'_, Result<WriteOutcome, BackendError>>;

    /// Loads everything at one revision and starts the feed right after it. Called once.
    fn start(&self) -> BoxFuture<'_, Result<(Snapshot, mpsc::UnboundedReceiver<FeedItem>), BackendError>>;

    /// A short name for logs and metrics (`embedded`, `etcd3`).
    fn name(&self) -> &'static str;

    /// Why the backend can no longer write, once it has failed (readiness reports it).
    fn failure(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_structural() {
        assert_eq!(ObjectKey::namespaced("secrets", "app", "db").unwrap().as_str(), "/registry/secrets/app/db");
        assert_eq!(ObjectKey::cluster("namespaces", "app").unwrap().as_str(), "/registry/namespaces/app");
        assert_eq!(ObjectKey::prefix("secrets", Some("app")).unwrap(), "/registry/secrets/app/");
    }

    #[test]
    fn invariant_key_segments_cannot_escape_prefix() {
        for bad in ["", ".", "..", "a/b", "A", "a b", "a\0b", "%2e%2e"] {
            assert!(ObjectKey::namespaced("secrets", bad, "x").is_err(), "{bad:?}");
        }
        for bad in ["", ".", "..", "a/b", "/", "a\0b", "a\nb", "%2e%2e", "a%b"] {
            assert!(ObjectKey::namespaced("secrets", "ns", bad).is_err(), "{bad:?}");
            assert!(ObjectKey::cluster("clusterroles", bad).is_err(), "{bad:?}");
        }
        // RBAC names are path segments: colons and capitals are fine, and stay under the prefix.
        let role = ObjectKey::cluster("clusterroles", "system:basic-user").unwrap();
        assert!(role.as_str().starts_with(&ObjectKey::prefix("clusterroles", None).unwrap()));
        assert!(ObjectKey::namespaced("roles", "app", "MyRole").is_ok());
        let k = ObjectKey::namespaced("secrets", "app", "db.v2").unwrap();
        assert_eq!(ObjectKey::from_stored(k.as_str()).unwrap(), k);
        assert!(ObjectKey::from_stored("/registry/secrets/a/b/c").is_err());
        assert_eq!(k.resource(), "secrets");
    }
}
