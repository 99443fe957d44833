//! The server's certificates: a CA, a serving certificate, the admin client certificate and the
//! admin kubeconfig, created in the data directory on first start and reused afterwards.
//!
//! One CA signs both the serving certificate and client certificates, so the kubeconfig needs a
//! single `certificate-authority-data`. Client certificates carry the user in CN and groups in O,
//! as Kubernetes' x509 authenticator reads them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use zeroize::Zeroizing;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVING_CERT: &str = "serving.crt";
pub const SERVING_KEY: &str = "serving.key";
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";

/// The admin user's name and group (bound to everything, as Kubernetes' `system:masters`).
pub const ADMIN_USER: &str = "strongroom-admin";
pub const MASTERS_GROUP: &str = "system:masters";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot generate {what}: {source}")]
    Generate { what: &'static str, source: rcgen::Error },
    #[error("{path} does not hold a usable {what}")]
    Invalid { path: PathBuf, what: &'static str },
    #[error("{0}")]
    Usage(String),
}

/// What the TLS layer needs: PEM of the CA, the serving chain and its key.
pub struct ServerPki {
    pub ca_cert_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: Zeroizing<String>,
    ca_key_pem: Zeroizing<String>,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io { action, path: path.to_path_buf(), source }
}

/// Writes a new file atomically (temp file, fsync, rename, fsync directory) with `mode`.
pub fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io("chmod", &tmp))?;
    f.write_all(contents).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename", path))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync", dir))?;
    Ok(())
}

