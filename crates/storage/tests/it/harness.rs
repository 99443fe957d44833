//! What every conformance case shares: the backend seam the suite is generic over ([`Factory`],
//! [`Location`]), the encrypting transformers, a trivial decoder, a [`Driver`] that writes through
//! a [`Store`] and records the events a watcher must see, and bounded waits on watch streams.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strongroom_api::SecretBytes;
use strongroom_storage::Store;
use strongroom_storage::backend::{Backend, BoxFuture, KeyValue, ObjectKey};
use strongroom_storage::cache::{
    CacheConfig, CacheEvent, CachedObject, EventType, ListSnapshot, ObjectDecoder, WatchStream,
};
use strongroom_storage::transformer::Transformers;

/// How long one watch event may take to arrive before the case fails. Events arrive within
/// microseconds of their commit; this only turns a hang into a failure with a message.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole case may run, so a deadlock fails instead of hanging the suite.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How much watch history a backend under test keeps (the embedded backend's `history_window`
/// and `min_history`; an etcd backend's compaction policy).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events younger than this are kept.
    pub window: Duration,
    /// At least this many most recent events are kept, whatever their age.
    pub min_events: u64,
}

impl Default for Retention {
    /// The server's defaults: ten minutes, at least 1,000 events.
    fn default() -> Self {
        Retention { window: Duration::from_secs(600), min_events: 1000 }
    }
}

/// One kind of backend under test. `create` makes an empty store with its own revision counter
/// (the suite asserts gap-free revisions, so no other writer may share it).
pub trait Factory: Sync {
    fn create(&self, retention: Retention) -> Box<dyn Location>;
}

/// One store's data, which backends can be opened on again and again (a restart).
pub trait Location: Send + Sync {
    /// Opens a backend on this data. At most one backend is open at a time: drop the previous
    /// one (and every `Store` on it) first.
    fn open(&self) -> BoxFuture<'_, Arc<dyn Backend>>;

    /// The retention used by the next `open`.
    fn set_retention(&self, retention: Retention);

    /// Every stored record read around the cache (values still transformed). Uses the open
    /// backend if there is one, otherwise opens one for the read.
    fn raw_objects(&self) -> BoxFuture<'_, Vec<KeyValue>>;

    /// Overwrites the stored bytes of `key` in place, without a new revision (simulated on-disk
    /// corruption). No `Store` may be open on the data.
    fn corrupt(&self, key: ObjectKey, value: Vec<u8>) -> BoxFuture<'_, ()>;

    /// The directory holding every byte the backend writes, if it writes locally, so a case can
    /// scan it for plaintext.
    fn files(&self) -> Option<PathBuf>;

    /// Waits until the next write is allowed to compact history according to the retention.
    fn await_compaction_turn(&self) -> BoxFuture<'_, ()>;
}

/// Runs one async case on its own multi-threaded runtime, bounded by [`CASE_TIMEOUT`].
pub fn run(case: &str, fut: impl Future<Output = ()>) {
    let rt = runtime();
    rt.block_on(async {
        if tokio::time::timeout(CASE_TIMEOUT, fut).await.is_err() {
            panic!("{case}: did not finish within {CASE_TIMEOUT:?}");
        }
    });
}

/// A fresh runtime like the server's (multi-threaded), sized for the two-core machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Objects, encryption and decoding
// ---------------------------------------------------------------------------------------------

/// A marker in every plaintext value: it must never appear in what a backend stores.
pub const CANARY: &str = "canary-5e0c7a1d-plaintext-never-on-disk";

/// The fixed AES-GCM key (bytes 0..32) that encrypts every value in the suite.
const ENCRYPTION_CONFIG: &str = "\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
";

/// What every encrypted value starts with.
pub const AESGCM_PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:key1:";

pub fn transformers() -> Arc<Transformers> {
    Arc::new(Transformers::from_config_bytes(ENCRYPTION_CONFIG.as_bytes()).expect("the suite's encryption config"))
}

