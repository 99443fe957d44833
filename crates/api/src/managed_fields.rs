//! Field ownership (`metadata.managedFields`) and server-side apply, on objects in their JSON form.
//!
//! This reproduces kube-apiserver's field manager (apimachinery `pkg/util/managedfields/internal`)
//! on top of a port of the parts of sigs.k8s.io/structured-merge-diff it uses (field sets and their
//! `FieldsV1` encoding, `Compare`, `Merge`, `ToFieldSet`, `RemoveItems`, the `Updater`), for kinds
//! made of structs, maps and scalars plus the lists a [`StrategicSchema`] declares; other lists are
//! atomic leaves. The layers of Kubernetes' default field manager map to this module as follows:
//!
//! - `stripMetaManager`: `apiVersion`, `kind` and the system fields of `metadata` are never owned.
//! - `managedFieldsUpdater`: an update owns what it changed or added (merged into the manager's
//!   previous entry) and its entry's time changes only then; an apply's time changes only when the
//!   object did, so a no-op leaves `managedFields` byte-identical.
//! - `buildManagerInfoManager`: entries are keyed by manager, operation, subresource and, for
//!   updates only, apiVersion; an empty manager name becomes `unknown`.
//! - `capManagersManager`: at most ten update entries, the oldest merged into `ancient-changes`.
//! - `skipNonAppliedManager`: an object that exists without managed fields stays untracked by
//!   updates, and its first apply attributes the existing fields to `before-first-apply`.
//! - `lastAppliedManager` / `lastAppliedUpdater` (manager `kubectl` only, opted into with
//!   [`LastApplied`]): conflicts on fields the client-side apply annotation shows the user set are
//!   forced, and the annotation is rewritten from the applied configuration.
//! - `FieldManager`: managed fields sent with an update replace the stored ones (`[{}]` resets
//!   them); an apply configuration must not carry them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::patch::{ListType, StrategicSchema, redact_last_applied};

/// kubectl's client-side apply annotation.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager name Kubernetes gives fields that existed before an untracked object's first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The manager name Kubernetes merges the oldest update entries into.
const ANCIENT_CHANGES: &str = "ancient-changes";
/// `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;
/// `TotalAnnotationSizeLimitB`: a rewritten last-applied annotation that would exceed it is dropped.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// The only field manager whose applies Kubernetes reconciles with the last-applied annotation.
const KUBECTL: &str = "kubectl";

/// Options of one server-side apply request.
pub struct ApplyOptions<'a> {
    /// `?fieldManager=`; kubectl sends `kubectl` unless told otherwise.
    pub manager: &'a str,
    /// `?force=true` (`--force-conflicts`): take ownership instead of failing on conflicts.
    pub force: bool,
    /// The apiVersion of the endpoint, which the applied object must carry.
    pub api_version: &'a str,
    /// The time of the request, RFC 3339; recorded with second precision in UTC.
    pub now: &'a str,
}

/// The operation of a `managedFields` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// A field the applier set to a new value while another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The field as structured-merge-diff prints it: `.data.password`,
    /// `.metadata.ownerReferences[uid="…"]`, `.metadata.finalizers[="…"]`.
    pub field: String,
    /// The other manager's operation; Kubernetes prints the apiVersion of `Update` managers.
    pub operation: Operation,
    /// The other manager's apiVersion.
    pub api_version: String,
}

impl Conflict {
    /// The manager as kube-apiserver prints it: `"name"`, plus ` using v1` for update managers.
    pub fn describe_manager(&self) -> String {
        let name = go_quote(&self.manager);
        match self.operation {
            Operation::Update => format!("{name} using {}", self.api_version),
            Operation::Apply => name,
        }
    }

    /// The `message` of this conflict's `StatusCause` (type `FieldManagerConflict`, field
    /// [`Conflict::field`]).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.describe_manager())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// 409 `Conflict`, message [`conflict_message`], one cause per conflict.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied object is not acceptable (400 `BadRequest`); the text is Kubernetes' where it
    /// has one. It names fields and list keys (an owner reference's uid, a finalizer), never the
    /// value of a map entry such as a Secret's data.
    #[error("{0}")]
    Invalid(String),
}

/// The conflict message exactly as kube-apiserver words it (`getConflictMessage`).
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", c.describe_manager(), c.field);
    }
    let mut by_manager: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
    for c in conflicts {
        let id = ManagerId::new(&c.manager, c.operation, &c.api_version).identity_json();
        by_manager.entry(id).or_insert_with(|| (c.describe_manager(), Vec::new())).1.push(&c.field);
    }
    let mut lines = Vec::new();
    for (described, fields) in by_manager.values() {
        lines.push(format!("conflicts with {described}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// How [`apply_with`] treats kubectl's client-side apply annotation. Kubernetes does this for the
/// field manager `kubectl` only.
#[derive(Clone, Copy)]
pub enum LastApplied<'a> {
    /// Neither forgive conflicts with it nor rewrite it.
    Ignore,
    /// The annotation holds values as they are (kinds without secret values).
    Plain,
    /// Values under `data` and `stringData` are digests made with this function, as
    /// [`redact_last_applied`] writes them; a rewritten annotation is redacted the same way.
    Redacted(&'a dyn Fn(&str, &[u8]) -> String),
}

/// Server-side apply (application/apply-patch+yaml) with [`StrategicSchema::default`] and the
/// last-applied annotation ignored. `live` is None when the object does not exist
/// (create-if-missing). Returns the new object with `metadata.managedFields` updated.
pub fn apply(live: Option<&Value>, applied: &Value, opts: &ApplyOptions) -> Result<Value, ApplyError> {
    apply_with(live, applied, opts, &StrategicSchema::default(), LastApplied::Ignore)
}

/// Server-side apply with an explicit schema and last-applied policy; see the module comment.
///
/// The result still carries what the configuration set, `stringData` included; folding that into
/// `data` is the caller's business, as it is the Secret strategy's in Kubernetes.
pub fn apply_with(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
    schema: &StrategicSchema,
    last_applied: LastApplied,
) -> Result<Value, ApplyError> {
    let Value::Object(applied_obj) = applied else {
        return Err(ApplyError::Invalid("the applied configuration must be an object".to_string()));
    };
    check_type(applied_obj, live, opts.api_version)?;
    if applied.pointer("/metadata/managedFields").is_some_and(|v| !v.is_null()) {
        return Err(ApplyError::Invalid("metadata.managedFields must be nil".to_string()));
    }

    let walker = Walker::new(schema);
    let config = strip_nulls(applied);
    let config_set = walker.to_field_set(&config).map_err(ApplyError::Invalid)?;

    let live_obj = live.cloned().unwrap_or_else(|| json!({}));
    let source = live_obj.pointer("/metadata/managedFields").cloned();
    // Kubernetes refuses to apply over undecodable managed fields; they can only come from this
    // server, so they are treated as absent instead.
    let managers = decode_managed_fields(source.as_ref()).unwrap_or_default();
    let now = normalize_time(opts.now);
    let manager = if opts.manager.is_empty() { "unknown" } else { opts.manager };
    let attempt = |force: bool| {
        walker.apply_once(&live_obj, managers.clone(), &config, &config_set, manager, opts.api_version, &now, force)
    };

    let (mut out, new_managers) = match attempt(opts.force) {
        Ok(done) => done,
        Err(ApplyFailure::Invalid(message)) => return Err(ApplyError::Invalid(message)),
        Err(ApplyFailure::Conflicts(conflicts)) => {
            let allowed = match last_applied {
                LastApplied::Ignore => None,
                _ if manager != KUBECTL => None,
                _ => walker.allowed_from_last_applied(&live_obj, opts.api_version, last_applied),
            };
            let Some(allowed) = allowed else {
                return Err(ApplyError::Conflicts(conflicts.into_iter().map(|(c, _)| c).collect()));
            };
            let remaining: Vec<Conflict> =
                conflicts.into_iter().filter(|(_, path)| !allowed.has(path)).map(|(c, _)| c).collect();
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(remaining));
            }
            match attempt(true) {
                Ok(done) => done,
                Err(ApplyFailure::Invalid(message)) => return Err(ApplyError::Invalid(message)),
                Err(ApplyFailure::Conflicts(c)) => {
                    return Err(ApplyError::Conflicts(c.into_iter().map(|(c, _)| c).collect()));
                }
            }
        }
    };

    write_managed_fields(&mut out, &managers, &new_managers, source.as_ref());

    if manager == KUBECTL && !matches!(last_applied, LastApplied::Ignore) && has_last_applied(&out) {
        update_last_applied(&mut out, applied, last_applied);
    }
    Ok(out)
}

/// After a non-apply write (create, update, patch) with [`StrategicSchema::default`]: records in
/// `metadata.managedFields` that `manager` (operation `Update`) owns what it changed or added
/// between `old` and `new`, taking those fields from other managers and dropping managers left
/// with nothing. `old` is None for a create. Managed fields sent in `new` replace the stored ones.
pub fn update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str, now: &str) {
    update_with_schema(old, new, manager, api_version, now, &StrategicSchema::default());
}