fn read(path: &Path) -> Result<Zeroizing<String>, PkiError> {
    fs::read_to_string(path).map(Zeroizing::new).map_err(io("read", path))
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

fn dn(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = time_now();
    // Back-date a little so a client whose clock is slightly behind still accepts it.
    params.not_before = now - Duration::from_secs(300);
    params.not_after = now + lifetime;
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl ServerPki {
    /// Loads the CA and serving certificate from `dir`, creating what is missing.
    pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> Result<Self, PkiError> {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let ca_cert_path = dir.join(CA_CERT);
        let ca_key_path = dir.join(CA_KEY);
        if !ca_cert_path.exists() {
            let key = KeyPair::generate().map_err(gen_err("CA key"))?;
            let mut params = CertificateParams::default();
            params.distinguished_name = dn("strongroom-ca", &[]);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            validity(&mut params, Duration::from_secs(10 * 365 * 86400));
            let cert = params.self_signed(&key).map_err(gen_err("CA certificate"))?;
            write_private(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_private(&ca_cert_path, cert.pem().as_bytes(), 0o644)?;
            tracing::info!(path = %ca_cert_path.display(), "created a certificate authority");
        }
        let ca_cert_pem = read(&ca_cert_path)?.to_string();
        let ca_key_pem = read(&ca_key_path)?;

        let serving_cert_path = dir.join(SERVING_CERT);
        let serving_key_path = dir.join(SERVING_KEY);
        let pki_so_far = ServerPki {
            ca_cert_pem,
            serving_cert_pem: String::new(),
            serving_key_pem: Zeroizing::new(String::new()),
            ca_key_pem,
        };
        if !serving_cert_path.exists() {
            let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
            if let Some(host) = hostname() {
                sans.push(host);
            }
            sans.extend(extra_sans.iter().cloned());
            sans.dedup();
            let (cert, key) = pki_so_far.issue_serving(&sans)?;
            write_private(&serving_key_path, key.as_bytes(), 0o600)?;
            write_private(&serving_cert_path, cert.as_bytes(), 0o644)?;
            tracing::info!(path = %serving_cert_path.display(), sans = ?sans, "created a serving certificate");
        }
        Ok(ServerPki {
            serving_cert_pem: read(&serving_cert_path)?.to_string(),
            serving_key_pem: read(&serving_key_path)?,
            ..pki_so_far
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&self.ca_key_pem)
            .map_err(|_| PkiError::Invalid { path: CA_KEY.into(), what: "CA key" })?;
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, key)
            .map_err(|_| PkiError::Invalid { path: CA_CERT.into(), what: "CA certificate" })
    }

    fn issue_serving(&self, sans: &[String]) -> Result<(String, Zeroizing<String>), PkiError> {
        let key = KeyPair::generate().map_err(gen_err("serving key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("strongroom", &[]);
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(gen_err("serving certificate names"))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut params, Duration::from_secs(2 * 365 * 86400));
        let cert = params.signed_by(&key, &self.issuer()?).map_err(gen_err("serving certificate"))?;
        Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
    }

    /// Issues a client certificate for `user` in `groups` (CN and O), valid for `lifetime`.
    pub fn issue_client(
        &self,
        user: &str,
        groups: &[&str],
        lifetime: Duration,
    ) -> Result<(String, Zeroizing<String>), PkiError> {
        let key = KeyPair::generate().map_err(gen_err("client key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(user, groups);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut params, lifetime);
        let cert = params.signed_by(&key, &self.issuer()?).map_err(gen_err("client certificate"))?;
        let pem = if groups.len() > 1 {
            // rcgen keeps one value per attribute type, but Kubernetes reads every O as a group.
            let ca_key = KeyPair::from_pem(&self.ca_key_pem)
                .map_err(|_| PkiError::Invalid { path: CA_KEY.into(), what: "CA key" })?;
            to_pem(&with_subject(cert.der(), &subject_der(user, groups), &ca_key)?)
        } else {
            cert.pem()
        };
        Ok((pem, Zeroizing::new(key.serialize_pem())))
    }

    /// A kubeconfig for `server` that authenticates with a client certificate.
    pub fn kubeconfig(&self, server: &str, user: &str, cert_pem: &str, key_pem: &str) -> Zeroizing<String> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        Zeroizing::new(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: strongroom\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {user}@strongroom\n  context:\n    cluster: strongroom\n    user: {user}\n    namespace: default\ncurrent-context: {user}@strongroom\n",
            ca = b64(&self.ca_cert_pem),
            cert = b64(cert_pem),
            key = b64(key_pem),
        ))
    }

    /// Creates `DIR/admin.kubeconfig` (mode 0600) on first start; keeps an existing one.
    pub fn ensure_admin_kubeconfig(&self, dir: &Path, server: &str) -> Result<PathBuf, PkiError> {
        let path = dir.join(ADMIN_KUBECONFIG);
        if !path.exists() {
            let (cert, key) = self.issue_client(ADMIN_USER, &[MASTERS_GROUP], Duration::from_secs(365 * 86400))?;
            let kubeconfig = self.kubeconfig(server, ADMIN_USER, &cert, &key);
            write_private(&path, kubeconfig.as_bytes(), 0o600)?;
            tracing::info!(path = %path.display(), "created the admin kubeconfig");
        }
        Ok(path)
    }
}

/// A kubeconfig for `user` in `groups` with a new client certificate from the CA in `dir`, valid
/// for `lifetime` (`strongroom admin kubeconfig`). The server URL defaults to the one in the
/// admin kubeconfig the server wrote at its first start.
pub fn user_kubeconfig(
    dir: &Path,
    user: &str,
    groups: &[&str],
    lifetime: Duration,
    server: Option<&str>,
) -> Result<Zeroizing<String>, PkiError> {
    if user.is_empty() || user.chars().any(|c| c.is_control()) {
        return Err(PkiError::Usage("the user name must be non-empty and printable".into()));
    }
    if let Some(g) = groups.iter().find(|g| g.is_empty() || g.chars().any(|c| c.is_control())) {
        return Err(PkiError::Usage(format!("group {g:?} must be non-empty and printable")));
    }
    let ca_cert_path = dir.join(CA_CERT);
    if !ca_cert_path.exists() {
        return Err(PkiError::Usage(format!(
            "{} has no certificate authority yet: start the server on it once first",
            dir.display()
        )));
    }
    let server = match server {
        Some(s) => s.to_string(),
        None => {
            let admin = read(&dir.join(ADMIN_KUBECONFIG))?;
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
                .ok_or_else(|| PkiError::Invalid { path: dir.join(ADMIN_KUBECONFIG), what: "server URL" })?
        }
    };
    let pki = ServerPki {
        ca_cert_pem: read(&ca_cert_path)?.to_string(),
        serving_cert_pem: String::new(),
        serving_key_pem: Zeroizing::new(String::new()),
        ca_key_pem: read(&dir.join(CA_KEY))?,
    };
    let (cert, key) = pki.issue_client(user, groups, lifetime)?;
    Ok(pki.kubeconfig(&server, user, &cert, &key))
}

/// `O=<group>…, CN=<user>` with one attribute per group, in that order (as `dn` orders them).
fn subject_der(user: &str, groups: &[&str]) -> Vec<u8> {
    const ORGANIZATION: &[u64] = &[2, 5, 4, 10];
    const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
    let attrs: Vec<(&[u64], &str)> =
        groups.iter().map(|g| (ORGANIZATION, *g)).chain(std::iter::once((COMMON_NAME, user))).collect();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in &attrs {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                        w.next().write_utf8_string(value);
                    })
                });
            }
        })
    })
}

