//! Bearer tokens: service account tokens (JWTs strongroom signs and verifies, as Kubernetes'
//! `pkg/serviceaccount`), the issuer's OpenID discovery documents, the static token file
//! (`--token-auth-file`) and the checks of a TokenRequest's spec.
//!
//! This module knows keys, bytes and claims; it knows nothing about HTTP or storage. The server
//! decides what a failure looks like on the wire (one uniform 401 for every [`TokenError`] a
//! token causes) and checks that the ServiceAccount and bound objects named by verified claims
//! still exist with the same UIDs.
//!
//! Only one algorithm exists here: ES256 (ECDSA P-256 with SHA-256), fixed by the key. A verifier
//! that reads the algorithm from the token is how `alg: none` and HS256-with-the-public-key
//! forgeries work, so the header's `alg` is checked against ES256 and never used to choose.
//!
//! Invariant: no secret (private key, token, token hash) appears in a `Debug` or `Display`
//! output, and no error carries bytes taken from a token.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use strongroom_api::field::{BadValue, ErrorList, FieldError};
use strongroom_api::json::{DecodeError, parse_json};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

/// The file in the data directory that holds the service account signing key.
pub const KEY_FILE_NAME: &str = "service-account.key";

/// The only JWS algorithm strongroom signs with or accepts.
pub const ALGORITHM: &str = "ES256";

/// Tokens longer than this are refused before any parsing. Our tokens are well under 2 KiB;
/// the cap bounds the work an unauthenticated request can cause.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew allowed on `exp`, `nbf` and `iat`: go-jose's `DefaultLeeway`, which Kubernetes uses.
pub const LEEWAY_SECONDS: i64 = 60;

/// Where the issuer's OpenID provider configuration is served (Kubernetes' `OpenIDConfigPath`).
pub const OPENID_CONFIG_PATH: &str = "/.well-known/openid-configuration";

/// Where the issuer's key set is served (Kubernetes' `JWKSPath`).
pub const JWKS_PATH: &str = "/openid/v1/jwks";

/// The prefix of Kubernetes' service account usernames (`MakeUsername`).
pub const SERVICE_ACCOUNT_USERNAME_PREFIX: &str = "system:serviceaccount:";

/// The group every service account belongs to (`AllServiceAccountsGroup`).
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// A TokenRequest may not ask for less than 10 minutes (`MinTokenAgeSec`).
pub const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;

/// A TokenRequest may not ask for more than 2^32 seconds.
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The lifetime of a TokenRequest that names none: the v1 API's default of one hour.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;

/// The DER prefix of a SubjectPublicKeyInfo holding an uncompressed P-256 point: the
/// id-ecPublicKey and prime256v1 object identifiers and the bit string header. Appending the
/// 65-byte point gives exactly what Go's `x509.MarshalPKIXPublicKey` produces, which is what
/// Kubernetes hashes for key ids.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An uncompressed P-256 point: `0x04 || x || y`.
const POINT_LEN: usize = 65;

/// A fixed-size ES256 signature: `r || s`, 32 bytes each (RFC 7518 section 3.4).
const SIGNATURE_LEN: usize = 64;

/// A key file larger than this is not a key; refusing it early avoids reading a huge file.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Header parameters that let a token name its own key or change how it is processed (embedded
/// keys, key URLs, critical extensions, unencoded payloads, compression, nested tokens). Our
/// tokens carry none, so any of them marks a forgery attempt or someone else's token.
const FORBIDDEN_HEADER_PARAMETERS: &[&str] = &["jwk", "jku", "x5u", "x5c", "crit", "b64", "zip", "enc", "cty"];

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Why a key or token file could not be used, or why a token was refused.
///
/// The server answers every token refusal with the same 401 and logs the variant; none of them
/// carries bytes from the token, so logging them is safe.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error(
        "service account key {} may be accessed by group or others (mode {mode:04o}); make it readable by its owner only (chmod 600)",
        path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    #[error("service account key {} is not usable: {reason}", path.display())]
    InvalidKey { path: PathBuf, reason: &'static str },
    #[error("cannot sign the token: the system random number generator failed")]
    Signing,

    /// A CSV syntax error in the static token file, worded as Go's `csv.ParseError`.
    #[error("token file '{}': {}", path.display(), csv_message(*start_line, *line, *column, reason))]
    TokenFileSyntax { path: PathBuf, start_line: usize, line: usize, column: usize, reason: &'static str },
    /// Kubernetes' message, with the line number added (Kubernetes names no line).
    #[error(
        "token file '{}' must have at least 3 columns (token, user name, user uid), found {found} on line {line}",
        path.display()
    )]
    TokenFileColumns { path: PathBuf, line: usize, found: usize },
    #[error("token file '{}' is not valid UTF-8 on line {line}", path.display())]
    TokenFileEncoding { path: PathBuf, line: usize },

    #[error("token is too long ({len} bytes, at most {MAX_TOKEN_BYTES})")]
    TooLarge { len: usize },
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token {0} has a duplicate key")]
    DuplicateKey(&'static str),
    #[error("token algorithm is not {ALGORITHM}")]
    UnsupportedAlgorithm,
    #[error("token header has the forbidden parameter {0:?}")]
    ForbiddenHeader(&'static str),
    #[error("token key id names no known key")]
    UnknownKeyId,
    #[error("token signature is not {SIGNATURE_LEN} bytes")]
    SignatureLength,
    #[error("token signature is invalid")]
    InvalidSignature,
    #[error("token issuer is not accepted")]
    InvalidIssuer,
    #[error("token audiences are not accepted")]
    InvalidAudience,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("service account token was issued in the future")]
    IssuedInFuture,
    #[error("token subject does not match its service account")]
    InvalidSubject,
    #[error("token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("token claim {0} has the wrong form")]
    InvalidClaim(&'static str),
}

fn csv_message(start_line: usize, line: usize, column: usize, reason: &str) -> String {
    if start_line == line {
        format!("parse error on line {line}, column {column}: {reason}")
    } else {
        format!("record on line {start_line}; parse error on line {line}, column {column}: {reason}")
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TokenError {
    let path = path.to_path_buf();
    move |source| TokenError::Io { action, path, source }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// A P-256 public key and its Kubernetes key id.
///
/// Invariant: `point` is 65 bytes starting with 0x04 and `kid` is base64url(SHA-256(SPKI DER))
/// of it; both are set only by [`VerifyingKey::from_uncompressed_point`].
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: String,
    point: [u8; POINT_LEN],
}

impl VerifyingKey {
    /// A key from its uncompressed point (`0x04 || x || y`). Whether the point is on the curve
    /// is checked by ring at every verification, which then fails.
    pub fn from_uncompressed_point(bytes: &[u8]) -> Option<VerifyingKey> {
        let point: [u8; POINT_LEN] = bytes.try_into().ok()?;
        if point[0] != 0x04 {
            return None;
        }
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(spki_der(&point)));
        Some(VerifyingKey { kid, point })
    }

    /// A key from a DER SubjectPublicKeyInfo, as `openssl ec -pubout -outform der` writes it.
    pub fn from_spki_der(der: &[u8]) -> Option<VerifyingKey> {
        let point = der.strip_prefix(&SPKI_P256_PREFIX[..])?;
        VerifyingKey::from_uncompressed_point(point)
    }

    /// The key id Kubernetes computes: base64url (no padding) of SHA-256 of the DER
    /// SubjectPublicKeyInfo. It is not reversible, so publishing it reveals nothing.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        spki_der(&self.point)
    }

    /// The uncompressed point, `0x04 || x || y`.
    pub fn uncompressed_point(&self) -> &[u8] {
        &self.point
    }

    /// The key as a JWK, with members in the order go-jose writes them.
    pub fn jwk(&self) -> Value {
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": ALGORITHM,
            "x": URL_SAFE_NO_PAD.encode(&self.point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.point[33..]),
        })
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.point[..]).verify(message, signature).is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).finish()
    }
}

fn spki_der(point: &[u8; POINT_LEN]) -> Vec<u8> {
    let mut der = Vec::with_capacity(SPKI_P256_PREFIX.len() + POINT_LEN);
    der.extend_from_slice(&SPKI_P256_PREFIX);
    der.extend_from_slice(point);
    der
}

