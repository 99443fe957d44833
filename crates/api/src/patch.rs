//! Patch semantics for the PATCH content types kubectl sends, on objects in their JSON form, and the
//! redaction of kubectl's last-applied annotation on Secrets.
//!
//! - `application/merge-patch+json` (RFC 7386): [`merge_patch`], on the `json-patch` crate.
//! - `application/json-patch+json` (RFC 6902): [`json_patch`]. kube-apiserver applies these with
//!   `gopkg.in/evanphx/json-patch.v4`, whose behaviour differs from the letter of the RFC in ways
//!   clients can see (a `replace` of a missing object key adds it, negative array indices count from
//!   the end, a `test` for `null` passes on a missing key), so this module reproduces that library
//!   op by op, its error wording included, together with kube-apiserver's limits: at most
//!   [`MAX_JSON_PATCH_OPERATIONS`] operations and a cap on the bytes `copy` may add
//!   (CVE-2019-1002100).
//! - `application/strategic-merge-patch+json`: [`strategic_merge_patch`], a port of the apply half of
//!   apimachinery's `pkg/util/strategicpatch`, driven by a [`StrategicSchema`] instead of Go struct
//!   tags. Directive keys (`$patch`, `$retainKeys`, `$setElementOrder/…`,
//!   `$deleteFromPrimitiveList/…`) are consumed and any other `$` key is dropped, so none is stored.
//!
//! Errors name operations, paths and directives, never values: the objects are Secrets.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

/// The most operations kube-apiserver accepts in one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// kube-apiserver's default for `JSONPatchMaxCopyBytes`, the cap on what JSON-patch `copy` adds. It
/// equals the default request-body limit, so a patch can at most double what a client could send.
pub const DEFAULT_JSON_PATCH_MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The `Status.message` kube-apiserver sends (422 `Invalid`) for any JSON patch that does not apply:
/// it wraps the library error in `NewGenericServerResponse`, which replaces the text with this.
pub const JSON_PATCH_REJECTED_MESSAGE: &str = "the server rejected our request due to an error in our request";

/// How kube-apiserver classifies a failed patch, for the server to turn into a `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFailure {
    /// 400 `BadRequest`: the body is not a patch of its declared type.
    BadRequest,
    /// 422 `Invalid` with [`JSON_PATCH_REJECTED_MESSAGE`]: a well-formed patch that does not apply.
    Invalid,
    /// 413 `RequestEntityTooLarge`.
    RequestEntityTooLarge,
}

/// Why a patch could not be applied. Messages carry operation names, paths and directive names,
/// never a value from the object or the patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a patch of its declared type; the text is what kube-apiserver answers.
    #[error("{0}")]
    Malformed(String),
    /// A JSON-patch operation does not apply; `message` is evanphx/json-patch's wording.
    #[error("{message}")]
    OperationFailed { index: usize, message: String },
    /// JSON-patch `copy` operations together would add more than the limit.
    #[error(
        "Unable to complete the copy, the accumulated size increase of copy is {accumulated}, exceeding the limit {limit}"
    )]
    CopyLimitExceeded { accumulated: usize, limit: usize },
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations { max: usize, got: usize },
    /// The patched object would serialize to more than the caller's limit.
    #[error("the patched object would be {size} bytes, more than the limit of {limit}")]
    ResultTooLarge { size: usize, limit: usize },
    /// A strategic merge patch with a malformed directive or list; `path` is dotted field names.
    #[error("{message} at {path}")]
    InvalidStrategicPatch { path: String, message: String },
    /// [`redact_last_applied`] was given an annotation that is not a JSON object.
    #[error("the last-applied-configuration annotation is not a JSON object")]
    LastAppliedNotObject,
}

impl PatchError {
    /// How kube-apiserver classifies this failure.
    pub fn failure(&self) -> PatchFailure {
        match self {
            PatchError::Malformed(_) | PatchError::InvalidStrategicPatch { .. } | PatchError::LastAppliedNotObject => {
                PatchFailure::BadRequest
            }
            PatchError::OperationFailed { .. } | PatchError::CopyLimitExceeded { .. } => PatchFailure::Invalid,
            PatchError::TooManyOperations { .. } | PatchError::ResultTooLarge { .. } => {
                PatchFailure::RequestEntityTooLarge
            }
        }
    }

    /// The `Status.message` kube-apiserver sends for this failure.
    pub fn status_message(&self) -> String {
        match self.failure() {
            PatchFailure::Invalid => JSON_PATCH_REJECTED_MESSAGE.to_string(),
            PatchFailure::RequestEntityTooLarge => format!("Request entity too large: {self}"),
            PatchFailure::BadRequest => self.to_string(),
        }
    }
}

/// The Go type name in `json: cannot unmarshal <kind> into Go value of type …` for a JSON value.
fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 7386 merge patch
// ---------------------------------------------------------------------------------------------

/// Applies a JSON merge patch (RFC 7386): `null` deletes a key, objects merge, anything else
/// replaces. The patch must be an object, as kube-apiserver requires.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match patch {
        Value::Object(_) => {}
        // evanphx/json-patch's `ErrBadJSONPatch`.
        Value::Null => return Err(PatchError::Malformed("Invalid JSON Patch".to_string())),
        other => {
            return Err(PatchError::Malformed(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_json_kind(other)
            )));
        }
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// RFC 6902 JSON patch, as evanphx/json-patch v4 applies it
// ---------------------------------------------------------------------------------------------

/// Applies a JSON patch (RFC 6902) the way kube-apiserver does (see the module comment).
///
/// `max_result_bytes` caps both what `copy` operations may add in total (kube-apiserver's
/// `JSONPatchMaxCopyBytes`, with its error) and the size of the patched object.
pub fn json_patch(target: &Value, patch: &Value, max_result_bytes: usize) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go_json_kind(patch)
        )));
    };
    if let Some(op) = ops.iter().find(|op| !op.is_object()) {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            go_json_kind(op)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations { max: MAX_JSON_PATCH_OPERATIONS, got: ops.len() });
    }

    let mut doc = target.clone();
    let mut copied = 0usize;
    for (index, op) in ops.iter().enumerate() {
        let Value::Object(op) = op else { unreachable!("checked above") };
        apply_operation(&mut doc, op, &mut copied, max_result_bytes).map_err(|e| match e {
            OpError::Message(message) => PatchError::OperationFailed { index, message },
            OpError::CopyLimit { accumulated } => {
                PatchError::CopyLimitExceeded { accumulated, limit: max_result_bytes }
            }
        })?;
    }

    let size = serde_json::to_vec(&doc).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > max_result_bytes {
        return Err(PatchError::ResultTooLarge { size, limit: max_result_bytes });
    }
    Ok(doc)
}

enum OpError {
    Message(String),
    CopyLimit { accumulated: usize },
}

impl From<String> for OpError {
    fn from(s: String) -> Self {
        OpError::Message(s)
    }
}

const MISSING: &str = "missing value";
const INVALID_INDEX: &str = "invalid index referenced";

