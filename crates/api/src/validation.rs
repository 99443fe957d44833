//! Validation of Secrets, Namespaces, ServiceAccounts, RBAC objects and object metadata with
//! Kubernetes v1.32's exact rules, messages and field paths.
//!
//! Sources (kubernetes v1.32, apimachinery v0.32.13): `pkg/util/validation/validation.go`
//! (name and key formats), `pkg/api/validation/objectmeta.go` and `generic.go`
//! (`ValidateObjectMeta*`), `pkg/apis/meta/v1/validation/validation.go` (labels, managed
//! fields), `pkg/api/validation/path/name.go` (path-segment names) and kubernetes'
//! `pkg/apis/core/validation/validation.go` (`ValidateSecret`, `ValidateSecretUpdate`,
//! `ValidateNamespace`, `ValidateNamespaceUpdate`, `ValidateServiceAccount`, the finalizer
//! checks), `pkg/apis/rbac/validation/validation.go` (roles, bindings, policy rules, subjects)
//! with the update composition of `pkg/registry/rbac/*/strategy.go`, and apimachinery's
//! `ValidateLabelSelector` (ClusterRole aggregation selectors).
//!
//! Go iterates maps in random order; this module walks them in key order, so error lists are
//! deterministic but may be ordered differently from one given Kubernetes response.
//!
//! Invariant: no secret value (Secret `data`) ever appears in an error. Data keys are named in
//! paths (`data[tls.crt]`); malformed docker configs are reported with the placeholder
//! `<secret contents redacted>`, as Kubernetes does, and with a parse message that never quotes
//! the content (see [`go_json_object_error`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};

use crate::field::{BadValue, ErrorList, FieldError, go_is_print, go_quote};
use crate::secret::{self, Secret};

/// `DNS1123LabelMaxLength`.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// `DNS1123SubdomainMaxLength`; also the longest Secret key.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// `qualifiedNameMaxLength`: the name part of a label key, annotation key or finalizer.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// `LabelValueMaxLength`.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// `TotalAnnotationSizeLimitB`: keys and values of all annotations together.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// `FieldManagerMaxLength`.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// `MaxSubresourceNameLength`.
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;

/// `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";

/// The placeholder Kubernetes puts in place of a docker config that is not valid JSON.
pub const REDACTED_SECRET_CONTENTS: &str = "<secret contents redacted>";

/// Data keys and annotations the typed Secrets require (`pkg/apis/core/types.go`).
pub const SERVICE_ACCOUNT_NAME_KEY: &str = "kubernetes.io/service-account.name";
pub const DOCKER_CONFIG_KEY: &str = ".dockercfg";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const BASIC_AUTH_USERNAME_KEY: &str = "username";
pub const BASIC_AUTH_PASSWORD_KEY: &str = "password";
pub const SSH_AUTH_PRIVATE_KEY: &str = "ssh-privatekey";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

/// Finalizers that need no domain prefix (`helper.IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", FINALIZER_ORPHAN_DEPENDENTS, FINALIZER_DELETE_DEPENDENTS];
const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

// ---------------------------------------------------------------------------------------------
// Formats (apimachinery pkg/util/validation/validation.go)
// ---------------------------------------------------------------------------------------------

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `MaxLenError`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `RegexError`, with its quirk of a double space between examples.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push('\'');
        s.push_str(example);
        s.push_str("', ");
    }
    s.push_str("regex used for validation is '");
    s.push_str(fmt);
    s.push_str("')");
    s
}

/// `EmptyError`.
fn empty_error() -> &'static str {
    "must be non-empty"
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` over bytes.
fn matches_dns1123_label(v: &[u8]) -> bool {
    match (v.first(), v.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first) && is_lower_alnum(last) && v.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// `^label(\.label)*$` over bytes.
fn matches_dns1123_subdomain(v: &[u8]) -> bool {
    v.split(|&b| b == b'.').all(matches_dns1123_label)
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn matches_qualified_name_part(v: &[u8]) -> bool {
    match (v.first(), v.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && v.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn dns1123_label_errors(v: &[u8]) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(v) {
        if matches_dns1123_subdomain(v) {
            // A valid subdomain that is not a valid label: since length was checked, it is dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_ERR_MSG, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

fn dns1123_subdomain_errors(v: &[u8]) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(v) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_ERR_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// `IsDNS1123Label`: the empty list means valid.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    dns1123_label_errors(v.as_bytes())
}

/// `IsDNS1123Subdomain`: the empty list means valid.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    dns1123_subdomain_errors(v.as_bytes())
}

/// `IsConfigMapKey`, the rule for Secret and ConfigMap data keys.
pub fn is_config_map_key(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(CONFIG_MAP_KEY_ERR_MSG, CONFIG_MAP_KEY_FMT, &["key.name", "KEY_NAME", "key-name"]));
    }
    errs.extend(has_ch_dir_prefix(v));
    errs
}

/// `hasChDirPrefix`: keys become file names, so `.`, `..` and `..x` are refused.
fn has_ch_dir_prefix(v: &str) -> Option<String> {
    if v == "." {
        Some("must not be '.'".to_string())
    } else if v == ".." {
        Some("must not be '..'".to_string())
    } else if v.starts_with("..") {
        Some("must not start with '..'".to_string())
    } else {
        None
    }
}

/// `IsQualifiedName`: label keys, annotation keys (lower-cased first) and finalizers.
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX_LENGTH)));
    }
    if !matches_qualified_name_part(name.as_bytes()) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !(v.is_empty() || matches_qualified_name_part(v.as_bytes())) {
        errs.push(regex_error(LABEL_VALUE_ERR_MSG, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// `path.IsValidPathSegmentName`: the rule RBAC object names follow.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    for illegal in [".", ".."] {
        if name == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    is_valid_path_segment_prefix(name)
}

/// `path.IsValidPathSegmentPrefix`.
pub fn is_valid_path_segment_prefix(name: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|illegal| name.contains(*illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Name validators (apimachinery pkg/api/validation/generic.go)
// ---------------------------------------------------------------------------------------------

/// `ValidateNameFunc`: validates a name, or with `prefix` a `generateName` that will have a
/// random suffix appended. Returns the messages of the failed rules.
pub type NameValidator = fn(name: &str, prefix: bool) -> Vec<String>;

/// `maskTrailingDash`: a trailing dash is fine in a prefix. Go replaces the last *two* bytes
/// with `a` (`name[:len(name)-2] + "a"`); that quirk is kept.
fn mask_trailing_dash(name: &[u8]) -> Vec<u8> {
    if name.len() > 1 && name.ends_with(b"-") {
        let mut masked = name[..name.len() - 2].to_vec();
        masked.push(b'a');
        masked
    } else {
        name.to_vec()
    }
}

/// `NameIsDNSSubdomain`: Secret, ServiceAccount and most other names.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix { dns1123_subdomain_errors(&mask_trailing_dash(name.as_bytes())) } else { is_dns1123_subdomain(name) }
}

/// `NameIsDNSLabel` (`ValidateNamespaceName`): Namespace names.
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix { dns1123_label_errors(&mask_trailing_dash(name.as_bytes())) } else { is_dns1123_label(name) }
}

/// `path.ValidatePathSegmentName`: RBAC names (`ValidateRBACName`).
pub fn name_is_path_segment(name: &str, prefix: bool) -> Vec<String> {
    if prefix { is_valid_path_segment_prefix(name) } else { is_valid_path_segment_name(name) }
}

// ---------------------------------------------------------------------------------------------
// Field paths and Go value rendering
// ---------------------------------------------------------------------------------------------

/// `Path.Child`.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// `Path.Key` and `Path.Index`: `data[tls.crt]`, `finalizers[0]`.
fn key(path: &str, key: impl std::fmt::Display) -> String {
    format!("{path}[{key}]")
}

/// `%#v` of a `[]string`: `[]string{"a", "b"}`.
fn go_string_slice<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s.as_ref())).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// `time.Time.String()` of a `metav1.Time` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
/// The zero (unset) time prints as Go's zero time.
fn go_time(t: Option<&Time>) -> String {
    let Some(t) = t else {
        return "0001-01-01 00:00:00 +0000 UTC".to_string();
    };
    let ts = t.0;
    let mut s = ts.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = ts.subsec_nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// `%#v` of a `*bool`. Go prints the pointer's address; a fixed placeholder stands in for it.
fn go_bool_ptr(b: Option<bool>) -> &'static str {
    match b {
        None => "(*bool)(nil)",
        Some(_) => "(*bool)(0xc000000000)",
    }
}

/// `%#v` of a `metav1.OwnerReference`.
fn go_owner_reference(r: &OwnerReference) -> String {
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        go_quote(&r.api_version),
        go_quote(&r.kind),
        go_quote(&r.name),
        go_quote(&r.uid),
        go_bool_ptr(r.controller),
        go_bool_ptr(r.block_owner_deletion)
    )
}

