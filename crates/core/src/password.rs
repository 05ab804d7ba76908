//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) in PHC format.
//!
//! These functions are CPU-heavy by design (~tens of ms); the server calls them on the blocking
//! pool behind a semaphore, never on the async executor.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

/// NIST SP 800-63B §5.1.1.2: at least 8 characters; at least 64 must be allowed. The upper
/// bound keeps a single request from making us hash megabytes.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

/// Why a new password was refused.
pub fn strength_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Some(format!("Password must be at least {MIN_LEN} characters."))
    } else if password.len() > MAX_LEN {
        Some(format!("Password must be at most {MAX_LEN} bytes."))
    } else {
        None
    }
}

pub fn hash(password: &str) -> Result<String, crate::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(crate::Error::internal)
}

/// Verifies `password` against a stored PHC string. `None` (a user without a password, or an
/// unknown user) is checked against a fixed dummy hash so that the time taken does not reveal
/// whether the account exists; the answer is then always `false`.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("tessera dummy password").unwrap_or_default());
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong horse battery", Some(&h)));
    }

    #[test]
    fn unknown_users_never_verify_even_with_the_dummy_password() {
        assert!(!verify("tessera dummy password", None));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(strength_problem("1234567").is_some());
        assert!(strength_problem("12345678").is_none());
        assert!(strength_problem(&"x".repeat(2000)).is_some());
    }
}
