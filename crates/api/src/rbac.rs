//! Kubernetes RBAC, evaluated exactly as kube-apiserver evaluates it: rule matching, subject
//! matching, the authorizer's visit over ClusterRoleBindings and RoleBindings with its reason
//! strings, the rules a SelfSubjectRulesReview reports, escalation prevention (the policy
//! comparator and its Forbidden message), ClusterRole aggregation and the bootstrap policy.
//!
//! Sources (Kubernetes 1.32): `pkg/apis/rbac/v1/evaluation_helpers.go` (rule matching,
//! `CompactString`), `plugin/pkg/auth/authorizer/rbac/rbac.go` (the authorizer, `RulesFor`),
//! `pkg/registry/rbac/validation/rule.go` (visiting bindings, subjects, `ConfirmNoEscalation`),
//! `pkg/registry/rbac/validation/policy_compact.go`,
//! `k8s.io/component-helpers/auth/rbac/validation/policy_comparator.go` (`Covers`),
//! `pkg/controller/clusterroleaggregation` and the rendered bootstrap policy
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/cluster-roles.yaml`.
//!
//! Pure: the RBAC objects come in through [`RbacSource`] (the server implements it over a
//! watch-cache snapshot), so one decision sees one consistent set of objects and nothing here
//! does I/O. The `system:masters` short-cut is not here: in Kubernetes it is a separate
//! authorizer in front of RBAC, and so it is in the server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use crate::field::go_quote;
use crate::selector::{LabelOperator, LabelRequirement};
use crate::validation::{is_qualified_name, is_valid_label_value};

/// `rbacv1.VerbAll`, `APIGroupAll`, `ResourceAll` and `NonResourceAll`: one spelling for all.
const ALL: &str = "*";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

// ---------------------------------------------------------------------------------------------
// Who asks and what for
// ---------------------------------------------------------------------------------------------

/// The authenticated user as RBAC sees it (`user.Info`). Names and groups are not secrets, so
/// `Debug` shows them; the server converts its own identity type into this one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What a request does (`authorizer.Attributes` without the user). Empty strings mean "not
/// set", as in Kubernetes: a cluster-scoped request has an empty `namespace`, a list an empty
/// `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The request path of a non-resource request (`/version`, `/apis/apps`).
    pub path: String,
    /// `false` for non-resource requests, which match `nonResourceURLs` and nothing else.
    pub resource_request: bool,
}

impl Attributes {
    /// A non-resource request such as `get /version`.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes { verb: verb.to_string(), path: path.to_string(), resource_request: false, ..Default::default() }
    }
}

// ---------------------------------------------------------------------------------------------
// Rule matching (evaluation_helpers.go, rbac.go RuleAllows)
// ---------------------------------------------------------------------------------------------

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// `VerbMatches`: `*` or the exact verb.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

/// `APIGroupMatches`: `*` or the exact group (`""` is the core group).
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups).iter().any(|g| g == ALL || g == group)
}

/// `ResourceMatches`: `*`, the exact `resource` or `resource/subresource`, or `*/subresource`.
/// `combined` is `resource/subresource` when the request names a subresource.
pub fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    list(&rule.resources).iter().any(|r| {
        r == ALL
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
    })
}

/// `ResourceNameMatches`: an empty list allows every name, a non-empty one only the names it
/// lists. A request without a name (list, watch, create, deletecollection) therefore never
/// matches a rule with `resourceNames`.
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

/// `NonResourceURLMatches`: `*`, the exact path, or a prefix ending in `*` (`/apis/*`).
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls)
        .iter()
        .any(|u| u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
}

/// `RuleAllows`: does this one rule allow the request?
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if !attrs.resource_request {
        return verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, &attrs.path);
    }
    let combined = if attrs.subresource.is_empty() {
        std::borrow::Cow::Borrowed(attrs.resource.as_str())
    } else {
        std::borrow::Cow::Owned(format!("{}/{}", attrs.resource, attrs.subresource))
    };
    verb_matches(rule, &attrs.verb)
        && api_group_matches(rule, &attrs.api_group)
        && resource_matches(rule, &combined, &attrs.subresource)
        && resource_name_matches(rule, &attrs.name)
}

// ---------------------------------------------------------------------------------------------
// Subjects (rule.go appliesToUser)
// ---------------------------------------------------------------------------------------------

/// `appliesToUser`: a `User` subject by name, a `Group` by membership, a `ServiceAccount` by
/// the username `system:serviceaccount:<ns>:<name>`, where a subject without a namespace takes
/// `namespace` (the RoleBinding's; empty for a ClusterRoleBinding, which then matches no one).
/// The subject's `apiGroup` is not consulted, as in Kubernetes.
pub fn applies_to_user(user: &User, subject: &Subject, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let sa_namespace = subject.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or(namespace);
            if sa_namespace.is_empty() {
                return false;
            }
            // `serviceaccount.MatchesUsername` without building the string.
            user.name
                .strip_prefix(SERVICE_ACCOUNT_PREFIX)
                .and_then(|rest| rest.strip_prefix(sa_namespace))
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|name| name == subject.name)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The objects RBAC reads
// ---------------------------------------------------------------------------------------------

/// One RoleBinding or ClusterRoleBinding as the evaluator needs it. Sources hand these out per
/// request, so the subject list is shared rather than copied.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingRef {
    pub name: String,
    /// `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    pub role_ref: RoleRef,
    pub subjects: Arc<[Subject]>,
}

/// Where the evaluator reads Roles, ClusterRoles and their bindings. The server implements it
/// over one watch-cache snapshot so a decision never mixes two states of the cluster.
pub trait RbacSource {
    /// The rules of the ClusterRole `name`, `None` if it does not exist.
    fn cluster_role(&self, name: &str) -> Option<Arc<[PolicyRule]>>;
    /// The rules of the Role `namespace/name`, `None` if it does not exist.
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<[PolicyRule]>>;
    /// Every ClusterRoleBinding.
    fn cluster_role_bindings(&self) -> Vec<BindingRef>;
    /// Every RoleBinding in `namespace`.
    fn role_bindings(&self, namespace: &str) -> Vec<BindingRef>;
}