/// [`update`] with an explicit schema.
pub fn update_with_schema(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
    schema: &StrategicSchema,
) {
    if !new.get("metadata").is_some_and(Value::is_object) {
        return;
    }
    let sent = new.pointer("/metadata/managedFields").cloned();
    let stored = old.and_then(|o| o.pointer("/metadata/managedFields")).cloned();
    let (managers, source) = if is_reset(sent.as_ref()) {
        (Managers::new(), None)
    } else {
        match decode_managed_fields(sent.as_ref()) {
            Ok(m) if !m.is_empty() => (m, sent.clone()),
            _ => match decode_managed_fields(stored.as_ref()) {
                Ok(m) => (m, stored.clone()),
                Err(_) => (Managers::new(), None),
            },
        }
    };

    // An existing object without managed fields stays untracked until it is applied to.
    if managers.is_empty() && old.is_some() {
        set_managed_fields(new, None);
        return;
    }

    let walker = Walker::new(schema);
    let empty = json!({});
    let mut updated = managers.clone();
    let manager = if manager.is_empty() { "unknown" } else { manager };
    let id = ManagerId::new(manager, Operation::Update, api_version);
    match walker.record_update(&mut updated, old.unwrap_or(&empty), new, id, api_version, &normalize_time(now)) {
        Ok(()) => write_managed_fields(new, &managers, &updated, source.as_ref()),
        // `UpdateNoErrors`: keep the stored managed fields rather than lose them.
        Err(_) => set_managed_fields(new, stored),
    }
}

// ---------------------------------------------------------------------------------------------
// Apply internals
// ---------------------------------------------------------------------------------------------

enum ApplyFailure {
    Invalid(String),
    Conflicts(Vec<(Conflict, Vec<PathElement>)>),
}

/// `versionCheckManager`: the applied object must be of the endpoint's group, version and kind.
fn check_type(applied: &Map<String, Value>, live: Option<&Value>, api_version: &str) -> Result<(), ApplyError> {
    let av = applied.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or_default();
    let live_kind = live.and_then(|l| l.get("kind")).and_then(Value::as_str);
    if av != api_version || kind.is_empty() || live_kind.is_some_and(|k| k != kind) {
        let (group, version) = av.rsplit_once('/').unwrap_or(("", av));
        return Err(ApplyError::Invalid(format!("invalid object type: {group}/{version}, Kind={kind}")));
    }
    Ok(())
}

/// Nulls in an apply configuration are treated as absent fields.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn has_last_applied(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// `lastAppliedUpdater`: rewrites the annotation from the applied configuration.
fn update_last_applied(out: &mut Value, applied: &Value, last_applied: LastApplied) {
    let mut value = build_last_applied(applied);
    if let LastApplied::Redacted(digest) = last_applied {
        match redact_last_applied(&value, digest) {
            Ok(redacted) => value = redacted,
            Err(_) => return,
        }
    }
    let Some(Value::Object(annotations)) = out.pointer_mut("/metadata/annotations") else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(value));
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        annotations.shift_remove(LAST_APPLIED_ANNOTATION);
    }
}

/// `buildLastApplied`: the applied object without the annotation itself, as Go's JSON encoder
/// writes an unstructured object (sorted keys, HTML-escaped, newline-terminated).
fn build_last_applied(applied: &Value) -> String {
    let mut obj = applied.clone();
    if let Some(Value::Object(annotations)) = obj.pointer_mut("/metadata/annotations") {
        annotations.shift_remove(LAST_APPLIED_ANNOTATION);
    }
    let mut out = String::new();
    write_go_json(&mut out, &obj, true);
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// managedFields encoding
// ---------------------------------------------------------------------------------------------

/// The identity of a managedFields entry (`BuildManagerIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ManagerId {
    manager: String,
    operation: Operation,
    /// Empty for appliers: an applier is the same manager whatever version it applies.
    api_version: String,
    subresource: String,
}

impl ManagerId {
    fn new(manager: &str, operation: Operation, api_version: &str) -> Self {
        ManagerId {
            manager: manager.to_string(),
            operation,
            api_version: if operation == Operation::Update { api_version.to_string() } else { String::new() },
            subresource: String::new(),
        }
    }

    /// The JSON identifier Kubernetes keys managers by; conflicts are reported in its order.
    fn identity_json(&self) -> String {
        let mut s = String::from("{");
        let mut sep = "";
        for (k, v) in [
            ("manager", self.manager.as_str()),
            ("operation", self.operation.as_str()),
            ("apiVersion", self.api_version.as_str()),
            ("subresource", self.subresource.as_str()),
        ] {
            if !v.is_empty() {
                let _ = write!(s, "{sep}\"{k}\":");
                write_go_string(&mut s, v);
                sep = ",";
            }
        }
        s.push('}');
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    api_version: String,
    time: Option<String>,
    set: FieldSet,
}

type Managers = BTreeMap<ManagerId, Entry>;

/// `DecodeManagedFields`.
fn decode_managed_fields(v: Option<&Value>) -> Result<Managers, String> {
    let mut managers = Managers::new();
    let entries = match v {
        None | Some(Value::Null) => return Ok(managers),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("managedFields must be a list".to_string()),
    };
    for (i, e) in entries.iter().enumerate() {
        let Value::Object(e) = e else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
        let operation = match s("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".to_string()),
        };
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_string());
        }
        match s("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            _ => return Err(format!("invalid fieldsType in managed fields entry {i}")),
        }
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::default(),
            Some(f) => FieldSet::from_fields_v1(f)?,
        };
        let mut id = ManagerId::new(s("manager"), operation, api_version);
        id.subresource = s("subresource").to_string();
        let time = e.get("time").and_then(Value::as_str).map(str::to_string);
        managers.insert(id, Entry { api_version: api_version.to_string(), time, set });
    }
    Ok(managers)
}

/// `encodeManagedFields`, sorted as `sortEncodedManagedFields` sorts them.
fn encode_managed_fields(managers: &Managers) -> Option<Value> {
    if managers.is_empty() {
        return None;
    }
    let mut entries: Vec<(&ManagerId, &Entry)> = managers.iter().collect();
    entries.sort_by(|(a, ea), (b, eb)| {
        a.operation
            .as_str()
            .cmp(b.operation.as_str())
            .then_with(|| time_seconds(ea.time.as_deref()).cmp(&time_seconds(eb.time.as_deref())))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| ea.api_version.cmp(&eb.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let encoded = entries
        .into_iter()
        .map(|(id, e)| {
            let mut m = Map::new();
            if !id.manager.is_empty() {
                m.insert("manager".into(), Value::String(id.manager.clone()));
            }
            m.insert("operation".into(), Value::String(id.operation.as_str().into()));
            m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
            if let Some(t) = &e.time {
                m.insert("time".into(), Value::String(t.clone()));
            }
            m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !id.subresource.is_empty() {
                m.insert("subresource".into(), Value::String(id.subresource.clone()));
            }
            Value::Object(m)
        })
        .collect();
    Some(Value::Array(encoded))
}

/// `isResetManagedFields`: an empty list, or a list of one empty entry.
fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(a)) => a.is_empty() || (a.len() == 1 && a[0] == json!({})),
        _ => false,
    }
}

