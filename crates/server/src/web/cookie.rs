//! Cookie helpers. Every cookie Tessera sets is `HttpOnly` (no script reads it),
//! `SameSite=Strict` (no other site's page sends it along), `Path=/`, and `Secure` when the
//! public URL is https (`--public-url`), so it never travels over plain HTTP there.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::Config;

/// Whether cookies get `Secure`: the server is reached over https.
pub fn is_secure(config: &Config) -> bool {
    config
        .public_url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The value of the cookie `name` in the request, if any (the first one when repeated).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value. `max_age_secs: None` makes a session cookie (gone when the browser
/// closes). Values are Tessera's own random tokens (base62), so they need no quoting.
pub fn set(name: &str, value: &str, max_age_secs: Option<i64>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_secs {
        s += &format!("; Max-Age={age}");
    }
    if secure {
        s += "; Secure";
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Like [`set`], but `SameSite=Lax`: for a cookie that must come along on a top-level
/// navigation from another site (the hosted sign-in's browser session, so that a second
/// `/authorize` from an application signs in at once). Never for a cookie that authorises a
/// state-changing request on its own.
pub fn set_lax(name: &str, value: &str, max_age_secs: Option<i64>, secure: bool) -> HeaderValue {
    let strict = set(name, value, max_age_secs, secure);
    let lax = strict
        .to_str()
        .unwrap_or_default()
        .replace("SameSite=Strict", "SameSite=Lax");
    HeaderValue::from_str(&lax).unwrap_or(strict)
}

/// A `Set-Cookie` value that deletes `name`.
pub fn clear(name: &str, secure: bool) -> HeaderValue {
    set(name, "", Some(0), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_strict_and_secure_only_over_https() {
        let v = set("a", "b", None, false);
        assert_eq!(v, "a=b; Path=/; HttpOnly; SameSite=Strict");
        let v = set("a", "b", Some(60), true);
        assert_eq!(
            v,
            "a=b; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let mut c = Config::new(
            tessera_store::DatabaseUrl::parse("x.db").unwrap_or_else(|e| panic!("{e}")),
        );
        c.public_url = "http://127.0.0.1:8080".into();
        assert!(!is_secure(&c));
        c.public_url = "HTTPS://auth.example.com".into();
        assert!(is_secure(&c));
    }

    #[test]
    fn a_cookie_is_found_among_several_headers_and_pairs() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("x=1; tessera_csrf=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("y=2"));
        assert_eq!(get(&h, "tessera_csrf"), Some("abc"));
        assert_eq!(get(&h, "y"), Some("2"));
        assert_eq!(get(&h, "tessera"), None);
    }
}
