//! The storage conformance suite: every case is written once, generic over a backend
//! [`harness::Factory`], and runs against every backend listed at the bottom of this file.
//!
//! - `backend_cases`: the `Backend` seam itself (write outcomes, feed, group commit, reopen).
//! - `store_cases`: `Store` + `WatchCache` over the backend, as the server uses them (Kubernetes
//!   write semantics and errors, races, read-your-writes, restart, encryption at rest).
//! - `watch_cases`: watches and list snapshots (etcd's watch properties, Kubernetes event types,
//!   `Expired`, resumption across a restart).
//!
//! Every value is encrypted with a fixed AES-GCM key, so encryption is exercised throughout.
//!
//! Adding a backend (etcd, a fault-injecting wrapper): implement `harness::Factory` and
//! `harness::Location` in a module under `backends/`, and add one `conformance!(name => factory);`
//! line at the bottom. Each case then runs as the test `name::<case>`
//! (`cargo test -p strongroom-storage --test it name::`).

mod backend_cases;
mod harness;
mod store_cases;
mod watch_cases;

/// The backends under test, one `harness::Factory` each.
mod backends {
    pub mod embedded;
}

/// Generates one `#[test]` per case for one backend. The case list lives here, once.
macro_rules! conformance {
    ($backend:ident => $factory:expr) => {
        mod $backend {
            conformance!(@async $factory;
                backend_cases::backend_write_outcomes_follow_etcd,
                backend_cases::backend_feed_has_each_event_before_its_write_resolves,
                backend_cases::backend_group_commit_assigns_consecutive_revisions,
                backend_cases::backend_start_during_writes_joins_snapshot_and_feed,
                backend_cases::backend_reopen_restores_objects_revision_and_history,
                store_cases::store_writes_follow_kubernetes_semantics,
                store_cases::store_concurrent_updates_have_one_winner,
                store_cases::store_concurrent_creates_have_one_winner,
                store_cases::store_group_commit_gives_consecutive_revisions,
                store_cases::store_reads_its_own_writes,
                store_cases::store_answers_do_not_depend_on_the_event_window,
                store_cases::store_keeps_plaintext_out_of_the_backend,
                store_cases::store_corrupt_value_fails_only_that_object,
                watch_cases::watch_after_revision_sees_exactly_the_later_events,
                watch_cases::watch_now_starts_with_added_for_existing_objects,
                watch_cases::watch_namespace_prefix_excludes_sibling_namespaces,
                watch_cases::watch_concurrent_watchers_started_at_each_others_revisions_agree,
                watch_cases::watch_older_than_the_cache_window_is_expired,
                watch_cases::watch_window_obeys_its_byte_budget,
                watch_cases::watch_from_a_compacted_revision_is_expired_after_reopen,
                watch_cases::watch_resumes_after_reopen,
                watch_cases::watch_event_types_and_previous_states,
                watch_cases::watch_from_a_future_revision_never_replays_older_events,
                watch_cases::list_snapshots_are_consistent_while_writes_continue,
            );
            // Cases that manage their own runtimes (a restart drops the whole runtime).
            conformance!(@sync $factory;
                store_cases::store_state_survives_a_restart,
            );
        }
    };
    (@async $factory:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::harness::run(stringify!($case), $crate::$module::$case(&$factory));
            }
        )*
    };
    (@sync $factory:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::$module::$case(&$factory);
            }
        )*
    };
}

// One line per backend.
conformance!(embedded => crate::backends::embedded::Embedded);