/// Reads a string member of an operation, as evanphx's `Operation.Path()`/`From()` do.
fn op_str(op: &Map<String, Value>, name: &str) -> Result<String, String> {
    match op.get(name) {
        None | Some(Value::Null) => Err(if name == "path" {
            format!("operation missing path field: {MISSING}")
        } else {
            format!("operation, missing from field: {MISSING}")
        }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("json: cannot unmarshal {} into Go value of type string", go_json_kind(other))),
    }
}

fn apply_operation(doc: &mut Value, op: &Map<String, Value>, copied: &mut usize, limit: usize) -> Result<(), OpError> {
    let kind = match op.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => "unknown",
    };
    // evanphx keeps a missing "value" as a nil node, which marshals as `null`.
    let value = || op.get("value").cloned().unwrap_or(Value::Null);
    match kind {
        "add" => {
            let path = op_str(op, "path").map_err(|_| format!("add operation failed to decode path: {MISSING}"))?;
            let Some((parents, key)) = split_pointer(&path) else {
                return Err(format!("add operation does not apply: doc is missing path: \"{path}\": {MISSING}").into());
            };
            let Some(con) = find_container(doc, &parents) else {
                return Err(format!("add operation does not apply: doc is missing path: \"{path}\": {MISSING}").into());
            };
            container_add(con, &key, value()).map_err(|e| format!("error in add for path: '{path}': {e}"))?;
        }
        "remove" => {
            let path = op_str(op, "path").map_err(|_| format!("remove operation failed to decode path: {MISSING}"))?;
            let con = split_pointer(&path).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(
                    format!("remove operation does not apply: doc is missing path: \"{path}\": {MISSING}").into()
                );
            };
            container_remove(con, &key).map_err(|e| format!("error in remove for path: '{path}': {e}"))?;
        }
        "replace" => {
            let path = op_str(op, "path").map_err(|e| format!("replace operation failed to decode path: {e}"))?;
            if path.is_empty() {
                let v = value();
                if !(v.is_object() || v.is_array()) {
                    return Err("replace operation value must be object or array".to_string().into());
                }
                *doc = v;
                return Ok(());
            }
            let con = split_pointer(&path).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(format!("replace operation does not apply: doc is missing path: {path}: {MISSING}").into());
            };
            match con {
                // evanphx's object `get` never fails, so replacing a missing key adds it.
                Value::Object(m) => {
                    m.insert(key, value());
                }
                Value::Array(a) => {
                    let idx = array_get_index(a.len(), &key).map_err(|_| {
                        format!("replace operation does not apply: doc is missing key: {path}: {MISSING}")
                    })?;
                    a[idx] = value();
                }
                _ => unreachable!("find_container returns containers"),
            }
        }
        "move" => {
            let from = op_str(op, "from").map_err(|e| format!("move operation failed to decode from: {e}"))?;
            let con = split_pointer(&from).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(
                    format!("move operation does not apply: doc is missing from path: {from}: {MISSING}").into()
                );
            };
            let moved = container_remove(con, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let path = op_str(op, "path").map_err(|e| format!("move operation failed to decode path: {e}"))?;
            let con = split_pointer(&path).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(format!(
                    "move operation does not apply: doc is missing destination path: {path}: {MISSING}"
                )
                .into());
            };
            container_add(con, &key, moved).map_err(|e| format!("error in move for path: '{path}': {e}"))?;
        }
        "test" => {
            let path = op_str(op, "path").map_err(|e| format!("test operation failed to decode path: {e}"))?;
            let failed = || OpError::Message(format!("testing value {path} failed: test failed"));
            let expected = op.get("value");
            if path.is_empty() {
                return if expected == Some(&*doc) { Ok(()) } else { Err(failed()) };
            }
            let con = split_pointer(&path).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(format!("test operation does not apply: is missing path: {path}: {MISSING}").into());
            };
            let actual = container_get(con, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))?;
            match (actual, expected) {
                (None, None | Some(Value::Null)) => {}
                (Some(a), Some(e)) if a == e => {}
                _ => return Err(failed()),
            }
        }
        "copy" => {
            let from = op_str(op, "from").map_err(|e| format!("copy operation failed to decode from: {e}"))?;
            let con = split_pointer(&from).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(
                    format!("copy operation does not apply: doc is missing from path: {from}: {MISSING}").into()
                );
            };
            // A missing object key copies evanphx's nil node, which marshals as `null`.
            let source =
                container_get(con, &key).map_err(|e| format!("error in copy for from: '{from}': {e}"))?.cloned();
            let path = op_str(op, "path").map_err(|_| format!("copy operation failed to decode path: {MISSING}"))?;
            let con = split_pointer(&path).and_then(|(parents, key)| Some((find_container(doc, &parents)?, key)));
            let Some((con, key)) = con else {
                return Err(format!(
                    "copy operation does not apply: doc is missing destination path: {path}: {MISSING}"
                )
                .into());
            };
            let size =
                source.as_ref().map(|v| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)).unwrap_or(0);
            *copied = copied.saturating_add(size);
            if *copied > limit {
                return Err(OpError::CopyLimit { accumulated: *copied });
            }
            container_add(con, &key, source.unwrap_or(Value::Null))
                .map_err(|e| format!("error while adding value during copy: {e}"))?;
        }
        other => return Err(format!("Unexpected kind: {other}").into()),
    }
    Ok(())
}

/// Splits a JSON pointer as evanphx's `findObject` does: by `/`, the first segment dropped, the
/// last one the key. `None` when there are fewer than two segments (the empty pointer).
fn split_pointer(path: &str) -> Option<(Vec<String>, String)> {
    let mut parts: Vec<String> = path.split('/').map(decode_token).collect();
    if parts.len() < 2 {
        return None;
    }
    let key = parts.pop().expect("at least two parts");
    parts.remove(0);
    Some((parts, key))
}

fn decode_token(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// Walks to the container holding the target; `None` when a step is missing or not a container.
fn find_container<'a>(doc: &'a mut Value, parents: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for part in parents {
        cur = match cur {
            Value::Object(m) => m.get_mut(part)?,
            Value::Array(a) => {
                let idx = array_get_index(a.len(), part).ok()?;
                &mut a[idx]
            }
            _ => return None,
        };
    }
    match cur {
        Value::Object(_) | Value::Array(_) => Some(cur),
        _ => None,
    }
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(key: &str) -> Result<i64, String> {
    let digits = key.strip_prefix(['+', '-']).unwrap_or(key);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing \"{key}\": invalid syntax"));
    }
    key.parse::<i64>().map_err(|_| format!("strconv.Atoi: parsing \"{key}\": value out of range"))
}

fn invalid_index(idx: i64) -> String {
    format!("Unable to access invalid index: {idx}: {INVALID_INDEX}")
}

/// An existing element's index, negative indices counting from the end (evanphx's default).
fn array_get_index(len: usize, key: &str) -> Result<usize, String> {
    let idx = atoi(key)?;
    let len = len as i64;
    let resolved = if idx < 0 {
        if idx < -len {
            return Err(invalid_index(idx));
        }
        idx + len
    } else {
        idx
    };
    if resolved >= len {
        return Err(invalid_index(resolved));
    }
    Ok(resolved as usize)
}

fn container_get<'a>(con: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) => Ok(Some(&a[array_get_index(a.len(), key)?])),
        _ => unreachable!("find_container returns containers"),
    }
}

