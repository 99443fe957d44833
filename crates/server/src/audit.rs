//! The audit log: Kubernetes' `audit.k8s.io/v1` policy, events and log backend, with strongroom's
//! redaction on top, and the query behind `strongroom audit` ("who could have read this secret?").
//!
//! The pieces, in request order:
//!
//! 1. [`Policy::evaluate`] decides, from the [`RequestAttributes`], the [`Level`] a request is
//!    recorded at and which [`Stage`]s are omitted, with Kubernetes' rule matching
//!    (`staging/src/k8s.io/apiserver/pkg/audit/policy/checker.go`): the first matching rule wins,
//!    no match means `None`, omitted stages are the policy's plus the rule's.
//! 2. [`Event::from_request`] builds the `audit.k8s.io/v1` event; [`Event::at_stage`] copies it
//!    for each later stage. Request and response bodies enter an event only through
//!    [`Event::set_request_object`] and [`Event::set_response_object`], which apply the level
//!    (bodies only at `Request`/`RequestResponse`) and [`redact`].
//! 3. [`AuditLog::write`] appends the event as one JSON line and rotates the file as
//!    kube-apiserver's `--audit-log-maxsize`/`--audit-log-maxbackup`/`--audit-log-maxage` do
//!    (lumberjack's naming, `audit-2006-01-02T15-04-05.000.log`, UTC).
//! 4. [`list_log_files`] and [`reads_of_secret`] read the log back.
//!
//! # The default policy
//!
//! [`Policy::strongroom_default`] is [`STRONGROOM_DEFAULT_POLICY`], applied when no policy file is
//! configured:
//!
//! | requests | level |
//! | --- | --- |
//! | every verb on `secrets`, `serviceaccounts`, `serviceaccounts/token` (core group) | Metadata |
//! | every verb on `tokenreviews` (`authentication.k8s.io`) | Metadata |
//! | every verb on `subjectaccessreviews`, `selfsubjectaccessreviews`, `localsubjectaccessreviews`, `selfsubjectrulesreviews` (`authorization.k8s.io`) | Metadata |
//! | everything in `rbac.authorization.k8s.io` | Metadata |
//! | `create`, `update`, `patch`, `delete`, `deletecollection` of anything | Metadata |
//! | everything else: health checks, discovery, OpenAPI, `/version`, reads of namespaces | None |
//!
//! `RequestReceived` is omitted everywhere: `ResponseComplete` (and `ResponseStarted` for watches)
//! records the same request together with its outcome. `selfsubjectreviews` (`kubectl auth
//! whoami`) is a `create`, so the write rule records it at Metadata; it is rare and says who
//! probed their identity, so it is not exempted. Secrets are never recorded above Metadata by
//! default: the log says who read or changed which secret, never what it holds.
//!
//! # Redaction (beyond Kubernetes)
//!
//! An operator's policy may ask for `Request` or `RequestResponse` on secrets; bodies are then
//! recorded, but [`redact`] first replaces every value with [`REDACTED`] (`"<redacted>"`) — the
//! keys stay, so the log still says which keys a write touched:
//!
//! - Secrets (kind `Secret`, and any object without a kind sent to or read from `secrets`, as list
//!   items are): every value of `data` and `stringData`, the value of the
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation; `metadata.managedFields` is
//!   dropped; any other top-level field (malformed payloads, CVE-2025-4166) becomes the marker.
//!   `SecretList`, `List`, `PartialObjectMetadata(List)` and `Table` rows carrying secrets are
//!   redacted item by item. `Status` and `DeleteOptions` carry no values and are kept.
//! - A body of a sensitive resource that is not an object (a JSON patch array, an apply-patch
//!   YAML string) becomes the marker, and every `patch` body on a sensitive resource is recorded
//!   as the marker: a patch is not an object of the kind, so it cannot be redacted field by field.
//! - `TokenRequest` (`serviceaccounts/token`) loses `status.token`; `TokenReview` loses
//!   `spec.token`.
//! - Anywhere else, any nested object of kind `Secret`, `SecretList`, `TokenRequest` or
//!   `TokenReview` is redacted as above.
//!
//! # Durability
//!
//! Each record is handed to the operating system with a single `write(2)` on a file opened
//! `O_APPEND`, under a mutex, before [`AuditLog::write`] returns. It is not fsync'd: a process
//! crash loses nothing, a power loss can lose the last records. A failed write is returned to the
//! caller, which fails closed (503 for requests returning secret data).
//!
//! # Log files
//!
//! - `-` writes to standard output, without rotation.
//! - A new file is created with mode 0600 (missing parent directories 0700); an existing file is
//!   appended to and keeps its mode, but a directory, a non-regular file or a file with any
//!   executable bit is refused (CVE-2025-6000). Files created by rotation are always 0600.
//! - The file is rotated when the next line would take it past `max_size_mb` MiB (0 means 100,
//!   lumberjack's default). A single line larger than that is written alone into a fresh file
//!   (lumberjack refuses it; refusing would fail the request instead).
//! - Rotation renames the file to `<name>-<UTC time>.<ext>` in the same directory
//!   (`audit.log` → `audit-2025-01-02T03-04-05.678.log`); names only grow (bumped by 1 ms when two
//!   rotations share a millisecond), so name order is time order.
//! - At open and after each rotation, the oldest rotated files beyond `max_backups` and those
//!   older than `max_age_days` by the time in their name are deleted (0 keeps all, as the
//!   flags). A failed deletion is logged, not returned. Rotated files are not compressed.
//!
//! # Who could have read a secret
//!
//! [`reads_of_secret`] scans [`list_log_files`]' files, oldest first, and returns every successful
//! `ResponseStarted`/`ResponseComplete` of a request whose response could have carried the
//! secret's value: a `get` of it ([`ReadKind::Direct`]); a `list` or `watch` of secrets in its
//! namespace or in all namespaces, unless narrowed to another name ([`ReadKind::Collection`]); a
//! `create`/`update`/`patch`/`delete` of it or a `deletecollection` over it, whose responses carry
//! the object ([`ReadKind::WriteResponse`]). It finds what the policy recorded: with the default
//! policy, all of these.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strongroom_api::field::{BadValue, FieldError, aggregate_message, go_quote};

/// The response header carrying the request's audit ID, as kube-apiserver sends it.
pub const HEADER_AUDIT_ID: &str = "Audit-ID";

/// The only audit API version strongroom reads and writes.
pub const API_VERSION: &str = "audit.k8s.io/v1";

/// What replaces every redacted value.
pub const REDACTED: &str = "<redacted>";

/// Audit annotation set by the authorizer: `allow` or `forbid`.
pub const ANNOTATION_DECISION: &str = "authorization.k8s.io/decision";
/// Audit annotation set by the authorizer: why it decided so (e.g. the RBAC binding).
pub const ANNOTATION_REASON: &str = "authorization.k8s.io/reason";

/// lumberjack's default when `--audit-log-maxsize` is 0 or unset.
pub const DEFAULT_MAX_SIZE_MB: u64 = 100;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// lumberjack's `backupTimeFormat` (`2006-01-02T15-04-05.000`), always UTC.
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";

/// The policy used when the operator configures none; see the module documentation.
pub const STRONGROOM_DEFAULT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
# ResponseComplete (ResponseStarted for watches) records the request with its outcome.
omitStages: ["RequestReceived"]
rules:
  # Anything that holds or reveals credentials or access, reads included: who read which secret.
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "serviceaccounts", "serviceaccounts/token"]
      - group: "authentication.k8s.io"
        resources: ["tokenreviews"]
      - group: "authorization.k8s.io"
        resources: ["subjectaccessreviews", "selfsubjectaccessreviews", "localsubjectaccessreviews", "selfsubjectrulesreviews"]
      - group: "rbac.authorization.k8s.io"
  # Every change to anything.
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  # Everything else (health, discovery, OpenAPI, reads of namespaces) falls to the default: None.
"#;

/// Why a policy could not be loaded, a log could not be opened or read. No variant carries a
/// secret value: policies hold none, and I/O errors name paths only.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The text is not a YAML/JSON document of the policy's shape (Kubernetes' wording).
    #[error("failed decoding audit policy: {0}")]
    PolicyDecode(String),
    #[error(
        "audit policy must have apiVersion \"audit.k8s.io/v1\" and kind \"Policy\", found apiVersion {api_version:?} and kind {kind:?}"
    )]
    PolicyType { api_version: String, kind: String },
    /// Field errors, worded and aggregated as Kubernetes' `ValidatePolicy` prints them.
    #[error("{0}")]
    PolicyInvalid(String),
    #[error("loaded illegal policy with 0 rules")]
    PolicyEmpty,
    #[error("{source}: from file {}", path.display())]
    PolicyFile { path: PathBuf, source: Box<AuditError> },
    #[error("refusing to use {} as the audit log: {reason}", path.display())]
    UnsafeLogPath { path: PathBuf, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io { action, path: path.to_path_buf(), source }
}

// ---------------------------------------------------------------------------------------------
// Levels and stages
// ---------------------------------------------------------------------------------------------

/// How much of a request is recorded; ordered, so `level >= Level::Request` reads naturally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Not recorded at all.
    #[default]
    None,
    /// Who, what, when, from where and the outcome; no bodies.
    Metadata,
    /// Metadata and the (redacted) request body of resource requests.
    Request,
    /// Request and the (redacted) response body of resource requests.
    RequestResponse,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::None, Level::Metadata, Level::Request, Level::RequestResponse];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }

    /// The level named exactly so (case-sensitive, as Kubernetes).
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn records_request_object(self) -> bool {
        self >= Level::Request
    }

    pub fn records_response_object(self) -> bool {
        self >= Level::RequestResponse
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When during a request an event is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// As soon as the request is received, before it is handled.
    RequestReceived,
    /// Once the response headers are sent; only for long-running requests (watch).
    ResponseStarted,
    /// Once the response body is complete.
    ResponseComplete,
    /// When handling panicked.
    Panic,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::RequestReceived, Stage::ResponseStarted, Stage::ResponseComplete, Stage::Panic];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Request attributes
// ---------------------------------------------------------------------------------------------

/// What the policy matches a request on: Kubernetes' authorizer attributes. Empty strings mean
/// "absent", as in Kubernetes (`namespace: ""` is a cluster-scoped or all-namespaces request).
#[derive(Debug, Clone, Copy)]
pub struct RequestAttributes<'a> {
    /// The authenticated user's name (`system:anonymous` for anonymous requests).
    pub user: &'a str,
    pub groups: &'a [String],
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, ...); for non-resource requests the
    /// lower-cased HTTP method.
    pub verb: &'a str,
    pub target: RequestTarget<'a>,
}

/// A resource request or a non-resource path.
#[derive(Debug, Clone, Copy)]
pub enum RequestTarget<'a> {
    Resource(ResourceAttributes<'a>),
    /// `/healthz`, `/version`, `/api`, `/openapi/v3/...`: the request path.
    NonResource {
        path: &'a str,
    },
}

/// The resource a request addresses; empty strings mean absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResourceAttributes<'a> {
    /// `""` for the core group.
    pub api_group: &'a str,
    pub api_version: &'a str,
    /// Plural resource name, e.g. `secrets`.
    pub resource: &'a str,
    /// e.g. `token` for `serviceaccounts/token`.
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

/// A validated `audit.k8s.io/v1` `Policy`.
///
/// Invariant: every rule passed Kubernetes' `ValidatePolicy` and there is at least one rule; the
/// fields are private so no unvalidated policy can be built (see `invariant_policy_is_validated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<PolicyRule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

