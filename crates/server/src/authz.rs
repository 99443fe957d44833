//! Authorization: may this user do this? Kubernetes' chain, in its order: members of
//! `system:masters` may do anything (that group is not an RBAC binding and cannot be revoked by
//! deleting one), then RBAC over the Roles and bindings in the watch cache (evaluated by
//! `strongroom_api::rbac`). Default deny. Impersonation is checked here too.
//!
//! Every decision — of a real request and of the access reviews — goes through [`authorize`],
//! so `kubectl auth can-i` cannot disagree with what the request itself meets.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};
use strongroom_api::rbac::{self, BindingRef, RbacSource};
use strongroom_storage::backend::ObjectKey;
use strongroom_storage::cache::ListSnapshot;

use crate::ApiServer;
use crate::authn::{self, UserInfo};
use crate::object::{Access, ServedObject};
use crate::request::{Query, RequestInfo};
use crate::status::ApiError;

/// What a request does, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub verb: String,
    pub namespace: Option<String>,
    pub group: String,
    /// The API version of a resource request (for audit; RBAC ignores it).
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// Set for non-resource requests (`/version`, `/healthz`, …).
    pub path: Option<String>,
}

impl Attrs {
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attrs { verb: verb.to_string(), path: Some(path.to_string()), ..Default::default() }
    }

    /// The attributes of a resource request. As kube-apiserver does, a list or watch narrowed to
    /// one object by `fieldSelector=metadata.name=X` is authorized as a request for `X`, so a
    /// Role with `resourceNames` lets `kubectl get secret X -w` work.
    pub fn for_request(info: &RequestInfo, query: &Query) -> Self {
        let mut name = info.name.clone();
        if name.is_none()
            && matches!(info.verb, "list" | "watch")
            && let Some(fs) = query.get("fieldSelector")
            && let Ok(sel) = strongroom_api::selector::FieldSelector::parse(fs)
        {
            name = sel.requires_exact_match("metadata.name").map(str::to_string);
        }
        // `GET /api/v1/namespaces/X` is a request in namespace X, so a RoleBinding there can
        // grant it (as kube-apiserver's RequestInfo).
        let namespace = match (&info.namespace, info.group.as_str(), info.resource.as_str(), &info.name) {
            (None, "", "namespaces", Some(n)) => Some(n.clone()),
            _ => info.namespace.clone(),
        };
        Attrs {
            verb: info.verb.to_string(),
            namespace,
            group: info.group.clone(),
            version: info.version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            name,
            path: None,
        }
    }

    fn to_rbac(&self) -> rbac::Attributes {
        rbac::Attributes {
            verb: self.verb.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            api_group: self.group.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone().unwrap_or_default(),
            name: self.name.clone().unwrap_or_default(),
            path: self.path.clone().unwrap_or_default(),
            resource_request: self.path.is_none(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
    pub evaluation_error: String,
}

/// The RBAC objects of one cache snapshot, as the evaluator reads them.
struct Snapshot(ListSnapshot<ServedObject>);

impl Snapshot {
    fn of(server: &ApiServer) -> Self {
        Snapshot(server.store.cache().snapshot())
    }

    fn access(&self, key: Result<ObjectKey, impl std::fmt::Debug>) -> Option<Arc<Access>> {
        let key = key.ok()?;
        let obj = self.0.objects.get(&key)?;
        obj.body.as_ref().ok()?.access.clone()
    }

    fn bindings(&self, resource: &str, namespace: Option<&str>) -> Vec<BindingRef> {
        let Ok(prefix) = ObjectKey::prefix(resource, namespace) else { return Vec::new() };
        self.0
            .under(&prefix, None)
            .filter_map(|(_, o)| {
                let o = o.body.as_ref().ok()?;
                match o.access.as_deref()? {
                    Access::Binding { role_ref, subjects } => Some(BindingRef {
                        name: o.name.clone(),
                        namespace: o.namespace.clone(),
                        role_ref: role_ref.clone(),
                        subjects: subjects.clone(),
                    }),
                    Access::Rules { .. } => None,
                }
            })
            .collect()
    }
}

fn rules_of(access: Option<Arc<Access>>) -> Option<Arc<[PolicyRule]>> {
    match access.as_deref()? {
        Access::Rules { rules, .. } => Some(rules.clone()),
        Access::Binding { .. } => None,
    }
}

impl RbacSource for Snapshot {
    fn cluster_role(&self, name: &str) -> Option<Arc<[PolicyRule]>> {
        rules_of(self.access(ObjectKey::cluster("clusterroles", name)))
    }

    fn role(&self, namespace: &str, name: &str) -> Option<Arc<[PolicyRule]>> {
        rules_of(self.access(ObjectKey::namespaced("roles", namespace, name)))
    }

    fn cluster_role_bindings(&self) -> Vec<BindingRef> {
        self.bindings("clusterrolebindings", None)
    }

    fn role_bindings(&self, namespace: &str) -> Vec<BindingRef> {
        self.bindings("rolebindings", Some(namespace))
    }
}

/// May `user` do `attrs`?
pub fn authorize(server: &ApiServer, user: &UserInfo, attrs: &Attrs) -> Decision {
    if user.is_master() {
        return Decision { allowed: true, ..Default::default() };
    }
    let d = rbac::authorize(&Snapshot::of(server), &user.to_rbac(), &attrs.to_rbac());
    Decision { allowed: d.allowed, reason: d.reason, evaluation_error: d.evaluation_error }
}

/// Denies with Kubernetes' Forbidden message unless allowed.
pub fn require(server: &ApiServer, user: &UserInfo, attrs: &Attrs) -> Result<Decision, ApiError> {
    let d = authorize(server, user, attrs);
    if d.allowed { Ok(d) } else { Err(forbidden(user, attrs, &d.reason)) }
}

/// The rules `user` holds in `namespace` (SelfSubjectRulesReview's status).
pub fn rules_review(server: &ApiServer, user: &UserInfo, namespace: &str) -> Value {
    let review = rbac::rules_review(&Snapshot::of(server), &user.to_rbac(), namespace);
    let mut status = json!({
        "resourceRules": review.resource_rules,
        "nonResourceRules": review.non_resource_rules,
        "incomplete": review.incomplete,
    });
    if !review.evaluation_error.is_empty() {
        status["evaluationError"] = json!(review.evaluation_error);
    }
    status
}

/// Escalation prevention for writes of Roles and ClusterRoles: `rules` may only hold what the
/// user holds in `namespace` (all namespaces for a ClusterRole), unless the user may `escalate`
/// on that role.
fn confirm_no_escalation(
    server: &ApiServer,
    user: &UserInfo,
    resource: &str,
    namespace: Option<&str>,
    (name, request_name): (&str, Option<&str>),
    rules: &[PolicyRule],
) -> Result<(), ApiError> {
    if user.is_master() {
        return Ok(());
    }
    // `escalate` is asked about the request's name, as kube-apiserver does: none on a create by
    // POST, so `escalate` limited by resourceNames never covers creating a role.
    let escalate = Attrs {
        verb: "escalate".into(),
        namespace: namespace.map(str::to_string),
        group: "rbac.authorization.k8s.io".into(),
        resource: resource.into(),
        name: request_name.map(str::to_string),
        ..Default::default()
    };
    if authorize(server, user, &escalate).allowed {
        return Ok(());
    }
    let snapshot = Snapshot::of(server);
    rbac::confirm_no_escalation(&snapshot, &user.to_rbac(), namespace.unwrap_or(""), rules)
        .map_err(|e| forbidden_object(resource, name, &e.to_string()))
}

/// `<resource>.rbac.authorization.k8s.io "<name>" is forbidden: <why>`, as kube-apiserver words
/// a refused RBAC write.
fn forbidden_object(resource: &str, name: &str, why: &str) -> ApiError {
    ApiError::forbidden(format!("{resource}.rbac.authorization.k8s.io \"{name}\" is forbidden: {why}"))
}

/// Binding prevention for writes of RoleBindings and ClusterRoleBindings: the user must be
/// allowed to `bind` the referenced role, or hold every permission it grants (in the binding's
/// namespace for a RoleBinding).
pub fn confirm_can_bind(
    server: &ApiServer,
    user: &UserInfo,
    binding_resource: &str,
    binding_name: &str,
    namespace: Option<&str>,
    role_kind: &str,
    role_name: &str,
) -> Result<(), ApiError> {
    if user.is_master() {
        return Ok(());
    }
    let (resource, role_ns) = if role_kind == "Role" { ("roles", namespace) } else { ("clusterroles", None) };
    // `bind` is asked in the binding's namespace, whatever the role's kind, so a namespace admin
    // can be allowed to bind a ClusterRole in their namespace only (kube's BindingAuthorized).
    let bind = Attrs {
        verb: "bind".into(),
        namespace: namespace.map(str::to_string),
        group: "rbac.authorization.k8s.io".into(),
        resource: resource.into(),
        name: Some(role_name.to_string()),
        ..Default::default()
    };
    if authorize(server, user, &bind).allowed {
        return Ok(());
    }
    let snapshot = Snapshot::of(server);
    let rules = match role_ns {
        Some(ns) => snapshot.role(ns, role_name),
        None => snapshot.cluster_role(role_name),
    };
    let Some(rules) = rules else {
        // Kubernetes reports the missing role as a Forbidden with the lookup error.
        return Err(forbidden_object(
            binding_resource,
            binding_name,
            &format!("{resource}.rbac.authorization.k8s.io \"{role_name}\" not found"),
        ));
    };
    rbac::confirm_no_escalation(&snapshot, &user.to_rbac(), namespace.unwrap_or(""), &rules)
        .map_err(|e| forbidden_object(binding_resource, binding_name, &e.to_string()))
}

/// Kubernetes' Forbidden message for a denied request, with the authorizer's reason appended
/// when it gave one.
pub fn forbidden(user: &UserInfo, attrs: &Attrs, reason: &str) -> ApiError {
    let tail = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    let Some(path) = &attrs.path else {
        let res =
            if attrs.group.is_empty() { attrs.resource.clone() } else { format!("{}.{}", attrs.resource, attrs.group) };
        let subject = match &attrs.name {
            // As kube-apiserver: a list or watch narrowed by `metadata.name` names the object too.
            Some(n) => format!("{res} \"{n}\" is forbidden"),
            None => format!("{res} is forbidden"),
        };
        let sub = attrs.subresource.as_ref().map(|s| format!("/{s}")).unwrap_or_default();
        let scope = match &attrs.namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        return ApiError::forbidden(format!(
            "{subject}: User \"{}\" cannot {} resource \"{}{sub}\" in API group \"{}\"{scope}{tail}",
            user.name, attrs.verb, attrs.resource, attrs.group
        ));
    };
    ApiError::forbidden(format!("forbidden: User \"{}\" cannot {} path \"{path}\"{tail}", user.name, attrs.verb))
}

/// The headers that ask to act as someone else.
const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

/// Applies `Impersonate-*` headers: every requested attribute needs the `impersonate` verb on
/// it (users, groups, serviceaccounts, uids, userextras), checked for the requester. Returns
/// the identity the request then runs as, or `None` without impersonation headers.
pub fn impersonate(
    server: &ApiServer,
    requester: &UserInfo,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let values = |name: &str| -> Result<Vec<String>, ApiError> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str().map(str::to_string).map_err(|_| ApiError::bad_request(format!("invalid {name} header")))
            })
            .collect()
    };
    let users = values(IMPERSONATE_USER)?;
    let groups = values(IMPERSONATE_GROUP)?;
    let uids = values(IMPERSONATE_UID)?;
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(IMPERSONATE_EXTRA_PREFIX) {
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy().to_string();
            let value = value.to_str().map_err(|_| ApiError::bad_request("invalid Impersonate-Extra header"))?;
            extra.entry(key).or_default().push(value.to_string());
        }
    }
    if users.is_empty() {
        if !groups.is_empty() || !uids.is_empty() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(None);
    }
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request("only one user and one uid may be impersonated"));
    }
    let name = users[0].clone();
    let check = |attrs: Attrs| -> Result<(), ApiError> {
        let d = authorize(server, requester, &attrs);
        if d.allowed { Ok(()) } else { Err(forbidden(requester, &attrs, &d.reason)) }
    };
    let imp = |resource: &str, namespace: Option<&str>, name: &str, sub: Option<&str>| Attrs {
        verb: "impersonate".into(),
        namespace: namespace.map(str::to_string),
        group: if resource == "userextras" || resource == "uids" {
            "authentication.k8s.io".into()
        } else {
            String::new()
        },
        resource: resource.into(),
        subresource: sub.map(str::to_string),
        name: Some(name.to_string()),
        ..Default::default()
    };
    let service_account = authn::parse_service_account_user(&name).map(|(ns, n)| (ns.to_string(), n.to_string()));
    match &service_account {
        Some((ns, sa)) => check(imp("serviceaccounts", Some(ns), sa, None))?,
        None => check(imp("users", None, &name, None))?,
    }
    for g in &groups {
        check(imp("groups", None, g, None))?;
    }
    for u in &uids {
        check(imp("uids", None, u, None))?;
    }
    for (k, vs) in &extra {
        for v in vs {
            check(imp("userextras", None, v, Some(k)))?;
        }
    }
    let mut all_groups = groups;
    if let Some((ns, _)) = &service_account
        && all_groups.is_empty()
    {
        all_groups = authn::service_account_groups(ns);
    }
    if name == authn::ANONYMOUS_USER {
        if !all_groups.iter().any(|g| g == authn::UNAUTHENTICATED_GROUP) {
            all_groups.push(authn::UNAUTHENTICATED_GROUP.into());
        }
    } else if !all_groups.iter().any(|g| g == authn::AUTHENTICATED_GROUP) {
        all_groups.push(authn::AUTHENTICATED_GROUP.into());
    }
    Ok(Some(UserInfo { name, uid: uids.into_iter().next().unwrap_or_default(), groups: all_groups, extra }))
}

