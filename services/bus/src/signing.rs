//! The hub's signing key: signs every delivery and receipt (`Xj-Signature`)
//! and is published at `GET /v1/keys` with the keys it signed with before a
//! rotation (`[hub] previous_public_keys`), so old signatures stay
//! verifiable. The same header signs organisations' submissions when they
//! registered a key (`[[org]] public_key`). Two algorithms (docs/security.md,
//! "Algorithms"): Ed25519, and SM2 with SM3 (GB/T 32918) with the standard
//! distinguishing id — `[hub] signature`, `[[org]] key_alg`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

pub use xj_config::SignatureAlg as Alg;

/// The distinguishing identifier SM2 signatures use (GB/T 35276's default):
/// every SM2 signer and verifier of the hub and its organisations.
pub const SM2_DIST_ID: &str = "1234567812345678";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the hub key {path}: {message}")]
    Io { path: String, message: String },
    #[error("hub key {path} is not 64 hex characters (an SM2 key: sm2: and 64 hex characters)")]
    Format { path: String },
    #[error("public key {key:?}: {message}")]
    Public { key: String, message: String },
    #[error(
        "hub key {path} is an {found} key, but [hub] signature = \"{wanted}\": name another signing_key_file, or rotate (xj keys rotate) to a key of {wanted}"
    )]
    Alg { path: String, found: &'static str, wanted: &'static str },
}

/// A secret signing key of either algorithm.
#[derive(Clone)]
enum Secret {
    Ed25519(SigningKey),
    Sm2(sm2::dsa::SigningKey),
}

impl Secret {
    fn generate(alg: Alg) -> Self {
        match alg {
            Alg::Ed25519 => Secret::Ed25519(SigningKey::generate(&mut rand::rngs::OsRng)),
            Alg::Sm2 => loop {
                let secret = sm2::SecretKey::random(&mut rand::rngs::OsRng);
                if let Ok(k) = sm2::dsa::SigningKey::new(SM2_DIST_ID, &secret) {
                    break Secret::Sm2(k);
                }
            },
        }
    }

    fn from_bytes(alg: Alg, raw: &[u8; 32]) -> Option<Self> {
        match alg {
            Alg::Ed25519 => Some(Secret::Ed25519(SigningKey::from_bytes(raw))),
            Alg::Sm2 => {
                let secret = sm2::SecretKey::from_slice(raw).ok()?;
                sm2::dsa::SigningKey::new(SM2_DIST_ID, &secret).ok().map(Secret::Sm2)
            }
        }
    }

    fn to_bytes(&self) -> [u8; 32] {
        match self {
            Secret::Ed25519(k) => k.to_bytes(),
            Secret::Sm2(k) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&k.to_bytes());
                out
            }
        }
    }

    /// As the key file stores it.
    fn file_text(&self) -> String {
        match self {
            Secret::Ed25519(k) => hex::encode(k.to_bytes()),
            Secret::Sm2(_) => format!("sm2:{}", hex::encode(self.to_bytes())),
        }
    }

    fn public(&self) -> PublicKey {
        match self {
            Secret::Ed25519(k) => PublicKey { alg: Alg::Ed25519, raw: k.verifying_key().to_bytes().to_vec() },
            Secret::Sm2(k) => {
                use sm2::elliptic_curve::sec1::ToEncodedPoint;
                let point = k.verifying_key().as_affine().to_encoded_point(false);
                PublicKey { alg: Alg::Sm2, raw: point.as_bytes().to_vec() }
            }
        }
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Secret::Ed25519(k) => k.sign(body).to_bytes().to_vec(),
            Secret::Sm2(k) => {
                let sig: sm2::dsa::Signature = k.sign(body);
                sig.to_bytes().to_vec()
            }
        }
    }
}

/// A public key of either algorithm: Ed25519's 32 bytes, or SM2's
/// uncompressed point (65 bytes, `04‖x‖y`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: Alg,
    raw: Vec<u8>,
}

