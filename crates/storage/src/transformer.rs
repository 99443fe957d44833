//! The value transformer: every value passes through here on its way to and from a backend.
//!
//! The on-disk format is kube-apiserver's encryption at rest, byte for byte, configured by
//! Kubernetes' own `EncryptionConfiguration` (apiserver.config.k8s.io/v1), so a store written by
//! one can be read by the other with the same configuration file. See
//! `docs/design/encryption-envelope.md` for the format and for key rotation.
//!
//! | provider    | stored value                                                                |
//! |-------------|-----------------------------------------------------------------------------|
//! | `aesgcm`    | `k8s:enc:aesgcm:v1:<key>:` · 12-byte nonce · AES-GCM ciphertext · 16-byte tag |
//! | `aescbc`    | `k8s:enc:aescbc:v1:<key>:` · 16-byte IV · AES-CBC ciphertext (PKCS#7)        |
//! | `secretbox` | `k8s:enc:secretbox:v1:<key>:` · 24-byte nonce · 16-byte tag · ciphertext     |
//! | `identity`  | the plaintext, unchanged                                                    |
//!
//! `aesgcm` authenticates the storage key (`/registry/secrets/<ns>/<name>`) as additional data,
//! so a value copied under another key does not decrypt; `aescbc` and `secretbox` have no such
//! binding in Kubernetes' format and therefore none here.
//!
//! This module owns key material and must not hand it out: keys live in zeroizing buffers, never
//! appear in `Debug` output or errors, and errors never carry plaintext. It knows nothing about
//! HTTP, identities or object kinds beyond the resource name used to pick a transformer.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{AesGcm, Nonce as GcmNonce, Tag as GcmTag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use rand::RngCore;
use rand::rngs::OsRng;
use serde::Deserialize;
use strongroom_api::SecretBytes;
use zeroize::Zeroizing;

/// The name of the generated configuration inside the data directory.
pub const DEFAULT_CONFIG_FILE: &str = "encryption-config.yaml";

/// Every encrypted value starts with this; Kubernetes reserves it, and the identity provider
/// refuses to pass such a value through as plaintext.
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
const CBC_IV_LEN: usize = 16;
const CBC_BLOCK_LEN: usize = 16;
const SECRETBOX_NONCE_LEN: usize = 24;
const SECRETBOX_TAG_LEN: usize = 16;

/// Errors of the value transformer and of its configuration.
///
/// Invariant: no variant carries key material or plaintext. Decryption failures of every kind
/// (short input, bad tag, bad padding) are the one `Decrypt` variant with one message, so an
/// `aescbc` padding failure cannot be told apart from any other failure (no padding oracle).
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("could not read encryption configuration {}: {source}", path.display())]
    ReadConfig { path: PathBuf, source: io::Error },
    #[error("invalid encryption configuration{}: {reason}", in_file(path))]
    InvalidConfig { path: Option<PathBuf>, reason: String },
    #[error("could not create the default encryption configuration {}: {source}", path.display())]
    WriteDefault { path: PathBuf, source: io::Error },
    #[error("could not encrypt the value for {storage_key} with key {key_name:?} of provider {provider}")]
    Encrypt { storage_key: String, provider: &'static str, key_name: String },
    #[error(
        "could not decrypt the value at {storage_key} with key {key_name:?} of provider {provider}: wrong key or corrupt data"
    )]
    Decrypt { storage_key: String, provider: &'static str, key_name: String },
    #[error(
        "no configured provider can read the value at {storage_key} (written by {written_by}); the encryption configuration for this resource does not list it"
    )]
    NoMatchingProvider { storage_key: String, written_by: String },
}

fn in_file(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

fn invalid(reason: impl Into<String>) -> TransformError {
    TransformError::InvalidConfig { path: None, reason: reason.into() }
}

// ---------------------------------------------------------------------------------------------
// Providers and transformers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Provider {
    Identity,
    AesGcm,
    AesCbc,
    Secretbox,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Identity => "identity",
            Provider::AesGcm => "aesgcm",
            Provider::AesCbc => "aescbc",
            Provider::Secretbox => "secretbox",
        }
    }
}

/// One key of one provider (or the identity provider): what a stored prefix selects.
///
/// Invariant: `prefix` is `k8s:enc:<provider>:v1:<key_name>:` (empty for identity) and `key`
/// has a length the provider accepts (16, 24 or 32 bytes for AES, 32 for secretbox, 0 for
/// identity). Cipher instances are built per call from `key`, so the only long-lived copy of
/// key material is this zeroizing buffer.
struct Entry {
    provider: Provider,
    key_name: String,
    prefix: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            Provider::Identity => f.write_str("identity"),
            p => write!(f, "{}:{} (<redacted {}-byte key>)", p.name(), self.key_name, self.key.len()),
        }
    }
}

impl Entry {
    fn identity() -> Self {
        Entry {
            provider: Provider::Identity,
            key_name: String::new(),
            prefix: Vec::new(),
            key: Zeroizing::new(Vec::new()),
        }
    }

    fn describe(&self) -> String {
        match self.provider {
            Provider::Identity => "identity".to_owned(),
            p => format!("{}:{}", p.name(), self.key_name),
        }
    }

    fn encrypt_error(&self, storage_key: &str) -> TransformError {
        TransformError::Encrypt {
            storage_key: storage_key.to_owned(),
            provider: self.provider.name(),
            key_name: self.key_name.clone(),
        }
    }