fn container_add(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let idx = atoi(key).map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            let size = a.len() as i64 + 1;
            if idx >= size {
                return Err(invalid_index(idx));
            }
            let idx = if idx < 0 {
                if idx < -size {
                    return Err(invalid_index(idx));
                }
                idx + size
            } else {
                idx
            };
            a.insert(idx as usize, value);
            Ok(())
        }
        _ => unreachable!("find_container returns containers"),
    }
}

fn container_remove(con: &mut Value, key: &str) -> Result<Value, String> {
    match con {
        Value::Object(m) => {
            m.shift_remove(key).ok_or_else(|| format!("Unable to remove nonexistent key: {key}: {MISSING}"))
        }
        Value::Array(a) => {
            let idx = atoi(key)?;
            let len = a.len() as i64;
            if idx >= len {
                return Err(invalid_index(idx));
            }
            let idx = if idx < 0 {
                if idx < -len {
                    return Err(invalid_index(idx));
                }
                idx + len
            } else {
                idx
            };
            Ok(a.remove(idx as usize))
        }
        _ => unreachable!("find_container returns containers"),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------------------------

/// How a list field merges. Kubernetes declares this twice, as struct tags for strategic merge
/// patch (`patchStrategy`/`patchMergeKey`) and as OpenAPI extensions for server-side apply
/// (`x-kubernetes-list-type`/`-list-map-keys`); for the fields strongroom serves they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// A list of objects merged by the value of `key` (`patchMergeKey`, `listType=map`).
    Map { key: String },
    /// A list of scalars merged as a set (`patchStrategy=merge` on primitives, `listType=set`).
    Set,
}

/// The shape of a kind that patching and field management need to know, addressed by dotted paths
/// of field names from the object root (`metadata.ownerReferences`); list elements add no segment.
/// Objects not declared as maps are structs, lists not declared here are atomic (replaced whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategicSchema {
    lists: BTreeMap<String, ListType>,
    /// Objects whose keys are data (`data`, `metadata.labels`), not field names. Server-side apply
    /// owns their entries one by one and never owns the map itself.
    maps: BTreeSet<String>,
    /// Fields the main resource never manages, such as `status` of kinds with a status
    /// subresource (the strategy's `GetResetFields`).
    reset: BTreeSet<String>,
}

/// The segment that stands for any key inside a declared map, so a map key can never reach a
/// declared path.
pub(crate) const MAP_ENTRY_SEGMENT: &str = "*";

impl StrategicSchema {
    /// No maps, no mergeable lists: every object is a struct and every list atomic.
    pub fn empty() -> Self {
        StrategicSchema { lists: BTreeMap::new(), maps: BTreeSet::new(), reset: BTreeSet::new() }
    }

    /// `ObjectMeta`: `ownerReferences` merge by `uid`, `finalizers` are a set, `labels` and
    /// `annotations` are maps.
    pub fn object_meta() -> Self {
        Self::empty()
            .with_map_list("metadata.ownerReferences", "uid")
            .with_set_list("metadata.finalizers")
            .with_map("metadata.labels")
            .with_map("metadata.annotations")
    }

    /// core/v1 Secret.
    pub fn secret() -> Self {
        Self::object_meta().with_map("data").with_map("stringData")
    }

    /// core/v1 Namespace: `spec.finalizers` is atomic; `status` belongs to the status subresource.
    pub fn namespace() -> Self {
        Self::object_meta().with_reset_field("status")
    }

    pub fn with_map_list(mut self, path: &str, key: &str) -> Self {
        self.lists.insert(path.to_string(), ListType::Map { key: key.to_string() });
        self
    }

    pub fn with_set_list(mut self, path: &str) -> Self {
        self.lists.insert(path.to_string(), ListType::Set);
        self
    }

    pub fn with_map(mut self, path: &str) -> Self {
        self.maps.insert(path.to_string());
        self
    }

    pub fn with_reset_field(mut self, path: &str) -> Self {
        self.reset.insert(path.to_string());
        self
    }

    /// The merge behaviour of the list at `path`; `None` for atomic lists.
    pub fn list_type(&self, path: &str) -> Option<&ListType> {
        self.lists.get(path)
    }

    /// Whether the object at `path` is a map whose keys are data.
    pub fn is_map(&self, path: &str) -> bool {
        self.maps.contains(path)
    }

    pub(crate) fn list_type_at(&self, path: &[String]) -> Option<&ListType> {
        self.lists.get(&path.join("."))
    }

    pub(crate) fn is_map_at(&self, path: &[String]) -> bool {
        self.maps.contains(&path.join("."))
    }

    pub(crate) fn reset_fields(&self) -> impl Iterator<Item = &str> {
        self.reset.iter().map(String::as_str)
    }

    /// The schema path segment for `key` inside the object at `path`.
    pub(crate) fn child_segment(&self, path: &[String], key: &str) -> String {
        if self.is_map_at(path) { MAP_ENTRY_SEGMENT.to_string() } else { key.to_string() }
    }
}

/// The core kinds strongroom serves (Secret and Namespace) share one schema: `ObjectMeta`, the
/// Secret's `data`/`stringData` maps, and `status` as a reset field (Secrets have none).
impl Default for StrategicSchema {
    fn default() -> Self {
        Self::secret().with_reset_field("status")
    }
}

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch as kube-apiserver does (`StrategicMergeMapPatch` with
/// `MergeParallelList` and `IgnoreUnmatchedNulls`), with these differences: `$patch: merge` on an
/// object is accepted as a plain merge (Kubernetes answers 500), nested directives in values that
/// are new to the object are applied rather than stored, unknown `$` keys are dropped, an object
/// deleted by `$patch: delete` is removed rather than left as `{}`, and deleting the whole object
/// is refused.
pub fn strategic_merge_patch(target: &Value, patch: &Value, schema: &StrategicSchema) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_json_kind(patch)
        )));
    };
    let Value::Object(target) = target else {
        return Err(PatchError::Malformed("invalid JSON document".to_string()));
    };
    if patch.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some("delete") {
        return Err(smp_error(&[], "\"$patch: delete\" cannot delete the whole object"));
    }
    let smp = Smp { schema };
    let merged = smp.merge_map(target.clone(), patch.clone(), &mut Vec::new())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn smp_error(path: &[String], message: &str) -> PatchError {
    let path = if path.is_empty() { "the object root".to_string() } else { path.join(".") };
    PatchError::InvalidStrategicPatch { path, message: message.to_string() }
}

fn bad_retain_keys(path: &[String]) -> PatchError {
    smp_error(path, "invalid patch format of retainKeys")
}

fn bad_set_element_order(path: &[String]) -> PatchError {
    smp_error(path, "invalid patch format of setElementOrder list")
}

fn no_merge_key(path: &[String], key: &str) -> PatchError {
    smp_error(path, &format!("list element does not contain declared merge key: {key}"))
}

/// The element kind of a list, as Go's `reflect.Kind` of decoded JSON sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Null,
    Bool,
    Number,
    String,
    Map,
}

