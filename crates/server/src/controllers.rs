//! The server's own writers, as kube-controller-manager's and kube-apiserver's built-in loops:
//! the bootstrap RBAC policy (created and kept at least as broad as Kubernetes' defaults at
//! every start), a `default` ServiceAccount in every namespace, and ClusterRole aggregation
//! (`aggregationRule` → `rules`). They react to the watch cache's events, so a new namespace has
//! its ServiceAccount and a labelled ClusterRole is aggregated within milliseconds.
//!
//! Apart from them, [`expire_events`] deletes Events once their time to live has passed, as the
//! etcd lease kube-apiserver stores each Event under (`--event-ttl`) does.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;
use strongroom_api::rbac;
use strongroom_storage::StoreError;
use strongroom_storage::backend::ObjectKey;
use strongroom_storage::cache::{WatchEnd, WatchStart};

use crate::ApiServer;
use crate::object::{Access, ServedObject};
use crate::registry::event;
use crate::registry::serviceaccount::default_service_account;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn encode(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value encodes")
}

/// The stored form of a cached object: its JSON without `resourceVersion`.
fn stored_value(obj: &ServedObject) -> Value {
    let mut v = obj.to_value();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

/// Creates the bootstrap ClusterRoles and ClusterRoleBindings that are missing, and adds back
/// what an autoupdated one lost (Kubernetes' reconciliation: never removes what an operator
/// added; `rbac.authorization.kubernetes.io/autoupdate: "false"` opts out).
pub async fn bootstrap_rbac(server: &ApiServer) -> Result<(), StoreError> {
    let now = crate::rest::now_rfc3339();
    let objects = rbac::bootstrap_cluster_roles()
        .into_iter()
        .map(|o| ("clusterroles", o))
        .chain(rbac::bootstrap_cluster_role_bindings().into_iter().map(|o| ("clusterrolebindings", o)));
    for (resource, mut want) in objects {
        let name = want.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let Ok(key) = ObjectKey::cluster(resource, &name) else { continue };
        match server.store.cache().get(&key) {
            None => {
                if let Some(m) = want.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
                    m.insert("creationTimestamp".into(), now.clone().into());
                }
                match server.store.create(&key, &encode(&want)).await {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(cur) => {
                let Ok(obj) = &cur.body else { continue };
                let mut have = stored_value(obj);
                let autoupdate = have.pointer(&format!("/metadata/annotations/{}", AUTOUPDATE.replace('/', "~1")));
                if autoupdate.and_then(Value::as_str) == Some("false") {
                    continue;
                }
                if !reconcile_into(&mut have, &want) {
                    continue;
                }
                match server.store.update(&key, &encode(&have), cur.revision).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
                tracing::info!(resource, %name, "reconciled bootstrap RBAC policy");
            }
        }
    }
    Ok(())
}

/// Adds to `have` the rules (or subjects) of `want` it lacks; true if it changed. Aggregated
/// roles get their rules from the aggregation controller and are left alone.
fn reconcile_into(have: &mut Value, want: &Value) -> bool {
    let field = if want.get("subjects").is_some() { "subjects" } else { "rules" };
    if field == "rules" && want.get("aggregationRule").is_some_and(|a| !a.is_null()) {
        if have.get("aggregationRule").is_none_or(Value::is_null) {
            have["aggregationRule"] = want["aggregationRule"].clone();
            return true;
        }
        return false;
    }
    let Some(wanted) = want.get(field).and_then(Value::as_array) else { return false };
    let list = have.as_object_mut().map(|m| m.entry(field).or_insert_with(|| Value::Array(Vec::new())));
    let Some(Value::Array(list)) = list else { return false };
    let mut changed = false;
    for w in wanted {
        if !list.contains(w) {
            list.push(w.clone());
            changed = true;
        }
    }
    changed
}

/// Runs the event-driven controllers until the server stops.
pub async fn run(server: Arc<ApiServer>) {
    let mut shutdown = server.shutdown.clone();
    loop {
        let mut stream = match server.store.cache().watch("/registry/", WatchStart::Now) {
            Ok(s) => s,
            Err(_) => return,
        };
        // The replay names every namespace and ClusterRole once: a full reconcile at start.
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = shutdown.changed() => return,
            };
            match ev {
                Ok(ev) => {
                    let key = ev.object.key.clone();
                    match key.resource() {
                        "namespaces" | "serviceaccounts" => {
                            let ns = match ev.object.body.as_ref() {
                                Ok(o) if key.resource() == "namespaces" => Some(o.name.clone()),
                                Ok(o) => o.namespace.clone(),
                                Err(_) => None,
                            };
                            if let Some(ns) = ns {
                                ensure_default_service_account(&server, &ns).await;
                            }
                        }
                        "clusterroles" => aggregate_cluster_roles(&server).await,
                        _ => {}
                    }
                }
                Err(WatchEnd::Lagged) => {
                    // Fell behind: start over with a fresh full reconcile.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Err(WatchEnd::Closed) => return,
            }
        }
    }
}

/// Every active namespace has a `default` ServiceAccount (kube-controller-manager's
/// serviceaccounts controller); it comes back if deleted.
async fn ensure_default_service_account(server: &ApiServer, ns: &str) {
    let Ok(ns_key) = ObjectKey::cluster("namespaces", ns) else { return };
    let active = server.store.cache().get(&ns_key).is_some_and(|o| o.body.as_ref().is_ok_and(|n| !n.deleting));
    if !active {
        return;
    }
    let Ok(key) = ObjectKey::namespaced("serviceaccounts", ns, "default") else { return };
    if server.store.cache().get(&key).is_some() {
        return;
    }
    let sa = default_service_account(ns, uuid::Uuid::new_v4().to_string(), &crate::rest::now_rfc3339());
    match server.store.create(&key, &encode(&sa)).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => tracing::warn!(namespace = ns, error = %e, "cannot create the default service account"),
    }
}