/// The service account issuer's private key. `Debug` shows the key id only.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: VerifyingKey,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &ALGORITHM).field("kid", &self.public.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads `DIR/service-account.key`, or creates it when it does not exist.
    ///
    /// A new key is written to a temporary file (mode 0600) that is then hard-linked into place,
    /// which fails instead of overwriting if another process created the key meanwhile: every
    /// process then signs with the key on disk, so no token outlives a restart unverifiable.
    /// An existing file must be accessible to its owner only.
    pub fn load_or_generate(dir: &Path) -> Result<SigningKey, TokenError> {
        let path = dir.join(KEY_FILE_NAME);
        match fs::File::open(&path) {
            Ok(file) => SigningKey::load_file(file, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => SigningKey::generate_into(dir, &path),
            Err(e) => Err(io_error("cannot open", &path)(e)),
        }
    }

    /// Loads a PKCS#8 PEM P-256 key (`-----BEGIN PRIVATE KEY-----`) that only its owner may
    /// access.
    pub fn load(path: &Path) -> Result<SigningKey, TokenError> {
        let file = fs::File::open(path).map_err(io_error("cannot open", path))?;
        SigningKey::load_file(file, path)
    }

    /// A new key held in memory only.
    pub fn generate() -> Result<SigningKey, TokenError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TokenError::Signing)?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        SigningKey::from_pkcs8(&pkcs8, Path::new("<generated>"))
    }

    fn load_file(file: fs::File, path: &Path) -> Result<SigningKey, TokenError> {
        // The open file's metadata, so the checked file is the one read.
        let meta = file.metadata().map_err(io_error("cannot inspect", path))?;
        if !meta.is_file() {
            return Err(TokenError::InvalidKey { path: path.to_path_buf(), reason: "not a regular file" });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::InsecureKeyFile { path: path.to_path_buf(), mode });
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(TokenError::InvalidKey {
                path: path.to_path_buf(),
                reason: "the file is too large to be a key",
            });
        }
        let mut pem = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
        file.take(MAX_KEY_FILE_BYTES).read_to_end(&mut pem).map_err(io_error("cannot read", path))?;
        let der = pem_to_pkcs8(&pem, path)?;
        SigningKey::from_pkcs8(&der, path)
    }

    fn from_pkcs8(der: &[u8], path: &Path) -> Result<SigningKey, TokenError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(|_| {
            TokenError::InvalidKey {
                path: path.to_path_buf(),
                reason: "not a PKCS#8 ECDSA P-256 private key that includes its public key",
            }
        })?;
        let public =
            VerifyingKey::from_uncompressed_point(pair.public_key().as_ref()).ok_or(TokenError::InvalidKey {
                path: path.to_path_buf(),
                reason: "the public key is not a P-256 point",
            })?;
        Ok(SigningKey { pair, public, rng })
    }

    fn generate_into(dir: &Path, path: &Path) -> Result<SigningKey, TokenError> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error("cannot create", dir))?;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TokenError::Signing)?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let key = SigningKey::from_pkcs8(&pkcs8, path)?;
        let pem = pkcs8_to_pem(&pkcs8);

        let mut suffix = [0u8; 8];
        rng.fill(&mut suffix).map_err(|_| TokenError::Signing)?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{KEY_FILE_NAME}.{suffix}.tmp"));
        let written = (|| {
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(pem.as_bytes())?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("cannot write", &tmp)(e));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("cannot sync", dir))?;
                tracing::info!(path = %path.display(), kid = %key.public.kid, "generated the service account signing key");
                Ok(key)
            }
            // Another process created the key first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => SigningKey::load(path),
            Err(e) => Err(io_error("cannot create", path)(e)),
        }
    }

    /// The key id tokens carry in their `kid` header.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public half, for a [`Verifier`] and the JWKS.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `claims` as a compact JWS with the header `{"alg":"ES256","kid":"…"}`.
    ///
    /// Fails only when the system random number generator does (ECDSA needs a fresh nonce).
    pub fn issue(&self, claims: &ServiceAccountClaims) -> Result<Token, TokenError> {
        let payload = serde_json::to_vec(&claims.to_json()).map_err(|_| TokenError::Signing)?;
        let header = format!(r#"{{"alg":"{ALGORITHM}","kid":"{}"}}"#, self.public.kid);
        self.sign_compact(header.as_bytes(), &payload)
    }

    fn sign_compact(&self, header: &[u8], payload: &[u8]) -> Result<Token, TokenError> {
        let mut token = Zeroizing::new(String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100));
        URL_SAFE_NO_PAD.encode_string(header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let sig = self.pair.sign(&self.rng, token.as_bytes()).map_err(|_| TokenError::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Ok(Token(token))
    }
}

fn pkcs8_to_pem(der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut pem = Zeroizing::new(String::with_capacity(b64.len() + 100));
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

fn pem_to_pkcs8(pem: &[u8], path: &Path) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    let invalid = |reason| TokenError::InvalidKey { path: path.to_path_buf(), reason };
    let text = std::str::from_utf8(pem).map_err(|_| invalid("the file is not PEM text"))?;
    let Some(start) = text.find(PEM_BEGIN) else {
        return Err(invalid(if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            "the key is in SEC1 form; convert it with `openssl pkcs8 -topk8 -nocrypt`"
        } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            "encrypted keys are not supported"
        } else {
            "no -----BEGIN PRIVATE KEY----- block"
        }));
    };
    let body = &text[start + PEM_BEGIN.len()..];
    let end = body.find(PEM_END).ok_or_else(|| invalid("the PEM block has no end line"))?;
    let b64: Zeroizing<String> = Zeroizing::new(body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = STANDARD.decode(b64.as_bytes()).map_err(|_| invalid("the PEM block is not valid base64"))?;
    Ok(Zeroizing::new(der))
}

/// A signed token. `Debug` is redacted and there is no `Display`; the string is zeroized on drop.
pub struct Token(Zeroizing<String>);

impl Token {
    /// The compact JWS, for the TokenRequest status. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// A reference to an object by name and UID, as in the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub name: String,
    /// Empty only for a node whose UID was unknown when the token was issued.
    pub uid: String,
}

impl ObjectRef {
    pub fn new(name: impl Into<String>, uid: impl Into<String>) -> ObjectRef {
        ObjectRef { name: name.into(), uid: uid.into() }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        if !self.uid.is_empty() {
            m.insert("uid".into(), Value::String(self.uid.clone()));
        }
        Value::Object(m)
    }
}

/// The claims of a service account token, as Kubernetes' `serviceaccount.Claims` builds them.
///
/// After [`Verifier::verify`], the server still has to check that the ServiceAccount (and the
/// secret, pod or node, when named) exists with the UID given here and is not being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    /// `iss`
    pub issuer: String,
    /// `aud`; always written as an array.
    pub audiences: Vec<String>,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `nbf`, Unix seconds.
    pub not_before: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `jti`: a UUID that identifies this token in audit (`credential-id`).
    pub jti: String,
    /// `kubernetes.io.namespace`
    pub namespace: String,
    /// `kubernetes.io.serviceaccount`
    pub service_account: ObjectRef,
    /// `kubernetes.io.secret`: the token dies with this secret.
    pub secret: Option<ObjectRef>,
    /// `kubernetes.io.pod`: the token dies with this pod.
    pub pod: Option<ObjectRef>,
    /// `kubernetes.io.node`: the node of the bound pod, or the bound node.
    pub node: Option<ObjectRef>,
    /// `kubernetes.io.warnafter`: Kubernetes' extended-expiry transition; never set by strongroom.
    pub warn_after: Option<i64>,
}

