//! Strict request-body parsing: JSON and YAML bodies to a `serde_json::Value`, then the value
//! to a typed object with the unknown fields Kubernetes' `fieldValidation` reports.
//!
//! Differences from the apiserver, on purpose:
//! * Duplicate object keys are refused in every mode with Kubernetes' strict message
//!   (`strict decoding error: duplicate field "data"`), where Kubernetes lets the last one win
//!   unless `fieldValidation=Strict`: one parse result then feeds validation, authorization,
//!   storage and audit alike (CVE-2017-12635 was such a parser differential).
//! * Invalid UTF-8 is refused (Go replaces it with U+FFFD).
//! * Nesting is limited to serde_json's 128 levels (Go allows 10000); no Kubernetes object
//!   comes near either.
//! * YAML follows YAML 1.2 (`yes` stays a string; Go's YAML 1.1 reads it as `true`); a YAML
//!   body holds one document; anchors and aliases work, but a document that grows more than
//!   four times its size through them is refused, as goyaml refuses "excessive aliasing".
//!
//! Invariant: no `DecodeError` contains a value from the body. Bodies carry secret values, so
//! errors name positions, field paths and map keys, and the kind of JSON value found, never the
//! value: type errors are rendered from the kind alone, and messages of custom deserializers
//! are kept only when known to be value-free ([`SAFE_CUSTOM_MESSAGES`]).

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{Map, Number, Value};

use crate::field::go_quote;

/// The deepest nesting of arrays and objects a body may have: serde_json's recursion limit of
/// 128 refuses the 128th level.
pub const MAX_DEPTH: usize = 127;

/// How many unknown fields are reported, as Kubernetes' strict decoder caps them.
const MAX_UNKNOWN_FIELDS: usize = 100;

/// Messages of custom deserialization errors that never carry a value, kept verbatim.
const SAFE_CUSTOM_MESSAGES: &[&str] = &["illegal base64 data"];

/// Why a body could not be decoded. `Display` is the message for a 400 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid UTF-8 in request body at byte {offset}")]
    InvalidUtf8 { offset: usize },
    /// JSON that does not parse; `reason` is serde_json's description of the problem, which
    /// never quotes the input.
    #[error("json parse error: {reason} at line {line} column {column}")]
    Syntax { reason: String, line: usize, column: usize },
    #[error(
        "json parse error: exceeded max depth of {MAX_DEPTH} nested arrays and objects at line {line} column {column}"
    )]
    TooDeep { line: usize, column: usize },
    /// The same key twice in one object; `path` is Kubernetes' strict-decoding path
    /// (`metadata.name`, `data.password`, `subjects[0].name`).
    #[error("strict decoding error: duplicate field {}", go_quote(.path))]
    DuplicateField { path: String },
    /// YAML that does not parse or convert; `reason` comes from the YAML parser and names
    /// positions only.
    #[error("error converting YAML to JSON: yaml: {reason}")]
    Yaml { reason: String },
    #[error("error converting YAML to JSON: yaml: document contains excessive aliasing")]
    ExcessiveAliasing,
    #[error("error converting YAML to JSON: yaml: a request body must hold a single YAML document")]
    MultipleDocuments,
    /// A value of the wrong JSON kind; `field` is `Kind.path` (`Secret.data`).
    #[error("json: cannot unmarshal {found} into field {field}: expected {expected}")]
    Type { found: &'static str, field: String, expected: String },
    #[error("json: invalid value in field {field}: expected {expected}")]
    InvalidValue { field: String, expected: String },
    #[error("json: invalid length of field {field}: expected {expected}")]
    InvalidLength { field: String, expected: String },
    #[error("json: unknown variant in field {field}: expected one of {expected}")]
    UnknownVariant { field: String, expected: String },
    #[error("json: missing field {} in {field}", go_quote(.name))]
    MissingField { field: String, name: String },
    /// A field the type refuses outright (`deny_unknown_fields`); most types ignore and report.
    #[error("strict decoding error: unknown field {}", go_quote(.path))]
    UnknownField { path: String },
    /// Any other problem a field's deserializer reported, e.g. `illegal base64 data`.
    #[error("json: {reason} in field {field}")]
    Invalid { field: String, reason: String },
}