fn element_kind(path: &[String], lists: &[&[Value]]) -> Result<Option<ElementKind>, PatchError> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = match v {
            Value::Null => ElementKind::Null,
            Value::Bool(_) => ElementKind::Bool,
            Value::Number(_) => ElementKind::Number,
            Value::String(_) => ElementKind::String,
            Value::Object(_) => ElementKind::Map,
            Value::Array(_) => return Err(smp_error(path, "lists of lists are not supported")),
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(smp_error(path, "list element types are not identical"));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

fn same_json_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Removes directive and other `$` keys from a value that is stored as it is (atomic lists).
fn strip_dollar_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k, strip_dollar_keys(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_dollar_keys).collect()),
        other => other,
    }
}

struct Smp<'a> {
    schema: &'a StrategicSchema,
}

impl Smp<'_> {
    /// `mergeMap`. `None` means the patch deleted this object (`$patch: delete`).
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        if let Some(directive) = patch.shift_remove(DIRECTIVE_MARKER) {
            match directive.as_str() {
                Some("replace") => {
                    let replaced = self.merge_map(Map::new(), patch, path)?;
                    return Ok(Some(replaced.unwrap_or_default()));
                }
                Some("delete") => return Ok(None),
                Some("merge") => {}
                _ => return Err(smp_error(path, "unknown patch type")),
            }
        }

        self.apply_retain_keys(&mut original, &mut patch, path)?;
        self.merge_set_element_order(&mut original, &mut patch, path)?;

        for (key, patch_value) in patch {
            let (key, is_delete_list) = if let Some(rest) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                (rest.to_string(), true)
            } else if key.starts_with('$') {
                // Unknown directives are dropped so they are never stored.
                continue;
            } else {
                (key, false)
            };

            if patch_value.is_null() {
                original.shift_remove(&key);
                continue;
            }

            let segment = self.schema.child_segment(path, &key);
            path.push(segment);
            let result = match original.get_mut(&key) {
                None if is_delete_list => Ok(()),
                None => match self.fresh(patch_value, path)? {
                    Some(v) => {
                        original.insert(key.clone(), v);
                        Ok(())
                    }
                    None => Ok(()),
                },
                Some(existing) => self.merge_value(existing, patch_value, is_delete_list, path),
            };
            let delete = matches!(result, Err(MergeOutcome::Delete));
            path.pop();
            match result {
                Ok(()) => {}
                Err(MergeOutcome::Delete) => {}
                Err(MergeOutcome::Error(e)) => return Err(e),
            }
            if delete {
                original.shift_remove(&key);
            }
        }
        Ok(Some(original))
    }

    /// Merges `patch_value` into an existing value. `Err(Delete)` asks the caller to drop the key.
    fn merge_value(
        &self,
        existing: &mut Value,
        patch_value: Value,
        is_delete_list: bool,
        path: &mut Vec<String>,
    ) -> Result<(), MergeOutcome> {
        let list_type = self.schema.list_type_at(path).cloned();
        if is_delete_list {
            // Only a set-typed list of scalars honours `$deleteFromPrimitiveList`; Kubernetes would
            // overwrite other fields with the deletion list, which no client means.
            if let (Value::Array(current), Value::Array(to_delete), Some(ListType::Set)) =
                (&mut *existing, &patch_value, &list_type)
            {
                current.retain(|v| !to_delete.contains(v));
            }
            return Ok(());
        }
        if !same_json_kind(existing, &patch_value) {
            return match self.fresh(patch_value, path)? {
                Some(v) => {
                    *existing = v;
                    Ok(())
                }
                None => Err(MergeOutcome::Delete),
            };
        }
        match (existing, patch_value) {
            (Value::Object(o), Value::Object(p)) => match self.merge_map(std::mem::take(o), p, path)? {
                Some(m) => {
                    *o = m;
                    Ok(())
                }
                None => Err(MergeOutcome::Delete),
            },
            (Value::Array(o), Value::Array(p)) => {
                *o = self.merge_slice_handler(std::mem::take(o), p, list_type.as_ref(), path)?;
                Ok(())
            }
            (existing, p) => {
                *existing = p;
                Ok(())
            }
        }
    }

    /// A patch value for a key the object does not have, with its own directives applied.
    fn fresh(&self, v: Value, path: &mut Vec<String>) -> Result<Option<Value>, PatchError> {
        match v {
            Value::Object(m) => Ok(self.merge_map(Map::new(), m, path)?.map(Value::Object)),
            Value::Array(a) => {
                let list_type = self.schema.list_type_at(path).cloned();
                Ok(Some(Value::Array(self.merge_slice_handler(Vec::new(), a, list_type.as_ref(), path)?)))
            }
            other => Ok(Some(other)),
        }
    }

    /// `applyRetainKeysDirective`.
    fn apply_retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &[String],
    ) -> Result<(), PatchError> {
        let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
            return Ok(());
        };
        let Value::Array(retain) = retain else {
            return Err(bad_retain_keys(path));
        };
        let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
        for (k, v) in patch.iter() {
            if v.is_null()
                || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
                || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
            {
                continue;
            }
            if !retained(k) {
                return Err(bad_retain_keys(path));
            }
        }
        original.retain(|k, _| retained(k));
        Ok(())
    }

    /// `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder/<field>` and orders
    /// it by that list first, the patch second and the live object last.
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX)).cloned().collect();
        for directive in keys {
            let Some(Value::Array(order)) = patch.shift_remove(&directive) else {
                return Err(bad_set_element_order(path));
            };
            let field = directive[SET_ELEMENT_ORDER_PREFIX.len()..].to_string();
            let segment = self.schema.child_segment(path, &field);
            path.push(segment);
            let result = self.merge_ordered_list(original, patch, &field, &order, path);
            path.pop();
            result?;
        }
        Ok(())
    }

    fn merge_ordered_list(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        field: &str,
        order: &[Value],
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        let not_a_list = || smp_error(path, "expected a list");
        let original_list = match original.get(field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(not_a_list()),
        };
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(not_a_list()),
        };
        let list_type = self.schema.list_type_at(path).cloned();
        let merge_key = match &list_type {
            Some(ListType::Map { key }) => Some(key.as_str()),
            _ => None,
        };
        validate_patch_with_set_order_list(patch_list.as_deref(), order, merge_key, path)?;

        let merged = match (&original_list, patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => self.merge_slice_handler(Vec::new(), p, list_type.as_ref(), path)?,
            (Some(o), Some(p)) => self.merge_slice_handler(o.clone(), p, list_type.as_ref(), path)?,
            (None, None) => return Ok(()),
        };
        let original_list = original_list.unwrap_or_default();
        let patch_slice: &[Value] = patch.get(field).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        let kind = element_kind(path, &[&original_list, patch_slice])?;
        let ordered = match kind {
            None => merged,
            Some(kind) => {
                let (patch_items, server_only) = partition_by_presence(merged, order, merge_key, kind, path)?;
                normalize_element_order(patch_items, server_only, order, &original_list, merge_key, kind, path)?
            }
        };
        original.insert(field.to_string(), Value::Array(ordered));
        patch.shift_remove(field);
        Ok(())
    }

    /// `mergeSliceHandler`: lists with a merge strategy merge, all others are replaced.
    fn merge_slice_handler(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        list_type: Option<&ListType>,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        match list_type {
            None => Ok(patch.into_iter().map(strip_dollar_keys).collect()),
            Some(list_type) => self.merge_slice(original, patch, list_type, path),
        }
    }

    /// `mergeSlice`.
    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        list_type: &ListType,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let Some(kind) = element_kind(path, &[&original, &patch])? else {
            return Ok(original);
        };
        if kind != ElementKind::Map {
            // A set of scalars: the union, patch items in patch order, live items interleaved.
            let mut patch_items: Vec<Value> = Vec::new();
            for v in patch.iter() {
                if !patch_items.contains(v) {
                    patch_items.push(v.clone());
                }
            }
            let mut server_only: Vec<Value> = Vec::new();
            for v in original.iter() {
                if !patch_items.contains(v) && !server_only.contains(v) {
                    server_only.push(v.clone());
                }
            }
            return Ok(merge_sorted_slice(server_only, patch_items, &original, None, kind));
        }

        let ListType::Map { key } = list_type else {
            return Err(smp_error(path, "cannot merge lists without merge key for type map"));
        };
        let (original, patch) = self.merge_slice_with_special_elements(original, patch, key, path)?;
        let merged = self.merge_slice_without_special_elements(original.clone(), &patch, key, path)?;
        let (patch_items, server_only) = partition_by_presence(merged, &patch, Some(key), kind, path)?;
        normalize_element_order(patch_items, server_only, &patch, &original, Some(key), kind, path)
    }

    /// `mergeSliceWithSpecialElements`: applies `{"$patch": "delete", key: …}` and
    /// `{"$patch": "replace"}` elements, returning the new original and the remaining patch.
    fn merge_slice_with_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
        path: &mut Vec<String>,
    ) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
        let mut plain = Vec::new();
        let mut replace = false;
        for v in patch {
            let Value::Object(m) = &v else { unreachable!("element kind is map") };
            match m.get(DIRECTIVE_MARKER) {
                None => plain.push(v),
                Some(directive) => match directive.as_str() {
                    Some("delete") => {
                        let Some(merge_value) = m.get(key) else {
                            return Err(no_merge_key(path, key));
                        };
                        for o in &original {
                            if !o.is_object() {
                                return Err(smp_error(path, "list element is not a map"));
                            }
                        }
                        original.retain(|o| o.get(key) != Some(merge_value));
                    }
                    Some("replace") => replace = true,
                    Some("merge") => {
                        return Err(smp_error(path, "merging lists cannot yet be specified in the patch"));
                    }
                    _ => return Err(smp_error(path, "unknown patch type")),
                },
            }
        }
        if replace {
            let mut replaced = Vec::with_capacity(plain.len());
            for v in plain {
                if let Some(v) = self.fresh(v, path)? {
                    replaced.push(v);
                }
            }
            return Ok((replaced, Vec::new()));
        }
        Ok((original, plain))
    }

    /// `mergeSliceWithoutSpecialElements`: merges elements with the same merge key value, appends
    /// the others.
    fn merge_slice_without_special_elements(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        for v in patch {
            let Value::Object(m) = v else { unreachable!("element kind is map") };
            let Some(merge_value) = m.get(key) else {
                return Err(no_merge_key(path, key));
            };
            let mut found = None;
            for (i, o) in original.iter().enumerate() {
                let Value::Object(om) = o else {
                    return Err(smp_error(path, "list element is not a map"));
                };
                if om.get(key) == Some(merge_value) {
                    found = Some(i);
                    break;
                }
            }
            match found {
                Some(i) => {
                    let Value::Object(om) = std::mem::take(&mut original[i]) else { unreachable!() };
                    match self.merge_map(om, m.clone(), path)? {
                        Some(merged) => original[i] = Value::Object(merged),
                        None => {
                            original.remove(i);
                        }
                    }
                }
                None => {
                    if let Some(fresh) = self.fresh(v.clone(), path)? {
                        original.push(fresh);
                    }
                }
            }
        }
        Ok(original)
    }
}

