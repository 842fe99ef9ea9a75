//! The session cookie: its name, attributes and parsing, shared by the sign-in server functions
//! and the server's authentication middleware; reading any cookie of a request.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// How the session cookie is written; `secure` when the console is served over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    /// `__Host-` pins a secure cookie to this host and path `/`; browsers refuse it without TLS.
    pub fn name(self) -> &'static str {
        if self.secure { "__Host-modelgate_session" } else { "modelgate_session" }
    }

    /// The `Set-Cookie` value that stores a new session token.
    pub fn set(self, token: &str) -> String {
        format!("{}={token}; Path=/; HttpOnly; SameSite=Lax{}", self.name(), self.secure_flag())
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear(self) -> String {
        format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", self.name(), self.secure_flag())
    }

    fn secure_flag(self) -> &'static str {
        if self.secure { "; Secure" } else { "" }
    }

    /// The session token in a request's cookies, if any.
    pub fn read(self, headers: &HeaderMap) -> Option<String> {
        cookie(headers, self.name())
    }
}

/// The value of the cookie `name` in a request's cookies, if it is there and not empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_use_the_host_prefix_and_flags() {
        let p = CookiePolicy { secure: true };
        assert_eq!(p.set("abc"), "__Host-modelgate_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure");
        assert!(CookiePolicy { secure: false }.set("abc").starts_with("modelgate_session=abc;"));
    }

    #[test]
    fn reads_the_token_among_other_cookies() {
        let p = CookiePolicy { secure: false };
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "theme=dark; modelgate_session=t0k3n; x=1".parse().unwrap());
        assert_eq!(p.read(&h).as_deref(), Some("t0k3n"));
        h.insert(COOKIE, "modelgate_session=".parse().unwrap());
        assert_eq!(p.read(&h), None);
    }
}