    fn encrypt(&self, plaintext: &[u8], storage_key: &str) -> Result<Vec<u8>, TransformError> {
        let fail = || self.encrypt_error(storage_key);
        let p = self.prefix.len();
        match self.provider {
            Provider::Identity => Ok(plaintext.to_vec()),
            Provider::AesGcm => {
                // prefix · nonce · ciphertext · tag, encrypted in place so the plaintext copy
                // in the output buffer is overwritten rather than left behind.
                let mut out = Vec::with_capacity(p + GCM_NONCE_LEN + plaintext.len() + GCM_TAG_LEN);
                out.extend_from_slice(&self.prefix);
                out.resize(p + GCM_NONCE_LEN, 0);
                OsRng.try_fill_bytes(&mut out[p..]).map_err(|_| fail())?;
                out.extend_from_slice(plaintext);
                let (head, body) = out.split_at_mut(p + GCM_NONCE_LEN);
                let nonce = GcmNonce::<U12>::clone_from_slice(&head[p..]);
                let tag = gcm_encrypt(&self.key, &nonce, storage_key.as_bytes(), body).map_err(|()| fail())?;
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Provider::AesCbc => {
                let pad = CBC_BLOCK_LEN - plaintext.len() % CBC_BLOCK_LEN;
                let mut out = Vec::with_capacity(p + CBC_IV_LEN + plaintext.len() + pad);
                out.extend_from_slice(&self.prefix);
                out.resize(p + CBC_IV_LEN, 0);
                OsRng.try_fill_bytes(&mut out[p..]).map_err(|_| fail())?;
                out.extend_from_slice(plaintext);
                out.resize(p + CBC_IV_LEN + plaintext.len() + pad, 0);
                let (head, body) = out.split_at_mut(p + CBC_IV_LEN);
                cbc_encrypt(&self.key, &head[p..], body, plaintext.len()).map_err(|()| fail())?;
                Ok(out)
            }
            Provider::Secretbox => {
                // prefix · nonce · tag · ciphertext (NaCl's secretbox layout, as Go's Seal writes it).
                let mut out = Vec::with_capacity(p + SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN + plaintext.len());
                out.extend_from_slice(&self.prefix);
                out.resize(p + SECRETBOX_NONCE_LEN, 0);
                OsRng.try_fill_bytes(&mut out[p..]).map_err(|_| fail())?;
                out.resize(p + SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN, 0);
                out.extend_from_slice(plaintext);
                let (head, body) = out.split_at_mut(p + SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN);
                let cipher = XSalsa20Poly1305::new_from_slice(&self.key).map_err(|_| fail())?;
                let nonce = crypto_secretbox::Nonce::clone_from_slice(&head[p..p + SECRETBOX_NONCE_LEN]);
                let tag = cipher.encrypt_in_place_detached(&nonce, b"", body).map_err(|_| fail())?;
                head[p + SECRETBOX_NONCE_LEN..].copy_from_slice(&tag);
                Ok(out)
            }
        }
    }

    /// Decrypts `payload` (the stored value without this entry's prefix). Every failure is the
    /// same unit error: callers turn it into the one `Decrypt` message.
    fn decrypt(&self, payload: &[u8], storage_key: &str) -> Result<SecretBytes, ()> {
        match self.provider {
            Provider::Identity => Ok(SecretBytes::new(payload.to_vec())),
            Provider::AesGcm => {
                if payload.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
                    return Err(());
                }
                let (nonce, rest) = payload.split_at(GCM_NONCE_LEN);
                let (ciphertext, tag) = rest.split_at(rest.len() - GCM_TAG_LEN);
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                gcm_decrypt(
                    &self.key,
                    GcmNonce::<U12>::from_slice(nonce),
                    storage_key.as_bytes(),
                    &mut buf,
                    GcmTag::from_slice(tag),
                )?;
                Ok(SecretBytes::new(std::mem::take(&mut *buf)))
            }
            Provider::AesCbc => {
                if payload.len() < CBC_IV_LEN + CBC_BLOCK_LEN
                    || !(payload.len() - CBC_IV_LEN).is_multiple_of(CBC_BLOCK_LEN)
                {
                    return Err(());
                }
                let (iv, ciphertext) = payload.split_at(CBC_IV_LEN);
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                let len = cbc_decrypt(&self.key, iv, &mut buf)?;
                buf.truncate(len);
                Ok(SecretBytes::new(std::mem::take(&mut *buf)))
            }
            Provider::Secretbox => {
                if payload.len() < SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN {
                    return Err(());
                }
                let (nonce, rest) = payload.split_at(SECRETBOX_NONCE_LEN);
                let (tag, ciphertext) = rest.split_at(SECRETBOX_TAG_LEN);
                let cipher = XSalsa20Poly1305::new_from_slice(&self.key).map_err(|_| ())?;
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                cipher
                    .decrypt_in_place_detached(
                        crypto_secretbox::Nonce::from_slice(nonce),
                        b"",
                        &mut buf,
                        crypto_secretbox::Tag::from_slice(tag),
                    )
                    .map_err(|_| ())?;
                Ok(SecretBytes::new(std::mem::take(&mut *buf)))
            }
        }
    }
}

fn gcm_encrypt(key: &[u8], nonce: &GcmNonce<U12>, aad: &[u8], buf: &mut [u8]) -> Result<GcmTag, ()> {
    let tag = match key.len() {
        16 => {
            AesGcm::<aes::Aes128, U12>::new_from_slice(key).map_err(|_| ())?.encrypt_in_place_detached(nonce, aad, buf)
        }
        24 => {
            AesGcm::<aes::Aes192, U12>::new_from_slice(key).map_err(|_| ())?.encrypt_in_place_detached(nonce, aad, buf)
        }
        32 => {
            AesGcm::<aes::Aes256, U12>::new_from_slice(key).map_err(|_| ())?.encrypt_in_place_detached(nonce, aad, buf)
        }
        _ => return Err(()),
    };
    tag.map_err(|_| ())
}

fn gcm_decrypt(key: &[u8], nonce: &GcmNonce<U12>, aad: &[u8], buf: &mut [u8], tag: &GcmTag) -> Result<(), ()> {
    let result = match key.len() {
        16 => AesGcm::<aes::Aes128, U12>::new_from_slice(key)
            .map_err(|_| ())?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        24 => AesGcm::<aes::Aes192, U12>::new_from_slice(key)
            .map_err(|_| ())?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        32 => AesGcm::<aes::Aes256, U12>::new_from_slice(key)
            .map_err(|_| ())?
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        _ => return Err(()),
    };
    result.map_err(|_| ())
}

/// Encrypts `buf[..msg_len]` in place, padding it with PKCS#7 into the rest of `buf`.
fn cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8], msg_len: usize) -> Result<(), ()> {
    let written = match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| ())?
            .encrypt_padded_mut::<Pkcs7>(buf, msg_len)
            .map(<[u8]>::len),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|_| ())?
            .encrypt_padded_mut::<Pkcs7>(buf, msg_len)
            .map(<[u8]>::len),
        32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| ())?
            .encrypt_padded_mut::<Pkcs7>(buf, msg_len)
            .map(<[u8]>::len),
        _ => return Err(()),
    };
    match written {
        Ok(n) if n == buf.len() => Ok(()),
        _ => Err(()),
    }
}

/// Decrypts `buf` in place and returns the length of the plaintext without its padding.
fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, ()> {
    let result = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| ())?
            .decrypt_padded_mut::<Pkcs7>(buf)
            .map(<[u8]>::len),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|_| ())?
            .decrypt_padded_mut::<Pkcs7>(buf)
            .map(<[u8]>::len),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| ())?
            .decrypt_padded_mut::<Pkcs7>(buf)
            .map(<[u8]>::len),
        _ => return Err(()),
    };
    result.map_err(|_| ())
}

/// The ordered providers (and their keys) configured for one resource.
///
/// Invariant: `entries` is never empty; `entries[0]` writes, and every entry whose prefix
/// matches is tried in order on reads, exactly as kube-apiserver's nested prefix transformers
/// behave (a read by anything but the first provider's first key is stale).
#[derive(Clone)]
pub struct Transformer {
    entries: Vec<Arc<Entry>>,
}

impl fmt::Debug for Transformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter()).finish()
    }
}

impl Transformer {
    fn identity() -> Self {
        Transformer { entries: vec![Arc::new(Entry::identity())] }
    }

    /// Encrypts `plaintext` with the first provider's first key; `aesgcm` binds the result to
    /// `storage_key`.
    pub fn transform_to_storage(&self, plaintext: &[u8], storage_key: &str) -> Result<Vec<u8>, TransformError> {
        self.entries[0].encrypt(plaintext, storage_key)
    }

    /// Returns the plaintext and whether the value is stale (not written by the current first
    /// provider/key), which re-encryption uses.
    pub fn transform_from_storage(
        &self,
        stored: &[u8],
        storage_key: &str,
    ) -> Result<(SecretBytes, bool), TransformError> {
        let mut first_failure: Option<&Entry> = None;
        for (i, entry) in self.entries.iter().enumerate() {
            if !stored.starts_with(&entry.prefix) {
                continue;
            }
            if entry.provider == Provider::Identity && stored.starts_with(ENCRYPTED_PREFIX) {
                // Encrypted data is never passed through as plaintext; a later provider may read it.
                continue;
            }
            match entry.decrypt(&stored[entry.prefix.len()..], storage_key) {
                Ok(plaintext) => return Ok((plaintext, i != 0)),
                Err(()) => {
                    first_failure.get_or_insert(entry);
                }
            }
        }
        Err(match first_failure {
            Some(entry) => TransformError::Decrypt {
                storage_key: storage_key.to_owned(),
                provider: entry.provider.name(),
                key_name: entry.key_name.clone(),
            },
            None => TransformError::NoMatchingProvider {
                storage_key: storage_key.to_owned(),
                written_by: describe_stored(stored),
            },
        })
    }

    /// Which provider/key wrote `stored` ("aesgcm:key1", "identity"), for re-encryption reports;
    /// never key material. It reads the prefix only, so it also names keys that are no longer
    /// configured.
    pub fn describe(&self, stored: &[u8]) -> String {
        describe_stored(stored)
    }

