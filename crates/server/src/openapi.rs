//! OpenAPI v3: the index at `GET /openapi/v3` and one document per group-version at
//! `GET /openapi/v3/api/v1` and `GET /openapi/v3/apis/<group>/<version>`, shaped as
//! kube-apiserver serves them. kubectl reads them for two things (kubectl-wire.md §9):
//!
//! - validation: before `apply`, `create -f`, `replace` and `edit`, kubectl looks for a PATCH
//!   operation tagged with the object's `x-kubernetes-group-version-kind` whose own parameters
//!   list `fieldValidation`; finding it, it leaves validation to the server (`fieldValidation=Strict`).
//! - `kubectl explain`: the paths map a resource to its GVK, and the schema carrying that GVK in
//!   `x-kubernetes-group-version-kind` gives the fields, their types and their descriptions.
//!
//! Paths are generated from [`ResourceInfo`] with kube-apiserver's conventions (operation ids,
//! `x-kubernetes-action`, parameters, parameters common to every operation of a path hoisted to
//! the path). Schemas and parameter descriptions are not written here: they are Kubernetes' own,
//! trimmed from the `api/openapi-spec/v3/*.json` documents of Kubernetes' release-1.32 branch into
//! the JSON files under `openapi/` (one per API group, see its README) and embedded. A document carries exactly the schemas its paths
//! reference, closed over `$ref`, so every reference resolves inside it.
//!
//! Adding a kind: add its schemas (and any they reference that are not embedded yet) from the
//! matching `api/openapi-spec/v3/*.json` of the same release to an embedded file (a new group gets
//! a new file, listed in [`SCHEMA_FILES`]), and register its [`ResourceInfo`]. The schema is found
//! by its `x-kubernetes-group-version-kind`; [`kinds_without_schema`] names the kinds that lack one.
//!
//! Architecture invariant: these are pure functions of the resources they are given; OpenAPI knows
//! nothing about HTTP or storage. Documents are deterministic, so [`hash`] only changes when a
//! document does, which is what invalidates kubectl's cache.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::discovery::{self, Subresource};
use crate::registry::ResourceInfo;

/// The embedded schema files: `components.schemas` entries of Kubernetes' release-1.32 OpenAPI v3
/// documents, keyed by schema name, unchanged.
const SCHEMA_FILES: &[(&str, &str)] = &[
    // io.k8s.apimachinery: ObjectMeta, ListMeta, Status, DeleteOptions, Patch, WatchEvent,
    // MicroTime, … .
    ("meta_v1.json", include_str!("openapi/meta_v1.json")),
    // io.k8s.api.core.v1: Secret, Namespace, ServiceAccount, Event, their lists and parts.
    ("core_v1.json", include_str!("openapi/core_v1.json")),
    // io.k8s.api.rbac.v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding, lists and parts.
    ("rbac_v1.json", include_str!("openapi/rbac_v1.json")),
    // io.k8s.api.authentication.v1: TokenRequest (serviceaccounts/token), TokenReview,
    // SelfSubjectReview.
    ("authentication_v1.json", include_str!("openapi/authentication_v1.json")),
    // io.k8s.api.authorization.v1: the four access reviews.
    ("authorization_v1.json", include_str!("openapi/authorization_v1.json")),
];

/// kube-apiserver's operation parameters, from the same documents, keyed by name;
/// `fieldManager.patch` is PATCH's wording of `fieldManager`.
const PARAMETERS_FILE: &str = include_str!("openapi/parameters.json");

/// `info.version` of the documents. kube-apiserver puts its build version there; the spec files the
/// schemas come from say `unversioned`, and no client reads it.
const INFO_VERSION: &str = "unversioned";

const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";

/// The media types strongroom answers with. kube-apiserver also lists CBOR, protobuf and YAML;
/// only what this server produces is advertised.
const RESPONSE_TYPES: &[&str] = &["application/json"];
/// The extra media type of a list that is watched (`?watch=true`).
const WATCH_TYPES: &[&str] = &["application/json;stream=watch"];
/// The PATCH bodies strongroom accepts (kube-apiserver also takes `application/apply-patch+cbor`).
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Query parameters of each operation, as kube-apiserver lists them (`pretty` and path parameters
/// are added to every operation).
const LIST_PARAMETERS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMETERS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMETERS: &[&str] = &["dryRun", "fieldManager.patch", "fieldValidation", "force"];
const DELETE_PARAMETERS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMETERS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

/// The embedded schemas, merged, with an index by GVK.
struct Schemas {
    by_name: Map<String, Value>,
    by_gvk: HashMap<(String, String, String), String>,
}

// Invariant: the embedded files are JSON objects; `embedded_files_parse` checks it, so the panics
// below cannot happen in a build whose tests pass.
static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    let mut by_name = Map::new();
    for (file, text) in SCHEMA_FILES {
        let Value::Object(schemas) =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("embedded openapi/{file}: {e}"))
        else {
            panic!("embedded openapi/{file} is not a JSON object")
        };
        by_name.extend(schemas);
    }
    let mut by_gvk = HashMap::new();
    for (name, schema) in &by_name {
        for gvk in schema["x-kubernetes-group-version-kind"].as_array().into_iter().flatten() {
            let field = |f: &str| gvk[f].as_str().unwrap_or_default().to_string();
            by_gvk.insert((field("group"), field("version"), field("kind")), name.clone());
        }
    }
    Schemas { by_name, by_gvk }
});

