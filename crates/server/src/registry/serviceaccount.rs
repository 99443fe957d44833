//! core/v1 ServiceAccount: Kubernetes' `pkg/registry/core/serviceaccount/strategy.go`. Secret
//! references keep only their name (`cleanSecretReferences`), validation is the object metadata
//! with a DNS-subdomain name, and tokens are minted through the `token` subresource (answered by
//! the server, advertised here).

use k8s_openapi::api::core::v1::{ObjectReference, ServiceAccount};
use serde_json::{Value, json};
use strongroom_api::patch::StrategicSchema;
use strongroom_api::{ErrorList, json, validation};

use super::secret::cannot_handle;
use super::{AGE_COLUMN, Cell, Column, METADATA_FIELDS, NAME_COLUMN, ResourceInfo, STANDARD_VERBS, Strategy};
use crate::discovery::Subresource;
use crate::status::ApiError;

/// `serviceaccounts/token`: a POST of an `authentication.k8s.io/v1` TokenRequest mints a token
/// for the ServiceAccount.
pub const TOKEN: Subresource = Subresource {
    name: "token",
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    verbs: &["create"],
};

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ServiceAccount",
    list_kind: "ServiceAccountList",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    namespaced: true,
    short_names: &["sa"],
    verbs: STANDARD_VERBS,
    categories: &[],
    // kube-apiserver's ServiceAccount storage sets ReturnDeletedObject.
    return_deleted_object: true,
    selectable_fields: METADATA_FIELDS,
    subresources: &[TOKEN],
};

/// The name every namespace's own ServiceAccount has.
pub const DEFAULT_NAME: &str = "default";

static COLUMNS: [Column; 3] = [
    NAME_COLUMN,
    Column {
        name: "Secrets",
        type_: "string",
        format: "",
        description: "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
        priority: 0,
    },
    AGE_COLUMN,
];

/// The `default` ServiceAccount of `namespace`, as the ServiceAccounts controller creates it:
/// nothing but its name, in storage form (no `resourceVersion`).
pub fn default_service_account(namespace: &str, uid: String, now_rfc3339: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": DEFAULT_NAME,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": now_rfc3339,
        },
    })
}

pub struct ServiceAccountStrategy {
    schema: StrategicSchema,
}

impl ServiceAccountStrategy {
    pub fn new() -> Self {
        // `secrets` merges by name (patchStrategy=merge, patchMergeKey=name); `imagePullSecrets`
        // is atomic.
        ServiceAccountStrategy { schema: StrategicSchema::object_meta().with_map_list("secrets", "name") }
    }
}

impl Default for ServiceAccountStrategy {
    fn default() -> Self {
        Self::new()
    }
}

fn typed(obj: &Value) -> ServiceAccount {
    // Objects reaching validation were produced by `normalize`, so this cannot fail; an empty
    // object would fail validation loudly if it ever did.
    serde_json::from_value(obj.clone()).unwrap_or_default()
}

/// `cleanSecretReferences`: a secret reference is a name in the ServiceAccount's own namespace;
/// anything else a client put there (another namespace, a uid) is dropped.
fn clean_secret_references(obj: &mut Value) {
    let mut sa = typed(obj);
    let Some(secrets) = sa.secrets.as_mut() else {
        return;
    };
    for secret in secrets.iter_mut() {
        *secret = ObjectReference { name: secret.name.take(), ..Default::default() };
    }
    if let Ok(value) = serde_json::to_value(&sa) {
        *obj = value;
    }
}

impl Strategy for ServiceAccountStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let (sa, unknown): (ServiceAccount, Vec<String>) =
            json::decode_strict(obj).map_err(|e| cannot_handle("ServiceAccount", "v1", e))?;
        let value =
            serde_json::to_value(&sa).map_err(|e| ApiError::internal(format!("cannot encode ServiceAccount: {e}")))?;
        Ok((value, unknown))
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clean_secret_references(obj);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        clean_secret_references(new);
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_service_account(&typed(obj))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_service_account_update(&typed(new), &typed(old))
    }

    fn fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        let secrets = obj.get("secrets").and_then(Value::as_array).map_or(0, Vec::len);
        vec![Cell::Name, Cell::Value(secrets.into()), Cell::Age]
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(obj: Value) -> Value {
        ServiceAccountStrategy::new().normalize(obj).expect("decodes").0
    }

    #[test]
    fn secret_references_keep_only_their_name() {
        let s = ServiceAccountStrategy::new();
        let mut sa = normalized(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": "app"},
            "secrets": [{"name": "tok", "namespace": "other", "uid": "u-1", "kind": "Secret"}, {"name": "b"}],
        }));
        s.prepare_for_create(&mut sa);
        assert_eq!(sa["secrets"], json!([{"name": "tok"}, {"name": "b"}]));
        let mut updated = sa.clone();
        updated["secrets"][1]["namespace"] = json!("x");
        s.prepare_for_update(&mut updated, &sa);
        assert_eq!(updated["secrets"], json!([{"name": "tok"}, {"name": "b"}]));
    }

    #[test]
    fn unknown_fields_are_reported_for_field_validation() {
        let (_, unknown) = ServiceAccountStrategy::new()
            .normalize(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}, "spec": {}}))
            .unwrap();
        assert_eq!(unknown, ["spec"]);
    }

    #[test]
    fn table_has_name_secret_count_and_age() {
        let s = ServiceAccountStrategy::new();
        let columns: Vec<(&str, &str, i32)> = s.columns().iter().map(|c| (c.name, c.type_, c.priority)).collect();
        assert_eq!(columns, [("Name", "string", 0), ("Secrets", "string", 0), ("Age", "string", 0)]);
        let sa = normalized(json!({"metadata": {"name": "a"}, "secrets": [{"name": "x"}, {"name": "y"}]}));
        let cells = s.cells(&sa);
        assert!(matches!(cells[..], [Cell::Name, Cell::Value(ref n), Cell::Age] if *n == json!(2)));
        let cells = s.cells(&normalized(json!({"metadata": {"name": "a"}})));
        assert!(matches!(cells[1], Cell::Value(ref n) if *n == json!(0)));
    }

    #[test]
    fn validation_messages() {
        let s = ServiceAccountStrategy::new();
        let sa = normalized(json!({"metadata": {"name": "Build_er", "namespace": "app"}}));
        let errs = s.validate(&sa);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("metadata.name: Invalid value: \"Build_er\": a lowercase RFC 1123 subdomain")
        );
    }

    #[test]
    fn default_service_account_is_valid_and_named_default() {
        let s = ServiceAccountStrategy::new();
        let sa = default_service_account("app", "uid-1".into(), "2025-01-02T03:04:05Z");
        assert_eq!(sa["metadata"]["name"], "default");
        assert_eq!(sa["metadata"]["namespace"], "app");
        assert_eq!(sa["metadata"]["uid"], "uid-1");
        assert_eq!(sa["metadata"]["creationTimestamp"], "2025-01-02T03:04:05Z");
        let (normalized, unknown) = s.normalize(sa.clone()).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(normalized, sa, "already in canonical form");
        assert!(s.validate(&sa).is_empty());
    }

    #[test]
    fn token_is_advertised_as_a_token_request_subresource() {
        assert_eq!(INFO.subresources, [TOKEN]);
        assert_eq!((TOKEN.group, TOKEN.kind, TOKEN.verbs), ("authentication.k8s.io", "TokenRequest", &["create"][..]));
    }
}