    /// The provider and key that new writes use ("aesgcm:key1", "identity").
    pub fn writer(&self) -> String {
        self.entries[0].describe()
    }

    /// True if new writes are stored in plaintext (identity is the first provider).
    pub fn writes_plaintext(&self) -> bool {
        self.entries[0].provider == Provider::Identity
    }
}

/// Names the writer of a stored value from its prefix alone: `<provider>:<key>` for the v1
/// formats, `<provider>:<version>:<key>` for others (KMS v2), `identity` for unprefixed data.
/// Parts that are not short printable names are shown as `unknown`, so a corrupt value never
/// puts arbitrary bytes into a report.
fn describe_stored(stored: &[u8]) -> String {
    let Some(rest) = stored.strip_prefix(ENCRYPTED_PREFIX) else {
        return "identity".to_owned();
    };
    let mut parts = rest.splitn(4, |&b| b == b':');
    let (Some(provider), Some(version), Some(key), Some(_payload)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return "unknown (malformed k8s:enc: prefix)".to_owned();
    };
    let printable = |b: &[u8]| -> String {
        if !b.is_empty() && b.len() <= 64 && b.iter().all(|c| c.is_ascii_graphic()) {
            String::from_utf8_lossy(b).into_owned()
        } else {
            "unknown".to_owned()
        }
    };
    if version == b"v1" {
        format!("{}:{}", printable(provider), printable(key))
    } else {
        format!("{}:{}:{}", printable(provider), printable(version), printable(key))
    }
}

// ---------------------------------------------------------------------------------------------
// The whole configuration
// ---------------------------------------------------------------------------------------------

/// The transformers of a whole `EncryptionConfiguration`, looked up per resource.
///
/// Invariant: `rules` hold parsed `(group, resource)` patterns from the configuration (`*` as a
/// wildcard), none masked by an earlier wildcard; lookup is exact, then `*.<group>`, then `*.*`,
/// and a resource no rule matches is stored with identity, as kube-apiserver does.
pub struct Transformers {
    rules: Vec<Rule>,
    identity: Transformer,
}

struct Rule {
    group: String,
    resource: String,
    transformer: Transformer,
}

impl fmt::Debug for Transformers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for rule in &self.rules {
            map.entry(&group_resource_string(&rule.group, &rule.resource), &rule.transformer);
        }
        map.finish()
    }
}

/// Splits `resource.group` at the first dot, as apimachinery's `ParseGroupResource` does:
/// `secrets` is the core group's `secrets`, `*.` every core resource, `*.*` everything.
fn parse_group_resource(s: &str) -> (&str, &str) {
    match s.split_once('.') {
        Some((resource, group)) => (group, resource),
        None => ("", s),
    }
}

fn group_resource_string(group: &str, resource: &str) -> String {
    if group.is_empty() {
        if resource == "*" { "*.".to_owned() } else { resource.to_owned() }
    } else {
        format!("{resource}.{group}")
    }
}

impl Transformers {
    /// Reads a YAML or JSON `EncryptionConfiguration`.
    pub fn from_config_file(path: &Path) -> Result<Self, TransformError> {
        let bytes = Zeroizing::new(
            fs::read(path).map_err(|source| TransformError::ReadConfig { path: path.to_owned(), source })?,
        );
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:04o}"),
                    "the encryption configuration holds keys but is readable by other users; chmod 600 it"
                );
            }
        }
        Self::from_config_bytes(&bytes).map_err(|err| match err {
            TransformError::InvalidConfig { path: None, reason } => {
                TransformError::InvalidConfig { path: Some(path.to_owned()), reason }
            }
            other => other,
        })
    }

    /// Parses a YAML or JSON `EncryptionConfiguration` (apiserver.config.k8s.io/v1).
    pub fn from_config_bytes(bytes: &[u8]) -> Result<Self, TransformError> {
        let config = parse_config(bytes)?;
        build(config)
    }

    /// The zero-configuration default: `DIR/encryption-config.yaml` holding one generated
    /// 32-byte aesgcm key named `key-<YYYYMMDD>` (the UTC date it was generated) for resources
    /// `["*.*"]`, created with mode 0600 on first start and read back on later starts.
    ///
    /// The file is written under a temporary name, fsynced, and hard-linked into place, so a
    /// crash never leaves a half-written configuration and two racing starts agree on one key.
    pub fn load_or_generate_default(data_dir: &Path) -> Result<Self, TransformError> {
        let path = data_dir.join(DEFAULT_CONFIG_FILE);
        match fs::metadata(&path) {
            Ok(_) => return Self::from_config_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(TransformError::ReadConfig { path, source }),
        }
        let write_err = |source: io::Error| TransformError::WriteDefault { path: path.clone(), source };

        if !data_dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(write_err)?;
            // The new directory's own entry must be durable too, or the key file can vanish
            // with it after a crash.
            if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(write_err)?;
            }
        }
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.try_fill_bytes(&mut key[..]).map_err(|e| write_err(io::Error::other(e)))?;
        let secret = Zeroizing::new(BASE64.encode(&key[..]));
        let (y, m, d) = civil_date(SystemTime::now().duration_since(UNIX_EPOCH).map(|t| t.as_secs()).unwrap_or(0));
        let key_name = format!("key-{y:04}{m:02}{d:02}");
        let contents = Zeroizing::new(default_config_yaml(&key_name, &secret));

        let tmp = data_dir.join(format!(".{DEFAULT_CONFIG_FILE}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let published = (|| {
            let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            // The mode passed to open is filtered by the umask; set it exactly.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()?;
            drop(file);
            fs::hard_link(&tmp, &path)
        })();
        let _ = fs::remove_file(&tmp);
        match published {
            Ok(()) => {}
            // Another process published its key first: use that one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Self::from_config_file(&path);
            }
            Err(e) => return Err(write_err(e)),
        }
        fs::File::open(data_dir).and_then(|dir| dir.sync_all()).map_err(write_err)?;
        tracing::info!(
            path = %path.display(),
            key = %key_name,
            "generated an encryption configuration with a new aesgcm key; back it up: without it the data cannot be read"
        );
        Self::from_config_bytes(contents.as_bytes())
    }

    /// The transformer for `resource`: a core-group resource name (`secrets`, `namespaces`) or
    /// `resource.group` for other groups (`roles.rbac.authorization.k8s.io`).
    pub fn for_resource(&self, resource: &str) -> &Transformer {
        let (group, resource) = parse_group_resource(resource);
        let find = |g: &str, r: &str| self.rules.iter().find(|rule| rule.group == g && rule.resource == r);
        find(group, resource)
            .or_else(|| find(group, "*"))
            .or_else(|| find("*", "*"))
            .map_or(&self.identity, |rule| &rule.transformer)
    }

    /// True if `resource` would be written in plaintext (identity first) — the server refuses to
    /// start for "secrets" unless --allow-plaintext-at-rest.
    pub fn writes_plaintext(&self, resource: &str) -> bool {
        self.for_resource(resource).writes_plaintext()
    }
}

fn default_config_yaml(key_name: &str, secret: &str) -> String {
    format!(
        "# Generated by strongroom on first start: the key that encrypts everything in this directory.\n\
         # Keep a copy somewhere safe; without it the data cannot be read. This is a Kubernetes\n\
         # EncryptionConfiguration; to rotate, see docs/design/encryption-envelope.md.\n\
         apiVersion: apiserver.config.k8s.io/v1\n\
         kind: EncryptionConfiguration\n\
         resources:\n\
         \x20 - resources:\n\
         \x20     - \"*.*\"\n\
         \x20   providers:\n\
         \x20     - aesgcm:\n\
         \x20         keys:\n\
         \x20           - name: {key_name}\n\
         \x20             secret: {secret}\n"
    )
}