static PARAMETERS: LazyLock<Map<String, Value>> = LazyLock::new(|| match serde_json::from_str(PARAMETERS_FILE) {
    Ok(Value::Object(parameters)) => parameters,
    other => panic!("embedded openapi/parameters.json is not a JSON object: {other:?}"),
});

/// The `GET /openapi/v3` index: one entry per served group-version, whose `serverRelativeURL`
/// carries the [`hash`] of that document (kubectl follows the URL as given and caches by it).
pub fn root(resources: &[&ResourceInfo]) -> Value {
    let mut group_versions: Vec<(&str, &str)> = resources.iter().map(|r| (r.group, r.version)).collect();
    group_versions.sort();
    group_versions.dedup();
    let mut paths = BTreeMap::new();
    for (group, version) in group_versions {
        let Some(document) = group_version(resources, group, version) else {
            continue;
        };
        let key = document_path(group, version);
        let url = format!("/openapi/v3/{key}?hash={}", hash(&document));
        paths.insert(key, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// The index key and URL suffix of a group-version's document: `api/v1`, `apis/<group>/<version>`.
pub fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A document's version tag, for `?hash=` and `ETag`: SHA-512 of its JSON, in upper-case hex, as
/// kube-apiserver computes it.
pub fn hash(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).expect("a serde_json::Value always serializes");
    let digest = Sha512::digest(&bytes);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        write!(hex, "{byte:02X}").expect("writing to a String cannot fail");
    }
    hex
}

/// The OpenAPI 3.0 document of one group-version (`GET /openapi/v3/api/v1`); `None` when nothing
/// is served there.
pub fn group_version(resources: &[&ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let served = discovery::in_group_version(resources, group, version);
    if served.is_empty() {
        return None;
    }
    let mut paths = BTreeMap::new();
    for info in &served {
        resource_paths(&mut paths, info, discovery::subresources(info));
    }
    let paths = Value::Object(paths.into_iter().collect());

    let mut roots = BTreeSet::new();
    collect_refs(&paths, &mut roots);
    // No path names WatchEvent (the deprecated `/watch/` paths are not served), but a list with
    // `?watch=true` streams WatchEvents, so its schema is part of the document.
    if served.iter().any(|info| info.verbs.contains(&"watch")) {
        roots.insert(WATCH_EVENT.to_string());
    }
    let schemas = closure(roots);

    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                },
            },
        },
    }))
}

/// The served kinds (and list kinds) that no embedded schema carries, as `group/version/Kind`:
/// `kubectl explain` cannot describe them. A registry test should expect this to be empty.
pub fn kinds_without_schema(resources: &[&ResourceInfo]) -> Vec<String> {
    let mut missing = Vec::new();
    for info in resources {
        let mut kinds = vec![(info.group, info.version, info.kind)];
        if info.verbs.contains(&"list") {
            kinds.push((info.group, info.version, info.list_kind));
        }
        kinds.extend(discovery::subresources(info).iter().map(|s| (s.group, s.version, s.kind)));
        for (group, version, kind) in kinds {
            if schema_name(group, version, kind).is_none() {
                missing.push(format!("{group}/{version}/{kind}"));
            }
        }
    }
    missing
}

fn schema_name(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    let key = (group.to_string(), version.to_string(), kind.to_string());
    SCHEMAS.by_gvk.get(&key).map(String::as_str)
}

/// A reference to the schema of a kind. A kind without an embedded schema gets an open object
/// rather than a dangling reference, so the document stays valid ([`kinds_without_schema`] is
/// how that gets noticed).
fn kind_schema(group: &str, version: &str, kind: &str) -> Value {
    match schema_name(group, version, kind) {
        Some(name) => schema_ref(name),
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMA_REF_PREFIX}{name}") })
}

/// Every `$ref`'d schema name in a value.
fn collect_refs(value: &Value, refs: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(SCHEMA_REF_PREFIX) {
                            refs.insert(name.to_string());
                        }
                    }
                    _ => collect_refs(value, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

/// The named schemas and everything they reference, by name.
fn closure(roots: BTreeSet<String>) -> Map<String, Value> {
    let mut done: BTreeMap<String, Value> = BTreeMap::new();
    let mut pending: Vec<String> = roots.into_iter().collect();
    while let Some(name) = pending.pop() {
        if done.contains_key(&name) {
            continue;
        }
        let Some(schema) = SCHEMAS.by_name.get(&name) else {
            continue;
        };
        let mut refs = BTreeSet::new();
        collect_refs(schema, &mut refs);
        pending.extend(refs.into_iter().filter(|r| !done.contains_key(r)));
        done.insert(name, schema.clone());
    }
    done.into_iter().collect()
}

/// What kube-apiserver calls an operation's action (`x-kubernetes-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    List,
    Post,
    DeleteCollection,
    Get,
    Put,
    Patch,
    Delete,
}

