//! `ApiError`: every failure a request can meet, and its `metav1.Status` rendering.
//!
//! This is the only place that chooses HTTP codes, reasons and messages; they are Kubernetes'
//! own (apimachinery `pkg/api/errors/errors.go`), so clients print the familiar lines.

use http::StatusCode;
use serde_json::{Value, json};
use strongroom_api::field::{FieldError, aggregate_message, go_quote};

/// A failed request, rendered as a `Status`. Messages never carry secret values.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in every `Result` of the request path, so they stay small.
    pub details: Option<Box<Value>>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u32>,
}

/// The resource a message names: `secrets` (plural, with the group for non-core kinds).
#[derive(Debug, Clone, Copy)]
pub struct Qualified<'a> {
    pub group: &'a str,
    pub plural: &'a str,
}

impl std::fmt::Display for Qualified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() { f.write_str(self.plural) } else { write!(f, "{}.{}", self.plural, self.group) }
    }
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn not_found(res: Qualified<'_>, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", format!("{res} {} not found", go_quote(name)))
            .with_details(json!({"name": name, "group": nonempty(res.group), "kind": res.plural}))
    }

    pub fn already_exists(res: Qualified<'_>, name: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "AlreadyExists", format!("{res} {} already exists", go_quote(name)))
            .with_details(json!({"name": name, "group": nonempty(res.group), "kind": res.plural}))
    }

    pub fn conflict(res: Qualified<'_>, name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {res} {}: {why}", go_quote(name)),
        )
        .with_details(json!({"name": name, "group": nonempty(res.group), "kind": res.plural}))
    }

    pub fn modified(res: Qualified<'_>, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per field error. `kind` is the Kind (`Secret`), as Kubernetes'
    /// `NewInvalid` names it.
    pub fn invalid(kind: &str, group: &str, name: &str, errs: &[FieldError]) -> Self {
        let causes: Vec<Value> =
            errs.iter().map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field})).collect();
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified} {} is invalid: {}", go_quote(name), aggregate_message(errs)),
        )
        .with_details(json!({"name": name, "group": nonempty(group), "kind": kind, "causes": causes}))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn not_found_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource")
            .with_details(json!({}))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    pub fn not_acceptable() -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io",
        )
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
        e.retry_after = Some(1);
        e
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            let mut d = (**d).clone();
            if let Some(obj) = d.as_object_mut() {
                obj.retain(|_, v| !v.is_null());
            }
            s["details"] = d;
        }
        s["code"] = self.code.as_u16().into();
        s
    }
}

fn nonempty(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { Value::String(s.to_string()) }
}

impl ApiError {
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_code(mut self, code: StatusCode, reason: &'static str) -> Self {
        self.code = code;
        self.reason = reason;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: Qualified<'static> = Qualified { group: "", plural: "secrets" };

    #[test]
    fn not_found_matches_kubernetes() {
        let s = ApiError::not_found(SECRETS, "x").to_status();
        assert_eq!(
            s.to_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"secrets"},"code":404}"#
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let errs = vec![FieldError::required("data[tls.crt]", ""), FieldError::required("data[tls.key]", "")];
        let s = ApiError::invalid("Secret", "", "db", &errs).to_status();
        assert_eq!(
            s["message"],
            "Secret \"db\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"
        );
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(s["details"]["causes"][1]["field"], "data[tls.key]");
        assert_eq!(s["code"], 422);
    }
}
