//! Registry credentials from a pod's image pull secrets, answered the way the kubelet picks them.
//!
//! The kubelet reads the `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` Secrets
//! a pod names in `imagePullSecrets`, indexes their registry keys, and tries the credentials of
//! the most specific key that matches the image (`pkg/credentialprovider`: `keyring.go`,
//! `config.go`, `secrets/secrets.go`). This module does the same for processes on a host, in two
//! forms:
//!
//! - [`helper_command`]: the docker credential helper protocol (`docker-credential-helpers`),
//!   which the binary serves as `docker-credential-strongroom`;
//! - [`containers_auth_json`]: a merged `auth.json` (containers-auth.json(5)) for podman,
//!   skopeo and buildah.
//!
//! Which Secrets: the pod's `imagePullSecrets`; when it names none, its ServiceAccount's. That is
//! what a pod admitted by the API server carries (the ServiceAccount admission plugin copies the
//! ServiceAccount's list only into a pod that has none), and the kubelet reads only the pod's.
//!
//! Architecture invariant: an error or a log line names Secrets, data keys and registries, never
//! a username's password or an `auth` value.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::Api;
use strongroom_api::SecretBytes;
use strongroom_api::field::go_quote;

use crate::secret_source::secret_data;
use crate::volume::{SecretData, pod_namespace};

/// The Secret type of a `~/.docker/config.json` (`{"auths": {...}}`).
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The data key of a [`DOCKER_CONFIG_JSON_TYPE`] Secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// The Secret type of a legacy `~/.dockercfg` (the bare registry map).
pub const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
/// The data key of a [`DOCKERCFG_TYPE`] Secret.
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// What a credential helper prints when it has nothing for a server: docker and containers/image
/// recognise exactly this text as "not found" rather than as a failure.
pub const CREDENTIALS_NOT_FOUND: &str = "credentials not found in native keychain";
/// What `get` prints when stdin holds no server URL (`docker-credential-helpers`' wording).
const MISSING_SERVER_URL: &str = "no credentials server URL";

/// The key the kubelet falls back to for Docker Hub images (`https://index.docker.io/v1/` once
/// the scheme and `/v1/` are dropped).
const DOCKER_HUB_KEY: &str = "index.docker.io";
/// The registry an image name without one lives in, as docker's reference grammar normalises it.
const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The data is not JSON, or not the shape of its type (Go's `json.Unmarshal` would fail too).
    #[error("secret {}: {key} is not valid: {reason}", go_quote(secret))]
    Malformed { secret: String, key: &'static str, reason: String },
    /// An entry's `auth` is not `base64(username:password)` (the kubelet refuses the Secret).
    #[error(
        "secret {}: registry {}: auth must be formatted as base64(username:password)",
        go_quote(secret),
        go_quote(registry)
    )]
    InvalidAuth { secret: String, registry: String },
    /// The API could not be reached (a refusal or absence is skipped instead, as the kubelet does).
    #[error("cannot read {kind} {namespace}/{name}: {source}")]
    Api { kind: &'static str, namespace: String, name: String, source: Box<kube::Error> },
}

/// One registry's credentials from a pull secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Secret it comes from (in the pod's namespace).
    pub secret: String,
    /// The registry key as the Secret writes it: `https://index.docker.io/v1/`, `r.io:5000/team`,
    /// `*.example.com`.
    pub registry: String,
    /// From `auth` when the entry has one (it wins over `username`), else `username`.
    pub username: String,
    /// From `auth` when the entry has one, else `password`.
    pub password: SecretBytes,
    pub email: String,
}

impl Entry {
    /// `base64(username:password)`: the `auth` field of a docker config.
    pub fn auth(&self) -> SecretBytes {
        let mut plain = Vec::with_capacity(self.username.len() + 1 + self.password.len());
        plain.extend_from_slice(self.username.as_bytes());
        plain.push(b':');
        plain.extend_from_slice(self.password.expose());
        let plain = SecretBytes::new(plain);
        // The buffer is sized for the whole encoding, so it never reallocates and leaves no
        // unzeroized copy behind.
        let mut encoded = vec![0; plain.len().div_ceil(3) * 4];
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(plain.expose(), &mut encoded)
            .expect("the buffer is sized for the encoding");
        encoded.truncate(n);
        SecretBytes::new(encoded)
    }
}

/// The credentials [`lookup`] chose for a registry or image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The matching key as the kubelet indexes it (no scheme, no `/v1/`), e.g. `r.io:5000/team`.
    pub registry: String,
    /// The Secret it comes from.
    pub secret: String,
    pub username: String,
    pub password: SecretBytes,
}

/// The registry entries of one Secret, in the order the Secret writes them. A Secret of another
/// type, or without its type's data key, holds none (the kubelet ignores it). A malformed one
/// is an error: the kubelet then refuses to build any credentials for the pod.
pub fn parse_pull_secret(secret: &SecretData) -> Result<Vec<Entry>, CredentialError> {
    let (key, nested) = match secret.type_.as_str() {
        DOCKER_CONFIG_JSON_TYPE => (DOCKER_CONFIG_JSON_KEY, true),
        DOCKERCFG_TYPE => (DOCKERCFG_KEY, false),
        _ => return Ok(Vec::new()),
    };
    let Some(bytes) = secret.data.get(key).filter(|b| !b.is_empty()) else {
        return Ok(Vec::new());
    };
    let malformed = |reason: String| CredentialError::Malformed { secret: secret.name.clone(), key, reason };
    // serde_json's messages can quote the input (`invalid type: string "…"`): only the position
    // and the class of the error are kept.
    let doc: serde_json::Value = serde_json::from_slice(bytes.expose())
        .map_err(|e| malformed(format!("{} at line {} column {}", json_error_class(&e), e.line(), e.column())))?;
    let result = entries_of(&secret.name, key, nested, &doc);
    scrub(doc);
    result.map_err(|e| match e {
        ShapeError::Shape(reason) => malformed(reason),
        ShapeError::Auth(registry) => CredentialError::InvalidAuth { secret: secret.name.clone(), registry },
    })
}

