//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! Since v1.32, kubectl's typed clients send every `create …` and `auth …` body as Kubernetes
//! protobuf, and answering 415 does not make them fall back to JSON. This module turns such a
//! body into the JSON form of the same object, so everything after it (defaulting, validation,
//! admission, storage) sees a single format.
//!
//! A body is the magic prefix `k8s\0` followed by a `runtime.Unknown` envelope: `typeMeta`
//! (apiVersion, kind), `raw` (the object's own message, without apiVersion/kind),
//! `contentEncoding` and `contentType`. The message types below are written by hand after the
//! `generated.proto` files of k8s.io/api and k8s.io/apimachinery v0.32 (field numbers checked
//! against them), and keep their Kubernetes names so that decode errors name the message.
//!
//! Zero values. The `.proto` files are proto2 and every field is declared `optional`, so presence
//! is visible, and gogo-protobuf writes every non-pointer Go field even when it is empty (`""`, 0,
//! `false`, an empty `Time`, an empty `spec`). The JSON form is the JSON kubectl would send, with
//! zero values left out:
//!
//! * A non-pointer field holding its zero value is left out, and so is a non-pointer message that
//!   comes out empty (`"spec":{}`, `"status":{}`, `"roleRef":{}`), even where Go's JSON would
//!   write `""`, `false`, `{}` or `null` because the field lacks `omitempty`. To the server a
//!   missing field means "unset": `type` gets defaulted to `Opaque` instead of arriving as `""`,
//!   and validation reports required fields as missing.
//! * A pointer field (`immutable`, `expirationSeconds`, `boundObjectRef`, `resourceAttributes`,
//!   every field of `DeleteOptions`, …) is written whenever it is present, even as `false`, `0`,
//!   `""` or `{}`, because for pointers presence is the information.
//! * `meta.v1.Time` is read as the apiserver reads it: an empty message is the zero time (left
//!   out), otherwise `seconds` in RFC 3339 UTC; `nanos` is ignored, as it is by the apiserver.
//! * `[]byte` values (Secret `data`) become standard base64 strings, as Go's JSON writes them.
//!
//! Architecture invariant: errors name messages, fields and kinds, never the bytes or string
//! values of a body, because bodies carry secret values. Buffers that held secret values while
//! decoding are zeroized when dropped.
//!
//! This module does not know which URL the body was posted to: the caller checks the decoded
//! `apiVersion`/`kind` against the endpoint, exactly as for a JSON body.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use prost::Message;
use serde_json::{Map, Value};
use zeroize::Zeroize;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// Why a protobuf body could not be decoded.
///
/// Invariant: no variant carries bytes or string values read from the body, except an
/// `apiVersion`/`kind` pair that looks like one (see [`type_name`]).
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the kubernetes protobuf prefix \"k8s\\x00\"")]
    MissingMagic,
    #[error("protobuf body has nothing after the kubernetes protobuf prefix")]
    EmptyEnvelope,
    #[error("malformed runtime.Unknown envelope: {detail}")]
    MalformedEnvelope { detail: String },
    #[error("runtime.Unknown envelope has no typeMeta.{field}")]
    MissingTypeMeta { field: &'static str },
    #[error("runtime.Unknown envelope has a contentEncoding; only unencoded bodies are supported")]
    UnsupportedContentEncoding,
    #[error("runtime.Unknown envelope has a contentType other than {CONTENT_TYPE}")]
    UnsupportedContentType,
    #[error("protobuf bodies of kind {kind} in {api_version} are not supported")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("malformed {kind} protobuf message: {detail}")]
    Malformed { kind: &'static str, detail: String },
    #[error("{kind} field {field} {problem}")]
    InvalidField { kind: &'static str, field: &'static str, problem: &'static str },
}

/// Decodes a body (magic + runtime.Unknown envelope) into the object's JSON form, exactly as the
/// same object would look if kubectl had sent JSON: `apiVersion`/`kind` from the envelope's typeMeta,
/// `[]byte` fields (Secret.data values) as standard base64 strings, meta.v1.Time as RFC 3339 UTC
/// "2024-01-02T03:04:05Z", and gogo zero values that mean "unset" (empty strings, 0 generation,
/// empty Time message, empty maps/lists, empty spec/status messages where JSON would omit them) left out,
/// so that `type: ""` does not appear and server-side defaulting works.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body.strip_prefix(&MAGIC).ok_or(ProtobufError::MissingMagic)?;
    if envelope.is_empty() {
        return Err(ProtobufError::EmptyEnvelope);
    }
    let unknown =
        Unknown::decode(envelope).map_err(|err| ProtobufError::MalformedEnvelope { detail: describe(&err) })?;
    if unknown.content_encoding.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(ProtobufError::UnsupportedContentEncoding);
    }
    if unknown.content_type.as_deref().is_some_and(|t| !t.is_empty() && t != CONTENT_TYPE) {
        return Err(ProtobufError::UnsupportedContentType);
    }
    let type_meta = unknown.type_meta.clone().unwrap_or_default();
    let api_version = type_meta.api_version.filter(|v| !v.is_empty());
    let api_version = api_version.ok_or(ProtobufError::MissingTypeMeta { field: "apiVersion" })?;
    let kind = type_meta.kind.filter(|k| !k.is_empty());
    let kind = kind.ok_or(ProtobufError::MissingTypeMeta { field: "kind" })?;

    let raw = unknown.raw.as_deref().unwrap_or_default();
    let fields = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => object::<Secret>("Secret", raw)?,
        ("v1", "Namespace") => object::<Namespace>("Namespace", raw)?,
        ("v1", "ServiceAccount") => object::<ServiceAccount>("ServiceAccount", raw)?,
        ("v1", "Event") => object::<Event>("Event", raw)?,
        (RBAC_V1, "Role") => object::<Role>("Role", raw)?,
        (RBAC_V1, "ClusterRole") => object::<ClusterRole>("ClusterRole", raw)?,
        (RBAC_V1, "RoleBinding") => object::<RoleBinding>("RoleBinding", raw)?,
        (RBAC_V1, "ClusterRoleBinding") => object::<RoleBinding>("ClusterRoleBinding", raw)?,
        (AUTHENTICATION_V1, "TokenRequest") => object::<TokenRequest>("TokenRequest", raw)?,
        (AUTHENTICATION_V1, "TokenReview") => object::<TokenReview>("TokenReview", raw)?,
        (AUTHENTICATION_V1, "SelfSubjectReview") => object::<SelfSubjectReview>("SelfSubjectReview", raw)?,
        (AUTHORIZATION_V1, "SelfSubjectAccessReview") => {
            object::<SelfSubjectAccessReview>("SelfSubjectAccessReview", raw)?
        }
        (AUTHORIZATION_V1, "SelfSubjectRulesReview") => {
            object::<SelfSubjectRulesReview>("SelfSubjectRulesReview", raw)?
        }
        (AUTHORIZATION_V1, "SubjectAccessReview") => object::<SubjectAccessReview>("SubjectAccessReview", raw)?,
        (AUTHORIZATION_V1, "LocalSubjectAccessReview") => {
            object::<SubjectAccessReview>("LocalSubjectAccessReview", raw)?
        }
        (version, "DeleteOptions") if DELETE_OPTIONS_VERSIONS.contains(&version) => {
            object::<DeleteOptions>("DeleteOptions", raw)?
        }
        _ => {
            return Err(ProtobufError::UnsupportedKind {
                api_version: type_name(&api_version),
                kind: type_name(&kind),
            });
        }
    };

    let mut json = Map::new();
    json.insert("apiVersion".to_owned(), Value::String(api_version));
    json.insert("kind".to_owned(), Value::String(kind));
    json.extend(fields.0);
    Ok(Value::Object(json))
}

const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";
const AUTHENTICATION_V1: &str = "authentication.k8s.io/v1";
const AUTHORIZATION_V1: &str = "authorization.k8s.io/v1";

/// `DeleteOptions` is registered in `meta.k8s.io/v1` and in every served group version, and
/// client-go labels it with the version of the client that sends it.
const DELETE_OPTIONS_VERSIONS: &[&str] = &["meta.k8s.io/v1", "v1", RBAC_V1, AUTHENTICATION_V1, AUTHORIZATION_V1];

/// Decodes `raw` as the message `M` and converts it, naming `kind` in errors.
///
/// ClusterRoleBinding reuses RoleBinding's message and LocalSubjectAccessReview reuses
/// SubjectAccessReview's, so the kind name comes from the envelope rather than from `M`.
fn object<M: Message + Default + ToJson>(kind: &'static str, raw: &[u8]) -> Result<JsonObject, ProtobufError> {
    let message = M::decode(raw).map_err(|err| ProtobufError::Malformed { kind, detail: describe(&err) })?;
    message.to_json().map_err(|InvalidField { field, problem }| ProtobufError::InvalidField { kind, field, problem })
}

/// Renders a prost decode error as "what is wrong (at Message.field, …)", outermost first.
///
/// prost lists the (message, field) path innermost first, and some of its texts carry a value
/// read from the body (the value of an out-of-range key), so the text is rebuilt from parts
/// that are known to hold none.
fn describe(err: &prost::DecodeError) -> String {
    let text = err.to_string();
    let mut rest = text.strip_prefix("failed to decode Protobuf message: ").unwrap_or(&text);
    let mut path = Vec::new();
    while let Some((segment, tail)) = rest.split_once(": ") {
        let Some(segment) = path_segment(segment) else {
            break;
        };
        path.push(segment);
        rest = tail;
    }
    let problem = problem(rest);
    if path.is_empty() {
        return problem.to_owned();
    }
    path.reverse();
    format!("{problem} (at {})", path.join(", "))
}

/// A `Message.field` pair as prost writes it, with the `r#` of raw identifiers dropped.
fn path_segment(segment: &str) -> Option<String> {
    let (message, field) = segment.split_once('.')?;
    let field = field.strip_prefix("r#").unwrap_or(field);
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let is_segment = ident(message) && ident(field) && message.starts_with(|c: char| c.is_ascii_uppercase());
    is_segment.then(|| format!("{message}.{field}"))
}

