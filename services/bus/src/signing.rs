//! The hub's Ed25519 key: signs every delivery (`Xj-Signature`) and is
//! published at `GET /v1/keys`.

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
}

#[derive(Clone)]
pub struct HubKey {
    signing: SigningKey,
    kid: String,
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
        write_private(path, &hex::encode(key.to_bytes())).map_err(io)?;
        Ok(Self::from_bytes(&key.to_bytes()))
    }

    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(raw);
        let kid = key_id(&signing.verifying_key());
        Self { signing, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The `Xj-Signature` header value over `body`.
    pub fn sign_header(&self, body: &[u8]) -> String {
        let sig = self.signing.sign(body);
        format!("keyid={},sig={}", self.kid, B64.encode(sig.to_bytes()))
    }

    /// The JSON served at `GET /v1/keys`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [{
            "kid": self.kid,
            "alg": "Ed25519",
            "public_key": B64.encode(self.verifying_key().to_bytes()),
        }]})
    }
}

/// Key id: the first 16 hex characters of SHA-256 over the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.to_bytes()))[..16].to_string()
}

/// Verifies an `Xj-Signature` header value against a public key (base64).
pub fn verify_header(public_key_b64: &str, header: &str, body: &[u8]) -> Result<(), String> {
    let raw = B64.decode(public_key_b64).map_err(|e| format!("public key is not base64: {e}"))?;
    let raw: [u8; 32] = raw.try_into().map_err(|_| "public key is not 32 bytes".to_string())?;
    let key = VerifyingKey::from_bytes(&raw).map_err(|e| e.to_string())?;
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
