//! Secrets at rest: AES-256-GCM with a random 96-bit nonce, bound to the row that holds them.
//!
//! The associated data names the purpose and the row (`totp:<factor id>`), so a sealed secret
//! copied into another row, or into another column, fails to open. Every sealed value carries
//! the id of the key that sealed it, so the master key can be rotated: new writes use the
//! current key, old rows still open with any key in the [`KeyRing`].

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::Digest;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("master key must be 32 bytes of base64 (standard alphabet)")]
    BadKey,
    #[error("no key with id {0} in the key ring")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong key, wrong row, or tampered)")]
    Corrupt,
    /// AES-GCM refused to seal: it does so only for a value over its limit of 64 GiB, or a
    /// derived key of the wrong length, neither of which the callers here can produce.
    #[error("the cipher refused to seal ({0})")]
    Cipher(&'static str),
}

/// One 256-bit master key and its public id (a hash prefix; reveals nothing about the key).
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    /// A separate key for MACs of one-time codes, derived so the AES key is never reused
    /// for another algorithm.
    mac_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.id)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Self::from_array(bytes))
    }

    fn from_array(bytes: &[u8; 32]) -> Self {
        let digest = sha2::Sha256::new()
            .chain_update(b"tessera master key id\0")
            .chain_update(bytes)
            .finalize();
        let id = data_encoding::HEXLOWER.encode(&digest[..6]);
        let cipher = Aes256Gcm::new(bytes.into());
        let mac_key: [u8; 32] = sha2::Sha256::new()
            .chain_update(b"tessera one-time-code mac key\0")
            .chain_update(bytes)
            .finalize()
            .into();
        MasterKey {
            id,
            cipher,
            mac_key: zeroize::Zeroizing::new(mac_key),
        }
    }

    pub fn from_base64(s: &str) -> Result<Self, SealError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| SealError::BadKey)?,
        );
        Self::from_bytes(&bytes)
    }

    /// A fresh random key, returned with its base64 form (to be written to a key file).
    pub fn generate() -> (Self, Zeroizing<String>) {
        use rand::RngCore;
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()));
        let key = Self::from_array(&bytes);
        (key, b64)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed value: which key sealed it, and `nonce || ciphertext || tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: Vec<u8>,
}

/// The current key (used to seal) and older keys (still accepted to open).
#[derive(Debug)]
pub struct KeyRing {
    current: MasterKey,
    old: Vec<MasterKey>,
}

impl KeyRing {
    pub fn new(current: MasterKey, old: Vec<MasterKey>) -> Self {
        KeyRing { current, old }
    }

    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// The ids of every key in the ring, current first (public: hash prefixes).
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(self.old.iter())
            .map(MasterKey::id)
            .collect()
    }

    fn aad(purpose: &str, row_id: &str) -> Vec<u8> {
        let mut v = Vec::with_capacity(purpose.len() + row_id.len() + 1);
        v.extend_from_slice(purpose.as_bytes());
        v.push(b':');
        v.extend_from_slice(row_id.as_bytes());
        v
    }

    /// Seals `plaintext` for the row `row_id` under `purpose` with the current key.
    pub fn seal(&self, purpose: &str, row_id: &str, plaintext: &[u8]) -> Result<Sealed, SealError> {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(purpose, row_id);
        let ct = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Cipher("value too long"))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(Sealed {
            key_id: self.current.id.clone(),
            blob,
        })
    }

    /// HMAC-SHA256 of `data` for the row `row_id` under `purpose`, keyed by the current
    /// master key. Used to store one-time codes "only as a hash" that a database thief cannot
    /// brute-force offline (a 6-digit code has only 10^6 values): without the master key the
    /// MAC reveals nothing.
    pub fn mac(&self, purpose: &str, row_id: &str, data: &[u8]) -> Vec<u8> {
        Self::mac_with(&self.current, purpose, row_id, data)
            .as_ref()
            .to_vec()
    }

    /// ring's HMAC rather than RustCrypto's: it takes a key of any length without a
    /// `Result` to unwrap (the output is the same HMAC-SHA256).
    fn mac_with(key: &MasterKey, purpose: &str, row_id: &str, data: &[u8]) -> ring::hmac::Tag {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.mac_key.as_ref());
        let mut m = ring::hmac::Context::with_key(&key);
        m.update(&Self::aad(purpose, row_id));
        m.update(b"\0");
        m.update(data);
        m.sign()
    }

    /// Whether `stored` is the MAC of `data` under any key of the ring (so open challenges
    /// survive a master-key rotation), compared in constant time.
    pub fn mac_matches(&self, purpose: &str, row_id: &str, data: &[u8], stored: &[u8]) -> bool {
        let mut any = subtle::Choice::from(0u8);
        for key in std::iter::once(&self.current).chain(self.old.iter()) {
            let m = Self::mac_with(key, purpose, row_id, data);
            any |= subtle::ConstantTimeEq::ct_eq(m.as_ref(), stored);
        }
        bool::from(any)
    }

    /// Seals `plaintext` for a row under a key derived from the current master key *and*
    /// `secret`, a value the database does not hold (the client's own token, of which only
    /// a hash is stored). Opening needs both: a copy of the database, even with the master
    /// key, opens nothing without the secret.
    pub fn seal_with_secret(
        &self,
        purpose: &str,
        row_id: &str,
        secret: &[u8],
        plaintext: &[u8],
    ) -> Result<Sealed, SealError> {
        use rand::RngCore;
        let cipher = Self::secret_cipher(&self.current, purpose, row_id, secret)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(purpose, row_id);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Cipher("value too long"))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(Sealed {
            key_id: self.current.id.clone(),
            blob,
        })
    }

    /// Opens what [`KeyRing::seal_with_secret`] sealed, with any key of the ring.
    pub fn open_with_secret(
        &self,
        purpose: &str,
        row_id: &str,
        secret: &[u8],
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(self.old.iter())
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ct) = sealed.blob.split_at(NONCE_LEN);
        let aad = Self::aad(purpose, row_id);
        Self::secret_cipher(key, purpose, row_id, secret)?
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// AES-256-GCM keyed by HMAC-SHA256(master MAC key, purpose, row, secret): a PRF of the
    /// secret under the master key, in its own purpose namespace so it is never equal to a
    /// one-time-code MAC.
    fn secret_cipher(
        key: &MasterKey,
        purpose: &str,
        row_id: &str,
        secret: &[u8],
    ) -> Result<Aes256Gcm, SealError> {
        let derived = Self::mac_with(key, &format!("sealing key:{purpose}"), row_id, secret);
        Aes256Gcm::new_from_slice(derived.as_ref())
            .map_err(|_| SealError::Cipher("derived key length"))
    }

    /// Opens a value sealed by any key of the ring for the same purpose and row.
    pub fn open(
        &self,
        purpose: &str,
        row_id: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(self.old.iter())
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ct) = sealed.blob.split_at(NONCE_LEN);
        let aad = Self::aad(purpose, row_id);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(MasterKey::generate().0, vec![])
    }

    /// Values computed outside Rust (Python's hmac, hashlib and `cryptography` AES-GCM) from
    /// the derivations above: MACs and sealed blobs stored by earlier builds must keep
    /// matching and opening whichever HMAC and AES library the code uses.
    #[test]
    fn macs_and_secret_sealed_values_match_known_answers() {
        let r = KeyRing::new(MasterKey::from_bytes(&[7u8; 32]).unwrap(), vec![]);
        assert_eq!(r.current_key_id(), "d7aa8bcf9464");
        let mac = data_encoding::HEXLOWER
            .decode(b"4dd64287f0d1dfa5673068254a3af48fd28caa31bcea59d8af44861840995207");
        assert_eq!(r.mac("otp", "chal_1", b"123456"), mac.unwrap());
        let blob = data_encoding::HEXLOWER
            .decode(b"01010101010101010101010166cca8c37e464f88035a93df338add844951dd4209223156");
        let sealed = Sealed {
            key_id: "d7aa8bcf9464".to_owned(),
            blob: blob.unwrap(),
        };
        assert_eq!(
            &*r.open_with_secret("grace", "row", b"client token", &sealed)
                .unwrap(),
            b"the pair"
        );
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_own_row_and_purpose() {
        let r = ring();
        let s = r.seal("totp", "auth_factor_1", b"secret bytes").unwrap();
        assert!(!s.blob.windows(12).any(|w| w == b"secret bytes"));
        assert_eq!(
            &*r.open("totp", "auth_factor_1", &s).unwrap(),
            b"secret bytes"
        );
        assert_eq!(r.open("totp", "auth_factor_2", &s), Err(SealError::Corrupt));
        assert_eq!(r.open("jwt", "auth_factor_1", &s), Err(SealError::Corrupt));
    }

    #[test]
    fn macs_depend_on_key_row_and_data() {
        let r = ring();
        let a = r.mac("otp", "c1", b"123456");
        assert_eq!(a, r.mac("otp", "c1", b"123456"));
        assert_ne!(a, r.mac("otp", "c2", b"123456"));
        assert_ne!(a, r.mac("otp", "c1", b"123457"));
        assert_ne!(a, ring().mac("otp", "c1", b"123456"));
        assert!(r.mac_matches("otp", "c1", b"123456", &a));
        assert!(!r.mac_matches("otp", "c1", b"123457", &a));
    }

    #[test]
    fn macs_made_before_a_rotation_still_match_after_it() {
        let (old, old_b64) = MasterKey::generate();
        let before = KeyRing::new(old, vec![]);
        let m = before.mac("otp", "c", b"1");
        let after = KeyRing::new(
            MasterKey::generate().0,
            vec![MasterKey::from_base64(&old_b64).unwrap()],
        );
        assert!(after.mac_matches("otp", "c", b"1", &m));
    }

    #[test]
    fn a_value_sealed_with_a_secret_needs_the_secret_and_the_master_key() {
        let (k, b64) = MasterKey::generate();
        let r = KeyRing::new(k, vec![]);
        let s = r
            .seal_with_secret("grace", "row", b"client token", b"the pair")
            .unwrap();
        assert_eq!(
            &*r.open_with_secret("grace", "row", b"client token", &s)
                .unwrap(),
            b"the pair"
        );
        assert_eq!(
            r.open_with_secret("grace", "row", b"another token", &s),
            Err(SealError::Corrupt)
        );
        assert_eq!(
            r.open_with_secret("grace", "row2", b"client token", &s),
            Err(SealError::Corrupt)
        );
        assert!(
            r.open("grace", "row", &s).is_err(),
            "the master key alone opens nothing"
        );
        let other = KeyRing::new(MasterKey::generate().0, vec![]);
        assert!(other
            .open_with_secret("grace", "row", b"client token", &s)
            .is_err());
        let rotated = KeyRing::new(
            MasterKey::generate().0,
            vec![MasterKey::from_base64(&b64).unwrap()],
        );
        assert_eq!(
            &*rotated
                .open_with_secret("grace", "row", b"client token", &s)
                .unwrap(),
            b"the pair"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let r = ring();
        let mut s = r.seal("totp", "x", b"abc").unwrap();
        let last = s.blob.len() - 1;
        s.blob[last] ^= 1;
        assert_eq!(r.open("totp", "x", &s), Err(SealError::Corrupt));
    }

    #[test]
    fn rotated_rings_still_open_values_sealed_by_an_old_key() {
        let (old, old_b64) = MasterKey::generate();
        let before = KeyRing::new(old, vec![]);
        let s = before.seal("totp", "row", b"v").unwrap();
        let after = KeyRing::new(
            MasterKey::generate().0,
            vec![MasterKey::from_base64(&old_b64).unwrap()],
        );
        assert_ne!(after.current_key_id(), s.key_id);
        assert_eq!(&*after.open("totp", "row", &s).unwrap(), b"v");
        let without_old = KeyRing::new(MasterKey::generate().0, vec![]);
        assert!(matches!(
            without_old.open("totp", "row", &s),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn master_keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            MasterKey::from_base64("short").unwrap_err(),
            SealError::BadKey
        );
        assert_eq!(
            MasterKey::from_base64("!!!").unwrap_err(),
            SealError::BadKey
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(MasterKey::from_base64(&b64).is_ok());
    }
}
