//! The audit stage of the request pipeline: what [`crate::audit`] needs to know about each
//! request is gathered in a [`Record`] as the request is authenticated, authorized and served,
//! and [`Auditor::finish`] writes the event before the response leaves.
//!
//! Fail closed: a request whose response carries secret data (Secrets other than deletes, and
//! TokenRequests) is answered 503 if its record cannot be written, unless `--audit-fail-open`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::AuditConfig;
use crate::audit::{self, AuditLog, Level, Policy, RuleEvaluation, Stage};
use crate::authn::UserInfo;
use crate::authz::{Attrs, Decision};
use crate::codec::{self, Resp};
use crate::status::ApiError;

/// Everything known about one request, for its audit event.
pub struct Record {
    audit_id: String,
    received: jiff::Timestamp,
    request_uri: String,
    method: http::Method,
    source_ip: String,
    user_agent: Option<String>,
    pub user: Option<UserInfo>,
    pub impersonated: Option<UserInfo>,
    pub attrs: Option<Attrs>,
    pub decision: Option<Decision>,
    eval: RuleEvaluation,
    request_object: Option<Value>,
}

impl Record {
    pub fn new<B>(req: &Request<B>, peer: SocketAddr) -> Self {
        Record {
            audit_id: uuid::Uuid::new_v4().to_string(),
            received: jiff::Timestamp::now(),
            request_uri: req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default(),
            method: req.method().clone(),
            source_ip: peer.ip().to_string(),
            user_agent: req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string),
            user: None,
            impersonated: None,
            attrs: None,
            decision: None,
            eval: RuleEvaluation { level: Level::None, omit_stages: Vec::new(), omit_managed_fields: false },
            request_object: None,
        }
    }

    /// The authenticated user's name, or `-` before authentication.
    pub fn user_name(&self) -> &str {
        self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("-")
    }

    /// Keeps the request body for a `Request`/`RequestResponse` level event, values redacted.
    pub fn request_body(&mut self, body: &Bytes, headers: &HeaderMap) {
        if !self.eval.level.records_request_object() || body.is_empty() {
            return;
        }
        let Some(attrs) = &self.attrs else { return };
        let Ok(mut value) = codec::decode_object(headers, body).or_else(|_| codec::decode_json_or_yaml(body)) else {
            return;
        };
        // Redacted at once, so no value is held longer than the request; the event redacts
        // again when it takes the body.
        let resource = match &attrs.subresource {
            Some(sub) => format!("{}/{sub}", attrs.resource),
            None => attrs.resource.clone(),
        };
        audit::redact_request(&resource, &attrs.verb, &mut value);
        self.request_object = Some(value);
    }

    /// Whether this request's bodies are Secrets, token requests or token reviews.
    fn carries_credentials(&self) -> bool {
        self.attrs.as_ref().is_some_and(|a| {
            (a.group.is_empty() && a.resource == "secrets")
                || (a.resource == "serviceaccounts" && a.subresource.as_deref() == Some("token"))
                || a.resource == "tokenreviews"
        })
    }

    /// Whether the response to this request hands out secret values or tokens.
    fn returns_secret_data(&self) -> bool {
        self.attrs.as_ref().is_some_and(|a| {
            (a.group.is_empty() && a.resource == "secrets" && !matches!(a.verb.as_str(), "delete" | "deletecollection"))
                || (a.resource == "serviceaccounts" && a.subresource.as_deref() == Some("token"))
        })
    }
}

fn user_json(u: &UserInfo) -> audit::UserInfo {
    audit::UserInfo { username: u.name.clone(), uid: u.uid.clone(), groups: u.groups.clone(), extra: u.extra.clone() }
}

/// The audit policy and sink of a running server.
pub struct Auditor {
    policy: Policy,
    log: Option<Arc<AuditLog>>,
    fail_open: bool,
}

