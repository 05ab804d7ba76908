//! One-time codes for SMS and generic OTP factors, and phone numbers.

use rand::Rng;

/// A 6-digit code from the OS CSPRNG (about 20 bits: the minimum NIST SP 800-63B and ASVS
/// V2.7 require for out-of-band codes, which is why attempts are limited).
pub fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// Whether `s` is exactly six ASCII digits.
pub fn is_code_shaped(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Normalises a phone number to E.164 (`+` and 8 to 15 digits, no leading zero), accepting
/// the spaces, dots, dashes and parentheses people type. `None` when it is not one.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let t = raw.trim();
    let rest = t.strip_prefix('+')?;
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (8..=15).contains(&digits.len()).then_some(())?;
    (!digits.starts_with('0')).then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = new_code();
            assert!(is_code_shaped(&c), "{c}");
        }
        assert!(!is_code_shaped("12345"));
        assert!(!is_code_shaped("12345a"));
    }

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(
            normalize_phone("+1 (607) 351-7112").as_deref(),
            Some("+16073517112")
        );
        assert_eq!(
            normalize_phone("+447700900123").as_deref(),
            Some("+447700900123")
        );
        for bad in [
            "16073517112",
            "+",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+1 607 abc",
            "foo",
            "",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }
}