/// One rule; a request must match every non-empty field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub level: Level,
    pub users: Vec<String>,
    pub user_groups: Vec<String>,
    pub verbs: Vec<String>,
    pub resources: Vec<GroupResources>,
    /// `""` matches cluster-scoped requests.
    pub namespaces: Vec<String>,
    pub non_resource_urls: Vec<String>,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one API group: `pods`, `pods/log`, `*`, `pods/*`, `*/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupResources {
    pub group: String,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

/// What the policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEvaluation {
    pub level: Level,
    /// The union of the policy's and the matching rule's `omitStages`, sorted.
    pub omit_stages: Vec<Stage>,
    /// Whether `metadata.managedFields` is dropped from recorded bodies (always for secrets).
    pub omit_managed_fields: bool,
}

impl RuleEvaluation {
    /// Whether an event is written at `stage`.
    pub fn records(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

#[derive(Deserialize)]
struct RawTypeMeta {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// The policy as written; strict, so a misspelt field (`resource:` for `resources:`) is an error
/// rather than a rule that silently matches more or less than intended.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(rename = "kind")]
    _kind: Option<String>,
    #[serde(rename = "metadata")]
    _metadata: Option<serde_yaml_ng::Value>,
    rules: Option<Vec<RawRule>>,
    omit_stages: Option<Vec<String>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    level: Option<String>,
    users: Option<Vec<String>>,
    user_groups: Option<Vec<String>>,
    verbs: Option<Vec<String>>,
    resources: Option<Vec<RawGroupResources>>,
    namespaces: Option<Vec<String>>,
    #[serde(rename = "nonResourceURLs")]
    non_resource_urls: Option<Vec<String>>,
    omit_stages: Option<Vec<String>>,
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGroupResources {
    group: Option<String>,
    resources: Option<Vec<String>>,
    resource_names: Option<Vec<String>>,
}

/// Go's `%#v` of a `[]string`, as Kubernetes prints it in `Invalid value` errors.
fn go_string_slice(v: &[String]) -> BadValue {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    BadValue::Raw(format!("[]string{{{}}}", items.join(", ")))
}

fn validate_stages(raw: Vec<String>, path: &str, errs: &mut Vec<FieldError>) -> Vec<Stage> {
    let mut stages = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        match Stage::parse(s) {
            Some(st) => stages.push(st),
            None => errs.push(FieldError::invalid(
                format!("{path}[{i}]"),
                s.as_str(),
                "allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic",
            )),
        }
    }
    stages.sort();
    stages.dedup();
    stages
}

fn validate_rule(raw: RawRule, path: &str, errs: &mut Vec<FieldError>) -> PolicyRule {
    let level = match raw.level.as_deref() {
        None | Some("") => {
            errs.push(FieldError::required(format!("{path}.level"), ""));
            Level::None
        }
        Some(s) => Level::parse(s).unwrap_or_else(|| {
            let supported: Vec<&str> = Level::ALL.iter().map(|l| l.as_str()).collect();
            errs.push(FieldError::not_supported(format!("{path}.level"), s, &supported));
            Level::None
        }),
    };
    let non_resource_urls = raw.non_resource_urls.unwrap_or_default();
    for (i, url) in non_resource_urls.iter().enumerate() {
        if url == "*" {
            continue;
        }
        let field = format!("{path}.nonResourceURLs[{i}]");
        if !url.starts_with('/') {
            errs.push(FieldError::invalid(&field, url, "non-resource URL rules must begin with a '/' character"));
        }
        if let Some((last, _)) = url.char_indices().last()
            && url[..last].contains('*')
        {
            errs.push(FieldError::invalid(
                &field,
                url,
                "non-resource URL wildcards '*' must be the final character of the rule",
            ));
        }
    }
    let mut resources = Vec::new();
    for gr in raw.resources.unwrap_or_default() {
        let gr = GroupResources {
            group: gr.group.unwrap_or_default(),
            resources: gr.resources.unwrap_or_default(),
            resource_names: gr.resource_names.unwrap_or_default(),
        };
        if !gr.group.is_empty() {
            let msgs = strongroom_api::validation::name_is_dns_subdomain(&gr.group, false);
            if !msgs.is_empty() {
                errs.push(FieldError::invalid(format!("{path}.resources.group"), &gr.group, msgs.join(",")));
            }
        }
        if !gr.resource_names.is_empty() && gr.resources.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.resources.resourceNames"),
                go_string_slice(&gr.resource_names),
                "using resourceNames requires at least one resource",
            ));
        }
        resources.push(gr);
    }
    let omit_stages = validate_stages(raw.omit_stages.unwrap_or_default(), &format!("{path}.omitStages"), errs);
    let namespaces = raw.namespaces.unwrap_or_default();
    if !non_resource_urls.is_empty() && (!resources.is_empty() || !namespaces.is_empty()) {
        errs.push(FieldError::invalid(
            format!("{path}.nonResourceURLs"),
            go_string_slice(&non_resource_urls),
            "rules cannot apply to both regular resources and non-resource URLs",
        ));
    }
    PolicyRule {
        level,
        users: raw.users.unwrap_or_default(),
        user_groups: raw.user_groups.unwrap_or_default(),
        verbs: raw.verbs.unwrap_or_default(),
        resources,
        namespaces,
        non_resource_urls,
        omit_stages,
        omit_managed_fields: raw.omit_managed_fields,
    }
}

impl Policy {
    /// Parses and validates a policy file's text, YAML or JSON. Only `audit.k8s.io/v1` is
    /// accepted (v1alpha1 and v1beta1 were removed from Kubernetes); unknown fields are
    /// rejected; validation errors read as Kubernetes prints them, e.g.
    /// `rules[0].level: Unsupported value: "Verbose": supported values: "None", "Metadata", "Request", "RequestResponse"`.
    pub fn from_yaml(text: &str) -> Result<Policy, AuditError> {
        let meta: RawTypeMeta = serde_yaml_ng::from_str(text).map_err(|e| AuditError::PolicyDecode(e.to_string()))?;
        let api_version = meta.api_version.unwrap_or_default();
        let kind = meta.kind.unwrap_or_default();
        if api_version != API_VERSION || kind != "Policy" {
            return Err(AuditError::PolicyType { api_version, kind });
        }
        let raw: RawPolicy = serde_yaml_ng::from_str(text).map_err(|e| AuditError::PolicyDecode(e.to_string()))?;
        let mut errs = Vec::new();
        let rules: Vec<PolicyRule> = raw
            .rules
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| validate_rule(r, &format!("rules[{i}]"), &mut errs))
            .collect();
        let omit_stages = validate_stages(raw.omit_stages.unwrap_or_default(), "omitStages", &mut errs);
        if !errs.is_empty() {
            return Err(AuditError::PolicyInvalid(aggregate_message(&errs)));
        }
        if rules.is_empty() {
            return Err(AuditError::PolicyEmpty);
        }
        Ok(Policy { rules, omit_stages, omit_managed_fields: raw.omit_managed_fields.unwrap_or(false) })
    }

    /// Reads and parses a policy file (`--audit-policy-file`).
    pub fn from_file(path: &Path) -> Result<Policy, AuditError> {
        let text = fs::read_to_string(path).map_err(io_err("read audit policy", path))?;
        Policy::from_yaml(&text).map_err(|e| AuditError::PolicyFile { path: path.to_path_buf(), source: Box::new(e) })
    }

    /// [`STRONGROOM_DEFAULT_POLICY`], see the module documentation.
    pub fn strongroom_default() -> Policy {
        // A constant, parsed by a unit test on every build.
        Policy::from_yaml(STRONGROOM_DEFAULT_POLICY).expect("the built-in audit policy is valid")
    }

    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    pub fn omit_stages(&self) -> &[Stage] {
        &self.omit_stages
    }

    pub fn omit_managed_fields(&self) -> bool {
        self.omit_managed_fields
    }

    /// The level and omitted stages for a request: the first matching rule's, or `None` with the
    /// policy's omitted stages when no rule matches.
    pub fn evaluate(&self, attrs: &RequestAttributes<'_>) -> RuleEvaluation {
        match self.rules.iter().find(|r| r.matches(attrs)) {
            Some(rule) => {
                let mut omit_stages: Vec<Stage> =
                    self.omit_stages.iter().chain(rule.omit_stages.iter()).copied().collect();
                omit_stages.sort();
                omit_stages.dedup();
                RuleEvaluation {
                    level: rule.level,
                    omit_stages,
                    omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                }
            }
            None => RuleEvaluation {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            },
        }
    }
}

impl PolicyRule {
    /// Kubernetes' `ruleMatches`: users, then groups, then verbs, then either the resource
    /// fields (if `namespaces` or `resources` is set) or the non-resource URLs (if set).
    pub fn matches(&self, attrs: &RequestAttributes<'_>) -> bool {
        if !self.users.is_empty() && !self.users.iter().any(|u| u == attrs.user) {
            return false;
        }
        if !self.user_groups.is_empty() && !attrs.groups.iter().any(|g| self.user_groups.contains(g)) {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v == attrs.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return match &attrs.target {
                RequestTarget::Resource(res) => self.matches_resource(res),
                RequestTarget::NonResource { .. } => false,
            };
        }
        if !self.non_resource_urls.is_empty() {
            return match &attrs.target {
                RequestTarget::NonResource { path } => {
                    self.non_resource_urls.iter().any(|spec| path_matches(path, spec))
                }
                RequestTarget::Resource(_) => false,
            };
        }
        true
    }

    fn matches_resource(&self, res: &ResourceAttributes<'_>) -> bool {
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == res.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = if res.subresource.is_empty() {
            res.resource.to_string()
        } else {
            format!("{}/{}", res.resource, res.subresource)
        };
        for gr in self.resources.iter().filter(|gr| gr.group == res.api_group) {
            if gr.resources.is_empty() {
                return true;
            }
            if !gr.resource_names.is_empty() && !gr.resource_names.iter().any(|n| n == res.name) {
                continue;
            }
            for spec in &gr.resources {
                if *spec == combined || spec == "*" {
                    return true;
                }
                if !res.subresource.is_empty() && spec.strip_prefix("*/") == Some(res.subresource) {
                    return true;
                }
                if spec.strip_suffix("/*") == Some(res.resource) {
                    return true;
                }
            }
        }
        false
    }
}

/// Kubernetes' `pathMatches`: `*`, an exact path, or a prefix ending in `*`.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*" || spec == path || (spec.ends_with('*') && path.starts_with(spec.trim_end_matches('*')))
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// `metav1.MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
mod micro_time {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(ts: Timestamp) -> String {
        ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The object a request addresses. For `create`, set `name` from the request object once known
/// (Kubernetes does), so [`reads_of_secret`] can attribute write responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

impl ObjectReference {
    /// `resource` or `resource/subresource`, the name [`redact`] is told.
    fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl From<&ResourceAttributes<'_>> for ObjectReference {
    fn from(r: &ResourceAttributes<'_>) -> Self {
        ObjectReference {
            resource: r.resource.to_string(),
            namespace: r.namespace.to_string(),
            name: r.name.to_string(),
            api_group: r.api_group.to_string(),
            api_version: r.api_version.to_string(),
            subresource: r.subresource.to_string(),
            ..Default::default()
        }
    }
}

/// The `metav1.Status` of the response: for a success only `code`, for a failure the Status the
/// client received. Serialized with Kubernetes' always-present empty `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResponseStatus {
    /// `Success` or `Failure`; empty for successes, as kube-apiserver records them.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(default)]
    pub code: i32,
}

impl ResponseStatus {
    /// A response that was not a `Status` (a success): only the HTTP code.
    pub fn code(code: u16) -> Self {
        ResponseStatus { code: i32::from(code), ..Default::default() }
    }

    /// From a `metav1.Status` body, as the server sends it for errors.
    pub fn from_status(status: &Value) -> Self {
        let s = |k: &str| status.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        ResponseStatus {
            status: s("status"),
            message: s("message"),
            reason: s("reason"),
            details: status.get("details").filter(|d| !d.is_null()).cloned(),
            code: status.get("code").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok()).unwrap_or(0),
        }
    }
}

