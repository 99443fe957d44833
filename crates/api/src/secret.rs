//! The core/v1 Secret, with values held as [`SecretBytes`].
//!
//! `k8s-openapi`'s `Secret` keeps values in a `ByteString` whose `Debug` prints them; this type
//! serializes to exactly the same JSON but never shows a value.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::SecretBytes;

pub const API_VERSION: &str = "v1";
pub const KIND: &str = "Secret";

/// The largest total size of all values of one Secret (`MaxSecretSize` in Kubernetes).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

pub const TYPE_OPAQUE: &str = "Opaque";
pub const TYPE_SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
pub const TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const TYPE_BASIC_AUTH: &str = "kubernetes.io/basic-auth";
pub const TYPE_SSH_AUTH: &str = "kubernetes.io/ssh-auth";
pub const TYPE_TLS: &str = "kubernetes.io/tls";
pub const TYPE_BOOTSTRAP_TOKEN: &str = "bootstrap.kubernetes.io/token";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, SecretBytes>>,
    /// Write-only: folded into `data` by the server, never stored or returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_data: Option<BTreeMap<String, StringDataValue>>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// A `stringData` value: plain text that is a secret value all the same.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StringDataValue(String);

impl StringDataValue {
    pub fn new(s: String) -> Self {
        StringDataValue(s)
    }
    pub fn into_bytes(mut self) -> SecretBytes {
        SecretBytes::new(std::mem::take(&mut self.0).into_bytes())
    }
}

impl Drop for StringDataValue {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for StringDataValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StringDataValue(<redacted {} bytes>)", self.0.len())
    }
}

impl Secret {
    /// The effective type: `Opaque` when unset or empty, as Kubernetes defaults it.
    pub fn effective_type(&self) -> &str {
        match self.type_.as_deref() {
            None | Some("") => TYPE_OPAQUE,
            Some(t) => t,
        }
    }

    /// Folds `stringData` into `data` (a `stringData` key wins) and clears it, as the apiserver
    /// does on every create and update.
    pub fn fold_string_data(&mut self) {
        if let Some(string_data) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in string_data {
                data.insert(k, v.into_bytes());
            }
        }
    }

    pub fn is_immutable(&self) -> bool {
        self.immutable == Some(true)
    }

    /// Total size of all values, the quantity the 1 MiB limit applies to.
    pub fn data_size(&self) -> usize {
        self.data.as_ref().map(|d| d.values().map(SecretBytes::len).sum()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_kubernetes_shape() {
        let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"app"},"data":{"password":"UyFCXCpkJHpEc2I9"},"type":"Opaque"}"#;
        let s: Secret = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), json);
        assert!(!format!("{s:?}").contains("S!B"));
    }

    #[test]
    fn string_data_wins_and_is_cleared() {
        let mut s: Secret =
            serde_json::from_str(r#"{"metadata":{"name":"x"},"data":{"a":"b2xk"},"stringData":{"a":"new","b":"two"}}"#)
                .unwrap();
        s.fold_string_data();
        assert!(s.string_data.is_none());
        let data = s.data.unwrap();
        assert_eq!(data["a"].expose(), b"new");
        assert_eq!(data["b"].expose(), b"two");
    }
}