/// The length of a DER header (tag and length octets) at the start of `der`.
fn der_header_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    Some(if first < 0x80 { 2 } else { 2 + usize::from(first & 0x7f) })
}

/// Re-issues `cert_der` with `subject` in place of its subject, signed again by `ca_key`
/// (ECDSA P-256, the only kind of CA key strongroom makes). Everything else — serial, validity,
/// key, extensions — stays as rcgen encoded it.
fn with_subject(cert_der: &[u8], subject: &[u8], ca_key: &KeyPair) -> Result<Vec<u8>, PkiError> {
    let invalid = || PkiError::Invalid { path: CA_KEY.into(), what: "CA key for multi-group certificates" };
    if ca_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(invalid());
    }
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|_| PkiError::Usage("cannot re-encode the client certificate".into()))?;
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let old_subject = cert.tbs_certificate.subject.as_raw();
    let start = (old_subject.as_ptr() as usize).wrapping_sub(tbs.as_ptr() as usize);
    let header = der_header_len(tbs).filter(|h| *h <= start && start + old_subject.len() <= tbs.len());
    let Some(header) = header else {
        return Err(PkiError::Usage("cannot re-encode the client certificate".into()));
    };
    let new_tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs[header..start]);
            w.next().write_der(subject);
            w.next().write_der(&tbs[start + old_subject.len()..]);
        })
    });
    let rng = ring::rand::SystemRandom::new();
    let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &ca_key.serialize_der(),
        &rng,
    )
    .map_err(|_| invalid())?;
    let signature = signer.sign(&rng, &new_tbs).map_err(|_| invalid())?;
    let signature = signature.as_ref();
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&new_tbs);
            w.next().write_sequence(|w| {
                // ecdsa-with-SHA256
                w.next().write_oid(&yasna::models::ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 4, 3, 2]));
            });
            w.next().write_bitvec_bytes(signature, signature.len() * 8);
        })
    }))
}

fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn hostname() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, UnixTime};

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut pem.as_bytes()).next().expect("a certificate").expect("PEM")
    }

    #[test]
    fn client_certificates_carry_every_group_and_verify_against_the_ca() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = ServerPki::load_or_create(dir.path(), &[]).expect("pki");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&pki.ca_cert_pem)).expect("CA");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .expect("verifier");
        for groups in [&[][..], &["devs"][..], &["devs", "qa", "system:masters"][..]] {
            let (cert, _) = pki.issue_client("alice", groups, Duration::from_secs(3600)).expect("issue");
            let cert = der(&cert);
            verifier.verify_client_cert(&cert, &[], UnixTime::now()).expect("chains to the CA with clientAuth");
            let user = crate::authn::user_from_certificate(&cert).expect("a user");
            let mut want: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            want.push("system:authenticated".into());
            assert_eq!((user.name.as_str(), user.groups), ("alice", want));
        }
    }
}
