//! RFC 3161 time-stamp tokens on the ledger's signed heads
//! (`[ledger] timestamp_url`, docs/security.md "Signed heads and time-stamps").
//!
//! The hub's own clock is only the hub's word; a token from a time-stamping
//! authority (TSA) is a third party's signature that the head existed at
//! its `genTime`. The hub asks for one over a signed head, checks it as a
//! verifier would, and keeps the token's DER; an evidence package carries
//! it and `xj audit verify-package` checks it again offline. Which TSA
//! certificates to trust is the verifier's call: the check names the TSA's
//! certificate (subject and SHA-256) for them to compare.

use cmpv2::status::PkiStatus;
use cms::cert::CertificateChoices;
use cms::cert::x509::ext::pkix::ExtendedKeyUsage;
use cms::cert::x509::ext::pkix::SubjectKeyIdentifier;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Int, OctetString};
use der::oid::ObjectIdentifier;
use der::oid::db::{rfc5280, rfc5911, rfc5912};
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::spki::AlgorithmIdentifier;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

/// The largest answer read from a time-stamping authority.
const MAX_REPLY: usize = 64 * 1024;

/// `id-ct-TSTInfo` (RFC 3161 §2.4.2).
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// What a checked token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// `genTime`, RFC 3339.
    pub gen_time: String,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// SHA-256 of the TSA certificate (DER), hex: what a verifier compares
    /// with the certificate the TSA publishes.
    pub cert_sha256: String,
}

/// A DER `TimeStampReq` for the SHA-256 `imprint`, asking for the TSA's
/// certificate in the token and binding it to `nonce`.
pub fn request(imprint: &[u8; 32], nonce: u64) -> Result<Vec<u8>, String> {
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier { oid: rfc5912::ID_SHA_256, parameters: None },
            hashed_message: OctetString::new(imprint.to_vec()).map_err(|e| e.to_string())?,
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce_bytes(nonce)).map_err(|e| e.to_string())?),
        cert_req: true,
        extensions: None,
    };
    req.to_der().map_err(|e| e.to_string())
}

/// A nonce as a positive DER INTEGER's content (a leading zero when the
/// top bit is set).
fn nonce_bytes(nonce: u64) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(&nonce.to_be_bytes());
    while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
        b.remove(0);
    }
    b
}

/// Asks the TSA at `url` for a token over `imprint`; the token's DER once
/// it checks (imprint, nonce, signature).
pub async fn stamp(client: &reqwest::Client, url: &str, imprint: &[u8; 32]) -> Result<(Vec<u8>, Stamped), String> {
    let nonce = rand::random::<u64>();
    let req = request(imprint, nonce)?;
    let resp = client
        .post(url)
        .header("content-type", "application/timestamp-query")
        .body(req)
        .send()
        .await
        .map_err(|e| format!("the time-stamping authority at {url} cannot be reached: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("the time-stamping authority at {url} answered {status}"));
    }
    // A token is a few KiB; an answer larger than this is not one, and is
    // not read further.
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("the time-stamping authority's answer: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPLY {
            return Err(format!("the time-stamping authority's answer is over {MAX_REPLY} bytes: not a token"));
        }
    }
    let reply = TimeStampResp::from_der(&body).map_err(|e| format!("the TSA's answer is not a TimeStampResp: {e}"))?;
    let granted = matches!(reply.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods);
    let Some(token) = reply.time_stamp_token.filter(|_| granted) else {
        return Err(format!("the TSA refused the request (status {:?})", reply.status.status));
    };
    let der = token.to_der().map_err(|e| e.to_string())?;
    let stamped = verify(&der, imprint, Some(nonce))?;
    Ok((der, stamped))
}

