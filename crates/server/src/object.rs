//! `ServedObject`: an object as the watch cache holds it, ready to serve.
//!
//! Decoding happens once per write, in the cache's applier: the stored plaintext gets its
//! `metadata.resourceVersion`, is re-serialized once, and the few things reads filter and print
//! by (labels, selectable fields, table cells, and for RBAC objects what the authorizer reads)
//! are extracted. Every get, list and watch event then reuses these bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use strongroom_api::SecretBytes;
use strongroom_storage::backend::ObjectKey;
use strongroom_storage::cache::ObjectDecoder;

use crate::registry::{Cell, Registry};

/// What the authorizer needs from an RBAC object, typed and decoded once per write, so that
/// deciding a request never parses JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// A Role's or ClusterRole's rules. `aggregation` is a ClusterRole's
    /// `aggregationRule.clusterRoleSelectors` (`Some` whenever the rule is set, even if empty).
    Rules { rules: Arc<[PolicyRule]>, aggregation: Option<Vec<LabelSelector>> },
    /// A RoleBinding's or ClusterRoleBinding's role and subjects (defaults applied).
    Binding { role_ref: RoleRef, subjects: Arc<[Subject]> },
}

pub struct ServedObject {
    /// The full object JSON, `resourceVersion` included. Holds secret values.
    pub json: SecretBytes,
    pub name: String,
    pub namespace: Option<String>,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Values of the kind's selectable fields.
    pub fields: Vec<(&'static str, String)>,
    /// `metadata` as JSON (for `PartialObjectMetadata` rows); never holds values of `data`.
    pub metadata_json: Box<str>,
    pub cells: Vec<Cell>,
    /// `creationTimestamp` in Unix seconds.
    pub created: Option<i64>,
    /// `metadata.deletionTimestamp` is set (a namespace being terminated).
    pub deleting: bool,
    /// Rules or bindings for the authorizer; `None` for kinds that grant nothing.
    pub access: Option<Arc<Access>>,
}

impl std::fmt::Debug for ServedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedObject").field("namespace", &self.namespace).field("name", &self.name).finish()
    }
}

impl ServedObject {
    /// The object as a JSON value (parsing the served bytes).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(self.json.expose()).unwrap_or(Value::Null)
    }

    /// The object as `PartialObjectMetadata`: metadata only, never values.
    pub fn partial_metadata_json(&self) -> String {
        format!(r#"{{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{}}}"#, self.metadata_json)
    }

    /// The value of a field selector's field.
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone().unwrap_or_default()),
            other => self.fields.iter().find(|(k, _)| *k == other).map(|(_, v)| v.clone()),
        }
    }
}

pub struct Decoder {
    pub registry: Arc<Registry>,
}

pub fn parse_timestamp(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

impl ObjectDecoder<ServedObject> for Decoder {
    fn decode(&self, key: &ObjectKey, revision: u64, plaintext: SecretBytes) -> Result<ServedObject, String> {
        let strategy = self
            .registry
            .for_storage_resource(key.resource())
            .ok_or_else(|| format!("no kind is served for {}", key.resource()))?;
        let mut value: Value =
            serde_json::from_slice(plaintext.expose()).map_err(|e| format!("stored object is not JSON: {e}"))?;
        let meta = value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| "stored object has no metadata".to_string())?;
        meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
        let meta = Value::Object(meta.clone());
        let str_of = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let json = serde_json::to_vec(&value).map_err(|e| format!("cannot encode object: {e}"))?;
        Ok(ServedObject {
            name: str_of("name").unwrap_or_default(),
            namespace: str_of("namespace"),
            uid: str_of("uid").unwrap_or_default(),
            labels,
            fields: strategy.fields(&value),
            metadata_json: serde_json::to_string(&meta).unwrap_or_default().into_boxed_str(),
            cells: strategy.cells(&value),
            created: str_of("creationTimestamp").as_deref().and_then(parse_timestamp),
            deleting: meta.get("deletionTimestamp").is_some_and(|v| !v.is_null()),
            access: strategy.access(&value).map(Arc::new),
            json: SecretBytes::new(json),
        })
    }

    fn weight(&self, object: &ServedObject) -> usize {
        object.json.len() + object.metadata_json.len() + object.name.len() + 256
    }
}