impl Serialize for ResponseStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            metadata: Map<String, Value>,
            #[serde(skip_serializing_if = "str::is_empty")]
            status: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            message: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            reason: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a Value>,
            #[serde(skip_serializing_if = "is_zero")]
            code: i32,
        }
        Wire {
            metadata: Map::new(),
            status: &self.status,
            message: &self.message,
            reason: &self.reason,
            details: self.details.as_ref(),
            code: self.code,
        }
        .serialize(s)
    }
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// One `audit.k8s.io/v1` `Event`. Serializes exactly as kube-apiserver writes it (field names,
/// order, omission of empty optional fields; `kind` and `apiVersion` are added on output).
///
/// Invariant: `requestObject` and `responseObject` are only set through
/// [`Event::set_request_object`] / [`Event::set_response_object`], which apply the level and
/// [`redact`]; the fields are private so no unredacted body can be recorded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    #[serde(default)]
    pub verb: String,
    #[serde(default)]
    pub user: UserInfo,
    #[serde(default)]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", default)]
    pub source_ips: Vec<String>,
    #[serde(default)]
    pub user_agent: String,
    /// Set for every resource request, lists included (resource and namespace); absent for
    /// non-resource requests. Set it before recording bodies: redaction keys on it.
    #[serde(default)]
    pub object_ref: Option<ObjectReference>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    #[serde(default)]
    request_object: Option<Value>,
    #[serde(default)]
    response_object: Option<Value>,
    #[serde(with = "micro_time")]
    pub request_received_timestamp: Timestamp,
    #[serde(with = "micro_time")]
    pub stage_timestamp: Timestamp,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// From [`RuleEvaluation::omit_managed_fields`]; not part of the event's JSON.
    #[serde(skip)]
    pub omit_managed_fields: bool,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            kind: &'static str,
            api_version: &'static str,
            level: Level,
            #[serde(rename = "auditID")]
            audit_id: &'a str,
            stage: Stage,
            #[serde(rename = "requestURI")]
            request_uri: &'a str,
            verb: &'a str,
            user: &'a UserInfo,
            #[serde(skip_serializing_if = "Option::is_none")]
            impersonated_user: Option<&'a UserInfo>,
            #[serde(rename = "sourceIPs", skip_serializing_if = "<[String]>::is_empty")]
            source_ips: &'a [String],
            #[serde(skip_serializing_if = "str::is_empty")]
            user_agent: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            object_ref: Option<&'a ObjectReference>,
            #[serde(skip_serializing_if = "Option::is_none")]
            response_status: Option<&'a ResponseStatus>,
            #[serde(skip_serializing_if = "Option::is_none")]
            request_object: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            response_object: Option<&'a Value>,
            #[serde(with = "micro_time")]
            request_received_timestamp: Timestamp,
            #[serde(with = "micro_time")]
            stage_timestamp: Timestamp,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            annotations: &'a BTreeMap<String, String>,
        }
        Wire {
            kind: "Event",
            api_version: API_VERSION,
            level: self.level,
            audit_id: &self.audit_id,
            stage: self.stage,
            request_uri: &self.request_uri,
            verb: &self.verb,
            user: &self.user,
            impersonated_user: self.impersonated_user.as_ref(),
            source_ips: &self.source_ips,
            user_agent: &self.user_agent,
            object_ref: self.object_ref.as_ref(),
            response_status: self.response_status.as_ref(),
            request_object: self.request_object.as_ref(),
            response_object: self.response_object.as_ref(),
            request_received_timestamp: self.request_received_timestamp,
            stage_timestamp: self.stage_timestamp,
            annotations: &self.annotations,
        }
        .serialize(s)
    }
}

impl Event {
    /// A bare event at `stage`, with `stageTimestamp` = `received`.
    pub fn new(audit_id: impl Into<String>, level: Level, stage: Stage, received: Timestamp) -> Event {
        Event {
            level,
            audit_id: audit_id.into(),
            stage,
            request_uri: String::new(),
            verb: String::new(),
            user: UserInfo::default(),
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: received,
            stage_timestamp: received,
            annotations: BTreeMap::new(),
            omit_managed_fields: false,
        }
    }

    /// The `RequestReceived` event of a request the policy evaluated to `eval`: level, verb,
    /// user, groups and `objectRef` filled in. Set `source_ips`, `user_agent`,
    /// `impersonated_user` and annotations on it, then [`Event::at_stage`] for later stages.
    pub fn from_request(
        audit_id: impl Into<String>,
        eval: &RuleEvaluation,
        attrs: &RequestAttributes<'_>,
        request_uri: impl Into<String>,
        received: Timestamp,
    ) -> Event {
        let mut ev = Event::new(audit_id, eval.level, Stage::RequestReceived, received);
        ev.request_uri = request_uri.into();
        ev.verb = attrs.verb.to_string();
        ev.user = UserInfo { username: attrs.user.to_string(), groups: attrs.groups.to_vec(), ..Default::default() };
        ev.object_ref = match &attrs.target {
            RequestTarget::Resource(r) => Some(ObjectReference::from(r)),
            RequestTarget::NonResource { .. } => None,
        };
        ev.omit_managed_fields = eval.omit_managed_fields;
        ev
    }

    /// A copy of this event at a later stage.
    pub fn at_stage(&self, stage: Stage, now: Timestamp) -> Event {
        Event { stage, stage_timestamp: now, ..self.clone() }
    }

    /// Records the request body if the level is `Request` or above and the request addresses a
    /// resource (`objectRef` set), after [`redact_request`]. Pass the body as JSON (decode YAML
    /// or protobuf bodies first; a body that cannot be decoded is best not recorded).
    pub fn set_request_object(&mut self, mut body: Value) {
        if !self.level.records_request_object() {
            return;
        }
        let Some(obj) = &self.object_ref else { return };
        redact_request(&obj.resource_path(), &self.verb, &mut body);
        if self.omit_managed_fields {
            drop_managed_fields(&mut body);
        }
        self.request_object = Some(body);
    }

    /// Records the response body if the level is `RequestResponse` and the request addresses a
    /// resource, after [`redact`].
    pub fn set_response_object(&mut self, mut body: Value) {
        if !self.level.records_response_object() {
            return;
        }
        let Some(obj) = &self.object_ref else { return };
        redact(&obj.resource_path(), &mut body);
        if self.omit_managed_fields {
            drop_managed_fields(&mut body);
        }
        self.response_object = Some(body);
    }

    pub fn request_object(&self) -> Option<&Value> {
        self.request_object.as_ref()
    }

    pub fn response_object(&self) -> Option<&Value> {
        self.response_object.as_ref()
    }
}

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

/// Which redaction a body gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sensitive {
    Secret,
    TokenRequest,
    TokenReview,
    Other,
}

fn sensitivity(resource_kind_or_plural: &str) -> Sensitive {
    let s = resource_kind_or_plural.to_ascii_lowercase();
    match s.as_str() {
        "secrets" | "secret" | "secretlist" => Sensitive::Secret,
        "serviceaccounts/token" | "tokenrequest" | "tokenrequests" => Sensitive::TokenRequest,
        "tokenreviews" | "tokenreview" => Sensitive::TokenReview,
        _ if s.starts_with("secrets/") => Sensitive::Secret,
        _ => Sensitive::Other,
    }
}

fn marker() -> Value {
    Value::String(REDACTED.to_string())
}

/// Removes every secret value from a body about to be recorded; see the module documentation.
/// `resource_kind_or_plural` is the resource (`secrets`, `serviceaccounts/token`,
/// `tokenreviews`) or the kind (`Secret`, `SecretList`, `TokenRequest`, `TokenReview`); for any
/// other name only nested objects whose `kind` is sensitive are redacted.
pub fn redact(resource_kind_or_plural: &str, body: &mut Value) {
    redact_value(sensitivity(resource_kind_or_plural), body);
}

/// [`redact`] for a request body, which also replaces every `patch` body sent to a sensitive
/// resource by [`REDACTED`]: a patch (JSON, merge, strategic or apply) is not an object of the
/// kind, and a value can hide anywhere in it.
pub fn redact_request(resource_kind_or_plural: &str, verb: &str, body: &mut Value) {
    let hint = sensitivity(resource_kind_or_plural);
    if verb == "patch" && hint != Sensitive::Other {
        *body = marker();
        return;
    }
    redact_value(hint, body);
}

fn redact_value(hint: Sensitive, v: &mut Value) {
    match v {
        Value::Object(map) => redact_object(hint, map),
        Value::Null => {}
        Value::Array(items) if hint == Sensitive::Other => items.iter_mut().for_each(|i| redact_value(hint, i)),
        // Under a sensitive resource anything but an object (a JSON patch, a YAML string, a
        // malformed body) cannot be redacted field by field.
        _ if hint != Sensitive::Other => *v = marker(),
        _ => {}
    }
}

fn redact_object(hint: Sensitive, map: &mut Map<String, Value>) {
    let kind = map.get("kind").and_then(Value::as_str).map(str::to_owned);
    match kind.as_deref() {
        Some("Secret") => redact_secret(map),
        Some("SecretList") => redact_list(Sensitive::Secret, map),
        Some("TokenRequest" | "TokenReview") => redact_token(map),
        Some("List" | "PartialObjectMetadataList") => redact_list(hint, map),
        Some("Table") => redact_table(hint, map),
        // Neither carries values; kept whole so failures and delete options stay readable.
        Some("Status" | "DeleteOptions") if hint != Sensitive::Other => {}
        _ => match hint {
            Sensitive::Secret => redact_secret(map),
            Sensitive::TokenRequest | Sensitive::TokenReview => redact_token(map),
            Sensitive::Other => map.values_mut().for_each(|v| redact_value(Sensitive::Other, v)),
        },
    }
}

/// A Secret (or a PartialObjectMetadata of one): an allow-list of fields, so nothing a malformed
/// payload puts elsewhere survives.
fn redact_secret(map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "apiVersion" | "kind" | "type" | "immutable" => {
                if v.is_object() || v.is_array() {
                    *v = marker();
                }
            }
            "metadata" => redact_metadata(v),
            "data" | "stringData" => match v {
                Value::Object(values) => {
                    values.values_mut().filter(|x| !x.is_null()).for_each(|x| *x = marker());
                }
                Value::Null => {}
                other => *other = marker(),
            },
            _ => *v = marker(),
        }
    }
}

fn redact_metadata(v: &mut Value) {
    match v {
        Value::Object(meta) => {
            meta.remove("managedFields");
            match meta.get_mut("annotations") {
                Some(Value::Object(ann)) => {
                    if let Some(last) = ann.get_mut(LAST_APPLIED) {
                        *last = marker();
                    }
                }
                Some(Value::Null) | None => {}
                Some(other) => *other = marker(),
            }
        }
        Value::Null => {}
        other => *other = marker(),
    }
}

/// TokenRequest (`status.token`) and TokenReview (`spec.token`).
/// TokenRequests and TokenReviews are recorded by allow-list: the token (`status.token`,
/// `spec.token`) becomes the marker, and so does anything that is not one of the kind's own
/// non-secret fields (a misplaced or unknown field may carry a token too).
fn redact_token(map: &mut Map<String, Value>) {
    const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
    const SPEC: &[&str] = &["audiences", "expirationSeconds", "boundObjectRef"];
    const STATUS: &[&str] = &["expirationTimestamp", "authenticated", "user", "audiences", "error"];
    allow_only(map, TOP);
    for (part, allowed) in [("spec", SPEC), ("status", STATUS)] {
        match map.get_mut(part) {
            Some(Value::Object(h)) => allow_only(h, allowed),
            Some(Value::Null) | None => {}
            Some(other) => *other = marker(),
        }
    }
}

/// Replaces the value of every key not in `allowed` with the marker.
fn allow_only(map: &mut Map<String, Value>, allowed: &[&str]) {
    for (k, v) in map.iter_mut() {
        if !allowed.contains(&k.as_str()) {
            *v = marker();
        }
    }
}

