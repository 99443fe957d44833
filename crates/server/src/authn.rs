//! Authentication and authorization of requests.
//!
//! Today the only credentials are client certificates signed by the server's CA (the admin
//! kubeconfig holds one); the identity issue adds tokens, ServiceAccounts and RBAC. The TLS
//! layer has already verified the chain and the clientAuth usage; here the subject becomes a user
//! (CN) in groups (O), exactly as Kubernetes' x509 authenticator reads it.

use crate::request::RequestInfo;
use crate::status::ApiError;

pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// The user of a verified client certificate (DER), if it names one.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> =
        subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    groups.push(AUTHENTICATED_GROUP.to_string());
    Some(UserInfo { name, groups })
}

/// Default deny: only `system:masters` may do anything until RBAC arrives.
pub fn authorize(user: &UserInfo, target: Option<&RequestInfo>, path: &str, verb: &str) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == crate::pki::MASTERS_GROUP) {
        return Ok(());
    }
    Err(forbidden(user, target, path, verb))
}

/// Kubernetes' Forbidden message for a denied request.
pub fn forbidden(user: &UserInfo, target: Option<&RequestInfo>, path: &str, verb: &str) -> ApiError {
    match target {
        Some(i) => {
            let res = if i.group.is_empty() { i.resource.clone() } else { format!("{}.{}", i.resource, i.group) };
            let subject = match &i.name {
                Some(n) => format!("{res} \"{n}\" is forbidden"),
                None => format!("{res} is forbidden"),
            };
            let sub = i.subresource.as_ref().map(|s| format!("/{s}")).unwrap_or_default();
            let scope = match &i.namespace {
                Some(ns) => format!(" in the namespace \"{ns}\""),
                None => " at the cluster scope".to_string(),
            };
            ApiError::forbidden(format!(
                "{subject}: User \"{}\" cannot {} resource \"{}{sub}\" in API group \"{}\"{scope}",
                user.name, i.verb, i.resource, i.group
            ))
        }
        None => ApiError::forbidden(format!("forbidden: User \"{}\" cannot {verb} path \"{path}\"", user.name)),
    }
}
