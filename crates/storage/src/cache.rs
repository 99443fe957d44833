//! The watch cache: every object in memory, in key order, plus a revision-ordered event window.
//!
//! One task applies the backend's feed (decrypting and decoding each value once); every read is
//! served from here. Lists take an O(1) persistent snapshot (`imbl::OrdMap`), so they never block
//! writers, and pagination can keep serving the snapshot its first page came from. Watchers get
//! `Arc`s of shared events: fan-out costs one decode per event, not one per watcher.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use imbl::OrdMap;
use strongroom_api::SecretBytes;
use tokio::sync::{broadcast, mpsc, watch};

use crate::backend::{BackendEvent, FeedItem, KeyValue, ObjectKey, Snapshot};
use crate::transformer::Transformers;

/// Turns stored plaintext into the served form `T` (the server's decoded object, with
/// `metadata.resourceVersion` set to `revision`).
pub trait ObjectDecoder<T>: Send + Sync + 'static {
    fn decode(&self, key: &ObjectKey, revision: u64, plaintext: SecretBytes) -> Result<T, String>;

    /// About how many bytes a decoded object holds, for the event window's byte budget.
    fn weight(&self, object: &T) -> usize;
}

/// One object as the cache holds it.
#[derive(Debug)]
pub struct CachedObject<T> {
    pub key: ObjectKey,
    /// The revision of the last change (`resourceVersion`); for a deleted object, the delete's.
    pub revision: u64,
    /// The decoded object, or why it could not be decrypted or decoded (fail closed: such an
    /// object is reported as corrupt, never served as empty or as ciphertext).
    pub body: Result<T, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug)]
pub struct CacheEvent<T> {
    pub kind: EventType,
    pub revision: u64,
    pub object: Arc<CachedObject<T>>,
    /// The state before this event, when known (used to turn selector transitions into
    /// ADDED/DELETED for filtered watchers).
    pub prev: Option<Arc<CachedObject<T>>>,
}

/// How a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Synthetic ADDED events for the current objects, then every later change.
    Now,
    /// Every change with a revision greater than this one.
    After(u64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

/// Configuration of the cache's event window.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Events are kept at least this long, so a watcher that reconnects can resume.
    pub history_window: Duration,
    /// And at least this many, whatever their age.
    pub min_history: usize,
    /// The most events kept, whatever their age, bounding memory under write storms.
    pub max_history: usize,
    /// The most bytes of decoded objects the window holds. It wins over `min_history`: a window
    /// of a thousand 1 MiB Secrets would otherwise pin a gigabyte.
    pub max_history_bytes: usize,
    /// How far a watcher may fall behind before it is cut off (it then resumes like any client).
    pub watcher_buffer: usize,
    /// How long a list snapshot stays available to `continue` tokens (kube-apiserver's tokens
    /// live until etcd compacts, five minutes by default).
    pub snapshot_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            history_window: Duration::from_secs(600),
            min_history: 1000,
            max_history: 200_000,
            max_history_bytes: 256 * 1024 * 1024,
            watcher_buffer: 4096,
            snapshot_ttl: Duration::from_secs(300),
        }
    }
}

pub type Objects<T> = OrdMap<ObjectKey, Arc<CachedObject<T>>>;

struct State<T> {
    objects: Objects<T>,
    revision: u64,
    events: VecDeque<(Instant, Arc<CacheEvent<T>>)>,
    /// Sum of the weights of the objects in `events`.
    events_bytes: usize,
    /// Every event with a revision greater than this is in `events`.
    complete_after: u64,
}

/// A consistent view of all objects at one revision.
pub struct ListSnapshot<T> {
    pub revision: u64,
    pub objects: Objects<T>,
}

impl<T> ListSnapshot<T> {
    /// The objects whose keys start with `prefix` (a list prefix from `ObjectKey::prefix`), in key
    /// order, from `from` on (inclusive; a continue position) or from the start of the prefix.
    pub fn under<'a>(
        &'a self,
        prefix: &'a str,
        from: Option<&str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<CachedObject<T>>)> + 'a {
        let start = ObjectKey::range_start(from.filter(|f| f.starts_with(prefix)).unwrap_or(prefix));
        self.objects.range(start..).take_while(move |(k, _)| k.as_str().starts_with(prefix))
    }
}