/// Recomputes the rules of every ClusterRole with an `aggregationRule` from the ClusterRoles its
/// selectors match (kube-controller-manager's clusterrole-aggregation controller).
async fn aggregate_cluster_roles(server: &ApiServer) {
    let snapshot = server.store.cache().snapshot();
    let Ok(prefix) = ObjectKey::prefix("clusterroles", None) else { return };
    // Every ClusterRole with its rules, in name order.
    let roles: Vec<(&ServedObject, &[PolicyRule], u64, &ObjectKey)> = snapshot
        .under(&prefix, None)
        .filter_map(|(key, c)| {
            let o = c.body.as_ref().ok()?;
            let Access::Rules { rules, .. } = o.access.as_deref()? else { return None };
            Some((o, &rules[..], c.revision, key))
        })
        .collect();
    for &(obj, rules, revision, key) in &roles {
        let Some(Access::Rules { aggregation: Some(selectors), .. }) = obj.access.as_deref() else { continue };
        let others = roles.iter().map(|(o, r, _, _)| (o.name.as_str(), &o.labels, *r));
        let aggregated = rbac::aggregate(&obj.name, selectors, others);
        if aggregated[..] == *rules {
            continue;
        }
        let mut value = stored_value(obj);
        value["rules"] = serde_json::to_value(&aggregated).unwrap_or(Value::Array(Vec::new()));
        match server.store.update(key, &encode(&value), revision).await {
            // A conflict means another change arrived: its event runs this again.
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(role = %obj.name, error = %e, "cannot aggregate cluster role"),
        }
    }
}

/// How long Events are kept after their last activity: kube-apiserver's `--event-ttl` default.
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(60 * 60);

/// The longest wait between two looks for expired Events.
const EVENT_EXPIRY_PERIOD: Duration = Duration::from_secs(60);

/// How often [`expire_events`] looks: every minute, or every `ttl` when that is shorter (never
/// more often than every second), so an Event outlives its time to live by at most one period.
fn event_expiry_period(ttl: Duration) -> Duration {
    ttl.clamp(Duration::from_secs(1), EVENT_EXPIRY_PERIOD)
}

