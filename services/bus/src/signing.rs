//! The hub's Ed25519 key: signs every delivery and receipt (`Xj-Signature`)
//! and is published at `GET /v1/keys` with the keys it signed with before a
//! rotation (`[hub] previous_public_keys`), so old signatures stay
//! verifiable. The same header signs organisations' submissions when they
//! registered a key (`[[org]] public_key`).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the hub key {path}: {message}")]
    Io { path: String, message: String },
    #[error("hub key {path} is not 64 hex characters")]
    Format { path: String },
    #[error("public key {key:?}: {message}")]
    Public { key: String, message: String },
}

#[derive(Clone)]
pub struct HubKey {
    signing: SigningKey,
    kid: String,
    /// Keys retired by rotation: still published, never used to sign.
    previous: std::sync::Arc<Vec<VerifyingKey>>,
}

impl HubKey {
    /// Loads the key, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |e: std::io::Error| KeyError::Io { path: path.display().to_string(), message: e.to_string() };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let mut raw = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut raw)
                .map_err(|_| KeyError::Format { path: path.display().to_string() })?;
            return Ok(Self::from_bytes(&raw));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        // Several processes of one hub may start at once: the key appears
        // whole (written aside, then linked into place) and the first one
        // linked wins; the others read it.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &hex::encode(key.to_bytes())).map_err(io)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self::from_bytes(&key.to_bytes())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(e) => Err(io(e)),
        }
    }

    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(raw);
        let kid = key_id(&signing.verifying_key());
        Self { signing, kid, previous: Default::default() }
    }

    /// Adds the public keys of earlier rotations (base64), published at
    /// `GET /v1/keys` after the current one.
    pub fn with_previous(mut self, keys: &[String]) -> Result<Self, KeyError> {
        let mut previous = Vec::new();
        for k in keys {
            let key = public_key(k).map_err(|message| KeyError::Public { key: k.clone(), message })?;
            if key != self.verifying_key() && !previous.contains(&key) {
                previous.push(key);
            }
        }
        self.previous = std::sync::Arc::new(previous);
        Ok(self)
    }

    /// Writes a fresh key at `path`, keeping the old one beside it as
    /// `<path>.<kid>.retired`; returns (old, new). The old public key goes
    /// to `[hub] previous_public_keys`.
    pub fn rotate(path: &Path) -> Result<(Self, Self), KeyError> {
        let io = |e: std::io::Error| KeyError::Io { path: path.display().to_string(), message: e.to_string() };
        let old = Self::load_or_create(path)?;
        let retired = path.with_file_name(format!(
            "{}.{}.retired",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("hub_ed25519.key"),
            old.kid
        ));
        std::fs::rename(path, &retired).map_err(io)?;
        let new = Self::load_or_create(path)?;
        Ok((old, new))
    }

    /// The public key, base64.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.verifying_key().to_bytes())
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The Standard Webhooks secret the hub uses for `org` when none is
    /// configured: derived from this key, so every process of the hub has
    /// the same one without storing it, and no organisation can work out
    /// another's. A new hub key gives new derived secrets.
    pub fn webhook_secret(&self, org: &str) -> String {
        let context = format!("xianjie standard-webhooks secret v1\0{org}");
        let key = hmac_sha256::HMAC::mac(context.as_bytes(), self.signing.to_bytes());
        format!("whsec_{}", B64.encode(key))
    }

    /// The `Xj-Signature` header value over `body`.
    pub fn sign_header(&self, body: &[u8]) -> String {
        let sig = self.signing.sign(body);
        format!("keyid={},sig={}", self.kid, B64.encode(sig.to_bytes()))
    }

    /// The JSON served at `GET /v1/keys`: the current key first, then the
    /// keys of earlier rotations.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys = vec![serde_json::json!({
            "kid": self.kid,
            "alg": "Ed25519",
            "public_key": self.public_key_b64(),
            "status": "current",
        })];
        for k in self.previous.iter() {
            keys.push(serde_json::json!({
                "kid": key_id(k),
                "alg": "Ed25519",
                "public_key": B64.encode(k.to_bytes()),
                "status": "previous",
            }));
        }
        serde_json::json!({ "keys": keys })
    }
}

/// Parses a base64 Ed25519 public key.
pub fn public_key(b64: &str) -> Result<VerifyingKey, String> {
    let raw = B64.decode(b64.trim()).map_err(|e| format!("public key is not base64: {e}"))?;
    let raw: [u8; 32] = raw.try_into().map_err(|_| "public key is not 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&raw).map_err(|e| e.to_string())
}

/// The `keyid=` of an `Xj-Signature` header value, if given.
pub fn header_kid(header: &str) -> Option<&str> {
    header.split(',').find_map(|p| p.trim().strip_prefix("keyid="))
}

/// Verifies a header against a `GET /v1/keys` document: the key named by
/// `keyid=` (current or previous), so signatures made before a rotation
/// still verify.
pub fn verify_with_keys(keys: &serde_json::Value, header: &str, body: &[u8]) -> Result<(), String> {
    let kid = header_kid(header).ok_or_else(|| "no keyid= in the signature header".to_string())?;
    let key = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid)
        .and_then(|k| k["public_key"].as_str())
        .ok_or_else(|| format!("no published key with id {kid}"))?;
    verify_header(key, header, body)
}

/// Key id: the first 16 hex characters of SHA-256 over the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.to_bytes()))[..16].to_string()
}

/// Verifies an `Xj-Signature` header value against a public key (base64).
pub fn verify_header(public_key_b64: &str, header: &str, body: &[u8]) -> Result<(), String> {
    let key = public_key(public_key_b64)?;
    let sig = header
        .split(',')
        .find_map(|p| p.trim().strip_prefix("sig="))
        .ok_or_else(|| "no sig= in the signature header".to_string())?;
    let sig = B64.decode(sig).map_err(|e| format!("signature is not base64: {e}"))?;
    let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
    key.verify(body, &sig).map_err(|_| "signature does not match the body".to_string())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

/// Signs `body` with a raw Ed25519 key under `kid`: what an organisation's
/// system does before it submits (and what tests do in its place).
pub fn sign_with(signing: &SigningKey, kid: &str, body: &[u8]) -> String {
    format!("keyid={kid},sig={}", B64.encode(signing.sign(body).to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_old_signatures_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let first = HubKey::load_or_create(&path).unwrap();
        let old_sig = first.sign_header(b"body");
        let (old, new) = HubKey::rotate(&path).unwrap();
        assert_eq!(old.kid(), first.kid());
        assert_ne!(new.kid(), old.kid());
        let ring = HubKey::load_or_create(&path).unwrap().with_previous(&[old.public_key_b64()]).unwrap();
        assert_eq!(ring.kid(), new.kid(), "new signatures use the newest key");
        let keys = ring.jwks();
        assert_eq!(keys["keys"][0]["kid"], new.kid());
        assert_eq!(keys["keys"][0]["status"], "current");
        assert_eq!(keys["keys"][1]["kid"], old.kid());
        verify_with_keys(&keys, &old_sig, b"body").unwrap();
        verify_with_keys(&keys, &ring.sign_header(b"body"), b"body").unwrap();
        assert!(verify_with_keys(&keys, &old_sig, b"bodY").is_err());
        assert!(header_kid(&ring.sign_header(b"x")).is_some_and(|k| k == new.kid()));
    }
}