/// prost's description of the problem, reduced to text that holds nothing from the body.
fn problem(text: &str) -> &str {
    const FIXED: &[&str] = &[
        "buffer underflow",
        "delimited length exceeded",
        "invalid string value: data is not UTF-8 encoded",
        "invalid tag value: 0",
        "invalid varint",
        "length delimiter exceeds maximum usize value",
        "recursion limit reached",
        "unexpected end group tag",
    ];
    // These two go on with a number taken from the body.
    const NUMBERED: &[&str] = &["invalid key value", "invalid wire type value"];
    if let Some(fixed) = FIXED.iter().find(|fixed| **fixed == text) {
        return fixed;
    }
    if let Some(numbered) = NUMBERED.iter().find(|prefix| text.starts_with(**prefix)) {
        return numbered;
    }
    // "invalid wire type: Varint (expected LengthDelimited)" names wire types only.
    let wire_type_names = text.chars().all(|c| c.is_ascii_alphabetic() || " :()".contains(c));
    if text.starts_with("invalid wire type: ") && wire_type_names {
        return text;
    }
    "malformed protobuf"
}

/// An `apiVersion` or `kind` from the envelope, fit for an error message: kept when it looks like
/// one, replaced otherwise, so that arbitrary body bytes never reach an error or a log line.
fn type_name(name: &str) -> String {
    let plausible =
        name.len() <= 253 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/'));
    if plausible { name.to_owned() } else { "(unprintable)".to_owned() }
}

// ---------------------------------------------------------------------------------------------
// Conversion into JSON.

/// A field whose value has no JSON form; names the field by its JSON path.
#[derive(Debug)]
struct InvalidField {
    field: &'static str,
    problem: &'static str,
}

/// Conversion of a decoded message into its Kubernetes JSON object.
trait ToJson {
    fn to_json(&self) -> Result<JsonObject, InvalidField>;
}

/// A JSON object under construction, with one method per Go field shape.
#[derive(Default)]
struct JsonObject(Map<String, Value>);

impl JsonObject {
    fn insert(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_owned(), value);
    }

    /// A non-pointer string: `""` is Go's zero value and means unset.
    fn string(&mut self, key: &str, value: &Option<String>) {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            self.insert(key, Value::String(value.to_owned()));
        }
    }

    /// A `*string`: present even when empty.
    fn pointer_string(&mut self, key: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.insert(key, Value::String(value.clone()));
        }
    }

    /// A `[]string`: nil and empty look the same on the wire, and both mean unset.
    fn strings(&mut self, key: &str, values: &[String]) {
        if !values.is_empty() {
            self.insert(key, Value::from(values.to_vec()));
        }
    }

    /// A non-pointer `int64`: 0 means unset.
    fn int(&mut self, key: &str, value: Option<i64>) {
        if let Some(value) = value.filter(|v| *v != 0) {
            self.insert(key, Value::from(value));
        }
    }

    /// A `*int64`: present even when 0.
    fn pointer_int(&mut self, key: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.insert(key, Value::from(value));
        }
    }

    /// A non-pointer `bool`: `false` means unset.
    fn bool(&mut self, key: &str, value: Option<bool>) {
        if value == Some(true) {
            self.insert(key, Value::Bool(true));
        }
    }

    /// A `*bool`: present even when `false`.
    fn pointer_bool(&mut self, key: &str, value: Option<bool>) {
        if let Some(value) = value {
            self.insert(key, Value::Bool(value));
        }
    }

    fn string_map(&mut self, key: &str, map: &BTreeMap<String, String>) {
        if !map.is_empty() {
            let map = map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone())));
            self.insert(key, Value::Object(map.collect()));
        }
    }

    /// A map of `ExtraValue`, which is a `[]string` and so a plain JSON array.
    fn extra_map(&mut self, key: &str, map: &BTreeMap<String, ExtraValue>) {
        if !map.is_empty() {
            let map = map.iter().map(|(k, v)| (k.clone(), Value::from(v.items.clone())));
            self.insert(key, Value::Object(map.collect()));
        }
    }

    /// A non-pointer struct: left out when nothing in it is set.
    fn message<M: ToJson>(&mut self, key: &str, value: &Option<M>) -> Result<(), InvalidField> {
        if let Some(value) = value {
            let object = value.to_json()?;
            if !object.0.is_empty() {
                self.insert(key, Value::Object(object.0));
            }
        }
        Ok(())
    }

    /// A pointer to a struct: present (possibly as `{}`) whenever it was sent.
    fn pointer_message<M: ToJson>(&mut self, key: &str, value: &Option<M>) -> Result<(), InvalidField> {
        if let Some(value) = value {
            self.insert(key, Value::Object(value.to_json()?.0));
        }
        Ok(())
    }

    /// A slice of structs; every element is kept, even an empty one, so indices stay meaningful.
    fn messages<M: ToJson>(&mut self, key: &str, values: &[M]) -> Result<(), InvalidField> {
        if !values.is_empty() {
            let values = values.iter().map(|v| v.to_json().map(|o| Value::Object(o.0)));
            self.insert(key, Value::Array(values.collect::<Result<_, _>>()?));
        }
        Ok(())
    }

    /// A `metav1.MicroTime`; `path` names it in errors.
    fn micro_time(&mut self, key: &str, value: &Option<MicroTime>, path: &'static str) -> Result<(), InvalidField> {
        if let Some(time) = value.as_ref().map(|t| t.rfc3339(path)).transpose()?.flatten() {
            self.insert(key, Value::String(time));
        }
        Ok(())
    }

    /// A `metav1.Time` or `*metav1.Time`; `path` names it in errors.
    fn time(&mut self, key: &str, value: &Option<Time>, path: &'static str) -> Result<(), InvalidField> {
        if let Some(time) = value.as_ref().map(|t| t.rfc3339(path)).transpose()?.flatten() {
            self.insert(key, Value::String(time));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.io/apimachinery/pkg/runtime

/// `runtime.Unknown`: the envelope around every protobuf body.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    /// The object's own message; for a Secret it holds the secret values.
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    content_type: Option<String>,
}

impl Drop for Unknown {
    fn drop(&mut self) {
        self.raw.zeroize();
    }
}

impl fmt::Debug for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unknown")
            .field("type_meta", &self.type_meta)
            .field("raw_len", &self.raw.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// k8s.io/apimachinery/pkg/apis/meta/v1

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "4")]
    self_link: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<Time>,
    #[prost(int64, optional, tag = "10")]
    deletion_grace_period_seconds: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
    #[prost(message, repeated, tag = "17")]
    managed_fields: Vec<ManagedFieldsEntry>,
}

impl ToJson for ObjectMeta {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("name", &self.name);
        o.string("generateName", &self.generate_name);
        o.string("namespace", &self.namespace);
        o.string("selfLink", &self.self_link);
        o.string("uid", &self.uid);
        o.string("resourceVersion", &self.resource_version);
        o.int("generation", self.generation);
        o.time("creationTimestamp", &self.creation_timestamp, "metadata.creationTimestamp")?;
        o.time("deletionTimestamp", &self.deletion_timestamp, "metadata.deletionTimestamp")?;
        o.pointer_int("deletionGracePeriodSeconds", self.deletion_grace_period_seconds);
        o.string_map("labels", &self.labels);
        o.string_map("annotations", &self.annotations);
        o.messages("ownerReferences", &self.owner_references)?;
        o.strings("finalizers", &self.finalizers);
        o.messages("managedFields", &self.managed_fields)?;
        Ok(o)
    }
}

/// `metav1.Time`, on the wire a `Timestamp`.
#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

impl Time {
    /// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds; it marshals as `null`.
    const GO_ZERO_UNIX: i64 = -62_135_596_800;
    /// 9999-12-30T22:00:00Z, the last whole second `jiff` represents; Go goes one day further,
    /// but no real timestamp lies in that day.
    const MAX_UNIX: i64 = 253_402_207_200;

