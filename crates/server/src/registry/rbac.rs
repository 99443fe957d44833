//! rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding and ClusterRoleBinding:
//! Kubernetes' `pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/strategy.go`
//! with the v1 defaults (`pkg/apis/rbac/v1/defaults.go`: a binding's `roleRef.apiGroup` and its
//! User and Group subjects' `apiGroup` default to the RBAC group).
//!
//! Each object's rules or role and subjects are also decoded into an [`Access`] when the cache
//! stores it, which is all the authorizer reads.
//!
//! Not here: kube-apiserver's escalation check (a user may only grant what they hold), which
//! belongs to authorization, not to the kind's strategy.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strongroom_api::patch::StrategicSchema;
use strongroom_api::validation::{
    self, RBAC_GROUP, SUBJECT_KIND_GROUP, SUBJECT_KIND_SERVICE_ACCOUNT, SUBJECT_KIND_USER,
};
use strongroom_api::{ErrorList, json};

use super::secret::cannot_handle;
use super::{
    AGE_COLUMN, CREATED_AT_COLUMN, Cell, Column, METADATA_FIELDS, NAME_COLUMN, ResourceInfo, STANDARD_VERBS, Strategy,
};
use crate::object::Access;
use crate::status::ApiError;

const fn rbac_info(
    kind: &'static str,
    list_kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: RBAC_GROUP,
        version: "v1",
        kind,
        list_kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        verbs: STANDARD_VERBS,
        categories: &[],
        // The RBAC stores answer DELETE with a success Status.
        return_deleted_object: false,
        selectable_fields: METADATA_FIELDS,
        subresources: &[],
    }
}

pub static ROLES: ResourceInfo = rbac_info("Role", "RoleList", "roles", "role", true);
pub static CLUSTER_ROLES: ResourceInfo =
    rbac_info("ClusterRole", "ClusterRoleList", "clusterroles", "clusterrole", false);
pub static ROLE_BINDINGS: ResourceInfo =
    rbac_info("RoleBinding", "RoleBindingList", "rolebindings", "rolebinding", true);
pub static CLUSTER_ROLE_BINDINGS: ResourceInfo =
    rbac_info("ClusterRoleBinding", "ClusterRoleBindingList", "clusterrolebindings", "clusterrolebinding", false);

/// Roles have no printer of their own: kube-apiserver's default table convertor prints the name
/// and the creation time.
static ROLE_COLUMNS: [Column; 2] = [NAME_COLUMN, CREATED_AT_COLUMN];

/// `printers.go`'s binding columns; the descriptions of Role are the v1beta1 field docs Kubernetes
/// takes them from.
static ROLE_BINDING_COLUMNS: [Column; 6] = [
    NAME_COLUMN,
    Column {
        name: "Role",
        type_: "string",
        format: "",
        description: "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
        priority: 0,
    },
    AGE_COLUMN,
    Column { name: "Users", type_: "string", format: "", description: "Users in the roleBinding", priority: 1 },
    Column { name: "Groups", type_: "string", format: "", description: "Groups in the roleBinding", priority: 1 },
    Column {
        name: "ServiceAccounts",
        type_: "string",
        format: "",
        description: "ServiceAccounts in the roleBinding",
        priority: 1,
    },
];

static CLUSTER_ROLE_BINDING_COLUMNS: [Column; 6] = [
    NAME_COLUMN,
    Column {
        name: "Role",
        type_: "string",
        format: "",
        description: "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
        priority: 0,
    },
    AGE_COLUMN,
    Column { name: "Users", type_: "string", format: "", description: "Users in the clusterRoleBinding", priority: 1 },
    Column {
        name: "Groups",
        type_: "string",
        format: "",
        description: "Groups in the clusterRoleBinding",
        priority: 1,
    },
    Column {
        name: "ServiceAccounts",
        type_: "string",
        format: "",
        description: "ServiceAccounts in the clusterRoleBinding",
        priority: 1,
    },
];

/// Decodes a request object through its typed model, applies `defaults`, and re-encodes it.
fn normalize_as<T: DeserializeOwned + Serialize>(
    kind: &str,
    obj: Value,
    defaults: impl FnOnce(&mut T),
) -> Result<(Value, Vec<String>), ApiError> {
    let (mut typed, unknown): (T, Vec<String>) = json::decode_strict(obj).map_err(|e| cannot_handle(kind, "v1", e))?;
    defaults(&mut typed);
    let value = serde_json::to_value(&typed).map_err(|e| ApiError::internal(format!("cannot encode {kind}: {e}")))?;
    Ok((value, unknown))
}