/// `%#v` of a `[]metav1.OwnerReference`.
fn go_owner_references(refs: &[OwnerReference]) -> String {
    let items: Vec<String> = refs.iter().map(go_owner_reference).collect();
    format!("[]v1.OwnerReference{{{}}}", items.join(", "))
}

/// `%#U` of a rune that is not printable: `U+0007`.
fn go_unicode_code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

// ---------------------------------------------------------------------------------------------
// Object metadata
// ---------------------------------------------------------------------------------------------

/// `ValidateObjectMeta` as kubernetes' core validation calls it: apimachinery's checks (name or
/// generateName, namespace presence, generation, labels, annotations, owner references,
/// finalizers, managed fields) followed by kubernetes' finalizer-name check.
///
/// `path` is the metadata's field path, normally `"metadata"`. It expects name generation to
/// have happened already, as the apiserver does before validating.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_validator: NameValidator,
    path: &str,
) -> ErrorList {
    let mut errs = ErrorList::new();

    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for msg in name_validator(generate_name, true) {
            errs.push(FieldError::invalid(child(path, "generateName"), generate_name, msg));
        }
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), "name or generateName is required"));
    } else {
        for msg in name_validator(name, false) {
            errs.push(FieldError::invalid(child(path, "name"), name, msg));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(child(path, "namespace"), ""));
        } else {
            for msg in name_is_dns_label(namespace, false) {
                errs.push(FieldError::invalid(child(path, "namespace"), namespace, msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(child(path, "namespace"), "not allowed on this type"));
    }

    let generation = meta.generation.unwrap_or(0);
    if generation < 0 {
        errs.push(FieldError::invalid(
            child(path, "generation"),
            BadValue::Raw(generation.to_string()),
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
    errs.extend(validate_labels(meta.labels.as_ref(), &child(path, "labels")));
    errs.extend(validate_annotations(meta.annotations.as_ref(), &child(path, "annotations")));
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref().unwrap_or(&[]),
        &child(path, "ownerReferences"),
    ));
    let finalizers = meta.finalizers.as_deref().unwrap_or(&[]);
    errs.extend(validate_finalizers(finalizers, &child(path, "finalizers")));
    errs.extend(validate_managed_fields(meta.managed_fields.as_deref().unwrap_or(&[]), &child(path, "managedFields")));
    errs.extend(validate_kube_finalizer_names(finalizers, &child(path, "finalizers")));
    errs
}

/// `ValidateObjectMetaUpdate` as kubernetes' core validation calls it.
///
/// The caller is expected to have done what the apiserver's `rest.BeforeUpdate` does first
/// (copy `creationTimestamp`, `deletionTimestamp`, an unset `uid` and `generation` from the old
/// object); what remains different here is a client's attempt to change them.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let new_finalizers = new.finalizers.as_deref().unwrap_or(&[]);

    // Finalizers cannot be added if the object is already being deleted.
    if old.deletion_timestamp.is_some() {
        let old_finalizers: BTreeSet<&str> = old.finalizers.iter().flatten().map(String::as_str).collect();
        let extra: BTreeSet<&str> =
            new_finalizers.iter().map(String::as_str).filter(|f| !old_finalizers.contains(f)).collect();
        if !extra.is_empty() {
            let extra: Vec<&str> = extra.into_iter().collect();
            errs.push(FieldError::forbidden(
                child(path, "finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_slice(&extra)
                ),
            ));
        }
    }

    let resource_version = new.resource_version.as_deref().unwrap_or("");
    if resource_version.is_empty() {
        errs.push(FieldError::invalid(
            child(path, "resourceVersion"),
            resource_version,
            "must be specified for an update",
        ));
    }

    let (new_generation, old_generation) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_generation < old_generation {
        errs.push(FieldError::invalid(
            child(path, "generation"),
            BadValue::Raw(new_generation.to_string()),
            "must not be decremented",
        ));
    }

    let immutable = |errs: &mut ErrorList, field: &str, changed: bool, shown: BadValue| {
        if changed {
            errs.push(FieldError::invalid(child(path, field), shown, FIELD_IMMUTABLE_ERROR_MSG));
        }
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    immutable(&mut errs, "name", s(&new.name) != s(&old.name), BadValue::Str(s(&new.name)));
    immutable(&mut errs, "namespace", s(&new.namespace) != s(&old.namespace), BadValue::Str(s(&new.namespace)));
    immutable(&mut errs, "uid", s(&new.uid) != s(&old.uid), BadValue::Str(s(&new.uid)));
    immutable(
        &mut errs,
        "creationTimestamp",
        new.creation_timestamp != old.creation_timestamp,
        BadValue::Raw(go_time(new.creation_timestamp.as_ref())),
    );
    immutable(
        &mut errs,
        "deletionTimestamp",
        new.deletion_timestamp != old.deletion_timestamp,
        BadValue::Raw(match &new.deletion_timestamp {
            None => "null".to_string(),
            Some(t) => go_time(Some(t)),
        }),
    );
    immutable(
        &mut errs,
        "deletionGracePeriodSeconds",
        new.deletion_grace_period_seconds != old.deletion_grace_period_seconds,
        BadValue::Raw(new.deletion_grace_period_seconds.map_or_else(|| "null".to_string(), |s| s.to_string())),
    );

    errs.extend(validate_labels(new.labels.as_ref(), &child(path, "labels")));
    errs.extend(validate_annotations(new.annotations.as_ref(), &child(path, "annotations")));
    errs.extend(validate_owner_references(
        new.owner_references.as_deref().unwrap_or(&[]),
        &child(path, "ownerReferences"),
    ));
    errs.extend(validate_managed_fields(new.managed_fields.as_deref().unwrap_or(&[]), &child(path, "managedFields")));
    errs.extend(validate_kube_finalizer_names(new_finalizers, &child(path, "finalizers")));
    errs
}

/// `v1validation.ValidateLabels`: every key a qualified name, every value a label value. The
/// path is the map's, without the key, as in Kubernetes.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels.into_iter().flatten() {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v.as_str(), msg));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names ignoring case, and keys plus values total at
/// most 256 KiB. Values are never shown.
pub fn validate_annotations(annotations: Option<&BTreeMap<String, String>>, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    for k in annotations.keys() {
        // Go's strings.ToLower maps each rune to one rune; the first char of Rust's mapping is it.
        let lower: String = k.chars().map(|c| c.to_lowercase().next().unwrap_or(c)).collect();
        for msg in is_qualified_name(&lower) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES));
    }
    errs
}

/// `schema.FromAPIVersionAndKind` reduced to what owner-reference validation needs:
/// `(group, version)`, both empty when the apiVersion does not parse.
fn parse_group_version(api_version: &str) -> (&str, &str) {
    if api_version.is_empty() || api_version == "/" {
        return ("", "");
    }
    match api_version.matches('/').count() {
        0 => ("", api_version),
        1 => api_version.split_once('/').unwrap_or(("", "")),
        _ => ("", ""),
    }
}

