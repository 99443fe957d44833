//! strongroom's HTTPS API server.
//!
//! A request goes: TLS (the client proves it holds its certificate's key) → authentication
//! (the certificate's chain to the server's CA, else a bearer token;
//! [`authn`]) → authorization → routing ([`request`]) → the REST verbs ([`rest`]) → the kind's
//! [`registry::Strategy`] → the [`strongroom_storage::Store`].
//!
//! Architecture invariant: this is the only crate that builds HTTP responses and `metav1.Status`
//! ([`status::ApiError`]); storage errors arrive typed and are mapped here.

pub mod access;
pub mod audit;
pub mod auditing;
pub mod authn;
pub mod authz;
pub mod codec;
pub mod controllers;
pub mod discovery;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod pki;
pub mod registry;
pub mod request;
pub mod rest;
pub mod status;
pub mod table;
pub mod tokens;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use serde_json::json;
use strongroom_storage::Store;
use strongroom_storage::backend::{Backend, ObjectKey};
use strongroom_storage::cache::CacheConfig;
use strongroom_storage::transformer::Transformers;
use tokio::net::TcpListener;
use tokio::sync::watch as tokio_watch;

use crate::codec::Resp;
use crate::object::{Decoder, ServedObject};
use crate::registry::Registry;
use crate::request::{Query, Target};
use crate::status::ApiError;

/// The Kubernetes version strongroom speaks. kubectl's dispatcher picks the client build that
/// matches `minor`, so this decides which kubectl talks to us.
pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "32";
pub const KUBERNETES_GIT_VERSION: &str = "v1.32.5";

/// Everything a running server shares across requests.
pub struct ApiServer {
    pub store: Store<ServedObject>,
    pub registry: Arc<Registry>,
    /// Signs `continue` tokens, so a client cannot forge a list position.
    pub continue_key: [u8; 32],
    /// Flips to true when the server starts draining.
    pub shutdown: tokio_watch::Receiver<bool>,
    pub ready: AtomicBool,
    /// `host:port` clients reach this server at (legacy discovery advertises it).
    pub advertise: String,
    /// Admission of concurrent requests, as kube-apiserver's `--max-requests-inflight` (400) and
    /// `--max-mutating-requests-inflight` (200): beyond them, 429 with `Retry-After`.
    pub readonly_inflight: Arc<tokio::sync::Semaphore>,
    pub mutating_inflight: Arc<tokio::sync::Semaphore>,
    /// Open watches hold a permit for their lifetime, bounding memory (each has a buffer).
    pub watches: Arc<tokio::sync::Semaphore>,
    /// Discovery and OpenAPI documents never change while the server runs: built once.
    documents: std::sync::OnceLock<Documents>,
    pub identity: Identity,
    pub audit: auditing::Auditor,
    pub metrics: metrics::Metrics,
    limits: Limits,
}

/// Who requests come from and how ServiceAccount tokens are made.
pub struct Identity {
    pub authenticator: authn::Authenticator,
    pub signing_key: tokens::SigningKey,
    /// `iss` of ServiceAccount tokens and the base URL of the OIDC discovery documents.
    pub issuer: String,
}

/// How identities are established (`strongroom server` flags).
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// `--token-auth-file`: Kubernetes' static token CSV.
    pub token_auth_file: Option<PathBuf>,
    /// `--anonymous-auth`: requests without credentials run as `system:anonymous`.
    pub anonymous: bool,
    /// `--service-account-issuer`; the server's URL when unset.
    pub issuer: Option<String>,
    /// `--api-audiences`; the issuer when empty.
    pub audiences: Vec<String>,
}

/// Where audit events go and under which policy (`--audit-*` flags).
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// `--audit-log-path`; `DIR/audit.log` when unset, `-` for stdout.
    pub path: Option<PathBuf>,
    pub max_size_mb: u64,
    pub max_backups: usize,
    pub policy_file: Option<PathBuf>,
    /// Serve secret data even when its audit record cannot be written.
    pub fail_open: bool,
}

struct Documents {
    openapi_root: Vec<u8>,
    openapi: std::collections::HashMap<String, Vec<u8>>,
}

