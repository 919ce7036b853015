//! Webhook authentication, as pure functions over raw bytes.
//!
//! Every check here runs on the **raw body bytes** before anything parses them: Meta signs the
//! escaped wire form (`\u00e9`, `\/`), so hashing re-serialised JSON fails on the first non-ASCII
//! character (Meta Graph API "Webhooks", section "Validate payloads"). All comparisons are constant
//! time (`hmac::Mac::verify_slice`, `subtle::ConstantTimeEq`).
//!
//! - [`meta`]: the `GET` subscription handshake and `X-Hub-Signature-256: sha256=<hex>`.
//! - [`shared_secret`]: WasenderAPI's `X-Webhook-Signature`, a static secret, **not** an HMAC.
//! - [`hmac_header`]: generic HMAC headers (e.g. WAHA `X-Webhook-Hmac`, HMAC-SHA512 hex).
//! - [`standard_webhooks`]: the outbound signature wagate puts on its own deliveries.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Why a request failed authentication. The HTTP layer maps every variant to `401` and never
/// tells the client which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is absent.
    #[error("signature header missing")]
    Missing,
    /// The header is present but not in the expected format (prefix, hex or base64).
    #[error("signature header malformed")]
    Malformed,
    /// Well-formed, but no configured secret produces it.
    #[error("signature mismatch")]
    Mismatch,
}

/// HMAC digest used by a generic HMAC source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA256 (32-byte tag).
    Sha256,
    /// HMAC-SHA512 (64-byte tag), e.g. WAHA.
    Sha512,
}

/// How the tag is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase or uppercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// Computes the raw HMAC tag of `body` under `secret`.
pub fn hmac_tag(algorithm: Algorithm, secret: &[u8], body: &[u8]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => {
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::Sha512 => {
            let mut mac =
                Hmac::<sha2::Sha512>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Checks `tag` against every secret in constant time; `Ok` when one matches (key rotation).
fn verify_tag<S: AsRef<[u8]>>(
    algorithm: Algorithm,
    tag: &[u8],
    secrets: &[S],
    body: &[u8],
) -> Result<(), VerifyError> {
    // Evaluate every secret so timing does not reveal which one matched.
    let mut ok = false;
    for secret in secrets {
        let good = match algorithm {
            Algorithm::Sha256 => {
                let mut mac =
                    Hmac::<sha2::Sha256>::new_from_slice(secret.as_ref()).expect("any key length");
                mac.update(body);
                mac.verify_slice(tag).is_ok()
            }
            Algorithm::Sha512 => {
                let mut mac =
                    Hmac::<sha2::Sha512>::new_from_slice(secret.as_ref()).expect("any key length");
                mac.update(body);
                mac.verify_slice(tag).is_ok()
            }
        };
        ok |= good;
    }
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Meta WhatsApp Cloud API (Graph API webhooks).
pub mod meta {
    use super::*;

    /// The header Meta signs POSTs with.
    pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

    /// Returns the header value Meta would send for `body`: `sha256=` + 64 lowercase hex digits.
    pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
        format!(
            "sha256={}",
            hex::encode(hmac_tag(Algorithm::Sha256, app_secret, body))
        )
    }

    /// Verifies `X-Hub-Signature-256` over the raw `body` against any of `app_secrets`.
    ///
    /// `header` is the raw header value, `None` when absent.
    ///
    /// # Errors
    /// [`VerifyError::Missing`] without a header, [`VerifyError::Malformed`] unless it is
    /// `sha256=` followed by 64 hex digits, [`VerifyError::Mismatch`] when no secret matches.
    pub fn verify<S: AsRef<[u8]>>(
        header: Option<&[u8]>,
        body: &[u8],
        app_secrets: &[S],
    ) -> Result<(), VerifyError> {
        let header = header.ok_or(VerifyError::Missing)?;
        let hex_part = header
            .strip_prefix(b"sha256=")
            .ok_or(VerifyError::Malformed)?;
        if hex_part.len() != 64 {
            return Err(VerifyError::Malformed);
        }
        let mut tag = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut tag).map_err(|_| VerifyError::Malformed)?;
        verify_tag(Algorithm::Sha256, &tag, app_secrets, body)
    }

    /// Outcome of the `GET` subscription handshake (Meta "Create a webhook endpoint",
    /// section "Verification requests").
    #[derive(Debug, PartialEq, Eq)]
    pub enum Handshake<'a> {
        /// Answer `200`, `text/plain`, with this exact `hub.challenge` value as the body.
        Accept(&'a str),
        /// `hub.mode` is not `subscribe` or the token is wrong: answer `403`.
        Forbidden,
        /// A required parameter is missing: answer `400`.
        BadRequest,
    }

    /// Decides the handshake from the decoded `hub.mode`, `hub.verify_token` and
    /// `hub.challenge` query parameters; the token comparison is constant time.
    pub fn handshake<'a>(
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&'a str>,
        verify_token: &str,
    ) -> Handshake<'a> {
        let (Some(mode), Some(token), Some(challenge)) = (mode, token, challenge) else {
            return Handshake::BadRequest;
        };
        let token_ok: bool = token.as_bytes().ct_eq(verify_token.as_bytes()).into();
        if mode == "subscribe" && token_ok && !verify_token.is_empty() {
            Handshake::Accept(challenge)
        } else {
            Handshake::Forbidden
        }
    }
}

