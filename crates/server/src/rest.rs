//! The REST verbs over the store, as kube-apiserver's generic registry
//! (`registry/generic/registry/store.go`) and handlers (`endpoints/handlers/`) implement them:
//! create, get, list, watch, update, patch, delete, deletecollection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use rand::Rng;
use serde_json::{Map, Value, json};
use strongroom_api::selector::{FieldSelector, LabelSelector};
use strongroom_api::{managed_fields, patch};
use strongroom_storage::StoreError;
use strongroom_storage::backend::ObjectKey;
use strongroom_storage::cache::{CachedObject, WatchStart};

use crate::ApiServer;
use crate::codec::{self, IncludeObject, Output, Resp};
use crate::object::ServedObject;
use crate::registry::{Strategy, namespace};
use crate::request::{FieldValidation, Query, RequestInfo};
use crate::status::ApiError;
use crate::{table, watch};

/// Everything a handler needs about one resource request.
pub struct Ctx<'a> {
    pub server: &'a Arc<ApiServer>,
    pub info: &'a RequestInfo,
    pub strategy: &'a dyn Strategy,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    /// Who the request runs as (after impersonation).
    pub user: &'a crate::authn::UserInfo,
}

type Cached = Arc<CachedObject<ServedObject>>;

/// How long a list or watch waits for the cache to reach a requested resourceVersion.
const RESOURCE_VERSION_WAIT: Duration = Duration::from_secs(3);
const MAX_UPDATE_ATTEMPTS: usize = 16;
/// Characters of generated name suffixes (apiserver `names.SimpleNameGenerator`).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Ctx<'_> {
    fn kind(&self) -> &'static str {
        self.strategy.info().kind
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.strategy.info().qualified(), name)
    }

    fn key(&self, namespace: Option<&str>, name: &str) -> Option<ObjectKey> {
        let plural = self.strategy.info().plural;
        if self.strategy.info().namespaced {
            ObjectKey::namespaced(plural, namespace?, name).ok()
        } else {
            ObjectKey::cluster(plural, name).ok()
        }
    }

    fn field_manager(&self) -> Result<String, ApiError> {
        match self.query.get("fieldManager") {
            Some(m) if m.len() > 128 => {
                Err(ApiError::bad_request("fieldManager: Too long: may not be more than 128 bytes".to_string()))
            }
            Some(m) if m.chars().any(|c| c.is_control()) => {
                Err(ApiError::bad_request("fieldManager: Invalid value: may only contain printable characters"))
            }
            Some(m) if !m.is_empty() => Ok(m.to_string()),
            _ => {
                // Kubernetes derives a manager from the User-Agent's program name.
                let ua = self.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
                Ok(ua.split('/').next().unwrap_or("unknown").chars().take(128).collect())
            }
        }
    }

    fn get_cached(&self, name: &str) -> Result<Cached, ApiError> {
        let key = self.key(self.info.namespace.as_deref(), name).ok_or_else(|| self.not_found(name))?;
        self.server.store.cache().get(&key).ok_or_else(|| self.not_found(name))
    }
}

/// The served object, or the error Kubernetes gives for an object it cannot decrypt or decode.
pub fn served(obj: &CachedObject<ServedObject>) -> Result<&ServedObject, ApiError> {
    obj.body.as_ref().map_err(|_| {
        ApiError::internal(format!("the object stored at {} is corrupt: it cannot be decrypted or decoded", obj.key))
    })
}

fn store_error(ctx: &Ctx<'_>, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists { .. } => ApiError::already_exists(ctx.strategy.info().qualified(), name),
        StoreError::NotFound { .. } => ctx.not_found(name),
        StoreError::Conflict { .. } => ApiError::modified(ctx.strategy.info().qualified(), name),
        StoreError::Backend(strongroom_storage::backend::BackendError::Unavailable(m)) => {
            ApiError::unavailable(format!("storage is unavailable: {m}"))
        }
        StoreError::CacheTimeout { .. } => ApiError::timeout(format!("{e}")),
        other => {
            tracing::error!(error = %other, "storage error");
            ApiError::internal(format!("storage error: {other}"))
        }
    }
}

fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    obj.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

/// Checks `apiVersion`/`kind` of a body (filling them when absent), runs the kind's strict
/// decoding and applies `fieldValidation` to the unknown fields it found.
fn admit_body(ctx: &Ctx<'_>, mut obj: Value, warnings: &mut Vec<String>) -> Result<Value, ApiError> {
    let info = ctx.strategy.info();
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "{0} in version \"{1}\" cannot be handled as a {0}: the body is not a JSON object",
            info.kind, info.version
        )));
    };
    let want_version = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), want_version.clone().into());
        }
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), info.kind.into());
        }
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    let validation = FieldValidation::from_query(ctx.query)?;
    let (normalized, unknown) = ctx.strategy.normalize(obj)?;
    if !unknown.is_empty() {
        match validation {
            FieldValidation::Strict => {
                let list = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ");
                return Err(ApiError::bad_request(format!(
                    "{0} in version \"{1}\" cannot be handled as a {0}: strict decoding error: {list}",
                    info.kind, info.version
                )));
            }
            FieldValidation::Warn => warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\""))),
            FieldValidation::Ignore => {}
        }
    }
    Ok(normalized)
}

