//! The create-only APIs around identity: TokenRequest (`serviceaccounts/token`), TokenReview,
//! SelfSubjectReview and the four access reviews. None of them is stored; each answers from the
//! authenticator, the RBAC evaluator and the cache, exactly as the real requests are decided
//! (the access reviews call the same [`authz::authorize`] every request goes through).

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use strongroom_api::FieldError;
use strongroom_storage::backend::ObjectKey;

use crate::ApiServer;
use crate::authn::UserInfo;
use crate::authz::{self, Attrs};
use crate::codec::{self, Resp};
use crate::request::RequestInfo;
use crate::status::{ApiError, Qualified};

pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

/// The create-only resources this module answers, by (group, resource).
pub fn is_review(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        (AUTHENTICATION_GROUP, "tokenreviews" | "selfsubjectreviews")
            | (
                AUTHORIZATION_GROUP,
                "selfsubjectaccessreviews"
                    | "selfsubjectrulesreviews"
                    | "subjectaccessreviews"
                    | "localsubjectaccessreviews"
            )
    )
}

/// Whether a review resource is namespaced (only LocalSubjectAccessReview is).
pub fn review_is_namespaced(resource: &str) -> bool {
    resource == "localsubjectaccessreviews"
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "tokenreviews" => "TokenReview",
        "selfsubjectreviews" => "SelfSubjectReview",
        "selfsubjectaccessreviews" => "SelfSubjectAccessReview",
        "selfsubjectrulesreviews" => "SelfSubjectRulesReview",
        "subjectaccessreviews" => "SubjectAccessReview",
        _ => "LocalSubjectAccessReview",
    }
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn created(v: Value) -> Resp {
    codec::value_response(StatusCode::CREATED, &v)
}

