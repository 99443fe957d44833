//! Storage for strongroom: the [`backend::Backend`] seam, the value [`transformer`] that encrypts
//! every value before a backend sees it, and the [`cache::WatchCache`] that serves every read.
//! [`Store`] puts the three together; the server talks only to it.
//!
//! Architecture invariant: storage knows nothing about HTTP, identities or object kinds: objects
//! are bytes under an [`backend::ObjectKey`], decoded by the server's [`cache::ObjectDecoder`].
//! Backends see only ciphertext; encryption happens in exactly one place, in [`Store`]'s writes and
//! the cache's decode.

pub mod backend;
pub mod cache;
pub mod embedded;
pub mod transformer;

use std::sync::Arc;
use std::time::Duration;

use backend::{Backend, BackendError, ObjectKey, WriteOp, WriteOutcome};
use cache::{CacheConfig, CachedObject, ObjectDecoder, WatchCache};
use transformer::{TransformError, Transformers};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("{key} was modified (now at revision {current})")]
    Conflict { key: ObjectKey, current: u64 },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("cannot encrypt {key}: {source}")]
    Transform { key: ObjectKey, source: TransformError },
    #[error("the write of {key} is durable but the cache did not apply it within {timeout:?}")]
    CacheTimeout { key: ObjectKey, timeout: Duration },
}

/// How long a writer waits for the cache to apply its own write before answering. The cache
/// applies a batch within microseconds of its commit; this only bounds pathological stalls.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Store<T> {
    backend: Arc<dyn Backend>,
    transformers: Arc<Transformers>,
    cache: Arc<WatchCache<T>>,
}

impl<T: Send + Sync + 'static> Store<T> {
    /// Loads everything from the backend into the cache and starts following its feed.
    pub async fn open(
        backend: Arc<dyn Backend>,
        transformers: Arc<Transformers>,
        decoder: Arc<dyn ObjectDecoder<T>>,
        config: CacheConfig,
    ) -> Result<Self, BackendError> {
        let (snapshot, feed) = backend.start().await?;
        tracing::info!(
            backend = backend.name(),
            objects = snapshot.objects.len(),
            revision = snapshot.revision,
            history = snapshot.history.len(),
            "store loaded"
        );
        let cache = WatchCache::start(snapshot, feed, transformers.clone(), decoder, config);
        Ok(Store { backend, transformers, cache })
    }

    pub fn cache(&self) -> &WatchCache<T> {
        &self.cache
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn transformers(&self) -> &Arc<Transformers> {
        &self.transformers
    }

    fn encrypt(&self, key: &ObjectKey, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.transformers
            .for_resource(key.resource())
            .transform_to_storage(plaintext, key.as_str())
            .map_err(|source| StoreError::Transform { key: key.clone(), source })
    }

    /// Creates `key`; answers with the object as the cache now serves it.
    pub async fn create(&self, key: &ObjectKey, plaintext: &[u8]) -> Result<Arc<CachedObject<T>>, StoreError> {
        let value = self.encrypt(key, plaintext)?;
        let outcome = self.backend.write(WriteOp::Create { key: key.clone(), value: value.clone() }).await?;
        self.finish(key, outcome, Some(value)).await
    }

    /// Replaces `key` if its revision is still `expected_revision`.
    pub async fn update(
        &self,
        key: &ObjectKey,
        plaintext: &[u8],
        expected_revision: u64,
    ) -> Result<Arc<CachedObject<T>>, StoreError> {
        let value = self.encrypt(key, plaintext)?;
        let op = WriteOp::Update { key: key.clone(), value: value.clone(), expected_mod_revision: expected_revision };
        let outcome = self.backend.write(op).await?;
        self.finish(key, outcome, Some(value)).await
    }

    /// Deletes `key` (if still at `expected_revision`, when given); answers with the last state,
    /// carrying the delete's revision.
    pub async fn delete(
        &self,
        key: &ObjectKey,
        expected_revision: Option<u64>,
    ) -> Result<Arc<CachedObject<T>>, StoreError> {
        let op = WriteOp::Delete { key: key.clone(), expected_mod_revision: expected_revision };
        let outcome = self.backend.write(op).await?;
        self.finish(key, outcome, None).await
    }

    /// Turns a backend outcome into the answer: the object at exactly the write's revision.
    /// `written` is the stored value of a create or update (a delete answers with its `prev`).
    async fn finish(
        &self,
        key: &ObjectKey,
        outcome: WriteOutcome,
        written: Option<Vec<u8>>,
    ) -> Result<Arc<CachedObject<T>>, StoreError> {
        let (revision, prev) = match outcome {
            WriteOutcome::Done { revision, prev } => (revision, prev),
            WriteOutcome::AlreadyExists => return Err(StoreError::AlreadyExists { key: key.clone() }),
            WriteOutcome::NotFound => return Err(StoreError::NotFound { key: key.clone() }),
            WriteOutcome::Conflict { current_mod_revision } => {
                return Err(StoreError::Conflict { key: key.clone(), current: current_mod_revision });
            }
        };
        // Read-your-writes: answer only once the cache serves this revision.
        if !self.cache.wait_for(revision, APPLY_TIMEOUT).await {
            return Err(StoreError::CacheTimeout { key: key.clone(), timeout: APPLY_TIMEOUT });
        }
        // Usually the shared event is still in the window; otherwise decode the write itself.
        // Never answer from the current state: by now it may be another writer's.
        if let Some(ev) = self.cache.event_at(revision) {
            return Ok(ev.object.clone());
        }
        let record = match (written, prev) {
            (Some(value), prev) => backend::KeyValue {
                key: key.clone(),
                value,
                create_revision: prev.map(|p| p.create_revision).unwrap_or(revision),
                mod_revision: revision,
            },
            (None, Some(prev)) => prev,
            (None, None) => return Err(StoreError::NotFound { key: key.clone() }),
        };
        Ok(Arc::new(self.cache.decode_record(&record, revision)))
    }
}