/// Fields only the server sets; a client's values are dropped on create.
fn clear_system_fields(meta: &mut Map<String, Value>) {
    for f in
        ["resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "uid", "creationTimestamp"]
    {
        meta.remove(f);
    }
}

fn generate_name(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let base: String = prefix.chars().take(63 - 5).collect();
    let suffix: String = (0..5).map(|_| NAME_ALPHABET[rng.gen_range(0..NAME_ALPHABET.len())] as char).collect();
    format!("{base}{suffix}")
}

fn check_namespace_accepts(ctx: &Ctx<'_>, namespace: &str, name: &str) -> Result<(), ApiError> {
    let key = ObjectKey::cluster("namespaces", namespace)
        .map_err(|_| ApiError::not_found(namespace::INFO.qualified(), namespace))?;
    let ns = ctx
        .server
        .store
        .cache()
        .get(&key)
        .ok_or_else(|| ApiError::not_found(namespace::INFO.qualified(), namespace))?;
    if served(&ns)?.deleting {
        let res = ctx.strategy.info().qualified();
        return Err(ApiError::forbidden(format!(
            "{res} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
        )));
    }
    Ok(())
}

fn encode(obj: &Value) -> Vec<u8> {
    serde_json::to_vec(obj).expect("a JSON value always encodes")
}

/// Serializes a not-stored object for a dry-run answer.
fn dry_run_response(code: StatusCode, obj: &Value, warnings: &[String]) -> Resp {
    let mut r = codec::value_response(code, obj);
    codec::add_warnings(&mut r, warnings);
    r
}

fn object_response(code: StatusCode, obj: &CachedObject<ServedObject>, warnings: &[String]) -> Result<Resp, ApiError> {
    let s = served(obj)?;
    let mut r = codec::json_response(code, Bytes::copy_from_slice(s.json.expose()));
    codec::add_warnings(&mut r, warnings);
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// create

pub async fn create(ctx: &Ctx<'_>, body: Bytes) -> Result<Resp, ApiError> {
    let mut warnings = Vec::new();
    let obj = codec::decode_object(ctx.headers, &body)?;
    let obj = admit_body(ctx, obj, &mut warnings)?;
    create_object(ctx, obj, None, warnings).await
}

/// The create path shared by POST and by server-side apply of a missing object (which brings
/// its own managedFields).
async fn create_object(
    ctx: &Ctx<'_>,
    mut obj: Value,
    applied_managed_fields: Option<Value>,
    warnings: Vec<String>,
) -> Result<Resp, ApiError> {
    let info = ctx.strategy.info();
    let dry_run = ctx.query.dry_run()?;
    let manager = ctx.field_manager()?;
    {
        let meta = metadata_mut(&mut obj);
        clear_system_fields(meta);
        if info.namespaced {
            let url_ns = ctx.info.namespace.clone().unwrap_or_default();
            match meta.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("namespace".into(), url_ns.into());
                }
                Some(ns) if ns == url_ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        } else {
            meta.remove("namespace");
        }
    }
    let generate = meta_str(&obj, "name").is_none() && meta_str(&obj, "generateName").is_some();
    let attempts = if generate { 8 } else { 1 };
    ctx.strategy.prepare_for_create(&mut obj);
    let now = now_rfc3339();
    for attempt in 0..attempts {
        if generate {
            let prefix = meta_str(&obj, "generateName").unwrap_or_default().to_string();
            metadata_mut(&mut obj).insert("name".into(), generate_name(&prefix).into());
        }
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        {
            let meta = metadata_mut(&mut obj);
            meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
            meta.insert("creationTimestamp".into(), now.clone().into());
        }
        let errs = ctx.strategy.validate(&obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(info.kind, info.group, &name, &errs));
        }
        crate::authz::admit_rbac_write(ctx.server, ctx.user, (info.plural, ctx.info.name.as_deref()), &obj, None)?;
        match &applied_managed_fields {
            Some(mf) => {
                metadata_mut(&mut obj).insert("managedFields".into(), mf.clone());
            }
            None => {
                metadata_mut(&mut obj).remove("managedFields");
                managed_fields::update_with_schema(
                    None,
                    &mut obj,
                    &manager,
                    &info.api_version(),
                    &now,
                    ctx.strategy.strategic_schema(),
                );
            }
        }
        let namespace = meta_str(&obj, "namespace").map(str::to_string);
        if let Some(ns) = namespace.as_deref().filter(|_| info.namespaced) {
            check_namespace_accepts(ctx, ns, &name)?;
        }
        let key = ctx
            .key(namespace.as_deref(), &name)
            .ok_or_else(|| ApiError::bad_request(format!("invalid name {name:?}")))?;
        if dry_run {
            if ctx.server.store.cache().get(&key).is_some() {
                return Err(ApiError::already_exists(info.qualified(), &name));
            }
            return Ok(dry_run_response(StatusCode::CREATED, &obj, &warnings));
        }
        match ctx.server.store.create(&key, &encode(&obj)).await {
            Ok(created) => {
                tracing::debug!(kind = info.kind, namespace = ?namespace, %name, revision = created.revision, "created");
                // The namespace may have started terminating between the check and the commit;
                // then this object must not outlive it (the finalizer rescans too).
                if let Some(ns) = namespace.as_deref().filter(|_| info.namespaced)
                    && let Err(e) = check_namespace_accepts(ctx, ns, &name)
                {
                    let _ = ctx.server.store.delete(&key, Some(created.revision)).await;
                    return Err(e);
                }
                return object_response(StatusCode::CREATED, &created, &warnings);
            }
            Err(StoreError::AlreadyExists { .. }) if generate && attempt + 1 < attempts => continue,
            Err(e) => return Err(store_error(ctx, &name, e)),
        }
    }
    unreachable!("the loop returns on its last attempt")
}

