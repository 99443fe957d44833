//! Request bodies in (JSON, YAML, Kubernetes protobuf, the four patch types) and responses out
//! (JSON, Tables, watch streams), with Kubernetes' limits and media types.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use serde_json::Value;
use strongroom_api::{json, protobuf};

use crate::status::ApiError;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

/// Request bodies are capped while being read (kube-apiserver's `MaxRequestBodyBytes`).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Reads a body, refusing it with 413 as soon as it passes [`MAX_BODY`], before buffering more.
pub async fn read_body(body: hyper::body::Incoming, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("the request body is larger than the limit of {MAX_BODY} bytes"));
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok())
        && len.parse::<u64>().map(|l| l > MAX_BODY as u64).unwrap_or(false)
    {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}

/// The media type of a header value, lower-cased, without parameters.
pub fn media_type(value: Option<&str>) -> String {
    value.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Decodes an object body by its Content-Type.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let decoded = match media_type(ct).as_str() {
        "application/json" | "" => json::parse_json(body).map_err(|e| e.to_string()),
        "application/yaml" | "application/x-yaml" | "text/yaml" => json::parse_yaml(body).map_err(|e| e.to_string()),
        protobuf::CONTENT_TYPE => protobuf::decode(body).map_err(|e| e.to_string()),
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    decoded.map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))
}

/// Parses JSON or YAML (for apply patches, whose media type says YAML but kubectl sends JSON).
pub fn decode_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = if first == Some(&b'{') {
        json::parse_json(body).map_err(|e| e.to_string())
    } else {
        json::parse_yaml(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// What the client accepts for a resource response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table(IncludeObject),
    /// `PartialObjectMetadata(List)`: what client-go's metadata client asks for so that it never
    /// downloads values.
    Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(v: Option<&str>) -> Result<Self, ApiError> {
        match v {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// Negotiates the response form from Accept, in the client's order of preference.
pub fn negotiate(accept: Option<&str>, include: IncludeObject) -> Result<Output, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let param = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str());
        match mt.as_str() {
            "application/json" | "application/*" | "*/*" => match param("as") {
                None => return Ok(Output::Json),
                Some("Table")
                    if param("g") == Some("meta.k8s.io") && matches!(param("v"), Some("v1") | Some("v1beta1")) =>
                {
                    return Ok(Output::Table(include));
                }
                Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                    if param("g") == Some("meta.k8s.io") && matches!(param("v"), Some("v1") | Some("v1beta1")) =>
                {
                    return Ok(Output::Metadata);
                }
                // Other conversions (PartialObjectMetadata) are not offered; try the next clause.
                Some(_) => continue,
            },
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable())
}

pub fn json_response(code: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn value_response(code: StatusCode, v: &Value) -> Resp {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

pub fn error_response(e: &ApiError) -> Resp {
    let mut r = value_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Adds `Warning: 299 - "<text>"` headers (kubectl prints each as `Warning: <text>`).
pub fn add_warnings(resp: &mut Resp, warnings: &[String]) {
    for w in warnings {
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_accept_gives_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(accept), IncludeObject::Metadata).unwrap(), Output::Table(IncludeObject::Metadata));
        assert_eq!(negotiate(Some("application/json"), IncludeObject::Metadata).unwrap(), Output::Json);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json"), IncludeObject::Metadata).unwrap(),
            Output::Json
        );
        assert_eq!(negotiate(None, IncludeObject::Metadata).unwrap(), Output::Json);
        assert!(negotiate(Some("application/vnd.kubernetes.protobuf"), IncludeObject::Metadata).is_err());
        assert!(negotiate(Some("text/plain"), IncludeObject::Metadata).is_err());
    }
}