/// Kubernetes' message for `fieldValidation=Strict` when unknown fields were found:
/// `strict decoding error: unknown field "spec", unknown field "metadata.foo"`.
pub fn strict_decoding_error(unknown: &[String]) -> String {
    let parts: Vec<String> = unknown.iter().map(|p| unknown_field_warning(p)).collect();
    format!("strict decoding error: {}", parts.join(", "))
}

/// One unknown field as Kubernetes words it, also the text of a `fieldValidation=Warn`
/// warning: `unknown field "spec"`.
pub fn unknown_field_warning(path: &str) -> String {
    format!("unknown field {}", go_quote(path))
}

// ---------------------------------------------------------------------------------------------
// Bytes to Value
// ---------------------------------------------------------------------------------------------

/// Shared state of one parse: the first duplicate key seen, and the size budget.
struct ParseState {
    duplicate: RefCell<Option<String>>,
    /// Nodes plus string bytes still allowed; exhausting it means aliases expanded too far.
    budget: Cell<usize>,
    over_budget: Cell<bool>,
    /// A problem the YAML conversion found, described without values.
    yaml_problem: RefCell<Option<&'static str>>,
}

impl ParseState {
    fn new(budget: usize) -> Self {
        ParseState {
            duplicate: RefCell::new(None),
            budget: Cell::new(budget),
            over_budget: Cell::new(false),
            yaml_problem: RefCell::new(None),
        }
    }