/// Configuration of the server, built by the binary from flags.
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub transformers: Arc<Transformers>,
    pub backend: Arc<dyn Backend>,
    pub cache: CacheConfig,
    /// Extra names for the serving certificate, beyond localhost, loopback and the host name.
    pub extra_sans: Vec<String>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    pub limits: Limits,
    pub identity: IdentityConfig,
    pub audit: AuditConfig,
    /// How long an Event is kept after its last activity (`--event-ttl`); zero keeps Events
    /// forever. [`controllers::DEFAULT_EVENT_TTL`] (one hour) is kube-apiserver's default.
    pub event_ttl: Duration,
}

/// Admission limits; beyond them requests get 429 `TooManyRequests` with `Retry-After: 1`, which
/// client-go retries by itself.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Kubernetes' default `--max-requests-inflight`.
    pub readonly_inflight: usize,
    /// Kubernetes' default `--max-mutating-requests-inflight`.
    pub mutating_inflight: usize,
    /// Open watches. Each costs a task and a bounded buffer; 10,000 is far above what one
    /// server's clients need and far below what exhausts memory.
    pub watches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { readonly_inflight: 400, mutating_inflight: 200, watches: 10_000 }
    }
}

/// How long a request other than a watch may take, body reading included (kube-apiserver's
/// `--request-timeout` default). A client trickling a body cannot hold a slot longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    k
}

/// Why the server could not start. Each says what to fix; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("cannot open the store: {0}")]
    Store(#[from] strongroom_storage::backend::BackendError),
    #[error("cannot create namespace {namespace}: {source}")]
    Bootstrap { namespace: String, source: strongroom_storage::StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("{path} must hold exactly 32 bytes")]
    BadKeyFile { path: PathBuf },
    #[error("{0}")]
    Identity(String),
    #[error("{0}")]
    Audit(String),
}

/// Loads or creates `DIR/<name>` holding 32 random bytes (mode 0600).
pub fn load_or_create_key(dir: &std::path::Path, name: &str) -> Result<[u8; 32], StartError> {
    let path = dir.join(name);
    if !path.exists() {
        pki::write_private(&path, &random_key(), 0o600)?;
    }
    let bytes =
        std::fs::read(&path).map_err(|source| pki::PkiError::Io { action: "read", path: path.clone(), source })?;
    bytes.try_into().map_err(|_| StartError::BadKeyFile { path })
}

/// Runs the server until `stop` resolves, then drains and returns.
pub async fn run(config: Config, stop: impl std::future::Future<Output = ()>) -> Result<(), StartError> {
    let pki = pki::ServerPki::load_or_create(&config.data_dir, &config.extra_sans)?;
    let server_url = format!("https://{}", display_addr(config.listen));
    let kubeconfig = pki.ensure_admin_kubeconfig(&config.data_dir, &server_url)?;
    let digest_key = load_or_create_key(&config.data_dir, "last-applied-digest.key")?;
    let registry = Arc::new(Registry::new(registry::secret::DigestKey::new(digest_key)));
    let decoder = Arc::new(Decoder { registry: registry.clone() });
    let metrics = metrics::Metrics::new(registry.infos());
    let store = Store::open(config.backend.clone(), config.transformers.clone(), decoder, config.cache.clone()).await?;
    let identity = load_identity(&config.data_dir, &config.identity, &server_url)?;
    let audit = auditing::Auditor::open(&config.data_dir, &config.audit).map_err(StartError::Audit)?;
    let (shutdown_tx, shutdown_rx) = tokio_watch::channel(false);
    let server = Arc::new(ApiServer {
        store,
        registry,
        // Persisted, so continue tokens stay valid across restarts (an expired snapshot then
        // answers 410, which client-go's pager handles by relisting).
        continue_key: load_or_create_key(&config.data_dir, "continue-token.key")?,
        shutdown: shutdown_rx,
        ready: AtomicBool::new(false),
        advertise: display_addr(config.listen),
        readonly_inflight: Arc::new(tokio::sync::Semaphore::new(config.limits.readonly_inflight)),
        mutating_inflight: Arc::new(tokio::sync::Semaphore::new(config.limits.mutating_inflight)),
        watches: Arc::new(tokio::sync::Semaphore::new(config.limits.watches)),
        documents: std::sync::OnceLock::new(),
        identity,
        audit,
        metrics,
        limits: config.limits.clone(),
    });
    bootstrap(&server).await?;
    controllers::bootstrap_rbac(&server)
        .await
        .map_err(|source| StartError::Bootstrap { namespace: "(RBAC policy)".into(), source })?;
    tokio::spawn(controllers::run(server.clone()));
    tokio::spawn(controllers::expire_events(server.clone(), config.event_ttl));

    let (tls, client_verifier) = tls_config(&pki)?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;
    server.ready.store(true, Ordering::SeqCst);
    tracing::info!(address = %local, "serving the Kubernetes API over HTTPS");
    // Absolute, so the line can be pasted from any directory.
    let kubeconfig = std::fs::canonicalize(&kubeconfig).unwrap_or(kubeconfig);
    tracing::info!("ready: export KUBECONFIG={}", kubeconfig.display());

    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1000)
        .max_header_list_size(1 << 20)
        .keep_alive_interval(Duration::from_secs(30));
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let client_verifier = client_verifier.clone();
        let server = server.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A stalled handshake must not hold a connection slot forever.
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let user = tls.get_ref().1.peer_certificates().and_then(|chain| {
                authn::check_client_certificate(&*client_verifier, chain, rustls::pki_types::UnixTime::now())
            });
            let user = user.map(Arc::new);
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                let user = user.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(server, user, peer, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service).into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    tracing::info!("shutting down: draining in-flight requests");
    server.ready.store(false, Ordering::SeqCst);
    let _ = shutdown_tx.send(true);
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(config.drain_timeout) => tracing::warn!("drain timeout passed; closing remaining connections"),
    }
    Ok(())
}

