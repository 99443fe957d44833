//! What each secret or projected volume of a pod holds, as the kubelet computes it.
//!
//! Pure functions of a Pod, the Secrets the agent has read (by name, in the pod's namespace)
//! and the service account tokens it holds: no I/O, no clock. The semantics follow the
//! kubelet's secret volume (`MakePayload`), projected volume (`collectData`) and
//! `SetVolumeOwnership`; see docs/design/agent-directory.md, "Modes and ownership".
//!
//! Architecture invariant: an error names the volume, the Secret and the key, never a value.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, KeyToPath, Pod, Volume, VolumeMount};
use strongroom_api::SecretBytes;
use strongroom_api::field::go_quote;
use strongroom_api::validation::{is_dns1123_label, is_dns1123_subdomain};

use crate::atomic_writer::{FileProjection, Payload};

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

/// One service account token a projected volume needs: the agent requests one per distinct
/// spec and hands it back to [`volume_payload`] under the same spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenRequestSpec {
    /// `serviceAccountToken.audience`; `None` (the API server's own audiences) when empty.
    pub audience: Option<String>,
    /// `serviceAccountToken.expirationSeconds`, 3600 when unset (the API server's default).
    pub expiration_seconds: i64,
}

/// The API server's default for `serviceAccountToken.expirationSeconds`.
const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest token lifetime the API server accepts in a projection (ten minutes).
const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// The longest token lifetime the API server accepts in a projection (2^32 seconds).
const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The API server's default for `defaultMode` of secret and projected volumes.
const DEFAULT_MODE: u32 = 0o644;
/// The mode the kubelet gives a token file when it sets an owner or group: only that owner
/// (and, through the group bits `SetVolumeOwnership` adds, the fsGroup) may read it.
const TOKEN_MODE_WITH_OWNER: u32 = 0o600;
/// What `SetVolumeOwnership` ORs into the mode of every file of a read-only volume (secret and
/// projected volumes are) when the pod has an fsGroup (`roMask`).
const FS_GROUP_READ_MASK: u32 = 0o440;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// The kubelet's FailedMount wording for a missing non-optional Secret.
    #[error("secret {} not found", go_quote(name))]
    SecretNotFound { namespace: String, name: String },
    /// An item names a key the Secret does not have (the kubelet's wording).
    #[error("references non-existent secret key: {key}")]
    MissingKey { secret: String, key: String },
    #[error("volume {} not found in the pod", go_quote(volume))]
    VolumeNotFound { volume: String },
    #[error("volume {}: {kind} is not supported by the agent", go_quote(volume))]
    Unsupported { volume: String, kind: String },
    /// The agent has not (yet) obtained the token a `serviceAccountToken` source needs.
    #[error("volume {}: no service account token for path {}", go_quote(volume), go_quote(path))]
    TokenUnavailable { volume: String, path: String },
    /// The API server's validation would have refused the pod.
    #[error("{field}: {reason}")]
    InvalidPod { field: String, reason: String },
    /// Several sources of a projected volume failed, joined as the kubelet's aggregate error.
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<VolumeError>),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> VolumeError {
    VolumeError::InvalidPod { field: field.into(), reason: reason.into() }
}

/// The pod's namespace; a manifest without one lives in `default`, as with kubectl.
pub(crate) fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

/// The parts of a container (init, regular or ephemeral) the agent reads, so each rule is
/// written once for the three kinds.
pub(crate) struct ContainerView<'a> {
    /// Field path of the container, e.g. `spec.initContainers[0]`.
    pub field: String,
    pub name: &'a str,
    pub env: &'a [EnvVar],
    pub env_from: &'a [EnvFromSource],
    pub volume_mounts: &'a [VolumeMount],
    pub run_as_user: Option<i64>,
}

/// Every container of the pod in the kubelet's visiting order: init, regular, ephemeral.
pub(crate) fn containers(pod: &Pod) -> Vec<ContainerView<'_>> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    let mut out = Vec::new();
    let regular =
        [("initContainers", spec.init_containers.as_deref().unwrap_or_default()), ("containers", &spec.containers)];
    for (kind, list) in regular {
        for (i, c) in list.iter().enumerate() {
            out.push(ContainerView {
                field: format!("spec.{kind}[{i}]"),
                name: &c.name,
                env: c.env.as_deref().unwrap_or_default(),
                env_from: c.env_from.as_deref().unwrap_or_default(),
                volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
                run_as_user: c.security_context.as_ref().and_then(|s| s.run_as_user),
            });
        }
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push(ContainerView {
            field: format!("spec.ephemeralContainers[{i}]"),
            name: &c.name,
            env: c.env.as_deref().unwrap_or_default(),
            env_from: c.env_from.as_deref().unwrap_or_default(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            run_as_user: c.security_context.as_ref().and_then(|s| s.run_as_user),
        });
    }
    out
}

fn volumes(pod: &Pod) -> &[Volume] {
    pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default()
}