impl ServiceAccountClaims {
    /// Claims for a token issued at `now` (Unix seconds) that expires `expiration_seconds`
    /// later, with a fresh random `jti`. `iat` and `nbf` are `now`, as in Kubernetes.
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        namespace: impl Into<String>,
        service_account: ObjectRef,
        now: i64,
        expiration_seconds: i64,
    ) -> ServiceAccountClaims {
        ServiceAccountClaims {
            issuer: issuer.into(),
            audiences,
            issued_at: now,
            not_before: now,
            expires_at: now.saturating_add(expiration_seconds),
            jti: uuid::Uuid::new_v4().to_string(),
            namespace: namespace.into(),
            service_account,
            secret: None,
            pod: None,
            node: None,
            warn_after: None,
        }
    }

    pub fn with_secret(mut self, secret: ObjectRef) -> Self {
        self.secret = Some(secret);
        self
    }

    pub fn with_pod(mut self, pod: ObjectRef) -> Self {
        self.pod = Some(pod);
        self
    }

    pub fn with_node(mut self, node: ObjectRef) -> Self {
        self.node = Some(node);
        self
    }

    /// `system:serviceaccount:<namespace>:<name>`: the `sub` claim and the username.
    pub fn subject(&self) -> String {
        format!("{SERVICE_ACCOUNT_USERNAME_PREFIX}{}:{}", self.namespace, self.service_account.name)
    }

    /// The groups Kubernetes gives a service account (`MakeGroupNames`).
    pub fn groups(&self) -> Vec<String> {
        vec![ALL_SERVICE_ACCOUNTS_GROUP.to_string(), format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{}", self.namespace)]
    }

    /// The user's extra attributes, as Kubernetes' `ServiceAccountInfo.UserInfo` fills them.
    pub fn extra(&self) -> Vec<(&'static str, String)> {
        let mut extra = Vec::new();
        if let Some(pod) = &self.pod
            && !pod.name.is_empty()
            && !pod.uid.is_empty()
        {
            extra.push(("authentication.kubernetes.io/pod-name", pod.name.clone()));
            extra.push(("authentication.kubernetes.io/pod-uid", pod.uid.clone()));
        }
        if !self.jti.is_empty() {
            extra.push(("authentication.kubernetes.io/credential-id", format!("JTI={}", self.jti)));
        }
        if let Some(node) = &self.node
            && !node.name.is_empty()
        {
            extra.push(("authentication.kubernetes.io/node-name", node.name.clone()));
            if !node.uid.is_empty() {
                extra.push(("authentication.kubernetes.io/node-uid", node.uid.clone()));
            }
        }
        extra
    }

    /// The payload, keys sorted as Kubernetes' go-jose writes them.
    fn to_json(&self) -> Value {
        let mut k8s = Map::new();
        k8s.insert("namespace".into(), Value::String(self.namespace.clone()));
        for (key, r) in [("node", &self.node), ("pod", &self.pod), ("secret", &self.secret)] {
            if let Some(r) = r {
                k8s.insert(key.into(), r.to_json());
            }
        }
        k8s.insert("serviceaccount".into(), self.service_account.to_json());
        if let Some(w) = self.warn_after {
            k8s.insert("warnafter".into(), Value::from(w));
        }
        json!({
            "aud": self.audiences,
            "exp": self.expires_at,
            "iat": self.issued_at,
            "iss": self.issuer,
            "jti": self.jti,
            "kubernetes.io": k8s,
            "nbf": self.not_before,
            "sub": self.subject(),
        })
    }

    /// Reads verified claims strictly: every claim strongroom issues is required and typed.
    fn from_json(claims: &Map<String, Value>) -> Result<ServiceAccountClaims, TokenError> {
        let issuer = required_str(claims, "iss")?.to_string();
        let audiences = match claims.get("aud") {
            None => return Err(TokenError::MissingClaim("aud")),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenError::InvalidClaim("aud"))?,
            Some(_) => return Err(TokenError::InvalidClaim("aud")),
        };
        let k8s = match claims.get("kubernetes.io") {
            None => return Err(TokenError::MissingClaim("kubernetes.io")),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(TokenError::InvalidClaim("kubernetes.io")),
        };
        let namespace = required_str(k8s, "kubernetes.io.namespace")?.to_string();
        let service_account = object_ref(k8s, "serviceaccount", "kubernetes.io.serviceaccount", true)?
            .ok_or(TokenError::MissingClaim("kubernetes.io.serviceaccount"))?;
        Ok(ServiceAccountClaims {
            issuer,
            audiences,
            issued_at: numeric_date(claims, "iat")?,
            not_before: numeric_date(claims, "nbf")?,
            expires_at: numeric_date(claims, "exp")?,
            jti: required_str(claims, "jti")?.to_string(),
            namespace,
            service_account,
            secret: object_ref(k8s, "secret", "kubernetes.io.secret", true)?,
            pod: object_ref(k8s, "pod", "kubernetes.io.pod", true)?,
            node: object_ref(k8s, "node", "kubernetes.io.node", false)?,
            warn_after: match k8s.get("warnafter") {
                None => None,
                Some(v) => Some(v.as_i64().ok_or(TokenError::InvalidClaim("kubernetes.io.warnafter"))?),
            },
        })
    }
}

/// The last segment of a dotted claim path, the key in its object.
fn leaf(path: &'static str) -> &'static str {
    path.rsplit('.').next().unwrap_or(path)
}

fn required_str<'a>(m: &'a Map<String, Value>, path: &'static str) -> Result<&'a str, TokenError> {
    match m.get(leaf(path)) {
        None => Err(TokenError::MissingClaim(path)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(TokenError::InvalidClaim(path)),
    }
}

/// A NumericDate. Kubernetes writes whole seconds; fractions are refused rather than rounded.
fn numeric_date(m: &Map<String, Value>, name: &'static str) -> Result<i64, TokenError> {
    match m.get(name) {
        None => Err(TokenError::MissingClaim(name)),
        Some(v) => v.as_i64().ok_or(TokenError::InvalidClaim(name)),
    }
}

fn object_ref(
    m: &Map<String, Value>,
    key: &str,
    path: &'static str,
    uid_required: bool,
) -> Result<Option<ObjectRef>, TokenError> {
    let Some(v) = m.get(key) else { return Ok(None) };
    let Value::Object(obj) = v else { return Err(TokenError::InvalidClaim(path)) };
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(TokenError::InvalidClaim(path)),
    };
    let uid = match obj.get("uid") {
        Some(Value::String(s)) if !s.is_empty() || !uid_required => s.clone(),
        None if !uid_required => String::new(),
        _ => return Err(TokenError::InvalidClaim(path)),
    };
    Ok(Some(ObjectRef { name, uid }))
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// Verifies service account tokens against the issuer's public keys.
///
/// Invariant: `keys` is not empty (a verifier without keys would refuse everything with a
/// misleading reason), ensured by [`Verifier::new`].
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    issuer: String,
}

impl Verifier {
    /// A verifier for tokens from `issuer` signed by any of `keys` (several during a rotation).
    /// Returns `None` when `keys` is empty.
    pub fn new(issuer: impl Into<String>, keys: Vec<VerifyingKey>) -> Option<Verifier> {
        if keys.is_empty() {
            return None;
        }
        Some(Verifier { keys, issuer: issuer.into() })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Verifies `token` and returns its claims, if its signature is ours, its issuer is ours,
    /// one of its audiences is in `audiences`, and it is valid at `now` (Unix seconds, with
    /// [`LEEWAY_SECONDS`] of skew).
    ///
    /// Everything that can be checked without the public key is checked before the signature:
    /// size, shape, encoding, the header's algorithm and parameters, the key id and the
    /// signature's length. The claims are read only from a verified payload.
    pub fn verify(&self, token: &str, audiences: &[String], now: i64) -> Result<ServiceAccountClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge { len: token.len() });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("a token has exactly three dot-separated parts"));
        };
        let header = decode_part(header_b64, "the header is not base64url without padding")?;
        let payload = decode_part(payload_b64, "the payload is not base64url without padding")?;
        let sig = decode_part(sig_b64, "the signature is not base64url without padding")?;

        let header = parse_object(&header, "header")?;
        match header.get("alg") {
            Some(Value::String(alg)) if alg == ALGORITHM => {}
            Some(Value::String(_)) => return Err(TokenError::UnsupportedAlgorithm),
            Some(_) => return Err(TokenError::Malformed("the header's alg is not a string")),
            None => return Err(TokenError::Malformed("the header has no alg")),
        }
        if let Some(name) = FORBIDDEN_HEADER_PARAMETERS.iter().find(|p| header.contains_key(**p)) {
            return Err(TokenError::ForbiddenHeader(name));
        }
        match header.get("typ") {
            None => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(TokenError::Malformed("the header's typ is not JWT")),
        }
        // As Kubernetes: a kid selects the keys with that id; without one every key is tried.
        let candidates: Vec<&VerifyingKey> = match header.get("kid") {
            None => self.keys.iter().collect(),
            Some(Value::String(kid)) => self.keys.iter().filter(|k| k.kid == *kid).collect(),
            Some(_) => return Err(TokenError::Malformed("the header's kid is not a string")),
        };
        if candidates.is_empty() {
            return Err(TokenError::UnknownKeyId);
        }
        if sig.len() != SIGNATURE_LEN {
            return Err(TokenError::SignatureLength);
        }
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if !candidates.iter().any(|k| k.verify(signed, &sig)) {
            return Err(TokenError::InvalidSignature);
        }

        let raw = parse_object(&payload, "claims")?;
        match raw.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(TokenError::InvalidIssuer),
            Some(_) => return Err(TokenError::InvalidClaim("iss")),
            None => return Err(TokenError::MissingClaim("iss")),
        }
        let claims = ServiceAccountClaims::from_json(&raw)?;
        if !claims.audiences.iter().any(|a| audiences.contains(a)) {
            return Err(TokenError::InvalidAudience);
        }
        // The comparisons of go-jose's `Claims.Validate`, which Kubernetes uses.
        if now.saturating_sub(LEEWAY_SECONDS) > claims.expires_at {
            return Err(TokenError::Expired);
        }
        if now.saturating_add(LEEWAY_SECONDS) < claims.not_before {
            return Err(TokenError::NotYetValid);
        }
        if now.saturating_add(LEEWAY_SECONDS) < claims.issued_at {
            return Err(TokenError::IssuedInFuture);
        }
        // Usernames join namespace and name with ':', so a ':' in either would make two
        // identities share one username. Kubernetes names cannot hold one.
        if claims.namespace.contains(':') || claims.service_account.name.contains(':') {
            return Err(TokenError::InvalidSubject);
        }
        match raw.get("sub") {
            Some(Value::String(sub)) if *sub == claims.subject() => {}
            Some(Value::String(_)) => return Err(TokenError::InvalidSubject),
            Some(_) => return Err(TokenError::InvalidClaim("sub")),
            None => return Err(TokenError::MissingClaim("sub")),
        }
        Ok(claims)
    }

    /// The issuer's JSON Web Key Set: every verifying key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(VerifyingKey::jwk).collect::<Vec<_>>() })
    }

    /// The issuer's OpenID provider configuration, pointing at `jwks_uri`.
    pub fn openid_configuration(&self, jwks_uri: &str) -> Value {
        openid_configuration(&self.issuer, jwks_uri)
    }
}

