//! Field errors, shaped and worded as Kubernetes' `field.Error` (apimachinery v0.32
//! `pkg/util/validation/field/errors.go`), so clients print the familiar lines.

use std::fmt;
use std::fmt::Write as _;

/// The offending value of an `Invalid`, `NotSupported` or `Duplicate` error, rendered as Go's
/// `ErrorBody` renders `BadValue`.
///
/// Callers must never put a secret value here: use `Forbidden`, `Required`, or a redacted
/// placeholder such as `"<secret contents redacted>"`, as Kubernetes does for Secret data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// A Go string (or a named string type such as `SecretType`), printed with `%q`.
    Str(String),
    /// A value already rendered the way Go's `%v`/`%#v` prints it: a number (`-1`), `null`,
    /// a timestamp (`2024-01-02 03:04:05 +0000 UTC`) or a Go literal (`[]string{"a"}`).
    Raw(String),
}

impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_string())
    }
}

impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Str(s) => f.write_str(&go_quote(s)),
            BadValue::Raw(s) => f.write_str(s),
        }
    }
}

/// What went wrong with one field. `Invalid`, `NotSupported` and `Duplicate` carry the offending
/// value as Kubernetes prints it; callers must never put a secret value there (use `Forbidden`
/// or `Invalid` with a redacted value such as `"<value omitted>"` instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid { value: BadValue },
    Forbidden,
    TooLong { max: usize },
    TooMany { max: usize, actual: usize },
    NotSupported { value: BadValue, supported: Vec<String> },
    Duplicate { value: BadValue },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The field path as Kubernetes prints it: `metadata.name`, `data[tls.crt]`.
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Required, field: field.into(), detail: detail.into() }
    }
    pub fn invalid(field: impl Into<String>, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Invalid { value: value.into() }, field: field.into(), detail: detail.into() }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Forbidden, field: field.into(), detail: detail.into() }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self { kind: FieldErrorKind::TooLong { max }, field: field.into(), detail: String::new() }
    }
    pub fn not_supported(field: impl Into<String>, value: impl Into<BadValue>, supported: &[&str]) -> Self {
        Self {
            kind: FieldErrorKind::NotSupported {
                value: value.into(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
            field: field.into(),
            detail: String::new(),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self { kind: FieldErrorKind::Duplicate { value: value.into() }, field: field.into(), detail: String::new() }
    }

    /// The `reason` of a `StatusCause`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid { .. } => "FieldValueInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong { .. } => "FieldValueTooLong",
            FieldErrorKind::TooMany { .. } => "FieldValueTooMany",
            FieldErrorKind::NotSupported { .. } => "FieldValueNotSupported",
            FieldErrorKind::Duplicate { .. } => "FieldValueDuplicate",
        }
    }

    /// The message without the field path (`StatusCause.message`).
    pub fn body(&self) -> String {
        let (head, value) = match &self.kind {
            FieldErrorKind::Required => ("Required value".to_string(), None),
            FieldErrorKind::Invalid { value } => ("Invalid value".to_string(), Some(value)),
            FieldErrorKind::Forbidden => ("Forbidden".to_string(), None),
            FieldErrorKind::TooLong { max } => (format!("Too long: may not be more than {max} bytes"), None),
            FieldErrorKind::TooMany { max, actual } => {
                (format!("Too many: {actual}: must have at most {max} items"), None)
            }
            FieldErrorKind::NotSupported { value, .. } => ("Unsupported value".to_string(), Some(value)),
            FieldErrorKind::Duplicate { value } => ("Duplicate value".to_string(), Some(value)),
        };
        let mut s = head;
        if let Some(v) = value {
            let _ = write!(s, ": {v}");
        }
        if let FieldErrorKind::NotSupported { supported, .. } = &self.kind
            && !supported.is_empty()
        {
            let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
            s.push_str(": supported values: ");
            s.push_str(&quoted.join(", "));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    /// `field: body`, as Go's `Error()` prints it, even when the field path is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// An ordered list of field errors; empty means valid.
pub type ErrorList = Vec<FieldError>;

/// Kubernetes' aggregate message (`ErrorList.ToAggregate().Error()`): identical messages are
/// printed once, one error as is, several as `[a, b]`.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<String> = errs.iter().map(|e| e.to_string()).filter(|m| seen.insert(m.clone())).collect();
    match unique.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Go's `strconv.Quote`: the string in double quotes, with `"` and `\` escaped, printable
/// characters kept as they are and everything else escaped (`\n`, `\x00`, `\u202e`).
///
/// "Printable" follows Go's `unicode.IsPrint` for ASCII, controls, spaces, format characters,
/// private-use code points and noncharacters; code points unassigned in Unicode 15 are treated
/// as printable (Go escapes them), which only matters for text no client sends.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, see [`go_quote`] for where it is approximate.
pub fn go_is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() {
        return false;
    }
    const NOT_PRINTABLE: &[(u32, u32)] = &[
        // Separators other than U+0020 (Zs, Zl, Zp).
        (0x00a0, 0x00a0),
        (0x1680, 0x1680),
        (0x2000, 0x200a),
        (0x2028, 0x2029),
        (0x202f, 0x202f),
        (0x205f, 0x205f),
        (0x3000, 0x3000),
        // Format characters (Cf): soft hyphen, zero-width and bidirectional controls, BOM, tags.
        (0x00ad, 0x00ad),
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x180e, 0x180e),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x2064),
        (0x2066, 0x206f),
        (0xfeff, 0xfeff),
        (0xfff9, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0001, 0xe0001),
        (0xe0020, 0xe007f),
        // Private use (Co) and noncharacters (Cn).
        (0xe000, 0xf8ff),
        (0xf0000, 0x10ffff),
        (0xfdd0, 0xfdef),
    ];
    if NOT_PRINTABLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&u)) {
        return false;
    }
    u & 0xfffe != 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kubernetes() {
        assert_eq!(FieldError::required("data[tls.crt]", "").to_string(), "data[tls.crt]: Required value");
        assert_eq!(
            FieldError::invalid("type", "kubernetes.io/tls", "field is immutable").to_string(),
            "type: Invalid value: \"kubernetes.io/tls\": field is immutable"
        );
        assert_eq!(
            FieldError::forbidden("data", "field is immutable when `immutable` is set").to_string(),
            "data: Forbidden: field is immutable when `immutable` is set"
        );
        let errs = vec![FieldError::required("data[tls.crt]", ""), FieldError::required("data[tls.key]", "")];
        assert_eq!(aggregate_message(&errs), "[data[tls.crt]: Required value, data[tls.key]: Required value]");
    }

    #[test]
    fn values_render_as_go_prints_them() {
        // errors.go ErrorBody: strings with %q, numbers and nil with %v.
        assert_eq!(
            FieldError::invalid(
                "metadata.generation",
                BadValue::Raw("-1".into()),
                "must be greater than or equal to 0"
            )
            .to_string(),
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::not_supported("spec.type", "x", &["a", "b"]).to_string(),
            "spec.type: Unsupported value: \"x\": supported values: \"a\", \"b\""
        );
        assert_eq!(
            FieldError::too_long("data", 1048576).to_string(),
            "data: Too long: may not be more than 1048576 bytes"
        );
        assert_eq!(
            FieldError::required("metadata.name", "name or generateName is required").body(),
            "Required value: name or generateName is required"
        );
        // An empty path still gets Go's "%s: %s" shape.
        assert_eq!(FieldError::too_long("", 1).to_string(), ": Too long: may not be more than 1 bytes");
    }

    #[test]
    fn aggregate_drops_repeated_messages() {
        // field/errors.go ToAggregate dedupes identical messages.
        let e = FieldError::invalid("metadata.labels", "a b", "x");
        assert_eq!(aggregate_message(&[e.clone(), e.clone()]), e.to_string());
    }

    #[test]
    fn go_quote_matches_strconv_quote() {
        let cases = [
            ("abc", r#""abc""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("tab\tnl\n\r\u{7}\u{8}\u{b}\u{c}", r#""tab\tnl\n\r\a\b\v\f""#),
            ("\0\u{1f}\u{7f}", r#""\x00\x1f\x7f""#),
            ("\u{80}\u{9f}", r#""\u0080\u009f""#),
            ("caf\u{e9} \u{1f600}", "\"caf\u{e9} \u{1f600}\""),
            ("\u{a0}\u{200d}\u{202e}\u{feff}", r#""\u00a0\u200d\u202e\ufeff""#),
            ("\u{e000}\u{10fffd}", r#""\ue000\U0010fffd""#),
            ("e\u{301}", "\"e\u{301}\""),
            ("\u{430}", "\"\u{430}\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }
}