impl Auditor {
    /// Opens the log (`DIR/audit.log` unless configured) and reads the policy file.
    pub fn open(data_dir: &Path, cfg: &AuditConfig) -> Result<Self, String> {
        let policy = match &cfg.policy_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the audit policy {}: {e}", path.display()))?;
                Policy::from_yaml(&text).map_err(|e| format!("invalid audit policy {}: {e}", path.display()))?
            }
            None => Policy::strongroom_default(),
        };
        for gap in unrecorded_secret_reads(&policy) {
            tracing::warn!("the audit policy does not record {gap}: who read a secret will not be on record");
        }
        let path = cfg.path.clone().unwrap_or_else(|| data_dir.join("audit.log"));
        let log = AuditLog::open(audit::AuditLogConfig {
            path: path.clone(),
            max_size_mb: cfg.max_size_mb,
            max_backups: cfg.max_backups,
            max_age_days: 0,
        })
        .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
        Ok(Auditor { policy, log: Some(Arc::new(log)), fail_open: cfg.fail_open })
    }

    /// Decides the level of a request once its user and attributes are known.
    pub fn evaluate(&self, record: &mut Record) {
        let (Some(user), Some(attrs)) = (&record.user, &record.attrs) else { return };
        record.eval = self.policy.evaluate(&request_attributes(user, attrs));
    }

    /// Writes the request's event, then returns the response — or a 503 in its place when the
    /// event could not be written and the response carries secret data.
    pub async fn finish(&self, mut record: Record, resp: Resp, metrics: &crate::metrics::Metrics) -> Resp {
        let Some(log) = &self.log else { return resp };
        if record.user.is_none() && resp.status() == StatusCode::UNAUTHORIZED {
            // Failed authentication is always recorded, as Kubernetes does.
            record.eval.level = Level::Metadata;
        }
        if record.eval.level == Level::None {
            return resp;
        }
        let is_watch = record.attrs.as_ref().is_some_and(|a| a.verb == "watch");
        let stage =
            if is_watch && resp.status().is_success() { Stage::ResponseStarted } else { Stage::ResponseComplete };
        // `omitStages` may thin out the log, but not hide that someone received secret data:
        // such a request (its level above None) is recorded at its stage even when omitted.
        if !record.eval.records(stage) && !record.returns_secret_data() {
            return resp;
        }
        let mut event = self.event(&mut record, stage);
        // A create's object name is only known from the response (as Kubernetes records it).
        let created = resp.status() == StatusCode::CREATED
            && event.object_ref.as_ref().is_some_and(|o| o.name.is_empty() && o.subresource.is_empty());
        let (resp, response_object) = if (record.eval.level.records_response_object() || created) && !is_watch {
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            if created
                && let Ok(named) = serde_json::from_slice::<Named>(&bytes)
                && let Some(object_ref) = event.object_ref.as_mut()
            {
                object_ref.name = named.metadata.name;
            }
            let value: Option<Value> =
                if record.eval.level.records_response_object() { serde_json::from_slice(&bytes).ok() } else { None };
            (http::Response::from_parts(parts, codec::full(bytes)), value)
        } else {
            (resp, None)
        };
        let code = resp.status().as_u16();
        event.response_status = Some(audit::ResponseStatus::code(code));
        // A refused body of a Secret or token kind may hold a value anywhere (a wrong type, a
        // misplaced field) where redaction does not look: it is not recorded at all.
        if let Some(body) = record.request_object.take()
            && !(code >= 400 && record.carries_credentials())
        {
            event.set_request_object(body);
        }
        if let Some(v) = response_object {
            event.set_response_object(v);
        }
        let written = log.write(&event);
        metrics.audit_event(written.is_ok());
        match written {
            Ok(()) if stage == Stage::ResponseStarted && record.eval.records(Stage::ResponseComplete) => {
                // The watch's ResponseComplete is written when its stream ends.
                let (parts, body) = resp.into_parts();
                let body = CompleteOnEnd { inner: body, event: Some(event), log: log.clone() };
                http::Response::from_parts(parts, BodyExt::boxed(body))
            }
            Ok(()) => resp,
            Err(e) => {
                let secret = record.returns_secret_data() && code < 400;
                tracing::error!(error = %e, audit_id = %record.audit_id, "cannot write an audit event");
                if secret && !self.fail_open {
                    let mut e = ApiError::unavailable(
                        "the audit record of this request could not be written, so its secret data is withheld",
                    );
                    // An unwritable audit log is an operator's problem, not a blip worth
                    // client-go's ten retries.
                    e.retry_after = None;
                    return codec::error_response(&e);
                }
                resp
            }
        }
    }

    fn event(&self, record: &mut Record, stage: Stage) -> audit::Event {
        let now = jiff::Timestamp::now();
        let mut event = match (&record.user, &record.attrs) {
            (Some(user), Some(attrs)) => audit::Event::from_request(
                record.audit_id.clone(),
                &record.eval,
                &request_attributes(user, attrs),
                record.request_uri.clone(),
                record.received,
            )
            .at_stage(stage, now),
            _ => {
                let mut e = audit::Event::new(record.audit_id.clone(), record.eval.level, stage, record.received);
                e.stage_timestamp = now;
                e.request_uri = record.request_uri.clone();
                e.verb = record.method.as_str().to_ascii_lowercase();
                e
            }
        };
        event.user = match &record.user {
            Some(u) => user_json(u),
            None => audit::UserInfo {
                username: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
                ..Default::default()
            },
        };
        event.impersonated_user = record.impersonated.as_ref().map(user_json);
        event.source_ips = vec![record.source_ip.clone()];
        event.user_agent = record.user_agent.clone().unwrap_or_default();
        if let Some(d) = &record.decision {
            event
                .annotations
                .insert(audit::ANNOTATION_DECISION.to_string(), if d.allowed { "allow" } else { "forbid" }.to_string());
            if !d.reason.is_empty() {
                event.annotations.insert(audit::ANNOTATION_REASON.to_string(), d.reason.clone());
            }
        }
        event
    }
}