/// Encrypts a value the way `Store` does, for cases that write through the `Backend` directly.
pub fn encrypt(t: &Transformers, key: &ObjectKey, plaintext: &[u8]) -> Vec<u8> {
    t.for_resource(key.resource()).transform_to_storage(plaintext, key.as_str()).expect("encrypt")
}

/// Decrypts a stored value back to text.
pub fn decrypt(t: &Transformers, key: &ObjectKey, stored: &[u8]) -> String {
    let (plain, _stale) = t
        .for_resource(key.resource())
        .transform_from_storage(stored, key.as_str())
        .unwrap_or_else(|e| panic!("stored value of {key} does not decrypt: {e}"));
    String::from_utf8(plain.expose().to_vec()).expect("utf-8 body")
}

/// The plaintext value labelled `label`.
pub fn body(label: &str) -> Vec<u8> {
    format!("{{\"label\":\"{label}\",\"canary\":\"{CANARY}\"}}").into_bytes()
}

pub fn body_text(label: &str) -> String {
    String::from_utf8(body(label)).expect("utf-8")
}

pub fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::namespaced("secrets", namespace, name).expect("valid test key")
}

/// The list/watch prefix of one namespace's secrets (with its trailing `/`).
pub fn prefix(namespace: &str) -> String {
    ObjectKey::prefix("secrets", Some(namespace)).expect("valid test prefix")
}

/// The decoded form the suite's cache holds: the plaintext, and the revision the cache decoded it
/// at (which must equal the cached object's revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    pub revision: u64,
    pub text: String,
}

/// Decodes plaintext as UTF-8, optionally taking its time (a cache that lags behind the backend).
struct PlainDecoder {
    delay: Duration,
}

impl ObjectDecoder<Plain> for PlainDecoder {
    fn decode(&self, _key: &ObjectKey, revision: u64, plaintext: SecretBytes) -> Result<Plain, String> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        String::from_utf8(plaintext.expose().to_vec())
            .map(|text| Plain { revision, text })
            .map_err(|_| "plaintext is not UTF-8".to_owned())
    }
    fn weight(&self, object: &Plain) -> usize {
        object.text.len()
    }
}

pub type TestStore = Store<Plain>;

pub async fn open_store(location: &dyn Location) -> Arc<TestStore> {
    open_store_with(location, CacheConfig::default()).await
}

pub async fn open_store_with(location: &dyn Location, config: CacheConfig) -> Arc<TestStore> {
    open_store_lagging(location, config, Duration::ZERO).await
}

/// A store whose cache spends `decode_delay` on every object it decodes, so it applies the feed
/// well after the backend commits.
pub async fn open_store_lagging(
    location: &dyn Location,
    config: CacheConfig,
    decode_delay: Duration,
) -> Arc<TestStore> {
    let backend = location.open().await;
    let store = Store::open(backend, transformers(), Arc::new(PlainDecoder { delay: decode_delay }), config)
        .await
        .unwrap_or_else(|e| panic!("Store::open failed: {e}"));
    Arc::new(store)
}

/// The text of a cached object's body, checking that it was decoded at the object's revision.
pub fn text_of(obj: &CachedObject<Plain>) -> Result<String, String> {
    match &obj.body {
        Ok(plain) => {
            assert_eq!(
                plain.revision, obj.revision,
                "{} was decoded at revision {} but is cached at {}",
                obj.key, plain.revision, obj.revision
            );
            Ok(plain.text.clone())
        }
        Err(reason) => Err(reason.clone()),
    }
}

/// One object as a case compares it: revision and body text.
pub fn state_of(obj: &CachedObject<Plain>) -> (u64, String) {
    (obj.revision, text_of(obj).unwrap_or_else(|e| panic!("{} has a corrupt body: {e}", obj.key)))
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// A watch event as a case compares it (printable, comparable, `Send`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub kind: EventType,
    pub revision: u64,
    pub key: String,
    pub body: Result<String, String>,
}

