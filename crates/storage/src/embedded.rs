//! The embedded backend: one fjall database (journal + LSM tree), one committer thread, group
//! commit.
//!
//! Writers hand their operation to the committer thread and wait. The committer takes every
//! operation that is queued (up to [`MAX_BATCH`]), applies them in order (each with its own
//! precondition check and its own revision), writes them as one atomic fjall batch, fsyncs the
//! journal once (`PersistMode::SyncAll`), publishes the events to the watch feed, and only then
//! answers the writers. So a 2xx is always durable, and N concurrent writes cost one fsync
//! instead of N. Why fjall and not a B-tree store: docs/design/embedded-store.md (measured).
//!
//! A failed commit is fatal for this backend: after an fsync error the page cache may have dropped
//! the dirty pages ("fsyncgate"), so retrying and acknowledging could lose data. fjall poisons
//! itself and the backend refuses every later write; the server reports not-ready and the operator
//! restarts it, which recovers from the journal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{
    Backend, BackendError, BackendEvent, BoxFuture, FeedItem, KeyValue, ObjectKey, Snapshot, WriteOp, WriteOutcome,
};

const OBJECTS: &str = "objects";
const HISTORY: &str = "history";
const META: &str = "meta";

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

const FORMAT_V1: u8 = 1;
const EVENT_PUT: u8 = 1;
const EVENT_DELETE: u8 = 2;

/// The most operations one commit takes. Large enough to amortize an fsync over hundreds of
/// writers, small enough that one commit stays in the low milliseconds.
pub const MAX_BATCH: usize = 1024;

/// Configuration of the embedded backend.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The database directory (`DIR/store`).
    pub path: PathBuf,
    /// Events older than this are compacted. Ten minutes lets a client that lost its connection
    /// resume its watch well after kube-apiserver's default five-minute compaction would allow.
    pub history_window: Duration,
    /// At least this many most recent events are always kept, so a quiet store still lets
    /// watches resume.
    pub min_history: u64,
}

impl EmbeddedConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        EmbeddedConfig { path: path.into(), history_window: Duration::from_secs(600), min_history: 1000 }
    }
}

struct Request {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, BackendError>>,
}

struct Shared {
    /// Set once by `start`; the committer publishes every committed batch here.
    feed: Mutex<Option<mpsc::UnboundedSender<FeedItem>>>,
    /// Set when a commit failed; every later write is refused.
    failed: Mutex<Option<String>>,
}

/// The three keyspaces of the store (see docs/design/storage-keys.md).
#[derive(Clone)]
struct Tables {
    db: Database,
    objects: Keyspace,
    history: Keyspace,
    meta: Keyspace,
}

impl Tables {
    fn meta_u64(&self, name: &str) -> Result<u64, BackendError> {
        match self.meta.get(name).map_err(internal)? {
            None => Ok(0),
            Some(v) => v
                .as_ref()
                .try_into()
                .map(u64::from_le_bytes)
                .map_err(|_| BackendError::Corrupt { key: format!("meta/{name}"), detail: "not 8 bytes".into() }),
        }
    }

    fn object(&self, key: &ObjectKey) -> Result<Option<KeyValue>, BackendError> {
        match self.objects.get(key.as_str()).map_err(internal)? {
            Some(raw) => Ok(Some(decode_object(key.as_str(), &raw)?)),
            None => Ok(None),
        }
    }
}