/// Converts seconds since the Unix epoch to a UTC (year, month, day) (H. Hinnant's algorithm).
fn civil_date(unix_secs: u64) -> (i64, u32, u32) {
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// EncryptionConfiguration parsing and validation
// ---------------------------------------------------------------------------------------------

/// `EncryptionConfiguration`, decoded strictly (unknown fields are errors, as kube-apiserver's
/// strict decoder makes them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigFile {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceConfig {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderConfig {
    aesgcm: Option<KeysConfig>,
    aescbc: Option<KeysConfig>,
    secretbox: Option<KeysConfig>,
    identity: Option<IdentityConfig>,
    kms: Option<KmsConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: ConfigSecret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityConfig {}

/// Only the name is read, to say which KMS provider is not supported.
#[derive(Deserialize)]
struct KmsConfig {
    #[serde(default)]
    name: String,
}

/// A base64 key as written in the file, held in a zeroizing buffer.
///
/// Invariant: deserializing never puts the value into an error message (numbers, booleans and
/// other non-strings are refused without echoing them), and `Debug` is redacted.
#[derive(Default)]
struct ConfigSecret(Zeroizing<String>);

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfigSecret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for ConfigSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        const NOT_A_STRING: &str = "secret must be a base64-encoded string";
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64-encoded string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConfigSecret, E> {
                Ok(ConfigSecret(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ConfigSecret, E> {
                Ok(ConfigSecret(Zeroizing::new(v)))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<ConfigSecret, E> {
                Err(E::custom(NOT_A_STRING))
            }
        }
        // `deserialize_any`, so that a number or boolean reaches the visitor (and its redacted
        // error) instead of the parser's own error, which would print the value.
        deserializer.deserialize_any(Visitor)
    }
}

/// Replaces every double-quoted string in a parser message with `"<redacted>"`: serde quotes
/// the offending value (`invalid type: string "…"`), which might be a key. Field names, which
/// serde puts in backticks, stay.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => {}
            }
        }
        out.push_str("\"<redacted>\"");
    }
    out
}

fn parse_config(bytes: &[u8]) -> Result<ConfigFile, TransformError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("the file is empty"));
    }
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let config: ConfigFile = if is_json {
        serde_json::from_slice(bytes).map_err(|e| invalid(redact_quoted(&e.to_string())))?
    } else {
        serde_yaml_ng::from_slice(bytes).map_err(|e| invalid(redact_quoted(&e.to_string())))?
    };
    match (config.api_version.as_deref(), config.kind.as_deref()) {
        (Some("apiserver.config.k8s.io/v1"), Some("EncryptionConfiguration")) => {}
        // The pre-1.13 form (`kind: EncryptionConfig`, `apiVersion: v1`) has the same fields.
        (Some("v1"), Some("EncryptionConfiguration" | "EncryptionConfig")) => {}
        (api_version, kind) => {
            return Err(invalid(format!(
                "expected apiVersion apiserver.config.k8s.io/v1 and kind EncryptionConfiguration, got apiVersion {:?} and kind {:?}",
                api_version.unwrap_or(""),
                kind.unwrap_or("")
            )));
        }
    }
    Ok(config)
}

fn build(config: ConfigFile) -> Result<Transformers, TransformError> {
    if config.resources.is_empty() {
        return Err(invalid("resources: at least one entry is required"));
    }
    let mut rules: Vec<Rule> = Vec::new();
    for (i, rc) in config.resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        if rc.resources.is_empty() {
            return Err(invalid(format!("{at}.resources: at least one resource is required")));
        }
        if rc.providers.is_empty() {
            return Err(invalid(format!("{at}.providers: at least one provider is required")));
        }
        validate_resource_names(&rc.resources, &at)?;
        validate_resource_overlap(&rc.resources, &at)?;

        let mut entries: Vec<Arc<Entry>> = Vec::new();
        for (j, provider) in rc.providers.iter().enumerate() {
            entries.extend(provider_entries(provider, &format!("{at}.providers[{j}]"))?);
        }

        for name in &rc.resources {
            let (group, resource) = parse_group_resource(name);
            // A rule after a wildcard that already covers it would never apply (kube-apiserver
            // refuses such a file for the same reason).
            for (mg, mr) in [(group, "*"), ("*", "*")] {
                if rules.iter().any(|r| r.group == mg && r.resource == mr) {
                    return Err(invalid(format!(
                        "{at}.resources: resource {:?} is masked by earlier rule {:?}",
                        group_resource_string(group, resource),
                        group_resource_string(mg, mr)
                    )));
                }
            }
            match rules.iter_mut().find(|r| r.group == group && r.resource == resource) {
                // Listed again in a later entry: its providers are tried after the earlier ones.
                Some(rule) => rule.transformer.entries.extend(entries.iter().cloned()),
                None => rules.push(Rule {
                    group: group.to_owned(),
                    resource: resource.to_owned(),
                    transformer: Transformer { entries: entries.clone() },
                }),
            }
        }
    }
    Ok(Transformers { rules, identity: Transformer::identity() })
}

fn validate_resource_names(resources: &[String], at: &str) -> Result<(), TransformError> {
    for (k, name) in resources.iter().enumerate() {
        let (group, resource) = parse_group_resource(name);
        let problem = if name.is_empty() || resource.is_empty() {
            Some("resource name must not be empty")
        } else if name.to_lowercase() != *name {
            Some("resource name should not contain capital letters")
        } else if name == "*" {
            Some("use '*.' to encrypt all the resources from core API group or '*.*' to encrypt all resources")
        } else if matches!(name.as_str(), "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations") {
            Some("resources which do not have REST API/s cannot be encrypted")
        } else if group == "*" && resource != "*" {
            Some("encrypting the same resource across groups is not supported")
        } else if group == "events.k8s.io" {
            Some("'*.events.k8s.io' objects are stored using the 'events' API group; use 'events' instead")
        } else if group == "extensions" {
            Some("'extensions' group has been removed and cannot be used for encryption")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(invalid(format!("{at}.resources[{k}]: {problem}, got {name:?}")));
        }
    }
    Ok(())
}

fn validate_resource_overlap(resources: &[String], at: &str) -> Result<(), TransformError> {
    let parsed: Vec<(&str, &str)> = resources.iter().map(|r| parse_group_resource(r)).collect();
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if a == b {
                return Err(invalid(format!(
                    "{at}.resources: the same resource cannot be specified multiple times, got {:?} twice",
                    resources[i]
                )));
            }
            if *a == ("*", "*") || (a.0 == b.0 && (a.1 == "*" || b.1 == "*")) {
                return Err(invalid(format!(
                    "{at}.resources: using overlapping resources such as {:?} and {:?} in the same list is not allowed as they will be masked",
                    resources[i], resources[j]
                )));
            }
        }
    }
    Ok(())
}