fn json_error_class(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "a JSON syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of JSON",
    }
}

enum ShapeError {
    Shape(String),
    Auth(String),
}

/// Go's `encoding/json` matches object keys to struct fields case-insensitively, and a later
/// key overrides an earlier one: `"Username"` fills `username` in the kubelet.
fn field<'a>(object: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Option<&'a serde_json::Value> {
    object.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).next_back()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn entries_of(secret: &str, key: &str, nested: bool, doc: &serde_json::Value) -> Result<Vec<Entry>, ShapeError> {
    // As with Go, `null` anywhere a value is expected leaves the zero value: no entries, or an
    // entry with empty fields.
    let registries = if nested {
        match doc {
            serde_json::Value::Object(top) => field(top, "auths"),
            serde_json::Value::Null => None,
            other => return Err(ShapeError::Shape(format!("expected an object, found {}", json_kind(other)))),
        }
    } else {
        Some(doc)
    };
    let registries = match registries {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Object(m)) => m,
        Some(other) => {
            let at = if nested { "auths" } else { "the document" };
            return Err(ShapeError::Shape(format!("{at}: expected an object, found {}", json_kind(other))));
        }
    };
    let mut entries = Vec::with_capacity(registries.len());
    for (registry, value) in registries {
        let empty = serde_json::Map::new();
        let object = match value {
            serde_json::Value::Object(o) => o,
            serde_json::Value::Null => &empty,
            other => {
                return Err(ShapeError::Shape(format!(
                    "registry {}: expected an object, found {}",
                    go_quote(registry),
                    json_kind(other)
                )));
            }
        };
        let text = |name: &str| -> Result<&str, ShapeError> {
            match field(object, name) {
                None | Some(serde_json::Value::Null) => Ok(""),
                Some(serde_json::Value::String(s)) => Ok(s),
                Some(other) => Err(ShapeError::Shape(format!(
                    "registry {}: {name} must be a string, found {}",
                    go_quote(registry),
                    json_kind(other)
                ))),
            }
        };
        let (username, password) = match text("auth")? {
            "" => (text("username")?.to_string(), SecretBytes::new(text("password")?.as_bytes().to_vec())),
            auth => decode_auth(auth).ok_or_else(|| ShapeError::Auth(registry.clone()))?,
        };
        let email = text("email")?.to_string();
        tracing::trace!(secret, key, registry = %registry, "pull secret entry read");
        entries.push(Entry { secret: secret.to_string(), registry: registry.clone(), username, password, email });
    }
    Ok(entries)
}

/// `base64(username:password)`, padded or not, as the kubelet's `decodeDockerConfigFieldAuth`
/// accepts it (Go's decoder also skips line breaks and tolerates non-zero trailing bits).
fn decode_auth(field: &str) -> Option<(String, SecretBytes)> {
    let cleaned: SecretBytes = SecretBytes::new(field.bytes().filter(|b| *b != b'\r' && *b != b'\n').collect());
    let padding =
        if field.trim().ends_with('=') { DecodePaddingMode::RequireCanonical } else { DecodePaddingMode::RequireNone };
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true).with_decode_padding_mode(padding),
    );
    let mut decoded = vec![0; cleaned.len().div_ceil(4) * 3];
    let decoded = match engine.decode_slice(cleaned.expose(), &mut decoded) {
        Ok(n) => {
            decoded.truncate(n);
            SecretBytes::new(decoded)
        }
        Err(_) => {
            drop(SecretBytes::new(decoded));
            return None;
        }
    };
    let colon = decoded.expose().iter().position(|b| *b == b':')?;
    let username = String::from_utf8_lossy(&decoded.expose()[..colon]).into_owned();
    let password = SecretBytes::new(decoded.expose()[colon + 1..].to_vec());
    Some((username, password))
}

/// Consumes a parsed document, handing every string to [`SecretBytes`] so that passwords and
/// `auth` values are zeroized when dropped.
fn scrub(value: serde_json::Value) {
    match value {
        serde_json::Value::String(s) => drop(SecretBytes::new(s.into_bytes())),
        serde_json::Value::Array(items) => items.into_iter().for_each(scrub),
        serde_json::Value::Object(map) => map.into_iter().for_each(|(_, v)| scrub(v)),
        _ => {}
    }
}

/// A URL without its scheme, split as Go's `url.Parse("https://" + s)` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SchemelessUrl {
    /// `host` or `host:port`, without user information.
    host: String,
    /// Empty or starting with `/`; the query and fragment are dropped.
    path: String,
}