// ---------------------------------------------------------------------------------------------
// get, list

pub async fn get(ctx: &Ctx<'_>, name: &str) -> Result<Resp, ApiError> {
    let output = codec::negotiate(
        ctx.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
        IncludeObject::from_query(ctx.query.get("includeObject"))?,
    )?;
    let obj = ctx.get_cached(name)?;
    match output {
        Output::Json => object_response(StatusCode::OK, &obj, &[]),
        Output::Metadata => Ok(codec::json_response(StatusCode::OK, served(&obj)?.partial_metadata_json())),
        Output::Table(include) => {
            let s = served(&obj)?;
            let t = table::render(ctx.strategy, &[s], include, None, None);
            Ok(codec::json_response(StatusCode::OK, t))
        }
    }
}

/// Parsed list/watch filters.
pub struct Filter {
    pub label: LabelSelector,
    pub field: FieldSelector,
}

impl Filter {
    pub fn from_query(ctx: &Ctx<'_>) -> Result<Self, ApiError> {
        let label = LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let field = FieldSelector::parse(ctx.query.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        field
            .check_supported(ctx.strategy.info().selectable_fields)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Filter { label, field })
    }

    pub fn matches(&self, obj: &ServedObject) -> bool {
        self.label.matches(&obj.labels) && self.field.matches(|f| obj.field(f))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn encode_continue(key: &[u8; 32], rv: u64, last_key: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload =
        serde_json::to_vec(&ContinueToken { v: "meta.k8s.io/v1".into(), rv, start: format!("{last_key}\u{0}") })
            .expect("token encodes");
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(&payload);
    format!("{}.{}", b64.encode(&payload), b64.encode(mac.finalize().into_bytes()))
}

fn decode_continue(key: &[u8; 32], token: &str, prefix: &str) -> Result<(u64, String), ApiError> {
    use base64::Engine;
    use hmac::Mac;
    let invalid =
        || ApiError::bad_request("continue key is not valid: the token was not issued by this server or was altered");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (p, m) = token.split_once('.').ok_or_else(invalid)?;
    let payload = b64.decode(p).map_err(|_| invalid())?;
    let tag = b64.decode(m).map_err(|_| invalid())?;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(&payload);
    mac.verify_slice(&tag).map_err(|_| invalid())?;
    let t: ContinueToken = serde_json::from_slice(&payload).map_err(|_| invalid())?;
    if !t.start.starts_with(prefix) {
        return Err(ApiError::bad_request("continue key is not valid: it belongs to a different list"));
    }
    Ok((t.rv, t.start))
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// What a list, watch or deletecollection addresses: the response form, the selectors and the key
/// prefix of the resource (within one namespace, or all of them).
fn collection(ctx: &Ctx<'_>) -> Result<(Output, Filter, String), ApiError> {
    let output = codec::negotiate(
        ctx.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
        IncludeObject::from_query(ctx.query.get("includeObject"))?,
    )?;
    let filter = Filter::from_query(ctx)?;
    let namespace = ctx.info.namespace.as_deref();
    let prefix = ObjectKey::prefix(ctx.strategy.info().plural, namespace)
        .map_err(|_| ApiError::not_found(namespace::INFO.qualified(), namespace.unwrap_or("")))?;
    Ok((output, filter, prefix))
}

pub async fn list(ctx: &Ctx<'_>) -> Result<Resp, ApiError> {
    let (output, filter, prefix) = collection(ctx)?;
    let info = ctx.strategy.info();
    let limit = match ctx.query.get("limit") {
        None | Some("") => 0usize,
        Some(l) => l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.max(0) as usize,
    };
    let cache = ctx.server.store.cache();
    let (snapshot, start) = match ctx.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, start) = decode_continue(&ctx.server.continue_key, token, &prefix)?;
            let snap = cache.snapshot_at(rv).ok_or_else(|| {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            })?;
            (snap, Some(start))
        }
        None => {
            let rv = ctx.query.get("resourceVersion").filter(|s| !s.is_empty() && *s != "0");
            let exact = ctx.query.get("resourceVersionMatch") == Some("Exact");
            if let Some(rv) = rv {
                let rv = parse_rv(rv)?;
                if rv > cache.revision() && !cache.wait_for(rv, RESOURCE_VERSION_WAIT).await {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {rv}, current: {}",
                        cache.revision()
                    )));
                }
                let snap = cache.snapshot();
                if exact && snap.revision != rv {
                    return Err(ApiError::expired(format!("too old resource version: {rv} ({})", snap.revision)));
                }
                (snap, None)
            } else {
                (cache.snapshot(), None)
            }
        }
    };
    let mut items: Vec<&ServedObject> = Vec::new();
    let mut last_key = None;
    let mut more = false;
    let mut remaining = 0u64;
    for (key, obj) in snapshot.under(&prefix, start.as_deref()) {
        if more {
            remaining += 1;
            continue;
        }
        let s = served(obj)?;
        if !filter.matches(s) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            more = true;
            remaining = 1;
            continue;
        }
        last_key = Some(key.as_str().to_string());
        items.push(s);
    }
    let continue_token = if more {
        cache.retain_snapshot(&snapshot);
        last_key.as_deref().map(|k| encode_continue(&ctx.server.continue_key, snapshot.revision, k))
    } else {
        None
    };
    // remainingItemCount is exact only without selectors, as in Kubernetes.
    let remaining = (more && filter.label.is_empty() && filter.field.is_empty()).then_some(remaining);
    let rv = snapshot.revision.to_string();
    let body = match output {
        Output::Table(include) => table::render(ctx.strategy, &items, include, Some(&rv), continue_token.as_deref()),
        Output::Json => {
            list_json(info.list_kind, &info.api_version(), &rv, continue_token.as_deref(), remaining, &items)
        }
        Output::Metadata => {
            let metas: Vec<String> = items.iter().map(|i| i.partial_metadata_json()).collect();
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = &continue_token {
                meta["continue"] = c.as_str().into();
            }
            format!(
                r#"{{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{meta},"items":[{}]}}"#,
                metas.join(",")
            )
            .into_bytes()
        }
    };
    Ok(codec::json_response(StatusCode::OK, body))
}

