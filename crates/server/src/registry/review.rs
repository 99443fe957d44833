//! The virtual kinds of `authentication.k8s.io/v1` and `authorization.k8s.io/v1`: token reviews,
//! self-subject reviews and the four access reviews. Like kube-apiserver's
//! `pkg/registry/authentication/*` and `pkg/registry/authorization/*`, they are create-only and
//! never stored: a POST is answered from the request and the caller's identity. Only their
//! [`ResourceInfo`]s live here, for discovery and OpenAPI; the server's handlers answer them.

use super::{CREATE_ONLY_VERBS, ResourceInfo};

/// A create-only, cluster- or namespace-scoped kind with no list and no short names.
const fn review(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        kind,
        list_kind: "",
        plural,
        singular,
        namespaced,
        short_names: &[],
        verbs: CREATE_ONLY_VERBS,
        categories: &[],
        return_deleted_object: false,
        selectable_fields: &[],
        subresources: &[],
    }
}

pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

pub static TOKEN_REVIEWS: ResourceInfo =
    review(AUTHENTICATION_GROUP, "TokenReview", "tokenreviews", "tokenreview", false);
pub static SELF_SUBJECT_REVIEWS: ResourceInfo =
    review(AUTHENTICATION_GROUP, "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false);
pub static SELF_SUBJECT_ACCESS_REVIEWS: ResourceInfo = review(
    AUTHORIZATION_GROUP,
    "SelfSubjectAccessReview",
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    false,
);
pub static SELF_SUBJECT_RULES_REVIEWS: ResourceInfo =
    review(AUTHORIZATION_GROUP, "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", false);
pub static SUBJECT_ACCESS_REVIEWS: ResourceInfo =
    review(AUTHORIZATION_GROUP, "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", false);
pub static LOCAL_SUBJECT_ACCESS_REVIEWS: ResourceInfo = review(
    AUTHORIZATION_GROUP,
    "LocalSubjectAccessReview",
    "localsubjectaccessreviews",
    "localsubjectaccessreview",
    true,
);

/// Every virtual kind, in the order discovery lists their groups (authentication first, as
/// kube-apiserver does).
pub static INFOS: &[&ResourceInfo] = &[
    &TOKEN_REVIEWS,
    &SELF_SUBJECT_REVIEWS,
    &SELF_SUBJECT_ACCESS_REVIEWS,
    &SELF_SUBJECT_RULES_REVIEWS,
    &SUBJECT_ACCESS_REVIEWS,
    &LOCAL_SUBJECT_ACCESS_REVIEWS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_are_create_only_and_only_local_access_reviews_are_namespaced() {
        for info in INFOS {
            assert_eq!(info.verbs, ["create"], "{}", info.plural);
            assert_eq!(info.version, "v1");
            assert_eq!(info.namespaced, info.kind == "LocalSubjectAccessReview", "{}", info.plural);
            assert_eq!(info.plural, format!("{}s", info.singular));
            assert_eq!(info.singular, info.kind.to_ascii_lowercase());
        }
    }
}