enum MergeOutcome {
    Delete,
    Error(PatchError),
}

impl From<PatchError> for MergeOutcome {
    fn from(e: PatchError) -> Self {
        MergeOutcome::Error(e)
    }
}

fn has_directive(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

/// `validatePatchWithSetOrderList`: the patch list's items must appear in the order list, in the
/// same relative order.
fn validate_patch_with_set_order_list(
    patch_list: Option<&[Value]>,
    order: &[Value],
    merge_key: Option<&str>,
    path: &[String],
) -> Result<(), PatchError> {
    let Some(patch_list) = patch_list else {
        return Ok(());
    };
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match merge_key {
        Some(_) => {
            let mut keep = Vec::new();
            for v in patch_list {
                let Value::Object(m) = v else {
                    return Err(smp_error(path, "list element is not a map"));
                };
                if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete") {
                    keep.push(v);
                }
            }
            keep
        }
        None => patch_list.iter().collect(),
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        if has_directive(non_delete[pi]) {
            pi += 1;
            continue;
        }
        let equal = match merge_key {
            None => non_delete[pi] == &order[si],
            Some(key) => {
                let l = non_delete[pi].get(key).ok_or_else(|| no_merge_key(path, key))?;
                let r = order[si].get(key).ok_or_else(|| no_merge_key(path, key))?;
                l == r
            }
        };
        if equal {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(smp_error(path, "the order in the patch list doesn't match the $setElementOrder list"));
    }
    Ok(())
}

/// Where `item` sits in `list`, matching maps by merge key and scalars by value.
fn index_in(list: &[Value], item: &Value, merge_key: Option<&str>, kind: ElementKind) -> Option<usize> {
    match (kind, merge_key) {
        (ElementKind::Map, Some(key)) => {
            let v = item.get(key);
            list.iter().position(|o| o.get(key) == v)
        }
        _ => list.iter().position(|o| o == item),
    }
}

/// `partitionMapsByPresentInList` / `partitionPrimitivesByPresentInList`.
fn partition_by_presence(
    items: Vec<Value>,
    partition_by: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
    path: &[String],
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for v in items {
        if let (ElementKind::Map, Some(key)) = (kind, merge_key)
            && v.get(key).is_none()
        {
            return Err(no_merge_key(path, key));
        }
        if index_in(partition_by, &v, merge_key, kind).is_some() {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// `normalizeElementOrder`: sorts the patch items by `patch_order` and the server-only items by
/// `server_order`, then interleaves them.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
    path: &[String],
) -> Result<Vec<Value>, PatchError> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind, path)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind, path)?;
    Ok(merge_sorted_slice(server_only, patch_items, server_order, merge_key, kind))
}