impl PublicKey {
    /// A base64 key of `alg`.
    pub fn parse(alg: Alg, b64: &str) -> Result<Self, String> {
        let raw = B64.decode(b64.trim()).map_err(|e| format!("public key is not base64: {e}"))?;
        match alg {
            Alg::Ed25519 => {
                let bytes: [u8; 32] = raw
                    .as_slice()
                    .try_into()
                    .map_err(|_| format!("an Ed25519 public key is 32 bytes, not {}", raw.len()))?;
                VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
            }
            Alg::Sm2 => {
                if raw.len() != 65 || raw[0] != 4 {
                    return Err(format!(
                        "an SM2 public key is the 65-byte uncompressed point 04‖x‖y, not {} bytes",
                        raw.len()
                    ));
                }
                sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DIST_ID, &raw)
                    .map_err(|_| "not a point of the SM2 curve".to_string())?;
            }
        }
        Ok(Self { alg, raw })
    }

    /// A base64 key of either algorithm, told apart by its length.
    pub fn parse_any(b64: &str) -> Result<Self, String> {
        let len = B64.decode(b64.trim()).map(|r| r.len()).map_err(|e| format!("public key is not base64: {e}"))?;
        Self::parse(if len == 65 { Alg::Sm2 } else { Alg::Ed25519 }, b64)
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn b64(&self) -> String {
        B64.encode(&self.raw)
    }

    /// Key id: the first 16 hex characters of the key's digest — SHA-256
    /// of an Ed25519 key, SM3 of an SM2 key.
    pub fn kid(&self) -> String {
        match self.alg {
            Alg::Ed25519 => hex::encode(Sha256::digest(&self.raw))[..16].to_string(),
            Alg::Sm2 => hex::encode(sm3::Sm3::digest(&self.raw))[..16].to_string(),
        }
    }

    /// Checks a raw signature (Ed25519's 64 bytes, SM2's `r‖s`) over `body`.
    pub fn verify(&self, body: &[u8], sig: &[u8]) -> Result<(), String> {
        let mismatch = || "signature does not match the body".to_string();
        match self.alg {
            Alg::Ed25519 => {
                let bytes: [u8; 32] = self.raw.as_slice().try_into().map_err(|_| "not an Ed25519 key".to_string())?;
                let key = VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|e| e.to_string())?;
                key.verify(body, &sig).map_err(|_| mismatch())
            }
            Alg::Sm2 => {
                use sm2::dsa::signature::Verifier as _;
                let key = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DIST_ID, &self.raw)
                    .map_err(|_| "not an SM2 key".to_string())?;
                let sig = sm2::dsa::Signature::from_slice(sig)
                    .map_err(|_| format!("an SM2 signature is the 64 bytes r‖s, not {}", sig.len()))?;
                key.verify(body, &sig).map_err(|_| mismatch())
            }
        }
    }
}

#[derive(Clone)]
pub struct HubKey {
    secret: Secret,
    public: PublicKey,
    kid: String,
    /// Keys retired by rotation: still published, never used to sign.
    previous: std::sync::Arc<Vec<PublicKey>>,
}