impl Action {
    fn method(self) -> &'static str {
        match self {
            Action::List | Action::Get => "get",
            Action::Post => "post",
            Action::DeleteCollection | Action::Delete => "delete",
            Action::Put => "put",
            Action::Patch => "patch",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Post => "post",
            Action::DeleteCollection => "deletecollection",
            Action::Get => "get",
            Action::Put => "put",
            Action::Patch => "patch",
            Action::Delete => "delete",
        }
    }

    /// The verb that op ids start with.
    fn id_verb(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Post => "create",
            Action::DeleteCollection | Action::Delete => "delete",
            Action::Get => "read",
            Action::Put => "replace",
            Action::Patch => "patch",
        }
    }

    fn query_parameters(self) -> &'static [&'static str] {
        match self {
            Action::List => LIST_PARAMETERS,
            Action::Post | Action::Put => WRITE_PARAMETERS,
            Action::DeleteCollection => DELETE_COLLECTION_PARAMETERS,
            Action::Get => &[],
            Action::Patch => PATCH_PARAMETERS,
            Action::Delete => DELETE_PARAMETERS,
        }
    }

    /// The operations an RBAC verb allows on an object (or a subresource) path.
    fn for_object_verb(verb: &str) -> Option<Action> {
        match verb {
            "get" => Some(Action::Get),
            "update" => Some(Action::Put),
            "patch" => Some(Action::Patch),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// The resource (or subresource) one path is about.
struct Target<'a> {
    info: &'a ResourceInfo,
    subresource: Option<&'a Subresource>,
}

impl Target<'_> {
    /// The kind operations take and return: the subresource's own kind for a subresource.
    fn gvk(&self) -> (&str, &str, &str) {
        match self.subresource {
            Some(s) => (s.group, s.version, s.kind),
            None => (self.info.group, self.info.version, self.info.kind),
        }
    }

    fn watchable(&self) -> bool {
        self.info.verbs.contains(&"watch")
    }
}

/// An operation and its own parameters, before the parameters common to a whole path are hoisted.
struct Operation {
    action: Action,
    fields: Map<String, Value>,
    parameters: Vec<Value>,
}

/// Adds the paths of one resource: the collection, the object, the cross-namespace list of a
/// namespaced resource and the subresources.
fn resource_paths(paths: &mut BTreeMap<String, Value>, info: &ResourceInfo, subresources: &[Subresource]) {
    let prefix = format!("/{}", document_path(info.group, info.version));
    let has = |verb: &str| info.verbs.contains(&verb);
    let target = Target { info, subresource: None };
    let scope_parameters = if info.namespaced { vec![parameter("namespace")] } else { Vec::new() };
    let (collection, object) = if info.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", info.plural),
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", info.plural),
        )
    } else {
        (format!("{prefix}/{}", info.plural), format!("{prefix}/{}/{{name}}", info.plural))
    };

    let collection_operations: Vec<Operation> = [
        (has("list"), Action::List),
        (has("create"), Action::Post),
        (has("deletecollection"), Action::DeleteCollection),
    ]
    .into_iter()
    .filter(|(served, _)| *served)
    .map(|(_, action)| operation(&target, action, info.namespaced))
    .collect();
    insert_path(paths, collection, scope_parameters.clone(), collection_operations);

    let object_parameters = [vec![name_parameter(info.kind)], scope_parameters.clone()].concat();
    let object_operations: Vec<Operation> = info
        .verbs
        .iter()
        .filter_map(|verb| Action::for_object_verb(verb))
        .map(|action| operation(&target, action, info.namespaced))
        .collect();
    insert_path(paths, object.clone(), object_parameters, object_operations);

    // kubectl explain finds a namespaced resource by this path, so it exists whenever listing does.
    if info.namespaced && has("list") {
        insert_path(
            paths,
            format!("{prefix}/{}", info.plural),
            Vec::new(),
            vec![operation(&target, Action::List, false)],
        );
    }

    for subresource in subresources {
        let target = Target { info, subresource: Some(subresource) };
        let actions = subresource.verbs.iter().filter_map(|verb| match *verb {
            "create" => Some(Action::Post),
            verb => Action::for_object_verb(verb),
        });
        let operations: Vec<Operation> = actions.map(|action| operation(&target, action, info.namespaced)).collect();
        let parameters = [vec![name_parameter(subresource.kind)], scope_parameters.clone()].concat();
        insert_path(paths, format!("{object}/{}", subresource.name), parameters, operations);
    }
}

/// Adds a path item. Parameters every operation has (by name and location) move to the path, as
/// kube-openapi does; path parameters and `pretty` belong to every operation.
fn insert_path(
    paths: &mut BTreeMap<String, Value>,
    path: String,
    path_parameters: Vec<Value>,
    mut operations: Vec<Operation>,
) {
    if operations.is_empty() {
        return;
    }
    for operation in &mut operations {
        operation.parameters.extend(path_parameters.iter().cloned());
        operation.parameters.push(parameter("pretty"));
    }
    let key = |p: &Value| {
        (p["name"].as_str().unwrap_or_default().to_string(), p["in"].as_str().unwrap_or_default().to_string())
    };
    let mut common: Vec<Value> = operations[0]
        .parameters
        .iter()
        .filter(|p| operations.iter().all(|op| op.parameters.iter().any(|q| key(q) == key(p))))
        .cloned()
        .collect();
    common.sort_by_key(key);

    let mut item: BTreeMap<String, Value> = BTreeMap::new();
    for operation in operations {
        let mut own: Vec<Value> =
            operation.parameters.into_iter().filter(|p| !common.iter().any(|c| key(c) == key(p))).collect();
        own.sort_by_key(key);
        let mut fields = operation.fields;
        if !own.is_empty() {
            fields.insert("parameters".into(), Value::Array(own));
        }
        // Keys in the order kube-apiserver's documents have them (alphabetical).
        let mut sorted: Vec<(String, Value)> = fields.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        item.insert(operation.action.method().to_string(), Value::Object(sorted.into_iter().collect()));
    }
    if !common.is_empty() {
        item.insert("parameters".into(), Value::Array(common));
    }
    paths.insert(path, Value::Object(item.into_iter().collect()));
}

