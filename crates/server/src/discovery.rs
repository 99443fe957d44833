//! Discovery: the documents behind `GET /api`, `/apis`, `/apis/<group>`, `/api/v1` and
//! `/apis/<group>/<version>`, generated from the registry's [`ResourceInfo`]s so that a registered
//! kind is discoverable without further code.
//!
//! kubectl 1.32 asks `/api` and `/apis` for *aggregated* discovery (`apidiscovery.k8s.io/v2`, then
//! `v2beta1`, then plain JSON) and learns the whole API from those two answers; clients that do not
//! ask for it, and `kubectl auth can-i`, read the *legacy* documents. kubectl picks the parser from
//! the response `Content-Type`, not from the body, so an aggregated answer must be labelled with
//! [`DiscoveryFormat::content_type`] (and, since the answer depends on `Accept`, carry
//! `Vary: Accept`). See kubectl-wire.md §10.1.
//!
//! Architecture invariant: these are pure functions of the resources they are given; discovery
//! knows nothing about HTTP, storage or who is asking.

use std::cmp::Ordering;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::registry::ResourceInfo;

/// The media type of an aggregated discovery answer in `apidiscovery.k8s.io/v2`.
pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// The media type of an aggregated discovery answer in `apidiscovery.k8s.io/v2beta1`.
pub const AGGREGATED_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

const DISCOVERY_GROUP: &str = "apidiscovery.k8s.io";
const DISCOVERY_KIND: &str = "APIGroupDiscoveryList";

/// Which document `GET /api` and `GET /apis` answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIGroupDiscoveryList` in `apidiscovery.k8s.io/v2`, which kubectl 1.30 and later prefer.
    AggregatedV2,
    /// The same body in `apidiscovery.k8s.io/v2beta1`: the only aggregated version kubectl 1.29
    /// accepts (a `v2` answer makes it report that no resource type exists).
    AggregatedV2Beta1,
    /// `APIVersions` (`/api`) and `APIGroupList` (`/apis`), for clients that did not ask for
    /// aggregated discovery; they then fetch every group-version's `APIResourceList`.
    Legacy,
}

impl DiscoveryFormat {
    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryFormat::AggregatedV2 => AGGREGATED_V2,
            DiscoveryFormat::AggregatedV2Beta1 => AGGREGATED_V2BETA1,
            DiscoveryFormat::Legacy => "application/json",
        }
    }
}

/// Picks the discovery format from an `Accept` header value.
///
/// The client's order decides among acceptable media types of equal quality (kubectl 1.32 sends
/// v2, then v2beta1, then `application/json`; kubectl 1.29 sends v2beta1, then
/// `application/json`); a higher `q` wins over order. Parameters are matched by name, so their
/// order inside a media type does not matter. Media types this server cannot produce (protobuf,
/// `as=Table`, other aggregated versions) are skipped; with nothing acceptable, or no header, the
/// answer is legacy JSON, which every client understands.
pub fn negotiate(accept: Option<&str>) -> DiscoveryFormat {
    let mut best: Option<(f32, DiscoveryFormat)> = None;
    for range in accept.unwrap_or_default().split(',') {
        let Some((format, quality)) = parse_media_range(range) else {
            continue;
        };
        // Strictly greater: among equal qualities the client's first choice stays.
        if quality > best.map_or(0.0, |(q, _)| q) {
            best = Some((quality, format));
        }
    }
    best.map_or(DiscoveryFormat::Legacy, |(_, format)| format)
}

/// The format one media range of an `Accept` header asks for, with its quality; `None` when this
/// server cannot answer with it.
fn parse_media_range(range: &str) -> Option<(DiscoveryFormat, f32)> {
    let mut parts = range.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    if !matches!(media_type.as_str(), "application/json" | "application/*" | "*/*") {
        return None;
    }
    let (mut group, mut version, mut as_kind, mut quality) = (None, None, None, 1.0_f32);
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "g" => group = Some(value),
            "v" => version = Some(value),
            "as" => as_kind = Some(value),
            // An unreadable quality is treated as the default rather than rejecting the range.
            "q" => quality = value.parse::<f32>().ok().filter(|q| q.is_finite()).map_or(1.0, |q| q.clamp(0.0, 1.0)),
            _ => {}
        }
    }
    let format = match (group, version, as_kind) {
        (None, None, None) => DiscoveryFormat::Legacy,
        (Some(DISCOVERY_GROUP), Some("v2"), Some(DISCOVERY_KIND)) => DiscoveryFormat::AggregatedV2,
        (Some(DISCOVERY_GROUP), Some("v2beta1"), Some(DISCOVERY_KIND)) => DiscoveryFormat::AggregatedV2Beta1,
        _ => return None,
    };
    Some((format, quality))
}