fn load_identity(dir: &std::path::Path, cfg: &IdentityConfig, server_url: &str) -> Result<Identity, StartError> {
    let signing_key = tokens::SigningKey::load_or_generate(dir).map_err(|e| StartError::Identity(e.to_string()))?;
    let issuer = cfg.issuer.clone().unwrap_or_else(|| server_url.to_string());
    let audiences = if cfg.audiences.is_empty() { vec![issuer.clone()] } else { cfg.audiences.clone() };
    let static_tokens = match &cfg.token_auth_file {
        Some(path) => Some(
            tokens::StaticTokens::load(path)
                .map_err(|e| StartError::Identity(format!("cannot load the token file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let verifier = tokens::Verifier::new(issuer.clone(), vec![signing_key.verifying_key().clone()])
        .ok_or_else(|| StartError::Identity("no service account verification key".into()))?;
    Ok(Identity {
        authenticator: authn::Authenticator { static_tokens, verifier, audiences, anonymous: cfg.anonymous },
        signing_key,
        issuer,
    })
}

fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        other => other.to_string(),
    }
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError::Tls(format!("{what}: {e}"))
}

/// The server's TLS configuration, and the verifier that judges client certificates.
fn tls_config(pki: &pki::ServerPki) -> Result<(Arc<rustls::ServerConfig>, Arc<dyn ClientCertVerifier>), StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err("cannot read the CA certificate", e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(|e| tls_err("cannot use the CA certificate", e))?;
    }
    // Any certificate presented must chain to our CA and carry clientAuth; the handshake only
    // checks that the client holds its key, and authentication judges the chain (see
    // `authn::check_client_certificate`), so every refusal is a proper 401 Status.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_err("cannot build the client verifier", e))?;
    let deferred = Arc::new(DeferredClientVerifier(verifier.clone()));
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pki.serving_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err("cannot read the serving certificate", e))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pki.serving_key_pem.as_bytes())
        .map_err(|e| tls_err("cannot read the serving key", e))?
        .ok_or_else(|| StartError::Tls("the serving key file holds no key".into()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("cannot choose protocol versions", e))?
        .with_client_cert_verifier(deferred)
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("cannot use the serving certificate", e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), verifier))
}

