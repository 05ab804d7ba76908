//! Validation of untrusted fields, shared by every endpoint so that limits and messages are
//! the same everywhere. Each function returns a [`FieldError`] naming the field.

use crate::FieldError;

/// Upper bound for free-text fields (names, issuers, labels). Generous for humans, small
/// enough that a hostile client cannot bloat rows, logs or QR codes.
pub const MAX_TEXT: usize = 256;
/// RFC 5321 limits a forward path to 256 octets including brackets, so an address to 254.
pub const MAX_EMAIL: usize = 254;
pub const MAX_EXTERNAL_ID: usize = 128;
pub const MAX_URL: usize = 2048;

/// Normalises and checks an email address: trimmed, lower-cased, one `@` with non-empty
/// local part and a domain containing a dot, no spaces or control characters.
pub fn email(field: &str, raw: &str) -> Result<String, FieldError> {
    let e = raw.trim().to_lowercase();
    if e.is_empty() {
        return Err(FieldError::new(
            field,
            "email_string_required",
            "Email should be a non-empty string.",
        ));
    }
    if e.len() > MAX_EMAIL {
        return Err(FieldError::new(
            field,
            "email_too_long",
            format!("Email must be at most {MAX_EMAIL} characters."),
        ));
    }
    let valid = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        Ok(e)
    } else {
        Err(FieldError::new(
            field,
            "invalid_email",
            "Email must be a valid email address.",
        ))
    }
}

/// A bounded text field: no control characters, at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            "string_too_long",
            format!("{field} must be at most {max} characters."),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            format!("{field} must not contain control characters."),
        ));
    }
    Ok(())
}

/// Like [`text`] and also non-empty after trimming.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(
            field,
            "string_required",
            format!("{field} should be a non-empty string."),
        ));
    }
    text(field, value, max)
}

/// Collects the errors of several checks so one 422 lists every bad field at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }
    pub fn into_result(self) -> Result<(), crate::Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::Validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email("email", "  Alan@Example.COM ").unwrap(),
            "alan@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused_with_the_field_named() {
        for bad in [
            "",
            "   ",
            "plain",
            "a@b",
            "@x.com",
            "a@@x.com",
            "a b@x.com",
            "a@.com",
            "a@x.com.",
        ] {
            let e = email("email", bad).unwrap_err();
            assert_eq!(e.field, "email", "{bad:?}");
        }
        assert_eq!(
            email("email", "").unwrap_err().code,
            "email_string_required"
        );
    }

    #[test]
    fn overlong_and_control_text_is_refused() {
        assert!(text("first_name", &"x".repeat(MAX_TEXT), MAX_TEXT).is_ok());
        assert_eq!(
            text("first_name", &"x".repeat(MAX_TEXT + 1), MAX_TEXT)
                .unwrap_err()
                .code,
            "string_too_long"
        );
        assert_eq!(
            text("first_name", "a\u{0}b", MAX_TEXT).unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            required_text("totp_issuer", "  ", MAX_TEXT)
                .unwrap_err()
                .code,
            "string_required"
        );
    }
}
