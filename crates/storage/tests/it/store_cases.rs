//! Cases through `Store` and its `WatchCache`, the way the server uses storage: Kubernetes write
//! semantics with the exact errors, races, group commit, read-your-writes, durability across a
//! restart, and encryption at rest.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strongroom_storage::StoreError;
use strongroom_storage::backend::ObjectKey;
use strongroom_storage::cache::{CacheConfig, WatchStart};
use tokio::sync::Barrier;

use crate::harness::{
    AESGCM_PREFIX, CANARY, Driver, Factory, Retention, body, body_text, cached_state, decrypt, events_after, key,
    open_store, open_store_lagging, open_store_with, prefix, runtime, state_of, take, transformers,
};

fn expect_err<T>(what: &str, result: Result<T, StoreError>) -> StoreError {
    match result {
        Ok(_) => panic!("{what}: expected an error, the write succeeded"),
        Err(e) => e,
    }
}

/// Kubernetes write semantics through `Store`: AlreadyExists, Conflict (writing nothing),
/// NotFound, a delete answering with the last state at the delete's revision, a global revision,
/// and the exact messages.
pub async fn store_writes_follow_kubernetes_semantics(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let cache = store.cache();
    let base = cache.revision();
    let (a, b, missing) = (key("app", "a"), key("app2", "b"), key("app", "missing"));

    let created = store.create(&a, &body("a1")).await.expect("create a");
    assert_eq!(state_of(&created), (base + 1, body_text("a1")), "create answers with the stored object");
    assert_eq!(
        cache.get(&a).as_deref().map(state_of),
        Some((base + 1, body_text("a1"))),
        "get returns what was written"
    );

    let err = expect_err("second create of a", store.create(&a, &body("a-again")).await);
    assert!(matches!(&err, StoreError::AlreadyExists { key } if key == &a), "second create: {err:?}");
    assert_eq!(err.to_string(), "/registry/secrets/app/a already exists");
    assert_eq!(
        cache.get(&a).as_deref().map(state_of),
        Some((base + 1, body_text("a1"))),
        "a failed create changes nothing"
    );

    let rb = store.create(&b, &body("b1")).await.expect("create b").revision;
    assert_eq!(rb, base + 2, "the revision is global across keys and namespaces");

    let err = expect_err("update a with a stale revision", store.update(&a, &body("a-stale"), rb).await);
    assert!(
        matches!(&err, StoreError::Conflict { key, current } if key == &a && *current == base + 1),
        "stale update: {err:?}"
    );
    assert_eq!(err.to_string(), format!("/registry/secrets/app/a was modified (now at revision {})", base + 1));
    assert_eq!(cache.get(&a).as_deref().map(state_of), Some((base + 1, body_text("a1"))), "a conflict writes nothing");
    assert_eq!(cache.revision(), rb, "a conflict takes no revision");

    let updated = store.update(&a, &body("a2"), base + 1).await.expect("update a");
    assert_eq!(state_of(&updated), (base + 3, body_text("a2")));
    assert_eq!(cache.get(&a).as_deref().map(state_of), Some((base + 3, body_text("a2"))));

    let err = expect_err("update of a missing key", store.update(&missing, &body("x"), base + 1).await);
    assert!(matches!(&err, StoreError::NotFound { key } if key == &missing), "update missing: {err:?}");
    assert_eq!(err.to_string(), "/registry/secrets/app/missing not found");
    let err = expect_err("delete of a missing key", store.delete(&missing, None).await);
    assert!(matches!(&err, StoreError::NotFound { key } if key == &missing), "delete missing: {err:?}");
    assert_eq!(err.to_string(), "/registry/secrets/app/missing not found");

    let err = expect_err("delete a with a stale revision", store.delete(&a, Some(base + 1)).await);
    assert!(
        matches!(&err, StoreError::Conflict { key, current } if key == &a && *current == base + 3),
        "stale delete: {err:?}"
    );
    assert_eq!(err.to_string(), format!("/registry/secrets/app/a was modified (now at revision {})", base + 3));
    assert_eq!(cache.get(&a).as_deref().map(state_of), Some((base + 3, body_text("a2"))), "a conflict deletes nothing");
    assert_eq!(cache.revision(), base + 3);

    let deleted = store.delete(&a, Some(base + 3)).await.expect("delete a");
    assert_eq!(
        state_of(&deleted),
        (base + 4, body_text("a2")),
        "a delete answers with the last state, carrying the delete's revision"
    );
    assert!(cache.get(&a).is_none(), "a deleted object is gone");
    let err = expect_err("update of a deleted key", store.update(&a, &body("a3"), base + 3).await);
    assert!(matches!(&err, StoreError::NotFound { .. }), "update after delete: {err:?}");

    let deleted = store.delete(&b, None).await.expect("unconditional delete of b");
    assert_eq!(state_of(&deleted), (base + 5, body_text("b1")));
    let recreated = store.create(&a, &body("a-new")).await.expect("re-create a");
    assert_eq!(state_of(&recreated), (base + 6, body_text("a-new")));
    assert_eq!(cache.revision(), base + 6);
}