/// A client-certificate verifier for the handshake: it asks for a certificate (naming our CA),
/// checks the client's signature with it, and accepts the chain whatever it is, leaving the
/// verdict to authentication with the wrapped verifier.
#[derive(Debug)]
struct DeferredClientVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for DeferredClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Creates the system namespaces and finishes namespaces a crash left terminating.
async fn bootstrap(server: &Arc<ApiServer>) -> Result<(), StartError> {
    let now = rest::now_rfc3339();
    for ns in SYSTEM_NAMESPACES {
        let key = ObjectKey::cluster("namespaces", ns).expect("system namespace names are valid keys");
        if server.store.cache().get(&key).is_some() {
            continue;
        }
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now,
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        match server.store.create(&key, &serde_json::to_vec(&obj).expect("encodes")).await {
            Ok(_) | Err(strongroom_storage::StoreError::AlreadyExists { .. }) => {}
            Err(source) => return Err(StartError::Bootstrap { namespace: ns.to_string(), source }),
        }
    }
    let snapshot = server.store.cache().snapshot();
    let unreadable = snapshot.objects.values().filter(|o| o.body.is_err()).count();
    if unreadable > 0 {
        // Usually a wrong or missing key: say so once, clearly. Those objects answer 500 (never
        // ciphertext or empty data) until the right key is configured; the rest are served.
        tracing::error!(
            objects = unreadable,
            "stored objects cannot be decrypted or decoded with the configured encryption keys; \
             they answer 500 until the right key is configured (see the errors above for which)"
        );
    }
    let prefix = ObjectKey::prefix("namespaces", None).expect("a valid resource name");
    for (_, obj) in snapshot.under(&prefix, None) {
        if let Ok(ns) = &obj.body
            && ns.deleting
        {
            let server = server.clone();
            let name = ns.name.clone();
            tokio::spawn(async move { rest::finalize_namespace(&server, &name).await });
        }
    }
    Ok(())
}

/// One request, start to finish. Never fails: errors become `Status` responses. Every request
/// that reaches authentication leaves an audit record (see [`auditing`]).
async fn handle(
    server: Arc<ApiServer>,
    certificate: Option<Arc<authn::ClientCertificate>>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    // Watches are long-running: they hold a watch permit instead (see `rest::watch`).
    let is_watch = method == Method::GET && Query::parse(req.uri().query()).flag("watch");
    let limiter = match method {
        Method::GET | Method::HEAD => &server.readonly_inflight,
        _ => &server.mutating_inflight,
    };
    let permit = if is_watch || is_health(&path) { None } else { limiter.clone().try_acquire_owned().ok() };
    if permit.is_none() && !is_watch && !is_health(&path) {
        let resp = codec::error_response(&ApiError::too_many_requests("Too many requests, please try again later."));
        tracing::warn!(%peer, %method, %path, "request rejected: too many requests in flight");
        return resp;
    }
    let mut record = auditing::Record::new(&req, peer);
    // Kubernetes' --request-timeout for everything but watches.
    let result = if is_watch {
        route(&server, certificate.as_deref(), req, &mut record).await
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, route(&server, certificate.as_deref(), req, &mut record)).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::timeout(
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
            )),
        }
    };
    drop(permit);
    let resp = result.unwrap_or_else(|e| codec::error_response(&e));
    let user = record.user_name().to_string();
    let (verb, group, resource, subresource) = match &record.attrs {
        Some(a) => (a.verb.clone(), a.group.clone(), a.resource.clone(), a.subresource.clone().unwrap_or_default()),
        None => (method.as_str().to_ascii_lowercase(), String::new(), String::new(), String::new()),
    };
    let resp = server.audit.finish(record, resp, &server.metrics).await;
    if !is_health(&path) {
        server.metrics.request(&verb, &group, &resource, &subresource, resp.status().as_u16());
    }
    tracing::debug!(
        %peer, %user, %method, %path,
        code = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request"
    );
    resp
}