    fn charge<E: de::Error>(&self, cost: usize) -> Result<(), E> {
        match self.budget.get().checked_sub(cost) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => {
                self.over_budget.set(true);
                Err(E::custom("budget"))
            }
        }
    }

    fn yaml_problem<E: de::Error>(&self, problem: &'static str) -> E {
        self.yaml_problem.borrow_mut().get_or_insert(problem);
        E::custom(problem)
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Builds a `Value` from any self-describing format, refusing duplicate keys (with their path)
/// and charging every node and string byte to the budget.
struct ValueSeed<'s> {
    state: &'s ParseState,
    path: String,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.state.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.state.charge(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.state.charge(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.state.charge(1)?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| self.state.yaml_problem("non-finite numbers have no JSON form"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.state.charge(1 + v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.state.charge(1 + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(self.state.yaml_problem("binary values are not supported"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.state.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.state.charge(1)?;
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed { state: self.state, path: format!("{}[{}]", self.path, items.len()) };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.state.charge(1)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed { state: self.state })? {
            let path = join_key(&self.path, &key);
            if object.contains_key(&key) {
                self.state.duplicate.borrow_mut().get_or_insert(path);
                return Err(de::Error::custom("duplicate field"));
            }
            let value = map.next_value_seed(ValueSeed { state: self.state, path })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(self.state.yaml_problem("tagged values are not supported"))
    }
}

/// An object key. JSON keys are strings; YAML scalar keys become strings as Kubernetes'
/// YAML-to-JSON conversion makes them (`1` → `"1"`, `true` → `"true"`, `~` → `"null"`).
struct KeySeed<'s> {
    state: &'s ParseState,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.state.charge(1 + v.len())?;
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.state.charge(1 + v.len())?;
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.visit_string("null".to_string())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.state.yaml_problem("a sequence cannot be an object key"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.state.yaml_problem("a mapping cannot be an object key"))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.state.yaml_problem("tagged values are not supported"))
    }
}

fn check_utf8(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|e| DecodeError::InvalidUtf8 { offset: e.valid_up_to() })
}

/// Parses a JSON request body strictly: one JSON value, valid UTF-8, at most [`MAX_DEPTH`]
/// levels deep, no key twice in any object.
pub fn parse_json(body: &[u8]) -> Result<Value, DecodeError> {
    let text = check_utf8(body)?;
    let state = ParseState::new(usize::MAX);
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed { state: &state, path: String::new() }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| json_error(&e, &state))?;
    Ok(value)
}

fn json_error(e: &serde_json::Error, state: &ParseState) -> DecodeError {
    if let Some(path) = state.duplicate.borrow().clone() {
        return DecodeError::DuplicateField { path };
    }
    let (line, column) = (e.line(), e.column());
    // serde_json's messages describe the syntax problem and never quote the input; only the
    // position suffix is taken off.
    let full = e.to_string();
    let reason = full.split(" at line ").next().unwrap_or(&full).to_string();
    if reason == "recursion limit exceeded" {
        return DecodeError::TooDeep { line, column };
    }
    if e.classify() == serde_json::error::Category::Eof {
        return DecodeError::Syntax { reason: "unexpected end of JSON input".to_string(), line, column };
    }
    DecodeError::Syntax { reason, line, column }
}

/// Parses a single-document YAML request body into the JSON value Kubernetes converts it to,
/// with the same strictness as [`parse_json`]. An empty body is `null`.
pub fn parse_yaml(body: &[u8]) -> Result<Value, DecodeError> {
    check_utf8(body)?;
    // Without aliases a document has at most about one node per byte; four times that plus
    // slack leaves room for ordinary anchors and stops billion-laughs expansion early.
    let state = ParseState::new(body.len().saturating_mul(4).saturating_add(4096));
    let mut documents = serde_yaml_ng::Deserializer::from_slice(body);
    let Some(first) = documents.next() else {
        return Ok(Value::Null);
    };
    let value =
        ValueSeed { state: &state, path: String::new() }.deserialize(first).map_err(|e| yaml_error(&e, &state))?;
    if let Some(second) = documents.next() {
        // A trailing `---` with nothing after it is an empty document, and harmless.
        let rest =
            ValueSeed { state: &state, path: String::new() }.deserialize(second).map_err(|e| yaml_error(&e, &state))?;
        if rest != Value::Null || documents.next().is_some() {
            return Err(DecodeError::MultipleDocuments);
        }
    }
    Ok(value)
}

fn yaml_error(e: &serde_yaml_ng::Error, state: &ParseState) -> DecodeError {
    if let Some(path) = state.duplicate.borrow().clone() {
        return DecodeError::DuplicateField { path };
    }
    if state.over_budget.get() {
        return DecodeError::ExcessiveAliasing;
    }
    if let Some(problem) = *state.yaml_problem.borrow() {
        return DecodeError::Yaml { reason: position(e).map_or(problem.to_string(), |p| format!("{problem} {p}")) };
    }
    let message = e.to_string();
    if message.starts_with("repetition limit exceeded") {
        return DecodeError::ExcessiveAliasing;
    }
    if message.starts_with("recursion limit exceeded") {
        return DecodeError::Yaml {
            reason: format!("exceeded max depth of {MAX_DEPTH} nested sequences and mappings"),
        };
    }
    // libyaml's own messages describe syntax and positions. serde's "invalid type"/"invalid
    // value" messages, reachable through explicit tags such as `!!int`, quote the scalar, so
    // they are replaced.
    if message.contains("invalid type") || message.contains("invalid value") {
        return DecodeError::Yaml {
            reason: position(e).map_or("a tagged value does not match its tag".to_string(), |p| {
                format!("a tagged value does not match its tag {p}")
            }),
        };
    }
    DecodeError::Yaml { reason: message }
}

fn position(e: &serde_yaml_ng::Error) -> Option<String> {
    e.location().map(|l| format!("at line {} column {}", l.line(), l.column()))
}

// ---------------------------------------------------------------------------------------------
// Value to T
// ---------------------------------------------------------------------------------------------

/// Decodes a parsed body into `T`, as Kubernetes' strict decoder does, returning the paths of
/// fields `T` does not know (`spec`, `metadata.foo`, in Kubernetes' strict-path format) so the
/// caller can refuse them (`fieldValidation=Strict`, see [`strict_decoding_error`]), warn
/// (`Warn`, see [`unknown_field_warning`]) or drop them (`Ignore`).
///
/// Like Go's decoder, `null` leaves a field at its zero value (`"metadata": null` is an empty
/// metadata). Every string of `value` is zeroized before this returns: the body's copy of the
/// secret values does not outlive the decode.
pub fn decode_strict<T: DeserializeOwned>(mut value: Value) -> Result<(T, Vec<String>), DecodeError> {
    let ctx = WalkCtx { unknown: RefCell::new(Vec::new()) };
    let result = T::deserialize(Walker { value: &value, path: String::new(), ctx: &ctx });
    zeroize_strings(&mut value);
    let type_name = short_type_name::<T>();
    match result {
        Ok(t) => Ok((t, ctx.unknown.into_inner())),
        Err(e) => Err(e.into_decode_error(&type_name)),
    }
}

/// `Secret` from `strongroom_api::secret::Secret`, `Namespace` from k8s-openapi's path.
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

/// Overwrites every string in `value` with zeros (object keys are names, not values, and stay).
fn zeroize_strings(value: &mut Value) {
    use zeroize::Zeroize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => s.zeroize(),
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => stack.extend(map.values_mut()),
            _ => {}
        }
    }
}

