//! The embedded backend: one redb file, one committer thread, group commit.
//!
//! Writers hand their operation to the committer thread and wait. The committer takes every
//! operation that is queued (up to [`MAX_BATCH`]), applies them in order inside one redb write
//! transaction (each with its own precondition check and its own revision), commits once
//! (`Durability::Immediate`: fsync before `commit` returns), publishes the events to the watch feed,
//! and only then answers the writers. So a 2xx is always durable, and N concurrent writes cost one
//! fsync instead of N.
//!
//! A failed commit is fatal for this backend: after an fsync error the page cache may have dropped
//! the dirty pages ("fsyncgate"), so retrying and acknowledging could lose data. The backend
//! refuses every later write; the server reports not-ready and the operator restarts it, which
//! recovers from the file.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{
    Backend, BackendError, BackendEvent, BoxFuture, FeedItem, KeyValue, ObjectKey, Snapshot, WriteOp, WriteOutcome,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

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
    /// The database file (`DIR/store.redb`).
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

pub struct EmbeddedBackend {
    db: Arc<Database>,
    queue: std_mpsc::Sender<Request>,
    shared: Arc<Shared>,
    config: EmbeddedConfig,
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
        if let Some(parent) = config.path.parent() {
            std::fs::create_dir_all(parent).map_err(internal)?;
        }
        let db = Database::create(&config.path)
            .map_err(|e| BackendError::Internal(format!("cannot open store {}: {e}", config.path.display())))?;
        // Make sure the tables exist so readers never see a missing table.
        {
            let txn = db.begin_write().map_err(internal)?;
            txn.open_table(OBJECTS).map_err(internal)?;
            txn.open_table(HISTORY).map_err(internal)?;
            txn.open_table(META).map_err(internal)?;
            txn.commit().map_err(internal)?;
        }
        let db = Arc::new(db);
        let shared = Arc::new(Shared { feed: Mutex::new(None), failed: Mutex::new(None) });
        let (queue, rx) = std_mpsc::channel();
        let committer =
            Committer { db: db.clone(), shared: shared.clone(), config: config.clone(), last_compaction: 0 };
        std::thread::Builder::new()
            .name("strongroom-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(internal)?;
        Ok(EmbeddedBackend { db, queue, shared, config })
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Every object, read straight from the file (still transformed): for backups,
    /// re-encryption and tests that inspect what is on disk.
    pub fn raw_objects(&self) -> Result<Vec<KeyValue>, BackendError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(OBJECTS).map_err(internal)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(internal)? {
            let (k, v) = item.map_err(internal)?;
            out.push(decode_object(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Overwrites one record's stored bytes in place, without a new revision. Only for tests that
    /// simulate on-disk corruption.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, key: &ObjectKey, value: &[u8]) -> Result<(), BackendError> {
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut table = txn.open_table(OBJECTS).map_err(internal)?;
            let old = table.get(key.as_str()).map_err(internal)?.map(|v| decode_object(key.as_str(), v.value()));
            let old = old.ok_or_else(|| BackendError::Internal("no such key".into()))??;
            let raw = encode_object(old.create_revision, old.mod_revision, value);
            table.insert(key.as_str(), raw.as_slice()).map_err(internal)?;
        }
        txn.commit().map_err(internal)
    }

    fn load(&self) -> Result<Snapshot, BackendError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let meta = txn.open_table(META).map_err(internal)?;
        let revision = meta.get(META_REVISION).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
        let compacted = meta.get(META_COMPACTED).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
        let objects = self.raw_objects()?;
        let history_table = txn.open_table(HISTORY).map_err(internal)?;
        let mut history = Vec::new();
        for item in history_table.iter().map_err(internal)? {
            let (rev, raw) = item.map_err(internal)?;
            history.push(decode_event(rev.value(), raw.value())?.event);
        }
        Ok(Snapshot { revision, objects, history, oldest_resumable: compacted + 1 })
    }
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
}

struct Committer {
    db: Arc<Database>,
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
        // The feed lock is held from before the transaction until the events are published, so
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
        let mut txn = self.db.begin_write().map_err(internal)?;
        txn.set_durability(Durability::Immediate).map_err(internal)?;
        let millis = now_millis();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        {
            let mut objects = txn.open_table(OBJECTS).map_err(internal)?;
            let mut history = txn.open_table(HISTORY).map_err(internal)?;
            let mut meta = txn.open_table(META).map_err(internal)?;
            let mut revision = meta.get(META_REVISION).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
            for req in batch {
                let key = req.op.key();
                let current = match objects.get(key.as_str()).map_err(internal)? {
                    Some(raw) => Some(decode_object(key.as_str(), raw.value())?),
                    None => None,
                };
                let outcome = match (&req.op, current) {
                    (WriteOp::Create { .. }, Some(_)) => WriteOutcome::AlreadyExists,
                    (WriteOp::Create { key, value }, None) => {
                        revision += 1;
                        objects
                            .insert(key.as_str(), encode_object(revision, revision, value).as_slice())
                            .map_err(internal)?;
                        history
                            .insert(revision, encode_event(EVENT_PUT, millis, key, value, revision).as_slice())
                            .map_err(internal)?;
                        events.push(BackendEvent::Put {
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: revision,
                                mod_revision: revision,
                            },
                        });
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
                        objects.insert(key.as_str(), encode_object(c, revision, value).as_slice()).map_err(internal)?;
                        history
                            .insert(revision, encode_event(EVENT_PUT, millis, key, value, c).as_slice())
                            .map_err(internal)?;
                        events.push(BackendEvent::Put {
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: c,
                                mod_revision: revision,
                            },
                        });
                        WriteOutcome::Done { revision, prev: Some(cur) }
                    }
                    (WriteOp::Delete { expected_mod_revision: Some(exp), .. }, Some(cur))
                        if cur.mod_revision != *exp =>
                    {
                        WriteOutcome::Conflict { current_mod_revision: cur.mod_revision }
                    }
                    (WriteOp::Delete { key, .. }, Some(cur)) => {
                        revision += 1;
                        objects.remove(key.as_str()).map_err(internal)?;
                        history
                            .insert(
                                revision,
                                encode_event(EVENT_DELETE, millis, key, &cur.value, cur.create_revision).as_slice(),
                            )
                            .map_err(internal)?;
                        events.push(BackendEvent::Delete { key: key.clone(), revision, prev: cur.clone() });
                        WriteOutcome::Done { revision, prev: Some(cur) }
                    }
                };
                outcomes.push(outcome);
            }
            meta.insert(META_REVISION, revision).map_err(internal)?;
            self.maybe_compact(&mut history, &mut meta, revision, millis)?;
        }
        txn.commit().map_err(internal)?;
        Ok((outcomes, events))
    }

    /// Drops history older than the window, keeping at least `min_history` events. Runs at most
    /// once a second, inside a normal commit.
    fn maybe_compact(
        &mut self,
        history: &mut redb::Table<u64, &[u8]>,
        meta: &mut redb::Table<&str, u64>,
        revision: u64,
        millis: u64,
    ) -> Result<(), BackendError> {
        if millis < self.last_compaction + 1000 {
            return Ok(());
        }
        self.last_compaction = millis;
        let cutoff_millis = millis.saturating_sub(self.config.history_window.as_millis() as u64);
        let keep_from = revision.saturating_sub(self.config.min_history) + 1;
        let mut compact_to = meta.get(META_COMPACTED).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
        let mut doomed = Vec::new();
        for item in history.range(compact_to + 1..keep_from).map_err(internal)? {
            let (rev, raw) = item.map_err(internal)?;
            let rev = rev.value();
            let ev = decode_event(rev, raw.value())?;
            if ev.millis >= cutoff_millis {
                break;
            }
            doomed.push(rev);
            compact_to = rev;
            if doomed.len() >= 10_000 {
                break;
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        for rev in &doomed {
            history.remove(*rev).map_err(internal)?;
        }
        meta.insert(META_COMPACTED, compact_to).map_err(internal)?;
        tracing::debug!(events = doomed.len(), compacted = compact_to, "compacted watch history");
        Ok(())
    }
}