pub struct EmbeddedBackend {
    tables: Tables,
    queue: std_mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    BackendError::Internal(e.to_string())
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn encode_object(create_revision: u64, mod_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + value.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_object(key: &str, raw: &[u8]) -> Result<KeyValue, BackendError> {
    let corrupt = |detail: &str| BackendError::Corrupt { key: key.to_string(), detail: detail.to_string() };
    if raw.len() < 17 || raw[0] != FORMAT_V1 {
        return Err(corrupt("unknown record format"));
    }
    let create_revision = u64::from_le_bytes(raw[1..9].try_into().expect("8 bytes"));
    let mod_revision = u64::from_le_bytes(raw[9..17].try_into().expect("8 bytes"));
    let key = ObjectKey::from_stored(key).map_err(|_| corrupt("invalid key"))?;
    Ok(KeyValue { key, value: raw[17..].to_vec(), create_revision, mod_revision })
}

fn encode_event(kind: u8, millis: u64, key: &ObjectKey, value: &[u8], create_revision: u64) -> Vec<u8> {
    let k = key.as_str().as_bytes();
    let mut out = Vec::with_capacity(30 + k.len() + value.len());
    out.push(FORMAT_V1);
    out.push(kind);
    out.extend_from_slice(&millis.to_le_bytes());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(value);
    out
}

struct DecodedEvent {
    millis: u64,
    event: BackendEvent,
}

fn decode_event(revision: u64, raw: &[u8]) -> Result<DecodedEvent, BackendError> {
    let corrupt =
        |detail: &str| BackendError::Corrupt { key: format!("history/{revision}"), detail: detail.to_string() };
    if raw.len() < 22 || raw[0] != FORMAT_V1 {
        return Err(corrupt("unknown event format"));
    }
    let kind = raw[1];
    let millis = u64::from_le_bytes(raw[2..10].try_into().expect("8 bytes"));
    let create_revision = u64::from_le_bytes(raw[10..18].try_into().expect("8 bytes"));
    let klen = u32::from_le_bytes(raw[18..22].try_into().expect("4 bytes")) as usize;
    let key_bytes = raw.get(22..22 + klen).ok_or_else(|| corrupt("truncated key"))?;
    let key = std::str::from_utf8(key_bytes).map_err(|_| corrupt("invalid key"))?;
    let key = ObjectKey::from_stored(key).map_err(|_| corrupt("invalid key"))?;
    let value = raw[22 + klen..].to_vec();
    let event = match kind {
        EVENT_PUT => BackendEvent::Put { kv: KeyValue { key, value, create_revision, mod_revision: revision } },
        EVENT_DELETE => BackendEvent::Delete {
            key: key.clone(),
            revision,
            // The previous mod revision is not needed by the cache: it keys deletes by object key.
            prev: KeyValue { key, value, create_revision, mod_revision: revision },
        },
        _ => return Err(corrupt("unknown event type")),
    };
    Ok(DecodedEvent { millis, event })
}

impl EmbeddedBackend {
    /// Opens (or creates) the store and starts the committer thread.
    pub fn open(config: EmbeddedConfig) -> Result<Self, BackendError> {
        std::fs::create_dir_all(&config.path).map_err(internal)?;
        let db = Database::builder(&config.path)
            .open()
            .map_err(|e| BackendError::Internal(format!("cannot open store {}: {e}", config.path.display())))?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default).map_err(internal);
        let tables =
            Tables { objects: keyspace(OBJECTS)?, history: keyspace(HISTORY)?, meta: keyspace(META)?, db: db.clone() };
        let shared = Arc::new(Shared { feed: Mutex::new(None), failed: Mutex::new(None) });
        let (queue, rx) = std_mpsc::channel();
        let committer =
            Committer { tables: tables.clone(), shared: shared.clone(), config: config.clone(), last_compaction: 0 };
        std::thread::Builder::new()
            .name("strongroom-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(internal)?;
        Ok(EmbeddedBackend { tables, queue, shared })
    }

    /// Every object, read straight from the store (still transformed): for backups,
    /// re-encryption and tests that inspect what is on disk.
    pub fn raw_objects(&self) -> Result<Vec<KeyValue>, BackendError> {
        let mut out = Vec::new();
        for item in self.tables.objects.iter() {
            let (k, v) = item.into_inner().map_err(internal)?;
            let key = std::str::from_utf8(&k).map_err(|_| BackendError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                detail: "key is not UTF-8".into(),
            })?;
            out.push(decode_object(key, &v)?);
        }
        Ok(out)
    }

    /// Overwrites one record's stored bytes in place, without a new revision. Only for tests that
    /// simulate on-disk corruption; run it with no server on the store.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, key: &ObjectKey, value: &[u8]) -> Result<(), BackendError> {
        let old = self.tables.object(key)?.ok_or_else(|| BackendError::Internal("no such key".into()))?;
        let mut batch = self.tables.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.tables.objects, key.as_str(), encode_object(old.create_revision, old.mod_revision, value));
        batch.commit().map_err(internal)
    }

    /// Drops the whole watch history (after re-encryption: its values were written with keys
    /// that are about to be retired). Watches from older revisions then get 410 and relist.
    /// Run it with no server on the store.
    pub fn compact_all_history(&self) -> Result<u64, BackendError> {
        let revision = self.tables.meta_u64(META_REVISION)?;
        let mut batch = self.tables.db.batch().durability(Some(PersistMode::SyncAll));
        let mut removed = 0u64;
        for item in self.tables.history.iter() {
            let k = item.key().map_err(internal)?;
            batch.remove(&self.tables.history, k);
            removed += 1;
        }
        batch.insert(&self.tables.meta, META_COMPACTED, revision.to_le_bytes());
        batch.commit().map_err(internal)?;
        Ok(removed)
    }

    fn load(&self) -> Result<Snapshot, BackendError> {
        let revision = self.tables.meta_u64(META_REVISION)?;
        let compacted = self.tables.meta_u64(META_COMPACTED)?;
        let objects = self.raw_objects()?;
        let mut history = Vec::new();
        for item in self.tables.history.iter() {
            let (k, v) = item.into_inner().map_err(internal)?;
            history.push(decode_event(history_revision(&k)?, &v)?.event);
        }
        Ok(Snapshot { revision, objects, history, oldest_resumable: compacted + 1 })
    }
}