struct WalkCtx {
    unknown: RefCell<Vec<String>>,
}

/// The error of the walk: what went wrong, described without values, and where.
#[derive(Debug)]
struct WalkError {
    kind: WalkErrorKind,
    path: Option<String>,
}

#[derive(Debug)]
enum WalkErrorKind {
    Type { found: &'static str, expected: String },
    InvalidValue { expected: String },
    InvalidLength { expected: String },
    UnknownVariant { expected: String },
    UnknownField { field: String },
    MissingField { name: String },
    Custom { reason: String },
}

impl WalkError {
    fn new(kind: WalkErrorKind) -> Self {
        WalkError { kind, path: None }
    }

    /// Records where the error happened; the innermost walker sets it first.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }

    fn into_decode_error(self, type_name: &str) -> DecodeError {
        let path = self.path.unwrap_or_default();
        let field = if path.is_empty() { type_name.to_string() } else { format!("{type_name}.{path}") };
        match self.kind {
            WalkErrorKind::Type { found, expected } => DecodeError::Type { found, field, expected },
            WalkErrorKind::InvalidValue { expected } => DecodeError::InvalidValue { field, expected },
            WalkErrorKind::InvalidLength { expected } => DecodeError::InvalidLength { field, expected },
            WalkErrorKind::UnknownVariant { expected } => DecodeError::UnknownVariant { field, expected },
            WalkErrorKind::UnknownField { field: name } => DecodeError::UnknownField { path: join_key(&path, &name) },
            WalkErrorKind::MissingField { name } => DecodeError::MissingField { field, name },
            WalkErrorKind::Custom { reason } => DecodeError::Invalid { field, reason },
        }
    }
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl std::error::Error for WalkError {}

/// The JSON kind Go names in `cannot unmarshal <kind>`.
fn json_kind(unexpected: &de::Unexpected<'_>) -> &'static str {
    use de::Unexpected as U;
    match unexpected {
        U::Bool(_) => "bool",
        U::Unsigned(_) | U::Signed(_) | U::Float(_) => "number",
        U::Char(_) | U::Str(_) | U::Bytes(_) => "string",
        U::Unit | U::Option => "null",
        U::Seq => "array",
        U::Map => "object",
        _ => "value",
    }
}

impl de::Error for WalkError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let msg = msg.to_string();
        let reason = if SAFE_CUSTOM_MESSAGES.contains(&msg.as_str()) { msg } else { "invalid value".to_string() };
        WalkError::new(WalkErrorKind::Custom { reason })
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        WalkError::new(WalkErrorKind::Type { found: json_kind(&unexpected), expected: expected.to_string() })
    }

    fn invalid_value(_: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        WalkError::new(WalkErrorKind::InvalidValue { expected: expected.to_string() })
    }

    fn invalid_length(_: usize, expected: &dyn de::Expected) -> Self {
        WalkError::new(WalkErrorKind::InvalidLength { expected: expected.to_string() })
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        WalkError::new(WalkErrorKind::UnknownVariant { expected: expected.join(", ") })
    }

    fn unknown_field(field: &str, _: &'static [&'static str]) -> Self {
        WalkError::new(WalkErrorKind::UnknownField { field: field.to_string() })
    }

    fn missing_field(field: &'static str) -> Self {
        WalkError::new(WalkErrorKind::MissingField { name: field.to_string() })
    }
}

/// A deserializer over a borrowed `Value` that tracks the field path, records ignored (unknown)
/// fields and never puts a value into an error.
struct Walker<'de, 'c> {
    value: &'de Value,
    path: String,
    ctx: &'c WalkCtx,
}