fn provider_entries(provider: &ProviderConfig, at: &str) -> Result<Vec<Arc<Entry>>, TransformError> {
    let kinds = [
        provider.aesgcm.is_some(),
        provider.aescbc.is_some(),
        provider.secretbox.is_some(),
        provider.identity.is_some(),
        provider.kms.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => {
            return Err(invalid(format!(
                "{at}: provider does not contain any of the expected providers: aesgcm, aescbc, secretbox, identity"
            )));
        }
        1 => {}
        _ => {
            return Err(invalid(format!(
                "{at}: more than one provider specified in a single element, should split into different list elements"
            )));
        }
    }
    if let Some(kms) = &provider.kms {
        return Err(invalid(format!(
            "{at}: kms provider {:?} is not supported yet; use aesgcm, aescbc or secretbox",
            kms.name
        )));
    }
    if provider.identity.is_some() {
        return Ok(vec![Arc::new(Entry::identity())]);
    }
    let (kind, keys, sizes, sizes_text) = if let Some(c) = &provider.aesgcm {
        (Provider::AesGcm, c, &[16, 24, 32][..], "16, 24 or 32")
    } else if let Some(c) = &provider.aescbc {
        (Provider::AesCbc, c, &[16, 24, 32][..], "16, 24 or 32")
    } else if let Some(c) = &provider.secretbox {
        (Provider::Secretbox, c, &[32][..], "32")
    } else {
        unreachable!("exactly one provider kind is set")
    };
    let name = kind.name();
    if keys.keys.is_empty() {
        return Err(invalid(format!("{at}.{name}.keys: provider {name} needs at least one key")));
    }
    let mut entries = Vec::with_capacity(keys.keys.len());
    for (k, key) in keys.keys.iter().enumerate() {
        let at = format!("{at}.{name}.keys[{k}]");
        if key.name.is_empty() {
            return Err(invalid(format!("{at}: a key of provider {name} has no name")));
        }
        let key_name = &key.name;
        if key.secret.0.is_empty() {
            return Err(invalid(format!("{at}: key {key_name:?} of provider {name} has no secret")));
        }
        // The decoder's own error would quote the offending byte of the secret; say only what is wrong.
        let material = BASE64.decode(key.secret.0.as_bytes()).map(Zeroizing::new).map_err(|_| {
            invalid(format!("{at}: secret for key {key_name:?} of provider {name} is not valid base64"))
        })?;
        if !sizes.contains(&material.len()) {
            return Err(invalid(format!(
                "secret for key {key_name:?} of provider {name} must be {sizes_text} bytes, got {} (at {at})",
                material.len()
            )));
        }
        entries.push(Arc::new(Entry {
            provider: kind,
            key_name: key_name.clone(),
            prefix: format!("k8s:enc:{name}:v1:{key_name}:").into_bytes(),
            key: material,
        }));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY16: &str = "c2VjcmV0IGlzIHNlY3VyZQ=="; // "secret is secure", from the Kubernetes docs
    const KEY32_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
    const KEY32_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // bytes 32..64
    const KEY32_SECRETBOX: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="; // from the Kubernetes docs
    const SK: &str = "/registry/secrets/default/golden";

    fn config(providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
        )
    }

    fn aes(provider: &str, keys: &[(&str, &str)]) -> String {
        let mut s = format!("      - {provider}:\n          keys:\n");
        for (name, secret) in keys {
            s.push_str(&format!("            - name: {name}\n              secret: {secret}\n"));
        }
        s
    }

    const IDENTITY: &str = "      - identity: {}\n";

    fn transformers(providers: &str) -> Transformers {
        Transformers::from_config_bytes(config(providers).as_bytes()).unwrap()
    }

    fn config_error(yaml: &str) -> String {
        Transformers::from_config_bytes(yaml.as_bytes()).unwrap_err().to_string()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const PLAINTEXT: &[u8] = br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"golden","namespace":"default"},"data":{"password":"aHVudGVyMg=="}}