/// Shared-secret headers, e.g. WasenderAPI `X-Webhook-Signature`: the provider sends the secret
/// itself, so this authenticates the sender but does not protect the body (no HMAC, no timestamp,
/// no replay protection; WasenderAPI docs, "Webhook security").
pub mod shared_secret {
    use super::*;

    /// WasenderAPI's header name.
    pub const WASENDER_HEADER: &str = "x-webhook-signature";

    /// Constant-time equality of the header with the secret.
    ///
    /// # Errors
    /// [`VerifyError::Missing`] without a header, [`VerifyError::Mismatch`] otherwise.
    pub fn verify(header: Option<&[u8]>, secret: &[u8]) -> Result<(), VerifyError> {
        let header = header.ok_or(VerifyError::Missing)?;
        if bool::from(header.ct_eq(secret)) && !secret.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// Generic HMAC signature headers (WAHA `X-Webhook-Hmac`, custom senders).
pub mod hmac_header {
    use super::*;
    use base64::Engine as _;

    /// Returns the header value for `body`: `prefix` + encoded tag.
    pub fn sign(
        algorithm: Algorithm,
        encoding: Encoding,
        prefix: &str,
        secret: &[u8],
        body: &[u8],
    ) -> String {
        let tag = hmac_tag(algorithm, secret, body);
        match encoding {
            Encoding::Hex => format!("{prefix}{}", hex::encode(tag)),
            Encoding::Base64 => format!(
                "{prefix}{}",
                base64::engine::general_purpose::STANDARD.encode(tag)
            ),
        }
    }

    /// Verifies `prefix` + encoded HMAC tag of `body` against any of `secrets`.
    ///
    /// # Errors
    /// [`VerifyError::Missing`], [`VerifyError::Malformed`] (prefix or encoding) or
    /// [`VerifyError::Mismatch`].
    pub fn verify<S: AsRef<[u8]>>(
        header: Option<&[u8]>,
        algorithm: Algorithm,
        encoding: Encoding,
        prefix: &str,
        body: &[u8],
        secrets: &[S],
    ) -> Result<(), VerifyError> {
        let header = header.ok_or(VerifyError::Missing)?;
        let encoded = header
            .strip_prefix(prefix.as_bytes())
            .ok_or(VerifyError::Malformed)?;
        let tag = match encoding {
            Encoding::Hex => hex::decode(encoded).map_err(|_| VerifyError::Malformed)?,
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| VerifyError::Malformed)?,
        };
        verify_tag(algorithm, &tag, secrets, body)
    }
}

/// Standard Webhooks (standardwebhooks.com, "Signature scheme"): the signature wagate puts on
/// the deliveries it makes, so the receiving app can verify wagate.
///
/// Signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the header is
/// `webhook-signature: v1,<base64 HMAC-SHA256>`. A secret written `whsec_<base64>` is decoded
/// from base64; any other secret is used as raw bytes.
pub mod standard_webhooks {
    use super::*;
    use base64::Engine as _;

    /// Decodes a configured secret (`whsec_` prefix = base64 key, else raw bytes).
    pub fn key(secret: &str) -> Vec<u8> {
        match secret.strip_prefix("whsec_") {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_else(|_| secret.as_bytes().to_vec()),
            None => secret.as_bytes().to_vec(),
        }
    }