impl<'de, 'c> Walker<'de, 'c> {
    fn visit_any<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, WalkError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                visitor.visit_seq(SeqWalker { items: items.iter(), index: 0, path: &self.path, ctx: self.ctx })
            }
            Value::Object(map) => visitor.visit_map(MapWalker {
                entries: Some(map.iter()),
                pending: None,
                path: &self.path,
                ctx: self.ctx,
            }),
        }
    }

    fn visit_empty_map<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_map(MapWalker { entries: None, pending: None, path: &self.path, ctx: self.ctx })
    }

    fn finish<T>(&self, result: Result<T, WalkError>) -> Result<T, WalkError> {
        result.map_err(|e| e.at(&self.path))
    }
}

/// For a typed scalar target: `null` leaves Go's zero value, anything else is visited as is.
macro_rules! scalar_or_zero {
    ($($method:ident => $zero:expr;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
                let result = match self.value {
                    Value::Null => $zero(visitor),
                    _ => self.visit_any(visitor),
                };
                self.finish(result)
            }
        )*
    };
}

fn zero_bool<'de, V: Visitor<'de>>(v: V) -> Result<V::Value, WalkError> {
    v.visit_bool(false)
}

fn zero_number<'de, V: Visitor<'de>>(v: V) -> Result<V::Value, WalkError> {
    v.visit_u64(0)
}

fn zero_str<'de, V: Visitor<'de>>(v: V) -> Result<V::Value, WalkError> {
    v.visit_borrowed_str("")
}

impl<'de> de::Deserializer<'de> for Walker<'de, '_> {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let result = self.visit_any(visitor);
        self.finish(result)
    }

    scalar_or_zero! {
        deserialize_bool => zero_bool;
        deserialize_i8 => zero_number;
        deserialize_i16 => zero_number;
        deserialize_i32 => zero_number;
        deserialize_i64 => zero_number;
        deserialize_i128 => zero_number;
        deserialize_u8 => zero_number;
        deserialize_u16 => zero_number;
        deserialize_u32 => zero_number;
        deserialize_u64 => zero_number;
        deserialize_u128 => zero_number;
        deserialize_f32 => zero_number;
        deserialize_f64 => zero_number;
        deserialize_char => zero_str;
        deserialize_str => zero_str;
        deserialize_string => zero_str;
        deserialize_bytes => zero_str;
        deserialize_byte_buf => zero_str;
        deserialize_identifier => zero_str;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let result = match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(Walker { value: self.value, path: self.path.clone(), ctx: self.ctx }),
        };
        self.finish(result)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            _ => self.visit_any(visitor),
        };
        self.finish(result)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, WalkError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, WalkError> {
        let path = self.path.clone();
        visitor.visit_newtype_struct(self).map_err(|e| e.at(&path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let result = match self.value {
            Value::Null => visitor.visit_seq(SeqWalker { items: [].iter(), index: 0, path: &self.path, ctx: self.ctx }),
            _ => self.visit_any(visitor),
        };
        self.finish(result)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, WalkError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let result = match self.value {
            Value::Null => self.visit_empty_map(visitor),
            _ => self.visit_any(visitor),
        };
        self.finish(result)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        // Go decodes a struct only from an object (or null); serde would also take a list.
        if let Value::Array(_) = self.value {
            return self.finish(Err(de::Error::invalid_type(de::Unexpected::Seq, &visitor)));
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        let result = match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let (variant, value) = map.iter().next().expect("one entry");
                let path = join_key(&self.path, variant);
                visitor.visit_enum(EnumWalker { variant, value: Walker { value, path, ctx: self.ctx } })
            }
            _ => self.visit_any(visitor),
        };
        self.finish(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        // A field the target type does not know: Kubernetes' strict decoder reports it by path.
        let mut unknown = self.ctx.unknown.borrow_mut();
        if unknown.len() < MAX_UNKNOWN_FIELDS && !unknown.contains(&self.path) {
            unknown.push(self.path.clone());
        }
        drop(unknown);
        visitor.visit_unit()
    }
}

struct SeqWalker<'de, 'p, 'c> {
    items: std::slice::Iter<'de, Value>,
    index: usize,
    path: &'p str,
    ctx: &'c WalkCtx,
}