/// Reliability 3.2 item 19: N concurrent updates with the same expected revision: exactly one
/// wins, N−1 get Conflict naming the winner's revision; the final content is the winner's.
pub async fn store_concurrent_updates_have_one_winner(f: &dyn Factory) {
    const N: usize = 16;
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let k = key("app", "contended");
    let r0 = store.create(&k, &body("v0")).await.expect("create").revision;

    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (store, barrier, k) = (store.clone(), barrier.clone(), k.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.update(&k, &body(&format!("v{i}")), r0).await.map(|o| state_of(&o))
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("updater task") {
            Ok(state) => winners.push((i, state)),
            Err(StoreError::Conflict { key, current }) => {
                assert_eq!(key, k);
                conflicts.push(current);
            }
            Err(e) => panic!("update {i}: expected success or Conflict, got {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent update must win: {winners:?}");
    let (winner, (revision, text)) = winners.pop().expect("one winner");
    assert_eq!(conflicts.len(), N - 1, "every other update must conflict");
    assert_eq!(revision, r0 + 1, "only the winner takes a revision");
    assert_eq!(text, body_text(&format!("v{winner}")));
    assert!(
        conflicts.iter().all(|c| *c == revision),
        "each Conflict names the winner's revision {revision}: {conflicts:?}"
    );
    assert_eq!(
        store.cache().get(&k).as_deref().map(state_of),
        Some((revision, text)),
        "the final content is the winner's"
    );
    assert_eq!(store.cache().revision(), revision);
}

/// Reliability 3.2 item 20: N concurrent creates of one name: exactly one succeeds, the rest get
/// AlreadyExists.
pub async fn store_concurrent_creates_have_one_winner(f: &dyn Factory) {
    const N: usize = 16;
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let base = store.cache().revision();
    let k = key("app", "raced");
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (store, barrier, k) = (store.clone(), barrier.clone(), k.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.create(&k, &body(&format!("v{i}"))).await.map(|o| state_of(&o))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("creator task") {
            Ok(state) => winners.push((i, state)),
            Err(StoreError::AlreadyExists { key }) => assert_eq!(key, k),
            Err(e) => panic!("create {i}: expected success or AlreadyExists, got {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent create must win: {winners:?}");
    let (winner, state) = winners.pop().expect("one winner");
    assert_eq!(state, (base + 1, body_text(&format!("v{winner}"))));
    assert_eq!(store.cache().get(&k).as_deref().map(state_of), Some(state));
    assert_eq!(store.cache().revision(), base + 1, "losing creates take no revision");
}

/// Group commit through `Store`: 200 concurrent creates all succeed with distinct, gap-free,
/// consecutive revisions, and each is served by the cache as written.
pub async fn store_group_commit_gives_consecutive_revisions(f: &dyn Factory) {
    const WRITES: u64 = 200;
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let base = store.cache().revision();
    let tasks: Vec<_> = (0..WRITES)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let k = key("app", &format!("s-{i:03}"));
                let obj = store.create(&k, &body(&format!("v{i}"))).await.unwrap_or_else(|e| panic!("create {k}: {e}"));
                (k, state_of(&obj), i)
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        let (k, (revision, text), i) = task.await.expect("writer task");
        assert_eq!(text, body_text(&format!("v{i}")), "create {k} answered with another body");
        assert_eq!(store.cache().get(&k).as_deref().map(state_of), Some((revision, text)), "the cache serves {k}");
        revisions.push(revision);
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (base + 1..=base + WRITES).collect::<Vec<_>>(), "revisions must be distinct and consecutive");
    assert_eq!(store.cache().revision(), base + WRITES);
    assert_eq!(store.cache().snapshot().objects.len() as u64, WRITES);
}

/// Read-your-writes: as soon as create, update or delete returns, the cache serves its result,
/// also with many writers at once and a cache that lags behind the backend (its decoder takes a
/// millisecond per object).
pub async fn store_reads_its_own_writes(f: &dyn Factory) {
    const WRITERS: usize = 32;
    let loc = f.create(Retention::default());
    let store = open_store_lagging(&*loc, CacheConfig::default(), std::time::Duration::from_millis(1)).await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let cache = store.cache();
                let k = key("app", &format!("ryw-{i:02}"));
                let created = store.create(&k, &body(&format!("c{i}"))).await.expect("create");
                assert_eq!(
                    cache.get(&k).as_deref().map(state_of),
                    Some(state_of(&created)),
                    "get right after create of {k}"
                );
                assert!(cache.revision() >= created.revision, "the cache revision is behind the create of {k}");
                let updated = store.update(&k, &body(&format!("u{i}")), created.revision).await.expect("update");
                assert_eq!(
                    cache.get(&k).as_deref().map(state_of),
                    Some(state_of(&updated)),
                    "get right after update of {k}"
                );
                let deleted = store.delete(&k, Some(updated.revision)).await.expect("delete");
                assert!(cache.get(&k).is_none(), "get right after delete of {k} still finds it");
                assert!(cache.revision() >= deleted.revision);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
}

/// A write's answer does not depend on the cache's event window: with the smallest window the
/// `CacheConfig` allows (one event), concurrent deletes committed in one batch each still answer
/// with the object's last state at their own revision. Guards against `Store::finish` falling back
/// to `cache.get(key)` when its event has left the window, which answers a successful delete with
/// `NotFound` (and a create or update with whatever state is current by then).
pub async fn store_answers_do_not_depend_on_the_event_window(f: &dyn Factory) {
    const N: usize = 64;
    let loc = f.create(Retention::default());
    let config = CacheConfig { min_history: 1, max_history: 1, ..CacheConfig::default() };
    let store = open_store_with(&*loc, config).await;
    let mut revisions = Vec::new();
    for i in 0..N {
        let k = key("app", &format!("k{i:02}"));
        revisions.push(store.create(&k, &body(&format!("v{i}"))).await.expect("create").revision);
    }
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (store, barrier, expected) = (store.clone(), barrier.clone(), revisions[i]);
            tokio::spawn(async move {
                let k = key("app", &format!("k{i:02}"));
                barrier.wait().await;
                let result = store.delete(&k, Some(expected)).await.map(|o| state_of(&o));
                (k, i, result)
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut delete_revisions = Vec::new();
    for task in tasks {
        let (k, i, result) = task.await.expect("deleter task");
        match result {
            Ok((revision, text)) => {
                assert_eq!(text, body_text(&format!("v{i}")), "delete of {k} must answer with its last state");
                delete_revisions.push(revision);
            }
            Err(e) => failures.push(format!("{k}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {N} successful deletes answered with an error: {failures:#?}", failures.len());
    assert!(store.cache().snapshot().objects.is_empty(), "every object was deleted");
    delete_revisions.sort_unstable();
    let last = revisions[N - 1];
    assert_eq!(delete_revisions, (last + 1..=last + N as u64).collect::<Vec<_>>());
}

/// Durability across a restart: write, drop the store, the backend and the whole tokio runtime,
/// reopen the same data: every object with its revision and the current revision are back (also
/// when the last write was a delete), the history replays to a watch, and new writes continue
/// above the old revision.
pub fn store_state_survives_a_restart(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let (a, b, c, gone) = (key("app", "a"), key("app", "b"), key("app2", "c"), key("app", "gone"));

    let (log, before, last) = runtime().block_on(async {
        let store = open_store(&*loc).await;
        let mut d = Driver::new(store.clone());
        d.create(&a, "a1").await;
        d.create(&b, "b1").await;
        d.create(&c, "c1").await;
        d.update(&a, "a2").await;
        d.delete(&b).await;
        d.create(&gone, "g1").await;
        d.update(&c, "c2").await;
        d.delete(&gone).await;
        let before = cached_state(&store);
        assert_eq!(store.cache().revision(), d.last());
        (d.log.clone(), before, d.last())
    });
    // Dropping the runtime cancels the cache's feed task; the backend and store are gone.

    runtime().block_on(async {
        let store = open_store(&*loc).await;
        let cache = store.cache();
        assert_eq!(cache.revision(), last, "the current revision after restart (the last write was a delete)");
        assert_eq!(cached_state(&store), before, "every object and its revision after restart");

        // The retained history replays to a watch from before the first write.
        let first = log[0].revision;
        let mut w = cache.watch(&prefix("app"), WatchStart::After(first - 1)).expect("watch after restart");
        let expected = events_after(&log, first - 1, &prefix("app"));
        let got = take(&mut w, expected.len(), "replay after restart").await;
        assert_eq!(got, expected, "the history replayed after a restart");

        let mut d = Driver::new(store.clone());
        let r = d.create(&b, "b2").await;
        assert_eq!(r, last + 1, "the revision never goes backwards after a restart");
        let got = take(&mut w, 1, "the first write after restart").await;
        assert_eq!(got, d.log, "a watch from before the restart continues with new writes");
        let updated = store.update(&a, &body("a3"), before[a.as_str()].0).await.expect("update a at its old revision");
        assert_eq!(updated.revision, last + 2);
    });
}

/// Encryption at rest: what the backend stores is AES-GCM ciphertext bound to its key (never the
/// plaintext), and no file the backend writes contains the plaintext either (history, journal and
/// overwritten values included).
pub async fn store_keeps_plaintext_out_of_the_backend(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let (a, b, c) = (key("app", "a"), key("app", "b"), key("app", "c"));
    let mut d = Driver::new(store.clone());
    d.create(&a, "a1").await;
    d.create(&b, "b1").await;
    d.update(&a, "a2").await;
    d.delete(&b).await;
    d.create(&c, "c1").await;

    let raw = loc.raw_objects().await;
    let t = transformers();
    let keys: Vec<&ObjectKey> = raw.iter().map(|kv| &kv.key).collect();
    assert_eq!(keys, vec![&a, &c], "the stored records");
    for kv in &raw {
        assert!(kv.value.starts_with(AESGCM_PREFIX), "{} is not stored as aesgcm:key1 ciphertext", kv.key);
        assert!(!contains(&kv.value, CANARY.as_bytes()), "{} is stored with its plaintext", kv.key);
        assert_eq!(decrypt(&t, &kv.key, &kv.value), state_of(&store.cache().get(&kv.key).expect("cached")).1);
        // AES-GCM binds the value to its key: the same bytes under another key do not decrypt.
        let other = if kv.key == a { &c } else { &a };
        assert!(
            t.for_resource("secrets").transform_from_storage(&kv.value, other.as_str()).is_err(),
            "the value of {} decrypts under {other}",
            kv.key
        );
    }
    drop(d);
    drop(store);

    if let Some(dir) = loc.files() {
        // The backend may still be compacting in the background (its threads outlive the drop
        // for a moment), so a file can vanish mid-scan; its bytes then live in a newer file, and
        // the scan is repeated until one pass reads every file it lists.
        let mut ciphertext_seen = false;
        for pass in 1.. {
            let mut files = Vec::new();
            walk(&dir, &mut files);
            let mut vanished = 0;
            for path in &files {
                let bytes = match std::fs::read(path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        vanished += 1;
                        continue;
                    }
                    Err(e) => panic!("read {}: {e}", path.display()),
                };
                assert!(!contains(&bytes, CANARY.as_bytes()), "{} holds plaintext", path.display());
                ciphertext_seen |= contains(&bytes, AESGCM_PREFIX);
            }
            if vanished == 0 {
                break;
            }
            assert!(pass < 20, "files under {} keep vanishing while scanned", dir.display());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Guard against a vacuous pass: the scan must have seen the stored values.
        assert!(ciphertext_seen, "no file under {} holds the stored ciphertext", dir.display());
    }
}

/// A value corrupted on disk fails closed for that one object: after a restart its `body` is the
/// decryption error (naming the key, never the value) while every other object decodes, and the
/// store keeps working.
pub async fn store_corrupt_value_fails_only_that_object(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let (a, b, c, plain) = (key("app", "a"), key("app", "b"), key("app", "c"), key("app", "plain"));
    let store = open_store(&*loc).await;
    let mut d = Driver::new(store.clone());
    d.create(&a, "a1").await;
    let rb = d.create(&b, "b1").await;
    d.create(&c, "c1").await;
    let rp = d.create(&plain, "p1").await;
    drop(d);
    drop(store);

    let raw: BTreeMap<ObjectKey, Vec<u8>> = loc.raw_objects().await.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let mut flipped = raw[&b].clone();
    *flipped.last_mut().expect("non-empty value") ^= 0x01;
    loc.corrupt(b.clone(), flipped).await;
    // A plaintext value where ciphertext belongs must not be served either.
    loc.corrupt(plain.clone(), body("injected")).await;

    let store = open_store(&*loc).await;
    let cache = store.cache();
    let got_b = cache.get(&b).expect("a corrupt object stays listed");
    assert_eq!(got_b.revision, rb);
    assert_eq!(
        got_b.body.as_ref().err().map(String::as_str),
        Some(
            "could not decrypt the value at /registry/secrets/app/b with key \"key1\" of provider aesgcm: wrong key or corrupt data"
        ),
        "the corrupt object's body"
    );
    let got_plain = cache.get(&plain).expect("listed");
    assert_eq!(got_plain.revision, rp);
    assert_eq!(
        got_plain.body.as_ref().err().map(String::as_str),
        Some(
            "no configured provider can read the value at /registry/secrets/app/plain (written by identity); the encryption configuration for this resource does not list it"
        ),
        "an unencrypted value under an aesgcm-only configuration is not served"
    );
    assert_eq!(cache.get(&a).as_deref().map(state_of).map(|s| s.1), Some(body_text("a1")));
    assert_eq!(cache.get(&c).as_deref().map(state_of).map(|s| s.1), Some(body_text("c1")));
    assert_eq!(cache.snapshot().objects.len(), 4);

    let updated = store.update(&a, &body("a2"), cache.get(&a).expect("a").revision).await.expect("writes still work");
    assert_eq!(state_of(&updated).1, body_text("a2"));
    let fixed = store.update(&b, &body("b2"), rb).await.expect("a corrupt object can be overwritten");
    assert_eq!(state_of(&fixed).1, body_text("b2"));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A directory removed by the backend's background work between listing and reading.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}