pub fn list_json(
    list_kind: &str,
    api_version: &str,
    rv: &str,
    continue_token: Option<&str>,
    remaining: Option<u64>,
    items: &[&ServedObject],
) -> Vec<u8> {
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = continue_token {
        meta["continue"] = c.into();
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = r.into();
    }
    let size: usize = items.iter().map(|i| i.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 128);
    out.extend_from_slice(
        format!("{{\"kind\":\"{list_kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":[")
            .as_bytes(),
    );
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item.json.expose());
    }
    out.extend_from_slice(b"]}");
    out
}

// ---------------------------------------------------------------------------------------------
// watch

pub async fn watch(ctx: &Ctx<'_>) -> Result<Resp, ApiError> {
    let (output, filter, mut prefix) = collection(ctx)?;
    // A watch on `/secrets/<name>` (deprecated form) watches one object.
    let mut name_filter = None;
    if let Some(name) = &ctx.info.name {
        name_filter = Some(name.clone());
        prefix.push_str(name);
    }
    let send_initial = ctx.query.flag("sendInitialEvents");
    let no_initial = ctx.query.get("sendInitialEvents") == Some("false");
    let start = match ctx.query.get("resourceVersion").filter(|s| !s.is_empty()) {
        // sendInitialEvents=false: only changes from now on.
        None | Some("0") if no_initial => WatchStart::After(ctx.server.store.cache().revision()),
        None | Some("0") => WatchStart::Now,
        Some(rv) if send_initial => {
            parse_rv(rv)?;
            WatchStart::Now
        }
        Some(rv) => WatchStart::After(parse_rv(rv)?),
    };
    let permit = ctx
        .server
        .watches
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::too_many_requests("Too many requests, please try again later."))?;
    let stream = ctx.server.store.cache().watch(&prefix, start).map_err(|e| ApiError::expired(e.to_string()))?;
    let timeout = match ctx.query.get("timeoutSeconds") {
        Some(t) if !t.is_empty() && t != "0" => Duration::from_secs(
            t.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        // Unset or 0: a random 30–60 minutes, as kube-apiserver spreads reconnects.
        _ => Duration::from_secs(1800 + rand::thread_rng().gen_range(0..1800)),
    };
    let opts = watch::Options {
        output,
        bookmarks: ctx.query.flag("allowWatchBookmarks"),
        send_initial_events_end: send_initial,
        timeout,
        name: name_filter,
    };
    Ok(watch::serve(ctx.server.clone(), ctx.strategy.info(), stream, filter, opts, permit))
}

// ---------------------------------------------------------------------------------------------
// update, patch

/// The preconditions and rules shared by PUT and PATCH: `new` replaces `cur` unless it is stale.
/// Returns `Ok(None)` when nothing changed (no write, same resourceVersion).
fn prepare_update(
    ctx: &Ctx<'_>,
    name: &str,
    mut new: Value,
    cur: &CachedObject<ServedObject>,
    manager: &str,
    track_update: bool,
) -> Result<(Value, bool), ApiError> {
    let info = ctx.strategy.info();
    let cur_value = served(cur)?.to_value();
    if let Some(rv) = meta_str(&new, "resourceVersion")
        && rv != cur.revision.to_string()
    {
        return Err(ApiError::modified(info.qualified(), name));
    }
    if let Some(uid) = meta_str(&new, "uid") {
        let cur_uid = meta_str(&cur_value, "uid").unwrap_or_default();
        if uid != cur_uid {
            return Err(ApiError::conflict(
                info.qualified(),
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {cur_uid}"),
            ));
        }
    }
    {
        let old_meta = cur_value.get("metadata").cloned().unwrap_or_default();
        let meta = metadata_mut(&mut new);
        for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        if info.namespaced {
            meta.insert("namespace".into(), old_meta.get("namespace").cloned().unwrap_or_default());
        }
        meta.remove("selfLink");
        // An update without managedFields keeps the existing ones (Kubernetes does the same).
        if meta.get("managedFields").is_none_or(|m| m.as_array().is_none_or(|a| a.is_empty())) {
            match old_meta.get("managedFields") {
                Some(mf) => meta.insert("managedFields".into(), mf.clone()),
                None => meta.remove("managedFields"),
            };
        }
        meta.insert("resourceVersion".into(), cur.revision.to_string().into());
    }
    ctx.strategy.prepare_for_update(&mut new, &cur_value);
    let errs = ctx.strategy.validate_update(&new, &cur_value);
    if !errs.is_empty() {
        return Err(ApiError::invalid(info.kind, info.group, name, &errs));
    }
    crate::authz::admit_rbac_write(
        ctx.server,
        ctx.user,
        (info.plural, ctx.info.name.as_deref()),
        &new,
        Some(&cur_value),
    )?;
    if track_update {
        managed_fields::update_with_schema(
            Some(&cur_value),
            &mut new,
            manager,
            &info.api_version(),
            &now_rfc3339(),
            ctx.strategy.strategic_schema(),
        );
    }
    let changed = new != cur_value;
    metadata_mut(&mut new).remove("resourceVersion");
    Ok((new, changed))
}