    /// The JSON form, or `None` for the zero time.
    ///
    /// The apiserver reads an empty message as the zero time and anything else as
    /// `time.Unix(seconds, 0)`: it ignores `nanos`, since JSON carries whole seconds only.
    fn rfc3339(&self, path: &'static str) -> Result<Option<String>, InvalidField> {
        if self.seconds.is_none() && self.nanos.is_none() {
            return Ok(None);
        }
        let seconds = self.seconds.unwrap_or(0);
        if seconds == Self::GO_ZERO_UNIX {
            return Ok(None);
        }
        let out_of_range = InvalidField { field: path, problem: "is outside 0001-01-01 to 9999-12-30" };
        if !(Self::GO_ZERO_UNIX..=Self::MAX_UNIX).contains(&seconds) {
            return Err(out_of_range);
        }
        let timestamp = jiff::Timestamp::from_second(seconds).map_err(|_| out_of_range)?;
        Ok(Some(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
    }
}

/// `metav1.MicroTime`, on the wire a `Timestamp` like [`Time`] but with its `nanos` kept.
#[derive(Clone, PartialEq, Message)]
struct MicroTime {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

impl MicroTime {
    /// The JSON form (RFC 3339 UTC with six fractional digits, as Go's `RFC3339Micro`), or `None`
    /// for the zero time.
    ///
    /// The apiserver reads a MicroTime as `time.Unix(seconds, nanos)` (which carries `nanos`
    /// outside a second over into `seconds`) and writes it to the microsecond, truncated.
    fn rfc3339(&self, path: &'static str) -> Result<Option<String>, InvalidField> {
        const NANOS_PER_SECOND: i128 = 1_000_000_000;
        if self.seconds.is_none() && self.nanos.is_none() {
            return Ok(None);
        }
        let total = i128::from(self.seconds.unwrap_or(0)) * NANOS_PER_SECOND + i128::from(self.nanos.unwrap_or(0));
        if total == i128::from(Time::GO_ZERO_UNIX) * NANOS_PER_SECOND {
            return Ok(None);
        }
        let out_of_range = InvalidField { field: path, problem: "is outside 0001-01-01 to 9999-12-30" };
        let range =
            i128::from(Time::GO_ZERO_UNIX) * NANOS_PER_SECOND..(i128::from(Time::MAX_UNIX) + 1) * NANOS_PER_SECOND;
        if !range.contains(&total) {
            return Err(out_of_range);
        }
        let micros = total.div_euclid(1000) * 1000;
        let timestamp = jiff::Timestamp::from_nanosecond(micros).map_err(|_| out_of_range)?;
        Ok(Some(timestamp.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))
    }
}

#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

impl ToJson for OwnerReference {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("apiVersion", &self.api_version);
        o.string("kind", &self.kind);
        o.string("name", &self.name);
        o.string("uid", &self.uid);
        o.pointer_bool("controller", self.controller);
        o.pointer_bool("blockOwnerDeletion", self.block_owner_deletion);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct ManagedFieldsEntry {
    #[prost(string, optional, tag = "1")]
    manager: Option<String>,
    #[prost(string, optional, tag = "2")]
    operation: Option<String>,
    #[prost(string, optional, tag = "3")]
    api_version: Option<String>,
    #[prost(message, optional, tag = "4")]
    time: Option<Time>,
    #[prost(string, optional, tag = "6")]
    fields_type: Option<String>,
    #[prost(message, optional, tag = "7")]
    fields_v1: Option<FieldsV1>,
    #[prost(string, optional, tag = "8")]
    subresource: Option<String>,
}

impl ToJson for ManagedFieldsEntry {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("manager", &self.manager);
        o.string("operation", &self.operation);
        o.string("apiVersion", &self.api_version);
        o.time("time", &self.time, "metadata.managedFields[].time")?;
        o.string("fieldsType", &self.fields_type);
        if let Some(fields) = &self.fields_v1 {
            // FieldsV1 holds JSON text and its JSON form is that text, verbatim.
            let raw = fields.raw.as_deref().unwrap_or_default();
            let value = serde_json::from_slice(raw).map_err(|_| InvalidField {
                field: "metadata.managedFields[].fieldsV1",
                problem: "is not valid JSON",
            })?;
            o.insert("fieldsV1", value);
        }
        o.string("subresource", &self.subresource);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct FieldsV1 {
    #[prost(bytes = "vec", optional, tag = "1")]
    raw: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    match_labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "2")]
    match_expressions: Vec<LabelSelectorRequirement>,
}

impl ToJson for LabelSelector {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string_map("matchLabels", &self.match_labels);
        o.messages("matchExpressions", &self.match_expressions)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct LabelSelectorRequirement {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    operator: Option<String>,
    #[prost(string, repeated, tag = "3")]
    values: Vec<String>,
}

impl ToJson for LabelSelectorRequirement {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("key", &self.key);
        o.string("operator", &self.operator);
        o.strings("values", &self.values);
        Ok(o)
    }
}

/// Same layout as [`LabelSelectorRequirement`]; a type of its own so errors name it.
#[derive(Clone, PartialEq, Message)]
struct FieldSelectorRequirement {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    operator: Option<String>,
    #[prost(string, repeated, tag = "3")]
    values: Vec<String>,
}

impl ToJson for FieldSelectorRequirement {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("key", &self.key);
        o.string("operator", &self.operator);
        o.strings("values", &self.values);
        Ok(o)
    }
}

/// `DeleteOptions`: every field but `dryRun` is a pointer.
#[derive(Clone, PartialEq, Message)]
struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    grace_period_seconds: Option<i64>,
    #[prost(message, optional, tag = "2")]
    preconditions: Option<Preconditions>,
    #[prost(bool, optional, tag = "3")]
    orphan_dependents: Option<bool>,
    #[prost(string, optional, tag = "4")]
    propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    dry_run: Vec<String>,
    #[prost(bool, optional, tag = "6")]
    ignore_store_read_error_with_cluster_breaking_potential: Option<bool>,
}

impl ToJson for DeleteOptions {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.pointer_int("gracePeriodSeconds", self.grace_period_seconds);
        o.pointer_message("preconditions", &self.preconditions)?;
        o.pointer_bool("orphanDependents", self.orphan_dependents);
        o.pointer_string("propagationPolicy", &self.propagation_policy);
        o.strings("dryRun", &self.dry_run);
        o.pointer_bool(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            self.ignore_store_read_error_with_cluster_breaking_potential,
        );
        Ok(o)
    }
}

/// `Preconditions`: both fields are pointers, so `""` is a precondition, not "unset".
#[derive(Clone, PartialEq, Message)]
struct Preconditions {
    #[prost(string, optional, tag = "1")]
    uid: Option<String>,
    #[prost(string, optional, tag = "2")]
    resource_version: Option<String>,
}

impl ToJson for Preconditions {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.pointer_string("uid", &self.uid);
        o.pointer_string("resourceVersion", &self.resource_version);
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.io/api/core/v1

/// `core/v1 Secret`. Its maps hold secret values: they are zeroized on drop and never printed.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    r#type: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.data.values_mut().for_each(Zeroize::zeroize);
        self.string_data.values_mut().for_each(Zeroize::zeroize);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("type", &self.r#type)
            .field("string_data_keys", &self.string_data.keys().collect::<Vec<_>>())
            .field("immutable", &self.immutable)
            .finish()
    }
}