/// The kubelet's `ParseSchemelessURL`. `None` where Go's parser fails (an invalid port, control
/// characters); the kubelet then skips the key, or matches nothing.
fn parse_schemeless_url(s: &str) -> Option<SchemelessUrl> {
    let s = s.split('#').next().unwrap_or_default();
    let s = s.split('?').next().unwrap_or_default();
    let (authority, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.chars().any(|c| c.is_control() || c == ' ') || path.chars().any(|c| c.is_control()) {
        return None;
    }
    let port = if let Some(bracketed) = host.strip_prefix('[') {
        let (_, after) = bracketed.split_once(']')?;
        if after.is_empty() { "" } else { after.strip_prefix(':')? }
    } else {
        host.rsplit_once(':').map(|(_, p)| p).unwrap_or("")
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SchemelessUrl { host: host.to_string(), path: path.to_string() })
}

/// The host's DNS labels and its port, as the kubelet's `SplitURL` (Go's `net.SplitHostPort`,
/// falling back to the whole host with no port).
fn split_host(host: &str) -> (Vec<&str>, &str) {
    let split = if let Some(bracketed) = host.strip_prefix('[') {
        bracketed.split_once("]:").filter(|(h, _)| !h.contains(']'))
    } else {
        host.rsplit_once(':').filter(|(h, _)| !h.contains(':'))
    };
    let (name, port) = split.unwrap_or((host, ""));
    (name.split('.').collect(), port)
}

/// The kubelet's `URLsMatch`: the same port, as many labels, each label matching its glob
/// (`*.example.com`, `registry-?.example.com`), and the key's path a prefix of the target's.
/// The path comparison is on strings, as the kubelet's: `r.io/team` also covers `r.io/teams/x`.
fn urls_match(glob: &SchemelessUrl, target: &SchemelessUrl) -> bool {
    let (glob_labels, glob_port) = split_host(&glob.host);
    let (target_labels, target_port) = split_host(&target.host);
    glob_port == target_port
        && glob_labels.len() == target_labels.len()
        && target.path.starts_with(&glob.path)
        && glob_labels.iter().zip(&target_labels).all(|(g, t)| glob_match(g, t))
}

/// One element of a glob, as Go's `path/filepath.Match` reads it.
enum GlobToken {
    Star,
    AnyChar,
    Literal(char),
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// Go's `filepath.Match` for one label (labels hold no `/`): `*`, `?`, `[a-z]`, `[^…]`, `\`
/// escapes. A malformed pattern matches nothing, as the kubelet ignores the error.
fn glob_match(pattern: &str, name: &str) -> bool {
    let Some(tokens) = glob_tokens(pattern) else { return false };
    let name: Vec<char> = name.chars().collect();
    glob_match_from(&tokens, &name)
}

fn glob_tokens(pattern: &str) -> Option<Vec<GlobToken>> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    // Go refuses an unescaped `-` or `]` where a class member starts or ends a range.
    let member = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<char> {
        match chars.next()? {
            '\\' => chars.next(),
            '-' | ']' => None,
            c => Some(c),
        }
    };
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => GlobToken::Star,
            '?' => GlobToken::AnyChar,
            '\\' => GlobToken::Literal(chars.next()?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = member(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() { member(&mut chars)? } else { lo };
                    ranges.push((lo, hi));
                }
                GlobToken::Class { negated, ranges }
            }
            c => GlobToken::Literal(c),
        });
    }
    Some(tokens)
}

fn glob_match_from(tokens: &[GlobToken], name: &[char]) -> bool {
    match tokens.split_first() {
        None => name.is_empty(),
        Some((GlobToken::Star, rest)) => (0..=name.len()).any(|skip| glob_match_from(rest, &name[skip..])),
        Some((token, rest)) => {
            let Some((c, name_rest)) = name.split_first() else { return false };
            let matched = match token {
                GlobToken::AnyChar => true,
                GlobToken::Literal(l) => l == c,
                GlobToken::Class { negated, ranges } => ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated,
                GlobToken::Star => unreachable!("handled above"),
            };
            matched && glob_match_from(rest, name_rest)
        }
    }
}

/// A registry key as the kubelet's `BasicDockerKeyring.Add` indexes it: the scheme dropped, and
/// a path of `/v1/…` or `/v2/…` read without that prefix (docker treats them as the host).
/// `None` for a key Go's URL parser refuses (the kubelet logs and skips it).
fn index_key(registry: &str) -> Option<String> {
    let schemeless = registry.strip_prefix("https://").or_else(|| registry.strip_prefix("http://")).unwrap_or(registry);
    let url = parse_schemeless_url(schemeless)?;
    let path = if url.path.starts_with("/v1/") || url.path.starts_with("/v2/") { &url.path[3..] } else { &url.path };
    Some(if path.is_empty() || path == "/" { url.host } else { format!("{}{path}", url.host) })
}

/// The kubelet's index over the entries: most specific key first (keys sorted in reverse, so
/// `quay.io/team` comes before `quay.io`), entries under the same key in the Secrets' order.
fn keyring(entries: &[Entry]) -> Vec<(String, SchemelessUrl, &Entry)> {
    let mut index: Vec<(String, SchemelessUrl, &Entry)> = entries
        .iter()
        .filter_map(|e| {
            let Some(key) = index_key(&e.registry) else {
                tracing::warn!(secret = %e.secret, registry = %e.registry, "registry key is not a valid URL; ignored");
                return None;
            };
            let url = parse_schemeless_url(&key)?;
            Some((key, url, e))
        })
        .collect();
    // A stable sort keeps the Secrets' order among entries of the same key.
    index.sort_by(|a, b| b.0.cmp(&a.0));
    index
}

/// The schemeless URL the kubelet matches keys against, for a registry server URL or an image,
/// and whether it is on Docker Hub (where a key `index.docker.io` is the fallback).
///
/// - `https://index.docker.io/v1/`, `http://r.io:5000/v2/`: a server URL, as docker hands it to
///   a credential helper; `/v1/` and `/v2/` are dropped as from keys.
/// - `localhost:5000`, `r.example.com`, `localhost`: a bare registry host, as containers/image
///   hands it to a credential helper (without a `/`: a name with a numeric port, or without a
///   tag and with a `.`, or `localhost`).
/// - `nginx`, `team/app:1`, `r.io/team/app@sha256:…`: an image, normalised as docker's reference
///   grammar does (`docker.io/library/nginx`) with its tag and digest dropped, as the kubelet
///   looks up the repository it pulls.
///
/// `index.docker.io` is read as `docker.io`, as docker's reference grammar does.
fn lookup_target(s: &str) -> Option<(String, bool)> {
    let s = s.trim();
    let normalise = |host: &str| if host == DOCKER_HUB_KEY { DOCKER_HUB.to_string() } else { host.to_string() };
    if let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) {
        let url = parse_schemeless_url(rest)?;
        let path =
            if url.path.starts_with("/v1/") || url.path.starts_with("/v2/") { &url.path[3..] } else { &url.path };
        let path = if path == "/" { "" } else { path };
        let host = normalise(&url.host);
        return Some((format!("{host}{path}"), host == DOCKER_HUB));
    }
    let is_registry = |first: &str| {
        first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase())
    };
    // Without a `/`, a name is a registry host when it has a numeric port or, without a tag,
    // looks like one; `nginx:1.25` is an image.
    let is_host = |s: &str| match s.rsplit_once(':') {
        Some((_, port)) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        None => is_registry(s),
    };
    let (domain, remainder) = match s.split_once('/') {
        None if is_host(s) => {
            let host = normalise(s);
            let hub = host == DOCKER_HUB;
            return Some((host, hub));
        }
        Some((first, rest)) if is_registry(first) => (normalise(first), rest.to_string()),
        _ => (DOCKER_HUB.to_string(), s.to_string()),
    };
    if remainder.is_empty() {
        return None;
    }
    let remainder = remainder.split('@').next().unwrap_or_default();
    let last_slash = remainder.rfind('/').map_or(0, |i| i + 1);
    let repository = match remainder[last_slash..].find(':') {
        Some(tag) => &remainder[..last_slash + tag],
        None => remainder,
    };
    let repository = if domain == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    let hub = domain == DOCKER_HUB;
    Some((format!("{domain}/{repository}"), hub))
}