pub fn seen(ev: &CacheEvent<Plain>) -> Seen {
    assert_eq!(
        ev.revision, ev.object.revision,
        "event at revision {} carries {} at revision {}",
        ev.revision, ev.object.key, ev.object.revision
    );
    Seen { kind: ev.kind, revision: ev.revision, key: ev.object.key.to_string(), body: text_of(&ev.object) }
}

/// The previous state an event carries, as (revision, body).
pub fn prev_of(ev: &CacheEvent<Plain>) -> Option<(u64, String)> {
    ev.prev.as_deref().map(state_of)
}

/// The next event, failing the case with `context` if none arrives within [`EVENT_TIMEOUT`] or the
/// watch ends.
pub async fn next_event(w: &mut WatchStream<Plain>, context: &str) -> Arc<CacheEvent<Plain>> {
    match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
        Err(_) => panic!("{context}: no watch event within {EVENT_TIMEOUT:?}"),
        Ok(Err(end)) => panic!("{context}: the watch ended ({end:?})"),
        Ok(Ok(ev)) => ev,
    }
}

/// Events up to and including the first at or past `last_revision`.
pub async fn take_until(w: &mut WatchStream<Plain>, last_revision: u64, context: &str) -> Vec<Seen> {
    let mut out: Vec<Seen> = Vec::new();
    loop {
        let ev = next_event(w, &format!("{context} (waiting for revision {last_revision}, got {out:#?})")).await;
        let s = seen(&ev);
        let done = s.revision >= last_revision;
        out.push(s);
        if done {
            return out;
        }
    }
}

/// Exactly `n` events.
pub async fn take(w: &mut WatchStream<Plain>, n: usize, context: &str) -> Vec<Seen> {
    let mut out: Vec<Seen> = Vec::with_capacity(n);
    while out.len() < n {
        let ev = next_event(w, &format!("{context} (expected {n} events, got {out:#?})")).await;
        out.push(seen(&ev));
    }
    out
}

/// Revisions strictly increase along a watch (ordered, never one twice).
pub fn assert_strictly_increasing(events: &[Seen], context: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].revision < pair[1].revision,
            "{context}: revision {} follows {} (events out of order or repeated): {events:#?}",
            pair[1].revision,
            pair[0].revision
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Driver: successful writes through a Store, recorded as the events watchers must see
// ---------------------------------------------------------------------------------------------

/// Writes through a `Store`, asserting that each write succeeds and answers with what it wrote,
/// and records every write as the event a watcher must see.
pub struct Driver {
    pub store: Arc<TestStore>,
    /// Every successful write, in the order (and so the revision order) the writes returned.
    pub log: Vec<Seen>,
    live: BTreeMap<ObjectKey, (u64, String)>,
}

impl Driver {
    pub fn new(store: Arc<TestStore>) -> Self {
        Driver { store, log: Vec::new(), live: BTreeMap::new() }
    }

    /// Continues a driver's history on another store (after a restart).
    pub fn resume(store: Arc<TestStore>, log: Vec<Seen>) -> Self {
        let live = state_at(&log, u64::MAX)
            .into_iter()
            .map(|(k, state)| (ObjectKey::from_stored(&k).expect("logged keys are valid"), state))
            .collect();
        Driver { store, log, live }
    }

    /// The last revision this driver wrote.
    pub fn last(&self) -> u64 {
        self.log.last().map(|s| s.revision).expect("nothing written yet")
    }

    /// The revision the driver last wrote `key` at, if it exists.
    pub fn revision_of(&self, key: &ObjectKey) -> Option<u64> {
        self.live.get(key).map(|(r, _)| *r)
    }

    fn record(&mut self, kind: EventType, revision: u64, key: &ObjectKey, text: String) {
        if let Some(last) = self.log.last() {
            assert!(
                revision > last.revision,
                "the write of {key} got revision {revision}, not above the previous write's {}",
                last.revision
            );
        }
        self.log.push(Seen { kind, revision, key: key.to_string(), body: Ok(text) });
    }