/// A subresource of a served resource (`serviceaccounts/token`, `namespaces/status`), as
/// discovery and OpenAPI describe it. Its kind may belong to another group: `token` answers with
/// `authentication.k8s.io/v1` `TokenRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// The path segment after the object name: `token`.
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// The subresources served for a resource: the one place discovery and OpenAPI ask.
pub fn subresources(info: &ResourceInfo) -> &'static [Subresource] {
    info.subresources
}

/// The aggregated discovery document (`APIGroupDiscoveryList`) for `GET /api` (`core`: the
/// legacy core group) or `GET /apis` (every other group, one item each).
///
/// [`DiscoveryFormat::Legacy`] is not an aggregated format: callers answer it with
/// [`api_versions`] or [`api_group_list`]; given it anyway, this returns the `v2` document.
pub fn aggregated(resources: &[&ResourceInfo], core: bool, format: DiscoveryFormat) -> Value {
    let api_version = match format {
        DiscoveryFormat::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
        DiscoveryFormat::AggregatedV2 | DiscoveryFormat::Legacy => "apidiscovery.k8s.io/v2",
    };
    let groups = if core { vec![""] } else { groups(resources) };
    let items: Vec<Value> = groups
        .into_iter()
        .filter_map(|group| {
            let versions: Vec<Value> = versions(resources, group)
                .into_iter()
                .map(|version| {
                    let entries: Vec<Value> = in_group_version(resources, group, version)
                        .into_iter()
                        .map(|info| aggregated_resource(info, subresources(info)))
                        .collect();
                    json!({"version": version, "resources": entries, "freshness": "Current"})
                })
                .collect();
            if versions.is_empty() {
                return None;
            }
            // kube-apiserver leaves the name of the core group's item empty.
            let metadata = if group.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            Some(json!({"metadata": metadata, "versions": versions}))
        })
        .collect();
    json!({"kind": DISCOVERY_KIND, "apiVersion": api_version, "metadata": {}, "items": items})
}

/// One `APIResourceDiscovery`. Empty `shortNames`, `categories` and `subresources` are left out,
/// as kube-apiserver does.
fn aggregated_resource(info: &ResourceInfo, subresources: &[Subresource]) -> Value {
    let mut entry = Map::new();
    entry.insert("resource".into(), json!(info.plural));
    entry.insert("responseKind".into(), json!({"group": info.group, "version": info.version, "kind": info.kind}));
    entry.insert("scope".into(), json!(if info.namespaced { "Namespaced" } else { "Cluster" }));
    entry.insert("singularResource".into(), json!(info.singular));
    entry.insert("verbs".into(), json!(info.verbs));
    if !info.short_names.is_empty() {
        entry.insert("shortNames".into(), json!(info.short_names));
    }
    if !info.categories.is_empty() {
        entry.insert("categories".into(), json!(info.categories));
    }
    if !subresources.is_empty() {
        let mut sorted = subresources.to_vec();
        sorted.sort_by_key(|s| s.name);
        let subresources: Vec<Value> = sorted
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        entry.insert("subresources".into(), Value::Array(subresources));
    }
    Value::Object(entry)
}