pub async fn update(ctx: &Ctx<'_>, name: &str, body: Bytes) -> Result<Resp, ApiError> {
    let mut warnings = Vec::new();
    let obj = codec::decode_object(ctx.headers, &body)?;
    let obj = admit_body(ctx, obj, &mut warnings)?;
    match meta_str(&obj, "name") {
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        None => {
            let errs = vec![strongroom_api::FieldError::required("metadata.name", "name or generateName is required")];
            return Err(ApiError::invalid(ctx.kind(), ctx.strategy.info().group, name, &errs));
        }
    }
    if ctx.strategy.info().namespaced
        && let Some(ns) = meta_str(&obj, "namespace")
        && Some(ns) != ctx.info.namespace.as_deref()
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let precondition = meta_str(&obj, "resourceVersion").is_some();
    let manager = ctx.field_manager()?;
    let dry_run = ctx.query.dry_run()?;
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let cur = match ctx.get_cached(name) {
            Ok(cur) => cur,
            // Kinds that allow it (RBAC's) are created by a PUT of a missing object, if the
            // user may also create them (kube-apiserver's update handler checks `create`).
            Err(_) if ctx.strategy.allow_create_on_update() && !precondition => {
                authorize_create(ctx, name)?;
                return create_object(ctx, obj, None, warnings).await;
            }
            Err(e) => return Err(e),
        };
        let (new, changed) = prepare_update(ctx, name, obj.clone(), &cur, &manager, true)?;
        if let Some(resp) = write_update(ctx, name, &cur, new, changed, dry_run, precondition, &warnings).await? {
            return Ok(resp);
        }
    }
    Err(ApiError::modified(ctx.strategy.info().qualified(), name))
}

/// A PUT or apply that finds nothing creates: the user must also be allowed to `create`
/// (kube-apiserver's update and patch handlers check it).
fn authorize_create(ctx: &Ctx<'_>, name: &str) -> Result<(), ApiError> {
    let mut attrs = crate::authz::Attrs::for_request(ctx.info, ctx.query);
    attrs.verb = "create".into();
    attrs.name = Some(name.to_string());
    let decision = crate::authz::authorize(ctx.server, ctx.user, &attrs);
    if decision.allowed { Ok(()) } else { Err(crate::authz::forbidden(ctx.user, &attrs, &decision.reason)) }
}

