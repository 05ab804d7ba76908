//! HOTP (RFC 4226) and TOTP (RFC 6238), the `otpauth://` URI, and base32 secrets.
//!
//! Written by hand on ring's HMAC rather than taken from a TOTP crate because the
//! verifier must report *which* time step matched (the replay guard stores it) and must
//! compare every candidate in constant time without early exit; the primitive itself is a
//! dozen lines.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

/// Tessera's TOTP parameters are fixed to what every authenticator app supports and what
/// WorkOS documents for imported secrets: SHA-1, 6 digits, 30-second steps, T0 = 0.
pub const DIGITS: u32 = 6;
pub const STEP_SECONDS: i64 = 30;
/// Generated secrets are 160 bits, the length RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// RFC 4226 §4 R6: a shared secret MUST be at least 128 bits; imports shorter are refused.
pub const MIN_SECRET_BYTES: usize = 16;
/// Upper bound on imported secrets (SHA-512's block size); anything longer is not a TOTP key.
pub const MAX_SECRET_BYTES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// A TOTP shared secret. Zeroed on drop and never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Why an imported base32 secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be base32 (RFC 4648 alphabet A-Z and 2-7)")]
    NotBase32,
    #[error("must encode at least {MIN_SECRET_BYTES} bytes (128 bits, RFC 4226)")]
    TooShort,
    #[error("must encode at most {MAX_SECRET_BYTES} bytes")]
    TooLong,
}

impl TotpSecret {
    /// A fresh 160-bit secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(Zeroizing::new(bytes))
    }

    /// Parses a secret as users paste it: case-insensitive, spaces and hyphens ignored,
    /// `=` padding optional.
    pub fn from_base32(input: &str) -> Result<Self, SecretError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            input
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '\t'))
                .map(|c| c.to_ascii_uppercase())
                .collect::<String>()
                .trim_end_matches('=')
                .to_owned(),
        );
        // Refuse absurd inputs before decoding so the error says "too long", not "not base32".
        if cleaned.len() > MAX_SECRET_BYTES * 8 / 5 + 1 {
            return Err(SecretError::TooLong);
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| SecretError::NotBase32)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong);
        }
        Ok(TotpSecret(Zeroizing::new(bytes)))
    }

    /// Upper-case RFC 4648 base32 without padding, as authenticator apps expect.
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// RFC 4226 HOTP value: dynamic truncation, then modulo 10^digits.
pub fn hotp(alg: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    let alg = match alg {
        // RFC 4226 and every authenticator app's default; HMAC-SHA1 is not broken as a PRF.
        Algorithm::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Algorithm::Sha256 => ring::hmac::HMAC_SHA256,
        Algorithm::Sha512 => ring::hmac::HMAC_SHA512,
    };
    let key = ring::hmac::Key::new(alg, key);
    truncate(
        ring::hmac::sign(&key, &counter.to_be_bytes()).as_ref(),
        digits,
    )
}