/// Every reference to a Secret by name, with the field that makes it (empty names included,
/// so validation can refuse them).
fn secret_references(pod: &Pod) -> Vec<(String, &str)> {
    let mut refs = Vec::new();
    for (i, volume) in volumes(pod).iter().enumerate() {
        if let Some(secret) = &volume.secret {
            refs.push((format!("spec.volumes[{i}].secret.secretName"), secret.secret_name.as_deref().unwrap_or("")));
        }
        if let Some(projected) = &volume.projected {
            for (j, source) in projected.sources.iter().flatten().enumerate() {
                if let Some(secret) = &source.secret {
                    refs.push((format!("spec.volumes[{i}].projected.sources[{j}].secret.name"), secret.name.as_str()));
                }
            }
        }
    }
    for c in containers(pod) {
        for (i, var) in c.env.iter().enumerate() {
            if let Some(r) = var.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()) {
                refs.push((format!("{}.env[{i}].valueFrom.secretKeyRef.name", c.field), r.name.as_str()));
            }
        }
        for (i, from) in c.env_from.iter().enumerate() {
            if let Some(r) = &from.secret_ref {
                refs.push((format!("{}.envFrom[{i}].secretRef.name", c.field), r.name.as_str()));
            }
        }
    }
    let pull_secrets = pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_deref()).unwrap_or_default();
    for (i, r) in pull_secrets.iter().enumerate() {
        refs.push((format!("spec.imagePullSecrets[{i}].name"), r.name.as_str()));
    }
    refs
}

/// Every Secret the pod references: secret volumes, projected secret sources, `secretKeyRef`
/// and `envFrom` of every container, and `imagePullSecrets`. These, and only these, are the
/// Secrets the agent reads for the pod.
pub fn referenced_secrets(pod: &Pod) -> BTreeSet<String> {
    secret_references(pod).into_iter().filter(|(_, n)| !n.is_empty()).map(|(_, n)| n.to_string()).collect()
}

/// The service account tokens the pod's projected volumes need.
pub fn token_requests(pod: &Pod) -> BTreeSet<TokenRequestSpec> {
    volumes(pod)
        .iter()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| TokenRequestSpec {
            audience: t.audience.clone().filter(|a| !a.is_empty()),
            expiration_seconds: t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS),
        })
        .collect()
}

/// The volumes the agent writes (secret and projected ones), in the pod's order.
pub fn secret_volumes(pod: &Pod) -> Vec<String> {
    volumes(pod).iter().filter(|v| v.secret.is_some() || v.projected.is_some()).map(|v| v.name.clone()).collect()
}

/// The volume's kind as the pod spells it (`emptyDir`, `configMap`, …): the first field set
/// besides `name`.
fn volume_kind(volume: &Volume) -> String {
    match serde_json::to_value(volume) {
        Ok(serde_json::Value::Object(fields)) => fields
            .keys()
            .find(|k| k.as_str() != "name")
            .cloned()
            .unwrap_or_else(|| "a volume without a source".to_string()),
        _ => "this volume".to_string(),
    }
}

/// A mode field (`defaultMode`, `items[].mode`) as the API server accepts it: 0 to 0777, so no
/// setuid, setgid or sticky bit.
fn file_mode(mode: Option<i32>, field: impl FnOnce() -> String) -> Result<Option<u32>, VolumeError> {
    match mode {
        None => Ok(None),
        Some(m) => match u32::try_from(m) {
            Ok(m) if m <= 0o777 => Ok(Some(m)),
            _ => Err(invalid(
                field(),
                format!("Invalid value: {m}: must be a number between 0 and 0777 (octal), both inclusive"),
            )),
        },
    }
}

/// A relative file path inside a volume (`items[].path`, a token's `path`), with the API
/// server's rules: not absolute, no `..` element, not starting with `..` (the atomic writer's
/// own names), not empty.
fn check_item_path(path: &str, field: &str) -> Result<(), VolumeError> {
    let reason = if path.is_empty() {
        Some("Required value")
    } else if path.starts_with('/') {
        Some("must be a relative path")
    } else if path.split('/').any(|e| e == "..") {
        Some("must not contain '..'")
    } else if path.starts_with("..") {
        Some("must not start with '..'")
    } else if path.contains('\0') {
        Some("must not contain a NUL byte")
    } else {
        None
    };
    match reason {
        Some(r) => Err(invalid(field, format!("Invalid value: {}: {r}", go_quote(path)))),
        None => Ok(()),
    }
}

fn check_secret_name(name: &str, field: &str) -> Result<(), VolumeError> {
    if name.is_empty() {
        return Err(invalid(field, "Required value"));
    }
    let errs = is_dns1123_subdomain(name);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(field, format!("Invalid value: {}: {}", go_quote(name), errs.join("; "))))
    }
}

/// Checks `items` and records their paths, refusing a path given twice (the API server's
/// `conflicting duplicate paths`: a later item would silently replace an earlier one).
fn check_items(items: &[KeyToPath], field: &str, paths: &mut BTreeSet<String>) -> Result<(), VolumeError> {
    for (k, item) in items.iter().enumerate() {
        if item.key.is_empty() {
            return Err(invalid(format!("{field}[{k}].key"), "Required value"));
        }
        check_item_path(&item.path, &format!("{field}[{k}].path"))?;
        file_mode(item.mode, || format!("{field}[{k}].mode"))?;
        if !paths.insert(item.path.clone()) {
            return Err(invalid(
                format!("{field}[{k}].path"),
                format!("Invalid value: {}: conflicting duplicate paths", go_quote(&item.path)),
            ));
        }
    }
    Ok(())
}