"#;

    // Golden ciphertexts, computed independently of this code: AES-GCM and AES-CBC with Python's
    // `cryptography` (CBC cross-checked with `openssl enc -aes-256-cbc`), secretbox with libsodium
    // through PyNaCl; fixed nonces/IVs; AAD = SK for AES-GCM. Generator (abridged):
    //   AESGCM(b"secret is secure").encrypt(bytes(range(12)), pt, SK)
    //   AESGCM(bytes(range(32))).encrypt(bytes(range(100, 112)), pt, SK)
    //   AES-256-CBC key bytes(range(32, 64)), IV bytes(range(16)), PKCS#7
    //   nacl.secret.SecretBox(b"abcdefghijklmnopqrstuvwxyz123456").encrypt(pt, bytes(range(24)))
    const GOLDEN_AESGCM_128: &str = "6b38733a656e633a61657367636d3a76313a6b6579313a000102030405060708090a0b99d1c38df5ce148d37f40f9e1aba3d695435c49ab4bdd16f411ac829ebbce1030c55377f868c37da47a7e8334161448114ea8f8bc77109c2278ee84b68bfdcb7b8c85846b8d8bcdb74cfd90960a9d2696cfcc47c2b23b1104d611021d7f863cf06196c3c221d917d4bee3da868265cb82f612b2e64c99083977d61f81ff3407ae279f18c34dc92dc68bf";
    const GOLDEN_AESGCM_256: &str = "6b38733a656e633a61657367636d3a76313a6b6579323a6465666768696a6b6c6d6e6f3339b50f178d74a41c313a8ba8001edf6ee0677ae23a9600d4b8c326d999873ea5cb6ce22177ef6599920c5edf78b1ed753af5820270634f959dc8b381a389a866edb66ba53b5a66ee4dd76175ef578711146b16dae9afa2be8557e641686c21ef02e109043fdc5c89d8bf8df478dcaf7452cd78fc449b49cf73b0d796536dcfd0ed0741dc30ddb97613";
    const GOLDEN_AESCBC_256: &str = "6b38733a656e633a6165736362633a76313a6b6579313a000102030405060708090a0b0c0d0e0f8ea8efcf53bdafed4c52ac7ce0817ca2bedac28a55c23a34400132de7330da7d547263123b5a9dea0c028a78ea6d826e91cd5019472e05ac2340e38a57c3588d9eadce1594dfc50f4d8833522bf7c71c27f9042144b645a86c2c448702801ab133b49f5b01dc4c530f4f08eb204b841ec6d63cb01cc758fcc56bf82ebfa335eb";
    const GOLDEN_SECRETBOX: &str = "6b38733a656e633a736563726574626f783a76313a6b6579313a000102030405060708090a0b0c0d0e0f10111213141516175b60be1950e90f391b414fba6bbdaab56ed7e7c86f074ce171ccdc273dfec56f628801235930b51828681fb6488f80c29a99ddad801d452195cc5b5c6e48c7d447b77c93c81a0d80f4959ba97e2f2b8f246101c5e3fa6ee1e15d6246255d55af5f81c5de3d841ad845285b0556617143c01f18955e001c553768c07b58302ff5906bdb8de2623dae56f6";

    #[test]
    fn golden_fixtures_from_kubernetes_formats_decrypt() {
        let t = transformers(&format!(
            "{}{}{}",
            aes("aesgcm", &[("key1", KEY16), ("key2", KEY32_A)]),
            aes("aescbc", &[("key1", KEY32_B)]),
            aes("secretbox", &[("key1", KEY32_SECRETBOX)]),
        ));
        let t = t.for_resource("secrets");
        for (golden, writer, stale) in [
            (GOLDEN_AESGCM_128, "aesgcm:key1", false),
            (GOLDEN_AESGCM_256, "aesgcm:key2", true),
            (GOLDEN_AESCBC_256, "aescbc:key1", true),
            (GOLDEN_SECRETBOX, "secretbox:key1", true),
        ] {
            let stored = hex(golden);
            let (plain, was_stale) = t.transform_from_storage(&stored, SK).unwrap();
            assert_eq!(plain.expose(), PLAINTEXT, "{writer}");
            assert_eq!(was_stale, stale, "{writer}");
            assert_eq!(t.describe(&stored), writer);
        }
    }

    #[test]
    fn round_trip_per_provider_and_key_size() {
        for providers in [
            aes("aesgcm", &[("key1", KEY16)]),
            aes("aesgcm", &[("key1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX")]), // 24 bytes
            aes("aesgcm", &[("key1", KEY32_A)]),
            aes("aescbc", &[("key1", KEY16)]),
            aes("aescbc", &[("key1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX")]),
            aes("aescbc", &[("key1", KEY32_A)]),
            aes("secretbox", &[("key1", KEY32_A)]),
            IDENTITY.to_owned(),
        ] {
            let all = transformers(&providers);
            let t = all.for_resource("secrets");
            // Empty, shorter than a block, exactly a block, and longer values.
            for plaintext in [&b""[..], b"x", b"0123456789abcdef", PLAINTEXT] {
                let stored = t.transform_to_storage(plaintext, SK).unwrap();
                let (back, stale) = t.transform_from_storage(&stored, SK).unwrap();
                assert_eq!(back.expose(), plaintext, "{providers}");
                assert!(!stale);
                if t.writes_plaintext() {
                    assert_eq!(stored, plaintext);
                } else {
                    assert!(stored.starts_with(b"k8s:enc:"));
                    assert!(!stored.windows(PLAINTEXT.len()).any(|w| w == PLAINTEXT));
                }
            }
        }
    }

    #[test]
    fn written_prefix_and_payload_layout_match_kubernetes() {
        let lens = [
            (aes("aesgcm", &[("key1", KEY32_A)]), "k8s:enc:aesgcm:v1:key1:", 12 + 16),
            (aes("aescbc", &[("key1", KEY32_A)]), "k8s:enc:aescbc:v1:key1:", 16 + 16), // IV + a full padding block
            (aes("secretbox", &[("key1", KEY32_A)]), "k8s:enc:secretbox:v1:key1:", 24 + 16),
        ];
        for (providers, prefix, overhead) in lens {
            let all = transformers(&providers);
            let stored = all.for_resource("secrets").transform_to_storage(b"0123456789abcdef", SK).unwrap();
            assert!(stored.starts_with(prefix.as_bytes()));
            assert_eq!(stored.len(), prefix.len() + 16 + overhead, "{prefix}");
        }
    }

    #[test]
    fn aesgcm_binds_the_storage_key() {
        let all = transformers(&aes("aesgcm", &[("key1", KEY32_A)]));
        let t = all.for_resource("secrets");
        let stored = t.transform_to_storage(b"payload", "/registry/secrets/a/one").unwrap();
        let err = t.transform_from_storage(&stored, "/registry/secrets/a/two").unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not decrypt the value at /registry/secrets/a/two with key \"key1\" of provider aesgcm: wrong key or corrupt data"
        );
        // The golden value too: it only reads under the key it was written for.
        let all = transformers(&aes("aesgcm", &[("key1", KEY16)]));
        assert!(
            all.for_resource("secrets")
                .transform_from_storage(&hex(GOLDEN_AESGCM_128), "/registry/secrets/default/other")
                .is_err()
        );
    }

    #[test]
    fn tampering_with_any_byte_fails_for_authenticated_providers() {
        for providers in [aes("aesgcm", &[("key1", KEY32_A)]), aes("secretbox", &[("key1", KEY32_A)])] {
            let all = transformers(&providers);
            let t = all.for_resource("secrets");
            let stored = t.transform_to_storage(PLAINTEXT, SK).unwrap();
            let prefix_len = stored.iter().enumerate().filter(|(_, b)| **b == b':').nth(4).unwrap().0 + 1;
            for i in prefix_len..stored.len() {
                let mut bad = stored.clone();
                bad[i] ^= 0x01;
                assert!(
                    matches!(t.transform_from_storage(&bad, SK), Err(TransformError::Decrypt { .. })),
                    "{providers} byte {i}"
                );
            }
            // Truncations fail too, down to an empty payload.
            for len in prefix_len..stored.len() {
                assert!(t.transform_from_storage(&stored[..len], SK).is_err());
            }
        }
    }

    #[test]
    fn aescbc_failures_are_indistinguishable() {
        // No padding oracle: bad padding, bad length and a wrong key give one message.
        let all = transformers(&aes("aescbc", &[("key1", KEY32_A)]));
        let t = all.for_resource("secrets");
        let stored = t.transform_to_storage(b"short", SK).unwrap();
        let expected = format!(
            "could not decrypt the value at {SK} with key \"key1\" of provider aescbc: wrong key or corrupt data"
        );
        let mut messages = Vec::new();
        let mut last_block_flipped = stored.clone();
        *last_block_flipped.last_mut().unwrap() ^= 0x5a; // garbles the padding
        messages.push(t.transform_from_storage(&last_block_flipped, SK).unwrap_err().to_string());
        messages.push(t.transform_from_storage(&stored[..stored.len() - 1], SK).unwrap_err().to_string());
        messages.push(t.transform_from_storage(b"k8s:enc:aescbc:v1:key1:", SK).unwrap_err().to_string());
        let other = transformers(&aes("aescbc", &[("key1", KEY32_B)]));
        if let Err(e) = other.for_resource("secrets").transform_from_storage(&stored, SK) {
            messages.push(e.to_string());
        }
        assert!(messages.len() >= 3);
        for m in messages {
            assert_eq!(m, expected);
        }
    }

    #[test]
    fn same_plaintext_twice_gives_different_ciphertext() {
        for providers in [
            aes("aesgcm", &[("key1", KEY32_A)]),
            aes("aescbc", &[("key1", KEY32_A)]),
            aes("secretbox", &[("key1", KEY32_A)]),
        ] {
            let all = transformers(&providers);
            let t = all.for_resource("secrets");
            assert_ne!(t.transform_to_storage(PLAINTEXT, SK).unwrap(), t.transform_to_storage(PLAINTEXT, SK).unwrap());
        }
    }

    #[test]
    fn rotation_new_key_first_reads_old_values_as_stale() {
        let old = transformers(&aes("aesgcm", &[("key1", KEY32_A)]));
        let stored_old = old.for_resource("secrets").transform_to_storage(PLAINTEXT, SK).unwrap();

        let rotated = transformers(&aes("aesgcm", &[("key2", KEY32_B), ("key1", KEY32_A)]));
        let t = rotated.for_resource("secrets");
        let (plain, stale) = t.transform_from_storage(&stored_old, SK).unwrap();
        assert_eq!(plain.expose(), PLAINTEXT);
        assert!(stale, "a value written with the old key is stale");
        assert_eq!(t.describe(&stored_old), "aesgcm:key1");
        assert_eq!(t.writer(), "aesgcm:key2");

        let stored_new = t.transform_to_storage(plain.expose(), SK).unwrap();
        assert!(stored_new.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        let (_, stale) = t.transform_from_storage(&stored_new, SK).unwrap();
        assert!(!stale);

        // Switching provider: a new secretbox provider first, the old aesgcm one second.
        let switched =
            transformers(&format!("{}{}", aes("secretbox", &[("sb", KEY32_B)]), aes("aesgcm", &[("key1", KEY32_A)])));
        let (_, stale) = switched.for_resource("secrets").transform_from_storage(&stored_old, SK).unwrap();
        assert!(stale);

        // Once the old key is removed, the old value no longer reads, and the error names its key.
        let err = transformers(&aes("aesgcm", &[("key2", KEY32_B)]))
            .for_resource("secrets")
            .transform_from_storage(&stored_old, SK)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no configured provider can read the value at {SK} (written by aesgcm:key1); the encryption configuration for this resource does not list it"
            )
        );
    }

    #[test]
    fn changed_key_material_under_the_same_name_fails_closed() {
        let stored = transformers(&aes("aesgcm", &[("key1", KEY32_A)]))
            .for_resource("secrets")
            .transform_to_storage(PLAINTEXT, SK)
            .unwrap();
        let err = transformers(&aes("aesgcm", &[("key1", KEY32_B)]))
            .for_resource("secrets")
            .transform_from_storage(&stored, SK)
            .unwrap_err();
        assert!(matches!(err, TransformError::Decrypt { provider: "aesgcm", ref key_name, .. } if key_name == "key1"));
    }

    #[test]
    fn identity_first_writes_plaintext_and_still_reads_encrypted_values() {
        let encrypted = transformers(&aes("aesgcm", &[("key1", KEY32_A)]))
            .for_resource("secrets")
            .transform_to_storage(PLAINTEXT, SK)
            .unwrap();
        let all = transformers(&format!("{IDENTITY}{}", aes("aesgcm", &[("key1", KEY32_A)])));
        assert!(all.writes_plaintext("secrets"));
        let t = all.for_resource("secrets");
        assert_eq!(t.transform_to_storage(PLAINTEXT, SK).unwrap(), PLAINTEXT);
        let (plain, stale) = t.transform_from_storage(PLAINTEXT, SK).unwrap();
        assert_eq!((plain.expose(), stale), (PLAINTEXT, false));
        // The identity provider never passes `k8s:enc:` data through; aesgcm reads it, stale.
        let (plain, stale) = t.transform_from_storage(&encrypted, SK).unwrap();
        assert_eq!((plain.expose(), stale), (PLAINTEXT, true));
        assert_eq!(t.describe(PLAINTEXT), "identity");
    }

    #[test]
    fn identity_last_reads_plaintext_as_stale() {
        let all = transformers(&format!("{}{IDENTITY}", aes("aesgcm", &[("key1", KEY32_A)])));
        assert!(!all.writes_plaintext("secrets"));
        let (plain, stale) = all.for_resource("secrets").transform_from_storage(PLAINTEXT, SK).unwrap();
        assert_eq!((plain.expose(), stale), (PLAINTEXT, true));
    }

    #[test]
    fn no_matching_prefix_without_identity_is_an_error() {
        let all = transformers(&aes("aesgcm", &[("key1", KEY32_A)]));
        let t = all.for_resource("secrets");
        let err = t.transform_from_storage(PLAINTEXT, SK).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no configured provider can read the value at {SK} (written by identity); the encryption configuration for this resource does not list it"
            )
        );
        let err = t.transform_from_storage(&hex(GOLDEN_SECRETBOX), SK).unwrap_err();
        assert!(
            matches!(err, TransformError::NoMatchingProvider { ref written_by, .. } if written_by == "secretbox:key1")
        );
    }

    #[test]
    fn unmatched_resources_use_identity_which_refuses_encrypted_data() {
        let all = transformers(&aes("aesgcm", &[("key1", KEY32_A)]));
        assert!(!all.writes_plaintext("secrets"));
        assert!(all.writes_plaintext("namespaces"));
        let t = all.for_resource("namespaces");
        assert_eq!(t.transform_to_storage(b"{}", "/registry/namespaces/a").unwrap(), b"{}");
        assert!(matches!(
            t.transform_from_storage(&hex(GOLDEN_AESGCM_256), SK),
            Err(TransformError::NoMatchingProvider { .. })
        ));
    }

    #[test]
    fn describe_names_writers_and_never_arbitrary_bytes() {
        let t = Transformer::identity();
        assert_eq!(t.describe(b"{\"kind\":\"Secret\"}"), "identity");
        assert_eq!(t.describe(b"k8s:enc:aesgcm:v1:key-20250101:\x00\x01"), "aesgcm:key-20250101");
        assert_eq!(t.describe(b"k8s:enc:kms:v2:vault:\x0a\x0b"), "kms:v2:vault");
        assert_eq!(t.describe(b"k8s:enc:aesgcm:v1:k\xffy:xx"), "aesgcm:unknown");
        assert_eq!(t.describe(b"k8s:enc:aesgcm"), "unknown (malformed k8s:enc: prefix)");
    }

    /// The first example on https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/,
    /// verbatim.
    const DOCS_EXAMPLE: &str = r#"---
