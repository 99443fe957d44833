//! Authentication: who is asking.
//!
//! Kubernetes' union of authenticators, in its order: a client certificate signed by the server's
//! CA (verified by the TLS layer: chain and clientAuth usage; CN is the user, O the groups), then a
//! bearer token — a static token from `--token-auth-file`, else a ServiceAccount JWT this server
//! signed. The first that succeeds decides; a certificate therefore takes precedence over a token
//! sent with it, and the two identities are never merged. A request with no credentials is
//! anonymous only with `--anonymous-auth`; otherwise, as a request with a bad token always is, it
//! gets 401 with one uniform body that never says why (the reason is logged at debug, without the
//! token).

use std::collections::BTreeMap;

use http::HeaderMap;
use strongroom_storage::Store;
use strongroom_storage::backend::ObjectKey;

use crate::object::ServedObject;
use crate::status::ApiError;
use crate::tokens::{self, ServiceAccountClaims, StaticTokens, Verifier};

pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == crate::pki::MASTERS_GROUP)
    }

    /// The same identity for the RBAC evaluator.
    pub fn to_rbac(&self) -> strongroom_api::rbac::User {
        strongroom_api::rbac::User {
            name: self.name.clone(),
            uid: self.uid.clone(),
            groups: self.groups.clone(),
            extra: self.extra.clone(),
        }
    }

    pub fn anonymous() -> Self {
        UserInfo { name: ANONYMOUS_USER.into(), groups: vec![UNAUTHENTICATED_GROUP.into()], ..Default::default() }
    }

    /// The user a ServiceAccount authenticates as.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            name: format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
            uid: uid.to_string(),
            groups: service_account_groups(namespace),
            extra: BTreeMap::new(),
        }
    }
}

/// The groups every ServiceAccount of `namespace` is in.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![SERVICE_ACCOUNTS_GROUP.into(), format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"), AUTHENTICATED_GROUP.into()]
}

/// `system:serviceaccount:<ns>:<name>` split into namespace and name.
pub fn parse_service_account_user(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
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
    Some(UserInfo { name, groups, ..Default::default() })
}

/// What a connection's client certificate proves, decided once after the handshake.
#[derive(Debug, Clone)]
pub enum ClientCertificate {
    /// Chains to the server's CA and allows clientAuth: this user, until `not_after` (Unix
    /// seconds; checked on every request, so a long-lived connection does not outlive it).
    Valid { user: UserInfo, not_after: i64 },
    /// Presented but refused: another CA, outside its validity, no clientAuth, or no CN.
    Refused,
}

impl ClientCertificate {
    /// The certificate's user at `now` (Unix seconds), if it is valid then.
    pub fn user_at(&self, now: i64) -> Option<&UserInfo> {
        match self {
            ClientCertificate::Valid { user, not_after } if now <= *not_after => Some(user),
            ClientCertificate::Valid { .. } => {
                tracing::debug!("refused a client certificate that expired during the connection");
                None
            }
            ClientCertificate::Refused => None,
        }
    }
}

/// The TLS handshake takes any client certificate whose key the client proves it holds, and the
/// chain is judged here instead, so a refused certificate gets Kubernetes' `401 Unauthorized`
/// (and a bearer token on the same request is still tried), not a failed handshake.
pub fn check_client_certificate(
    verifier: &dyn rustls::server::danger::ClientCertVerifier,
    chain: &[rustls::pki_types::CertificateDer<'_>],
    now: rustls::pki_types::UnixTime,
) -> Option<ClientCertificate> {
    let (end_entity, intermediates) = chain.split_first()?;
    if let Err(e) = verifier.verify_client_cert(end_entity, intermediates, now) {
        tracing::debug!(reason = %e, "refused a client certificate");
        return Some(ClientCertificate::Refused);
    }
    let not_after = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map(|(_, c)| c.validity().not_after.timestamp())
        .unwrap_or(i64::MIN);
    match user_from_certificate(end_entity.as_ref()) {
        Some(user) => Some(ClientCertificate::Valid { user, not_after }),
        None => {
            tracing::debug!("refused a client certificate without a common name");
            Some(ClientCertificate::Refused)
        }
    }
}

/// Turns credentials into a user.
pub struct Authenticator {
    pub static_tokens: Option<StaticTokens>,
    pub verifier: Verifier,
    /// Audiences this server accepts tokens for (`--api-audiences`; the issuer by default).
    pub audiences: Vec<String>,
    pub anonymous: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("audiences", &self.audiences).field("anonymous", &self.anonymous).finish()
    }
}

