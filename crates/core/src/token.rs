//! Random bearer tokens (API keys, later refresh and pending tokens) and their storage hashes.
//!
//! Tokens carry at least 190 bits from the OS CSPRNG, so a single SHA-256 is the right storage
//! hash: there is nothing to brute-force, and a slow hash would only slow down every API call.
//! Lookups go by a short public prefix; the hash is then compared in constant time, so a
//! timing probe learns nothing about a stored hash.

use rand::Rng;
use sha2::Digest;
use subtle::ConstantTimeEq;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters of base62 from the OS CSPRNG (5.95 bits each).
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// SHA-256 of a token, for storage.
pub fn hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// An API key as shown to its owner once: `sk_<lookup>_<secret>`.
pub struct NewApiKey {
    /// The whole key, shown once.
    pub secret: String,
    /// The public lookup part, stored in clear and indexed.
    pub lookup: String,
    pub hash: Vec<u8>,
}

const LOOKUP_LEN: usize = 12;
const SECRET_LEN: usize = 32;

pub fn new_api_key() -> NewApiKey {
    let lookup = random_base62(LOOKUP_LEN);
    let secret = format!("sk_{lookup}_{}", random_base62(SECRET_LEN));
    let hash = hash(&secret);
    NewApiKey {
        secret,
        lookup,
        hash,
    }
}

/// The lookup part of a presented key, or `None` when it is not shaped like one of ours.
pub fn api_key_lookup(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix("sk_")?;
    let (lookup, secret) = rest.split_once('_')?;
    (lookup.len() == LOOKUP_LEN
        && secret.len() == SECRET_LEN
        && lookup
            .bytes()
            .chain(secret.bytes())
            .all(|b| b.is_ascii_alphanumeric()))
    .then_some(lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_parse_back_to_their_lookup_and_hash_matches() {
        let k = new_api_key();
        assert!(k.secret.starts_with("sk_"));
        assert_eq!(api_key_lookup(&k.secret), Some(k.lookup.as_str()));
        assert!(ct_eq(&hash(&k.secret), &k.hash));
        assert!(!ct_eq(&hash(&format!("{}x", k.secret)), &k.hash));
    }

    #[test]
    fn foreign_strings_are_not_api_keys() {
        for s in [
            "",
            "sk_",
            "sk_abc",
            "pk_123456789012_12345678901234567890123456789012",
            "sk_example_123456789",
        ] {
            assert_eq!(api_key_lookup(s), None, "{s}");
        }
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_base62(25), random_base62(25));
        assert_eq!(random_base62(25).len(), 25);
    }
}