impl<T> Clone for ListSnapshot<T> {
    fn clone(&self) -> Self {
        ListSnapshot { revision: self.revision, objects: self.objects.clone() }
    }
}

pub struct WatchCache<T> {
    decode: Arc<Decode<T>>,
    state: RwLock<State<T>>,
    revision_tx: watch::Sender<u64>,
    broadcast: broadcast::Sender<Arc<CacheEvent<T>>>,
    snapshots: Mutex<VecDeque<(Instant, ListSnapshot<T>)>>,
    config: CacheConfig,
}

impl<T: Send + Sync + 'static> WatchCache<T> {
    /// Builds the cache from a backend snapshot and starts applying the feed.
    pub fn start(
        snapshot: Snapshot,
        feed: mpsc::UnboundedReceiver<FeedItem>,
        transformers: Arc<Transformers>,
        decoder: Arc<dyn ObjectDecoder<T>>,
        config: CacheConfig,
    ) -> Arc<Self> {
        let decode = Arc::new(Decode { transformers, decoder });
        let mut objects = OrdMap::new();
        for kv in &snapshot.objects {
            let obj = decode.object(kv, kv.mod_revision);
            objects.insert(kv.key.clone(), Arc::new(obj));
        }
        // Rebuild the event window from the retained history, tracking each key's last state so
        // events carry their previous object where the window knows it.
        let mut events = VecDeque::new();
        let mut events_bytes = 0usize;
        let mut last: std::collections::HashMap<ObjectKey, Arc<CachedObject<T>>> = Default::default();
        let now = Instant::now();
        for ev in &snapshot.history {
            let event = decode.event(ev, last.get(ev_key(ev)).cloned());
            last.insert(ev_key(ev).clone(), event.object.clone());
            events_bytes += decode.weight(&event);
            events.push_back((now, Arc::new(event)));
        }
        let complete_after = snapshot.oldest_resumable.saturating_sub(1);
        let (revision_tx, _) = watch::channel(snapshot.revision);
        let (broadcast, _) = broadcast::channel(config.watcher_buffer);
        let cache = Arc::new(WatchCache {
            decode: decode.clone(),
            state: RwLock::new(State { objects, revision: snapshot.revision, events, events_bytes, complete_after }),
            revision_tx,
            broadcast,
            snapshots: Mutex::new(VecDeque::new()),
            config,
        });
        {
            // The reloaded window obeys the same bounds as the live one.
            let mut state = cache.state.write().expect("lock");
            cache.trim(&mut state, Instant::now());
        }
        let applier = cache.clone();
        tokio::spawn(async move { applier.apply_feed(feed, decode).await });
        cache
    }

    async fn apply_feed(self: Arc<Self>, mut feed: mpsc::UnboundedReceiver<FeedItem>, decode: Arc<Decode<T>>) {
        while let Some(item) = feed.recv().await {
            match item {
                FeedItem::Events(batch) => {
                    let mut prepared = Vec::with_capacity(batch.len());
                    {
                        let state = self.state.read().expect("lock");
                        for ev in &batch {
                            let prev = state.objects.get(ev_key(ev)).cloned();
                            prepared.push(decode.event(ev, prev));
                        }
                    }
                    let mut state = self.state.write().expect("lock");
                    let now = Instant::now();
                    for event in prepared {
                        let event = Arc::new(event);
                        match event.kind {
                            EventType::Deleted => {
                                state.objects.remove(&event.object.key);
                            }
                            _ => {
                                state.objects.insert(event.object.key.clone(), event.object.clone());
                            }
                        }
                        state.revision = event.revision;
                        state.events_bytes += decode.weight(&event);
                        state.events.push_back((now, event.clone()));
                        // No receivers is fine: nobody is watching.
                        let _ = self.broadcast.send(event);
                    }
                    self.trim(&mut state, now);
                    let revision = state.revision;
                    drop(state);
                    self.revision_tx.send_replace(revision);
                }
                FeedItem::Progress(revision) => {
                    let mut state = self.state.write().expect("lock");
                    if revision > state.revision {
                        state.revision = revision;
                        drop(state);
                        self.revision_tx.send_replace(revision);
                    }
                }
            }
        }
        tracing::warn!("the storage feed ended; the cache no longer follows the store");
    }

    fn trim(&self, state: &mut State<T>, now: Instant) {
        while let Some((at, ev)) = state.events.front() {
            let over_budget = state.events_bytes > self.config.max_history_bytes;
            let too_old = now.duration_since(*at) > self.config.history_window;
            let too_many = state.events.len() > self.config.max_history;
            let keep_min = state.events.len() <= self.config.min_history;
            if !over_budget && (keep_min || (!too_old && !too_many)) {
                break;
            }
            state.complete_after = ev.revision;
            state.events_bytes = state.events_bytes.saturating_sub(self.decode.weight(ev));
            state.events.pop_front();
        }
    }

    /// The revision the cache has applied.
    pub fn revision(&self) -> u64 {
        *self.revision_tx.borrow()
    }

    /// Waits until the cache has applied `revision`, or the deadline passes (returns false).
    pub async fn wait_for(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.revision_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await.map(|r| r.is_ok()).unwrap_or(false)
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<CachedObject<T>>> {
        self.state.read().expect("lock").objects.get(key).cloned()
    }

    /// A consistent snapshot of every object (O(1); iterate it with `range`).
    pub fn snapshot(&self) -> ListSnapshot<T> {
        let state = self.state.read().expect("lock");
        ListSnapshot { revision: state.revision, objects: state.objects.clone() }
    }

    /// Keeps a snapshot for later pages of a paginated list.
    pub fn retain_snapshot(&self, snapshot: &ListSnapshot<T>) {
        let mut snaps = self.snapshots.lock().expect("lock");
        let now = Instant::now();
        snaps.retain(|(at, _)| now.duration_since(*at) < self.config.snapshot_ttl);
        if !snaps.iter().any(|(_, s)| s.revision == snapshot.revision) {
            snaps.push_back((now, snapshot.clone()));
        }
        // Snapshots share structure with the live map, so they are cheap; still, bound them.
        while snaps.len() > 256 {
            snaps.pop_front();
        }
    }

    /// The retained snapshot at `revision`, or the current state if it is at that revision.
    pub fn snapshot_at(&self, revision: u64) -> Option<ListSnapshot<T>> {
        let current = self.snapshot();
        if current.revision == revision {
            return Some(current);
        }
        let snaps = self.snapshots.lock().expect("lock");
        let now = Instant::now();
        snaps
            .iter()
            .find(|(at, s)| s.revision == revision && now.duration_since(*at) < self.config.snapshot_ttl)
            .map(|(_, s)| s.clone())
    }

    /// Decrypts and decodes a stored record as the cache would, at `revision` (for answers the
    /// event window no longer holds).
    pub fn decode_record(&self, kv: &KeyValue, revision: u64) -> CachedObject<T> {
        self.decode.object(kv, revision)
    }

    /// The event at exactly `revision`, if still in the window.
    pub fn event_at(&self, revision: u64) -> Option<Arc<CacheEvent<T>>> {
        let state = self.state.read().expect("lock");
        let idx = state.events.partition_point(|(_, e)| e.revision < revision);
        state.events.get(idx).filter(|(_, e)| e.revision == revision).map(|(_, e)| e.clone())
    }

    /// Starts a watch on every key under `prefix`.
    pub fn watch(&self, prefix: &str, start: WatchStart) -> Result<WatchStream<T>, Expired> {
        let state = self.state.read().expect("lock");
        // Subscribing while holding the read lock: the applier publishes under the write lock,
        // so nothing is published between the replay below and the subscription.
        let rx = self.broadcast.subscribe();
        let mut initial = VecDeque::new();
        let after = match start {
            WatchStart::Now => {
                for (key, obj) in state.objects.range(ObjectKey::range_start(prefix)..) {
                    if !key.as_str().starts_with(prefix) {
                        break;
                    }
                    initial.push_back(Arc::new(CacheEvent {
                        kind: EventType::Added,
                        revision: obj.revision,
                        object: obj.clone(),
                        prev: None,
                    }));
                }
                state.revision
            }
            WatchStart::After(rv) => {
                if rv < state.complete_after {
                    return Err(Expired { requested: rv, oldest: state.complete_after });
                }
                let idx = state.events.partition_point(|(_, e)| e.revision <= rv);
                for (_, ev) in state.events.iter().skip(idx) {
                    if ev.object.key.as_str().starts_with(prefix) {
                        initial.push_back(ev.clone());
                    }
                }
                rv.max(state.revision)
            }
        };
        Ok(WatchStream { initial, rx, prefix: prefix.to_string(), after, consumed: after })
    }
}

