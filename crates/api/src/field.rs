//! Field errors, shaped and worded as Kubernetes' `field.Error` (apimachinery
//! `pkg/util/validation/field/errors.go`), so clients print the familiar lines.

use std::fmt;

/// What went wrong with one field. `Invalid`, `NotSupported` and `Duplicate` carry the offending
/// value as Kubernetes prints it; callers must never put a secret value there (use `Forbidden`
/// or `Invalid` with a redacted value such as `"<value omitted>"` instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid { value: String },
    Forbidden,
    TooLong { max: usize },
    TooMany { max: usize, actual: usize },
    NotSupported { value: String, supported: Vec<String> },
    Duplicate { value: String },
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
    pub fn invalid(field: impl Into<String>, value: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Invalid { value: value.into() }, field: field.into(), detail: detail.into() }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Forbidden, field: field.into(), detail: detail.into() }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self { kind: FieldErrorKind::TooLong { max }, field: field.into(), detail: String::new() }
    }
    pub fn not_supported(field: impl Into<String>, value: impl Into<String>, supported: &[&str]) -> Self {
        Self {
            kind: FieldErrorKind::NotSupported {
                value: value.into(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
            field: field.into(),
            detail: String::new(),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
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
            FieldErrorKind::TooMany { max, actual } => (format!("Too many: {actual}: must have at most {max} items"), None),
            FieldErrorKind::NotSupported { value, .. } => ("Unsupported value".to_string(), Some(value)),
            FieldErrorKind::Duplicate { value } => ("Duplicate value".to_string(), Some(value)),
        };
        let mut s = head;
        if let Some(v) = value {
            s.push_str(": ");
            s.push_str(&format!("{v:?}"));
        }
        if let FieldErrorKind::NotSupported { supported, .. } = &self.kind {
            if !supported.is_empty() {
                let quoted: Vec<String> = supported.iter().map(|v| format!("{v:?}")).collect();
                s.push_str(": supported values: ");
                s.push_str(&quoted.join(", "));
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

/// An ordered list of field errors; empty means valid.
pub type ErrorList = Vec<FieldError>;

/// Kubernetes' aggregate message: one error as is, several as `[a, b]`.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    match errs {
        [one] => one.to_string(),
        many => format!("[{}]", many.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")),
    }
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
}