/// Checks a token (DER `ContentInfo`) offline: a SignedData over a TSTInfo
/// whose imprint is SHA-256 `imprint` (and whose nonce is `nonce`, when
/// given), signed by the certificate it carries, which is for
/// time-stamping. Each failure says which part did not hold.
pub fn verify(token: &[u8], imprint: &[u8; 32], nonce: Option<u64>) -> Result<Stamped, String> {
    let ci = ContentInfo::from_der(token).map_err(|e| format!("the time-stamp token cannot be read: {e}"))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err("the time-stamp token is not a CMS SignedData".into());
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e| format!("the time-stamp token's SignedData: {e}"))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err("the time-stamp token does not hold a TSTInfo".into());
    }
    let econtent = sd.encap_content_info.econtent.as_ref().ok_or("the time-stamp token holds no TSTInfo")?;
    let tst_der = econtent.value();
    let tst = TstInfo::from_der(tst_der).map_err(|e| format!("the time-stamp token's TSTInfo: {e}"))?;
    if tst.message_imprint.hash_algorithm.oid != rfc5912::ID_SHA_256 {
        return Err("the time-stamp token is not over a SHA-256 imprint".into());
    }
    if tst.message_imprint.hashed_message.as_bytes() != imprint {
        return Err("the time-stamp token is over another imprint than the signed head's".into());
    }
    if let Some(n) = nonce
        && tst.nonce.as_ref().map(Int::as_bytes) != Some(nonce_bytes(n).as_slice())
    {
        return Err("the time-stamp token does not answer this request (nonce)".into());
    }
    let signer = sd.signer_infos.0.iter().next().ok_or("the time-stamp token has no signer")?;
    let cert = signer_cert(&sd, &signer.sid)?;
    let attrs = signer.signed_attrs.as_ref().ok_or("the time-stamp token's signer signs no attributes")?;
    let digest = digest_with(&signer.digest_alg.oid, tst_der)?;
    let attr = |oid: ObjectIdentifier| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next());
    let md = attr(rfc5911::ID_MESSAGE_DIGEST).ok_or("the time-stamp token's signer gives no message digest")?;
    let md: OctetString = md.decode_as().map_err(|e| format!("the token's message digest: {e}"))?;
    if md.as_bytes() != digest.as_slice() {
        return Err("the time-stamp token's TSTInfo does not match the digest its signer signed".into());
    }
    let ct = attr(rfc5911::ID_CONTENT_TYPE).ok_or("the time-stamp token's signer gives no content type")?;
    if ct.decode_as::<ObjectIdentifier>().ok() != Some(ID_CT_TST_INFO) {
        return Err("the time-stamp token's signer signs another content type".into());
    }
    let signed = attrs.to_der().map_err(|e| e.to_string())?;
    check_signature(
        &cert,
        &signer.signature_algorithm.oid,
        &signer.digest_alg.oid,
        &signed,
        signer.signature.as_bytes(),
    )?;
    if !for_time_stamping(&cert) {
        return Err("the time-stamp token's certificate is not for time-stamping (extendedKeyUsage)".into());
    }
    let cert_der = cert.to_der().map_err(|e| e.to_string())?;
    let secs = tst.gen_time.to_unix_duration().as_secs();
    let gen_time = chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or_default(), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(Stamped {
        gen_time,
        tsa: cert.tbs_certificate.subject.to_string(),
        cert_sha256: hex::encode(Sha256::digest(&cert_der)),
    })
}

/// The certificate the token names as its signer's.
fn signer_cert(sd: &SignedData, sid: &SignerIdentifier) -> Result<Certificate, String> {
    let certs = sd.certificates.as_ref().ok_or("the time-stamp token carries no certificate")?;
    for c in certs.0.iter() {
        let CertificateChoices::Certificate(cert) = c else { continue };
        let tbs = &cert.tbs_certificate;
        let matches = match sid {
            SignerIdentifier::IssuerAndSerialNumber(is) => {
                tbs.issuer == is.issuer && tbs.serial_number == is.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                cert.tbs_certificate.get::<SubjectKeyIdentifier>().ok().flatten().is_some_and(|(_, k)| &k == ski)
            }
        };
        if matches {
            return Ok(cert.clone());
        }
    }
    Err("the time-stamp token does not carry its signer's certificate".into())
}

fn digest_with(oid: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, String> {
    Ok(match *oid {
        rfc5912::ID_SHA_256 => Sha256::digest(data).to_vec(),
        rfc5912::ID_SHA_384 => Sha384::digest(data).to_vec(),
        rfc5912::ID_SHA_512 => Sha512::digest(data).to_vec(),
        other => return Err(format!("the time-stamp token's digest {other} is not supported (SHA-2 only)")),
    })
}

/// RSA PKCS #1 v1.5 with SHA-2: what time-stamping authorities sign with.
fn check_signature(
    cert: &Certificate,
    sig_alg: &ObjectIdentifier,
    digest_alg: &ObjectIdentifier,
    signed: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| "the time-stamp token's certificate has no RSA key (RSA is what is supported)".to_string())?;
    let hash = match *sig_alg {
        rfc5912::RSA_ENCRYPTION => *digest_alg,
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => rfc5912::ID_SHA_256,
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => rfc5912::ID_SHA_384,
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => rfc5912::ID_SHA_512,
        other => return Err(format!("the time-stamp token's signature algorithm {other} is not supported")),
    };
    let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
    let ok = match hash {
        rfc5912::ID_SHA_256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(signed, &sig).is_ok(),
        rfc5912::ID_SHA_384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key).verify(signed, &sig).is_ok(),
        rfc5912::ID_SHA_512 => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key).verify(signed, &sig).is_ok(),
        other => return Err(format!("the time-stamp token's digest {other} is not supported (SHA-2 only)")),
    };
    if ok { Ok(()) } else { Err("the time-stamping authority's signature on the token does not verify".into()) }
}

fn for_time_stamping(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate.get::<ExtendedKeyUsage>(),
        Ok(Some((_, eku))) if eku.0.contains(&rfc5280::ID_KP_TIME_STAMPING)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_with_its_nonce() {
        let imprint = [7u8; 32];
        let der = request(&imprint, u64::MAX).unwrap();
        let req = TimeStampReq::from_der(&der).unwrap();
        assert_eq!(req.message_imprint.hashed_message.as_bytes(), &imprint);
        assert!(req.cert_req);
        assert_eq!(req.nonce.unwrap().as_bytes(), nonce_bytes(u64::MAX).as_slice());
        assert_eq!(nonce_bytes(1), vec![1]);
        assert_eq!(nonce_bytes(0x80), vec![0, 0x80]);
    }

    #[test]
    fn what_is_not_a_token_is_named() {
        let e = verify(b"not der", &[0; 32], None).unwrap_err();
        assert!(e.starts_with("the time-stamp token cannot be read"), "{e}");
    }
}