/// Paths anyone may probe: they reveal nothing (as Kubernetes' anonymous health endpoints).
fn is_health(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// The ServiceAccount issuer's OIDC discovery documents (served like kube-apiserver's, to
/// whoever RBAC lets `get` them: `system:service-account-issuer-discovery`).
const OIDC_CONFIGURATION: &str = "/.well-known/openid-configuration";
const OIDC_JWKS: &str = "/openid/v1/jwks";

fn non_resource_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

async fn route(
    server: &Arc<ApiServer>,
    certificate: Option<&authn::ClientCertificate>,
    req: Request<Incoming>,
    record: &mut auditing::Record,
) -> Result<Resp, ApiError> {
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let path = parts.uri.path();
    if is_health(path) {
        return Ok(health(server, path));
    }
    let now = jiff::Timestamp::now().as_second();
    let requester = server.identity.authenticator.authenticate(&server.store, certificate, &parts.headers, now);
    server.metrics.authentication(requester.is_ok());
    let requester = requester?;
    record.user = Some(requester.clone());
    let target = request::parse_target(&parts.method, path, &query)?;
    let attrs = match &target {
        Target::NonResource(p) => authz::Attrs::non_resource(non_resource_verb(&parts.method), p),
        Target::Resource(info) => authz::Attrs::for_request(info, &query),
    };
    record.attrs = Some(attrs.clone());
    // As kube-apiserver: the audit policy judges the authenticated requester, before
    // impersonation, so a refused impersonation attempt is on record too.
    server.audit.evaluate(record);
    let user = match authz::impersonate(server, &requester, &parts.headers)? {
        Some(as_user) => {
            record.impersonated = Some(as_user.clone());
            as_user
        }
        None => requester,
    };
    let decision = authz::authorize(server, &user, &attrs);
    record.decision = Some(decision.clone());
    if !decision.allowed {
        return Err(authz::forbidden(&user, &attrs, &decision.reason));
    }
    let body = match parts.method {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            let bytes = codec::read_body(body, &parts.headers).await?;
            record.request_body(&bytes, &parts.headers);
            bytes
        }
        _ => bytes::Bytes::new(),
    };
    match target {
        Target::NonResource(p) => {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return Err(ApiError::method_not_allowed());
            }
            match p.as_str() {
                OIDC_CONFIGURATION => Ok(codec::value_response(
                    StatusCode::OK,
                    &tokens::openid_configuration(
                        &server.identity.issuer,
                        &format!("{}{OIDC_JWKS}", server.identity.issuer),
                    ),
                )),
                OIDC_JWKS => {
                    let mut r = codec::value_response(StatusCode::OK, &server.identity.authenticator.verifier.jwks());
                    r.headers_mut()
                        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/jwk-set+json"));
                    Ok(r)
                }
                "/metrics" => {
                    let inflight =
                        |sem: &tokio::sync::Semaphore, max: usize| max.saturating_sub(sem.available_permits());
                    let text = server.metrics.render(
                        (
                            inflight(&server.readonly_inflight, server.limits.readonly_inflight),
                            inflight(&server.mutating_inflight, server.limits.mutating_inflight),
                        ),
                        inflight(&server.watches, server.limits.watches),
                    );
                    let mut r = http::Response::new(codec::full(text));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    Ok(r)
                }
                _ => non_resource(server, &p, &parts.headers, &parts.method),
            }
        }
        Target::Resource(info) => {
            if info.group.is_empty()
                && info.resource == "serviceaccounts"
                && info.subresource.as_deref() == Some("token")
            {
                if info.verb != "create" || info.name.is_none() || info.namespace.is_none() {
                    return Err(ApiError::method_not_allowed());
                }
                return access::token_request(server, &info, &parts.headers, body).await;
            }
            if access::is_review(&info.group, &info.resource) {
                if info.version != "v1"
                    || info.name.is_some()
                    || info.subresource.is_some()
                    || info.namespace.is_some() != access::review_is_namespaced(&info.resource)
                {
                    return Err(ApiError::not_found_path());
                }
                if info.verb != "create" {
                    return Err(ApiError::method_not_allowed());
                }
                return access::review(server, &user, &info, &parts.headers, body).await;
            }
            let Some(strategy) = server.registry.lookup(&info.group, &info.version, &info.resource) else {
                return Err(ApiError::not_found_path());
            };
            // The request's scope must be the resource's scope (CVE-2019-11247).
            let namespaced = strategy.info().namespaced;
            let scope_ok = match (&info.namespace, &info.name) {
                (Some(_), _) => namespaced,
                (None, Some(_)) => !namespaced,
                (None, None) => {
                    matches!(info.verb, "list" | "watch" | "create" | "deletecollection")
                        && (!namespaced || matches!(info.verb, "list" | "watch"))
                }
            };
            if !scope_ok || info.subresource.is_some() {
                return Err(ApiError::not_found_path());
            }
            let ctx = rest::Ctx { server, info: &info, strategy, query: &query, headers: &parts.headers, user: &user };
            match (info.verb, info.name.as_deref()) {
                ("get", Some(name)) => rest::get(&ctx, name).await,
                ("list", None) => rest::list(&ctx).await,
                ("watch", _) => rest::watch(&ctx).await,
                ("create", None) => rest::create(&ctx, body).await,
                ("update", Some(name)) => rest::update(&ctx, name, body).await,
                ("patch", Some(name)) => rest::patch(&ctx, name, body).await,
                ("delete", Some(name)) => rest::delete(&ctx, name, body).await,
                ("deletecollection", None) => rest::delete_collection(&ctx, body).await,
                _ => Err(ApiError::method_not_allowed()),
            }
        }
    }
}

