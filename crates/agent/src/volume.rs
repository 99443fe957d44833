//! (being written) What each secret or projected volume of a pod holds.

use std::collections::BTreeMap;

use strongroom_api::SecretBytes;

/// What the agent knows of one Secret (fetched through the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretData {
    pub name: String,
    pub resource_version: String,
    /// `type`, e.g. `Opaque`, `kubernetes.io/dockerconfigjson`.
    pub type_: String,
    pub immutable: bool,
    pub data: BTreeMap<String, SecretBytes>,
}