/// The credentials the kubelet would try first for an image, or for a registry as a docker
/// credential helper is asked (`localhost:5000`, `https://index.docker.io/v1/`): the entry of
/// the most specific matching key, else, for Docker Hub, the entry under `index.docker.io`.
///
/// One deliberate difference: the kubelet also falls back to the `index.docker.io` entry for an
/// image such as `localhost/app` (its `isDefaultRegistryMatch` sees no `.` or `:`); here Docker
/// Hub credentials go only to Docker Hub.
pub fn lookup(entries: &[Entry], server_url_or_image: &str) -> Option<Credential> {
    let (target, hub) = lookup_target(server_url_or_image)?;
    let target = parse_schemeless_url(&target)?;
    let index = keyring(entries);
    let found = index
        .iter()
        .find(|(_, url, _)| urls_match(url, &target))
        .or_else(|| if hub { index.iter().find(|(key, _, _)| key == DOCKER_HUB_KEY) } else { None });
    found.map(|(key, _, entry)| Credential {
        registry: key.clone(),
        secret: entry.secret.clone(),
        username: entry.username.clone(),
        password: entry.password.clone(),
    })
}

/// A containers-auth.json (`{"auths": {"registry": {"auth": "…"}}}`) holding, for every
/// registry key, the entry the kubelet would try first, for podman, skopeo and buildah
/// (`--authfile`, `REGISTRY_AUTH_FILE`). Keys are written as the kubelet indexes them (no
/// scheme, no `/v1/`), which containers/image reads as registries or repository prefixes.
pub fn containers_auth_json(entries: &[Entry]) -> SecretBytes {
    let mut chosen: BTreeMap<String, &Entry> = BTreeMap::new();
    for (key, _, entry) in keyring(entries) {
        chosen.entry(key).or_insert(entry);
    }
    let mut out = Vec::with_capacity(
        64 + chosen.iter().map(|(k, e)| k.len() * 6 + 32 + e.password.len() * 2 + e.username.len() * 2).sum::<usize>(),
    );
    out.extend_from_slice(b"{\"auths\":{");
    for (i, (key, entry)) in chosen.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_string(&mut out, key.as_bytes());
        out.extend_from_slice(b":{\"auth\":");
        push_json_string(&mut out, entry.auth().expose());
        out.push(b'}');
    }
    out.extend_from_slice(b"}}\n");
    SecretBytes::new(out)
}

/// Whether a credential helper action answers from the pod's Secrets (`get`, `list`): the others
/// need no API access.
pub fn needs_credentials(action: &str) -> bool {
    matches!(action, "get" | "list")
}

/// Serves one docker credential helper call (`docker-credential-helpers`' `HandleCommand`):
/// `action` is the helper's argument, `stdin` what it was fed. Returns what to print on stdout
/// and the exit code; errors go to stdout too, as docker reads them from there.
///
/// - `get`: stdin holds a server URL; prints `{"ServerURL":…,"Username":…,"Secret":…}`, or
///   exits 1 with [`CREDENTIALS_NOT_FOUND`].
/// - `list`: prints each registry key as the Secrets write it, with the username of its first
///   entry in the kubelet's order.
/// - `store`, `erase`: refused; the credentials are Secrets, changed through the API.
/// - `version`: the helper's name and version.
pub fn helper_command(action: &str, stdin: &[u8], entries: &[Entry]) -> (SecretBytes, i32) {
    let line = |text: &str| SecretBytes::new(format!("{text}\n").into_bytes());
    match action {
        "get" => {
            let server_url = read_server_url(stdin);
            if server_url.is_empty() {
                return (line(MISSING_SERVER_URL), 1);
            }
            let Some(credential) = lookup(entries, &server_url) else {
                tracing::info!(server = %server_url, "no pull secret entry matches");
                return (line(CREDENTIALS_NOT_FOUND), 1);
            };
            tracing::info!(
                server = %server_url,
                secret = %credential.secret,
                registry = %credential.registry,
                "credentials found"
            );
            let mut out =
                Vec::with_capacity(64 + 6 * (server_url.len() + credential.username.len() + credential.password.len()));
            out.extend_from_slice(b"{\"ServerURL\":");
            push_json_string(&mut out, server_url.as_bytes());
            out.extend_from_slice(b",\"Username\":");
            push_json_string(&mut out, credential.username.as_bytes());
            out.extend_from_slice(b",\"Secret\":");
            push_json_string(&mut out, credential.password.expose());
            out.extend_from_slice(b"}\n");
            (SecretBytes::new(out), 0)
        }
        "list" => {
            let mut accounts: BTreeMap<&str, &str> = BTreeMap::new();
            for (_, _, entry) in keyring(entries) {
                accounts.entry(&entry.registry).or_insert(&entry.username);
            }
            let mut out = Vec::new();
            out.push(b'{');
            for (i, (registry, username)) in accounts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_string(&mut out, registry.as_bytes());
                out.push(b':');
                push_json_string(&mut out, username.as_bytes());
            }
            out.extend_from_slice(b"}\n");
            (SecretBytes::new(out), 0)
        }
        "store" | "erase" => (
            line(&format!(
                "strongroom: {action} is not supported: registry credentials are the pod's imagePullSecrets; \
                 change those Secrets through the Kubernetes API"
            )),
            1,
        ),
        "version" => (line(&format!("docker-credential-strongroom (strongroom) {}", env!("CARGO_PKG_VERSION"))), 0),
        other => (line(&format!("Unknown credential action `{other}`")), 1),
    }
}

