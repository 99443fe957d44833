//! Watch and list cases through the `WatchCache` over a backend: etcd's watch properties
//! (ordered, unique, gap-free, resumable, filtered, compaction → Expired), Kubernetes' event types
//! and initial events, and list snapshots.

use std::time::Duration;

use strongroom_storage::backend::{BackendEvent, ObjectKey};
use strongroom_storage::cache::{CacheConfig, EventType, Expired, WatchStart};

use crate::harness::{
    Driver, Factory, Retention, Seen, assert_strictly_increasing, body_text, churn, events_after, key, next_event,
    open_store, open_store_with, prefix, prev_of, seen, snapshot_state, state_at, take, take_until,
};

/// A watch from `After(rv)` delivers exactly the changes after `rv` under its prefix, in revision
/// order, none twice, none missing — both the replayed part and the live part.
pub async fn watch_after_revision_sees_exactly_the_later_events(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let mut d = Driver::new(store.clone());
    let (a, b, c, x) = (key("app", "a"), key("app", "b"), key("app", "c"), key("other", "x"));
    d.create(&a, "a1").await;
    let from = d.create(&b, "b1").await;
    d.update(&a, "a2").await;
    d.create(&x, "x1").await;
    d.delete(&b).await;
    d.update(&a, "a3").await;

    let mut w = store.cache().watch(&prefix("app"), WatchStart::After(from)).expect("watch within the window");
    // Live writes after the watch started.
    d.create(&c, "c1").await;
    d.update(&x, "x2").await;
    d.update(&c, "c2").await;
    d.delete(&a).await;
    d.create(&b, "b2").await;

    let expected = d.events_after(from, &prefix("app"));
    let got = take(&mut w, expected.len(), "watch from After").await;
    assert_eq!(got, expected, "a watch from revision {from} must see exactly the later events under its prefix");

    // Nothing else is pending: the next event is the next write (no duplicate, no stray event).
    let sentinel = d.update(&c, "c3").await;
    let next = seen(&*next_event(&mut w, "the write after the checked ones").await);
    assert_eq!(next.revision, sentinel, "expected the sentinel write next, got {next:?}");

    // The same from the beginning, for every namespace.
    let first = d.log[0].revision;
    let every_secret = ObjectKey::prefix("secrets", None).expect("prefix");
    let mut all = store.cache().watch(&every_secret, WatchStart::After(first - 1)).expect("watch all");
    let expected = d.events_after(first - 1, &every_secret);
    let got = take(&mut all, expected.len(), "watch all secrets from the start").await;
    assert_eq!(got, expected, "a watch of every secret from before the first write");
}

/// `WatchStart::Now` starts with a synthetic ADDED for every existing object under the prefix (in
/// key order, each at its own revision), then follows live changes.
pub async fn watch_now_starts_with_added_for_existing_objects(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let mut d = Driver::new(store.clone());
    let (a, b, c, other) = (key("app", "a"), key("app", "b"), key("app", "c"), key("app2", "a"));
    d.create(&b, "b1").await;
    d.create(&a, "a1").await;
    d.create(&other, "o1").await;
    let ra = d.update(&a, "a2").await;
    let rb = d.revision_of(&b).expect("b");

    let mut w = store.cache().watch(&prefix("app"), WatchStart::Now).expect("watch now");
    let initial = take(&mut w, 2, "initial events").await;
    assert_eq!(
        initial,
        vec![
            Seen { kind: EventType::Added, revision: ra, key: a.to_string(), body: Ok(body_text("a2")) },
            Seen { kind: EventType::Added, revision: rb, key: b.to_string(), body: Ok(body_text("b1")) },
        ],
        "synthetic ADDED events for the existing objects"
    );
    assert!(w.replay_done(), "the initial events are all replayed");

    let live_from = d.last();
    d.update(&b, "b2").await;
    d.update(&other, "o2").await;
    d.create(&c, "c1").await;
    d.delete(&a).await;
    let expected = d.events_after(live_from, &prefix("app"));
    let got = take(&mut w, expected.len(), "live events after the initial ones").await;
    assert_eq!(got, expected);
    let sentinel = d.update(&c, "c2").await;
    assert_eq!(seen(&*next_event(&mut w, "sentinel").await).revision, sentinel, "no stray event before the sentinel");
}