/// The legacy `GET /api` answer (`APIVersions`). kube-apiserver sends it without `apiVersion`.
/// `server_address` is the `host:port` clients reach this server at.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The legacy `GET /apis` answer (`APIGroupList`): every group but the core one.
pub fn api_group_list(resources: &[&ResourceInfo]) -> Value {
    let groups: Vec<Value> =
        groups(resources).into_iter().map(|group| Value::Object(api_group_body(resources, group))).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The legacy `GET /apis/<group>` answer (`APIGroup`); `None` for a group not served (and for
/// the core group, which lives at `/api`).
pub fn api_group(resources: &[&ResourceInfo], group: &str) -> Option<Value> {
    if group.is_empty() || !resources.iter().any(|r| r.group == group) {
        return None;
    }
    let mut document = Map::new();
    document.insert("kind".into(), json!("APIGroup"));
    document.insert("apiVersion".into(), json!("v1"));
    document.extend(api_group_body(resources, group));
    Some(Value::Object(document))
}

/// The fields of an `APIGroup`, which `APIGroupList` lists without `kind` and `apiVersion`.
fn api_group_body(resources: &[&ResourceInfo], group: &str) -> Map<String, Value> {
    let versions: Vec<Value> = versions(resources, group)
        .into_iter()
        .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
        .collect();
    // Versions are sorted by priority, so the first is the preferred one.
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    let mut body = Map::new();
    body.insert("name".into(), json!(group));
    body.insert("versions".into(), Value::Array(versions));
    body.insert("preferredVersion".into(), preferred);
    body
}

/// The legacy `GET /api/v1` or `GET /apis/<group>/<version>` answer (`APIResourceList`); `None`
/// when nothing is served there. Subresources are entries of their own (`serviceaccounts/token`).
pub fn api_resource_list(resources: &[&ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let served = in_group_version(resources, group, version);
    if served.is_empty() {
        return None;
    }
    let entries: Vec<Value> = served.into_iter().flat_map(|info| legacy_resources(info, subresources(info))).collect();
    let mut document = Map::new();
    document.insert("kind".into(), json!("APIResourceList"));
    // kube-apiserver's core list has no apiVersion; the group lists say v1.
    if group.is_empty() {
        document.insert("groupVersion".into(), json!(version));
    } else {
        document.insert("apiVersion".into(), json!("v1"));
        document.insert("groupVersion".into(), json!(format!("{group}/{version}")));
    }
    document.insert("resources".into(), Value::Array(entries));
    Some(Value::Object(document))
}

/// The `APIResource` entries of one resource: itself, then its subresources by name.
fn legacy_resources(info: &ResourceInfo, subresources: &[Subresource]) -> Vec<Value> {
    let mut entry = Map::new();
    entry.insert("name".into(), json!(info.plural));
    entry.insert("singularName".into(), json!(info.singular));
    entry.insert("namespaced".into(), json!(info.namespaced));
    entry.insert("kind".into(), json!(info.kind));
    entry.insert("verbs".into(), json!(info.verbs));
    if !info.short_names.is_empty() {
        entry.insert("shortNames".into(), json!(info.short_names));
    }
    if !info.categories.is_empty() {
        entry.insert("categories".into(), json!(info.categories));
    }
    // Only stored resources have a storage version; create-only kinds (access reviews) are not
    // stored, and kube-apiserver gives them no hash. Every stored resource can be read.
    if info.verbs.contains(&"get") {
        entry.insert("storageVersionHash".into(), json!(storage_version_hash(info.group, info.version, info.kind)));
    }
    let mut entries = vec![Value::Object(entry)];

    let mut sorted = subresources.to_vec();
    sorted.sort_by_key(|s| s.name);
    for sub in sorted {
        let mut entry = Map::new();
        entry.insert("name".into(), json!(format!("{}/{}", info.plural, sub.name)));
        entry.insert("singularName".into(), json!(""));
        entry.insert("namespaced".into(), json!(info.namespaced));
        // The group and version are named only when they differ from the parent's.
        if (sub.group, sub.version) != (info.group, info.version) {
            entry.insert("group".into(), json!(sub.group));
            entry.insert("version".into(), json!(sub.version));
        }
        entry.insert("kind".into(), json!(sub.kind));
        entry.insert("verbs".into(), json!(sub.verbs));
        entries.push(Value::Object(entry));
    }
    entries
}

/// kube-apiserver's `storageVersionHash`: the first 8 bytes of SHA-256 of `group/version/kind`
/// (the storage version), base64-encoded. It only has to change when the storage version does.
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// The groups other than core, in the order the resources name them.
fn groups<'a>(resources: &[&'a ResourceInfo]) -> Vec<&'a str> {
    let mut groups: Vec<&str> = Vec::new();
    for info in resources {
        if !info.group.is_empty() && !groups.contains(&info.group) {
            groups.push(info.group);
        }
    }
    groups
}

/// A group's versions, preferred first.
fn versions<'a>(resources: &[&'a ResourceInfo], group: &str) -> Vec<&'a str> {
    let mut versions: Vec<&str> = Vec::new();
    for info in resources.iter().filter(|r| r.group == group) {
        if !versions.contains(&info.version) {
            versions.push(info.version);
        }
    }
    versions.sort_by(|a, b| compare_versions(a, b));
    versions
}

