//! Cases at the `Backend` seam itself, without the cache: write outcomes (etcd's transaction
//! semantics), the feed's ordering and atomicity, group commit, and what a reopened backend loads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use strongroom_storage::backend::{BackendEvent, FeedItem, KeyValue, ObjectKey, WriteOp, WriteOutcome};
use strongroom_storage::transformer::Transformers;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use crate::harness::{Factory, Retention, body_text, decrypt, encrypt, key, transformers};

fn describe(outcome: &Result<WriteOutcome, impl std::fmt::Display>) -> String {
    match outcome {
        Ok(o) => format!("{o:?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// The revision of a successful write, failing with `what` otherwise.
fn done(what: &str, outcome: Result<WriteOutcome, impl std::fmt::Display>) -> (u64, Option<KeyValue>) {
    match outcome {
        Ok(WriteOutcome::Done { revision, prev }) => (revision, prev),
        other => panic!("{what}: expected Done, got {}", describe(&other)),
    }
}

fn create(t: &Transformers, k: &ObjectKey, label: &str) -> WriteOp {
    WriteOp::Create { key: k.clone(), value: encrypt(t, k, &crate::harness::body(label)) }
}

fn update(t: &Transformers, k: &ObjectKey, label: &str, expected: u64) -> WriteOp {
    WriteOp::Update {
        key: k.clone(),
        value: encrypt(t, k, &crate::harness::body(label)),
        expected_mod_revision: expected,
    }
}

/// Every event currently in the feed (without waiting), skipping progress notifications.
fn drain(feed: &mut mpsc::UnboundedReceiver<FeedItem>) -> Vec<Vec<BackendEvent>> {
    let mut batches = Vec::new();
    loop {
        match feed.try_recv() {
            Ok(FeedItem::Events(batch)) => batches.push(batch),
            Ok(FeedItem::Progress(_)) => {}
            Err(TryRecvError::Empty) => return batches,
            Err(TryRecvError::Disconnected) => panic!("the feed closed while the backend is open"),
        }
    }
}

fn event_key(ev: &BackendEvent) -> &ObjectKey {
    match ev {
        BackendEvent::Put { kv } => &kv.key,
        BackendEvent::Delete { key, .. } => key,
    }
}

/// create → AlreadyExists on a second create; revisions global across keys; stale update or
/// delete → Conflict with the current revision and nothing written; update/delete of a missing key
/// → NotFound; delete answers with the removed record. Exactly etcd's transaction outcomes.
pub async fn backend_write_outcomes_follow_etcd(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let b = loc.open().await;
    let t = transformers();
    let (snapshot, _feed) = b.start().await.expect("start");
    assert!(snapshot.objects.is_empty() && snapshot.history.is_empty(), "a new store must be empty");
    let base = snapshot.revision;
    let (a, c, missing) = (key("app", "a"), key("other", "c"), key("app", "missing"));

    let (r1, prev) = done("create a", b.write(create(&t, &a, "a1")).await);
    assert_eq!(r1, base + 1, "the first write takes the next revision");
    assert!(prev.is_none(), "a create has no previous record, got {prev:?}");

    let again = b.write(create(&t, &a, "a-again")).await;
    assert!(matches!(again, Ok(WriteOutcome::AlreadyExists)), "second create of a: {}", describe(&again));

    let (r2, _) = done("create c in another namespace", b.write(create(&t, &c, "c1")).await);
    assert_eq!(r2, r1 + 1, "the revision is global across keys, and a failed create takes none");

    let stale = b.write(update(&t, &a, "a-stale", r2)).await;
    assert!(
        matches!(stale, Ok(WriteOutcome::Conflict { current_mod_revision }) if current_mod_revision == r1),
        "update of a with a stale revision: expected Conflict {{ current_mod_revision: {r1} }}, got {}",
        describe(&stale)
    );

    let (r3, _) = done("update a at its revision", b.write(update(&t, &a, "a2", r1)).await);
    assert_eq!(r3, r2 + 1, "a conflicting update takes no revision");

    let upd_missing = b.write(update(&t, &missing, "x", 1)).await;
    assert!(matches!(upd_missing, Ok(WriteOutcome::NotFound)), "update of a missing key: {}", describe(&upd_missing));
    let del_missing = b.write(WriteOp::Delete { key: missing.clone(), expected_mod_revision: None }).await;
    assert!(matches!(del_missing, Ok(WriteOutcome::NotFound)), "delete of a missing key: {}", describe(&del_missing));

    let del_stale = b.write(WriteOp::Delete { key: a.clone(), expected_mod_revision: Some(r1) }).await;
    assert!(
        matches!(del_stale, Ok(WriteOutcome::Conflict { current_mod_revision }) if current_mod_revision == r3),
        "delete of a with a stale revision: expected Conflict {{ current_mod_revision: {r3} }}, got {}",
        describe(&del_stale)
    );

    let (r4, prev) = done(
        "delete a at its revision",
        b.write(WriteOp::Delete { key: a.clone(), expected_mod_revision: Some(r3) }).await,
    );
    assert_eq!(r4, r3 + 1, "failed writes take no revision");
    let prev = prev.expect("a delete answers with the removed record");
    assert_eq!(
        (&prev.key, prev.create_revision, prev.mod_revision),
        (&a, r1, r3),
        "the removed record's key, create and mod revision"
    );
    assert_eq!(decrypt(&t, &a, &prev.value), body_text("a2"), "the removed record's value is the last one");

    let (r5, prev) = done(
        "unconditional delete of c",
        b.write(WriteOp::Delete { key: c.clone(), expected_mod_revision: None }).await,
    );
    assert_eq!(r5, r4 + 1);
    let prev = prev.expect("a delete answers with the removed record");
    assert_eq!((prev.create_revision, prev.mod_revision), (r2, r2));

    let upd_deleted = b.write(update(&t, &a, "a3", r3)).await;
    assert!(matches!(upd_deleted, Ok(WriteOutcome::NotFound)), "update of a deleted key: {}", describe(&upd_deleted));

    let (r6, _) = done("re-create a", b.write(create(&t, &a, "a-new")).await);
    assert_eq!(r6, r5 + 1);
}

/// The Backend invariant: a write's future resolves only after its event is in the feed, every
/// committed write is delivered exactly once, in order, and failed writes deliver nothing.
pub async fn backend_feed_has_each_event_before_its_write_resolves(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let b = loc.open().await;
    let t = transformers();
    let (snapshot, mut feed) = b.start().await.expect("start");
    let base = snapshot.revision;
    let a = key("app", "a");

    let expect_one = |feed: &mut mpsc::UnboundedReceiver<FeedItem>, what: &str| -> BackendEvent {
        let batches = drain(feed);
        let events: Vec<BackendEvent> = batches.into_iter().flatten().collect();
        assert_eq!(
            events.len(),
            1,
            "{what}: exactly one event must be in the feed when the write resolves: {events:?}"
        );
        events.into_iter().next().expect("one event")
    };

    let (r1, _) = done("create a", b.write(create(&t, &a, "a1")).await);
    match expect_one(&mut feed, "create a") {
        BackendEvent::Put { kv } => {
            assert_eq!((&kv.key, kv.create_revision, kv.mod_revision), (&a, r1, r1));
            assert_eq!(decrypt(&t, &a, &kv.value), body_text("a1"));
        }
        other => panic!("create a: expected a Put, got {other:?}"),
    }
    assert_eq!(r1, base + 1);

    let conflict = b.write(update(&t, &a, "nope", r1 + 7)).await;
    assert!(matches!(conflict, Ok(WriteOutcome::Conflict { .. })), "stale update: {}", describe(&conflict));
    let exists = b.write(create(&t, &a, "nope")).await;
    assert!(matches!(exists, Ok(WriteOutcome::AlreadyExists)), "second create: {}", describe(&exists));
    assert!(drain(&mut feed).is_empty(), "failed writes must not reach the feed");

    let (r2, _) = done("update a", b.write(update(&t, &a, "a2", r1)).await);
    match expect_one(&mut feed, "update a") {
        BackendEvent::Put { kv } => {
            assert_eq!((&kv.key, kv.create_revision, kv.mod_revision), (&a, r1, r2));
            assert_eq!(decrypt(&t, &a, &kv.value), body_text("a2"));
        }
        other => panic!("update a: expected a Put, got {other:?}"),
    }

    let (r3, _) = done("delete a", b.write(WriteOp::Delete { key: a.clone(), expected_mod_revision: Some(r2) }).await);
    match expect_one(&mut feed, "delete a") {
        BackendEvent::Delete { key, revision, prev } => {
            assert_eq!((&key, revision), (&a, r3));
            assert_eq!((&prev.key, prev.create_revision, prev.mod_revision), (&a, r1, r2), "the deleted record");
            assert_eq!(decrypt(&t, &a, &prev.value), body_text("a2"), "a delete event carries the last value");
        }
        other => panic!("delete a: expected a Delete, got {other:?}"),
    }
    assert_eq!((r2, r3), (r1 + 1, r1 + 2), "failed writes take no revision");
}

/// Group commit: 200 concurrent creates all succeed with distinct, gap-free, consecutive
/// revisions; the feed delivers them in revision order, each batch a consecutive run (atomic),
/// every event exactly once and under the key its write was given.
pub async fn backend_group_commit_assigns_consecutive_revisions(f: &dyn Factory) {
    const WRITES: u64 = 200;
    let loc = f.create(Retention::default());
    let b = loc.open().await;
    let t = transformers();
    let (snapshot, mut feed) = b.start().await.expect("start");
    let base = snapshot.revision;

    let tasks: Vec<_> = (0..WRITES)
        .map(|i| {
            let b = b.clone();
            let k = key("app", &format!("s-{i:03}"));
            let op = create(&t, &k, &format!("v{i}"));
            tokio::spawn(async move { (k, b.write(op).await.map_err(|e| e.to_string())) })
        })
        .collect();
    let mut by_revision = BTreeMap::new();
    for task in tasks {
        let (k, outcome) = task.await.expect("writer task");
        let (revision, _) = done(&format!("concurrent create of {k}"), outcome);
        assert!(by_revision.insert(revision, k.clone()).is_none(), "revision {revision} was given to two writes");
    }
    let revisions: Vec<u64> = by_revision.keys().copied().collect();
    assert_eq!(revisions, (base + 1..=base + WRITES).collect::<Vec<_>>(), "revisions must be consecutive");

    let batches = drain(&mut feed);
    let mut delivered = Vec::new();
    for batch in &batches {
        let revs: Vec<u64> = batch.iter().map(BackendEvent::revision).collect();
        let first = revs[0];
        assert_eq!(
            revs,
            (first..first + revs.len() as u64).collect::<Vec<_>>(),
            "a feed batch must be a consecutive run"
        );
        for ev in batch {
            assert_eq!(Some(event_key(ev)), by_revision.get(&ev.revision()), "the event at revision {}", ev.revision());
            assert!(matches!(ev, BackendEvent::Put { kv } if kv.create_revision == kv.mod_revision));
        }
        delivered.extend(revs);
    }
    assert_eq!(delivered, revisions, "the feed must deliver every write once, in revision order");
    eprintln!("{WRITES} concurrent creates were committed in {} feed batches", batches.len());
}

/// `start` while writers are running: the snapshot holds exactly the writes at or below its
/// revision and the feed continues at the very next revision, without a gap or a repeat.
pub async fn backend_start_during_writes_joins_snapshot_and_feed(f: &dyn Factory) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 50;
    let loc = f.create(Retention::default());
    let b = loc.open().await;
    let t = Arc::new(transformers());
    let written = Arc::new(Mutex::new(BTreeMap::<u64, ObjectKey>::new()));
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<()>();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (b, t, written, progress) = (b.clone(), t.clone(), written.clone(), progress_tx.clone());
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let k = key("app", &format!("w{w}-{i:02}"));
                    let (revision, _) = done(&format!("create {k}"), b.write(create(&t, &k, "v")).await);
                    written.lock().expect("lock").insert(revision, k);
                    let _ = progress.send(());
                }
            })
        })
        .collect();
    drop(progress_tx);
    // Start once some writes are in, while the rest are still being committed.
    for _ in 0..20 {
        progress_rx.recv().await.expect("writers progress");
    }
    let (snapshot, mut feed) = b.start().await.expect("start");
    for w in writers {
        w.await.expect("writer task");
    }
    let written = written.lock().expect("lock").clone();
    let total = (WRITERS * PER_WRITER) as u64;
    let last = *written.keys().last().expect("writes");
    let first = *written.keys().next().expect("writes");
    assert_eq!(written.len() as u64, total);
    assert_eq!(last - first + 1, total, "revisions must be gap-free");

    let r = snapshot.revision;
    assert!(r >= first + 19 && r <= last, "the snapshot revision {r} must cover the first 20 writes");
    let in_snapshot: BTreeMap<ObjectKey, u64> =
        snapshot.objects.iter().map(|kv| (kv.key.clone(), kv.mod_revision)).collect();
    let expected: BTreeMap<ObjectKey, u64> =
        written.iter().filter(|(rev, _)| **rev <= r).map(|(rev, k)| (k.clone(), *rev)).collect();
    assert_eq!(in_snapshot, expected, "the snapshot at {r} must hold exactly the writes at or below it");

    let delivered: Vec<u64> = drain(&mut feed).iter().flatten().map(BackendEvent::revision).collect();
    assert_eq!(
        delivered,
        (r + 1..=last).collect::<Vec<_>>(),
        "the feed must start right after the snapshot's revision {r}"
    );
}