/// Storage-keys design: the namespace prefix keeps `app` from matching `app2` (or `app-1`, which
/// sorts before it), in initial events, in replay and live.
pub async fn watch_namespace_prefix_excludes_sibling_namespaces(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let mut d = Driver::new(store.clone());
    let base = store.cache().revision();
    let siblings = [key("app2", "a"), key("app-1", "a"), key("ap", "a"), key("appx", "z")];
    let (a, b) = (key("app", "a"), key("app", "b"));
    for k in &siblings {
        d.create(k, "sib").await;
    }
    d.create(&a, "a1").await;

    let mut now = store.cache().watch(&prefix("app"), WatchStart::Now).expect("watch now");
    let mut replay = store.cache().watch(&prefix("app"), WatchStart::After(base)).expect("watch after");
    for k in &siblings {
        d.update(k, "sib2").await;
    }
    d.create(&b, "b1").await;
    for k in &siblings {
        d.delete(k).await;
    }
    let sentinel = d.update(&a, "a2").await;

    let got = take_until(&mut now, sentinel, "watch now on app").await;
    let mut expected = vec![Seen {
        kind: EventType::Added,
        revision: d.log.iter().find(|s| s.key == a.as_str()).expect("a").revision,
        key: a.to_string(),
        body: Ok(body_text("a1")),
    }];
    expected.extend(d.events_after(expected[0].revision, &prefix("app")));
    assert_eq!(got, expected, "watch now on namespace app");
    let got = take_until(&mut replay, sentinel, "watch after on app").await;
    assert_eq!(got, d.events_after(base, &prefix("app")), "watch after on namespace app");
    assert!(got.iter().all(|s| s.key.starts_with("/registry/secrets/app/")));
}

/// Reliability K11/KT4: with a writer running, watchers opened at the revisions of each other's
/// events see identical sequences from there on, and the first sees exactly what was written.
pub async fn watch_concurrent_watchers_started_at_each_others_revisions_agree(f: &dyn Factory) {
    const OPS: usize = 300;
    const FOLLOWERS: usize = 6;
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let base = store.cache().revision();
    let last = base + OPS as u64;
    let mut first = store.cache().watch(&prefix("app"), WatchStart::After(base)).expect("first watch");
    let writer = tokio::spawn(churn(Driver::new(store.clone()), OPS, 1));

    let mut seq: Vec<Seen> = Vec::new();
    let mut followers = Vec::new();
    while seq.last().is_none_or(|s| s.revision < last) {
        let ev = seen(&*next_event(&mut first, &format!("first watcher after {} events", seq.len())).await);
        let at = ev.revision;
        seq.push(ev);
        if seq.len().is_multiple_of(40) && followers.len() < FOLLOWERS {
            let mut w = store.cache().watch(&prefix("app"), WatchStart::After(at)).expect("follower watch");
            followers.push((
                at,
                tokio::spawn(async move { take_until(&mut w, last, &format!("follower from {at}")).await }),
            ));
        }
    }
    let d = writer.await.expect("writer task");
    assert_strictly_increasing(&seq, "the first watcher");
    assert_eq!(seq, d.log, "the first watcher must see exactly the writes, in order");
    assert_eq!(followers.len(), FOLLOWERS);
    for (at, follower) in followers {
        let got = follower.await.expect("follower task");
        assert_strictly_increasing(&got, &format!("the watcher started at revision {at}"));
        assert_eq!(got, events_after(&seq, at, ""), "the watcher started at revision {at} diverges");
    }
}

