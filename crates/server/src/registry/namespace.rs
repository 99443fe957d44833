//! core/v1 Namespace: Kubernetes' `pkg/registry/core/namespace/strategy.go`. New namespaces are
//! `Active` with the `kubernetes` finalizer; deleting one marks it `Terminating` while the server
//! deletes what it holds (see `crate::rest::delete_namespace`).

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use serde_json::Value;
use strongroom_api::patch::StrategicSchema;
use strongroom_api::{ErrorList, json, validation};

use super::secret::cannot_handle;
use super::{AGE_COLUMN, Cell, Column, NAME_COLUMN, ResourceInfo, Strategy};
use crate::status::ApiError;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    list_kind: "NamespaceList",
    plural: "namespaces",
    singular: "namespace",
    namespaced: false,
    short_names: &["ns"],
    verbs: &["create", "delete", "get", "list", "patch", "update", "watch"],
    categories: &[],
    return_deleted_object: true,
    selectable_fields: &["metadata.name", "status.phase"],
    subresources: &[],
};

static COLUMNS: [Column; 3] = [
    NAME_COLUMN,
    Column { name: "Status", type_: "string", format: "", description: "The status of the namespace", priority: 0 },
    AGE_COLUMN,
];

pub const PHASE_ACTIVE: &str = "Active";
pub const PHASE_TERMINATING: &str = "Terminating";
pub const FINALIZER: &str = "kubernetes";
/// Set on every namespace to its name, so label selectors can pick namespaces by name
/// (kube-apiserver does the same since 1.22).
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn set_name_label(ns: &mut Namespace) {
    let name = ns.metadata.name.clone().unwrap_or_default();
    ns.metadata.labels.get_or_insert_with(Default::default).insert(NAME_LABEL.to_string(), name);
}

pub struct NamespaceStrategy {
    schema: StrategicSchema,
}

impl NamespaceStrategy {
    pub fn new() -> Self {
        NamespaceStrategy { schema: StrategicSchema::default() }
    }
}

impl Default for NamespaceStrategy {
    fn default() -> Self {
        Self::new()
    }
}

fn typed(obj: &Value) -> Namespace {
    serde_json::from_value(obj.clone()).unwrap_or_default()
}

pub fn phase(obj: &Value) -> &str {
    obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or(PHASE_ACTIVE)
}

impl Strategy for NamespaceStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let (ns, unknown): (Namespace, Vec<String>) =
            json::decode_strict(obj).map_err(|e| cannot_handle("Namespace", "v1", e))?;
        let value =
            serde_json::to_value(&ns).map_err(|e| ApiError::internal(format!("cannot encode Namespace: {e}")))?;
        Ok((value, unknown))
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let mut ns = typed(obj);
        ns.status = Some(NamespaceStatus { phase: Some(PHASE_ACTIVE.into()), ..Default::default() });
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.into());
        }
        set_name_label(&mut ns);
        *obj = serde_json::to_value(&ns).unwrap_or_else(|_| obj.clone());
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // Status and spec.finalizers change only through the server's own lifecycle handling.
        let old = typed(old);
        let mut ns = typed(new);
        ns.status = old.status;
        ns.spec = old.spec;
        set_name_label(&mut ns);
        *new = serde_json::to_value(&ns).unwrap_or_else(|_| new.clone());
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_namespace(&typed(obj))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_namespace_update(&typed(new), &typed(old))
    }

    fn fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("status.phase", phase(obj).to_string())]
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        vec![Cell::Name, Cell::Value(phase(obj).into()), Cell::Age]
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }
}