/// Why a bearer token was refused; only ever logged (without the token), never sent.
#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("{0}")]
    Invalid(#[from] tokens::TokenError),
    #[error("the token is not a static token and not a service account token")]
    Unknown,
    #[error("service account {namespace}/{name} does not exist or was recreated")]
    ServiceAccountGone { namespace: String, name: String },
    #[error("the {kind} {namespace}/{name} the token is bound to does not exist or was recreated")]
    BoundObjectGone { kind: &'static str, namespace: String, name: String },
    #[error("static tokens are valid only for the server's own audiences")]
    NotServerAudience,
}

/// Who a bearer token stands for, and for which of the audiences asked about it is valid.
#[derive(Debug)]
pub struct TokenUser {
    pub user: UserInfo,
    /// The asked audiences the token is valid for (TokenReview's `status.audiences`).
    pub audiences: Vec<String>,
}

impl Authenticator {
    /// The requester of a request: certificate, else bearer token, else anonymous (if enabled).
    pub fn authenticate(
        &self,
        store: &Store<ServedObject>,
        certificate: Option<&ClientCertificate>,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<UserInfo, ApiError> {
        let refused_certificate = match certificate.map(|c| c.user_at(now)) {
            Some(Some(user)) => return Ok(user.clone()),
            Some(None) => true,
            None => false,
        };
        match bearer_token(headers) {
            // As Kubernetes: a refused certificate fails the request unless a token succeeds;
            // it never falls back to anonymous.
            Bearer::None if refused_certificate => Err(ApiError::unauthorized()),
            Bearer::None if self.anonymous => Ok(UserInfo::anonymous()),
            Bearer::None => Err(ApiError::unauthorized()),
            Bearer::Malformed => {
                tracing::debug!("refused a malformed Authorization header");
                Err(ApiError::unauthorized())
            }
            Bearer::Token(token) => match self.authenticate_token(store, token, &self.audiences, now) {
                Ok(t) => Ok(t.user),
                Err(e) => {
                    tracing::debug!(reason = %e, "refused a bearer token");
                    Err(ApiError::unauthorized())
                }
            },
        }
    }

    /// The user a bearer token stands for, if it is valid for one of `audiences` (TokenReview
    /// asks with its own audiences), with the audiences it is valid for.
    pub fn authenticate_token(
        &self,
        store: &Store<ServedObject>,
        token: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<TokenUser, TokenRejected> {
        if let Some(user) = self.static_tokens.as_ref().and_then(|t| t.lookup(token)) {
            // A static token carries no audiences: as Kubernetes' audience-agnostic
            // authenticators, it is valid for the server's own audiences only.
            let valid_for = intersect(audiences, &self.audiences);
            if valid_for.is_empty() {
                return Err(TokenRejected::NotServerAudience);
            }
            let mut groups = user.groups.clone();
            if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
                groups.push(AUTHENTICATED_GROUP.into());
            }
            let user = UserInfo { name: user.name.clone(), uid: user.uid.clone(), groups, extra: BTreeMap::new() };
            return Ok(TokenUser { user, audiences: valid_for });
        }
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenRejected::Unknown);
        }
        let claims = self.verifier.verify(token, audiences, now)?;
        check_bound_objects(store, &claims)?;
        let mut user =
            UserInfo::service_account(&claims.namespace, &claims.service_account.name, &claims.service_account.uid);
        for (key, value) in claims.extra() {
            user.extra.entry(key.to_string()).or_default().push(value);
        }
        Ok(TokenUser { user, audiences: intersect(audiences, &claims.audiences) })
    }
}

/// The members of `asked` that are in `valid`, in `asked`'s order.
fn intersect(asked: &[String], valid: &[String]) -> Vec<String> {
    asked.iter().filter(|a| valid.contains(a)).cloned().collect()
}