/// Kubernetes' cacher: a watch from a revision older than the cache's event window is `Expired`
/// with `too old resource version: N (M)`, M being the oldest revision a watch can still start
/// from (one below the oldest retained event); from M it works.
pub async fn watch_older_than_the_cache_window_is_expired(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let config = CacheConfig { min_history: 5, max_history: 5, ..CacheConfig::default() };
    let store = open_store_with(&*loc, config).await;
    let base = store.cache().revision();
    let mut d = Driver::new(store.clone());
    for i in 0..10 {
        d.create(&key("app", &format!("k{i}")), "v1").await;
    }
    for i in 0..10 {
        d.update(&key("app", &format!("k{i}")), "v2").await;
    }
    assert_eq!(d.last(), base + 20);
    let oldest = base + 15;
    for requested in [base + 1, base + 14] {
        match store.cache().watch(&prefix("app"), WatchStart::After(requested)) {
            Ok(_) => {
                panic!("a watch from {requested} must be Expired: the window holds {}..={}", oldest + 1, base + 20)
            }
            Err(e) => {
                assert_eq!(e, Expired { requested, oldest });
                assert_eq!(e.to_string(), format!("too old resource version: {requested} ({oldest})"));
            }
        }
    }
    let mut w =
        store.cache().watch(&prefix("app"), WatchStart::After(oldest)).expect("a watch from the window's start");
    let got = take(&mut w, 5, "watch from the oldest resumable revision").await;
    assert_eq!(got, d.events_after(oldest, &prefix("app")));
}

/// The event window's byte budget wins over its minimum count: big objects cannot pin unbounded
/// memory. Values of 1,000 bytes with a 10,000-byte budget leave about ten events; older watches
/// are Expired, never silently gapped.
pub async fn watch_window_obeys_its_byte_budget(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let config = CacheConfig { min_history: 1000, max_history_bytes: 10_000, ..CacheConfig::default() };
    let store = open_store_with(&*loc, config).await;
    let base = store.cache().revision();
    let mut d = Driver::new(store.clone());
    let big = "x".repeat(1000);
    for i in 0..50 {
        d.create(&key("app", &format!("k{i}")), &big).await;
    }
    let err =
        store.cache().watch(&prefix("app"), WatchStart::After(base)).err().expect("the window was trimmed by bytes");
    assert!(err.oldest > base + 30, "about ten 1 KB events fit in 10 KB; the window starts after {}", err.oldest);
    let mut w =
        store.cache().watch(&prefix("app"), WatchStart::After(err.oldest)).expect("a watch from the window's start");
    let expected = d.events_after(err.oldest, &prefix("app"));
    let got = take(&mut w, expected.len(), "watch from the oldest resumable revision").await;
    assert_eq!(got, expected);
}

/// Reliability 3.2 item 22 across a restart: history the backend compacted is gone for good — a
/// watch from a compacted revision after reopen is `Expired` (never a silent gap), one from the
/// first retained revision replays the rest; a later, longer retention keeps writes working.
pub async fn watch_from_a_compacted_revision_is_expired_after_reopen(f: &dyn Factory) {
    let loc = f.create(Retention { window: Duration::ZERO, min_events: 2 });
    let k = key("app", "a");
    let store = open_store(&*loc).await;
    let base = store.cache().revision();
    let mut d = Driver::new(store.clone());
    d.create(&k, "v0").await;
    for i in 1..10 {
        d.update(&k, &format!("v{i}")).await;
    }
    loc.await_compaction_turn().await;
    // This commit compacts everything outside the window but the last two events.
    let last = d.update(&k, "v10").await;
    assert_eq!(last, base + 11);
    let log = d.log.clone();
    drop(d);
    drop(store);

    {
        let backend = loc.open().await;
        let (snapshot, _feed) = backend.start().await.expect("start");
        let history: Vec<u64> = snapshot.history.iter().map(BackendEvent::revision).collect();
        assert_eq!(history, vec![base + 10, base + 11], "the history left after compaction");
        assert_eq!(snapshot.oldest_resumable, base + 10);
        assert_eq!(snapshot.revision, last);
    }

    let store = open_store(&*loc).await;
    let requested = base + 8;
    match store.cache().watch(&prefix("app"), WatchStart::After(requested)) {
        Ok(_) => panic!("a watch from compacted revision {requested} must be Expired"),
        Err(e) => assert_eq!(e.to_string(), format!("too old resource version: {requested} ({})", base + 9)),
    }
    let mut w =
        store.cache().watch(&prefix("app"), WatchStart::After(base + 9)).expect("watch from the window's start");
    let got = take(&mut w, 2, "replay of the retained history").await;
    assert_eq!(got, events_after(&log, base + 9, ""));
    drop(w);
    drop(store);

    // Restarting with a longer retention than the one that compacted must not break the store.
    loc.set_retention(Retention::default());
    let store = open_store(&*loc).await;
    let mut d = Driver::resume(store.clone(), log);
    let r = d.update(&k, "v11").await;
    assert_eq!(r, last + 1, "a write after restarting with a longer retention");
    let mut w =
        store.cache().watch(&prefix("app"), WatchStart::After(base + 9)).expect("watch after the retention change");
    assert_eq!(take(&mut w, 3, "history after the retention change").await, d.events_after(base + 9, ""));
}