/// The server URL `get` was given: docker-credential-helpers reads stdin line by line, joins the
/// lines without their line breaks and trims white space.
fn read_server_url(stdin: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdin);
    let joined: String = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    joined.trim().to_string()
}

/// Appends `bytes` as a JSON string exactly as Go's `encoding/json` writes it (the helpers
/// docker ships are Go programs): `<`, `>`, `&`, U+2028 and U+2029 escaped, each invalid UTF-8
/// byte written as `\ufffd`. The caller sizes `out` so that secret bytes are not left behind in
/// a reallocated buffer.
fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                    let n = c as u32;
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[((n >> shift) & 0xf) as usize]);
                    }
                }
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// The ServiceAccount whose `imagePullSecrets` a pod without its own would get: the pod's
/// `serviceAccountName` (or the deprecated `serviceAccount`), else `default`, as the API
/// server's ServiceAccount admission sets it.
pub fn service_account_name(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty())
        .or_else(|| spec.and_then(|s| s.service_account.as_deref()).filter(|n| !n.is_empty()))
        .unwrap_or("default")
        .to_string()
}

/// The pull secrets a pod uses, in order: its own `imagePullSecrets` or, when it names none,
/// its ServiceAccount's (the ServiceAccount admission plugin copies them only into a pod without
/// any). Empty names are skipped and repeated names read once.
pub fn pull_secret_names(pod: &Pod, service_account: Option<&ServiceAccount>) -> Vec<String> {
    let own = pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_deref()).unwrap_or_default();
    let refs = if own.is_empty() {
        service_account.and_then(|sa| sa.image_pull_secrets.as_deref()).unwrap_or_default()
    } else {
        own
    };
    let mut names: Vec<String> = Vec::with_capacity(refs.len());
    for r in refs {
        if !r.name.is_empty() && !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

/// A GET whose refusal (403) or absence (404) is skipped with a warning, as the kubelet skips a
/// pull secret it cannot read; only an unreachable API is an error.
async fn get_or_skip<K>(
    api: &Api<K>,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, CredentialError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(object)) => Ok(Some(object)),
        Ok(None) => {
            tracing::warn!(kind, namespace, name, "not found; the image pull may not succeed");
            Ok(None)
        }
        Err(kube::Error::Api(status)) => {
            tracing::warn!(
                kind,
                namespace,
                name,
                code = status.code,
                reason = %status.reason,
                "cannot be read; the image pull may not succeed"
            );
            Ok(None)
        }
        Err(source) => Err(CredentialError::Api {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        }),
    }
}