/// Whether an update changes nothing but bookkeeping (resourceVersion, managedFields, owner
/// references, finalizers): only then does kube-apiserver's RBAC storage skip its escalation
/// checks. Labels matter (they feed ClusterRole aggregation), and so do subjects.
fn only_bookkeeping_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["resourceVersion", "managedFields", "ownerReferences", "finalizers"] {
                m.remove(k);
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// What stops privilege escalation through the RBAC API, applied to every create, update and
/// patch of a Role, ClusterRole, RoleBinding or ClusterRoleBinding after validation
/// (kube-apiserver's policy-based RBAC storage). `old` is the current object on update: a write
/// that changes only bookkeeping needs no check.
pub fn admit_rbac_write(
    server: &ApiServer,
    user: &UserInfo,
    (resource, request_name): (&str, Option<&str>),
    new: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if user.is_master() {
        return Ok(());
    }
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let names = (name, request_name);
    let namespace = new.pointer("/metadata/namespace").and_then(Value::as_str).filter(|s| !s.is_empty());
    match resource {
        "roles" | "clusterroles" => {
            if old.is_some_and(|o| only_bookkeeping_changed(o, new)) {
                return Ok(());
            }
            let rules: Vec<PolicyRule> =
                serde_json::from_value(new.get("rules").cloned().unwrap_or(Value::Null)).unwrap_or_default();
            confirm_no_escalation(server, user, resource, namespace, names, &rules)?;
            let aggregates = |o: &Value| o.get("aggregationRule").is_some_and(|a| !a.is_null());
            if aggregates(new) || old.is_some_and(aggregates) {
                // An aggregation rule can gather anything (and removing one stops a role from
                // following its components): setting, changing or removing one takes full
                // authority, as in kube-apiserver.
                let full = vec![
                    PolicyRule {
                        verbs: vec!["*".into()],
                        api_groups: Some(vec!["*".into()]),
                        resources: Some(vec!["*".into()]),
                        ..Default::default()
                    },
                    PolicyRule {
                        verbs: vec!["*".into()],
                        non_resource_urls: Some(vec!["*".into()]),
                        ..Default::default()
                    },
                ];
                confirm_no_escalation(server, user, resource, namespace, names, &full).map_err(|_| {
                    forbidden_object(resource, name, "must have cluster-admin privileges to use the aggregationRule")
                })?;
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            if old.is_some_and(|o| only_bookkeeping_changed(o, new)) {
                return Ok(());
            }
            let kind = new.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
            let role = new.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
            confirm_can_bind(server, user, resource, name, namespace, kind, role)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::request::{Target, parse_target};

    fn attrs(method: Method, path_and_query: &str) -> Attrs {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let query = Query::parse(Some(query));
        match parse_target(&method, path, &query).expect("a valid path") {
            Target::Resource(info) => Attrs::for_request(&info, &query),
            Target::NonResource(p) => Attrs::non_resource("get", &p),
        }
    }

    fn alice() -> UserInfo {
        UserInfo { name: "alice".into(), groups: vec!["system:authenticated".into()], ..Default::default() }
    }

    #[test]
    fn a_list_narrowed_to_one_name_is_authorized_as_that_name() {
        let a = attrs(Method::GET, "/api/v1/namespaces/app/secrets?fieldSelector=metadata.name%3Ddb&watch=true");
        assert_eq!((a.verb.as_str(), a.name.as_deref()), ("watch", Some("db")));
        let a = attrs(Method::GET, "/api/v1/namespaces/app/secrets?fieldSelector=type%3DOpaque");
        assert_eq!((a.verb.as_str(), a.name), ("list", None));
    }

    #[test]
    fn getting_a_namespace_is_a_request_in_that_namespace() {
        let a = attrs(Method::GET, "/api/v1/namespaces/app");
        assert_eq!(a.namespace.as_deref(), Some("app"));
        assert_eq!(a.name.as_deref(), Some("app"));
    }

    #[test]
    fn forbidden_messages_are_kubernetes() {
        let cases = [
            (
                attrs(Method::GET, "/api/v1/namespaces/app/secrets/db"),
                r#"secrets "db" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "app""#,
            ),
            (
                attrs(Method::GET, "/api/v1/secrets"),
                r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" at the cluster scope"#,
            ),
            (
                attrs(Method::POST, "/api/v1/namespaces/app/serviceaccounts/sa/token"),
                r#"serviceaccounts "sa" is forbidden: User "alice" cannot create resource "serviceaccounts/token" in API group "" in the namespace "app""#,
            ),
            (
                attrs(Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
                r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#,
            ),
            (attrs(Method::GET, "/metrics"), r#"forbidden: User "alice" cannot get path "/metrics""#),
        ];
        for (a, want) in cases {
            assert_eq!(forbidden(&alice(), &a, "").to_status()["message"], want);
        }
        let a = attrs(Method::GET, "/api/v1/namespaces/app/secrets/db");
        assert!(
            forbidden(&alice(), &a, "RBAC: role.rbac.authorization.k8s.io \"gone\" not found").to_status()["message"]
                .as_str()
                .unwrap()
                .ends_with(r#"in the namespace "app": RBAC: role.rbac.authorization.k8s.io "gone" not found"#)
        );
    }
}