/// Why a binding contributed no rules. `Display` is Kubernetes' text (the lister's NotFound).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolutionError {
    #[error("role.rbac.authorization.k8s.io {} not found", go_quote(.name))]
    RoleNotFound { namespace: String, name: String },
    #[error("clusterrole.rbac.authorization.k8s.io {} not found", go_quote(.name))]
    ClusterRoleNotFound { name: String },
    #[error("unsupported role reference kind: {}", go_quote(.kind))]
    UnsupportedRoleRefKind { kind: String },
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as it is, several de-duplicated,
/// joined with `, ` and bracketed; empty for none.
fn aggregate_errors(errors: &[ResolutionError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// `GetRoleReferenceRules`: the rules a binding's roleRef names, looked up in the binding's
/// namespace for a `Role`.
fn role_ref_rules<S: RbacSource + ?Sized>(
    source: &S,
    role_ref: &RoleRef,
    namespace: &str,
) -> Result<Arc<[PolicyRule]>, ResolutionError> {
    match role_ref.kind.as_str() {
        "Role" => {
            let not_found =
                || ResolutionError::RoleNotFound { namespace: namespace.to_string(), name: role_ref.name.clone() };
            if namespace.is_empty() {
                // A ClusterRoleBinding cannot reach a Role: the lookup in "" finds nothing.
                return Err(not_found());
            }
            source.role(namespace, &role_ref.name).ok_or_else(not_found)
        }
        "ClusterRole" => source
            .cluster_role(&role_ref.name)
            .ok_or_else(|| ResolutionError::ClusterRoleNotFound { name: role_ref.name.clone() }),
        kind => Err(ResolutionError::UnsupportedRoleRefKind { kind: kind.to_string() }),
    }
}

// ---------------------------------------------------------------------------------------------
// Visiting the rules of a user (rule.go VisitRulesFor)
// ---------------------------------------------------------------------------------------------

/// The binding and subject a rule came through. `Display` is Kubernetes' describer text, the
/// tail of an allow reason: `ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`.
#[derive(Debug, Clone, Copy)]
pub struct RuleSource<'a> {
    pub binding: &'a BindingRef,
    pub subject: &'a Subject,
    /// The namespace of a RoleBinding; empty for a ClusterRoleBinding.
    pub namespace: &'a str,
}

impl fmt::Display for RuleSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role_ref = &self.binding.role_ref;
        if self.namespace.is_empty() {
            write!(f, "ClusterRoleBinding {}", go_quote(&self.binding.name))?;
        } else {
            // Kubernetes writes name/namespace here, in that order.
            write!(f, "RoleBinding {}", go_quote(&format!("{}/{}", self.binding.name, self.namespace)))?;
        }
        write!(f, " of {} {} to ", role_ref.kind, go_quote(&role_ref.name))?;
        let subject = self.subject;
        match subject.kind.as_str() {
            "ServiceAccount" => {
                let ns = subject.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or(self.namespace);
                write!(f, "{} {}", subject.kind, go_quote(&format!("{}/{ns}", subject.name)))
            }
            _ => write!(f, "{} {}", subject.kind, go_quote(&subject.name)),
        }
    }
}

/// One step of [`visit_rules_for`].
#[derive(Debug)]
pub enum Visit<'a> {
    /// A rule the user holds, and where it came from.
    Rule { source: RuleSource<'a>, rule: &'a PolicyRule },
    /// A binding that applies to the user but whose role could not be resolved.
    Error(ResolutionError),
}

/// `VisitRulesFor`: every rule `user` holds in `namespace`, ClusterRoleBindings first (in the
/// source's order), then the RoleBindings of `namespace` (none for an empty namespace). Each
/// binding contributes through the first of its subjects that matches. The visitor stops the
/// walk by returning `Break`.
pub fn visit_rules_for<S, F>(source: &S, user: &User, namespace: &str, mut visitor: F)
where
    S: RbacSource + ?Sized,
    F: FnMut(Visit<'_>) -> ControlFlow<()>,
{
    let mut scopes = vec![("", source.cluster_role_bindings())];
    if !namespace.is_empty() {
        scopes.push((namespace, source.role_bindings(namespace)));
    }
    for (scope, bindings) in &scopes {
        for binding in bindings {
            let Some(subject) = binding.subjects.iter().find(|s| applies_to_user(user, s, scope)) else {
                continue;
            };
            let rules = match role_ref_rules(source, &binding.role_ref, scope) {
                Ok(rules) => rules,
                Err(e) => {
                    if visitor(Visit::Error(e)).is_break() {
                        return;
                    }
                    continue;
                }
            };
            let described = binding.namespace.as_deref().filter(|_| !scope.is_empty()).unwrap_or(scope);
            let rule_source = RuleSource { binding, subject, namespace: described };
            for rule in rules.iter() {
                if visitor(Visit::Rule { source: rule_source, rule }).is_break() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization (rbac.go Authorize)
// ---------------------------------------------------------------------------------------------

/// The RBAC authorizer's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Kubernetes' reason: `RBAC: allowed by …` when allowed; when denied, empty, or
    /// `RBAC: <resolution errors>` if some binding's role could not be found (kube-apiserver
    /// appends it to the Forbidden message and puts it in a SubjectAccessReview's `reason`).
    pub reason: String,
    /// The resolution errors alone (without `RBAC: `), for logs and audit. Kubernetes' RBAC
    /// authorizer returns no evaluation error: a SubjectAccessReview's `evaluationError` stays
    /// empty and the errors show only in `reason`.
    pub evaluation_error: String,
}

/// May `user` do `attrs`? Stops at the first rule that allows it.
pub fn authorize<S: RbacSource + ?Sized>(source: &S, user: &User, attrs: &Attributes) -> Decision {
    let mut errors = Vec::new();
    let mut allowed_by = None;
    visit_rules_for(source, user, &attrs.namespace, |visit| match visit {
        Visit::Rule { source, rule } if rule_allows(attrs, rule) => {
            allowed_by = Some(format!("RBAC: allowed by {source}"));
            ControlFlow::Break(())
        }
        Visit::Rule { .. } => ControlFlow::Continue(()),
        Visit::Error(e) => {
            errors.push(e);
            ControlFlow::Continue(())
        }
    });
    if let Some(reason) = allowed_by {
        return Decision { allowed: true, reason, evaluation_error: String::new() };
    }
    let evaluation_error = aggregate_errors(&errors);
    let reason = if evaluation_error.is_empty() { String::new() } else { format!("RBAC: {evaluation_error}") };
    Decision { allowed: false, reason, evaluation_error }
}

// ---------------------------------------------------------------------------------------------
// The rules of a user (RulesFor, SelfSubjectRulesReview)
// ---------------------------------------------------------------------------------------------

/// Every rule a user holds in a namespace, and the bindings that could not be resolved.
/// Rules are additive, so the rules found are valid even when `errors` is not empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedRules {
    pub rules: Vec<PolicyRule>,
    pub errors: Vec<ResolutionError>,
}

/// `RulesFor`: the rules of every ClusterRoleBinding and every RoleBinding in `namespace` that
/// applies to `user`, in visiting order, duplicates kept.
pub fn rules_for<S: RbacSource + ?Sized>(source: &S, user: &User, namespace: &str) -> ResolvedRules {
    let mut out = ResolvedRules::default();
    visit_rules_for(source, user, namespace, |visit| {
        match visit {
            Visit::Rule { rule, .. } => out.rules.push(rule.clone()),
            Visit::Error(e) => out.errors.push(e),
        }
        ControlFlow::Continue(())
    });
    out
}

/// A SelfSubjectRulesReview's status, in the authorization.k8s.io shapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesReview {
    pub resource_rules: Vec<ResourceRule>,
    pub non_resource_rules: Vec<NonResourceRule>,
    /// Always `false` from RBAC: Kubernetes reports resolution errors in `evaluation_error`
    /// without marking the list incomplete.
    pub incomplete: bool,
    /// The aggregated resolution errors; empty when there were none.
    pub evaluation_error: String,
}

/// Go's `omitempty`: an empty list is left out of the JSON rather than written as `[]`.
fn non_empty(v: &Option<Vec<String>>) -> Option<Vec<String>> {
    v.as_ref().filter(|v| !v.is_empty()).cloned()
}

/// The RBAC authorizer's `RulesFor`: a rule with resources becomes a resource rule, a rule with
/// non-resource URLs a non-resource rule (a rule with both becomes both).
pub fn rules_review<S: RbacSource + ?Sized>(source: &S, user: &User, namespace: &str) -> RulesReview {
    let resolved = rules_for(source, user, namespace);
    let mut review = RulesReview { evaluation_error: aggregate_errors(&resolved.errors), ..Default::default() };
    for rule in &resolved.rules {
        if !list(&rule.resources).is_empty() {
            review.resource_rules.push(ResourceRule {
                verbs: rule.verbs.clone(),
                api_groups: non_empty(&rule.api_groups),
                resources: non_empty(&rule.resources),
                resource_names: non_empty(&rule.resource_names),
            });
        }
        if !list(&rule.non_resource_urls).is_empty() {
            review.non_resource_rules.push(NonResourceRule {
                verbs: rule.verbs.clone(),
                non_resource_urls: non_empty(&rule.non_resource_urls),
            });
        }
    }
    review
}

// ---------------------------------------------------------------------------------------------
// Escalation prevention (policy_comparator.go, policy_compact.go, ConfirmNoEscalation)
// ---------------------------------------------------------------------------------------------

fn one(s: &str) -> Option<Vec<String>> {
    Some(vec![s.to_string()])
}

/// `BreakdownRule`: the rule as single-group, single-resource, single-verb (and single-name)
/// rules, then one rule per non-resource URL and verb.
pub fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let names = list(&rule.resource_names);
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    ..Default::default()
                };
                if names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(names.iter().map(|n| PolicyRule { resource_names: one(n), ..base.clone() }));
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule { non_resource_urls: one(url), verbs: vec![verb.clone()], ..Default::default() });
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// `resourceCoversAll`: `*`, exact names, or `*/sub` for a `res/sub` subresource. `pods/*` is
/// no wildcard in Kubernetes, only a literal.
fn resources_cover_all(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted
        .iter()
        .all(|path| has(owner, path) || path.split_once('/').is_some_and(|(_, sub)| has(owner, &format!("*/{sub}"))))
}