fn decode_part(part: &str, reason: &'static str) -> Result<Vec<u8>, TokenError> {
    if part.is_empty() {
        return Err(TokenError::Malformed("a token part is empty"));
    }
    // The engine refuses padding, characters outside the URL-safe alphabet and non-zero
    // trailing bits, so each token has exactly one encoding.
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(reason))
}

/// Parses a JSON object, refusing duplicate keys: a parser that keeps the first and one that
/// keeps the last would otherwise read different claims from the same signed bytes.
fn parse_object(bytes: &[u8], part: &'static str) -> Result<Map<String, Value>, TokenError> {
    match parse_json(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TokenError::Malformed(if part == "header" {
            "the header is not a JSON object"
        } else {
            "the claims are not a JSON object"
        })),
        Err(DecodeError::DuplicateField { .. }) => Err(TokenError::DuplicateKey(part)),
        Err(_) => Err(TokenError::Malformed(if part == "header" {
            "the header is not JSON"
        } else {
            "the claims are not JSON"
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// The OpenID provider configuration Kubernetes serves at [`OPENID_CONFIG_PATH`].
pub fn openid_configuration(issuer: &str, jwks_uri: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    })
}

/// Kubernetes' default `jwks_uri` when none is configured: `https://<external address>/openid/v1/jwks`.
pub fn default_jwks_uri(external_address: &str) -> String {
    format!("https://{external_address}{JWKS_PATH}")
}

// ---------------------------------------------------------------------------------------------
// Static token file
// ---------------------------------------------------------------------------------------------

/// A user named by the static token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticUser {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The users of a `--token-auth-file`, keyed by the SHA-256 of their token. The tokens
/// themselves are not kept: each is hashed and zeroized while the file is read.
pub struct StaticTokens {
    by_hash: HashMap<[u8; 32], StaticUser>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens").field("tokens", &self.by_hash.len()).finish()
    }
}

impl StaticTokens {
    /// Reads a token file as Kubernetes' `tokenfile.NewCSV` does: CSV records
    /// `token,user,uid[,"group1,group2"]`, quoted fields, blank lines skipped (no comment
    /// syntax: a line starting with `#` is a record), at least 3 columns, extra columns ignored,
    /// empty tokens skipped with a warning, a repeated token warned about with the last record
    /// winning.
    pub fn load(path: &Path) -> Result<StaticTokens, TokenError> {
        let contents = Zeroizing::new(fs::read(path).map_err(io_error("cannot read", path))?);
        StaticTokens::parse(&contents, path)
    }

    /// [`StaticTokens::load`] on bytes already read; `path` only names the file in messages.
    pub fn parse(contents: &[u8], path: &Path) -> Result<StaticTokens, TokenError> {
        if let Err(e) = std::str::from_utf8(contents) {
            let line = 1 + contents[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count();
            return Err(TokenError::TokenFileEncoding { path: path.to_path_buf(), line });
        }
        let mut reader = CsvReader { data: contents, pos: 0, line: 0 };
        let mut by_hash = HashMap::new();
        let mut record_number = 0usize;
        while let Some(record) = reader.next_record() {
            let mut record = record.map_err(|e| TokenError::TokenFileSyntax {
                path: path.to_path_buf(),
                start_line: e.start_line,
                line: e.line,
                column: e.column,
                reason: e.reason,
            })?;
            if record.fields.len() < 3 {
                return Err(TokenError::TokenFileColumns {
                    path: path.to_path_buf(),
                    line: record.line,
                    found: record.fields.len(),
                });
            }
            record_number += 1;
            if record.fields[0].is_empty() {
                tracing::warn!(path = %path.display(), record = record_number, "empty token has been found in token file");
                continue;
            }
            let hash: [u8; 32] = Sha256::digest(&record.fields[0][..]).into();
            record.fields[0].zeroize();
            // The whole file was checked to be UTF-8 and fields end at ASCII delimiters.
            let text = |i: usize| String::from_utf8_lossy(&record.fields[i]).into_owned();
            let user = StaticUser {
                name: text(1),
                uid: text(2),
                groups: if record.fields.len() >= 4 {
                    text(3).split(',').map(str::to_string).collect()
                } else {
                    vec![]
                },
            };
            if by_hash.insert(hash, user).is_some() {
                tracing::warn!(path = %path.display(), record = record_number, "duplicate token has been found in token file");
            }
        }
        Ok(StaticTokens { by_hash })
    }

    /// The user whose token this is.
    ///
    /// The map is keyed by SHA-256 of the token, so the map's own key comparison only ever
    /// leaks timing about hashes, which says nothing usable about any token; the found key is
    /// still compared in constant time before it is believed.
    pub fn lookup(&self, token: &str) -> Option<&StaticUser> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let (stored, user) = self.by_hash.get_key_value(&hash)?;
        bool::from(stored.ct_eq(&hash)).then_some(user)
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// One CSV record, its fields zeroized on drop (the first is a token).
struct CsvRecord {
    /// The line the record starts on, 1-based.
    line: usize,
    fields: Vec<Zeroizing<Vec<u8>>>,
}

struct CsvError {
    start_line: usize,
    line: usize,
    column: usize,
    reason: &'static str,
}

const BARE_QUOTE: &str = "bare \" in non-quoted-field";
const EXTRANEOUS_QUOTE: &str = "extraneous or missing \" in quoted-field";

/// A reader for RFC 4180 CSV with the rules of Go's `encoding/csv` defaults: `\r\n` read as
/// `\n`, empty lines skipped, quotes only around whole fields with `""` for a quote, a quoted
/// field may span lines, a final line without newline loses a trailing `\r`.
struct CsvReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// The number of the last line read, 1-based.
    line: usize,
}

impl<'a> CsvReader<'a> {
    /// The next line without its line ending, and whether it had one. `None` at the end.
    fn read_line(&mut self) -> Option<(&'a [u8], bool)> {
        if self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        self.line += 1;
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                let content = &rest[..i];
                Some((content.strip_suffix(b"\r").unwrap_or(content), true))
            }
            None => {
                self.pos = self.data.len();
                Some((rest.strip_suffix(b"\r").unwrap_or(rest), false))
            }
        }
    }

    fn next_record(&mut self) -> Option<Result<CsvRecord, CsvError>> {
        let (mut cur, mut has_newline) = loop {
            let (content, nl) = self.read_line()?;
            if !content.is_empty() {
                break (content, nl);
            }
        };
        let start_line = self.line;
        let mut fields: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        // Position of `cur[0]`: line and 1-based byte column.
        let mut line = self.line;
        let mut column = 1usize;
        'fields: loop {
            if cur.first() != Some(&b'"') {
                let comma = cur.iter().position(|b| *b == b',');
                let field = &cur[..comma.unwrap_or(cur.len())];
                if let Some(j) = field.iter().position(|b| *b == b'"') {
                    return Some(Err(CsvError { start_line, line, column: column + j, reason: BARE_QUOTE }));
                }
                fields.push(Zeroizing::new(field.to_vec()));
                match comma {
                    Some(i) => {
                        cur = &cur[i + 1..];
                        column += i + 1;
                    }
                    None => break 'fields,
                }
                continue;
            }
            // A quoted field: runs to a quote followed by a comma or the end of a line.
            cur = &cur[1..];
            column += 1;
            let mut field = Zeroizing::new(Vec::with_capacity(cur.len()));
            loop {
                if let Some(i) = cur.iter().position(|b| *b == b'"') {
                    field.extend_from_slice(&cur[..i]);
                    cur = &cur[i + 1..];
                    column += i + 1;
                    match cur.first() {
                        Some(b'"') => {
                            field.push(b'"');
                            cur = &cur[1..];
                            column += 1;
                        }
                        Some(b',') => {
                            cur = &cur[1..];
                            column += 1;
                            fields.push(field);
                            continue 'fields;
                        }
                        None => {
                            fields.push(field);
                            break 'fields;
                        }
                        Some(_) => {
                            return Some(Err(CsvError {
                                start_line,
                                line,
                                column: column - 1,
                                reason: EXTRANEOUS_QUOTE,
                            }));
                        }
                    }
                } else if !cur.is_empty() || has_newline {
                    // The field goes on over the line end, which it keeps as `\n`.
                    field.extend_from_slice(cur);
                    column += cur.len();
                    if has_newline {
                        field.push(b'\n');
                        column += 1;
                    }
                    match self.read_line() {
                        Some((next, nl)) => {
                            (cur, has_newline) = (next, nl);
                            if !next.is_empty() || nl {
                                line = self.line;
                                column = 1;
                            }
                        }
                        None => (cur, has_newline) = (&[][..], false),
                    }
                } else {
                    return Some(Err(CsvError { start_line, line, column, reason: EXTRANEOUS_QUOTE }));
                }
            }
        }
        Some(Ok(CsvRecord { line: start_line, fields }))
    }
}

