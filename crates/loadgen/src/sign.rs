//! Request signatures per provider, computed over the exact body bytes.

use http::{HeaderName, HeaderValue};
use wagate_verify::{Algorithm, Encoding, hmac_header, meta, shared_secret};

/// How requests are authenticated.
#[derive(Clone, PartialEq)]
pub enum Signer {
    /// No signature header.
    None,
    /// Meta: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Meta {
        /// App secret.
        app_secret: Vec<u8>,
    },
    /// WasenderAPI: `X-Webhook-Signature: <secret>` (a static secret, not an HMAC).
    Wasender {
        /// Webhook secret.
        secret: Vec<u8>,
    },
    /// Generic HMAC header: `<header>: <prefix><encoded tag>`.
    Hmac {
        /// Header name, e.g. `x-webhook-hmac`.
        header: HeaderName,
        /// Digest.
        algorithm: Algorithm,
        /// Tag encoding.
        encoding: Encoding,
        /// Text before the tag, e.g. `sha256=`.
        prefix: String,
        /// Secret.
        secret: Vec<u8>,
    },
}

impl std::fmt::Debug for Signer {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::None => f.write_str("None"),
            Signer::Meta { .. } => f.write_str("Meta { .. }"),
            Signer::Wasender { .. } => f.write_str("Wasender { .. }"),
            Signer::Hmac { header, .. } => write!(f, "Hmac {{ header: {header}, .. }}"),
        }
    }
}

impl Signer {
    /// The header to add for `body`, if any.
    pub fn header(&self, body: &[u8]) -> Option<(HeaderName, HeaderValue)> {
        let (name, value) = match self {
            Signer::None => return None,
            Signer::Meta { app_secret } => (
                HeaderName::from_static(meta::SIGNATURE_HEADER),
                meta::sign(app_secret, body),
            ),
            Signer::Wasender { secret } => (
                HeaderName::from_static(shared_secret::WASENDER_HEADER),
                String::from_utf8_lossy(secret).into_owned(),
            ),
            Signer::Hmac {
                header,
                algorithm,
                encoding,
                prefix,
                secret,
            } => (
                header.clone(),
                hmac_header::sign(*algorithm, *encoding, prefix, secret, body),
            ),
        };
        // Hex/base64 tags are always valid header values; a secret with control characters is not.
        HeaderValue::from_str(&value).ok().map(|v| (name, v))
    }
}