/// Deletes every Event whose last activity ([`event::last_activity`]) is `ttl` or more in the
/// past, at start and then every [`event_expiry_period`], until the server stops. A zero `ttl`
/// keeps Events forever, as kube-apiserver does with `--event-ttl=0` (no lease).
pub async fn expire_events(server: Arc<ApiServer>, ttl: Duration) {
    if ttl.is_zero() {
        return;
    }
    let mut shutdown = server.shutdown.clone();
    let mut ticks = tokio::time::interval(event_expiry_period(ttl));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let deleted = delete_expired_events(&server, ttl, jiff::Timestamp::now().as_second()).await;
        if deleted > 0 {
            tracing::debug!(deleted, "deleted expired events");
        }
    }
}

/// The Events whose last activity is `ttl` or more before `now` (Unix seconds), with the revision
/// they were seen at. An Event that cannot be decrypted or read is left for an operator, as a
/// corrupt object is everywhere else.
fn expired_events(server: &ApiServer, ttl: Duration, now: i64) -> Vec<(ObjectKey, u64)> {
    let snapshot = server.store.cache().snapshot();
    let Ok(prefix) = ObjectKey::prefix(event::INFO.plural, None) else { return Vec::new() };
    snapshot
        .under(&prefix, None)
        .filter(|(_, cached)| cached.body.as_ref().is_ok_and(|obj| is_expired(obj.json.expose(), ttl, now)))
        .map(|(key, cached)| (key.clone(), cached.revision))
        .collect()
}

/// Whether the Event `json` was last active `ttl` or more before `now` (Unix seconds). An Event
/// without any timestamp cannot be judged and is kept.
fn is_expired(json: &[u8], ttl: Duration, now: i64) -> bool {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    event::last_activity(json).is_some_and(|last| now.saturating_sub(last) >= ttl)
}

/// How many expired Events are deleted at once: enough to share group commits, few enough to
/// leave the committer to clients.
const EVENT_DELETES_IN_FLIGHT: usize = 32;

/// Deletes the expired Events; returns how many were deleted. Each delete is conditional on the
/// revision that was judged, so an Event updated meanwhile is judged again at the next look.
async fn delete_expired_events(server: &ApiServer, ttl: Duration, now: i64) -> usize {
    use futures::StreamExt as _;
    let outcomes: Vec<Result<bool, StoreError>> = futures::stream::iter(expired_events(server, ttl, now))
        .map(|(key, revision)| async move {
            match server.store.delete(&key, Some(revision)).await {
                Ok(_) => Ok(true),
                Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(EVENT_DELETES_IN_FLIGHT)
        .collect()
        .await;
    if let Some(Err(e)) = outcomes.iter().find(|o| o.is_err()) {
        tracing::warn!(error = %e, "cannot delete expired events; will retry");
    }
    outcomes.iter().filter(|o| matches!(o, Ok(true))).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_looked_at_every_minute_or_every_ttl_when_shorter() {
        assert_eq!(event_expiry_period(DEFAULT_EVENT_TTL), Duration::from_secs(60));
        assert_eq!(event_expiry_period(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(event_expiry_period(Duration::from_millis(10)), Duration::from_secs(1));
    }

    #[test]
    fn an_event_expires_ttl_after_its_last_activity() {
        let event = serde_json::to_vec(&serde_json::json!({
            "metadata": {"name": "db.1", "namespace": "app", "creationTimestamp": "2025-01-02T03:00:00Z"},
            "lastTimestamp": "2025-01-02T03:30:00Z",
        }))
        .unwrap();
        let last = 1_735_788_600; // 2025-01-02T03:30:00Z
        assert!(!is_expired(&event, DEFAULT_EVENT_TTL, last + 3599));
        assert!(is_expired(&event, DEFAULT_EVENT_TTL, last + 3600));
        assert!(is_expired(&event, Duration::from_secs(2), last + 2));
        assert!(!is_expired(&event, Duration::MAX, i64::MAX), "a huge TTL never overflows into expiry");
        assert!(!is_expired(br#"{"metadata":{"name":"x"}}"#, Duration::from_secs(1), last), "no timestamp: kept");
    }
}