/// The end of every update and patch (`guaranteed_update`'s write step): nothing changed → the
/// current object, unwritten; dry run → the would-be object; otherwise write exactly `cur`'s
/// revision. `Ok(None)` means another writer won the race and the caller should re-read and
/// retry, unless the client itself gave a resourceVersion (then it is a 409).
#[allow(
    clippy::too_many_arguments,
    reason = "the shared tail of update and patch; each argument is one of their facts"
)]
async fn write_update(
    ctx: &Ctx<'_>,
    name: &str,
    cur: &CachedObject<ServedObject>,
    new: Value,
    changed: bool,
    dry_run: bool,
    precondition: bool,
    warnings: &[String],
) -> Result<Option<Resp>, ApiError> {
    if !changed {
        return object_response(StatusCode::OK, cur, warnings).map(Some);
    }
    if dry_run {
        return Ok(Some(dry_run_response(StatusCode::OK, &new, warnings)));
    }
    match ctx.server.store.update(&cur.key, &encode(&new), cur.revision).await {
        Ok(updated) => {
            tracing::debug!(kind = ctx.kind(), key = %cur.key, revision = updated.revision, "updated");
            object_response(StatusCode::OK, &updated, warnings).map(Some)
        }
        Err(StoreError::Conflict { current, .. }) if !precondition => {
            // Retry from a cache that has caught up with the winner.
            ctx.server.store.cache().wait_for(current, RESOURCE_VERSION_WAIT).await;
            Ok(None)
        }
        Err(e) => Err(store_error(ctx, name, e)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

pub async fn patch(ctx: &Ctx<'_>, name: &str, body: Bytes) -> Result<Resp, ApiError> {
    let ct = codec::media_type(ctx.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    let kind = match ct.as_str() {
        "application/merge-patch+json" => PatchType::Merge,
        "application/json-patch+json" => PatchType::Json,
        "application/strategic-merge-patch+json" => PatchType::Strategic,
        "application/apply-patch+yaml" | "application/apply-patch+json" | "application/apply-patch+cbor" => {
            PatchType::Apply
        }
        other => {
            return Err(ApiError::unsupported_media_type(other).with_message(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            )));
        }
    };
    let patch_doc = match kind {
        PatchType::Apply => codec::decode_json_or_yaml(&body)?,
        _ => strongroom_api::json::parse_json(&body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))?,
    };
    if kind == PatchType::Json {
        confine_values(ctx.strategy.info().kind, ctx.strategy.value_fields(), &patch_doc)?;
    }
    let manager = match (kind, ctx.query.get("fieldManager")) {
        (PatchType::Apply, None | Some("")) => {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
            ));
        }
        _ => ctx.field_manager()?,
    };
    let force = ctx.query.flag("force");
    if force && kind != PatchType::Apply {
        return Err(ApiError::bad_request("force: Invalid value: true: may not be specified for non-apply patch"));
    }
    let dry_run = ctx.query.dry_run()?;
    let info = ctx.strategy.info();
    let api_version = info.api_version();
    let mut warnings = Vec::new();
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let cur = match ctx.get_cached(name) {
            Ok(c) => c,
            Err(e) if kind == PatchType::Apply && e.code == StatusCode::NOT_FOUND => {
                // Server-side apply creates what is missing.
                let applied = admit_apply(ctx, name, patch_doc.clone(), &mut warnings)?;
                let now = now_rfc3339();
                let opts =
                    managed_fields::ApplyOptions { manager: &manager, force, api_version: &api_version, now: &now };
                let created = managed_fields::apply_with(
                    None,
                    &applied,
                    &opts,
                    ctx.strategy.strategic_schema(),
                    ctx.strategy.last_applied(),
                )
                .map_err(|e| apply_error(ctx, name, e))?;
                let mf = created.pointer("/metadata/managedFields").cloned();
                // The applied object goes through the kind's normalization (stringData folding,
                // defaults, strict decoding) like any other create.
                let created = admit_body(ctx, created, &mut warnings)?;
                // An apply that creates needs `create`, as kube-apiserver checks.
                authorize_create(ctx, name)?;
                return create_object(ctx, created, mf, warnings).await;
            }
            Err(e) => return Err(e),
        };
        let cur_value = served(&cur)?.to_value();
        let patched = match kind {
            PatchType::Merge => patch::merge_patch(&cur_value, &patch_doc).map_err(patch_error)?,
            PatchType::Json => patch::json_patch(&cur_value, &patch_doc, codec::MAX_BODY).map_err(patch_error)?,
            PatchType::Strategic => {
                patch::strategic_merge_patch(&cur_value, &patch_doc, ctx.strategy.strategic_schema())
                    .map_err(patch_error)?
            }
            PatchType::Apply => {
                let applied = admit_apply(ctx, name, patch_doc.clone(), &mut warnings)?;
                let now = now_rfc3339();
                let opts =
                    managed_fields::ApplyOptions { manager: &manager, force, api_version: &api_version, now: &now };
                managed_fields::apply_with(
                    Some(&cur_value),
                    &applied,
                    &opts,
                    ctx.strategy.strategic_schema(),
                    ctx.strategy.last_applied(),
                )
                .map_err(|e| apply_error(ctx, name, e))?
            }
        };
        if meta_str(&patched, "name") != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&patched, "name").unwrap_or_default()
            )));
        }
        let precondition = meta_str(&patched, "resourceVersion").is_some_and(|rv| rv != cur.revision.to_string());
        let mut round_warnings = warnings.clone();
        let patched = admit_body(ctx, patched, &mut round_warnings)?;
        let (new, changed) = prepare_update(ctx, name, patched, &cur, &manager, kind != PatchType::Apply)?;
        if let Some(resp) = write_update(ctx, name, &cur, new, changed, dry_run, precondition, &round_warnings).await? {
            return Ok(resp);
        }
    }
    Err(ApiError::modified(info.qualified(), name))
}

/// Refuses a JSON patch that would carry a secret value out of the fields that hold values:
/// a `move` or `copy` from inside `data`/`stringData` (or from a parent of them, such as the
/// whole object) to anywhere else. Everything after the patch (name, kind and immutability
/// checks, validation) may quote the fields it checks in its error; with values confined to
/// their own fields, no error can carry one. Moving a key within `data` still works.
fn confine_values(kind: &str, value_fields: &[&str], patch_doc: &Value) -> Result<(), ApiError> {
    if value_fields.is_empty() {
        return Ok(());
    }
    // A pointer's top-level field and depth, read as json_patch resolves pointers (the first
    // segment is dropped whatever it is, as in evanphx/json-patch): `None` for the document.
    let resolve = |p: &str| -> (Option<String>, usize) {
        let segs: Vec<String> = p.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        (segs.first().cloned(), segs.len())
    };
    let holds_values = |field: &Option<String>| field.as_deref().is_some_and(|f| value_fields.contains(&f));
    for op in patch_doc.as_array().into_iter().flatten() {
        if !matches!(op.get("op").and_then(Value::as_str), Some("move" | "copy")) {
            continue;
        }
        let (Some(from), Some(path)) = (op.get("from").and_then(Value::as_str), op.get("path").and_then(Value::as_str))
        else {
            continue; // json_patch reports the missing member
        };
        let ((from_top, from_depth), (path_top, path_depth)) = (resolve(from), resolve(path));
        // From the whole document, from `/data` itself, or from inside it ...
        let from_covers_values = from_top.is_none() || holds_values(&from_top);
        // ... only from one key of a value field to another.
        let key_to_key = from_depth >= 2 && holds_values(&path_top) && path_depth >= 2;
        if from_covers_values && !key_to_key {
            return Err(ApiError::bad_request(format!(
                "the JSON patch may not copy or move {from:?} to {path:?}: the values of a {kind} may only be moved or copied between keys of {}",
                value_fields.join(" and ")
            )));
        }
    }
    Ok(())
}