impl HubKey {
    /// Loads the key at `path` whatever its algorithm, creating an Ed25519
    /// key (mode 0600) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        Self::load(path, None)
    }

    /// Loads the key at `path`, creating one of `alg` when there is none;
    /// a key of another algorithm is refused (the hub signs with what its
    /// configuration says, `[hub] signature`).
    pub fn load_or_create_as(path: &Path, alg: Alg) -> Result<Self, KeyError> {
        Self::load(path, Some(alg))
    }

    fn load(path: &Path, want: Option<Alg>) -> Result<Self, KeyError> {
        let io = |e: std::io::Error| KeyError::Io { path: path.display().to_string(), message: e.to_string() };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let text = text.trim();
            let (alg, hex_text) = match text.strip_prefix("sm2:") {
                Some(rest) => (Alg::Sm2, rest),
                None => (Alg::Ed25519, text),
            };
            if let Some(wanted) = want
                && wanted != alg
            {
                return Err(KeyError::Alg {
                    path: path.display().to_string(),
                    found: alg.as_str(),
                    wanted: wanted.as_str(),
                });
            }
            let mut raw = [0u8; 32];
            hex::decode_to_slice(hex_text, &mut raw)
                .map_err(|_| KeyError::Format { path: path.display().to_string() })?;
            let secret =
                Secret::from_bytes(alg, &raw).ok_or_else(|| KeyError::Format { path: path.display().to_string() })?;
            return Ok(Self::from_secret(secret));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let secret = Secret::generate(want.unwrap_or_default());
        // Several processes of one hub may start at once: the key appears
        // whole (written aside, then linked into place) and the first one
        // linked wins; the others read it.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &secret.file_text()).map_err(io)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self::from_secret(secret)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path, want),
            Err(e) => Err(io(e)),
        }
    }

    fn from_secret(secret: Secret) -> Self {
        let public = secret.public();
        let kid = public.kid();
        Self { secret, public, kid, previous: Default::default() }
    }

    /// An Ed25519 key from its 32 bytes.
    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        Self::from_secret(Secret::Ed25519(SigningKey::from_bytes(raw)))
    }

    /// A key of `alg` from its 32 secret bytes (`None`: not a valid SM2
    /// scalar).
    pub fn from_bytes_as(alg: Alg, raw: &[u8; 32]) -> Option<Self> {
        Secret::from_bytes(alg, raw).map(Self::from_secret)
    }

    /// A fresh key of `alg`, kept nowhere (tests, forgeries in `xj conformance`).
    pub fn generate(alg: Alg) -> Self {
        Self::from_secret(Secret::generate(alg))
    }

    /// Adds the public keys of earlier rotations (base64, either
    /// algorithm), published at `GET /v1/keys` after the current one.
    pub fn with_previous(mut self, keys: &[String]) -> Result<Self, KeyError> {
        let mut previous = Vec::new();
        for k in keys {
            let key = PublicKey::parse_any(k).map_err(|message| KeyError::Public { key: k.clone(), message })?;
            if key != self.public && !previous.contains(&key) {
                previous.push(key);
            }
        }
        self.previous = std::sync::Arc::new(previous);
        Ok(self)
    }

    /// Writes a fresh key of `alg` at `path`, keeping the old one beside it
    /// as `<path>.<kid>.retired`; returns (old, new). The old public key
    /// goes to `[hub] previous_public_keys`.
    pub fn rotate(path: &Path, alg: Alg) -> Result<(Self, Self), KeyError> {
        Self::rotate_from(path, path, alg)
    }

    /// Like [`rotate`](Self::rotate), the old key read at `old_path` (a
    /// change of algorithm moves the default key file from
    /// `hub_ed25519.key` to `hub_sm2.key`).
    pub fn rotate_from(old_path: &Path, path: &Path, alg: Alg) -> Result<(Self, Self), KeyError> {
        let io = |e: std::io::Error| KeyError::Io { path: old_path.display().to_string(), message: e.to_string() };
        // No key yet: one of the configured algorithm is made, then retired.
        let old =
            if old_path.exists() { Self::load_or_create(old_path)? } else { Self::load_or_create_as(old_path, alg)? };
        let retired = old_path.with_file_name(format!(
            "{}.{}.retired",
            old_path.file_name().and_then(|n| n.to_str()).unwrap_or("hub.key"),
            old.kid
        ));
        std::fs::rename(old_path, &retired).map_err(io)?;
        let new = Self::load_or_create_as(path, alg)?;
        Ok((old, new))
    }

    pub fn alg(&self) -> Alg {
        self.public.alg
    }

    /// The public key, base64.
    pub fn public_key_b64(&self) -> String {
        self.public.b64()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The Standard Webhooks secret the hub uses for `org` when none is
    /// configured: derived from this key, so every process of the hub has
    /// the same one without storing it, and no organisation can work out
    /// another's. A new hub key gives new derived secrets.
    pub fn webhook_secret(&self, org: &str) -> String {
        let context = format!("xianjie standard-webhooks secret v1\0{org}");
        let key = hmac_sha256::HMAC::mac(context.as_bytes(), self.secret.to_bytes());
        format!("whsec_{}", B64.encode(key))
    }

    /// The `Xj-Signature` header value over `body`: `keyid=…,sig=…` for
    /// Ed25519, `alg=sm2,keyid=…,sig=…` for SM2.
    pub fn sign_header(&self, body: &[u8]) -> String {
        header(self.alg(), &self.kid, &self.secret.sign(body))
    }

    /// The JSON served at `GET /v1/keys`: the current key first, then the
    /// keys of earlier rotations, each with its algorithm.
    pub fn jwks(&self) -> serde_json::Value {
        let entry = |k: &PublicKey, status: &str| serde_json::json!({ "kid": k.kid(), "alg": alg_name(k.alg), "public_key": k.b64(), "status": status });
        let mut keys = vec![entry(&self.public, "current")];
        keys.extend(self.previous.iter().map(|k| entry(k, "previous")));
        serde_json::json!({ "keys": keys })
    }
}