/// Objects reaching validation and the cache were produced by `normalize`, so this cannot fail;
/// an empty object would fail validation loudly if it ever did.
fn typed<T: DeserializeOwned + Default>(obj: &Value) -> T {
    serde_json::from_value(obj.clone()).unwrap_or_default()
}

/// `SetDefaults_RoleBinding`, `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`.
fn default_binding(role_ref: &mut RoleRef, subjects: Option<&mut Vec<Subject>>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = RBAC_GROUP.to_string();
    }
    for subject in subjects.into_iter().flatten() {
        if subject.api_group.as_deref().unwrap_or("").is_empty() {
            subject.api_group = match subject.kind.as_str() {
                SUBJECT_KIND_USER | SUBJECT_KIND_GROUP => Some(RBAC_GROUP.to_string()),
                // A ServiceAccount's group stays empty; an unknown kind is left for validation.
                _ => subject.api_group.take(),
            };
        }
    }
}

/// The Created At cell: the creation time as Go's `time.RFC3339` prints it in UTC.
fn created_at(obj: &Value) -> Cell {
    let text = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        // Go's zero time, which is what an unset timestamp prints as.
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    Cell::Value(Value::String(text))
}

/// The binding cells after the name: `Kind/name`, age, then users, groups and ServiceAccounts
/// (`namespace/name`) joined as `rbac.SubjectsStrings` and the printer join them.
fn binding_cells(role_ref: &RoleRef, subjects: &[Subject]) -> Vec<Cell> {
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in subjects {
        match subject.kind.as_str() {
            SUBJECT_KIND_SERVICE_ACCOUNT => {
                service_accounts.push(format!("{}/{}", subject.namespace.as_deref().unwrap_or(""), subject.name))
            }
            SUBJECT_KIND_USER => users.push(subject.name.clone()),
            SUBJECT_KIND_GROUP => groups.push(subject.name.clone()),
            _ => {}
        }
    }
    let text = |s: String| Cell::Value(Value::String(s));
    vec![
        Cell::Name,
        text(format!("{}/{}", role_ref.kind, role_ref.name)),
        Cell::Age,
        text(users.join(", ")),
        text(groups.join(", ")),
        text(service_accounts.join(", ")),
    ]
}

/// Roles, ClusterRoles and bindings hold no map fields and only atomic lists (rules, verbs,
/// subjects), so only the metadata merges.
fn schema() -> StrategicSchema {
    StrategicSchema::object_meta()
}

// ---------------------------------------------------------------------------------------------
// Role

pub struct RoleStrategy {
    schema: StrategicSchema,
}

impl RoleStrategy {
    pub fn new() -> Self {
        RoleStrategy { schema: schema() }
    }
}

impl Default for RoleStrategy {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for RoleStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &ROLES
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        normalize_as::<Role>("Role", obj, |_| {})
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_role(&typed(obj))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_role_update(&typed(new), &typed(old))
    }

    fn fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn columns(&self) -> &'static [Column] {
        &ROLE_COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        vec![Cell::Name, created_at(obj)]
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn access(&self, obj: &Value) -> Option<Access> {
        let role: Role = typed(obj);
        Some(Access::Rules { rules: role.rules.unwrap_or_default().into(), aggregation: None })
    }
}

// ---------------------------------------------------------------------------------------------
// ClusterRole

pub struct ClusterRoleStrategy {
    schema: StrategicSchema,
}

impl ClusterRoleStrategy {
    pub fn new() -> Self {
        ClusterRoleStrategy { schema: schema() }
    }
}

impl Default for ClusterRoleStrategy {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for ClusterRoleStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &CLUSTER_ROLES
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        normalize_as::<ClusterRole>("ClusterRole", obj, |_| {})
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_cluster_role(&typed(obj), false)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_cluster_role_update(&typed(new), &typed(old))
    }

    fn fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn columns(&self) -> &'static [Column] {
        &ROLE_COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        vec![Cell::Name, created_at(obj)]
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn access(&self, obj: &Value) -> Option<Access> {
        let role: ClusterRole = typed(obj);
        let aggregation = role.aggregation_rule.map(|a| a.cluster_role_selectors.unwrap_or_default());
        Some(Access::Rules { rules: role.rules.unwrap_or_default().into(), aggregation })
    }
}

// ---------------------------------------------------------------------------------------------
// RoleBinding

pub struct RoleBindingStrategy {
    schema: StrategicSchema,
}

impl RoleBindingStrategy {
    pub fn new() -> Self {
        RoleBindingStrategy { schema: schema() }
    }
}

