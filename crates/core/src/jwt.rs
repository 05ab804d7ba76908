//! Access tokens: compact JWS (RFC 7515) signed with RS256 (RSASSA-PKCS1-v1_5, SHA-256, 2048-bit
//! keys), and the public keys as a JWK set (RFC 7517) for `GET /sso/jwks/:client_id`.
//!
//! RS256 because WorkOS issues RS256 tokens and SDK session helpers accept only that (the
//! Python SDK hard-codes it). Signing uses `ring` (constant-time RSA); `ring` cannot generate
//! RSA keys, so key generation alone uses RustCrypto's `rsa`. The JWS framing is three
//! base64url segments, which is all a JWT library would add here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Serialize;
use zeroize::Zeroizing;

pub const KEY_BITS: usize = 2048;

/// One signing key and its key id (`kid`).
pub struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.kid)
    }
}

impl SigningKey {
    /// A fresh 2048-bit key (tens to hundreds of milliseconds: call off the async executor
    /// when it matters; it happens once per rotation).
    pub fn generate(kid: String) -> Result<Self, crate::Error> {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
            .map_err(crate::Error::internal)?;
        let der = key.to_pkcs8_der().map_err(crate::Error::internal)?;
        Self::from_bytes(kid, der.as_bytes())
            .ok_or_else(|| crate::Error::internal("generated RSA key refused"))
    }

    /// From the PKCS#8 DER private key (as sealed in the database).
    pub fn from_bytes(kid: String, pkcs8: &[u8]) -> Option<Self> {
        let pair = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
        Some(SigningKey {
            kid,
            pair,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
        })
    }

    /// The PKCS#8 private key, to be sealed. Never store or log it in clear.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty` RSA, `n`, `e`, `kid`, `alg` RS256, `use` sig).
    pub fn public_jwk(&self) -> serde_json::Value {
        let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        let n = URL_SAFE_NO_PAD.encode(&c.n);
        let e = URL_SAFE_NO_PAD.encode(&c.e);
        serde_json::json!({ "kty": "RSA", "n": n, "e": e, "kid": self.kid, "alg": "RS256", "use": "sig" })
    }

    /// `header.payload.signature` with header `{"alg":"RS256","typ":"JWT","kid":...}`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, crate::Error> {
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let h =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(crate::Error::internal)?);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(crate::Error::internal)?);
        let input = format!("{h}.{p}");
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| crate::Error::internal("RSA signing failed"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The claims of a Tessera access token.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The issuer: the server's public URL unless configured otherwise.
    pub iss: String,
    /// The audience: the environment's client id, the one party the token is for.
    pub aud: String,
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

    #[test]
    fn a_token_verifies_with_the_public_jwk_and_fails_when_tampered() {
        let k = SigningKey::generate("kid1".into()).unwrap();
        let claims = AccessClaims {
            iss: "https://auth.example.com".into(),
            aud: "client_1".into(),
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
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "kid1");
        let jwk = k.public_jwk();
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), KEY_BITS / 8);
        let public = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &sig
            )
            .is_ok());
        assert!(public
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, b"other", &sig)
            .is_err());
        let back: AccessClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn keys_round_trip_through_their_private_bytes() {
        let k = SigningKey::generate("a".into()).unwrap();
        let k2 = SigningKey::from_bytes("a".into(), &k.to_bytes()).unwrap();
        assert_eq!(k.public_jwk(), k2.public_jwk());
        assert!(SigningKey::from_bytes("a".into(), &[0u8; 32]).is_none());
    }
}
