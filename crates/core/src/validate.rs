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
/// User agents are stored with events: real ones are a few hundred bytes at most, so a
/// longer one is cut (on a character boundary) rather than refused or stored whole.
pub const MAX_USER_AGENT: usize = 512;

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

/// An absolute `http` or `https` URL with a host, at most `max` characters, no whitespace
/// or control characters. Any other scheme (`javascript:`, `data:`, `ftp:`) is refused: such
/// URLs end up in `href`/`src` attributes of apps and pages.
pub fn http_url(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    text(field, value, max)?;
    let invalid = || {
        FieldError::new(
            field,
            "invalid_url",
            format!("{field} must be an absolute http or https URL."),
        )
    };
    if value.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    let has_host = url.host_str().is_some_and(|h| !h.is_empty());
    if matches!(url.scheme(), "http" | "https") && has_host {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// An IPv4 or IPv6 address, returned in its canonical text form (so one address is always
/// one throttle key and one spelling in events). Anything else is refused: a list such as
/// a raw `X-Forwarded-For` value, a host name, or a port.
pub fn ip_address(field: &str, value: &str) -> Result<String, FieldError> {
    // The longest IPv6 text form is 45 characters; anything longer is not parsed at all.
    let parsed = (value.len() <= 64)
        .then(|| value.trim().parse::<std::net::IpAddr>().ok())
        .flatten();
    parsed.map(|ip| ip.to_string()).ok_or_else(|| {
        FieldError::new(
            field,
            "invalid_ip_address",
            format!("{field} must be an IPv4 or IPv6 address."),
        )
    })
}

/// A user agent cut to [`MAX_USER_AGENT`] bytes, at a character boundary.
pub fn user_agent(value: &str) -> String {
    truncate(value, MAX_USER_AGENT).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
    fn only_absolute_http_and_https_urls_are_accepted() {
        for good in [
            "https://cdn.example.com/a.png?s=64",
            "http://example.com",
            "HTTPS://EXAMPLE.COM/x",
        ] {
            assert!(http_url("u", good, MAX_URL).is_ok(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "ftp://example.com/",
            "https://",
            "//example.com/a.png",
            "/relative.png",
            "https://exa mple.com/",
            "https://example.com/\u{0}",
        ] {
            let e = http_url("profile_picture_url", bad, MAX_URL).unwrap_err();
            assert_eq!(e.field, "profile_picture_url", "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(
            http_url("u", &long, MAX_URL).unwrap_err().code,
            "string_too_long"
        );
    }

    #[test]
    fn ip_addresses_are_parsed_and_canonical() {
        assert_eq!(ip_address("ip", "203.0.113.7").unwrap(), "203.0.113.7");
        assert_eq!(ip_address("ip", "2001:DB8:0:0::1").unwrap(), "2001:db8::1");
        for bad in [
            "",
            "localhost",
            "10.0.0.1, 10.0.0.2",
            "10.0.0.1:80",
            "999.1.1.1",
            &"1".repeat(50_000),
        ] {
            assert_eq!(
                ip_address("ip_address", bad).unwrap_err().field,
                "ip_address"
            );
        }
    }

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        assert_eq!(user_agent("curl/8.5"), "curl/8.5");
        let ua = "é".repeat(1000); // two bytes each
        let cut = user_agent(&ua);
        assert_eq!(cut.len(), MAX_USER_AGENT);
        let odd = format!("x{ua}"); // the 512th byte is the middle of a character
        let cut = user_agent(&odd);
        assert_eq!(cut.len(), MAX_USER_AGENT - 1);
        assert!(odd.starts_with(cut.as_str()));
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