impl ObjectKey {
    /// The smallest key that could start with `prefix`, for range scans. Crate-private: it is
    /// the one way to make an `ObjectKey` that skipped validation, and it never addresses an object.
    pub(crate) fn range_start(prefix: &str) -> ObjectKey {
        ObjectKey::unchecked(prefix)
    }
}

/// A running watch. Yields events in revision order, never one twice.
pub struct WatchStream<T> {
    initial: VecDeque<Arc<CacheEvent<T>>>,
    rx: broadcast::Receiver<Arc<CacheEvent<T>>>,
    prefix: String,
    /// Live events at or below this revision were already covered by the replay.
    after: u64,
    /// The highest revision taken from the live feed, including events for other prefixes.
    consumed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// The watcher fell too far behind and was cut off.
    Lagged,
    /// The cache stopped (server shutting down).
    Closed,
}

impl<T> WatchStream<T> {
    /// The revision the replay describes: every event up to it is in the replay (or, for
    /// `After(rv)`, was before `rv`).
    pub fn start_revision(&self) -> u64 {
        self.after
    }

    /// Everything up to this revision that concerns this watch has been handed out (once the
    /// replay is done): the revision a bookmark may promise.
    pub fn progress(&self) -> u64 {
        self.after.max(self.consumed)
    }