/// The resources of one group-version, by plural name as kube-apiserver lists them.
pub(crate) fn in_group_version<'a>(
    resources: &[&'a ResourceInfo],
    group: &str,
    version: &str,
) -> Vec<&'a ResourceInfo> {
    let mut served: Vec<&ResourceInfo> =
        resources.iter().copied().filter(|r| r.group == group && r.version == version).collect();
    served.sort_by_key(|r| r.plural);
    served
}

/// Orders versions by Kubernetes' priority, most preferred first: GA before beta before alpha,
/// higher major (then minor) numbers first, and strings that are not Kubernetes versions last, by
/// name (`v2, v1, v2beta1, v1beta2, v1beta1, v1alpha1, foo`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (kube_version(a), kube_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `(stability, major, minor)` of a Kubernetes version string, greater meaning preferred; stability
/// is 2 for GA, 1 for beta, 0 for alpha.
fn kube_version(version: &str) -> Option<(u8, u32, u32)> {
    let rest = version.strip_prefix('v')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (major, rest) = rest.split_at(digits);
    if major.is_empty() || major.starts_with('0') {
        return None;
    }
    let major: u32 = major.parse().ok()?;
    if rest.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(minor) = rest.strip_prefix("beta") {
        (1, minor)
    } else if let Some(minor) = rest.strip_prefix("alpha") {
        (0, minor)
    } else {
        return None;
    };
    if minor.is_empty() || minor.starts_with('0') || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stability, major, minor.parse().ok()?))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The registry's own resources, for tests of the generated documents.

    pub use crate::registry::namespace::INFO as NAMESPACES;
    pub use crate::registry::rbac::ROLES;
    pub use crate::registry::review::SELF_SUBJECT_ACCESS_REVIEWS;
    pub use crate::registry::secret::INFO as SECRETS;
    pub use crate::registry::serviceaccount::{INFO as SERVICE_ACCOUNTS, TOKEN};
    use crate::registry::{Registry, ResourceInfo, secret::DigestKey};

    /// Secrets and Namespaces: the core kinds without subresources.
    pub fn core() -> Vec<&'static ResourceInfo> {
        vec![&SECRETS, &NAMESPACES]
    }

    /// A few kinds across groups: core, one stored RBAC kind and one virtual review.
    pub fn all() -> Vec<&'static ResourceInfo> {
        vec![&SECRETS, &NAMESPACES, &ROLES, &SELF_SUBJECT_ACCESS_REVIEWS]
    }

    /// Everything the registry serves, stored and virtual.
    pub fn served() -> Vec<&'static ResourceInfo> {
        Registry::new(DigestKey::new([7; 32])).infos()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    const KUBECTL_1_32_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    const KUBECTL_1_29_ACCEPT: &str =
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn resource<'a>(document: &'a Value, version: usize, name: &str) -> &'a Value {
        document["items"][0]["versions"][version]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == name)
            .unwrap_or_else(|| panic!("{name} is not in {document}"))
    }

    #[test]
    fn aggregated_core_lists_secrets_and_namespaces() {
        let document = aggregated(&core(), true, DiscoveryFormat::AggregatedV2);
        assert_eq!(document["kind"], "APIGroupDiscoveryList");
        assert_eq!(document["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(document["items"].as_array().unwrap().len(), 1);
        assert_eq!(document["items"][0]["metadata"], json!({"creationTimestamp": null}));
        let version = &document["items"][0]["versions"][0];
        assert_eq!(version["version"], "v1");
        assert_eq!(version["freshness"], "Current");

        let secrets = resource(&document, 0, "secrets");
        assert_eq!(secrets["responseKind"], json!({"group": "", "version": "v1", "kind": "Secret"}));
        assert_eq!(secrets["scope"], "Namespaced");
        assert_eq!(secrets["singularResource"], "secret");
        assert_eq!(
            secrets["verbs"],
            json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
        );
        assert!(secrets.get("shortNames").is_none(), "empty lists are left out: {secrets}");
        assert!(secrets.get("subresources").is_none());

        let namespaces = resource(&document, 0, "namespaces");
        assert_eq!(namespaces["responseKind"], json!({"group": "", "version": "v1", "kind": "Namespace"}));
        assert_eq!(namespaces["scope"], "Cluster");
        assert_eq!(namespaces["singularResource"], "namespace");
        assert_eq!(namespaces["shortNames"], json!(["ns"]));
    }

    #[test]
    fn aggregated_core_leaves_out_other_groups_and_apis_leaves_out_core() {
        let core_document = aggregated(&all(), true, DiscoveryFormat::AggregatedV2);
        let names: Vec<&Value> = core_document["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["resource"])
            .collect();
        assert_eq!(names, ["namespaces", "secrets"]);

        let apis = aggregated(&all(), false, DiscoveryFormat::AggregatedV2);
        let items = apis["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["metadata"], json!({"name": "rbac.authorization.k8s.io", "creationTimestamp": null}));
        assert_eq!(items[1]["metadata"]["name"], "authorization.k8s.io");
        let roles = &items[0]["versions"][0]["resources"][0];
        assert_eq!(
            roles["responseKind"],
            json!({"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "Role"})
        );
        let reviews = &items[1]["versions"][0]["resources"][0];
        assert_eq!(reviews["scope"], "Cluster");
        assert_eq!(reviews["verbs"], json!(["create"]));
    }

    #[test]
    fn aggregated_apis_without_groups_is_an_empty_list() {
        let document = aggregated(&core(), false, DiscoveryFormat::AggregatedV2);
        assert_eq!(document["items"], json!([]));
    }

    #[test]
    fn aggregated_v2beta1_has_the_same_body_under_its_own_api_version() {
        let v2 = aggregated(&core(), true, DiscoveryFormat::AggregatedV2);
        let mut v2beta1 = aggregated(&core(), true, DiscoveryFormat::AggregatedV2Beta1);
        assert_eq!(v2beta1["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        v2beta1["apiVersion"] = json!("apidiscovery.k8s.io/v2");
        assert_eq!(v2, v2beta1);
    }

    #[test]
    fn aggregated_resource_lists_subresources_with_their_own_kind() {
        let entry = aggregated_resource(&SERVICE_ACCOUNTS, &[TOKEN]);
        assert_eq!(
            entry["subresources"],
            json!([{
                "subresource": "token",
                "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                "verbs": ["create"],
            }])
        );
    }

    #[test]
    fn negotiate_picks_v2_for_kubectl_1_32() {
        assert_eq!(negotiate(Some(KUBECTL_1_32_ACCEPT)), DiscoveryFormat::AggregatedV2);
    }

    #[test]
    fn negotiate_picks_v2beta1_for_kubectl_1_29() {
        assert_eq!(negotiate(Some(KUBECTL_1_29_ACCEPT)), DiscoveryFormat::AggregatedV2Beta1);
    }

    #[test]
    fn negotiate_picks_legacy_for_plain_json_and_no_header() {
        assert_eq!(negotiate(Some("application/json, */*")), DiscoveryFormat::Legacy);
        assert_eq!(negotiate(Some("application/json")), DiscoveryFormat::Legacy);
        assert_eq!(negotiate(Some("*/*")), DiscoveryFormat::Legacy);
        assert_eq!(negotiate(None), DiscoveryFormat::Legacy);
        assert_eq!(negotiate(Some("")), DiscoveryFormat::Legacy);
    }

    #[test]
    fn negotiate_ignores_parameter_order_and_spacing() {
        let accept = "application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io, application/json";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::AggregatedV2);
        let accept = "application/json;as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2beta1";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::AggregatedV2Beta1);
    }

    #[test]
    fn negotiate_skips_what_it_cannot_produce() {
        // client-go's protobuf clients put the protobuf aggregated type first.
        let accept = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::AggregatedV2Beta1);
        let accept = "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::Legacy);
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::Legacy);
    }

    #[test]
    fn negotiate_honours_quality_over_order() {
        let accept = "application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::AggregatedV2);
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json";
        assert_eq!(negotiate(Some(accept)), DiscoveryFormat::Legacy);
    }

    #[test]
    fn content_types_are_the_aggregated_media_types() {
        assert_eq!(DiscoveryFormat::AggregatedV2.content_type(), KUBECTL_1_32_ACCEPT.split(',').next().unwrap());
        assert_eq!(DiscoveryFormat::AggregatedV2Beta1.content_type(), KUBECTL_1_29_ACCEPT.split(',').next().unwrap());
        assert_eq!(DiscoveryFormat::Legacy.content_type(), "application/json");
    }

    #[test]
    fn api_versions_is_the_legacy_core_answer() {
        assert_eq!(
            api_versions("127.0.0.1:6443"),
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
            })
        );
    }

    #[test]
    fn api_group_list_names_every_group_but_core() {
        let document = api_group_list(&all());
        assert_eq!(document["kind"], "APIGroupList");
        assert_eq!(document["apiVersion"], "v1");
        assert_eq!(
            document["groups"][0],
            json!({
                "name": "rbac.authorization.k8s.io",
                "versions": [{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"},
            })
        );
        assert_eq!(document["groups"].as_array().unwrap().len(), 2);
        assert_eq!(api_group_list(&core())["groups"], json!([]));
    }

    #[test]
    fn api_group_answers_served_groups_only() {
        let document = api_group(&all(), "rbac.authorization.k8s.io").unwrap();
        assert_eq!(document["kind"], "APIGroup");
        assert_eq!(document["apiVersion"], "v1");
        assert_eq!(document["name"], "rbac.authorization.k8s.io");
        assert_eq!(document["preferredVersion"]["version"], "v1");
        assert_eq!(api_group(&all(), ""), None);
        assert_eq!(api_group(&all(), "apps"), None);
    }

    #[test]
    fn api_resource_list_for_core_matches_kube_apiserver() {
        let document = api_resource_list(&core(), "", "v1").unwrap();
        assert_eq!(document["kind"], "APIResourceList");
        assert_eq!(document["groupVersion"], "v1");
        assert!(document.get("apiVersion").is_none(), "the core list has no apiVersion: {document}");
        assert_eq!(
            document["resources"][1],
            json!({
                "name": "secrets",
                "singularName": "secret",
                "namespaced": true,
                "kind": "Secret",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                // As a real cluster reports it.
                "storageVersionHash": "S6u1pOWzb84=",
            })
        );
        assert_eq!(document["resources"][0]["name"], "namespaces");
        assert_eq!(document["resources"][0]["shortNames"], json!(["ns"]));
        assert_eq!(document["resources"][0]["namespaced"], false);
        assert_eq!(api_resource_list(&core(), "", "v2"), None);
    }

    #[test]
    fn api_resource_list_for_a_group_has_api_version_and_unstored_kinds_have_no_hash() {
        let document = api_resource_list(&all(), "authorization.k8s.io", "v1").unwrap();
        assert_eq!(document["apiVersion"], "v1");
        assert_eq!(document["groupVersion"], "authorization.k8s.io/v1");
        assert!(document["resources"][0].get("storageVersionHash").is_none());
    }

    #[test]
    fn legacy_subresources_are_entries_of_their_own() {
        let status = Subresource {
            name: "status",
            group: "",
            version: "v1",
            kind: "Namespace",
            verbs: &["get", "patch", "update"],
        };
        let entries = legacy_resources(&NAMESPACES, &[status]);
        assert_eq!(entries.len(), 2);
        // A subresource in its parent's group-version does not name them.
        assert_eq!(
            entries[1],
            json!({"name": "namespaces/status", "singularName": "", "namespaced": false, "kind": "Namespace", "verbs": ["get", "patch", "update"]})
        );
        let entries = legacy_resources(&SERVICE_ACCOUNTS, &[TOKEN]);
        assert_eq!(entries[0]["name"], "serviceaccounts");
        assert_eq!(
            entries[1],
            json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            })
        );
    }

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut versions = vec!["v1alpha1", "foo", "v1beta1", "v1", "v2beta1", "v2", "v1beta2", "v10", "bar"];
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(versions, ["v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]);
    }

    #[test]
    fn served_core_lists_service_accounts_with_their_token_subresource() {
        let document = aggregated(&served(), true, DiscoveryFormat::AggregatedV2);
        let names: Vec<&Value> = document["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["resource"])
            .collect();
        assert_eq!(names, ["events", "namespaces", "secrets", "serviceaccounts"]);
        let sa = resource(&document, 0, "serviceaccounts");
        assert_eq!(sa["shortNames"], json!(["sa"]));
        assert_eq!(sa["scope"], "Namespaced");
        assert_eq!(sa["subresources"][0]["subresource"], "token");
        assert_eq!(
            sa["subresources"][0]["responseKind"],
            json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
        );

        let legacy = api_resource_list(&served(), "", "v1").unwrap();
        let names: Vec<&Value> = legacy["resources"].as_array().unwrap().iter().map(|r| &r["name"]).collect();
        assert_eq!(names, ["events", "namespaces", "secrets", "serviceaccounts", "serviceaccounts/token"]);
    }

    #[test]
    fn served_core_lists_events_as_kube_apiserver_does() {
        let document = aggregated(&served(), true, DiscoveryFormat::AggregatedV2);
        assert_eq!(
            *resource(&document, 0, "events"),
            json!({
                "resource": "events",
                "responseKind": {"group": "", "version": "v1", "kind": "Event"},
                "scope": "Namespaced",
                "singularResource": "event",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["ev"],
            })
        );
        let legacy = api_resource_list(&served(), "", "v1").unwrap();
        assert_eq!(
            legacy["resources"][0],
            json!({
                "name": "events",
                "singularName": "event",
                "namespaced": true,
                "kind": "Event",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["ev"],
                // As a real cluster reports it.
                "storageVersionHash": "r2yiGXH7wu8=",
            })
        );
    }

    #[test]
    fn served_groups_are_rbac_and_the_virtual_review_groups() {
        let served = served();
        let apis = aggregated(&served, false, DiscoveryFormat::AggregatedV2);
        let groups: Vec<&Value> = apis["items"].as_array().unwrap().iter().map(|i| &i["metadata"]["name"]).collect();
        assert_eq!(groups, ["rbac.authorization.k8s.io", "authentication.k8s.io", "authorization.k8s.io"]);
        let resources = |i: usize| -> Vec<(String, String, Value)> {
            apis["items"][i]["versions"][0]["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["resource"].as_str().unwrap().to_string(),
                        r["scope"].as_str().unwrap().to_string(),
                        r["verbs"].clone(),
                    )
                })
                .collect()
        };
        let standard = json!(STANDARD_VERBS_FOR_TEST);
        assert_eq!(
            resources(0),
            [
                ("clusterrolebindings".into(), "Cluster".into(), standard.clone()),
                ("clusterroles".into(), "Cluster".into(), standard.clone()),
                ("rolebindings".into(), "Namespaced".into(), standard.clone()),
                ("roles".into(), "Namespaced".into(), standard),
            ]
        );
        let create = json!(["create"]);
        assert_eq!(
            resources(1),
            [
                ("selfsubjectreviews".into(), "Cluster".into(), create.clone()),
                ("tokenreviews".into(), "Cluster".into(), create.clone()),
            ]
        );
        assert_eq!(
            resources(2),
            [
                ("localsubjectaccessreviews".into(), "Namespaced".into(), create.clone()),
                ("selfsubjectaccessreviews".into(), "Cluster".into(), create.clone()),
                ("selfsubjectrulesreviews".into(), "Cluster".into(), create.clone()),
                ("subjectaccessreviews".into(), "Cluster".into(), create),
            ]
        );

        // Legacy discovery: /apis, /apis/<group> and /apis/<group>/<version> for every group.
        let list = api_group_list(&served);
        assert_eq!(list["groups"].as_array().unwrap().len(), 3);
        for group in ["rbac.authorization.k8s.io", "authentication.k8s.io", "authorization.k8s.io"] {
            assert_eq!(api_group(&served, group).unwrap()["preferredVersion"]["groupVersion"], format!("{group}/v1"));
            let resources = api_resource_list(&served, group, "v1").unwrap();
            assert_eq!(resources["groupVersion"], format!("{group}/v1"));
        }
        let roles = api_resource_list(&served, "rbac.authorization.k8s.io", "v1").unwrap();
        assert_eq!(
            roles["resources"][3],
            json!({
                "name": "roles",
                "singularName": "role",
                "namespaced": true,
                "kind": "Role",
                "verbs": STANDARD_VERBS_FOR_TEST,
                "storageVersionHash": storage_version_hash("rbac.authorization.k8s.io", "v1", "Role"),
            })
        );
        let reviews = api_resource_list(&served, "authentication.k8s.io", "v1").unwrap();
        assert_eq!(
            reviews["resources"][1],
            json!({"name": "tokenreviews", "singularName": "tokenreview", "namespaced": false, "kind": "TokenReview", "verbs": ["create"]})
        );
    }

    const STANDARD_VERBS_FOR_TEST: &[&str] =
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
}