/// Decodes a review body through its typed model `T` (k8s-openapi's), as kube-apiserver's
/// decoder does: fields of the wrong type are refused (400) and unknown fields dropped, so what
/// is answered and audited is only ever the kind's own fields. Nothing from the body is quoted
/// in an error: a misplaced token or value must not come back in a message.
fn decode<T: serde::de::DeserializeOwned + serde::Serialize>(
    headers: &HeaderMap,
    body: &Bytes,
    group: &str,
    kind: &str,
) -> Result<Value, ApiError> {
    let obj = codec::decode_object(headers, body)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!("the body of the request must be a {kind} object")));
    }
    let api_version = format!("{group}/v1");
    if obj.get("kind").and_then(Value::as_str).is_some_and(|k| !k.is_empty() && k != kind) {
        return Err(ApiError::bad_request(format!("the kind in the data does not match the expected kind ({kind})")));
    }
    if obj.get("apiVersion").and_then(Value::as_str).is_some_and(|v| !v.is_empty() && v != api_version) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data does not match the expected API version ({api_version})"
        )));
    }
    let (typed, _unknown): (T, Vec<String>) =
        strongroom_api::json::decode_strict(obj).map_err(|e| crate::registry::secret::cannot_handle(kind, "v1", e))?;
    serde_json::to_value(&typed).map_err(|_| ApiError::internal(format!("cannot encode the {kind}")))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn user_info_json(u: &UserInfo) -> Value {
    let mut m = Map::new();
    m.insert("username".into(), json!(u.name));
    if !u.uid.is_empty() {
        m.insert("uid".into(), json!(u.uid));
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    if !u.extra.is_empty() {
        m.insert("extra".into(), json!(u.extra));
    }
    Value::Object(m)
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`.
pub async fn token_request(
    server: &ApiServer,
    info: &RequestInfo,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Resp, ApiError> {
    let (Some(ns), Some(name)) = (info.namespace.as_deref(), info.name.as_deref()) else {
        return Err(ApiError::not_found_path());
    };
    let req = decode::<k8s_openapi::api::authentication::v1::TokenRequest>(
        headers,
        &body,
        AUTHENTICATION_GROUP,
        "TokenRequest",
    )?;
    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let audiences = crate::tokens::token_request_audiences(
        &strings(spec.get("audiences")),
        &server.identity.authenticator.audiences,
    );
    let requested = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::bad_request(
                "the body of the request could not be decoded: spec.expirationSeconds must be an integer",
            )
        })?),
    };
    let expiration = crate::tokens::token_request_expiration(requested)
        // kube-apiserver names no object in this error (`TokenRequest… "" is invalid`).
        .map_err(|errs| ApiError::invalid("TokenRequest", AUTHENTICATION_GROUP, "", &errs))?;
    let sa_key = ObjectKey::namespaced("serviceaccounts", ns, name).map_err(|_| ApiError::not_found_path())?;
    let sa = server
        .store
        .cache()
        .get(&sa_key)
        .and_then(|o| o.body.as_ref().ok().map(|b| b.uid.clone()))
        .ok_or_else(|| ApiError::not_found(Qualified { group: "", plural: "serviceaccounts" }, name))?;

    let mut bound = Value::Null;
    let mut secret = None;
    if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
        let kind = str_at(r, "kind");
        let obj_name = str_at(r, "name");
        let want_uid = str_at(r, "uid");
        use crate::tokens::BoundObjectKind;
        let plural = match crate::tokens::bound_object_kind(str_at(r, "apiVersion"), kind) {
            Ok(BoundObjectKind::Secret) => "secrets",
            // strongroom serves no pods or nodes: such an object can never be found.
            Ok(BoundObjectKind::Pod) => {
                return Err(ApiError::not_found(Qualified { group: "", plural: "pods" }, obj_name));
            }
            Ok(BoundObjectKind::Node) => {
                return Err(ApiError::not_found(Qualified { group: "", plural: "nodes" }, obj_name));
            }
            Err(message) => return Err(ApiError::bad_request(message)),
        };
        let key = ObjectKey::namespaced(plural, ns, obj_name).map_err(|_| {
            ApiError::invalid(
                "TokenRequest",
                AUTHENTICATION_GROUP,
                name,
                &[FieldError::required("spec.boundObjectRef.name", "")],
            )
        })?;
        let uid = server
            .store
            .cache()
            .get(&key)
            .and_then(|o| o.body.as_ref().ok().map(|b| b.uid.clone()))
            .ok_or_else(|| ApiError::not_found(Qualified { group: "", plural }, obj_name))?;
        if !want_uid.is_empty() && want_uid != uid {
            return Err(ApiError::conflict(
                Qualified { group: "", plural },
                obj_name,
                &format!(
                    "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        bound = json!({"kind": kind, "apiVersion": "v1", "name": obj_name, "uid": uid});
        secret = Some(crate::tokens::ObjectRef { name: obj_name.to_string(), uid });
    }

    let now = now_secs();
    let mut claims = crate::tokens::ServiceAccountClaims::new(
        server.identity.issuer.clone(),
        audiences.clone(),
        ns.to_string(),
        crate::tokens::ObjectRef::new(name, sa),
        now,
        expiration,
    );
    if let Some(secret) = secret {
        claims = claims.with_secret(secret);
    }
    let token = server.identity.signing_key.issue(&claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign a service account token");
        ApiError::internal("cannot sign the token")
    })?;
    let expires = jiff::Timestamp::from_second(claims.expires_at).map(|t| t.to_string()).unwrap_or_default();
    let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration});
    if !bound.is_null() {
        spec_out["boundObjectRef"] = bound;
    }
    Ok(created(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": crate::rest::now_rfc3339()},
        "spec": spec_out,
        "status": {"token": token.as_str(), "expirationTimestamp": expires},
    })))
}

/// `POST` of a review resource.
pub async fn review(
    server: &ApiServer,
    user: &UserInfo,
    info: &RequestInfo,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Resp, ApiError> {
    use k8s_openapi::api::{authentication::v1 as authn_v1, authorization::v1 as authz_v1};
    let kind = kind_of(&info.resource);
    let group = info.group.as_str();
    let mut obj = match info.resource.as_str() {
        "tokenreviews" => decode::<authn_v1::TokenReview>(headers, &body, group, kind)?,
        "selfsubjectreviews" => decode::<authn_v1::SelfSubjectReview>(headers, &body, group, kind)?,
        "selfsubjectaccessreviews" => decode::<authz_v1::SelfSubjectAccessReview>(headers, &body, group, kind)?,
        "selfsubjectrulesreviews" => decode::<authz_v1::SelfSubjectRulesReview>(headers, &body, group, kind)?,
        "subjectaccessreviews" => decode::<authz_v1::SubjectAccessReview>(headers, &body, group, kind)?,
        "localsubjectaccessreviews" => decode::<authz_v1::LocalSubjectAccessReview>(headers, &body, group, kind)?,
        _ => return Err(ApiError::not_found_path()),
    };
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match info.resource.as_str() {
        "selfsubjectreviews" => json!({"userInfo": user_info_json(user)}),
        "tokenreviews" => token_review(server, &spec)?,
        "selfsubjectaccessreviews" => {
            let attrs = attributes(&spec, kind, None)?;
            decision_status(&authz::authorize(server, user, &attrs))
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let ns = if info.resource == "localsubjectaccessreviews" { info.namespace.as_deref() } else { None };
            let subject = subject_of(&spec, kind)?;
            let attrs = attributes(&spec, kind, ns)?;
            decision_status(&authz::authorize(server, &subject, &attrs))
        }
        "selfsubjectrulesreviews" => {
            let ns = str_at(&spec, "namespace");
            if ns.is_empty() {
                return Err(ApiError::bad_request("no namespace on request"));
            }
            authz::rules_review(server, user, ns)
        }
        _ => return Err(ApiError::not_found_path()),
    };
    let meta = obj.get("metadata").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    obj = json!({
        "kind": kind,
        "apiVersion": format!("{}/v1", info.group),
        "metadata": meta,
        "spec": spec,
        "status": status,
    });
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.entry("creationTimestamp").or_insert(Value::Null);
    }
    if info.resource == "tokenreviews" {
        // The token is the caller's own input; it is never echoed back.
        if let Some(s) = obj["spec"].as_object_mut() {
            s.remove("token");
        }
    }
    Ok(created(obj))
}

fn token_review(server: &ApiServer, spec: &Value) -> Result<Value, ApiError> {
    let token = str_at(spec, "token");
    if token.is_empty() {
        return Err(ApiError::invalid(
            "TokenReview",
            AUTHENTICATION_GROUP,
            "",
            &[FieldError::required("spec.token", "")],
        ));
    }
    let requested = strings(spec.get("audiences"));
    let audiences = if requested.is_empty() { server.identity.authenticator.audiences.clone() } else { requested };
    match server.identity.authenticator.authenticate_token(&server.store, token, &audiences, now_secs()) {
        // `audiences`: those asked (the server's own when none were) that the token is valid for.
        Ok(t) => Ok(json!({"authenticated": true, "user": user_info_json(&t.user), "audiences": t.audiences})),
        Err(e) => {
            tracing::debug!(reason = %e, "TokenReview: token refused");
            Ok(json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}))
        }
    }
}

fn decision_status(d: &authz::Decision) -> Value {
    let mut m = Map::new();
    m.insert("allowed".into(), json!(d.allowed));
    if !d.reason.is_empty() {
        m.insert("reason".into(), json!(d.reason));
    }
    // Kubernetes' RBAC authorizer reports unresolvable role references in `reason` and returns
    // no evaluation error, so neither does this.
    Value::Object(m)
}

fn invalid(kind: &str, errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid(kind, AUTHORIZATION_GROUP, "", &errs)
}

/// The subject a SubjectAccessReview asks about.
fn subject_of(spec: &Value, kind: &str) -> Result<UserInfo, ApiError> {
    let name = str_at(spec, "user").to_string();
    let groups = strings(spec.get("groups"));
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            kind,
            vec![FieldError::invalid("spec.user", "", "at least one of user or group must be specified")],
        ));
    }
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(Some(v)))).collect())
        .unwrap_or_default();
    Ok(UserInfo { name, uid: str_at(spec, "uid").to_string(), groups, extra })
}

/// The request a review asks about. `namespace` is set for LocalSubjectAccessReview, whose
/// resourceAttributes.namespace must match it.
fn attributes(spec: &Value, kind: &str, namespace: Option<&str>) -> Result<Attrs, ApiError> {
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    match (resource, non_resource) {
        (Some(_), Some(_)) => Err(invalid(
            kind,
            vec![FieldError::invalid(
                "spec.nonResourceAttributes",
                strongroom_api::field::BadValue::Raw("NonResourceAttributes".into()),
                "cannot be specified in combination with resourceAttributes",
            )],
        )),
        (None, None) => Err(invalid(
            kind,
            vec![FieldError::invalid(
                "spec.resourceAttributes",
                strongroom_api::field::BadValue::Raw("null".into()),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
        (None, Some(n)) => {
            if namespace.is_some() {
                return Err(invalid(
                    kind,
                    vec![FieldError::invalid(
                        "spec.nonResourceAttributes",
                        strongroom_api::field::BadValue::Raw("NonResourceAttributes".into()),
                        "disallowed on this kind of request",
                    )],
                ));
            }
            Ok(Attrs::non_resource(str_at(n, "verb"), str_at(n, "path")))
        }
        (Some(r), None) => {
            let ns = str_at(r, "namespace");
            if let Some(want) = namespace
                && ns != want
            {
                return Err(invalid(
                    kind,
                    vec![FieldError::invalid("spec.resourceAttributes.namespace", ns, "must match metadata.namespace")],
                ));
            }
            let opt = |k: &str| Some(str_at(r, k)).filter(|s| !s.is_empty()).map(str::to_string);
            Ok(Attrs {
                verb: str_at(r, "verb").to_string(),
                namespace: opt("namespace"),
                group: str_at(r, "group").to_string(),
                version: str_at(r, "version").to_string(),
                resource: str_at(r, "resource").to_string(),
                subresource: opt("subresource"),
                name: opt("name"),
                path: None,
            })
        }
    }
}