fn truncate(mac: &[u8], digits: u32) -> u32 {
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = (u32::from(mac[offset]) & 0x7f) << 24
        | u32::from(mac[offset + 1]) << 16
        | u32::from(mac[offset + 2]) << 8
        | u32::from(mac[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The TOTP time step containing `unix_seconds` (T0 = 0, X = 30).
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The 6-digit SHA-1 code of one step, zero-padded.
pub fn code_for_step(secret: &TotpSecret, step: i64) -> String {
    let v = hotp(
        Algorithm::Sha1,
        secret.as_bytes(),
        u64::try_from(step).unwrap_or(0),
        DIGITS,
    );
    format!("{v:06}")
}

/// Checks `code` against the steps `current-window ..= current+window` and returns the
/// latest step whose code matches.
///
/// Security: every candidate is computed and compared with `subtle` — no early exit, no
/// `==` on the code — so response time does not reveal how close a guess was or which step
/// matched. The window (RFC 6238 §5.2 recommends at most one step of network delay) is the
/// caller's; the *replay* rule (refuse steps at or below the last accepted one) is enforced
/// by the store in one conditional UPDATE, not here.
pub fn verify(secret: &TotpSecret, code: &str, unix_seconds: i64, window: u32) -> Option<i64> {
    verify_after(secret, code, unix_seconds, window, i64::MAX)
}

/// Like [`verify`], but when the code matches several steps of the window (two steps' codes
/// are equal about once in a million), picks the earliest matching step after `last_step`
/// (the factor's last accepted step, a hint: the store's guard decides), so a coincidence
/// does not burn the steps after it. With no such step, the latest match (which the store
/// will refuse as a replay).
pub fn verify_after(
    secret: &TotpSecret,
    code: &str,
    unix_seconds: i64,
    window: u32,
    last_step: i64,
) -> Option<i64> {
    let code = code.as_bytes();
    if code.len() != DIGITS as usize || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let current = step_at(unix_seconds);
    let w = i64::from(window);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let matches = ((current - w)..=(current + w))
        .filter(|step| *step >= 0)
        .map(|step| {
            let mac = ring::hmac::sign(&key, &u64::try_from(step).unwrap_or(0).to_be_bytes());
            let v = truncate(mac.as_ref(), DIGITS);
            let mut buf = [0u8; DIGITS as usize];
            let mut n = v;
            for b in buf.iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
            (step, buf.ct_eq(code))
        });
    select_step(matches, last_step)
}

/// Picks from `(step, matched)` in ascending step order without branching on `matched`: the
/// first matched step after `last_step`, else the last matched step.
fn select_step(
    matches: impl Iterator<Item = (i64, subtle::Choice)>,
    last_step: i64,
) -> Option<i64> {
    let mut any = subtle::Choice::from(0u8);
    let mut latest: i64 = 0;
    let mut fresh_found = subtle::Choice::from(0u8);
    let mut fresh: i64 = 0;
    for (step, eq) in matches {
        // `step > last_step` compares public values only.
        let is_fresh = subtle::Choice::from(u8::from(step > last_step));
        let take = eq & is_fresh & !fresh_found;
        fresh = i64::conditional_select(&fresh, &step, take);
        fresh_found |= eq & is_fresh;
        latest = i64::conditional_select(&latest, &step, eq);
        any |= eq;
    }
    let step = i64::conditional_select(&latest, &fresh, fresh_found);
    bool::from(any).then_some(step)
}

#[cfg(test)]
mod select_tests {
    use super::select_step;
    use subtle::Choice;

    fn run(matched: &[(i64, u8)], last: i64) -> Option<i64> {
        select_step(matched.iter().map(|&(s, m)| (s, Choice::from(m))), last)
    }

    #[test]
    fn a_coincidence_takes_the_earliest_unused_step_not_the_latest() {
        // Steps 9, 10, 11 all match; 9 is used: 10, leaving 11 for the next code.
        assert_eq!(run(&[(9, 1), (10, 1), (11, 1)], 9), Some(10));
        assert_eq!(run(&[(9, 1), (10, 0), (11, 1)], 8), Some(9));
        // Only used steps match: the latest, for the store to refuse as a replay.
        assert_eq!(run(&[(9, 1), (10, 1), (11, 0)], 10), Some(10));
        assert_eq!(run(&[(9, 0), (10, 0), (11, 0)], 0), None);
        // No hint: the latest match, as `verify` has always answered.
        assert_eq!(run(&[(9, 1), (10, 0), (11, 1)], i64::MAX), Some(11));
    }
}

/// Characters kept literal in the label and the query: RFC 3986 unreserved plus `@` (the
/// recorded WorkOS URI leaves `user@example.com` as is). Everything else, including space
/// (as `%20`, never `+`) and `:` (the label's issuer separator), is percent-encoded.
const OTPAUTH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// `otpauth://totp/ISSUER:USER?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`,
/// the Key URI Format every authenticator app reads.
pub fn otpauth_uri(issuer: &str, user: &str, secret_b32: &str) -> String {
    let i = utf8_percent_encode(issuer, OTPAUTH);
    let u = utf8_percent_encode(user, OTPAUTH);
    format!(
        "otpauth://totp/{i}:{u}?secret={secret_b32}&issuer={i}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )
}

/// The parts of an `otpauth://totp/` URI that Tessera writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpauthParts {
    pub issuer: String,
    pub user: String,
    pub secret: String,
}

/// Parses a URI of the form [`otpauth_uri`] writes. Used by tests and by tooling that
/// imports URIs; refuses anything that is not a SHA-1/6-digit/30-second TOTP URI.
pub fn parse_otpauth_uri(uri: &str) -> Option<OtpauthParts> {
    let rest = uri.strip_prefix("otpauth://totp/")?;
    let (label, query) = rest.split_once('?')?;
    let (issuer_enc, user_enc) = label.split_once(':')?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    let issuer = decode(issuer_enc)?;
    let user = decode(user_enc)?;
    let mut secret = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=')?;
        match k {
            "secret" => secret = Some(v.to_owned()),
            "issuer" if decode(v)? != issuer => return None,
            "algorithm" if v != "SHA1" => return None,
            "digits" if v != "6" => return None,
            "period" if v != "30" => return None,
            _ => {}
        }
    }
    Some(OtpauthParts {
        issuer,
        user,
        secret: secret?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";

    fn seed64() -> Vec<u8> {
        SEED20.iter().cycle().take(64).copied().collect()
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors_pass_exactly() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, SEED20, counter as u64, 6), *want);
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors_pass_exactly_for_all_three_hashes() {
        let rows: [(i64, u32, u32, u32); 6] = [
            (59, 94287082, 46119246, 90693936),
            (1111111109, 7081804, 68084774, 25091201),
            (1111111111, 14050471, 67062674, 99943326),
            (1234567890, 89005924, 91819424, 93441116),
            (2000000000, 69279037, 90698825, 38618901),
            // Needs a 64-bit counter: T = 666666666 overflows nothing, but the time does.
            (20000000000, 65353130, 77737706, 47863826),
        ];
        let s64 = seed64();
        for (t, sha1, sha256, sha512) in rows {
            let step = step_at(t) as u64;
            assert_eq!(hotp(Algorithm::Sha1, SEED20, step, 8), sha1, "sha1 t={t}");
            assert_eq!(
                hotp(Algorithm::Sha256, SEED32, step, 8),
                sha256,
                "sha256 t={t}"
            );
            assert_eq!(
                hotp(Algorithm::Sha512, &s64, step, 8),
                sha512,
                "sha512 t={t}"
            );
        }
    }

    #[test]
    fn verify_accepts_one_step_either_side_and_reports_the_step() {
        let s = TotpSecret::from_bytes(SEED20.to_vec());
        let now = 1_111_111_111;
        let cur = step_at(now);
        for delta in -1..=1 {
            let code = code_for_step(&s, cur + delta);
            assert_eq!(
                verify(&s, &code, now, 1),
                Some(cur + delta),
                "delta {delta}"
            );
        }
        assert_eq!(verify(&s, &code_for_step(&s, cur + 2), now, 1), None);
        assert_eq!(verify(&s, &code_for_step(&s, cur - 2), now, 1), None);
        assert_eq!(
            verify(&s, &code_for_step(&s, cur - 2), now, 2),
            Some(cur - 2)
        );
        assert_eq!(verify(&s, &code_for_step(&s, cur + 1), now, 0), None);
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        let s = TotpSecret::from_bytes(SEED20.to_vec());
        let good = code_for_step(&s, step_at(59));
        assert!(verify(&s, &good, 59, 1).is_some());
        for bad in ["", "12345", "1234567", "abcdef", " 12345", "１２３４５６"] {
            assert_eq!(verify(&s, bad, 59, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_round_trips_and_is_forgiving_about_case_spaces_and_padding() {
        let s = TotpSecret::generate();
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        assert!(!b32.contains('='));
        assert_eq!(TotpSecret::from_base32(&b32).unwrap(), s);
        let messy = format!("{} ==", b32.to_lowercase());
        assert_eq!(TotpSecret::from_base32(&messy).unwrap(), s);
    }

    #[test]
    fn short_or_invalid_secrets_are_refused() {
        assert_eq!(
            TotpSecret::from_base32("JBSWY3DPEHPK3PXP"),
            Err(SecretError::TooShort)
        );
        assert_eq!(
            TotpSecret::from_base32("01189998819991197253"),
            Err(SecretError::NotBase32)
        );
        assert_eq!(
            TotpSecret::from_base32(&"A".repeat(200)),
            Err(SecretError::TooLong)
        );
    }

    #[test]
    fn otpauth_uri_percent_encodes_spaces_as_percent_20_and_keeps_the_at_sign() {
        let uri = otpauth_uri(
            "Foo Corp",
            "user@foo-corp.com",
            "OFAFOQAPHR6XMQKAIYMWU72XIE3DGI3P",
        );
        assert_eq!(
            uri,
            "otpauth://totp/Foo%20Corp:user@foo-corp.com?secret=OFAFOQAPHR6XMQKAIYMWU72XIE3DGI3P&issuer=Foo%20Corp&algorithm=SHA1&digits=6&period=30"
        );
        let parts = parse_otpauth_uri(&uri).unwrap();
        assert_eq!(parts.issuer, "Foo Corp");
        assert_eq!(parts.user, "user@foo-corp.com");
    }

    #[test]
    fn colons_and_ampersands_in_names_cannot_break_the_uri() {
        let uri = otpauth_uri("A:B&C", "x:y?z", "ABC");
        let parts = parse_otpauth_uri(&uri).unwrap();
        assert_eq!(parts.issuer, "A:B&C");
        assert_eq!(parts.user, "x:y?z");
        assert_eq!(parts.secret, "ABC");
    }
}