/// The algorithm's name in `GET /v1/keys`.
fn alg_name(alg: Alg) -> &'static str {
    match alg {
        Alg::Ed25519 => "Ed25519",
        Alg::Sm2 => "SM2",
    }
}

fn header(alg: Alg, kid: &str, sig: &[u8]) -> String {
    match alg {
        Alg::Ed25519 => format!("keyid={kid},sig={}", B64.encode(sig)),
        Alg::Sm2 => format!("alg=sm2,keyid={kid},sig={}", B64.encode(sig)),
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

/// The algorithm an `Xj-Signature` header names (`alg=`; absent: Ed25519).
pub fn header_alg(header: &str) -> Result<Alg, String> {
    match header.split(',').find_map(|p| p.trim().strip_prefix("alg=")) {
        None | Some("ed25519") => Ok(Alg::Ed25519),
        Some("sm2") => Ok(Alg::Sm2),
        Some(other) => Err(format!("alg={other} is not a signature algorithm of the hub: ed25519 or sm2")),
    }
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

/// Key id of an Ed25519 key: the first 16 hex characters of SHA-256 over it.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.to_bytes()))[..16].to_string()
}

/// Verifies an `Xj-Signature` header value against a public key (base64)
/// of the algorithm the header names.
pub fn verify_header(public_key_b64: &str, header: &str, body: &[u8]) -> Result<(), String> {
    verify_header_as(header_alg(header)?, public_key_b64, header, body)
}

/// Verifies an `Xj-Signature` header value made with a key of `alg` — an
/// organisation's registered algorithm: a header naming another one is
/// refused, whatever it carries.
pub fn verify_header_as(alg: Alg, public_key_b64: &str, header: &str, body: &[u8]) -> Result<(), String> {
    let said = header_alg(header)?;
    if said != alg {
        return Err(format!("the signature says alg={}, the key is {}", said.as_str(), alg.as_str()));
    }
    let key = PublicKey::parse(alg, public_key_b64)?;
    let sig = header
        .split(',')
        .find_map(|p| p.trim().strip_prefix("sig="))
        .ok_or_else(|| "no sig= in the signature header".to_string())?;
    let sig = B64.decode(sig).map_err(|e| format!("signature is not base64: {e}"))?;
    key.verify(body, &sig)
}

/// The header a recipient answers a delivery with to sign its receipt.
pub const RECEIPT_HEADER: &str = "xj-receipt-signature";

/// How far a receipt's `at=` may be from the hub's clock: the receiver
/// signs when it stores, the hub checks as the answer arrives.
pub const RECEIPT_SKEW_SECONDS: i64 = 3600;

/// What a recipient signs to say it received a delivery (docs/security.md,
/// "Signed receipts"): the message (sender and id), who received it, the
/// SHA-256 of the exact bytes delivered, and when.
pub fn receipt_text(sender: &str, msg_id: &str, recipient: &str, body_sha256: &str, at: &str) -> String {
    format!("xj-receipt-v1\n{sender}\n{msg_id}\n{recipient}\n{body_sha256}\n{at}")
}

/// A receipt as the hub checked and recorded it: the parts of the
/// recipient's header, each its own field (so that no screen's masking of
/// `sig=…` text hides the evidence), and the digest it covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedReceipt {
    /// When the recipient says it received the delivery (RFC 3339).
    pub at: String,
    /// SHA-256 (hex) of the bytes delivered, which the signature covers.
    pub sha256: String,
    /// `ed25519` or `sm2`.
    pub alg: String,
    /// The recipient's label for its key.
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

impl SignedReceipt {
    /// The `Xj-Receipt-Signature` header it was sent as.
    pub fn header(&self) -> String {
        let alg = if self.alg == "sm2" { "alg=sm2," } else { "" };
        format!("{alg}keyid={},at={},sig={}", self.keyid, self.at, self.sig)
    }
}

/// Checks an `Xj-Receipt-Signature` header against the recipient's
/// registered key: it must name an `at=` within
/// [`RECEIPT_SKEW_SECONDS`] of `now` and sign [`receipt_text`].
pub fn verify_receipt(
    alg: Alg,
    public_key_b64: &str,
    header: &str,
    message: (&str, &str),
    recipient: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SignedReceipt, String> {
    let at = header
        .split(',')
        .find_map(|p| p.trim().strip_prefix("at="))
        .ok_or_else(|| "no at=<RFC 3339 time of receipt> in Xj-Receipt-Signature".to_string())?;
    let when = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| format!("at={at} is not an RFC 3339 time: {e}"))?;
    if (when.with_timezone(&chrono::Utc) - now).num_seconds().abs() > RECEIPT_SKEW_SECONDS {
        return Err(format!("at={at} is more than an hour from the hub's clock"));
    }
    let sha256 = hex::encode(Sha256::digest(body));
    let text = receipt_text(message.0, message.1, recipient, &sha256, at);
    verify_header_as(alg, public_key_b64, header, text.as_bytes())?;
    let part = |name: &str| header.split(',').find_map(|p| p.trim().strip_prefix(name)).unwrap_or_default().to_string();
    // The label is the recipient's and outside the signed text: it is
    // recorded only as short visible ASCII.
    let keyid = part("keyid=");
    if keyid.is_empty() || keyid.len() > 64 || !keyid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("keyid= must be 1 to 64 visible ASCII characters".into());
    }
    Ok(SignedReceipt { at: at.to_string(), sha256, alg: alg.as_str().to_string(), keyid, sig: part("sig=") })
}

/// What a receipt means for `org` (docs/security.md, "Signed receipts"),
/// whether it came with a webhook answer, a pull acknowledgement or on
/// NATS: checked against its registered key when it sent one (a receipt
/// that does not verify fails the attempt or the acknowledgement), required
/// when it must sign them; ignored from an organisation with no key.
pub fn check_receipt(
    org: &xj_config::Org,
    message: (&str, &str),
    body: &[u8],
    header: Option<&str>,
) -> Result<Option<SignedReceipt>, String> {
    let Some(key) = org.public_key.as_deref() else { return Ok(None) };
    match header {
        None if org.sign_receipts => {
            Err(format!("{} must sign its receipts (sign_receipts): the answer has no Xj-Receipt-Signature", org.id))
        }
        None => Ok(None),
        Some(h) => verify_receipt(org.key_alg, key, h, message, &org.id, body, chrono::Utc::now())
            .map(Some)
            .map_err(|e| format!("Xj-Receipt-Signature does not verify against the key {} registered: {e}", org.id)),
    }
}

/// Signs a receipt as a recipient does (its systems; tests).
pub fn sign_receipt(key: &HubKey, kid: &str, message: (&str, &str), recipient: &str, body: &[u8], at: &str) -> String {
    let text = receipt_text(message.0, message.1, recipient, &hex::encode(Sha256::digest(body)), at);
    let sig = key.secret.sign(text.as_bytes());
    let alg = if key.alg() == Alg::Sm2 { "alg=sm2," } else { "" };
    format!("{alg}keyid={kid},at={at},sig={}", B64.encode(sig))
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

/// Signs `body` with any key as an organisation would (tests).
pub fn sign_as(key: &HubKey, kid: &str, body: &[u8]) -> String {
    header(key.alg(), kid, &key.secret.sign(body))
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
        let (old, new) = HubKey::rotate(&path, Alg::Ed25519).unwrap();
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

    /// The SM2 standard's example on the recommended curve (GM/T 0003.5-2012
    /// Annex A, the curve of GB/T 32918.5-2017; the values OpenSSL's
    /// test/sm2_internal_test.c reproduces): the example's private key gives
    /// its public key, `e = SM3(Z_A ‖ "message digest")` with the published
    /// `Z_A` for the default id, and the published signature verifies under
    /// the hub's distinguishing id — and fails for another message or id.
    #[test]
    fn sm2_the_standard_example_verifies() {
        use sm2::dsa::signature::Verifier as _;
        use sm2::elliptic_curve::sec1::ToEncodedPoint;
        let h = |s: &str| hex::decode(s).unwrap();
        let d = h("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8");
        let secret = sm2::SecretKey::from_slice(&d).unwrap();
        let point = secret.public_key().to_encoded_point(false);
        assert_eq!(
            point.x().unwrap().as_slice(),
            h("09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020")
        );
        assert_eq!(
            point.y().unwrap().as_slice(),
            h("CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
        );
        let mut za_m = h("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3");
        za_m.extend_from_slice(b"message digest");
        assert_eq!(
            hex::encode_upper(sm3::Sm3::digest(&za_m)),
            "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
        );
        let mut rs = h("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3");
        rs.extend(h("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"));
        let sig = sm2::dsa::Signature::from_slice(&rs).unwrap();
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DIST_ID, point.as_bytes()).unwrap();
        assert!(key.verify(b"message digest", &sig).is_ok(), "the standard's signature");
        assert!(key.verify(b"message digesT", &sig).is_err());
        let other = sm2::dsa::VerifyingKey::from_sec1_bytes("ALICE123@YAHOO.COM", point.as_bytes()).unwrap();
        assert!(other.verify(b"message digest", &sig).is_err(), "the id is part of what is signed");
        // The hub's own path: the example's key registered as an
        // organisation's, its signature given as an Xj-Signature header.
        let b64 = B64.encode(point.as_bytes());
        let header = format!("alg=sm2,keyid=annex-a,sig={}", B64.encode(&rs));
        assert!(verify_header_as(Alg::Sm2, &b64, &header, b"message digest").is_ok());
        assert!(verify_header_as(Alg::Sm2, &b64, &header, b"message digesT").is_err());
    }

    /// GB/T 32905-2016 Annex A: the two examples of SM3.
    #[test]
    fn sm3_gives_the_standards_examples() {
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3::Sm3::digest("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn an_sm2_hub_signs_with_alg_and_its_keys_say_sm2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub_sm2.key");
        let key = HubKey::load_or_create_as(&path, Alg::Sm2).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("sm2:"));
        let again = HubKey::load_or_create_as(&path, Alg::Sm2).unwrap();
        assert_eq!(again.kid(), key.kid(), "the same key read back");
        let sig = key.sign_header(b"body");
        assert!(sig.starts_with(&format!("alg=sm2,keyid={},sig=", key.kid())), "{sig}");
        let raw = B64.decode(key.public_key_b64()).unwrap();
        assert_eq!((raw.len(), raw[0]), (65, 4), "the uncompressed point");
        verify_header(&key.public_key_b64(), &sig, b"body").unwrap();
        assert!(verify_header(&key.public_key_b64(), &sig, b"bodY").is_err());
        let keys = key.jwks();
        assert_eq!(keys["keys"][0]["alg"], "SM2");
        verify_with_keys(&keys, &sig, b"body").unwrap();
        // The header must say what the key is: an SM2 signature passed off
        // as Ed25519 (or the other way round) is refused.
        let stripped = sig.replacen("alg=sm2,", "", 1);
        assert!(verify_header(&key.public_key_b64(), &stripped, b"body").is_err());
        let e = verify_header_as(Alg::Ed25519, &key.public_key_b64(), &sig, b"body").unwrap_err();
        assert!(e.contains("alg=sm2"), "{e}");
        // A hub told to sign with Ed25519 does not take the SM2 key.
        let e = HubKey::load_or_create_as(&path, Alg::Ed25519).err().unwrap().to_string();
        assert!(e.contains("sm2") && e.contains("ed25519"), "{e}");
    }

    #[test]
    fn rotating_from_ed25519_to_sm2_keeps_both_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let first = HubKey::load_or_create(&path).unwrap();
        let old_sig = first.sign_header(b"body");
        let (old, new) = HubKey::rotate(&path, Alg::Sm2).unwrap();
        assert_eq!((old.alg(), new.alg()), (Alg::Ed25519, Alg::Sm2));
        let ring = HubKey::load_or_create_as(&path, Alg::Sm2).unwrap().with_previous(&[old.public_key_b64()]).unwrap();
        let keys = ring.jwks();
        assert_eq!((keys["keys"][0]["alg"].as_str(), keys["keys"][1]["alg"].as_str()), (Some("SM2"), Some("Ed25519")));
        verify_with_keys(&keys, &old_sig, b"body").unwrap();
        verify_with_keys(&keys, &ring.sign_header(b"body"), b"body").unwrap();
        // Key ids: SHA-256 of an Ed25519 key, SM3 of an SM2 key.
        assert_eq!(old.kid(), &hex::encode(Sha256::digest(B64.decode(old.public_key_b64()).unwrap()))[..16]);
        assert_eq!(new.kid(), &hex::encode(sm3::Sm3::digest(B64.decode(new.public_key_b64()).unwrap()))[..16]);
    }

    #[test]
    fn receipts_verify_for_their_bytes_time_and_recipient_only() {
        for alg in [Alg::Ed25519, Alg::Sm2] {
            let key = HubKey::generate(alg);
            let now = chrono::Utc::now();
            let at = now.to_rfc3339();
            let h = sign_receipt(&key, "k1", ("qh-market", "M-1"), "qh-police", b"body", &at);
            let r = verify_receipt(alg, &key.public_key_b64(), &h, ("qh-market", "M-1"), "qh-police", b"body", now)
                .unwrap();
            assert_eq!((r.at.as_str(), r.keyid.as_str(), r.alg.as_str()), (at.as_str(), "k1", alg.as_str()));
            assert_eq!(r.header(), h, "the header rebuilt from the record");
            let pk = key.public_key_b64();
            assert!(verify_receipt(alg, &pk, &h, ("qh-market", "M-1"), "qh-police", b"bodY", now).is_err());
            assert!(verify_receipt(alg, &pk, &h, ("qh-market", "M-2"), "qh-police", b"body", now).is_err());
            assert!(verify_receipt(alg, &pk, &h, ("qh-market", "M-1"), "qh-other", b"body", now).is_err());
            let odd = sign_receipt(&key, "k\u{1b}[2J", ("qh-market", "M-1"), "qh-police", b"body", &at);
            let e = verify_receipt(alg, &pk, &odd, ("qh-market", "M-1"), "qh-police", b"body", now).unwrap_err();
            assert!(e.contains("keyid"), "{e}");
            let later = now + chrono::Duration::hours(2);
            let e = verify_receipt(alg, &pk, &h, ("qh-market", "M-1"), "qh-police", b"body", later).unwrap_err();
            assert!(e.contains("hour"), "{e}");
        }
    }
}