/// `ValidateOwnerReferences`. The path is the list's, without an index, as in Kubernetes.
pub fn validate_owner_references(refs: &[OwnerReference], path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let (group, version) = parse_group_version(&r.api_version);
        if version.is_empty() {
            errs.push(FieldError::invalid(
                child(path, "apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(child(path, "kind"), r.kind.as_str(), "kind must not be empty"));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(child(path, "name"), r.name.as_str(), "name must not be empty"));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(child(path, "uid"), r.uid.as_str(), "uid must not be empty"));
        }
        // BannedOwners: core/v1 Events may not own anything.
        if group.is_empty() && version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                BadValue::Raw(go_owner_reference(r)),
                format!("{group}/{version}, Kind={} is disallowed from being an owner", r.kind),
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    BadValue::Raw(go_owner_references(refs)),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// `ValidateFinalizers`: each a qualified name (path without index), and not both `orphan` and
/// `foregroundDeletion`.
fn validate_finalizers(finalizers: &[String], path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    for f in finalizers {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid(path, f.as_str(), msg));
        }
    }
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has(FINALIZER_ORPHAN_DEPENDENTS) && has(FINALIZER_DELETE_DEPENDENTS) {
        errs.push(FieldError::invalid(
            path,
            BadValue::Raw(go_string_slice(finalizers)),
            format!("finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"),
        ));
    }
    errs
}

/// kubernetes' `validateKubeFinalizerName`: a finalizer without a `/` must be a standard one.
fn kube_finalizer_name_error(finalizer: &str, path: &str) -> Option<FieldError> {
    (!finalizer.contains('/') && !STANDARD_FINALIZERS.contains(&finalizer)).then(|| {
        FieldError::invalid(path, finalizer, "name is neither a standard finalizer name nor is it fully qualified")
    })
}

/// The per-index finalizer check kubernetes adds to `ValidateObjectMeta*` (`finalizers[i]`).
fn validate_kube_finalizer_names(finalizers: &[String], path: &str) -> ErrorList {
    finalizers.iter().enumerate().filter_map(|(i, f)| kube_finalizer_name_error(f, &key(path, i))).collect()
}

/// `ValidateManagedFields`.
fn validate_managed_fields(entries: &[ManagedFieldsEntry], path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, entry) in entries.iter().enumerate() {
        let p = key(path, i);
        let operation = entry.operation.as_deref().unwrap_or("");
        if operation != "Apply" && operation != "Update" {
            errs.push(FieldError::invalid(child(&p, "operation"), operation, "must be `Apply` or `Update`"));
        }
        let fields_type = entry.fields_type.as_deref().unwrap_or("");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(child(&p, "fieldsType"), fields_type, "must be `FieldsV1`"));
        }
        let manager = entry.manager.as_deref().unwrap_or("");
        if manager.len() > FIELD_MANAGER_MAX_LENGTH {
            errs.push(FieldError::too_long(child(&p, "manager"), FIELD_MANAGER_MAX_LENGTH));
        }
        for (pos, c) in manager.char_indices() {
            if !go_is_print(c) {
                errs.push(FieldError::invalid(
                    child(&p, "manager"),
                    manager,
                    format!("invalid character {} (at position {pos})", go_unicode_code_point(c)),
                ));
            }
        }
        if entry.subresource.as_deref().unwrap_or("").len() > MAX_SUBRESOURCE_NAME_LENGTH {
            errs.push(FieldError::too_long(child(&p, "subresource"), MAX_SUBRESOURCE_NAME_LENGTH));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// `ValidateSecret`, on a Secret whose `stringData` has already been folded into `data` and
/// whose empty type means `Opaque` (Kubernetes defaults it before validating).
///
/// Data values are only measured and, for the two docker config types, parsed; no error shows
/// them.
pub fn validate_secret(s: &Secret) -> ErrorList {
    let mut errs = validate_object_meta(&s.metadata, true, name_is_dns_subdomain, "metadata");

    let empty = BTreeMap::new();
    let data = s.data.as_ref().unwrap_or(&empty);
    let mut total = 0usize;
    for (k, v) in data {
        for msg in is_config_map_key(k) {
            errs.push(FieldError::invalid(key("data", k), k.as_str(), msg));
        }
        total += v.len();
    }
    if total > secret::MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", secret::MAX_SECRET_SIZE));
    }

    match s.effective_type() {
        secret::TYPE_SERVICE_ACCOUNT_TOKEN => {
            // Only the service account's name is required; a controller adds the uid and token.
            let annotated = s.metadata.annotations.as_ref().and_then(|a| a.get(SERVICE_ACCOUNT_NAME_KEY));
            if annotated.is_none_or(|v| v.is_empty()) {
                errs.push(FieldError::required(key("metadata.annotations", SERVICE_ACCOUNT_NAME_KEY), ""));
            }
        }
        secret::TYPE_DOCKERCFG | secret::TYPE_DOCKER_CONFIG_JSON => {
            let data_key =
                if s.effective_type() == secret::TYPE_DOCKERCFG { DOCKER_CONFIG_KEY } else { DOCKER_CONFIG_JSON_KEY };
            match data.get(data_key) {
                None => errs.push(FieldError::required(key("data", data_key), "")),
                Some(config) => {
                    if let Err(detail) = go_json_object_error(config.expose()) {
                        errs.push(FieldError::invalid(key("data", data_key), REDACTED_SECRET_CONTENTS, detail));
                    }
                }
            }
        }
        // Either may be empty, but one of the two keys must be present.
        secret::TYPE_BASIC_AUTH
            if !data.contains_key(BASIC_AUTH_USERNAME_KEY) && !data.contains_key(BASIC_AUTH_PASSWORD_KEY) =>
        {
            errs.push(FieldError::required(key("data", BASIC_AUTH_USERNAME_KEY), ""));
            errs.push(FieldError::required(key("data", BASIC_AUTH_PASSWORD_KEY), ""));
        }
        secret::TYPE_SSH_AUTH if data.get(SSH_AUTH_PRIVATE_KEY).is_none_or(|v| v.is_empty()) => {
            errs.push(FieldError::required(key("data", SSH_AUTH_PRIVATE_KEY), ""));
        }
        secret::TYPE_TLS => {
            for k in [TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY] {
                if !data.contains_key(k) {
                    errs.push(FieldError::required(key("data", k), ""));
                }
            }
        }
        // Opaque, bootstrap tokens and any other type: Kubernetes checks nothing more.
        _ => {}
    }
    errs
}

/// Whether `json.Unmarshal(bytes, &map[string]interface{}{})` succeeds, and if not, Go's error
/// text made safe: Go's syntax errors quote the offending character (`invalid character 'x'
/// looking for beginning of value`), a byte of a secret, so that character is left out here and
/// the position given instead. Type mismatches and truncation keep Go's exact wording.
fn go_json_object_error(bytes: &[u8]) -> Result<(), String> {
    // IgnoredAny checks syntax without building anything (and without decoding strings).
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(match e.classify() {
            serde_json::error::Category::Eof => "unexpected end of JSON input".to_string(),
            _ => format!("invalid character at line {} column {}", e.line(), e.column()),
        });
    }
    let first = bytes.iter().copied().find(|b| !b" \t\r\n".contains(b));
    let found = match first {
        Some(b'{') | Some(b'n') => return Ok(()),
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't') | Some(b'f') => "bool",
        _ => "number",
    };
    Err(format!("json: cannot unmarshal {found} into Go value of type map[string]interface {{}}"))
}

/// `ValidateSecretUpdate`: metadata update rules, `type` immutable, and for immutable Secrets
/// neither `data` nor `immutable` may change; then the new Secret is validated as on create.
///
/// `data` of `None` and of an empty map count as equal here. (Go's `reflect.DeepEqual` tells a
/// nil map from an empty one, which makes an immutable Secret without data refuse an update
/// that sends `"data": {}`; that quirk depends on Go's storage encoding and is not copied.)
pub fn validate_secret_update(new: &Secret, old: &Secret) -> ErrorList {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    if new.effective_type() != old.effective_type() {
        errs.push(FieldError::invalid("type", new.effective_type(), FIELD_IMMUTABLE_ERROR_MSG));
    }
    if old.is_immutable() {
        if !new.is_immutable() {
            errs.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
        }
        let empty = BTreeMap::new();
        if new.data.as_ref().unwrap_or(&empty) != old.data.as_ref().unwrap_or(&empty) {
            errs.push(FieldError::forbidden("data", IMMUTABLE_WHEN_SET));
        }
        // stringData needs no check: it has been folded into data before validation.
    }
    errs.extend(validate_secret(new));
    errs
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

/// `ValidateNamespace`: a cluster-scoped object named by a DNS-1123 label, and its
/// `spec.finalizers` (path without index, as in Kubernetes).
pub fn validate_namespace(ns: &Namespace) -> ErrorList {
    let mut errs = validate_object_meta(&ns.metadata, false, name_is_dns_label, "metadata");
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_deref()).unwrap_or(&[]);
    for f in finalizers {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid("spec.finalizers", f.as_str(), msg));
        }
        errs.extend(kube_finalizer_name_error(f, "spec.finalizers"));
    }
    errs
}

/// `ValidateNamespaceUpdate`: only the metadata rules (the strategy keeps spec and status).
pub fn validate_namespace_update(new: &Namespace, old: &Namespace) -> ErrorList {
    validate_object_meta_update(&new.metadata, &old.metadata, "metadata")
}

// ---------------------------------------------------------------------------------------------
// ServiceAccounts (kubernetes pkg/apis/core/validation/validation.go)
// ---------------------------------------------------------------------------------------------

/// `ValidateServiceAccount`: only the object metadata, with a DNS-subdomain name
/// (`ValidateServiceAccountName`).
pub fn validate_service_account(sa: &ServiceAccount) -> ErrorList {
    validate_object_meta(&sa.metadata, true, name_is_dns_subdomain, "metadata")
}

/// `ValidateServiceAccountUpdate`: the metadata update rules, then the new object as on create.
pub fn validate_service_account_update(new: &ServiceAccount, old: &ServiceAccount) -> ErrorList {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_service_account(new));
    errs
}

// ---------------------------------------------------------------------------------------------
// RBAC (kubernetes pkg/apis/rbac/validation/validation.go, pkg/registry/rbac/*/strategy.go)
// ---------------------------------------------------------------------------------------------