/// What the API server's validation checks of one volume, for the parts the agent relies on.
fn check_volume(index: usize, volume: &Volume) -> Result<(), VolumeError> {
    let field = format!("spec.volumes[{index}]");
    let errs = is_dns1123_label(&volume.name);
    if !errs.is_empty() {
        return Err(invalid(
            format!("{field}.name"),
            format!("Invalid value: {}: {}", go_quote(&volume.name), errs.join("; ")),
        ));
    }
    if let Some(secret) = &volume.secret {
        check_secret_name(secret.secret_name.as_deref().unwrap_or(""), &format!("{field}.secret.secretName"))?;
        file_mode(secret.default_mode, || format!("{field}.secret.defaultMode"))?;
        check_items(
            secret.items.as_deref().unwrap_or_default(),
            &format!("{field}.secret.items"),
            &mut BTreeSet::new(),
        )?;
    }
    if let Some(projected) = &volume.projected {
        file_mode(projected.default_mode, || format!("{field}.projected.defaultMode"))?;
        let mut paths = BTreeSet::new();
        for (j, source) in projected.sources.iter().flatten().enumerate() {
            let source_field = format!("{field}.projected.sources[{j}]");
            if let Some(secret) = &source.secret {
                check_secret_name(&secret.name, &format!("{source_field}.secret.name"))?;
                check_items(
                    secret.items.as_deref().unwrap_or_default(),
                    &format!("{source_field}.secret.items"),
                    &mut paths,
                )?;
            }
            if let Some(token) = &source.service_account_token {
                let path_field = format!("{source_field}.serviceAccountToken.path");
                check_item_path(&token.path, &path_field)?;
                if !paths.insert(token.path.clone()) {
                    return Err(invalid(
                        path_field,
                        format!("Invalid value: {}: conflicting duplicate paths", go_quote(&token.path)),
                    ));
                }
                let seconds = token.expiration_seconds.unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS);
                let expiration_field = format!("{source_field}.serviceAccountToken.expirationSeconds");
                if seconds < MIN_TOKEN_EXPIRATION_SECONDS {
                    return Err(invalid(
                        expiration_field,
                        format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
                    ));
                }
                if seconds > MAX_TOKEN_EXPIRATION_SECONDS {
                    return Err(invalid(
                        expiration_field,
                        format!("Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_id(value: Option<i64>, field: &str) -> Result<Option<u32>, VolumeError> {
    match value {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| invalid(field, format!("Invalid value: {v}: must be between 0 and 4294967295, inclusive"))),
    }
}

/// Refuses a pod whose names could not safely become path elements, or that the API server
/// would have refused in ways the agent depends on: namespace a DNS label, name a DNS
/// subdomain, volume names unique DNS labels, Secret names DNS subdomains, item paths relative
/// without `..` and unique, modes at most 0777, every `volumeMount` naming a volume, `subPath`
/// relative without `..`, ids within 32 bits.
pub fn validate_pod(pod: &Pod) -> Result<(), VolumeError> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        return Err(invalid("metadata.name", "Required value: name or generateName is required"));
    }
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return Err(invalid("metadata.name", format!("Invalid value: {}: {}", go_quote(name), errs.join("; "))));
    }
    if let Some(namespace) = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()) {
        let errs = is_dns1123_label(namespace);
        if !errs.is_empty() {
            return Err(invalid(
                "metadata.namespace",
                format!("Invalid value: {}: {}", go_quote(namespace), errs.join("; ")),
            ));
        }
    }
    let mut volume_names = BTreeSet::new();
    for (i, volume) in volumes(pod).iter().enumerate() {
        check_volume(i, volume)?;
        if !volume_names.insert(volume.name.as_str()) {
            return Err(invalid(
                format!("spec.volumes[{i}].name"),
                format!("Duplicate value: {}", go_quote(&volume.name)),
            ));
        }
    }
    for (field, secret) in secret_references(pod) {
        // The API server lets an `imagePullSecrets` entry have an empty name; the kubelet
        // ignores it, and so does the agent.
        if secret.is_empty() && field.starts_with("spec.imagePullSecrets") {
            continue;
        }
        check_secret_name(secret, &field)?;
    }
    let managed: BTreeSet<String> = secret_volumes(pod).into_iter().collect();
    for c in containers(pod) {
        for (m, mount) in c.volume_mounts.iter().enumerate() {
            let field = format!("{}.volumeMounts[{m}]", c.field);
            if !volume_names.contains(mount.name.as_str()) {
                return Err(invalid(format!("{field}.name"), format!("Not found: {}", go_quote(&mount.name))));
            }
            if let Some(sub_path) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                let reason = if sub_path.starts_with('/') {
                    Some("must be a relative path")
                } else if sub_path.split('/').any(|e| e == "..") {
                    Some("must not contain '..'")
                } else if sub_path.contains('\0') {
                    Some("must not contain a NUL byte")
                } else {
                    None
                };
                if let Some(r) = reason {
                    return Err(invalid(
                        format!("{field}.subPath"),
                        format!("Invalid value: {}: {r}", go_quote(sub_path)),
                    ));
                }
            }
            // The agent cannot expand `subPathExpr` (it needs the container's environment at
            // mount time), and linking the whole volume instead would be silently wrong.
            if mount.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) && managed.contains(&mount.name) {
                return Err(invalid(
                    format!("{field}.subPathExpr"),
                    "Unsupported value: subPathExpr is not supported by the agent",
                ));
            }
        }
        check_id(c.run_as_user, &format!("{}.securityContext.runAsUser", c.field))?;
    }
    let security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    check_id(security.and_then(|s| s.run_as_user), "spec.securityContext.runAsUser")?;
    check_id(security.and_then(|s| s.fs_group), "spec.securityContext.fsGroup")?;
    Ok(())
}

/// Who owns the files of a volume: `gid` is the pod's fsGroup (as `SetVolumeOwnership`);
/// `uid` is the user the containers mounting the volume run as, when they all run as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ownership {
    uid: Option<u32>,
    gid: Option<u32>,
}