#
# CAUTION: this is an example configuration.
#          Do not use this for your own cluster!
#
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
      - pandas.awesome.bears.example # a custom resource API
    providers:
      # This configuration does not provide data confidentiality. The first
      # configured provider is specifying the "identity" mechanism, which
      # stores resources as plain text.
      #
      - identity: {} # plain text, in other words NO encryption
      - aesgcm:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
            - name: key2
              secret: dGhpcyBpcyBwYXNzd29yZA==
      - aescbc:
          keys:
            - name: key1
              secret: c2VjcmV0IGlzIHNlY3VyZQ==
            - name: key2
              secret: dGhpcyBpcyBwYXNzd29yZA==
      - secretbox:
          keys:
            - name: key1
              secret: YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=
  - resources:
      - events
    providers:
      - identity: {} # do not encrypt Events even though *.* is specified below
  - resources:
      - '*.apps' # wildcard match requires Kubernetes 1.27 or later
    providers:
      - aescbc:
          keys:
          - name: key2
            secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==
  - resources:
      - '*.*' # wildcard match requires Kubernetes 1.27 or later
    providers:
      - aescbc:
          keys:
          - name: key3
            secret: c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluaw==
"#;

    #[test]
    fn kubernetes_docs_example_parses_and_its_short_keys_are_refused_as_kubernetes_does() {
        // The docs' `*.apps` and `*.*` keys decode to 28 and 25 bytes; kube-apiserver's
        // validation rejects them, and so do we, naming the key.
        assert_eq!(
            config_error(DOCS_EXAMPLE),
            "invalid encryption configuration: secret for key \"key2\" of provider aescbc must be 16, 24 or 32 bytes, got 28 (at resources[2].providers[0].aescbc.keys[0])"
        );
        let fixed = DOCS_EXAMPLE
            .replace("c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==", KEY32_A)
            .replace("c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluaw==", KEY32_B);
        let all = Transformers::from_config_bytes(fixed.as_bytes()).unwrap();
        assert!(all.writes_plaintext("secrets"));
        assert!(all.writes_plaintext("configmaps"));
        assert!(all.writes_plaintext("pandas.awesome.bears.example"));
        assert!(all.writes_plaintext("events"));
        assert_eq!(all.for_resource("secrets").entries.len(), 1 + 2 + 2 + 1);
        assert_eq!(all.for_resource("deployments.apps").writer(), "aescbc:key2");
        assert_eq!(all.for_resource("namespaces").writer(), "aescbc:key3");
        assert_eq!(all.for_resource("roles.rbac.authorization.k8s.io").writer(), "aescbc:key3");
        // Secrets written before (golden aesgcm key1, the docs' 16-byte key) read as stale.
        let (plain, stale) = all.for_resource("secrets").transform_from_storage(&hex(GOLDEN_AESGCM_128), SK).unwrap();
        assert_eq!((plain.expose(), stale), (PLAINTEXT, true));
    }

    #[test]
    fn resource_matching_follows_kubernetes() {
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: [secrets]\n  providers:\n  - aesgcm: {{keys: [{{name: s, secret: {KEY32_A}}}]}}\n\
             - resources: [secrets]\n  providers:\n  - aescbc: {{keys: [{{name: late, secret: {KEY32_A}}}]}}\n\
             - resources: ['*.']\n  providers:\n  - secretbox: {{keys: [{{name: core, secret: {KEY32_A}}}]}}\n"
        );
        let all = Transformers::from_config_bytes(yaml.as_bytes()).unwrap();
        // A rule after a wildcard that covers it would never apply: refused, as Kubernetes does.
        let masked = yaml.replace("resources: ['*.']", "resources: ['*.', configmaps]");
        assert!(config_error(&masked).contains("overlapping resources"));
        let after = format!("{yaml}- resources: [namespaces]\n  providers:\n  - identity: {{}}\n");
        assert!(
            config_error(&after)
                .ends_with("resources[3].resources: resource \"namespaces\" is masked by earlier rule \"*.\"")
        );
        assert_eq!(all.for_resource("secrets").writer(), "aesgcm:s");
        assert_eq!(all.for_resource("secrets").entries.len(), 2, "a resource listed twice gets both lists in order");
        assert_eq!(all.for_resource("namespaces").writer(), "secretbox:core");
        assert_eq!(all.for_resource("roles.rbac.authorization.k8s.io").writer(), "identity");
    }

    #[test]
    fn config_errors_are_clear_and_never_echo_secrets() {
        let cases = [
            (
                config(&aes("aesgcm", &[("key1", "AAECAwQFBg==")])),
                "secret for key \"key1\" of provider aesgcm must be 16, 24 or 32 bytes, got 7 (at resources[0].providers[0].aesgcm.keys[0])",
            ),
            (
                config(&aes("secretbox", &[("sb", KEY16)])),
                "secret for key \"sb\" of provider secretbox must be 32 bytes, got 16",
            ),
            (
                config(&aes("aesgcm", &[("key1", "not*base64")])),
                "resources[0].providers[0].aesgcm.keys[0]: secret for key \"key1\" of provider aesgcm is not valid base64",
            ),
            (config(&aes("aesgcm", &[("", KEY16)])), "a key of provider aesgcm has no name"),
            (config(&aes("aesgcm", &[("key1", "''")])), "key \"key1\" of provider aesgcm has no secret"),
            (config("      - aesgcm: {keys: []}\n"), "provider aesgcm needs at least one key"),
            (
                config("      - kms: {name: myKms, endpoint: unix:///tmp/kms.sock, apiVersion: v2}\n"),
                "resources[0].providers[0]: kms provider \"myKms\" is not supported yet; use aesgcm, aescbc or secretbox",
            ),
            (
                config("      - {identity: {}, aesgcm: {keys: []}}\n"),
                "more than one provider specified in a single element",
            ),
            (config("      - {}\n"), "provider does not contain any of the expected providers"),
            (config("      - identity: {}\n        aescbd: {}\n"), "unknown field `aescbd`"),
            (config(&aes("aesgcm", &[("key1", "12345678")])), "secret must be a base64-encoded string"),
            (
                config("      - aesgcm: {keys: AAECAwQFBgcICQoLDA0ODxAREhMUFRYX}\n"),
                "invalid type: string \"<redacted>\", expected a sequence",
            ),
            (
                "apiVersion: v2\nkind: EncryptionConfiguration\nresources: []\n".to_owned(),
                "expected apiVersion apiserver.config.k8s.io/v1 and kind EncryptionConfiguration, got apiVersion \"v2\"",
            ),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n".to_owned(),
                "resources: at least one entry is required",
            ),
            (config(IDENTITY).replace("[secrets]", "[Secrets]"), "should not contain capital letters"),
            (
                config(IDENTITY).replace("[secrets]", "['*']"),
                "use '*.' to encrypt all the resources from core API group",
            ),
            (
                config(IDENTITY).replace("[secrets]", "['secrets.*']"),
                "encrypting the same resource across groups is not supported",
            ),
            (
                config(IDENTITY).replace("[secrets]", "[serviceipallocations]"),
                "resources which do not have REST API/s cannot be encrypted",
            ),
            (config(IDENTITY).replace("[secrets]", "['*.events.k8s.io']"), "use 'events' instead"),
            (config(IDENTITY).replace("[secrets]", "[secrets, '*.']"), "overlapping resources"),
            (
                config(IDENTITY).replace("[secrets]", "[secrets, secrets]"),
                "the same resource cannot be specified multiple times",
            ),
            ("   \n".to_owned(), "the file is empty"),
        ];
        for (yaml, expected) in cases {
            let message = config_error(&yaml);
            assert!(message.starts_with("invalid encryption configuration: "), "{message}");
            assert!(message.contains(expected), "expected {expected:?} in {message:?}");
            for secret in ["AAECAwQFBg", "not*base64", "12345678", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", KEY16] {
                assert!(!message.contains(secret), "{message} echoes a secret");
            }
        }
        let masked = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
             - resources: ['*.*']\n  providers: [identity: {}]\n- resources: [secrets]\n  providers: [identity: {}]\n";
        assert_eq!(
            config_error(masked),
            "invalid encryption configuration: resources[1].resources: resource \"secrets\" is masked by earlier rule \"*.*\""
        );
    }

    #[test]
    fn accepts_json_and_the_legacy_v1_form() {
        let json = format!(
            r#"{{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration","resources":[{{"resources":["secrets"],"providers":[{{"aesgcm":{{"keys":[{{"name":"key1","secret":"{KEY32_A}"}}]}}}}]}}]}}"#
        );
        assert_eq!(
            Transformers::from_config_bytes(json.as_bytes()).unwrap().for_resource("secrets").writer(),
            "aesgcm:key1"
        );
        let bad_json = json.replace(KEY32_A, "AAEC");
        assert!(!config_error(&bad_json).contains("AAEC"));
        for kind in ["EncryptionConfiguration", "EncryptionConfig"] {
            let legacy =
                config(IDENTITY).replace("apiserver.config.k8s.io/v1", "v1").replace("EncryptionConfiguration", kind);
            assert!(Transformers::from_config_bytes(legacy.as_bytes()).is_ok(), "{kind}");
        }
    }

    #[test]
    fn key_material_never_appears_in_debug_output() {
        let all = transformers(&format!(
            "{}{}{}",
            aes("aesgcm", &[("key1", KEY32_A)]),
            aes("aescbc", &[("key2", KEY32_B)]),
            aes("secretbox", &[("key3", KEY32_SECRETBOX)]),
        ));
        let shown = format!("{all:?} {:?}", all.for_resource("secrets"));
        assert!(shown.contains("aesgcm:key1") && shown.contains("<redacted 32-byte key>"), "{shown}");
        for secret in [KEY32_A, KEY32_B, KEY32_SECRETBOX] {
            let raw = BASE64.decode(secret).unwrap();
            assert!(!shown.contains(secret));
            assert!(!shown.contains(&hex_string(&raw)));
            assert!(!shown.contains(&format!("{raw:?}")));
            assert!(!shown.contains(&format!("{:?}", &raw[..8])));
        }
        assert!(!shown.contains("abcdefghijklmnopqrstuvwxyz"), "{shown}");
        let secret = ConfigSecret(Zeroizing::new(KEY32_A.to_owned()));
        assert_eq!(format!("{secret:?}"), "ConfigSecret(<redacted>)");
    }

    fn hex_string(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn generated_default_is_0600_aesgcm_for_everything_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = Transformers::load_or_generate_default(&data_dir).unwrap();
        let path = data_dir.join(DEFAULT_CONFIG_FILE);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&data_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [DEFAULT_CONFIG_FILE], "no temporary file is left behind");
        for resource in ["secrets", "namespaces", "roles.rbac.authorization.k8s.io"] {
            assert!(!first.writes_plaintext(resource));
        }
        let writer = first.for_resource("secrets").writer();
        assert!(writer.starts_with("aesgcm:key-") && writer.len() == "aesgcm:key-20250101".len(), "{writer}");
        let contents = fs::read_to_string(&path).unwrap();
        assert!(contents.contains("kind: EncryptionConfiguration"));

        let stored = first.for_resource("secrets").transform_to_storage(PLAINTEXT, SK).unwrap();
        let second = Transformers::load_or_generate_default(&data_dir).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), contents, "the file is not rewritten");
        let (plain, stale) = second.for_resource("secrets").transform_from_storage(&stored, SK).unwrap();
        assert_eq!((plain.expose(), stale), (PLAINTEXT, false));

        // Two directories get two different keys.
        let other = Transformers::load_or_generate_default(&dir.path().join("other")).unwrap();
        assert!(other.for_resource("secrets").transform_from_storage(&stored, SK).is_err());
    }

    #[test]
    fn a_broken_existing_default_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_CONFIG_FILE);
        fs::write(&path, "").unwrap();
        let err = Transformers::load_or_generate_default(dir.path()).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid encryption configuration {}: the file is empty", path.display()));
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn civil_date_matches_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(951_782_400), (2000, 2, 29));
        assert_eq!(civil_date(1_735_689_600 - 1), (2024, 12, 31));
        assert_eq!(civil_date(1_735_689_600), (2025, 1, 1));
    }

    #[test]
    fn redact_quoted_hides_values_and_keeps_field_names() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "c2Vj\"cmV0", expected a sequence at line 3, unknown field `keys`"#),
            r#"invalid type: string "<redacted>", expected a sequence at line 3, unknown field `keys`"#
        );
    }
}