/// Stores the managers in `obj`, reusing `source` byte for byte when nothing changed.
fn write_managed_fields(obj: &mut Value, before: &Managers, after: &Managers, source: Option<&Value>) {
    let value = match source {
        Some(source) if before == after => Some(source.clone()),
        _ => encode_managed_fields(after),
    };
    set_managed_fields(obj, value);
}

fn set_managed_fields(obj: &mut Value, value: Option<Value>) {
    let Value::Object(root) = obj else { return };
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    match value {
        // Inserting over an existing key keeps its position.
        Some(v) => {
            meta.insert("managedFields".into(), v);
        }
        None => {
            meta.shift_remove("managedFields");
        }
    }
}

/// `metav1.Time` precision: seconds, UTC. Unparseable input is kept as given.
fn normalize_time(now: &str) -> String {
    match now.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => now.to_string(),
    }
}

fn time_seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok()).map_or(0, |ts| ts.as_second())
}

// ---------------------------------------------------------------------------------------------
// Field paths and sets (structured-merge-diff `fieldpath`)
// ---------------------------------------------------------------------------------------------

/// A JSON value used as a list key or set element, totally ordered as structured-merge-diff's
/// `value.Compare` orders them: numbers, strings, booleans, lists, maps, null.
#[derive(Debug, Clone)]
struct Scalar(Value);