impl<'de> de::SeqAccess<'de> for SeqWalker<'de, '_, '_> {
    type Error = WalkError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, WalkError> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(Walker { value, path, ctx: self.ctx }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapWalker<'de, 'p, 'c> {
    entries: Option<serde_json::map::Iter<'de>>,
    pending: Option<(&'de String, &'de Value)>,
    path: &'p str,
    ctx: &'c WalkCtx,
}

impl<'de> de::MapAccess<'de> for MapWalker<'de, '_, '_> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, WalkError> {
        let Some((key, value)) = self.entries.as_mut().and_then(|e| e.next()) else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        seed.deserialize(KeyDeserializer { key }).map(Some).map_err(|e| e.at(&join_key(self.path, key)))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let (key, value) = self.pending.take().ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(Walker { value, path: join_key(self.path, key), ctx: self.ctx })
    }

    fn size_hint(&self) -> Option<usize> {
        self.entries.as_ref().map(|e| e.len())
    }
}

/// An object key handed to the target's key deserializer (field identifiers, map keys).
struct KeyDeserializer<'de> {
    key: &'de str,
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de> {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_borrowed_str(self.key)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct EnumWalker<'de, 'c> {
    variant: &'de str,
    value: Walker<'de, 'c>,
}

impl<'de, 'c> de::EnumAccess<'de> for EnumWalker<'de, 'c> {
    type Error = WalkError;
    type Variant = Walker<'de, 'c>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Walker<'de, 'c>), WalkError> {
        let variant = seed.deserialize(KeyDeserializer { key: self.variant })?;
        Ok((variant, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Walker<'de, '_> {
    type Error = WalkError;

    fn unit_variant(self) -> Result<(), WalkError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, WalkError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, WalkError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], visitor: V) -> Result<V::Value, WalkError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use k8s_openapi::api::core::v1::Namespace;

    const CANARY: &str = "CANARY7f3a";

    fn assert_clean(err: &DecodeError) {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(CANARY), "{text}");
    }

    #[test]
    fn json_parses_and_keeps_key_order() {
        let v =
            parse_json(br#" {"kind":"Secret","apiVersion":"v1","data":{"b":"","a":"eA=="},"n":[1,-2,3.5,true,null]} "#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"kind":"Secret","apiVersion":"v1","data":{"b":"","a":"eA=="},"n":[1,-2,3.5,true,null]}"#
        );
    }

    #[test]
    fn duplicate_keys_name_their_path() {
        // sigs.k8s.io/json strict errors: `duplicate field "<path>"`, map keys and struct fields
        // joined with ".", list items as "[i]".
        let cases: &[(&str, &str)] = &[
            (r#"{"data":{},"data":{}}"#, "data"),
            (r#"{"metadata":{"name":"a","name":"b"}}"#, "metadata.name"),
            (r#"{"data":{"password":"YQ==","password":"Yg=="}}"#, "data.password"),
            (r#"{"subjects":[{"kind":"User"},{"name":"a","name":"b"}]}"#, "subjects[1].name"),
            (r#"[[{"x":1,"x":2}]]"#, "[0][0].x"),
        ];
        for (body, path) in cases {
            let err = parse_json(body.as_bytes()).unwrap_err();
            assert_eq!(err, DecodeError::DuplicateField { path: path.to_string() }, "{body}");
            assert_eq!(err.to_string(), format!("strict decoding error: duplicate field \"{path}\""));
        }
    }

    #[test]
    fn json_syntax_errors_never_echo_the_body() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"data\": CANARY7f3a}", "json parse error: expected value at line 1 column 10"),
            (b"{\"a\":\"CANARY7f3a\"} CANARY7f3a", "json parse error: trailing characters at line 1 column 20"),
            (b"{\"a\":\"CANARY7f3a", "json parse error: unexpected end of JSON input at line 1 column 16"),
            (b"", "json parse error: unexpected end of JSON input at line 1 column 0"),
            (
                b"{\"a\":\"CANARY7f3a\x01\"}",
                "json parse error: control character (\\u0000-\\u001F) found while parsing a string at line 1 column 17",
            ),
            (b"{\"CANARY7f3a\" 1}", "json parse error: expected `:` at line 1 column 15"),
        ];
        for (body, want) in cases {
            let err = parse_json(body).unwrap_err();
            assert_eq!(err.to_string(), *want);
            assert_clean(&err);
        }
        // A byte-order mark is refused as Go refuses it.
        assert!(parse_json(b"\xef\xbb\xbf{}").unwrap_err().to_string().starts_with("json parse error: expected value"));
        let err = parse_json(b"{\"a\":\"CANARY7f3a\xff\xfe\"}").unwrap_err();
        assert_eq!(err, DecodeError::InvalidUtf8 { offset: 16 });
        assert_clean(&err);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = vec![b'['; 100_000];
        let err = parse_json(&deep).unwrap_err();
        assert!(matches!(err, DecodeError::TooDeep { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "json parse error: exceeded max depth of 127 nested arrays and objects at line 1 column 128"
        );
        let mut objects = String::new();
        for _ in 0..10_000 {
            objects.push_str("{\"a\":");
        }
        assert!(matches!(parse_json(objects.as_bytes()), Err(DecodeError::TooDeep { .. })));
        // 127 levels are fine, 128 are not.
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_json(ok.as_bytes()).is_ok());
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse_json(over.as_bytes()).is_err());
        let yaml = "[".repeat(100_000);
        let err = parse_yaml(yaml.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("exceeded max depth") || err.to_string().starts_with("error converting YAML"),
            "{err}"
        );
    }

    #[test]
    fn yaml_converts_like_kubernetes() {
        let v = parse_yaml(
            b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels: {a: \"1\"}\ndata:\n  password: cGFzcw==\nstringData:\n  x: 'yes'\n  n: 5\n  1: one\n",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","labels":{"a":"1"}},"data":{"password":"cGFzcw=="},"stringData":{"x":"yes","n":5,"1":"one"}}"#
        );
        assert_eq!(parse_yaml(b"").unwrap(), Value::Null);
        assert_eq!(parse_yaml(b"a: 1\n---\n").unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(parse_yaml(b"a: 1\n---\nb: 2\n").unwrap_err(), DecodeError::MultipleDocuments);
        // Ordinary anchors work.
        assert_eq!(
            parse_yaml(b"a: &x {k: v}\nb: *x\n").unwrap(),
            serde_json::json!({"a": {"k": "v"}, "b": {"k": "v"}})
        );
    }

    #[test]
    fn yaml_duplicates_and_bad_input() {
        let err = parse_yaml(b"metadata:\n  name: a\n  name: b\n").unwrap_err();
        assert_eq!(err.to_string(), "strict decoding error: duplicate field \"metadata.name\"");
        let err = parse_yaml(b"data:\n  k: CANARY7f3a\ndata: {}\n").unwrap_err();
        assert_eq!(err, DecodeError::DuplicateField { path: "data".into() });
        for body in [
            &b"a: !!int CANARY7f3a\n"[..],
            b"a: !!bool CANARY7f3a\n",
            b"a: !custom CANARY7f3a\n",
            b"a: 'CANARY7f3a\n",
            b"a: \"CANARY7f3a\n",
            b"a:\n  - CANARY7f3a\n b: 1\n",
            b"? [CANARY7f3a]\n: v\n",
            b"a: *CANARY7f3a\n",
            b"a: .inf\n",
        ] {
            let err = parse_yaml(body).unwrap_err();
            assert_clean(&err);
            assert!(err.to_string().starts_with("error converting YAML to JSON: yaml: "), "{err}");
        }
    }

    #[test]
    fn yaml_bomb_is_refused_quickly() {
        // The "billion laughs": 9 levels of 9 aliases each would expand to 9^9 strings.
        let mut doc = String::from("a: &a [\"CANARY7f3a\",\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            doc.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
        }
        let started = std::time::Instant::now();
        let err = parse_yaml(doc.as_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::ExcessiveAliasing);
        assert_eq!(err.to_string(), "error converting YAML to JSON: yaml: document contains excessive aliasing");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // A long string referenced many times is caught by the byte count as well.
        let big = "x".repeat(100_000);
        let doc = format!("a: &a \"{big}\"\nb: [{}]\n", vec!["*a"; 50].join(","));
        assert_eq!(parse_yaml(doc.as_bytes()).unwrap_err(), DecodeError::ExcessiveAliasing);
    }

    #[test]
    fn decode_strict_reports_unknown_fields_by_path() {
        let body = br#"{"apiVersion":"v1","kind":"Secret","spec":{"x":1},"metadata":{"name":"db","foo":"bar","creationTimestamp":null,"labels":{"a":"b"}},"data":{"k":"dg=="},"type":"Opaque"}"#;
        let (s, unknown): (Secret, Vec<String>) = decode_strict(parse_json(body).unwrap()).unwrap();
        assert_eq!(unknown, vec!["spec".to_string(), "metadata.foo".to_string()]);
        assert_eq!(s.metadata.name.as_deref(), Some("db"));
        assert_eq!(s.data.unwrap()["k"].expose(), b"v");
        assert_eq!(
            strict_decoding_error(&unknown),
            "strict decoding error: unknown field \"spec\", unknown field \"metadata.foo\""
        );
        assert_eq!(unknown_field_warning("spec"), "unknown field \"spec\"");

        let (ns, unknown): (Namespace, Vec<String>) = decode_strict(
            parse_json(br#"{"metadata":{"name":"app"},"spec":{"finalizers":["kubernetes"],"extra":[1]},"bogus":{}}"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("app"));
        assert_eq!(unknown, vec!["spec.extra".to_string(), "bogus".to_string()]);
    }

    #[test]
    fn decode_strict_accepts_null_as_go_does() {
        let (s, unknown): (Secret, Vec<String>) =
            decode_strict(parse_json(br#"{"metadata":null,"data":{"a":null},"type":null}"#).unwrap()).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(s.metadata, Default::default());
        assert!(s.data.unwrap()["a"].is_empty());
        assert!(s.type_.is_none());
    }

    #[test]
    fn decode_errors_name_the_path_never_the_value() {
        let cases: &[(&str, &str)] = &[
            (r#"{"data":"CANARY7f3a"}"#, "json: cannot unmarshal string into field Secret.data: expected a map"),
            (r#"{"data":{"password":"CANARY7f3a!!"}}"#, "json: illegal base64 data in field Secret.data.password"),
            (
                r#"{"data":{"password":12345}}"#,
                "json: cannot unmarshal number into field Secret.data.password: expected a base64 string",
            ),
            (
                r#"{"stringData":{"password":["CANARY7f3a"]}}"#,
                "json: cannot unmarshal array into field Secret.stringData.password: expected a string",
            ),
            (r#"{"type":5}"#, "json: cannot unmarshal number into field Secret.type: expected a string"),
            (
                r#"{"immutable":"CANARY7f3a"}"#,
                "json: cannot unmarshal string into field Secret.immutable: expected a boolean",
            ),
            (
                r#"{"metadata":{"labels":{"a":{"b":"CANARY7f3a"}}}}"#,
                "json: cannot unmarshal object into field Secret.metadata.labels.a: expected a string",
            ),
            (
                r#"{"metadata":{"generation":"CANARY7f3a"}}"#,
                "json: cannot unmarshal string into field Secret.metadata.generation: expected i64",
            ),
            (
                r#"{"metadata":{"creationTimestamp":"CANARY7f3a"}}"#,
                "json: invalid value in field Secret.metadata.creationTimestamp",
            ),
            (r#"["CANARY7f3a"]"#, "json: cannot unmarshal array into field Secret: expected struct Secret"),
        ];
        for (body, want) in cases {
            let err = decode_strict::<Secret>(parse_json(body.as_bytes()).unwrap()).unwrap_err();
            assert!(err.to_string().starts_with(want), "{body}: {err}");
            assert_clean(&err);
        }
        let err = decode_strict::<Namespace>(parse_json(br#"{"kind":"CANARY7f3a"}"#).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "json: invalid value in field Namespace: expected Namespace");
        assert_clean(&err);
    }

    #[test]
    fn zeroize_walks_every_string() {
        let mut v = serde_json::json!({"a": ["x", {"b": "yy"}], "c": 1});
        zeroize_strings(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["", {"b": ""}], "c": 1}));
    }
}