/// The RBAC API group, the only one a `roleRef` may name.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
pub const SUBJECT_KIND_SERVICE_ACCOUNT: &str = "ServiceAccount";
pub const SUBJECT_KIND_USER: &str = "User";
pub const SUBJECT_KIND_GROUP: &str = "Group";

/// `ValidateRBACName`: a path segment. Unlike [`name_is_path_segment`], a `generateName` prefix
/// is held to the full rule too, as Kubernetes ignores the `prefix` flag here.
pub fn name_is_rbac(name: &str, _prefix: bool) -> Vec<String> {
    is_valid_path_segment_name(name)
}

/// `ValidateRole`.
pub fn validate_role(role: &Role) -> ErrorList {
    let mut errs = validate_object_meta(&role.metadata, true, name_is_rbac, "metadata");
    for (i, rule) in role.rules.iter().flatten().enumerate() {
        errs.extend(validate_policy_rule(rule, true, &key("rules", i)));
    }
    errs
}

/// What the Role strategy's `ValidateUpdate` returns: `ValidateRole` followed by
/// `ValidateRoleUpdate`, which validates the new Role again, so rule errors are listed twice
/// (the aggregate message prints them once), exactly as kube-apiserver answers.
pub fn validate_role_update(new: &Role, old: &Role) -> ErrorList {
    let mut errs = validate_role(new);
    errs.extend(validate_role(new));
    errs.extend(validate_object_meta_update(&new.metadata, &old.metadata, "metadata"));
    errs
}