    pub async fn create(&mut self, key: &ObjectKey, label: &str) -> u64 {
        let obj = self.store.create(key, &body(label)).await.unwrap_or_else(|e| panic!("create {key}: {e}"));
        let (revision, text) = state_of(&obj);
        assert_eq!(text, body_text(label), "create {key} answered with another body");
        self.live.insert(key.clone(), (revision, text.clone()));
        self.record(EventType::Added, revision, key, text);
        revision
    }

    pub async fn update(&mut self, key: &ObjectKey, label: &str) -> u64 {
        let expected = self.revision_of(key).unwrap_or_else(|| panic!("driver: {key} does not exist"));
        let obj = self
            .store
            .update(key, &body(label), expected)
            .await
            .unwrap_or_else(|e| panic!("update {key} at {expected}: {e}"));
        let (revision, text) = state_of(&obj);
        assert_eq!(text, body_text(label), "update {key} answered with another body");
        self.live.insert(key.clone(), (revision, text.clone()));
        self.record(EventType::Modified, revision, key, text);
        revision
    }

    pub async fn delete(&mut self, key: &ObjectKey) -> u64 {
        let (last_revision, last_text) =
            self.live.remove(key).unwrap_or_else(|| panic!("driver: {key} does not exist"));
        let obj = self
            .store
            .delete(key, Some(last_revision))
            .await
            .unwrap_or_else(|e| panic!("delete {key} at {last_revision}: {e}"));
        let (revision, text) = state_of(&obj);
        assert_eq!(text, last_text, "delete {key} must answer with the last state");
        self.record(EventType::Deleted, revision, key, text);
        revision
    }

    /// The events after `revision` under `prefix`: what a watch from there must deliver.
    pub fn events_after(&self, revision: u64, prefix: &str) -> Vec<Seen> {
        events_after(&self.log, revision, prefix)
    }
}

/// The events of `log` after `revision` under `prefix`.
pub fn events_after(log: &[Seen], revision: u64, prefix: &str) -> Vec<Seen> {
    log.iter().filter(|s| s.revision > revision && s.key.starts_with(prefix)).cloned().collect()
}

/// The objects (key → (revision, body)) after applying every event in `log` up to `revision`.
pub fn state_at(log: &[Seen], revision: u64) -> BTreeMap<String, (u64, String)> {
    let mut state = BTreeMap::new();
    for s in log.iter().filter(|s| s.revision <= revision) {
        match s.kind {
            EventType::Deleted => {
                state.remove(&s.key);
            }
            _ => {
                state.insert(s.key.clone(), (s.revision, s.body.clone().expect("driver bodies are Ok")));
            }
        }
    }
    state
}

/// The cache's current objects as key → (revision, body).
pub fn cached_state(store: &TestStore) -> BTreeMap<String, (u64, String)> {
    snapshot_state(&store.cache().snapshot())
}

/// A list snapshot's objects as key → (revision, body).
pub fn snapshot_state(snapshot: &ListSnapshot<Plain>) -> BTreeMap<String, (u64, String)> {
    snapshot.objects.iter().map(|(k, obj)| (k.to_string(), state_of(obj))).collect()
}

/// Writes `ops` pseudo-random creates, updates and deletes over ten keys of namespace `app` (the
/// same sequence for the same seed), yielding now and then so readers interleave.
pub async fn churn(mut d: Driver, ops: usize, seed: u64) -> Driver {
    let keys: Vec<ObjectKey> = (0..10).map(|i| key("app", &format!("k{i}"))).collect();
    let mut x = seed;
    for i in 0..ops {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let k = &keys[(x >> 33) as usize % keys.len()];
        let label = format!("n{i}");
        match d.revision_of(k) {
            None => d.create(k, &label).await,
            Some(_) if (x >> 20).is_multiple_of(4) => d.delete(k).await,
            Some(_) => d.update(k, &label).await,
        };
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    d
}