/// The registry entries of the pod's pull secrets, read through the API by name (never listed):
/// the pod's `imagePullSecrets`, or its ServiceAccount's when it names none. A missing or
/// forbidden Secret or ServiceAccount is skipped with a warning, as the kubelet does.
pub async fn pull_secret_entries(client: &kube::Client, pod: &Pod) -> Result<Vec<Entry>, CredentialError> {
    let namespace = pod_namespace(pod);
    let has_own = pod.spec.as_ref().and_then(|s| s.image_pull_secrets.as_ref()).is_some_and(|l| !l.is_empty());
    let service_account = if has_own {
        None
    } else {
        let name = service_account_name(pod);
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        get_or_skip(&api, "serviceaccount", namespace, &name).await?
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut entries = Vec::new();
    for name in pull_secret_names(pod, service_account.as_ref()) {
        let Some(secret) = get_or_skip(&secrets, "secret", namespace, &name).await? else { continue };
        let parsed = parse_pull_secret(&secret_data(&secret))?;
        tracing::debug!(namespace, secret = %name, entries = parsed.len(), "pull secret read");
        entries.extend(parsed);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn pull_secret(name: &str, type_: &str, key: &str, json: &str) -> SecretData {
        SecretData {
            name: name.to_string(),
            resource_version: "1".to_string(),
            type_: type_.to_string(),
            immutable: false,
            data: [(key.to_string(), SecretBytes::new(json.as_bytes().to_vec()))].into(),
        }
    }

    fn config_json(name: &str, json: &str) -> SecretData {
        pull_secret(name, DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY, json)
    }

    fn entry(secret: &str, registry: &str, username: &str, password: &str) -> Entry {
        Entry {
            secret: secret.to_string(),
            registry: registry.to_string(),
            username: username.to_string(),
            password: SecretBytes::new(password.as_bytes().to_vec()),
            email: String::new(),
        }
    }

    /// (registry key, username, password, email) of each entry, for exact comparisons.
    fn rows(entries: &[Entry]) -> Vec<(String, String, String, String)> {
        entries
            .iter()
            .map(|e| {
                let password = String::from_utf8(e.password.expose().to_vec()).unwrap();
                (e.registry.clone(), e.username.clone(), password, e.email.clone())
            })
            .collect()
    }

    fn row(registry: &str, username: &str, password: &str, email: &str) -> (String, String, String, String) {
        (registry.to_string(), username.to_string(), password.to_string(), email.to_string())
    }

    #[test]
    fn dockerconfigjson_with_auth_only_username_password_only_and_both() {
        let json = format!(
            r#"{{"auths": {{
                "auth-only.io": {{"auth": "{}"}},
                "plain.io": {{"username": "bob", "password": "pw:with:colons", "email": "bob@example.com"}},
                "both.io": {{"username": "ignored", "password": "ignored", "auth": "{}"}}
            }}}}"#,
            b64("alice:s3cret"),
            b64("carol:from-auth")
        );
        let entries = parse_pull_secret(&config_json("regcred", &json)).unwrap();
        assert_eq!(
            rows(&entries),
            vec![
                row("auth-only.io", "alice", "s3cret", ""),
                row("plain.io", "bob", "pw:with:colons", "bob@example.com"),
                row("both.io", "carol", "from-auth", ""),
            ]
        );
        assert!(entries.iter().all(|e| e.secret == "regcred"));
    }

    #[test]
    fn dockercfg_is_the_bare_registry_map() {
        let json = format!(
            r#"{{"https://index.docker.io/v1/": {{"auth": "{}", "email": "a@b.c"}}, "r.io": {{"username": "u", "password": "p"}}}}"#,
            b64("hub:pw")
        );
        let entries = parse_pull_secret(&pull_secret("old", DOCKERCFG_TYPE, DOCKERCFG_KEY, &json)).unwrap();
        assert_eq!(
            rows(&entries),
            vec![row("https://index.docker.io/v1/", "hub", "pw", "a@b.c"), row("r.io", "u", "p", "")]
        );
    }

    #[test]
    fn auth_is_decoded_padded_or_not_with_the_first_colon_splitting() {
        // "u:p" encodes to "dTpw" (no padding needed); "ab:c" to "YWI6Yw==" (padded).
        for (auth, user, pass) in
            [("dTpw", "u", "p"), ("YWI6Yw==", "ab", "c"), ("YWI6Yw", "ab", "c"), ("dTp4Onk=", "u", "x:y")]
        {
            let json = format!(r#"{{"auths": {{"r.io": {{"auth": "{auth}"}}}}}}"#);
            let entries = parse_pull_secret(&config_json("s", &json)).unwrap();
            assert_eq!(rows(&entries), vec![row("r.io", user, pass, "")], "auth {auth}");
        }
    }

    #[test]
    fn go_json_rules_case_insensitive_fields_and_nulls() {
        let json = r#"{"Auths": {"r.io": {"Username": "u", "PASSWORD": "p", "auth": null}, "empty.io": null}}"#;
        let entries = parse_pull_secret(&config_json("s", json)).unwrap();
        assert_eq!(rows(&entries), vec![row("r.io", "u", "p", ""), row("empty.io", "", "", "")]);
        assert_eq!(parse_pull_secret(&config_json("s", "null")).unwrap(), vec![]);
        assert_eq!(parse_pull_secret(&config_json("s", r#"{"credHelpers": {}}"#)).unwrap(), vec![]);
    }

    #[test]
    fn other_types_and_missing_keys_hold_no_entries() {
        let json = r#"{"auths": {"r.io": {"username": "u", "password": "p"}}}"#;
        assert_eq!(parse_pull_secret(&pull_secret("s", "Opaque", DOCKER_CONFIG_JSON_KEY, json)).unwrap(), vec![]);
        assert_eq!(parse_pull_secret(&pull_secret("s", DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_KEY, json)).unwrap(), vec![]);
        assert_eq!(parse_pull_secret(&config_json("s", "")).unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_secret_and_registry_never_the_values() {
        let bad_auth = r#"{"auths": {"r.io:5000": {"auth": "hunter2-not-base64!"}}}"#;
        let e = parse_pull_secret(&config_json("regcred", bad_auth)).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"secret "regcred": registry "r.io:5000": auth must be formatted as base64(username:password)"#
        );
        let no_colon = format!(r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#, b64("hunter2"));
        let e = parse_pull_secret(&config_json("regcred", &no_colon)).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"secret "regcred": registry "r.io": auth must be formatted as base64(username:password)"#
        );
        let wrong_type = r#"{"auths": {"r.io": {"username": "u", "password": 123456}}}"#;
        let e = parse_pull_secret(&config_json("regcred", wrong_type)).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"secret "regcred": .dockerconfigjson is not valid: registry "r.io": password must be a string, found a number"#
        );
        let not_json = r#"{"auths": {"r.io": {"password": "hunter2""#;
        let e = parse_pull_secret(&config_json("regcred", not_json)).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"secret "regcred": .dockerconfigjson is not valid: unexpected end of JSON at line 1 column 41"#
        );
        let array = r#"["hunter2"]"#;
        let e = parse_pull_secret(&pull_secret("old", DOCKERCFG_TYPE, DOCKERCFG_KEY, array)).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"secret "old": .dockercfg is not valid: the document: expected an object, found an array"#
        );
        for message in [bad_auth, &no_colon, wrong_type, not_json, array]
            .iter()
            .map(|json| parse_pull_secret(&config_json("s", json)).map(|_| ()).unwrap_err().to_string())
        {
            assert!(!message.contains("hunter2") && !message.contains("123456"), "{message}");
        }
    }

    #[test]
    fn entry_auth_is_base64_of_username_colon_password() {
        assert_eq!(entry("s", "r.io", "u", "p:w").auth().expose(), b64("u:p:w").as_bytes());
        assert_eq!(entry("s", "r.io", "", "").auth().expose(), b"Og==");
    }

    #[test]
    fn index_keys_drop_the_scheme_and_v1_v2() {
        let cases = [
            ("https://index.docker.io/v1/", Some("index.docker.io")),
            ("index.docker.io/v1/", Some("index.docker.io")),
            ("http://r.io:5000/v2/", Some("r.io:5000")),
            ("https://r.io/v2/team", Some("r.io/team")),
            ("r.io/team/", Some("r.io/team/")),
            ("r.io/", Some("r.io")),
            ("user:pw@r.io/x", Some("r.io/x")),
            ("r.io?query#frag", Some("r.io")),
            ("*.example.com", Some("*.example.com")),
            ("r.io:http", None),
            ("r .io", None),
        ];
        for (registry, want) in cases {
            assert_eq!(index_key(registry).as_deref(), want, "{registry}");
        }
    }

    #[test]
    fn globs_follow_go_filepath_match() {
        let cases = [
            ("*", "anything", true),
            ("*", "", true),
            ("reg-*", "reg-eu", true),
            ("reg-*", "registry", false),
            ("?b", "ab", true),
            ("?b", "b", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[]a]", "a", false),
            ("[a", "a", false),
            ("abc", "abd", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern} vs {name}");
        }
    }

    /// The kubelet's matching: which key (if any) answers each image or server URL.
    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            // Globs: one label each, the same number of labels.
            ("*.example.com", "registry.example.com/app", true),
            ("*.example.com", "example.com/app", false),
            ("*.example.com", "a.b.example.com/app", false),
            ("*.*.com", "a.example.com/app", true),
            // Go's URL parser reads `?` as the start of a query: the key is `registry-`.
            ("registry-?.example.com", "registry-1.example.com/app", false),
            ("registry-*.example.com", "registry-1.example.com/app", true),
            // Ports must be equal, absent on both or the same number.
            ("r.io:5000", "r.io:5000/app", true),
            ("r.io:5000", "r.io/app", false),
            ("r.io", "r.io:5000/app", false),
            ("r.io:5000", "r.io:5001/app", false),
            ("*.io:5000", "r.io:5000/app", true),
            // Paths: the key's path a prefix of the image's (as strings).
            ("r.io/team", "r.io/team/app:1", true),
            ("r.io/team", "r.io/other/app", false),
            ("r.io/team", "r.io/teams/app", true),
            ("r.io/team/", "r.io/teams/app", false),
            ("r.io/team", "r.io", false),
            // Schemes and /v1/, /v2/ in keys.
            ("https://r.io", "r.io/app", true),
            ("http://r.io/v2/", "r.io/app", true),
            ("https://r.io/v1/team", "r.io/team/app", true),
            // Server URLs as helpers are asked.
            ("r.io:5000", "localhost:5000", false),
            ("localhost:5000", "localhost:5000", true),
            ("localhost:5000", "https://localhost:5000/v2/", true),
            ("localhost", "localhost", true),
            ("127.0.0.1:5000", "127.0.0.1:5000", true),
            ("[::1]:5000", "[::1]:5000/app", true),
            // Docker Hub: names without a registry, docker.io, index.docker.io.
            ("docker.io", "nginx", true),
            ("docker.io", "library/nginx:1.25", true),
            ("docker.io/library", "nginx", true),
            ("docker.io/team", "team/app", true),
            ("docker.io/team", "nginx", false),
            ("docker.io", "index.docker.io/team/app", true),
            ("docker.io", "https://index.docker.io/v1/", true),
            ("https://index.docker.io/v1/", "nginx", true),
            ("https://index.docker.io/v1/", "docker.io/team/app@sha256:abc", true),
            ("https://index.docker.io/v1/", "https://index.docker.io/v1/", true),
            ("index.docker.io", "docker.io", true),
            ("https://index.docker.io/v1/", "r.io/app", false),
            ("https://index.docker.io/v1/", "localhost/app", false),
            ("https://index.docker.io/v1/", "localhost:5000", false),
            ("index.docker.io/team", "team/app", false),
            ("*.docker.io", "nginx", false),
        ];
        for (key, target, want) in cases {
            let entries = [entry("s", key, "u", "p")];
            let found = lookup(&entries, target).map(|c| c.secret);
            assert_eq!(found.is_some(), *want, "key {key} for {target}");
        }
    }

    #[test]
    fn most_specific_key_first_then_the_secrets_order() {
        let entries = [
            entry("first", "quay.io", "quay-any", "p1"),
            entry("first", "*.example.com", "glob", "p2"),
            entry("second", "quay.io/team", "quay-team", "p3"),
            entry("second", "registry.example.com", "exact", "p4"),
            entry("third", "https://quay.io", "quay-again", "p5"),
        ];
        let user = |target: &str| lookup(&entries, target).map(|c| (c.secret, c.registry, c.username));
        let want = |secret: &str, registry: &str, username: &str| {
            Some((secret.to_string(), registry.to_string(), username.to_string()))
        };
        assert_eq!(user("quay.io/team/app"), want("second", "quay.io/team", "quay-team"));
        // Two entries under the same key: the pod's first pull secret wins.
        assert_eq!(user("quay.io/other/app"), want("first", "quay.io", "quay-any"));
        assert_eq!(user("registry.example.com/app"), want("second", "registry.example.com", "exact"));
        assert_eq!(user("other.example.com/app"), want("first", "*.example.com", "glob"));
        assert_eq!(user("gcr.io/app"), None);
        // Docker Hub: a docker.io key matches first; index.docker.io only as the fallback.
        let hub = [entry("a", "https://index.docker.io/v1/", "legacy", "p"), entry("b", "docker.io", "new", "p")];
        assert_eq!(lookup(&hub, "nginx").map(|c| c.username), Some("new".to_string()));
        assert_eq!(lookup(&hub[..1], "nginx").map(|c| c.username), Some("legacy".to_string()));
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn service_account(names: &[&str]) -> ServiceAccount {
        let refs: Vec<serde_json::Value> = names.iter().map(|n| serde_json::json!({"name": n})).collect();
        serde_json::from_value(serde_json::json!({"metadata": {"name": "sa"}, "imagePullSecrets": refs})).unwrap()
    }

    #[test]
    fn the_pods_pull_secrets_else_its_service_accounts() {
        let own = pod(
            "metadata: {name: p}\nspec:\n  containers: [{name: c}]\n  imagePullSecrets: [{name: b}, {name: ''}, {name: a}, {name: b}]\n",
        );
        let sa = service_account(&["from-sa"]);
        assert_eq!(pull_secret_names(&own, Some(&sa)), vec!["b", "a"]);
        let none = pod("metadata: {name: p}\nspec:\n  containers: [{name: c}]\n");
        assert_eq!(pull_secret_names(&none, Some(&sa)), vec!["from-sa"]);
        assert_eq!(pull_secret_names(&none, None), Vec::<String>::new());
        let empty_list = pod("metadata: {name: p}\nspec:\n  containers: [{name: c}]\n  imagePullSecrets: []\n");
        assert_eq!(pull_secret_names(&empty_list, Some(&sa)), vec!["from-sa"]);
    }

    #[test]
    fn service_account_defaults_to_default() {
        assert_eq!(service_account_name(&pod("metadata: {name: p}\nspec:\n  containers: []\n")), "default");
        assert_eq!(
            service_account_name(&pod("metadata: {name: p}\nspec:\n  containers: []\n  serviceAccountName: builder\n")),
            "builder"
        );
        assert_eq!(
            service_account_name(&pod("metadata: {name: p}\nspec:\n  containers: []\n  serviceAccount: legacy\n")),
            "legacy"
        );
    }

    fn run(action: &str, stdin: &str, entries: &[Entry]) -> (String, i32) {
        let (out, code) = helper_command(action, stdin.as_bytes(), entries);
        (String::from_utf8(out.expose().to_vec()).unwrap(), code)
    }

    #[test]
    fn helper_get_prints_the_credentials_as_docker_helpers_do() {
        let entries = [entry("regcred", "127.0.0.1:5000", "u", "p<&>\"\\\n")];
        assert_eq!(
            run("get", "127.0.0.1:5000\n", &entries),
            (
                "{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"u\",\"Secret\":\"p\\u003c\\u0026\\u003e\\\"\\\\\\n\"}\n"
                    .to_string(),
                0
            )
        );
        let hub = [entry("regcred", "https://index.docker.io/v1/", "me", "pw")];
        assert_eq!(
            run("get", "https://index.docker.io/v1/", &hub),
            ("{\"ServerURL\":\"https://index.docker.io/v1/\",\"Username\":\"me\",\"Secret\":\"pw\"}\n".to_string(), 0)
        );
    }

    #[test]
    fn helper_get_not_found_and_missing_url() {
        let entries = [entry("regcred", "127.0.0.1:5000", "u", "p")];
        assert_eq!(
            run("get", "127.0.0.1:5001", &entries),
            ("credentials not found in native keychain\n".to_string(), 1)
        );
        assert_eq!(run("get", "", &entries), ("no credentials server URL\n".to_string(), 1));
        assert_eq!(run("get", " \r\n", &entries), ("no credentials server URL\n".to_string(), 1));
    }

    #[test]
    fn helper_list_maps_registries_to_usernames() {
        let entries = [
            entry("a", "r.io", "first", "p"),
            entry("b", "r.io", "second", "p"),
            entry("b", "https://index.docker.io/v1/", "hub", "p"),
        ];
        assert_eq!(
            run("list", "", &entries),
            ("{\"https://index.docker.io/v1/\":\"hub\",\"r.io\":\"first\"}\n".to_string(), 0)
        );
        assert_eq!(run("list", "", &[]), ("{}\n".to_string(), 0));
    }

    #[test]
    fn helper_store_and_erase_are_refused() {
        let stdin = r#"{"ServerURL":"r.io","Username":"u","Secret":"p"}"#;
        for action in ["store", "erase"] {
            assert_eq!(
                run(action, stdin, &[]),
                (
                    format!(
                        "strongroom: {action} is not supported: registry credentials are the pod's imagePullSecrets; \
                         change those Secrets through the Kubernetes API\n"
                    ),
                    1
                )
            );
        }
        assert_eq!(run("delete", "", &[]), ("Unknown credential action `delete`\n".to_string(), 1));
        assert_eq!(
            run("version", "", &[]),
            (format!("docker-credential-strongroom (strongroom) {}\n", env!("CARGO_PKG_VERSION")), 0)
        );
        assert!(needs_credentials("get") && needs_credentials("list"));
        assert!(!needs_credentials("store") && !needs_credentials("erase") && !needs_credentials("version"));
    }

    #[test]
    fn containers_auth_json_merges_by_kubelet_key() {
        let entries = [
            entry("a", "https://index.docker.io/v1/", "hub", "p1"),
            entry("a", "127.0.0.1:5000", "u", "p"),
            entry("b", "http://127.0.0.1:5000/v2/", "later", "ignored"),
            entry("b", "r.io/team", "t", "x"),
        ];
        let json = containers_auth_json(&entries);
        let want = format!(
            "{{\"auths\":{{\"127.0.0.1:5000\":{{\"auth\":\"{}\"}},\"index.docker.io\":{{\"auth\":\"{}\"}},\"r.io/team\":{{\"auth\":\"{}\"}}}}}}\n",
            b64("u:p"),
            b64("hub:p1"),
            b64("t:x")
        );
        assert_eq!(String::from_utf8(json.expose().to_vec()).unwrap(), want);
        assert_eq!(containers_auth_json(&[]).expose(), b"{\"auths\":{}}\n");
    }

    #[test]
    fn json_strings_are_written_as_go_writes_them() {
        let mut out = Vec::new();
        push_json_string(&mut out, b"a\x01\x08\x0c\t\xff\xfe\xe2\x80\xa8\xc3\xa9");
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\u0001\\b\\f\\t\\ufffd\\ufffd\\u2028\u{e9}\"");
    }

    #[test]
    fn lookup_targets_normalise_images_and_server_urls() {
        let cases = [
            ("nginx", Some(("docker.io/library/nginx", true))),
            ("nginx:1.25", Some(("docker.io/library/nginx", true))),
            ("nginx:latest", Some(("docker.io/library/nginx", true))),
            ("registry:5000", Some(("registry:5000", false))),
            ("r.io", Some(("r.io", false))),
            ("team/app@sha256:abc", Some(("docker.io/team/app", true))),
            ("index.docker.io/team/app", Some(("docker.io/team/app", true))),
            ("docker.io", Some(("docker.io", true))),
            ("r.io:5000/team/app:1", Some(("r.io:5000/team/app", false))),
            ("localhost/app", Some(("localhost/app", false))),
            ("localhost:5000", Some(("localhost:5000", false))),
            ("https://index.docker.io/v1/", Some(("docker.io", true))),
            ("http://r.io/v2/team", Some(("r.io/team", false))),
            ("", None),
        ];
        for (input, want) in cases {
            let got = lookup_target(input);
            assert_eq!(got.as_ref().map(|(t, h)| (t.as_str(), *h)), want, "{input}");
        }
    }
}