fn redact_list(item_hint: Sensitive, map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "items" => match v {
                Value::Array(items) => items.iter_mut().for_each(|i| redact_value(item_hint, i)),
                other => redact_value(item_hint, other),
            },
            "apiVersion" | "kind" | "metadata" => {}
            _ if item_hint != Sensitive::Other => *v = marker(),
            _ => redact_value(Sensitive::Other, v),
        }
    }
}

fn redact_table(row_hint: Sensitive, map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        match k.as_str() {
            "rows" => match v {
                Value::Array(rows) => {
                    for row in rows {
                        match row {
                            Value::Object(r) => {
                                if let Some(obj) = r.get_mut("object") {
                                    redact_value(row_hint, obj);
                                }
                            }
                            other => redact_value(row_hint, other),
                        }
                    }
                }
                other => redact_value(row_hint, other),
            },
            "apiVersion" | "kind" | "metadata" | "columnDefinitions" => {}
            _ if row_hint != Sensitive::Other => *v = marker(),
            _ => redact_value(Sensitive::Other, v),
        }
    }
}

/// `omitManagedFields`: drops `metadata.managedFields` of an object or of a list's items.
fn drop_managed_fields(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(drop_managed_fields);
    }
}

// ---------------------------------------------------------------------------------------------
// The log file
// ---------------------------------------------------------------------------------------------

/// Where and how the log is written; Kubernetes' `--audit-log-*` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogConfig {
    /// `--audit-log-path`; `-` writes to standard output (no rotation).
    pub path: PathBuf,
    /// `--audit-log-maxsize`: megabytes (MiB) before rotation; 0 means [`DEFAULT_MAX_SIZE_MB`].
    pub max_size_mb: u64,
    /// `--audit-log-maxbackup`: rotated files kept; 0 keeps all.
    pub max_backups: usize,
    /// `--audit-log-maxage`: days a rotated file is kept, by the time in its name; 0 keeps all.
    pub max_age_days: u64,
}

/// The audit log sink. Cheap to share (`Arc<AuditLog>`); writes are serialized by a mutex.
#[derive(Debug)]
pub struct AuditLog {
    sink: Mutex<Sink>,
}

#[derive(Debug)]
enum Sink {
    Stdout,
    File(FileSink),
}

#[derive(Debug)]
struct FileSink {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    max_bytes: u64,
    max_backups: usize,
    max_age: Option<SignedDuration>,
    /// The newest backup's time, so backup names only grow even if the clock steps back or two
    /// rotations fall in one millisecond.
    newest_backup: Option<Timestamp>,
}

/// Opens for appending, creating the file with mode 0600 (never an executable mode: the path is
/// the operator's, from the configuration, never from the API, CVE-2025-6000).
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Refuses anything but a regular file without executable bits.
fn check_log_file(path: &Path, meta: &fs::Metadata) -> Result<(), AuditError> {
    let unsafe_path = |reason: String| AuditError::UnsafeLogPath { path: path.to_path_buf(), reason };
    if meta.is_dir() {
        return Err(unsafe_path("it is a directory".into()));
    }
    if !meta.is_file() {
        return Err(unsafe_path("it is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o111 != 0 {
        return Err(unsafe_path(format!(
            "it has executable permission bits (mode {mode:04o}); audit logs are never executable"
        )));
    }
    Ok(())
}

/// Go's `filepath.Dir`, `filepath.Ext` and the name without it, as lumberjack splits the path.
fn split_log_path(path: &Path) -> Option<(PathBuf, String, String)> {
    let name = path.file_name()?.to_str()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (prefix, ext) = match name.rfind('.') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    Some((dir, prefix.to_string(), ext.to_string()))
}

fn backup_path(path: &Path, at: Timestamp) -> Option<PathBuf> {
    let (dir, prefix, ext) = split_log_path(path)?;
    Some(dir.join(format!("{prefix}-{}{ext}", at.strftime(BACKUP_TIME_FORMAT))))
}

/// Parses `2006-01-02T15-04-05.000` (UTC).
fn parse_backup_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 23 || !s.is_ascii() || b[13] != b'-' || b[16] != b'-' || b[19] != b'.' {
        return None;
    }
    format!("{}:{}:{}Z", &s[..13], &s[14..16], &s[17..]).parse().ok()
}

/// The rotated files of the log at `path`, oldest first.
fn backups_of(path: &Path) -> io::Result<Vec<(Timestamp, PathBuf)>> {
    let Some((dir, prefix, ext)) = split_log_path(path) else { return Ok(Vec::new()) };
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let head = format!("{prefix}-");
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(ts) = name.strip_prefix(&head).and_then(|r| r.strip_suffix(ext.as_str())).and_then(parse_backup_time)
        else {
            continue;
        };
        out.push((ts, entry.path()));
    }
    out.sort();
    Ok(out)
}

impl AuditLog {
    /// Opens the log, creating missing parent directories (0700) and the file (0600); an existing
    /// file is appended to. Refuses a directory, a non-regular file or a file with any executable
    /// bit. Prunes rotated files beyond `max_backups`/`max_age_days`.
    pub fn open(config: AuditLogConfig) -> Result<AuditLog, AuditError> {
        let mb = if config.max_size_mb == 0 { DEFAULT_MAX_SIZE_MB } else { config.max_size_mb };
        AuditLog::open_with_max_bytes(config, mb.saturating_mul(1024 * 1024))
    }

    pub(crate) fn open_with_max_bytes(config: AuditLogConfig, max_bytes: u64) -> Result<AuditLog, AuditError> {
        let path = config.path;
        if path.as_os_str() == "-" {
            return Ok(AuditLog { sink: Mutex::new(Sink::Stdout) });
        }
        let unsafe_path = |reason: &str| AuditError::UnsafeLogPath { path: path.clone(), reason: reason.to_string() };
        if path.as_os_str().is_empty() {
            return Err(unsafe_path("the path is empty"));
        }
        if split_log_path(&path).is_none() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(unsafe_path("the path must name a file, in UTF-8"));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err("create the directory of audit log", &path))?;
        }
        match fs::metadata(&path) {
            Ok(meta) => check_log_file(&path, &meta)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect audit log", &path)(e)),
        }
        let file = open_append(&path).map_err(io_err("open audit log", &path))?;
        // Again on the opened file, so a swap between the check and the open is caught.
        let meta = file.metadata().map_err(io_err("inspect audit log", &path))?;
        check_log_file(&path, &meta)?;
        let max_age = match config.max_age_days {
            0 => None,
            days => i64::try_from(days).ok().and_then(|d| d.checked_mul(24)).map(SignedDuration::from_hours),
        };
        let newest_backup = backups_of(&path).ok().and_then(|b| b.last().map(|(t, _)| *t));
        let sink = FileSink {
            path,
            file,
            size: meta.len(),
            max_bytes: max_bytes.max(1),
            max_backups: config.max_backups,
            max_age,
            newest_backup,
        };
        sink.prune(Timestamp::now());
        Ok(AuditLog { sink: Mutex::new(Sink::File(sink)) })
    }

    /// Appends the event as one JSON line, with one write call, under the mutex; rotates first
    /// if the line would take the file past its maximum size. Blocking (a page-cache write, no
    /// fsync). An error means the record is not (wholly) written: fail the request closed.
    pub fn write(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        // A panic elsewhere while holding the lock leaves the sink usable: its state is updated
        // only after each operation succeeds.
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&line)?;
                out.flush()
            }
            Sink::File(f) => f.write_line(&line),
        }
    }

    /// The file written, or `None` for standard output.
    pub fn path(&self) -> Option<PathBuf> {
        match &*self.sink.lock().unwrap_or_else(PoisonError::into_inner) {
            Sink::Stdout => None,
            Sink::File(f) => Some(f.path.clone()),
        }
    }
}