/// `ValidateClusterRole`. `allow_invalid_label_value` is `AllowInvalidLabelValueInSelector`,
/// which the strategy sets on update when the stored object already has such a value.
pub fn validate_cluster_role(role: &ClusterRole, allow_invalid_label_value: bool) -> ErrorList {
    let mut errs = validate_object_meta(&role.metadata, false, name_is_rbac, "metadata");
    for (i, rule) in role.rules.iter().flatten().enumerate() {
        errs.extend(validate_policy_rule(rule, false, &key("rules", i)));
    }
    if let Some(aggregation) = &role.aggregation_rule {
        let selectors = aggregation.cluster_role_selectors.as_deref().unwrap_or(&[]);
        let path = "aggregationRule.clusterRoleSelectors";
        if selectors.is_empty() {
            errs.push(FieldError::required(
                path,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, selector) in selectors.iter().enumerate() {
            let p = key(path, i);
            errs.extend(validate_label_selector(selector, allow_invalid_label_value, &p));
            // `LabelSelectorAsSelector` refuses exactly what strict selector validation refuses;
            // the selector it would have returned is nil, which Go prints as "null".
            if !validate_label_selector(selector, false, &p).is_empty() {
                errs.push(FieldError::invalid(p, "null", "invalid label selector."));
            }
        }
    }
    errs
}

/// The ClusterRole strategy's `ValidateUpdate`: `ValidateClusterRole` followed by
/// `ValidateClusterRoleUpdate` (which validates again), with invalid label values in selectors
/// tolerated when the stored object already had one.
pub fn validate_cluster_role_update(new: &ClusterRole, old: &ClusterRole) -> ErrorList {
    let allow = has_invalid_label_value_in_selectors(old);
    let mut errs = validate_cluster_role(new, allow);
    errs.extend(validate_cluster_role(new, allow));
    errs.extend(validate_object_meta_update(&new.metadata, &old.metadata, "metadata"));
    errs
}

/// The ClusterRole strategy's `hasInvalidLabelValueInLabelSelector`.
fn has_invalid_label_value_in_selectors(role: &ClusterRole) -> bool {
    let selectors = role.aggregation_rule.as_ref().and_then(|a| a.cluster_role_selectors.as_deref()).unwrap_or(&[]);
    selectors.iter().any(|s| {
        s.match_expressions
            .iter()
            .flatten()
            .any(|e| e.values.iter().flatten().any(|v| !is_valid_label_value(v).is_empty()))
    })
}

/// `ValidatePolicyRule`.
pub fn validate_policy_rule(rule: &PolicyRule, namespaced: bool, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    if rule.verbs.is_empty() {
        errs.push(FieldError::required(child(path, "verbs"), "verbs must contain at least one value"));
    }
    let non_resource_urls = rule.non_resource_urls.as_deref().unwrap_or(&[]);
    let len = |v: &Option<Vec<String>>| v.as_ref().map_or(0, Vec::len);
    if !non_resource_urls.is_empty() {
        let shown = BadValue::Raw(go_string_slice(non_resource_urls));
        if namespaced {
            errs.push(FieldError::invalid(
                child(path, "nonResourceURLs"),
                shown.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if len(&rule.api_groups) > 0 || len(&rule.resources) > 0 || len(&rule.resource_names) > 0 {
            errs.push(FieldError::invalid(
                child(path, "nonResourceURLs"),
                shown,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if len(&rule.api_groups) == 0 {
        errs.push(FieldError::required(child(path, "apiGroups"), "resource rules must supply at least one api group"));
    }
    if len(&rule.resources) == 0 {
        errs.push(FieldError::required(child(path, "resources"), "resource rules must supply at least one resource"));
    }
    errs
}

/// `%#v` of the internal `rbac.RoleRef`, as the `cannot change roleRef` error shows it.
fn go_role_ref(r: &RoleRef) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(&r.api_group),
        go_quote(&r.kind),
        go_quote(&r.name)
    )
}

/// The `roleRef` checks shared by both binding kinds; `kinds` are the role kinds it may name.
fn validate_role_ref(role_ref: &RoleRef, kinds: &[&str]) -> ErrorList {
    let mut errs = ErrorList::new();
    if role_ref.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported("roleRef.apiGroup", role_ref.api_group.as_str(), &[RBAC_GROUP]));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported("roleRef.kind", role_ref.kind.as_str(), kinds));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in name_is_rbac(&role_ref.name, false) {
            errs.push(FieldError::invalid("roleRef.name", role_ref.name.as_str(), msg));
        }
    }
    errs
}

/// `ValidateRoleBinding`.
pub fn validate_role_binding(binding: &RoleBinding) -> ErrorList {
    let mut errs = validate_object_meta(&binding.metadata, true, name_is_rbac, "metadata");
    errs.extend(validate_role_ref(&binding.role_ref, &["Role", "ClusterRole"]));
    for (i, subject) in binding.subjects.iter().flatten().enumerate() {
        errs.extend(validate_role_binding_subject(subject, true, &key("subjects", i)));
    }
    errs
}

/// The RoleBinding strategy's `ValidateUpdate`: `ValidateRoleBinding`, then
/// `ValidateRoleBindingUpdate` (which validates again, adds the metadata update rules and refuses
/// a changed `roleRef`).
pub fn validate_role_binding_update(new: &RoleBinding, old: &RoleBinding) -> ErrorList {
    let mut errs = validate_role_binding(new);
    errs.extend(validate_role_binding(new));
    errs.extend(validate_object_meta_update(&new.metadata, &old.metadata, "metadata"));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

/// `ValidateClusterRoleBinding`.
pub fn validate_cluster_role_binding(binding: &ClusterRoleBinding) -> ErrorList {
    let mut errs = validate_object_meta(&binding.metadata, false, name_is_rbac, "metadata");
    errs.extend(validate_role_ref(&binding.role_ref, &["ClusterRole"]));
    for (i, subject) in binding.subjects.iter().flatten().enumerate() {
        errs.extend(validate_role_binding_subject(subject, false, &key("subjects", i)));
    }
    errs
}

/// The ClusterRoleBinding strategy's `ValidateUpdate`, shaped as the RoleBinding one.
pub fn validate_cluster_role_binding_update(new: &ClusterRoleBinding, old: &ClusterRoleBinding) -> ErrorList {
    let mut errs = validate_cluster_role_binding(new);
    errs.extend(validate_cluster_role_binding(new));
    errs.extend(validate_object_meta_update(&new.metadata, &old.metadata, "metadata"));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

/// A binding's `roleRef` is immutable: changing what a binding grants would silently change the
/// permissions of every subject, so Kubernetes makes clients delete and recreate it.
fn role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> Option<FieldError> {
    (new != old).then(|| FieldError::invalid("roleRef", BadValue::Raw(go_role_ref(new)), "cannot change roleRef"))
}

/// `ValidateRoleBindingSubject`. `namespaced` is true for RoleBindings, whose ServiceAccount
/// subjects may leave the namespace out.
pub fn validate_role_binding_subject(subject: &Subject, namespaced: bool, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    if subject.name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    }
    let api_group = subject.api_group.as_deref().unwrap_or("");
    match subject.kind.as_str() {
        SUBJECT_KIND_SERVICE_ACCOUNT => {
            if !subject.name.is_empty() {
                for msg in name_is_dns_subdomain(&subject.name, false) {
                    errs.push(FieldError::invalid(child(path, "name"), subject.name.as_str(), msg));
                }
            }
            if !api_group.is_empty() {
                errs.push(FieldError::not_supported(child(path, "apiGroup"), api_group, &[""]));
            }
            if !namespaced && subject.namespace.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(child(path, "namespace"), ""));
            }
        }
        SUBJECT_KIND_USER | SUBJECT_KIND_GROUP => {
            if api_group != RBAC_GROUP {
                errs.push(FieldError::not_supported(child(path, "apiGroup"), api_group, &[RBAC_GROUP]));
            }
        }
        other => errs.push(FieldError::not_supported(
            child(path, "kind"),
            other,
            &[SUBJECT_KIND_SERVICE_ACCOUNT, SUBJECT_KIND_USER, SUBJECT_KIND_GROUP],
        )),
    }
    errs
}

/// `v1validation.ValidateLabelSelector`; `allow_invalid_label_value` is
/// `AllowInvalidLabelValueInSelector`.
pub fn validate_label_selector(selector: &LabelSelector, allow_invalid_label_value: bool, path: &str) -> ErrorList {
    let mut errs = validate_labels(selector.match_labels.as_ref(), &child(path, "matchLabels"));
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_label_selector_requirement(
            requirement,
            allow_invalid_label_value,
            &key(&child(path, "matchExpressions"), i),
        ));
    }
    errs
}

/// `v1validation.ValidateLabelSelectorRequirement`.
fn validate_label_selector_requirement(
    requirement: &LabelSelectorRequirement,
    allow_invalid_label_value: bool,
    path: &str,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let values = requirement.values.as_deref().unwrap_or(&[]);
    match requirement.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    child(path, "values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    child(path, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        other => errs.push(FieldError::invalid(child(path, "operator"), other, "not a valid selector operator")),
    }
    for msg in is_qualified_name(&requirement.key) {
        errs.push(FieldError::invalid(child(path, "key"), requirement.key.as_str(), msg));
    }
    if !allow_invalid_label_value {
        for (i, value) in values.iter().enumerate() {
            for msg in is_valid_label_value(value) {
                errs.push(FieldError::invalid(key(&child(path, "values"), i), value.as_str(), msg));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretBytes;
    use crate::field::aggregate_message;
    use k8s_openapi::api::core::v1::NamespaceSpec;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
    // apimachinery v0.32.13 pkg/apis/meta/v1/validation/validation_test.go:433 asserts this
    // text, double spaces included.
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const CANARY: &str = "CANARY-8c1f-secret-value";

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn secret(name: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("app".to_string()),
                ..Default::default()
            },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), SecretBytes::new(v.as_bytes().to_vec()))).collect()),
            type_: (!type_.is_empty()).then(|| type_.to_string()),
            ..Default::default()
        }
    }

    fn assert_no_canary(errs: &ErrorList) {
        for e in errs {
            assert!(!e.to_string().contains(CANARY), "{e}");
            assert!(!e.body().contains(CANARY), "{e}");
        }
    }

    #[test]
    fn dns1123_subdomain_table() {
        // validation_test.go TestIsDNS1123Subdomain; messages from validation.go.
        let too_long = "a".repeat(254);
        let cases: &[(&str, &[&str])] = &[
            ("a", &[]),
            ("ab.c-d.e0", &[]),
            (&"a".repeat(253), &[]),
            ("Bad_Name", &[SUBDOMAIN_MSG]),
            ("UPPER", &[SUBDOMAIN_MSG]),
            ("_", &[SUBDOMAIN_MSG]),
            ("-leading", &[SUBDOMAIN_MSG]),
            ("trailing-", &[SUBDOMAIN_MSG]),
            ("a..b", &[SUBDOMAIN_MSG]),
            (".a", &[SUBDOMAIN_MSG]),
            ("", &[SUBDOMAIN_MSG]),
            ("\u{430}pp", &[SUBDOMAIN_MSG]),
            ("a\0b", &[SUBDOMAIN_MSG]),
        ];
        for (v, want) in cases {
            assert_eq!(is_dns1123_subdomain(v), *want, "{v:?}");
        }
        assert_eq!(is_dns1123_subdomain(&too_long), vec!["must be no more than 253 characters".to_string()]);
    }

    #[test]
    fn dns1123_label_table() {
        let cases: &[(&str, &[&str])] = &[
            ("app", &[]),
            (&"a".repeat(63), &[]),
            ("a.b", &["must not contain dots"]),
            ("A", &[LABEL_MSG]),
            ("-a", &[LABEL_MSG]),
            ("", &[LABEL_MSG]),
        ];
        for (v, want) in cases {
            assert_eq!(is_dns1123_label(v), *want, "{v:?}");
        }
        // A 64-char label: too long, and otherwise well-formed.
        assert_eq!(is_dns1123_label(&"a".repeat(64)), vec!["must be no more than 63 characters".to_string()]);
        assert_eq!(
            is_dns1123_label(&format!("{}.b", "a".repeat(63))),
            vec!["must be no more than 63 characters".to_string(), "must not contain dots".to_string()]
        );
    }

    #[test]
    fn config_map_key_table() {
        // validation_test.go TestIsConfigMapKey.
        let long = "a".repeat(254);
        let cases: &[(&str, &[&str])] = &[
            ("good", &[]),
            ("good_key.with-dashes", &[]),
            (".dotfile", &[]),
            ("a..b", &[]),
            (&"a".repeat(253), &[]),
            ("", &[KEY_MSG]),
            (".", &[r"must not be '.'"]),
            ("..", &[r"must not be '..'"]),
            ("..data", &[r"must not start with '..'"]),
            ("..x", &[r"must not start with '..'"]),
            ("a/b", &[KEY_MSG]),
            ("a\\b", &[KEY_MSG]),
            ("a b", &[KEY_MSG]),
            ("bad key!", &[KEY_MSG]),
            ("k\u{e9}y", &[KEY_MSG]),
            ("\u{200d}", &[KEY_MSG]),
        ];
        for (v, want) in cases {
            assert_eq!(is_config_map_key(v), *want, "{v:?}");
        }
        assert_eq!(is_config_map_key(&long), vec!["must be no more than 253 characters".to_string()]);
    }

    #[test]
    fn qualified_name_table() {
        // validation_test.go TestIsQualifiedName.
        let cases: &[(&str, Vec<String>)] = &[
            ("simple", vec![]),
            ("now-with-dashes", vec![]),
            ("example.com/Name_1", vec![]),
            ("1.2.3.4/5678", vec![]),
            ("/name", vec!["prefix part must be non-empty".into()]),
            ("prefix/", vec!["name part must be non-empty".into(), NAME_PART_MSG.into()]),
            ("Bad_Prefix/x", vec![format!("prefix part {SUBDOMAIN_MSG}")]),
            ("a b", vec![NAME_PART_MSG.into()]),
            ("-x", vec![NAME_PART_MSG.into()]),
            (&"a".repeat(64), vec!["name part must be no more than 63 characters".into()]),
            (
                "a/b/c",
                vec![format!(
                    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
                )],
            ),
        ];
        for (v, want) in cases {
            assert_eq!(&is_qualified_name(v), want, "{v:?}");
        }
    }

    #[test]
    fn label_value_table() {
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("My_value-1.2").is_empty());
        assert_eq!(is_valid_label_value("-x"), vec![LABEL_VALUE_MSG.to_string()]);
        assert_eq!(is_valid_label_value(&"a".repeat(64)), vec!["must be no more than 63 characters".to_string()]);
    }

    #[test]
    fn path_segment_names() {
        // path/name_test.go.
        assert_eq!(is_valid_path_segment_name(".."), vec!["may not be '..'".to_string()]);
        assert_eq!(
            is_valid_path_segment_name("a/b%c"),
            vec!["may not contain '/'".to_string(), "may not contain '%'".to_string()]
        );
        assert!(name_is_path_segment("system:admin", false).is_empty());
    }

    #[test]
    fn generate_name_prefix_masks_trailing_dash_like_go() {
        // generic.go maskTrailingDash: "ab-" -> "a" + "a"; a lone "-" is checked as is.
        assert!(name_is_dns_subdomain("db-", true).is_empty());
        assert!(name_is_dns_label("x-", true).is_empty());
        assert_eq!(name_is_dns_subdomain("-", true), vec![SUBDOMAIN_MSG.to_string()]);
        assert_eq!(name_is_dns_subdomain("db-", false), vec![SUBDOMAIN_MSG.to_string()]);
    }

    #[test]
    fn secret_names_and_namespaces() {
        // The reliability list's bad names, each refused with metadata.name.
        for bad in ["Bad_Name", "UPPER", "_", "-lead", "trail-", "a..b"] {
            let errs = validate_secret(&secret(bad, "", &[]));
            assert_eq!(
                messages(&errs),
                vec![format!("metadata.name: Invalid value: {}: {SUBDOMAIN_MSG}", go_quote(bad))]
            );
        }
        let long = "a".repeat(254);
        assert_eq!(
            messages(&validate_secret(&secret(&long, "", &[]))),
            vec![format!("metadata.name: Invalid value: \"{long}\": must be no more than 253 characters")]
        );
        // kubectl-wire.md §11: `create secret` with an invalid name.
        let errs = validate_secret(&secret("Bad_Name", "", &[]));
        assert_eq!(errs[0].to_string(), format!("metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}"));
        // Unicode tricks are escaped as Go's %q escapes them.
        let errs = validate_secret(&secret("db\u{202e}", "", &[]));
        assert_eq!(errs[0].to_string(), format!("metadata.name: Invalid value: \"db\\u202e\": {SUBDOMAIN_MSG}"));

        let mut s = secret("db", "", &[]);
        s.metadata.namespace = Some("a".repeat(64));
        assert_eq!(
            messages(&validate_secret(&s)),
            vec![format!(
                "metadata.namespace: Invalid value: \"{}\": must be no more than 63 characters",
                "a".repeat(64)
            )]
        );
        s.metadata.namespace = None;
        assert_eq!(messages(&validate_secret(&s)), vec!["metadata.namespace: Required value".to_string()]);
        s.metadata.namespace = Some("app".into());
        s.metadata.name = None;
        assert_eq!(
            messages(&validate_secret(&s)),
            vec!["metadata.name: Required value: name or generateName is required".to_string()]
        );
        s.metadata.generate_name = Some("Bad-".into());
        s.metadata.name = Some("Bad-x1y2z".into());
        assert_eq!(
            messages(&validate_secret(&s)),
            vec![
                format!("metadata.generateName: Invalid value: \"Bad-\": {SUBDOMAIN_MSG}"),
                format!("metadata.name: Invalid value: \"Bad-x1y2z\": {SUBDOMAIN_MSG}"),
            ]
        );
    }

    #[test]
    fn secret_keys() {
        // kubectl-wire.md §11: an invalid data key is refused at data[<key>].
        let cases: &[(&str, &str)] = &[
            ("", KEY_MSG),
            (".", "must not be '.'"),
            ("..", "must not be '..'"),
            ("..data", "must not start with '..'"),
            ("a/b", KEY_MSG),
            ("a b", KEY_MSG),
            ("bad key!", KEY_MSG),
            ("\u{441}ecret", KEY_MSG),
        ];
        for (k, msg) in cases {
            let errs = validate_secret(&secret("db", "", &[(k, CANARY)]));
            assert_eq!(messages(&errs), vec![format!("data[{k}]: Invalid value: {}: {msg}", go_quote(k))], "{k:?}");
            assert_no_canary(&errs);
        }
        let long = "k".repeat(254);
        let errs = validate_secret(&secret("db", "", &[(&long, "v")]));
        assert_eq!(
            messages(&errs),
            vec![format!("data[{long}]: Invalid value: \"{long}\": must be no more than 253 characters")]
        );
        // One bad key rejects the whole object even when others are fine.
        let errs = validate_secret(&secret("db", "", &[("good", "v"), ("a/b", "v")]));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "data[a/b]");
    }

    #[test]
    fn secret_size_limit_is_one_mebibyte_of_values() {
        // ValidateSecret: field.TooLong(dataPath, "", core.MaxSecretSize). apimachinery v0.32's
        // TooLong reads "may not be more than %d bytes" (v0.31 and earlier: "must have at most").
        let exactly = "x".repeat(secret::MAX_SECRET_SIZE);
        assert!(validate_secret(&secret("db", "", &[("a", &exactly)])).is_empty());
        let half = "x".repeat(secret::MAX_SECRET_SIZE / 2);
        assert!(validate_secret(&secret("db", "", &[("a", &half), ("b", &half)])).is_empty());
        let over = format!("{half}x");
        let errs = validate_secret(&secret("db", "", &[("a", &half), ("b", &over)]));
        assert_eq!(messages(&errs), vec!["data: Too long: may not be more than 1048576 bytes".to_string()]);
        assert_eq!(errs[0].reason(), "FieldValueTooLong");
        assert_eq!(errs[0].body(), "Too long: may not be more than 1048576 bytes");
    }

    #[test]
    fn typed_secrets() {
        // ValidateSecret's type switch; the tls message is kubectl-wire.md §11's recorded body.
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            ("kubernetes.io/tls", &[], &["data[tls.crt]: Required value", "data[tls.key]: Required value"]),
            ("kubernetes.io/tls", &[("tls.crt", "c")], &["data[tls.key]: Required value"]),
            ("kubernetes.io/tls", &[("tls.crt", ""), ("tls.key", "")], &[]),
            ("kubernetes.io/basic-auth", &[], &["data[username]: Required value", "data[password]: Required value"]),
            ("kubernetes.io/basic-auth", &[("password", "")], &[]),
            ("kubernetes.io/ssh-auth", &[("ssh-privatekey", "")], &["data[ssh-privatekey]: Required value"]),
            ("kubernetes.io/ssh-auth", &[("ssh-privatekey", "k")], &[]),
            ("kubernetes.io/dockercfg", &[], &["data[.dockercfg]: Required value"]),
            ("kubernetes.io/dockerconfigjson", &[], &["data[.dockerconfigjson]: Required value"]),
            ("kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", r#"{"auths":{}}"#)], &[]),
            ("kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", "null")], &[]),
            (
                "kubernetes.io/dockerconfigjson",
                &[(".dockerconfigjson", "[1]")],
                &[
                    "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": json: cannot unmarshal array into Go value of type map[string]interface {}",
                ],
            ),
            (
                "kubernetes.io/dockercfg",
                &[(".dockercfg", "{\"a\":")],
                &["data[.dockercfg]: Invalid value: \"<secret contents redacted>\": unexpected end of JSON input"],
            ),
            (
                "kubernetes.io/dockercfg",
                &[(".dockercfg", "")],
                &["data[.dockercfg]: Invalid value: \"<secret contents redacted>\": unexpected end of JSON input"],
            ),
            (
                "kubernetes.io/service-account-token",
                &[],
                &["metadata.annotations[kubernetes.io/service-account.name]: Required value"],
            ),
            ("bootstrap.kubernetes.io/token", &[], &[]),
            ("example.com/anything", &[], &[]),
            ("", &[], &[]),
        ];
        for (type_, data, want) in cases {
            let errs = validate_secret(&secret("db", type_, data));
            assert_eq!(messages(&errs), *want, "{type_} {data:?}");
        }
        let mut sa = secret("db", "kubernetes.io/service-account-token", &[]);
        sa.metadata.annotations = Some([(SERVICE_ACCOUNT_NAME_KEY.to_string(), "default".to_string())].into());
        assert!(validate_secret(&sa).is_empty());
    }

    #[test]
    fn malformed_docker_config_never_echoes_content() {
        // CVE-2020-8564: the content of a malformed docker config must not reach the error.
        for bad in [format!("{{\"auths\": {CANARY}}}"), CANARY.to_string(), format!("\"{CANARY}\" trailing")] {
            let errs = validate_secret(&secret("db", "kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", &bad)]));
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0]
                    .to_string()
                    .starts_with("data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": ")
            );
            assert_no_canary(&errs);
            // Not even the first character of the content (Go's message would show 'C').
            assert!(!errs[0].detail.contains("'C'"), "{}", errs[0].detail);
        }
    }

    #[test]
    fn secret_update_rules() {
        // kubectl-wire.md §11 recorded body: type change plus missing keys.
        let mut new = secret("db", "Opaque", &[]);
        new.metadata.resource_version = Some("5".into());
        let old_tls = secret("db", "kubernetes.io/tls", &[]);
        let mut new_tls = new.clone();
        new_tls.type_ = Some("kubernetes.io/tls".into());
        let mut old_opaque = old_tls.clone();
        old_opaque.type_ = None;
        let errs = validate_secret_update(&new_tls, &old_opaque);
        assert_eq!(
            aggregate_message(&errs),
            "[type: Invalid value: \"kubernetes.io/tls\": field is immutable, data[tls.crt]: Required value, data[tls.key]: Required value]"
        );
        // Empty type and Opaque are the same type.
        assert!(validate_secret_update(&new, &old_opaque).is_empty());

        // Immutable secrets: data frozen, immutable cannot be unset; labels may change.
        let mut frozen = secret("frozen", "", &[("a", CANARY)]);
        frozen.immutable = Some(true);
        frozen.metadata.resource_version = Some("7".into());
        let mut changed = frozen.clone();
        changed.data = Some([("a".to_string(), SecretBytes::new(b"other".to_vec()))].into());
        let errs = validate_secret_update(&changed, &frozen);
        assert_eq!(messages(&errs), vec!["data: Forbidden: field is immutable when `immutable` is set".to_string()]);
        assert_eq!(errs[0].reason(), "FieldValueForbidden");
        assert_no_canary(&errs);
        let mut unset = frozen.clone();
        unset.immutable = Some(false);
        assert_eq!(
            messages(&validate_secret_update(&unset, &frozen)),
            vec!["immutable: Forbidden: field is immutable when `immutable` is set".to_string()]
        );
        unset.immutable = None;
        assert_eq!(validate_secret_update(&unset, &frozen).len(), 1);
        let mut relabelled = frozen.clone();
        relabelled.metadata.labels = Some([("tier".to_string(), "db".to_string())].into());
        assert!(validate_secret_update(&relabelled, &frozen).is_empty());
        // None and empty data are the same data.
        let mut no_data = frozen.clone();
        no_data.data = None;
        let mut empty_data = frozen.clone();
        empty_data.data = Some(BTreeMap::new());
        assert!(validate_secret_update(&empty_data, &no_data).is_empty());
    }

    #[test]
    fn object_meta_update_rules() {
        // objectmeta.go ValidateObjectMetaAccessorUpdate.
        let old = ObjectMeta {
            name: Some("db".into()),
            namespace: Some("app".into()),
            uid: Some("u-1".into()),
            resource_version: Some("3".into()),
            generation: Some(2),
            creation_timestamp: Some(Time("2024-01-02T03:04:05Z".parse().unwrap())),
            ..Default::default()
        };
        let new = ObjectMeta {
            name: Some("db2".into()),
            namespace: Some("other".into()),
            uid: Some("u-2".into()),
            resource_version: None,
            generation: Some(1),
            creation_timestamp: Some(Time("2025-06-07T08:09:10.5Z".parse().unwrap())),
            deletion_grace_period_seconds: Some(30),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, "metadata")),
            vec![
                "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
                "metadata.generation: Invalid value: 1: must not be decremented",
                "metadata.name: Invalid value: \"db2\": field is immutable",
                "metadata.namespace: Invalid value: \"other\": field is immutable",
                "metadata.uid: Invalid value: \"u-2\": field is immutable",
                "metadata.creationTimestamp: Invalid value: 2025-06-07 08:09:10.5 +0000 UTC: field is immutable",
                "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable",
            ]
        );
        // New finalizers are refused once deletion has begun.
        let deleting = ObjectMeta {
            deletion_timestamp: Some(Time("2024-01-02T03:04:05Z".parse().unwrap())),
            finalizers: Some(vec!["example.com/a".into()]),
            resource_version: Some("3".into()),
            ..Default::default()
        };
        let mut more = deleting.clone();
        more.finalizers = Some(vec!["example.com/a".into(), "example.com/c".into(), "example.com/b".into()]);
        assert_eq!(
            messages(&validate_object_meta_update(&more, &deleting, "metadata")),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/b\", \"example.com/c\"}"
            ]
        );
        let mut undeleted = deleting.clone();
        undeleted.deletion_timestamp = None;
        assert_eq!(
            messages(&validate_object_meta_update(&undeleted, &deleting, "metadata")),
            vec!["metadata.deletionTimestamp: Invalid value: null: field is immutable"]
        );
    }

    #[test]
    fn labels_annotations_owner_references_finalizers() {
        let mut s = secret("db", "", &[]);
        s.metadata.labels =
            Some([("a b".to_string(), "-x".to_string()), ("ok".to_string(), "fine".to_string())].into());
        s.metadata.annotations = Some(
            [("Example.COM/Key".to_string(), CANARY.to_string()), ("bad key".to_string(), CANARY.to_string())].into(),
        );
        s.metadata.finalizers =
            Some(vec!["orphan".into(), "foregroundDeletion".into(), "custom".into(), "bad/name/x".into()]);
        s.metadata.generation = Some(-1);
        let errs = validate_secret(&s);
        assert_no_canary(&errs);
        assert_eq!(
            messages(&errs),
            vec![
                "metadata.generation: Invalid value: -1: must be greater than or equal to 0".to_string(),
                format!("metadata.labels: Invalid value: \"a b\": {NAME_PART_MSG}"),
                format!("metadata.labels: Invalid value: \"-x\": {LABEL_VALUE_MSG}"),
                format!("metadata.annotations: Invalid value: \"bad key\": {NAME_PART_MSG}"),
                "metadata.finalizers: Invalid value: \"bad/name/x\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
                "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\", \"custom\", \"bad/name/x\"}: finalizer orphan and foregroundDeletion cannot be both set".to_string(),
                "metadata.finalizers[2]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified".to_string(),
            ]
        );

        // 256 KiB of annotations (keys + values) is the limit; values are never shown.
        let mut s = secret("db", "", &[]);
        let big = CANARY.repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES / CANARY.len());
        let filler = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - big.len() - 2);
        s.metadata.annotations = Some([("a".to_string(), big.clone()), ("b".to_string(), filler)].into());
        assert!(validate_secret(&s).is_empty());
        s.metadata.annotations.as_mut().unwrap().insert("c".into(), String::new());
        let errs = validate_secret(&s);
        assert_eq!(
            messages(&errs),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes".to_string()]
        );
        assert_no_canary(&errs);

        // Owner references: paths without index, Go's %#v for the banned and duplicate cases.
        let owner = |api: &str, kind: &str, name: &str, uid: &str, controller: Option<bool>| OwnerReference {
            api_version: api.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller,
            block_owner_deletion: None,
        };
        let mut s = secret("db", "", &[]);
        s.metadata.owner_references = Some(vec![
            owner("apps/", "", "", "", None),
            owner("v1", "Event", "e", "u", None),
            owner("v1", "Pod", "a", "u1", Some(true)),
            owner("v1", "Pod", "b", "u2", Some(true)),
        ]);
        let errs = validate_secret(&s);
        assert_eq!(
            errs[0].to_string(),
            "metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty"
        );
        assert_eq!(errs[1].to_string(), "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty");
        assert_eq!(errs[2].to_string(), "metadata.ownerReferences.name: Invalid value: \"\": name must not be empty");
        assert_eq!(errs[3].to_string(), "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty");
        assert_eq!(
            errs[4].to_string(),
            "metadata.ownerReferences: Invalid value: v1.OwnerReference{APIVersion:\"v1\", Kind:\"Event\", Name:\"e\", UID:\"u\", Controller:(*bool)(nil), BlockOwnerDeletion:(*bool)(nil)}: /v1, Kind=Event is disallowed from being an owner"
        );
        assert!(errs[5].to_string().ends_with(
            ": Only one reference can have Controller set to true. Found \"true\" in references for Pod/a and Pod/b"
        ));
        assert_eq!(errs.len(), 6);
    }

    #[test]
    fn managed_fields_entries() {
        let mut s = secret("db", "", &[]);
        s.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            operation: Some("Patch".into()),
            fields_type: Some("FieldsV2".into()),
            manager: Some("kube\u{7}ctl".into()),
            subresource: Some("s".repeat(257)),
            ..Default::default()
        }]);
        assert_eq!(
            messages(&validate_secret(&s)),
            vec![
                "metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
                "metadata.managedFields[0].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
                "metadata.managedFields[0].manager: Invalid value: \"kube\\actl\": invalid character U+0007 (at position 4)",
                "metadata.managedFields[0].subresource: Too long: may not be more than 256 bytes",
            ]
        );
    }

    #[test]
    fn namespaces() {
        let ns = |name: &str| Namespace {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        };
        assert!(validate_namespace(&ns("app")).is_empty());
        assert_eq!(
            messages(&validate_namespace(&ns(&"a".repeat(64)))),
            vec![format!("metadata.name: Invalid value: \"{}\": must be no more than 63 characters", "a".repeat(64))]
        );
        assert_eq!(
            messages(&validate_namespace(&ns("a.b"))),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        assert_eq!(
            messages(&validate_namespace(&ns("App"))),
            vec![format!("metadata.name: Invalid value: \"App\": {LABEL_MSG}")]
        );
        let mut namespaced = ns("app");
        namespaced.metadata.namespace = Some("x".into());
        assert_eq!(
            messages(&validate_namespace(&namespaced)),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let mut finalized = ns("app");
        finalized.spec =
            Some(NamespaceSpec { finalizers: Some(vec!["kubernetes".into(), "mine".into(), "a b".into()]) });
        assert_eq!(
            messages(&validate_namespace(&finalized)),
            vec![
                "spec.finalizers: Invalid value: \"mine\": name is neither a standard finalizer name nor is it fully qualified".to_string(),
                format!("spec.finalizers: Invalid value: \"a b\": {NAME_PART_MSG}"),
                "spec.finalizers: Invalid value: \"a b\": name is neither a standard finalizer name nor is it fully qualified".to_string(),
            ]
        );
        let mut old = ns("app");
        old.metadata.resource_version = Some("1".into());
        let mut renamed = ns("other");
        renamed.metadata.resource_version = Some("1".into());
        assert_eq!(
            messages(&validate_namespace_update(&renamed, &old)),
            vec!["metadata.name: Invalid value: \"other\": field is immutable"]
        );
    }

    fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), ..Default::default() }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], urls: &[&str]) -> PolicyRule {
        let list = |v: &[&str]| (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: list(groups),
            resources: list(resources),
            non_resource_urls: list(urls),
            resource_names: None,
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef { api_group: RBAC_GROUP.into(), kind: kind.into(), name: name.into() }
    }

    fn subject(kind: &str, name: &str, group: Option<&str>, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            api_group: group.map(Into::into),
            namespace: namespace.map(Into::into),
        }
    }

    #[test]
    fn service_accounts_have_dns_subdomain_names() {
        let sa = |name: &str| ServiceAccount { metadata: meta(name, Some("app")), ..Default::default() };
        assert!(validate_service_account(&sa("builder.v2")).is_empty());
        assert_eq!(
            messages(&validate_service_account(&sa("Bad_Name"))),
            vec![format!("metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}")]
        );
        let mut old = sa("builder");
        old.metadata.resource_version = Some("1".into());
        let mut renamed = sa("other");
        renamed.metadata.resource_version = Some("1".into());
        assert_eq!(
            messages(&validate_service_account_update(&renamed, &old)),
            vec!["metadata.name: Invalid value: \"other\": field is immutable"]
        );
    }

    #[test]
    fn rbac_names_are_path_segments_even_as_prefixes() {
        let role = |name: &str| Role { metadata: meta(name, Some("app")), rules: None };
        assert!(validate_role(&role("system:controller:Reader_1")).is_empty());
        assert_eq!(
            messages(&validate_role(&role("a/b"))),
            vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        assert_eq!(
            messages(&validate_role(&role(".."))),
            vec!["metadata.name: Invalid value: \"..\": may not be '..'"]
        );
        // ValidateRBACName ignores the prefix flag: a generateName of ".." is refused too.
        let generated = Role {
            metadata: ObjectMeta { generate_name: Some("..".into()), name: Some("x".into()), ..meta("x", Some("app")) },
            rules: None,
        };
        assert_eq!(
            messages(&validate_role(&generated)),
            vec!["metadata.generateName: Invalid value: \"..\": may not be '..'"]
        );
    }

    #[test]
    fn policy_rules_match_kubernetes_messages() {
        let role = |rules: Vec<PolicyRule>| Role { metadata: meta("r", Some("app")), rules: Some(rules) };
        assert!(validate_role(&role(vec![rule(&["get"], &[""], &["secrets"], &[])])).is_empty());
        assert_eq!(
            messages(&validate_role(&role(vec![rule(&[], &[], &[], &[])]))),
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        assert_eq!(
            messages(&validate_role(&role(vec![rule(&["get"], &[""], &["secrets"], &["/healthz"])]))),
            vec![
                "rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: rules cannot apply to both regular resources and non-resource URLs",
            ]
        );
        let cluster = |rules: Vec<PolicyRule>| ClusterRole {
            metadata: meta("c", None),
            rules: Some(rules),
            aggregation_rule: None,
        };
        assert!(
            validate_cluster_role(&cluster(vec![rule(&["get"], &[], &[], &["/healthz", "/api/*"])]), false).is_empty()
        );
        assert_eq!(
            messages(&validate_cluster_role(&cluster(vec![rule(&["get"], &[], &["secrets"], &[])]), false)),
            vec!["rules[0].apiGroups: Required value: resource rules must supply at least one api group"]
        );
    }

    #[test]
    fn cluster_role_aggregation_selectors() {
        use k8s_openapi::api::rbac::v1::AggregationRule;
        let with = |selectors: Vec<LabelSelector>| ClusterRole {
            metadata: meta("agg", None),
            rules: None,
            aggregation_rule: Some(AggregationRule { cluster_role_selectors: Some(selectors) }),
        };
        let labels = |k: &str, v: &str| LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            match_expressions: None,
        };
        assert!(
            validate_cluster_role(&with(vec![labels("rbac.example.com/aggregate-to-view", "true")]), false).is_empty()
        );
        assert_eq!(
            messages(&validate_cluster_role(&with(vec![]), false)),
            vec![
                "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"
            ]
        );
        let bad_operator = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
        };
        assert_eq!(
            messages(&validate_cluster_role(&with(vec![bad_operator]), false)),
            vec![
                "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator",
                "aggregationRule.clusterRoleSelectors[0]: Invalid value: \"null\": invalid label selector.",
            ]
        );
        // A stored invalid label value stays acceptable on update, but the selector itself is
        // still reported as unusable.
        let odd_value = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["-x".into()]),
            }]),
        };
        let mut old = with(vec![odd_value.clone()]);
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        new.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert_eq!(
            aggregate_message(&validate_cluster_role_update(&new, &old)),
            "aggregationRule.clusterRoleSelectors[0]: Invalid value: \"null\": invalid label selector."
        );
        assert_eq!(
            messages(&validate_cluster_role(&with(vec![odd_value]), false))[0],
            format!(
                "aggregationRule.clusterRoleSelectors[0].matchExpressions[0].values[0]: Invalid value: \"-x\": {LABEL_VALUE_MSG}"
            )
        );
    }

    #[test]
    fn role_refs_and_subjects() {
        let binding = |role_ref: RoleRef, subjects: Vec<Subject>| RoleBinding {
            metadata: meta("b", Some("app")),
            role_ref,
            subjects: Some(subjects),
        };
        let ok = binding(
            role_ref("Role", "reader"),
            vec![
                subject("User", "alice", Some(RBAC_GROUP), None),
                subject("Group", "devs", Some(RBAC_GROUP), None),
                subject("ServiceAccount", "builder", None, None),
            ],
        );
        assert!(validate_role_binding(&ok).is_empty(), "{:?}", messages(&validate_role_binding(&ok)));

        let bad = binding(
            RoleRef { api_group: "example.com".into(), kind: "Secret".into(), name: String::new() },
            vec![
                subject("User", "", None, None),
                subject("ServiceAccount", "Builder", Some("v1"), None),
                subject("Robot", "r2", None, None),
            ],
        );
        assert_eq!(
            messages(&validate_role_binding(&bad)),
            vec![
                "roleRef.apiGroup: Unsupported value: \"example.com\": supported values: \"rbac.authorization.k8s.io\"".to_string(),
                "roleRef.kind: Unsupported value: \"Secret\": supported values: \"Role\", \"ClusterRole\"".to_string(),
                "roleRef.name: Required value".to_string(),
                "subjects[0].name: Required value".to_string(),
                "subjects[0].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"".to_string(),
                format!("subjects[1].name: Invalid value: \"Builder\": {SUBDOMAIN_MSG}"),
                "subjects[1].apiGroup: Unsupported value: \"v1\": supported values: \"\"".to_string(),
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"".to_string(),
            ]
        );

        let cluster = ClusterRoleBinding {
            metadata: meta("cb", None),
            role_ref: role_ref("Role", "reader"),
            subjects: Some(vec![subject("ServiceAccount", "builder", None, None)]),
        };
        assert_eq!(
            messages(&validate_cluster_role_binding(&cluster)),
            vec![
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ]
        );
    }

    #[test]
    fn role_ref_cannot_change() {
        let mut old =
            RoleBinding { metadata: meta("b", Some("app")), role_ref: role_ref("Role", "reader"), subjects: None };
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        assert!(validate_role_binding_update(&new, &old).is_empty());
        new.role_ref = role_ref("ClusterRole", "admin");
        assert_eq!(
            messages(&validate_role_binding_update(&new, &old)),
            vec![
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"admin\"}: cannot change roleRef"
            ]
        );
        let old = ClusterRoleBinding {
            metadata: old.metadata.clone(),
            role_ref: role_ref("ClusterRole", "view"),
            subjects: None,
        };
        let mut new = old.clone();
        new.metadata.namespace = None;
        let mut old = old;
        old.metadata.namespace = None;
        new.role_ref.name = "edit".into();
        assert_eq!(
            aggregate_message(&validate_cluster_role_binding_update(&new, &old)),
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
        );
    }

    #[test]
    fn rbac_update_lists_rule_errors_twice_as_kubernetes_does() {
        let mut old = Role { metadata: meta("r", Some("app")), rules: None };
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        new.rules = Some(vec![rule(&[], &[""], &["secrets"], &[])]);
        let errs = validate_role_update(&new, &old);
        assert_eq!(errs.len(), 2);
        assert_eq!(aggregate_message(&errs), "rules[0].verbs: Required value: verbs must contain at least one value");
    }
}
