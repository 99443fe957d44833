//! What a request asks for: Kubernetes' `RequestInfo` (apiserver `endpoints/request/requestinfo.go`)
//! and the query options of the REST verbs.

use std::borrow::Cow;

use http::Method;

use crate::status::ApiError;

/// A parsed resource request: `/api/v1/namespaces/app/secrets/db` →
/// `{group:"", version:"v1", namespace:"app", resource:"secrets", name:"db", verb:"get"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub verb: &'static str,
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Resource(RequestInfo),
    /// Anything else (`/version`, `/api`, `/openapi/v3/...`): the decoded path.
    NonResource(String),
}

/// Splits a raw path into percent-decoded segments. Encoded slashes, NULs, control characters,
/// invalid UTF-8 and the dot segments `.`/`..` are refused outright, so no segment can reach
/// outside what the URL shows (CVE-2022-3162).
pub fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    trimmed
        .split('/')
        .map(|raw| {
            let decoded: Cow<'_, str> = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request("the request path is not valid UTF-8"))?;
            let bad = decoded.is_empty()
                || decoded == "."
                || decoded == ".."
                || decoded.contains('/')
                || decoded.chars().any(|c| c.is_control());
            if bad {
                return Err(ApiError::bad_request(format!("invalid path segment in {path:?}")));
            }
            Ok(decoded.into_owned())
        })
        .collect()
}

fn is_watch(query: &Query) -> bool {
    matches!(query.get("watch"), Some("true") | Some("1"))
}

/// Parses the path into a [`Target`] and the verb, as Kubernetes' RequestInfoFactory does.
pub fn parse_target(method: &Method, path: &str, query: &Query) -> Result<Target, ApiError> {
    let segs = segments(path)?;
    let (group, version, rest) = match segs.first().map(String::as_str) {
        Some("api") if segs.len() >= 3 => (String::new(), segs[1].clone(), &segs[2..]),
        Some("apis") if segs.len() >= 4 => (segs[1].clone(), segs[2].clone(), &segs[3..]),
        _ => return Ok(Target::NonResource(format!("/{}", segs.join("/")))),
    };
    let mut rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    // The deprecated `/watch/` prefix form.
    let mut watch_prefix = false;
    if rest.first() == Some(&"watch") {
        watch_prefix = true;
        rest.remove(0);
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        namespace = Some(rest[1].to_string());
        rest.drain(0..2);
    }
    // `/api/v1/namespaces/{name}` (two segments) addresses the namespace object itself.
    let (resource, name, subresource) = match rest.as_slice() {
        [r] => (r.to_string(), None, None),
        [r, n] => (r.to_string(), Some(n.to_string()), None),
        [r, n, s] => (r.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::not_found_path()),
    };
    let verb = match *method {
        Method::GET | Method::HEAD if watch_prefix || is_watch(query) => "watch",
        Method::GET | Method::HEAD if name.is_none() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Target::Resource(RequestInfo { verb, group, version, namespace, resource, name, subresource }))
}

/// Decoded query parameters (`+` is a space, as Go's `url.ParseQuery` decodes it).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Query(form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    /// `dryRun=All` (the only value Kubernetes accepts).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        dry_run_values(self.all("dryRun"))
    }
}

pub fn dry_run_values<'a>(values: impl Iterator<Item = &'a str>) -> Result<bool, ApiError> {
    let mut dry = false;
    for v in values {
        match v {
            "All" => dry = true,
            "" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
                )));
            }
        }
    }
    Ok(dry)
}

/// How unknown and duplicate fields in a body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        match q.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(method: Method, path: &str, query: &str) -> Result<Target, ApiError> {
        parse_target(&method, path, &Query::parse(Some(query)))
    }

    fn info(t: Target) -> RequestInfo {
        match t {
            Target::Resource(i) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_resource_paths() {
        let i = info(target(Method::GET, "/api/v1/namespaces/app/secrets/db", "").unwrap());
        assert_eq!(
            (i.verb, i.namespace.as_deref(), i.resource.as_str(), i.name.as_deref()),
            ("get", Some("app"), "secrets", Some("db"))
        );
        let i = info(target(Method::GET, "/api/v1/secrets", "limit=500").unwrap());
        assert_eq!((i.verb, i.namespace, i.resource.as_str()), ("list", None, "secrets"));
        let i = info(target(Method::GET, "/api/v1/namespaces/app/secrets", "watch=true&resourceVersion=5").unwrap());
        assert_eq!(i.verb, "watch");
        let i = info(target(Method::GET, "/api/v1/namespaces/app", "").unwrap());
        assert_eq!((i.resource.as_str(), i.name.as_deref(), i.namespace), ("namespaces", Some("app"), None));
        let i = info(target(Method::DELETE, "/api/v1/namespaces/app/secrets", "").unwrap());
        assert_eq!(i.verb, "deletecollection");
        let i = info(target(Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles", "").unwrap());
        assert_eq!((i.group.as_str(), i.resource.as_str()), ("rbac.authorization.k8s.io", "roles"));
        assert_eq!(target(Method::GET, "/version", "").unwrap(), Target::NonResource("/version".into()));
        assert_eq!(target(Method::GET, "/api", "").unwrap(), Target::NonResource("/api".into()));
    }

    #[test]
    fn traversal_is_refused() {
        for p in [
            "/api/v1/namespaces/../secrets",
            "/api/v1/namespaces/%2e%2e/secrets",
            "/api/v1/namespaces/app/secrets/..%2fx",
            "/api/v1/namespaces/a%00b/secrets",
            "/api/v1/namespaces/./secrets",
        ] {
            assert!(target(Method::GET, p, "").is_err(), "{p}");
        }
        // Double encoding decodes once: the segment is the literal `%2e%2e`, a name that is not
        // found, never a parent directory.
        let i = info(target(Method::GET, "/api/v1/namespaces/%252e%252e/secrets", "").unwrap());
        assert_eq!(i.namespace.as_deref(), Some("%2e%2e"));
    }

    #[test]
    fn plus_is_space_in_queries() {
        let q = Query::parse(Some("labelSelector=k+in+%28v%2Cw%29%2C%21x&limit=500"));
        assert_eq!(q.get("labelSelector"), Some("k in (v,w),!x"));
    }
}