// ---------------------------------------------------------------------------------------------
// TokenRequest
// ---------------------------------------------------------------------------------------------

/// Kubernetes' `ValidateTokenRequest` checks of `spec.expirationSeconds`.
pub fn validate_expiration_seconds(expiration_seconds: i64) -> ErrorList {
    let mut errs = ErrorList::new();
    let value = || BadValue::Raw(expiration_seconds.to_string());
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            value(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            value(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    errs
}

/// The lifetime a TokenRequest gets: the v1 default of an hour when it names none, then
/// validated (a 422 with these errors when invalid).
pub fn token_request_expiration(requested: Option<i64>) -> Result<i64, ErrorList> {
    let seconds = requested.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let errs = validate_expiration_seconds(seconds);
    if errs.is_empty() { Ok(seconds) } else { Err(errs) }
}

/// The audiences a token gets: the requested ones, or the server's when none are requested.
pub fn token_request_audiences(requested: &[String], server_audiences: &[String]) -> Vec<String> {
    if requested.is_empty() { server_audiences.to_vec() } else { requested.to_vec() }
}

/// The kinds a TokenRequest's `spec.boundObjectRef` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundObjectKind {
    Pod,
    Secret,
    Node,
}

/// Classifies `spec.boundObjectRef` as Kubernetes does: the core group's `Pod`, `Secret` or
/// `Node`, whatever the version. The error is Kubernetes' 400 message
/// (`cannot bind token to object of type /v1, Kind=ConfigMap`).
pub fn bound_object_kind(api_version: &str, kind: &str) -> Result<BoundObjectKind, String> {
    // apimachinery's `FromAPIVersionAndKind`: an unparsable apiVersion leaves group and version empty.
    let (group, version) = match api_version.matches('/').count() {
        _ if api_version.is_empty() || api_version == "/" => ("", ""),
        0 => ("", api_version),
        1 => api_version.split_once('/').unwrap_or(("", "")),
        _ => ("", ""),
    };
    match (group, kind) {
        ("", "Pod") => Ok(BoundObjectKind::Pod),
        ("", "Secret") => Ok(BoundObjectKind::Secret),
        ("", "Node") => Ok(BoundObjectKind::Node),
        _ => Err(format!("cannot bind token to object of type {group}/{version}, Kind={kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://strongroom.test";
    const NOW: i64 = 1_750_000_000;

    fn auds() -> Vec<String> {
        vec!["https://strongroom.test".to_string()]
    }

    fn claims() -> ServiceAccountClaims {
        ServiceAccountClaims::new(ISSUER, auds(), "payments", ObjectRef::new("ledger", "sa-uid-1"), NOW, 3600)
            .with_secret(ObjectRef::new("ledger-token", "secret-uid-1"))
    }

    fn key() -> SigningKey {
        SigningKey::generate().expect("a key")
    }

    fn verifier(key: &SigningKey) -> Verifier {
        Verifier::new(ISSUER, vec![key.verifying_key().clone()]).expect("keys")
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn header(key: &SigningKey) -> String {
        format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid())
    }

    fn payload(c: &ServiceAccountClaims) -> String {
        serde_json::to_string(&c.to_json()).expect("encodes")
    }

    /// Signs arbitrary header and payload bytes with a real key, to reach checks after the
    /// signature.
    fn sign_raw(key: &SigningKey, header: &str, payload: &str) -> String {
        key.sign_compact(header.as_bytes(), payload.as_bytes()).expect("signs").as_str().to_string()
    }

    /// Replaces the signature of a token.
    fn with_signature(token: &str, sig: &[u8]) -> String {
        let (signed, _) = token.rsplit_once('.').expect("three parts");
        format!("{signed}.{}", b64(sig))
    }

    fn sig_bytes(token: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(token.rsplit('.').next().expect("part")).expect("b64")
    }

    fn hs256(secret: &[u8], header: &str, payload: &str) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&k, signed.as_bytes());
        format!("{signed}.{}", b64(tag.as_ref()))
    }

    /// The order of the P-256 group.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6,
        0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> TestDir {
            let mut r = [0u8; 8];
            SystemRandom::new().fill(&mut r).expect("random");
            let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
            let dir = std::env::temp_dir().join(format!("strongroom-tokens-{name}"));
            fs::create_dir(&dir).expect("temp dir");
            TestDir(dir)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn issue_then_verify_round_trips_the_claims() {
        let key = key();
        let c = claims().with_pod(ObjectRef::new("ledger-7d9f", "pod-uid")).with_node(ObjectRef::new("node-1", ""));
        let token = key.issue(&c).expect("issues");
        let got = verifier(&key).verify(token.as_str(), &auds(), NOW).expect("verifies");
        assert_eq!(got, c);
        assert_eq!(got.subject(), "system:serviceaccount:payments:ledger");
        assert_eq!(got.groups(), ["system:serviceaccounts", "system:serviceaccounts:payments"]);
        assert_eq!(
            got.extra(),
            vec![
                ("authentication.kubernetes.io/pod-name", "ledger-7d9f".to_string()),
                ("authentication.kubernetes.io/pod-uid", "pod-uid".to_string()),
                ("authentication.kubernetes.io/credential-id", format!("JTI={}", c.jti)),
                ("authentication.kubernetes.io/node-name", "node-1".to_string()),
            ]
        );
    }

    #[test]
    fn issued_header_and_payload_have_kubernetes_shape() {
        let key = key();
        let c = claims();
        let token = key.issue(&c).expect("issues");
        let parts: Vec<&str> = token.as_str().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("b64");
        assert_eq!(String::from_utf8(header).expect("utf8"), format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid()));
        let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(
            payload,
            json!({
                "aud": ["https://strongroom.test"],
                "exp": NOW + 3600, "iat": NOW, "iss": ISSUER, "jti": c.jti,
                "kubernetes.io": {
                    "namespace": "payments",
                    "secret": {"name": "ledger-token", "uid": "secret-uid-1"},
                    "serviceaccount": {"name": "ledger", "uid": "sa-uid-1"},
                },
                "nbf": NOW, "sub": "system:serviceaccount:payments:ledger",
            })
        );
        let keys: Vec<&String> = payload.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"]);
        assert!(uuid::Uuid::parse_str(&c.jti).is_ok());
        assert_eq!(sig_bytes(token.as_str()).len(), 64);
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let key = key();
        let token = key.issue(&claims()).expect("issues");
        let parts: Vec<&str> = token.as_str().split('.').collect();
        let mut forged = claims();
        forged.service_account.name = "admin".into();
        let t = format!("{}.{}.{}", parts[0], b64(payload(&forged).as_bytes()), parts[2]);
        assert!(matches!(verifier(&key).verify(&t, &auds(), NOW), Err(TokenError::InvalidSignature)));
    }

    #[test]
    fn bad_signatures_are_rejected() {
        let key = key();
        let v = verifier(&key);
        let token = key.issue(&claims()).expect("issues");
        let t = token.as_str();
        let sig = sig_bytes(t);

        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        assert!(matches!(v.verify(&with_signature(t, &flipped), &auds(), NOW), Err(TokenError::InvalidSignature)));
        assert!(matches!(v.verify(&with_signature(t, &sig[..63]), &auds(), NOW), Err(TokenError::SignatureLength)));
        let mut long = sig.clone();
        long.push(0);
        assert!(matches!(v.verify(&with_signature(t, &long), &auds(), NOW), Err(TokenError::SignatureLength)));
        // A DER-encoded signature (what some libraries emit) is not the JOSE form.
        assert!(matches!(v.verify(&with_signature(t, &[0x30; 70]), &auds(), NOW), Err(TokenError::SignatureLength)));
        let (signed, _) = t.rsplit_once('.').expect("parts");
        assert!(matches!(v.verify(&format!("{signed}."), &auds(), NOW), Err(TokenError::Malformed(_))));
        assert!(matches!(v.verify(signed, &auds(), NOW), Err(TokenError::Malformed(_))));
        // r = s = 0 ("psychic signatures", CVE-2022-21449).
        assert!(matches!(v.verify(&with_signature(t, &[0u8; 64]), &auds(), NOW), Err(TokenError::InvalidSignature)));
        // s = n and s = 2^256 - 1 with the real r: scalars out of range.
        for s in [N, [0xff; 32]] {
            let mut bad = sig[..32].to_vec();
            bad.extend_from_slice(&s);
            assert!(matches!(v.verify(&with_signature(t, &bad), &auds(), NOW), Err(TokenError::InvalidSignature)));
        }
        // r = n with the real s.
        let mut bad = N.to_vec();
        bad.extend_from_slice(&sig[32..]);
        assert!(matches!(v.verify(&with_signature(t, &bad), &auds(), NOW), Err(TokenError::InvalidSignature)));
        // The untouched token still verifies, so the failures above are the signature's.
        assert!(v.verify(t, &auds(), NOW).is_ok());
    }

    #[test]
    fn alg_none_is_rejected_with_and_without_signature() {
        let key = key();
        let v = verifier(&key);
        let p = b64(payload(&claims()).as_bytes());
        for h in [r#"{"alg":"none"}"#.to_string(), format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid())] {
            let h = b64(h.as_bytes());
            assert!(matches!(v.verify(&format!("{h}.{p}."), &auds(), NOW), Err(TokenError::Malformed(_))));
            let sig = b64(&[7u8; 64]);
            assert!(matches!(v.verify(&format!("{h}.{p}.{sig}"), &auds(), NOW), Err(TokenError::UnsupportedAlgorithm)));
        }
        // Case variants are not ES256 either.
        let t = sign_raw(&key, r#"{"alg":"es256"}"#, &payload(&claims()));
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::UnsupportedAlgorithm)));
        let t = sign_raw(&key, r#"{"kid":"x"}"#, &payload(&claims()));
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::Malformed("the header has no alg"))));
    }

    #[test]
    fn hs256_keyed_with_the_public_key_is_rejected() {
        let key = key();
        let v = verifier(&key);
        let p = payload(&claims());
        let jwk = key.verifying_key().jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().expect("x")).expect("b64");
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().expect("y")).expect("b64");
        let xy = [x, y].concat();
        let secrets: Vec<Vec<u8>> = vec![
            key.verifying_key().spki_der(),
            xy,
            key.verifying_key().uncompressed_point().to_vec(),
            jwk.to_string().into_bytes(),
        ];
        for secret in secrets {
            for h in [r#"{"alg":"HS256"}"#.to_string(), format!(r#"{{"alg":"HS256","kid":"{}"}}"#, key.kid())] {
                let t = hs256(&secret, &h, &p);
                assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::UnsupportedAlgorithm)));
            }
        }
    }

    #[test]
    fn rs256_header_is_rejected() {
        let key = key();
        let h = b64(format!(r#"{{"alg":"RS256","kid":"{}"}}"#, key.kid()).as_bytes());
        let t = format!("{h}.{}.{}", b64(payload(&claims()).as_bytes()), b64(&[1u8; 256]));
        assert!(matches!(verifier(&key).verify(&t, &auds(), NOW), Err(TokenError::UnsupportedAlgorithm)));
    }

    #[test]
    fn key_naming_and_critical_header_parameters_are_rejected() {
        let key = key();
        let v = verifier(&key);
        let jwk = key.verifying_key().jwk();
        for (name, value) in [
            ("jwk", jwk.clone()),
            ("jku", json!("https://evil.test/jwks")),
            ("x5u", json!("https://evil.test/cert")),
            ("x5c", json!(["MIIB"])),
            ("crit", json!(["exp"])),
        ] {
            let mut h = Map::new();
            h.insert("alg".into(), json!("ES256"));
            h.insert("kid".into(), json!(key.kid()));
            h.insert(name.into(), value);
            // Validly signed by the real key: the parameter alone is the reason.
            let t = sign_raw(&key, &Value::Object(h).to_string(), &payload(&claims()));
            match v.verify(&t, &auds(), NOW) {
                Err(TokenError::ForbiddenHeader(n)) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_kid_and_other_keys_are_rejected() {
        let key = key();
        let other = SigningKey::generate().expect("a key");
        let v = verifier(&key);
        let t = other.issue(&claims()).expect("issues");
        assert!(matches!(v.verify(t.as_str(), &auds(), NOW), Err(TokenError::UnknownKeyId)));
        // Without a kid every key is tried, and none matches.
        let t = sign_raw(&other, r#"{"alg":"ES256"}"#, &payload(&claims()));
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::InvalidSignature)));
        // Claiming our kid does not help a token signed by another key.
        let t = sign_raw(&other, &header(&key), &payload(&claims()));
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::InvalidSignature)));
        // Without a kid our own key is found among several.
        let both =
            Verifier::new(ISSUER, vec![other.verifying_key().clone(), key.verifying_key().clone()]).expect("keys");
        let t = sign_raw(&key, r#"{"alg":"ES256","typ":"JWT"}"#, &payload(&claims()));
        assert!(both.verify(&t, &auds(), NOW).is_ok());
        assert!(Verifier::new(ISSUER, vec![]).is_none());
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let key = key();
        let v = verifier(&key);
        let mut c = claims();
        c.issuer = "https://other.test".into();
        let t = key.issue(&c).expect("issues");
        assert!(matches!(v.verify(t.as_str(), &auds(), NOW), Err(TokenError::InvalidIssuer)));

        let t = key.issue(&claims()).expect("issues");
        assert!(matches!(v.verify(t.as_str(), &["vault".to_string()], NOW), Err(TokenError::InvalidAudience)));
        assert!(matches!(v.verify(t.as_str(), &[], NOW), Err(TokenError::InvalidAudience)));
        let accepted = ["vault".to_string(), "https://strongroom.test".to_string()];
        assert!(v.verify(t.as_str(), &accepted, NOW).is_ok());

        // RFC 7519 allows a single string.
        let mut p = claims().to_json();
        p["aud"] = json!("https://strongroom.test");
        let t = sign_raw(&key, &header(&key), &p.to_string());
        assert_eq!(v.verify(&t, &auds(), NOW).expect("verifies").audiences, auds());
        p["aud"] = json!([]);
        let t = sign_raw(&key, &header(&key), &p.to_string());
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::InvalidClaim("aud"))));
    }

    #[test]
    fn expiry_has_sixty_seconds_of_leeway() {
        let key = key();
        let v = verifier(&key);
        let c = claims();
        let t = key.issue(&c).expect("issues");
        assert!(v.verify(t.as_str(), &auds(), c.expires_at).is_ok());
        assert!(v.verify(t.as_str(), &auds(), c.expires_at + 60).is_ok());
        assert!(matches!(v.verify(t.as_str(), &auds(), c.expires_at + 61), Err(TokenError::Expired)));
        // A token without exp is refused: every token must end.
        let mut p = c.to_json();
        p.as_object_mut().expect("object").remove("exp");
        let t = sign_raw(&key, &header(&key), &p.to_string());
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::MissingClaim("exp"))));
        p["exp"] = json!(1.75e9);
        let t = sign_raw(&key, &header(&key), &p.to_string());
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::InvalidClaim("exp"))));
    }

    #[test]
    fn nbf_and_iat_in_the_future_are_rejected() {
        let key = key();
        let v = verifier(&key);
        let mut c = claims();
        c.not_before = NOW + 61;
        let t = key.issue(&c).expect("issues");
        assert!(matches!(v.verify(t.as_str(), &auds(), NOW), Err(TokenError::NotYetValid)));
        c.not_before = NOW + 60;
        let t = key.issue(&c).expect("issues");
        assert!(v.verify(t.as_str(), &auds(), NOW).is_ok());
        let mut c = claims();
        c.issued_at = NOW + 61;
        let t = key.issue(&c).expect("issues");
        assert!(matches!(v.verify(t.as_str(), &auds(), NOW), Err(TokenError::IssuedInFuture)));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let key = key();
        let v = verifier(&key);
        let good = payload(&claims());
        // The last `sub` names another account: a last-wins parser would read it.
        let dup = good.replacen('{', r#"{"sub":"system:serviceaccount:payments:ledger","#, 1);
        let dup = dup.replace(
            r#""sub":"system:serviceaccount:payments:ledger"}"#,
            r#""sub":"system:serviceaccount:kube-system:admin"}"#,
        );
        assert!(dup.matches("\"sub\"").count() == 2);
        let t = sign_raw(&key, &header(&key), &dup);
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::DuplicateKey("claims"))));
        let h = format!(r#"{{"alg":"ES256","alg":"ES256","kid":"{}"}}"#, key.kid());
        let t = sign_raw(&key, &h, &good);
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::DuplicateKey("header"))));
        assert!(v.verify(&sign_raw(&key, &header(&key), &good), &auds(), NOW).is_ok());
    }

    #[test]
    fn subject_must_match_the_service_account() {
        let key = key();
        let v = verifier(&key);
        let mut p = claims().to_json();
        p["sub"] = json!("system:serviceaccount:kube-system:admin");
        let t = sign_raw(&key, &header(&key), &p.to_string());
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::InvalidSubject)));
        let mut c = claims();
        c.namespace = "a:b".into();
        let t = key.issue(&c).expect("issues");
        assert!(matches!(v.verify(t.as_str(), &auds(), NOW), Err(TokenError::InvalidSubject)));
        let mut p = claims().to_json();
        p["kubernetes.io"]["serviceaccount"]["uid"] = json!("");
        let t = sign_raw(&key, &header(&key), &p.to_string());
        assert!(matches!(v.verify(&t, &auds(), NOW), Err(TokenError::InvalidClaim("kubernetes.io.serviceaccount"))));
    }

    #[test]
    fn oversized_and_misshapen_tokens_are_rejected() {
        let key = key();
        let v = verifier(&key);
        let huge = "a".repeat(1 << 20);
        assert!(matches!(v.verify(&huge, &auds(), NOW), Err(TokenError::TooLarge { len }) if len == 1 << 20));
        let t = key.issue(&claims()).expect("issues");
        let t = t.as_str();
        for bad in [
            format!("{t}.x"),
            format!("{t}.."),
            format!("{t}garbage!"),
            format!("{t}="),
            format!(" {t}"),
            "..".to_string(),
            "".to_string(),
            format!("{{}}.{t}"),
        ] {
            let err = v.verify(&bad, &auds(), NOW).expect_err("rejected");
            assert!(matches!(err, TokenError::Malformed(_) | TokenError::SignatureLength), "{err:?}");
        }
        // A non-canonical encoding of the signature's last character (non-zero trailing bits).
        let last = t.chars().last().expect("char");
        let other = if last == 'A' { 'B' } else { 'A' };
        let noncanonical = format!("{}{other}", &t[..t.len() - 1]);
        assert!(v.verify(&noncanonical, &auds(), NOW).is_err());
        let h = b64(br#"["ES256"]"#);
        let bad = format!("{h}.{}", t.split_once('.').expect("parts").1);
        assert!(matches!(v.verify(&bad, &auds(), NOW), Err(TokenError::Malformed("the header is not a JSON object"))));
    }

    #[test]
    fn errors_never_show_the_token() {
        let key = key();
        let v = verifier(&key);
        let t = key.issue(&claims()).expect("issues");
        let signature = t.as_str().rsplit('.').next().expect("part").to_string();
        let payload_part = t.as_str().split('.').nth(1).expect("part").to_string();
        let attempts = [format!("{}x", t.as_str()), t.as_str().to_string(), format!("{}.", t.as_str())];
        for a in &attempts {
            for now in [NOW, NOW + 10_000] {
                if let Err(e) = v.verify(a, &["other".to_string()], now) {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains(&signature) && !shown.contains(&payload_part), "{shown}");
                }
            }
        }
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }

    #[test]
    fn jwks_x_and_y_decode_back_to_the_key() {
        let key = key();
        let v = verifier(&key);
        let jwks = v.jwks();
        let jwk = &jwks["keys"][0];
        let members: Vec<&String> = jwk.as_object().expect("object").keys().collect();
        assert_eq!(members, ["use", "kty", "kid", "crv", "alg", "x", "y"]);
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().expect("x")).expect("b64");
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().expect("y")).expect("b64");
        assert_eq!((x.len(), y.len()), (32, 32));
        let point = [&[4u8][..], &x, &y].concat();
        let rebuilt = VerifyingKey::from_uncompressed_point(&point).expect("a point");
        assert_eq!(rebuilt.kid(), key.kid());
        let t = key.issue(&claims()).expect("issues");
        let only_rebuilt = Verifier::new(ISSUER, vec![rebuilt]).expect("keys");
        assert!(only_rebuilt.verify(t.as_str(), &auds(), NOW).is_ok());
    }

    #[test]
    fn kid_is_the_hash_of_the_spki_der_as_kubernetes_computes_it() {
        let dir = TestDir::new();
        let key = SigningKey::load_or_generate(&dir.0).expect("generates");
        let pem = fs::read_to_string(dir.0.join(KEY_FILE_NAME)).expect("reads");
        // An independent DER encoder (rcgen) must produce the same SubjectPublicKeyInfo.
        let kp = rcgen::KeyPair::from_pem(&pem).expect("rcgen reads the key");
        assert_eq!(rcgen::PublicKeyData::subject_public_key_info(&kp), key.verifying_key().spki_der());
        assert_eq!(key.kid(), b64(&Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&kp))));
        assert_eq!(
            VerifyingKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&kp)).expect("spki"),
            *key.verifying_key()
        );
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = TestDir::new();
        let sub = dir.0.join("data");
        let first = SigningKey::load_or_generate(&sub).expect("generates");
        let path = sub.join(KEY_FILE_NAME);
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(&sub).expect("dir").count(), 1, "no temporary file is left behind");
        let pem = fs::read_to_string(&path).expect("reads");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        let second = SigningKey::load_or_generate(&sub).expect("loads");
        assert_eq!(first.kid(), second.kid());
        let t = first.issue(&claims()).expect("issues");
        assert!(verifier(&second).verify(t.as_str(), &auds(), NOW).is_ok());
    }

    #[test]
    fn insecure_or_invalid_key_files_are_refused() {
        let dir = TestDir::new();
        SigningKey::load_or_generate(&dir.0).expect("generates");
        let path = dir.0.join(KEY_FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        match SigningKey::load_or_generate(&dir.0) {
            Err(e @ TokenError::InsecureKeyFile { mode: 0o644, .. }) => {
                assert!(e.to_string().contains("chmod 600"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let pem = fs::read_to_string(&path).expect("reads");
        let sec1 = pem.replace("BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY");
        fs::write(&path, &sec1).expect("writes");
        let err = SigningKey::load(&path).expect_err("refused");
        assert!(err.to_string().contains("SEC1"), "{err}");
        fs::write(&path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("writes");
        let err = SigningKey::load(&path).expect_err("refused");
        assert!(matches!(err, TokenError::InvalidKey { .. }), "{err:?}");
    }

    #[test]
    fn debug_of_keys_shows_no_secret() {
        let dir = TestDir::new();
        let key = SigningKey::load_or_generate(&dir.0).expect("generates");
        let pem = fs::read_to_string(dir.0.join(KEY_FILE_NAME)).expect("reads");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains(&body[40..60]), "{shown}");
        assert!(!format!("{:?}", key.verifying_key()).contains(&b64(key.verifying_key().uncompressed_point())));
    }

    #[test]
    fn openid_configuration_has_kubernetes_members() {
        let key = key();
        let v = verifier(&key);
        assert_eq!(
            v.openid_configuration(&default_jwks_uri("10.0.0.1:6443")),
            json!({
                "issuer": ISSUER,
                "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
        );
    }

    fn parse_tokens(text: &str) -> Result<StaticTokens, TokenError> {
        StaticTokens::parse(text.as_bytes(), Path::new("/etc/tokens.csv"))
    }

    #[test]
    fn static_token_file_parses_groups_quotes_and_blank_lines() {
        let text = "tok-alice,alice,uid-1,\"admins,devs\"\r\n\
                    \n\
                    \"tok,\"\"bob\",bob,uid-2\n\
                    tok-carol,carol,uid-3,ops,extra-column\n\
                    ,nobody,uid-4\n\
                    \"tok\nmulti\",dave,uid-5,\n\
                    tok-eve,eve,uid-6\r";
        let tokens = parse_tokens(text).expect("parses");
        assert_eq!(tokens.len(), 5);
        let alice = tokens.lookup("tok-alice").expect("alice");
        assert_eq!(
            *alice,
            StaticUser { name: "alice".into(), uid: "uid-1".into(), groups: vec!["admins".into(), "devs".into()] }
        );
        let bob = tokens.lookup("tok,\"bob").expect("bob");
        assert_eq!((bob.name.as_str(), bob.groups.len()), ("bob", 0));
        assert_eq!(tokens.lookup("tok-carol").expect("carol").groups, ["ops"]);
        // As Kubernetes' strings.Split: an empty groups column is one empty group.
        assert_eq!(tokens.lookup("tok\nmulti").expect("dave").groups, [""]);
        assert_eq!(tokens.lookup("tok-eve").expect("eve").uid, "uid-6");
        assert!(tokens.lookup("").is_none(), "empty tokens are skipped");
        assert!(tokens.lookup("tok-alic").is_none());
        assert!(tokens.lookup("tok-alice ").is_none());
    }

    #[test]
    fn static_token_file_duplicates_last_wins_and_comments_are_records() {
        let tokens = parse_tokens("t1,first,u1\nt1,second,u2\n").expect("parses");
        assert_eq!(tokens.lookup("t1").expect("user").name, "second");
        assert_eq!(tokens.len(), 1);
        // encoding/csv has no comment syntax by default: `#` starts an ordinary record.
        let tokens = parse_tokens("#t2,user,u3\n").expect("parses");
        assert_eq!(tokens.lookup("#t2").expect("user").name, "user");
    }

    #[test]
    fn static_token_file_errors_name_the_line_not_the_token() {
        let err = parse_tokens("tok-1,alice,uid-1\n\nsecret-token-value,bob\n").expect_err("short line");
        let msg = err.to_string();
        assert_eq!(
            msg,
            "token file '/etc/tokens.csv' must have at least 3 columns (token, user name, user uid), found 2 on line 3"
        );
        assert!(!format!("{err:?}").contains("secret-token-value"));
        let err = parse_tokens("tok-1,alice,uid-1\nsec\"ret,bob,uid\n").expect_err("bare quote");
        assert_eq!(
            err.to_string(),
            "token file '/etc/tokens.csv': parse error on line 2, column 4: bare \" in non-quoted-field"
        );
        let err = parse_tokens("\"secret\"x,bob,uid\n").expect_err("extraneous quote");
        assert_eq!(
            err.to_string(),
            "token file '/etc/tokens.csv': parse error on line 1, column 8: extraneous or missing \" in quoted-field"
        );
        let err = parse_tokens("\"secret\nstill,bob,uid\n").expect_err("unterminated");
        let msg = err.to_string();
        assert_eq!(
            msg,
            "token file '/etc/tokens.csv': record on line 1; parse error on line 2, column 15: extraneous or missing \" in quoted-field"
        );
        assert!(!msg.contains("secret"), "{msg}");
        let err = StaticTokens::parse(b"tok,alice,uid\nt\xff,bob,uid\n", Path::new("f")).expect_err("not utf-8");
        assert_eq!(err.to_string(), "token file 'f' is not valid UTF-8 on line 2");
    }

    #[test]
    fn static_tokens_hold_only_hashes_and_debug_shows_a_count() {
        let tokens = parse_tokens("very-secret-token,alice,uid-1,admins\n").expect("parses");
        let shown = format!("{tokens:?}");
        assert_eq!(shown, "StaticTokens { tokens: 1 }");
        let (hash, _) = tokens.by_hash.iter().next().expect("one");
        assert_eq!(hash[..], Sha256::digest(b"very-secret-token")[..]);
        // Lookup compares whole digests: a token whose hash shares a prefix is not found.
        assert!(tokens.lookup("very-secret-token").is_some());
        assert!(tokens.lookup("very-secret-tokeN").is_none());
    }

    #[test]
    fn static_tokens_load_reads_the_file() {
        let dir = TestDir::new();
        let path = dir.0.join("tokens.csv");
        fs::write(&path, "abc,alice,uid-1\n").expect("writes");
        assert_eq!(StaticTokens::load(&path).expect("loads").lookup("abc").expect("user").name, "alice");
        let err = StaticTokens::load(&dir.0.join("missing.csv")).expect_err("missing");
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }

    #[test]
    fn token_request_expiration_messages_match_kubernetes() {
        assert_eq!(token_request_expiration(None), Ok(3600));
        assert_eq!(token_request_expiration(Some(600)), Ok(600));
        assert_eq!(token_request_expiration(Some(1 << 32)), Ok(1 << 32));
        let errs = token_request_expiration(Some(599)).expect_err("too short");
        assert_eq!(
            strongroom_api::field::aggregate_message(&errs),
            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        assert_eq!(errs[0].reason(), "FieldValueInvalid");
        let errs = token_request_expiration(Some((1 << 32) + 1)).expect_err("too long");
        assert_eq!(
            strongroom_api::field::aggregate_message(&errs),
            "spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"
        );
        let errs = token_request_expiration(Some(-1)).expect_err("negative");
        assert_eq!(
            errs[0].to_string(),
            "spec.expirationSeconds: Invalid value: -1: may not specify a duration less than 10 minutes"
        );
    }

    #[test]
    fn token_request_audiences_default_to_the_servers() {
        let server = vec!["https://strongroom.test".to_string()];
        assert_eq!(token_request_audiences(&[], &server), server);
        assert_eq!(token_request_audiences(&["vault".to_string()], &server), ["vault"]);
    }

    #[test]
    fn bound_object_kinds_follow_kubernetes() {
        assert_eq!(bound_object_kind("v1", "Secret"), Ok(BoundObjectKind::Secret));
        assert_eq!(bound_object_kind("v1", "Pod"), Ok(BoundObjectKind::Pod));
        assert_eq!(bound_object_kind("v1", "Node"), Ok(BoundObjectKind::Node));
        assert_eq!(bound_object_kind("", "Secret"), Ok(BoundObjectKind::Secret));
        assert_eq!(
            bound_object_kind("v1", "ConfigMap"),
            Err("cannot bind token to object of type /v1, Kind=ConfigMap".into())
        );
        assert_eq!(
            bound_object_kind("apps/v1", "Secret"),
            Err("cannot bind token to object of type apps/v1, Kind=Secret".into())
        );
        assert_eq!(bound_object_kind("a/b/c", "Secret"), Ok(BoundObjectKind::Secret));
    }
}