/// History keys are big-endian revisions, so the keyspace iterates in revision order.
fn history_key(revision: u64) -> [u8; 8] {
    revision.to_be_bytes()
}

fn history_revision(key: &[u8]) -> Result<u64, BackendError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| BackendError::Corrupt { key: "history".into(), detail: "revision key is not 8 bytes".into() })
}

impl Backend for EmbeddedBackend {
    fn write(&self, op: WriteOp) -> BoxFuture<'_, Result<WriteOutcome, BackendError>> {
        Box::pin(async move {
            if let Some(reason) = self.shared.failed.lock().expect("lock").clone() {
                return Err(BackendError::Unavailable(reason));
            }
            let (reply, rx) = oneshot::channel();
            self.queue
                .send(Request { op, reply })
                .map_err(|_| BackendError::Unavailable("the committer has stopped".into()))?;
            rx.await.map_err(|_| BackendError::Unavailable("the committer has stopped".into()))?
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<(Snapshot, mpsc::UnboundedReceiver<FeedItem>), BackendError>> {
        Box::pin(async move {
            // Holding the feed lock keeps the committer from publishing between the snapshot and
            // the feed's start, so the feed begins exactly after the snapshot's revision.
            let mut feed = self.shared.feed.lock().expect("lock");
            let snapshot = self.load()?;
            let (tx, rx) = mpsc::unbounded_channel();
            *feed = Some(tx);
            Ok((snapshot, rx))
        })
    }

    fn name(&self) -> &'static str {
        "embedded"
    }

    fn failure(&self) -> Option<String> {
        self.shared.failed.lock().expect("lock").clone()
    }
}

struct Committer {
    tables: Tables,
    shared: Arc<Shared>,
    config: EmbeddedConfig,
    last_compaction: u64,
}

impl Committer {
    fn run(mut self, rx: std_mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<Request>) {
        if let Some(reason) = self.shared.failed.lock().expect("lock").clone() {
            for r in batch.drain(..) {
                let _ = r.reply.send(Err(BackendError::Unavailable(reason.clone())));
            }
            return;
        }
        // The feed lock is held from before the commit until the events are published, so
        // `start` sees either none or all of this batch.
        let shared = self.shared.clone();
        let feed = shared.feed.lock().expect("lock");
        match self.apply(batch) {
            Ok((outcomes, events)) => {
                if let (Some(feed), false) = (feed.as_ref(), events.is_empty()) {
                    let _ = feed.send(FeedItem::Events(events));
                }
                drop(feed);
                for (r, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = r.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                drop(feed);
                let reason = format!("a commit to the embedded store failed ({e}); restart the server to recover");
                tracing::error!(error = %e, writes = batch.len(), "commit failed; refusing further writes");
                *self.shared.failed.lock().expect("lock") = Some(reason.clone());
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(BackendError::Unavailable(reason.clone())));
                }
            }
        }
    }

