//! Authentication attacks over raw HTTPS (reliability.md 3.3, items 30–39; CVE-2015-9235,
//! CVE-2016-10555, CVE-2018-0114, CVE-2022-21449, CVE-2024-2048).
//!
//! The test reads the server's own signing key (`DIR/service-account.key`) and signs its own
//! ES256 tokens with ring, so it can forge exactly one thing wrong at a time: an expiry in the
//! past, a foreign issuer, an embedded key, a degenerate signature. A forged token with nothing
//! wrong must be accepted (the positive control that proves the forging is faithful); every
//! other must get `401` with one uniform body, whatever was wrong with it.
//!
//! Every request is sent with [`https`]: one HTTP/1.1 request over TLS with the headers exactly
//! as given (duplicates and non-UTF-8 bytes included), no retries, and a client certificate only
//! when asked for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Map, Value, json};
use strongroom_testkit::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server_with;

/// The one body every refused credential gets (Kubernetes' `Unauthorized` Status).
pub(crate) const UNAUTHORIZED: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

/// `kubectl auth whoami`: every authenticated user may create one, so `201` means "authenticated"
/// and `401` means "not", with nothing else in between.
pub(crate) const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
pub(crate) const WHOAMI_BODY: &[u8] = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const JSON: &[u8] = b"application/json";

/// The order of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

// ---------------------------------------------------------------------------------------------
// Raw HTTPS
// ---------------------------------------------------------------------------------------------

/// A raw HTTP/1.1 answer. `status` is 0 when the connection ended without one.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    pub body: String,
}

/// A base64 field (`certificate-authority-data: …`) of a kubeconfig, decoded.
fn kubeconfig_field(kubeconfig: &str, name: &str) -> Vec<u8> {
    let value = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {name} in the kubeconfig"));
    STANDARD.decode(value.trim()).unwrap_or_else(|e| panic!("{name} is not base64: {e}"))
}

