//! Access tokens: compact JWS (RFC 7515) signed with ES256 (ECDSA P-256, SHA-256), and the
//! public keys as a JWK set (RFC 7517) for `GET /sso/jwks/:client_id`.
//!
//! ES256 over RS256: 64-byte signatures, fast signing, 32-byte private keys that are easy to
//! seal at rest. The signature is RustCrypto's `p256`; the JWS framing is three base64url
//! segments, which is all a JWT library would add here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use serde::Serialize;
use zeroize::Zeroizing;

/// One signing key and its key id (`kid`).
pub struct SigningKey {
    kid: String,
    key: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.kid)
    }
}

impl SigningKey {
    pub fn generate(kid: String) -> Self {
        SigningKey {
            kid,
            key: p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// From the 32-byte private scalar (as sealed in the database).
    pub fn from_bytes(kid: String, bytes: &[u8]) -> Option<Self> {
        let key = p256::ecdsa::SigningKey::from_slice(bytes).ok()?;
        Some(SigningKey { kid, key })
    }

    /// The private scalar, to be sealed. Never store or log it in clear.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.key.to_bytes().to_vec())
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty` EC, `crv` P-256, `x`, `y`, `kid`, `alg`, `use`).
    pub fn public_jwk(&self) -> serde_json::Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        let x = point
            .x()
            .map(|c| URL_SAFE_NO_PAD.encode(c))
            .unwrap_or_default();
        let y = point
            .y()
            .map(|c| URL_SAFE_NO_PAD.encode(c))
            .unwrap_or_default();
        serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.kid, "alg": "ES256", "use": "sig" })
    }

    /// `header.payload.signature` with header `{"alg":"ES256","typ":"JWT","kid":...}`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, crate::Error> {
        let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let h =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(crate::Error::internal)?);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(crate::Error::internal)?);
        let input = format!("{h}.{p}");
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        ))
    }
}

/// The claims of a Tessera access token.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn a_token_verifies_with_the_public_jwk_and_fails_when_tampered() {
        let k = SigningKey::generate("kid1".into());
        let claims = AccessClaims {
            iss: "tessera".into(),
            sub: "user_1".into(),
            sid: "session_1".into(),
            iat: 1,
            exp: 2,
            jti: "j".into(),
        };
        let t = k.sign(&claims).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "kid1");
        let jwk = k.public_jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let point = p256::EncodedPoint::from_affine_coordinates(
            x.as_slice().into(),
            y.as_slice().into(),
            false,
        );
        let vk = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(vk.verify(input.as_bytes(), &sig).is_ok());
        assert!(vk.verify(b"other", &sig).is_err());
        let back: AccessClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn keys_round_trip_through_their_private_bytes() {
        let k = SigningKey::generate("a".into());
        let k2 = SigningKey::from_bytes("a".into(), &k.to_bytes()).unwrap();
        assert_eq!(k.public_jwk(), k2.public_jwk());
        assert!(SigningKey::from_bytes("a".into(), &[0u8; 32]).is_none());
    }
}
