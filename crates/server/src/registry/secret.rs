//! core/v1 Secret: Kubernetes' `pkg/registry/core/secret/strategy.go`, plus one safety rule
//! Kubernetes lacks: values inside `kubectl.kubernetes.io/last-applied-configuration` are replaced
//! by keyed digests, so the annotation never holds plaintext (kubernetes#23564).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use strongroom_api::managed_fields::LastApplied;
use strongroom_api::patch::{DIGEST_PREFIX, StrategicSchema, redact_last_applied};
use strongroom_api::secret::{self, Secret};
use strongroom_api::{ErrorList, json, validation};
use zeroize::Zeroizing;

use super::{AGE_COLUMN, Cell, Column, NAME_COLUMN, ResourceInfo, STANDARD_VERBS, Strategy};
use crate::status::ApiError;

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Secret",
    list_kind: "SecretList",
    plural: "secrets",
    singular: "secret",
    namespaced: true,
    short_names: &[],
    verbs: STANDARD_VERBS,
    categories: &[],
    return_deleted_object: false,
    selectable_fields: &["metadata.name", "metadata.namespace", "type"],
    subresources: &[],
};

static COLUMNS: [Column; 4] = [
    NAME_COLUMN,
    Column { name: "Type", type_: "string", format: "", description: "", priority: 0 },
    Column { name: "Data", type_: "integer", format: "", description: "", priority: 0 },
    AGE_COLUMN,
];

/// The key of the digests that replace values in the last-applied annotation. Keyed, so a digest
/// of a short password cannot be reversed by guessing from a metadata-only view.
#[derive(Clone)]
pub struct DigestKey(Zeroizing<[u8; 32]>);

impl DigestKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        DigestKey(Zeroizing::new(bytes))
    }

    fn digest(&self, key: &str, value: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()).expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let out = mac.finalize().into_bytes();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        format!("{DIGEST_PREFIX}hmac-sha256:{hex}")
    }
}

type Digest = Box<dyn Fn(&str, &[u8]) -> String + Send + Sync>;

pub struct SecretStrategy {
    digest: Digest,
    schema: StrategicSchema,
}

impl SecretStrategy {
    pub fn new(digest_key: DigestKey) -> Self {
        SecretStrategy { digest: Box::new(move |k, v| digest_key.digest(k, v)), schema: StrategicSchema::secret() }
    }
}

fn typed(obj: &Value) -> Secret {
    // Objects reaching validation were produced by `normalize`, so this cannot fail; an empty
    // Secret would fail validation loudly if it ever did.
    serde_json::from_value(obj.clone()).unwrap_or_default()
}

/// The error Kubernetes returns when a body does not decode as the kind.
pub fn cannot_handle(kind: &str, version: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {err}"))
}

impl Strategy for SecretStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let (mut s, unknown): (Secret, Vec<String>) =
            json::decode_strict(obj).map_err(|e| cannot_handle("Secret", "v1", e))?;
        s.fold_string_data();
        if s.type_.as_deref().unwrap_or("").is_empty() {
            s.type_ = Some(secret::TYPE_OPAQUE.to_string());
        }
        if let Some(annotations) = s.metadata.annotations.as_mut()
            && let Some(applied) = annotations.get(LAST_APPLIED)
        {
            // An annotation that is not the JSON kubectl writes cannot be redacted, so it is not
            // kept at all: it could hold anything.
            match redact_last_applied(applied, &self.digest) {
                Ok(redacted) => {
                    annotations.insert(LAST_APPLIED.to_string(), redacted);
                }
                Err(_) => {
                    annotations.remove(LAST_APPLIED);
                }
            }
        }
        let value = serde_json::to_value(&s).map_err(|e| ApiError::internal(format!("cannot encode Secret: {e}")))?;
        Ok((value, unknown))
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        validation::validate_secret(&typed(obj))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        validation::validate_secret_update(&typed(new), &typed(old))
    }

    fn fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("type", obj.get("type").and_then(Value::as_str).unwrap_or(secret::TYPE_OPAQUE).to_string())]
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        let type_ = obj.get("type").and_then(Value::as_str).unwrap_or(secret::TYPE_OPAQUE);
        let data = obj.get("data").and_then(Value::as_object).map(|m| m.len()).unwrap_or(0);
        vec![Cell::Name, Cell::Value(type_.into()), Cell::Value(data.into()), Cell::Age]
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }

    fn last_applied(&self) -> LastApplied<'_> {
        LastApplied::Redacted(&self.digest)
    }

    fn value_fields(&self) -> &'static [&'static str] {
        &["data", "stringData"]
    }
}