/// One operation on `target`. `namespaced` says whether the path is inside a namespace (the
/// cross-namespace list of a namespaced resource is not).
fn operation(target: &Target, action: Action, namespaced: bool) -> Operation {
    let info = target.info;
    let (group, version, kind) = target.gvk();
    let object = kind_schema(group, version, kind);

    let mut fields = Map::new();
    fields.insert("description".into(), json!(description(target, action)));
    fields.insert("operationId".into(), json!(operation_id(target, action, namespaced)));
    fields.insert("tags".into(), json!([tag(info.group, info.version)]));
    fields.insert("x-kubernetes-action".into(), json!(action.extension()));
    fields.insert("x-kubernetes-group-version-kind".into(), json!({"group": group, "kind": kind, "version": version}));

    let unauthorized = ("401", json!({"description": "Unauthorized"}));
    let responses: Vec<(&str, Value)> = match action {
        Action::List => {
            let list = kind_schema(info.group, info.version, info.list_kind);
            let mut types = RESPONSE_TYPES.to_vec();
            if target.watchable() {
                types.extend(WATCH_TYPES);
            }
            vec![("200", response("OK", &list, &types)), unauthorized]
        }
        Action::Get => vec![("200", response("OK", &object, RESPONSE_TYPES)), unauthorized],
        Action::Post => vec![
            ("200", response("OK", &object, RESPONSE_TYPES)),
            ("201", response("Created", &object, RESPONSE_TYPES)),
            ("202", response("Accepted", &object, RESPONSE_TYPES)),
            unauthorized,
        ],
        Action::Put | Action::Patch => vec![
            ("200", response("OK", &object, RESPONSE_TYPES)),
            ("201", response("Created", &object, RESPONSE_TYPES)),
            unauthorized,
        ],
        Action::Delete => {
            let status = schema_ref(STATUS);
            vec![
                ("200", response("OK", &status, RESPONSE_TYPES)),
                ("202", response("Accepted", &status, RESPONSE_TYPES)),
                unauthorized,
            ]
        }
        Action::DeleteCollection => vec![("200", response("OK", &schema_ref(STATUS), RESPONSE_TYPES)), unauthorized],
    };
    fields.insert(
        "responses".into(),
        Value::Object(responses.into_iter().map(|(code, r)| (code.to_string(), r)).collect()),
    );

    let request_body = match action {
        Action::Post | Action::Put => Some(json!({"content": {"*/*": {"schema": object}}, "required": true})),
        Action::Patch => {
            let content: Map<String, Value> =
                PATCH_TYPES.iter().map(|t| (t.to_string(), json!({"schema": schema_ref(PATCH)}))).collect();
            Some(json!({"content": content, "required": true}))
        }
        Action::Delete | Action::DeleteCollection => {
            Some(json!({"content": {"*/*": {"schema": schema_ref(DELETE_OPTIONS)}}}))
        }
        Action::List | Action::Get => None,
    };
    if let Some(body) = request_body {
        fields.insert("requestBody".into(), body);
    }

    let parameters = action.query_parameters().iter().map(|name| parameter(name)).collect();
    Operation { action, fields, parameters }
}

fn response(description: &str, schema: &Value, media_types: &[&str]) -> Value {
    let content: Map<String, Value> = media_types.iter().map(|t| (t.to_string(), json!({"schema": schema}))).collect();
    json!({"content": content, "description": description})
}

/// kube-apiserver's operation descriptions: `create a Secret`, `read status of the specified Namespace`.
fn description(target: &Target, action: Action) -> String {
    let kind = target.info.kind;
    let a = article(kind);
    match (action, target.subresource) {
        (Action::List, _) if target.watchable() => format!("list or watch objects of kind {kind}"),
        (Action::List, _) => format!("list objects of kind {kind}"),
        (Action::DeleteCollection, _) => format!("delete collection of {kind}"),
        (Action::Post, None) => format!("create {a} {kind}"),
        (Action::Get, None) => format!("read the specified {kind}"),
        (Action::Put, None) => format!("replace the specified {kind}"),
        (Action::Patch, None) => format!("partially update the specified {kind}"),
        (Action::Delete, None) => format!("delete {a} {kind}"),
        (Action::Post, Some(s)) => format!("create {} of {a} {kind}", s.name),
        (Action::Get, Some(s)) => format!("read {} of the specified {kind}", s.name),
        (Action::Put, Some(s)) => format!("replace {} of the specified {kind}", s.name),
        (Action::Patch, Some(s)) => format!("partially update {} of the specified {kind}", s.name),
        (Action::Delete, Some(s)) => format!("delete {} of {a} {kind}", s.name),
    }
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" }
}

/// kube-apiserver's operation ids: `patchCoreV1NamespacedSecret`,
/// `deleteCoreV1CollectionNamespacedSecret`, `listCoreV1SecretForAllNamespaces`,
/// `createCoreV1NamespacedServiceAccountToken`.
fn operation_id(target: &Target, action: Action, namespaced: bool) -> String {
    let info = target.info;
    let collection = if action == Action::DeleteCollection { "Collection" } else { "" };
    let scope = if namespaced { "Namespaced" } else { "" };
    let subresource = target.subresource.map(|s| upper_first(s.name)).unwrap_or_default();
    let all_namespaces = if info.namespaced && !namespaced { "ForAllNamespaces" } else { "" };
    format!(
        "{}{}{}{collection}{scope}{}{subresource}{all_namespaces}",
        action.id_verb(),
        group_words(info.group),
        upper_first(info.version),
        info.kind
    )
}