/// The kubelet's `FsUserFrom` (which owns projected token files), narrowed to the containers
/// that mount the volume: each one's effective `runAsUser` (its own, else the pod's); when
/// they all have one and agree, that user, otherwise none. A volume no container mounts takes
/// the pod's `runAsUser`.
fn ownership(pod: &Pod, volume_name: &str) -> Result<Ownership, VolumeError> {
    let security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let pod_user = check_id(security.and_then(|s| s.run_as_user), "spec.securityContext.runAsUser")?;
    let gid = check_id(security.and_then(|s| s.fs_group), "spec.securityContext.fsGroup")?;
    let mut users = Vec::new();
    for c in containers(pod) {
        if c.volume_mounts.iter().any(|m| m.name == volume_name) {
            users.push(check_id(c.run_as_user, &format!("{}.securityContext.runAsUser", c.field))?.or(pod_user));
        }
    }
    let uid = match users.split_first() {
        None => pod_user,
        Some((first, rest)) if rest.iter().all(|u| u == first) => *first,
        Some(_) => None,
    };
    Ok(Ownership { uid, gid })
}

/// One file before ownership is applied.
struct File {
    data: SecretBytes,
    mode: u32,
}

/// The kubelet's `MakePayload`: every key at its own name with `default_mode` when there are
/// no items, otherwise only the items, at their paths, with their modes. An item whose key is
/// missing is an error unless the source is optional.
fn project_secret(
    secret: Option<&SecretData>,
    secret_name: &str,
    items: &[KeyToPath],
    default_mode: u32,
    optional: bool,
    files: &mut BTreeMap<String, File>,
) -> Result<(), VolumeError> {
    let empty = BTreeMap::new();
    let data = secret.map(|s| &s.data).unwrap_or(&empty);
    if items.is_empty() {
        for (key, value) in data {
            files.insert(key.clone(), File { data: value.clone(), mode: default_mode });
        }
        return Ok(());
    }
    for item in items {
        let Some(value) = data.get(&item.key) else {
            if optional {
                continue;
            }
            return Err(VolumeError::MissingKey { secret: secret_name.to_string(), key: item.key.clone() });
        };
        // `check_volume` has already refused modes outside 0..=0777.
        let mode = item.mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(default_mode);
        files.insert(item.path.clone(), File { data: value.clone(), mode });
    }
    Ok(())
}

/// Looks a Secret up by name; a missing one is an error unless the source is optional.
fn lookup<'a>(
    secrets: &'a BTreeMap<String, SecretData>,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<&'a SecretData>, VolumeError> {
    match secrets.get(name) {
        Some(s) => Ok(Some(s)),
        None if optional => Ok(None),
        None => Err(VolumeError::SecretNotFound { namespace: namespace.to_string(), name: name.to_string() }),
    }
}