    fn apply(&mut self, batch: &[Request]) -> Result<(Vec<WriteOutcome>, Vec<BackendEvent>), BackendError> {
        let t = &self.tables;
        let millis = now_millis();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut write = t.db.batch().durability(Some(PersistMode::SyncAll));
        // What this batch has written so far: later operations on the same key must see it.
        let mut pending: HashMap<ObjectKey, Option<KeyValue>> = HashMap::new();
        let mut revision = t.meta_u64(META_REVISION)?;
        for req in batch {
            let key = req.op.key();
            let current = match pending.get(key) {
                Some(state) => state.clone(),
                None => t.object(key)?,
            };
            let outcome = match (&req.op, current) {
                (WriteOp::Create { .. }, Some(_)) => WriteOutcome::AlreadyExists,
                (WriteOp::Create { key, value }, None) => {
                    revision += 1;
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: revision,
                        mod_revision: revision,
                    };
                    write.insert(&t.objects, key.as_str(), encode_object(revision, revision, value));
                    write.insert(
                        &t.history,
                        history_key(revision),
                        encode_event(EVENT_PUT, millis, key, value, revision),
                    );
                    pending.insert(key.clone(), Some(kv.clone()));
                    events.push(BackendEvent::Put { kv });
                    WriteOutcome::Done { revision, prev: None }
                }
                (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => WriteOutcome::NotFound,
                (WriteOp::Update { expected_mod_revision, .. }, Some(cur))
                    if cur.mod_revision != *expected_mod_revision =>
                {
                    WriteOutcome::Conflict { current_mod_revision: cur.mod_revision }
                }
                (WriteOp::Update { key, value, .. }, Some(cur)) => {
                    revision += 1;
                    let c = cur.create_revision;
                    let kv =
                        KeyValue { key: key.clone(), value: value.clone(), create_revision: c, mod_revision: revision };
                    write.insert(&t.objects, key.as_str(), encode_object(c, revision, value));
                    write.insert(&t.history, history_key(revision), encode_event(EVENT_PUT, millis, key, value, c));
                    pending.insert(key.clone(), Some(kv.clone()));
                    events.push(BackendEvent::Put { kv });
                    WriteOutcome::Done { revision, prev: Some(cur) }
                }
                (WriteOp::Delete { expected_mod_revision: Some(exp), .. }, Some(cur)) if cur.mod_revision != *exp => {
                    WriteOutcome::Conflict { current_mod_revision: cur.mod_revision }
                }
                (WriteOp::Delete { key, .. }, Some(cur)) => {
                    revision += 1;
                    write.remove(&t.objects, key.as_str());
                    write.insert(
                        &t.history,
                        history_key(revision),
                        encode_event(EVENT_DELETE, millis, key, &cur.value, cur.create_revision),
                    );
                    pending.insert(key.clone(), None);
                    events.push(BackendEvent::Delete { key: key.clone(), revision, prev: cur.clone() });
                    WriteOutcome::Done { revision, prev: Some(cur) }
                }
            };
            outcomes.push(outcome);
        }
        if !events.is_empty() {
            write.insert(&t.meta, META_REVISION, revision.to_le_bytes());
            self.maybe_compact(&mut write, revision, millis)?;
            // One atomic journal write and one fsync for the whole batch.
            write.commit().map_err(internal)?;
        }
        Ok((outcomes, events))
    }

    /// Drops history older than the window, keeping at least `min_history` events. Runs at most
    /// once a second, inside a normal commit.
    fn maybe_compact(
        &mut self,
        write: &mut fjall::OwnedWriteBatch,
        revision: u64,
        millis: u64,
    ) -> Result<(), BackendError> {
        if millis < self.last_compaction + 1000 {
            return Ok(());
        }
        self.last_compaction = millis;
        let t = &self.tables;
        let cutoff_millis = millis.saturating_sub(self.config.history_window.as_millis() as u64);
        let keep_from = revision.saturating_sub(self.config.min_history) + 1;
        let mut compact_to = t.meta_u64(META_COMPACTED)?;
        let mut doomed = 0usize;
        for item in t.history.range(history_key(compact_to + 1)..history_key(keep_from)) {
            let (k, v) = item.into_inner().map_err(internal)?;
            let rev = history_revision(&k)?;
            if decode_event(rev, &v)?.millis >= cutoff_millis {
                break;
            }
            write.remove(&t.history, history_key(rev));
            compact_to = rev;
            doomed += 1;
            if doomed >= 100_000 {
                break;
            }
        }
        if doomed > 0 {
            write.insert(&t.meta, META_COMPACTED, compact_to.to_le_bytes());
            tracing::debug!(events = doomed, compacted = compact_to, "compacted watch history");
        }
        Ok(())
    }
}
