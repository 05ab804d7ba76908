//! Hosted sign-in (AuthKit) rules that need no I/O: the redirect-URI allow-list and its
//! matching, PKCE (RFC 7636, S256 only) and building the callback URL.
//!
//! The allow-list is what stops `/user_management/authorize` and the logout endpoint from
//! being open redirects, so matching is exact, byte for byte. The one exception is a port
//! wildcard for loopback development servers, and only where the entry spells it out:
//! `http://localhost:*/callback` matches `http://localhost:3000/callback` and any other port,
//! nothing else (not another host, path or query).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Digest;

/// Longest accepted redirect URI (browsers handle far more; longer ones are abuse).
pub const MAX_REDIRECT_URI: usize = 2048;

/// The loopback hosts (as written in a URL) on which plain `http` and a port wildcard are
/// allowed: development servers on the user's own machine.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Schemes that run code or read local files when navigated to: never a redirect target.
const FORBIDDEN_SCHEMES: [&str; 5] = ["javascript", "data", "file", "vbscript", "blob"];

/// Splits `scheme://authority` from the rest (path, query) of a URI.
fn split(uri: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

/// The host of an authority without its port (`[::1]:80` -> `[::1]`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Checks an allow-list entry (`tessera redirect-uris add`) and explains a refusal.
///
/// Accepted: `https://` URIs; `http://` only on a loopback host (`localhost`, `127.0.0.1`,
/// `[::1]`); custom schemes of native apps (`myapp://callback`). Refused: fragments,
/// whitespace and control characters, user info, the schemes in [`FORBIDDEN_SCHEMES`], and a
/// port wildcard (`:*`) anywhere but right after a loopback host of an `http://` entry.
pub fn check_redirect_entry(entry: &str) -> Result<(), String> {
    if entry.is_empty() || entry.len() > MAX_REDIRECT_URI {
        return Err(format!(
            "a redirect URI has 1 to {MAX_REDIRECT_URI} characters"
        ));
    }
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a redirect URI has no spaces or control characters".into());
    }
    if entry.contains('#') {
        return Err("a redirect URI has no fragment (#...)".into());
    }
    let Some((scheme, authority, _)) = split(entry) else {
        return Err("a redirect URI is absolute: scheme://host/path".into());
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if !scheme_ok || FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(format!("the scheme '{scheme}' cannot be a redirect target"));
    }
    if authority.contains('@') {
        return Err("a redirect URI has no user name or password".into());
    }
    let host = host_of(authority);
    let loopback = LOOPBACK.contains(&host);
    if scheme == "http" && !loopback {
        return Err(
            "http:// is allowed only for localhost, 127.0.0.1 and [::1]; use https://".into(),
        );
    }
    if (scheme == "http" || scheme == "https") && host.is_empty() {
        return Err("the URI has no host".into());
    }
    let wildcard = authority.ends_with(":*");
    if entry.contains('*')
        && !(wildcard && loopback && scheme == "http" && entry.matches('*').count() == 1)
    {
        return Err("'*' is allowed only as the port of an http:// loopback URI (http://localhost:*/callback)".into());
    }
    Ok(())
}

/// Whether `candidate` (a `redirect_uri` or `return_to` from a request) is allowed by one of
/// `entries`: equal byte for byte, or, for an entry with a port wildcard, equal but for a
/// decimal port in 1..=65535.
pub fn redirect_allowed<'a>(entries: impl IntoIterator<Item = &'a str>, candidate: &str) -> bool {
    entries.into_iter().any(|e| entry_matches(e, candidate))
}

