//! The embedded (fjall) backend as a conformance [`Factory`]: each store lives in its own temp
//! directory, kept (and printed) if the case fails so the data can be inspected.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use strongroom_storage::backend::{Backend, BoxFuture, KeyValue, ObjectKey};
use strongroom_storage::embedded::{EmbeddedBackend, EmbeddedConfig};

use crate::harness::{Factory, Location, Retention};

/// The embedded backend compacts history inside a commit at most once a second.
const COMPACTION_INTERVAL: Duration = Duration::from_millis(1100);

/// How long a reopen retries while the previous backend is still letting go of the store's lock.
const REOPEN_PATIENCE: Duration = Duration::from_secs(5);

pub struct Embedded;

impl Factory for Embedded {
    fn create(&self, retention: Retention) -> Box<dyn Location> {
        let dir = tempfile::Builder::new().prefix("strongroom-storage-it-").tempdir().expect("temp dir");
        Box::new(EmbeddedLocation { dir: Some(dir), retention: Mutex::new(retention), open: Mutex::new(Weak::new()) })
    }
}

struct EmbeddedLocation {
    dir: Option<tempfile::TempDir>,
    retention: Mutex<Retention>,
    /// The backend last opened, while something still holds it.
    open: Mutex<Weak<EmbeddedBackend>>,
}

impl EmbeddedLocation {
    fn path(&self) -> PathBuf {
        self.dir.as_ref().expect("temp dir").path().join("store")
    }

    fn open_backend(&self) -> Arc<EmbeddedBackend> {
        assert!(
            self.open.lock().expect("lock").upgrade().is_none(),
            "harness misuse: a backend is still open on {}; drop it (and its Store) before reopening",
            self.path().display()
        );
        let retention = *self.retention.lock().expect("lock");
        let config = EmbeddedConfig {
            history_window: retention.window,
            min_history: retention.min_events,
            ..EmbeddedConfig::new(self.path())
        };
        let started = Instant::now();
        let backend = loop {
            match EmbeddedBackend::open(config.clone()) {
                Ok(b) => break Arc::new(b),
                // The previous backend's committer thread drops its database handle just after
                // the backend is dropped; give it a moment.
                Err(e) if started.elapsed() < REOPEN_PATIENCE => {
                    eprintln!("reopening {} failed, retrying: {e}", self.path().display());
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot open the embedded store at {}: {e}", self.path().display()),
            }
        };
        *self.open.lock().expect("lock") = Arc::downgrade(&backend);
        backend
    }

    /// The open backend, or a new one for the duration of one call.
    fn with_backend<R>(&self, f: impl FnOnce(&EmbeddedBackend) -> R) -> R {
        let open = self.open.lock().expect("lock").upgrade();
        match open {
            Some(b) => f(&b),
            None => {
                let b = self.open_backend();
                let out = f(&b);
                drop(b);
                out
            }
        }
    }
}

impl Location for EmbeddedLocation {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Backend>> {
        Box::pin(async move { self.open_backend() as Arc<dyn Backend> })
    }

    fn set_retention(&self, retention: Retention) {
        *self.retention.lock().expect("lock") = retention;
    }

    fn raw_objects(&self) -> BoxFuture<'_, Vec<KeyValue>> {
        Box::pin(async move { self.with_backend(|b| b.raw_objects().expect("raw_objects")) })
    }

    fn corrupt(&self, key: ObjectKey, value: Vec<u8>) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.with_backend(|b| b.corrupt_for_test(&key, &value).expect("corrupt_for_test")) })
    }

    fn files(&self) -> Option<PathBuf> {
        Some(self.path())
    }

    fn await_compaction_turn(&self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(COMPACTION_INTERVAL))
    }
}

impl Drop for EmbeddedLocation {
    fn drop(&mut self) {
        // A failed case keeps its data for inspection (etcd's robustness suite does the same).
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("the failed case's embedded store is kept at {}", kept.display());
        }
    }
}