/// Checks an apply body's identity against the URL and normalizes it like any object.
fn admit_apply(ctx: &Ctx<'_>, name: &str, doc: Value, warnings: &mut Vec<String>) -> Result<Value, ApiError> {
    if !doc.is_object() {
        return Err(ApiError::bad_request("error decoding YAML: the apply body is not an object"));
    }
    let mut doc = doc;
    if meta_str(&doc, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&doc, "name").unwrap_or_default()
        )));
    }
    metadata_mut(&mut doc).insert("name".into(), name.into());
    if let (true, Some(ns)) = (ctx.strategy.info().namespaced, ctx.info.namespace.as_deref()) {
        if meta_str(&doc, "namespace").is_some_and(|n| n != ns) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        metadata_mut(&mut doc).insert("namespace".into(), ns.into());
    }
    // Apply configurations are partial objects: normalize checks their fields, but the applied
    // document itself (not its defaulted form) is what ownership is computed from.
    let mut scratch = Vec::new();
    admit_body(ctx, doc.clone(), &mut scratch)?;
    warnings.extend(scratch);
    Ok(doc)
}

fn patch_error(e: patch::PatchError) -> ApiError {
    let message = e.status_message();
    match e.failure() {
        patch::PatchFailure::BadRequest => ApiError::bad_request(message),
        patch::PatchFailure::Invalid => {
            ApiError::bad_request(message).with_code(StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
        }
        patch::PatchFailure::RequestEntityTooLarge => ApiError::too_large(message),
    }
}

fn apply_error(ctx: &Ctx<'_>, name: &str, e: managed_fields::ApplyError) -> ApiError {
    match e {
        managed_fields::ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {:?}", c.manager), "field": c.field}))
                .collect();
            let info = ctx.strategy.info();
            ApiError::conflict(info.qualified(), name, "")
                .with_message(managed_fields::conflict_message(&conflicts))
                .with_details(json!({"name": name, "kind": info.plural, "causes": causes}))
        }
        managed_fields::ApplyError::Invalid(m) => ApiError::bad_request(m),
    }
}

// ---------------------------------------------------------------------------------------------
// delete

/// `DeleteOptions` from the body (JSON or protobuf) and the query.
struct DeleteOptions {
    dry_run: bool,
    uid: Option<String>,
    resource_version: Option<String>,
}

fn delete_options(ctx: &Ctx<'_>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut dry_run = ctx.query.dry_run()?;
    let mut uid = None;
    let mut resource_version = None;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let opts = codec::decode_object(ctx.headers, body)?;
        if let Some(values) = opts.get("dryRun").and_then(Value::as_array) {
            dry_run |= crate::request::dry_run_values(values.iter().filter_map(Value::as_str))?;
        }
        uid = opts.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        resource_version = opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
    }
    Ok(DeleteOptions { dry_run, uid, resource_version })
}

pub async fn delete(ctx: &Ctx<'_>, name: &str, body: Bytes) -> Result<Resp, ApiError> {
    let opts = delete_options(ctx, &body)?;
    let info = ctx.strategy.info();
    // Like GuaranteedUpdate: check the caller's preconditions against the current object and
    // delete exactly that revision; on a conflict, re-read and check again. The preconditions
    // are never dropped, so a delete can never remove a newer object than the one it checked.
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let cur = ctx.get_cached(name)?;
        // A corrupt object is never deleted by a plain delete (Kubernetes requires an explicit,
        // separately authorised unsafe delete): fail before touching the store.
        let s = served(&cur)?;
        if let Some(uid) = opts.uid.as_deref().filter(|uid| *uid != s.uid) {
            return Err(ApiError::conflict(
                info.qualified(),
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", s.uid),
            ));
        }
        if let Some(rv) = opts.resource_version.as_deref().filter(|rv| *rv != cur.revision.to_string()) {
            return Err(ApiError::conflict(
                info.qualified(),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    cur.revision
                ),
            ));
        }
        if info.plural == namespace::INFO.plural {
            return delete_namespace(ctx, name, cur, opts.dry_run).await;
        }
        if opts.dry_run {
            return deleted_response(ctx, &cur);
        }
        match ctx.server.store.delete(&cur.key, Some(cur.revision)).await {
            Ok(deleted) => {
                tracing::debug!(kind = info.kind, key = %cur.key, revision = deleted.revision, "deleted");
                return deleted_response(ctx, &cur);
            }
            Err(StoreError::Conflict { current, .. }) => {
                ctx.server.store.cache().wait_for(current, RESOURCE_VERSION_WAIT).await;
            }
            Err(e) => return Err(store_error(ctx, name, e)),
        }
    }
    Err(ApiError::modified(info.qualified(), name))
}

/// What a delete answers: the object for kinds that return it, otherwise a success Status
/// (Secrets: returning the object would hand every value to someone who may only delete).
fn deleted_response(ctx: &Ctx<'_>, obj: &CachedObject<ServedObject>) -> Result<Resp, ApiError> {
    let info = ctx.strategy.info();
    if info.return_deleted_object {
        return object_response(StatusCode::OK, obj, &[]);
    }
    let s = served(obj)?;
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": s.name, "group": info.group, "kind": info.plural, "uid": s.uid},
    });
    let mut status = status;
    if info.group.is_empty() {
        status["details"].as_object_mut().expect("object").remove("group");
    }
    Ok(codec::value_response(StatusCode::OK, &status))
}

