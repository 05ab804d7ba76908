//! Property tests for every parser and encoder of untrusted input in the core: base32 secrets,
//! otpauth URIs, phone numbers, ids, emails, TOTP verification. Round trips where they exist;
//! "never panics, always answers" everywhere.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tessera_core::totp::{self, TotpSecret};
use tessera_core::{id, otp, validate, Timestamp};

proptest! {
    #[test]
    fn base32_secrets_round_trip(bytes in proptest::collection::vec(any::<u8>(), 16..=64)) {
        let s = TotpSecret::from_bytes(bytes.clone());
        let b32 = s.to_base32();
        prop_assert!(!b32.contains('='));
        let back = TotpSecret::from_base32(&b32).unwrap();
        prop_assert_eq!(back.as_bytes(), &bytes[..]);
        let lower = TotpSecret::from_base32(&b32.to_lowercase()).unwrap();
        prop_assert_eq!(lower.as_bytes(), &bytes[..]);
    }

    #[test]
    fn base32_parsing_never_panics_and_accepts_only_long_enough_keys(input in ".{0,200}") {
        if let Ok(s) = TotpSecret::from_base32(&input) {
            prop_assert!(s.as_bytes().len() >= totp::MIN_SECRET_BYTES);
            prop_assert!(s.as_bytes().len() <= totp::MAX_SECRET_BYTES);
        }
    }

    #[test]
    fn otpauth_uris_round_trip_any_issuer_and_user(issuer in "\\PC{1,40}", user in "\\PC{1,40}") {
        let secret = TotpSecret::generate().to_base32();
        let uri = totp::otpauth_uri(&issuer, &user, &secret);
        prop_assert!(uri.is_ascii(), "percent-encoded");
        prop_assert!(!uri.contains(' '));
        let parts = totp::parse_otpauth_uri(&uri).unwrap();
        prop_assert_eq!(parts.issuer, issuer);
        prop_assert_eq!(parts.user, user);
        prop_assert_eq!(parts.secret, secret);
    }

    #[test]
    fn otpauth_parsing_never_panics(input in ".{0,300}") {
        let _ = totp::parse_otpauth_uri(&input);
        let _ = totp::parse_otpauth_uri(&format!("otpauth://totp/{input}"));
    }

    #[test]
    fn normalised_phone_numbers_are_e164_and_stable(input in "[+0-9 ()./-]{0,30}") {
        if let Some(n) = otp::normalize_phone(&input) {
            prop_assert!(n.starts_with('+'));
            let digits = &n[1..];
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!((8..=15).contains(&digits.len()));
            prop_assert!(!digits.starts_with('0'));
            prop_assert_eq!(otp::normalize_phone(&n), Some(n.clone()));
        }
    }

    #[test]
    fn phone_parsing_never_panics(input in ".{0,100}") {
        let _ = otp::normalize_phone(&input);
    }

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time(a in 0i64..4_000_000_000_000, b in 0i64..4_000_000_000_000) {
        let ia = id::new_id(id::prefix::FACTOR, Timestamp(a));
        let ib = id::new_id(id::prefix::FACTOR, Timestamp(b));
        prop_assert!(id::has_prefix(&ia, id::prefix::FACTOR));
        prop_assert!(!id::has_prefix(&ia, id::prefix::USER));
        if a < b { prop_assert!(ia < ib); }
    }

    #[test]
    fn id_checks_never_panic(input in ".{0,80}") {
        let _ = id::has_prefix(&input, id::prefix::USER);
    }

    #[test]
    fn email_normalisation_is_idempotent(input in "\\PC{0,80}") {
        if let Ok(e) = validate::email("email", &input) {
            prop_assert_eq!(validate::email("email", &e).unwrap(), e.clone());
            prop_assert!(e.len() <= validate::MAX_EMAIL);
        }
    }

    #[test]
    fn totp_verify_accepts_exactly_the_window(offset in -5i64..=5, t in 0i64..10_000_000_000) {
        let s = TotpSecret::generate();
        let step = totp::step_at(t);
        prop_assume!(step + offset >= 0);
        let code = totp::code_for_step(&s, step + offset);
        let got = totp::verify(&s, &code, t, 1);
        if offset.abs() <= 1 {
            prop_assert!(got.is_some());
        } else if let Some(matched) = got {
            // A collision with an in-window code (probability ~3e-6) is still a real match.
            prop_assert!((matched - step).abs() <= 1);
        }
    }

    #[test]
    fn totp_verify_never_panics_on_any_code(code in ".{0,20}", t in any::<i64>()) {
        let s = TotpSecret::generate();
        let _ = totp::verify(&s, &code, t, 1);
    }
}