fn entry_matches(entry: &str, candidate: &str) -> bool {
    if entry == candidate {
        return true;
    }
    let Some(i) = entry.find(":*") else {
        return false;
    };
    let (head, tail) = (&entry[..=i], &entry[i + 2..]);
    let Some(rest) = candidate.strip_prefix(head) else {
        return false;
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (port, after) = rest.split_at(digits);
    !port.is_empty()
        && port.len() <= 5
        && !port.starts_with('0')
        && port.parse::<u16>().is_ok()
        && after == tail
}

/// RFC 7636 S256: whether `BASE64URL-NOPAD(SHA-256(verifier))` equals `challenge`, in
/// constant time. The verifier must be 43 to 128 unreserved characters (§4.1).
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    let shaped = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !shaped {
        return false;
    }
    let digest = sha2::Sha256::digest(verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    crate::token::ct_eq(computed.as_bytes(), challenge.as_bytes())
}

/// Whether a `code_challenge` has the shape of an S256 challenge (43 base64url characters).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Everything but the RFC 3986 unreserved characters is percent-encoded, so any `state`
/// comes back to the application byte for byte.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `uri` with `params` appended to its query (`?` or `&`), each value percent-encoded.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') {
        if uri.ends_with('?') || uri.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    for (k, v) in params {
        out.push_str(sep);
        out.push_str(k);
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY_VALUE));
        sep = "&";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_and_explained() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?x=1",
            "http://localhost:3000/callback",
            "http://localhost:*/callback",
            "http://127.0.0.1:*",
            "http://[::1]:*/cb",
            "myapp://callback",
        ] {
            assert_eq!(check_redirect_entry(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "app.example.com/callback",
            "http://app.example.com/callback",
            "https://app.example.com/cb#frag",
            "https://app.example.com/c b",
            "javascript://alert(1)",
            "data://text/html",
            "https://user:pw@app.example.com/",
            "https://*.example.com/cb",
            "https://app.example.com:*/cb",
            "http://localhost:*/cb/*",
            "http://localhost.evil.com:*/cb",
            "HTTPS://app.example.com/",
        ] {
            assert!(check_redirect_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_is_exact_byte_for_byte() {
        let list = ["https://app.example.com/callback"];
        assert!(redirect_allowed(list, "https://app.example.com/callback"));
        for other in [
            "https://app.example.com/callback/",
            "https://app.example.com/callback?x=1",
            "https://app.example.com/Callback",
            "https://app.example.com/callback#x",
            "https://app.example.com.evil.com/callback",
            "https://evil.com/?https://app.example.com/callback",
            "http://app.example.com/callback",
            "https://app.example.com:443/callback",
        ] {
            assert!(!redirect_allowed(list, other), "{other}");
        }
    }

    #[test]
    fn a_port_wildcard_matches_any_port_and_nothing_else() {
        let list = ["http://localhost:*/callback"];
        for ok in [
            "http://localhost:3000/callback",
            "http://localhost:1/callback",
            "http://localhost:65535/callback",
        ] {
            assert!(redirect_allowed(list, ok), "{ok}");
        }
        for bad in [
            "http://localhost/callback",
            "http://localhost:/callback",
            "http://localhost:65536/callback",
            "http://localhost:03000/callback",
            "http://localhost:3000/callback/x",
            "http://localhost:3000@evil.com/callback",
            "http://localhost:3000.evil.com/callback",
            "http://localhost.evil.com:3000/callback",
            "http://127.0.0.1:3000/callback",
        ] {
            assert!(!redirect_allowed(list, bad), "{bad}");
        }
        // Without a wildcard in the entry, the port is part of the exact match.
        assert!(!redirect_allowed(
            ["http://localhost:3000/callback"],
            "http://localhost:3001/callback"
        ));
    }

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_s256_challenge(challenge));
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_s256_matches(challenge, challenge));
        assert!(!pkce_s256_matches("short", challenge));
    }

    #[test]
    fn query_values_are_encoded_so_state_comes_back_byte_for_byte() {
        let state = "a*b~c d&e=f+g/é%";
        let url = with_query(
            "https://app.example.com/cb",
            &[("code", "X1"), ("state", state)],
        );
        assert_eq!(
            url,
            "https://app.example.com/cb?code=X1&state=a%2Ab~c%20d%26e%3Df%2Bg%2F%C3%A9%25"
        );
        let decoded = percent_encoding::percent_decode_str(url.rsplit_once("state=").unwrap().1)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, state);
        assert_eq!(
            with_query("https://a.example/cb?x=1", &[("code", "c")]),
            "https://a.example/cb?x=1&code=c"
        );
    }
}