/// The namespaces Kubernetes refuses to delete.
const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

async fn delete_namespace(ctx: &Ctx<'_>, name: &str, cur: Cached, dry_run: bool) -> Result<Resp, ApiError> {
    if UNDELETABLE_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    let s = served(&cur)?;
    if s.deleting {
        return object_response(StatusCode::OK, &cur, &[]);
    }
    let mut value = s.to_value();
    {
        let meta = metadata_mut(&mut value);
        meta.insert("deletionTimestamp".into(), now_rfc3339().into());
        meta.insert("deletionGracePeriodSeconds".into(), 0.into());
        meta.remove("resourceVersion");
    }
    value["status"] = json!({"phase": namespace::PHASE_TERMINATING});
    if dry_run {
        return Ok(dry_run_response(StatusCode::OK, &value, &[]));
    }
    let updated = match ctx.server.store.update(&cur.key, &encode(&value), cur.revision).await {
        Ok(u) => u,
        // Someone changed the namespace meanwhile (a label): retry from the new state.
        Err(StoreError::Conflict { current, .. }) => {
            ctx.server.store.cache().wait_for(current, RESOURCE_VERSION_WAIT).await;
            let cur = ctx.get_cached(name)?;
            return Box::pin(delete_namespace(ctx, name, cur, dry_run)).await;
        }
        Err(e) => return Err(store_error(ctx, name, e)),
    };
    tracing::info!(namespace = name, "namespace terminating; deleting its contents");
    let server = ctx.server.clone();
    let ns = name.to_string();
    tokio::spawn(async move { finalize_namespace(&server, &ns).await });
    object_response(StatusCode::OK, &updated, &[])
}

/// Deletes everything in a terminating namespace, then the namespace itself (the namespace
/// controller's job in Kubernetes). Also run at start-up for namespaces a crash left terminating.
pub async fn finalize_namespace(server: &Arc<ApiServer>, ns: &str) {
    // Rescan until a scan finds nothing: a create that passed its namespace check just before the
    // namespace turned Terminating may commit after an earlier scan.
    loop {
        let snapshot = server.store.cache().snapshot();
        let mut found = 0usize;
        for strategy in server.registry.all().filter(|s| s.info().namespaced) {
            let Ok(prefix) = ObjectKey::prefix(strategy.info().plural, Some(ns)) else { return };
            for (key, obj) in snapshot.under(&prefix, None) {
                found += 1;
                if obj.body.is_err() {
                    // Fail closed, as a plain delete does: the namespace stays Terminating until an
                    // operator deals with the corrupt object.
                    tracing::error!(namespace = ns, %key, "namespace cannot finish terminating: it holds a corrupt object");
                    return;
                }
                match server.store.delete(key, Some(obj.revision)).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => {
                        tracing::error!(namespace = ns, %key, error = %e, "cannot delete namespace content; will retry at next start");
                        return;
                    }
                }
            }
        }
        if found == 0 {
            break;
        }
    }
    let Ok(key) = ObjectKey::cluster(namespace::INFO.plural, ns) else { return };
    match server.store.delete(&key, None).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => tracing::info!(namespace = ns, "namespace deleted"),
        Err(e) => tracing::error!(namespace = ns, error = %e, "cannot delete namespace"),
    }
}

pub async fn delete_collection(ctx: &Ctx<'_>, body: Bytes) -> Result<Resp, ApiError> {
    let opts = delete_options(ctx, &body)?;
    let filter = Filter::from_query(ctx)?;
    let info = ctx.strategy.info();
    if info.plural == namespace::INFO.plural {
        return Err(ApiError::method_not_allowed());
    }
    let prefix = ObjectKey::prefix(info.plural, ctx.info.namespace.as_deref())
        .map_err(|_| ApiError::not_found(namespace::INFO.qualified(), ctx.info.namespace.as_deref().unwrap_or("")))?;
    let snapshot = ctx.server.store.cache().snapshot();
    let mut deleted: Vec<Cached> = Vec::new();
    for (key, obj) in snapshot.under(&prefix, None) {
        let Ok(s) = served(obj) else { continue };
        if !filter.matches(s) {
            continue;
        }
        if !opts.dry_run {
            match ctx.server.store.delete(key, None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(store_error(ctx, &s.name, e)),
            }
        }
        deleted.push(obj.clone());
    }
    let items: Vec<&ServedObject> = deleted.iter().filter_map(|o| o.body.as_ref().ok()).collect();
    let rv = ctx.server.store.cache().revision().to_string();
    let list = list_json(info.list_kind, &info.api_version(), &rv, None, None, &items);
    let value_fields = ctx.strategy.value_fields();
    if value_fields.is_empty() {
        return Ok(codec::json_response(StatusCode::OK, list));
    }
    // As a single delete answers a Secret with a Status, the deleted Secrets come back without
    // their values: permission to delete is not permission to read.
    let mut list: Value = serde_json::from_slice(&Bytes::from(list)).map_err(|e| ApiError::internal(e.to_string()))?;
    for item in list.get_mut("items").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(obj) = item.as_object_mut() {
            for field in value_fields {
                obj.remove(*field);
            }
        }
    }
    Ok(codec::value_response(StatusCode::OK, &list))
}