impl ToJson for Secret {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.pointer_bool("immutable", self.immutable);
        if !self.data.is_empty() {
            let base64 = &base64::engine::general_purpose::STANDARD;
            let data = self.data.iter().map(|(k, v)| (k.clone(), Value::String(base64.encode(v))));
            o.insert("data", Value::Object(data.collect()));
        }
        o.string_map("stringData", &self.string_data);
        o.string("type", &self.r#type);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<NamespaceStatus>,
}

impl ToJson for Namespace {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("spec", &self.spec)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

impl ToJson for NamespaceSpec {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.strings("finalizers", &self.finalizers);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct NamespaceStatus {
    #[prost(string, optional, tag = "1")]
    phase: Option<String>,
    #[prost(message, repeated, tag = "2")]
    conditions: Vec<NamespaceCondition>,
}

impl ToJson for NamespaceStatus {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("phase", &self.phase);
        o.messages("conditions", &self.conditions)?;
        Ok(o)
    }
}

/// `NamespaceCondition`; tag 3 is unused in Kubernetes too.
#[derive(Clone, PartialEq, Message)]
struct NamespaceCondition {
    #[prost(string, optional, tag = "1")]
    r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    status: Option<String>,
    #[prost(message, optional, tag = "4")]
    last_transition_time: Option<Time>,
    #[prost(string, optional, tag = "5")]
    reason: Option<String>,
    #[prost(string, optional, tag = "6")]
    message: Option<String>,
}

impl ToJson for NamespaceCondition {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("type", &self.r#type);
        o.string("status", &self.status);
        o.time("lastTransitionTime", &self.last_transition_time, "status.conditions[].lastTransitionTime")?;
        o.string("reason", &self.reason);
        o.string("message", &self.message);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct ServiceAccount {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    secrets: Vec<ObjectReference>,
    #[prost(message, repeated, tag = "3")]
    image_pull_secrets: Vec<LocalObjectReference>,
    #[prost(bool, optional, tag = "4")]
    automount_service_account_token: Option<bool>,
}

impl ToJson for ServiceAccount {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.messages("secrets", &self.secrets)?;
        o.messages("imagePullSecrets", &self.image_pull_secrets)?;
        o.pointer_bool("automountServiceAccountToken", self.automount_service_account_token);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct ObjectReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    field_path: Option<String>,
}

impl ToJson for ObjectReference {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("kind", &self.kind);
        o.string("namespace", &self.namespace);
        o.string("name", &self.name);
        o.string("uid", &self.uid);
        o.string("apiVersion", &self.api_version);
        o.string("resourceVersion", &self.resource_version);
        o.string("fieldPath", &self.field_path);
        Ok(o)
    }
}

/// `core/v1 Event`. `message` is free text from the reporter; like every value here it never
/// reaches an error.
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    involved_object: Option<ObjectReference>,
    #[prost(string, optional, tag = "3")]
    reason: Option<String>,
    #[prost(string, optional, tag = "4")]
    message: Option<String>,
    #[prost(message, optional, tag = "5")]
    source: Option<EventSource>,
    #[prost(message, optional, tag = "6")]
    first_timestamp: Option<Time>,
    #[prost(message, optional, tag = "7")]
    last_timestamp: Option<Time>,
    #[prost(int32, optional, tag = "8")]
    count: Option<i32>,
    #[prost(string, optional, tag = "9")]
    r#type: Option<String>,
    #[prost(message, optional, tag = "10")]
    event_time: Option<MicroTime>,
    #[prost(message, optional, tag = "11")]
    series: Option<EventSeries>,
    #[prost(string, optional, tag = "12")]
    action: Option<String>,
    #[prost(message, optional, tag = "13")]
    related: Option<ObjectReference>,
    #[prost(string, optional, tag = "14")]
    reporting_component: Option<String>,
    #[prost(string, optional, tag = "15")]
    reporting_instance: Option<String>,
}

impl ToJson for Event {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("involvedObject", &self.involved_object)?;
        o.string("reason", &self.reason);
        o.string("message", &self.message);
        o.message("source", &self.source)?;
        o.time("firstTimestamp", &self.first_timestamp, "firstTimestamp")?;
        o.time("lastTimestamp", &self.last_timestamp, "lastTimestamp")?;
        o.int("count", self.count.map(i64::from));
        o.string("type", &self.r#type);
        o.micro_time("eventTime", &self.event_time, "eventTime")?;
        o.pointer_message("series", &self.series)?;
        o.string("action", &self.action);
        o.pointer_message("related", &self.related)?;
        o.string("reportingComponent", &self.reporting_component);
        o.string("reportingInstance", &self.reporting_instance);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct EventSource {
    #[prost(string, optional, tag = "1")]
    component: Option<String>,
    #[prost(string, optional, tag = "2")]
    host: Option<String>,
}

impl ToJson for EventSource {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("component", &self.component);
        o.string("host", &self.host);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct EventSeries {
    #[prost(int32, optional, tag = "1")]
    count: Option<i32>,
    #[prost(message, optional, tag = "2")]
    last_observed_time: Option<MicroTime>,
}

impl ToJson for EventSeries {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.int("count", self.count.map(i64::from));
        o.micro_time("lastObservedTime", &self.last_observed_time, "series.lastObservedTime")?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct LocalObjectReference {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
}

impl ToJson for LocalObjectReference {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("name", &self.name);
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.io/api/rbac/v1

#[derive(Clone, PartialEq, Message)]
struct Role {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    rules: Vec<PolicyRule>,
}

impl ToJson for Role {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.messages("rules", &self.rules)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct ClusterRole {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    rules: Vec<PolicyRule>,
    #[prost(message, optional, tag = "3")]
    aggregation_rule: Option<AggregationRule>,
}

impl ToJson for ClusterRole {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.messages("rules", &self.rules)?;
        o.pointer_message("aggregationRule", &self.aggregation_rule)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct AggregationRule {
    #[prost(message, repeated, tag = "1")]
    cluster_role_selectors: Vec<LabelSelector>,
}

impl ToJson for AggregationRule {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.messages("clusterRoleSelectors", &self.cluster_role_selectors)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct PolicyRule {
    #[prost(string, repeated, tag = "1")]
    verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    api_groups: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    resources: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    resource_names: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    non_resource_urls: Vec<String>,
}

impl ToJson for PolicyRule {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.strings("verbs", &self.verbs);
        o.strings("apiGroups", &self.api_groups);
        o.strings("resources", &self.resources);
        o.strings("resourceNames", &self.resource_names);
        o.strings("nonResourceURLs", &self.non_resource_urls);
        Ok(o)
    }
}

/// `RoleBinding`, and `ClusterRoleBinding`, which has the same fields and numbers.
#[derive(Clone, PartialEq, Message)]
struct RoleBinding {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    subjects: Vec<Subject>,
    #[prost(message, optional, tag = "3")]
    role_ref: Option<RoleRef>,
}

impl ToJson for RoleBinding {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.messages("subjects", &self.subjects)?;
        o.message("roleRef", &self.role_ref)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct Subject {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    api_group: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    namespace: Option<String>,
}

impl ToJson for Subject {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("kind", &self.kind);
        o.string("apiGroup", &self.api_group);
        o.string("name", &self.name);
        o.string("namespace", &self.namespace);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct RoleRef {
    #[prost(string, optional, tag = "1")]
    api_group: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
}

impl ToJson for RoleRef {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("apiGroup", &self.api_group);
        o.string("kind", &self.kind);
        o.string("name", &self.name);
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.io/api/authentication/v1

#[derive(Clone, PartialEq, Message)]
struct TokenRequest {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<TokenRequestSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<TokenRequestStatus>,
}

impl ToJson for TokenRequest {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("spec", &self.spec)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

/// `TokenRequestSpec`; tag 2 is unused in Kubernetes too, and tag 5 (`attestations`) is newer
/// than v1.32 and skipped like any unknown field.
#[derive(Clone, PartialEq, Message)]
struct TokenRequestSpec {
    #[prost(string, repeated, tag = "1")]
    audiences: Vec<String>,
    #[prost(message, optional, tag = "3")]
    bound_object_ref: Option<BoundObjectReference>,
    #[prost(int64, optional, tag = "4")]
    expiration_seconds: Option<i64>,
}

impl ToJson for TokenRequestSpec {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.strings("audiences", &self.audiences);
        o.pointer_int("expirationSeconds", self.expiration_seconds);
        o.pointer_message("boundObjectRef", &self.bound_object_ref)?;
        Ok(o)
    }
}

/// `BoundObjectReference`; its `uid` is named `uID` in the `.proto` file and `uid` in JSON.
#[derive(Clone, PartialEq, Message)]
struct BoundObjectReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
}

impl ToJson for BoundObjectReference {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("kind", &self.kind);
        o.string("apiVersion", &self.api_version);
        o.string("name", &self.name);
        o.string("uid", &self.uid);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct TokenRequestStatus {
    #[prost(string, optional, tag = "1")]
    token: Option<String>,
    #[prost(message, optional, tag = "2")]
    expiration_timestamp: Option<Time>,
}

impl ToJson for TokenRequestStatus {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("token", &self.token);
        o.time("expirationTimestamp", &self.expiration_timestamp, "status.expirationTimestamp")?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct TokenReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<TokenReviewSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<TokenReviewStatus>,
}

impl fmt::Debug for TokenReview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReview").field("metadata", &self.metadata).finish_non_exhaustive()
    }
}

impl ToJson for TokenReview {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("spec", &self.spec)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

/// `TokenReviewSpec`: the token is a credential, zeroized on drop.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct TokenReviewSpec {
    #[prost(string, optional, tag = "1")]
    token: Option<String>,
    #[prost(string, repeated, tag = "2")]
    audiences: Vec<String>,
}

impl Drop for TokenReviewSpec {
    fn drop(&mut self) {
        self.token.zeroize();
    }
}

impl ToJson for TokenReviewSpec {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("token", &self.token);
        o.strings("audiences", &self.audiences);
        Ok(o)
    }
}

/// `TokenReviewStatus`; tag 4 (`audiences`) follows tag 3 (`error`) in the Go struct.
#[derive(Clone, PartialEq, Message)]
struct TokenReviewStatus {
    #[prost(bool, optional, tag = "1")]
    authenticated: Option<bool>,
    #[prost(message, optional, tag = "2")]
    user: Option<UserInfo>,
    #[prost(string, optional, tag = "3")]
    error: Option<String>,
    #[prost(string, repeated, tag = "4")]
    audiences: Vec<String>,
}

impl ToJson for TokenReviewStatus {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.bool("authenticated", self.authenticated);
        o.message("user", &self.user)?;
        o.strings("audiences", &self.audiences);
        o.string("error", &self.error);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct UserInfo {
    #[prost(string, optional, tag = "1")]
    username: Option<String>,
    #[prost(string, optional, tag = "2")]
    uid: Option<String>,
    #[prost(string, repeated, tag = "3")]
    groups: Vec<String>,
    #[prost(btree_map = "string, message", tag = "4")]
    extra: BTreeMap<String, ExtraValue>,
}

impl ToJson for UserInfo {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("username", &self.username);
        o.string("uid", &self.uid);
        o.strings("groups", &self.groups);
        o.extra_map("extra", &self.extra);
        Ok(o)
    }
}

/// `ExtraValue` (authentication/v1 and authorization/v1 alike): a `[]string` in Go, wrapped in a
/// message because protobuf maps cannot hold repeated values.
#[derive(Clone, PartialEq, Message)]
struct ExtraValue {
    #[prost(string, repeated, tag = "1")]
    items: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct SelfSubjectReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    status: Option<SelfSubjectReviewStatus>,
}

impl ToJson for SelfSubjectReview {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct SelfSubjectReviewStatus {
    #[prost(message, optional, tag = "1")]
    user_info: Option<UserInfo>,
}

impl ToJson for SelfSubjectReviewStatus {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("userInfo", &self.user_info)?;
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.io/api/authorization/v1

/// `SubjectAccessReview`, and `LocalSubjectAccessReview`, which has the same fields and numbers.
#[derive(Clone, PartialEq, Message)]
struct SubjectAccessReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<SubjectAccessReviewSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<SubjectAccessReviewStatus>,
}

impl ToJson for SubjectAccessReview {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("spec", &self.spec)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

/// `SelfSubjectAccessReview`: its spec has only the attributes, so a body that names a user or
/// groups cannot make them appear in the JSON form.
#[derive(Clone, PartialEq, Message)]
struct SelfSubjectAccessReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<SelfSubjectAccessReviewSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<SubjectAccessReviewStatus>,
}

impl ToJson for SelfSubjectAccessReview {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("spec", &self.spec)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct SelfSubjectAccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
}

impl ToJson for SelfSubjectAccessReviewSpec {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.pointer_message("resourceAttributes", &self.resource_attributes)?;
        o.pointer_message("nonResourceAttributes", &self.non_resource_attributes)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct SubjectAccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
    #[prost(string, optional, tag = "3")]
    user: Option<String>,
    #[prost(string, repeated, tag = "4")]
    groups: Vec<String>,
    #[prost(btree_map = "string, message", tag = "5")]
    extra: BTreeMap<String, ExtraValue>,
    #[prost(string, optional, tag = "6")]
    uid: Option<String>,
}

impl ToJson for SubjectAccessReviewSpec {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.pointer_message("resourceAttributes", &self.resource_attributes)?;
        o.pointer_message("nonResourceAttributes", &self.non_resource_attributes)?;
        o.string("user", &self.user);
        o.strings("groups", &self.groups);
        o.extra_map("extra", &self.extra);
        o.string("uid", &self.uid);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
    #[prost(string, optional, tag = "3")]
    group: Option<String>,
    #[prost(string, optional, tag = "4")]
    version: Option<String>,
    #[prost(string, optional, tag = "5")]
    resource: Option<String>,
    #[prost(string, optional, tag = "6")]
    subresource: Option<String>,
    #[prost(string, optional, tag = "7")]
    name: Option<String>,
    #[prost(message, optional, tag = "8")]
    field_selector: Option<FieldSelectorAttributes>,
    #[prost(message, optional, tag = "9")]
    label_selector: Option<LabelSelectorAttributes>,
}

impl ToJson for ResourceAttributes {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("namespace", &self.namespace);
        o.string("verb", &self.verb);
        o.string("group", &self.group);
        o.string("version", &self.version);
        o.string("resource", &self.resource);
        o.string("subresource", &self.subresource);
        o.string("name", &self.name);
        o.pointer_message("fieldSelector", &self.field_selector)?;
        o.pointer_message("labelSelector", &self.label_selector)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct FieldSelectorAttributes {
    #[prost(string, optional, tag = "1")]
    raw_selector: Option<String>,
    #[prost(message, repeated, tag = "2")]
    requirements: Vec<FieldSelectorRequirement>,
}

impl ToJson for FieldSelectorAttributes {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("rawSelector", &self.raw_selector);
        o.messages("requirements", &self.requirements)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct LabelSelectorAttributes {
    #[prost(string, optional, tag = "1")]
    raw_selector: Option<String>,
    #[prost(message, repeated, tag = "2")]
    requirements: Vec<LabelSelectorRequirement>,
}

impl ToJson for LabelSelectorAttributes {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("rawSelector", &self.raw_selector);
        o.messages("requirements", &self.requirements)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, optional, tag = "1")]
    path: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
}

impl ToJson for NonResourceAttributes {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("path", &self.path);
        o.string("verb", &self.verb);
        Ok(o)
    }
}

/// `SubjectAccessReviewStatus`; `denied` is tag 4 although it follows `allowed` in Go.
#[derive(Clone, PartialEq, Message)]
struct SubjectAccessReviewStatus {
    #[prost(bool, optional, tag = "1")]
    allowed: Option<bool>,
    #[prost(string, optional, tag = "2")]
    reason: Option<String>,
    #[prost(string, optional, tag = "3")]
    evaluation_error: Option<String>,
    #[prost(bool, optional, tag = "4")]
    denied: Option<bool>,
}

impl ToJson for SubjectAccessReviewStatus {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.bool("allowed", self.allowed);
        o.bool("denied", self.denied);
        o.string("reason", &self.reason);
        o.string("evaluationError", &self.evaluation_error);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct SelfSubjectRulesReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<SelfSubjectRulesReviewSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<SubjectRulesReviewStatus>,
}

impl ToJson for SelfSubjectRulesReview {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.message("metadata", &self.metadata)?;
        o.message("spec", &self.spec)?;
        o.message("status", &self.status)?;
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct SelfSubjectRulesReviewSpec {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
}

impl ToJson for SelfSubjectRulesReviewSpec {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.string("namespace", &self.namespace);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct SubjectRulesReviewStatus {
    #[prost(message, repeated, tag = "1")]
    resource_rules: Vec<ResourceRule>,
    #[prost(message, repeated, tag = "2")]
    non_resource_rules: Vec<NonResourceRule>,
    #[prost(bool, optional, tag = "3")]
    incomplete: Option<bool>,
    #[prost(string, optional, tag = "4")]
    evaluation_error: Option<String>,
}

impl ToJson for SubjectRulesReviewStatus {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.messages("resourceRules", &self.resource_rules)?;
        o.messages("nonResourceRules", &self.non_resource_rules)?;
        o.bool("incomplete", self.incomplete);
        o.string("evaluationError", &self.evaluation_error);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct ResourceRule {
    #[prost(string, repeated, tag = "1")]
    verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    api_groups: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    resources: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    resource_names: Vec<String>,
}

impl ToJson for ResourceRule {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.strings("verbs", &self.verbs);
        o.strings("apiGroups", &self.api_groups);
        o.strings("resources", &self.resources);
        o.strings("resourceNames", &self.resource_names);
        Ok(o)
    }
}

#[derive(Clone, PartialEq, Message)]
struct NonResourceRule {
    #[prost(string, repeated, tag = "1")]
    verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    non_resource_urls: Vec<String>,
}

impl ToJson for NonResourceRule {
    fn to_json(&self) -> Result<JsonObject, InvalidField> {
        let mut o = JsonObject::default();
        o.strings("verbs", &self.verbs);
        o.strings("nonResourceURLs", &self.non_resource_urls);
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FIXTURES: &[(&str, &[u8])] = &[
        ("namespace", include_bytes!("../tests/fixtures/protobuf/namespace.bin")),
        ("secret_generic", include_bytes!("../tests/fixtures/protobuf/secret_generic.bin")),
        ("secret_typed", include_bytes!("../tests/fixtures/protobuf/secret_typed.bin")),
        ("secret_empty", include_bytes!("../tests/fixtures/protobuf/secret_empty.bin")),
        ("secret_binary", include_bytes!("../tests/fixtures/protobuf/secret_binary.bin")),
        ("secret_docker_registry", include_bytes!("../tests/fixtures/protobuf/secret_docker_registry.bin")),
        ("serviceaccount", include_bytes!("../tests/fixtures/protobuf/serviceaccount.bin")),
        ("tokenrequest", include_bytes!("../tests/fixtures/protobuf/tokenrequest.bin")),
        ("tokenrequest_bound", include_bytes!("../tests/fixtures/protobuf/tokenrequest_bound.bin")),
        ("role", include_bytes!("../tests/fixtures/protobuf/role.bin")),
        ("rolebinding", include_bytes!("../tests/fixtures/protobuf/rolebinding.bin")),
        ("clusterrole", include_bytes!("../tests/fixtures/protobuf/clusterrole.bin")),
        ("clusterrole_aggregation", include_bytes!("../tests/fixtures/protobuf/clusterrole_aggregation.bin")),
        ("clusterrolebinding", include_bytes!("../tests/fixtures/protobuf/clusterrolebinding.bin")),
        ("selfsubjectaccessreview", include_bytes!("../tests/fixtures/protobuf/selfsubjectaccessreview.bin")),
        (
            "selfsubjectaccessreview_subresource",
            include_bytes!("../tests/fixtures/protobuf/selfsubjectaccessreview_subresource.bin"),
        ),
        (
            "selfsubjectaccessreview_nonresource",
            include_bytes!("../tests/fixtures/protobuf/selfsubjectaccessreview_nonresource.bin"),
        ),
        ("selfsubjectrulesreview", include_bytes!("../tests/fixtures/protobuf/selfsubjectrulesreview.bin")),
        ("selfsubjectreview", include_bytes!("../tests/fixtures/protobuf/selfsubjectreview.bin")),
    ];

    fn fixture(name: &str) -> &'static [u8] {
        FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect("fixture exists")
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    /// ObjectMeta as gogo writes it: every non-pointer field present, empty ones included.
    fn gogo_meta(name: &str, namespace: &str) -> ObjectMeta {
        ObjectMeta {
            name: s(name),
            generate_name: s(""),
            namespace: s(namespace),
            self_link: s(""),
            uid: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(Time::default()),
            ..ObjectMeta::default()
        }
    }

    /// A whole body: magic, then the envelope gogo writes (empty contentEncoding/contentType).
    fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
        envelope(api_version, kind, object.encode_to_vec(), "", "")
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>, content_encoding: &str, content_type: &str) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: s(api_version), kind: s(kind) }),
            raw: Some(raw),
            content_encoding: s(content_encoding),
            content_type: s(content_type),
        };
        let mut bytes = MAGIC.to_vec();
        unknown.encode(&mut bytes).expect("a Vec grows as needed");
        bytes
    }

    fn decoded(bytes: &[u8]) -> Value {
        decode(bytes).unwrap_or_else(|err| panic!("decode failed: {err}"))
    }

    fn error(bytes: &[u8]) -> String {
        match decode(bytes) {
            Ok(value) => panic!("decoded to {value} instead of failing"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn namespace_body_from_appendix_a_decodes_byte_for_byte() {
        #[rustfmt::skip]
        let body: &[u8] = &[
            0x6b, 0x38, 0x73, 0x00,
            0x0a, 0x0f, 0x0a, 0x02, b'v', b'1', 0x12, 0x09, b'N', b'a', b'm', b'e', b's', b'p', b'a', b'c', b'e',
            0x12, 0x1b,
                0x0a, 0x13,
                    0x0a, 0x03, b'a', b'p', b'p',
                    0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00,
                    0x38, 0x00,
                    0x42, 0x00,
                0x12, 0x00,
                0x1a, 0x02, 0x0a, 0x00,
            0x1a, 0x00, 0x22, 0x00,
        ];
        assert_eq!(body, fixture("namespace"), "the recorded body is the one in Appendix A");
        // Empty spec and status are left out: the JSON kubectl would send has `"spec":{}` and
        // `"status":{}`, which mean the same to the server.
        let expected = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}});
        assert_eq!(decoded(body), expected);
    }

    #[test]
    fn secret_encoded_like_gogo_matches_kubectl_and_has_no_type() {
        let mut secret = Secret::default();
        secret.metadata = Some(gogo_meta("db", "app"));
        secret.data.insert("username".to_owned(), b"u".to_vec());
        secret.data.insert("password".to_owned(), br"S!B\*d$zDsb=".to_vec());
        secret.r#type = s("");
        let bytes = body("v1", "Secret", &secret);
        assert_eq!(bytes, fixture("secret_generic"), "gogo-style encoding matches kubectl's");

        let json = decoded(&bytes);
        assert_eq!(
            json,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": "app"},
                "data": {"password": "UyFCXCpkJHpEc2I9", "username": "dQ=="},
            })
        );
        assert!(json.get("type").is_none());
    }

    #[test]
    fn kubectl_bodies_decode_to_the_json_kubectl_means() {
        let meta_app = |name: &str| json!({"name": name, "namespace": "app"});
        let cases = [
            (
                "secret_typed",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta_app("typed"),
                       "data": {"a": "Yg=="}, "type": "example.com/x"}),
            ),
            ("secret_empty", json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta_app("empty")})),
            (
                "secret_binary",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta_app("bin"),
                       "data": {"all.bin": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w=="}}),
            ),
            (
                "secret_docker_registry",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta_app("reg"),
                       "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyLmV4YW1wbGUiOnsidXNlcm5hbWUiOiJ1IiwicGFzc3dvcmQiOiJwIiwiYXV0aCI6ImRUcHcifX19"},
                       "type": "kubernetes.io/dockerconfigjson"}),
            ),
            ("serviceaccount", json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta_app("app-sa")})),
            ("tokenrequest", json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"})),
            (
                "tokenrequest_bound",
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"audiences": ["vault"], "expirationSeconds": 600,
                                "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "db"}}}),
            ),
            (
                "role",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": meta_app("secret-reader"),
                       "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""],
                                  "resources": ["secrets"], "resourceNames": ["db"]}]}),
            ),
            (
                "rolebinding",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": meta_app("read-db"),
                       "subjects": [
                           {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                           {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
                           {"kind": "ServiceAccount", "name": "app-sa", "namespace": "app"}],
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                   "name": "secret-reader"}}),
            ),
            (
                "clusterrole",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "secret-admin"},
                       "rules": [{"verbs": ["*"], "apiGroups": [""], "resources": ["secrets"]}]}),
            ),
            (
                "clusterrole_aggregation",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "agg"},
                       "aggregationRule": {"clusterRoleSelectors": [
                           {"matchLabels": {"team": "a", "tier": "b"}}]}}),
            ),
            (
                "clusterrolebinding",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": "admin-binding"},
                       "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                                     "name": "devs"}],
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                   "name": "secret-admin"}}),
            ),
            (
                "selfsubjectaccessreview",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                       "spec": {"resourceAttributes": {"namespace": "app", "verb": "get",
                                                       "resource": "secrets"}}}),
            ),
            (
                "selfsubjectaccessreview_subresource",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                       "spec": {"resourceAttributes": {"namespace": "app", "verb": "get",
                                                       "resource": "secrets",
                                                       "subresource": "status", "name": "db"}}}),
            ),
            (
                "selfsubjectaccessreview_nonresource",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                       "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}),
            ),
            (
                "selfsubjectrulesreview",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                       "spec": {"namespace": "app"}}),
            ),
            ("selfsubjectreview", json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        ];
        for (name, expected) in cases {
            assert_eq!(decoded(fixture(name)), expected, "fixture {name}");
        }
    }

    /// Leaving out empty required fields (`spec`, `roleRef`) must not stop the typed objects the
    /// server works with from reading the JSON form.
    #[test]
    fn decoded_bodies_read_as_typed_objects() {
        use k8s_openapi::api::{authentication, authorization, core, rbac};

        fn read<T: serde::de::DeserializeOwned>(name: &str) -> T {
            serde_json::from_value(decoded(fixture(name))).unwrap_or_else(|err| panic!("fixture {name}: {err}"))
        }
        let secret: crate::Secret = read("secret_generic");
        assert_eq!(secret.data.as_ref().map(BTreeMap::len), Some(2));
        assert_eq!(secret.type_, None);
        let _: core::v1::Namespace = read("namespace");
        let _: core::v1::ServiceAccount = read("serviceaccount");
        let request: authentication::v1::TokenRequest = read("tokenrequest");
        assert!(request.spec.audiences.is_empty());
        let request: authentication::v1::TokenRequest = read("tokenrequest_bound");
        assert_eq!(request.spec.expiration_seconds, Some(600));
        let _: authentication::v1::SelfSubjectReview = read("selfsubjectreview");
        let _: rbac::v1::Role = read("role");
        let binding: rbac::v1::RoleBinding = read("rolebinding");
        assert_eq!(binding.role_ref.name, "secret-reader");
        let _: rbac::v1::ClusterRole = read("clusterrole_aggregation");
        let _: rbac::v1::ClusterRoleBinding = read("clusterrolebinding");
        let review: authorization::v1::SelfSubjectAccessReview = read("selfsubjectaccessreview");
        let attributes = review.spec.resource_attributes.expect("resourceAttributes");
        assert_eq!(attributes.resource.as_deref(), Some("secrets"));
        let _: authorization::v1::SelfSubjectRulesReview = read("selfsubjectrulesreview");
    }

    #[test]
    fn object_meta_fields_keep_their_json_names_and_pointer_presence() {
        let mut meta = gogo_meta("x", "app");
        meta.generation = Some(3);
        meta.uid = s("u-1");
        meta.creation_timestamp = Some(Time { seconds: Some(1_704_164_645), nanos: Some(5) });
        meta.deletion_grace_period_seconds = Some(0);
        meta.labels.insert("app".to_owned(), "web".to_owned());
        meta.annotations.insert("note".to_owned(), String::new());
        meta.owner_references.push(OwnerReference {
            kind: s("Deployment"),
            name: s("web"),
            uid: s("u-2"),
            api_version: s("apps/v1"),
            controller: Some(false),
            block_owner_deletion: None,
        });
        meta.finalizers = strings(&["example.com/f"]);
        meta.managed_fields.push(ManagedFieldsEntry {
            manager: s("kubectl"),
            operation: s("Update"),
            api_version: s("v1"),
            time: Some(Time { seconds: Some(0), nanos: None }),
            fields_type: s("FieldsV1"),
            fields_v1: Some(FieldsV1 { raw: Some(br#"{"f:data":{}}"#.to_vec()) }),
            subresource: s(""),
        });
        let namespace = Namespace {
            metadata: Some(meta),
            spec: Some(NamespaceSpec { finalizers: strings(&["kubernetes"]) }),
            status: Some(NamespaceStatus {
                phase: s("Active"),
                conditions: vec![NamespaceCondition {
                    r#type: s("NamespaceDeletionContentFailure"),
                    status: s("False"),
                    last_transition_time: Some(Time::default()),
                    reason: s(""),
                    message: s(""),
                }],
            }),
        };
        let json = decoded(&body("v1", "Namespace", &namespace));
        assert_eq!(
            json,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "x",
                    "namespace": "app",
                    "uid": "u-1",
                    "generation": 3,
                    "creationTimestamp": "2024-01-02T03:04:05Z",
                    "deletionGracePeriodSeconds": 0,
                    "labels": {"app": "web"},
                    "annotations": {"note": ""},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "web", "uid": "u-2", "controller": false}],
                    "finalizers": ["example.com/f"],
                    "managedFields": [{"manager": "kubectl", "operation": "Update",
                                       "apiVersion": "v1", "time": "1970-01-01T00:00:00Z",
                                       "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}],
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active",
                           "conditions": [{"type": "NamespaceDeletionContentFailure",
                                           "status": "False"}]},
            })
        );
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"]);
    }

    #[test]
    fn secret_pointer_fields_and_string_data_survive() {
        let mut secret = Secret::default();
        secret.metadata = Some(gogo_meta("tls", "app"));
        secret.string_data.insert("note".to_owned(), "plain".to_owned());
        secret.data.insert("empty".to_owned(), Vec::new());
        secret.r#type = s("kubernetes.io/tls");
        secret.immutable = Some(false);
        assert_eq!(
            decoded(&body("v1", "Secret", &secret)),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tls", "namespace": "app"},
                "immutable": false,
                "data": {"empty": ""},
                "stringData": {"note": "plain"},
                "type": "kubernetes.io/tls",
            })
        );
    }

    #[test]
    fn service_account_lists_and_automount() {
        let account = ServiceAccount {
            metadata: Some(gogo_meta("sa", "app")),
            secrets: vec![ObjectReference { name: s("sa-token"), ..ObjectReference::default() }],
            image_pull_secrets: vec![LocalObjectReference { name: s("registry") }],
            automount_service_account_token: Some(false),
        };
        assert_eq!(
            decoded(&body("v1", "ServiceAccount", &account)),
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "sa", "namespace": "app"},
                "secrets": [{"name": "sa-token"}],
                "imagePullSecrets": [{"name": "registry"}],
                "automountServiceAccountToken": false,
            })
        );
    }

    #[test]
    fn token_request_with_expiration_and_bound_object() {
        let request = TokenRequest {
            metadata: Some(gogo_meta("", "")),
            spec: Some(TokenRequestSpec {
                audiences: strings(&["vault"]),
                bound_object_ref: Some(BoundObjectReference {
                    kind: s("Secret"),
                    api_version: s("v1"),
                    name: s("db"),
                    uid: s("u-3"),
                }),
                expiration_seconds: Some(600),
            }),
            status: Some(TokenRequestStatus { token: s(""), expiration_timestamp: Some(Time::default()) }),
        };
        let bytes = body(AUTHENTICATION_V1, "TokenRequest", &request);
        assert_eq!(
            decoded(&bytes),
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": ["vault"], "expirationSeconds": 600,
                         "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "db",
                                            "uid": "u-3"}},
            })
        );
    }

    #[test]
    fn token_review_and_self_subject_review() {
        let review = TokenReview {
            metadata: Some(gogo_meta("", "")),
            spec: Some(TokenReviewSpec { token: s("abc.def"), audiences: strings(&["api"]) }),
            status: Some(TokenReviewStatus {
                authenticated: Some(false),
                user: Some(UserInfo::default()),
                error: s(""),
                audiences: Vec::new(),
            }),
        };
        assert_eq!(
            decoded(&body(AUTHENTICATION_V1, "TokenReview", &review)),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                   "spec": {"token": "abc.def", "audiences": ["api"]}})
        );

        let mut user =
            UserInfo { username: s("alice"), uid: s("42"), groups: strings(&["devs"]), extra: BTreeMap::new() };
        user.extra.insert("scopes".to_owned(), ExtraValue { items: strings(&["a", "b"]) });
        let review = SelfSubjectReview {
            metadata: Some(gogo_meta("", "")),
            status: Some(SelfSubjectReviewStatus { user_info: Some(user) }),
        };
        assert_eq!(
            decoded(&body(AUTHENTICATION_V1, "SelfSubjectReview", &review)),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                   "status": {"userInfo": {"username": "alice", "uid": "42", "groups": ["devs"],
                                           "extra": {"scopes": ["a", "b"]}}}})
        );
    }

    #[test]
    fn subject_access_reviews_with_selectors_and_extra() {
        let mut spec = SubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: s("app"),
                verb: s("list"),
                group: s(""),
                version: s("v1"),
                resource: s("secrets"),
                subresource: s(""),
                name: s(""),
                field_selector: Some(FieldSelectorAttributes {
                    raw_selector: s("type=Opaque"),
                    requirements: vec![FieldSelectorRequirement {
                        key: s("type"),
                        operator: s("In"),
                        values: strings(&["Opaque"]),
                    }],
                }),
                label_selector: Some(LabelSelectorAttributes {
                    raw_selector: s("app=web"),
                    requirements: vec![LabelSelectorRequirement {
                        key: s("app"),
                        operator: s("Exists"),
                        values: Vec::new(),
                    }],
                }),
            }),
            non_resource_attributes: None,
            user: s("bob"),
            groups: strings(&["ops"]),
            extra: BTreeMap::new(),
            uid: s("7"),
        };
        spec.extra.insert("k".to_owned(), ExtraValue { items: strings(&["v"]) });
        let review = SubjectAccessReview {
            metadata: Some(gogo_meta("", "app")),
            spec: Some(spec),
            status: Some(SubjectAccessReviewStatus {
                allowed: Some(false),
                reason: s(""),
                evaluation_error: s(""),
                denied: Some(false),
            }),
        };
        let expected_spec = json!({
            "resourceAttributes": {
                "namespace": "app", "verb": "list", "version": "v1", "resource": "secrets",
                "fieldSelector": {"rawSelector": "type=Opaque",
                                  "requirements": [{"key": "type", "operator": "In",
                                                    "values": ["Opaque"]}]},
                "labelSelector": {"rawSelector": "app=web",
                                  "requirements": [{"key": "app", "operator": "Exists"}]},
            },
            "user": "bob",
            "groups": ["ops"],
            "extra": {"k": ["v"]},
            "uid": "7",
        });
        for kind in ["SubjectAccessReview", "LocalSubjectAccessReview"] {
            assert_eq!(
                decoded(&body(AUTHORIZATION_V1, kind, &review)),
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind,
                       "metadata": {"namespace": "app"}, "spec": expected_spec}),
                "{kind}"
            );
        }

        // A pointer that is present but empty stays: validation must see it was sent. And a
        // SelfSubjectAccessReview has no user or groups, whatever the body carries at those tags.
        let review = SubjectAccessReview {
            spec: Some(SubjectAccessReviewSpec {
                non_resource_attributes: Some(NonResourceAttributes::default()),
                user: s("root"),
                groups: strings(&["system:masters"]),
                ..SubjectAccessReviewSpec::default()
            }),
            ..SubjectAccessReview::default()
        };
        assert_eq!(
            decoded(&body(AUTHORIZATION_V1, "SelfSubjectAccessReview", &review)),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                   "spec": {"nonResourceAttributes": {}}})
        );
    }

    #[test]
    fn self_subject_rules_review_status_is_read_too() {
        let review = SelfSubjectRulesReview {
            metadata: Some(gogo_meta("", "")),
            spec: Some(SelfSubjectRulesReviewSpec { namespace: s("app") }),
            status: Some(SubjectRulesReviewStatus {
                resource_rules: vec![ResourceRule {
                    verbs: strings(&["get"]),
                    api_groups: strings(&[""]),
                    resources: strings(&["secrets"]),
                    resource_names: Vec::new(),
                }],
                non_resource_rules: vec![NonResourceRule {
                    verbs: strings(&["get"]),
                    non_resource_urls: strings(&["/healthz"]),
                }],
                incomplete: Some(true),
                evaluation_error: s(""),
            }),
        };
        assert_eq!(
            decoded(&body(AUTHORIZATION_V1, "SelfSubjectRulesReview", &review)),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                   "spec": {"namespace": "app"},
                   "status": {"resourceRules": [{"verbs": ["get"], "apiGroups": [""],
                                                 "resources": ["secrets"]}],
                              "nonResourceRules": [{"verbs": ["get"],
                                                    "nonResourceURLs": ["/healthz"]}],
                              "incomplete": true}})
        );
    }

    #[test]
    fn cluster_role_with_expressions_and_empty_rule() {
        let role = ClusterRole {
            metadata: Some(gogo_meta("agg", "")),
            rules: vec![PolicyRule {
                non_resource_urls: strings(&["/metrics"]),
                verbs: strings(&["get"]),
                ..PolicyRule::default()
            }],
            aggregation_rule: Some(AggregationRule {
                cluster_role_selectors: vec![LabelSelector {
                    match_labels: BTreeMap::new(),
                    match_expressions: vec![LabelSelectorRequirement {
                        key: s("tier"),
                        operator: s("In"),
                        values: strings(&["a", "b"]),
                    }],
                }],
            }),
        };
        assert_eq!(
            decoded(&body(RBAC_V1, "ClusterRole", &role)),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "agg"},
                   "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}],
                   "aggregationRule": {"clusterRoleSelectors": [
                       {"matchExpressions": [{"key": "tier", "operator": "In",
                                              "values": ["a", "b"]}]}]}})
        );
    }

    #[test]
    fn delete_options_keep_every_pointer() {
        let options = DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: s(""), resource_version: s("41") }),
            orphan_dependents: Some(false),
            propagation_policy: s("Foreground"),
            dry_run: strings(&["All"]),
            ignore_store_read_error_with_cluster_breaking_potential: None,
        };
        let expected = |api_version: &str| {
            json!({"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": "", "resourceVersion": "41"},
                   "orphanDependents": false, "propagationPolicy": "Foreground",
                   "dryRun": ["All"]})
        };
        for api_version in DELETE_OPTIONS_VERSIONS {
            assert_eq!(decoded(&body(api_version, "DeleteOptions", &options)), expected(api_version));
        }
        assert_eq!(
            decoded(&body("v1", "DeleteOptions", &DeleteOptions::default())),
            json!({"apiVersion": "v1", "kind": "DeleteOptions"})
        );
    }

    #[test]
    fn times_follow_the_apiserver() {
        let namespace = |time: Time| Namespace {
            metadata: Some(ObjectMeta { creation_timestamp: Some(time), ..gogo_meta("t", "") }),
            ..Namespace::default()
        };
        let created = |time: Time| {
            decode(&body("v1", "Namespace", &namespace(time)))
                .map(|json| json["metadata"].get("creationTimestamp").cloned())
                .map_err(|err| err.to_string())
        };
        assert_eq!(created(Time::default()), Ok(None), "an empty Time is unset");
        let go_zero = Time { seconds: Some(Time::GO_ZERO_UNIX), nanos: None };
        assert_eq!(created(go_zero), Ok(None), "Go's zero time is unset");
        let epoch = Time { seconds: Some(0), nanos: None };
        assert_eq!(created(epoch), Ok(Some(json!("1970-01-01T00:00:00Z"))));
        let nanos_only = Time { seconds: None, nanos: Some(999) };
        assert_eq!(created(nanos_only), Ok(Some(json!("1970-01-01T00:00:00Z"))));
        let last = Time { seconds: Some(Time::MAX_UNIX), nanos: Some(-1) };
        assert_eq!(created(last), Ok(Some(json!("9999-12-30T22:00:00Z"))));
        let first = Time { seconds: Some(Time::GO_ZERO_UNIX + 1), nanos: None };
        assert_eq!(created(first), Ok(Some(json!("0001-01-01T00:00:01Z"))));
        for seconds in [Time::MAX_UNIX + 1, Time::GO_ZERO_UNIX - 1, i64::MAX, i64::MIN] {
            assert_eq!(
                created(Time { seconds: Some(seconds), nanos: None }),
                Err("Namespace field metadata.creationTimestamp is outside 0001-01-01 to 9999-12-30".to_owned())
            );
        }
    }

    /// A core/v1 Event as client-go's typed client sends it (gogo: every non-pointer field
    /// present, zero values included), with a MicroTime and a series.
    fn gogo_event() -> Event {
        let reference = |kind: &str, name: &str| ObjectReference {
            kind: s(kind),
            namespace: s("app"),
            name: s(name),
            uid: s(""),
            api_version: s("v1"),
            resource_version: s(""),
            field_path: s(""),
        };
        Event {
            metadata: Some(gogo_meta("db.17f0c1d2e3a4b5c6", "app")),
            involved_object: Some(reference("Secret", "db")),
            reason: s("SecretUpdated"),
            message: s("delivered resourceVersion 42 to /run/secrets/db"),
            source: Some(EventSource { component: s(""), host: s("") }),
            first_timestamp: Some(Time::default()),
            last_timestamp: Some(Time::default()),
            count: Some(0),
            r#type: s("Normal"),
            event_time: Some(MicroTime { seconds: Some(1_735_787_045), nanos: Some(123_456_789) }),
            series: Some(EventSeries {
                count: Some(2),
                last_observed_time: Some(MicroTime { seconds: Some(1_735_787_046), nanos: Some(0) }),
            }),
            action: s("Deliver"),
            related: None,
            reporting_component: s("strongroom-agent"),
            reporting_instance: s("node-1"),
        }
    }

    #[test]
    fn event_decodes_with_micro_times_and_its_series() {
        assert_eq!(
            decoded(&body("v1", "Event", &gogo_event())),
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "db.17f0c1d2e3a4b5c6", "namespace": "app"},
                "involvedObject": {"kind": "Secret", "namespace": "app", "name": "db", "apiVersion": "v1"},
                "reason": "SecretUpdated",
                "message": "delivered resourceVersion 42 to /run/secrets/db",
                "type": "Normal",
                "eventTime": "2025-01-02T03:04:05.123456Z",
                "series": {"count": 2, "lastObservedTime": "2025-01-02T03:04:06.000000Z"},
                "action": "Deliver",
                "reportingComponent": "strongroom-agent",
                "reportingInstance": "node-1",
            })
        );
    }

    #[test]
    fn event_old_style_keeps_source_count_and_timestamps() {
        let mut event = gogo_event();
        event.source = Some(EventSource { component: s("kubelet"), host: s("node-1") });
        event.first_timestamp = Some(Time { seconds: Some(1_735_787_045), nanos: Some(0) });
        event.last_timestamp = Some(Time { seconds: Some(1_735_787_100), nanos: Some(0) });
        event.count = Some(3);
        event.event_time = Some(MicroTime::default());
        event.series = None;
        event.related = Some(ObjectReference { kind: s("Pod"), name: s("web"), ..ObjectReference::default() });
        let json = decoded(&body("v1", "Event", &event));
        assert_eq!(json["source"], json!({"component": "kubelet", "host": "node-1"}));
        assert_eq!(json["firstTimestamp"], "2025-01-02T03:04:05Z");
        assert_eq!(json["lastTimestamp"], "2025-01-02T03:05:00Z");
        assert_eq!(json["count"], 3);
        assert_eq!(json["related"], json!({"kind": "Pod", "name": "web"}));
        assert!(json.get("eventTime").is_none(), "an empty MicroTime is unset: {json}");
        assert!(json.get("series").is_none(), "{json}");
    }

    #[test]
    fn micro_times_follow_the_apiserver() {
        let at = |seconds: Option<i64>, nanos: Option<i32>| {
            MicroTime { seconds, nanos }.rfc3339("eventTime").map_err(|e| format!("{} {}", e.field, e.problem))
        };
        assert_eq!(at(None, None), Ok(None), "an empty MicroTime is unset");
        assert_eq!(at(Some(Time::GO_ZERO_UNIX), Some(0)), Ok(None), "Go's zero time is unset");
        assert_eq!(at(Some(0), Some(999)), Ok(Some("1970-01-01T00:00:00.000000Z".to_owned())), "truncated");
        assert_eq!(at(Some(0), Some(1_500_000_000)), Ok(Some("1970-01-01T00:00:01.500000Z".to_owned())));
        assert_eq!(at(Some(1), Some(-1)), Ok(Some("1970-01-01T00:00:00.999999Z".to_owned())));
        assert_eq!(at(Some(Time::MAX_UNIX), Some(999_999_999)), Ok(Some("9999-12-30T22:00:00.999999Z".to_owned())));
        for (seconds, nanos) in [(Time::MAX_UNIX + 1, 0), (Time::GO_ZERO_UNIX, -1), (i64::MAX, 0), (i64::MIN, 0)] {
            assert_eq!(
                at(Some(seconds), Some(nanos)),
                Err("eventTime is outside 0001-01-01 to 9999-12-30".to_owned()),
                "{seconds} {nanos}"
            );
        }
    }

    #[test]
    fn fields_v1_must_be_json() {
        let mut meta = gogo_meta("x", "app");
        meta.managed_fields.push(ManagedFieldsEntry {
            fields_v1: Some(FieldsV1 { raw: Some(b"{not json".to_vec()) }),
            ..ManagedFieldsEntry::default()
        });
        let mut secret = Secret::default();
        secret.metadata = Some(meta);
        assert_eq!(
            error(&body("v1", "Secret", &secret)),
            "Secret field metadata.managedFields[].fieldsV1 is not valid JSON"
        );
    }

    #[test]
    fn envelope_errors_say_what_is_wrong() {
        let namespace = Namespace::default().encode_to_vec();
        assert_eq!(error(b""), "protobuf body does not start with the kubernetes protobuf prefix \"k8s\\x00\"");
        assert_eq!(
            error(b"{\"kind\":\"Secret\"}"),
            "protobuf body does not start with the kubernetes protobuf prefix \"k8s\\x00\""
        );
        assert_eq!(error(b"k8s"), error(b""));
        assert_eq!(error(b"k8s\0"), "protobuf body has nothing after the kubernetes protobuf prefix");
        assert_eq!(
            error(&envelope("v1", "Namespace", namespace.clone(), "gzip", "")),
            "runtime.Unknown envelope has a contentEncoding; only unencoded bodies are supported"
        );
        assert_eq!(
            error(&envelope("v1", "Namespace", namespace.clone(), "", "application/json")),
            "runtime.Unknown envelope has a contentType other than application/vnd.kubernetes.protobuf"
        );
        assert!(decode(&envelope("v1", "Namespace", namespace.clone(), "", CONTENT_TYPE)).is_ok());
        assert_eq!(
            error(&envelope("", "Namespace", namespace.clone(), "", "")),
            "runtime.Unknown envelope has no typeMeta.apiVersion"
        );
        assert_eq!(
            error(&envelope("v1", "", namespace.clone(), "", "")),
            "runtime.Unknown envelope has no typeMeta.kind"
        );
        assert_eq!(
            error(&envelope("v1", "ConfigMap", namespace.clone(), "", "")),
            "protobuf bodies of kind ConfigMap in v1 are not supported"
        );
        assert_eq!(
            error(&envelope("apps/v1", "Secret", namespace.clone(), "", "")),
            "protobuf bodies of kind Secret in apps/v1 are not supported"
        );
        assert_eq!(
            error(&envelope("v1", "Secret\n: value", namespace, "", "")),
            "protobuf bodies of kind (unprintable) in v1 are not supported"
        );
        // Field 1 (typeMeta) sent as a varint.
        assert_eq!(
            error(b"k8s\0\x08\x01"),
            "malformed runtime.Unknown envelope: invalid wire type: Varint (expected \
             LengthDelimited) (at Unknown.type_meta)"
        );
    }

    #[test]
    fn malformed_messages_name_the_field() {
        let wrap = |raw: &[u8]| envelope("v1", "Namespace", raw.to_vec(), "", "");
        // Namespace.metadata (field 1) sent as a varint.
        assert_eq!(
            error(&wrap(b"\x08\x01")),
            "malformed Namespace protobuf message: invalid wire type: Varint (expected \
             LengthDelimited) (at Namespace.metadata)"
        );
        // ObjectMeta.name that is not UTF-8.
        assert_eq!(
            error(&wrap(b"\x0a\x03\x0a\x01\xff")),
            "malformed Namespace protobuf message: invalid string value: data is not UTF-8 \
             encoded (at Namespace.metadata, ObjectMeta.name)"
        );
        // ObjectMeta.generation as a string.
        assert_eq!(
            error(&wrap(b"\x0a\x02\x3a\x00")),
            "malformed Namespace protobuf message: invalid wire type: LengthDelimited (expected \
             Varint) (at Namespace.metadata, ObjectMeta.generation)"
        );
        // A length that runs past the end.
        assert_eq!(
            error(&wrap(b"\x0a\x7f")),
            "malformed Namespace protobuf message: buffer underflow (at Namespace.metadata)"
        );
        // Secret.type (a raw identifier in Rust) as a varint.
        assert_eq!(
            error(&envelope("v1", "Secret", b"\x18\x01".to_vec(), "", "")),
            "malformed Secret protobuf message: invalid wire type: Varint (expected \
             LengthDelimited) (at Secret.type)"
        );
        // Wire type 6 does not exist; prost's text would go on with the number.
        assert_eq!(error(&wrap(b"\x0e")), "malformed Namespace protobuf message: invalid wire type value");
        // Field number 0.
        assert_eq!(error(&wrap(b"\x00\x00")), "malformed Namespace protobuf message: invalid tag value: 0");
    }

    #[test]
    fn problems_prost_may_word_differently_are_reduced() {
        assert_eq!(problem("buffer underflow"), "buffer underflow");
        assert_eq!(problem("invalid key value: 68719476735"), "invalid key value");
        assert_eq!(problem("invalid wire type: Varint (expected 7)"), "malformed protobuf");
        assert_eq!(problem("unexpected value \"hunter2\""), "malformed protobuf");
    }

    #[test]
    fn nesting_deeper_than_prost_allows_is_rejected() {
        // Field 15 as nested start-group tags; prost stops at its recursion limit (100).
        for depth in [101, 100_000] {
            let mut raw = vec![0x7b; depth];
            raw.extend(std::iter::repeat_n(0x7c, depth));
            assert_eq!(
                error(&envelope("v1", "Namespace", raw, "", "")),
                "malformed Namespace protobuf message: recursion limit reached"
            );
        }
        // Within the limit, unknown groups are skipped like any unknown field.
        let mut raw = vec![0x7b; 10];
        raw.extend(std::iter::repeat_n(0x7c, 10));
        assert_eq!(
            decoded(&envelope("v1", "Namespace", raw, "", "")),
            json!({"apiVersion": "v1", "kind": "Namespace"})
        );
    }

    /// Regression guard: a truncated kubectl body must fail, not decode to a smaller object,
    /// unless the cut falls exactly between two envelope fields.
    #[test]
    fn truncations_of_kubectl_bodies_fail_without_panicking() {
        for (name, bytes) in FIXTURES {
            // Every recorded body is: magic, typeMeta, raw, `1a 00`, `22 00`.
            let raw_end = bytes.len() - 4;
            let raw_start = MAGIC.len() + 2 + usize::from(bytes[5]);
            for len in 0..bytes.len() {
                let boundary = [raw_start, raw_end, raw_end + 2].contains(&len);
                let result = decode(&bytes[..len]);
                assert_eq!(result.is_ok(), boundary, "{name} cut at {len}: {result:?}");
            }
        }
    }

    #[test]
    fn corrupted_bodies_never_panic() {
        for (_, bytes) in FIXTURES {
            let mut copy = bytes.to_vec();
            for i in 0..copy.len() {
                for mask in [0x01, 0x02, 0x07, 0x08, 0x40, 0x80, 0xff] {
                    copy[i] ^= mask;
                    let _ = decode(&copy);
                    copy[i] ^= mask;
                }
            }
        }
        // Deterministic pseudo-random bodies behind a valid prefix and envelope start.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2_000 {
            let mut garbage = MAGIC.to_vec();
            if round % 2 == 0 {
                garbage.extend_from_slice(&fixture("secret_generic")[4..20]);
            }
            for _ in 0..(round % 97) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                garbage.push(state.to_le_bytes()[0]);
            }
            let _ = decode(&garbage);
        }
    }

    #[test]
    fn errors_never_contain_secret_values() {
        const CANARY: &str = "CANARY-3f9c1a";
        let canary = CANARY.as_bytes();
        let mut secret = Secret::default();
        secret.metadata = Some(gogo_meta("db", "app"));
        secret.data.insert("password".to_owned(), canary.to_vec());
        secret.string_data.insert("token".to_owned(), CANARY.to_owned());
        secret.r#type = s("");
        let good = body("v1", "Secret", &secret);

        let mut bodies: Vec<Vec<u8>> = (0..good.len()).map(|len| good[..len].to_vec()).collect();
        // The canary as the whole message, where its bytes are read as keys and lengths.
        bodies.push(envelope("v1", "Secret", canary.to_vec(), "", ""));
        // A stringData value holding the canary and then a byte that is not UTF-8.
        let mut bad_utf8 = good.clone();
        let at = bad_utf8.windows(canary.len()).rposition(|w| w == canary).unwrap();
        bad_utf8[at + canary.len() - 1] = 0xff;
        bodies.push(bad_utf8);
        // A key too large for a field number, made of body bytes: prost would print its value.
        bodies.push(envelope("v1", "Secret", b"\xff\xff\xff\xff\xff\x0f".to_vec(), "", ""));

        for bytes in &bodies {
            if let Err(err) = decode(bytes) {
                for text in [err.to_string(), format!("{err:?}")] {
                    assert!(!text.contains(CANARY), "error shows the canary: {text}");
                    assert!(!text.contains("68719476735"), "error shows a key value: {text}");
                }
            }
        }
        assert_eq!(error(bodies.last().unwrap()), "malformed Secret protobuf message: invalid key value");
    }

    /// Invariant: the Secret message never prints its values.
    #[test]
    fn secret_debug_never_shows_values() {
        let mut secret = Secret::default();
        secret.data.insert("password".to_owned(), b"CANARY-data".to_vec());
        secret.string_data.insert("token".to_owned(), "CANARY-string".to_owned());
        let text = format!("{secret:?}");
        assert!(text.contains("password") && text.contains("token"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
        let unknown =
            Unknown { type_meta: None, raw: Some(b"CANARY-raw".to_vec()), content_encoding: None, content_type: None };
        assert!(!format!("{unknown:?}").contains("CANARY"));
    }
}