/// A watch resumes across a restart: events written before it are replayed (from the backend's
/// retained history) to a watch started afterwards from an old revision, with their types and the
/// previous states the window knows, then live events follow.
pub async fn watch_resumes_after_reopen(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let (a, b, c) = (key("app", "a"), key("app", "b"), key("app", "c"));
    let store = open_store(&*loc).await;
    let mut d = Driver::new(store.clone());
    let ra = d.create(&a, "a1").await;
    let from = d.create(&b, "b1").await;
    d.update(&a, "a2").await;
    d.delete(&b).await;
    let rc = d.create(&c, "c1").await;
    let rc2 = d.update(&c, "c2").await;
    let log = d.log.clone();
    drop(d);
    drop(store);

    let store = open_store(&*loc).await;
    let mut w = store.cache().watch(&prefix("app"), WatchStart::After(from)).expect("watch from before the restart");
    let mut got = Vec::new();
    let mut prevs = Vec::new();
    for i in 0..4 {
        let ev = next_event(&mut w, &format!("replayed event {i}")).await;
        got.push(seen(&ev));
        prevs.push(prev_of(&ev));
    }
    assert_eq!(got, events_after(&log, from, ""), "the events replayed after the restart");
    assert_eq!(
        prevs,
        vec![Some((ra, body_text("a1"))), Some((from, body_text("b1"))), None, Some((rc, body_text("c1")))],
        "previous states of the replayed events"
    );

    let mut d = Driver::resume(store.clone(), log);
    let r = d.update(&c, "c3").await;
    let ev = next_event(&mut w, "the first live event after the replay").await;
    assert_eq!(seen(&ev), d.log.last().cloned().expect("logged"));
    assert_eq!(ev.revision, r);
    assert_eq!(prev_of(&ev), Some((rc2, body_text("c2"))));
}

/// Kubernetes event types: ADDED for a create (no previous state), MODIFIED for an update and
/// DELETED for a delete (carrying the last state at the delete's revision), both with the previous
/// state; a re-create is ADDED again. Live and replayed watches agree.
pub async fn watch_event_types_and_previous_states(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let base = store.cache().revision();
    let a = key("app", "a");
    let mut live = store.cache().watch(&prefix("app"), WatchStart::Now).expect("watch now on an empty namespace");
    let mut d = Driver::new(store.clone());
    let r1 = d.create(&a, "a1").await;
    let r2 = d.update(&a, "a2").await;
    let r3 = d.delete(&a).await;
    let r4 = d.create(&a, "a3").await;

    let expected = vec![
        Seen { kind: EventType::Added, revision: r1, key: a.to_string(), body: Ok(body_text("a1")) },
        Seen { kind: EventType::Modified, revision: r2, key: a.to_string(), body: Ok(body_text("a2")) },
        Seen { kind: EventType::Deleted, revision: r3, key: a.to_string(), body: Ok(body_text("a2")) },
        Seen { kind: EventType::Added, revision: r4, key: a.to_string(), body: Ok(body_text("a3")) },
    ];
    let expected_prevs = vec![None, Some((r1, body_text("a1"))), Some((r2, body_text("a2"))), None];
    let mut replay = store.cache().watch(&prefix("app"), WatchStart::After(base)).expect("watch after");
    for (name, w) in [("live", &mut live), ("replayed", &mut replay)] {
        let mut got = Vec::new();
        let mut prevs = Vec::new();
        for i in 0..4 {
            let ev = next_event(w, &format!("{name} event {i}")).await;
            got.push(seen(&ev));
            prevs.push(prev_of(&ev));
        }
        assert_eq!(got, expected, "{name} event types");
        assert_eq!(prevs, expected_prevs, "{name} previous states");
    }
    assert_eq!(d.log, expected);
}