/// The group as op ids spell it: `Core`, `RbacAuthorization`, `Authentication`.
fn group_words(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    group.trim_end_matches(".k8s.io").split(['.', '-']).map(upper_first).collect()
}

/// The tag of a group-version's operations: `core_v1`, `rbacAuthorization_v1`.
fn tag(group: &str, version: &str) -> String {
    let words = group_words(group);
    let mut chars = words.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase()).into_iter();
    format!("{}_{version}", first.chain(chars).collect::<String>())
}

fn upper_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect()
}

/// A parameter from the embedded set.
fn parameter(name: &str) -> Value {
    PARAMETERS.get(name).cloned().unwrap_or_else(|| panic!("openapi/parameters.json has no {name}"))
}

fn name_parameter(kind: &str) -> Value {
    json!({
        "description": format!("name of the {kind}"),
        "in": "path",
        "name": "name",
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::fixtures::*;

    const REQUIRED_SCHEMAS: &[&str] = &[
        "io.k8s.api.core.v1.Secret",
        "io.k8s.api.core.v1.SecretList",
        "io.k8s.api.core.v1.Namespace",
        "io.k8s.api.core.v1.NamespaceSpec",
        "io.k8s.api.core.v1.NamespaceStatus",
        "io.k8s.api.core.v1.NamespaceCondition",
        "io.k8s.api.core.v1.NamespaceList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails",
        "io.k8s.apimachinery.pkg.apis.meta.v1.StatusCause",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    ];

    fn core_document() -> Value {
        group_version(&core(), "", "v1").expect("core/v1 is served")
    }

    fn has_query_parameter(operation: &Value, name: &str) -> bool {
        operation["parameters"].as_array().into_iter().flatten().any(|p| p["name"] == name && p["in"] == "query")
    }

    /// Every `$ref` in `value` that does not name a schema of `document`.
    fn dangling_refs(document: &Value, value: &Value) -> Vec<String> {
        let mut refs = BTreeSet::new();
        collect_refs(value, &mut refs);
        refs.into_iter().filter(|name| document["components"]["schemas"].get(name).is_none()).collect()
    }

    #[test]
    fn embedded_files_parse() {
        for (file, text) in SCHEMA_FILES {
            let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("openapi/{file}: {e}"));
            assert!(value.is_object(), "openapi/{file} is an object of schemas");
        }
        let parameters: Value = serde_json::from_str(PARAMETERS_FILE).unwrap();
        for name in
            [LIST_PARAMETERS, WRITE_PARAMETERS, PATCH_PARAMETERS, DELETE_PARAMETERS, DELETE_COLLECTION_PARAMETERS]
                .concat()
                .into_iter()
                .chain(["pretty", "namespace"])
        {
            assert!(parameters.get(name).is_some(), "openapi/parameters.json has {name}");
        }
    }

    #[test]
    fn embedded_schemas_are_closed() {
        let mut refs = BTreeSet::new();
        for schema in SCHEMAS.by_name.values() {
            collect_refs(schema, &mut refs);
        }
        let missing: Vec<&String> = refs.iter().filter(|name| !SCHEMAS.by_name.contains_key(*name)).collect();
        assert!(missing.is_empty(), "referenced but not embedded: {missing:?}");
    }

    #[test]
    fn patch_on_a_secret_lists_field_validation_for_kubectl() {
        let document = core_document();
        let patch = &document["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Secret"}));
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(patch["operationId"], "patchCoreV1NamespacedSecret");
        // kubectl reads the operation's own parameters, not the path's.
        for name in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(has_query_parameter(patch, name), "PATCH lists {name}: {patch}");
        }
        let content = patch["requestBody"]["content"].as_object().unwrap();
        for media_type in PATCH_TYPES {
            assert_eq!(content[*media_type]["schema"], schema_ref(PATCH));
        }

        let namespace_patch = &document["paths"]["/api/v1/namespaces/{name}"]["patch"];
        assert_eq!(
            namespace_patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Namespace"})
        );
        assert!(has_query_parameter(namespace_patch, "fieldValidation"));
    }

    #[test]
    fn writes_list_field_validation_dry_run_and_field_manager() {
        let document = core_document();
        for (path, method) in [
            ("/api/v1/namespaces/{namespace}/secrets", "post"),
            ("/api/v1/namespaces/{namespace}/secrets/{name}", "put"),
            ("/api/v1/namespaces", "post"),
            ("/api/v1/namespaces/{name}", "put"),
        ] {
            let operation = &document["paths"][path][method];
            for name in ["fieldValidation", "dryRun", "fieldManager"] {
                assert!(has_query_parameter(operation, name), "{method} {path} lists {name}");
            }
        }
    }

    #[test]
    fn secret_paths_match_kube_apiserver() {
        let document = core_document();
        let paths = document["paths"].as_object().unwrap();
        let names: Vec<&String> = paths.keys().collect();
        assert_eq!(
            names,
            [
                "/api/v1/namespaces",
                "/api/v1/namespaces/{namespace}/secrets",
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                "/api/v1/namespaces/{name}",
                "/api/v1/secrets",
            ]
        );
        let ids = |path: &str| -> Vec<(String, String)> {
            paths[path]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(method, _)| *method != "parameters")
                .map(|(method, op)| (method.clone(), op["operationId"].as_str().unwrap().to_string()))
                .collect()
        };
        // Operation ids as in Kubernetes 1.32's api__v1_openapi.json.
        assert_eq!(
            ids("/api/v1/namespaces/{namespace}/secrets"),
            [
                ("delete".to_string(), "deleteCoreV1CollectionNamespacedSecret".to_string()),
                ("get".to_string(), "listCoreV1NamespacedSecret".to_string()),
                ("post".to_string(), "createCoreV1NamespacedSecret".to_string()),
            ]
        );
        assert_eq!(
            ids("/api/v1/namespaces/{namespace}/secrets/{name}"),
            [
                ("delete".to_string(), "deleteCoreV1NamespacedSecret".to_string()),
                ("get".to_string(), "readCoreV1NamespacedSecret".to_string()),
                ("patch".to_string(), "patchCoreV1NamespacedSecret".to_string()),
                ("put".to_string(), "replaceCoreV1NamespacedSecret".to_string()),
            ]
        );
        assert_eq!(ids("/api/v1/secrets"), [("get".to_string(), "listCoreV1SecretForAllNamespaces".to_string())]);
        // Namespaces have no deletecollection.
        assert_eq!(
            ids("/api/v1/namespaces"),
            [
                ("get".to_string(), "listCoreV1Namespace".to_string()),
                ("post".to_string(), "createCoreV1Namespace".to_string())
            ]
        );

        let item = &paths["/api/v1/namespaces/{namespace}/secrets/{name}"];
        let path_parameters: Vec<&Value> = item["parameters"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
        assert_eq!(path_parameters, ["name", "namespace", "pretty"]);
        assert_eq!(item["parameters"][0]["description"], "name of the Secret");
        assert!(item["get"].get("parameters").is_none(), "get has no parameters of its own");
        assert_eq!(item["get"]["description"], "read the specified Secret");
        assert_eq!(item["get"]["tags"], json!(["core_v1"]));
        assert_eq!(
            item["get"]["responses"]["200"]["content"]["application/json"]["schema"],
            schema_ref("io.k8s.api.core.v1.Secret")
        );
        assert_eq!(item["delete"]["responses"]["202"]["content"]["application/json"]["schema"], schema_ref(STATUS));

        let list = &paths["/api/v1/namespaces/{namespace}/secrets"]["get"];
        for name in ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"] {
            assert!(has_query_parameter(list, name), "list lists {name}");
        }
        assert_eq!(
            list["responses"]["200"]["content"]["application/json"]["schema"],
            schema_ref("io.k8s.api.core.v1.SecretList")
        );
        assert!(list["responses"]["200"]["content"].get("application/json;stream=watch").is_some());

        // With one operation, every parameter is the path's.
        let all = &paths["/api/v1/secrets"];
        assert!(all["get"].get("parameters").is_none());
        assert!(has_query_parameter(all, "labelSelector"));
    }

    #[test]
    fn core_document_serves_events_as_kube_apiserver_does() {
        let document = group_version(&served(), "", "v1").unwrap();
        let paths = &document["paths"];
        let ids = |path: &str| -> Vec<(String, String)> {
            paths[path]
                .as_object()
                .unwrap_or_else(|| panic!("{path} is served"))
                .iter()
                .filter(|(method, _)| *method != "parameters")
                .map(|(method, op)| (method.clone(), op["operationId"].as_str().unwrap().to_string()))
                .collect()
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(m, id)| (m.to_string(), id.to_string())).collect()
        };
        // Operation ids as in Kubernetes 1.32's api__v1_openapi.json.
        assert_eq!(ids("/api/v1/events"), pairs(&[("get", "listCoreV1EventForAllNamespaces")]));
        assert_eq!(
            ids("/api/v1/namespaces/{namespace}/events"),
            pairs(&[
                ("delete", "deleteCoreV1CollectionNamespacedEvent"),
                ("get", "listCoreV1NamespacedEvent"),
                ("post", "createCoreV1NamespacedEvent"),
            ])
        );
        assert_eq!(
            ids("/api/v1/namespaces/{namespace}/events/{name}"),
            pairs(&[
                ("delete", "deleteCoreV1NamespacedEvent"),
                ("get", "readCoreV1NamespacedEvent"),
                ("patch", "patchCoreV1NamespacedEvent"),
                ("put", "replaceCoreV1NamespacedEvent"),
            ])
        );
        let patch = &paths["/api/v1/namespaces/{namespace}/events/{name}"]["patch"];
        assert!(has_query_parameter(patch, "fieldValidation"), "kubectl apply leaves validation to the server");
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Event"}));
        let schemas = &document["components"]["schemas"];
        for name in [
            "io.k8s.api.core.v1.Event",
            "io.k8s.api.core.v1.EventList",
            "io.k8s.api.core.v1.EventSeries",
            "io.k8s.api.core.v1.EventSource",
            "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        ] {
            assert!(schemas.get(name).is_some(), "{name}");
        }
        assert_eq!(
            schemas["io.k8s.api.core.v1.Event"]["properties"]["involvedObject"]["description"],
            "The object that this event is about."
        );
        assert!(dangling_refs(&document, &document).is_empty());
    }

    #[test]
    fn explain_finds_gvks_and_their_schemas() {
        let document = core_document();
        for (path, kind) in [("/api/v1/secrets", "Secret"), ("/api/v1/namespaces", "Namespace")] {
            assert_eq!(
                document["paths"][path]["get"]["x-kubernetes-group-version-kind"],
                json!({"group": "", "version": "v1", "kind": kind})
            );
        }
        let schemas = &document["components"]["schemas"];
        for (name, kind) in [
            ("io.k8s.api.core.v1.Secret", "Secret"),
            ("io.k8s.api.core.v1.SecretList", "SecretList"),
            ("io.k8s.api.core.v1.Namespace", "Namespace"),
            ("io.k8s.api.core.v1.NamespaceList", "NamespaceList"),
        ] {
            assert_eq!(
                schemas[name]["x-kubernetes-group-version-kind"],
                json!([{"group": "", "kind": kind, "version": "v1"}])
            );
        }
        let secret = &schemas["io.k8s.api.core.v1.Secret"];
        assert_eq!(secret["properties"]["data"]["additionalProperties"], json!({"format": "byte", "type": "string"}));
        assert_eq!(
            secret["properties"]["metadata"]["allOf"],
            json!([schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")])
        );
        assert!(secret["description"].as_str().unwrap().starts_with("Secret holds secret data of a certain type."));
    }

    #[test]
    fn document_has_the_required_schemas_and_is_closed() {
        let document = core_document();
        assert_eq!(document["openapi"], "3.0.0");
        for name in REQUIRED_SCHEMAS {
            assert!(document["components"]["schemas"].get(*name).is_some(), "components.schemas has {name}");
        }
        let dangling = dangling_refs(&document, &document);
        assert!(dangling.is_empty(), "every $ref resolves: {dangling:?}");
    }

    #[test]
    fn other_groups_get_their_own_closed_documents() {
        let document = group_version(&all(), "authorization.k8s.io", "v1").unwrap();
        let post = &document["paths"]["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]["post"];
        assert_eq!(post["operationId"], "createAuthorizationV1SelfSubjectAccessReview");
        assert_eq!(post["tags"], json!(["authorization_v1"]));
        assert_eq!(document["paths"].as_object().unwrap().len(), 1, "a create-only kind has one path");
        assert!(dangling_refs(&document, &document).is_empty());

        let roles = group_version(&all(), "rbac.authorization.k8s.io", "v1").unwrap();
        let patch = &roles["paths"]["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchRbacAuthorizationV1NamespacedRole");
        assert_eq!(patch["tags"], json!(["rbacAuthorization_v1"]));
        assert!(dangling_refs(&roles, &roles).is_empty());

        assert_eq!(group_version(&all(), "apps", "v1"), None);
    }

    #[test]
    fn kinds_without_schema_names_the_kinds_explain_cannot_describe() {
        assert!(kinds_without_schema(&core()).is_empty());
        assert!(kinds_without_schema(&served()).is_empty(), "{:?}", kinds_without_schema(&served()));
        let widgets = ResourceInfo { group: "example.com", kind: "Widget", list_kind: "WidgetList", ..SECRETS };
        assert_eq!(kinds_without_schema(&[&widgets]), ["example.com/v1/Widget", "example.com/v1/WidgetList"]);
    }

    #[test]
    fn every_served_group_version_has_a_closed_document() {
        let served = served();
        let index = root(&served);
        let keys: Vec<&String> = index["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "api/v1",
                "apis/authentication.k8s.io/v1",
                "apis/authorization.k8s.io/v1",
                "apis/rbac.authorization.k8s.io/v1"
            ]
        );
        for key in keys {
            let (group, version) = match key.split('/').collect::<Vec<_>>()[..] {
                ["api", v] => ("", v),
                [_, g, v] => (g, v),
                _ => unreachable!("{key}"),
            };
            let document = group_version(&served, group, version).unwrap();
            assert!(dangling_refs(&document, &document).is_empty(), "{key}: {:?}", dangling_refs(&document, &document));
        }
    }

    /// Operation ids and paths as in Kubernetes 1.32's OpenAPI v3 documents (compared in full
    /// against kubectl-validate's copies when the kinds were added).
    #[test]
    fn rbac_and_review_paths_match_kube_apiserver() {
        let served = served();
        let rbac = group_version(&served, "rbac.authorization.k8s.io", "v1").unwrap();
        let paths = rbac["paths"].as_object().unwrap();
        // Collection and object paths of the four kinds, and the two cross-namespace lists.
        assert_eq!(paths.len(), 10, "{:?}", paths.keys().collect::<Vec<_>>());
        let op = |path: &str, method: &str| paths[path][method]["operationId"].as_str().unwrap().to_string();
        assert_eq!(op("/apis/rbac.authorization.k8s.io/v1/clusterroles", "get"), "listRbacAuthorizationV1ClusterRole");
        assert_eq!(
            op("/apis/rbac.authorization.k8s.io/v1/rolebindings", "get"),
            "listRbacAuthorizationV1RoleBindingForAllNamespaces"
        );
        assert_eq!(
            op("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", "delete"),
            "deleteRbacAuthorizationV1CollectionNamespacedRole"
        );
        assert_eq!(
            op("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}", "put"),
            "replaceRbacAuthorizationV1ClusterRoleBinding"
        );
        let patch = &paths["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}"]["patch"];
        assert!(has_query_parameter(patch, "fieldValidation"), "kubectl leaves validation to the server");
        let schemas = &rbac["components"]["schemas"];
        for name in ["io.k8s.api.rbac.v1.Role", "io.k8s.api.rbac.v1.PolicyRule", "io.k8s.api.rbac.v1.AggregationRule"] {
            assert!(schemas.get(name).is_some(), "{name}");
        }
        assert!(
            schemas["io.k8s.api.rbac.v1.Role"]["properties"]["rules"]["description"]
                .as_str()
                .unwrap()
                .starts_with("Rules holds all the PolicyRules for this Role")
        );

        let authn = group_version(&served, "authentication.k8s.io", "v1").unwrap();
        let ids: Vec<&Value> =
            authn["paths"].as_object().unwrap().values().map(|p| &p["post"]["operationId"]).collect();
        assert_eq!(ids, ["createAuthenticationV1SelfSubjectReview", "createAuthenticationV1TokenReview"]);
        let authz = group_version(&served, "authorization.k8s.io", "v1").unwrap();
        let paths: Vec<(&String, &Value)> =
            authz["paths"].as_object().unwrap().iter().map(|(k, v)| (k, &v["post"]["operationId"])).collect();
        assert_eq!(
            paths,
            [
                (
                    &"/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews".to_string(),
                    &json!("createAuthorizationV1NamespacedLocalSubjectAccessReview")
                ),
                (
                    &"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews".to_string(),
                    &json!("createAuthorizationV1SelfSubjectAccessReview")
                ),
                (
                    &"/apis/authorization.k8s.io/v1/selfsubjectrulesreviews".to_string(),
                    &json!("createAuthorizationV1SelfSubjectRulesReview")
                ),
                (
                    &"/apis/authorization.k8s.io/v1/subjectaccessreviews".to_string(),
                    &json!("createAuthorizationV1SubjectAccessReview")
                ),
            ]
        );
    }

    #[test]
    fn core_document_serves_service_accounts_and_their_token_subresource() {
        let document = group_version(&served(), "", "v1").unwrap();
        let paths = &document["paths"];
        let token = &paths["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"];
        assert_eq!(token["operationId"], "createCoreV1NamespacedServiceAccountToken");
        assert_eq!(
            token["requestBody"]["content"]["*/*"]["schema"],
            schema_ref("io.k8s.api.authentication.v1.TokenRequest")
        );
        assert_eq!(paths["/api/v1/serviceaccounts"]["get"]["operationId"], "listCoreV1ServiceAccountForAllNamespaces");
        let schemas = &document["components"]["schemas"];
        for name in [
            "io.k8s.api.core.v1.ServiceAccount",
            "io.k8s.api.core.v1.ServiceAccountList",
            "io.k8s.api.core.v1.ObjectReference",
            "io.k8s.api.core.v1.LocalObjectReference",
            "io.k8s.api.authentication.v1.TokenRequest",
            "io.k8s.api.authentication.v1.BoundObjectReference",
        ] {
            assert!(schemas.get(name).is_some(), "{name}");
        }
        // A document carries only what its paths reference.
        assert!(schemas.get("io.k8s.api.rbac.v1.Role").is_none());
    }

    #[test]
    fn subresource_paths_use_the_subresource_kind() {
        let mut paths = BTreeMap::new();
        resource_paths(&mut paths, &SERVICE_ACCOUNTS, &[TOKEN]);
        let item = &paths["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"];
        let post = &item["post"];
        // As in Kubernetes 1.32's api__v1_openapi.json.
        assert_eq!(post["operationId"], "createCoreV1NamespacedServiceAccountToken");
        assert_eq!(post["description"], "create token of a ServiceAccount");
        assert_eq!(
            post["x-kubernetes-group-version-kind"],
            json!({"group": "authentication.k8s.io", "kind": "TokenRequest", "version": "v1"})
        );
        let parameters: Vec<&Value> = item["parameters"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
        assert_eq!(parameters, ["dryRun", "fieldManager", "fieldValidation", "name", "namespace", "pretty"]);
        assert_eq!(item["parameters"][3]["description"], "name of the TokenRequest");
    }

    #[test]
    fn root_lists_each_group_version_with_its_hash() {
        let index = root(&all());
        let core_hash = hash(&core_document());
        assert_eq!(index["paths"]["api/v1"]["serverRelativeURL"], format!("/openapi/v3/api/v1?hash={core_hash}"));
        assert!(
            index["paths"]["apis/rbac.authorization.k8s.io/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/rbac.authorization.k8s.io/v1?hash=")
        );
        assert_eq!(index["paths"].as_object().unwrap().len(), 3);
        assert_eq!(root(&served())["paths"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn hash_is_stable_and_follows_the_document() {
        let hash_of = |resources: &[&ResourceInfo]| hash(&group_version(resources, "", "v1").unwrap());
        let before = hash_of(&core());
        assert_eq!(before, hash_of(&core()), "the same resources give the same hash");
        assert_eq!(before.len(), 128);
        assert!(before.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_ne!(before, hash_of(&[&SECRETS]), "a change to the document changes the hash");
    }

    #[test]
    fn document_paths_name_the_group_version() {
        assert_eq!(document_path("", "v1"), "api/v1");
        assert_eq!(document_path("rbac.authorization.k8s.io", "v1"), "apis/rbac.authorization.k8s.io/v1");
    }
}