    /// Returns the `webhook-signature` header value (`v1,<base64>`).
    ///
    /// `timestamp` is unix seconds.
    pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// Verifies a `webhook-signature` header (space-separated `v1,<sig>` list).
    ///
    /// # Errors
    /// [`VerifyError::Mismatch`] when no listed `v1` signature matches.
    pub fn verify(
        key: &[u8],
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        header: &str,
    ) -> Result<(), VerifyError> {
        let expected = sign(key, msg_id, timestamp, body);
        let ok = header
            .split(' ')
            .any(|candidate| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test_app_secret";
    // Vectors from the payload corpus index (HMAC-SHA256, key `test_app_secret`, file bytes).
    const WIRE_UNICODE: &[u8] =
        include_bytes!("../../../testdata/payloads/cloud_msg_text_unicode_wire_escaped.json");
    const WIRE_IMAGE: &[u8] =
        include_bytes!("../../../testdata/payloads/cloud_msg_image_wire_escaped.json");

    #[test]
    fn corpus_vectors_match_meta_signatures() {
        assert_eq!(
            meta::sign(SECRET, WIRE_UNICODE),
            "sha256=a293525d155ef589e7ea3757144b2832700b7dfc4729a8260e0aac12dc441430"
        );
        assert_eq!(
            meta::sign(SECRET, WIRE_IMAGE),
            "sha256=880e4211f7a060dde2d0f98e9d3fd687d9bf82d85afa95c43d8ef56d54972fa0"
        );
    }

    #[test]
    fn naive_reserialised_signature_is_rejected() {
        let naive = b"sha256=4c7eee0e956861e282b020c27c8ff004bc6ba9f841ce9d2d787fa6f95881b2b0";
        assert_eq!(
            meta::verify(Some(naive), WIRE_UNICODE, &[SECRET]),
            Err(VerifyError::Mismatch)
        );
        let naive = b"sha256=11a3c016aa38aa0983f031f1f5b476aef557bc5b9edb3f55a3500c335323b646";
        assert_eq!(
            meta::verify(Some(naive), WIRE_IMAGE, &[SECRET]),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rotated_secrets_accept_either() {
        let sig = meta::sign(b"old", b"{}");
        assert_eq!(
            meta::verify(Some(sig.as_bytes()), b"{}", &[&b"new"[..], &b"old"[..]]),
            Ok(())
        );
        assert_eq!(
            meta::verify(Some(sig.as_bytes()), b"{}", &[&b"new"[..]]),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_and_missing_headers() {
        assert_eq!(
            meta::verify(None, b"{}", &[SECRET]),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            meta::verify(Some(b"sha1=abc"), b"{}", &[SECRET]),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            meta::verify(Some(b"sha256=zz"), b"{}", &[SECRET]),
            Err(VerifyError::Malformed)
        );
        let upper = meta::sign(SECRET, b"{}")
            .to_uppercase()
            .replace("SHA256=", "sha256=");
        assert_eq!(
            meta::verify(Some(upper.as_bytes()), b"{}", &[SECRET]),
            Ok(())
        );
    }

    #[test]
    fn handshake_cases() {
        use meta::Handshake::*;
        assert_eq!(
            meta::handshake(Some("subscribe"), Some("tok"), Some("123"), "tok"),
            Accept("123")
        );
        assert_eq!(
            meta::handshake(Some("subscribe"), Some("bad"), Some("123"), "tok"),
            Forbidden
        );
        assert_eq!(
            meta::handshake(Some("unsubscribe"), Some("tok"), Some("123"), "tok"),
            Forbidden
        );
        assert_eq!(
            meta::handshake(None, Some("tok"), Some("123"), "tok"),
            BadRequest
        );
        assert_eq!(
            meta::handshake(Some("subscribe"), Some("tok"), None, "tok"),
            BadRequest
        );
    }

    #[test]
    fn shared_secret_and_generic_hmac() {
        assert_eq!(shared_secret::verify(Some(b"s3cret"), b"s3cret"), Ok(()));
        assert_eq!(
            shared_secret::verify(Some(b"s3cre"), b"s3cret"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            shared_secret::verify(None, b"s3cret"),
            Err(VerifyError::Missing)
        );
        let h = hmac_header::sign(Algorithm::Sha512, Encoding::Hex, "", b"k", b"body");
        assert_eq!(h.len(), 128);
        assert!(
            hmac_header::verify(
                Some(h.as_bytes()),
                Algorithm::Sha512,
                Encoding::Hex,
                "",
                b"body",
                &[b"k"]
            )
            .is_ok()
        );
        assert!(
            hmac_header::verify(
                Some(h.as_bytes()),
                Algorithm::Sha512,
                Encoding::Hex,
                "",
                b"bodx",
                &[b"k"]
            )
            .is_err()
        );
        let b = hmac_header::sign(
            Algorithm::Sha256,
            Encoding::Base64,
            "sha256=",
            b"k",
            b"body",
        );
        assert!(
            hmac_header::verify(
                Some(b.as_bytes()),
                Algorithm::Sha256,
                Encoding::Base64,
                "sha256=",
                b"body",
                &[b"k"]
            )
            .is_ok()
        );
    }

    #[test]
    fn standard_webhooks_spec_example() {
        // Example from the Standard Webhooks specification.
        let key = standard_webhooks::key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = standard_webhooks::sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(
            standard_webhooks::verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &sig)
                .is_ok()
        );
    }
}