/// A ServiceAccount token is valid only while its ServiceAccount, and the object it is bound
/// to, exist with the UIDs it was issued for: deleting (or deleting and recreating) them
/// revokes it.
fn check_bound_objects(store: &Store<ServedObject>, claims: &ServiceAccountClaims) -> Result<(), TokenRejected> {
    let ns = &claims.namespace;
    let exists = |resource: &str, name: &str, uid: &str| {
        let Ok(key) = ObjectKey::namespaced(resource, ns, name) else { return false };
        store.cache().get(&key).is_some_and(|o| o.body.as_ref().is_ok_and(|b| b.uid == uid && !uid.is_empty()))
    };
    let sa = &claims.service_account;
    if !exists("serviceaccounts", &sa.name, &sa.uid) {
        return Err(TokenRejected::ServiceAccountGone { namespace: ns.clone(), name: sa.name.clone() });
    }
    if let Some(secret) = &claims.secret
        && !exists("secrets", &secret.name, &secret.uid)
    {
        return Err(TokenRejected::BoundObjectGone {
            kind: "secret",
            namespace: ns.clone(),
            name: secret.name.clone(),
        });
    }
    // strongroom serves no pods or nodes: a token bound to one cannot be checked, so it is refused.
    if let Some(pod) = &claims.pod {
        return Err(TokenRejected::BoundObjectGone { kind: "pod", namespace: ns.clone(), name: pod.name.clone() });
    }
    if let Some(node) = &claims.node {
        return Err(TokenRejected::BoundObjectGone { kind: "node", namespace: ns.clone(), name: node.name.clone() });
    }
    Ok(())
}

enum Bearer<'a> {
    None,
    Malformed,
    Token(&'a str),
}

/// The bearer token of a request. Two `Authorization` headers, an empty token or one with
/// spaces are malformed (401); a header with another scheme is not a bearer token at all, as in
/// Kubernetes. The scheme is case-insensitive (RFC 7235).
fn bearer_token(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Bearer::None };
    if values.next().is_some() {
        return Bearer::Malformed;
    }
    let Ok(value) = value.to_str() else { return Bearer::Malformed };
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") { Bearer::Malformed } else { Bearer::None };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::None;
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Bearer::Malformed;
    }
    Bearer::Token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    fn token(values: &[&str]) -> Option<String> {
        match bearer_token(&headers(values)) {
            Bearer::Token(t) => Some(t.to_string()),
            Bearer::None => Some("<none>".into()),
            Bearer::Malformed => None,
        }
    }

    /// A connection's certificate is checked against the clock on every request, so a
    /// long-lived connection stops authenticating when its certificate expires.
    #[test]
    fn certificates_expire_during_a_connection() {
        let user = UserInfo { name: "dave".into(), ..Default::default() };
        let cert = ClientCertificate::Valid { user, not_after: 1_000 };
        assert_eq!(cert.user_at(999).map(|u| u.name.as_str()), Some("dave"));
        assert_eq!(cert.user_at(1_000).map(|u| u.name.as_str()), Some("dave"));
        assert!(cert.user_at(1_001).is_none());
        assert!(ClientCertificate::Refused.user_at(0).is_none());
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(token(&["Bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(token(&["bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(token(&[]).as_deref(), Some("<none>"));
        assert_eq!(token(&["Basic dXNlcjpwYXNz"]).as_deref(), Some("<none>"));
        assert_eq!(token(&["Bearer abc", "Bearer def"]), None);
        assert_eq!(token(&["Bearer "]), None);
        assert_eq!(token(&["Bearer"]), None);
        assert_eq!(token(&["Bearer abc def"]), None);
    }

    #[test]
    fn service_account_user_names() {
        assert_eq!(parse_service_account_user("system:serviceaccount:app:sa"), Some(("app", "sa")));
        assert_eq!(parse_service_account_user("system:serviceaccount:app"), None);
        assert_eq!(parse_service_account_user("system:serviceaccount::sa"), None);
        assert_eq!(parse_service_account_user("alice"), None);
        let u = UserInfo::service_account("app", "sa", "u1");
        assert_eq!(u.groups, ["system:serviceaccounts", "system:serviceaccounts:app", "system:authenticated"]);
    }
}
