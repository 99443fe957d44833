//! `SecretBytes`: the one type that holds secret values in memory.

use zeroize::Zeroize;

/// Bytes of a secret value (or of a whole serialized object that contains them).
///
/// Invariant: its `Debug` never shows the content and it has no `Display`; the buffer is
/// zeroized when dropped. Serde encodes it as standard base64, as Kubernetes encodes `[]byte`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands the buffer to the caller, who becomes responsible for it.
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

impl serde::Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let mut encoded = base64::engine::general_purpose::STANDARD.encode(&self.0);
        let result = s.serialize_str(&encoded);
        encoded.zeroize();
        result
    }
}

impl<'de> serde::Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretBytes, E> {
                use base64::Engine;
                // The error deliberately says nothing about the input: it is a secret value.
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(SecretBytes)
                    .map_err(|_| E::custom("illegal base64 data"))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::new(b"hunter2".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert_eq!(shown, "SecretBytes(<redacted 7 bytes>)");
    }

    #[test]
    fn serde_round_trips_as_base64() {
        let s = SecretBytes::new(b"S!B\\*d$zDsb=".to_vec());
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, "\"UyFCXCpkJHpEc2I9\"");
        let back: SecretBytes = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn base64_error_does_not_echo_input() {
        let err = serde_json::from_str::<SecretBytes>("\"canary-VALUE!!\"").unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
    }
}