impl Default for RoleBindingStrategy {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for RoleBindingStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &ROLE_BINDINGS
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        normalize_as::<RoleBinding>("RoleBinding", obj, |b| default_binding(&mut b.role_ref, b.subjects.as_mut()))
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_role_binding(&typed(obj))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_role_binding_update(&typed(new), &typed(old))
    }

    fn fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn columns(&self) -> &'static [Column] {
        &ROLE_BINDING_COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        let binding: RoleBinding = typed(obj);
        binding_cells(&binding.role_ref, binding.subjects.as_deref().unwrap_or(&[]))
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn access(&self, obj: &Value) -> Option<Access> {
        let binding: RoleBinding = typed(obj);
        Some(Access::Binding { role_ref: binding.role_ref, subjects: binding.subjects.unwrap_or_default().into() })
    }
}

// ---------------------------------------------------------------------------------------------
// ClusterRoleBinding

pub struct ClusterRoleBindingStrategy {
    schema: StrategicSchema,
}

impl ClusterRoleBindingStrategy {
    pub fn new() -> Self {
        ClusterRoleBindingStrategy { schema: schema() }
    }
}

impl Default for ClusterRoleBindingStrategy {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for ClusterRoleBindingStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &CLUSTER_ROLE_BINDINGS
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        normalize_as::<ClusterRoleBinding>("ClusterRoleBinding", obj, |b| {
            default_binding(&mut b.role_ref, b.subjects.as_mut())
        })
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_cluster_role_binding(&typed(obj))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_cluster_role_binding_update(&typed(new), &typed(old))
    }

    fn fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn columns(&self) -> &'static [Column] {
        &CLUSTER_ROLE_BINDING_COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        let binding: ClusterRoleBinding = typed(obj);
        binding_cells(&binding.role_ref, binding.subjects.as_deref().unwrap_or(&[]))
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn access(&self, obj: &Value) -> Option<Access> {
        let binding: ClusterRoleBinding = typed(obj);
        Some(Access::Binding { role_ref: binding.role_ref, subjects: binding.subjects.unwrap_or_default().into() })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::PolicyRule;
    use serde_json::json;
    use strongroom_api::field::aggregate_message;

    use super::*;

    fn value(cell: &Cell) -> &Value {
        match cell {
            Cell::Value(v) => v,
            other => panic!("expected a value cell, got {other:?}"),
        }
    }

    fn role_binding() -> Value {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "readers", "namespace": "app", "creationTimestamp": "2025-01-02T03:04:05Z"},
            "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "app"},
                {"kind": "User", "name": "bob"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
            ],
        })
    }

    #[test]
    fn bindings_default_role_ref_and_subject_groups() {
        let (b, unknown) = RoleBindingStrategy::new().normalize(role_binding()).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(b["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}));
        assert_eq!(b["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(b["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(b["subjects"][2].get("apiGroup").is_none(), "ServiceAccounts keep an empty group: {b}");
        assert!(RoleBindingStrategy::new().validate(&b).is_empty());

        let (cb, _) = ClusterRoleBindingStrategy::new()
            .normalize(json!({
                "metadata": {"name": "view-all"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Group", "name": "auditors"}],
            }))
            .unwrap();
        assert_eq!(cb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(cb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    }

    #[test]
    fn missing_required_fields_reach_validation_with_kubernetes_messages() {
        let s = RoleStrategy::new();
        let (role, unknown) = s
            .normalize(json!({"metadata": {"name": "r", "namespace": "app"}, "rules": [{"resources": ["secrets"]}]}))
            .unwrap();
        assert!(unknown.is_empty());
        assert_eq!(
            aggregate_message(&s.validate(&role)),
            "[rules[0].verbs: Required value: verbs must contain at least one value, rules[0].apiGroups: Required value: resource rules must supply at least one api group]"
        );
        let s = ClusterRoleBindingStrategy::new();
        let (b, _) = s
            .normalize(json!({"metadata": {"name": "b"}, "subjects": [{"kind": "ServiceAccount", "name": "x"}]}))
            .unwrap();
        assert_eq!(
            aggregate_message(&s.validate(&b)),
            "[roleRef.kind: Unsupported value: \"\": supported values: \"ClusterRole\", roleRef.name: Required value, subjects[0].namespace: Required value]"
        );
    }

    #[test]
    fn unknown_fields_are_reported() {
        let (_, unknown) = RoleStrategy::new()
            .normalize(json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "apiGroup": [""]}], "spec": 1}))
            .unwrap();
        assert_eq!(unknown, ["rules[0].apiGroup", "spec"]);
    }

    #[test]
    fn role_ref_change_is_refused_on_update() {
        let s = RoleBindingStrategy::new();
        let (mut old, _) = s.normalize(role_binding()).unwrap();
        old["metadata"]["resourceVersion"] = json!("5");
        let mut new = old.clone();
        new["roleRef"]["name"] = json!("writer");
        assert_eq!(
            aggregate_message(&s.validate_update(&new, &old)),
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"writer\"}: cannot change roleRef"
        );
        new["roleRef"]["name"] = json!("reader");
        new["subjects"] = json!([]);
        assert!(s.validate_update(&new, &old).is_empty());
    }

    #[test]
    fn binding_table_cells_match_kube_apiserver() {
        let s = RoleBindingStrategy::new();
        let (b, _) = s.normalize(role_binding()).unwrap();
        let cells = s.cells(&b);
        assert!(matches!(cells[0], Cell::Name));
        assert_eq!(value(&cells[1]), "Role/reader");
        assert!(matches!(cells[2], Cell::Age));
        assert_eq!(value(&cells[3]), "alice, bob");
        assert_eq!(value(&cells[4]), "devs");
        assert_eq!(value(&cells[5]), "app/builder, tools/ci");
        let names: Vec<(&str, i32)> = s.columns().iter().map(|c| (c.name, c.priority)).collect();
        assert_eq!(names, [("Name", 0), ("Role", 0), ("Age", 0), ("Users", 1), ("Groups", 1), ("ServiceAccounts", 1)]);
        let cs = ClusterRoleBindingStrategy::new();
        assert_eq!(cs.columns()[3].description, "Users in the clusterRoleBinding");
        let (cb, _) = cs
            .normalize(json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"}}))
            .unwrap();
        let cells = cs.cells(&cb);
        assert_eq!(value(&cells[1]), "ClusterRole/view");
        assert_eq!(value(&cells[3]), "");
    }

    #[test]
    fn role_table_prints_created_at_in_rfc3339() {
        let s = RoleStrategy::new();
        let cols: Vec<(&str, &str, &str)> = s.columns().iter().map(|c| (c.name, c.type_, c.format)).collect();
        assert_eq!(cols, [("Name", "string", "name"), ("Created At", "date", "")]);
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2025-01-02T03:04:05Z"}});
        assert_eq!(value(&s.cells(&role)[1]), "2025-01-02T03:04:05Z");
        let fractional = json!({"metadata": {"name": "r", "creationTimestamp": "2025-01-02T03:04:05.123456Z"}});
        assert_eq!(value(&ClusterRoleStrategy::new().cells(&fractional)[1]), "2025-01-02T03:04:05Z");
        assert_eq!(value(&s.cells(&json!({"metadata": {"name": "r"}}))[1]), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn access_holds_rules_and_bindings() {
        let (role, _) = ClusterRoleStrategy::new()
            .normalize(json!({
                "metadata": {"name": "agg"},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/agg": "true"}}]},
            }))
            .unwrap();
        let Some(Access::Rules { rules, aggregation }) = ClusterRoleStrategy::new().access(&role) else {
            panic!("a ClusterRole grants rules")
        };
        assert_eq!(
            *rules,
            [PolicyRule {
                verbs: vec!["get".into()],
                non_resource_urls: Some(vec!["/healthz".into()]),
                ..Default::default()
            }]
        );
        let aggregation = aggregation.expect("aggregation rule is set");
        assert_eq!(aggregation[0].match_labels.as_ref().unwrap()["rbac.example.com/agg"], "true");

        let Some(Access::Rules { aggregation: None, rules }) = RoleStrategy::new().access(&json!({"metadata": {}}))
        else {
            panic!("a Role grants rules and never aggregates")
        };
        assert!(rules.is_empty());

        let (b, _) = RoleBindingStrategy::new().normalize(role_binding()).unwrap();
        let Some(Access::Binding { role_ref, subjects }) = RoleBindingStrategy::new().access(&b) else {
            panic!("a RoleBinding binds")
        };
        assert_eq!(role_ref.kind, "Role");
        assert_eq!(role_ref.api_group, RBAC_GROUP);
        assert_eq!(subjects.len(), 5);
        assert_eq!(subjects[0].api_group.as_deref(), Some(RBAC_GROUP));
    }

    #[test]
    fn infos_match_kube_apiserver_discovery() {
        for (info, namespaced) in
            [(&ROLES, true), (&CLUSTER_ROLES, false), (&ROLE_BINDINGS, true), (&CLUSTER_ROLE_BINDINGS, false)]
        {
            assert_eq!(info.namespaced, namespaced);
            assert_eq!(info.group, "rbac.authorization.k8s.io");
            assert_eq!(info.verbs, STANDARD_VERBS);
            assert!(info.short_names.is_empty());
            assert_eq!(info.list_kind, format!("{}List", info.kind));
            assert_eq!(info.selectable_fields, ["metadata.name", "metadata.namespace"]);
        }
    }
}