/// etcd#20221, reliability 3.2 item 24: a watch from a revision the store has not reached waits
/// for it and never delivers older events.
pub async fn watch_from_a_future_revision_never_replays_older_events(f: &dyn Factory) {
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let mut d = Driver::new(store.clone());
    d.create(&key("app", "before"), "b").await;
    let future = store.cache().revision() + 3;
    let mut w = store.cache().watch(&prefix("app"), WatchStart::After(future)).expect("watch from the future");
    for i in 0..5 {
        d.create(&key("app", &format!("k{i}")), "v").await;
    }
    let got = take(&mut w, 2, "watch from a future revision").await;
    assert_eq!(got, d.events_after(future, ""), "only events after revision {future}");
    let sentinel = d.create(&key("app", "sentinel"), "s").await;
    assert_eq!(seen(&*next_event(&mut w, "sentinel").await).revision, sentinel);
}

/// A list snapshot is a consistent point-in-time view while writes continue: each holds exactly
/// the state at its revision; a retained snapshot is served by `snapshot_at` after the store has
/// moved on, and one never retained is not.
pub async fn list_snapshots_are_consistent_while_writes_continue(f: &dyn Factory) {
    const OPS: usize = 300;
    let loc = f.create(Retention::default());
    let store = open_store(&*loc).await;
    let cache = store.cache();
    let base = cache.revision();
    let writer = tokio::spawn(churn(Driver::new(store.clone()), OPS, 7));
    let mut snapshots = Vec::new();
    let mut retained = None;
    while !writer.is_finished() && snapshots.len() < 5000 {
        let snapshot = cache.snapshot();
        if retained.is_none() && snapshot.revision >= base + 100 {
            cache.retain_snapshot(&snapshot);
            retained = Some(snapshot.clone());
        }
        snapshots.push(snapshot);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let d = writer.await.expect("writer task");
    let mut previous = 0;
    for snapshot in &snapshots {
        assert!(
            snapshot.revision >= previous,
            "snapshot revisions went backwards: {previous} then {}",
            snapshot.revision
        );
        previous = snapshot.revision;
        assert_eq!(
            snapshot_state(snapshot),
            state_at(&d.log, snapshot.revision),
            "the snapshot at revision {} is not the state at that revision",
            snapshot.revision
        );
    }
    let distinct = snapshots.iter().map(|s| s.revision).collect::<std::collections::BTreeSet<_>>().len();
    eprintln!("{} snapshots at {distinct} distinct revisions were checked", snapshots.len());

    let retained = retained.expect("a snapshot was taken after 100 writes");
    let again = cache.snapshot_at(retained.revision).expect("a retained snapshot is served by snapshot_at");
    assert_eq!(again.revision, retained.revision);
    assert_eq!(snapshot_state(&again), state_at(&d.log, retained.revision), "the retained snapshot's objects");
    let current = cache.snapshot();
    assert_eq!(current.revision, d.last());
    assert_eq!(
        cache.snapshot_at(current.revision).map(|s| snapshot_state(&s)),
        Some(state_at(&d.log, d.last())),
        "snapshot_at the current revision is the current state"
    );
    assert!(cache.snapshot_at(base + 1).is_none(), "a revision never retained has no snapshot");
}