impl Scalar {
    fn rank(&self) -> u8 {
        match self.0 {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
}

impl Ord for Scalar {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Value::Number(a), Value::Number(b)) => {
                a.as_f64().unwrap_or_default().total_cmp(&b.as_f64().unwrap_or_default())
            }
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (a, b) if self.rank() == other.rank() => a.to_string().cmp(&b.to_string()),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Scalar {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scalar {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scalar {}

/// One step of a field path; the variant order is structured-merge-diff's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PathElement {
    Field(String),
    /// An element of a list of objects, by its key fields (sorted by name).
    Key(Vec<(String, Scalar)>),
    /// An element of a set.
    Value(Scalar),
    Index(usize),
}

impl PathElement {
    /// The `FieldsV1` key: `f:name`, `k:{"uid":"…"}`, `v:"…"`, `i:0`.
    fn serialize(&self) -> String {
        let mut s = String::new();
        match self {
            PathElement::Field(name) => {
                s.push_str("f:");
                s.push_str(name);
            }
            PathElement::Key(fields) => {
                s.push_str("k:{");
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    write_go_string(&mut s, name);
                    s.push(':');
                    write_go_json(&mut s, &v.0, false);
                }
                s.push('}');
            }
            PathElement::Value(v) => {
                s.push_str("v:");
                write_go_json(&mut s, &v.0, false);
            }
            PathElement::Index(i) => {
                let _ = write!(s, "i:{i}");
            }
        }
        s
    }

    /// `DeserializePathElement`; `Ok(None)` for element types this version does not know.
    fn parse(s: &str) -> Result<Option<Self>, String> {
        let bytes = s.as_bytes();
        if bytes.len() < 2 {
            return Err("key must be 2 characters long".to_string());
        }
        if bytes[1] != b':' {
            return Err("missing colon in a managed fields key".to_string());
        }
        let rest = &s[2..];
        let bad = |_| "invalid managed fields key".to_string();
        Ok(Some(match bytes[0] {
            b'f' => PathElement::Field(rest.to_string()),
            b'v' => PathElement::Value(Scalar(serde_json::from_str(rest).map_err(bad)?)),
            b'k' => {
                let Value::Object(m) = serde_json::from_str(rest).map_err(bad)? else {
                    return Err("invalid managed fields key".to_string());
                };
                let mut fields: Vec<(String, Scalar)> = m.into_iter().map(|(k, v)| (k, Scalar(v))).collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                PathElement::Key(fields)
            }
            b'i' => PathElement::Index(rest.parse().map_err(|_| "invalid managed fields index".to_string())?),
            _ => return Ok(None),
        }))
    }

    /// As structured-merge-diff prints it in conflicts.
    fn display(&self) -> String {
        match self {
            PathElement::Field(name) => format!(".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", value_to_string(&v.0))).collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={}]", value_to_string(&v.0)),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// structured-merge-diff's `value.ToString`.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => go_quote(s),
        Value::Array(a) => format!("[{}]", a.iter().map(value_to_string).collect::<Vec<_>>().join(",")),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={}", value_to_string(v))).collect(),
        other => other.to_string(),
    }
}

/// A set of field paths (`fieldpath.Set`): a path is a member when it is owned itself; children
/// hold the members below a path element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldSet {
    members: BTreeSet<PathElement>,
    // Invariant: no child set is empty.
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path; the empty path (the whole object) is never owned.
    fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [pe] => {
                self.members.insert(pe.clone());
            }
            [pe, rest @ ..] => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [pe] => self.members.contains(pe),
            [pe, rest @ ..] => self.children.get(pe).is_some_and(|c| c.has(rest)),
        }
    }

    fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                let d = match other.children.get(pe) {
                    Some(o) => c.difference(o),
                    None => c.clone(),
                };
                (!d.is_empty()).then(|| (pe.clone(), d))
            })
            .collect();
        FieldSet { members, children }
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                let i = c.intersection(other.children.get(pe)?);
                (!i.is_empty()).then(|| (pe.clone(), i))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Removes the members of `other` and everything below them.
    fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .filter_map(|(pe, c)| {
                let d = match other.children.get(pe) {
                    Some(o) => c.recursive_difference(o),
                    None => c.clone(),
                };
                (!d.is_empty()).then(|| (pe.clone(), d))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The member paths in structured-merge-diff's iteration order: a level's members, then its
    /// children.
    fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            prefix.push(pe.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` encoding (`emitContentsV1`): keys in path-element order, `"."` first for a
    /// path that is both owned and has owned children.
    fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), json!({}));
        }
        let keys: BTreeSet<&PathElement> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let value = match self.children.get(pe) {
                Some(c) => Value::Object(c.emit(self.members.contains(pe))),
                None => json!({}),
            };
            out.insert(pe.serialize(), value);
        }
        out
    }

    /// `FieldsToSet` / `readIterV1`.
    fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        Ok(Self::read(v)?.0.unwrap_or_default())
    }

    fn read(v: &Value) -> Result<(Option<FieldSet>, bool), String> {
        let Value::Object(m) = v else {
            return Err("fieldsV1 must be an object".to_string());
        };
        let mut children: Option<FieldSet> = None;
        let mut is_member = false;
        for (k, child) in m {
            if k == "." {
                is_member = true;
                continue;
            }
            let Some(pe) = PathElement::parse(k)? else {
                continue;
            };
            let (grandchildren, child_is_member) = Self::read(child)?;
            if child_is_member {
                children.get_or_insert_default().members.insert(pe.clone());
            }
            if let Some(g) = grandchildren {
                children.get_or_insert_default().children.insert(pe, g);
            }
        }
        if children.is_none() {
            is_member = true;
        }
        Ok((children, is_member))
    }
}

// ---------------------------------------------------------------------------------------------
// Value walkers (structured-merge-diff `typed`)
// ---------------------------------------------------------------------------------------------

/// The paths of `apiVersion`, `kind` and the system fields of `metadata` (`stripMetaManager`).
fn strip_set() -> FieldSet {
    let mut s = FieldSet::default();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        s.insert(&p.iter().map(|f| PathElement::Field(f.to_string())).collect::<Vec<_>>());
    }
    s
}

/// Removed, modified and added fields between two objects (`typed.Comparison`).
#[derive(Debug, Default)]
struct Comparison {
    removed: FieldSet,
    modified: FieldSet,
    added: FieldSet,
}

impl Comparison {
    fn exclude(self, fields: &FieldSet) -> Comparison {
        Comparison {
            removed: self.removed.recursive_difference(fields),
            modified: self.modified.recursive_difference(fields),
            added: self.added.recursive_difference(fields),
        }
    }
}

type LeafEq<'a> = dyn Fn(&[PathElement], &Value, &Value) -> bool + 'a;

fn plain_eq(_: &[PathElement], l: &Value, r: &Value) -> bool {
    l == r
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

struct Walker<'a> {
    schema: &'a StrategicSchema,
    strip: FieldSet,
    reset: FieldSet,
}

impl<'a> Walker<'a> {
    fn new(schema: &'a StrategicSchema) -> Self {
        let mut reset = FieldSet::default();
        for path in schema.reset_fields() {
            reset.insert(&path.split('.').map(|f| PathElement::Field(f.to_string())).collect::<Vec<_>>());
        }
        Walker { schema, strip: strip_set(), reset }
    }

    /// The path element of a list item, or why there is none.
    fn list_element(
        &self,
        list_type: &ListType,
        item: &Value,
        path: &[PathElement],
        index: usize,
    ) -> Result<PathElement, String> {
        let fail = |why: &str| format!("{}: element {index}: {why}", path_string(path));
        match list_type {
            ListType::Map { key } => match item {
                Value::Null => Err(fail("associative list with keys may not have a null element")),
                Value::Object(m) => match m.get(key) {
                    Some(v) => Ok(PathElement::Key(vec![(key.clone(), Scalar(v.clone()))])),
                    None => Err(fail(&format!(
                        "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                        go_quote(key)
                    ))),
                },
                _ => Err(fail("associative list with keys may not have non-map elements")),
            },
            ListType::Set => match item {
                Value::Object(_) => Err(fail("associative list without keys has an element that's a map type")),
                Value::Array(_) => Err(fail("not supported: associative list with lists as elements")),
                Value::Null => Err(fail("associative list without keys has an element that's an explicit null")),
                v => Ok(PathElement::Value(Scalar(v.clone()))),
            },
        }
    }

    // ---- ToFieldSet ----

    /// `ToFieldSet`: every path the value sets. Struct fields holding non-empty objects are not
    /// members themselves (their contents are); map entries and list elements always are.
    /// Fails like `ObjectToTyped` on duplicate or keyless list elements.
    fn to_field_set(&self, v: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::default();
        self.field_set_walk(v, &mut Vec::new(), &mut Vec::new(), &mut set)?;
        Ok(set)
    }

    fn field_set_walk(
        &self,
        v: &Value,
        path: &mut Vec<PathElement>,
        sp: &mut Vec<String>,
        set: &mut FieldSet,
    ) -> Result<(), String> {
        match v {
            Value::Object(m) => {
                let is_map = self.schema.is_map_at(sp);
                for (k, child) in m {
                    path.push(PathElement::Field(k.clone()));
                    sp.push(self.schema.child_segment(sp, k));
                    self.field_set_walk(child, path, sp, set)?;
                    if is_map || child.is_null() || matches!(child, Value::Object(c) if c.is_empty()) {
                        set.insert(path);
                    }
                    sp.pop();
                    path.pop();
                }
            }
            Value::Array(items) => match self.schema.list_type_at(sp).cloned() {
                None => set.insert(path),
                Some(list_type) => {
                    let mut seen = BTreeSet::new();
                    let mut elements = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let pe = self.list_element(&list_type, item, path, i)?;
                        if !seen.insert(pe.clone()) {
                            return Err(format!("{}: duplicate entries for key {}", path_string(path), pe.display()));
                        }
                        elements.push(pe);
                    }
                    for (pe, item) in elements.into_iter().zip(items) {
                        path.push(pe);
                        self.field_set_walk(item, path, sp, set)?;
                        set.insert(path);
                        path.pop();
                    }
                }
            },
            _ => set.insert(path),
        }
        Ok(())
    }

    // ---- Compare ----

    /// `Compare`; `metadata.managedFields` is left out, as the field manager removes it first.
    fn compare(&self, l: Option<&Value>, r: Option<&Value>, eq: &LeafEq) -> Result<Comparison, String> {
        let mut out = Comparison::default();
        self.compare_node(l, r, &mut Vec::new(), &mut Vec::new(), eq, &mut out)?;
        Ok(out.exclude(&self.reset))
    }

    fn compare_node(
        &self,
        l: Option<&Value>,
        r: Option<&Value>,
        path: &mut Vec<PathElement>,
        sp: &mut Vec<String>,
        eq: &LeafEq,
        out: &mut Comparison,
    ) -> Result<(), String> {
        let present = r.or(l).expect("one side is present");
        let kinds_differ =
            matches!((l, r), (Some(a), Some(b)) if std::mem::discriminant(a) != std::mem::discriminant(b));
        let both_empty = is_empty_container(l) && is_empty_container(r);
        let descend = !kinds_differ
            && !both_empty
            && match present {
                Value::Object(_) => true,
                Value::Array(_) => self.schema.list_type_at(sp).is_some(),
                _ => false,
            };
        if !descend {
            match (l, r) {
                (None, _) => out.added.insert(path),
                (_, None) => out.removed.insert(path),
                (Some(a), Some(b)) => {
                    if !eq(path, a, b) {
                        out.modified.insert(path);
                    }
                }
            }
            return Ok(());
        }

        if let Value::Object(_) = present {
            let empty = Map::new();
            let lm = l.and_then(Value::as_object).unwrap_or(&empty);
            let rm = r.and_then(Value::as_object).unwrap_or(&empty);
            let skip_managed_fields = sp.len() == 1 && sp[0] == "metadata" && path.len() == 1;
            for k in lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k))) {
                if skip_managed_fields && k == "managedFields" {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                sp.push(self.schema.child_segment(sp, k));
                self.compare_node(lm.get(k), rm.get(k), path, sp, eq, out)?;
                sp.pop();
                path.pop();
            }
        } else {
            self.compare_list(l, r, path, sp, eq, out)?;
        }
        match (l, r) {
            (None, _) => out.added.insert(path),
            (_, None) => out.removed.insert(path),
            _ => {}
        }
        Ok(())
    }

    fn compare_list(
        &self,
        l: Option<&Value>,
        r: Option<&Value>,
        path: &mut Vec<PathElement>,
        sp: &mut Vec<String>,
        eq: &LeafEq,
        out: &mut Comparison,
    ) -> Result<(), String> {
        let list_type = self.schema.list_type_at(sp).cloned().expect("checked by the caller");
        let empty = Vec::new();
        let ll = l.and_then(Value::as_array).unwrap_or(&empty);
        let rl = r.and_then(Value::as_array).unwrap_or(&empty);
        let mut order: Vec<PathElement> = Vec::new();
        let mut lvals: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
        let mut rvals: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
        for (i, item) in ll.iter().enumerate() {
            let pe = self.list_element(&list_type, item, path, i)?;
            let slot = lvals.entry(pe.clone()).or_default();
            if slot.is_empty() {
                order.push(pe);
            }
            slot.push(item);
        }
        for (i, item) in rl.iter().enumerate() {
            let pe = self.list_element(&list_type, item, path, i)?;
            let slot = rvals.entry(pe.clone()).or_default();
            if slot.is_empty() && !lvals.contains_key(&pe) {
                order.push(pe.clone());
            }
            slot.push(item);
        }
        for pe in order {
            let lv = lvals.get(&pe).map_or(&[][..], Vec::as_slice);
            let rv = rvals.get(&pe).map_or(&[][..], Vec::as_slice);
            path.push(pe);
            match (lv.len(), rv.len()) {
                (0..=1, 0..=1) => self.compare_node(lv.first().copied(), rv.first().copied(), path, sp, eq, out)?,
                // Duplicates before and after compare as an atomic list.
                (2.., 2..) => {
                    if lv != rv {
                        out.modified.insert(path);
                    }
                }
                (2.., _) => {
                    if let Some(new) = rv.first() {
                        self.compare_node(None, Some(new), path, sp, eq, out)?;
                    }
                    out.removed.insert(path);
                }
                (_, 2..) => {
                    if let Some(old) = lv.first() {
                        self.compare_node(Some(old), None, path, sp, eq, out)?;
                    }
                    out.added.insert(path);
                }
            }
            path.pop();
        }
        Ok(())
    }

    // ---- Merge ----

    /// `Merge`: the configuration wins on leaves; objects merge; declared lists merge by element.
    fn merge(&self, live: &Value, config: &Value, sp: &mut Vec<String>) -> Result<Value, String> {
        match (live, config) {
            (Value::Object(l), Value::Object(c)) if !(l.is_empty() && c.is_empty()) => {
                let mut out = l.clone();
                for (k, cv) in c {
                    sp.push(self.schema.child_segment(sp, k));
                    let merged = match l.get(k) {
                        Some(lv) => self.merge(lv, cv, sp)?,
                        None => cv.clone(),
                    };
                    sp.pop();
                    out.insert(k.clone(), merged);
                }
                Ok(Value::Object(out))
            }
            (Value::Array(l), Value::Array(c)) if !(l.is_empty() && c.is_empty()) => {
                match self.schema.list_type_at(sp).cloned() {
                    None => Ok(config.clone()),
                    Some(list_type) => self.merge_list(l, c, &list_type, sp).map(Value::Array),
                }
            }
            _ => Ok(config.clone()),
        }
    }

    /// `visitListItems` of the merging walker: live items keep their places, configuration items
    /// follow the configuration's order.
    fn merge_list(
        &self,
        lhs: &[Value],
        rhs: &[Value],
        list_type: &ListType,
        sp: &mut Vec<String>,
    ) -> Result<Vec<Value>, String> {
        let mut rhs_pes = Vec::with_capacity(rhs.len());
        let mut observed_rhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in rhs.iter().enumerate() {
            let pe = self.list_element(list_type, item, &[], i)?;
            observed_rhs.insert(pe.clone(), item);
            rhs_pes.push(pe);
        }
        let mut lhs_pes = Vec::with_capacity(lhs.len());
        let mut lhs_items = Vec::with_capacity(lhs.len());
        // None marks a duplicated live element, which is not merged with the configuration.
        let mut observed_lhs: BTreeMap<PathElement, Option<&Value>> = BTreeMap::new();
        for (i, item) in lhs.iter().enumerate() {
            let Ok(pe) = self.list_element(list_type, item, &[], i) else {
                continue;
            };
            if observed_lhs.contains_key(&pe) {
                observed_lhs.insert(pe.clone(), None);
            } else {
                observed_lhs.insert(pe.clone(), Some(item));
            }
            lhs_pes.push(pe);
            lhs_items.push(item);
        }

        let mut shared: std::collections::VecDeque<&PathElement> =
            rhs_pes.iter().filter(|pe| observed_lhs.contains_key(*pe)).collect();
        let mut next_shared = shared.pop_front();
        let mut merged_rhs: BTreeSet<PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
        let (mut li, mut ri) = (0, 0);
        let merge_item = |l: Option<&Value>, r: Option<&Value>, sp: &mut Vec<String>| -> Result<Value, String> {
            match (l, r) {
                (Some(l), Some(r)) => self.merge(l, r, sp),
                (Some(v), None) | (None, Some(v)) => Ok(v.clone()),
                (None, None) => Ok(Value::Null),
            }
        };
        while li < lhs_pes.len() || ri < rhs_pes.len() {
            if li < lhs_pes.len() && ri < rhs_pes.len() {
                let pe = &lhs_pes[li];
                if *pe == rhs_pes[ri] {
                    merged_rhs.insert(pe.clone());
                    let l = observed_lhs.get(pe).copied().flatten();
                    out.push(merge_item(l, observed_rhs.get(pe).copied(), sp)?);
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                if observed_rhs.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < lhs_pes.len() {
                let pe = &lhs_pes[li];
                if !observed_rhs.contains_key(pe) {
                    out.push(lhs_items[li].clone());
                    li += 1;
                    continue;
                } else if merged_rhs.contains(pe) {
                    li += 1;
                }
            }
            if ri < rhs_pes.len() {
                let pe = &rhs_pes[ri];
                merged_rhs.insert(pe.clone());
                let l = observed_lhs.get(pe).copied().flatten();
                out.push(merge_item(l, observed_rhs.get(pe).copied(), sp)?);
                ri += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.pop_front();
                }
            }
        }
        Ok(out)
    }

    // ---- Prune (RemoveItems) ----

    /// `EnsureNamedFieldsAreMembers`: struct fields with owned contents count as owned.
    fn ensure_named_fields(&self, set: &FieldSet, sp: &mut Vec<String>) -> FieldSet {
        let is_struct = !self.schema.is_map_at(sp);
        let mut out = FieldSet { members: set.members.clone(), children: BTreeMap::new() };
        for (pe, child) in &set.children {
            if is_struct && matches!(pe, PathElement::Field(_)) {
                out.members.insert(pe.clone());
            }
            let pushed = match pe {
                PathElement::Field(name) => {
                    sp.push(self.schema.child_segment(sp, name));
                    true
                }
                _ => false,
            };
            out.children.insert(pe.clone(), self.ensure_named_fields(child, sp));
            if pushed {
                sp.pop();
            }
        }
        out
    }

    /// `RemoveItems`: drops members of `set` and recurses into its children; an object or list
    /// left empty by the removal disappears, as the typed round trip in Kubernetes drops it.
    fn remove_items(&self, v: &mut Value, set: &FieldSet, sp: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    let pe = PathElement::Field(k.clone());
                    if set.members.contains(&pe) {
                        m.shift_remove(&k);
                    } else if let Some(sub) = set.children.get(&pe) {
                        sp.push(self.schema.child_segment(sp, &k));
                        let child = m.get_mut(&k).expect("key listed above");
                        self.remove_items(child, sub, sp);
                        sp.pop();
                        if is_empty_container(Some(child)) && (child.is_object() || child.is_array()) {
                            m.shift_remove(&k);
                        }
                    }
                }
            }
            Value::Array(items) => {
                let Some(list_type) = self.schema.list_type_at(sp).cloned() else {
                    return;
                };
                let mut kept = Vec::with_capacity(items.len());
                for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                    match self.list_element(&list_type, &item, &[], i) {
                        Ok(pe) if set.members.contains(&pe) => continue,
                        Ok(pe) => {
                            if let Some(sub) = set.children.get(&pe) {
                                self.remove_items(&mut item, sub, sp);
                            }
                        }
                        Err(_) => {}
                    }
                    kept.push(item);
                }
                *items = kept;
            }
            _ => {}
        }
    }

    // ---- Updater ----

    /// The field manager's update path (`managedFieldsUpdater.Update` over `Updater.Update`, then
    /// `stripMetaManager` and `capManagersManager`).
    fn record_update(
        &self,
        managers: &mut Managers,
        old: &Value,
        new: &Value,
        id: ManagerId,
        api_version: &str,
        now: &str,
    ) -> Result<(), String> {
        let cmp = self.compare(Some(old), Some(new), &plain_eq)?;
        let changed = cmp.modified.union(&cmp.added);
        for entry in managers.values_mut() {
            entry.set = entry.set.difference(&changed).difference(&cmp.removed);
        }
        managers.retain(|_, e| !e.set.is_empty());

        let current = changed.difference(&self.strip);
        if !current.is_empty() {
            let set = match managers.get(&id) {
                Some(previous) => current.union(&previous.set),
                None => current,
            };
            managers.insert(id, Entry { api_version: api_version.to_string(), time: Some(now.to_string()), set });
        }
        cap_update_managers(managers);
        Ok(())
    }

    /// One pass of the apply path (`skipNonAppliedManager`, `Updater.Apply`, `stripMetaManager`,
    /// `managedFieldsUpdater.Apply`).
    #[allow(clippy::too_many_arguments, reason = "the request's parts, passed once from apply_with")]
    fn apply_once(
        &self,
        live: &Value,
        mut managers: Managers,
        config: &Value,
        config_set: &FieldSet,
        manager: &str,
        api_version: &str,
        now: &str,
        force: bool,
    ) -> Result<(Value, Managers), ApplyFailure> {
        if managers.is_empty() {
            let before = ManagerId::new(BEFORE_FIRST_APPLY, Operation::Update, api_version);
            self.record_update(&mut managers, &json!({}), live, before, api_version, now)
                .map_err(ApplyFailure::Invalid)?;
        }

        let id = ManagerId::new(manager, Operation::Apply, api_version);
        let previous = managers.get(&id).cloned();
        let mut merged = self.merge(live, config, &mut Vec::new()).map_err(ApplyFailure::Invalid)?;
        managers.insert(
            id.clone(),
            Entry {
                api_version: api_version.to_string(),
                time: previous.as_ref().and_then(|p| p.time.clone()),
                set: config_set.recursive_difference(&self.reset),
            },
        );

        // Prune what this applier set last time, no longer sets, and nobody else owns.
        if let Some(last) = previous.as_ref().filter(|p| !p.set.is_empty()) {
            let owned = managers.values().fold(FieldSet::default(), |acc, e| acc.union(&e.set));
            let last = self.ensure_named_fields(&last.set, &mut Vec::new());
            let owned = self.ensure_named_fields(&owned, &mut Vec::new());
            self.remove_items(&mut merged, &last.difference(&owned), &mut Vec::new());
        }

        let cmp = self.compare(Some(live), Some(&merged), &plain_eq).map_err(ApplyFailure::Invalid)?;
        let changed = cmp.modified.union(&cmp.added);
        let mut conflicts = Vec::new();
        for (other, entry) in &managers {
            if *other == id {
                continue;
            }
            for path in entry.set.intersection(&changed).paths() {
                let conflict = Conflict {
                    manager: other.manager.clone(),
                    field: path_string(&path),
                    operation: other.operation,
                    api_version: entry.api_version.clone(),
                };
                conflicts.push((other.identity_json(), conflict, path));
            }
        }
        if !force && !conflicts.is_empty() {
            conflicts.sort_by(|a, b| a.0.cmp(&b.0));
            return Err(ApplyFailure::Conflicts(conflicts.into_iter().map(|(_, c, p)| (c, p)).collect()));
        }
        for (other, entry) in managers.iter_mut() {
            if *other != id {
                entry.set = entry.set.difference(&changed).difference(&cmp.removed);
            }
        }
        if let Some(entry) = managers.get_mut(&id) {
            entry.set = entry.set.difference(&self.strip);
        }
        managers.retain(|_, e| !e.set.is_empty());

        if merged != *live
            && let Some(entry) = managers.get_mut(&id)
        {
            entry.time = Some(now.to_string());
        }
        Ok((merged, managers))
    }

    /// `lastAppliedManager.allowedConflictsFromLastApplied`: the fields of the annotation whose
    /// values the live object still has.
    fn allowed_from_last_applied(&self, live: &Value, api_version: &str, policy: LastApplied) -> Option<FieldSet> {
        let annotation = live.pointer("/metadata/annotations")?.get(LAST_APPLIED_ANNOTATION)?.as_str()?;
        if annotation.is_empty() {
            return None;
        }
        let last: Value = serde_json::from_str(annotation).ok()?;
        if !last.is_object() || last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
            return None;
        }
        let set = self.to_field_set(&last).ok()?;
        let eq = |path: &[PathElement], l: &Value, r: &Value| -> bool {
            let LastApplied::Redacted(digest) = policy else {
                return l == r;
            };
            let (Some(l), Some(r)) = (l.as_str(), r.as_str()) else {
                return l == r;
            };
            match path {
                [PathElement::Field(f), PathElement::Field(key)] if f == "data" => {
                    match base64::engine::general_purpose::STANDARD.decode(r) {
                        Ok(bytes) => {
                            let bytes = zeroize::Zeroizing::new(bytes);
                            digest(key, &bytes) == l
                        }
                        Err(_) => false,
                    }
                }
                [PathElement::Field(f), PathElement::Field(key)] if f == "stringData" => digest(key, r.as_bytes()) == l,
                _ => l == r,
            }
        };
        let cmp = self.compare(Some(&last), Some(live), &eq).ok()?;
        Some(set.difference(&cmp.modified).difference(&cmp.added).difference(&cmp.removed))
    }
}

/// `capUpdateManagers`: merges the oldest update entries into `ancient-changes` buckets, one per
/// apiVersion, until at most [`MAX_UPDATE_MANAGERS`] update entries remain.
fn cap_update_managers(managers: &mut Managers) {
    let mut updaters: Vec<ManagerId> =
        managers.keys().filter(|id| id.operation == Operation::Update).cloned().collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| {
        let ta = time_seconds(managers[a].time.as_deref());
        let tb = time_seconds(managers[b].time.as_deref());
        ta.cmp(&tb).then_with(|| a.identity_json().cmp(&b.identity_json()))
    });
    let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let entry = managers[&id].clone();
        let bucket = ManagerId::new(ANCIENT_CHANGES, Operation::Update, &entry.api_version);
        match first_of_version.get(&entry.api_version) {
            Some(first) => {
                if !managers.contains_key(&bucket) {
                    let moved = managers.remove(first).expect("first is a manager");
                    managers.insert(bucket.clone(), moved);
                }
                if id == bucket {
                    continue;
                }
                let b = managers.get_mut(&bucket).expect("bucket exists");
                b.set = entry.set.union(&b.set);
                b.api_version = entry.api_version.clone();
                b.time = entry.time.clone();
                managers.remove(&id);
                length -= 1;
            }
            None => {
                first_of_version.insert(entry.api_version.clone(), id);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Go-compatible JSON text
// ---------------------------------------------------------------------------------------------

/// Go's `%q` for the strings that appear in conflicts (JSON escaping agrees with it there).
fn go_quote(s: &str) -> String {
    let mut out = String::new();
    write_go_string(&mut out, s);
    out
}

/// A string as Go's `encoding/json` writes it, HTML-escaping included.
fn write_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value as Go's `encoding/json` writes it; `sort_keys` for Go maps (unstructured objects).
fn write_go_json(out: &mut String, v: &Value, sort_keys: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_go_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item, sort_keys);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(out, k);
                out.push(':');
                write_go_json(out, item, sort_keys);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2025-01-02T03:04:05Z";
    const T2: &str = "2025-01-02T03:09:00Z";
    const T3: &str = "2025-01-02T04:00:00Z";

    fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
        ApplyOptions { manager, force, api_version: "v1", now }
    }

    /// What `kubectl apply --server-side` sends (§5.3 of the wire reference).
    fn ssa_config(password: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "ssa-only", "namespace": "app", "labels": {"tier": "database"}},
            "data": {"password": password},
            "type": "Opaque",
        })
    }

    /// Stands in for the server storing an object: system fields set, stringData left alone.
    fn stored(mut obj: Value) -> Value {
        obj["metadata"]["uid"] = json!("8d7f0c1e-0000-4000-8000-000000000001");
        obj["metadata"]["resourceVersion"] = json!("7");
        obj["metadata"]["creationTimestamp"] = json!(T1);
        obj
    }

    fn managed(obj: &Value) -> &Value {
        &obj["metadata"]["managedFields"]
    }

    fn entry(manager: &str, operation: &str, time: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": "v1", "time": time,
               "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    fn created_by_update(obj: Value, manager: &str) -> Value {
        let mut obj = stored(obj);
        update(None, &mut obj, manager, "v1", T1);
        obj
    }

    #[test]
    fn ssa_create_if_missing_owns_what_it_set() {
        let mut config = ssa_config("UyFCXCpkJHpEc2I9");
        config["stringData"] = json!({"username": "root"});
        let out = apply(None, &config, &opts("kubectl", false, T1)).unwrap();
        assert_eq!(out["data"], json!({"password": "UyFCXCpkJHpEc2I9"}));
        assert_eq!(out["stringData"], json!({"username": "root"}), "folding stringData is the caller's job");
        assert_eq!(
            managed(&out),
            &json!([entry(
                "kubectl",
                "Apply",
                T1,
                json!({
                    "f:data": {"f:password": {}},
                    "f:metadata": {"f:labels": {"f:tier": {}}},
                    "f:stringData": {"f:username": {}},
                    "f:type": {},
                })
            )])
        );
    }

    #[test]
    fn reapply_without_change_leaves_managed_fields_identical() {
        let first = stored(apply(None, &ssa_config("YQ=="), &opts("kubectl", false, T1)).unwrap());
        let second = apply(Some(&first), &ssa_config("YQ=="), &opts("kubectl", false, T2)).unwrap();
        assert_eq!(second, first, "a no-op apply changes nothing, not even the time");
        assert_eq!(serde_json::to_string(managed(&second)).unwrap(), serde_json::to_string(managed(&first)).unwrap());
        // A change moves the time.
        let third = apply(Some(&first), &ssa_config("Yg=="), &opts("kubectl", false, T3)).unwrap();
        assert_eq!(managed(&third)[0]["time"], json!(T3));
    }

    fn csa_created() -> Value {
        // What `kubectl apply` (client side) creates, recorded by the server as an update.
        created_by_update(
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "ssa-only", "namespace": "app", "labels": {"tier": "database"},
                             "annotations": {LAST_APPLIED_ANNOTATION: "{\"apiVersion\":\"v1\",\"data\":{\"password\":\"YQ==\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"labels\":{\"tier\":\"database\"},\"name\":\"ssa-only\",\"namespace\":\"app\"},\"type\":\"Opaque\"}\n"}},
                "data": {"password": "YQ=="},
                "type": "Opaque",
            }),
            "kubectl-client-side-apply",
        )
    }

    #[test]
    fn update_on_create_owns_all_fields_set() {
        let obj = csa_created();
        assert_eq!(
            managed(&obj),
            &json!([entry(
                "kubectl-client-side-apply",
                "Update",
                T1,
                json!({
                    "f:data": {".": {}, "f:password": {}},
                    "f:metadata": {
                        "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                        "f:labels": {".": {}, "f:tier": {}},
                    },
                    "f:type": {},
                })
            )])
        );
    }

    #[test]
    fn conflict_with_client_side_apply_manager() {
        let live = csa_created();
        let err = apply(Some(&live), &ssa_config("Yg=="), &opts("kubectl", false, T2)).unwrap_err();
        let ApplyError::Conflicts(conflicts) = &err else { panic!("{err:?}") };
        assert_eq!(
            conflicts,
            &vec![Conflict {
                manager: "kubectl-client-side-apply".into(),
                field: ".data.password".into(),
                operation: Operation::Update,
                api_version: "v1".into(),
            }]
        );
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.password"
        );
        assert_eq!(conflicts[0].cause_message(), "conflict with \"kubectl-client-side-apply\" using v1");
        // Same values are no conflict: both managers own them.
        let shared = apply(Some(&live), &ssa_config("YQ=="), &opts("kubectl", false, T2)).unwrap();
        let mf = managed(&shared).as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[0]["manager"], "kubectl");
        assert_eq!(mf[0]["fieldsV1"]["f:data"], json!({"f:password": {}}));
        assert_eq!(mf[1]["fieldsV1"]["f:data"], json!({".": {}, "f:password": {}}));
    }

    #[test]
    fn force_takes_ownership() {
        let live = csa_created();
        let out = apply(Some(&live), &ssa_config("Yg=="), &opts("kubectl", true, T2)).unwrap();
        assert_eq!(out["data"]["password"], "Yg==");
        assert_eq!(
            managed(&out),
            &json!([
                entry(
                    "kubectl",
                    "Apply",
                    T2,
                    json!({
                        "f:data": {"f:password": {}},
                        "f:metadata": {"f:labels": {"f:tier": {}}},
                        "f:type": {},
                    })
                ),
                entry(
                    "kubectl-client-side-apply",
                    "Update",
                    T1,
                    json!({
                        "f:data": {},
                        "f:metadata": {
                            "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                            "f:labels": {".": {}, "f:tier": {}},
                        },
                        "f:type": {},
                    })
                ),
            ])
        );
    }

    #[test]
    fn last_applied_upgrade_for_kubectl() {
        let digest = |key: &str, value: &[u8]| format!("d:{key}:{}", value.len());
        let redacted = redact_last_applied(live_annotation(&csa_created()).as_str(), &digest).unwrap();
        let mut live = csa_created();
        live["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] = json!(redacted);

        // kubectl set the password client-side and it is unchanged: the conflict is forgiven and
        // the annotation rewritten, redacted, from the applied configuration.
        let out = apply_with(
            Some(&live),
            &ssa_config("Yg=="),
            &opts("kubectl", false, T2),
            &StrategicSchema::default(),
            LastApplied::Redacted(&digest),
        )
        .unwrap();
        assert_eq!(out["data"]["password"], "Yg==");
        let annotation = live_annotation(&out);
        assert!(annotation.contains("\"password\":\"d:password:1\"") && !annotation.contains("Yg=="), "{annotation}");

        // Another manager name gets no such treatment.
        let err = apply_with(
            Some(&live),
            &ssa_config("Yg=="),
            &opts("ci", false, T2),
            &StrategicSchema::default(),
            LastApplied::Redacted(&digest),
        )
        .unwrap_err();
        assert!(matches!(err, ApplyError::Conflicts(_)));

        // If the live value no longer matches the annotation, the conflict stands.
        let mut drifted = live.clone();
        drifted["data"]["password"] = json!("ZHJpZnQ=");
        let err = apply_with(
            Some(&drifted),
            &ssa_config("Yg=="),
            &opts("kubectl", false, T2),
            &StrategicSchema::default(),
            LastApplied::Redacted(&digest),
        )
        .unwrap_err();
        assert!(matches!(err, ApplyError::Conflicts(ref c) if c.len() == 1), "{err:?}");
    }

    fn live_annotation(obj: &Value) -> String {
        obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].as_str().unwrap().to_string()
    }

    #[test]
    fn applier_stops_setting_a_field_and_it_is_removed() {
        let mut two = ssa_config("YQ==");
        two["data"]["extra"] = json!("eA==");
        two["metadata"]["labels"]["gone"] = json!("soon");
        let live = stored(apply(None, &two, &opts("kubectl", false, T1)).unwrap());
        let out = apply(Some(&live), &ssa_config("YQ=="), &opts("kubectl", false, T2)).unwrap();
        assert_eq!(out["data"], json!({"password": "YQ=="}));
        assert_eq!(out["metadata"]["labels"], json!({"tier": "database"}));
        assert_eq!(managed(&out)[0]["fieldsV1"]["f:data"], json!({"f:password": {}}));

        // Dropping every data key drops the map.
        let mut none = ssa_config("YQ==");
        none.as_object_mut().unwrap().remove("data");
        let out = apply(Some(&live), &none, &opts("kubectl", false, T2)).unwrap();
        assert!(out.get("data").is_none(), "{out}");
    }

    #[test]
    fn two_appliers_share_a_field() {
        let live = stored(apply(None, &ssa_config("YQ=="), &opts("a", false, T1)).unwrap());
        let mut b_config = ssa_config("YQ==");
        b_config["data"]["b-only"] = json!("Yg==");
        let live = apply(Some(&live), &b_config, &opts("b", false, T2)).unwrap();
        let mf = managed(&live).as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[0]["manager"], "a");
        assert_eq!(mf[1]["manager"], "b");
        assert_eq!(mf[1]["fieldsV1"]["f:data"], json!({"f:b-only": {}, "f:password": {}}));

        // a stops setting the password: b still owns it, so it stays.
        let mut a_config = ssa_config("YQ==");
        a_config.as_object_mut().unwrap().remove("data");
        let out = apply(Some(&live), &a_config, &opts("a", false, T3)).unwrap();
        assert_eq!(out["data"]["password"], "YQ==");

        // b changing the shared field conflicts with a, an applier (no apiVersion printed).
        let mut b_change = b_config.clone();
        b_change["data"]["password"] = json!("Yw==");
        let err = apply(Some(&live), &b_change, &opts("b", false, T3)).unwrap_err();
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"a\": .data.password");
    }

    #[test]
    fn first_apply_to_an_untracked_object() {
        let live = stored(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "ssa-only", "namespace": "app"},
            "data": {"password": "YQ=="}, "type": "Opaque",
        }));
        let err = apply(Some(&live), &ssa_config("Yg=="), &opts("kubectl", false, T2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.password"
        );
    }

    #[test]
    fn update_after_label_patch() {
        let created = created_by_update(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app"},
                   "data": {"password": "YQ=="}, "type": "Opaque"}),
            "kubectl-create",
        );
        let mut patched = crate::patch::merge_patch(&created, &json!({"metadata": {"labels": {"k": "v"}}})).unwrap();
        update(Some(&created), &mut patched, "kubectl-label", "v1", T2);
        assert_eq!(
            managed(&patched),
            &json!([
                entry("kubectl-create", "Update", T1, json!({"f:data": {".": {}, "f:password": {}}, "f:type": {}})),
                entry("kubectl-label", "Update", T2, json!({"f:metadata": {"f:labels": {".": {}, "f:k": {}}}})),
            ])
        );

        // A no-op patch leaves managedFields byte-identical (kubectl prints "patched (no change)").
        let mut again = crate::patch::merge_patch(&patched, &json!({"metadata": {"labels": {"k": "v"}}})).unwrap();
        update(Some(&patched), &mut again, "kubectl-label", "v1", T3);
        assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&patched).unwrap());

        // Changing the label again only moves its owner's time.
        let mut changed = crate::patch::merge_patch(&patched, &json!({"metadata": {"labels": {"k": "w"}}})).unwrap();
        update(Some(&patched), &mut changed, "kubectl-label", "v1", T3);
        assert_eq!(managed(&changed)[1]["time"], json!(T3));
        assert_eq!(managed(&changed)[0]["time"], json!(T1));

        // Another manager changing the label takes it from kubectl-label, which keeps the map.
        let mut edited = crate::patch::merge_patch(&patched, &json!({"metadata": {"labels": {"k": "x"}}})).unwrap();
        update(Some(&patched), &mut edited, "kubectl-edit", "v1", T3);
        let managers: Vec<&str> =
            managed(&edited).as_array().unwrap().iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(managers, ["kubectl-create", "kubectl-label", "kubectl-edit"]);
        assert_eq!(managed(&edited)[1]["fieldsV1"], json!({"f:metadata": {"f:labels": {}}}));
        assert_eq!(managed(&edited)[2]["fieldsV1"], json!({"f:metadata": {"f:labels": {"f:k": {}}}}));
    }

    #[test]
    fn update_removal_and_reset() {
        let created = created_by_update(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "data": {"a": "YQ==", "b": "Yg=="}}),
            "kubectl-create",
        );
        let mut removed = crate::patch::merge_patch(&created, &json!({"data": {"a": null}})).unwrap();
        update(Some(&created), &mut removed, "kubectl-patch", "v1", T2);
        assert_eq!(
            managed(&removed),
            &json!([entry("kubectl-create", "Update", T1, json!({"f:data": {".": {}, "f:b": {}}}))])
        );

        // `managedFields: [{}]` resets them, and an untracked object stays untracked.
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        update(Some(&created), &mut reset, "kubectl-patch", "v1", T2);
        assert!(reset["metadata"].get("managedFields").is_none());
        let mut later = crate::patch::merge_patch(&reset, &json!({"data": {"c": "Yw=="}})).unwrap();
        update(Some(&reset), &mut later, "kubectl-patch", "v1", T3);
        assert!(later["metadata"].get("managedFields").is_none());

        // Managed fields sent by the client replace the stored ones (kubectl's csaupgrade).
        let mut rewritten = created.clone();
        rewritten["metadata"]["managedFields"] = json!([entry("kubectl", "Apply", T2, json!({"f:data": {"f:a": {}}}))]);
        update(Some(&created), &mut rewritten, "kubectl-patch", "v1", T3);
        assert_eq!(managed(&rewritten), &json!([entry("kubectl", "Apply", T2, json!({"f:data": {"f:a": {}}}))]));
    }

    #[test]
    fn lists_use_keys_and_values() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "finalizers": ["example.com/keep"],
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u-1"}]},
        });
        let out = apply(None, &obj, &opts("kubectl", false, T1)).unwrap();
        let fields = json!({"f:metadata": {
            "f:finalizers": {"v:\"example.com/keep\"": {}},
            "f:ownerReferences": {"k:{\"uid\":\"u-1\"}": {".": {}, "f:apiVersion": {}, "f:kind": {}, "f:name": {}, "f:uid": {}}},
        }});
        assert_eq!(managed(&out)[0]["fieldsV1"], fields);
        let set = FieldSet::from_fields_v1(&fields).unwrap();
        assert_eq!(set.to_fields_v1(), fields, "FieldsV1 round-trips");

        // Another applier's owner reference merges by uid; conflicting on one reports its key.
        let live = stored(out);
        let mut other = obj.clone();
        other["metadata"]["ownerReferences"][0]["name"] = json!("renamed");
        other["metadata"]["finalizers"] = json!(["example.com/other"]);
        let err = apply(Some(&live), &other, &opts("ci", false, T2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\": .metadata.ownerReferences[uid=\"u-1\"].name"
        );
        let out = apply(Some(&live), &other, &opts("ci", true, T2)).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["example.com/keep", "example.com/other"]));
    }

    #[test]
    fn conflict_message_plural() {
        let c = |manager: &str, field: &str, operation| Conflict {
            manager: manager.into(),
            field: field.into(),
            operation,
            api_version: "v1".into(),
        };
        let msg = conflict_message(&[
            c("kubectl-client-side-apply", ".data.password", Operation::Update),
            c("kubectl-client-side-apply", ".data.username", Operation::Update),
            c("helm", ".metadata.labels.tier", Operation::Apply),
        ]);
        assert_eq!(
            msg,
            "Apply failed with 3 conflicts: conflicts with \"helm\":\n- .metadata.labels.tier\nconflicts with \"kubectl-client-side-apply\" using v1:\n- .data.password\n- .data.username"
        );
    }

    #[test]
    fn invalid_apply_configurations() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"apiVersion": "v2", "kind": "Secret", "metadata": {"name": "x"}}),
                "invalid object type: /v2, Kind=Secret",
            ),
            (json!({"apiVersion": "v1", "metadata": {"name": "x"}}), "invalid object type: /v1, Kind="),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "managedFields": []}}),
                "metadata.managedFields must be nil",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "ownerReferences": [{"uid": "a"}, {"uid": "a"}]}}),
                ".metadata.ownerReferences: duplicate entries for key [uid=\"a\"]",
            ),
        ];
        for (config, want) in cases {
            let err = apply(None, config, &opts("kubectl", false, T1)).unwrap_err();
            assert_eq!(err, ApplyError::Invalid(want.to_string()));
        }
    }

    #[test]
    fn entries_are_sorted_and_capped() {
        let mut obj = created_by_update(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"a": "b"}}}),
            "kubectl-create",
        );
        for i in 0..12 {
            let old = obj.clone();
            obj = crate::patch::merge_patch(&old, &json!({"data": {format!("k{i}"): "YQ=="}})).unwrap();
            let now = format!("2025-01-02T05:00:{i:02}Z");
            update(Some(&old), &mut obj, &format!("m{i:02}"), "v1", &now);
        }
        let mf = managed(&obj).as_array().unwrap();
        assert_eq!(mf.len(), MAX_UPDATE_MANAGERS);
        assert_eq!(mf[0]["manager"], "ancient-changes");
        assert_eq!(mf[0]["fieldsV1"]["f:data"], json!({".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}));
        let times: Vec<&str> = mf.iter().map(|e| e["time"].as_str().unwrap()).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted);
    }

    #[test]
    fn time_is_recorded_in_seconds() {
        let out = apply(None, &ssa_config("YQ=="), &opts("kubectl", false, "2025-01-02T03:04:05.678+01:00")).unwrap();
        assert_eq!(managed(&out)[0]["time"], "2025-01-02T02:04:05Z");
    }

    #[test]
    fn build_last_applied_is_go_json() {
        let applied = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "a<b", "annotations": {LAST_APPLIED_ANNOTATION: "x", "o": "t"}}});
        assert_eq!(
            build_last_applied(&applied),
            "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"annotations\":{\"o\":\"t\"},\"name\":\"a\\u003cb\"}}\n"
        );
    }
}