/// Durability: after the backend is dropped and reopened on the same data, every object (with its
/// create and mod revisions and value), the history and the current revision are back, also when
/// the last write was a delete; new writes continue above it.
pub async fn backend_reopen_restores_objects_revision_and_history(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let t = transformers();
    let (a, bb, c, d) = (key("app", "a"), key("app", "b"), key("other", "c"), key("app", "d"));
    let b = loc.open().await;
    let (snapshot, _feed) = b.start().await.expect("start");
    let base = snapshot.revision;
    let mut history = Vec::new();
    let mut write = async |op: WriteOp, what: &str| {
        let k = op.key().clone();
        let is_delete = matches!(op, WriteOp::Delete { .. });
        let (revision, _) = done(what, b.write(op).await);
        history.push((revision, k, is_delete));
        revision
    };
    let ra = write(create(&t, &a, "a1"), "create a").await;
    let rb = write(create(&t, &bb, "b1"), "create b").await;
    let rc = write(create(&t, &c, "c1"), "create c").await;
    let ra2 = write(update(&t, &a, "a2", ra), "update a").await;
    write(WriteOp::Delete { key: bb.clone(), expected_mod_revision: Some(rb) }, "delete b").await;
    let rc2 = write(update(&t, &c, "c2", rc), "update c").await;
    let rd = write(create(&t, &d, "d1"), "create d").await;
    // The last write is a delete: the current revision is above every object's mod revision.
    let last = write(WriteOp::Delete { key: d.clone(), expected_mod_revision: Some(rd) }, "delete d").await;
    assert_eq!(last, base + 8);
    drop(_feed);
    drop(b);

    let b = loc.open().await;
    let (snapshot, _feed) = b.start().await.expect("start after reopen");
    assert_eq!(snapshot.revision, last, "the current revision after reopen");
    let objects: Vec<(ObjectKey, u64, u64, String)> = snapshot
        .objects
        .iter()
        .map(|kv| (kv.key.clone(), kv.create_revision, kv.mod_revision, decrypt(&t, &kv.key, &kv.value)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        objects,
        vec![(a.clone(), ra, ra2, body_text("a2")), (c.clone(), rc, rc2, body_text("c2"))],
        "the objects after reopen"
    );
    let replayed: Vec<(u64, ObjectKey, bool)> = snapshot
        .history
        .iter()
        .map(|ev| (ev.revision(), event_key(ev).clone(), matches!(ev, BackendEvent::Delete { .. })))
        .collect();
    assert_eq!(replayed, history, "the retained history after reopen (revision, key, is delete)");
    assert!(
        snapshot.oldest_resumable <= base + 1,
        "nothing was compacted, yet oldest_resumable is {}",
        snapshot.oldest_resumable
    );
    for ev in &snapshot.history {
        let value = match ev {
            BackendEvent::Put { kv } => &kv.value,
            BackendEvent::Delete { prev, .. } => &prev.value,
        };
        let text = decrypt(&t, event_key(ev), value);
        assert!(text.contains("\"label\""), "history value at {} decrypts: {text}", ev.revision());
    }

    let (r, _) = done("create after reopen", b.write(create(&t, &d, "d2")).await);
    assert_eq!(r, last + 1, "the revision never goes backwards after reopen");
    let (r, _) = done("update a at its pre-restart revision", b.write(update(&t, &a, "a3", ra2)).await);
    assert_eq!(r, last + 2);
}