/// `normalizeSliceOrder`: a stable sort by position in `order`; `$patch: delete` items last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
    path: &[String],
) -> Result<Vec<Value>, PatchError> {
    let (mut keep, to_delete): (Vec<Value>, Vec<Value>) = if kind == ElementKind::Map {
        let key = merge_key.unwrap_or_default();
        for v in to_sort.iter().chain(order.iter()) {
            if v.get(key).is_none() {
                return Err(no_merge_key(path, key));
            }
        }
        to_sort.into_iter().partition(|v| v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete"))
    } else {
        (to_sort, Vec::new())
    };
    keep.sort_by_key(|v| index_in(order, v, merge_key, kind).unwrap_or(usize::MAX));
    keep.extend(to_delete);
    Ok(keep)
}

/// `mergeSortedSlice`: inserts each `left` (server-only) item before the first `right` (patch)
/// item that comes after it in `server_order`, keeping both lists' relative order.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = index_in(server_order, l, merge_key, kind);
                let ri = index_in(server_order, r, merge_key, kind);
                if matches!((li, ri), (Some(li), Some(ri)) if li < ri) {
                    out.extend(left.next());
                } else {
                    out.extend(right.next());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Last-applied annotation
// ---------------------------------------------------------------------------------------------

/// kubectl-safe last-applied annotation for Secrets: parses the annotation JSON, replaces every
/// value under "data" and "stringData" by `digest(key, value_bytes)` (stringData values as their
/// UTF-8 bytes, data values base64-decoded first), keeps everything else, and re-serializes
/// compactly (with a trailing "\n" if the input had one).
///
/// kubectl's three-way merge uses the original (last-applied) configuration only to find deleted
/// keys, so digests keep `kubectl apply` working while no value is stored in clear twice. A data
/// value that is not valid base64, and any value that is not a string, is digested as it is
/// written, so nothing under those fields survives.
pub fn redact_last_applied(annotation: &str, digest: &dyn Fn(&str, &[u8]) -> String) -> Result<String, PatchError> {
    let mut doc: Value = serde_json::from_str(annotation).map_err(|_| PatchError::LastAppliedNotObject)?;
    let Value::Object(obj) = &mut doc else {
        return Err(PatchError::LastAppliedNotObject);
    };
    for (field, base64_values) in [("data", true), ("stringData", false)] {
        if let Some(values) = obj.get_mut(field) {
            redact_values(values, base64_values, digest);
        }
    }
    let mut out = serde_json::to_string(&doc).expect("a JSON value serializes");
    if annotation.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Every digest [`redact_last_applied`]'s callers produce starts with this, so redaction is
/// idempotent: a value that already is a digest is kept, and re-saving an object does not change
/// its annotation (which would make every patch look like a change).
pub const DIGEST_PREFIX: &str = "strongroom-digest:";

/// A digest as the server writes them: the prefix, an algorithm, and 64 hex digits. Only exact
/// digests are kept as they are; any other value (even one starting with the prefix) is digested.
fn is_digest(s: &str) -> bool {
    s.strip_prefix(DIGEST_PREFIX)
        .and_then(|rest| rest.strip_prefix("hmac-sha256:"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn redact_values(values: &mut Value, base64_values: bool, digest: &dyn Fn(&str, &[u8]) -> String) {
    match values {
        Value::Null => {}
        Value::Object(m) => {
            for (key, v) in m.iter_mut() {
                if v.as_str().is_some_and(is_digest) {
                    continue;
                }
                let bytes = value_bytes(v, base64_values);
                let old = std::mem::replace(v, Value::String(digest(key, &bytes)));
                wipe(old);
            }
        }
        other => {
            let bytes = Zeroizing::new(serde_json::to_vec(other).unwrap_or_default());
            let old = std::mem::replace(other, Value::String(digest("", &bytes)));
            wipe(old);
        }
    }
}

fn value_bytes(v: &Value, base64_values: bool) -> Zeroizing<Vec<u8>> {
    match v {
        Value::String(s) if base64_values => Zeroizing::new(
            base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec()),
        ),
        Value::String(s) => Zeroizing::new(s.as_bytes().to_vec()),
        other => Zeroizing::new(serde_json::to_vec(other).unwrap_or_default()),
    }
}

/// Zeroizes the strings of a value that held secret material before it is dropped.
fn wipe(v: Value) {
    match v {
        Value::String(mut s) => s.zeroize(),
        Value::Array(a) => a.into_iter().for_each(wipe),
        Value::Object(m) => m.into_iter().for_each(|(_, v)| wipe(v)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ---- merge patch ----

    #[test]
    fn merge_patch_table() {
        let cases: &[(&str, Value, Value, Value)] = &[
            (
                "null deletes a key",
                json!({"data": {"a": "YQ==", "b": "Yg=="}}),
                json!({"data": {"a": null}}),
                json!({"data": {"b": "Yg=="}}),
            ),
            (
                "label removal as kubectl label sends it",
                json!({"metadata": {"labels": {"team": "x", "k": "v"}}}),
                json!({"metadata": {"labels": {"team": null}}}),
                json!({"metadata": {"labels": {"k": "v"}}}),
            ),
            (
                "nested objects merge and new keys drop their nulls",
                json!({"metadata": {"name": "db"}}),
                json!({"metadata": {"annotations": {"o": "t", "gone": null}}}),
                json!({"metadata": {"name": "db", "annotations": {"o": "t"}}}),
            ),
            (
                "lists are replaced",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["c"]}}),
                json!({"metadata": {"finalizers": ["c"]}}),
            ),
            ("deleting a missing key is a no-op", json!({"a": 1}), json!({"b": null}), json!({"a": 1})),
        ];
        for (name, target, patch, want) in cases {
            assert_eq!(&merge_patch(target, patch).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn merge_patch_rejects_non_objects() {
        let err = merge_patch(&json!({}), &json!(["x"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert_eq!(err.failure(), PatchFailure::BadRequest);
        assert_eq!(merge_patch(&json!({}), &Value::Null).unwrap_err().to_string(), "Invalid JSON Patch");
    }

    // ---- JSON patch ----

    fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "finalizers": ["a", "b"]},
            "data": {"password": "czNjcjN0", "extra": "eA=="},
        })
    }

    #[test]
    fn json_patch_applies() {
        let cases: &[(&str, Value, Value)] = &[
            (
                "add",
                json!([{"op": "add", "path": "/data/new", "value": "bg=="}]),
                json!({"password": "czNjcjN0", "extra": "eA==", "new": "bg=="}),
            ),
            ("remove", json!([{"op": "remove", "path": "/data/extra"}]), json!({"password": "czNjcjN0"})),
            (
                "replace",
                json!([{"op": "replace", "path": "/data/extra", "value": "eQ=="}]),
                json!({"password": "czNjcjN0", "extra": "eQ=="}),
            ),
            (
                "replace of a missing key adds it, as evanphx/json-patch does",
                json!([{"op": "replace", "path": "/data/other", "value": "eQ=="}]),
                json!({"password": "czNjcjN0", "extra": "eA==", "other": "eQ=="}),
            ),
            (
                "test then move",
                json!([
                    {"op": "test", "path": "/data/extra", "value": "eA=="},
                    {"op": "move", "from": "/data/extra", "path": "/data/moved"}
                ]),
                json!({"password": "czNjcjN0", "moved": "eA=="}),
            ),
            (
                "test for null passes on a missing key",
                json!([{"op": "test", "path": "/data/nothing", "value": null}]),
                json!({"password": "czNjcjN0", "extra": "eA=="}),
            ),
            (
                "copy",
                json!([{"op": "copy", "from": "/data/extra", "path": "/data/copy"}]),
                json!({"password": "czNjcjN0", "extra": "eA==", "copy": "eA=="}),
            ),
        ];
        for (name, patch, want_data) in cases {
            let out = json_patch(&secret(), patch, DEFAULT_JSON_PATCH_MAX_COPY_BYTES).unwrap();
            assert_eq!(&out["data"], want_data, "{name}");
        }
    }

    #[test]
    fn json_patch_array_indices() {
        let cases: &[(&str, Value, Value)] = &[
            ("append", json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "c"}]), json!(["a", "b", "c"])),
            ("insert", json!([{"op": "add", "path": "/metadata/finalizers/0", "value": "c"}]), json!(["c", "a", "b"])),
            ("negative index", json!([{"op": "remove", "path": "/metadata/finalizers/-1"}]), json!(["a"])),
            (
                "replace element",
                json!([{"op": "replace", "path": "/metadata/finalizers/1", "value": "z"}]),
                json!(["a", "z"]),
            ),
        ];
        for (name, patch, want) in cases {
            let out = json_patch(&secret(), patch, DEFAULT_JSON_PATCH_MAX_COPY_BYTES).unwrap();
            assert_eq!(&out["metadata"]["finalizers"], want, "{name}");
        }
    }

    #[test]
    fn json_patch_failures_are_worded_like_evanphx() {
        let cases: &[(Value, &str)] = &[
            (
                json!([{"op": "test", "path": "/data/password", "value": "d3Jvbmc="}]),
                "testing value /data/password failed: test failed",
            ),
            (
                json!([{"op": "remove", "path": "/data/missing"}]),
                "error in remove for path: '/data/missing': Unable to remove nonexistent key: missing: missing value",
            ),
            (
                json!([{"op": "remove", "path": "/nothing/here"}]),
                "remove operation does not apply: doc is missing path: \"/nothing/here\": missing value",
            ),
            (
                json!([{"op": "add", "path": "/nothing/here", "value": 1}]),
                "add operation does not apply: doc is missing path: \"/nothing/here\": missing value",
            ),
            (
                json!([{"op": "replace", "path": "/metadata/finalizers/5", "value": "x"}]),
                "replace operation does not apply: doc is missing key: /metadata/finalizers/5: missing value",
            ),
            (
                json!([{"op": "add", "path": "/metadata/finalizers/9", "value": "x"}]),
                "error in add for path: '/metadata/finalizers/9': Unable to access invalid index: 9: invalid index referenced",
            ),
            (json!([{"op": "frobnicate", "path": "/data"}]), "Unexpected kind: frobnicate"),
            (json!([{"op": "remove"}]), "remove operation failed to decode path: missing value"),
        ];
        for (patch, want) in cases {
            let err = json_patch(&secret(), patch, DEFAULT_JSON_PATCH_MAX_COPY_BYTES).unwrap_err();
            assert_eq!(err.to_string(), *want);
            assert_eq!(err.failure(), PatchFailure::Invalid);
            assert_eq!(err.status_message(), "the server rejected our request due to an error in our request");
            assert!(!err.to_string().contains("czNjcjN0"), "no value in {err}");
        }
    }

    #[test]
    fn json_patch_test_failure_leaves_no_partial_result() {
        let patch = json!([
            {"op": "add", "path": "/data/new", "value": "bg=="},
            {"op": "test", "path": "/data/password", "value": "wrong"}
        ]);
        let err = json_patch(&secret(), &patch, DEFAULT_JSON_PATCH_MAX_COPY_BYTES).unwrap_err();
        assert_eq!(
            err,
            PatchError::OperationFailed {
                index: 1,
                message: "testing value /data/password failed: test failed".into()
            }
        );
    }

    #[test]
    fn json_patch_copy_amplification_is_capped() {
        // Regression test for CVE-2019-1002100: each copy doubles the document.
        let mut ops = vec![json!({"op": "add", "path": "/a", "value": "x".repeat(1000)})];
        ops.push(json!({"op": "add", "path": "/b", "value": []}));
        for _ in 0..40 {
            ops.push(json!({"op": "copy", "from": "/b", "path": "/b/-"}));
            ops.push(json!({"op": "copy", "from": "/b", "path": "/b/-"}));
            ops.push(json!({"op": "copy", "from": "/a", "path": "/b/-"}));
        }
        let limit = 64 * 1024;
        let err = json_patch(&json!({}), &Value::Array(ops), limit).unwrap_err();
        let PatchError::CopyLimitExceeded { accumulated, limit: l } = err else { panic!("{err:?}") };
        assert!(accumulated > limit && l == limit);
        assert_eq!(err.failure(), PatchFailure::Invalid);
        assert!(err.to_string().starts_with("Unable to complete the copy, the accumulated size increase of copy is "));
    }

    #[test]
    fn json_patch_result_size_is_capped() {
        let patch = json!([{"op": "add", "path": "/big", "value": "x".repeat(2000)}]);
        let err = json_patch(&json!({}), &patch, 1000).unwrap_err();
        assert!(matches!(err, PatchError::ResultTooLarge { limit: 1000, .. }), "{err:?}");
        assert_eq!(err.failure(), PatchFailure::RequestEntityTooLarge);
    }

    #[test]
    fn json_patch_limits_operation_count_and_shape() {
        let ops = Value::Array(vec![json!({"op": "test", "path": "/a", "value": null}); MAX_JSON_PATCH_OPERATIONS + 1]);
        let err = json_patch(&json!({}), &ops, DEFAULT_JSON_PATCH_MAX_COPY_BYTES).unwrap_err();
        assert_eq!(
            err.status_message(),
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        let err = json_patch(&json!({}), &json!({"op": "add"}), 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        assert_eq!(err.failure(), PatchFailure::BadRequest);
    }

    // ---- strategic merge patch ----

    fn owner(uid: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid})
    }

    #[test]
    fn strategic_merge_patch_table() {
        let schema = StrategicSchema::secret();
        let base = json!({
            "metadata": {
                "name": "db",
                "labels": {"a": "1", "b": "2"},
                "finalizers": ["x", "y"],
                "ownerReferences": [owner("u1", "one"), owner("u2", "two")],
            },
            "data": {"k": "dg=="},
            "type": "Opaque",
        });
        let cases: &[(&str, Value, Value)] = &[
            (
                "plain merge with null deletion, kubectl edit style",
                json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"n": "bg=="}}),
                json!({
                    "metadata": {
                        "name": "db",
                        "labels": {"b": "2", "c": "3"},
                        "finalizers": ["x", "y"],
                        "ownerReferences": [owner("u1", "one"), owner("u2", "two")],
                    },
                    "data": {"k": "dg==", "n": "bg=="},
                    "type": "Opaque",
                }),
            ),
            (
                "ownerReferences merge by uid",
                json!({"metadata": {"ownerReferences": [{"uid": "u2", "name": "renamed"}, owner("u3", "three")]}}),
                json!([owner("u1", "one"), {"apiVersion": "v1", "kind": "ConfigMap", "name": "renamed", "uid": "u2"}, owner("u3", "three")]),
            ),
            (
                "ownerReferences element deleted by $patch: delete",
                json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u1"}]}}),
                json!([owner("u2", "two")]),
            ),
            (
                "ownerReferences replaced by $patch: replace element",
                json!({"metadata": {"ownerReferences": [{"$patch": "replace"}, owner("u9", "nine")]}}),
                json!([owner("u9", "nine")]),
            ),
            ("finalizers merge as a set", json!({"metadata": {"finalizers": ["y", "z"]}}), json!(["x", "y", "z"])),
            (
                "$deleteFromPrimitiveList removes finalizers",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
                json!(["y"]),
            ),
            (
                "$setElementOrder orders the merged finalizers",
                json!({"metadata": {"$setElementOrder/finalizers": ["z", "y", "x"], "finalizers": ["z"]}}),
                json!(["z", "y", "x"]),
            ),
        ];
        for (name, patch, want) in cases {
            let out = strategic_merge_patch(&base, patch, &schema).unwrap();
            let got = if want.is_array() {
                let field = if name.contains("finalizers") { "finalizers" } else { "ownerReferences" };
                out["metadata"][field].clone()
            } else {
                out.clone()
            };
            assert_eq!(&got, want, "{name}");
            assert!(!out.to_string().contains('$'), "{name}: a directive was stored: {out}");
        }
    }

    #[test]
    fn strategic_merge_patch_map_directives() {
        let schema = StrategicSchema::secret();
        let base =
            json!({"metadata": {"name": "db", "labels": {"a": "1", "b": "2"}}, "data": {"k": "dg==", "l": "bA=="}});
        let cases: &[(&str, Value, Value)] = &[
            (
                "$patch: replace on a map",
                json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}),
                json!({"metadata": {"name": "db", "labels": {"z": "9"}}, "data": {"k": "dg==", "l": "bA=="}}),
            ),
            (
                "$patch: delete on a map removes it",
                json!({"data": {"$patch": "delete"}}),
                json!({"metadata": {"name": "db", "labels": {"a": "1", "b": "2"}}}),
            ),
            (
                "$patch: merge is a plain merge",
                json!({"data": {"$patch": "merge", "m": "bQ=="}}),
                json!({"metadata": {"name": "db", "labels": {"a": "1", "b": "2"}}, "data": {"k": "dg==", "l": "bA==", "m": "bQ=="}}),
            ),
            (
                "$retainKeys drops keys not listed",
                json!({"data": {"$retainKeys": ["k", "n"], "n": "bg=="}}),
                json!({"metadata": {"name": "db", "labels": {"a": "1", "b": "2"}}, "data": {"k": "dg==", "n": "bg=="}}),
            ),
            (
                "unknown $ keys are stripped, also inside new values",
                json!({"$foo": 1, "metadata": {"annotations": {"$bar": "x", "o": "t"}}, "data": {"$baz": "x"}}),
                json!({"metadata": {"name": "db", "labels": {"a": "1", "b": "2"}, "annotations": {"o": "t"}}, "data": {"k": "dg==", "l": "bA=="}}),
            ),
        ];
        for (name, patch, want) in cases {
            assert_eq!(&strategic_merge_patch(&base, patch, &schema).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn strategic_merge_patch_rejections() {
        let schema = StrategicSchema::secret();
        let base =
            json!({"metadata": {"name": "db", "ownerReferences": [owner("u1", "one")]}, "data": {"k": "c2VjcmV0"}});
        let cases: &[(Value, &str)] = &[
            (json!({"$patch": "delete"}), "\"$patch: delete\" cannot delete the whole object at the object root"),
            (json!({"data": {"$patch": "explode"}}), "unknown patch type at data"),
            (json!({"data": {"$retainKeys": ["x"], "k": "eQ=="}}), "invalid patch format of retainKeys at data"),
            (
                json!({"metadata": {"ownerReferences": [{"name": "no-uid"}]}}),
                "list element does not contain declared merge key: uid at metadata.ownerReferences",
            ),
            (
                json!({"metadata": {"ownerReferences": [{"$patch": "merge", "uid": "u1"}]}}),
                "merging lists cannot yet be specified in the patch at metadata.ownerReferences",
            ),
        ];
        for (patch, want) in cases {
            let err = strategic_merge_patch(&base, patch, &schema).unwrap_err();
            assert_eq!(err.to_string(), *want);
            assert_eq!(err.failure(), PatchFailure::BadRequest);
        }
        let err = strategic_merge_patch(&base, &json!([1]), &schema).unwrap_err();
        assert_eq!(err.to_string(), "json: cannot unmarshal array into Go value of type map[string]interface {}");
    }

    #[test]
    fn strategic_merge_patch_atomic_lists_are_replaced() {
        let schema = StrategicSchema::namespace();
        let base = json!({"spec": {"finalizers": ["kubernetes"]}});
        let out = strategic_merge_patch(&base, &json!({"spec": {"finalizers": ["other"]}}), &schema).unwrap();
        assert_eq!(out, json!({"spec": {"finalizers": ["other"]}}));
    }

    // ---- last-applied redaction ----

    /// The annotation of §5.2 of the wire reference, with the canary password from its POST body.
    const LAST_APPLIED: &str = "{\"apiVersion\":\"v1\",\"data\":{\"password\":\"UyFCXCpkJHpEc2I9\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"labels\":{\"tier\":\"db\"},\"name\":\"applied\",\"namespace\":\"app\"},\"stringData\":{\"username\":\"admin\"},\"type\":\"Opaque\"}\n";

    fn test_digest(key: &str, value: &[u8]) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(key.as_bytes());
        h.update([0]);
        h.update(value);
        format!("sha256:{}", h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    #[test]
    fn redact_last_applied_replaces_values_and_keeps_shape() {
        let out = redact_last_applied(LAST_APPLIED, &test_digest).unwrap();
        assert!(out.ends_with("}\n"), "trailing newline kept");
        for canary in ["UyFCXCpkJHpEc2I9", "S!B\\*d$zDsb=", "admin"] {
            assert!(!out.contains(canary), "{canary} survived in {out}");
        }
        let want = format!(
            "{{\"apiVersion\":\"v1\",\"data\":{{\"password\":\"{}\"}},\"kind\":\"Secret\",\"metadata\":{{\"annotations\":{{}},\"labels\":{{\"tier\":\"db\"}},\"name\":\"applied\",\"namespace\":\"app\"}},\"stringData\":{{\"username\":\"{}\"}},\"type\":\"Opaque\"}}\n",
            test_digest("password", b"S!B\\*d$zDsb="),
            test_digest("username", b"admin"),
        );
        assert_eq!(out, want);
        // Redaction is stable, so re-applying an unchanged manifest yields the same annotation.
        assert_eq!(redact_last_applied(LAST_APPLIED, &test_digest).unwrap(), out);
    }

    #[test]
    fn redact_last_applied_edge_cases() {
        let no_newline = LAST_APPLIED.trim_end();
        assert!(!redact_last_applied(no_newline, &test_digest).unwrap().ends_with('\n'));
        // Values that are not base64 strings are digested as written.
        let odd = r#"{"data":{"a":"not base64!","b":{"n":"c4n4ry"}},"stringData":"s3cr3t"}"#;
        let out = redact_last_applied(odd, &test_digest).unwrap();
        for canary in ["not base64!", "c4n4ry", "s3cr3t"] {
            assert!(!out.contains(canary), "{canary} survived in {out}");
        }
        let err = redact_last_applied("[\"UyFCXCpkJHpEc2I9\"]", &test_digest).unwrap_err();
        assert_eq!(err, PatchError::LastAppliedNotObject);
        assert!(!err.to_string().contains("UyFC"));
        assert_eq!(redact_last_applied("not json", &test_digest).unwrap_err(), PatchError::LastAppliedNotObject);
    }
}