/// `nonResourceURLCovers`: exact, or a prefix ending in `*`.
fn non_resource_url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

/// `ruleCovers`: does one owner rule hold everything one broken-down rule grants?
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(list(&owner.api_groups), ALL) || has_all(list(&owner.api_groups), list(&sub.api_groups));
    let resources = resources_cover_all(list(&owner.resources), list(&sub.resources));
    let urls = list(&sub.non_resource_urls)
        .iter()
        .all(|path| list(&owner.non_resource_urls).iter().any(|o| non_resource_url_covers(o, path)));
    let owner_names = list(&owner.resource_names);
    let sub_names = list(&sub.resource_names);
    let names = owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    verbs && groups && resources && urls && names
}

/// `Covers`: whether `owner` rules hold everything `servant` rules grant, and the broken-down
/// servant rules they do not hold.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> =
        servant.iter().flat_map(breakdown_rule).filter(|sub| !owner.iter().any(|o| rule_covers(o, sub))).collect();
    (uncovered.is_empty(), uncovered)
}

/// `CompactRules`: rules on one group and one resource (and at most one name) that differ only
/// by verb become one rule with all those verbs; others stay as they are. Meant for the output
/// of [`covers`].
pub fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut compacted = Vec::new();
    let mut simple: BTreeMap<(String, String, Option<String>), PolicyRule> = BTreeMap::new();
    for rule in rules {
        let names = list(&rule.resource_names);
        let is_simple = names.len() <= 1
            && rule.non_resource_urls.is_none()
            && list(&rule.api_groups).len() == 1
            && list(&rule.resources).len() == 1;
        if !is_simple {
            compacted.push(rule.clone());
            continue;
        }
        let key = (list(&rule.api_groups)[0].clone(), list(&rule.resources)[0].clone(), names.first().cloned());
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs.iter().cloned()),
            None => {
                simple.insert(key, rule.clone());
            }
        }
    }
    compacted.extend(simple.into_values());
    compacted
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `CompactString`: `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`, leaving out
/// empty fields.
pub fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let fields: [(&str, &[String]); 5] = [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("ResourceNames", list(&rule.resource_names)),
        ("Verbs", &rule.verbs),
    ];
    for (label, values) in fields {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", go_quote_list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// The text of a refused grant, as `ConfirmNoEscalation` words it: the user, their groups, the
/// missing rules compacted, sorted and de-duplicated one a line, then any resolution errors.
pub fn escalation_message(user: &User, uncovered: &[PolicyRule], resolution_errors: &[ResolutionError]) -> String {
    let missing: BTreeSet<String> = compact_rules(uncovered).iter().map(compact_string).collect();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !resolution_errors.is_empty() {
        // Kubernetes formats a one-element []error holding the aggregate: `[<aggregate>]`.
        msg.push_str(&format!("; resolution errors: [{}]", aggregate_errors(resolution_errors)));
    }
    msg
}

/// A write that would grant rules its author does not hold. `Display` is Kubernetes' message;
/// the server wraps it as `<resource>.rbac.authorization.k8s.io "<name>" is forbidden: …`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct EscalationError {
    /// The broken-down rules the user does not hold.
    pub uncovered: Vec<PolicyRule>,
    message: String,
}

/// `ConfirmNoEscalation`: `rules` must be covered by what `user` holds in `namespace` (only
/// ClusterRoleBindings count for an empty namespace). The caller checks the `escalate` and
/// `bind` verbs and `system:masters` first, as kube-apiserver does.
pub fn confirm_no_escalation<S: RbacSource + ?Sized>(
    source: &S,
    user: &User,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), EscalationError> {
    let owner = rules_for(source, user, namespace);
    let (covered, uncovered) = covers(&owner.rules, rules);
    if covered {
        return Ok(());
    }
    let message = escalation_message(user, &uncovered, &owner.errors);
    Err(EscalationError { uncovered, message })
}

// ---------------------------------------------------------------------------------------------
// ClusterRole aggregation (clusterroleaggregation_controller.go)
// ---------------------------------------------------------------------------------------------

/// `metav1.LabelSelectorAsSelector`: `None` when the selector is invalid (validation refuses
/// such selectors on write, so this only guards data that bypassed it). An empty selector
/// selects everything.
fn selector_requirements(selector: &LabelSelector) -> Option<Vec<LabelRequirement>> {
    let valid_key = |k: &str| is_qualified_name(k).is_empty();
    let valid_values = |vs: &[String]| vs.iter().all(|v| is_valid_label_value(v).is_empty());
    let mut out = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        let values = vec![value.clone()];
        if !valid_key(key) || !valid_values(&values) {
            return None;
        }
        out.push(LabelRequirement { key: key.clone(), operator: LabelOperator::Equals, values });
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = list(&expr.values).to_vec();
        let (operator, needs_values) = match expr.operator.as_str() {
            "In" => (LabelOperator::In, true),
            "NotIn" => (LabelOperator::NotIn, true),
            "Exists" => (LabelOperator::Exists, false),
            "DoesNotExist" => (LabelOperator::DoesNotExist, false),
            _ => return None,
        };
        if !valid_key(&expr.key) || needs_values == values.is_empty() || !valid_values(&values) {
            return None;
        }
        out.push(LabelRequirement { key: expr.key.clone(), operator, values });
    }
    Some(out)
}

/// Equality as `equality.Semantic.DeepEqual` sees rules: an empty list equals an absent one.
fn same_rule(a: &PolicyRule, b: &PolicyRule) -> bool {
    a.verbs == b.verbs
        && list(&a.api_groups) == list(&b.api_groups)
        && list(&a.resources) == list(&b.resources)
        && list(&a.resource_names) == list(&b.resource_names)
        && list(&a.non_resource_urls) == list(&b.non_resource_urls)
}