/// A watch's body that writes the watch's `ResponseComplete` event when it ends (the client
/// left, the timeout passed or the server is draining): dropping the body is the one place
/// every ending passes through.
struct CompleteOnEnd {
    inner: codec::Body,
    event: Option<audit::Event>,
    log: Arc<AuditLog>,
}

impl hyper::body::Body for CompleteOnEnd {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CompleteOnEnd {
    fn drop(&mut self) {
        if let Some(started) = self.event.take() {
            let event = started.at_stage(Stage::ResponseComplete, jiff::Timestamp::now());
            if let Err(e) = self.log.write(&event) {
                tracing::error!(error = %e, audit_id = %event.audit_id, "cannot write an audit event");
            }
        }
    }
}

/// Just the name of a JSON object (serde skips the rest without building it).
#[derive(serde::Deserialize)]
struct Named {
    metadata: NamedMeta,
}

#[derive(serde::Deserialize)]
struct NamedMeta {
    #[serde(default)]
    name: String,
}

/// The audit policy's view of a request.
/// Reads of secrets by an ordinary user that `policy` leaves unrecorded (level `None`), as
/// start-up warnings: a policy may do that deliberately, but should not do it by accident.
fn unrecorded_secret_reads(policy: &Policy) -> Vec<String> {
    let groups = ["system:authenticated".to_string()];
    ["get", "list", "watch"]
        .into_iter()
        .filter(|verb| {
            let resource = audit::ResourceAttributes {
                api_group: "",
                api_version: "v1",
                resource: "secrets",
                subresource: "",
                namespace: "default",
                name: if *verb == "get" { "db" } else { "" },
            };
            let attrs = audit::RequestAttributes {
                user: "someone",
                groups: &groups,
                verb,
                target: audit::RequestTarget::Resource(resource),
            };
            policy.evaluate(&attrs).level == Level::None
        })
        .map(|verb| format!("`{verb}` of secrets"))
        .collect()
}

fn request_attributes<'a>(user: &'a UserInfo, attrs: &'a Attrs) -> audit::RequestAttributes<'a> {
    let target = match &attrs.path {
        Some(path) => audit::RequestTarget::NonResource { path },
        None => audit::RequestTarget::Resource(audit::ResourceAttributes {
            api_group: &attrs.group,
            api_version: &attrs.version,
            resource: &attrs.resource,
            subresource: attrs.subresource.as_deref().unwrap_or(""),
            namespace: attrs.namespace.as_deref().unwrap_or(""),
            name: attrs.name.as_deref().unwrap_or(""),
        }),
    };
    audit::RequestAttributes { user: &user.name, groups: &user.groups, verb: &attrs.verb, target }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(auditor: &Auditor, verb: &str, resource: &str) -> Record {
        let req = Request::builder().uri("/api/v1/namespaces/app/secrets/db").body(()).expect("request");
        let mut r = Record::new(&req, "127.0.0.1:1".parse().expect("addr"));
        r.user =
            Some(UserInfo { name: "alice".into(), groups: vec!["system:authenticated".into()], ..Default::default() });
        r.attrs = Some(Attrs {
            verb: verb.into(),
            namespace: Some("app".into()),
            resource: resource.into(),
            version: "v1".into(),
            name: Some("db".into()),
            ..Default::default()
        });
        auditor.evaluate(&mut r);
        r
    }

    fn ok() -> Resp {
        codec::value_response(StatusCode::OK, &serde_json::json!({"kind": "Secret"}))
    }

    /// An auditor whose log can take one event and then fails (its directory is gone when it
    /// must rotate).
    fn failing_auditor(fail_open: bool) -> (Auditor, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AuditLog::open_with_max_bytes(
            audit::AuditLogConfig {
                path: dir.path().join("audit.log"),
                max_size_mb: 0,
                max_backups: 0,
                max_age_days: 0,
            },
            1,
        )
        .expect("open");
        (Auditor { policy: Policy::strongroom_default(), log: Some(Arc::new(log)), fail_open }, dir)
    }

    #[tokio::test]
    async fn secret_data_is_withheld_when_its_record_cannot_be_written() {
        let metrics = crate::metrics::Metrics::default();
        let (auditor, dir) = failing_auditor(false);
        let first = auditor.finish(record(&auditor, "get", "secrets"), ok(), &metrics).await;
        assert_eq!(first.status(), StatusCode::OK, "the first record is written");
        std::fs::remove_dir_all(dir.path()).expect("remove the log directory");
        let denied = auditor.finish(record(&auditor, "get", "secrets"), ok(), &metrics).await;
        assert_eq!(denied.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A delete hands out no values: its response goes out even without a record.
        let deleted = auditor.finish(record(&auditor, "delete", "secrets"), ok(), &metrics).await;
        assert_eq!(deleted.status(), StatusCode::OK);
        assert!(metrics.render((0, 0), 0).contains("apiserver_audit_error_total 2\n"));
    }

    #[tokio::test]
    async fn a_watch_is_recorded_when_it_starts_and_when_it_ends() {
        let metrics = crate::metrics::Metrics::default();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(audit::AuditLogConfig {
            path: path.clone(),
            max_size_mb: 0,
            max_backups: 0,
            max_age_days: 0,
        })
        .expect("open");
        let auditor = Auditor { policy: Policy::strongroom_default(), log: Some(Arc::new(log)), fail_open: false };
        let stages = || -> Vec<String> {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["stage"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let resp = auditor.finish(record(&auditor, "watch", "secrets"), ok(), &metrics).await;
        assert_eq!(stages(), ["ResponseStarted"]);
        drop(resp);
        assert_eq!(stages(), ["ResponseStarted", "ResponseComplete"]);
    }

    fn auditor_with(policy: &str) -> (Auditor, tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let cfg = audit::AuditLogConfig { path: path.clone(), max_size_mb: 0, max_backups: 0, max_age_days: 0 };
        let log = AuditLog::open(cfg).expect("open");
        let policy = Policy::from_yaml(policy).expect("policy");
        (Auditor { policy, log: Some(Arc::new(log)), fail_open: false }, dir, path)
    }

    fn verbs(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["verb"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// `omitStages` cannot hide a read of secret data; other requests' stages are omitted.
    #[tokio::test]
    async fn omit_stages_does_not_hide_secret_reads() {
        let metrics = crate::metrics::Metrics::default();
        let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseStarted, ResponseComplete]\nrules:\n- level: Metadata\n";
        let (auditor, _dir, path) = auditor_with(policy);
        auditor.finish(record(&auditor, "get", "secrets"), ok(), &metrics).await;
        auditor.finish(record(&auditor, "get", "configmaps"), ok(), &metrics).await;
        auditor.finish(record(&auditor, "delete", "secrets"), ok(), &metrics).await;
        drop(auditor.finish(record(&auditor, "watch", "secrets"), ok(), &metrics).await);
        assert_eq!(verbs(&path), ["get", "watch"]);
        assert!(unrecorded_secret_reads(&auditor.policy).is_empty());
    }

    /// A policy that drops secret reads is allowed (the operator's choice) but warned about.
    #[test]
    fn policies_that_skip_secret_reads_are_found() {
        let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verbs: [list, watch]\n  resources: [{group: \"\", resources: [secrets]}]\n- level: Metadata\n";
        let (auditor, _dir, _path) = auditor_with(policy);
        assert_eq!(unrecorded_secret_reads(&auditor.policy), ["`list` of secrets", "`watch` of secrets"]);
        assert!(unrecorded_secret_reads(&Policy::strongroom_default()).is_empty());
    }

    #[tokio::test]
    async fn fail_open_serves_secret_data_without_a_record() {
        let metrics = crate::metrics::Metrics::default();
        let (auditor, dir) = failing_auditor(true);
        auditor.finish(record(&auditor, "get", "secrets"), ok(), &metrics).await;
        std::fs::remove_dir_all(dir.path()).expect("remove the log directory");
        let served = auditor.finish(record(&auditor, "get", "secrets"), ok(), &metrics).await;
        assert_eq!(served.status(), StatusCode::OK);
    }
}