/// One HTTP/1.1 request over TLS to `s`, `Connection: close`, nothing retried. `identity` is a
/// kubeconfig whose client certificate is presented; `None` presents none. Header values are
/// bytes so that malformed ones can be sent; the request is written while the answer is read,
/// so a server that answers early (431) and closes is still heard.
pub(crate) async fn https(
    s: &Server,
    identity: Option<&Path>,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Answer {
    let admin = std::fs::read_to_string(s.kubeconfig()).expect("read the admin kubeconfig");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut kubeconfig_field(&admin, "certificate-authority-data").as_slice()) {
        roots.add(cert.expect("a CA certificate")).expect("a usable CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(kubeconfig) => {
            let text = std::fs::read_to_string(kubeconfig).expect("read the kubeconfig");
            let chain = rustls_pemfile::certs(&mut kubeconfig_field(&text, "client-certificate-data").as_slice())
                .collect::<Result<Vec<_>, _>>()
                .expect("a client certificate");
            let key = rustls_pemfile::private_key(&mut kubeconfig_field(&text, "client-key-data").as_slice())
                .expect("a client key")
                .expect("a client key");
            builder.with_client_auth_cert(chain, key).expect("client certificate and key")
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port())).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");

    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let (mut reader, mut writer) = tokio::io::split(tls);
    let write = tokio::spawn(async move {
        // The server may refuse and close before reading everything: that is an answer too.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut raw)).await;
    let _ = write.await;

    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, rest) = match split {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        None => (&raw[..], &[][..]),
    };
    let head = String::from_utf8_lossy(head).into_owned();
    let status =
        head.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Answer { status, head, body: String::from_utf8_lossy(&body).into_owned() }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// `kubectl auth whoami` over raw HTTPS with these `Authorization` header values (none, one or
/// several) and no client certificate.
async fn whoami(s: &Server, authorization: &[&[u8]]) -> Answer {
    let mut headers: Vec<(&str, &[u8])> = vec![("Content-Type", JSON)];
    headers.extend(authorization.iter().map(|v| ("Authorization", *v)));
    https(s, None, "POST", WHOAMI, &headers, WHOAMI_BODY).await
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

/// The user name in a SelfSubjectReview answer.
fn username(a: &Answer) -> String {
    serde_json::from_str::<Value>(&a.body)
        .ok()
        .and_then(|v| v.pointer("/status/userInfo/username").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// What a TokenReview (posted by the admin) says about `token`: `Some(username)` if it
/// authenticates, `None` if not.
async fn token_review(s: &Server, token: &str) -> Option<String> {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let a =
        https(s, Some(&s.kubeconfig()), "POST", TOKEN_REVIEWS, &[("Content-Type", JSON)], body.to_string().as_bytes())
            .await;
    assert_eq!(a.status, 201, "TokenReview: {a:?}");
    let v: Value = serde_json::from_str(&a.body).expect("a TokenReview");
    if v.pointer("/status/authenticated") == Some(&Value::Bool(true)) {
        Some(v.pointer("/status/user/username").and_then(Value::as_str).unwrap_or_default().to_string())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Forging tokens
// ---------------------------------------------------------------------------------------------

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn compact(header: &str, payload: &str, sig: &[u8]) -> String {
    format!("{}.{}.{}", b64url(header), b64url(payload), b64url(sig))
}

fn new_p256_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("a P-256 key")
}

/// Signs like the server: base64url(header) "." base64url(payload), ES256, r‖s.
fn es256(key: &EcdsaKeyPair, header: &str, payload: &str) -> String {
    let signing_input = format!("{}.{}", b64url(header), b64url(payload));
    let sig = key.sign(&SystemRandom::new(), signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64url(sig.as_ref()))
}

/// The signature bytes of a compact token.
fn signature_of(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token.rsplit('.').next().expect("three parts")).expect("base64url signature")
}

/// `token` with its signature replaced by `sig` (encoded as base64url).
fn resigned(token: &str, sig: &[u8]) -> String {
    let (signing_input, _) = token.rsplit_once('.').expect("three parts");
    format!("{signing_input}.{}", b64url(sig))
}

fn hs256(secret: &[u8], header: &str, payload: &str) -> String {
    let signing_input = format!("{}.{}", b64url(header), b64url(payload));
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(tag.as_ref()))
}

/// What the test knows about the server's token signing: its key (read from the data
/// directory, as only someone who stole it could) and the claims of a real token as a template.
struct Forger {
    key: EcdsaKeyPair,
    /// The same key, signing ASN.1 DER signatures instead of r‖s.
    asn1: EcdsaKeyPair,
    kid: String,
    template: Map<String, Value>,
}

impl Forger {
    /// Loads `DIR/service-account.key` and decodes `real_token` for its header and claims.
    fn new(s: &Server, real_token: &str) -> Forger {
        let pem = std::fs::read_to_string(s.data_dir().join("service-account.key")).expect("read the signing key");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(b64.trim()).expect("PEM base64");
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).expect("PKCS#8");
        let asn1 = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng).expect("PKCS#8");
        let mut parts = real_token.split('.');
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().expect("header")).expect("base64url header"))
                .expect("header JSON");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().expect("payload")).expect("base64url payload"))
                .expect("payload JSON");
        assert_eq!(header["alg"], "ES256", "the server signs ES256: {header}");
        let kid = header["kid"].as_str().expect("a kid").to_string();
        // The kid is base64url(SHA-256(SPKI DER)) of the public key, as Kubernetes computes it.
        let spki = [&SPKI_P256_PREFIX[..], key.public_key().as_ref()].concat();
        assert_eq!(kid, b64url(ring::digest::digest(&ring::digest::SHA256, &spki)), "kid of the key on disk");
        Forger { key, asn1, kid, template: claims.as_object().expect("claims object").clone() }
    }

    fn header(&self) -> String {
        json!({"alg": "ES256", "kid": self.kid}).to_string()
    }

    /// The template's claims, valid from now for an hour, with a new `jti`.
    fn claims(&self) -> Map<String, Value> {
        let mut c = self.template.clone();
        let t = now();
        c.insert("iat".into(), json!(t));
        c.insert("nbf".into(), json!(t));
        c.insert("exp".into(), json!(t + 3600));
        c.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        c
    }

    /// [`Forger::claims`] changed by `edit`.
    fn claims_with(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut c = self.claims();
        edit(&mut c);
        Value::Object(c).to_string()
    }

    /// A token the server would have issued: its header, these claims, its key.
    fn sign(&self, payload: &str) -> String {
        es256(&self.key, &self.header(), payload)
    }

    fn valid(&self) -> String {
        self.sign(&Value::Object(self.claims()).to_string())
    }

    fn public_point(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

/// `kubectl create token` for a ServiceAccount in `default`.
fn create_token(s: &Server, args: &[&str]) -> String {
    let out = s.kubectl(&[&["create", "token"][..], args].concat()).ok();
    let token = out.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a compact JWS from kubectl create token");
    token
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

/// Runs every case through `whoami` and collects what is wrong; every case must get 401 with
/// exactly `baseline` as its body.
struct Findings {
    baseline: String,
    problems: Vec<String>,
    refused: usize,
}

impl Findings {
    async fn refused(&mut self, s: &Server, case: &str, authorization: &[&[u8]]) {
        let a = whoami(s, authorization).await;
        self.refused += 1;
        if a.status != 401 {
            self.problems.push(format!("{case}: expected 401, got {} as {:?}: {}", a.status, username(&a), a.body));
        } else if a.body != self.baseline {
            self.problems.push(format!("{case}: the 401 body differs from the uniform one: {}", a.body));
        }
    }

    /// A single token: refused by the API and by TokenReview alike.
    async fn token_refused(&mut self, s: &Server, case: &str, token: &str) {
        self.refused(s, case, &[&bearer(token)]).await;
        if let Some(user) = token_review(s, token).await {
            self.problems.push(format!("{case}: TokenReview says the token authenticates as {user:?}"));
        }
    }

    fn finish(self) {
        assert!(
            self.problems.is_empty(),
            "{} of {} cases failed:\n{}",
            self.problems.len(),
            self.refused,
            self.problems.join("\n")
        );
    }
}

/// The uniform body, as a request with no credentials at all gets it.
async fn baseline(s: &Server) -> String {
    let a = whoami(s, &[]).await;
    assert_eq!((a.status, a.body.as_str()), (401, UNAUTHORIZED), "no credentials: {a:?}");
    a.body
}

/// Items 30–34: every forged, tampered or malformed token, through one server, gets the same
/// 401; the faithful forgeries and the real token get in.
#[tokio::test]
async fn forged_tampered_and_malformed_tokens_get_one_uniform_401() {
    let s = server_with(&[]);
    let real = create_token(&s, &["default"]);
    let f = Forger::new(&s, &real);
    let sa = "system:serviceaccount:default:default";

    // Positive controls: without them every 401 below could be a broken forger.
    for (case, auth) in [
        ("the real token", bearer(&real)),
        ("a faithful forgery", bearer(&f.valid())),
        ("lowercase scheme (accepted, as Kubernetes)", format!("bearer {real}").into_bytes()),
        ("uppercase scheme (accepted, as Kubernetes)", format!("BEARER {real}").into_bytes()),
        (
            "expired 20 s ago, inside the 60 s leeway",
            bearer(&f.sign(&f.claims_with(|c| {
                c.insert("exp".into(), json!(now() - 20));
                c.insert("iat".into(), json!(now() - 700));
                c.insert("nbf".into(), json!(now() - 700));
            }))),
        ),
        (
            "aud as a single string",
            bearer(&f.sign(&f.claims_with(|c| {
                let aud = c["aud"][0].clone();
                c.insert("aud".into(), aud);
            }))),
        ),
    ] {
        let a = whoami(&s, &[&auth]).await;
        assert_eq!((a.status, username(&a).as_str()), (201, sa), "{case}: {a:?}");
    }
    assert_eq!(token_review(&s, &f.valid()).await.as_deref(), Some(sa), "TokenReview of a faithful forgery");

    let mut findings = Findings { baseline: baseline(&s).await, problems: Vec::new(), refused: 0 };
    let header = f.header();
    let claims = || Value::Object(f.claims()).to_string();
    let attacker = new_p256_key();
    let attacker_point = attacker.public_key().as_ref().to_vec();
    let attacker_jwk = json!({
        "kty": "EC", "crv": "P-256", "x": b64url(&attacker_point[1..33]), "y": b64url(&attacker_point[33..]),
    });

    // Item 30: time.
    let t = now();
    let timing: Vec<(&str, String)> = vec![
        (
            "expired an hour ago",
            f.claims_with(|c| {
                c.insert("exp".into(), json!(t - 3600));
                c.insert("iat".into(), json!(t - 7200));
                c.insert("nbf".into(), json!(t - 7200));
            }),
        ),
        (
            "expired 120 s ago, beyond the 60 s leeway",
            f.claims_with(|c| {
                c.insert("exp".into(), json!(t - 120));
                c.insert("iat".into(), json!(t - 720));
                c.insert("nbf".into(), json!(t - 720));
            }),
        ),
        (
            "nbf an hour in the future",
            f.claims_with(|c| {
                c.insert("nbf".into(), json!(t + 3600));
            }),
        ),
        (
            "iat an hour in the future",
            f.claims_with(|c| {
                c.insert("iat".into(), json!(t + 3600));
            }),
        ),
        (
            "exp as a string",
            f.claims_with(|c| {
                c.insert("exp".into(), json!((t + 3600).to_string()));
            }),
        ),
        (
            "exp beyond i64",
            f.claims_with(|c| {
                c.insert("exp".into(), json!(1e30));
            }),
        ),
        (
            "exp missing",
            f.claims_with(|c| {
                c.remove("exp");
            }),
        ),
    ];
    // Item 33: issuer, audience, subject and the ServiceAccount the token names.
    let issuer = f.template["iss"].as_str().expect("iss").to_string();
    let identity: Vec<(&str, String)> = vec![
        (
            "wrong iss",
            f.claims_with(|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
        ),
        (
            "iss with a trailing slash",
            f.claims_with(|c| {
                c.insert("iss".into(), json!(format!("{issuer}/")));
            }),
        ),
        (
            "iss as an array",
            f.claims_with(|c| {
                c.insert("iss".into(), json!([issuer]));
            }),
        ),
        (
            "iss missing",
            f.claims_with(|c| {
                c.remove("iss");
            }),
        ),
        (
            "wrong aud",
            f.claims_with(|c| {
                c.insert("aud".into(), json!(["vault"]));
            }),
        ),
        (
            "empty aud",
            f.claims_with(|c| {
                c.insert("aud".into(), json!([]));
            }),
        ),
        (
            "aud as a number",
            f.claims_with(|c| {
                c.insert("aud".into(), json!(1));
            }),
        ),
        (
            "aud missing",
            f.claims_with(|c| {
                c.remove("aud");
            }),
        ),
        (
            "sub naming another ServiceAccount",
            f.claims_with(|c| {
                c.insert("sub".into(), json!("system:serviceaccount:default:admin"));
            }),
        ),
        (
            "sub missing",
            f.claims_with(|c| {
                c.remove("sub");
            }),
        ),
        (
            "kubernetes.io missing",
            f.claims_with(|c| {
                c.remove("kubernetes.io");
            }),
        ),
        (
            "serviceaccount uid missing",
            f.claims_with(|c| {
                c["kubernetes.io"]["serviceaccount"].as_object_mut().expect("serviceaccount").remove("uid");
            }),
        ),
        (
            "serviceaccount uid of another (recreated) account",
            f.claims_with(|c| {
                c["kubernetes.io"]["serviceaccount"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            }),
        ),
        (
            "a ServiceAccount that never existed",
            f.claims_with(|c| {
                c["kubernetes.io"]["serviceaccount"] =
                    json!({"name": "ghost", "uid": uuid::Uuid::new_v4().to_string()});
                c.insert("sub".into(), json!("system:serviceaccount:default:ghost"));
            }),
        ),
        (
            "a namespace that does not exist",
            f.claims_with(|c| {
                c["kubernetes.io"]["namespace"] = json!("nowhere");
                c.insert("sub".into(), json!("system:serviceaccount:nowhere:default"));
            }),
        ),
        (
            "bound to a pod (strongroom serves none)",
            f.claims_with(|c| {
                c["kubernetes.io"]["pod"] = json!({"name": "p", "uid": uuid::Uuid::new_v4().to_string()});
            }),
        ),
        (
            "bound to a secret that does not exist",
            f.claims_with(|c| {
                c["kubernetes.io"]["secret"] = json!({"name": "gone", "uid": uuid::Uuid::new_v4().to_string()});
            }),
        ),
        (
            "kubernetes.io as a string",
            f.claims_with(|c| {
                c.insert("kubernetes.io".into(), json!("default"));
            }),
        ),
    ];
    for (case, payload) in timing.iter().chain(&identity) {
        findings.token_refused(&s, case, &f.sign(payload)).await;
    }

    // Item 31: algorithms and headers (the payload is valid every time).
    let p = claims();
    let spki = [&SPKI_P256_PREFIX[..], &f.public_point()].concat();
    let spki_pem = {
        let b64 = STANDARD.encode(&spki);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    };
    let jwks = https(&s, Some(&s.kubeconfig()), "GET", "/openid/v1/jwks", &[], b"").await;
    assert_eq!(jwks.status, 200, "{jwks:?}");
    let jwk_text = serde_json::from_str::<Value>(&jwks.body).expect("JWKS")["keys"][0].to_string();
    let kid = &f.kid;
    let with_kid = |h: Value| {
        let mut h = h;
        h["kid"] = json!(kid);
        h.to_string()
    };
    let real_sig = signature_of(&f.sign(&p));
    let mut headers: Vec<(String, String)> = vec![
        ("alg none, no signature".into(), format!("{}.{}.", b64url(r#"{"alg":"none"}"#), b64url(&p))),
        (
            "alg none with our kid, no signature".into(),
            format!("{}.{}.", b64url(with_kid(json!({"alg": "none"}))), b64url(&p)),
        ),
        ("alg none with a real signature".into(), compact(&with_kid(json!({"alg": "none"})), &p, &real_sig)),
        ("alg None".into(), compact(&with_kid(json!({"alg": "None"})), &p, &real_sig)),
        ("alg NONE".into(), compact(&with_kid(json!({"alg": "NONE"})), &p, &real_sig)),
        ("alg missing".into(), es256(&f.key, &with_kid(json!({})), &p)),
        ("alg lowercase es256".into(), es256(&f.key, &with_kid(json!({"alg": "es256"})), &p)),
        ("alg as an array".into(), es256(&f.key, &with_kid(json!({"alg": ["ES256"]})), &p)),
        ("alg ES384".into(), es256(&f.key, &with_kid(json!({"alg": "ES384"})), &p)),
        ("alg RS256 with a 256-byte signature".into(), compact(&with_kid(json!({"alg": "RS256"})), &p, &[7u8; 256])),
        ("alg PS256".into(), es256(&f.key, &with_kid(json!({"alg": "PS256"})), &p)),
        ("typ JWE".into(), es256(&f.key, &with_kid(json!({"alg": "ES256", "typ": "JWE"})), &p)),
        ("kid as a number".into(), es256(&f.key, &json!({"alg": "ES256", "kid": 1}).to_string(), &p)),
        ("unknown kid, real signature".into(), es256(&f.key, &json!({"alg": "ES256", "kid": "other"}).to_string(), &p)),
        (
            "crit [\"exp\"], real signature".into(),
            es256(&f.key, &with_kid(json!({"alg": "ES256", "crit": ["exp"], "exp": 1})), &p),
        ),
        ("crit [], real signature".into(), es256(&f.key, &with_kid(json!({"alg": "ES256", "crit": []})), &p)),
        (
            "duplicate alg (ES256 then none), real signature".into(),
            es256(&f.key, &format!(r#"{{"alg":"ES256","kid":"{kid}","alg":"none"}}"#), &p),
        ),
        (
            "duplicate alg (none then ES256), real signature".into(),
            es256(&f.key, &format!(r#"{{"alg":"none","kid":"{kid}","alg":"ES256"}}"#), &p),
        ),
        ("duplicate sub claim, real signature".into(), {
            let dup = p.replacen('{', r#"{"sub":"system:serviceaccount:default:admin","#, 1);
            f.sign(&dup)
        }),
        ("header is not JSON, real signature".into(), es256(&f.key, "ES256", &p)),
        ("header is a JSON array, real signature".into(), es256(&f.key, r#"["ES256"]"#, &p)),
        ("payload is not JSON, real signature".into(), f.sign("system:serviceaccount:default:default")),
        ("another P-256 key claiming our kid".into(), es256(&attacker, &header, &p)),
        ("another P-256 key without a kid".into(), es256(&attacker, r#"{"alg":"ES256"}"#, &p)),
        (
            "embedded jwk of the signing (attacker) key".into(),
            es256(&attacker, &json!({"alg": "ES256", "jwk": attacker_jwk}).to_string(), &p),
        ),
        (
            "embedded jwk with our kid, attacker signature".into(),
            es256(&attacker, &with_kid(json!({"alg": "ES256", "jwk": attacker_jwk})), &p),
        ),
        (
            "embedded jwk, real signature".into(),
            es256(
                &f.key,
                &with_kid(json!({"alg": "ES256", "jwk": serde_json::from_str::<Value>(&jwk_text).expect("jwk")})),
                &p,
            ),
        ),
        (
            "jku, attacker signature".into(),
            es256(&attacker, &json!({"alg": "ES256", "jku": "https://evil.example/jwks"}).to_string(), &p),
        ),
        (
            "jku, real signature".into(),
            es256(&f.key, &with_kid(json!({"alg": "ES256", "jku": "https://evil.example/jwks"})), &p),
        ),
        (
            "x5u, attacker signature".into(),
            es256(&attacker, &json!({"alg": "ES256", "x5u": "https://evil.example/cert.pem"}).to_string(), &p),
        ),
        ("x5c with the server's CA, attacker signature".into(), {
            let ca = std::fs::read_to_string(s.data_dir().join("ca.crt")).expect("ca.crt");
            let der: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
            es256(&attacker, &json!({"alg": "ES256", "x5c": [der]}).to_string(), &p)
        }),
        ("x5c, real signature".into(), es256(&f.key, &with_kid(json!({"alg": "ES256", "x5c": ["MIIB"]})), &p)),
    ];
    // HS256 keyed with every public form of our key (CVE-2016-10555), with and without our kid.
    for (form, secret) in [
        ("SPKI DER", spki.clone()),
        ("SPKI PEM", spki_pem.into_bytes()),
        ("uncompressed point", f.public_point()),
        ("JWK x‖y", f.public_point()[1..].to_vec()),
        ("JWK JSON", jwk_text.clone().into_bytes()),
    ] {
        headers.push((format!("HS256 keyed with the public key ({form})"), hs256(&secret, r#"{"alg":"HS256"}"#, &p)));
        headers.push((
            format!("HS256 keyed with the public key ({form}) and our kid"),
            hs256(&secret, &with_kid(json!({"alg": "HS256"})), &p),
        ));
    }

    // Item 32: degenerate signatures on an otherwise valid token.
    let valid = f.sign(&p);
    let (r, s_part) = real_sig.split_at(32);
    let mut flipped = real_sig.clone();
    flipped[40] ^= 0x01;
    let mut random = [0u8; 64];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut random).expect("random");
    let asn1 = {
        let signing_input = valid.rsplit_once('.').expect("parts").0;
        f.asn1.sign(&SystemRandom::new(), signing_input.as_bytes()).expect("sign").as_ref().to_vec()
    };
    let sigs: Vec<(&str, Vec<u8>)> = vec![
        ("r = s = 0", vec![0u8; 64]),
        ("r = 0, real s", [&[0u8; 32][..], s_part].concat()),
        ("real r, s = 0", [r, &[0u8; 32][..]].concat()),
        ("real r, s = n", [r, &P256_N[..]].concat()),
        ("r = n, real s", [&P256_N[..], s_part].concat()),
        ("real r, s = 2^256 - 1", [r, &[0xffu8; 32][..]].concat()),
        ("truncated to 63 bytes", real_sig[..63].to_vec()),
        ("truncated to 32 bytes", real_sig[..32].to_vec()),
        ("65 bytes", [&real_sig[..], &[0u8][..]].concat()),
        ("ASN.1 DER form of a real signature", asn1),
        ("256-byte RSA-sized signature", vec![0x5au8; 256]),
        ("random 64 bytes", random.to_vec()),
        ("one bit flipped", flipped),
    ];
    for (case, sig) in sigs {
        headers.push((format!("signature: {case}"), resigned(&valid, &sig)));
    }
    headers.push(("signature: empty".into(), format!("{}.", valid.rsplit_once('.').expect("parts").0)));

    // Item 34: structure and encoding.
    let std_alphabet = loop {
        // A signature whose base64url has a '-' or '_', so the standard alphabet differs.
        let t = f.sign(&p);
        let sig = t.rsplit('.').next().expect("sig").to_string();
        if sig.contains(['-', '_']) {
            break resigned_text(&t, &sig.replace('-', "+").replace('_', "/"));
        }
    };
    for (case, token) in [
        ("two parts", valid.rsplit_once('.').expect("parts").0.to_string()),
        ("four parts", format!("{valid}.e30")),
        ("trailing garbage", format!("{valid}x")),
        ("trailing base64 block", format!("{valid}AAAA")),
        ("trailing dot", format!("{valid}.")),
        ("padded signature", format!("{valid}=")),
        ("signature in the standard base64 alphabet", std_alphabet),
        ("padded header", {
            let (h, rest) = valid.split_once('.').expect("parts");
            format!("{}.{rest}", STANDARD.encode(URL_SAFE_NO_PAD.decode(h).expect("header")))
        }),
        (
            "20 KiB of claims, real signature",
            f.sign(&f.claims_with(|c| {
                c.insert("pad".into(), json!("x".repeat(20 * 1024)));
            })),
        ),
        ("random bytes in JWT shape", format!("{}.{}.{}", b64url([1u8; 30]), b64url([2u8; 90]), b64url(random))),
        ("a dot", ".".into()),
        ("two dots", "..".into()),
    ] {
        headers.push((case.into(), token));
    }
    for (case, token) in &headers {
        findings.token_refused(&s, case, token).await;
    }

    // Malformed Authorization headers.
    let good = bearer(&real);
    let garbage = bearer("garbage");
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("two Authorization headers, both valid", vec![good.clone(), good.clone()]),
        ("two Authorization headers, valid then garbage", vec![good.clone(), garbage.clone()]),
        ("two Authorization headers, garbage then valid", vec![garbage.clone(), good.clone()]),
        ("Bearer without a token", vec![b"Bearer".to_vec()]),
        ("Bearer with a space-separated second token", vec![format!("Bearer {real} {real}").into_bytes()]),
        ("Bearer with trailing text", vec![format!("Bearer {real} garbage").into_bytes()]),
        ("the token without a scheme", vec![real.clone().into_bytes()]),
        ("Basic credentials", vec![format!("Basic {}", STANDARD.encode(format!("admin:{real}"))).into_bytes()]),
        ("Token scheme", vec![format!("Token {real}").into_bytes()]),
        ("a tab instead of a space", vec![format!("Bearer\t{real}").into_bytes()]),
        ("non-UTF-8 bytes", vec![b"Bearer \xff\xfe\xfd".to_vec()]),
        ("a valid token followed by non-UTF-8 bytes", vec![[&good[..], b"\xff"].concat()]),
    ];
    for (case, values) in &cases {
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        findings.refused(&s, case, &values).await;
    }
    findings.finish();

    // After all that, the server still serves the real token.
    let a = whoami(&s, &[&good]).await;
    assert_eq!((a.status, username(&a).as_str()), (201, sa), "{a:?}");
}

fn resigned_text(token: &str, sig_text: &str) -> String {
    let (signing_input, _) = token.rsplit_once('.').expect("three parts");
    format!("{signing_input}.{sig_text}")
}

/// Item 34: a 1 MiB bearer token is refused (401, or 431 by the HTTP layer) and the server keeps
/// serving.
#[tokio::test]
async fn a_one_mebibyte_token_is_refused() {
    let s = server_with(&[]);
    let token = format!("{}.{}.{}", b64url("h"), "A".repeat(1024 * 1024), b64url("s"));
    let a = whoami(&s, &[&bearer(&token)]).await;
    match a.status {
        401 => assert_eq!(a.body, UNAUTHORIZED, "{}", a.head),
        431 => {}
        other => panic!("a 1 MiB token: expected 401 or 431, got {other}: {}\n{}", a.head, a.body),
    }
    let real = create_token(&s, &["default"]);
    let a = whoami(&s, &[&bearer(&real)]).await;
    assert_eq!(a.status, 201, "{a:?}");
}

/// Item 33: a token dies with its ServiceAccount and stays dead when one with the same name is
/// created again (the UID is in the token); a token bound to a Secret dies with the Secret. A
/// forgery naming the deleted account (signed with the real key) is refused as well.
#[tokio::test]
async fn deleted_or_recreated_service_accounts_and_bound_secrets_revoke_tokens() {
    let s = server_with(&[]);
    s.kubectl(&["create", "serviceaccount", "app"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=k=v"]).ok();
    let plain = create_token(&s, &["app"]);
    let bound = create_token(&s, &["app", "--bound-object-kind=Secret", "--bound-object-name=db"]);
    let f = Forger::new(&s, &plain);
    let forged = f.valid();
    let user = "system:serviceaccount:default:app";
    for (case, token) in [("plain", &plain), ("bound", &bound), ("forged", &forged)] {
        let a = whoami(&s, &[&bearer(token)]).await;
        assert_eq!((a.status, username(&a).as_str()), (201, user), "{case} before any deletion: {a:?}");
    }
    let mut findings = Findings { baseline: baseline(&s).await, problems: Vec::new(), refused: 0 };

    // The bound Secret goes, then comes back with a new UID: the bound token stays dead.
    s.kubectl(&["delete", "secret", "db"]).ok();
    findings.token_refused(&s, "bound to a deleted secret", &bound).await;
    s.kubectl(&["create", "secret", "generic", "db", "--from-literal=k=v"]).ok();
    findings.token_refused(&s, "bound to a deleted and recreated secret", &bound).await;
    let a = whoami(&s, &[&bearer(&plain)]).await;
    assert_eq!(a.status, 201, "the unbound token is not affected by the secret: {a:?}");

    let uid = s.kubectl(&["get", "serviceaccount", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    s.kubectl(&["delete", "serviceaccount", "app"]).ok();
    findings.token_refused(&s, "ServiceAccount deleted", &plain).await;
    findings.token_refused(&s, "forged, ServiceAccount deleted", &forged).await;
    let ghost = f.sign(&f.claims_with(|c| {
        c["kubernetes.io"]["serviceaccount"]["uid"] = json!(uid);
    }));
    findings.token_refused(&s, "freshly forged for the deleted ServiceAccount's UID", &ghost).await;
    s.kubectl(&["create", "serviceaccount", "app"]).ok();
    findings.token_refused(&s, "ServiceAccount deleted and recreated", &plain).await;
    findings.token_refused(&s, "forged, ServiceAccount deleted and recreated", &forged).await;
    findings.finish();

    let fresh = create_token(&s, &["app"]);
    let a = whoami(&s, &[&bearer(&fresh)]).await;
    assert_eq!((a.status, username(&a).as_str()), (201, user), "a token for the new account works: {a:?}");
}

/// Item 35 without the stopwatch (tests never assert wall-clock): static tokens that differ from
/// a valid one in the first or the last byte, or by a byte more or less, are all refused with
/// the uniform body, and the valid one authenticates with its user, uid and groups.
#[tokio::test]
async fn static_tokens_differing_by_one_byte_are_refused() {
    let token = format!("static{}", uuid::Uuid::new_v4().simple());
    let files = tempfile::tempdir().expect("temp dir");
    let csv = files.path().join("tokens.csv");
    std::fs::write(&csv, format!("{token},static-user,uid-42,\"devs,ops\"\n")).expect("write the token file");
    let s = server_with(&["--token-auth-file", csv.to_str().expect("UTF-8 path")]);

    let a = whoami(&s, &[&bearer(&token)]).await;
    assert_eq!(a.status, 201, "{a:?}");
    let info: Value = serde_json::from_str(&a.body).expect("JSON");
    assert_eq!(
        info.pointer("/status/userInfo").expect("userInfo"),
        &json!({"username": "static-user", "uid": "uid-42", "groups": ["devs", "ops", "system:authenticated"]}),
        "{}",
        a.body
    );

    let flip = |at: usize| {
        let mut b = token.clone().into_bytes();
        b[at] = if b[at] == b'x' { b'y' } else { b'x' };
        String::from_utf8(b).expect("ASCII")
    };
    let mut findings = Findings { baseline: baseline(&s).await, problems: Vec::new(), refused: 0 };
    for (case, wrong) in [
        ("first byte differs", flip(0)),
        ("last byte differs", flip(token.len() - 1)),
        ("one byte short", token[..token.len() - 1].to_string()),
        ("one byte more", format!("{token}0")),
        ("upper case", token.to_uppercase()),
        ("the user name", "static-user".to_string()),
        ("the whole CSV line", format!("{token},static-user,uid-42")),
    ] {
        findings.token_refused(&s, case, &wrong).await;
    }
    findings.finish();
}

/// The audit event of the request that carried `user_agent`.
fn audit_event(s: &Server, user_agent: &str) -> Value {
    let log = std::fs::read_to_string(s.data_dir().join("audit.log")).expect("read the audit log");
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["userAgent"] == user_agent)
        .unwrap_or_else(|| panic!("no audit event with user agent {user_agent:?} in\n{log}"))
}

/// Item 39: a request with both a client certificate and a bearer token runs as the
/// certificate's user (the documented precedence), never as the token's user nor with the union
/// of both; the audit event names the certificate's user.
#[tokio::test]
async fn a_client_certificate_takes_precedence_over_a_bearer_token() {
    let master = format!("master{}", uuid::Uuid::new_v4().simple());
    let files = tempfile::tempdir().expect("temp dir");
    let csv = files.path().join("tokens.csv");
    std::fs::write(&csv, format!("{master},token-master,uid-1,system:masters\n")).expect("write the token file");
    let s = server_with(&["--token-auth-file", csv.to_str().expect("UTF-8 path")]);
    let admin = s.kubeconfig();
    let carol = s.user_kubeconfig("carol", &["devs"]);
    let sa_token = create_token(&s, &["default"]);
    let json_ct: (&str, &[u8]) = ("Content-Type", JSON);

    // The admin's certificate with a ServiceAccount's token: the admin.
    let auth = bearer(&sa_token);
    let a = https(
        &s,
        Some(&admin),
        "POST",
        WHOAMI,
        &[json_ct, ("Authorization", &auth), ("User-Agent", b"precedence-1")],
        WHOAMI_BODY,
    )
    .await;
    assert_eq!((a.status, username(&a).as_str()), (201, "strongroom-admin"), "{a:?}");
    assert_eq!(audit_event(&s, "precedence-1")["user"]["username"], "strongroom-admin");

    // The admin's certificate with a garbage token: the certificate decides alone.
    let a =
        https(&s, Some(&admin), "POST", WHOAMI, &[json_ct, ("Authorization", b"Bearer garbage")], WHOAMI_BODY).await;
    assert_eq!((a.status, username(&a).as_str()), (201, "strongroom-admin"), "{a:?}");

    // A powerless certificate with a system:masters token: still powerless, no union.
    let auth = bearer(&master);
    let a = https(
        &s,
        Some(&carol),
        "POST",
        WHOAMI,
        &[json_ct, ("Authorization", &auth), ("User-Agent", b"precedence-2")],
        WHOAMI_BODY,
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let info: Value = serde_json::from_str(&a.body).expect("JSON");
    assert_eq!(
        info.pointer("/status/userInfo").expect("userInfo"),
        &json!({"username": "carol", "groups": ["devs", "system:authenticated"]}),
        "{}",
        a.body
    );
    assert_eq!(audit_event(&s, "precedence-2")["user"]["username"], "carol");
    let a = https(
        &s,
        Some(&carol),
        "GET",
        "/api/v1/namespaces/default/secrets",
        &[("Authorization", &auth), ("User-Agent", b"precedence-3")],
        b"",
    )
    .await;
    assert_eq!(a.status, 403, "{a:?}");
    let status: Value = serde_json::from_str(&a.body).expect("a Status");
    assert_eq!(
        status["message"],
        r#"secrets is forbidden: User "carol" cannot list resource "secrets" in API group "" in the namespace "default""#
    );
    let event = audit_event(&s, "precedence-3");
    assert_eq!(
        (&event["user"]["username"], &event["responseStatus"]["code"]),
        (&json!("carol"), &json!(403)),
        "{event}"
    );

    // The same token alone is the masters user: the refusal above came from the precedence.
    let a = https(&s, None, "GET", "/api/v1/namespaces/default/secrets", &[("Authorization", &auth)], b"").await;
    assert_eq!(a.status, 200, "{a:?}");
}