/// What the volume `volume_name` of `pod` holds: relative path → bytes, mode and owner.
///
/// `secrets` holds the Secrets of the pod's namespace the agent has read, by name; a name
/// missing from it does not exist. `tokens` holds the service account tokens obtained for the
/// specs [`token_requests`] returned.
pub fn volume_payload(
    pod: &Pod,
    volume_name: &str,
    secrets: &BTreeMap<String, SecretData>,
    tokens: &BTreeMap<TokenRequestSpec, SecretBytes>,
) -> Result<Payload, VolumeError> {
    let namespace = pod_namespace(pod);
    let (index, volume) = volumes(pod)
        .iter()
        .enumerate()
        .find(|(_, v)| v.name == volume_name)
        .ok_or_else(|| VolumeError::VolumeNotFound { volume: volume_name.to_string() })?;
    check_volume(index, volume)?;
    let owner = ownership(pod, volume_name)?;
    let mut files: BTreeMap<String, File> = BTreeMap::new();
    if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or("");
        let optional = source.optional.unwrap_or(false);
        let default_mode = file_mode(source.default_mode, String::new)?.unwrap_or(DEFAULT_MODE);
        let secret = lookup(secrets, namespace, name, optional)?;
        project_secret(secret, name, source.items.as_deref().unwrap_or_default(), default_mode, optional, &mut files)?;
    } else if let Some(projected) = &volume.projected {
        let default_mode = file_mode(projected.default_mode, String::new)?.unwrap_or(DEFAULT_MODE);
        // As the kubelet's `collectData`: every source is tried and the failures are reported
        // together, so one FailedMount names everything that is missing.
        let mut errors = Vec::new();
        for source in projected.sources.iter().flatten() {
            let unsupported =
                |kind: &str| VolumeError::Unsupported { volume: volume_name.to_string(), kind: kind.to_string() };
            if let Some(s) = &source.secret {
                let optional = s.optional.unwrap_or(false);
                let projected = lookup(secrets, namespace, &s.name, optional).and_then(|secret| {
                    project_secret(
                        secret,
                        &s.name,
                        s.items.as_deref().unwrap_or_default(),
                        default_mode,
                        optional,
                        &mut files,
                    )
                });
                if let Err(e) = projected {
                    errors.push(e);
                }
            } else if source.config_map.is_some() {
                // The agent reads Secrets only. Treating even an optional ConfigMap as absent
                // would silently differ from the kubelet whenever it exists.
                errors.push(unsupported("a configMap projection"));
            } else if source.downward_api.is_some() {
                errors.push(unsupported("a downwardAPI projection"));
            } else if let Some(t) = &source.service_account_token {
                let spec = TokenRequestSpec {
                    audience: t.audience.clone().filter(|a| !a.is_empty()),
                    expiration_seconds: t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS),
                };
                match tokens.get(&spec) {
                    Some(token) => {
                        // The kubelet's rule: the volume's defaultMode, but 0600 when an owner
                        // or group is set (the fsGroup then adds group read below: 0640).
                        let mode = if owner.uid.is_some() || owner.gid.is_some() {
                            TOKEN_MODE_WITH_OWNER
                        } else {
                            default_mode
                        };
                        files.insert(t.path.clone(), File { data: token.clone(), mode });
                    }
                    None => errors
                        .push(VolumeError::TokenUnavailable { volume: volume_name.to_string(), path: t.path.clone() }),
                }
            } else if source.cluster_trust_bundle.is_some() {
                errors.push(unsupported("a clusterTrustBundle projection"));
            }
        }
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(VolumeError::Aggregate(errors)),
        }
    } else {
        return Err(VolumeError::Unsupported { volume: volume_name.to_string(), kind: volume_kind(volume) });
    }
    Ok(files
        .into_iter()
        .map(|(path, file)| {
            // `SetVolumeOwnership` on a read-only volume: group owner fsGroup, mode |= 0440.
            let mode = if owner.gid.is_some() { file.mode | FS_GROUP_READ_MASK } else { file.mode };
            (path, FileProjection { data: file.data, mode, uid: owner.uid, gid: owner.gid })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).expect("test pod parses")
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> SecretData {
        SecretData {
            name: name.to_string(),
            resource_version: "1".to_string(),
            type_: "Opaque".to_string(),
            immutable: false,
            data: data.iter().map(|(k, v)| (k.to_string(), SecretBytes::new(v.as_bytes().to_vec()))).collect(),
        }
    }

    fn secrets(list: Vec<SecretData>) -> BTreeMap<String, SecretData> {
        list.into_iter().map(|s| (s.name.clone(), s)).collect()
    }

    fn no_tokens() -> BTreeMap<TokenRequestSpec, SecretBytes> {
        BTreeMap::new()
    }

    /// One file as (path, content, mode, uid, gid), for exact comparisons.
    type Row = (String, String, u32, Option<u32>, Option<u32>);

    fn files(payload: &Payload) -> Vec<Row> {
        payload
            .iter()
            .map(|(p, f)| (p.clone(), String::from_utf8(f.data.expose().to_vec()).unwrap(), f.mode, f.uid, f.gid))
            .collect()
    }

    fn file(path: &str, data: &str, mode: u32) -> Row {
        (path.to_string(), data.to_string(), mode, None, None)
    }

    const ONE_VOLUME: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: prod}
spec:
  containers:
  - name: main
    image: busybox
    volumeMounts: [{name: creds, mountPath: /etc/creds}]
  volumes:
  - name: creds
    secret: {secretName: db}
"#;

    #[test]
    fn all_keys_with_mode_0644_by_default() {
        let known = secrets(vec![secret("db", &[("password", "p4ss"), ("user", "admin")])]);
        let payload = volume_payload(&pod(ONE_VOLUME), "creds", &known, &no_tokens()).unwrap();
        assert_eq!(files(&payload), vec![file("password", "p4ss", 0o644), file("user", "admin", 0o644)]);
    }

    #[test]
    fn default_mode_and_item_modes_are_honoured() {
        let p = pod(r#"
metadata: {name: app}
spec:
  containers: [{name: main}]
  volumes:
  - name: creds
    secret:
      secretName: db
      defaultMode: 0o400
      items:
      - {key: password, path: db/password}
      - {key: user, path: user.txt, mode: 0o440}
"#);
        let known = secrets(vec![secret("db", &[("password", "p4ss"), ("user", "admin"), ("extra", "x")])]);
        let payload = volume_payload(&p, "creds", &known, &no_tokens()).unwrap();
        // K5: unlisted keys (`extra`) are absent; listed ones are at their paths.
        assert_eq!(files(&payload), vec![file("db/password", "p4ss", 0o400), file("user.txt", "admin", 0o440)]);
    }

    #[test]
    fn missing_non_optional_secret_fails_as_the_kubelet() {
        let err = volume_payload(&pod(ONE_VOLUME), "creds", &BTreeMap::new(), &no_tokens()).unwrap_err();
        assert_eq!(err, VolumeError::SecretNotFound { namespace: "prod".to_string(), name: "db".to_string() });
        assert_eq!(err.to_string(), r#"secret "db" not found"#);
    }

    #[test]
    fn only_the_named_secret_is_used() {
        // K6: the map holds this namespace's Secrets by name; another Secret, even one with
        // the wanted key, never stands in for the missing one.
        let known = secrets(vec![secret("db-other", &[("password", "wrong")])]);
        let err = volume_payload(&pod(ONE_VOLUME), "creds", &known, &no_tokens()).unwrap_err();
        assert_eq!(err.to_string(), r#"secret "db" not found"#);
    }

    #[test]
    fn missing_key_fails_unless_optional() {
        let yaml = |optional: bool| {
            format!(
                r#"
metadata: {{name: app}}
spec:
  containers: [{{name: main}}]
  volumes:
  - name: creds
    secret:
      secretName: db
      optional: {optional}
      items: [{{key: password, path: pw}}, {{key: absent, path: nothing}}]
"#
            )
        };
        let known = secrets(vec![secret("db", &[("password", "p4ss")])]);
        // K10: a missing key of a non-optional Secret keeps the volume (and the pod) down.
        let err = volume_payload(&pod(&yaml(false)), "creds", &known, &no_tokens()).unwrap_err();
        assert_eq!(err, VolumeError::MissingKey { secret: "db".to_string(), key: "absent".to_string() });
        assert_eq!(err.to_string(), "references non-existent secret key: absent");
        let payload = volume_payload(&pod(&yaml(true)), "creds", &known, &no_tokens()).unwrap();
        assert_eq!(files(&payload), vec![file("pw", "p4ss", 0o644)]);
        // A missing optional Secret gives an empty volume.
        let payload = volume_payload(&pod(&yaml(true)), "creds", &BTreeMap::new(), &no_tokens()).unwrap();
        assert!(payload.is_empty());
    }

    #[test]
    fn fs_group_adds_group_read_as_set_volume_ownership() {
        let p = pod(r#"
metadata: {name: app}
spec:
  securityContext: {fsGroup: 2000, runAsUser: 1000}
  containers: [{name: main, volumeMounts: [{name: creds, mountPath: /c}]}]
  volumes:
  - name: creds
    secret:
      secretName: db
      defaultMode: 0o400
      items:
      - {key: a, path: a}
      - {key: b, path: b, mode: 0o644}
      - {key: c, path: c, mode: 0o600}
      - {key: d, path: d, mode: 0}
"#);
        let known = secrets(vec![secret("db", &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])]);
        let payload = volume_payload(&p, "creds", &known, &no_tokens()).unwrap();
        // K4: mode |= 0440 (roMask), group fsGroup, owner runAsUser.
        let owned = |path: &str, data: &str, mode| (path.to_string(), data.to_string(), mode, Some(1000), Some(2000));
        assert_eq!(
            files(&payload),
            vec![owned("a", "1", 0o440), owned("b", "2", 0o644), owned("c", "3", 0o640), owned("d", "4", 0o440)]
        );
    }

    #[test]
    fn owner_is_the_user_every_mounting_container_runs_as() {
        let yaml = |second: &str| {
            format!(
                r#"
metadata: {{name: app}}
spec:
  securityContext: {{runAsUser: 1000}}
  initContainers:
  - {{name: init, securityContext: {{runAsUser: 3000}}}}
  containers:
  - {{name: a, securityContext: {{runAsUser: 2000}}, volumeMounts: [{{name: creds, mountPath: /c}}]}}
  - {{name: b, {second} volumeMounts: [{{name: creds, mountPath: /c}}]}}
  volumes: [{{name: creds, secret: {{secretName: db}}}}]
"#
            )
        };
        let known = secrets(vec![secret("db", &[("k", "v")])]);
        let uid_of = |yaml: &str| volume_payload(&pod(yaml), "creds", &known, &no_tokens()).unwrap()["k"].uid;
        // Both mounting containers run as 2000 (the init container, which does not mount the
        // volume, does not count).
        assert_eq!(uid_of(&yaml("securityContext: {runAsUser: 2000},")), Some(2000));
        // One inherits the pod's 1000, the other runs as 2000: no single owner.
        assert_eq!(uid_of(&yaml("")), None);
    }

    #[test]
    fn owner_from_the_pod_or_agreeing_containers() {
        let known = secrets(vec![secret("db", &[("k", "v")])]);
        let pod_level = pod(r#"
metadata: {name: app}
spec:
  securityContext: {runAsUser: 1000}
  containers: [{name: main}]
  volumes: [{name: creds, secret: {secretName: db}}]
"#);
        assert_eq!(volume_payload(&pod_level, "creds", &known, &no_tokens()).unwrap()["k"].uid, Some(1000));
        let containers_only = pod(r#"
metadata: {name: app}
spec:
  containers:
  - {name: a, securityContext: {runAsUser: 5000}, volumeMounts: [{name: creds, mountPath: /c}]}
  - {name: b, securityContext: {runAsUser: 5000}, volumeMounts: [{name: creds, mountPath: /d}]}
  volumes: [{name: creds, secret: {secretName: db}}]
"#);
        let payload = volume_payload(&containers_only, "creds", &known, &no_tokens()).unwrap();
        assert_eq!(files(&payload), vec![("k".to_string(), "v".to_string(), 0o644, Some(5000), None)]);
        let nobody = pod(r#"
metadata: {name: app}
spec:
  containers: [{name: a, volumeMounts: [{name: creds, mountPath: /c}]}]
  volumes: [{name: creds, secret: {secretName: db}}]
"#);
        assert_eq!(volume_payload(&nobody, "creds", &known, &no_tokens()).unwrap()["k"].uid, None);
    }

    const PROJECTED: &str = r#"
metadata: {name: app, namespace: prod}
spec:
  serviceAccountName: api
  containers: [{name: main, volumeMounts: [{name: all, mountPath: /all}]}]
  volumes:
  - name: all
    projected:
      defaultMode: 0o440
      sources:
      - secret: {name: db}
      - secret:
          name: tls
          items: [{key: tls.key, path: tls/key, mode: 0o400}, {key: tls.crt, path: tls/crt}]
      - serviceAccountToken: {audience: vault, expirationSeconds: 7200, path: token}
      - serviceAccountToken: {path: api-token}
"#;

    #[test]
    fn projected_volume_with_two_secrets_and_tokens() {
        let p = pod(PROJECTED);
        let wanted = token_requests(&p);
        let vault = TokenRequestSpec { audience: Some("vault".to_string()), expiration_seconds: 7200 };
        let api = TokenRequestSpec { audience: None, expiration_seconds: 3600 };
        assert_eq!(wanted, BTreeSet::from([vault.clone(), api.clone()]));
        let tokens = BTreeMap::from([
            (vault, SecretBytes::new(b"vault-jwt".to_vec())),
            (api, SecretBytes::new(b"api-jwt".to_vec())),
        ]);
        let known = secrets(vec![
            secret("db", &[("password", "p4ss")]),
            secret("tls", &[("tls.crt", "CERT"), ("tls.key", "KEY"), ("ca.crt", "CA")]),
        ]);
        let payload = volume_payload(&p, "all", &known, &tokens).unwrap();
        assert_eq!(
            files(&payload),
            vec![
                // No owner, no fsGroup: token files take the volume's defaultMode.
                file("api-token", "api-jwt", 0o440),
                file("password", "p4ss", 0o440),
                file("tls/crt", "CERT", 0o440),
                file("tls/key", "KEY", 0o400),
                file("token", "vault-jwt", 0o440),
            ]
        );
    }

    #[test]
    fn projected_token_is_0600_with_an_owner_and_0640_with_fs_group() {
        let yaml = |security: &str| {
            format!(
                r#"
metadata: {{name: app}}
spec:
  securityContext: {security}
  containers: [{{name: main, volumeMounts: [{{name: t, mountPath: /t}}]}}]
  volumes:
  - name: t
    projected:
      sources: [{{serviceAccountToken: {{path: token}}}}]
"#
            )
        };
        let tokens = BTreeMap::from([(
            TokenRequestSpec { audience: None, expiration_seconds: 3600 },
            SecretBytes::new(b"jwt".to_vec()),
        )]);
        let token = |security: &str| {
            let f =
                volume_payload(&pod(&yaml(security)), "t", &BTreeMap::new(), &tokens).unwrap().remove("token").unwrap();
            (f.mode, f.uid, f.gid)
        };
        assert_eq!(token("{}"), (0o644, None, None));
        assert_eq!(token("{runAsUser: 1000}"), (0o600, Some(1000), None));
        assert_eq!(token("{fsGroup: 2000}"), (0o640, None, Some(2000)));
    }

    #[test]
    fn projected_failures_are_aggregated_and_optional_sources_skipped() {
        let p = pod(r#"
metadata: {name: app}
spec:
  containers: [{name: main}]
  volumes:
  - name: all
    projected:
      sources:
      - secret: {name: gone, optional: true}
      - secret: {name: db, items: [{key: absent, path: a}]}
      - secret: {name: missing}
      - serviceAccountToken: {path: token}
"#);
        let known = secrets(vec![secret("db", &[("password", "p4ss")])]);
        let err = volume_payload(&p, "all", &known, &no_tokens()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"[references non-existent secret key: absent, secret "missing" not found, volume "all": no service account token for path "token"]"#
        );
    }

    #[test]
    fn several_volumes_from_one_secret() {
        // K7.
        let p = pod(r#"
metadata: {name: app}
spec:
  containers: [{name: main}]
  volumes:
  - {name: one, secret: {secretName: db}}
  - {name: two, secret: {secretName: db, defaultMode: 0o400, items: [{key: password, path: pw}]}}
"#);
        let known = secrets(vec![secret("db", &[("password", "p4ss"), ("user", "admin")])]);
        assert_eq!(secret_volumes(&p), vec!["one".to_string(), "two".to_string()]);
        let one = volume_payload(&p, "one", &known, &no_tokens()).unwrap();
        let two = volume_payload(&p, "two", &known, &no_tokens()).unwrap();
        assert_eq!(files(&one), vec![file("password", "p4ss", 0o644), file("user", "admin", 0o644)]);
        assert_eq!(files(&two), vec![file("pw", "p4ss", 0o400)]);
    }

    #[test]
    fn other_volume_kinds_are_unsupported() {
        let p = pod(r#"
metadata: {name: app}
spec:
  containers: [{name: main}]
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: config, configMap: {name: settings}}
  - name: mixed
    projected:
      sources: [{configMap: {name: settings, optional: true}}]
"#);
        assert!(secret_volumes(&p) == vec!["mixed".to_string()]);
        let err = volume_payload(&p, "scratch", &BTreeMap::new(), &no_tokens()).unwrap_err();
        assert_eq!(err, VolumeError::Unsupported { volume: "scratch".to_string(), kind: "emptyDir".to_string() });
        assert_eq!(err.to_string(), r#"volume "scratch": emptyDir is not supported by the agent"#);
        let err = volume_payload(&p, "config", &BTreeMap::new(), &no_tokens()).unwrap_err();
        assert_eq!(err.to_string(), r#"volume "config": configMap is not supported by the agent"#);
        let err = volume_payload(&p, "mixed", &BTreeMap::new(), &no_tokens()).unwrap_err();
        assert_eq!(err.to_string(), r#"volume "mixed": a configMap projection is not supported by the agent"#);
        let err = volume_payload(&p, "nope", &BTreeMap::new(), &no_tokens()).unwrap_err();
        assert_eq!(err.to_string(), r#"volume "nope" not found in the pod"#);
    }

    #[test]
    fn referenced_secrets_cover_every_field() {
        let p = pod(r#"
metadata: {name: app}
spec:
  imagePullSecrets: [{name: registry}, {name: ""}]
  initContainers:
  - name: init
    envFrom: [{secretRef: {name: init-env}}]
  containers:
  - name: main
    env:
    - {name: A, valueFrom: {secretKeyRef: {name: key-ref, key: a}}}
    - {name: B, value: literal}
    envFrom: [{secretRef: {name: env-from}, prefix: X_}, {configMapRef: {name: not-a-secret}}]
  volumes:
  - {name: v1, secret: {secretName: vol}}
  - name: v2
    projected: {sources: [{secret: {name: proj}}, {serviceAccountToken: {path: t}}]}
  - {name: v3, configMap: {name: also-not}}
"#);
        let want: BTreeSet<String> =
            ["env-from", "init-env", "key-ref", "proj", "registry", "vol"].into_iter().map(String::from).collect();
        assert_eq!(referenced_secrets(&p), want);
    }

    #[test]
    fn validate_pod_accepts_a_sound_pod() {
        assert_eq!(validate_pod(&pod(ONE_VOLUME)), Ok(()));
        assert_eq!(validate_pod(&pod(PROJECTED)), Ok(()));
    }

    #[test]
    fn validate_pod_refuses_names_that_are_not_safe_path_elements() {
        let cases = [
            ("metadata: {name: ../etc}\nspec: {containers: [{name: c}]}", "metadata.name"),
            ("metadata: {name: Upper}\nspec: {containers: [{name: c}]}", "metadata.name"),
            ("metadata: {name: ok, namespace: a.b}\nspec: {containers: [{name: c}]}", "metadata.namespace"),
            (
                "metadata: {name: ok}\nspec: {containers: [{name: c}], volumes: [{name: a/b, secret: {secretName: s}}]}",
                "spec.volumes[0].name",
            ),
            (
                "metadata: {name: ok}\nspec: {containers: [{name: c}], volumes: [{name: v, secret: {secretName: ../s}}]}",
                "spec.volumes[0].secret.secretName",
            ),
            (
                "metadata: {name: ok}\nspec: {containers: [{name: c}], imagePullSecrets: [{name: A}]}",
                "spec.imagePullSecrets[0].name",
            ),
        ];
        for (yaml, field) in cases {
            match validate_pod(&pod(yaml)) {
                Err(VolumeError::InvalidPod { field: f, .. }) => assert_eq!(f, field, "{yaml}"),
                other => panic!("{yaml}: {other:?}"),
            }
        }
        let err = validate_pod(&pod("metadata: {name: ../etc}\nspec: {containers: [{name: c}]}")).unwrap_err();
        assert!(
            err.to_string().starts_with(r#"metadata.name: Invalid value: "../etc": a lowercase RFC 1123 subdomain"#),
            "{err}"
        );
    }

    #[test]
    fn validate_pod_refuses_bad_mounts_paths_and_modes() {
        let with = |volume: &str, mount: &str| {
            format!(
                "metadata: {{name: ok}}\nspec:\n  containers: [{{name: c, volumeMounts: [{mount}]}}]\n  volumes: [{volume}]\n"
            )
        };
        let secret = "{name: v, secret: {secretName: s}}";
        let cases = [
            (with(secret, "{name: w, mountPath: /x}"), "spec.containers[0].volumeMounts[0].name", r#"Not found: "w""#),
            (
                with(secret, "{name: v, mountPath: /x, subPath: ../x}"),
                "spec.containers[0].volumeMounts[0].subPath",
                r#"Invalid value: "../x": must not contain '..'"#,
            ),
            (
                with(secret, "{name: v, mountPath: /x, subPath: /etc}"),
                "spec.containers[0].volumeMounts[0].subPath",
                r#"Invalid value: "/etc": must be a relative path"#,
            ),
            (
                with(secret, "{name: v, mountPath: /x, subPathExpr: $(X)}"),
                "spec.containers[0].volumeMounts[0].subPathExpr",
                "Unsupported value: subPathExpr is not supported by the agent",
            ),
            (
                with("{name: v, secret: {secretName: s, defaultMode: 0o4755}}", "{name: v, mountPath: /x}"),
                "spec.volumes[0].secret.defaultMode",
                "Invalid value: 2541: must be a number between 0 and 0777 (octal), both inclusive",
            ),
            (
                with("{name: v, secret: {secretName: s, items: [{key: k, path: ../k}]}}", "{name: v, mountPath: /x}"),
                "spec.volumes[0].secret.items[0].path",
                r#"Invalid value: "../k": must not contain '..'"#,
            ),
            (
                with("{name: v, secret: {secretName: s, items: [{key: k, path: ..data}]}}", "{name: v, mountPath: /x}"),
                "spec.volumes[0].secret.items[0].path",
                r#"Invalid value: "..data": must not start with '..'"#,
            ),
            (
                with(
                    "{name: v, secret: {secretName: s, items: [{key: k, path: p}, {key: l, path: p}]}}",
                    "{name: v, mountPath: /x}",
                ),
                "spec.volumes[0].secret.items[1].path",
                r#"Invalid value: "p": conflicting duplicate paths"#,
            ),
            (
                with(
                    "{name: v, projected: {sources: [{secret: {name: s, items: [{key: k, path: t}]}}, {serviceAccountToken: {path: t}}]}}",
                    "{name: v, mountPath: /x}",
                ),
                "spec.volumes[0].projected.sources[1].serviceAccountToken.path",
                r#"Invalid value: "t": conflicting duplicate paths"#,
            ),
            (
                with("{name: v, secret: {secretName: s}}, {name: v, emptyDir: {}}", "{name: v, mountPath: /x}"),
                "spec.volumes[1].name",
                r#"Duplicate value: "v""#,
            ),
        ];
        for (yaml, field, reason) in cases {
            assert_eq!(
                validate_pod(&pod(&yaml)),
                Err(VolumeError::InvalidPod { field: field.to_string(), reason: reason.to_string() }),
                "{yaml}"
            );
        }
    }

    #[test]
    fn validate_pod_refuses_ids_beyond_32_bits() {
        let p = pod("metadata: {name: ok}\nspec: {securityContext: {fsGroup: -1}, containers: [{name: c}]}");
        assert_eq!(
            validate_pod(&p).unwrap_err().to_string(),
            "spec.securityContext.fsGroup: Invalid value: -1: must be between 0 and 4294967295, inclusive"
        );
    }
}