/// The rules of the aggregated ClusterRole `target`: for each selector in order, the rules of
/// the ClusterRoles it selects in name order, skipping `target` itself and any rule already
/// gathered. `roles` is every ClusterRole as (name, labels, rules).
pub fn aggregate<'a, I>(target: &str, selectors: &[LabelSelector], roles: I) -> Vec<PolicyRule>
where
    I: IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>, &'a [PolicyRule])>,
{
    let mut roles: Vec<_> = roles.into_iter().filter(|(name, _, _)| *name != target).collect();
    roles.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<PolicyRule> = Vec::new();
    for selector in selectors {
        let Some(requirements) = selector_requirements(selector) else { continue };
        for (_, labels, rules) in &roles {
            if !requirements.iter().all(|r| r.matches(labels)) {
                continue;
            }
            for rule in *rules {
                if !out.iter().any(|have| same_rule(have, rule)) {
                    out.push(rule.clone());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Bootstrap policy
// ---------------------------------------------------------------------------------------------

const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn bootstrap_metadata(name: &str, extra_label: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    if let Some(label) = extra_label {
        labels[label] = json!("true");
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn resource_rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn cluster_role(name: &str, label: Option<&str>, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": bootstrap_metadata(name, label),
        "rules": rules,
    })
}

fn aggregated_cluster_role(name: &str, label: Option<&str>, selects: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": bootstrap_metadata(name, label),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]},
    })
}

/// The ClusterRoles kube-apiserver creates at startup, with Kubernetes' names, labels,
/// annotations and aggregation, their rules narrowed to the resources strongroom serves
/// (secrets, serviceaccounts and their tokens, namespaces, events, RBAC, access reviews). `admin`,
/// `edit` and `view` carry no rules: aggregation fills them.
pub fn bootstrap_cluster_roles() -> Vec<Value> {
    const RW: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    const READ: &[&str] = &["get", "list", "watch"];
    const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
    const STATUS_URLS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];
    vec![
        aggregated_cluster_role("admin", None, AGGREGATE_TO_ADMIN),
        cluster_role("cluster-admin", None, vec![resource_rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])]),
        aggregated_cluster_role("edit", Some(AGGREGATE_TO_ADMIN), AGGREGATE_TO_EDIT),
        cluster_role(
            "system:aggregate-to-admin",
            Some(AGGREGATE_TO_ADMIN),
            vec![
                resource_rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
                resource_rule(&[RBAC_GROUP], &["rolebindings", "roles"], RW),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            Some(AGGREGATE_TO_EDIT),
            vec![
                resource_rule(&[""], &["secrets"], READ),
                resource_rule(&[""], &["serviceaccounts"], &["impersonate"]),
                resource_rule(&[""], &["events", "secrets", "serviceaccounts"], WRITE),
                resource_rule(&[""], &["serviceaccounts/token"], &["create"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            Some(AGGREGATE_TO_VIEW),
            vec![
                resource_rule(&[""], &["serviceaccounts"], READ),
                resource_rule(&[""], &["events", "namespaces/status"], READ),
                resource_rule(&[""], &["namespaces"], READ),
            ],
        ),
        cluster_role(
            "system:auth-delegator",
            None,
            vec![
                resource_rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                resource_rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            ],
        ),
        cluster_role(
            "system:basic-user",
            None,
            vec![
                resource_rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                resource_rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            None,
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role("system:public-info-viewer", None, vec![url_rule(STATUS_URLS, &["get"])]),
        cluster_role(
            "system:monitoring",
            None,
            vec![url_rule(
                &["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/readyz", "/readyz/*"],
                &["get"],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            None,
            vec![url_rule(
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
                &["get"],
            )],
        ),
        aggregated_cluster_role("view", Some(AGGREGATE_TO_EDIT), AGGREGATE_TO_VIEW),
    ]
}

fn cluster_role_binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> =
        groups.iter().map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g})).collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": bootstrap_metadata(name, None),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    })
}

/// The ClusterRoleBindings kube-apiserver creates at startup for the roles above.
pub fn bootstrap_cluster_role_bindings() -> Vec<Value> {
    vec![
        cluster_role_binding("cluster-admin", &["system:masters"]),
        cluster_role_binding("system:basic-user", &["system:authenticated"]),
        cluster_role_binding("system:discovery", &["system:authenticated"]),
        cluster_role_binding("system:public-info-viewer", &["system:authenticated", "system:unauthenticated"]),
        cluster_role_binding("system:monitoring", &["system:monitoring"]),
        cluster_role_binding("system:service-account-issuer-discovery", &["system:serviceaccounts"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn strs(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: strs(groups),
            resources: strs(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
        r.resource_names = strs(names);
        r
    }

    fn urls(urls: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            non_resource_urls: strs(urls),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn req(verb: &str, ns: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            namespace: ns.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
            resource_request: true,
        }
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
        Subject {
            api_group: (kind != "ServiceAccount").then(|| RBAC_GROUP.to_string()),
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
        }
    }

    fn binding(name: &str, ns: Option<&str>, kind: &str, role: &str, subjects: Vec<Subject>) -> BindingRef {
        BindingRef {
            name: name.into(),
            namespace: ns.map(str::to_string),
            role_ref: RoleRef { api_group: RBAC_GROUP.into(), kind: kind.into(), name: role.into() },
            subjects: subjects.into(),
        }
    }

    #[derive(Default)]
    struct Source {
        cluster_roles: BTreeMap<String, Arc<[PolicyRule]>>,
        roles: BTreeMap<(String, String), Arc<[PolicyRule]>>,
        cluster_role_bindings: Vec<BindingRef>,
        role_bindings: Vec<BindingRef>,
    }

    impl Source {
        fn cluster_role(mut self, name: &str, rules: Vec<PolicyRule>) -> Self {
            self.cluster_roles.insert(name.into(), rules.into());
            self
        }
        fn role(mut self, ns: &str, name: &str, rules: Vec<PolicyRule>) -> Self {
            self.roles.insert((ns.into(), name.into()), rules.into());
            self
        }
        fn bind(mut self, b: BindingRef) -> Self {
            if b.namespace.is_some() {
                self.role_bindings.push(b)
            } else {
                self.cluster_role_bindings.push(b)
            }
            self
        }
    }

    impl RbacSource for Source {
        fn cluster_role(&self, name: &str) -> Option<Arc<[PolicyRule]>> {
            self.cluster_roles.get(name).cloned()
        }
        fn role(&self, namespace: &str, name: &str) -> Option<Arc<[PolicyRule]>> {
            self.roles.get(&(namespace.to_string(), name.to_string())).cloned()
        }
        fn cluster_role_bindings(&self) -> Vec<BindingRef> {
            self.cluster_role_bindings.clone()
        }
        fn role_bindings(&self, namespace: &str) -> Vec<BindingRef> {
            self.role_bindings.iter().filter(|b| b.namespace.as_deref() == Some(namespace)).cloned().collect()
        }
    }

    #[test]
    fn rule_matching_table() {
        let secrets_get = rule(&[""], &["secrets"], &["get"]);
        let cases: Vec<(&str, PolicyRule, Attributes, bool)> = vec![
            ("exact", secrets_get.clone(), req("get", "a", "", "secrets", "", "s"), true),
            ("other verb", secrets_get.clone(), req("list", "a", "", "secrets", "", ""), false),
            ("verb *", rule(&[""], &["secrets"], &["*"]), req("delete", "a", "", "secrets", "", "s"), true),
            ("other group", secrets_get.clone(), req("get", "a", "apps", "secrets", "", "s"), false),
            ("group *", rule(&["*"], &["secrets"], &["get"]), req("get", "a", "apps", "secrets", "", "s"), true),
            (
                "no groups",
                PolicyRule { api_groups: None, ..secrets_get.clone() },
                req("get", "a", "", "secrets", "", "s"),
                false,
            ),
            ("other resource", secrets_get.clone(), req("get", "a", "", "configmaps", "", "s"), false),
            ("resource *", rule(&[""], &["*"], &["get"]), req("get", "a", "", "configmaps", "", "s"), true),
            (
                "* covers subresources",
                rule(&[""], &["*"], &["create"]),
                req("create", "a", "", "serviceaccounts", "token", "d"),
                true,
            ),
            (
                "resource excludes subresource",
                rule(&[""], &["serviceaccounts"], &["create"]),
                req("create", "a", "", "serviceaccounts", "token", "d"),
                false,
            ),
            (
                "exact subresource",
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                req("create", "a", "", "serviceaccounts", "token", "d"),
                true,
            ),
            (
                "subresource excludes resource",
                rule(&[""], &["serviceaccounts/token"], &["get"]),
                req("get", "a", "", "serviceaccounts", "", "d"),
                false,
            ),
            (
                "*/token",
                rule(&[""], &["*/token"], &["create"]),
                req("create", "a", "", "serviceaccounts", "token", "d"),
                true,
            ),
            (
                "*/token not status",
                rule(&[""], &["*/token"], &["get"]),
                req("get", "a", "", "namespaces", "status", "a"),
                false,
            ),
            (
                "*/token not the resource",
                rule(&[""], &["*/token"], &["get"]),
                req("get", "a", "", "serviceaccounts", "", "d"),
                false,
            ),
            (
                "*/tok is no prefix",
                rule(&[""], &["*/tok"], &["create"]),
                req("create", "a", "", "serviceaccounts", "token", "d"),
                false,
            ),
            (
                "res/* is literal",
                rule(&[""], &["serviceaccounts/*"], &["create"]),
                req("create", "a", "", "serviceaccounts", "token", "d"),
                false,
            ),
            ("name listed", named(secrets_get.clone(), &["s"]), req("get", "a", "", "secrets", "", "s"), true),
            ("name not listed", named(secrets_get.clone(), &["s"]), req("get", "a", "", "secrets", "", "t"), false),
            (
                "names never allow list",
                named(rule(&[""], &["secrets"], &["list"]), &["s"]),
                req("list", "a", "", "secrets", "", ""),
                false,
            ),
            (
                "names never allow create",
                named(rule(&[""], &["secrets"], &["create"]), &["s"]),
                req("create", "a", "", "secrets", "", ""),
                false,
            ),
            (
                "names allow a list narrowed to the name",
                named(rule(&[""], &["secrets"], &["list"]), &["s"]),
                req("list", "a", "", "secrets", "", "s"),
                true,
            ),
            (
                "empty names allow all",
                PolicyRule { resource_names: Some(vec![]), ..secrets_get.clone() },
                req("get", "a", "", "secrets", "", "x"),
                true,
            ),
            ("url exact", urls(&["/version"], &["get"]), Attributes::non_resource("get", "/version"), true),
            (
                "url exact, other path",
                urls(&["/version"], &["get"]),
                Attributes::non_resource("get", "/version/x"),
                false,
            ),
            ("url *", urls(&["*"], &["get"]), Attributes::non_resource("get", "/anything"), true),
            ("url prefix *", urls(&["/apis/*"], &["get"]), Attributes::non_resource("get", "/apis/apps/v1"), true),
            (
                "url prefix * needs the slash",
                urls(&["/apis/*"], &["get"]),
                Attributes::non_resource("get", "/apis"),
                false,
            ),
            ("url prefix without slash", urls(&["/api*"], &["get"]), Attributes::non_resource("get", "/apis"), true),
            ("url verb", urls(&["/version"], &["get"]), Attributes::non_resource("post", "/version"), false),
            ("url rule never matches resources", urls(&["*"], &["*"]), req("get", "a", "", "secrets", "", "s"), false),
            (
                "resource rule never matches urls",
                rule(&["*"], &["*"], &["*"]),
                Attributes::non_resource("get", "/version"),
                false,
            ),
        ];
        for (what, r, a, want) in cases {
            assert_eq!(rule_allows(&a, &r), want, "{what}");
        }
    }

    #[test]
    fn subjects_match_as_kubernetes() {
        let alice = user("alice", &["devs", "system:authenticated"]);
        assert!(applies_to_user(&alice, &subject("User", "alice", None), ""));
        assert!(!applies_to_user(&alice, &subject("User", "Alice", None), ""));
        assert!(applies_to_user(&alice, &subject("Group", "devs", None), ""));
        assert!(!applies_to_user(&alice, &subject("Group", "alice", None), ""));
        assert!(!applies_to_user(&alice, &subject("Robot", "alice", None), ""));

        let sa = user("system:serviceaccount:app:builder", &["system:serviceaccounts"]);
        assert!(applies_to_user(&sa, &subject("ServiceAccount", "builder", Some("app")), ""));
        assert!(!applies_to_user(&sa, &subject("ServiceAccount", "builder", Some("other")), "app"));
        // An empty subject namespace defaults to the RoleBinding's namespace...
        assert!(applies_to_user(&sa, &subject("ServiceAccount", "builder", None), "app"));
        assert!(applies_to_user(&sa, &subject("ServiceAccount", "builder", Some("")), "app"));
        // ...and in a ClusterRoleBinding matches no one.
        assert!(!applies_to_user(&sa, &subject("ServiceAccount", "builder", None), ""));
        assert!(!applies_to_user(&sa, &subject("ServiceAccount", "build", Some("app")), ""));
        assert!(!applies_to_user(
            &user("system:serviceaccount:apps:builder", &[]),
            &subject("ServiceAccount", "builder", Some("app")),
            ""
        ));
        // A ServiceAccount subject is not a User subject of the same username.
        assert!(!applies_to_user(&sa, &subject("User", "builder", Some("app")), ""));
    }

    fn masters_source() -> Source {
        Source::default().cluster_role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]).bind(
            binding(
                "cluster-admin",
                None,
                "ClusterRole",
                "cluster-admin",
                vec![subject("Group", "system:masters", None)],
            ),
        )
    }

    #[test]
    fn allow_reasons_are_kubernetes_text() {
        let s = masters_source()
            .role("read-db", "secret-reader", vec![rule(&[""], &["secrets"], &["get"])])
            .bind(binding(
                "app",
                Some("read-db"),
                "Role",
                "secret-reader",
                vec![subject("User", "bob", None), subject("User", "alice", None)],
            ))
            .cluster_role("token-maker", vec![rule(&[""], &["serviceaccounts/token"], &["create"])])
            .bind(binding(
                "tokens",
                Some("ci"),
                "ClusterRole",
                "token-maker",
                vec![subject("ServiceAccount", "builder", None)],
            ))
            .bind(binding(
                "global",
                None,
                "ClusterRole",
                "token-maker",
                vec![subject("ServiceAccount", "deployer", Some("ops"))],
            ));

        let d = authorize(&s, &user("root", &["system:masters"]), &req("delete", "x", "", "secrets", "", "y"));
        assert!(d.allowed);
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters""#
        );

        let d = authorize(&s, &user("alice", &[]), &req("get", "read-db", "", "secrets", "", "db"));
        assert!(d.allowed);
        assert_eq!(d.reason, r#"RBAC: allowed by RoleBinding "app/read-db" of Role "secret-reader" to User "alice""#);

        let builder = user("system:serviceaccount:ci:builder", &[]);
        let d = authorize(&s, &builder, &req("create", "ci", "", "serviceaccounts", "token", "builder"));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "tokens/ci" of ClusterRole "token-maker" to ServiceAccount "builder/ci""#
        );

        let deployer = user("system:serviceaccount:ops:deployer", &[]);
        let d = authorize(&s, &deployer, &req("create", "ops", "", "serviceaccounts", "token", "x"));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by ClusterRoleBinding "global" of ClusterRole "token-maker" to ServiceAccount "deployer/ops""#
        );

        let d = authorize(&s, &user("alice", &[]), &req("list", "read-db", "", "secrets", "", ""));
        assert_eq!(d, Decision::default(), "a plain deny has no reason");
    }

    #[test]
    fn role_binding_to_cluster_role_grants_only_in_its_namespace() {
        let s = Source::default()
            .cluster_role("reader", vec![rule(&[""], &["secrets", "namespaces"], &["get", "list"])])
            .bind(binding("r", Some("team"), "ClusterRole", "reader", vec![subject("User", "alice", None)]));
        let alice = user("alice", &[]);
        assert!(authorize(&s, &alice, &req("get", "team", "", "secrets", "", "x")).allowed);
        assert!(!authorize(&s, &alice, &req("get", "other", "", "secrets", "", "x")).allowed);
        // Cluster-scoped requests (a namespace itself, a list across namespaces) are never
        // granted by a RoleBinding.
        assert!(!authorize(&s, &alice, &req("list", "", "", "namespaces", "", "")).allowed);
        assert!(!authorize(&s, &alice, &req("list", "", "", "secrets", "", "")).allowed);
        assert!(!authorize(&s, &alice, &req("get", "", "", "secrets", "", "x")).allowed);
    }

    #[test]
    fn cluster_role_binding_to_a_role_grants_nothing() {
        let s = Source::default().role("team", "r", vec![rule(&["*"], &["*"], &["*"])]).bind(binding(
            "x",
            None,
            "Role",
            "r",
            vec![subject("User", "alice", None)],
        ));
        let d = authorize(&s, &user("alice", &[]), &req("get", "team", "", "secrets", "", "x"));
        assert!(!d.allowed);
        assert_eq!(d.reason, r#"RBAC: role.rbac.authorization.k8s.io "r" not found"#);
    }

    #[test]
    fn missing_roles_are_skipped_and_reported_on_deny() {
        let s = Source::default()
            .bind(binding("gone", None, "ClusterRole", "nope", vec![subject("User", "alice", None)]))
            .bind(binding("gone-too", None, "ClusterRole", "nope", vec![subject("User", "alice", None)]))
            .bind(binding("odd", None, "Thing", "x", vec![subject("User", "alice", None)]))
            .bind(binding("other", None, "ClusterRole", "nope", vec![subject("User", "bob", None)]))
            .role("ns", "reader", vec![rule(&[""], &["secrets"], &["get"])])
            .bind(binding("missing", Some("ns"), "Role", "absent", vec![subject("User", "alice", None)]))
            .bind(binding("ok", Some("ns"), "Role", "reader", vec![subject("User", "alice", None)]));
        let alice = user("alice", &[]);
        let d = authorize(&s, &alice, &req("get", "ns", "", "secrets", "", "x"));
        assert!(d.allowed, "a later binding still allows");
        assert_eq!(d.evaluation_error, "");

        let d = authorize(&s, &alice, &req("delete", "ns", "", "secrets", "", "x"));
        assert!(!d.allowed);
        let errors = r#"[clusterrole.rbac.authorization.k8s.io "nope" not found, unsupported role reference kind: "Thing", role.rbac.authorization.k8s.io "absent" not found]"#;
        assert_eq!(d.evaluation_error, errors);
        assert_eq!(d.reason, format!("RBAC: {errors}"));

        // One error is not bracketed.
        let d = authorize(&s, &alice, &req("delete", "", "", "namespaces", "", "x"));
        assert_eq!(
            d.reason,
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "nope" not found, unsupported role reference kind: "Thing"]"#
        );
        let s =
            Source::default().bind(binding("gone", None, "ClusterRole", "nope", vec![subject("User", "alice", None)]));
        let d = authorize(&s, &alice, &req("get", "", "", "namespaces", "", "x"));
        assert_eq!(d.reason, r#"RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found"#);
    }

    #[test]
    fn rules_for_and_the_rules_review() {
        let s = Source::default()
            .cluster_role(
                "mixed",
                vec![
                    rule(&[""], &["secrets"], &["get"]),
                    urls(&["/version"], &["get"]),
                    PolicyRule {
                        non_resource_urls: strs(&["/healthz"]),
                        ..named(rule(&["apps"], &["deployments"], &["list"]), &["d"])
                    },
                    PolicyRule { verbs: vec!["get".into()], ..Default::default() },
                ],
            )
            .bind(binding("m", None, "ClusterRole", "mixed", vec![subject("Group", "devs", None)]))
            .role("ns", "writer", vec![rule(&[""], &["secrets"], &["create"])])
            .bind(binding("w", Some("ns"), "Role", "writer", vec![subject("User", "alice", None)]))
            .bind(binding("x", Some("ns"), "Role", "missing", vec![subject("User", "alice", None)]));
        let alice = user("alice", &["devs"]);

        let cluster = rules_for(&s, &alice, "");
        assert_eq!(cluster.rules.len(), 4);
        assert!(cluster.errors.is_empty());
        let ns = rules_for(&s, &alice, "ns");
        assert_eq!(ns.rules.len(), 5);
        assert_eq!(ns.rules[4], rule(&[""], &["secrets"], &["create"]));
        assert_eq!(ns.errors, vec![ResolutionError::RoleNotFound { namespace: "ns".into(), name: "missing".into() }]);

        let review = rules_review(&s, &alice, "ns");
        assert_eq!(review.resource_rules.len(), 3);
        assert_eq!(review.resource_rules[1].resource_names, strs(&["d"]));
        assert_eq!(review.resource_rules[0].resource_names, None, "empty lists are left out");
        assert_eq!(review.non_resource_rules.len(), 2);
        assert_eq!(review.non_resource_rules[1].non_resource_urls, strs(&["/healthz"]));
        assert!(!review.incomplete);
        assert_eq!(review.evaluation_error, r#"role.rbac.authorization.k8s.io "missing" not found"#);
        assert_eq!(
            serde_json::to_value(&review.resource_rules[0]).unwrap(),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]})
        );
    }

    #[test]
    fn breakdown_is_atomic() {
        let r = named(rule(&["", "apps"], &["a", "b"], &["get", "list"]), &["x", "y"]);
        let parts = breakdown_rule(&r);
        assert_eq!(parts.len(), 16);
        assert_eq!(parts[0], named(rule(&[""], &["a"], &["get"]), &["x"]));
        assert_eq!(parts[1], named(rule(&[""], &["a"], &["get"]), &["y"]));
        assert_eq!(breakdown_rule(&urls(&["/a", "/b"], &["get"])).len(), 2);
    }

    #[test]
    fn covers_follows_the_comparator() {
        let owner = vec![
            rule(&[""], &["secrets"], &["get", "list"]),
            rule(&["apps"], &["*"], &["*"]),
            rule(&[""], &["*/token"], &["create"]),
            named(rule(&[""], &["configmaps"], &["get"]), &["a", "b"]),
            urls(&["/apis/*", "/version"], &["get"]),
        ];
        let covered = |servant: Vec<PolicyRule>| covers(&owner, &servant).0;
        assert!(covered(vec![rule(&[""], &["secrets"], &["get"])]));
        assert!(
            covered(vec![named(rule(&[""], &["secrets"], &["list"]), &["x"])]),
            "no names in the owner covers any name"
        );
        assert!(covered(vec![rule(&["apps"], &["deployments", "deployments/scale"], &["delete", "patch"])]));
        assert!(
            covered(vec![rule(&[""], &["serviceaccounts/token", "foo/token"], &["create"])]),
            "*/token covers res/token"
        );
        assert!(!covered(vec![rule(&[""], &["serviceaccounts"], &["create"])]), "*/token does not cover the resource");
        assert!(!covered(vec![rule(&[""], &["*/token"], &["get"])]));
        assert!(covered(vec![named(rule(&[""], &["configmaps"], &["get"]), &["a"])]));
        assert!(!covered(vec![rule(&[""], &["configmaps"], &["get"])]), "names in the owner never cover all names");
        assert!(!covered(vec![named(rule(&[""], &["configmaps"], &["get"]), &["c"])]));
        assert!(covered(vec![urls(&["/apis/apps", "/version"], &["get"])]));
        assert!(!covered(vec![urls(&["/apis"], &["get"])]));
        assert!(!covered(vec![urls(&["/version"], &["post"])]));
        assert!(
            !covered(vec![rule(&["*"], &["secrets"], &["get"])]),
            "a wildcard in the servant is only covered by one in the owner"
        );
        assert!(covered(vec![]));

        let admin = vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])];
        assert!(covers(&admin, &[rule(&["*"], &["*"], &["*"]), urls(&["/x", "*"], &["get"])]).0);

        let (ok, uncovered) = covers(&owner, &[rule(&["", "apps"], &["secrets"], &["get", "delete"])]);
        assert!(!ok);
        assert_eq!(uncovered, vec![rule(&[""], &["secrets"], &["delete"])]);
    }

    #[test]
    fn compact_string_is_go_formatting() {
        assert_eq!(
            compact_string(&rule(&[""], &["secrets"], &["get"])),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
        assert_eq!(
            compact_string(&named(rule(&["a", "b"], &["x"], &["get", "list"]), &["n\"1"])),
            r#"{APIGroups:["a" "b"], Resources:["x"], ResourceNames:["n\"1"], Verbs:["get" "list"]}"#
        );
        assert_eq!(compact_string(&urls(&["/healthz"], &["get"])), r#"{NonResourceURLs:["/healthz"], Verbs:["get"]}"#);
    }

    #[test]
    fn escalation_message_is_kubernetes_text() {
        let s = Source::default().cluster_role("r", vec![rule(&[""], &["secrets"], &["list"])]).bind(binding(
            "b",
            None,
            "ClusterRole",
            "r",
            vec![subject("Group", "devs", None)],
        ));
        let alice = user("alice", &["devs", "system:authenticated"]);

        let err = confirm_no_escalation(&s, &alice, "ns", &[rule(&[""], &["secrets"], &["get"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user \"alice\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
        );

        // Verbs on one resource are compacted into one line; lines are sorted.
        let err = confirm_no_escalation(
            &s,
            &alice,
            "ns",
            &[
                rule(&[""], &["serviceaccounts", "secrets"], &["get", "list", "delete"]),
                urls(&["/metrics"], &["get"]),
                named(rule(&[""], &["secrets"], &["update"]), &["a", "b"]),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            [
                "user \"alice\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"a\"], Verbs:[\"update\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"b\"], Verbs:[\"update\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}",
                "{APIGroups:[\"\"], Resources:[\"serviceaccounts\"], Verbs:[\"get\" \"list\" \"delete\"]}",
                "{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}",
            ]
            .join("\n")
        );
        assert_eq!(err.uncovered.len(), 8);

        assert!(confirm_no_escalation(&s, &alice, "", &[rule(&[""], &["secrets"], &["list"])]).is_ok());

        let broken = s
            .bind(binding("gone", None, "ClusterRole", "missing", vec![subject("User", "nobody", None)]))
            .bind(binding("gone2", Some("ns"), "Role", "missing", vec![subject("Group", "devs", None)]));
        let err = confirm_no_escalation(&broken, &user("nobody", &[]), "ns", &[rule(&[""], &["secrets"], &["get"])])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user \"nobody\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}; resolution errors: [clusterrole.rbac.authorization.k8s.io \"missing\" not found]"
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector { match_labels: Some(labels(pairs)), match_expressions: None }
    }

    #[test]
    fn aggregation_unions_in_name_order_without_duplicates() {
        let l_agg = labels(&[("agg", "true")]);
        let l_other = labels(&[("agg", "false"), ("tier", "x")]);
        let r_a = vec![rule(&[""], &["secrets"], &["get"])];
        let r_b = vec![
            rule(&[""], &["secrets"], &["list"]),
            PolicyRule { resource_names: Some(vec![]), ..rule(&[""], &["secrets"], &["get"]) },
        ];
        let r_c = vec![rule(&[""], &["namespaces"], &["get"])];
        let r_self = vec![rule(&["*"], &["*"], &["*"])];
        let roles = vec![
            ("zeta", &l_agg, r_b.as_slice()),
            ("alpha", &l_agg, r_a.as_slice()),
            ("other", &l_other, r_c.as_slice()),
            ("target", &l_agg, r_self.as_slice()),
        ];
        let got = aggregate("target", &[match_labels(&[("agg", "true")])], roles.clone());
        assert_eq!(got, vec![rule(&[""], &["secrets"], &["get"]), rule(&[""], &["secrets"], &["list"])]);

        // Selectors are visited in order; a rule gathered by the first is not repeated.
        let selectors = vec![
            LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
            },
            match_labels(&[("agg", "true")]),
        ];
        let got = aggregate("target", &selectors, roles.clone());
        assert_eq!(got[0], rule(&[""], &["namespaces"], &["get"]));
        assert_eq!(got.len(), 3);

        let not_in = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "agg".into(),
                operator: "NotIn".into(),
                values: strs(&["true"]),
            }]),
        };
        assert_eq!(aggregate("target", &[not_in], roles.clone()), r_c);

        // An empty selector selects every ClusterRole; an invalid one selects nothing.
        assert_eq!(aggregate("target", &[LabelSelector::default()], roles.clone()).len(), 3);
        let invalid = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "agg".into(),
                operator: "In".into(),
                values: None,
            }]),
        };
        assert!(aggregate("target", &[invalid], roles).is_empty());
    }

    /// The bootstrap policy as kube-apiserver would hold it after aggregation has settled.
    fn bootstrap_source() -> Source {
        let mut roles: Vec<ClusterRole> =
            bootstrap_cluster_roles().into_iter().map(|v| serde_json::from_value(v).unwrap()).collect();
        // admin aggregates edit, which aggregates view: run the controller to a fixpoint.
        loop {
            let snapshot: Vec<(String, BTreeMap<String, String>, Vec<PolicyRule>)> = roles
                .iter()
                .map(|r| {
                    (
                        r.metadata.name.clone().unwrap(),
                        r.metadata.labels.clone().unwrap_or_default(),
                        r.rules.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let mut changed = false;
            for role in &mut roles {
                let Some(agg) = &role.aggregation_rule else { continue };
                let selectors = agg.cluster_role_selectors.clone().unwrap_or_default();
                let name = role.metadata.name.clone().unwrap();
                let rules =
                    aggregate(&name, &selectors, snapshot.iter().map(|(n, l, r)| (n.as_str(), l, r.as_slice())));
                if role.rules.as_ref() != Some(&rules) {
                    role.rules = Some(rules);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut source = Source::default();
        for role in roles {
            source = source.cluster_role(&role.metadata.name.unwrap(), role.rules.unwrap_or_default());
        }
        for b in bootstrap_cluster_role_bindings() {
            let b: ClusterRoleBinding = serde_json::from_value(b).unwrap();
            source = source.bind(BindingRef {
                name: b.metadata.name.unwrap(),
                namespace: None,
                role_ref: b.role_ref,
                subjects: b.subjects.unwrap_or_default().into(),
            });
        }
        source
    }

    #[test]
    fn bootstrap_roles_grant_what_kubernetes_grants() {
        let base = bootstrap_source();
        let bound = |role: &str| {
            bootstrap_source().bind(binding(
                "b",
                Some("team"),
                "ClusterRole",
                role,
                vec![subject("User", "alice", None)],
            ))
        };
        let alice = user("alice", &["system:authenticated"]);
        let can = |s: &Source, a: Attributes| authorize(s, &alice, &a).allowed;

        let view = bound("view");
        assert!(!can(&view, req("get", "team", "", "secrets", "", "s")), "view cannot read secrets");
        assert!(!can(&view, req("list", "team", "", "secrets", "", "")));
        assert!(can(&view, req("list", "team", "", "serviceaccounts", "", "")));
        assert!(!can(&view, req("create", "team", "", "serviceaccounts", "token", "default")));
        for verb in ["get", "list", "watch"] {
            assert!(can(&view, req(verb, "team", "", "events", "", "")), "view can {verb} events");
        }
        for verb in ["create", "update", "patch", "delete", "deletecollection"] {
            assert!(!can(&view, req(verb, "team", "", "events", "", "")), "view cannot {verb} events");
        }
        // Kubernetes' request info puts a namespace's own name in the namespace attribute, so a
        // RoleBinding lets its subjects get the namespace it lives in, and no other.
        assert!(can(&view, req("get", "team", "", "namespaces", "", "team")));
        assert!(!can(&view, req("get", "other", "", "namespaces", "", "other")));
        assert!(!can(&view, req("list", "", "", "namespaces", "", "")));

        let edit = bound("edit");
        assert!(can(&edit, req("get", "team", "", "secrets", "", "s")), "edit reads secrets");
        assert!(can(&edit, req("deletecollection", "team", "", "secrets", "", "")));
        assert!(can(&edit, req("create", "team", "", "serviceaccounts", "token", "default")));
        assert!(can(&edit, req("impersonate", "team", "", "serviceaccounts", "", "default")));
        assert!(can(&edit, req("list", "team", "", "serviceaccounts", "", "")), "edit includes view");
        // Since Kubernetes 1.22 (kubernetes#102858) editors may write Events, and read them
        // through view.
        for verb in ["create", "update", "patch", "delete", "deletecollection", "get", "list", "watch"] {
            assert!(can(&edit, req(verb, "team", "", "events", "", "")), "edit can {verb} events");
        }
        assert!(!can(&edit, req("create", "other", "", "events", "", "")), "only in the bound namespace");
        assert!(!can(&edit, req("create", "team", RBAC_GROUP, "roles", "", "")));

        let admin = bound("admin");
        assert!(can(&admin, req("create", "team", RBAC_GROUP, "roles", "", "")));
        assert!(can(&admin, req("delete", "team", RBAC_GROUP, "rolebindings", "", "x")));
        assert!(can(&admin, req("create", "team", "authorization.k8s.io", "localsubjectaccessreviews", "", "")));
        assert!(can(&admin, req("update", "team", "", "secrets", "", "s")), "admin includes edit");
        assert!(can(&admin, req("create", "team", "", "events", "", "")), "admin includes edit");
        assert!(!can(&admin, req("escalate", "team", RBAC_GROUP, "roles", "", "x")));
        assert!(!can(&admin, req("delete", "team", "", "namespaces", "", "team")));

        let root = user("root", &["system:masters"]);
        for a in [
            req("delete", "", "", "namespaces", "", "kube-system"),
            req("escalate", "x", RBAC_GROUP, "clusterroles", "", "y"),
            req("create", "x", "", "serviceaccounts", "token", "y"),
            Attributes::non_resource("post", "/anything/at/all"),
        ] {
            assert!(authorize(&base, &root, &a).allowed, "{a:?}");
        }

        // Every authenticated user may discover the API and review itself; an anonymous user
        // only sees the public endpoints.
        for path in ["/api", "/api/v1", "/apis/rbac.authorization.k8s.io/v1", "/openapi/v3", "/version", "/healthz"] {
            assert!(can(&base, Attributes::non_resource("get", path)), "{path}");
        }
        assert!(!can(&base, Attributes::non_resource("get", "/metrics")));
        assert!(can(&base, req("create", "", "authorization.k8s.io", "selfsubjectaccessreviews", "", "")));
        assert!(can(&base, req("create", "", "authorization.k8s.io", "selfsubjectrulesreviews", "", "")));
        assert!(can(&base, req("create", "", "authentication.k8s.io", "selfsubjectreviews", "", "")));
        assert!(!can(&base, req("get", "default", "", "secrets", "", "s")));
        let anonymous = user("system:anonymous", &["system:unauthenticated"]);
        assert!(authorize(&base, &anonymous, &Attributes::non_resource("get", "/livez")).allowed);
        assert!(!authorize(&base, &anonymous, &Attributes::non_resource("get", "/api")).allowed);
        assert!(
            !authorize(
                &base,
                &anonymous,
                &req("create", "", "authorization.k8s.io", "selfsubjectaccessreviews", "", "")
            )
            .allowed
        );
    }

    #[test]
    fn bootstrap_objects_carry_kubernetes_metadata() {
        let roles = bootstrap_cluster_roles();
        let names: Vec<&str> = roles.iter().filter_map(|r| r["metadata"]["name"].as_str()).collect();
        for want in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:aggregate-to-admin",
            "system:aggregate-to-edit",
            "system:aggregate-to-view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "system:auth-delegator",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        for obj in roles.iter().chain(bootstrap_cluster_role_bindings().iter()) {
            assert_eq!(obj["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
            assert_eq!(obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true");
            assert_eq!(obj["apiVersion"], "rbac.authorization.k8s.io/v1");
        }
        let view = roles.iter().find(|r| r["metadata"]["name"] == "view").unwrap();
        assert_eq!(view["metadata"]["labels"][AGGREGATE_TO_EDIT], "true");
        assert_eq!(view["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"][AGGREGATE_TO_VIEW], "true");
        // Every object decodes into the k8s-openapi types the server stores.
        for r in &roles {
            serde_json::from_value::<ClusterRole>(r.clone()).unwrap();
        }
        let bindings = bootstrap_cluster_role_bindings();
        let piv = bindings.iter().find(|b| b["metadata"]["name"] == "system:public-info-viewer").unwrap();
        assert_eq!(
            piv["subjects"][1],
            json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:unauthenticated"})
        );
        assert_eq!(
            piv["roleRef"],
            json!({"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:public-info-viewer"})
        );
    }
}