fn health(server: &ApiServer, path: &str) -> Resp {
    let storage_ok = server.store.backend().failure().is_none();
    let ok = match path {
        "/readyz" => server.ready.load(Ordering::SeqCst) && storage_ok,
        "/healthz" => storage_ok,
        // Liveness is the process answering; a restart is what recovers a failed store.
        _ => true,
    };
    let mut r = http::Response::new(codec::full(if ok { "ok" } else { "not ready" }));
    *r.status_mut() = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn non_resource(server: &ApiServer, path: &str, headers: &http::HeaderMap, method: &Method) -> Result<Resp, ApiError> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ApiError::method_not_allowed());
    }
    let resources: Vec<&registry::ResourceInfo> = server.registry.infos();
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let ok = |v: serde_json::Value| Ok(codec::value_response(StatusCode::OK, &v));
    match path {
        "/version" => ok(json!({
            "major": KUBERNETES_MAJOR, "minor": KUBERNETES_MINOR, "gitVersion": KUBERNETES_GIT_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
            "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
            "strongroomVersion": env!("CARGO_PKG_VERSION"),
        })),
        "/api" | "/apis" => {
            let core = path == "/api";
            match discovery::negotiate(accept) {
                discovery::DiscoveryFormat::Legacy => {
                    let doc = if core {
                        discovery::api_versions(&server.advertise)
                    } else {
                        discovery::api_group_list(&resources)
                    };
                    let mut r = codec::value_response(StatusCode::OK, &doc);
                    r.headers_mut().insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
                    Ok(r)
                }
                format => {
                    let doc = discovery::aggregated(&resources, core, format);
                    let mut r = codec::value_response(StatusCode::OK, &doc);
                    r.headers_mut()
                        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(format.content_type()));
                    r.headers_mut().insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
                    Ok(r)
                }
            }
        }
        "/openapi/v3" => Ok(codec::json_response(StatusCode::OK, server.documents(&resources).openapi_root.clone())),
        "/openapi/v2" => Err(ApiError::not_found_path()),
        _ => {
            let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let doc = match segs.as_slice() {
                ["api", "v1"] => discovery::api_resource_list(&resources, "", "v1"),
                ["apis", g] => discovery::api_group(&resources, g),
                ["apis", g, v] => discovery::api_resource_list(&resources, g, v),
                ["openapi", "v3", ..] => {
                    let docs = server.documents(&resources);
                    let key = path.trim_start_matches("/openapi/v3/");
                    return docs
                        .openapi
                        .get(key)
                        .map(|d| codec::json_response(StatusCode::OK, d.clone()))
                        .ok_or_else(ApiError::not_found_path);
                }
                _ => None,
            };
            doc.map(|d| codec::value_response(StatusCode::OK, &d)).ok_or_else(ApiError::not_found_path)
        }
    }
}

impl ApiServer {
    fn documents(&self, resources: &[&registry::ResourceInfo]) -> &Documents {
        self.documents.get_or_init(|| {
            let mut openapi = std::collections::HashMap::new();
            let mut gvs: Vec<(&str, &str)> = resources.iter().map(|r| (r.group, r.version)).collect();
            gvs.sort();
            gvs.dedup();
            for (g, v) in gvs {
                if let Some(doc) = openapi::group_version(resources, g, v) {
                    let key = if g.is_empty() { format!("api/{v}") } else { format!("apis/{g}/{v}") };
                    openapi.insert(key, serde_json::to_vec(&doc).unwrap_or_default());
                }
            }
            Documents { openapi_root: serde_json::to_vec(&openapi::root(resources)).unwrap_or_default(), openapi }
        })
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