impl FileSink {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        // A line larger than the maximum goes alone into a fresh file rather than being refused
        // (lumberjack refuses it): losing the record would fail the request.
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        match self.file.write_all(line) {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(e) => {
                if let Ok(meta) = self.file.metadata() {
                    self.size = meta.len();
                }
                Err(e)
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let now = Timestamp::now();
        let mut at = match self.newest_backup {
            Some(newest) if newest >= now => newest + SignedDuration::from_millis(1),
            _ => now,
        };
        let backup = loop {
            let candidate =
                backup_path(&self.path, at).ok_or_else(|| io::Error::other("audit log path has no file name"))?;
            match fs::symlink_metadata(&candidate) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => break candidate,
                Err(e) => return Err(e),
                Ok(_) => at += SignedDuration::from_millis(1),
            }
        };
        match fs::rename(&self.path, &backup) {
            Ok(()) => {}
            // Removed by someone else: start a fresh file all the same.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.newest_backup = Some(at);
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata()?.len();
        self.prune(now);
        Ok(())
    }

    /// Deletes rotated files beyond `max_backups` and older than `max_age`. Failures are logged,
    /// not returned: the record itself was written.
    fn prune(&self, now: Timestamp) {
        if self.max_backups == 0 && self.max_age.is_none() {
            return;
        }
        let backups = match backups_of(&self.path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot list rotated audit logs");
                return;
            }
        };
        let excess = if self.max_backups > 0 { backups.len().saturating_sub(self.max_backups) } else { 0 };
        let cutoff = self.max_age.and_then(|age| now.checked_sub(age).ok());
        for (i, (ts, p)) in backups.iter().enumerate() {
            if i < excess || cutoff.is_some_and(|c| *ts < c) {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(path = %p.display(), error = %e, "cannot remove rotated audit log"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------------

/// The log at `path` and its rotated files, oldest first (the current file last, if it exists).
/// `-` (standard output) has none. An error, never an empty list, when the directory cannot be
/// read: "nobody read it" must not be the answer to "cannot look".
pub fn list_log_files(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    if path.as_os_str() == "-" {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> =
        backups_of(path).map_err(io_err("list audit logs of", path))?.into_iter().map(|(_, p)| p).collect();
    match fs::metadata(path) {
        Ok(m) if m.is_file() => files.push(path.to_path_buf()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect audit log", path)(e)),
    }
    Ok(files)
}

/// How a recorded request could have returned the secret's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadKind {
    /// `get` of the secret.
    Direct,
    /// `list` or `watch` of secrets in its namespace or in all namespaces.
    Collection,
    /// `create`, `update`, `patch`, `delete` of the secret or `deletecollection` over it: the
    /// response carries the object, values included.
    WriteResponse,
}

/// One request that could have returned a secret's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadRecord {
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// When the request arrived.
    #[serde(with = "micro_time")]
    pub received: Timestamp,
    pub stage: Stage,
    #[serde(with = "micro_time")]
    pub stage_timestamp: Timestamp,
    pub kind: ReadKind,
    pub verb: String,
    pub user: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs")]
    pub source_ips: Vec<String>,
    pub user_agent: String,
    /// The response code; `None` when the event has none (kept: it may have succeeded).
    pub code: Option<i32>,
    /// The request's namespace; empty for a cluster-wide list or watch.
    pub namespace: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
}

/// The answer of [`reads_of_secret`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretReads {
    /// In log order (oldest first), one per request (a watch's ResponseStarted and
    /// ResponseComplete count once).
    pub records: Vec<ReadRecord>,
    /// Lines parsed as events.
    pub events_scanned: usize,
    /// Non-empty lines that are not events (a torn last line after a crash, foreign text).
    pub unparsable_lines: usize,
}

/// The fields the query needs; everything else (bodies included) is skipped while parsing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScannedEvent {
    #[serde(rename = "auditID", default)]
    audit_id: String,
    stage: Stage,
    #[serde(rename = "requestURI", default)]
    request_uri: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    user: UserInfo,
    #[serde(default)]
    impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", default)]
    source_ips: Vec<String>,
    #[serde(default)]
    user_agent: String,
    #[serde(default)]
    object_ref: Option<ObjectReference>,
    #[serde(default)]
    response_status: Option<ScannedStatus>,
    #[serde(with = "micro_time")]
    request_received_timestamp: Timestamp,
    #[serde(with = "micro_time")]
    stage_timestamp: Timestamp,
}

#[derive(Deserialize)]
struct ScannedStatus {
    #[serde(default)]
    code: i64,
}

fn classify(ev: ScannedEvent, namespace: &str, name: &str, since: Option<Timestamp>) -> Option<ReadRecord> {
    if !matches!(ev.stage, Stage::ResponseStarted | Stage::ResponseComplete) {
        return None;
    }
    if since.is_some_and(|s| ev.stage_timestamp < s) {
        return None;
    }
    let obj = ev.object_ref.as_ref()?;
    if obj.resource != "secrets" || !obj.api_group.is_empty() || !obj.subresource.is_empty() {
        return None;
    }
    let code = ev.response_status.as_ref().map(|s| s.code).filter(|c| *c != 0);
    if code.is_some_and(|c| !(0..400).contains(&c)) {
        return None;
    }
    let this_object = obj.namespace == namespace && obj.name == name;
    // A list or watch may be narrowed to one name (fieldSelector metadata.name=...).
    let over_namespace =
        (obj.namespace == namespace || obj.namespace.is_empty()) && (obj.name.is_empty() || obj.name == name);
    let kind = match ev.verb.as_str() {
        "get" if this_object => ReadKind::Direct,
        "list" | "watch" if over_namespace => ReadKind::Collection,
        "create" | "update" | "patch" | "delete" if this_object => ReadKind::WriteResponse,
        "deletecollection" if over_namespace => ReadKind::WriteResponse,
        _ => return None,
    };
    Some(ReadRecord {
        namespace: obj.namespace.clone(),
        audit_id: ev.audit_id,
        received: ev.request_received_timestamp,
        stage: ev.stage,
        stage_timestamp: ev.stage_timestamp,
        kind,
        verb: ev.verb,
        user: ev.user,
        impersonated_user: ev.impersonated_user,
        source_ips: ev.source_ips,
        user_agent: ev.user_agent,
        code: code.and_then(|c| i32::try_from(c).ok()),
        request_uri: ev.request_uri,
    })
}

/// Every recorded request that could have returned the value of secret `namespace/name`:
/// successful (code < 400, or no code recorded) `ResponseStarted`/`ResponseComplete` events of a
/// `get` of it, a `list`/`watch` of secrets in its namespace or cluster-wide (unless narrowed to
/// another name), or a write whose response carried it. `since` keeps events whose stage time is
/// at or after it (a watch opened earlier and still streaming counts). `files` is
/// [`list_log_files`]' answer; all are opened before reading, so a rotation meanwhile loses
/// nothing, and a file rotated away before that is skipped.
pub fn reads_of_secret(
    files: &[PathBuf],
    namespace: &str,
    name: &str,
    since: Option<Timestamp>,
) -> Result<SecretReads, AuditError> {
    let mut opened = Vec::new();
    for path in files {
        match File::open(path) {
            Ok(f) => opened.push((path, f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read audit log", path)(e)),
        }
    }
    let mut out = SecretReads::default();
    let mut seen = HashSet::new();
    let mut buf = Vec::new();
    for (path, file) in opened {
        let mut reader = BufReader::new(file);
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(io_err("read audit log", path))? == 0 {
                break;
            }
            let line = buf.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let Ok(ev) = serde_json::from_slice::<ScannedEvent>(line) else {
                out.unparsable_lines += 1;
                continue;
            };
            out.events_scanned += 1;
            if let Some(rec) = classify(ev, namespace, name, since)
                && (rec.audit_id.is_empty() || seen.insert(rec.audit_id.clone()))
            {
                out.records.push(rec);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CANARY: &str = "CANARY-7f3a9c-do-not-log";

    // -- policy parsing ------------------------------------------------------------------------

    /// Modelled on the example of the Kubernetes "Auditing" documentation page.
    const EXAMPLE_POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
metadata:
  name: example
omitStages:
  - "RequestReceived"
rules:
  # Full bodies of deployment changes.
  - level: RequestResponse
    resources:
    - group: "apps"
      resources: ["deployments"]
  # Pod logs and statuses: metadata only.
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]
  # A noisy leader-election configmap.
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["leader-lock"]
  # Watches by the proxy.
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: ""
      resources: ["endpoints", "services"]
  # Discovery by anyone authenticated.
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*"
    - "/version"
  # Configmap bodies in kube-system.
  - level: Request
    resources:
    - group: ""
      resources: ["configmaps"]
    namespaces: ["kube-system"]
  # Secrets and configmaps elsewhere: metadata only.
  - level: Metadata
    resources:
    - group: ""
      resources: ["secrets", "configmaps"]
  # Anything else in these groups.
  - level: Request
    resources:
    - group: ""
    - group: "extensions"
  # Catch-all.
  - level: Metadata
    omitStages:
      - "ResponseStarted"
"#;

    fn policy(rules_yaml: &str) -> Result<Policy, AuditError> {
        Policy::from_yaml(&format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules_yaml}"))
    }

    fn err_message(r: Result<Policy, AuditError>) -> String {
        match r {
            Ok(_) => panic!("expected the policy to be rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_documentation_style_policy() {
        let p = Policy::from_yaml(EXAMPLE_POLICY).expect("valid");
        assert_eq!(p.rules().len(), 9);
        assert_eq!(p.omit_stages(), &[Stage::RequestReceived]);
        assert_eq!(p.rules()[0].level, Level::RequestResponse);
        assert_eq!(
            p.rules()[0].resources,
            vec![GroupResources {
                group: "apps".into(),
                resources: vec!["deployments".into()],
                resource_names: vec![]
            }]
        );
        assert_eq!(p.rules()[2].resources[0].resource_names, vec!["leader-lock".to_string()]);
        assert_eq!(p.rules()[3].users, vec!["system:kube-proxy".to_string()]);
        assert_eq!(p.rules()[4].non_resource_urls, vec!["/api*".to_string(), "/version".to_string()]);
        assert_eq!(p.rules()[5].namespaces, vec!["kube-system".to_string()]);
        assert_eq!(p.rules()[7].resources.len(), 2);
        assert_eq!(p.rules()[8].omit_stages, vec![Stage::ResponseStarted]);
    }

    #[test]
    fn parses_json_policy() {
        let p = Policy::from_yaml(
            r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","omitManagedFields":true,
                "rules":[{"level":"Metadata","verbs":["get"],"omitManagedFields":false},{"level":"None"}]}"#,
        )
        .expect("valid");
        assert_eq!(p.rules().len(), 2);
        assert!(p.omit_managed_fields());
        assert_eq!(p.rules()[0].omit_managed_fields, Some(false));
        assert_eq!(p.rules()[0].verbs, vec!["get".to_string()]);
    }

    #[test]
    fn rejects_other_api_versions_and_kinds() {
        let v1beta1 = "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: Metadata\n";
        assert_eq!(
            err_message(Policy::from_yaml(v1beta1)),
            "audit policy must have apiVersion \"audit.k8s.io/v1\" and kind \"Policy\", found apiVersion \"audit.k8s.io/v1beta1\" and kind \"Policy\""
        );
        let wrong_kind = "apiVersion: audit.k8s.io/v1\nkind: EncryptionConfiguration\nrules:\n- level: Metadata\n";
        assert!(
            err_message(Policy::from_yaml(wrong_kind))
                .contains("found apiVersion \"audit.k8s.io/v1\" and kind \"EncryptionConfiguration\"")
        );
        let missing = "rules:\n- level: Metadata\n";
        assert!(err_message(Policy::from_yaml(missing)).contains("found apiVersion \"\" and kind \"\""));
        assert!(err_message(Policy::from_yaml("[1, 2]")).starts_with("failed decoding audit policy: "));
    }

    #[test]
    fn rejects_unknown_levels_with_kubernetes_message() {
        assert_eq!(
            err_message(policy("- level: Verbose\n")),
            "rules[0].level: Unsupported value: \"Verbose\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\""
        );
        assert_eq!(err_message(policy("- verbs: [get]\n")), "rules[0].level: Required value");
        // Case matters, as in Kubernetes.
        assert!(err_message(policy("- level: metadata\n")).contains("Unsupported value: \"metadata\""));
    }

    #[test]
    fn rejects_unknown_stages() {
        assert_eq!(
            err_message(policy("- level: None\n- level: Metadata\n  omitStages: [Done]\n")),
            "rules[1].omitStages[0]: Invalid value: \"Done\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic"
        );
        let top = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Received]\nrules:\n- level: None\n";
        assert_eq!(
            err_message(Policy::from_yaml(top)),
            "omitStages[0]: Invalid value: \"Received\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic"
        );
    }

    #[test]
    fn rejects_invalid_rules_with_kubernetes_messages() {
        assert_eq!(
            err_message(policy("- level: None\n  nonResourceURLs: [healthz]\n")),
            "rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' character"
        );
        assert_eq!(
            err_message(policy("- level: None\n  nonResourceURLs: [\"/a*/b\"]\n")),
            "rules[0].nonResourceURLs[0]: Invalid value: \"/a*/b\": non-resource URL wildcards '*' must be the final character of the rule"
        );
        assert_eq!(
            err_message(policy("- level: None\n  nonResourceURLs: [\"/x\"]\n  namespaces: [default]\n")),
            "rules[0].nonResourceURLs: Invalid value: []string{\"/x\"}: rules cannot apply to both regular resources and non-resource URLs"
        );
        assert_eq!(
            err_message(policy("- level: None\n  resources:\n  - group: \"\"\n    resourceNames: [a]\n")),
            "rules[0].resources.resourceNames: Invalid value: []string{\"a\"}: using resourceNames requires at least one resource"
        );
        assert!(
            err_message(policy("- level: None\n  resources:\n  - group: rbac.authorization.k8s.io/v1\n")).starts_with(
                "rules[0].resources.group: Invalid value: \"rbac.authorization.k8s.io/v1\": a lowercase RFC 1123 subdomain"
            )
        );
        // Several errors are aggregated as Kubernetes prints them.
        assert_eq!(
            err_message(policy("- level: Bad\n- level: None\n  omitStages: [X]\n")),
            "[rules[0].level: Unsupported value: \"Bad\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\", \
             rules[1].omitStages[0]: Invalid value: \"X\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic]"
        );
    }

    #[test]
    fn rejects_empty_policies_and_unknown_fields() {
        assert_eq!(
            err_message(Policy::from_yaml("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")),
            "loaded illegal policy with 0 rules"
        );
        assert_eq!(
            err_message(Policy::from_yaml("apiVersion: audit.k8s.io/v1\nkind: Policy\n")),
            "loaded illegal policy with 0 rules"
        );
        let typo = err_message(policy("- level: None\n  resource:\n  - group: \"\"\n"));
        assert!(typo.starts_with("failed decoding audit policy: "), "{typo}");
        assert!(typo.contains("unknown field `resource`"), "{typo}");
    }

    #[test]
    fn policy_file_errors_name_the_file() {
        let dir = TestDir::new();
        let path = dir.0.join("policy.yaml");
        fs::write(&path, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n").expect("write");
        let msg = Policy::from_file(&path).expect_err("empty").to_string();
        assert_eq!(msg, format!("loaded illegal policy with 0 rules: from file {}", path.display()));
        let missing = Policy::from_file(&dir.0.join("nope.yaml")).expect_err("missing").to_string();
        assert!(missing.starts_with("cannot read audit policy "), "{missing}");
    }

    #[test]
    fn invariant_policy_is_validated() {
        // The only ways to get a Policy are from_yaml/from_file/strongroom_default, all validating.
        let p = Policy::strongroom_default();
        assert!(!p.rules().is_empty());
        assert!(policy("- level: Nope\n").is_err());
    }

    // -- rule matching -------------------------------------------------------------------------

    struct Req {
        user: &'static str,
        groups: Vec<String>,
        verb: &'static str,
        res: Option<ResourceAttributes<'static>>,
        path: &'static str,
    }

    fn res(
        group: &'static str,
        resource: &'static str,
        sub: &'static str,
        ns: &'static str,
        name: &'static str,
    ) -> Option<ResourceAttributes<'static>> {
        Some(ResourceAttributes {
            api_group: group,
            api_version: "v1",
            resource,
            subresource: sub,
            namespace: ns,
            name,
        })
    }

    fn req(user: &'static str, groups: &[&str], verb: &'static str, res: Option<ResourceAttributes<'static>>) -> Req {
        Req { user, groups: groups.iter().map(|g| g.to_string()).collect(), verb, res, path: "" }
    }

    fn nonres(user: &'static str, groups: &[&str], verb: &'static str, path: &'static str) -> Req {
        Req { user, groups: groups.iter().map(|g| g.to_string()).collect(), verb, res: None, path }
    }

    fn eval(p: &Policy, r: &Req) -> RuleEvaluation {
        let target = match r.res {
            Some(res) => RequestTarget::Resource(res),
            None => RequestTarget::NonResource { path: r.path },
        };
        p.evaluate(&RequestAttributes { user: r.user, groups: &r.groups, verb: r.verb, target })
    }

    #[test]
    fn rule_matching_table() {
        let p = policy(
            r#"
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
- level: RequestResponse
  userGroups: ["auditors"]
  resources:
  - group: ""
    resources: ["configmaps"]
    resourceNames: ["special"]
- level: Request
  resources:
  - group: ""
    resources: ["pods/log", "*/status"]
- level: Metadata
  resources:
  - group: "apps"
    resources: ["deployments/*"]
- level: Request
  namespaces: [""]
  resources:
  - group: ""
    resources: ["namespaces", "configmaps"]
- level: RequestResponse
  namespaces: ["kube-system"]
- level: Metadata
  nonResourceURLs: ["/healthz*", "/version"]
- level: Request
  resources:
  - group: "batch"
- level: Metadata
  resources:
  - group: "example.io"
    resources: ["*"]
"#,
        )
        .expect("valid");
        let cases: Vec<(&str, Req, Level)> = vec![
            (
                "users+verbs match",
                req("system:kube-proxy", &[], "watch", res("", "services", "", "default", "")),
                Level::None,
            ),
            (
                "users match, verb does not",
                req("system:kube-proxy", &[], "get", res("", "pods", "log", "default", "p")),
                Level::Request,
            ),
            (
                "group and resourceName",
                req("alice", &["auditors"], "get", res("", "configmaps", "", "default", "special")),
                Level::RequestResponse,
            ),
            (
                "group, other name",
                req("alice", &["auditors"], "get", res("", "configmaps", "", "default", "other")),
                Level::None,
            ),
            (
                "name rule needs the name: list",
                req("alice", &["auditors"], "list", res("", "configmaps", "", "kube-system", "")),
                Level::RequestResponse,
            ),
            (
                "not in group",
                req("bob", &["devs"], "get", res("", "configmaps", "", "default", "special")),
                Level::None,
            ),
            ("subresource exact", req("bob", &[], "get", res("", "pods", "log", "default", "p")), Level::Request),
            ("resource without subresource", req("bob", &[], "get", res("", "pods", "", "default", "p")), Level::None),
            (
                "*/status any resource",
                req("bob", &[], "update", res("", "services", "status", "default", "s")),
                Level::Request,
            ),
            (
                "*/status needs a subresource",
                req("bob", &[], "update", res("", "services", "", "default", "s")),
                Level::None,
            ),
            (
                "deployments/* subresource",
                req("bob", &[], "update", res("apps", "deployments", "scale", "default", "d")),
                Level::Metadata,
            ),
            (
                "deployments/* matches the resource too",
                req("bob", &[], "get", res("apps", "deployments", "", "default", "d")),
                Level::Metadata,
            ),
            (
                "other group same resource",
                req("bob", &[], "get", res("", "deployments", "scale", "default", "d")),
                Level::None,
            ),
            (
                "namespace \"\" is cluster scope",
                req("bob", &[], "get", res("", "namespaces", "", "", "default")),
                Level::Request,
            ),
            (
                "namespace \"\" rejects namespaced",
                req("bob", &[], "get", res("", "configmaps", "", "default", "c")),
                Level::None,
            ),
            (
                "namespaces only",
                req("bob", &[], "get", res("", "secrets", "", "kube-system", "s")),
                Level::RequestResponse,
            ),
            ("non-resource trailing *", nonres("bob", &[], "get", "/healthz/etcd"), Level::Metadata),
            ("non-resource prefix *", nonres("bob", &[], "get", "/healthz"), Level::Metadata),
            ("non-resource exact", nonres("bob", &[], "get", "/version"), Level::Metadata),
            ("non-resource no match", nonres("bob", &[], "get", "/versions"), Level::None),
            ("namespaces rule skips non-resource", nonres("bob", &[], "get", "/api"), Level::None),
            (
                "group with no resources",
                req("bob", &[], "create", res("batch", "jobs", "", "default", "j")),
                Level::Request,
            ),
            (
                "* matches subresources",
                req("bob", &[], "get", res("example.io", "widgets", "status", "default", "w")),
                Level::Metadata,
            ),
        ];
        for (what, r, want) in cases {
            assert_eq!(eval(&p, &r).level, want, "{what}");
        }
    }

    #[test]
    fn first_match_wins_and_omit_stages_union() {
        let p = Policy::from_yaml(
            r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [get]
  omitStages: [ResponseStarted, RequestReceived]
- level: RequestResponse
  verbs: [get, list]
"#,
        )
        .expect("valid");
        let get = eval(&p, &req("u", &[], "get", res("", "secrets", "", "ns", "s")));
        assert_eq!(get.level, Level::Metadata);
        assert_eq!(get.omit_stages, vec![Stage::RequestReceived, Stage::ResponseStarted]);
        assert!(!get.records(Stage::ResponseStarted));
        assert!(get.records(Stage::ResponseComplete));
        let list = eval(&p, &req("u", &[], "list", res("", "secrets", "", "ns", "")));
        assert_eq!(list.level, Level::RequestResponse);
        assert_eq!(list.omit_stages, vec![Stage::RequestReceived]);
        let none = eval(&p, &req("u", &[], "delete", res("", "secrets", "", "ns", "s")));
        assert_eq!(none.level, Level::None);
        assert_eq!(none.omit_stages, vec![Stage::RequestReceived]);
        assert!(!none.records(Stage::ResponseComplete));
    }

    #[test]
    fn strongroom_default_policy() {
        let p = Policy::strongroom_default();
        let cases: Vec<(&str, Req, Level)> = vec![
            ("get secret", req("u", &[], "get", res("", "secrets", "", "ns", "s")), Level::Metadata),
            ("list secrets", req("u", &[], "list", res("", "secrets", "", "", "")), Level::Metadata),
            ("watch secrets", req("u", &[], "watch", res("", "secrets", "", "ns", "")), Level::Metadata),
            ("get serviceaccount", req("u", &[], "get", res("", "serviceaccounts", "", "ns", "sa")), Level::Metadata),
            (
                "token request",
                req("u", &[], "create", res("", "serviceaccounts", "token", "ns", "sa")),
                Level::Metadata,
            ),
            (
                "tokenreview",
                req("u", &[], "create", res("authentication.k8s.io", "tokenreviews", "", "", "")),
                Level::Metadata,
            ),
            (
                "selfsubjectreview (a write)",
                req("u", &[], "create", res("authentication.k8s.io", "selfsubjectreviews", "", "", "")),
                Level::Metadata,
            ),
            (
                "sar",
                req("u", &[], "create", res("authorization.k8s.io", "subjectaccessreviews", "", "", "")),
                Level::Metadata,
            ),
            (
                "rbac read",
                req("u", &[], "list", res("rbac.authorization.k8s.io", "roles", "", "ns", "")),
                Level::Metadata,
            ),
            (
                "rbac get clusterrole",
                req("u", &[], "get", res("rbac.authorization.k8s.io", "clusterroles", "", "", "admin")),
                Level::Metadata,
            ),
            ("create namespace", req("u", &[], "create", res("", "namespaces", "", "", "")), Level::Metadata),
            (
                "deletecollection configmaps",
                req("u", &[], "deletecollection", res("", "configmaps", "", "ns", "")),
                Level::Metadata,
            ),
            ("get namespace", req("u", &[], "get", res("", "namespaces", "", "", "default")), Level::None),
            ("list namespaces", req("u", &[], "list", res("", "namespaces", "", "", "")), Level::None),
            ("healthz", nonres("u", &[], "get", "/healthz"), Level::None),
            ("discovery", nonres("u", &[], "get", "/apis"), Level::None),
            ("openapi", nonres("u", &[], "get", "/openapi/v3/api/v1"), Level::None),
        ];
        for (what, r, want) in cases {
            let e = eval(&p, &r);
            assert_eq!(e.level, want, "{what}");
            assert_eq!(e.omit_stages, vec![Stage::RequestReceived], "{what}");
        }
    }

    // -- events --------------------------------------------------------------------------------

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn event_json_matches_kubernetes() {
        let groups = vec!["system:masters".to_string(), "system:authenticated".to_string()];
        let attrs = RequestAttributes {
            user: "admin",
            groups: &groups,
            verb: "get",
            target: RequestTarget::Resource(ResourceAttributes {
                api_group: "",
                api_version: "v1",
                resource: "secrets",
                subresource: "",
                namespace: "default",
                name: "db",
            }),
        };
        let e = RuleEvaluation { level: Level::Metadata, omit_stages: vec![], omit_managed_fields: false };
        let mut ev = Event::from_request(
            "4b9f1f8e-7f1c-4b51-9d52-5b0f3c1c2a10",
            &e,
            &attrs,
            "/api/v1/namespaces/default/secrets/db",
            ts("2025-03-04T05:06:07.123456789Z"),
        );
        ev.source_ips = vec!["127.0.0.1".into()];
        ev.user_agent = "kubectl/v1.32.5 (linux/amd64) kubernetes/0000000".into();
        ev.annotations.insert(ANNOTATION_DECISION.into(), "allow".into());
        ev.annotations.insert(ANNOTATION_REASON.into(), "".into());
        let mut done = ev.at_stage(Stage::ResponseComplete, ts("2025-03-04T05:06:07.2Z"));
        done.response_status = Some(ResponseStatus::code(200));
        let json = serde_json::to_string(&done).expect("serializes");
        assert_eq!(
            json,
            concat!(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"4b9f1f8e-7f1c-4b51-9d52-5b0f3c1c2a10","#,
                r#""stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets/db","verb":"get","#,
                r#""user":{"username":"admin","groups":["system:masters","system:authenticated"]},"sourceIPs":["127.0.0.1"],"#,
                r#""userAgent":"kubectl/v1.32.5 (linux/amd64) kubernetes/0000000","#,
                r#""objectRef":{"resource":"secrets","namespace":"default","name":"db","apiVersion":"v1"},"#,
                r#""responseStatus":{"metadata":{},"code":200},"#,
                r#""requestReceivedTimestamp":"2025-03-04T05:06:07.123456Z","stageTimestamp":"2025-03-04T05:06:07.200000Z","#,
                r#""annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#
            )
        );
        // And it reads back.
        let back: Event = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.stage_timestamp, ts("2025-03-04T05:06:07.2Z"));
        assert_eq!(back.object_ref, done.object_ref);
        assert_eq!(back.user, done.user);
    }

    #[test]
    fn event_omits_empty_fields() {
        let ev = Event::new("id", Level::Metadata, Stage::ResponseComplete, ts("2025-01-01T00:00:00Z"));
        let json = serde_json::to_string(&ev).expect("serializes");
        assert_eq!(
            json,
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id","stage":"ResponseComplete","requestURI":"","verb":"","user":{},"requestReceivedTimestamp":"2025-01-01T00:00:00.000000Z","stageTimestamp":"2025-01-01T00:00:00.000000Z"}"#
        );
    }

    #[test]
    fn event_failure_status_and_impersonation() {
        let mut ev = Event::new("id", Level::Metadata, Stage::ResponseComplete, ts("2025-01-01T00:00:00Z"));
        ev.impersonated_user = Some(UserInfo { username: "bob".into(), ..Default::default() });
        ev.user.extra.insert("scopes".into(), vec!["a".into()]);
        ev.response_status = Some(ResponseStatus::from_status(&json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "secrets \"db\" is forbidden", "reason": "Forbidden",
            "details": {"name": "db", "kind": "secrets"}, "code": 403
        })));
        let v: Value = serde_json::to_value(&ev).expect("serializes");
        assert_eq!(v["impersonatedUser"], json!({"username": "bob"}));
        assert_eq!(v["user"], json!({"extra": {"scopes": ["a"]}}));
        assert_eq!(
            serde_json::to_string(&v["responseStatus"]).expect("json"),
            r#"{"metadata":{},"status":"Failure","message":"secrets \"db\" is forbidden","reason":"Forbidden","details":{"name":"db","kind":"secrets"},"code":403}"#
        );
    }

    #[test]
    fn bodies_follow_the_level() {
        let at = ts("2025-01-01T00:00:00Z");
        let mut meta = Event::new("a", Level::Metadata, Stage::ResponseComplete, at);
        meta.object_ref = Some(ObjectReference { resource: "configmaps".into(), ..Default::default() });
        meta.set_request_object(json!({"kind": "ConfigMap"}));
        meta.set_response_object(json!({"kind": "ConfigMap"}));
        assert!(meta.request_object().is_none() && meta.response_object().is_none());

        let mut req = meta.clone();
        req.level = Level::Request;
        req.set_request_object(json!({"kind": "ConfigMap"}));
        req.set_response_object(json!({"kind": "ConfigMap"}));
        assert_eq!(req.request_object(), Some(&json!({"kind": "ConfigMap"})));
        assert!(req.response_object().is_none());

        let mut full = meta.clone();
        full.level = Level::RequestResponse;
        full.omit_managed_fields = true;
        full.set_response_object(
            json!({"kind": "ConfigMapList", "items": [{"metadata": {"name": "a", "managedFields": [{}]}}]}),
        );
        assert_eq!(
            full.response_object(),
            Some(&json!({"kind": "ConfigMapList", "items": [{"metadata": {"name": "a"}}]}))
        );

        // Non-resource requests never record bodies.
        let mut nonres = Event::new("b", Level::RequestResponse, Stage::ResponseComplete, at);
        nonres.set_request_object(json!({"x": 1}));
        assert!(nonres.request_object().is_none());
    }

    // -- redaction -----------------------------------------------------------------------------

    fn secret_with_canary() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "db", "namespace": "default",
                "annotations": {
                    LAST_APPLIED: format!("{{\"stringData\":{{\"password\":\"{CANARY}\"}}}}"),
                    "team": "payments"
                },
                "managedFields": [{"manager": "kubectl", "fieldsV1": {format!("f:{CANARY}"): {}}}]
            },
            "type": "Opaque",
            "data": {"password": CANARY, "user": "YWRtaW4="},
            "stringData": {"token": CANARY},
        })
    }

    fn assert_no_canary(what: &str, v: &impl Serialize) {
        let s = serde_json::to_string(v).expect("serializes");
        assert!(!s.contains(CANARY), "{what} leaked the canary: {s}");
        assert!(!s.contains("Q0FOQVJZ"), "{what} leaked the base64 canary: {s}");
    }

    fn recorded(resource: &str, subresource: &str, verb: &str, req: Value, resp: Value) -> Event {
        let mut ev = Event::new("id", Level::RequestResponse, Stage::ResponseComplete, ts("2025-01-01T00:00:00Z"));
        ev.verb = verb.into();
        ev.object_ref = Some(ObjectReference {
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: "default".into(),
            ..Default::default()
        });
        ev.set_request_object(req);
        ev.set_response_object(resp);
        ev
    }

    #[test]
    fn secret_values_are_redacted_keys_kept() {
        let mut s = secret_with_canary();
        redact("secrets", &mut s);
        assert_eq!(
            s,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "default",
                             "annotations": {LAST_APPLIED: REDACTED, "team": "payments"}},
                "type": "Opaque",
                "data": {"password": REDACTED, "user": REDACTED},
                "stringData": {"token": REDACTED},
            })
        );
        // By kind alone, whatever the resource is called.
        let mut by_kind = secret_with_canary();
        redact("whatever", &mut by_kind);
        assert_eq!(by_kind, s);
    }

    #[test]
    fn secret_event_canary_sweep() {
        let bodies: Vec<(&str, &str, Value, Value)> = vec![
            ("create", "secret", secret_with_canary(), secret_with_canary()),
            (
                "update",
                "kindless secret",
                {
                    let mut s = secret_with_canary();
                    s.as_object_mut().map(|m| m.remove("kind"));
                    s
                },
                json!({"kind": "Status", "status": "Failure", "code": 422, "message": "Secret \"db\" is invalid: data[bad key]: Invalid value"}),
            ),
            (
                "get",
                "secret list",
                json!(null),
                json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"},
                "items": [secret_with_canary(), {"metadata": {"name": "x"}, "data": {"k": CANARY}}]}),
            ),
            (
                "list",
                "generic list",
                json!(null),
                json!({"kind": "List", "items": [{"metadata": {"name": "x"}, "stringData": {"k": CANARY}}]}),
            ),
            (
                "list",
                "table with objects",
                json!(null),
                json!({
                "kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "columnDefinitions": [{"name": "Name", "type": "string"}],
                "rows": [{"cells": ["db", "Opaque", 2, "1d"], "object": secret_with_canary()},
                         {"cells": ["x"], "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": {"name": "x", "annotations": {LAST_APPLIED: CANARY}, "managedFields": [{"f": CANARY}]}}}]}),
            ),
            (
                "list",
                "partial object metadata list",
                json!(null),
                json!({"kind": "PartialObjectMetadataList",
                "items": [{"kind": "PartialObjectMetadata", "metadata": {"name": "x", "annotations": {LAST_APPLIED: CANARY}}}]}),
            ),
            ("patch", "json patch", json!([{"op": "add", "path": "/data/k", "value": CANARY}]), secret_with_canary()),
            (
                "patch",
                "merge patch",
                json!({"stringData": {"k": CANARY}, "metadata": {"annotations": {"x": CANARY}}}),
                json!(null),
            ),
            ("patch", "apply patch as YAML text", Value::String(format!("stringData:\n  k: {CANARY}\n")), json!(null)),
            ("create", "malformed: data as a string", json!({"kind": "Secret", "data": CANARY}), json!(null)),
            (
                "create",
                "malformed: misspelt field",
                json!({"kind": "Secret", "dataa": {"k": CANARY}, "metadata": {"annotations": CANARY}}),
                json!(null),
            ),
            ("create", "malformed: wrong kind", json!({"kind": "ConfigMap", "data": {"k": CANARY}}), json!(null)),
            ("create", "malformed: array of secrets", json!([secret_with_canary()]), json!(null)),
            ("create", "malformed: metadata a string", json!({"kind": "Secret", "metadata": CANARY}), json!(null)),
        ];
        for (verb, what, req, resp) in bodies {
            let ev = recorded("secrets", "", verb, req, resp);
            assert_no_canary(what, &ev);
            let line = serde_json::to_string(&ev).expect("json");
            assert!(!line.contains("managedFields"), "{what}: {line}");
        }
    }

    #[test]
    fn patch_bodies_on_secrets_are_fully_redacted() {
        let ev = recorded("secrets", "", "patch", json!({"metadata": {"labels": {"a": "b"}}}), json!(null));
        assert_eq!(ev.request_object(), Some(&json!(REDACTED)));
        // Not for other resources.
        let ev = recorded("configmaps", "", "patch", json!({"data": {"a": "b"}}), json!(null));
        assert_eq!(ev.request_object(), Some(&json!({"data": {"a": "b"}})));
    }

    #[test]
    fn token_request_and_review_canaries() {
        let ev = recorded(
            "serviceaccounts",
            "token",
            "create",
            json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {"audiences": ["api"], "expirationSeconds": 3600}}),
            json!({"kind": "TokenRequest", "spec": {"audiences": ["api"]}, "status": {"token": CANARY, "expirationTimestamp": "2025-01-01T01:00:00Z"}}),
        );
        assert_no_canary("token request", &ev);
        assert_eq!(ev.response_object().map(|r| &r["status"]["token"]), Some(&json!(REDACTED)));
        assert_eq!(
            ev.response_object().map(|r| &r["status"]["expirationTimestamp"]),
            Some(&json!("2025-01-01T01:00:00Z"))
        );

        let mut review = recorded(
            "tokenreviews",
            "",
            "create",
            json!({"kind": "TokenReview", "spec": {"token": CANARY, "audiences": ["api"]}}),
            json!({"kind": "TokenReview", "spec": {"token": CANARY}, "status": {"authenticated": true, "user": {"username": "bob"}}}),
        );
        if let Some(o) = review.object_ref.as_mut() {
            o.namespace.clear();
        }
        assert_no_canary("token review", &review);
        assert_eq!(review.response_object().map(|r| &r["status"]["user"]["username"]), Some(&json!("bob")));

        // Kindless and non-object bodies under these resources too.
        let mut v = json!({"status": {"token": CANARY}});
        redact("serviceaccounts/token", &mut v);
        assert_no_canary("kindless token request", &v);
        let mut v = json!(CANARY);
        redact("tokenreviews", &mut v);
        assert_eq!(v, json!(REDACTED));
        // Nested anywhere, by kind.
        let mut v = json!({"kind": "List", "items": [{"kind": "TokenReview", "spec": {"token": CANARY}}]});
        redact("configmaps", &mut v);
        assert_no_canary("nested token review", &v);
    }

    #[test]
    fn other_bodies_are_untouched() {
        let original = json!({"kind": "ConfigMap", "metadata": {"name": "c", "annotations": {LAST_APPLIED: "{}"}}, "data": {"k": "v"}});
        let mut v = original.clone();
        redact("configmaps", &mut v);
        assert_eq!(v, original);
        let status = json!({"kind": "Status", "status": "Failure", "message": "secrets \"db\" not found", "reason": "NotFound", "code": 404});
        let mut v = status.clone();
        redact("secrets", &mut v);
        assert_eq!(v, status);
        let opts = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
        let mut v = opts.clone();
        redact("secrets", &mut v);
        assert_eq!(v, opts);
    }

    // -- the log file --------------------------------------------------------------------------

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            let p = std::env::temp_dir().join(format!("strongroom-audit-test-{}", uuid::Uuid::new_v4()));
            fs::create_dir_all(&p).expect("create test dir");
            TestDir(p)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config(path: PathBuf, max_backups: usize, max_age_days: u64) -> AuditLogConfig {
        AuditLogConfig { path, max_size_mb: 1, max_backups, max_age_days }
    }

    fn small_event(i: usize) -> Event {
        let mut ev =
            Event::new(format!("id-{i:04}"), Level::Metadata, Stage::ResponseComplete, ts("2025-01-01T00:00:00Z"));
        ev.verb = "get".into();
        ev
    }

    fn read_lines(p: &Path) -> Vec<String> {
        fs::read_to_string(p).expect("read").lines().map(str::to_string).collect()
    }

    #[test]
    fn creates_file_0600_and_appends_lines() {
        let dir = TestDir::new();
        let path = dir.0.join("sub/dir/audit.log");
        let log = AuditLog::open(config(path.clone(), 0, 0)).expect("open");
        assert_eq!(log.path(), Some(path.clone()));
        log.write(&small_event(1)).expect("write");
        log.write(&small_event(2)).expect("write");
        assert_eq!(fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.0.join("sub")).expect("stat").permissions().mode() & 0o077, 0);
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2);
        let back: Event = serde_json::from_str(&lines[1]).expect("an event per line");
        assert_eq!(back.audit_id, "id-0002");
        // Reopening appends.
        drop(log);
        let log = AuditLog::open(config(path.clone(), 0, 0)).expect("reopen");
        log.write(&small_event(3)).expect("write");
        assert_eq!(read_lines(&path).len(), 3);
    }

    #[test]
    fn refuses_directories_and_executable_files() {
        let dir = TestDir::new();
        let msg = AuditLog::open(config(dir.0.clone(), 0, 0)).expect_err("a directory").to_string();
        assert_eq!(msg, format!("refusing to use {} as the audit log: it is a directory", dir.0.display()));
        let exe = dir.0.join("audit.log");
        fs::write(&exe, b"").expect("write");
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o700)).expect("chmod");
        let msg = AuditLog::open(config(exe.clone(), 0, 0)).expect_err("executable").to_string();
        assert!(
            msg.ends_with("it has executable permission bits (mode 0700); audit logs are never executable"),
            "{msg}"
        );
        assert!(AuditLog::open(config(PathBuf::new(), 0, 0)).is_err());
        assert!(AuditLog::open(config(PathBuf::from("-"), 0, 0)).expect("stdout").path().is_none());
    }

    #[test]
    fn rotates_by_size_with_lumberjack_names_and_caps_backups() {
        let dir = TestDir::new();
        let path = dir.0.join("audit.log");
        let line_len = serde_json::to_vec(&small_event(0)).expect("json").len() as u64 + 1;
        // Room for exactly three lines per file.
        let log = AuditLog::open_with_max_bytes(config(path.clone(), 2, 0), line_len * 3).expect("open");
        for i in 0..10 {
            log.write(&small_event(i)).expect("write");
        }
        let files = list_log_files(&path).expect("list");
        // 10 lines at 3 per file: 4 files were written, the oldest backup was deleted.
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files.last(), Some(&path));
        for backup in &files[..2] {
            let name = backup.file_name().and_then(|n| n.to_str()).expect("name");
            let stamp = name.strip_prefix("audit-").and_then(|n| n.strip_suffix(".log")).expect("lumberjack name");
            assert!(parse_backup_time(stamp).is_some(), "{name}");
            assert_eq!(fs::metadata(backup).expect("stat").permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(read_lines(&files[0]).len(), 3);
        assert_eq!(read_lines(&files[1]).len(), 3);
        let current = read_lines(&path);
        assert_eq!(current.len(), 1);
        assert!(current[0].contains("id-0009"));
        // Chronological: the first kept backup starts with the 4th event.
        assert!(read_lines(&files[0])[0].contains("id-0003"));
        assert!(read_lines(&files[1])[0].contains("id-0006"));
        // Every file stays within the limit.
        for f in &files {
            assert!(fs::metadata(f).expect("stat").len() <= line_len * 3);
        }
    }

    #[test]
    fn concurrent_writers_never_interleave_lines() {
        let dir = TestDir::new();
        let path = dir.0.join("audit.log");
        let log = std::sync::Arc::new(AuditLog::open_with_max_bytes(config(path.clone(), 0, 0), 4096).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.write(&small_event(t * 100 + i)).expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        let mut ids = HashSet::new();
        for f in list_log_files(&path).expect("list") {
            assert!(fs::metadata(&f).expect("stat").len() <= 4096);
            for line in read_lines(&f) {
                let ev: Event = serde_json::from_str(&line).expect("whole lines only");
                assert!(ids.insert(ev.audit_id));
            }
        }
        assert_eq!(ids.len(), 200);
    }

    #[test]
    fn oversized_line_goes_alone_into_a_fresh_file() {
        let dir = TestDir::new();
        let path = dir.0.join("audit.log");
        let log = AuditLog::open_with_max_bytes(config(path.clone(), 0, 0), 10).expect("open");
        log.write(&small_event(1)).expect("write");
        log.write(&small_event(2)).expect("write");
        let files = list_log_files(&path).expect("list");
        assert_eq!(files.len(), 2);
        assert_eq!(read_lines(&files[0]).len(), 1);
        assert_eq!(read_lines(&files[1]).len(), 1);
    }

    #[test]
    fn prunes_backups_by_age_and_ignores_other_files() {
        let dir = TestDir::new();
        let path = dir.0.join("audit.log");
        let old = dir.0.join("audit-2000-01-01T00-00-00.000.log");
        let recent_at = Timestamp::now() - SignedDuration::from_hours(1);
        let recent = backup_path(&path, recent_at).expect("name");
        let unrelated = dir.0.join("audit-notatime.log");
        let other = dir.0.join("other-2000-01-01T00-00-00.000.log");
        for f in [&old, &recent, &unrelated, &other] {
            fs::write(f, b"{}\n").expect("write");
        }
        let _log = AuditLog::open(config(path.clone(), 0, 7)).expect("open");
        assert!(!old.exists());
        assert!(recent.exists() && unrelated.exists() && other.exists());
        assert_eq!(list_log_files(&path).expect("list"), vec![recent, path]);
    }

    #[test]
    fn backup_names_follow_lumberjack() {
        let at = ts("2006-01-02T15:04:05.123999Z");
        assert_eq!(
            backup_path(Path::new("/var/log/audit.log"), at),
            Some(PathBuf::from("/var/log/audit-2006-01-02T15-04-05.123.log"))
        );
        assert_eq!(backup_path(Path::new("audit"), at), Some(PathBuf::from("./audit-2006-01-02T15-04-05.123")));
        assert_eq!(parse_backup_time("2006-01-02T15-04-05.123"), Some(ts("2006-01-02T15:04:05.123Z")));
        assert_eq!(parse_backup_time("2006-01-02T15:04:05.123"), None);
        assert_eq!(list_log_files(Path::new("-")).expect("stdout"), Vec::<PathBuf>::new());
    }

    // -- query ---------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn access(id: &str, stage: Stage, verb: &str, ns: &str, name: &str, code: i32, at: &str, user: &str) -> Event {
        let mut ev = Event::new(id, Level::Metadata, stage, ts(at));
        ev.verb = verb.into();
        ev.user = UserInfo { username: user.into(), groups: vec!["devs".into()], ..Default::default() };
        ev.source_ips = vec!["10.0.0.7".into()];
        ev.user_agent = "kubectl".into();
        ev.request_uri = format!("/api/v1/namespaces/{ns}/secrets/{name}");
        ev.object_ref = Some(ObjectReference {
            resource: "secrets".into(),
            namespace: ns.into(),
            name: name.into(),
            api_version: "v1".into(),
            ..Default::default()
        });
        if code != 0 {
            ev.response_status = Some(ResponseStatus::code(code as u16));
        }
        ev
    }

    #[test]
    fn finds_reads_across_rotated_files() {
        let dir = TestDir::new();
        let path = dir.0.join("audit.log");
        let log = AuditLog::open_with_max_bytes(config(path.clone(), 0, 0), 900).expect("open");
        let mut impersonated =
            access("e6", Stage::ResponseComplete, "get", "prod", "db", 200, "2025-01-01T00:06:00Z", "admin");
        impersonated.impersonated_user = Some(UserInfo { username: "mallory".into(), ..Default::default() });
        let events = vec![
            access("e1", Stage::ResponseComplete, "get", "prod", "db", 200, "2025-01-01T00:01:00Z", "alice"),
            access("e2", Stage::RequestReceived, "get", "prod", "db", 0, "2025-01-01T00:02:00Z", "bob"),
            access("e3", Stage::ResponseComplete, "get", "prod", "db", 403, "2025-01-01T00:03:00Z", "eve"),
            access("e4", Stage::ResponseComplete, "get", "prod", "other", 200, "2025-01-01T00:04:00Z", "carol"),
            access("e5", Stage::ResponseComplete, "get", "dev", "db", 200, "2025-01-01T00:05:00Z", "dave"),
            impersonated,
            access("e7", Stage::ResponseComplete, "list", "prod", "", 200, "2025-01-01T00:07:00Z", "frank"),
            access("e8", Stage::ResponseComplete, "list", "", "", 200, "2025-01-01T00:08:00Z", "grace"),
            access("e9", Stage::ResponseComplete, "list", "dev", "", 200, "2025-01-01T00:09:00Z", "heidi"),
            access("e10", Stage::ResponseStarted, "watch", "prod", "", 200, "2025-01-01T00:10:00Z", "ivan"),
            access("e11", Stage::ResponseComplete, "watch", "prod", "other", 200, "2025-01-01T00:11:00Z", "judy"),
            access("e10", Stage::ResponseComplete, "watch", "prod", "", 200, "2025-01-01T00:12:00Z", "ivan"),
            access("e13", Stage::ResponseComplete, "patch", "prod", "db", 200, "2025-01-01T00:13:00Z", "ken"),
            access("e14", Stage::ResponseComplete, "delete", "prod", "other", 200, "2025-01-01T00:14:00Z", "leo"),
        ];
        for ev in &events {
            log.write(ev).expect("write");
        }
        // A torn line as a crash leaves it, and a foreign one.
        let files = list_log_files(&path).expect("list");
        assert!(files.len() >= 3, "the small limit rotated the log: {files:?}");
        let mut f = OpenOptions::new().append(true).open(&files[0]).expect("open backup");
        f.write_all(b"not json\n").expect("write");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open current");
        f.write_all(b"\n{\"kind\":\"Event\",\"auditID\":\"torn").expect("write");

        let reads = reads_of_secret(&files, "prod", "db", None).expect("query");
        let got: Vec<(&str, ReadKind, &str)> =
            reads.records.iter().map(|r| (r.audit_id.as_str(), r.kind, r.user.username.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("e1", ReadKind::Direct, "alice"),
                ("e6", ReadKind::Direct, "admin"),
                ("e7", ReadKind::Collection, "frank"),
                ("e8", ReadKind::Collection, "grace"),
                ("e10", ReadKind::Collection, "ivan"),
                ("e13", ReadKind::WriteResponse, "ken"),
            ]
        );
        assert_eq!(reads.unparsable_lines, 2);
        assert_eq!(reads.events_scanned, events.len());
        let e6 = &reads.records[1];
        assert_eq!(e6.impersonated_user.as_ref().map(|u| u.username.as_str()), Some("mallory"));
        assert_eq!(e6.user.groups, vec!["devs".to_string()]);
        assert_eq!(e6.source_ips, vec!["10.0.0.7".to_string()]);
        assert_eq!(e6.code, Some(200));
        assert_eq!(e6.user_agent, "kubectl");
        assert_eq!(reads.records[3].namespace, "", "cluster-wide list");
        // The watch is reported once, at its start.
        assert_eq!(reads.records[4].stage, Stage::ResponseStarted);

        // Since: by stage time; the watch that completed later still counts.
        let since = reads_of_secret(&files, "prod", "db", Some(ts("2025-01-01T00:10:30Z"))).expect("query");
        let ids: Vec<&str> = since.records.iter().map(|r| r.audit_id.as_str()).collect();
        assert_eq!(ids, vec!["e10", "e13"]);
        assert_eq!(since.records[0].stage, Stage::ResponseComplete);

        // A file rotated away between listing and reading is skipped.
        let mut with_missing = files.clone();
        with_missing.insert(0, dir.0.join("audit-2000-01-01T00-00-00.000.log"));
        assert_eq!(reads_of_secret(&with_missing, "prod", "db", None).expect("query").records.len(), 6);
    }

    #[test]
    fn read_record_serializes_for_the_cli() {
        let ev = access("e1", Stage::ResponseComplete, "get", "prod", "db", 200, "2025-01-01T00:01:00Z", "alice");
        let line = serde_json::to_vec(&ev).expect("json");
        let scanned: ScannedEvent = serde_json::from_slice(&line).expect("scan");
        let rec = classify(scanned, "prod", "db", None).expect("a read");
        let v = serde_json::to_value(&rec).expect("json");
        assert_eq!(v["kind"], json!("direct"));
        assert_eq!(v["received"], json!("2025-01-01T00:01:00.000000Z"));
        assert_eq!(v["auditID"], json!("e1"));
    }
}