    /// True once every replayed (initial) event has been handed out.
    pub fn replay_done(&self) -> bool {
        self.initial.is_empty()
    }

    pub async fn next(&mut self) -> Result<Arc<CacheEvent<T>>, WatchEnd> {
        if let Some(ev) = self.initial.pop_front() {
            return Ok(ev);
        }
        loop {
            match self.rx.recv().await {
                Ok(ev) => {
                    self.consumed = self.consumed.max(ev.revision);
                    if ev.revision <= self.after || !ev.object.key.as_str().starts_with(&self.prefix) {
                        continue;
                    }
                    return Ok(ev);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(WatchEnd::Lagged),
                Err(broadcast::error::RecvError::Closed) => return Err(WatchEnd::Closed),
            }
        }
    }
}

fn ev_key(ev: &BackendEvent) -> &ObjectKey {
    match ev {
        BackendEvent::Put { kv } => &kv.key,
        BackendEvent::Delete { key, .. } => key,
    }
}

struct Decode<T> {
    transformers: Arc<Transformers>,
    decoder: Arc<dyn ObjectDecoder<T>>,
}

impl<T: 'static> Decode<T> {
    fn weight(&self, event: &CacheEvent<T>) -> usize {
        // The object's own size; `prev` is shared with the event before it.
        event.object.body.as_ref().map(|o| self.decoder.weight(o)).unwrap_or(0) + 64
    }

    fn object(&self, kv: &KeyValue, revision: u64) -> CachedObject<T> {
        let transformer = self.transformers.for_resource(kv.key.resource());
        let body = match transformer.transform_from_storage(&kv.value, kv.key.as_str()) {
            Ok((plain, _stale)) => self.decoder.decode(&kv.key, revision, plain),
            Err(e) => {
                tracing::error!(key = %kv.key, error = %e, "cannot decrypt a stored object");
                Err(e.to_string())
            }
        };
        if let Err(reason) = &body {
            tracing::error!(key = %kv.key, %reason, "corrupt object in store");
        }
        CachedObject { key: kv.key.clone(), revision, body }
    }

    fn event(&self, ev: &BackendEvent, prev: Option<Arc<CachedObject<T>>>) -> CacheEvent<T> {
        match ev {
            BackendEvent::Put { kv } => {
                let kind = if kv.create_revision == kv.mod_revision { EventType::Added } else { EventType::Modified };
                CacheEvent { kind, revision: kv.mod_revision, object: Arc::new(self.object(kv, kv.mod_revision)), prev }
            }
            BackendEvent::Delete { revision, prev: last, .. } => CacheEvent {
                kind: EventType::Deleted,
                revision: *revision,
                object: Arc::new(self.object(last, *revision)),
                prev,
            },
        }
    }
}
